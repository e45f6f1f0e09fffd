"""Turning candidates into a short list: user profile, blending, filters, diversity (MMR) and reasons.

Pure functions over arrays and plain records, so every step is testable without a model or a database.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
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


@dataclass(frozen=True)
class Spread:
    """Mean and standard deviation of one source's scores over the whole catalogue."""

    mean: float
    std: float

    @classmethod
    def of(cls, scores: np.ndarray) -> Spread:
        return cls(float(scores.mean()), float(scores.std()) if len(scores) else 0.0)

    def standardise(self, scores: np.ndarray) -> np.ndarray:
        """(score - mean) / std; a spread within rounding noise of the mean counts as none (all scores tie)."""
        floor = 1e-6 * (abs(self.mean) + 1.0)
        return (np.asarray(scores, dtype=np.float64) - self.mean) / max(self.std, floor)


def text_spread(vector_sum: np.ndarray, vector_gram: np.ndarray, count: int, profile: np.ndarray) -> Spread:
    """The spread of ``vectors @ profile`` over the catalogue from running sums, without scoring every item.

    The mean is ``mean(v) . p`` and the second moment ``p' (V'V / n) p``; both sums grow in O(d^2) per new item.
    """
    mean = float(vector_sum @ profile) / count
    second = float(profile @ vector_gram @ profile) / count
    return Spread(mean, float(np.sqrt(max(second - mean * mean, 0.0))))


def blend(text: np.ndarray, text_spread: Spread, collaborative: np.ndarray, collaborative_spread: Spread, text_weight: float) -> np.ndarray:
    """One score per candidate: each source standardised over the whole catalogue, then weighted.

    Standardising against the catalogue (not the candidate list) keeps a source's confidence: a user
    whose collaborative scores stand far above the crowd keeps that lead after blending.
    """
    if not 0.0 <= text_weight <= 1.0:
        raise ValueError("text_weight must be in [0, 1]")
    return (1 - text_weight) * collaborative_spread.standardise(collaborative) + text_weight * text_spread.standardise(text)


def hybrid_candidates(
    profile: np.ndarray,
    vectors: np.ndarray,
    text_top: Sequence[int],
    spread_of_text: Spread,
    collaborative: np.ndarray,
    text_weight: float,
    candidates: int,
    exclude: Sequence[int] = (),
) -> tuple[np.ndarray, np.ndarray]:
    """The service's ranking step: catalogue columns and blended scores, best first.

    Candidates are the text search's top columns (``text_top``, from FAISS) and the top
    ``candidates`` collaborative columns, both without ``exclude`` (what the viewer has seen: a
    heavy viewer's own films would otherwise fill the list); each is then scored by both sources.
    """
    collaborative = np.asarray(collaborative, dtype=np.float32)
    spread = Spread.of(collaborative)
    blocked = np.asarray(exclude, dtype=np.int64)
    open_scores = collaborative.copy()
    open_scores[blocked] = -np.inf
    take = min(candidates, len(collaborative) - len(np.unique(blocked)))
    top = np.argpartition(-open_scores, take - 1)[:take] if take > 0 else np.zeros(0, dtype=np.int64)
    pool = np.setdiff1d(np.union1d(np.asarray(text_top, dtype=np.int64), top), blocked)
    scores = blend(vectors[pool] @ profile, spread_of_text, collaborative[pool], spread, text_weight)
    order = np.argsort(-scores, kind="stable")
    return pool[order], scores[order]


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


def because_you_liked(lifts: np.ndarray, similarities: np.ndarray) -> int:
    """Which liked item to name as the reason: the one whose like lifts this item most in the
    collaborative model, or, when none lifts it, the nearest by text. A person can check either."""
    if len(lifts) == 0 or len(lifts) != len(similarities):
        raise ValueError("one lift and one similarity per liked item are needed")
    strongest = int(np.argmax(lifts))
    return strongest if lifts[strongest] > 0 else int(np.argmax(similarities))


def words(text: str) -> set[str]:
    return {w for w in _WORD.findall(text.lower()) if w not in _STOPWORDS and len(w) > 2}


def matching_words(wish: str, item: ItemFacts) -> str | None:
    """The words of a free-text wish that the item's text shares, or ``None`` when it is similar in meaning only."""
    shared = sorted(words(wish) & words(item.text))
    return f"matches '{', '.join(shared)}'" if shared else None
