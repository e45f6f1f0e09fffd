"""A news item as the pipeline sees it: normalised text, a content hash for dedupe, the tickers it names."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from shared_backbone.text import LINK, normalise_text, text_hash

_CASHTAG = re.compile(r"(?<![\w$])\$([A-Za-z]{1,6}(?:\.[A-Za-z]{1,2})?)\b")


@dataclass(frozen=True)
class RawDocument:
    """What a source hands over, before any checking."""

    source: str
    text: str
    title: str | None = None
    url: str | None = None
    published_at: datetime | None = None
    external_id: str | None = None
    meta: dict[str, str] = field(default_factory=dict)


def clean(raw: RawDocument) -> str:
    """The text that is scored and hashed: the title, then the body unless it only repeats the title."""
    title, body = normalise_text(raw.title or ""), normalise_text(raw.text or "")
    if title and title not in body:
        return f"{title}. {body}" if body else title
    return body


def content_hash(text: str) -> str:
    """Dedupe key: the same story through two sources (or twice through one) hashes the same.

    Links and case are ignored, so a re-shared headline with a new short link still counts once.
    """
    return text_hash(normalise_text(LINK.sub(" ", text)).lower())


def tickers(text: str, names: Mapping[str, str]) -> list[str]:
    """``$TSLA`` cashtags and known company names, upper case, in order of first mention."""
    found = [m.group(1).upper() for m in _CASHTAG.finditer(text)]
    lowered = text.lower()
    for name, ticker in names.items():
        if re.search(rf"\b{re.escape(name.lower())}\b", lowered):
            found.append(ticker.upper())
    return list(dict.fromkeys(found))


def utc(moment: datetime | None) -> datetime:
    """Naive times are taken as UTC; a missing time is now."""
    if moment is None:
        return datetime.now(UTC)
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
