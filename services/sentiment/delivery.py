"""Sending alerts: webhooks (JSON with a Slack-compatible ``text``) and e-mail over SMTP, with retries.

Each delivery is its own row and its own transaction: a webhook that hangs or answers 500 costs that
delivery one attempt (and a back-off) and never holds up the e-mail, the other subscribers or the
next alert. After the last attempt a delivery is marked failed with its error; the alert stays.
"""

from __future__ import annotations

import logging
import smtplib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from typing import Any
from urllib.parse import urlsplit

import httpx
from sqlalchemy import select

from services.common.db import Database
from services.common.outbound import ForbiddenTarget, check_target
from services.sentiment.alerts import describe
from services.sentiment.documents import utc
from services.sentiment.store import Alert, Delivery, Subscription

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DeliveryConfig:
    webhook_timeout_s: float = 5.0
    attempts: int = 5
    retry_base_s: float = 30.0
    smtp_host: str = "localhost"
    smtp_port: int = 25
    smtp_sender: str = "spine-alerts@localhost"
    smtp_user: str | None = None
    smtp_password: str | None = field(default=None, repr=False)
    smtp_starttls: bool = False
    allow_private_webhooks: bool = False


def summary(alert: Alert) -> str:
    """One line a person can act on: what, how unusual, and the top headline."""
    what = alert.key.replace(":", " ", 1)
    # utc(): PostgreSQL hands times back in its session's zone (SQLite as naive UTC); the line says UTC
    line = (
        f"[{alert.severity}] negative news surge on {what}: {alert.share_negative:.0%} negative of {alert.volume} "
        f"(usually {alert.baseline_share:.0%}), window from {utc(alert.window_start):%Y-%m-%d %H:%M} UTC"
    )
    if alert.evidence:
        line += f'. Top: "{alert.evidence[0]["text"][:140]}"'
    return line


def payload(alert: Alert) -> dict[str, Any]:
    return {"text": summary(alert), "alert": describe(alert)}  # "text" is what Slack's incoming webhooks display


class Deliverer:
    def __init__(self, database: Database, config: DeliveryConfig, http: httpx.Client | None = None) -> None:
        self.database = database
        self.config = config
        self.http = http or httpx.Client(timeout=config.webhook_timeout_s)
        self.senders: dict[str, Callable[[Alert, Subscription], None]] = {"webhook": self._webhook, "email": self._email}

    def _webhook(self, alert: Alert, subscription: Subscription) -> None:
        # checked at every attempt, not only when subscribing: the name may resolve elsewhere by now
        check_target(subscription.webhook_url or "", allow_private=self.config.allow_private_webhooks)
        response = self.http.post(subscription.webhook_url or "", json=payload(alert), timeout=self.config.webhook_timeout_s)
        response.raise_for_status()

    def _email(self, alert: Alert, subscription: Subscription) -> None:
        message = EmailMessage()
        message["Subject"] = f"Spine alert: {alert.key} ({alert.severity})"
        message["From"] = self.config.smtp_sender
        message["To"] = subscription.email or ""
        lines = [summary(alert), "", *(f"- {e['text']}" for e in alert.evidence)]
        message.set_content("\n".join(lines))
        with smtplib.SMTP(self.config.smtp_host, self.config.smtp_port, timeout=self.config.webhook_timeout_s) as smtp:
            if self.config.smtp_starttls:
                smtp.starttls()
            if self.config.smtp_user:
                smtp.login(self.config.smtp_user, self.config.smtp_password or "")
            smtp.send_message(message)

    def due(self, now: datetime | None = None) -> list[int]:
        now = now or datetime.now(UTC)
        with self.database.session() as db:
            query = select(Delivery.id).where(Delivery.status == "pending", Delivery.next_attempt_at <= now).order_by(Delivery.id)
            return list(db.scalars(query))

    def send_due(self, now: datetime | None = None) -> dict[str, int]:
        """One attempt for every delivery that is due; returns how many were sent, retried and failed."""
        outcome = {"sent": 0, "retry": 0, "failed": 0}
        for delivery_id in self.due(now):
            outcome[self._attempt(delivery_id)] += 1
        return outcome

    def _attempt(self, delivery_id: int) -> str:
        with self.database.session() as db:
            delivery = db.get(Delivery, delivery_id)
            if delivery is None or delivery.status != "pending":
                return "sent"
            alert = db.get(Alert, delivery.alert_id)
            subscription = db.get(Subscription, delivery.subscription_id) if delivery.subscription_id else None
            delivery.attempts += 1
            try:
                if alert is None or subscription is None:
                    raise LookupError("the alert or the subscription is gone")
                self.senders[delivery.channel](alert, subscription)
            except Exception as exc:  # any failure of a channel is recorded, never raised
                message = f"{type(exc).__name__}: {exc}"
                if subscription is not None and subscription.webhook_url:  # webhook URLs are credentials
                    hidden = urlsplit(subscription.webhook_url)
                    message = message.replace(subscription.webhook_url, f"{hidden.scheme}://{hidden.netloc}/...")
                delivery.last_error = message[:500]
                if delivery.attempts >= self.config.attempts or isinstance(exc, LookupError | ForbiddenTarget):
                    delivery.status = "failed"
                    log.warning("delivery %d (%s) failed for good: %s", delivery.id, delivery.channel, delivery.last_error)
                    return "failed"
                delay = self.config.retry_base_s * 2 ** (delivery.attempts - 1)
                delivery.next_attempt_at = datetime.now(UTC) + timedelta(seconds=delay)
                log.info("delivery %d (%s) will be retried in %.0f s: %s", delivery.id, delivery.channel, delay, delivery.last_error)
                return "retry"
            delivery.status, delivery.last_error = "sent", None
            return "sent"
