"""Where news comes from. Each source reads from a cursor and returns the next cursor with its documents.

A source never writes: the pipeline stores the documents and the new cursor together, so a crash
between the two cannot happen. Every problem with the input (bad XML, a bomb, a timeout, a file that
is not UTF-8, a line that is not JSON) is counted by reason and skipped; it never stops the monitor.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any, Protocol

import defusedxml.ElementTree
import feedparser
import httpx
from defusedxml import DefusedXmlException

from services.sentiment.documents import RawDocument

log = logging.getLogger(__name__)
SEEN_IDS_KEPT = 5000  # a feed's entry ids remembered, far more than any feed shows at once


@dataclass
class Batch:
    documents: list[RawDocument]
    cursor: dict[str, Any]
    problems: dict[str, int] = field(default_factory=dict)

    def problem(self, reason: str, detail: str) -> None:
        self.problems[reason] = self.problems.get(reason, 0) + 1
        log.warning("%s: %s", reason, detail)


class Source(Protocol):
    name: str

    def fetch(self, cursor: dict[str, Any] | None, limit: int) -> Batch: ...


def _when(value: Any) -> datetime | None:
    """ISO 8601, RFC 2822 or epoch seconds; None when absent or unreadable."""
    if value in (None, ""):
        return None
    try:
        if isinstance(value, int | float) or str(value).replace(".", "", 1).isdigit():
            return datetime.fromtimestamp(float(value), UTC)
        text = str(value)
        try:
            return datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            return parsedate_to_datetime(text)
    except (ValueError, TypeError, OverflowError, OSError):
        return None


def _from_record(source: str, record: dict[str, Any], fallback_id: str) -> RawDocument:
    return RawDocument(
        source=source,
        text=str(record.get("text") or record.get("body") or ""),
        title=str(record["title"]) if record.get("title") else None,
        url=str(record["url"]) if record.get("url") else None,
        published_at=_when(record.get("published_at") or record.get("timestamp")),
        external_id=str(record.get("id") or fallback_id),
    )


class FolderSource:
    """A drop folder of ``*.jsonl`` (one JSON object per line) and ``*.csv`` (a header with ``text``) files.

    The cursor remembers, per file name, the byte offset read (JSONL) or the rows read (CSV); files are
    read in name order and a growing file is read on. A line still being written (no newline yet) waits
    until it is finished or the file has been quiet for ``settle_s``; a file that shrank was replaced
    and is read again from the start.
    """

    def __init__(self, name: str, folder: Path, *, settle_s: float = 5.0) -> None:
        self.name, self.folder, self.settle_s = name, folder, settle_s

    def fetch(self, cursor: dict[str, Any] | None, limit: int) -> Batch:
        done: dict[str, int] = dict((cursor or {}).get("files", {}))
        batch = Batch([], {"files": done})
        if not self.folder.is_dir():
            batch.problem("missing_folder", f"{self.folder} does not exist")
            return batch
        for path in sorted(p for p in self.folder.iterdir() if p.suffix in (".jsonl", ".csv") and p.is_file()):
            if len(batch.documents) >= limit:
                break
            if done.get(path.name, 0) < 0:  # given up on (a CSV that is not UTF-8 or has no text column)
                continue
            data = path.read_bytes()
            settled = time.time() - path.stat().st_mtime >= self.settle_s
            complete = data if settled else data[: data.rfind(b"\n") + 1]
            if path.suffix == ".csv":
                done[path.name] = self._csv(path, complete, done.get(path.name, 0), limit, batch)
            else:
                offset = done.get(path.name, 0)
                done[path.name] = self._jsonl(path, complete, 0 if offset > len(data) else offset, limit, batch)
        return batch

    def _jsonl(self, path: Path, data: bytes, offset: int, limit: int, batch: Batch) -> int:
        while offset < len(data) and len(batch.documents) < limit:
            end = data.find(b"\n", offset)
            end = len(data) if end < 0 else end
            raw_line, number = data[offset:end], data.count(b"\n", 0, offset) + 1
            offset = end + 1
            if not raw_line.strip():
                continue
            try:
                record = json.loads(raw_line.decode("utf-8"))
                if not isinstance(record, dict):
                    raise ValueError("not an object")
            except UnicodeDecodeError as exc:
                batch.problem("not_utf8", f"{path}:{number}: {exc}")
                continue
            except ValueError as exc:
                batch.problem("bad_json", f"{path}:{number}: {exc}")
                continue
            batch.documents.append(_from_record(self.name, record, f"{path.name}:{number}"))
        return min(offset, len(data))

    def _csv(self, path: Path, data: bytes, rows_done: int, limit: int, batch: Batch) -> int:
        try:
            reader = csv.DictReader(io.StringIO(data.decode("utf-8-sig"), newline=""))
            rows = list(reader)  # quoted fields may hold newlines: rows, not lines
            header = reader.fieldnames or []
        except UnicodeDecodeError as exc:
            batch.problem("not_utf8", f"{path}: {exc}")
            return -1
        except csv.Error as exc:
            batch.problem("bad_csv", f"{path}: {exc}")
            return -1
        if data and "text" not in header:
            batch.problem("bad_csv", f"{path}: no 'text' column in {list(header)}")
            return -1
        if rows_done > len(rows):  # the file was replaced by a shorter one
            rows_done = 0
        while rows_done < len(rows) and len(batch.documents) < limit:
            record = rows[rows_done]
            rows_done += 1
            batch.documents.append(_from_record(self.name, record, f"{path.name}:row{rows_done}"))
        return rows_done


class FeedSource:
    """An RSS or Atom feed by URL (``http(s)://`` or ``file://``), parsed only after a safety check.

    The XML is first parsed by defusedxml, which refuses entity declarations and DTD tricks (the
    "billion laughs" bomb, external entities); only then does feedparser read it. The body is read
    with a timeout and a size cap. The cursor keeps the ids of entries already seen.
    """

    def __init__(self, name: str, url: str, *, timeout_s: float = 10.0, max_bytes: int = 5 * 1024 * 1024) -> None:
        self.name, self.url, self.timeout_s, self.max_bytes = name, url, timeout_s, max_bytes

    def _read(self) -> bytes:
        if self.url.startswith("file://"):
            path = Path(self.url.removeprefix("file://"))
            if path.stat().st_size > self.max_bytes:
                raise ValueError(f"the feed is over {self.max_bytes} bytes")
            return path.read_bytes()
        body = bytearray()
        with httpx.stream("GET", self.url, timeout=self.timeout_s, follow_redirects=True) as response:
            response.raise_for_status()
            for chunk in response.iter_bytes():
                body += chunk
                if len(body) > self.max_bytes:
                    raise ValueError(f"the feed is over {self.max_bytes} bytes")
        return bytes(body)

    def fetch(self, cursor: dict[str, Any] | None, limit: int) -> Batch:
        seen: list[str] = list((cursor or {}).get("seen_ids", []))
        batch = Batch([], {"seen_ids": seen})
        try:
            body = self._read()
        except httpx.TimeoutException:
            batch.problem("timeout", f"{self.url}: no answer in {self.timeout_s:g} s")
            return batch
        except (httpx.HTTPError, OSError, ValueError) as exc:
            batch.problem("unreachable", f"{self.url}: {exc}")
            return batch
        try:
            defusedxml.ElementTree.fromstring(body, forbid_dtd=True)
        except DefusedXmlException as exc:
            batch.problem("unsafe_xml", f"{self.url}: {type(exc).__name__}")
            return batch
        except defusedxml.ElementTree.ParseError as exc:
            batch.problem("bad_xml", f"{self.url}: {exc}")
            return batch
        parsed = feedparser.parse(io.BytesIO(body))
        known = set(seen)
        for entry in parsed.entries:
            if len(batch.documents) >= limit:
                break
            entry_id = str(entry.get("id") or entry.get("link") or entry.get("title") or "")
            if not entry_id or entry_id in known:
                continue
            known.add(entry_id)
            seen.append(entry_id)
            published = entry.get("published_parsed") or entry.get("updated_parsed")
            batch.documents.append(
                RawDocument(
                    source=self.name,
                    text=str(entry.get("summary") or ""),
                    title=str(entry.get("title") or "") or None,
                    url=str(entry.get("link") or "") or None,
                    published_at=datetime(*published[:6], tzinfo=UTC) if published else None,
                    external_id=entry_id,
                )
            )
        batch.cursor = {"seen_ids": seen[-SEEN_IDS_KEPT:]}
        return batch


@dataclass(frozen=True)
class InjectedSurge:
    """Extra documents (e.g. bearish news about one topic) spread over a stretch of the replay."""

    label: str  # what the injection is about, e.g. "topic:Earnings"; the ground truth for evaluation
    offset: timedelta
    duration: timedelta
    texts: tuple[str, ...]


class ReplaySource:
    """A data set streamed as if it were arriving: one document every ``spacing`` from ``start``.

    Surges add their documents evenly over their stretch. The merged stream is fixed at construction,
    so the cursor is just a position and a replay resumed after a restart continues exactly.
    """

    def __init__(self, name: str, texts: Sequence[str], start: datetime, spacing: timedelta, surges: Sequence[InjectedSurge] = ()) -> None:
        self.name = name
        timeline = [(start + n * spacing, text, f"base:{n}") for n, text in enumerate(texts)]
        for number, surge in enumerate(surges):
            step = surge.duration / max(len(surge.texts), 1)
            timeline += [(start + surge.offset + k * step, text, f"surge{number}:{k}") for k, text in enumerate(surge.texts)]
        timeline.sort(key=lambda entry: (entry[0], entry[2]))
        self.timeline = timeline
        self.surges = tuple(surges)

    def fetch(self, cursor: dict[str, Any] | None, limit: int) -> Batch:
        position = int((cursor or {}).get("position", 0))
        chunk = self.timeline[position : position + limit]
        documents = [RawDocument(self.name, text, published_at=when, external_id=ident) for when, text, ident in chunk]
        return Batch(documents, {"position": position + len(chunk)})
