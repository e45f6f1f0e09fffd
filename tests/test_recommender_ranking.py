from __future__ import annotations

import numpy as np
import pytest

from services.recommender.ranking import (
    SECONDS_PER_DAY,
    ItemFacts,
    because_you_liked,
    blend,
    matching_words,
    mmr,
    passes,
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


def test_blend_scales_each_source_and_counts_missing_as_zero() -> None:
    scores = blend({1: 0.9, 2: 0.5}, {2: 10.0, 3: 0.0}, collaborative_weight=0.5)
    assert scores == pytest.approx({1: 0.5, 2: 0.5, 3: 0.0})
    assert blend({1: 0.9, 2: 0.5}, {3: 5.0}, 0.0) == pytest.approx({1: 1.0, 2: 0.0, 3: 0.0})
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        blend({}, {}, 1.5)


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


def test_reasons_name_the_nearest_liked_item_or_the_shared_words() -> None:
    liked = [ALIEN, AIRPLANE]
    reason = because_you_liked(unit([0.1, 1])[0], liked, unit([1, 0], [0, 1]))
    assert reason == "because you liked Airplane! (1980)"
    assert because_you_liked(unit([1, 0])[0], [], np.zeros((0, 2))) is None
    assert matching_words("a funny space adventure", ALIEN) == "matches 'space'"
    assert matching_words("a FUNNY parody please", AIRPLANE) == "matches 'funny, parody'"
    assert matching_words("something gentle", AIRPLANE) is None
