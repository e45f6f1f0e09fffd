"""Rolling windows per topic and per ticker: volume, share negative, mean score.

Windows are aligned to multiples of their width since the epoch, so every run, process and
database cuts time the same way and a window's key (``topic:Earnings@<start>``) is stable.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from services.sentiment.detector import Window
from services.sentiment.documents import utc
from services.sentiment.store import Document, DocumentTicker

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def window_start(moment: datetime, width: timedelta) -> datetime:
    return EPOCH + ((utc(moment) - EPOCH) // width) * width


@dataclass(frozen=True)
class Point:
    """One window of one key, as the trend chart and the detector see it."""

    key: str
    start: datetime
    volume: int
    negative: int
    score_sum: float

    @property
    def share_negative(self) -> float:
        return self.negative / self.volume if self.volume else 0.0

    @property
    def mean_score(self) -> float:
        return self.score_sum / self.volume if self.volume else 0.0

    def window(self) -> Window:
        return Window(self.key, self.start, self.volume, self.negative)


def aggregate(rows: Iterable[tuple[str, datetime, str, float]], width: timedelta) -> dict[str, list[Point]]:
    """(key, published at, sentiment, score) rows -> each key's windows in time order."""
    sums: dict[tuple[str, datetime], list[float]] = defaultdict(lambda: [0, 0, 0.0])
    for key, published, sentiment, score in rows:
        cell = sums[(key, window_start(published, width))]
        cell[0] += 1
        cell[1] += sentiment == "bearish"
        cell[2] += score
    series: dict[str, list[Point]] = defaultdict(list)
    for (key, start), (volume, negative, score_sum) in sorted(sums.items(), key=lambda item: (item[0][0], item[0][1])):
        series[key].append(Point(key, start, int(volume), int(negative), float(score_sum)))
    return dict(series)


def load_series(
    session: Session, since: datetime, width: timedelta, *, topic: str | None = None, ticker: str | None = None
) -> dict[str, list[Point]]:
    """Per-topic and per-ticker windows of documents published since ``since`` (optionally one key only)."""
    rows: list[tuple[str, datetime, str, float]] = []
    if ticker is None:
        query = select(Document.topic, Document.published_at, Document.sentiment, Document.score).where(Document.published_at >= since)
        if topic is not None:
            query = query.where(Document.topic == topic)
        rows += [(f"topic:{t}", when, s, score) for t, when, s, score in session.execute(query)]
    if topic is None:
        query = (
            select(DocumentTicker.ticker, Document.published_at, Document.sentiment, Document.score)
            .join(Document, Document.id == DocumentTicker.document_id)
            .where(DocumentTicker.published_at >= since)
        )
        if ticker is not None:
            query = query.where(DocumentTicker.ticker == ticker.upper())
        rows += [(f"ticker:{t}", when, s, score) for t, when, s, score in session.execute(query)]
    return aggregate(rows, width)
