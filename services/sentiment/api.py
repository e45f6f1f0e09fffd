"""HTTP routes of the sentiment monitor."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, HTTPException, Query, Request, status
from fastapi import Path as PathParam
from pydantic import AnyHttpUrl, BaseModel, ConfigDict, EmailStr, Field, field_validator
from sqlalchemy import select

from services.common.outbound import ForbiddenTarget, check_target
from services.common.security import require_admin
from services.sentiment.alerts import describe
from services.sentiment.documents import RawDocument, utc
from services.sentiment.monitor import Monitor
from services.sentiment.pipeline import EARLIEST, FUTURE_SLACK
from services.sentiment.store import Alert, Document, DocumentTicker, Subscription
from services.sentiment.trends import load_series
from shared_backbone.errors import ConfigError
from shared_backbone.text import normalise_text

MAX_PUSH = 500
NAME_CHARS = 100  # the width of sentiment_subscriptions.name


def get_monitor(request: Request) -> Monitor:
    return request.app.state.monitor


MonitorDep = Annotated[Monitor, Depends(get_monitor)]
AdminDep = Annotated[None, Depends(require_admin)]


def _sane_time(value: datetime | None) -> datetime | None:
    """Times from 1990 to a day ahead; anything else is a broken clock, refused with a 422."""
    if value is None:
        return None
    try:
        moment = utc(value)
    except (OverflowError, ValueError):
        raise ValueError("the time is out of range") from None
    if not EARLIEST <= moment <= datetime.now(UTC) + FUTURE_SLACK:
        raise ValueError(f"the time must lie between {EARLIEST:%Y-%m-%d} and tomorrow")
    return moment


class PushedDocument(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str = Field(max_length=100_000)
    title: str | None = Field(default=None, max_length=1000)
    url: str | None = Field(default=None, max_length=2000)
    published_at: datetime | None = None
    id: str | None = Field(default=None, max_length=512)

    @field_validator("published_at")
    @classmethod
    def _sane(cls, value: datetime | None) -> datetime | None:
        return _sane_time(value)


class PushRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    documents: list[PushedDocument] = Field(min_length=1, max_length=MAX_PUSH)


class NewSubscription(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=NAME_CHARS)
    topics: list[str] = Field(default_factory=list, max_length=20)
    tickers: list[Annotated[str, Field(pattern=r"^\$?[A-Za-z]{1,6}(\.[A-Za-z]{1,2})?$")]] = Field(default_factory=list, max_length=50)
    webhook_url: AnyHttpUrl | None = None
    email: EmailStr | None = None

    @field_validator("tickers")
    @classmethod
    def _upper(cls, values: list[str]) -> list[str]:
        return [v.lstrip("$").upper() for v in values]


class NewSource(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")
    kind: Literal["feed", "folder", "replay"]
    config: dict[str, Any] = Field(default_factory=dict)
    interval_s: int = Field(default=300, ge=0, le=86_400, description="0: run only on request")


documents_router = APIRouter(tags=["documents"])
alerts_router = APIRouter(tags=["alerts"])
sources_router = APIRouter(prefix="/sources", tags=["sources"])


def _document(d: Document) -> dict[str, Any]:
    return {
        "id": d.id,
        "source": d.source,
        "title": d.title,
        "text": d.text,
        "url": d.url,
        "published_at": utc(d.published_at).isoformat(),
        "sentiment": d.sentiment,
        "sentiment_confidence": round(d.sentiment_confidence, 4),
        "score": round(d.score, 4),
        "topic": d.topic,
        "topic_confidence": round(d.topic_confidence, 4),
        "tickers": d.tickers,
    }


@documents_router.post("/documents")
def push(body: PushRequest, monitor: MonitorDep, _: AdminDep) -> dict[str, Any]:
    """HTTP push: score and store a batch at once (duplicates by content are counted, not stored twice); a feed, so admin only."""
    raws = [RawDocument("push", d.text, d.title, d.url, d.published_at, d.id) for d in body.documents]
    return monitor.push(raws)


def _since(value: datetime | None) -> datetime | None:
    try:
        return _sane_time(value)
    except ValueError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, f"since: {exc}") from None


@documents_router.get("/documents")
def documents(
    monitor: MonitorDep,
    topic: str | None = None,
    ticker: str | None = None,
    sentiment: Literal["bearish", "neutral", "bullish"] | None = None,
    since: datetime | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[dict[str, Any]]:
    query = select(Document)
    if topic:
        query = query.where(Document.topic == topic)
    if sentiment:
        query = query.where(Document.sentiment == sentiment)
    if since := _since(since):
        query = query.where(Document.published_at >= since)
    if ticker:
        query = query.join(DocumentTicker, DocumentTicker.document_id == Document.id).where(
            DocumentTicker.ticker == ticker.lstrip("$").upper()
        )
    with monitor.database.session() as db:
        return [_document(d) for d in db.scalars(query.order_by(Document.published_at.desc(), Document.id.desc()).limit(limit))]


@documents_router.get("/trends")
def trends(
    monitor: MonitorDep,
    topic: str | None = None,
    ticker: str | None = None,
    window: Annotated[int | None, Query(ge=1, le=7 * 24 * 60, description="minutes; default: the detector's")] = None,
    since: datetime | None = None,
    windows: Annotated[int, Query(ge=1, le=2000)] = 48,
) -> dict[str, Any]:
    """Per-topic and per-ticker windows: volume, share negative, mean score (the chart's data)."""
    if topic and ticker:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "ask for a topic or a ticker, not both")
    width = timedelta(minutes=window) if window else monitor.width
    since = _since(since)
    with monitor.database.session() as db:
        if since is None:
            latest = db.scalar(select(Document.published_at).order_by(Document.published_at.desc()).limit(1))
            since = (utc(latest) if latest else datetime.now(UTC)) - windows * width
        series = load_series(db, utc(since), width, topic=topic, ticker=ticker.lstrip("$").upper() if ticker else None)
    return {
        "window_minutes": int(width.total_seconds() // 60),
        "series": {
            key: [
                {
                    "start": p.start.isoformat(),
                    "volume": p.volume,
                    "share_negative": round(p.share_negative, 4),
                    "mean_score": round(p.mean_score, 4),
                }
                for p in points
            ]
            for key, points in series.items()
        },
    }


def _subscription(s: Subscription) -> dict[str, Any]:
    """A webhook URL is a credential (Slack's are): listings show its host only."""
    hook = None
    if s.webhook_url:
        parsed = urlsplit(s.webhook_url)
        hook = f"{parsed.scheme}://{parsed.netloc}/..."
    return {"id": s.id, "name": s.name, "topics": s.topics, "tickers": s.tickers, "webhook": hook, "email": s.email}


@alerts_router.get("/subscriptions")
def subscriptions(monitor: MonitorDep) -> list[dict[str, Any]]:
    with monitor.database.session() as db:
        return [_subscription(s) for s in db.scalars(select(Subscription).order_by(Subscription.id))]


@alerts_router.post("/subscriptions", status_code=status.HTTP_201_CREATED)
def subscribe(body: NewSubscription, monitor: MonitorDep, _: AdminDep) -> dict[str, Any]:
    """Topics and tickers to watch (none: everything), and where to send alerts besides the app."""
    if body.webhook_url:
        try:
            check_target(str(body.webhook_url), allow_private=monitor.settings.allow_private_webhooks)
        except ForbiddenTarget as exc:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, f"webhook_url: {exc}") from None
        except OSError:
            pass  # the name does not resolve from here (yet): every delivery checks the target again
    labels = monitor.topic_labels()
    unknown = [t for t in body.topics if t not in labels]
    if unknown:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, f"unknown topic(s) {unknown}; known: {sorted(labels)}")
    name = normalise_text(body.name)
    if not name:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "name is empty")
    if len(name) > NAME_CHARS:  # NFKC can lengthen text (one U+FDFA is 18 characters); PostgreSQL enforces the column's width
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, f"name is longer than {NAME_CHARS} characters once normalised")
    with monitor.database.session() as db:
        subscription = Subscription(
            name=name,
            topics=body.topics,
            tickers=body.tickers,
            webhook_url=str(body.webhook_url) if body.webhook_url else None,
            email=str(body.email) if body.email else None,
        )
        db.add(subscription)
        db.flush()
        return _subscription(subscription)


@alerts_router.get("/alerts")
def alerts(monitor: MonitorDep, acknowledged: bool | None = None, limit: Annotated[int, Query(ge=1, le=500)] = 50) -> list[dict[str, Any]]:
    """The alert feed, newest window first."""
    query = select(Alert)
    if acknowledged is not None:
        query = query.where(Alert.acknowledged_at.is_not(None) if acknowledged else Alert.acknowledged_at.is_(None))
    with monitor.database.session() as db:
        return [describe(a) for a in db.scalars(query.order_by(Alert.window_start.desc(), Alert.id.desc()).limit(limit))]


@alerts_router.post("/alerts/{alert_id}/ack")
def acknowledge(alert_id: Annotated[int, PathParam(ge=1, le=2**31 - 1)], monitor: MonitorDep, _: AdminDep) -> dict[str, Any]:
    """Mark an alert seen; acknowledging twice keeps the first time."""
    with monitor.database.session() as db:
        alert = db.get(Alert, alert_id)
        if alert is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no alert {alert_id}")
        if alert.acknowledged_at is None:
            alert.acknowledged_at = datetime.now(UTC)
        return describe(alert)


@sources_router.get("")
def list_sources(monitor: MonitorDep, _: AdminDep) -> list[dict[str, Any]]:
    return monitor.sources()


@sources_router.post("", status_code=status.HTTP_201_CREATED)
def add_source(body: NewSource, monitor: MonitorDep, _: AdminDep) -> dict[str, Any]:
    """Add or reconfigure a source: ``feed`` {url}, ``folder`` {folder}, ``replay`` {start, spacing_s, surges, texts?}."""
    return monitor.add_source(body.name, body.kind, body.config, body.interval_s)


@sources_router.post("/{name}/run")
def run_source(name: str, monitor: MonitorDep, _: AdminDep) -> dict[str, Any]:
    """One run now, outside the schedule (a run already in progress is not doubled)."""
    try:
        return monitor.run_source(name)
    except ConfigError as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from None
