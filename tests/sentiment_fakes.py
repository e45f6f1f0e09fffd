"""Stand-ins the sentiment tests share: a backbone whose sentiment and topic follow keywords."""

from __future__ import annotations

import numpy as np

from shared_backbone.client import BackboneInfo, TaskPrediction
from shared_backbone.data import SENTIMENT_LABELS

TOPICS = ("Earnings", "Energy | Oil", "Markets")
NAMES = {"tesla": "TSLA"}


class KeywordClient:
    """Bearish on 'plunge'/'miss', bullish on 'beat'/'soar', else neutral; topic by 'earnings'/'oil'."""

    def __init__(self) -> None:
        self.scored = 0

    def warm_up(self) -> None:
        pass

    def info(self) -> BackboneInfo:
        return BackboneInfo("keywords", "keywords@1", "shared", 4, ("sentiment", "topic"), ("sentiment", "topic"), 0, 0)

    def encode(self, texts: list[str]) -> np.ndarray:
        return np.zeros((len(texts), 4), dtype=np.float32)

    def predict(self, task: str, texts: list[str]) -> TaskPrediction:
        return self.analyse(texts, [task])[1][task]

    def analyse(self, texts: list[str], tasks: list[str]) -> tuple[np.ndarray, dict[str, TaskPrediction]]:
        self.scored += len(texts)
        sentiment = np.full((len(texts), 3), 0.1)
        topic = np.full((len(texts), 3), 0.1)
        for row, text in enumerate(texts):
            lowered = text.lower()
            label = (
                "bearish"
                if ("plunge" in lowered or "miss" in lowered)
                else "bullish"
                if ("beat" in lowered or "soar" in lowered)
                else "neutral"
            )
            sentiment[row, SENTIMENT_LABELS.index(label)] = 0.8
            topic[row, 0 if "earnings" in lowered else 1 if "oil" in lowered else 2] = 0.8
        return self.encode(texts), {
            "sentiment": TaskPrediction("sentiment", SENTIMENT_LABELS, sentiment),
            "topic": TaskPrediction("topic", TOPICS, topic),
        }
