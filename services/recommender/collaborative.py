"""Collaborative signal from the interaction matrix: popularity, item co-occurrence, EASE.

These are both the recommender's collaborative candidates and the classic baselines its evaluation
reports beside the hybrid, so the two always use the same code. The service's model is EASE with
optional text-neighbour rows (side information from the backbone).
"""

from __future__ import annotations

import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
from scipy import sparse


@dataclass(frozen=True)
class InteractionMatrix:
    """Users x items, 1 where the user liked the item; ids map to rows and columns."""

    matrix: sparse.csr_matrix
    user_ids: tuple[int, ...]
    item_ids: tuple[int, ...]

    @classmethod
    def build(cls, pairs: Iterable[tuple[int, int]], item_ids: Sequence[int]) -> InteractionMatrix:
        """From (user id, item id) likes; items outside ``item_ids`` are ignored, duplicates count once."""
        column = {item: i for i, item in enumerate(item_ids)}
        kept = sorted({(u, column[i]) for u, i in pairs if i in column})
        users = tuple(sorted({u for u, _ in kept}))
        row = {user: r for r, user in enumerate(users)}
        rows = np.array([row[u] for u, _ in kept], dtype=np.int64)
        cols = np.array([c for _, c in kept], dtype=np.int64)
        data = np.ones(len(kept), dtype=np.float32)
        matrix = sparse.csr_matrix((data, (rows, cols)), shape=(len(users), len(item_ids)))
        return cls(matrix, users, tuple(item_ids))

    def rows_for(self, liked_columns: Sequence[Sequence[int]]) -> sparse.csr_matrix:
        """A matrix of arbitrary users (e.g. a new user's picks) in this matrix's item columns."""
        indptr = np.cumsum([0, *(len(c) for c in liked_columns)])
        indices = np.array([i for c in liked_columns for i in c], dtype=np.int64)
        return sparse.csr_matrix((np.ones(len(indices), dtype=np.float32), indices, indptr), shape=(len(liked_columns), len(self.item_ids)))


class Scorer(Protocol):
    name: str

    def fit(self, interactions: InteractionMatrix) -> Scorer: ...

    def scores(self, rows: sparse.csr_matrix) -> np.ndarray:
        """One row of item scores per user row; higher is better."""
        ...


class Popularity:
    name = "popularity"

    def __init__(self) -> None:
        self.counts: np.ndarray | None = None

    def fit(self, interactions: InteractionMatrix) -> Popularity:
        self.counts = np.asarray(interactions.matrix.sum(axis=0)).ravel().astype(np.float32)
        return self

    def scores(self, rows: sparse.csr_matrix) -> np.ndarray:
        assert self.counts is not None, "fit() first"
        return np.tile(self.counts, (rows.shape[0], 1))


class ItemKNN:
    """Cosine similarity of item columns, each item keeping its ``neighbours`` nearest."""

    name = "itemknn"

    def __init__(self, neighbours: int = 100) -> None:
        if neighbours < 1:
            raise ValueError("neighbours must be at least 1")
        self.neighbours = neighbours
        self.similarity: sparse.csr_matrix | None = None

    def fit(self, interactions: InteractionMatrix) -> ItemKNN:
        x = interactions.matrix.tocsc().astype(np.float32)
        norms = np.sqrt(np.asarray(x.multiply(x).sum(axis=0)).ravel())
        norms[norms == 0] = 1.0
        similarity = (x.T @ x).toarray() / np.outer(norms, norms)
        np.fill_diagonal(similarity, 0.0)
        if self.neighbours < similarity.shape[1]:
            cut = np.argpartition(-similarity, self.neighbours - 1, axis=1)[:, self.neighbours :]
            np.put_along_axis(similarity, cut, 0.0, axis=1)
        self.similarity = sparse.csr_matrix(similarity.astype(np.float32))
        return self

    def scores(self, rows: sparse.csr_matrix) -> np.ndarray:
        assert self.similarity is not None, "fit() first"
        return np.asarray((rows @ self.similarity).todense(), dtype=np.float32)


def text_neighbour_rows(vectors: np.ndarray, neighbours: int) -> sparse.csr_matrix:
    """One pseudo-viewer per item who "liked" it and its ``neighbours`` nearest items by text.

    Stacked under the interaction matrix (side information as extra rows, as in Jeunen et al.'s
    closed-form models with side information, 2020), these let EASE link films that few people rated
    but whose descriptions agree, while the Gram matrix stays positive semi-definite.
    """
    count = len(vectors)
    neighbours = min(neighbours, count - 1)
    if neighbours <= 0:
        return sparse.csr_matrix((0, count), dtype=np.float32)
    similarity = vectors @ vectors.T
    np.fill_diagonal(similarity, -np.inf)
    nearest = np.argpartition(-similarity, neighbours - 1, axis=1)[:, :neighbours]
    columns = np.concatenate([np.arange(count)[:, None], nearest], axis=1).ravel()
    rows = np.repeat(np.arange(count), neighbours + 1)
    return sparse.csr_matrix((np.ones(len(rows), dtype=np.float32), (rows, columns)), shape=(count, count))


class EASE:
    """Steck's EASE (WWW 2019): a closed-form item-item model with a zero diagonal.

    ``side_rows`` (pseudo-viewers in the same item columns, weighted by ``side_weight``) add side
    information to the Gram matrix; without them this is plain EASE.
    """

    name = "ease"

    def __init__(self, l2: float = 100.0, side_weight: float = 0.0) -> None:
        if l2 <= 0:
            raise ValueError("l2 must be positive")
        if side_weight < 0:
            raise ValueError("side_weight must not be negative")
        self.l2 = l2
        self.side_weight = side_weight
        self.weights: np.ndarray | None = None

    def fit(self, interactions: InteractionMatrix, side_rows: sparse.csr_matrix | None = None) -> EASE:
        x = interactions.matrix
        gram = (x.T @ x).toarray().astype(np.float64)
        if side_rows is not None and self.side_weight > 0:
            if side_rows.shape[1] != x.shape[1]:
                raise ValueError("side rows must have one column per item")
            gram += self.side_weight * (side_rows.T @ side_rows).toarray()
        gram[np.diag_indices_from(gram)] += self.l2
        precision = np.linalg.inv(gram)
        weights = -precision / np.diag(precision)[None, :]
        np.fill_diagonal(weights, 0.0)
        self.weights = weights.astype(np.float32)
        return self

    def scores(self, rows: sparse.csr_matrix) -> np.ndarray:
        assert self.weights is not None, "fit() first"
        return np.asarray(rows @ self.weights, dtype=np.float32)


def keep_strongest(weights: np.ndarray, keep: int, chunk: int = 512) -> sparse.csr_matrix:
    """Each row's ``keep`` largest weights by magnitude, as a sparse matrix.

    A liked item then lifts at most ``keep`` others: a dense item-item matrix grows with the square
    of the catalogue (5,300 liked films: 108 MB), the pruned one with its length. Rows go in chunks
    so the sort never holds a second full-size copy.
    """
    rows, columns = weights.shape
    if keep <= 0 or keep >= columns:
        return sparse.csr_matrix(weights)
    parts = []
    for start in range(0, rows, chunk):
        block = weights[start : start + chunk]
        strongest = np.argpartition(-np.abs(block), keep - 1, axis=1)[:, :keep]
        strongest.sort(axis=1)
        values = np.take_along_axis(block, strongest, axis=1)
        indptr = np.arange(0, len(block) * keep + 1, keep, dtype=np.int64)
        parts.append(sparse.csr_matrix((values.ravel(), strongest.ravel(), indptr), shape=(len(block), columns)))
    pruned = sparse.vstack(parts, format="csr")
    pruned.eliminate_zeros()  # the zero diagonal may be among a short row's strongest
    return pruned


# rows of the dense matrix copied per step when scoring: a viewer with 1,000 likes would otherwise copy
# 1,000 x 6,300 weights per request, and such large short-lived blocks fragment the allocator's heap
ROWS_PER_SUM = 64


class CollaborativeModel:
    """The service's collaborative scorer: EASE over items liked at least ``min_item_likes`` times,
    with optional text-neighbour rows, scoring any set of liked items over the whole catalogue.

    A new viewer's likes score at once (a row times the weights, no refit); items added after the
    fit score 0 until the next fit and are left to the text side of the blend. ``keep`` > 0 keeps
    each item's strongest ``keep`` weights only (sparse), which bounds memory by the catalogue's length;
    ``half_precision`` holds the dense matrix in float16 (half the memory; scores still sum in float32).
    """

    def __init__(
        self,
        l2: float = 100.0,
        text_neighbours: int = 0,
        text_weight: float = 1.0,
        min_item_likes: int = 1,
        keep: int = 0,
        *,
        half_precision: bool = False,
    ) -> None:
        if text_neighbours < 0 or min_item_likes < 1 or keep < 0:
            raise ValueError("text_neighbours >= 0, min_item_likes >= 1 and keep >= 0 are needed")
        self.l2, self.text_neighbours, self.text_weight, self.min_item_likes = l2, text_neighbours, text_weight, min_item_likes
        self.keep, self.half_precision = keep, half_precision
        self.columns = np.zeros(0, dtype=np.int64)  # catalogue columns the model covers
        self.weights: np.ndarray | sparse.csr_matrix = np.zeros((0, 0), dtype=np.float32)
        self.like_counts = np.zeros(0, dtype=np.float32)  # per catalogue column at fit time
        self._position: dict[int, int] = {}

    def fit(self, interactions: InteractionMatrix, vectors: np.ndarray | None = None) -> CollaborativeModel:
        counts = np.asarray(interactions.matrix.sum(axis=0)).ravel().astype(np.float32)
        columns = np.flatnonzero(counts >= self.min_item_likes)
        if len(columns):
            sub = InteractionMatrix(
                interactions.matrix[:, columns].tocsr(), interactions.user_ids, tuple(interactions.item_ids[c] for c in columns)
            )
            side = None
            if vectors is not None and self.text_neighbours > 0:
                side = text_neighbour_rows(np.asarray(vectors, dtype=np.float32)[columns], self.text_neighbours)
            dense = EASE(self.l2, self.text_weight).fit(sub, side).weights
            assert dense is not None
            weights: np.ndarray | sparse.csr_matrix = keep_strongest(dense, self.keep) if self.keep else dense
        else:
            weights = np.zeros((0, 0), dtype=np.float32)
        self._set(columns, weights, counts)
        return self

    @property
    def nbytes(self) -> int:
        """Memory of the item-item weights (the model's size)."""
        w = self.weights
        return int(w.data.nbytes + w.indices.nbytes + w.indptr.nbytes) if sparse.issparse(w) else int(w.nbytes)

    @property
    def parameters(self) -> int:
        return int(self.weights.nnz) if sparse.issparse(self.weights) else int(self.weights.size)

    def _set(self, columns: np.ndarray, weights: np.ndarray | sparse.csr_matrix, counts: np.ndarray) -> None:
        if not sparse.issparse(weights):
            weights = weights.astype(np.float16 if self.half_precision else np.float32, copy=False)
        self.columns, self.weights, self.like_counts = columns.astype(np.int64), weights, counts
        self._position = {int(c): n for n, c in enumerate(self.columns)}

    def scores(self, liked_columns: Sequence[int], size: int) -> np.ndarray:
        """Scores for ``size`` catalogue columns (the catalogue may have grown since the fit)."""
        out = np.zeros(size, dtype=np.float32)
        rows = [self._position[c] for c in liked_columns if c in self._position]
        if not rows:
            return out
        if sparse.issparse(self.weights):
            out[self.columns] = np.asarray(self.weights[rows].sum(axis=0)).ravel()
            return out
        total = np.zeros(len(self.columns), dtype=np.float32)
        for start in range(0, len(rows), ROWS_PER_SUM):  # a long history never copies all its rows at once
            total += self.weights[rows[start : start + ROWS_PER_SUM]].sum(axis=0, dtype=np.float32)
        out[self.columns] = total
        return out

    def covers(self, column: int) -> bool:
        return column in self._position

    def weight(self, from_column: int, to_column: int) -> float:
        """How much liking one item lifts another: the basis of "because you liked X"."""
        a, b = self._position.get(from_column), self._position.get(to_column)
        return 0.0 if a is None or b is None else float(self.weights[a, b])

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        staged = path.with_name(f"staged-{path.name}")
        w = self.weights
        with staged.open("wb") as handle:
            if sparse.issparse(w):
                np.savez(
                    handle,
                    columns=self.columns,
                    like_counts=self.like_counts,
                    data=w.data,
                    indices=w.indices,
                    indptr=w.indptr,
                    shape=w.shape,
                )
            else:
                np.savez(handle, columns=self.columns, weights=w, like_counts=self.like_counts)
        staged.replace(path)

    def load(self, path: Path) -> bool:
        try:
            with np.load(path, allow_pickle=False) as saved:
                if "weights" in saved:
                    weights: np.ndarray | sparse.csr_matrix = saved["weights"]
                else:
                    weights = sparse.csr_matrix((saved["data"], saved["indices"], saved["indptr"]), shape=tuple(saved["shape"]))
                    weights.check_format(full_check=True)
                columns = saved["columns"]
                if weights.shape != (len(columns), len(columns)):
                    raise ValueError("weights do not match the columns")
                self._set(columns, weights, saved["like_counts"])
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):  # missing or damaged: fit again
            return False
        return True
