from __future__ import annotations

import numpy as np
import pytest

from services.recommender.collaborative import EASE, InteractionMatrix, ItemKNN, Popularity

# two taste groups: users 1-3 like items 10/11/12, users 4-5 like 20/21; item 30 nobody likes
LIKES = [(1, 10), (1, 11), (2, 10), (2, 11), (2, 12), (3, 11), (3, 12), (4, 20), (4, 21), (5, 20), (5, 20)]
ITEMS = [10, 11, 12, 20, 21, 30]


def test_matrix_maps_ids_and_drops_duplicates_and_unknown_items() -> None:
    interactions = InteractionMatrix.build([*LIKES, (6, 999)], ITEMS)
    assert interactions.user_ids == (1, 2, 3, 4, 5) and interactions.item_ids == tuple(ITEMS)
    assert interactions.matrix.shape == (5, 6) and interactions.matrix.sum() == 10
    new_user = interactions.rows_for([[0], []])
    assert new_user.shape == (2, 6) and new_user.sum() == 1


def test_popularity_counts_likes() -> None:
    scores = Popularity().fit(InteractionMatrix.build(LIKES, ITEMS)).scores(InteractionMatrix.build(LIKES, ITEMS).rows_for([[]]))
    assert scores.tolist() == [[2, 3, 2, 2, 1, 0]]


@pytest.mark.parametrize("scorer", [ItemKNN(neighbours=3), EASE(l2=1.0)])
def test_item_models_recommend_within_the_taste_group(scorer: ItemKNN | EASE) -> None:
    interactions = InteractionMatrix.build(LIKES, ITEMS)
    scorer.fit(interactions)
    liked_10 = interactions.rows_for([[0]])  # someone who liked item 10 only
    scores = scorer.scores(liked_10)[0]
    assert scores.shape == (6,)
    assert int(np.argmax(np.where(np.arange(6) == 0, -np.inf, scores))) in (1, 2)  # 11 or 12, not 20/21/30
    assert max(scores[1], scores[2]) > max(scores[3], scores[4]) and scores[5] == 0


def test_bad_hyperparameters_are_refused() -> None:
    with pytest.raises(ValueError, match="neighbours"):
        ItemKNN(neighbours=0)
    with pytest.raises(ValueError, match="l2"):
        EASE(l2=0)
