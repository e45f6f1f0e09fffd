"""`spine up`: the launcher starts a real service process on the tiny backbone and stops it cleanly."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from apps import launch
from apps.cli import app
from shared_backbone.errors import ConfigError
from shared_backbone.settings import BackboneSettings


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_missing_artifacts_are_named_and_refused_without_training(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = BackboneSettings(artifacts_dir=tmp_path)
    assert launch.missing_artifacts("shared", "smoke", settings) == ["shared-smoke"]
    assert launch.missing_artifacts("per-domain", "quick", settings) == [
        "per-domain-recommender-quick",
        "per-domain-sentiment-quick",
        "per-domain-support-quick",
    ]
    monkeypatch.setenv("SPINE_ARTIFACTS_DIR", str(tmp_path))
    result = CliRunner().invoke(app, ["up", "--profile", "smoke", "--no-train-missing"])
    assert result.exit_code == 1 and "missing backbone artifact(s) shared-smoke" in result.output
    assert "Traceback" not in result.output


def test_plan_rejects_bad_ports_and_points_the_ui_at_the_services() -> None:
    with pytest.raises(ConfigError, match="support port"):
        launch.plan("127.0.0.1", {"support": 70000}, None)
    children = launch.plan("127.0.0.1", {"support": 9101, "recommender": 9102, "sentiment": 9103}, 9501)
    assert [c.name for c in children] == ["support", "recommender", "sentiment", "ui"] and children[0].url == "http://127.0.0.1:9101"
    env = launch.child_environment("shared", "smoke", children)
    assert env["SPINE_UI_SUPPORT_URL"] == "http://127.0.0.1:9101" and env["SPINE_PROFILE"] == "smoke"
    assert env["SPINE_UI_RECOMMENDER_URL"] == "http://127.0.0.1:9102"


def test_spine_up_serves_every_service_and_stops_on_ctrl_c(trained_shared: BackboneSettings, tmp_path: Path, small_movielens: Path) -> None:
    port, films, news = free_port(), free_port(), free_port()
    artifacts = shutil.copytree(trained_shared.artifacts_dir, tmp_path / "artifacts")  # the fixture's folder stays read-only
    env = {**os.environ, "SPINE_ARTIFACTS_DIR": str(artifacts), "HF_HUB_OFFLINE": "1", "SPINE_RECOMMENDER_SEED_DIR": str(small_movielens)}
    spine = Path(sys.executable).with_name("spine")
    argv = [str(spine), "up", "--profile", "smoke", "--no-ui", "--no-train-missing", "--support-port", str(port)]
    argv += ["--recommender-port", str(films), "--sentiment-port", str(news)]
    process = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(process.stdout.readline, "")), daemon=True)  # type: ignore[union-attr]
    reader.start()
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and process.poll() is None and not any("running" in line for line in lines):
            time.sleep(0.5)
        assert any(line.startswith("support ") and f"http://127.0.0.1:{port}" in line for line in lines), "".join(lines)
        assert httpx.get(f"http://127.0.0.1:{port}/health", timeout=5).json()["status"] == "ok"
        reply = httpx.post(f"http://127.0.0.1:{port}/chat", json={"message": "my card has not arrived"}, timeout=30)
        assert reply.status_code == 200 and reply.json()["action"] in {"answer", "clarify", "handoff"}
        assert any(line.startswith("recommender ") and f"http://127.0.0.1:{films}" in line for line in lines), "".join(lines)
        listing = httpx.get(f"http://127.0.0.1:{films}/users/1/recommendations", params={"k": 3}, timeout=30)
        assert listing.status_code == 200 and len(listing.json()["items"]) == 3
        pushed = httpx.post(f"http://127.0.0.1:{news}/documents", json={"documents": [{"text": "$TSLA shares plunge"}]}, timeout=30)
        assert pushed.status_code == 200 and pushed.json()["stored"] == 1
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=60)
        reader.join(timeout=10)
    assert process.returncode == 0 and any("stopping" in line for line in lines), "".join(lines)
    assert all((artifacts / f"{service}.db").is_file() for service in ("support", "recommender", "sentiment"))


def test_spine_up_stops_with_the_reason_when_a_service_cannot_start(tmp_path: Path, trained_shared: BackboneSettings) -> None:
    artifacts = shutil.copytree(trained_shared.artifacts_dir, tmp_path / "artifacts")
    (artifacts / "backbones" / "shared-smoke" / "manifest.json").write_text("{not json", encoding="utf-8")
    env = {**os.environ, "SPINE_ARTIFACTS_DIR": str(artifacts), "HF_HUB_OFFLINE": "1"}
    spine = Path(sys.executable).with_name("spine")
    argv = [str(spine), "up", "--profile", "smoke", "--no-ui", "--no-train-missing", "--support-port", str(free_port())]
    result = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=240)
    assert result.returncode == 1 and "error: support cannot start" in result.stderr and "Traceback" not in result.stderr
