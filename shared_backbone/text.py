"""The one place where text is normalised, so training, caching and serving see the same string."""

from __future__ import annotations

import hashlib
import re
import unicodedata

_SPACES = re.compile(r"\s+")


def normalise_text(text: str) -> str:
    """NFKC-fold, drop control characters and collapse white space.

    Case is kept: the encoder's tokenizer lower-cases on its own, and tickers ($TSLA) read better.
    """
    folded = unicodedata.normalize("NFKC", text)
    visible = "".join(ch for ch in folded if ch in "\t\n" or unicodedata.category(ch)[0] != "C")
    return _SPACES.sub(" ", visible).strip()


def text_hash(text: str) -> str:
    """A stable key for a normalised text (the embedding cache and dedupe use it)."""
    return hashlib.blake2b(text.encode("utf-8"), digest_size=16).hexdigest()
