"""The local launcher behind ``spine up``: each service and the UI as a child process, stopped together.

Services run as separate processes (as they would in containers), each asking the backbone client for
its model, so the launcher needs to know only ports and the deployment. Missing backbone artifacts are
trained first, with the deployment's profile, so a fresh clone comes up with one command.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx

from shared_backbone.client import load_deployment
from shared_backbone.errors import ConfigError
from shared_backbone.settings import PROJECT_ROOT, BackboneSettings
from shared_backbone.tasks import parse_profile

# services that have a deployable app today, with their default ports
SERVICE_APPS = {
    "support": ("services.support.app:app", 8101),
    "recommender": ("services.recommender.app:app", 8102),
    "sentiment": ("services.sentiment.app:app", 8103),
}
UI_PORT = 8501


@dataclass(frozen=True)
class Child:
    name: str
    argv: list[str]
    url: str
    health_path: str | None


def missing_artifacts(deployment: str, profile: str | None, settings: BackboneSettings) -> list[str]:
    config = load_deployment(deployment, settings.deploy_dir)
    wanted = {config.artifact_for(service, profile) for service in SERVICE_APPS}
    return sorted(a for a in wanted if not (settings.backbones_dir / a / "manifest.json").is_file())


def plan(host: str, ports: dict[str, int], ui_port: int | None) -> list[Child]:
    for name, port in [*ports.items(), *([("ui", ui_port)] if ui_port is not None else [])]:
        if not 1 <= port <= 65535:
            raise ConfigError(f"{name} port must be in 1..65535, got {port}")
    python = sys.executable
    children = [
        Child(
            service,
            [python, "-m", "uvicorn", target, "--host", host, "--port", str(ports.get(service, default)), "--log-level", "warning"],
            f"http://{host}:{ports.get(service, default)}",
            "/health",
        )
        for service, (target, default) in SERVICE_APPS.items()
    ]
    if ui_port is not None:
        argv = [python, "-m", "streamlit", "run", str(PROJECT_ROOT / "apps" / "ui.py"), "--server.port", str(ui_port)]
        argv += ["--server.address", host, "--server.headless", "true", "--browser.gatherUsageStats", "false"]
        children.append(Child("ui", argv, f"http://{host}:{ui_port}", None))
    return children


def child_environment(deployment: str, profile: str | None, children: list[Child]) -> dict[str, str]:
    env = {**os.environ, "SPINE_DEPLOYMENT": deployment, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    if profile:
        env["SPINE_PROFILE"] = parse_profile(profile).name
    for child in children:
        if child.health_path:
            env[f"SPINE_UI_{child.name.upper()}_URL"] = child.url
    return env


def wait_ready(child: Child, process: subprocess.Popen[bytes], timeout_s: float) -> bool:
    """Poll the child's health route until it says ok (warm-up loads models, so this takes seconds)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        try:
            if child.health_path is None:
                return True
            health = httpx.get(child.url + child.health_path, timeout=2).json()
            if health.get("status") == "ok":
                return True
            if health.get("status") == "unavailable":
                raise ConfigError(f"{child.name} cannot start: {health.get('error')}")
        except (httpx.HTTPError, ValueError):
            pass
        time.sleep(0.5)
    return False


def run(children: list[Child], env: dict[str, str], say: Callable[[str], None], ready_timeout_s: float = 600) -> int:
    """Start every child, report where each listens, and stop them all when one exits or on Ctrl-C."""
    processes: dict[str, subprocess.Popen[bytes]] = {}

    def stop(signum: int, _frame: object) -> None:  # `kill`, systemd and docker send SIGTERM: stop the children too
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    try:
        for child in children:
            processes[child.name] = subprocess.Popen(child.argv, env=env, cwd=Path.cwd())
            if not wait_ready(child, processes[child.name], ready_timeout_s):
                say(f"{child.name} did not start (exit code {processes[child.name].poll()}); stopping")
                return 1
            say(f"{child.name:<12} {child.url}")
        say("running; Ctrl-C stops everything")
        while True:
            for name, process in processes.items():
                if process.poll() is not None:
                    say(f"{name} exited with code {process.returncode}; stopping the rest")
                    return process.returncode or 1
            time.sleep(1)
    except KeyboardInterrupt:
        say("stopping")
        return 0
    finally:
        for process in processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in processes.values():
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
