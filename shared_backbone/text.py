"""The one place where text is normalised, so training, caching and serving see the same string."""

from __future__ import annotations

import hashlib
import re
import unicodedata

_SPACES = re.compile(r"\s+")
LINK = re.compile(r"https?://\S+")


def normalise_text(text: str) -> str:
    """NFKC-fold, drop control characters and collapse white space.

    Case is kept: the encoder's tokenizer lower-cases on its own, and tickers ($TSLA) read better.
    """
    folded = unicodedata.normalize("NFKC", text)
    visible = "".join(ch for ch in folded if ch in "\t\n" or unicodedata.category(ch)[0] != "C")
    return _SPACES.sub(" ", visible).strip()


def encoder_text(text: str, *, strip_links: bool = False) -> str:
    """What the encoder reads: the normalised text, without web links when the artifact learned so.

    A shortened link (``https://t.co/pZE7vpI0DI``) is a random key of about 16 word pieces. Half the
    financial tweets carry one, so links are 29% of their tokens (mean 28 -> 20 per tweet): compute
    spent on nothing the encoder can read. A text that is only a link keeps it, so none encodes empty.
    """
    clean = normalise_text(text)
    if not strip_links:
        return clean
    return normalise_text(LINK.sub(" ", clean)) or clean


def text_hash(text: str) -> str:
    """A stable key for a normalised text (the embedding cache and dedupe use it)."""
    return hashlib.blake2b(text.encode("utf-8"), digest_size=16).hexdigest()
