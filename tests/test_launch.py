"""`spine up`: the launcher starts a real service process on the tiny backbone and stops it cleanly."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
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
    assert launch.missing_artifacts("per-domain", "quick", settings) == ["per-domain-support-quick"]
    monkeypatch.setenv("SPINE_ARTIFACTS_DIR", str(tmp_path))
    result = CliRunner().invoke(app, ["up", "--profile", "smoke", "--no-train-missing"])
    assert result.exit_code == 1 and "missing backbone artifact(s) shared-smoke" in result.output
    assert "Traceback" not in result.output


def test_plan_rejects_bad_ports_and_points_the_ui_at_the_services() -> None:
    with pytest.raises(ConfigError, match="support port"):
        launch.plan("127.0.0.1", {"support": 70000}, None)
    children = launch.plan("127.0.0.1", {"support": 9101}, 9501)
    assert [c.name for c in children] == ["support", "ui"] and children[0].url == "http://127.0.0.1:9101"
    env = launch.child_environment("shared", "smoke", children)
    assert env["SPINE_UI_SUPPORT_URL"] == "http://127.0.0.1:9101" and env["SPINE_PROFILE"] == "smoke"


def test_spine_up_serves_chat_and_stops_on_ctrl_c(trained_shared: BackboneSettings, tmp_path: Path) -> None:
    port = free_port()
    env = {
        **os.environ,
        "SPINE_ARTIFACTS_DIR": str(trained_shared.artifacts_dir),
        "SPINE_SUPPORT_DATABASE_URL": f"sqlite:///{tmp_path / 'support.db'}",
        "HF_HUB_OFFLINE": "1",
    }
    spine = Path(sys.executable).with_name("spine")
    argv = [str(spine), "up", "--profile", "smoke", "--no-ui", "--no-train-missing", "--support-port", str(port)]
    process = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline, healthy = time.monotonic() + 240, False
        while time.monotonic() < deadline and not healthy and process.poll() is None:
            try:
                healthy = httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).json()["status"] == "ok"
            except (httpx.HTTPError, ValueError, KeyError):
                time.sleep(0.5)
        assert healthy, process.stdout.read() if process.poll() is not None else "no health in 240 s"
        reply = httpx.post(f"http://127.0.0.1:{port}/chat", json={"message": "my card has not arrived"}, timeout=30)
        assert reply.status_code == 200 and reply.json()["action"] in {"answer", "clarify", "handoff"}
    finally:
        process.send_signal(signal.SIGINT)
        output, _ = process.communicate(timeout=60)
    assert process.returncode == 0, output
    assert f"support  http://127.0.0.1:{port}" in output and "stopping" in output
