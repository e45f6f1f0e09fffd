"""From raw documents to stored, scored ones: normalise -> dedupe -> sentiment and topic -> tickers -> store.

The documents of one source run and that source's new cursor are written in one transaction, so a
process killed mid-run either stored both or neither: the next run re-reads from the old cursor and
the content hash turns what was already stored into counted duplicates, never second copies.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
from sqlalchemy import Engine, insert, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from services.sentiment.documents import RawDocument, clean, content_hash, tickers, utc
from services.sentiment.store import Document, DocumentTicker, SourceRecord
from shared_backbone.client import BackboneClient
from shared_backbone.text import normalise_text

log = logging.getLogger(__name__)
TASKS = ("sentiment", "topic")
EARLIEST = datetime(1990, 1, 1, tzinfo=UTC)  # older "news" is a broken date, not history
FUTURE_SLACK = timedelta(days=1)  # clocks and time zones differ; a later date is broken too


@dataclass
class IngestReport:
    fetched: int = 0
    stored: int = 0
    duplicates: int = 0
    rejected: int = 0
    reasons: dict[str, int] = field(default_factory=dict)
    document_ids: list[int] = field(default_factory=list)

    def reject(self, reason: str) -> None:
        self.rejected += 1
        self.reasons[reason] = self.reasons.get(reason, 0) + 1


@dataclass(frozen=True)
class Scored:
    raw: RawDocument
    text: str
    digest: str
    published_at: datetime
    sentiment: str
    sentiment_confidence: float
    score: float
    topic: str
    topic_confidence: float
    tickers: list[str]


def _insert_ignoring_duplicates(engine: Engine) -> Any:
    """``INSERT ... ON CONFLICT (content_hash) DO NOTHING`` in the database's own dialect."""
    dialect = {"sqlite": sqlite, "postgresql": postgresql}.get(engine.dialect.name)
    if dialect is None:
        raise RuntimeError(f"the sentiment store supports SQLite and PostgreSQL, not {engine.dialect.name}")
    return dialect.insert(Document).on_conflict_do_nothing(index_elements=["content_hash"])


class Pipeline:
    def __init__(self, client: BackboneClient, *, max_chars: int, batch_size: int, ticker_names: Mapping[str, str]) -> None:
        self.client = client
        self.max_chars = max_chars
        self.batch_size = batch_size
        self.ticker_names = dict(ticker_names)

    def prepare(self, raws: Sequence[RawDocument], report: IngestReport) -> list[tuple[RawDocument, str, str]]:
        """Check and dedupe within the batch: (raw, text, content hash) to score; rejections counted by reason."""
        report.fetched += len(raws)
        kept: list[tuple[RawDocument, str, str]] = []
        seen: set[str] = set()
        latest = datetime.now(UTC) + FUTURE_SLACK
        for raw in raws:
            try:  # one odd record is counted and skipped; it must never hold up the rest of its source
                published = utc(raw.published_at)
                tidy = replace(
                    raw,
                    title=normalise_text(raw.title or "")[:1000] or None,
                    url=normalise_text(raw.url or "")[:2000] or None,
                    external_id=normalise_text(raw.external_id or "")[:512] or None,
                    published_at=published,
                )
                text = clean(tidy)
            except (ValueError, OverflowError, UnicodeError, TypeError):
                report.reject("unreadable")
                continue
            if not text:
                report.reject("empty")
            elif len(text) > self.max_chars:
                report.reject("oversized")
            elif not EARLIEST <= published <= latest:
                report.reject("bad_date")
            elif (digest := content_hash(text)) in seen:
                report.duplicates += 1
            else:
                seen.add(digest)
                kept.append((tidy, text, digest))
        return kept

    def score(self, kept: Sequence[tuple[RawDocument, str, str]]) -> list[Scored]:
        """Sentiment and topic heads in batches; the score is P(bullish) - P(bearish)."""
        scored: list[Scored] = []
        for start in range(0, len(kept), self.batch_size):
            chunk = kept[start : start + self.batch_size]
            _, predictions = self.client.analyse([text for _, text, _ in chunk], TASKS)
            sentiment, topic = predictions["sentiment"], predictions["topic"]
            labels = list(sentiment.labels)
            bullish, bearish = labels.index("bullish"), labels.index("bearish")
            for row, (raw, text, digest) in enumerate(chunk):
                p, q = sentiment.probabilities[row], topic.probabilities[row]
                best, best_topic = int(np.argmax(p)), int(np.argmax(q))
                scored.append(
                    Scored(
                        raw,
                        text,
                        digest,
                        utc(raw.published_at),
                        labels[best],
                        float(p[best]),
                        float(p[bullish] - p[bearish]),
                        topic.labels[best_topic],
                        float(q[best_topic]),
                        tickers(text, self.ticker_names),
                    )
                )
        return scored

    def store(self, session: Session, source: SourceRecord, scored: Sequence[Scored], cursor: Any, report: IngestReport) -> None:
        """Insert the new documents and move the source's cursor, in the caller's transaction."""
        rows = [
            {
                "content_hash": item.digest,
                "source": source.name,
                "external_id": (item.raw.external_id or "")[:512] or None,
                "title": item.raw.title,
                "text": item.text,
                "url": item.raw.url,
                "published_at": item.published_at,
                "ingested_at": datetime.now(UTC),
                "sentiment": item.sentiment,
                "sentiment_confidence": item.sentiment_confidence,
                "score": item.score,
                "topic": item.topic,
                "topic_confidence": item.topic_confidence,
                "tickers": item.tickers,
            }
            for item in scored
        ]
        new_ids: dict[str, int] = {}
        if rows:  # one multi-row statement, not a round trip per document: storing stays a small share of a run
            statement = _insert_ignoring_duplicates(session.get_bind())  # type: ignore[arg-type]
            # render_nulls: rows with and without a title or URL stay one statement (ORM bulk mode groups rows by their keys)
            returned = session.execute(
                statement.returning(Document.id, Document.content_hash), rows, execution_options={"render_nulls": True}
            )
            new_ids = {digest: new_id for new_id, digest in returned}
        links = []
        for item in scored:
            new_id = new_ids.pop(item.digest, None)  # pop: a hash twice in one run is stored once
            if new_id is None:  # already stored (by an earlier run, another source, or a push)
                report.duplicates += 1
                continue
            report.stored += 1
            report.document_ids.append(new_id)
            links.extend({"document_id": new_id, "ticker": t[:12], "published_at": item.published_at} for t in item.tickers)
        if links:
            session.execute(insert(DocumentTicker), links)
        source.cursor = cursor
        source.last_run_at = datetime.now(UTC)
        source.last_error = None
        source.fetched += report.fetched
        source.stored += report.stored
        source.duplicates += report.duplicates
        source.rejected += report.rejected

    @staticmethod
    def known_hashes(session: Session, digests: Sequence[str], chunk: int = 500) -> set[str]:
        """Which of these hashes are stored already (asked in chunks: databases cap bound parameters)."""
        known: set[str] = set()
        for start in range(0, len(digests), chunk):
            part = list(digests[start : start + chunk])
            known.update(session.scalars(select(Document.content_hash).where(Document.content_hash.in_(part))))
        return known
