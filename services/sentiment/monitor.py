"""The monitor: sources read on a schedule, documents scored and stored, surges turned into alerts.

APScheduler 3 runs one interval job per source (``max_instances=1``, ``coalesce``, a misfire grace)
and one for deliveries, with its job store in the service's database. A run of one source is one
transaction: its documents, its new cursor and the alerts they raise commit together or not at all.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from services.common.backbone import backbone_for
from services.common.db import Database
from services.sentiment.alerts import raise_alerts
from services.sentiment.delivery import Deliverer, DeliveryConfig
from services.sentiment.detector import SurgeRule
from services.sentiment.documents import RawDocument
from services.sentiment.pipeline import IngestReport, Pipeline
from services.sentiment.settings import SentimentSettings
from services.sentiment.sources import Batch, FeedSource, FolderSource, InjectedSurge, ReplaySource, Source
from services.sentiment.store import Base, SourceRecord
from services.sentiment.trends import load_series, window_start
from shared_backbone.client import BackboneClient
from shared_backbone.data import load_financial_sentiment
from shared_backbone.errors import ConfigError

log = logging.getLogger(__name__)
KINDS = ("feed", "folder", "replay", "push")
_active: Monitor | None = None  # the scheduler's jobs are stored by name, so they find their monitor here


class ResilientJobStore(SQLAlchemyJobStore):
    """APScheduler 3's loop does not catch job-store errors: one "database is locked" or a database restart
    would end the scheduler thread for good. Here such an error is logged and the loop tries again later."""

    def get_due_jobs(self, now: datetime) -> list[Any]:
        try:
            return super().get_due_jobs(now)
        except SQLAlchemyError as exc:
            log.warning("job store unreadable, retrying later: %s", exc)
            return []

    def get_next_run_time(self) -> datetime | None:
        try:
            return super().get_next_run_time()
        except SQLAlchemyError as exc:
            log.warning("job store unreadable, retrying later: %s", exc)
            return datetime.now(UTC) + timedelta(seconds=5)

    def update_job(self, job: Any) -> None:
        try:
            super().update_job(job)
        except SQLAlchemyError as exc:
            log.warning("could not save job %s, it keeps its previous next run: %s", job.id, exc)


def run_scheduled(name: str) -> None:
    """An APScheduler job: one run of one source; failures are recorded on the source, never raised."""
    if _active is not None:
        _active.run_source(name)


def deliver_scheduled() -> None:
    if _active is not None:
        _active.deliverer.send_due()


class Monitor:
    def __init__(
        self, settings: SentimentSettings, client: BackboneClient | None = None, replay_texts: Sequence[str] | None = None
    ) -> None:
        self.settings = settings
        self._client = client
        self.database = Database(settings.database_url_or_default("sentiment"))
        self.width = timedelta(minutes=settings.window_minutes)
        self.rule = SurgeRule(
            settings.ewma_alpha,
            settings.z_threshold,
            settings.min_volume,
            settings.min_share_rise,
            settings.warm_up_windows,
            timedelta(minutes=settings.cooldown_minutes),
            settings.extra_std,
        )
        self.replay_texts = replay_texts
        self.deliverer = Deliverer(
            self.database,
            DeliveryConfig(
                settings.webhook_timeout_s,
                settings.delivery_attempts,
                settings.retry_base_s,
                settings.smtp_host,
                settings.smtp_port,
                settings.smtp_sender,
                settings.smtp_user,
                settings.smtp_password.get_secret_value() if settings.smtp_password else None,
                settings.smtp_starttls,
                settings.allow_private_webhooks,
            ),
        )
        self.scheduler: BackgroundScheduler | None = None
        self._pipeline: Pipeline | None = None
        self._topics: tuple[str, ...] | None = None
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    @property
    def client(self) -> BackboneClient:
        if self._client is None:
            s = self.settings
            self._client = backbone_for("sentiment", s.deployment, s.profile, s.backbone)
        return self._client

    @property
    def pipeline(self) -> Pipeline:
        if self._pipeline is None:
            s = self.settings
            self._pipeline = Pipeline(self.client, max_chars=s.max_document_chars, batch_size=s.batch_size, ticker_names=s.ticker_names)
        return self._pipeline

    def topic_labels(self) -> tuple[str, ...]:
        """The topic head's classes (what subscriptions may name), asked of the backbone once."""
        if self._topics is None:
            self._topics = tuple(self.client.predict("topic", ["probe"]).labels)
        return self._topics

    # --- start and stop ---------------------------------------------------------------------------

    def warm_up(self, start_scheduler: bool | None = None) -> None:
        global _active
        self.database.warm_up(Base.metadata)
        self.client.warm_up()
        with self.database.session() as db:
            if db.get(SourceRecord, "push") is None:
                db.add(SourceRecord(name="push", kind="push", config={}, interval_s=0, enabled=False))
        if self.settings.drop_dir is not None:
            self.add_source("drop", "folder", {"folder": str(self.settings.drop_dir)}, 60, replace=False)
        if self.settings.demo_replay:
            with self.database.session() as db:
                missing = db.get(SourceRecord, "demo-replay") is None
            if missing:
                self.add_source("demo-replay", "replay", self.demo_replay_config(), 10)
        _active = self
        if self.settings.scheduler if start_scheduler is None else start_scheduler:
            self.start_scheduler()

    def start_scheduler(self) -> None:
        jobstore = ResilientJobStore(engine=self.database.engine, tablename="sentiment_jobs")
        defaults = {"coalesce": True, "max_instances": 1, "misfire_grace_time": 60}
        self.scheduler = BackgroundScheduler(jobstores={"default": jobstore}, job_defaults=defaults, timezone=UTC)
        self.scheduler.start()
        with self.database.session() as db:
            records = list(db.scalars(select(SourceRecord).where(SourceRecord.enabled.is_(True))))
        for record in records:
            self._schedule(record.name, record.interval_s)
        self.scheduler.add_job(
            deliver_scheduled, "interval", seconds=self.settings.delivery_interval_s, id="deliveries", replace_existing=True
        )

    def _schedule(self, name: str, interval_s: int) -> None:
        if self.scheduler is not None and interval_s > 0:
            self.scheduler.add_job(run_scheduled, "interval", seconds=interval_s, args=[name], id=f"source:{name}", replace_existing=True)

    def shut_down(self) -> None:
        global _active
        if self.scheduler is not None and self.scheduler.running:
            self.scheduler.shutdown(wait=True)
        if _active is self:
            _active = None
        self.database.dispose()

    # --- sources ----------------------------------------------------------------------------------

    def add_source(self, name: str, kind: str, config: dict[str, Any], interval_s: int, *, replace: bool = True) -> dict[str, Any]:
        """Register (or reconfigure) a source; its cursor survives a reconfiguration only when the kind stays."""
        if kind not in KINDS or kind == "push":
            raise ConfigError(f"a source kind is one of feed, folder, replay, not '{kind}'")
        if name == "push":
            raise ConfigError("'push' is the name of the built-in HTTP push source; choose another")
        self._build(name, kind, config)  # refuses a broken configuration before anything is stored
        with self.database.session() as db:
            record = db.get(SourceRecord, name)
            if record is not None and not replace:
                return self._describe(record)
            if record is None:
                record = SourceRecord(name=name, kind=kind)
                db.add(record)
            elif record.kind != kind:
                record.cursor = None
            record.kind, record.config, record.interval_s, record.enabled = kind, config, interval_s, True
            db.flush()
            described = self._describe(record)
        self._schedule(name, interval_s)
        return described

    def sources(self) -> list[dict[str, Any]]:
        with self.database.session() as db:
            return [self._describe(r) for r in db.scalars(select(SourceRecord).order_by(SourceRecord.name))]

    @staticmethod
    def _describe(record: SourceRecord) -> dict[str, Any]:
        return {
            "name": record.name,
            "kind": record.kind,
            "config": record.config,
            "interval_s": record.interval_s,
            "enabled": record.enabled,
            "cursor": record.cursor,
            "last_run_at": record.last_run_at.isoformat() if record.last_run_at else None,
            "last_error": record.last_error,
            "counts": {"fetched": record.fetched, "stored": record.stored, "duplicates": record.duplicates, "rejected": record.rejected},
        }

    def _build(self, name: str, kind: str, config: dict[str, Any]) -> Source:
        s = self.settings
        if kind == "feed":
            url = str(config.get("url", ""))
            if not url.startswith(("http://", "https://", "file://")):
                raise ConfigError("a feed needs a url starting with http://, https:// or file://")
            return FeedSource(name, url, timeout_s=s.feed_timeout_s, max_bytes=s.feed_max_bytes)
        if kind == "folder":
            if not config.get("folder"):
                raise ConfigError("a folder source needs 'folder'")
            return FolderSource(name, Path(str(config["folder"])))
        if kind == "replay":
            return self._replay(name, config)
        raise ConfigError(f"unknown source kind '{kind}'")

    def _replay(self, name: str, config: dict[str, Any]) -> ReplaySource:
        try:
            start = datetime.fromisoformat(str(config.get("start", "2026-01-01T00:00:00+00:00")))
            spacing = timedelta(seconds=float(config.get("spacing_s", 60)))
            surges = [
                InjectedSurge(
                    str(surge["label"]),
                    timedelta(minutes=float(surge["offset_minutes"])),
                    timedelta(minutes=float(surge["duration_minutes"])),
                    tuple(str(t) for t in surge["texts"]),
                )
                for surge in config.get("surges", [])
            ]
            texts = config.get("texts") or self.replay_texts or self._test_texts()
            if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
                raise TypeError("'texts' must be a list of strings")
            return ReplaySource(name, texts, start if start.tzinfo else start.replace(tzinfo=UTC), spacing, surges)
        except (KeyError, TypeError, ValueError, OverflowError) as exc:
            raise ConfigError(f"replay configuration: {exc}") from None

    def _test_texts(self) -> list[str]:
        """The vendored sentiment test split in a fixed shuffled order: the default thing to replay.

        The published order runs in clusters of one label (259 neutral tweets in a row), which would
        look like surges of their own.
        """
        if self.replay_texts is None:
            texts = [e.text for e in load_financial_sentiment(self.settings.backbone.data_dir).test]
            random.Random(0).shuffle(texts)
            self.replay_texts = texts
        return list(self.replay_texts)

    def demo_replay_config(self, surge_size: int = 40) -> dict[str, Any]:
        """A replay of the test split ending now, one story a minute, with a burst of bearish news on one topic.

        The burst is training-split bearish stories that the backbone files under the topic it sees most
        among them, so the surge is one the monitor can recognise as that topic.
        """
        texts = self._test_texts()
        data = load_financial_sentiment(self.settings.backbone.data_dir)
        bearish = [e.text for e in data.train if data.labels[e.label] == "bearish"][:600]
        topics = self.client.predict("topic", bearish).best()
        counts: dict[str, int] = {}
        for label, _ in topics:
            counts[label] = counts.get(label, 0) + 1
        topic = max(counts, key=lambda label: (counts[label], label))
        burst = [text for text, (label, _) in zip(bearish, topics, strict=True) if label == topic][:surge_size]
        start = window_start(datetime.now(UTC), self.width) - timedelta(minutes=len(texts))
        surge = {"label": f"topic:{topic}", "offset_minutes": int(len(texts) * 0.75), "duration_minutes": 45, "texts": burst}
        return {"start": start.isoformat(), "spacing_s": 60, "surges": [surge]}

    # --- ingestion --------------------------------------------------------------------------------

    def _lock(self, name: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(name, threading.Lock())

    def run_source(self, name: str) -> dict[str, Any]:
        """Read the source from its cursor, store what is new with the new cursor, raise alerts; one run at a time."""
        lock = self._lock(name)
        if not lock.acquire(blocking=False):
            return {"source": name, "skipped": "a run of this source is in progress"}
        try:
            with self.database.session() as db:
                record = db.get(SourceRecord, name)
                if record is None or record.kind == "push":
                    raise ConfigError(f"no source '{name}' to run")
                kind, config, cursor = record.kind, dict(record.config), record.cursor
            try:
                batch = self._build(name, kind, config).fetch(cursor, self.settings.fetch_limit)
                return self._ingest(name, batch)
            except ConfigError:
                raise
            except Exception as exc:  # a broken source is recorded and retried next time; the scheduler goes on
                log.exception("source %s failed", name)
                with self.database.session() as db:
                    record = db.get(SourceRecord, name)
                    if record is not None:
                        record.last_error, record.last_run_at = f"{type(exc).__name__}: {exc}"[:500], datetime.now(UTC)
                return {"source": name, "error": f"{type(exc).__name__}: {exc}"}
        finally:
            lock.release()

    def push(self, raws: Sequence[RawDocument]) -> dict[str, Any]:
        with self._lock("push"):
            return self._ingest("push", Batch(list(raws), {}))

    def _ingest(self, name: str, batch: Batch) -> dict[str, Any]:
        report = IngestReport()
        for reason, count in batch.problems.items():
            report.rejected += count
            report.reasons[reason] = report.reasons.get(reason, 0) + count
        kept = self.pipeline.prepare(batch.documents, report)
        report.fetched += sum(batch.problems.values())  # refused by the source itself (bad lines, bad XML)
        with self.database.session() as db:
            known = self.pipeline.known_hashes(db, [digest for _, _, digest in kept])
        fresh = [k for k in kept if k[2] not in known]
        report.duplicates += len(kept) - len(fresh)
        scored = self.pipeline.score(fresh)
        with self.database.session() as db:
            record = db.get(SourceRecord, name)
            assert record is not None
            self.pipeline.store(db, record, scored, batch.cursor or record.cursor, report)
            db.flush()
            touched: set[tuple[str, datetime]] = set()
            for item in scored:  # the windows this run added to: only those can raise new alerts
                start = window_start(item.published_at, self.width)
                touched.add((f"topic:{item.topic}", start))
                touched.update((f"ticker:{ticker}", start) for ticker in item.tickers)
            alerts = []
            if touched:
                since = min(start for _, start in touched) - self.settings.history_windows * self.width
                alerts = raise_alerts(db, load_series(db, since, self.width), self.rule, self.width)
            alert_ids = [a.id for a in alerts]
        return {
            "source": name,
            "fetched": report.fetched,
            "stored": report.stored,
            "duplicates": report.duplicates,
            "rejected": report.rejected,
            "reasons": report.reasons,
            "alerts": alert_ids,
        }
