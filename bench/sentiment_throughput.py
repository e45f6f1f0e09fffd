"""Benchmark: how many documents per second the sentiment pipeline scores and stores, on this machine.

Runs the monitor's own pipeline (normalise -> dedupe -> sentiment + topic heads -> tickers -> SQLite
store, with the cursor update) over the vendored sentiment test split (2,388 tweets), embedding
cache off so every text is encoded, in batches as a source run would. Prints documents/s against
the 150/s goal for scoring alone and end to end, and writes JSON.

    python bench/sentiment_throughput.py --deployment shared --profile full
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from bench.http_load import machine
from services.common.db import Database
from services.sentiment.documents import RawDocument
from services.sentiment.pipeline import IngestReport, Pipeline
from services.sentiment.settings import SentimentSettings
from services.sentiment.store import Base, SourceRecord
from shared_backbone.client import InProcessBackboneClient, load_deployment
from shared_backbone.data import load_financial_sentiment

GOAL_PER_S = 150.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deployment", default="shared")
    parser.add_argument("--profile", default=None)
    parser.add_argument("--batch", type=int, default=500, help="documents per source run")
    parser.add_argument("--backend", default="torch", choices=["torch", "onnx", "onnx-int8"], help="torch and onnx are fp32")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()

    settings = SentimentSettings(deployment=args.deployment, profile=args.profile)
    backbone = settings.backbone.model_copy(update={"embedding_cache": False})
    artifact = load_deployment(args.deployment, backbone.deploy_dir).artifact_for("sentiment", args.profile)
    client = InProcessBackboneClient(
        backbone.backbones_dir, artifact, threads=backbone.threads, batch_size=backbone.encode_batch_size, backend=args.backend
    )
    client.warm_up()
    pipeline = Pipeline(client, max_chars=settings.max_document_chars, batch_size=settings.batch_size, ticker_names=settings.ticker_names)
    texts = [e.text for e in load_financial_sentiment(backbone.data_dir).test]
    raws = [RawDocument("bench", text) for text in texts]
    pipeline.score(pipeline.prepare(raws[:64], IngestReport()))  # warm-up: first-call costs are not throughput

    scoring = end_to_end = 0.0
    stored = 0
    with tempfile.TemporaryDirectory() as scratch:
        database = Database(f"sqlite:///{Path(scratch) / 'bench.db'}")
        database.warm_up(Base.metadata)
        with database.session() as db:
            db.add(SourceRecord(name="bench", kind="push", config={}))
        for start in range(0, len(raws), args.batch):
            report = IngestReport()
            began = time.perf_counter()
            scored = pipeline.score(pipeline.prepare(raws[start : start + args.batch], report))
            scored_at = time.perf_counter()
            with database.session() as db:
                source = db.get(SourceRecord, "bench")
                assert source is not None
                pipeline.store(db, source, scored, {"position": start + args.batch}, report)
            scoring += scored_at - began
            end_to_end += time.perf_counter() - began
            stored += report.stored
        database.dispose()

    result = {
        "benchmark": "sentiment pipeline throughput (score + store), in-process backbone, cache off",
        "backend": client.info().backend,
        "command": "python " + " ".join(sys.argv),
        "finished": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "backbone": client.info().artifact_id,
        "documents": len(raws),
        "stored": stored,
        "batch": args.batch,
        "scoring_docs_per_s": round(len(raws) / scoring, 1),
        "end_to_end_docs_per_s": round(len(raws) / end_to_end, 1),
        "goal_docs_per_s": GOAL_PER_S,
        "end_to_end_over_goal": round(len(raws) / end_to_end / GOAL_PER_S, 2),
        "met": len(raws) / end_to_end >= GOAL_PER_S,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    suffix = "" if args.backend == "torch" else f"-{args.backend}"
    path = args.out / f"sentiment_throughput-{result['backbone']}{suffix}.json"
    path.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(
        f"{len(raws)} documents on {result['backbone']} ({result['backend']}): scoring {result['scoring_docs_per_s']}/s | end to end {result['end_to_end_docs_per_s']}/s"
    )
    print(f"goal >= {GOAL_PER_S:.0f}/s -> {result['end_to_end_over_goal']}x")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
