"""Groups shared by every service's items, and the typo perturbation, for the outcome-homogenization study.

Each service answers its own data (Banking77 questions, financial tweets, MovieLens users), so no item is seen by all of
them; Bommasani et al.'s group-level metrics relate the services through groups every service has members in. The
groups here are defined on the text a service reads for an item:

* ``length``: tertiles of the character length, cut per task (so each service has short, medium and long items);
* ``digits``: the text contains a digit or a ``$TICKER`` cashtag (links removed first: every tweet's t.co link has
  digits) versus not;
* ``typo``: the item itself (``clean``) versus a copy with adjacent letters swapped in about one word in three
  (``typo``), scored again by the same system.
"""

from __future__ import annotations

import random
import re
import zlib
from collections.abc import Mapping, Sequence

import numpy as np

from homogenization.metrics import group_counts, group_failure_rates, group_homogenization

FAMILIES = ("length", "digits", "typo")
_URL = re.compile(r"https?://\S+")
_YEAR = re.compile(r"\(\d{4}\)")
_DIGIT_OR_TICKER = re.compile(r"\d|\$[A-Za-z][A-Za-z.]{0,9}\b")
_WORD = re.compile(r"\S+")
TYPO_SHARE = 1 / 3


def perturb(text: str, seed: int) -> str:
    """Swap two adjacent letters in about one word in three (at least one word when any has two adjacent letters).

    Deterministic: the generator is seeded by ``seed`` and a CRC of the text, so every system sees the same copy, on
    every run and in every process (Python's ``hash`` of a string changes between processes).
    """
    rng = random.Random(zlib.crc32(text.encode("utf-8")) ^ (seed * 0x9E3779B1 & 0xFFFFFFFF))
    words = [(m.start(), m.group()) for m in _WORD.finditer(text)]
    eligible = [n for n, (_, w) in enumerate(words) if _swap_positions(w)]
    if not eligible:
        return text
    chosen = [n for n in eligible if rng.random() < TYPO_SHARE] or [rng.choice(eligible)]
    chars = list(text)
    for n in chosen:
        start, word = words[n]
        j = rng.choice(_swap_positions(word))
        chars[start + j], chars[start + j + 1] = chars[start + j + 1], chars[start + j]
    return "".join(chars)


def _swap_positions(word: str) -> list[int]:
    """Where two different adjacent letters can be swapped (a swap of equal letters would change nothing)."""
    return [j for j in range(len(word) - 1) if word[j].isalpha() and word[j + 1].isalpha() and word[j].lower() != word[j + 1].lower()]


def length_bins(texts: Sequence[str]) -> np.ndarray:
    """``short`` / ``medium`` / ``long`` by tertiles of character length within these texts (ties go to the lower bin)."""
    lengths = np.array([len(t) for t in texts], dtype=np.float64)
    if lengths.size == 0:
        return np.array([], dtype=object)
    low, high = np.quantile(lengths, [1 / 3, 2 / 3])
    return np.array(["short" if n <= low else "medium" if n <= high else "long" for n in lengths], dtype=object)


def has_digits_or_ticker(text: str) -> bool:
    """A digit or a cashtag outside links and outside a film title's trailing ``(year)``."""
    return bool(_DIGIT_OR_TICKER.search(_YEAR.sub("", _URL.sub("", text))))


def digit_groups(texts: Sequence[str]) -> np.ndarray:
    return np.array(["digits/tickers" if has_digits_or_ticker(t) else "none" for t in texts], dtype=object)


def family_labels(texts: Sequence[str]) -> dict[str, np.ndarray]:
    """The ``length`` and ``digits`` labels of a service's items (``typo`` is built from two outcome vectors)."""
    return {"length": length_bins(texts), "digits": digit_groups(texts)}


def homogenization_by_family(
    clean: Mapping[str, np.ndarray], typo: Mapping[str, np.ndarray], labels: Mapping[str, Mapping[str, np.ndarray]]
) -> dict[str, dict[str, float]]:
    """avg / unif / worst (``metrics.group_homogenization``) of the systems in ``clean`` for each group family.

    ``clean[s]`` / ``typo[s]``: system s's failures on its items and on their typo copies (same order);
    ``labels[s][family]``: the items' group labels. The typo family pools both vectors, labelled clean / typo.
    """
    out = {}
    for family in FAMILIES:
        if family == "typo":
            failures = {s: np.concatenate([clean[s], typo[s]]) for s in clean}
            groups = {s: np.array(["clean"] * len(clean[s]) + ["typo"] * len(typo[s]), dtype=object) for s in clean}
        else:
            failures, groups = dict(clean), {s: labels[s][family] for s in clean}
        out[family] = family_homogenization(failures, groups)
    return out


def family_homogenization(failures: Mapping[str, np.ndarray], groups: Mapping[str, np.ndarray]) -> dict[str, object]:
    """The three group-level ratios plus the per-group failure rates they come from (for the report's tables)."""
    names, rates = group_failure_rates(dict(failures), dict(groups))
    _, counts = group_counts(dict(groups))
    values: dict[str, object] = dict(group_homogenization(rates, counts))
    values["groups"] = [str(g) for g in names]
    values["rates"] = {system: [None if np.isnan(r) else float(r) for r in rates[:, j]] for j, system in enumerate(failures)}
    values["counts"] = {system: [int(c) for c in counts[:, j]] for j, system in enumerate(failures)}
    return values


def bootstrap_family(
    clean: Mapping[str, np.ndarray],
    typo: Mapping[str, np.ndarray],
    labels: Mapping[str, Mapping[str, np.ndarray]],
    *,
    resamples: int = 200,
    seed: int = 0,
) -> dict[str, dict[str, tuple[float, float]]]:
    """95% percentile intervals of avg / unif / worst when there is one seed: each system's items resampled on their own.

    The systems answer different items, so a paired resample does not exist; each system's items (with their typo
    copy and labels) are drawn with replacement independently. Resamples where a ratio is undefined are dropped.
    """
    rng = np.random.default_rng(seed)
    draws: dict[str, dict[str, list[float]]] = {f: {k: [] for k in ("avg", "unif", "worst")} for f in FAMILIES}
    for _ in range(resamples):
        rows = {s: rng.integers(0, len(clean[s]), len(clean[s])) for s in clean}
        try:
            values = homogenization_by_family(
                {s: clean[s][r] for s, r in rows.items()},
                {s: typo[s][r] for s, r in rows.items()},
                {s: {f: labels[s][f][r] for f in labels[s]} for s, r in rows.items()},
            )
        except ValueError:  # a resample without any failure of one system: the ratio is undefined
            continue
        for family, row in values.items():
            for key in ("avg", "unif", "worst"):
                value = float(row[key])  # type: ignore[arg-type]
                if np.isfinite(value):
                    draws[family][key].append(value)
    return {
        family: {
            key: (float(np.percentile(v, 2.5)), float(np.percentile(v, 97.5))) if v else (float("nan"), float("nan"))
            for key, v in row.items()
        }
        for family, row in draws.items()
    }
