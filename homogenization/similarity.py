"""Representation similarity: linear CKA between the deployments' encoders, and each against the pretrained encoder.

The probe set is drawn once (seed 0, the same for every training seed) from all three domains: Banking77 test
questions, financial-news test stories and MovieLens film texts, ``per_domain`` of each.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from homogenization.metrics import linear_cka
from shared_backbone.data import load_banking77, load_financial_sentiment, load_movies


def probe_texts(data_dir: Path, per_domain: int) -> dict[str, list[str]]:
    rng = np.random.default_rng(0)

    def draw(texts: list[str]) -> list[str]:
        if len(texts) <= per_domain:
            return list(texts)
        return [texts[i] for i in sorted(rng.choice(len(texts), size=per_domain, replace=False))]

    movies = load_movies(data_dir / "movielens_latest_small")
    return {
        "support": draw([r.text for r in load_banking77(data_dir).test]),
        "sentiment": draw([r.text for r in load_financial_sentiment(data_dir).test]),
        "recommender": draw([movies[m].text() for m in sorted(movies)]),
    }


def cka_matrix(embeddings: Mapping[str, np.ndarray]) -> dict[str, float]:
    """Linear CKA for every unordered pair of encoders, keyed ``"a | b"``."""
    return {f"{a} | {b}": linear_cka(embeddings[a], embeddings[b]) for a, b in itertools.combinations(embeddings, 2)}
