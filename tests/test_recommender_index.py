from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from services.recommender.index import ItemIndex, content_key


def vectors(n: int, dimension: int = 8, seed: int = 0) -> np.ndarray:
    rows = np.random.default_rng(seed).normal(size=(n, dimension)).astype(np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def test_build_search_add_and_reload(tmp_path: Path) -> None:
    ids, rows = [10, 20, 30, 40], vectors(4)
    key = content_key(ids, ["a", "b", "c", "d"])
    index = ItemIndex(tmp_path)
    index.build("backbone@1", ids, rows, key)
    assert index.kind == "flat" and len(index) == 4 and 30 in index
    assert index.search(rows[2:3], 1)[0][0][0] == 30
    new = vectors(1, seed=9)
    index.add([50], new)  # searchable at once
    assert index.search(new, 1)[0][0] == (50, pytest.approx(1.0, abs=1e-5))
    assert np.allclose(index.vectors([50, 10]), np.vstack([new, rows[:1]]))
    with pytest.raises(ValueError, match="already indexed"):
        index.add([10], new)
    again = ItemIndex(tmp_path)
    assert again.load("backbone@1", key) and len(again) == 4  # the saved state: add() is not persisted by itself
    assert not ItemIndex(tmp_path).load("backbone@1", content_key(ids, ["a", "b", "c", "changed"]))
    assert not ItemIndex(tmp_path).load("backbone@2", key)


def test_large_catalogues_switch_to_hnsw(tmp_path: Path) -> None:
    rows = vectors(300, dimension=16, seed=1)
    index = ItemIndex(tmp_path, hnsw_above=100, hnsw_m=16, ef_search=64)
    index.build("b", list(range(300)), rows, "k")
    assert index.kind.startswith("hnsw")
    found = [index.search(rows[i : i + 1], 1)[0][0][0] for i in range(0, 300, 10)]
    assert found == list(range(0, 300, 10))


def test_bad_input_and_a_damaged_folder(tmp_path: Path) -> None:
    index = ItemIndex(tmp_path)
    with pytest.raises(RuntimeError, match="build"):
        index.search(vectors(1), 3)
    with pytest.raises(ValueError, match="distinct"):
        index.build("b", [1, 1], vectors(2), "k")
    index.build("b", [1, 2], vectors(2), "k")
    assert index.search(vectors(1), 0) == [[]] and len(index.search(vectors(1), 99)[0]) == 2
    (tmp_path / "b" / "ids.npy").write_bytes(b"garbage")
    assert not ItemIndex(tmp_path).load("b", "k")
    with pytest.raises(ValueError):
        ItemIndex(tmp_path, hnsw_above=0)
