"""What the service latency benchmarks share: start a service process, drive it open-loop, summarise.

Open loop: requests leave on a fixed schedule whether or not earlier ones have returned, so a slow
reply cannot hide queueing (the coordinated-omission trap of closed-loop load generators).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import numpy as np


@dataclass(frozen=True)
class Call:
    method: str
    path: str
    json: dict[str, Any] | None = None
    params: dict[str, Any] = field(default_factory=dict)


async def _drive(url: str, calls: list[Call], rate: float) -> tuple[list[float], list[str]]:
    latencies: list[float] = []
    failures: list[str] = []

    async def one(client: httpx.AsyncClient, call: Call) -> None:
        started = time.perf_counter()
        try:
            response = await client.request(call.method, call.path, json=call.json, params=call.params)
            if response.status_code != 200:
                failures.append(f"{response.status_code}: {response.text[:200]}")
                return
        except httpx.HTTPError as exc:
            failures.append(type(exc).__name__)
            return
        latencies.append(1000 * (time.perf_counter() - started))

    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        start = time.perf_counter()
        tasks = []
        for n, call in enumerate(calls):
            delay = start + n / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(client, call)))
        await asyncio.gather(*tasks)
    return latencies, failures


def open_loop(url: str, calls: list[Call], rate: float) -> tuple[list[float], list[str], float]:
    """Latencies (ms) of the successful calls, failure messages, and the achieved rate."""
    started = time.perf_counter()
    latencies, failures = asyncio.run(_drive(url, calls, rate))
    return latencies, failures, len(calls) / (time.perf_counter() - started)


def start_service(target: str, port: int, env: dict[str, str], timeout_s: float = 600) -> subprocess.Popen[bytes]:
    """``uvicorn target`` on ``port``, returned once its health route says ok."""
    argv = [sys.executable, "-m", "uvicorn", target, "--port", str(port), "--log-level", "warning"]
    process = subprocess.Popen(argv, env={**os.environ, "HF_HUB_OFFLINE": "1", **env})
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"{target} exited with code {process.returncode}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).json().get("status") == "ok":
                return process
        except (httpx.HTTPError, ValueError):
            pass
        time.sleep(0.5)
    process.terminate()
    raise SystemExit(f"{target} did not become healthy in {timeout_s:.0f} s")


def summary(latencies: list[float], failures: list[str], goal_p95_ms: float) -> dict[str, Any]:
    ms = np.array(latencies)
    p50, p95, p99 = (float(np.percentile(ms, q)) for q in (50, 95, 99)) if len(ms) else (float("nan"),) * 3
    return {
        "failures": len(failures),
        "failure_examples": failures[:5],
        "latency_ms": {
            "p50": round(p50, 1),
            "p95": round(p95, 1),
            "p99": round(p99, 1),
            "max": round(float(ms.max()), 1) if len(ms) else None,
        },
        "goal_p95_ms": goal_p95_ms,
        "p95_over_goal": round(p95 / goal_p95_ms, 3),
        "met": bool(p95 < goal_p95_ms and not failures),
    }


def machine() -> dict[str, Any]:
    return {"cpu_count": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()}


def arguments(description: str, port: int) -> argparse.ArgumentParser:
    """The options every latency benchmark takes; a script adds its own."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--rate", type=float, default=10.0, help="requests per second")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--warm-up", type=int, default=20, help="requests sent first and not counted")
    parser.add_argument("--deployment", default="shared")
    parser.add_argument("--profile", default=None, help="default: the deployment file's")
    parser.add_argument("--port", type=int, default=port)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    return parser


def run_against(target: str, service: str, args: argparse.Namespace, calls: list[Call]) -> dict[str, Any]:
    """Start ``target`` on its own bench database (embedding cache off), warm it up, measure, stop it."""
    env = {"SPINE_DEPLOYMENT": args.deployment, "SPINE_EMBEDDING_CACHE": "false"}
    env[f"SPINE_{service.upper()}_DATABASE_URL"] = f"sqlite:///{Path('artifacts') / f'bench-{service}.db'}"
    if args.profile:
        env["SPINE_PROFILE"] = args.profile
    process = start_service(target, args.port, env)
    url = f"http://127.0.0.1:{args.port}"
    try:
        health = httpx.get(f"{url}/health", timeout=5).json()
        open_loop(url, calls[: args.warm_up], args.rate)
        latencies, failures, achieved = open_loop(url, calls[args.warm_up :], args.rate)
    finally:
        process.terminate()
        process.wait(timeout=30)
    return {
        "command": "python " + " ".join(sys.argv),
        "finished": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "backbone": health.get("backbone"),
        "deployment": args.deployment,
        "health": health,
        "offered_rate_per_s": args.rate,
        "achieved_rate_per_s": round(achieved, 2),
        "requests": len(calls) - args.warm_up,
        "_latencies": latencies,
        "_failures": failures,
    }


def report(result: dict[str, Any], goal_p95_ms: float, path: Path) -> None:
    """Add the latency summary, write the JSON and print the side-by-side line against the goal."""
    latencies, failures = result.pop("_latencies"), result.pop("_failures")
    result.update(summary(latencies, failures, goal_p95_ms))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    p50, p95, p99 = (result["latency_ms"][q] for q in ("p50", "p95", "p99"))
    print(f"{result['requests']} requests at {result['offered_rate_per_s']}/s on {result['backbone']}: failures {len(failures)}")
    print(f"p50 {p50:.1f} ms | p95 {p95:.1f} ms | p99 {p99:.1f} ms | goal p95 < {goal_p95_ms:.0f} ms -> p95/goal {p95 / goal_p95_ms:.2f}x")
    print(f"wrote {path}")
