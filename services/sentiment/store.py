"""Documents with their scores, sources with their cursors, subscriptions, alerts and deliveries (SQLAlchemy 2)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, Boolean, DateTime, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


def _now() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    type_annotation_map = {datetime: DateTime(timezone=True)}  # noqa: RUF012 - SQLAlchemy's own class attribute


class SourceRecord(Base):
    """A source and how far it has read: the cursor moves in the same transaction as the documents it covers."""

    __tablename__ = "sentiment_sources"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))  # feed | folder | replay | push
    config: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    interval_s: Mapped[int] = mapped_column(Integer, default=300)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    cursor: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    last_run_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    fetched: Mapped[int] = mapped_column(Integer, default=0)
    stored: Mapped[int] = mapped_column(Integer, default=0)
    duplicates: Mapped[int] = mapped_column(Integer, default=0)
    rejected: Mapped[int] = mapped_column(Integer, default=0)


class Document(Base):
    __tablename__ = "sentiment_documents"
    __table_args__ = (Index("ix_sentiment_documents_topic_published", "topic", "published_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    content_hash: Mapped[str] = mapped_column(String(32), unique=True)
    source: Mapped[str] = mapped_column(String(64), index=True)
    external_id: Mapped[str | None] = mapped_column(String(512))
    title: Mapped[str | None] = mapped_column(Text)
    text: Mapped[str] = mapped_column(Text)
    url: Mapped[str | None] = mapped_column(Text)
    published_at: Mapped[datetime] = mapped_column(index=True)
    ingested_at: Mapped[datetime] = mapped_column(default=_now)
    sentiment: Mapped[str] = mapped_column(String(16), index=True)  # bearish | neutral | bullish
    sentiment_confidence: Mapped[float] = mapped_column(Float)
    score: Mapped[float] = mapped_column(Float, doc="P(bullish) - P(bearish), in [-1, 1]")
    topic: Mapped[str] = mapped_column(String(64))
    topic_confidence: Mapped[float] = mapped_column(Float)
    tickers: Mapped[list[str]] = mapped_column(JSON, default=list)


class DocumentTicker(Base):
    """One row per (document, ticker), so per-ticker trends and filters are indexed queries."""

    __tablename__ = "sentiment_document_tickers"

    document_id: Mapped[int] = mapped_column(ForeignKey("sentiment_documents.id", ondelete="CASCADE"), primary_key=True)
    ticker: Mapped[str] = mapped_column(String(12), primary_key=True, index=True)
    published_at: Mapped[datetime] = mapped_column(index=True)


class Subscription(Base):
    __tablename__ = "sentiment_subscriptions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(100))
    topics: Mapped[list[str]] = mapped_column(JSON, default=list)
    tickers: Mapped[list[str]] = mapped_column(JSON, default=list)
    webhook_url: Mapped[str | None] = mapped_column(Text)
    email: Mapped[str | None] = mapped_column(String(320))
    created_at: Mapped[datetime] = mapped_column(default=_now)


class Alert(Base):
    __tablename__ = "sentiment_alerts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    dedupe_key: Mapped[str] = mapped_column(String(200), unique=True)
    key: Mapped[str] = mapped_column(String(100), index=True)  # topic:<name> | ticker:<symbol>
    window_start: Mapped[datetime]
    window_end: Mapped[datetime]
    severity: Mapped[str] = mapped_column(String(16))
    volume: Mapped[int] = mapped_column(Integer)
    share_negative: Mapped[float] = mapped_column(Float)
    baseline_share: Mapped[float] = mapped_column(Float)
    z: Mapped[float] = mapped_column(Float)
    evidence: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(default=_now)
    acknowledged_at: Mapped[datetime | None]


class Delivery(Base):
    """One alert to one channel: attempts, outcome and the last error, so nothing is silently lost."""

    __tablename__ = "sentiment_deliveries"
    __table_args__ = (UniqueConstraint("alert_id", "subscription_id", "channel"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    alert_id: Mapped[int] = mapped_column(ForeignKey("sentiment_alerts.id", ondelete="CASCADE"), index=True)
    subscription_id: Mapped[int | None] = mapped_column(ForeignKey("sentiment_subscriptions.id", ondelete="SET NULL"))
    channel: Mapped[str] = mapped_column(String(16))  # in_app | webhook | email
    status: Mapped[str] = mapped_column(String(16), default="pending")  # pending | sent | failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(default=_now, index=True)
    last_error: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(default=_now, onupdate=_now)
