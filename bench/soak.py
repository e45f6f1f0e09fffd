"""Soak: the whole topology under a steady mixed load for minutes, sampling every process's memory.

A leak shows as resident memory that keeps climbing after warm-up. ``spine up`` starts the topology
(as ``bench/serving.py`` does: bench databases, embedding cache and demo replay off); an open-loop
mix of chat, recommendations and news pushes runs for ``--minutes``; every ``--every`` seconds each
process's RSS is read from its own ``/metrics``. Reported per process: RSS at the first sample after
warm-up, at the end, and the least-squares slope in MB per minute over the run. Writes JSON + Markdown.

    python bench/soak.py --deployment shared --profile quick --minutes 10 --rate 10
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx
import numpy as np

from apps.ops import summarise_metrics
from bench.http_load import machine
from bench.serving import open_loop, start_topology, workload

FLAT_MB_PER_MIN = 1.0  # what "flat" means here: under 1 MB a minute of sustained growth per process


def sample(processes: dict[str, str]) -> dict[str, float]:
    return {name: summarise_metrics(httpx.get(f"{url}/metrics", timeout=10).text)[0] or 0.0 for name, url in processes.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deployment", default="shared")
    parser.add_argument("--profile", default="quick")
    parser.add_argument("--backend", default="auto", choices=["auto", "torch", "onnx", "onnx-int8"])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--rate", type=float, default=10.0, help="mixed requests per second")
    parser.add_argument("--every", type=float, default=20.0, help="seconds between memory samples")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    if args.minutes <= 0 or args.rate <= 0 or args.every <= 0:
        raise SystemExit("--minutes, --rate and --every must be positive")
    process, processes = start_topology(args.deployment, args.profile, Path("artifacts") / "bench-soak" / args.deployment, args.backend)
    samples: list[tuple[float, dict[str, float]]] = []
    try:
        requests = workload(int(args.rate * args.minutes * 60) + 100, args.seed)
        asyncio.run(open_loop(requests[:100], args.rate))  # warm-up, not sampled
        done = threading.Event()
        outcome: dict[str, Any] = {}

        def drive() -> None:
            results, errors, achieved = asyncio.run(open_loop(requests[100:], args.rate))
            outcome.update(requests=sum(len(v) for v in results.values()), errors=len(errors), examples=errors[:5], achieved=achieved)
            done.set()

        threading.Thread(target=drive, daemon=True).start()
        started = time.monotonic()
        while not done.is_set():
            samples.append((time.monotonic() - started, sample(processes)))
            done.wait(args.every)
        samples.append((time.monotonic() - started, sample(processes)))
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=120)
    minutes = np.array([t for t, _ in samples]) / 60
    rows = {}
    for name in processes:
        rss = np.array([s[name] for _, s in samples])
        slope = float(np.polyfit(minutes, rss, 1)[0]) if len(rss) >= 3 else float("nan")
        rows[name] = {"first_mb": round(float(rss[0]), 1), "last_mb": round(float(rss[-1]), 1), "slope_mb_per_min": round(slope, 2)}
    flat = all(abs(r["slope_mb_per_min"]) < FLAT_MB_PER_MIN for r in rows.values())
    command = "python " + " ".join(sys.argv)
    result = {"benchmark": "soak", "command": command, "machine": machine(), "deployment": args.deployment, "profile": args.profile}
    result.update({"minutes": args.minutes, "rate_per_s": args.rate, "samples": len(samples), "processes": rows, "flat": flat, **outcome})
    result["finished"] = datetime.now(UTC).isoformat(timespec="seconds")
    lines = [f"# Soak, {args.deployment}, {args.minutes:g} min at {args.rate:g} req/s ({datetime.now(UTC).date()})", "", f"`{command}`", ""]
    lines += ["| process | RSS first MB | RSS last MB | slope MB/min |", "|---|---|---|---|"]
    lines += [f"| {n} | {r['first_mb']} | {r['last_mb']} | {r['slope_mb_per_min']} |" for n, r in rows.items()]
    lines += [
        "",
        f"- requests {outcome.get('requests')}, errors {outcome.get('errors')}; flat (|slope| < {FLAT_MB_PER_MIN} MB/min each): {flat}",
    ]
    args.out.mkdir(parents=True, exist_ok=True)
    stem = args.out / f"soak-{args.deployment}-{args.profile}"
    stem.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    stem.with_suffix(".md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))
    print(f"wrote {stem}.json and {stem}.md")


if __name__ == "__main__":
    main()
