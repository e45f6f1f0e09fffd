"""Loaders for the vendored public data sets: typed records, schema checks, seeded splits.

A malformed file fails with ``DataError`` naming the file, the line and the column, so a user who
points the platform at their own CSV knows what to fix. Splits depend only on the seed (and, for
MovieLens, on time), so the same seed always gives the same train / validation / test sets.
"""

from __future__ import annotations

import csv
import json
import logging
import re
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shared_backbone.errors import DataError
from shared_backbone.text import normalise_text

log = logging.getLogger(__name__)
DEFAULT_DATA_DIR = Path(__file__).resolve().parents[1] / "data"
SENTIMENT_LABELS = ("bearish", "bullish", "neutral")
_YEAR = re.compile(r"\((\d{4})\)\s*$")


@dataclass(frozen=True, slots=True)
class LabeledText:
    text: str
    label: int


@dataclass(frozen=True)
class ClassificationData:
    """One classification task's splits; ``labels[i]`` names label ``i``."""

    name: str
    labels: tuple[str, ...]
    train: list[LabeledText]
    validation: list[LabeledText]
    test: list[LabeledText]


@dataclass(frozen=True, slots=True)
class Movie:
    movie_id: int
    title: str
    year: int | None
    genres: tuple[str, ...]
    tags: tuple[str, ...] = ()

    def text(self) -> str:
        """The item text the backbone encodes: title, genres and the most common tags."""
        parts = [self.title]
        if self.genres:
            parts.append("Genres: " + ", ".join(self.genres) + ".")
        if self.tags:
            parts.append("Tags: " + ", ".join(self.tags) + ".")
        return normalise_text(" ".join(parts))


@dataclass(frozen=True, slots=True)
class Rating:
    user_id: int
    movie_id: int
    rating: float
    timestamp: int


@dataclass(frozen=True)
class MovieLensData:
    """The catalogue and a temporal per-user split of the ratings."""

    movies: dict[int, Movie]
    train: list[Rating]
    validation: list[Rating]
    test: list[Rating]
    orphan_lines: list[int] = field(default_factory=list)


@dataclass(frozen=True)
class OutOfScopeData:
    """CLINC150's out-of-scope queries, the negatives for the support bot's fallback."""

    train: list[str]
    validation: list[str]
    test: list[str]


# --- reading files with errors a person can act on ---------------------------------------------


def _require(path: Path) -> Path:
    if not path.is_file():
        raise DataError(f"{path}: data file not found")
    return path


def read_csv(path: Path, columns: dict[str, Callable[[str], Any]]) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield ``(line_number, row)`` with each named column converted, or fail naming the cell."""
    _require(path)
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            missing = [name for name in columns if name not in (reader.fieldnames or [])]
            if missing:
                raise DataError(f"{path}:1: missing column(s) {', '.join(missing)} in header {reader.fieldnames}")
            for row in reader:
                line = reader.line_num
                converted: dict[str, Any] = {}
                for name, convert in columns.items():
                    raw = row.get(name)
                    if raw is None:
                        raise DataError(f"{path}:{line}: column '{name}' is missing (row too short)")
                    try:
                        converted[name] = convert(raw)
                    except (ValueError, TypeError) as exc:
                        raise DataError(f"{path}:{line}: column '{name}': bad value {raw[:40]!r} ({exc})") from None
                yield line, converted
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not valid UTF-8 ({exc.reason} at byte {exc.start})") from None
    except csv.Error as exc:
        raise DataError(f"{path}: malformed CSV ({exc})") from None


def _non_empty_text(raw: str) -> str:
    text = normalise_text(raw)
    if not text:
        raise ValueError("empty text")
    return text


def _label_in(labels: tuple[str, ...]) -> Callable[[str], int]:
    index = {name: i for i, name in enumerate(labels)}

    def convert(raw: str) -> int:
        if raw in index:
            return index[raw]
        if raw.strip().lstrip("-").isdigit() and 0 <= int(raw) < len(labels):
            return int(raw)
        raise ValueError(f"not one of the {len(labels)} known labels")

    return convert


def _read_labeled_csv(path: Path, text_column: str, label_column: str, labels: tuple[str, ...]) -> list[LabeledText]:
    rows = read_csv(path, {text_column: _non_empty_text, label_column: _label_in(labels)})
    return [LabeledText(row[text_column], row[label_column]) for _, row in rows]


def _validation_split(records: list[LabeledText], fraction: float, seed: int) -> tuple[list[LabeledText], list[LabeledText]]:
    """Carve a stratified validation set out of a published train split."""
    labels = [r.label for r in records]
    from sklearn.model_selection import train_test_split  # here, not at the top: serving never splits data

    train, validation = train_test_split(records, test_size=fraction, random_state=seed, stratify=labels)
    return list(train), list(validation)


# --- the data sets -------------------------------------------------------------------------------


def load_banking77(data_dir: Path = DEFAULT_DATA_DIR, seed: int = 0, validation_fraction: float = 0.1) -> ClassificationData:
    """Banking77 intents; validation is carved from train, test is the published test split."""
    folder = data_dir / "banking77"
    try:
        labels = tuple(json.loads(_require(folder / "categories.json").read_text(encoding="utf-8")))
    except json.JSONDecodeError as exc:
        raise DataError(f"{folder / 'categories.json'}:{exc.lineno}: malformed JSON ({exc.msg})") from None
    train = _read_labeled_csv(folder / "train.csv", "text", "category", labels)
    test = _read_labeled_csv(folder / "test.csv", "text", "category", labels)
    train, validation = _validation_split(train, validation_fraction, seed)
    return ClassificationData("intent", labels, train, validation, test)


def load_financial_sentiment(data_dir: Path = DEFAULT_DATA_DIR, seed: int = 0, validation_fraction: float = 0.1) -> ClassificationData:
    """Twitter financial news sentiment; the published validation split serves as test."""
    folder = data_dir / "twitter_financial_news_sentiment"
    train = _read_labeled_csv(folder / "sent_train.csv", "text", "label", SENTIMENT_LABELS)
    test = _read_labeled_csv(folder / "sent_valid.csv", "text", "label", SENTIMENT_LABELS)
    train, validation = _validation_split(train, validation_fraction, seed)
    return ClassificationData("sentiment", SENTIMENT_LABELS, train, validation, test)


def _read_labeled_parquet(path: Path, labels: tuple[str, ...]) -> list[LabeledText]:
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(_require(path))
    except DataError:
        raise
    except Exception as exc:  # pyarrow raises several unrelated types for a broken file
        raise DataError(f"{path}: not a readable parquet file ({exc})") from None
    missing = {"text", "label"} - set(table.column_names)
    if missing:
        raise DataError(f"{path}: missing column(s) {', '.join(sorted(missing))}")
    records = []
    for row, (text, label) in enumerate(zip(table.column("text").to_pylist(), table.column("label").to_pylist(), strict=True)):
        if not isinstance(text, str) or not normalise_text(text):
            raise DataError(f"{path}: row {row}: column 'text': empty or not a string")
        if not isinstance(label, int) or not 0 <= label < len(labels):
            raise DataError(f"{path}: row {row}: column 'label': {label!r} is not in 0..{len(labels) - 1}")
        records.append(LabeledText(normalise_text(text), label))
    return records


def load_financial_topic(data_dir: Path = DEFAULT_DATA_DIR, seed: int = 0, validation_fraction: float = 0.1) -> ClassificationData:
    """Twitter financial news topics (20); the published validation split serves as test."""
    folder = data_dir / "twitter_financial_news_topic"
    labels = tuple(line.strip() for line in _require(folder / "classes.txt").read_text(encoding="utf-8").splitlines() if line.strip())
    train = _read_labeled_parquet(folder / "train.parquet", labels)
    test = _read_labeled_parquet(folder / "validation.parquet", labels)
    train, validation = _validation_split(train, validation_fraction, seed)
    return ClassificationData("topic", labels, train, validation, test)


def load_clinc_out_of_scope(data_dir: Path = DEFAULT_DATA_DIR) -> OutOfScopeData:
    """CLINC150's out-of-scope queries by published split."""
    path = _require(data_dir / "clinc150" / "data_full.json")
    try:
        full = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}:{exc.lineno}: malformed JSON ({exc.msg})") from None
    splits = {}
    for key in ("oos_train", "oos_val", "oos_test"):
        entries = full.get(key)
        if not isinstance(entries, list):
            raise DataError(f"{path}: key '{key}' is missing or not a list")
        texts = []
        for i, entry in enumerate(entries):
            if not (isinstance(entry, list) and len(entry) == 2 and isinstance(entry[0], str)):
                raise DataError(f"{path}: {key}[{i}] is not a [text, intent] pair")
            texts.append(normalise_text(entry[0]))
        splits[key] = texts
    return OutOfScopeData(splits["oos_train"], splits["oos_val"], splits["oos_test"])


def load_movies(folder: Path, top_tags: int = 5) -> dict[int, Movie]:
    """The catalogue (``movies.csv``) with each film's most frequent free-text tags (``tags.csv``)."""
    tag_counts: dict[int, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    if (folder / "tags.csv").is_file():
        for _, row in read_csv(folder / "tags.csv", {"movieId": int, "tag": normalise_text}):
            if row["tag"]:
                tag_counts[row["movieId"]][row["tag"].lower()] += 1
    movies: dict[int, Movie] = {}
    for line, row in read_csv(folder / "movies.csv", {"movieId": int, "title": _non_empty_text, "genres": str}):
        if row["movieId"] in movies:
            raise DataError(f"{folder / 'movies.csv'}:{line}: column 'movieId': duplicate id {row['movieId']}")
        title = row["title"]
        match = _YEAR.search(title)
        genres = tuple(g for g in row["genres"].split("|") if g and g != "(no genres listed)")
        counts = tag_counts.get(row["movieId"], {})
        tags = tuple(sorted(counts, key=lambda t: (-counts[t], t))[:top_tags])
        movies[row["movieId"]] = Movie(row["movieId"], title, int(match.group(1)) if match else None, genres, tags)
    return movies


def load_ratings(path: Path, known_movies: dict[int, Movie] | None = None, *, strict: bool = False) -> tuple[list[Rating], list[int]]:
    """Ratings as implicit feedback, and the line numbers of ratings of films not in the catalogue.

    Such orphan ratings cannot be recommended or evaluated; they are skipped (and reported by
    ``spine data check``) unless ``strict`` asks for an error.
    """

    def rating_value(raw: str) -> float:
        value = float(raw)
        if not 0.0 <= value <= 5.0:
            raise ValueError("ratings are between 0 and 5")
        return value

    ratings, orphans = [], []
    for line, row in read_csv(path, {"userId": int, "movieId": int, "rating": rating_value, "timestamp": int}):
        if known_movies is not None and row["movieId"] not in known_movies:
            if strict:
                raise DataError(f"{path}:{line}: column 'movieId': {row['movieId']} is not in the catalogue")
            orphans.append(line)
            continue
        ratings.append(Rating(row["userId"], row["movieId"], row["rating"], row["timestamp"]))
    if orphans:
        log.warning(
            "%s: skipped %d rating(s) of films not in the catalogue (lines %s)", path, len(orphans), ", ".join(map(str, orphans[:5]))
        )
    return ratings, orphans


def temporal_user_split(
    ratings: list[Rating], validation_fraction: float = 0.1, test_fraction: float = 0.2
) -> tuple[list[Rating], list[Rating], list[Rating]]:
    """Per user, the latest ratings go to test, the ones before to validation, the rest to train.

    Ties in time are broken by movie id, so the split is the same on every run. A user keeps at
    least one training rating.
    """
    by_user: dict[int, list[Rating]] = defaultdict(list)
    for rating in ratings:
        by_user[rating.user_id].append(rating)
    train: list[Rating] = []
    validation: list[Rating] = []
    test: list[Rating] = []
    for user in sorted(by_user):
        history = sorted(by_user[user], key=lambda r: (r.timestamp, r.movie_id))
        n = len(history)
        n_test = min(round(n * test_fraction), n - 1)
        n_val = min(round(n * validation_fraction), n - 1 - n_test)
        cut_val, cut_test = n - n_test - n_val, n - n_test
        train.extend(history[:cut_val])
        validation.extend(history[cut_val:cut_test])
        test.extend(history[cut_test:])
    return train, validation, test


def load_movielens(data_dir: Path = DEFAULT_DATA_DIR, validation_fraction: float = 0.1, test_fraction: float = 0.2) -> MovieLensData:
    """MovieLens latest-small with a temporal per-user split."""
    folder = data_dir / "movielens_latest_small"
    movies = load_movies(folder)
    ratings, orphans = load_ratings(folder / "ratings.csv", movies)
    train, validation, test = temporal_user_split(ratings, validation_fraction, test_fraction)
    return MovieLensData(movies, train, validation, test, orphans)
