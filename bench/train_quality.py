"""Benchmark: train `shared`, `per-domain` and `frozen` and compare their quality, time and size.

    .venv/bin/python bench/train_quality.py --profile full

Writes ``bench/results/train_quality-<profile>.json`` and ``.md``: test (and validation) metrics
per task and deployment, training time, parameters served, shared-vs-per-domain deltas in points,
and whether each target of the foundation issue is met. A benchmark, not a test: it asserts nothing
and takes about an hour with the `full` profile on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from shared_backbone.artifacts import Manifest
from shared_backbone.settings import BackboneSettings
from shared_backbone.training import train_deployment

CLASSIFICATION = ("intent", "sentiment", "topic")
TARGETS = {"intent": 0.925, "sentiment": 0.88, "topic": 0.88}
SHARED_GAP_POINTS = 0.5


def metrics_by_task(manifests: list[Manifest]) -> dict[str, dict[str, dict[str, float]]]:
    """Each task's metrics from the encoder that serves it in this deployment."""
    out: dict[str, dict[str, dict[str, float]]] = {}
    for manifest in manifests:
        out.update(manifest.metrics)
    return out


def summarise(deployment: str, manifests: list[Manifest], wall_seconds: float) -> dict:
    return {
        "deployment": deployment,
        "encoders": [m.id for m in manifests],
        "parameters_served": sum(m.parameter_count for m in manifests),
        "training_seconds": round(sum(m.training_seconds for m in manifests), 1),
        "wall_seconds": round(wall_seconds, 1),
        "metrics": metrics_by_task(manifests),
        "hyperparameters": manifests[0].hyperparameters,
    }


def comparisons(rows: dict[str, dict]) -> dict:
    out: dict = {"targets": {}, "shared_minus_per_domain_points": {}}
    for deployment, row in rows.items():
        for task, target in TARGETS.items():
            accuracy = row["metrics"].get(task, {}).get("test", {}).get("accuracy")
            if accuracy is not None:
                out["targets"][f"{deployment}/{task}"] = {"accuracy": accuracy, "target": target, "met": accuracy >= target}
    if {"shared", "per-domain"} <= rows.keys():
        for task in CLASSIFICATION:
            gap = 100 * (rows["shared"]["metrics"][task]["test"]["accuracy"] - rows["per-domain"]["metrics"][task]["test"]["accuracy"])
            out["shared_minus_per_domain_points"][task] = {"points": round(gap, 2), "within_target": gap >= -SHARED_GAP_POINTS}
        for key in ("parameters_served", "training_seconds"):
            out[f"shared_over_per_domain_{key}"] = (
                round(rows["shared"][key] / rows["per-domain"][key], 3) if rows["per-domain"][key] else None
            )
    return out


def markdown(result: dict) -> str:
    rows = result["deployments"]
    lines = [
        f"# Backbone quality by deployment ({result['profile']} profile, seed {result['seed']})",
        "",
        f"Command: `{result['command']}`  ",
        f"Machine: {result['machine']}; finished {result['finished_at']}.",
        "",
        "Test split metrics (Banking77 test; the published validation splits of the two Twitter sets; MovieLens last 20% per user).",
        "",
        "| deployment | encoders | parameters served | training s | intent acc / F1 | sentiment acc / F1 | topic acc / F1 | rec HR@10 / NDCG@10 |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, row in rows.items():
        m = row["metrics"]
        cells = [f"{m[t]['test']['accuracy']:.4f} / {m[t]['test']['macro_f1']:.4f}" if t in m else "-" for t in CLASSIFICATION]
        rec = m.get("recommendation", {}).get("test")
        rec_cell = f"{rec['hr@10']:.4f} / {rec['ndcg@10']:.4f}" if rec else "-"
        lines.append(
            f"| {name} | {len(row['encoders'])} | {row['parameters_served']:,} | {row['training_seconds']:.0f} | {' | '.join(cells)} | {rec_cell} |"
        )
    comp = result["comparisons"]
    if comp["shared_minus_per_domain_points"]:
        lines += ["", "| shared vs per-domain | value |", "|---|---|"]
        for task, gap in comp["shared_minus_per_domain_points"].items():
            lines.append(
                f"| {task} accuracy, points | {gap['points']:+.2f} ({'within' if gap['within_target'] else 'outside'} the 0.5-point target) |"
            )
        lines.append(f"| parameters served, ratio | {comp['shared_over_per_domain_parameters_served']} |")
        lines.append(f"| training time, ratio | {comp['shared_over_per_domain_training_seconds']} |")
    lines += ["", "| target | accuracy | goal | met |", "|---|---|---|---|"]
    for key, target in comp["targets"].items():
        lines.append(f"| {key} | {target['accuracy']:.4f} | {target['target']} | {'yes' if target['met'] else 'no'} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", default="full", choices=["smoke", "quick", "full"])
    parser.add_argument("--deployments", default="shared,per-domain,frozen")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=float, default=None, help="override the profile's epochs")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results")
    args = parser.parse_args()

    settings = BackboneSettings()
    rows = {}
    for deployment in [d.strip() for d in args.deployments.split(",") if d.strip()]:
        started = time.perf_counter()
        manifests = train_deployment(deployment, args.profile, settings, seed=args.seed, epochs=args.epochs, progress=False)
        rows[deployment] = summarise(deployment, manifests, time.perf_counter() - started)
        print(f"{deployment}: {json.dumps(rows[deployment]['metrics'])}", flush=True)
    result = {
        "profile": args.profile,
        "seed": args.seed,
        "command": " ".join(["python", *sys.argv]),
        "machine": f"{platform.machine()}, {platform.processor() or 'cpu'}, {settings.threads} torch threads, Python {platform.python_version()}",
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "deployments": rows,
        "comparisons": comparisons(rows),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    stem = args.out / f"train_quality-{args.profile}"
    stem.with_suffix(".json").write_text(json.dumps(result, indent=2), encoding="utf-8")
    stem.with_suffix(".md").write_text(markdown(result), encoding="utf-8")
    print(markdown(result))


if __name__ == "__main__":
    main()
