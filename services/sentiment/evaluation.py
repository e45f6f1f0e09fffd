"""Offline evaluation of the monitor: the heads on held-out data, and surge detection on replays.

Classification: sentiment (bearish / neutral / bullish) and topic (20) accuracy and macro-F1 on the
published validation splits, which we hold out as test. Detection: each replay streams the
sentiment test split in a seeded order, one story a minute, and injects one burst of bearish
training stories filed under one topic at a random time after the warm-up; the monitor's own code
(replay source, pipeline, store, detector, alerts) runs on a scratch SQLite database. An alert on
the injected topic from the burst's start to two windows after its end is a hit; any other alert is
a false alarm. Delay runs from the burst's start to the end of the window that fired.
"""

from __future__ import annotations

import random
import statistics
import tempfile
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sklearn.metrics import accuracy_score, f1_score
from sqlalchemy import select

from services.sentiment.documents import utc
from services.sentiment.monitor import Monitor
from services.sentiment.settings import SentimentSettings
from services.sentiment.store import Alert
from shared_backbone.client import BackboneClient
from shared_backbone.data import ClassificationData, load_financial_sentiment, load_financial_topic

START = datetime(2026, 1, 5, tzinfo=UTC)


def classification(client: BackboneClient, data: ClassificationData, task: str, limit: int | None = None) -> dict[str, float]:
    examples = data.test[:limit] if limit else data.test
    predicted = client.predict(task, [e.text for e in examples]).probabilities.argmax(axis=1)
    gold = [e.label for e in examples]
    return {
        "accuracy": float(accuracy_score(gold, predicted)),
        "macro_f1": float(f1_score(gold, predicted, average="macro")),
        "examples": len(examples),
    }


def surge_pools(client: BackboneClient, sentiment: ClassificationData, minimum: int) -> dict[str, list[str]]:
    """Bearish training stories grouped by the topic the backbone files them under (topics with enough of them)."""
    bearish = [e.text for e in sentiment.train if sentiment.labels[e.label] == "bearish"]
    topics = [label for label, _ in client.predict("topic", bearish).best()]
    pools: dict[str, list[str]] = {}
    for text, topic in zip(bearish, topics, strict=True):
        pools.setdefault(topic, []).append(text)
    return {topic: texts for topic, texts in sorted(pools.items()) if len(texts) >= minimum}


def replay_once(
    client: BackboneClient, settings: SentimentSettings, base: list[str], pools: dict[str, list[str]], seed: int, burst: int
) -> dict[str, Any]:
    rng = random.Random(seed)
    texts = base[:]
    rng.shuffle(texts)
    topic = rng.choice(sorted(pools))
    width = timedelta(minutes=settings.window_minutes)
    earliest = (settings.warm_up_windows + 2) * width  # leave the detector its warm-up
    offset = timedelta(minutes=rng.randrange(int(earliest.total_seconds() // 60), len(texts) - 120))
    duration = timedelta(minutes=45)
    surge_texts = rng.sample(pools[topic], burst)
    config = {
        "start": START.isoformat(),
        "spacing_s": 60,
        "texts": texts,
        "surges": [
            {"label": f"topic:{topic}", "offset_minutes": offset.total_seconds() / 60, "duration_minutes": 45, "texts": surge_texts}
        ],
    }
    with tempfile.TemporaryDirectory() as scratch:
        local = settings.model_copy(
            update={
                "database_url": f"sqlite:///{Path(scratch) / 'replay.db'}",
                "scheduler": False,
                "demo_replay": False,
                "fetch_limit": 1000,
            }
        )
        monitor = Monitor(local, client)
        monitor.warm_up()
        try:
            monitor.add_source("replay", "replay", config, 0)
            while monitor.run_source("replay").get("fetched", 0):
                pass
            with monitor.database.session() as db:
                alerts = [(a.key, utc(a.window_start)) for a in db.scalars(select(Alert).order_by(Alert.window_start))]
        finally:
            monitor.shut_down()
    begin, end = START + offset, START + offset + duration + 2 * width
    hits = [(key, when) for key, when in alerts if key == f"topic:{topic}" and begin - width < when <= end]
    delay = ((hits[0][1] + width) - begin).total_seconds() / 60 if hits else None
    return {
        "seed": seed,
        "topic": topic,
        "surge_start": begin.isoformat(),
        "alerts": len(alerts),
        "hits": len(hits),
        "detected": bool(hits),
        "delay_minutes": delay,
    }


def evaluate(
    client: BackboneClient, settings: SentimentSettings, *, replays: int = 10, burst: int = 40, limit: int | None = None
) -> dict[str, Any]:
    data_dir = settings.backbone.data_dir
    sentiment, topic = load_financial_sentiment(data_dir), load_financial_topic(data_dir)
    result: dict[str, Any] = {
        "sentiment": classification(client, sentiment, "sentiment", limit),
        "topic": classification(client, topic, "topic", limit),
    }
    pools = surge_pools(client, sentiment, minimum=burst)
    base = [e.text for e in sentiment.test][: limit or None]
    runs = [replay_once(client, settings, base, pools, seed, burst) for seed in range(replays)]
    alerts = sum(r["alerts"] for r in runs)
    true_alerts = sum(min(r["hits"], 1) for r in runs)
    delays = [r["delay_minutes"] for r in runs if r["delay_minutes"] is not None]
    result["surges"] = {
        "replays": replays,
        "burst_documents": burst,
        "burst_minutes": 45,
        "recall": sum(r["detected"] for r in runs) / replays if replays else 0.0,
        "precision": true_alerts / alerts if alerts else 0.0,
        "false_alarms": alerts - true_alerts,
        "median_delay_minutes": statistics.median(delays) if delays else None,
        "topics": dict(Counter(r["topic"] for r in runs)),
        "runs": runs,
        "rule": {
            k: getattr(settings, k)
            for k in ("window_minutes", "ewma_alpha", "z_threshold", "min_volume", "min_share_rise", "warm_up_windows", "cooldown_minutes")
        },
    }
    return result
