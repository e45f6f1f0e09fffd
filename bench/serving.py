"""Benchmark: the whole topology under one mixed load, for each deployment shape in turn.

For each deployment (``shared``: one backbone server; ``per-domain``: three), ``spine up`` starts
every process on loopback with bench databases and the embedding cache off, then:

1. latency: an open-loop mixed load (support chat, recommendations, sentiment pushes in a fixed
   ratio) at ``--rate`` requests/s for ``--seconds``; p50/p95 per service and errors;
2. throughput: ``--concurrency`` closed-loop workers on the same mix for ``--saturate-seconds``;
3. cost: the resident memory of every process, read from its own ``/metrics``.

Writes JSON and a Markdown table and prints shared / per-domain ratios against the targets.

    python bench/serving.py --deployments shared,per-domain --profile quick --rate 20 --seconds 60
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx
import numpy as np

from apps.launch import SERVICE_APPS, backbone_servers
from apps.ops import summarise_metrics
from bench.http_load import machine
from shared_backbone.client import load_deployment
from shared_backbone.data import load_banking77, load_financial_sentiment, load_movielens
from shared_backbone.settings import BackboneSettings

MIX = {"support": 5, "recommender": 3, "sentiment": 2}  # of every 10 requests
TARGETS = {"rss_shared_over_per_domain": 0.45, "p95_chat_ms": 60.0}
PORTS = {"support": 8301, "recommender": 8302, "sentiment": 8303}
BACKBONE_PORT = 8310
# the sentiment pushes are an admin route: the topology and the load share one key (the user's, or a random one)
ADMIN_HEADERS = {"X-Admin-Key": os.environ.get("SPINE_ADMIN_API_KEY") or secrets.token_urlsafe(16)}


@dataclass(frozen=True)
class Request:
    service: str
    method: str
    path: str
    body: dict[str, Any] | None = None


def workload(count: int, seed: int) -> list[Request]:
    """Real texts, never repeated (so every one is encoded), in the fixed MIX ratio and a seeded order."""
    rng = random.Random(seed)
    questions = [e.text for e in load_banking77().test]
    news = [e.text for e in load_financial_sentiment().test]
    users = sorted({r.user_id for r in load_movielens().train})
    rng.shuffle(questions)
    rng.shuffle(news)
    kinds = [service for service, share in MIX.items() for _ in range(share)]
    requests: list[Request] = []
    for n in range(count):
        kind = kinds[rng.randrange(len(kinds))]
        if kind == "support":
            requests.append(Request("support", "POST", "/chat", {"message": questions[n % len(questions)]}))
        elif kind == "recommender":
            requests.append(Request("recommender", "GET", f"/users/{rng.choice(users)}/recommendations?k=10"))
        else:
            requests.append(Request("sentiment", "POST", "/documents", {"documents": [{"text": news[n % len(news)]}]}))
    return requests


async def _send(http: httpx.AsyncClient, request: Request, results: dict[str, list[float]], errors: list[str]) -> None:
    started = time.perf_counter()
    try:
        response = await http.request(request.method, f"http://127.0.0.1:{PORTS[request.service]}{request.path}", json=request.body)
    except httpx.HTTPError as exc:
        errors.append(f"{request.service}: {type(exc).__name__}")
        return
    if response.status_code != 200:
        errors.append(f"{request.service}: {response.status_code} {response.text[:120]}")
        return
    results[request.service].append(1000 * (time.perf_counter() - started))


async def open_loop(requests: list[Request], rate: float) -> tuple[dict[str, list[float]], list[str], float]:
    results: dict[str, list[float]] = defaultdict(list)
    errors: list[str] = []
    async with httpx.AsyncClient(timeout=60, headers=ADMIN_HEADERS) as http:
        start = time.perf_counter()
        tasks = []
        for n, request in enumerate(requests):
            if (delay := start + n / rate - time.perf_counter()) > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(_send(http, request, results, errors)))
        await asyncio.gather(*tasks)
    return results, errors, len(requests) / (time.perf_counter() - start)


async def closed_loop(requests: list[Request], workers: int, seconds: float) -> tuple[int, list[str], float]:
    results: dict[str, list[float]] = defaultdict(list)
    errors: list[str] = []
    queue = iter(requests)
    deadline = time.perf_counter() + seconds

    async def worker(http: httpx.AsyncClient) -> None:
        while time.perf_counter() < deadline and (request := next(queue, None)) is not None:
            await _send(http, request, results, errors)

    async with httpx.AsyncClient(timeout=60, headers=ADMIN_HEADERS) as http:
        start = time.perf_counter()
        await asyncio.gather(*(worker(http) for _ in range(workers)))
        elapsed = time.perf_counter() - start
    return sum(len(v) for v in results.values()), errors, elapsed


def deployment_file(deployment: str, backend: str, folder: Path) -> str:
    """The deployment as ``spine up`` reads it, with the backbone servers' backend overridden (``auto`` keeps the file's)."""
    if backend == "auto":
        return deployment
    config = load_deployment(deployment, BackboneSettings().deploy_dir)
    lines = [
        f'name = "{config.name}"',
        f'shape = "{config.shape}"',
        f'profile = "{config.profile}"',
        f'backend = "{backend}"',
        "[services]",
    ]
    lines += [f'{service} = "{artifact}"' for service, artifact in config.services.items()]
    path = folder / f"{deployment}-{backend}.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return str(path)


def start_topology(deployment: str, profile: str, folder: Path, backend: str = "auto") -> tuple[subprocess.Popen[bytes], dict[str, str]]:
    """``spine up`` on bench ports and bench databases; returns once every process is healthy."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "sentiment.db").unlink(missing_ok=True)  # pushes must be new documents, scored for real
    env = {**os.environ, "SPINE_EMBEDDING_CACHE": "false", "HF_HUB_OFFLINE": "1", "SPINE_ADMIN_API_KEY": ADMIN_HEADERS["X-Admin-Key"]}
    env["SPINE_SENTIMENT_DEMO_REPLAY"] = "false"  # only the offered load: the demo's scheduled replay would compete with it
    for service in SERVICE_APPS:
        env[f"SPINE_{service.upper()}_DATABASE_URL"] = f"sqlite:///{folder / f'{service}.db'}"
    argv = [
        str(Path(sys.executable).with_name("spine")),
        "up",
        "--deployment",
        deployment_file(deployment, backend, folder),
        "--profile",
        profile,
        "--no-ui",
        "--no-train-missing",
    ]
    argv += [f"--{s}-port={p}" for s, p in PORTS.items()] + [f"--backbone-port={BACKBONE_PORT}"]
    process = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=False)
    config = load_deployment(deployment, BackboneSettings().deploy_dir)
    processes = {name: f"http://127.0.0.1:{BACKBONE_PORT + i}" for i, name in enumerate(backbone_servers(config, profile))}
    processes.update({s: f"http://127.0.0.1:{p}" for s, p in PORTS.items()})
    deadline = time.monotonic() + 900
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"spine up --deployment {deployment} exited with code {process.returncode}")
        try:
            if all(httpx.get(f"{url}/health", timeout=2).json().get("status") == "ok" for url in processes.values()):
                return process, processes
        except (httpx.HTTPError, ValueError):
            pass
        time.sleep(1)
    process.send_signal(signal.SIGINT)
    raise SystemExit(f"{deployment} did not become healthy in 900 s")


def percentile(values: list[float], q: float) -> float | None:
    return round(float(np.percentile(values, q)), 1) if values else None


def measure(deployment: str, args: argparse.Namespace) -> dict[str, Any]:
    process, processes = start_topology(deployment, args.profile, Path("artifacts") / "bench-serving" / deployment, args.backend)
    try:
        count = int(args.rate * args.seconds)
        requests = workload(args.warm_up + count + 20_000, args.seed)
        asyncio.run(open_loop(requests[: args.warm_up], args.rate))
        latencies, errors, achieved = asyncio.run(open_loop(requests[args.warm_up : args.warm_up + count], args.rate))
        done, saturate_errors, elapsed = asyncio.run(closed_loop(requests[args.warm_up + count :], args.concurrency, args.saturate_seconds))
        backends = {n: httpx.get(f"{u}/v1/info", timeout=5).json().get("backend") for n, u in processes.items() if n.startswith("backbone")}
        memory = {}
        for name, url in processes.items():
            rss, _, _, _ = summarise_metrics(httpx.get(f"{url}/metrics", timeout=10).text)
            memory[name] = round(rss or 0.0, 1)
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=120)
    return {
        "deployment": deployment,
        "backends": backends,
        "backbone_servers": sum(1 for name in processes if name.startswith("backbone")),
        "offered_rate_per_s": args.rate,
        "achieved_rate_per_s": round(achieved, 2),
        "latency_ms": {
            service: {"n": len(values), "p50": percentile(values, 50), "p95": percentile(values, 95)}
            for service, values in sorted(latencies.items())
        },
        "errors": len(errors) + len(saturate_errors),
        "error_examples": (errors + saturate_errors)[:5],
        "throughput_per_s": round(done / elapsed, 2),
        "rss_mb": memory,
        "total_rss_mb": round(sum(memory.values()), 1),
    }


def markdown(results: list[dict[str, Any]], ratios: dict[str, Any], command: str) -> str:
    lines = [
        f"# Serving benchmark ({datetime.now(UTC).date()})",
        "",
        f"`{command}`",
        "",
        "| deployment | backbone servers | total RSS MB | throughput req/s | chat p50 / p95 ms | recs p50 / p95 ms | news p50 / p95 ms | errors |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        cells = [
            f"{r['latency_ms'].get(s, {}).get('p50')} / {r['latency_ms'].get(s, {}).get('p95')}"
            for s in ("support", "recommender", "sentiment")
        ]
        lines.append(
            f"| {r['deployment']} | {r['backbone_servers']} | {r['total_rss_mb']:,.0f} | {r['throughput_per_s']} | {' | '.join(cells)} | {r['errors']} |"
        )
    lines += ["", *(f"- {key}: {value}" for key, value in ratios.items())]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deployments", default="shared,per-domain")
    parser.add_argument("--profile", default="quick")
    parser.add_argument("--rate", type=float, default=20.0, help="mixed requests per second in the latency phase")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--warm-up", type=int, default=40)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--saturate-seconds", type=float, default=30.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--backend", default="auto", choices=["auto", "torch", "onnx", "onnx-int8"], help="the backbone servers' backend")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    if args.rate <= 0 or args.seconds <= 0 or args.concurrency < 1 or args.saturate_seconds <= 0:
        raise SystemExit("--rate, --seconds and --saturate-seconds must be positive, --concurrency >= 1")
    if not shutil.which(str(Path(sys.executable).with_name("spine"))):
        raise SystemExit("the `spine` command is not installed beside this Python; run `make install`")
    results = [measure(d.strip(), args) for d in args.deployments.split(",") if d.strip()]
    by_name = {r["deployment"]: r for r in results}
    ratios: dict[str, Any] = {}
    if {"shared", "per-domain"} <= set(by_name):
        shared, per_domain = by_name["shared"], by_name["per-domain"]
        ratios["rss shared / per-domain"] = round(shared["total_rss_mb"] / per_domain["total_rss_mb"], 3)
        ratios["throughput shared / per-domain"] = round(shared["throughput_per_s"] / per_domain["throughput_per_s"], 3)
        ratios["per-domain extra RSS MB"] = round(per_domain["total_rss_mb"] - shared["total_rss_mb"], 1)
    for r in results:
        ratios[f"{r['deployment']} chat p95 / {TARGETS['p95_chat_ms']:.0f} ms"] = round(
            (r["latency_ms"].get("support", {}).get("p95") or 0) / 60.0, 3
        )
    command = "python " + " ".join(sys.argv)
    out = {"benchmark": "whole-topology serving", "command": command, "machine": machine(), "mix": MIX, "targets": TARGETS}
    out.update(
        {
            "profile": args.profile,
            "backend": args.backend,
            "results": results,
            "ratios": ratios,
            "finished": datetime.now(UTC).isoformat(timespec="seconds"),
        }
    )
    args.out.mkdir(parents=True, exist_ok=True)
    stem = args.out / (f"serving-{args.profile}" if args.backend == "auto" else f"serving-{args.profile}-{args.backend}")
    stem.with_suffix(".json").write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")
    stem.with_suffix(".md").write_text(markdown(results, ratios, command), encoding="utf-8")
    print(markdown(results, ratios, command))
    print(f"wrote {stem}.json and {stem}.md")


if __name__ == "__main__":
    main()
