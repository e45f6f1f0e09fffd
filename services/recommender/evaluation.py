"""Offline evaluation of recommenders on MovieLens: temporal hold-out per user, full-catalogue ranking.

Each user's latest 20% of ratings are the test period; what they liked there (and had not rated
before) is what a model should rank in its top 10, out of the whole catalogue minus what they had
already rated: no sampled negatives. The classic baselines run in the same pass on the same users.
A cold-item pool (films whose every like falls in the test period) shows what text buys when
collaborative signal has nothing to go on.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from services.recommender.collaborative import EASE, InteractionMatrix, ItemKNN, Popularity
from services.recommender.ranking import blend
from shared_backbone.data import MovieLensData
from shared_backbone.evaluation import ranking_metrics, top_k
from shared_backbone.training import POSITIVE_RATING, RecommendationData

ScoreFn = Callable[[list[int]], np.ndarray]  # liked catalogue columns -> one score per catalogue item


def content_scorer(item_vectors: np.ndarray) -> ScoreFn:
    """The text model: the (unit) mean of the liked items' embeddings against every item."""

    def scores(liked: list[int]) -> np.ndarray:
        profile = item_vectors[liked].mean(axis=0)
        return item_vectors @ (profile / max(float(np.linalg.norm(profile)), 1e-12))

    return scores


def collaborative_scorer(model: Popularity | ItemKNN | EASE, interactions: InteractionMatrix) -> ScoreFn:
    def scores(liked: list[int]) -> np.ndarray:
        return model.scores(interactions.rows_for([liked]))[0]

    return scores


def hybrid_scorer(content: ScoreFn, collaborative: ScoreFn, weight: float, candidates: int) -> ScoreFn:
    """The service's ranking: top candidates from each source, min-max scaled and blended."""

    def scores(liked: list[int]) -> np.ndarray:
        a, b = content(liked), collaborative(liked)
        pool_a = np.argpartition(-a, min(candidates, len(a) - 1))[:candidates]
        pool_b = np.argpartition(-b, min(candidates, len(b) - 1))[:candidates]
        blended = blend({int(i): float(a[i]) for i in pool_a}, {int(i): float(b[i]) for i in pool_b}, weight)
        out = np.full(len(a), -np.inf)
        out[list(blended)] = list(blended.values())
        return out

    return scores


def rank_users(
    score: ScoreFn, data: RecommendationData, column: dict[int, int], k: int, pool: np.ndarray | None = None
) -> tuple[list[list[int]], list[set[int]]]:
    """Top-k film ids per test user (within ``pool`` when given), with the films they went on to like."""
    ranked, relevant = [], []
    allowed = None if pool is None else set(pool.tolist())
    for user, truth in sorted(data.held_out.get("test", {}).items()):
        liked = [column[m] for m in data.history["test"][user] if m in column]
        wanted = {m for m in truth if allowed is None or column.get(m) in allowed}
        if not liked or not wanted:
            continue
        scores = score(liked).astype(np.float64)
        if pool is not None:
            masked = np.full(len(scores), -np.inf)
            masked[pool] = scores[pool]
            scores = masked
        seen = [column[m] for m in data.seen["test"][user] if m in column]
        ranked.append([data.catalogue[i] for i in top_k(scores, k, seen)])
        relevant.append(wanted)
    return ranked, relevant


def likes_before_test(movielens: MovieLensData, positive: float = POSITIVE_RATING) -> list[tuple[int, int]]:
    """Every user's likes in the training and validation periods: what collaborative models learn from."""
    return [(r.user_id, r.movie_id) for r in (*movielens.train, *movielens.validation) if r.rating >= positive]


def evaluate(
    data: RecommendationData,
    likes: list[tuple[int, int]],
    item_vectors: np.ndarray | None,
    *,
    k: int = 10,
    ease_l2: float = 100.0,
    knn_neighbours: int = 100,
    collaborative_weight: float = 0.5,
    candidates: int = 200,
) -> dict[str, Any]:
    """Every model on the same test users, learning from ``likes`` (before the test period).

    ``item_vectors`` rows follow ``data.catalogue``; without them only the baselines run.
    """
    column = {movie: i for i, movie in enumerate(data.catalogue)}
    interactions = InteractionMatrix.build(likes, data.catalogue)
    liked_ever = set(np.flatnonzero(np.asarray(interactions.matrix.sum(axis=0)).ravel() > 0).tolist())
    test_likes = {m for items in data.held_out.get("test", {}).values() for m in items}
    cold = np.array(sorted(column[m] for m in test_likes if column.get(m) is not None and column[m] not in liked_ever), dtype=np.int64)

    ease = EASE(ease_l2).fit(interactions)
    models: dict[str, ScoreFn] = {
        "popularity": collaborative_scorer(Popularity().fit(interactions), interactions),
        "itemknn": collaborative_scorer(ItemKNN(knn_neighbours).fit(interactions), interactions),
        "ease": collaborative_scorer(ease, interactions),
    }
    if item_vectors is not None:
        models["content"] = content_scorer(item_vectors)
        models["hybrid"] = hybrid_scorer(models["content"], models["ease"], collaborative_weight, candidates)
    results: dict[str, Any] = {"k": k, "catalogue": len(data.catalogue), "cold_items": len(cold), "models": {}}
    for name, score in models.items():
        ranked, relevant = rank_users(score, data, column, k)
        row = {"all": ranking_metrics(ranked, relevant, k, len(data.catalogue))}
        if len(cold):
            ranked_cold, relevant_cold = rank_users(score, data, column, k, pool=cold)
            row["cold_pool"] = ranking_metrics(ranked_cold, relevant_cold, k, len(cold))
        results["models"][name] = row
    return results
