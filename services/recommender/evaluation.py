"""Offline evaluation of recommenders on MovieLens: temporal hold-out per user, full-catalogue ranking.

Each user's latest 20% of ratings are the test period (the 10% before it the validation period,
for tuning); what they liked there and had not rated before is what a model should rank in its
top 10, out of the whole catalogue minus what they had already rated: no sampled negatives. The
classic baselines run in the same pass on the same users. A cold-item pool (films whose every like
falls in the evaluated period) shows what text buys when collaborative signal has nothing to go on.

The hybrid is scored by the service's own ranking step (``ranking.hybrid_candidates``) with the
service's settings, so these numbers describe what the API serves (before filters and MMR).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from services.recommender.collaborative import CollaborativeModel, InteractionMatrix, ItemKNN, Popularity
from services.recommender.ranking import Spread, hybrid_candidates, user_profile
from services.recommender.settings import RecommenderSettings
from shared_backbone.data import MovieLensData
from shared_backbone.evaluation import paired_bootstrap, per_user_ranking, ranking_metrics, top_k
from shared_backbone.training import POSITIVE_RATING, RecommendationData

# liked catalogue columns, when each was liked, and every column seen -> one score per catalogue column
ScoreFn = Callable[[list[int], list[float], list[int]], np.ndarray]
Like = tuple[int, int, float]  # user id, item id, timestamp


def content_scorer(item_vectors: np.ndarray, half_life_days: float | None = None) -> ScoreFn:
    """The text model alone: the (recency-weighted) profile against every item."""

    def scores(liked: list[int], times: list[float], _: list[int]) -> np.ndarray:
        return item_vectors @ user_profile(item_vectors[liked], times, half_life_days)

    return scores


def collaborative_scorer(model: Popularity | ItemKNN, interactions: InteractionMatrix) -> ScoreFn:
    def scores(liked: list[int], *_: list) -> np.ndarray:
        return model.scores(interactions.rows_for([liked]))[0]

    return scores


def model_scorer(model: CollaborativeModel, size: int) -> ScoreFn:
    def scores(liked: list[int], *_: list) -> np.ndarray:
        return model.scores(liked, size)

    return scores


def hybrid_scorer(item_vectors: np.ndarray, model: CollaborativeModel, settings: RecommenderSettings) -> ScoreFn:
    """The service's ranking: text profile candidates (exact, as the flat FAISS index) and collaborative ones, blended."""
    size = len(item_vectors)

    def scores(liked: list[int], times: list[float], seen: list[int]) -> np.ndarray:
        profile = user_profile(item_vectors[liked], times, settings.half_life_days)
        text = item_vectors @ profile
        open_text = text.copy()
        open_text[seen] = -np.inf
        take = min(settings.candidates, size - len(set(seen)))
        text_top = np.argpartition(-open_text, take - 1)[:take]
        collaborative = model.scores(liked, size)
        pool, blended = hybrid_candidates(
            profile, item_vectors, text_top, Spread.of(text), collaborative, settings.text_weight, settings.candidates, exclude=seen
        )
        out = np.full(size, -np.inf)
        out[pool] = blended
        return out

    return scores


def rank_users(
    score: ScoreFn,
    data: RecommendationData,
    column: dict[int, int],
    k: int,
    when: dict[tuple[int, int], float],
    split: str = "test",
    pool: np.ndarray | None = None,
) -> tuple[list[list[int]], list[set[int]]]:
    """Top-k film ids per evaluated user (within ``pool`` when given), with the films they went on to like."""
    ranked, relevant = [], []
    allowed = None if pool is None else set(pool.tolist())
    for user, truth in sorted(data.held_out.get(split, {}).items()):
        history = [m for m in data.history[split][user] if m in column]
        wanted = {m for m in truth if allowed is None or column.get(m) in allowed}
        if not history or not wanted:
            continue
        seen = [column[m] for m in data.seen[split][user] if m in column]
        scores = score([column[m] for m in history], [when.get((user, m), 0.0) for m in history], seen).astype(np.float64)
        if pool is not None:
            masked = np.full(len(scores), -np.inf)
            masked[pool] = scores[pool]
            scores = masked
        ranked.append([data.catalogue[i] for i in top_k(scores, k, seen)])
        relevant.append(wanted)
    return ranked, relevant


def likes_before(movielens: MovieLensData, split: str = "test", positive: float = POSITIVE_RATING) -> list[Like]:
    """Every user's likes before the evaluated period: what collaborative models learn from."""
    periods = {"test": (movielens.train, movielens.validation), "validation": (movielens.train,)}
    if split not in periods:
        raise ValueError(f"split must be one of {sorted(periods)}")
    return [(r.user_id, r.movie_id, float(r.timestamp)) for ratings in periods[split] for r in ratings if r.rating >= positive]


def evaluate(
    data: RecommendationData,
    likes: Sequence[Like],
    item_vectors: np.ndarray | None,
    *,
    settings: RecommenderSettings | None = None,
    split: str = "test",
    k: int = 10,
    knn_neighbours: int = 100,
) -> dict[str, Any]:
    """Every model on the same users, learning from ``likes`` (before the evaluated period).

    ``item_vectors`` rows follow ``data.catalogue``; without them only the classic baselines run.
    """
    settings = settings or RecommenderSettings()
    size = len(data.catalogue)
    column = {movie: i for i, movie in enumerate(data.catalogue)}
    when = {(user, movie): at for user, movie, at in likes}
    interactions = InteractionMatrix.build([(user, movie) for user, movie, _ in likes], data.catalogue)
    liked_ever = set(np.flatnonzero(np.asarray(interactions.matrix.sum(axis=0)).ravel() > 0).tolist())
    later_likes = {m for items in data.held_out.get(split, {}).values() for m in items}
    cold = np.array(sorted(column[m] for m in later_likes if column.get(m) is not None and column[m] not in liked_ever), dtype=np.int64)

    ease = CollaborativeModel(settings.ease_l2, text_neighbours=0).fit(interactions)
    models: dict[str, ScoreFn] = {
        "popularity": collaborative_scorer(Popularity().fit(interactions), interactions),
        "itemknn": collaborative_scorer(ItemKNN(knn_neighbours).fit(interactions), interactions),
        "ease": model_scorer(ease, size),
    }
    if item_vectors is not None:
        service_model = CollaborativeModel(
            settings.ease_l2,
            settings.text_neighbours,
            settings.text_neighbour_weight,
            settings.min_item_likes,
            settings.ease_keep,
            half_precision=settings.ease_half_precision,
        ).fit(interactions, item_vectors)
        models["content"] = content_scorer(item_vectors, settings.half_life_days)
        models["ease+text-neighbours"] = model_scorer(service_model, size)
        models["hybrid"] = hybrid_scorer(item_vectors, service_model, settings)
    results: dict[str, Any] = {
        "split": split,
        "k": k,
        "catalogue": size,
        "cold_items": len(cold),
        "settings": settings.model_dump(
            include={
                "ease_l2",
                "text_neighbours",
                "text_neighbour_weight",
                "min_item_likes",
                "ease_keep",
                "ease_half_precision",
                "text_weight",
                "candidates",
                "half_life_days",
            }
        ),
        "models": {},
    }
    ndcg: dict[str, np.ndarray] = {}
    for name, score in models.items():
        ranked, relevant = rank_users(score, data, column, k, when, split)
        row = {"all": ranking_metrics(ranked, relevant, k, size)}
        ndcg[name] = per_user_ranking(ranked, relevant, k)[f"ndcg@{k}"]
        if len(cold):
            ranked_cold, relevant_cold = rank_users(score, data, column, k, when, split, pool=cold)
            row["cold_pool"] = ranking_metrics(ranked_cold, relevant_cold, k, len(cold))
        results["models"][name] = row
    if "hybrid" in ndcg:  # is the hybrid's lead over the best classic model more than noise?
        best = max(("popularity", "itemknn", "ease"), key=lambda name: float(ndcg[name].mean()))
        results["hybrid_vs_best_classic"] = {"baseline": best, "metric": f"ndcg@{k}", **paired_bootstrap(ndcg["hybrid"], ndcg[best])}
    return results
