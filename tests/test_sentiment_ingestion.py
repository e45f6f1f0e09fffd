"""Sources, dedupe and the pipeline's store step, with a keyword-scripted backbone and SQLite."""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sentiment_fakes import NAMES, KeywordClient
from sqlalchemy import func, select

from services.common.db import Database
from services.sentiment.documents import RawDocument, clean, content_hash, tickers
from services.sentiment.pipeline import IngestReport, Pipeline
from services.sentiment.sources import FeedSource, FolderSource, InjectedSurge, ReplaySource
from services.sentiment.store import Base, Document, DocumentTicker, SourceRecord


@pytest.fixture
def database(tmp_path: Path) -> Iterator[Database]:
    db = Database(f"sqlite:///{tmp_path / 'sentiment.db'}")
    db.warm_up(Base.metadata)
    yield db
    db.dispose()


def pipeline(client: KeywordClient | None = None, max_chars: int = 500) -> Pipeline:
    return Pipeline(client or KeywordClient(), max_chars=max_chars, batch_size=2, ticker_names=NAMES)


def ingest(database: Database, source_name: str, raws: list[RawDocument], cursor: dict, line: Pipeline | None = None) -> IngestReport:
    line = line or pipeline()
    report = IngestReport()
    kept = line.prepare(raws, report)
    with database.session() as db:
        known = line.known_hashes(db, [digest for _, _, digest in kept])
    scored = line.score([k for k in kept if k[2] not in known])
    report.duplicates += len(kept) - len(scored)
    with database.session() as db:
        source = db.get(SourceRecord, source_name) or SourceRecord(name=source_name, kind="push")
        db.add(source)
        line.store(db, source, scored, cursor, report)
    return report


def test_text_cleaning_hash_and_tickers() -> None:
    raw = RawDocument("t", "Shares plunge after the call https://t.co/abc", title="Tesla misses")
    assert clean(raw) == "Tesla misses. Shares plunge after the call https://t.co/abc"
    assert clean(RawDocument("t", "Same words", title="Same words")) == "Same words"
    assert content_hash("Oil soars https://t.co/1") == content_hash("oil  SOARS https://t.co/2")
    assert tickers("$tsla and $BRK.B up; Tesla again, $TSLA", NAMES) == ["TSLA", "BRK.B"]
    assert tickers("price is $5 today", NAMES) == []


def test_pipeline_scores_stores_and_dedupes(database: Database) -> None:
    client = KeywordClient()
    line = pipeline(client)
    raws = [
        RawDocument("push", "Tesla earnings miss, shares plunge", published_at=datetime(2026, 1, 1, 9)),
        RawDocument("push", "Oil soars on supply cut"),
        RawDocument("push", "oil SOARS on supply cut"),  # the same story
        RawDocument("push", "   "),
        RawDocument("push", "x" * 600),
    ]
    report = ingest(database, "push", raws, {"n": 1}, line)
    assert (report.fetched, report.stored, report.duplicates, report.rejected) == (5, 2, 1, 2)
    assert report.reasons == {"empty": 1, "oversized": 1}
    with database.session() as db:
        tesla = db.scalar(select(Document).where(Document.text.like("Tesla%")))
        assert tesla is not None and tesla.sentiment == "bearish" and tesla.topic == "Earnings" and tesla.tickers == ["TSLA"]
        assert tesla.score == pytest.approx(0.1 - 0.8) and db.scalar(select(DocumentTicker.ticker)) == "TSLA"
        source = db.get(SourceRecord, "push")
        assert source is not None and source.cursor == {"n": 1} and (source.stored, source.duplicates, source.rejected) == (2, 1, 2)
    again = ingest(database, "push", raws[:2], {"n": 2}, line)
    assert again.stored == 0 and again.duplicates == 2 and client.scored == 2  # known stories are not scored again
    with database.session() as db:
        assert db.scalar(select(func.count()).select_from(Document)) == 2


def test_folder_source_reads_on_from_its_cursor_and_skips_bad_input(tmp_path: Path) -> None:
    folder = tmp_path / "drop"
    folder.mkdir()
    (folder / "a.jsonl").write_text('{"text": "first", "id": "x1"}\nnot json\n[1, 2]\n{"text": "second"}\n', encoding="utf-8")
    (folder / "b.csv").write_text('text,published_at\n"third, with a comma",2026-01-02T10:00:00Z\n', encoding="utf-8")
    (folder / "c.jsonl").write_bytes(b'{"text": "caf\xe9"}\n')  # Latin-1, not UTF-8
    source = FolderSource("drop", folder)
    first = source.fetch(None, limit=2)
    assert [d.text for d in first.documents] == ["first", "second"] and first.problems == {"bad_json": 2}
    rest = source.fetch(first.cursor, limit=10)
    assert [d.text for d in rest.documents] == ["third, with a comma"] and rest.problems == {"not_utf8": 1}
    assert rest.documents[0].published_at == datetime(2026, 1, 2, 10, tzinfo=UTC)
    with (folder / "a.jsonl").open("a", encoding="utf-8") as grown:
        grown.write('{"text": "fourth"}\n')
    later = source.fetch(rest.cursor, limit=10)
    assert [d.text for d in later.documents] == ["fourth"] and later.problems == {}  # the bad file is not retried
    assert json.loads(json.dumps(later.cursor)) == later.cursor  # cursors are stored as JSON


RSS = """<?xml version="1.0"?><rss version="2.0"><channel><title>News</title>
<item><guid>n1</guid><title>Tesla misses</title><description>Shares plunge</description><pubDate>Mon, 05 Jan 2026 10:00:00 GMT</pubDate></item>
<item><guid>n2</guid><title>Oil soars</title><description>Supply cut</description></item>
</channel></rss>"""
BOMB = """<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;">]>
<rss version="2.0"><channel><item><title>&lol2;</title></item></channel></rss>"""


def test_feed_source_parses_safely_and_remembers_entries(tmp_path: Path) -> None:
    path = tmp_path / "feed.xml"
    path.write_text(RSS, encoding="utf-8")
    source = FeedSource("feed", f"file://{path}")
    first = source.fetch(None, limit=10)
    assert [d.title for d in first.documents] == ["Tesla misses", "Oil soars"]
    assert first.documents[0].published_at == datetime(2026, 1, 5, 10, tzinfo=UTC) and first.documents[0].text == "Shares plunge"
    assert source.fetch(first.cursor, limit=10).documents == []
    path.write_text(BOMB, encoding="utf-8")
    assert source.fetch(None, limit=10).problems == {"unsafe_xml": 1}
    path.write_text("<rss><channel><item>", encoding="utf-8")
    assert source.fetch(None, limit=10).problems == {"bad_xml": 1}
    assert FeedSource("feed", f"file://{tmp_path / 'gone.xml'}").fetch(None, 10).problems == {"unreachable": 1}
    path.write_text(RSS, encoding="utf-8")
    assert FeedSource("feed", f"file://{path}", max_bytes=100).fetch(None, 10).problems == {"unreachable": 1}


class _Handler(http.server.BaseHTTPRequestHandler):
    delay = threading.Event()

    def do_GET(self) -> None:
        if self.path == "/slow":
            self.delay.wait(5)
        body = RSS.encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/rss+xml")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: object) -> None:
        pass


def test_feed_source_over_http_on_loopback_with_a_timeout() -> None:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        assert len(FeedSource("feed", f"{url}/rss").fetch(None, 10).documents) == 2
        assert FeedSource("feed", f"{url}/slow", timeout_s=0.3).fetch(None, 10).problems == {"timeout": 1}
    finally:
        _Handler.delay.set()
        server.shutdown()


def test_replay_streams_a_fixed_timeline_with_injected_surges() -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    surge = InjectedSurge("topic:Earnings", timedelta(minutes=30), timedelta(minutes=10), ("earnings miss", "earnings plunge"))
    replay = ReplaySource("replay", [f"news {n}" for n in range(60)], start, timedelta(minutes=1), [surge])
    first = replay.fetch(None, limit=32)
    assert len(first.documents) == 32 and first.cursor == {"position": 32}
    texts = [d.text for d in first.documents]
    assert texts.index("earnings miss") == texts.index("news 30") + 1  # injected at its offset, in time order
    resumed = ReplaySource("replay", [f"news {n}" for n in range(60)], start, timedelta(minutes=1), [surge]).fetch(first.cursor, 100)
    assert len(resumed.documents) == 30 and resumed.cursor == {"position": 62}
    assert [d.published_at for d in resumed.documents] == sorted(d.published_at for d in resumed.documents)


def test_folder_source_waits_for_unfinished_lines_and_reads_real_csv(tmp_path: Path) -> None:
    folder = tmp_path / "drop"
    folder.mkdir()
    growing = folder / "a.jsonl"
    growing.write_text('{"text": "whole"}\n{"text": "half', encoding="utf-8")  # the writer is mid-line
    source = FolderSource("drop", folder, settle_s=60)
    first = source.fetch(None, limit=10)
    assert [d.text for d in first.documents] == ["whole"] and first.problems == {}
    with growing.open("a", encoding="utf-8") as writer:
        writer.write(' written"}\n')
    assert [d.text for d in source.fetch(first.cursor, limit=10).documents] == ["half written"]
    (folder / "b.csv").write_bytes('\ufefftext,id\n"two\nlines",x1\nplain,x2\n'.encode())  # BOM, a quoted newline
    read = source.fetch(None, limit=10)
    assert [d.text for d in read.documents if d.source == "drop"][-2:] == ["two\nlines", "plain"]
    tail = folder / "c.jsonl"
    tail.write_text('{"text": "no newline at the end"}', encoding="utf-8")
    assert "no newline at the end" in [d.text for d in FolderSource("drop", folder, settle_s=0).fetch(read.cursor, 10).documents]


def test_a_run_is_stored_in_one_insert_per_table_whatever_fields_are_missing(database: Database) -> None:
    """Documents with and without title, URL or id, and with and without tickers: one documents INSERT, one links INSERT."""
    from sqlalchemy import event

    inserts: list[str] = []

    def count(conn, cursor, statement, parameters, context, executemany) -> None:
        if statement.lstrip().upper().startswith("INSERT INTO SENTIMENT_DOCUMENT"):
            inserts.append(statement.split("(")[0].strip())

    raws = [
        RawDocument(
            "feed",
            f"Story {i} about $TSLA" if i % 2 else f"Story {i}",
            title=None if i % 3 else f"T{i}",
            url=None if i % 2 else f"https://x/{i}",
        )
        for i in range(12)
    ]
    event.listen(database.engine, "before_cursor_execute", count)
    try:
        report = ingest(database, "feed", raws, {"n": 12})
    finally:
        event.remove(database.engine, "before_cursor_execute", count)
    assert report.stored == 12 and len(report.document_ids) == 12
    assert inserts == ["INSERT INTO sentiment_documents", "INSERT INTO sentiment_document_tickers"]
    with database.session() as db:
        assert db.scalar(select(func.count()).select_from(DocumentTicker)) == 6
        stored = {d.text: d for d in db.scalars(select(Document))}
    assert stored["T0. Story 0"].url == "https://x/0" and stored["Story 1 about $TSLA"].title is None
