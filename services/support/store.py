"""Conversations, turns, predictions, feedback and hand-off tickets (SQLAlchemy 2)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, Float, ForeignKey, Integer, String, Text, UniqueConstraint, func, select
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, relationship

from services.common.db import UtcDateTime


def _now() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    type_annotation_map = {datetime: UtcDateTime()}  # noqa: RUF012 - SQLAlchemy's own class attribute


class Conversation(Base):
    __tablename__ = "support_conversations"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=lambda: str(uuid.uuid4()))
    created_at: Mapped[datetime] = mapped_column(default=_now)
    updated_at: Mapped[datetime] = mapped_column(default=_now, onupdate=_now)
    status: Mapped[str] = mapped_column(String(16), default="open")  # open | handed_off
    last_intent: Mapped[str | None] = mapped_column(String(80))
    pending_options: Mapped[list[str] | None] = mapped_column(JSON)
    turns: Mapped[list[Turn]] = relationship(back_populates="conversation", order_by="Turn.position", cascade="all, delete-orphan")


class Turn(Base):
    __tablename__ = "support_turns"
    __table_args__ = (UniqueConstraint("conversation_id", "position"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    conversation_id: Mapped[str] = mapped_column(ForeignKey("support_conversations.id", ondelete="CASCADE"), index=True)
    position: Mapped[int]
    role: Mapped[str] = mapped_column(String(8))  # user | bot
    text: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=_now)
    intent: Mapped[str | None] = mapped_column(String(80))
    confidence: Mapped[float | None] = mapped_column(Float)
    oos_score: Mapped[float | None] = mapped_column(Float)
    action: Mapped[str | None] = mapped_column(String(16))
    payload: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    conversation: Mapped[Conversation] = relationship(back_populates="turns")


class Feedback(Base):
    __tablename__ = "support_feedback"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    turn_id: Mapped[int] = mapped_column(ForeignKey("support_turns.id", ondelete="CASCADE"), unique=True)
    rating: Mapped[str] = mapped_column(String(8))  # up | down
    comment: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=_now)


class HandoffTicket(Base):
    __tablename__ = "support_handoffs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    conversation_id: Mapped[str] = mapped_column(ForeignKey("support_conversations.id", ondelete="CASCADE"), index=True)
    reason: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default="open")
    transcript: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(default=_now)


def add_exchange(session: Session, conversation: Conversation, user: dict[str, Any], bot: dict[str, Any]) -> tuple[Turn, Turn]:
    """Append the customer's turn and the bot's reply at the next two positions, with one flush.

    A conversation created in this transaction has no turns yet, so the position query is skipped.
    """
    new = conversation in session.new
    last = 0 if new else session.scalar(select(func.max(Turn.position)).where(Turn.conversation_id == conversation.id)) or 0
    turns = (
        Turn(conversation_id=conversation.id, position=last + 1, role="user", **user),
        Turn(conversation_id=conversation.id, position=last + 2, role="bot", **bot),
    )
    session.add_all(turns)
    session.flush()
    return turns


def transcript(session: Session, conversation_id: str) -> list[dict[str, Any]]:
    turns = session.scalars(select(Turn).where(Turn.conversation_id == conversation_id).order_by(Turn.position))
    return [{"role": t.role, "text": t.text, "intent": t.intent, "at": t.created_at.isoformat()} for t in turns]
