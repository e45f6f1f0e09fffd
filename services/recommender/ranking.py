"""Turning candidates into a short list: user profile, blending, filters, diversity (MMR) and reasons.

Pure functions over arrays and plain records, so every step is testable without a model or a database.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

SECONDS_PER_DAY = 86_400.0
_WORD = re.compile(r"[a-z0-9']+")
_STOPWORDS = frozenset(
    [
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "by",
        "for",
        "from",
        "i",
        "in",
        "is",
        "it",
        "me",
        "my",
        "of",
        "on",
        "or",
        "so",
        "some",
        "that",
        "the",
        "this",
        "to",
        "with",
        "want",
        "like",
        "something",
        "about",
        "film",
        "movie",
    ]
)


@dataclass(frozen=True)
class ItemFacts:
    """What filters and reasons need to know about an item."""

    item_id: int
    title: str
    year: int | None
    genres: tuple[str, ...]
    text: str


def user_profile(embeddings: np.ndarray, timestamps: Sequence[float], half_life_days: float | None) -> np.ndarray:
    """Recency-weighted mean of liked items' embeddings, unit length.

    Recency is measured from the user's own latest like, so an account idle for years still has a
    profile; ``None`` weighs every like the same.
    """
    if len(embeddings) == 0:
        raise ValueError("a profile needs at least one liked item")
    if len(embeddings) != len(timestamps):
        raise ValueError("one timestamp per embedding is needed")
    times = np.asarray(timestamps, dtype=np.float64)
    if half_life_days is None:
        weights = np.ones(len(times))
    else:
        if half_life_days <= 0:
            raise ValueError("half_life_days must be positive")
        age_days = (times.max() - times) / SECONDS_PER_DAY
        weights = 0.5 ** (age_days / half_life_days)
    profile = (weights[:, None] * embeddings).sum(axis=0)
    norm = np.linalg.norm(profile)
    return (profile / norm if norm > 0 else profile).astype(np.float32)


def _min_max(scores: Mapping[int, float]) -> dict[int, float]:
    if not scores:
        return {}
    values = np.array(list(scores.values()), dtype=np.float64)
    low, span = values.min(), values.max() - values.min()
    return {item: (float(score) - low) / span if span > 0 else 1.0 for item, score in scores.items()}


def blend(content: Mapping[int, float], collaborative: Mapping[int, float], collaborative_weight: float) -> dict[int, float]:
    """One score per candidate from either source: each list min-max scaled, missing counts as 0."""
    if not 0.0 <= collaborative_weight <= 1.0:
        raise ValueError("collaborative_weight must be in [0, 1]")
    a, b = _min_max(content), _min_max(collaborative)
    return {item: (1 - collaborative_weight) * a.get(item, 0.0) + collaborative_weight * b.get(item, 0.0) for item in {*a, *b}}


def passes(item: ItemFacts, genres: Sequence[str] = (), year_from: int | None = None, year_to: int | None = None) -> bool:
    """Any of ``genres`` (case-insensitive) and a year within the bounds; unknown years fail a year bound."""
    if genres and not {g.lower() for g in genres} & {g.lower() for g in item.genres}:
        return False
    if year_from is not None and (item.year is None or item.year < year_from):
        return False
    return not (year_to is not None and (item.year is None or item.year > year_to))


def mmr(relevance: Sequence[float], embeddings: np.ndarray, k: int, diversity: float) -> list[int]:
    """Maximal marginal relevance (Carbonell & Goldstein 1998): positions of ``k`` candidates in order.

    ``diversity`` 0 keeps the relevance order; 1 picks each next item as unlike the chosen ones as it can.
    """
    if not 0.0 <= diversity <= 1.0:
        raise ValueError("diversity must be in [0, 1]")
    scores = np.asarray(relevance, dtype=np.float64)
    k = min(k, len(scores))
    if k <= 0:
        return []
    if diversity == 0.0:
        return [int(i) for i in np.argsort(-scores, kind="stable")[:k]]
    similarity = embeddings @ embeddings.T
    chosen: list[int] = []
    closest = np.full(len(scores), -np.inf)
    remaining = np.ones(len(scores), dtype=bool)
    for _ in range(k):
        redundancy = np.where(np.isfinite(closest), closest, 0.0)
        value = np.where(remaining, (1 - diversity) * scores - diversity * redundancy, -np.inf)
        pick = int(np.argmax(value))
        chosen.append(pick)
        remaining[pick] = False
        closest = np.maximum(closest, similarity[pick])
    return chosen


def because_you_liked(item_embedding: np.ndarray, liked: Sequence[ItemFacts], liked_embeddings: np.ndarray) -> str | None:
    """The liked item closest to the recommended one, as a reason a person can check."""
    if not liked:
        return None
    nearest = int(np.argmax(liked_embeddings @ item_embedding))
    return f"because you liked {liked[nearest].title}"


def words(text: str) -> set[str]:
    return {w for w in _WORD.findall(text.lower()) if w not in _STOPWORDS and len(w) > 2}


def matching_words(wish: str, item: ItemFacts) -> str | None:
    """The words of a free-text wish that the item's text shares, or ``None`` when it is similar in meaning only."""
    shared = sorted(words(wish) & words(item.text))
    return f"matches '{', '.join(shared)}'" if shared else None
