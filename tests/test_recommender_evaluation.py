from __future__ import annotations

import numpy as np
import pytest

from services.recommender.evaluation import evaluate, likes_before
from services.recommender.settings import RecommenderSettings
from shared_backbone.data import Movie, MovieLensData, Rating
from shared_backbone.training import RecommendationData

# films 1-3 and 8 are sci-fi, 4-7 comedies; 7 and 8 nobody liked before the test period (cold)
MOVIES = {i: Movie(i, f"Film {i}", 2000, ("Sci-Fi",) if i in (1, 2, 3, 8) else ("Comedy",)) for i in range(1, 9)}
VECTORS = np.array([[1, 0]] * 3 + [[0, 1]] * 4 + [[1, 0]], dtype=np.float32)


def data() -> tuple[RecommendationData, list[tuple[int, int, float]]]:
    history = {10: [1, 2], 11: [4, 5], 12: [4]}
    held_out = {10: {3, 8}, 11: {7}, 12: {6}}
    seen = {u: set(items) for u, items in history.items()}
    rec = RecommendationData(MOVIES, sorted(MOVIES), [], {"test": history}, {"test": seen}, {"test": held_out})
    # other users who liked together the films the test users go on to like
    pairs = [(u, m) for u, items in history.items() for m in items] + [(20, 1), (20, 3), (21, 4), (21, 6), (22, 5), (22, 6)]
    return rec, [(u, m, float(n)) for n, (u, m) in enumerate(pairs)]


def test_every_model_is_scored_on_the_same_users_and_the_cold_pool() -> None:
    rec, likes = data()
    settings = RecommenderSettings(ease_l2=1.0, candidates=10, text_neighbours=1, seed_dir=None)
    result = evaluate(rec, likes, VECTORS, settings=settings, k=1, knn_neighbours=5)
    assert set(result["models"]) == {"popularity", "itemknn", "ease", "content", "ease+text-neighbours", "hybrid"}
    assert result["cold_items"] == 2 and result["catalogue"] == 8
    for name, row in result["models"].items():
        assert row["all"]["users"] == 3 and row["cold_pool"]["users"] == 2, name
    # within the cold pool only text can tell the sci-fi fan's film from the comedy fan's
    assert result["models"]["content"]["cold_pool"]["hr@1"] == pytest.approx(1.0)
    assert result["models"]["popularity"]["cold_pool"]["hr@1"] == pytest.approx(0.5)
    assert result["models"]["itemknn"]["all"]["hr@1"] == pytest.approx(2 / 3)  # user 11 went on to like only a cold film
    # the hybrid keeps text's edge on cold films, which the collaborative side cannot score
    assert result["models"]["hybrid"]["cold_pool"]["hr@1"] == pytest.approx(1.0)
    assert result["settings"]["text_neighbours"] == 1
    assert evaluate(rec, likes, None, settings=settings, k=1)["models"].keys() == {"popularity", "itemknn", "ease"}


def test_likes_before_keep_only_positive_ratings_before_the_evaluated_period() -> None:
    movielens = MovieLensData(MOVIES, [Rating(1, 1, 5.0, 0), Rating(1, 2, 2.0, 1)], [Rating(1, 3, 4.0, 2)], [Rating(1, 4, 5.0, 3)])
    assert likes_before(movielens) == [(1, 1, 0.0), (1, 3, 2.0)]
    assert likes_before(movielens, "validation") == [(1, 1, 0.0)]
    with pytest.raises(ValueError, match="split"):
        likes_before(movielens, "train")
