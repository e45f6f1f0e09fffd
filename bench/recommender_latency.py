"""Benchmark: latency of ``GET /users/{id}/recommendations`` under a steady open-loop load.

Starts the recommender as its own uvicorn process on a bench database seeded from MovieLens
(9,742 films, 610 viewers), then asks for each viewer's top 10 in a fixed shuffled order at a fixed
rate (every request is computed: the service keeps no result cache). Optionally mixes in free-text
wishes, which also encode text. Prints p50/p95/p99 against the 50 ms p95 goal and writes JSON.

    python bench/recommender_latency.py --rate 10 --seconds 60 --deployment shared --profile full
"""

from __future__ import annotations

import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.http_load import Call, arguments, report, run_against
from shared_backbone.data import DEFAULT_DATA_DIR, load_movies

GOAL_P95_MS = 50.0
WISHES = ["a funny space adventure", "a slow romantic drama in Paris", "scary haunted house", "heist film with a twist"]


def calls(count: int, wish_share: float, seed: int) -> list[Call]:
    """Viewers' lists (every MovieLens viewer, cycled in a shuffled order) and a share of wishes."""
    rng = random.Random(seed)
    users = list(range(1, 611))
    rng.shuffle(users)
    tags = sorted({t for m in load_movies(DEFAULT_DATA_DIR / "movielens_latest_small").values() for t in m.tags})
    out = []
    for n in range(count):
        if rng.random() < wish_share:  # distinct wishes, so the embedding of each is really computed
            out.append(Call("POST", "/recommendations/query", json={"text": f"{rng.choice(WISHES)} {rng.choice(tags)}", "k": 10}))
        else:
            out.append(Call("GET", f"/users/{users[n % len(users)]}/recommendations", params={"k": 10}))
    return out


def main() -> None:
    parser = arguments(__doc__.splitlines()[0], port=8192)
    parser.add_argument("--wish-share", type=float, default=0.0, help="fraction of requests that are free-text wishes")
    args = parser.parse_args()
    if args.rate <= 0 or args.seconds <= 0 or not 0 <= args.wish_share <= 1:
        raise SystemExit("--rate and --seconds must be positive and --wish-share in [0, 1]")
    planned = calls(int(args.rate * args.seconds) + args.warm_up, args.wish_share, args.seed)
    result = run_against("services.recommender.app:app", "recommender", args, planned)
    health = result.pop("health")
    result = {
        "benchmark": "recommender GET /users/{id}/recommendations latency, open loop",
        **result,
        "catalogue": health.get("items"),
        "index": health.get("index"),
        "wish_share": args.wish_share,
    }
    suffix = "" if not args.wish_share else f"-wishes{args.wish_share:g}"
    report(result, GOAL_P95_MS, args.out / f"recommender_latency-{result['backbone']}{suffix}.json")


if __name__ == "__main__":
    main()
