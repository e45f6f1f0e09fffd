from __future__ import annotations

from pathlib import Path

import pytest
from sentiment_fakes import TOPICS, KeywordClient
from test_sentiment_monitor import base_texts

from services.sentiment.evaluation import classification, replay_once
from services.sentiment.settings import SentimentSettings
from shared_backbone.data import ClassificationData, LabeledText
from shared_backbone.settings import BackboneSettings


def test_classification_metrics_on_the_scripted_backbone() -> None:
    test = [LabeledText("earnings beat", 0), LabeledText("oil news", 1), LabeledText("markets", 2), LabeledText("oil again", 0)]
    data = ClassificationData("topic", TOPICS, [], [], test)
    result = classification(KeywordClient(), data, "topic")
    assert result["accuracy"] == pytest.approx(0.75) and result["examples"] == 4
    assert result["macro_f1"] == pytest.approx((2 / 3 + 2 / 3 + 1) / 3)


def test_a_replay_with_a_burst_is_detected_soon_after_it_starts(tmp_path: Path) -> None:
    settings = SentimentSettings(backbone=BackboneSettings(artifacts_dir=tmp_path), demo_replay=False)
    pools = {"Earnings": [f"Firm {k} earnings miss, shares plunge" for k in range(60)]}
    run = replay_once(KeywordClient(), settings, base_texts(), pools, seed=3, burst=40)
    assert run["topic"] == "Earnings" and run["detected"] and run["alerts"] == run["hits"] == 1
    assert 0 < run["delay_minutes"] <= 120
