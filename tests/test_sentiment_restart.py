"""Kill the monitor mid-ingestion (SIGKILL, a real process) and start it again: nothing lost, nothing twice."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
from sqlalchemy import create_engine, func, select
from test_sentiment_monitor import base_texts, replay_config

from services.sentiment.store import Alert, Delivery, Document
from shared_backbone.settings import BackboneSettings

ADMIN = {"X-Admin-Key": "s3cret"}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start(env: dict[str, str], port: int) -> subprocess.Popen[bytes]:
    argv = [sys.executable, "-m", "uvicorn", "services.sentiment.app:app", "--port", str(port), "--log-level", "warning"]
    process = subprocess.Popen(argv, env=env)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).json().get("status") == "ok":
                return process
        except (httpx.HTTPError, ValueError):
            time.sleep(0.3)
    process.kill()
    raise AssertionError("the monitor did not start")


def replay_cursor(port: int) -> int:
    """How far the replay source has read, as the running monitor reports it."""
    sources = httpx.get(f"http://127.0.0.1:{port}/sources", headers=ADMIN, timeout=10).json()
    replay = next((s for s in sources if s["name"] == "replay"), None)
    return int(((replay or {}).get("cursor") or {}).get("position", 0))


def test_a_killed_monitor_resumes_without_losing_or_doubling_anything(trained_shared: BackboneSettings, tmp_path: Path) -> None:
    artifacts = shutil.copytree(trained_shared.artifacts_dir, tmp_path / "artifacts")
    database = tmp_path / "sentiment.db"
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "SPINE_ARTIFACTS_DIR": str(artifacts),
        "SPINE_PROFILE": "smoke",
        "SPINE_ADMIN_API_KEY": "s3cret",
        "SPINE_SENTIMENT_DATABASE_URL": f"sqlite:///{database}",
        "SPINE_SENTIMENT_DEMO_REPLAY": "false",
        "SPINE_SENTIMENT_FETCH_LIMIT": "60",
    }
    total = len(base_texts()) + 30
    port = free_port()
    process = start(env, port)
    config = {**replay_config(), "texts": base_texts()}
    made = httpx.post(
        f"http://127.0.0.1:{port}/sources",
        json={"name": "replay", "kind": "replay", "config": config, "interval_s": 1},
        headers=ADMIN,
        timeout=60,
    )
    assert made.status_code == 201, made.text
    deadline = time.monotonic() + 120
    while replay_cursor(port) < 300 and time.monotonic() < deadline:
        time.sleep(0.2)
    process.send_signal(signal.SIGKILL)  # no clean shutdown: mid-run, maybe mid-transaction
    process.wait(timeout=30)
    killed_at = replay_cursor_from_db(database)
    assert 0 < killed_at < total

    process = start(env, port)
    try:
        deadline = time.monotonic() + 240
        while replay_cursor(port) < total and time.monotonic() < deadline:
            time.sleep(0.5)
        assert replay_cursor(port) == total
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)

    engine = create_engine(f"sqlite:///{database}")
    with engine.connect() as db:
        stored = db.scalar(select(func.count()).select_from(Document))
        distinct = db.scalar(select(func.count(func.distinct(Document.content_hash))))
        alerts = db.scalar(select(func.count()).select_from(Alert))
        keys = db.scalar(select(func.count(func.distinct(Alert.dedupe_key))))
        in_app = db.execute(select(Delivery.alert_id, func.count()).where(Delivery.channel == "in_app").group_by(Delivery.alert_id)).all()
    engine.dispose()
    assert stored == distinct == total  # every story once: none lost at the kill, none stored again after it
    assert alerts == keys and all(count == 1 for _, count in in_app) and len(in_app) == alerts


def replay_cursor_from_db(database: Path) -> int:
    from services.sentiment.store import SourceRecord

    engine = create_engine(f"sqlite:///{database}")
    with engine.connect() as db:
        cursor = db.scalar(select(SourceRecord.cursor).where(SourceRecord.name == "replay"))
    engine.dispose()
    return int((cursor or {}).get("position", 0))
