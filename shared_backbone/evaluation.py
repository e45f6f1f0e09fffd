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


def per_user_ranking(ranked: Sequence[Sequence[int]], relevant: Sequence[set[int]], k: int) -> dict[str, np.ndarray]:
    """HR@k, Recall@k (hits over min(k, relevant)) and NDCG@k with binary gains, one value per user."""
    if len(ranked) != len(relevant):
        raise ValueError("one ranking per user is needed")
    hits, recalls, ndcgs = [], [], []
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    for items, truth in zip(ranked, relevant, strict=True):
        gains = np.array([1.0 if item in truth else 0.0 for item in list(items)[:k]])
        n_hits = gains.sum()
        hits.append(float(n_hits > 0))
        recalls.append(n_hits / min(k, len(truth)) if truth else 0.0)
        ideal = discounts[: min(k, len(truth))].sum()
        ndcgs.append(float((gains * discounts[: len(gains)]).sum() / ideal) if ideal else 0.0)
    return {f"hr@{k}": np.array(hits), f"recall@{k}": np.array(recalls), f"ndcg@{k}": np.array(ndcgs)}


def ranking_metrics(ranked: Sequence[Sequence[int]], relevant: Sequence[set[int]], k: int, catalogue_size: int) -> dict[str, float]:
    """The per-user metrics averaged, and catalogue coverage (distinct items shown over the catalogue)."""
    values = per_user_ranking(ranked, relevant, k)
    shown = {item for items in ranked for item in list(items)[:k]}
    return {
        **{name: float(v.mean()) if len(v) else 0.0 for name, v in values.items()},
        "coverage": len(shown) / catalogue_size if catalogue_size else 0.0,
        "users": float(len(ranked)),
    }


def paired_bootstrap(a: np.ndarray, b: np.ndarray, resamples: int = 2000, seed: int = 0) -> dict[str, float]:
    """Mean of ``a - b`` over paired users with a 95% percentile bootstrap interval, and how often ``a`` wins."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1 or len(a) == 0:
        raise ValueError("two equally long, non-empty series of paired values are needed")
    difference = a - b
    rng = np.random.default_rng(seed)
    means = difference[rng.integers(0, len(difference), size=(resamples, len(difference)))].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return {
        "mean_difference": float(difference.mean()),
        "ci95_low": float(low),
        "ci95_high": float(high),
        "share_of_resamples_above_zero": float((means > 0).mean()),
    }
