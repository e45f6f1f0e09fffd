"""The local launcher behind ``spine up``: the whole topology as processes under honcho.

A deployment file maps each service to a backbone artifact; the launcher starts one backbone server
per distinct artifact (one for ``shared``, three for ``per-domain``), points each service at its
server with ``SPINE_BACKBONE_URL``, and runs them with the UI under honcho's process manager, which
multiplexes their output and stops them all together (Ctrl-C, SIGTERM, or one process exiting). The
same plan is written as a Procfile, so ``honcho start -f`` can run it without ``spine``.
"""

from __future__ import annotations

import json
import os
import queue
import secrets
import shlex
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from shared_backbone.client import DeploymentConfig, load_deployment
from shared_backbone.errors import ConfigError
from shared_backbone.settings import PROJECT_ROOT, BackboneSettings
from shared_backbone.tasks import SERVICES, parse_profile

# services with a deployable app, with their default ports
SERVICE_APPS = {
    "support": ("services.support.app:app", 8101),
    "recommender": ("services.recommender.app:app", 8102),
    "sentiment": ("services.sentiment.app:app", 8103),
}
UI_PORT = 8501
BACKBONE_PORT = 8200
STOP_CODES = (130, 143)  # honcho's return code after SIGINT / SIGTERM: a requested stop, not a failure


@dataclass(frozen=True)
class Child:
    name: str
    argv: list[str]
    url: str
    health_path: str
    env: dict[str, str] = field(default_factory=dict)

    @property
    def command(self) -> str:
        """The shell line honcho runs; ``exec`` so that honcho's signals reach the process itself."""
        assignments = " ".join(f"{k}={shlex.quote(v)}" for k, v in sorted(self.env.items()))
        return f"exec env {assignments} {shlex.join(self.argv)}" if assignments else f"exec {shlex.join(self.argv)}"


def missing_artifacts(deployment: str, profile: str | None, settings: BackboneSettings) -> list[str]:
    config = load_deployment(deployment, settings.deploy_dir)
    wanted = {config.artifact_for(service, profile) for service in SERVICE_APPS}
    return sorted(a for a in wanted if not (settings.backbones_dir / a / "manifest.json").is_file())


def backbone_servers(config: DeploymentConfig, profile: str | None) -> dict[str, tuple[str, ...]]:
    """Process name -> the services it serves: ``backbone`` when one artifact serves all, else one per artifact."""
    by_artifact: dict[str, list[str]] = {}
    for service in SERVICES:
        by_artifact.setdefault(config.artifact_for(service, profile), []).append(service)
    if len(by_artifact) == 1:
        return {"backbone": tuple(SERVICES)}
    return {f"backbone-{'-'.join(services)}": tuple(services) for services in by_artifact.values()}


def _check_ports(ports: dict[str, int]) -> None:
    for name, port in ports.items():
        if not 1 <= port <= 65535:
            raise ConfigError(f"{name} port must be in 1..65535, got {port}")
    taken: dict[int, str] = {}
    for name, port in ports.items():
        if port in taken:
            raise ConfigError(f"{name} and {taken[port]} both want port {port}")
        taken[port] = name


def plan(
    config: DeploymentConfig,
    profile: str | None,
    host: str,
    ports: dict[str, int],
    ui_port: int | None,
    *,
    backbone_port: int = BACKBONE_PORT,
    in_process: bool = False,
) -> list[Child]:
    """Every process of the topology, backbone servers first, with the environment each one needs."""
    python = sys.executable
    service_ports = {service: ports.get(service, default) for service, (_, default) in SERVICE_APPS.items()}
    servers = {} if in_process else backbone_servers(config, profile)
    server_ports = {name: backbone_port + i for i, name in enumerate(servers)}
    _check_ports({**service_ports, **server_ports, **({"ui": ui_port} if ui_port is not None else {})})
    children: list[Child] = []
    url_of_service: dict[str, str] = {}
    for name, served in servers.items():
        artifact = config.artifact_for(served[0], profile)
        url = f"http://{host}:{server_ports[name]}"
        argv = [python, "-m", "apps.cli", "backbones", "serve", artifact, "--host", host, "--port", str(server_ports[name])]
        argv += ["--backend", config.backend]
        children.append(Child(name, argv, url, "/health"))
        url_of_service.update(dict.fromkeys(served, url))
    for service, (target, _) in SERVICE_APPS.items():
        port = service_ports[service]
        argv = [python, "-m", "uvicorn", target, "--host", host, "--port", str(port), "--log-level", "warning"]
        env = {"SPINE_BACKBONE_URL": url_of_service[service]} if service in url_of_service else {}
        children.append(Child(service, argv, f"http://{host}:{port}", "/health", env))
    if ui_port is not None:
        argv = [python, "-m", "streamlit", "run", str(PROJECT_ROOT / "apps" / "ui.py"), "--server.port", str(ui_port)]
        argv += ["--server.address", host, "--server.headless", "true", "--browser.gatherUsageStats", "false"]
        children.append(Child("ui", argv, f"http://{host}:{ui_port}", "/_stcore/health"))
    return children


def child_environment(deployment: str, profile: str | None, children: list[Child], base: dict[str, str]) -> dict[str, str]:
    """What every process shares: the deployment, offline model loading, and where the others listen (for the UI)."""
    env = {k: v for k, v in base.items() if k != "SPINE_BACKBONE_URL"}  # each service gets its own, or none (in-process)
    env.update({"SPINE_DEPLOYMENT": deployment, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "PYTHONUNBUFFERED": "1"})
    # glibc gives each thread that allocates its own heap arena (up to 8 per core), and freed memory stays in
    # them: a threaded server's RSS then creeps up for its first thousands of requests. Two arenas bound it
    # (measured on the recommender: +53 MB over 6,000 requests with the default, +20 MB and flat with 2).
    env.setdefault("MALLOC_ARENA_MAX", "2")
    if profile:
        env["SPINE_PROFILE"] = parse_profile(profile).name
    for child in children:
        if child.name in SERVICE_APPS:
            env[f"SPINE_UI_{child.name.upper()}_URL"] = child.url
    env["SPINE_UI_BACKBONE_URLS"] = json.dumps({c.name: c.url for c in children if c.name.startswith("backbone")})
    # the UI acknowledges alerts and adds subscriptions through admin routes: without a key of the user's own,
    # the processes of this run share a random one (passed in the environment, never written to the Procfile)
    if not env.get("SPINE_ADMIN_API_KEY"):
        env["SPINE_ADMIN_API_KEY"] = secrets.token_urlsafe(24)
    return env


def write_procfile(children: list[Child], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [f"{child.name}: {child.command.removeprefix('exec ')}" for child in children]
    path.write_text("# written by `spine up`; run with the same environment: honcho start -f " + str(path) + "\n" + "\n".join(lines) + "\n")
    return path


def check_health(child: Child) -> str | None:
    """``ok`` when ready, ``starting`` while loading, or ``unavailable: reason``; None when not answering yet."""
    try:
        response = httpx.get(child.url + child.health_path, timeout=2)
    except httpx.HTTPError:
        return None
    try:
        body = response.json()
    except ValueError:
        return "ok" if response.status_code == 200 else None  # Streamlit's health route answers plain text
    status = body.get("status") if isinstance(body, dict) else None
    if status == "unavailable":
        return f"unavailable: {body.get('error')}"
    return "ok" if response.status_code == 200 and status in ("ok", None) else "starting"


@dataclass
class Watch:
    """What the health watcher learned, read by ``run`` after honcho's loop ends."""

    ready: bool = False
    failure: str | None = None


def watch(children: list[Child], say: Callable[[str], None], stop: Callable[[], None], timeout_s: float, result: Watch) -> None:
    """Wait until every process is healthy, then print where each listens; stop everything if one cannot start."""
    deadline = time.monotonic() + timeout_s
    pending = list(children)
    while pending and time.monotonic() < deadline:
        for child in list(pending):
            state = check_health(child)
            if state == "ok":
                pending.remove(child)
            elif state and state.startswith("unavailable"):
                result.failure = f"{child.name} cannot start: {state.removeprefix('unavailable: ')}"
                stop()
                return
        if pending:
            time.sleep(0.5)
    if pending:
        result.failure = f"not healthy after {timeout_s:.0f} s: {', '.join(c.name for c in pending)}"
        stop()
        return
    result.ready = True
    say("\n".join(f"{child.name:<22} {child.url}" for child in children))
    say("running; Ctrl-C stops everything")


def _stop_leftovers(manager: Any, grace_s: float = 10.0) -> None:
    """Whatever honcho did not stop (Ctrl-C mid-start, a crash in its loop): SIGTERM each process group, then SIGKILL."""
    pids = {name: p["pid"] for name, p in manager._processes.items() if p.get("pid") and "returncode" not in p}
    while True:  # 'start' events that arrived after the loop ended still name processes to stop
        try:
            message = manager.events.get(timeout=0.5)
        except queue.Empty:
            break
        if message.type == "start":
            pids[message.name] = message.data["pid"]
        elif message.type == "stop":
            pids.pop(message.name, None)
    for sig, wait_s in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 0.0)):
        alive = []
        for pid in pids.values():
            try:
                os.killpg(pid, sig)  # honcho starts each child in its own session: its group id is its pid
                alive.append(pid)
            except ProcessLookupError:
                continue
        deadline = time.monotonic() + wait_s
        while alive and time.monotonic() < deadline:
            alive = [pid for pid in alive if _group_alive(pid)]
            time.sleep(0.1)
        if not alive:
            return


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def run(children: list[Child], env: dict[str, str], say: Callable[[str], None], ready_timeout_s: float = 600) -> int:
    """Start the topology under honcho; 0 after a requested stop, 1 (with the reason said) when it failed."""
    from honcho.manager import Manager

    manager = Manager()
    for child in children:
        manager.add_process(child.name, child.command, env={**env, **child.env})
    result = Watch()
    watcher = threading.Thread(target=watch, args=(children, say, manager.terminate, ready_timeout_s, result), daemon=True)
    hung_up = threading.Event()

    def on_hangup(*_: object) -> None:  # a closed terminal stops the topology too
        hung_up.set()
        manager.terminate()

    signal.signal(signal.SIGHUP, on_hangup)
    watcher.start()
    try:
        manager.loop()  # returns once every process has stopped
    except KeyError:  # honcho cannot signal a child whose pid it has not heard yet (Ctrl-C in the first moments)
        manager.returncode = STOP_CODES[0]
    finally:
        _stop_leftovers(manager)
    if result.failure:
        raise ConfigError(result.failure)
    if manager.returncode in STOP_CODES or hung_up.is_set():
        say("stopped")
        return 0
    code = manager.returncode if manager.returncode and manager.returncode > 0 else 1
    if not result.ready:
        raise ConfigError(f"a process exited during start-up (exit code {manager.returncode}); its output is above")
    say(f"a process exited (exit code {manager.returncode}); stopped the rest")
    return code
