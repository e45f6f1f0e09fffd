"""Benchmark: latency of the support bot's ``POST /chat`` under a steady open-loop load.

Starts the support service as its own uvicorn process (in-process backbone, embedding cache off so
every question is really encoded), then sends distinct Banking77 test questions and CLINC150
out-of-scope queries at a fixed rate. Open loop: a slow reply does not delay the next request, so
queueing shows up in the tail. Prints p50/p95/p99 against the 60 ms p95 goal and writes JSON.

    python bench/support_latency.py --rate 10 --seconds 60 --deployment shared --profile full
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from shared_backbone.data import load_banking77, load_clinc_out_of_scope

GOAL_P95_MS = 60.0


def questions(count: int, seed: int) -> list[str]:
    """Distinct real questions, about one in ten out of scope, in a fixed shuffled order."""
    in_scope = [e.text for e in load_banking77().test]
    out_of_scope = list(load_clinc_out_of_scope().test)
    rng = random.Random(seed)
    rng.shuffle(in_scope)
    rng.shuffle(out_of_scope)
    mixed = in_scope[: count - count // 10] + out_of_scope[: count // 10]
    rng.shuffle(mixed)
    if len(mixed) < count:
        raise SystemExit(f"only {len(mixed)} distinct questions available; lower --rate or --seconds")
    return mixed


async def load(url: str, texts: list[str], rate: float) -> tuple[list[float], list[str]]:
    latencies: list[float] = []
    failures: list[str] = []

    async def one(client: httpx.AsyncClient, text: str) -> None:
        started = time.perf_counter()
        try:
            response = await client.post("/chat", json={"message": text})
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
        for n, text in enumerate(texts):
            delay = start + n / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(client, text)))
        await asyncio.gather(*tasks)
    return latencies, failures


def start_service(port: int, deployment: str, profile: str | None) -> subprocess.Popen[bytes]:
    env = {**os.environ, "SPINE_DEPLOYMENT": deployment, "SPINE_EMBEDDING_CACHE": "false", "HF_HUB_OFFLINE": "1"}
    env["SPINE_SUPPORT_DATABASE_URL"] = f"sqlite:///{Path('artifacts') / 'bench-support.db'}"
    if profile:
        env["SPINE_PROFILE"] = profile
    argv = [sys.executable, "-m", "uvicorn", "services.support.app:app", "--port", str(port), "--log-level", "warning"]
    process = subprocess.Popen(argv, env=env)
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the support service exited with code {process.returncode}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).json().get("status") == "ok":
                return process
        except (httpx.HTTPError, ValueError):
            pass
        time.sleep(0.5)
    process.terminate()
    raise SystemExit("the support service did not become healthy in 10 minutes")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=10.0, help="requests per second")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--warm-up", type=int, default=20, help="requests sent first and not counted")
    parser.add_argument("--deployment", default="shared")
    parser.add_argument("--profile", default=None, help="default: the deployment file's")
    parser.add_argument("--port", type=int, default=8191)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    if args.rate <= 0 or args.seconds <= 0:
        raise SystemExit("--rate and --seconds must be positive")

    count = int(args.rate * args.seconds)
    texts = questions(count + args.warm_up, args.seed)
    process = start_service(args.port, args.deployment, args.profile)
    url = f"http://127.0.0.1:{args.port}"
    try:
        health = httpx.get(f"{url}/health", timeout=5).json()
        asyncio.run(load(url, texts[: args.warm_up], args.rate))
        started = time.perf_counter()
        latencies, failures = asyncio.run(load(url, texts[args.warm_up :], args.rate))
        elapsed = time.perf_counter() - started
    finally:
        process.terminate()
        process.wait(timeout=30)

    ms = np.array(latencies)
    p50, p95, p99 = (float(np.percentile(ms, q)) for q in (50, 95, 99)) if len(ms) else (float("nan"),) * 3
    result = {
        "benchmark": "support POST /chat latency, open loop",
        "command": "python " + " ".join(sys.argv),
        "finished": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
        "backbone": health.get("backbone"),
        "deployment": args.deployment,
        "offered_rate_per_s": args.rate,
        "achieved_rate_per_s": round(len(texts[args.warm_up :]) / elapsed, 2),
        "requests": len(texts) - args.warm_up,
        "failures": len(failures),
        "failure_examples": failures[:5],
        "latency_ms": {
            "p50": round(p50, 1),
            "p95": round(p95, 1),
            "p99": round(p99, 1),
            "max": round(float(ms.max()), 1) if len(ms) else None,
        },
        "goal_p95_ms": GOAL_P95_MS,
        "p95_over_goal": round(p95 / GOAL_P95_MS, 3),
        "met": bool(p95 < GOAL_P95_MS and not failures),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"support_latency-{health.get('backbone')}.json"
    path.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"{result['requests']} requests at {args.rate}/s on {result['backbone']}: failures {len(failures)}")
    print(f"p50 {p50:.1f} ms | p95 {p95:.1f} ms | p99 {p99:.1f} ms | goal p95 < {GOAL_P95_MS:.0f} ms -> p95/goal {p95 / GOAL_P95_MS:.2f}x")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
