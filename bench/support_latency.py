"""Benchmark: latency of the support bot's ``POST /chat`` under a steady open-loop load.

Starts the support service as its own uvicorn process (in-process backbone, embedding cache off so
every question is really encoded), then sends distinct Banking77 test questions and CLINC150
out-of-scope queries at a fixed rate. Open loop: a slow reply does not delay the next request, so
queueing shows up in the tail. Prints p50/p95/p99 against the 60 ms p95 goal and writes JSON.

    python bench/support_latency.py --rate 10 --seconds 60 --deployment shared --profile full
"""

from __future__ import annotations

import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.http_load import Call, arguments, report, run_against
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


def main() -> None:
    args = arguments(__doc__.splitlines()[0], port=8191).parse_args()
    if args.rate <= 0 or args.seconds <= 0:
        raise SystemExit("--rate and --seconds must be positive")
    texts = questions(int(args.rate * args.seconds) + args.warm_up, args.seed)
    result = run_against("services.support.app:app", "support", args, [Call("POST", "/chat", json={"message": text}) for text in texts])
    result.pop("health")
    result = {"benchmark": "support POST /chat latency, open loop", **result}
    report(result, GOAL_P95_MS, args.out / f"support_latency-{result['backbone']}.json")


if __name__ == "__main__":
    main()
