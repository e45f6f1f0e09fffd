from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from services.recommender.collaborative import (
    EASE,
    CollaborativeModel,
    InteractionMatrix,
    ItemKNN,
    Popularity,
    keep_strongest,
    text_neighbour_rows,
)

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


def test_text_neighbour_rows_link_each_item_to_its_nearest_descriptions() -> None:
    vectors = np.array([[1, 0], [0.95, 0.3], [0, 1], [0.2, 0.98]], dtype=np.float32)
    rows = text_neighbour_rows(vectors, neighbours=1).toarray()
    assert rows.shape == (4, 4)
    assert rows[0].tolist() == [1, 1, 0, 0] and rows[2].tolist() == [0, 0, 1, 1]
    assert text_neighbour_rows(vectors, neighbours=0).shape == (0, 4)


def test_text_neighbours_let_ease_link_a_rarely_liked_film_to_its_look_alike() -> None:
    # item 30 was liked once, by a user with no other likes: plain EASE cannot connect it to anything
    likes = [*LIKES, (6, 30)]
    interactions = InteractionMatrix.build(likes, ITEMS)
    vectors = np.array([[1, 0, 0], [1, 0, 0], [1, 0, 0], [0, 1, 0], [0, 1, 0], [0.9, 0, 0.1]], dtype=np.float32)
    plain = CollaborativeModel(l2=1.0).fit(interactions)
    with_text = CollaborativeModel(l2=1.0, text_neighbours=2, text_weight=1.0).fit(interactions, vectors)
    assert plain.scores([5], 6)[:3].max() == pytest.approx(0.0)
    lifted = with_text.scores([5], 6)
    assert lifted[:3].max() > 0 and lifted[:3].max() > lifted[3:5].max()  # towards the look-alikes, not the other group


def test_collaborative_model_covers_items_with_enough_likes_and_scores_a_grown_catalogue(tmp_path: Path) -> None:
    interactions = InteractionMatrix.build(LIKES, ITEMS)
    model = CollaborativeModel(l2=1.0, min_item_likes=2).fit(interactions)
    assert model.columns.tolist() == [0, 1, 2, 3]  # item 21 (one like) and 30 (none) are left to text
    assert model.like_counts.tolist() == [2, 3, 2, 2, 1, 0]
    scores = model.scores([0], size=8)  # two items were added after the fit
    assert scores.shape == (8,) and scores[4:].tolist() == [0, 0, 0, 0] and scores[1] > 0
    assert model.weight(0, 1) == pytest.approx(scores[1]) and model.weight(0, 7) == 0.0 and not model.covers(5)
    assert model.scores([5], size=6).tolist() == [0] * 6  # liking an uncovered item lifts nothing
    model.save(tmp_path / "model.npz")
    loaded = CollaborativeModel()
    assert loaded.load(tmp_path / "model.npz") and np.array_equal(loaded.scores([0], 8), scores)
    assert not CollaborativeModel().load(tmp_path / "missing.npz")
    with pytest.raises(ValueError, match="min_item_likes"):
        CollaborativeModel(min_item_likes=0)


def test_keep_strongest_keeps_each_rows_largest_magnitudes_in_any_chunking() -> None:
    weights = np.array([[0.0, 0.5, -0.9, 0.1], [0.2, 0.0, 0.3, -0.25], [0.0, 0.0, 0.0, 0.0]], dtype=np.float32)
    for chunk in (1, 2, 512):
        pruned = keep_strongest(weights, keep=2, chunk=chunk)
        expected = np.array([[0, 0.5, -0.9, 0], [0, 0, 0.3, -0.25], [0, 0, 0, 0]], dtype=np.float32)
        assert np.array_equal(pruned.toarray(), expected)
        assert pruned.nnz == 4  # the all-zero row stores nothing
    assert np.array_equal(keep_strongest(weights, keep=4).toarray(), weights)  # keeping every column changes nothing


def test_a_pruned_model_scores_like_the_dense_one_on_its_strongest_links_and_round_trips(tmp_path: Path) -> None:
    interactions = InteractionMatrix.build(LIKES, ITEMS)
    dense = CollaborativeModel(l2=1.0).fit(interactions)
    pruned = CollaborativeModel(l2=1.0, keep=2).fit(interactions)
    assert pruned.parameters <= 2 * len(pruned.columns) < dense.parameters and pruned.nbytes < dense.nbytes
    for liked in range(5):  # each item still lifts its two strongest partners by the same amount
        full, kept = dense.scores([liked], 6), pruned.scores([liked], 6)
        strongest = np.argsort(-np.abs(full))[:2]
        assert kept[strongest] == pytest.approx(full[strongest]) and np.count_nonzero(kept) <= 2
        assert pruned.weight(liked, int(strongest[0])) == pytest.approx(float(full[strongest[0]]))
    pruned.save(tmp_path / "pruned.npz")
    loaded = CollaborativeModel(keep=2)
    assert loaded.load(tmp_path / "pruned.npz") and np.array_equal(loaded.scores([0, 3], 6), pruned.scores([0, 3], 6))
    with np.load(tmp_path / "pruned.npz") as saved:  # a damaged file (an index past the end) is refitted, never served
        arrays = dict(saved)
    arrays["indices"] = arrays["indices"] + 100
    np.savez(tmp_path / "damaged.npz", **arrays)
    assert not CollaborativeModel(keep=2).load(tmp_path / "damaged.npz")
    with pytest.raises(ValueError, match="keep"):
        CollaborativeModel(keep=-1)


def test_a_half_precision_model_halves_the_matrix_and_ranks_like_the_full_one(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    items = list(range(60))
    likes = [(int(u), int(i)) for u in range(200) for i in rng.choice(60, size=8, replace=False, p=np.linspace(2, 1, 60) / 90)]
    interactions = InteractionMatrix.build(likes, items)
    full = CollaborativeModel(l2=5.0).fit(interactions)
    half = CollaborativeModel(l2=5.0, half_precision=True).fit(interactions)
    assert half.weights.dtype == np.float16 and full.weights.dtype == np.float32
    assert half.nbytes * 2 == full.nbytes
    liked = [3, 17, 42]
    exact, rounded = full.scores(liked, 60), half.scores(liked, 60)
    assert rounded.dtype == np.float32
    assert np.abs(rounded - exact).max() <= 1e-3 * np.abs(exact).max()  # float16 keeps about three digits
    assert np.argsort(-exact)[:10].tolist() == np.argsort(-rounded)[:10].tolist()
    half.save(tmp_path / "half.npz")
    reloaded = CollaborativeModel(half_precision=True)
    assert reloaded.load(tmp_path / "half.npz") and reloaded.weights.dtype == np.float16
    assert np.array_equal(reloaded.scores(liked, 60), rounded)
    widened = CollaborativeModel()  # a model set to full precision reads a half-precision file as float32
    assert widened.load(tmp_path / "half.npz") and widened.weights.dtype == np.float32
