"""Tuning the recommender's blend on the validation period, never on the test period.

Each user's 10% of ratings before the test period is the validation period; every model learns from
the training period only. The grid covers the text weight of the blend and the text neighbours joined
into EASE (0: plain EASE); each setting is scored by the service's own ranking step, and the best
NDCG@10 (ties: the simpler setting) is kept. The best setting is then scored again with the item-item
weights pruned to each item's strongest few (`ease_keep`), and the smallest pruning within
`--keep-tolerance` of the dense NDCG@10 is chosen; all of it is printed as the SPINE_RECOMMENDER_* values to serve. Then
`spine eval recommender --backbone ID` with those values gives the test figures. Writes JSON + Markdown.

    python bench/recommender_tune.py --backbone shared-full
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from bench.http_load import machine
from services.recommender.collaborative import CollaborativeModel, InteractionMatrix
from services.recommender.evaluation import ScoreFn, hybrid_scorer, likes_before, model_scorer, rank_users
from services.recommender.settings import RecommenderSettings
from shared_backbone.client import InProcessBackboneClient
from shared_backbone.data import load_movielens
from shared_backbone.evaluation import ranking_metrics
from shared_backbone.settings import BackboneSettings
from shared_backbone.tasks import PROFILES
from shared_backbone.training import prepare_recommendation


def _floats(text: str) -> list[float]:
    return [float(v) for v in text.split(",") if v.strip()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="shared-full")
    parser.add_argument("--text-weights", default="0,0.05,0.1,0.15,0.2,0.3")
    parser.add_argument("--text-neighbours", default="0,10,20")
    parser.add_argument("--neighbour-weights", default="0.5,1.0")
    parser.add_argument("--ease-keep", default="50,100,200,500", help="weights kept per item to try on the best setting")
    parser.add_argument("--keep-tolerance", type=float, default=0.001, help="NDCG@10 a pruned model may lose against the dense one")
    parser.add_argument("--out", type=Path, default=Path("bench/results"))
    args = parser.parse_args()

    settings = BackboneSettings()
    base = RecommenderSettings()
    data = prepare_recommendation(settings.data_dir, PROFILES["full"], settings.seed)
    likes = likes_before(load_movielens(settings.data_dir), "validation")
    client = InProcessBackboneClient(
        settings.backbones_dir, args.backbone, threads=settings.threads, cache_path=settings.cache_dir / "embeddings.sqlite"
    )
    vectors = client.encode([data.movies[m].text() for m in data.catalogue])
    column = {movie: i for i, movie in enumerate(data.catalogue)}
    when = {(user, movie): at for user, movie, at in likes}
    interactions = InteractionMatrix.build([(user, movie) for user, movie, _ in likes], data.catalogue)
    size = len(data.catalogue)

    def score(name: str, scorer: ScoreFn) -> dict[str, float]:
        ranked, relevant = rank_users(scorer, data, column, 10, when, "validation")
        return {"setting": name, **ranking_metrics(ranked, relevant, 10, size)}

    started = time.perf_counter()
    rows = []
    ease = CollaborativeModel(base.ease_l2, text_neighbours=0).fit(interactions)
    rows.append({"text_weight": None, "text_neighbours": 0, "text_neighbour_weight": None, **score("ease", model_scorer(ease, size))})
    rows[-1]["ease_megabytes"] = round(ease.nbytes / 2**20, 1)
    print(f"ease: ndcg@10 {rows[-1]['ndcg@10']:.4f}", flush=True)
    neighbour_settings = [(0, 0.0)] + [
        (n, w) for n in map(int, _floats(args.text_neighbours)) if n > 0 for w in _floats(args.neighbour_weights)
    ]
    for neighbours, neighbour_weight in neighbour_settings:
        model = CollaborativeModel(base.ease_l2, neighbours, neighbour_weight or 1.0, base.min_item_likes).fit(interactions, vectors)
        for weight in _floats(args.text_weights):
            tuned = base.model_copy(
                update={"text_weight": weight, "text_neighbours": neighbours, "text_neighbour_weight": neighbour_weight or 1.0}
            )
            row = score("hybrid", hybrid_scorer(vectors, model, tuned))
            rows.append(
                {
                    "text_weight": weight,
                    "text_neighbours": neighbours,
                    "text_neighbour_weight": neighbour_weight or None,
                    **row,
                    "ease_keep": 0,
                    "ease_megabytes": round(model.nbytes / 2**20, 1),
                }
            )
            print(f"text_weight {weight} neighbours {neighbours} x {neighbour_weight}: ndcg@10 {row['ndcg@10']:.4f}", flush=True)
    hybrids = [r for r in rows if r["setting"] == "hybrid"]
    # ties go to the simpler setting: fewer neighbours, then a smaller text weight
    best = max(hybrids, key=lambda r: (round(r["ndcg@10"], 4), -r["text_neighbours"], -(r["text_weight"] or 0)))
    best["ease_keep"] = 0
    chosen_keep = 0
    tuned = base.model_copy(
        update={k: best[k] for k in ("text_weight", "text_neighbours")} | {"text_neighbour_weight": best["text_neighbour_weight"] or 1.0}
    )
    for keep in sorted(map(int, _floats(args.ease_keep)), reverse=True):
        model = CollaborativeModel(base.ease_l2, tuned.text_neighbours, tuned.text_neighbour_weight, base.min_item_likes, keep).fit(
            interactions, vectors
        )
        row = score("hybrid", hybrid_scorer(vectors, model, tuned))
        row |= {
            "text_weight": tuned.text_weight,
            "text_neighbours": best["text_neighbours"],
            "text_neighbour_weight": best["text_neighbour_weight"],
        }
        rows.append({**row, "ease_keep": keep, "ease_megabytes": round(model.nbytes / 2**20, 1)})
        print(f"best setting, {keep} weights kept per item: ndcg@10 {row['ndcg@10']:.4f} ({rows[-1]['ease_megabytes']} MB)", flush=True)
        if row["ndcg@10"] >= best["ndcg@10"] - args.keep_tolerance:
            chosen_keep = keep
    result = {
        "command": "python " + " ".join(sys.argv),
        "backbone": args.backbone,
        "split": "validation",
        "machine": machine(),
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "seconds": round(time.perf_counter() - started, 1),
        "rows": rows,
        "best": best,
        "serve": {
            "SPINE_RECOMMENDER_TEXT_WEIGHT": best["text_weight"],
            "SPINE_RECOMMENDER_TEXT_NEIGHBOURS": best["text_neighbours"],
            "SPINE_RECOMMENDER_TEXT_NEIGHBOUR_WEIGHT": best["text_neighbour_weight"] or 1.0,
            "SPINE_RECOMMENDER_EASE_KEEP": chosen_keep,
        },
    }
    args.out.mkdir(parents=True, exist_ok=True)
    stem = args.out / f"recommender_tune-{args.backbone}"
    stem.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    lines = [
        f"# Recommender blend on the validation period ({args.backbone})",
        "",
        f"Command: `{result['command']}`  ",
        f"Finished {result['finished_at']}; {result['seconds']} s.",
        "",
        "| model | text weight | text neighbours x weight | weights kept per item | item-item MB | NDCG@10 | Recall@10 | HR@10 |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        neighbours = f"{r['text_neighbours']} x {r['text_neighbour_weight']}" if r["text_neighbours"] else "0"
        lines.append(
            f"| {r['setting']} | {r['text_weight'] if r['text_weight'] is not None else '-'} | {neighbours} | "
            f"{r.get('ease_keep') or 'all'} | {r['ease_megabytes']} | "
            f"{r['ndcg@10']:.4f} | {r['recall@10']:.4f} | {r['hr@10']:.4f} |"
        )
    lines += ["", "Serve: " + ", ".join(f"`{k}={v}`" for k, v in result["serve"].items())]
    stem.with_suffix(".md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
