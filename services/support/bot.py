"""The support bot: one turn of conversation, from message to stored reply.

Understanding, retrieval and policy are separate pieces; this class wires them to the session
state and the store. Turns of one session are serialised by a per-session lock, and each turn is
one database transaction, so concurrent messages never interleave or lose a turn.
"""

from __future__ import annotations

import threading
import uuid
import weakref
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select

from services.common.backbone import backbone_for
from services.common.db import Database
from services.support.kb import Article, Hit, KnowledgeBase
from services.support.policy import NEITHER, Action, Decision, Thresholds, decide, resolve_clarification
from services.support.settings import SupportSettings
from services.support.store import Base, Conversation, HandoffTicket, Turn, add_exchange, transcript
from services.support.understanding import OutOfScopeCalibration, Understanding, calibrate_out_of_scope, understand
from shared_backbone.client import BackboneClient


class UnknownSession(LookupError):
    """A session id that this service never issued."""


@dataclass
class ChatReply:
    session_id: str
    turn_id: int
    reply: str
    action: str
    intent: str | None
    confidence: float | None
    out_of_scope: bool
    oos_score: float | None
    sources: list[dict[str, Any]] = field(default_factory=list)
    quick_replies: list[str] = field(default_factory=list)
    handoff_ticket: int | None = None


def source_of(article: Article, section: str, text: str, score: float | None) -> dict[str, Any]:
    snippet = text if len(text) <= 300 else text[:297] + "..."
    return {
        "article_id": article.id,
        "title": article.title,
        "section": section,
        "snippet": snippet,
        "score": score,
        "url": f"/kb/articles/{article.id}",
    }


class SupportBot:
    def __init__(self, settings: SupportSettings, client: BackboneClient | None = None) -> None:
        self.settings = settings
        self._client = client
        self.database = Database(settings.database_url_or_default("support"))
        self.kb = KnowledgeBase(settings.kb_dir, settings.backbone.artifacts_dir / "support" / "kb")
        self.thresholds = Thresholds(settings.answer_threshold, settings.clarify_margin, settings.clarify_min_second)
        self.calibration: OutOfScopeCalibration | None = None
        self._session_locks: weakref.WeakValueDictionary[str, threading.Lock] = weakref.WeakValueDictionary()
        self._locks_guard = threading.Lock()

    # --- start-up ---------------------------------------------------------------------------------

    @property
    def client(self) -> BackboneClient:
        if self._client is None:
            backbone = self.settings.backbone
            self._client = backbone_for("support", self.settings.deployment, self.settings.profile, backbone)
        return self._client

    def warm_up(self) -> None:
        """Load the backbone, the knowledge-base index, the out-of-scope threshold and the database."""
        self.client.warm_up()
        self.kb.warm_up(self.client)
        self.calibration = calibrate_out_of_scope(
            self.client,
            self.settings.oos_score,
            self.settings.backbone.data_dir,
            self.settings.backbone.artifacts_dir / "support" / "calibration",
        )
        self.database.warm_up(Base.metadata)

    @property
    def oos_threshold(self) -> float:
        if self.settings.oos_threshold is not None:
            return self.settings.oos_threshold
        if self.calibration is None:
            raise RuntimeError("SupportBot.warm_up() has not run")
        return self.calibration.threshold

    def understand(self, texts: list[str]) -> list[Understanding]:
        return understand(self.client, texts, self.settings.oos_score, self.oos_threshold)

    # --- one turn ---------------------------------------------------------------------------------

    def _lock_for(self, session_id: str) -> threading.Lock:
        with self._locks_guard:
            lock = self._session_locks.get(session_id)
            if lock is None:
                lock = threading.Lock()
                self._session_locks[session_id] = lock
            return lock

    def chat(self, message: str, session_id: str | None = None) -> ChatReply:
        """One turn; without a session id, a new conversation starts in the same transaction."""
        starting = session_id is None
        session_id = session_id or str(uuid.uuid4())
        lock = self._lock_for(session_id)  # held in a local so the weak entry lives for the turn
        with lock, self.database.session() as db:
            conversation = None if starting else db.get(Conversation, session_id)
            if conversation is None:
                if not starting:
                    raise UnknownSession(session_id)
                conversation = Conversation(id=session_id)
                db.add(conversation)
            return self._turn(db, conversation, message)

    def _turn(self, db: Any, conversation: Conversation, message: str) -> ChatReply:
        if conversation.status == "handed_off":
            return self._with_the_team(db, conversation, message)
        decision, asked = None, None
        if conversation.pending_options:
            titles = {intent: a.title for intent in conversation.pending_options if (a := self.kb.article_for_intent(intent))}
            choice = resolve_clarification(message, conversation.pending_options, titles)
            if choice == NEITHER:
                decision = Decision(Action.HANDOFF, None, reason="no offered option fitted")
            elif choice is not None:
                decision = Decision(Action.ANSWER, choice, reason="clarified by the customer")
                asked = db.scalar(
                    select(Turn.text).where(Turn.conversation_id == conversation.id, Turn.role == "user").order_by(Turn.position.desc())
                )
        # a reply that settles a clarification is about the question asked before it: search with that
        (understood,) = self.understand([asked or message])
        decision = decision or decide(understood, self.thresholds, message)
        clarified = asked is not None
        prediction = {"intent": decision.intent} if clarified else {"intent": understood.intent, "confidence": understood.confidence}
        reply, sources, quick_replies = self._compose(decision, understood)
        ticket_id = None
        conversation.pending_options = list(decision.options) if decision.action == Action.CLARIFY else None
        if decision.intent:
            conversation.last_intent = decision.intent
        payload = {"sources": sources, "quick_replies": quick_replies, "reason": decision.reason, "alternatives": understood.ranked}
        _, bot_turn = add_exchange(
            db,
            conversation,
            {"text": message, "oos_score": None if clarified else understood.oos_score, **prediction},
            {"text": reply, "intent": decision.intent, "action": decision.action.value, "payload": payload},
        )
        if decision.action == Action.HANDOFF:
            conversation.status = "handed_off"
            ticket = HandoffTicket(conversation_id=conversation.id, reason=decision.reason, transcript=transcript(db, conversation.id))
            db.add(ticket)
            db.flush()
            ticket_id = ticket.id
        return ChatReply(
            session_id=conversation.id,
            turn_id=bot_turn.id,
            reply=reply,
            action=decision.action.value,
            intent=decision.intent,
            confidence=1.0 if clarified else understood.confidence,  # the customer confirmed the topic
            out_of_scope=decision.reason == "out of scope",
            oos_score=understood.oos_score,
            sources=sources,
            quick_replies=quick_replies,
            handoff_ticket=ticket_id,
        )

    def _with_the_team(self, db: Any, conversation: Conversation, message: str) -> ChatReply:
        """After a hand-off the bot steps aside: messages join the open ticket, no new ticket is opened."""
        ticket = db.scalar(select(HandoffTicket).where(HandoffTicket.conversation_id == conversation.id).order_by(HandoffTicket.id.desc()))
        reply = "A member of our support team has this conversation and will reply here; I have added your message to it."
        bot = {"text": reply, "action": Action.HANDOFF.value, "payload": {"reason": "already handed off"}}
        _, bot_turn = add_exchange(db, conversation, {"text": message}, bot)
        if ticket is not None:
            ticket.transcript = transcript(db, conversation.id)
        return ChatReply(
            session_id=conversation.id,
            turn_id=bot_turn.id,
            reply=reply,
            action=Action.HANDOFF.value,
            intent=None,
            confidence=None,
            out_of_scope=False,
            oos_score=None,
            handoff_ticket=ticket.id if ticket is not None else None,
        )

    def _compose(self, decision: Decision, understood: Understanding) -> tuple[str, list[dict[str, Any]], list[str]]:
        if decision.action == Action.CLARIFY:
            titles = [(a.title if (a := self.kb.article_for_intent(i)) else i.replace("_", " ")) for i in decision.options]
            text = "I want to be sure I help with the right thing. Is your question about one of these?\n" + "\n".join(
                f"{n}. {t}" for n, t in enumerate(titles, start=1)
            )
            return text, [], [*titles, NEITHER]
        if decision.action == Action.HANDOFF:
            why = {
                "out of scope": "That is outside what I can help with here,",
                "asked for a person": "Of course,",
                "low confidence": "I am not confident I understood your question,",
                "no offered option fitted": "Sorry I could not find the right topic,",
            }.get(decision.reason, "")
            return (
                f"{why} so I have passed this conversation to a member of our support team. They will reply here shortly.".strip(),
                [],
                [],
            )
        article = self.kb.article_for_intent(decision.intent or "")
        hits = self.kb.search(understood.embedding[None, :], k=self.settings.passages_per_answer + 4)[0]
        return self._answer(article, hits)

    def _answer(self, article: Article | None, hits: list[Hit]) -> tuple[str, list[dict[str, Any]], list[str]]:
        sources: list[dict[str, Any]] = []
        if article is not None:
            overview, steps = article.section("Overview"), article.section("What to do")
            text = f"**{article.title}**\n\n{overview}" + (f"\n\n**What to do**\n{steps}" if steps else "")
            sources.append(source_of(article, "Overview", overview, None))
        else:
            text = "Here is what I found in our help articles."
        passages = 0
        for hit in hits:
            if passages >= self.settings.passages_per_answer:
                break
            if hit.passage.section == "Common questions" or any(s["article_id"] == hit.passage.article_id for s in sources):
                continue
            found = self.kb.articles.get(hit.passage.article_id)
            if found is not None:
                sources.append(source_of(found, hit.passage.section, hit.passage.text, round(hit.score, 4)))
                passages += 1
        return text, sources, []

    # --- reads --------------------------------------------------------------------------------------

    def session(self, session_id: str) -> dict[str, Any]:
        with self.database.session() as db:
            conversation = db.get(Conversation, session_id)
            if conversation is None:
                raise UnknownSession(session_id)
            turns = [
                {
                    "id": t.id,
                    "position": t.position,
                    "role": t.role,
                    "text": t.text,
                    "intent": t.intent,
                    "confidence": t.confidence,
                    "action": t.action,
                    "at": t.created_at.isoformat(),
                }
                for t in conversation.turns
            ]
            return {
                "session_id": conversation.id,
                "status": conversation.status,
                "last_intent": conversation.last_intent,
                "pending_options": conversation.pending_options or [],
                "turns": turns,
            }

    def handoffs(self, status: str | None, limit: int) -> list[dict[str, Any]]:
        with self.database.session() as db:
            query = select(HandoffTicket).order_by(HandoffTicket.id.desc()).limit(limit)
            if status:
                query = query.where(HandoffTicket.status == status)
            return [
                {
                    "id": t.id,
                    "session_id": t.conversation_id,
                    "reason": t.reason,
                    "status": t.status,
                    "created_at": t.created_at.isoformat(),
                    "transcript": t.transcript,
                }
                for t in db.scalars(query)
            ]
