from __future__ import annotations

import numpy as np
import pytest

from services.recommender.ranking import (
    SECONDS_PER_DAY,
    ItemFacts,
    Spread,
    because_you_liked,
    blend,
    hybrid_candidates,
    matching_words,
    mmr,
    passes,
    text_spread,
    user_profile,
)

ALIEN = ItemFacts(1, "Alien (1979)", 1979, ("Horror", "Sci-Fi"), "Alien (1979) Genres: Horror, Sci-Fi. Tags: space, creature.")
AIRPLANE = ItemFacts(2, "Airplane! (1980)", 1980, ("Comedy",), "Airplane! (1980) Genres: Comedy. Tags: parody, funny.")
UNDATED = ItemFacts(3, "Untitled", None, ("Drama",), "Untitled Genres: Drama.")


def unit(*rows: list[float]) -> np.ndarray:
    matrix = np.array(rows, dtype=np.float32)
    return matrix / np.linalg.norm(matrix, axis=1, keepdims=True)


def test_profile_weighs_recent_likes_more_and_is_unit_length() -> None:
    liked = unit([1, 0], [0, 1])
    old_then_new = [0.0, 30 * SECONDS_PER_DAY]
    recent = user_profile(liked, old_then_new, half_life_days=10)
    assert recent[1] > recent[0] * 7  # 30 days = 3 half-lives: weight 1/8
    assert np.isclose(np.linalg.norm(recent), 1.0)
    even = user_profile(liked, old_then_new, half_life_days=None)
    assert np.allclose(even, unit([1, 1])[0])
    with pytest.raises(ValueError, match="at least one"):
        user_profile(np.zeros((0, 2)), [], 10)
    with pytest.raises(ValueError, match="positive"):
        user_profile(liked, old_then_new, 0)


def test_blend_standardises_each_source_over_the_catalogue() -> None:
    text_catalogue = np.array([0.1, 0.2, 0.3, 0.4])
    collaborative = np.array([0.0, 0.0, 4.0, 0.0])
    text, collab = Spread.of(text_catalogue), Spread.of(collaborative)
    assert text.mean == pytest.approx(0.25) and collab.std == pytest.approx(np.sqrt(3.0))
    only_collab = blend(text_catalogue, text, collaborative, collab, text_weight=0.0)
    assert int(np.argmax(only_collab)) == 2 and only_collab[2] == pytest.approx(3 / np.sqrt(3.0))
    only_text = blend(text_catalogue, text, collaborative, collab, text_weight=1.0)
    assert only_text.tolist() == pytest.approx(text.standardise(text_catalogue).tolist()) and int(np.argmax(only_text)) == 3
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        blend(text_catalogue, text, collaborative, collab, 1.5)


def test_text_spread_from_running_sums_matches_scoring_every_item() -> None:
    rng = np.random.default_rng(0)
    vectors = unit(*rng.normal(size=(50, 8)).tolist())
    profile = unit(rng.normal(size=8).tolist())[0]
    exact = Spread.of(vectors @ profile)
    fast = text_spread(vectors.sum(axis=0).astype(np.float64), vectors.T.astype(np.float64) @ vectors, len(vectors), profile)
    assert fast.mean == pytest.approx(exact.mean, abs=1e-6) and fast.std == pytest.approx(exact.std, abs=1e-5)


def test_hybrid_candidates_join_both_sources_and_score_each_exactly() -> None:
    vectors = unit([1, 0], [0.9, 0.1], [0, 1], [0.1, 0.9], [0.7, 0.7])
    profile = unit([1, 0])[0]
    collaborative = np.array([0.0, 0.0, 0.0, 5.0, 0.0], dtype=np.float32)
    spread = Spread.of(vectors @ profile)
    pool, scores = hybrid_candidates(profile, vectors, [0, 1], spread, collaborative, text_weight=0.5, candidates=1)
    assert set(pool.tolist()) == {0, 1, 3}  # text's two and collaborative's one
    assert list(scores) == sorted(scores, reverse=True)
    assert pool[0] == 3  # far above the crowd on collaborative signal outweighs a modest text score
    text_only = hybrid_candidates(profile, vectors, [0, 1], spread, collaborative, text_weight=1.0, candidates=1)[0]
    assert text_only[0] == 0


def test_filters_on_genre_and_year() -> None:
    assert passes(ALIEN, genres=["sci-fi"]) and not passes(AIRPLANE, genres=["sci-fi", "drama"])
    assert passes(AIRPLANE, year_from=1980, year_to=1980) and not passes(ALIEN, year_from=1980)
    assert not passes(UNDATED, year_to=2000) and passes(UNDATED)


def test_mmr_trades_relevance_for_variety() -> None:
    # two near-identical items on top, a different one just below
    embeddings = unit([1, 0], [0.99, 0.01], [0, 1])
    relevance = [1.0, 0.95, 0.9]
    assert mmr(relevance, embeddings, 2, diversity=0.0) == [0, 1]
    assert mmr(relevance, embeddings, 2, diversity=0.5) == [0, 2]
    assert mmr(relevance, embeddings, 10, diversity=0.3) == [0, 2, 1]
    assert mmr(relevance, embeddings, 0, diversity=0.3) == []
    with pytest.raises(ValueError, match="diversity"):
        mmr(relevance, embeddings, 2, diversity=2)


def test_reasons_name_the_liked_item_that_lifts_most_else_the_nearest() -> None:
    assert because_you_liked(np.array([0.0, 0.3, 0.1]), np.array([0.9, 0.1, 0.5])) == 1  # collaborative lift wins
    assert because_you_liked(np.array([0.0, -0.2, 0.0]), np.array([0.2, 0.1, 0.5])) == 2  # no lift: nearest text
    with pytest.raises(ValueError, match="one lift"):
        because_you_liked(np.zeros(0), np.zeros(0))
    assert matching_words("a funny space adventure", ALIEN) == "matches 'space'"
    assert matching_words("a FUNNY parody please", AIRPLANE) == "matches 'funny, parody'"
    assert matching_words("something gentle", AIRPLANE) is None
