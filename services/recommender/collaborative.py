"""Collaborative signal from the interaction matrix alone: popularity, item co-occurrence, EASE.

These are both the recommender's collaborative candidates and the classic baselines its evaluation
reports beside the hybrid, so the two always use the same code.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
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


class EASE:
    """Steck's EASE (WWW 2019): a closed-form item-item model with a zero diagonal."""

    name = "ease"

    def __init__(self, l2: float = 100.0) -> None:
        if l2 <= 0:
            raise ValueError("l2 must be positive")
        self.l2 = l2
        self.weights: np.ndarray | None = None

    def fit(self, interactions: InteractionMatrix) -> EASE:
        x = interactions.matrix
        gram = (x.T @ x).toarray().astype(np.float64)
        gram[np.diag_indices_from(gram)] += self.l2
        precision = np.linalg.inv(gram)
        weights = -precision / np.diag(precision)[None, :]
        np.fill_diagonal(weights, 0.0)
        self.weights = weights.astype(np.float32)
        return self

    def scores(self, rows: sparse.csr_matrix) -> np.ndarray:
        assert self.weights is not None, "fit() first"
        return np.asarray(rows @ self.weights, dtype=np.float32)
