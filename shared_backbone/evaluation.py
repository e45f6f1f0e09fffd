"""Metrics shared by the backbone's own validation and the services' evaluations."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def top_k(scores: np.ndarray, k: int, exclude: Sequence[int] = ()) -> list[int]:
    """Indexes of the ``k`` highest scores, best first, skipping ``exclude``."""
    scores = np.asarray(scores, dtype=np.float64).copy()
    if len(exclude):
        scores[np.asarray(list(exclude), dtype=np.int64)] = -np.inf
    k = min(k, int(np.isfinite(scores).sum()))
    if k <= 0:
        return []
    candidates = np.argpartition(-scores, k - 1)[:k]
    return [int(i) for i in candidates[np.argsort(-scores[candidates], kind="stable")]]


def ranking_metrics(ranked: Sequence[Sequence[int]], relevant: Sequence[set[int]], k: int, catalogue_size: int) -> dict[str, float]:
    """HR@k, Recall@k (hits over min(k, relevant)), NDCG@k with binary gains, and catalogue coverage."""
    if len(ranked) != len(relevant):
        raise ValueError("one ranking per user is needed")
    hits, recalls, ndcgs, shown = [], [], [], set()
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    for items, truth in zip(ranked, relevant, strict=True):
        items = list(items)[:k]
        shown.update(items)
        gains = np.array([1.0 if item in truth else 0.0 for item in items])
        n_hits = gains.sum()
        hits.append(float(n_hits > 0))
        recalls.append(n_hits / min(k, len(truth)) if truth else 0.0)
        ideal = discounts[: min(k, len(truth))].sum()
        ndcgs.append(float((gains * discounts[: len(gains)]).sum() / ideal) if ideal else 0.0)
    users = max(len(ranked), 1)
    return {
        f"hr@{k}": float(sum(hits) / users),
        f"recall@{k}": float(sum(recalls) / users),
        f"ndcg@{k}": float(sum(ndcgs) / users),
        "coverage": len(shown) / catalogue_size if catalogue_size else 0.0,
        "users": float(len(ranked)),
    }
