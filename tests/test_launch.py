"""`spine up`: the launcher starts a real service process on the tiny backbone and stops it cleanly."""

from __future__ import annotations

import json
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
from shared_backbone.client import load_deployment
from shared_backbone.errors import ConfigError
from shared_backbone.settings import BackboneSettings

ADMIN_KEY = "launch-s3cret"
ADMIN = {"X-Admin-Key": ADMIN_KEY}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def free_ports_in_a_row(count: int) -> int:
    """The first of ``count`` consecutive free ports (per-domain servers take the backbone port and the next ones)."""
    while True:
        first = free_port()
        try:
            for port in range(first, first + count):
                with socket.socket() as probe:
                    probe.bind(("127.0.0.1", port))
            return first
        except OSError:
            continue


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


def test_plan_gives_each_artifact_one_server_and_points_each_service_at_its_own(tmp_path: Path) -> None:
    deploy = BackboneSettings().deploy_dir
    shared, per_domain = load_deployment("shared", deploy), load_deployment("per-domain", deploy)
    with pytest.raises(ConfigError, match="support port"):
        launch.plan(shared, "smoke", "127.0.0.1", {"support": 70000}, None)
    with pytest.raises(ConfigError, match="both want port 8200"):
        launch.plan(shared, "smoke", "127.0.0.1", {"support": 8200}, None)

    children = launch.plan(
        shared, "smoke", "127.0.0.1", {"support": 9101, "recommender": 9102, "sentiment": 9103}, 9501, backbone_port=9200
    )
    assert [c.name for c in children] == ["backbone", "support", "recommender", "sentiment", "ui"]
    assert children[0].argv[-7:] == ["shared-smoke", "--host", "127.0.0.1", "--port", "9200", "--backend", "auto"]
    assert {c.env.get("SPINE_BACKBONE_URL") for c in children[1:4]} == {"http://127.0.0.1:9200"}
    env = launch.child_environment("shared", "smoke", children, {"SPINE_BACKBONE_URL": "http://elsewhere", "KEEP": "1"})
    assert env["SPINE_UI_SUPPORT_URL"] == "http://127.0.0.1:9101" and env["SPINE_PROFILE"] == "smoke" and env["KEEP"] == "1"
    assert "SPINE_BACKBONE_URL" not in env and json.loads(env["SPINE_UI_BACKBONE_URLS"]) == {"backbone": "http://127.0.0.1:9200"}
    # no key of the user's own: the run's processes share a random one; a user's key is kept as it is
    generated = env["SPINE_ADMIN_API_KEY"]
    assert len(generated) >= 32 and generated != launch.child_environment("shared", "smoke", children, {})["SPINE_ADMIN_API_KEY"]
    assert launch.child_environment("shared", None, children, {"SPINE_ADMIN_API_KEY": "mine"})["SPINE_ADMIN_API_KEY"] == "mine"
    # two allocator arenas per process unless the user chose otherwise
    assert (
        env["MALLOC_ARENA_MAX"] == "2"
        and launch.child_environment("shared", None, children, {"MALLOC_ARENA_MAX": "4"})["MALLOC_ARENA_MAX"] == "4"
    )
    assert generated not in launch.write_procfile(children, tmp_path / "Procfile.shared").read_text()

    children = launch.plan(per_domain, "quick", "127.0.0.1", {}, None)
    servers = {c.name: c for c in children if c.name.startswith("backbone")}
    assert sorted(servers) == ["backbone-recommender", "backbone-sentiment", "backbone-support"]
    assert servers["backbone-sentiment"].argv[-7] == "per-domain-sentiment-quick"
    by_name = {c.name: c for c in children}
    for service in ("support", "recommender", "sentiment"):
        assert by_name[service].env["SPINE_BACKBONE_URL"] == servers[f"backbone-{service}"].url
    assert all(not c.env for c in launch.plan(per_domain, "quick", "127.0.0.1", {}, None, in_process=True))

    procfile = launch.write_procfile(children, tmp_path / "Procfile")
    lines = procfile.read_text().splitlines()
    assert lines[0].startswith("#") and [line.split(":")[0] for line in lines[1:]] == [c.name for c in children]
    assert "SPINE_BACKBONE_URL=http://127.0.0.1:8201" in lines[5]  # recommender's server is the second


def bring_up(deployment: str, artifacts: Path, movies: Path) -> tuple[subprocess.Popen[str], list[str], dict[str, int]]:
    """`spine up` as a user runs it, on free ports; returns once it says it is running (or exits)."""
    ports = {"support": free_port(), "recommender": free_port(), "sentiment": free_port(), "backbone": free_ports_in_a_row(3)}
    env = {**os.environ, "SPINE_ARTIFACTS_DIR": str(artifacts), "HF_HUB_OFFLINE": "1", "SPINE_RECOMMENDER_SEED_DIR": str(movies)}
    env["SPINE_ADMIN_API_KEY"] = ADMIN_KEY
    spine = Path(sys.executable).with_name("spine")
    argv = [str(spine), "up", "--deployment", deployment, "--profile", "smoke", "--no-ui", "--no-train-missing"]
    argv += ["--support-port", str(ports["support"]), "--recommender-port", str(ports["recommender"])]
    argv += ["--sentiment-port", str(ports["sentiment"]), "--backbone-port", str(ports["backbone"])]
    process = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    threading.Thread(target=lambda: lines.extend(iter(process.stdout.readline, "")), daemon=True).start()  # type: ignore[union-attr]
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and process.poll() is None and not any("running; Ctrl-C" in line for line in lines):
        time.sleep(0.5)
    return process, lines, ports


def use_every_service(ports: dict[str, int], lines: list[str]) -> None:
    support, films, news = (f"http://127.0.0.1:{ports[s]}" for s in ("support", "recommender", "sentiment"))
    assert any(line.startswith("support ") and support in line for line in lines), "".join(lines)
    reply = httpx.post(f"{support}/chat", json={"message": "my card has not arrived"}, timeout=30)
    assert reply.status_code == 200 and reply.json()["action"] in {"answer", "clarify", "handoff"}
    listing = httpx.get(f"{films}/users/1/recommendations", params={"k": 3}, timeout=30)
    assert listing.status_code == 200 and len(listing.json()["items"]) == 3
    pushed = httpx.post(f"{news}/documents", json={"documents": [{"text": "$TSLA shares plunge"}]}, headers=ADMIN, timeout=30)
    assert pushed.status_code == 200 and pushed.json()["stored"] == 1


def stop_and_check(process: subprocess.Popen[str], lines: list[str]) -> None:
    process.send_signal(signal.SIGINT)
    process.wait(timeout=60)
    time.sleep(0.5)
    assert process.returncode == 0 and any("stopped" in line for line in lines), "".join(lines)


def test_spine_up_shared_runs_one_backbone_server_for_all_and_stops_on_ctrl_c(
    trained_shared: BackboneSettings, tmp_path: Path, small_movielens: Path
) -> None:
    artifacts = shutil.copytree(trained_shared.artifacts_dir, tmp_path / "artifacts")  # the fixture's folder stays read-only
    process, lines, ports = bring_up("shared", artifacts, small_movielens)
    try:
        assert any(line.startswith("backbone ") and str(ports["backbone"]) in line for line in lines), "".join(lines)
        use_every_service(ports, lines)
        info = httpx.get(f"http://127.0.0.1:{ports['backbone']}/v1/info", timeout=10).json()
        assert info["artifact_id"] == "shared-smoke"
    finally:
        stop_and_check(process, lines)
    assert all((artifacts / f"{service}.db").is_file() for service in ("support", "recommender", "sentiment"))
    assert (artifacts / "run" / "Procfile.shared").is_file()
    for port in ports.values():
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"http://127.0.0.1:{port}/health", timeout=2)  # nothing left behind


@pytest.fixture(scope="module")
def trained_per_domain(tmp_path_factory: pytest.TempPathFactory, tiny_encoder_path: Path) -> BackboneSettings:
    from shared_backbone.training import train_deployment

    settings = BackboneSettings(base_model=tiny_encoder_path, artifacts_dir=tmp_path_factory.mktemp("per-domain"), threads=2)
    train_deployment("per-domain", "smoke", settings, progress=False)
    return settings


def test_spine_up_per_domain_runs_three_backbone_servers(
    trained_per_domain: BackboneSettings, tmp_path: Path, small_movielens: Path
) -> None:
    artifacts = shutil.copytree(trained_per_domain.artifacts_dir, tmp_path / "artifacts")
    process, lines, ports = bring_up("per-domain", artifacts, small_movielens)
    try:
        served = {}
        for offset, name in enumerate(["backbone-support", "backbone-recommender", "backbone-sentiment"]):
            assert any(line.startswith(f"{name} ") for line in lines), "".join(lines)
            served[name] = httpx.get(f"http://127.0.0.1:{ports['backbone'] + offset}/v1/info", timeout=10).json()["artifact_id"]
        assert served == {f"backbone-{s}": f"per-domain-{s}-smoke" for s in ("support", "recommender", "sentiment")}
        use_every_service(ports, lines)
    finally:
        stop_and_check(process, lines)


def test_spine_up_stops_with_the_reason_when_a_process_cannot_start(tmp_path: Path, trained_shared: BackboneSettings) -> None:
    artifacts = shutil.copytree(trained_shared.artifacts_dir, tmp_path / "artifacts")
    (artifacts / "backbones" / "shared-smoke" / "manifest.json").write_text("{not json", encoding="utf-8")
    env = {**os.environ, "SPINE_ARTIFACTS_DIR": str(artifacts), "HF_HUB_OFFLINE": "1"}
    spine = Path(sys.executable).with_name("spine")
    argv = [str(spine), "up", "--profile", "smoke", "--no-ui", "--no-train-missing", "--support-port", str(free_port())]
    argv += ["--backbone-port", str(free_port())]
    result = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=240)
    assert result.returncode == 1 and "error: a process exited during start-up" in result.stderr, result.stderr + result.stdout
    assert "corrupt manifest" in result.stdout and "Traceback" not in result.stdout + result.stderr


LEFTOVER_SCRIPT = """
import os, signal, sys, threading
from apps import launch
marker = sys.argv[1]
children = [launch.Child(f"sleeper{i}", ["sleep", f"{30 + i}.{marker}"], "http://127.0.0.1:9", "/health") for i in range(2)]
if sys.argv[2] != "none":
    threading.Timer(float(sys.argv[3]), lambda: os.kill(os.getpid(), getattr(signal, sys.argv[2]))).start()
print("exit", launch.run(children, dict(os.environ), print, ready_timeout_s=60), flush=True)
"""


@pytest.mark.parametrize(("sig", "after_s"), [("SIGINT", 0.05), ("SIGINT", 1.5), ("SIGHUP", 1.5)])
def test_stopping_spine_up_at_any_moment_leaves_no_process_behind(sig: str, after_s: float) -> None:
    """Ctrl-C before honcho knows its children's pids, Ctrl-C later, and a closed terminal: nothing survives."""
    marker = str(int(time.time() * 1000) % 10**9)
    argv = [sys.executable, "-c", LEFTOVER_SCRIPT, marker, sig, str(after_s)]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=120, cwd=Path(__file__).parents[1])
    assert result.returncode == 0 and "exit 0" in result.stdout, result.stdout + result.stderr
    time.sleep(0.5)
    survivors = subprocess.run(["pgrep", "-f", f"sleep 3[01].{marker}"], capture_output=True, text=True).stdout.split()
    assert survivors == [], f"left running: {survivors}"
