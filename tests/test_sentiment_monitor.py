"""The monitor end to end: replay with an injected surge -> one alert; scheduler; restarts; delivery retries."""

from __future__ import annotations

import http.server
import json
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import ClassVar

import pytest
from sentiment_fakes import KeywordClient
from sqlalchemy import func, select

from services.sentiment.monitor import Monitor
from services.sentiment.settings import SentimentSettings
from services.sentiment.store import Alert, Delivery, Document, Subscription
from shared_backbone.settings import BackboneSettings

START = datetime(2026, 3, 2, tzinfo=UTC)


def base_texts(count: int = 24 * 60) -> list[str]:
    """A day at one story a minute: a quarter about earnings (one in ten of those a miss), the rest market noise."""
    texts = []
    for n in range(count):
        if n % 4 == 0:
            texts.append(f"Company {n} earnings miss estimates" if n % 40 == 0 else f"Company {n} earnings beat estimates")
        else:
            texts.append(f"Markets steady in session {n}")
    return texts


def replay_config(surge_texts: int = 30) -> dict:
    surge = {
        "label": "topic:Earnings",
        "offset_minutes": 12 * 60,
        "duration_minutes": 50,
        "texts": [f"Firm {k} earnings miss, shares plunge" for k in range(surge_texts)],
    }
    return {"start": START.isoformat(), "spacing_s": 60, "surges": [surge] if surge_texts else []}


@pytest.fixture
def settings(tmp_path: Path) -> SentimentSettings:
    return SentimentSettings(
        database_url=f"sqlite:///{tmp_path / 'sentiment.db'}",
        backbone=BackboneSettings(artifacts_dir=tmp_path / "artifacts"),
        ticker_names={"tesla": "TSLA"},
        fetch_limit=200,
        scheduler=False,
        demo_replay=False,
        retry_base_s=0.05,
        webhook_timeout_s=0.5,
        allow_private_webhooks=True,  # the test's receiver listens on loopback
    )


@pytest.fixture
def monitor(settings: SentimentSettings) -> Iterator[Monitor]:
    instance = Monitor(settings, KeywordClient(), replay_texts=base_texts())
    instance.warm_up()
    yield instance
    instance.shut_down()


def drain(monitor: Monitor, name: str) -> list[dict]:
    runs = []
    while True:
        run = monitor.run_source(name)
        runs.append(run)
        if run.get("fetched", 0) == 0:
            return runs


def test_a_replayed_surge_raises_exactly_one_alert_with_evidence(monitor: Monitor) -> None:
    monitor.add_source("replay", "replay", replay_config(), interval_s=0)
    runs = drain(monitor, "replay")
    assert sum(r["stored"] for r in runs) == 24 * 60 + 30
    with monitor.database.session() as db:
        alerts = db.scalars(select(Alert)).all()
        assert [a.key for a in alerts] == ["topic:Earnings"]
        alert = alerts[0]
        assert alert.window_start.replace(tzinfo=UTC) == START + timedelta(hours=12)
        assert alert.share_negative > 0.5 and alert.baseline_share < 0.2 and alert.volume >= 40
        assert len(alert.evidence) == 5 and all("miss" in e["text"] for e in alert.evidence)
        assert [(d.channel, d.status) for d in db.scalars(select(Delivery))] == [("in_app", "sent")]


def test_quiet_replay_raises_nothing(monitor: Monitor) -> None:
    monitor.add_source("replay", "replay", replay_config(surge_texts=0), interval_s=0)
    drain(monitor, "replay")
    with monitor.database.session() as db:
        assert db.scalar(select(func.count()).select_from(Alert)) == 0


def test_a_restart_resumes_from_the_cursor_without_duplicates(settings: SentimentSettings) -> None:
    first = Monitor(settings, KeywordClient(), replay_texts=base_texts())
    first.warm_up()
    first.add_source("replay", "replay", replay_config(), interval_s=0)
    for _ in range(3):
        first.run_source("replay")
    first.shut_down()
    second = Monitor(settings, KeywordClient(), replay_texts=base_texts())
    second.warm_up()
    assert second.sources()[1]["cursor"] == {"position": 600}  # "push" sorts first
    drain(second, "replay")
    drain(second, "replay")
    with second.database.session() as db:
        assert db.scalar(select(func.count()).select_from(Document)) == 24 * 60 + 30
        assert db.scalar(select(func.count()).select_from(Alert)) == 1
    second.shut_down()


def test_the_scheduler_runs_sources_on_their_own(settings: SentimentSettings) -> None:
    settings = settings.model_copy(update={"scheduler": True, "fetch_limit": 2000})
    monitor = Monitor(settings, KeywordClient(), replay_texts=base_texts())
    monitor.warm_up()
    try:
        monitor.add_source("replay", "replay", replay_config(), interval_s=1)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with monitor.database.session() as db:
                if db.scalar(select(func.count()).select_from(Alert)):
                    break
            time.sleep(0.2)
        assert monitor.scheduler is not None and monitor.scheduler.get_job("source:replay") is not None
        with monitor.database.session() as db:
            assert [a.key for a in db.scalars(select(Alert))] == ["topic:Earnings"]
    finally:
        monitor.shut_down()


def test_bad_source_configurations_are_refused(monitor: Monitor) -> None:
    from shared_backbone.errors import ConfigError

    with pytest.raises(ConfigError, match="url"):
        monitor.add_source("f", "feed", {"url": "ftp://example"}, 60)
    with pytest.raises(ConfigError, match="kind"):
        monitor.add_source("x", "push", {}, 60)
    with pytest.raises(ConfigError, match="no source"):
        monitor.run_source("nothing")
    broken = monitor.add_source("dead", "feed", {"url": "http://127.0.0.1:9/feed"}, 0)
    assert broken["name"] == "dead"
    run = monitor.run_source("dead")
    assert run["rejected"] == 1 and run["reasons"] == {"unreachable": 1}  # counted, the monitor goes on


class _Hook(http.server.BaseHTTPRequestHandler):
    answers: ClassVar[list[int]] = []
    received: ClassVar[list[dict]] = []
    hang = threading.Event()

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if self.path == "/hang":
            self.hang.wait(3)
        code = self.answers.pop(0) if self.answers else 200
        if code == 200:
            self.received.append({"path": self.path, **body})
        self.send_response(code)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *_: object) -> None:
        pass


def test_deliveries_retry_a_failing_webhook_and_a_hung_one_does_not_block_email(monitor: Monitor) -> None:
    from aiosmtpd.controller import Controller
    from aiosmtpd.handlers import Message

    mails: list = []

    class Inbox(Message):
        def handle_message(self, message) -> None:  # type: ignore[no-untyped-def]
            mails.append(message)

    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        smtp_port = probe.getsockname()[1]
    smtp = Controller(Inbox(), hostname="127.0.0.1", port=smtp_port)
    smtp.start()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    hook = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        monitor.deliverer.config = monitor.deliverer.config.__class__(
            **{**monitor.deliverer.config.__dict__, "smtp_host": "127.0.0.1", "smtp_port": smtp_port}
        )
        with monitor.database.session() as db:
            db.add(Subscription(name="flaky", topics=["Earnings"], tickers=[], webhook_url=f"{hook}/flaky", email="ana@example.com"))
            db.add(Subscription(name="hung", topics=["Earnings"], tickers=[], webhook_url=f"{hook}/hang"))
            db.add(Subscription(name="other topic", topics=["Macro"], tickers=[], webhook_url=f"{hook}/never"))
        _Hook.answers[:] = [500]
        monitor.add_source("replay", "replay", replay_config(), interval_s=0)
        drain(monitor, "replay")
        first = monitor.deliverer.send_due()
        assert first == {"sent": 1, "retry": 2, "failed": 0}  # the e-mail went; the 500 and the hang wait
        assert len(mails) == 1 and "Earnings" in mails[0]["Subject"]
        time.sleep(0.2)
        _Hook.hang.set()
        second = monitor.deliverer.send_due()
        assert second["sent"] == 2
        # the flaky hook got it once, after its 500; the hung one may have it twice (a timeout is not a refusal)
        assert [r["path"] for r in _Hook.received].count("/flaky") == 1 and "/never" not in [r["path"] for r in _Hook.received]
        assert "negative news surge on topic Earnings" in _Hook.received[0]["text"]
        assert _Hook.received[0]["alert"]["window_start"] == "2026-03-02T12:00:00+00:00"
        with monitor.database.session() as db:
            rows = {(d.channel, d.status, d.attempts) for d in db.scalars(select(Delivery))}
        assert rows == {("in_app", "sent", 0), ("email", "sent", 1), ("webhook", "sent", 2)}
    finally:
        server.shutdown()
        smtp.stop()


def test_a_webhook_to_a_private_address_fails_at_once_and_reaches_nothing(monitor: Monitor) -> None:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    _Hook.received.clear()
    try:
        monitor.deliverer.config = monitor.deliverer.config.__class__(
            **{**monitor.deliverer.config.__dict__, "allow_private_webhooks": False}
        )
        with monitor.database.session() as db:
            hook = f"http://127.0.0.1:{server.server_address[1]}/internal"
            db.add(Subscription(name="inside", topics=["Earnings"], tickers=[], webhook_url=hook))
        monitor.add_source("replay", "replay", replay_config(), interval_s=0)
        drain(monitor, "replay")
        assert monitor.deliverer.send_due() == {"sent": 0, "retry": 0, "failed": 1}
        with monitor.database.session() as db:
            webhook = db.scalars(select(Delivery).where(Delivery.channel == "webhook")).one()
            assert webhook.attempts == 1 and "public addresses only" in (webhook.last_error or "")
            assert "/internal" not in (webhook.last_error or "")  # the URL is a credential: host only
            assert db.scalars(select(Delivery).where(Delivery.channel == "in_app")).one().status == "sent"
        assert _Hook.received == []
    finally:
        server.shutdown()


def test_the_demo_replay_ends_now_and_bursts_on_the_topic_its_bearish_news_falls_under(settings: SentimentSettings) -> None:
    monitor = Monitor(settings.model_copy(update={"demo_replay": True}), KeywordClient())
    monitor.warm_up()
    try:
        source = next(s for s in monitor.sources() if s["name"] == "demo-replay")
        surge = source["config"]["surges"][0]
        assert source["interval_s"] == 10 and surge["label"].startswith("topic:") and len(surge["texts"]) == 40
        start = datetime.fromisoformat(source["config"]["start"])
        assert timedelta(hours=30) < datetime.now(UTC) - start < timedelta(hours=42)  # 2,388 stories, one a minute
        assert monitor.run_source("demo-replay")["stored"] > 0
    finally:
        monitor.shut_down()


TICKS: list[int] = []


def tick() -> None:
    TICKS.append(1)


def test_a_failing_job_store_does_not_stop_the_scheduler(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
    from apscheduler.schedulers.background import BackgroundScheduler
    from sqlalchemy.exc import OperationalError

    from services.common.db import Database
    from services.sentiment.monitor import ResilientJobStore
    from services.sentiment.store import Base

    database = Database(f"sqlite:///{tmp_path / 'jobs.db'}")
    database.warm_up(Base.metadata)
    failures = {"left": 2}
    real_update = SQLAlchemyJobStore.update_job

    def locked_twice(self, job) -> None:  # type: ignore[no-untyped-def]
        if failures["left"]:
            failures["left"] -= 1
            raise OperationalError("UPDATE", {}, Exception("database is locked"))
        real_update(self, job)

    monkeypatch.setattr(SQLAlchemyJobStore, "update_job", locked_twice)
    scheduler = BackgroundScheduler(jobstores={"default": ResilientJobStore(engine=database.engine)}, timezone=UTC)
    scheduler.start()
    try:
        scheduler.add_job(f"{__name__}:tick", "interval", seconds=0.2, id="tick")
        time.sleep(1.5)
        assert failures["left"] == 0 and len(TICKS) >= 4 and scheduler._thread.is_alive()  # type: ignore[attr-defined]
    finally:
        scheduler.shutdown()
        database.dispose()
