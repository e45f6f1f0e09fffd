"""From surges to alerts: one per key and episode, with the headlines that caused it, queued for delivery.

An alert is written in the same transaction as the documents that raised it, and its dedupe key
(key and window) is unique in the store, so re-reading after a crash cannot raise it twice.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from services.sentiment.detector import Surge, SurgeRule, scan
from services.sentiment.documents import utc
from services.sentiment.store import Alert, Delivery, Document, DocumentTicker, Subscription
from services.sentiment.trends import Point

EVIDENCE = 5


def evidence(session: Session, key: str, start: datetime, end: datetime) -> list[dict[str, Any]]:
    """The most negative documents of the window: what an analyst reads first."""
    kind, _, value = key.partition(":")
    query = select(Document).where(Document.published_at >= start, Document.published_at < end, Document.sentiment == "bearish")
    if kind == "topic":
        query = query.where(Document.topic == value)
    else:
        query = query.join(DocumentTicker, DocumentTicker.document_id == Document.id).where(DocumentTicker.ticker == value)
    rows = session.scalars(query.order_by(Document.score, Document.id).limit(EVIDENCE))
    return [
        {
            "document_id": d.id,
            "text": d.text[:300],
            "url": d.url,
            "score": round(d.score, 3),
            "published_at": utc(d.published_at).isoformat(),
        }
        for d in rows
    ]


def _recent_alert(session: Session, key: str, start: datetime, cooldown: timedelta) -> bool:
    """Is there a stored alert for ``key`` within the cooldown on either side of ``start``?"""
    query = select(Alert.id).where(Alert.key == key, Alert.window_start > start - cooldown, Alert.window_start < start + cooldown)
    return session.scalar(query.limit(1)) is not None


def subscribers(session: Session, key: str) -> list[Subscription]:
    kind, _, value = key.partition(":")
    matches = []
    for subscription in session.scalars(select(Subscription)):
        wanted = subscription.topics if kind == "topic" else subscription.tickers
        everything = not subscription.topics and not subscription.tickers
        if everything or value in wanted:
            matches.append(subscription)
    return matches


def queue_deliveries(session: Session, alert: Alert) -> None:
    """In-app delivery is the stored alert itself; each subscriber's webhook and e-mail get a pending delivery."""
    session.add(Delivery(alert_id=alert.id, channel="in_app", status="sent"))
    for subscription in subscribers(session, alert.key):
        if subscription.webhook_url:
            session.add(Delivery(alert_id=alert.id, subscription_id=subscription.id, channel="webhook"))
        if subscription.email:
            session.add(Delivery(alert_id=alert.id, subscription_id=subscription.id, channel="email"))


def raise_alerts(session: Session, series: dict[str, list[Point]], rule: SurgeRule, width: timedelta) -> list[Alert]:
    """Store and queue every surge in the scanned windows that is not stored yet and not within the
    cooldown of a stored alert for its key.

    Every surge, not only those in windows this run wrote to: late stories can make an earlier window
    the start of an episode, and the detector's own cooldown then quiets the window after it; alerting
    only new windows would raise nothing for that episode. The unique dedupe key keeps this idempotent.
    """
    raised: list[Alert] = []
    for key, points in series.items():
        for surge in scan([p.window() for p in points], rule):
            if _recent_alert(session, key, surge.window_start, rule.cooldown):
                continue
            alert = _alert(session, surge, width)
            if alert is not None:
                raised.append(alert)
    return raised


def _alert(session: Session, surge: Surge, width: timedelta) -> Alert | None:
    end = surge.window_start + width
    alert = Alert(
        dedupe_key=surge.dedupe_key,
        key=surge.key,
        window_start=surge.window_start,
        window_end=end,
        severity=surge.severity,
        volume=surge.volume,
        share_negative=round(surge.share, 4),
        baseline_share=round(surge.baseline_share, 4),
        z=round(surge.z, 2),
        evidence=evidence(session, surge.key, surge.window_start, end),
    )
    try:
        with session.begin_nested():
            session.add(alert)
            session.flush()
    except IntegrityError:  # raised already (another run, another process)
        return None
    queue_deliveries(session, alert)
    return alert


def describe(alert: Alert) -> dict[str, Any]:
    """An alert as the API, the UI and webhooks show it."""
    return {
        "id": alert.id,
        "key": alert.key,
        "severity": alert.severity,
        "window_start": utc(alert.window_start).isoformat(),
        "window_end": utc(alert.window_end).isoformat(),
        "volume": alert.volume,
        "share_negative": alert.share_negative,
        "baseline_share": alert.baseline_share,
        "z": alert.z,
        "evidence": alert.evidence,
        "created_at": utc(alert.created_at).isoformat() if alert.created_at else None,
        "acknowledged_at": utc(alert.acknowledged_at).isoformat() if alert.acknowledged_at else None,
    }
