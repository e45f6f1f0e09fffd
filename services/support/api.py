"""HTTP routes of the support service."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request, status
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from services.common.security import require_admin
from services.support.bot import SupportBot, UnknownSession
from services.support.store import Feedback, Turn

SESSION_ID = r"^[A-Za-z0-9-]{1,64}$"


def without_nul(text: str) -> str:
    """NUL is dropped: PostgreSQL's text cannot hold it (SQLite took it), and no one means to type it."""
    return text.replace("\x00", "")


def get_bot(request: Request) -> SupportBot:
    return request.app.state.bot


BotDep = Annotated[SupportBot, Depends(get_bot)]
AdminDep = Annotated[None, Depends(require_admin)]


class ChatRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    session_id: str | None = Field(default=None, pattern=SESSION_ID, description="omit to start a new conversation")
    message: str

    @field_validator("message")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        message = without_nul(value).strip()
        if not message:
            raise ValueError("message is empty")
        return message


class Source(BaseModel):
    article_id: str
    title: str
    section: str
    snippet: str
    score: float | None
    url: str


class ChatResponse(BaseModel):
    session_id: str
    turn_id: int
    reply: str
    action: Literal["answer", "clarify", "handoff"]
    intent: str | None
    confidence: float | None
    out_of_scope: bool
    oos_score: float | None
    sources: list[Source]
    quick_replies: list[str]
    handoff_ticket: int | None


class FeedbackRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    session_id: str = Field(pattern=SESSION_ID)
    turn_id: int = Field(ge=1)
    rating: Literal["up", "down"]
    comment: str | None = Field(default=None, max_length=1000)

    @field_validator("comment")
    @classmethod
    def _no_nul(cls, value: str | None) -> str | None:
        return without_nul(value) if value is not None else None


chat_router = APIRouter(tags=["chat"])
kb_router = APIRouter(prefix="/kb", tags=["knowledge base"])


@chat_router.post("/chat", response_model=ChatResponse)
def chat(body: ChatRequest, bot: BotDep) -> Any:
    limit = bot.settings.max_message_chars
    if len(body.message) > limit:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, f"message is {len(body.message):,} characters; the limit is {limit:,}")
    try:
        return bot.chat(body.message, body.session_id)
    except UnknownSession:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND, f"unknown session id '{body.session_id}': omit session_id to start a new one"
        ) from None


@chat_router.post("/feedback", status_code=status.HTTP_201_CREATED)
def feedback(body: FeedbackRequest, bot: BotDep) -> dict[str, Any]:
    with bot.database.session() as db:
        turn = db.get(Turn, body.turn_id)
        if turn is None or turn.conversation_id != body.session_id:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no turn {body.turn_id} in session '{body.session_id}'")
        if turn.role != "bot":
            raise HTTPException(
                status.HTTP_422_UNPROCESSABLE_CONTENT, "feedback is given on the bot's replies, not on the customer's messages"
            )
        existing = db.scalar(select(Feedback).where(Feedback.turn_id == turn.id))
        if existing is None:
            try:
                with db.begin_nested():
                    db.add(Feedback(turn_id=turn.id, rating=body.rating, comment=body.comment))
            except IntegrityError:  # a simultaneous first rating won the insert: replace it instead
                existing = db.scalar(select(Feedback).where(Feedback.turn_id == turn.id))
        if existing is not None:  # changing one's mind replaces the earlier rating rather than adding a second
            existing.rating, existing.comment = body.rating, body.comment
    return {"turn_id": body.turn_id, "rating": body.rating, "replaced": existing is not None}


@chat_router.get("/sessions/{session_id}")
def get_session(session_id: str, bot: BotDep) -> dict[str, Any]:
    try:
        return bot.session(session_id)
    except UnknownSession:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"unknown session id '{session_id}'") from None


@chat_router.get("/handoffs")
def list_handoffs(
    bot: BotDep,
    _: AdminDep,
    status_filter: Annotated[Literal["open", "closed"] | None, Query(alias="status")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> list[dict[str, Any]]:
    """The support team's queue: transcripts of other customers, so it needs the admin key."""
    return bot.handoffs(status_filter, limit)


@kb_router.post("/reindex")
def reindex(bot: BotDep, _: AdminDep) -> dict[str, Any]:
    return bot.kb.reindex(bot.client)


@kb_router.get("/articles/{article_id}", response_model=None)
def article(article_id: str, bot: BotDep, format: Literal["json", "text"] = "json") -> dict[str, Any] | PlainTextResponse:
    """JSON for programs; ``?format=text`` gives the Markdown itself, for a browser following a source link."""
    found = bot.kb.articles.get(article_id)
    if found is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no article '{article_id}'")
    if format == "text":
        return PlainTextResponse(found.body + "\n")
    return {"id": found.id, "intent": found.intent, "title": found.title, "body": found.body}
