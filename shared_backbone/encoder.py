"""The encoder every service shares: loaded from a local folder, encoding texts to unit vectors.

Construction takes plain values and is cheap; ``warm_up()`` does the heavy import and load, so a
service can be built, configured and tested before it pays for a model.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from shared_backbone.cache import EmbeddingCache
from shared_backbone.errors import ArtifactError
from shared_backbone.text import encoder_text, text_hash

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def load_sentence_transformer(model_path: Path) -> SentenceTransformer:
    """Load a sentence-transformers folder from disk only; a broken folder is an ``ArtifactError``."""
    if not (model_path / "modules.json").is_file():
        raise ArtifactError(f"{model_path}: not a sentence-transformers model folder (no modules.json)")
    from sentence_transformers import SentenceTransformer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    try:
        return SentenceTransformer(str(model_path), device="cpu", local_files_only=True)
    except Exception as exc:  # transformers/safetensors raise many types for one cause: a bad folder
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ArtifactError(f"{model_path}: cannot load encoder ({first_line})") from None


class CachedEncoder:
    """What every backend shares: the embedding cache, and batches of similar token length.

    A backend supplies ``warm_up``, ``dimension``, ``token_lengths`` and ``_forward`` (one padded
    batch in, unit rows out). ``backbone_id`` must change whenever the outputs can change (weights or
    backend): the cache is keyed by it. ``strip_links`` is part of the artifact (its manifest says
    whether it was trained on texts without links), so every backend reads what training read.
    """

    backend = "abstract"

    def __init__(self, backbone_id: str, *, batch_size: int = 32, cache: EmbeddingCache | None = None, strip_links: bool = False) -> None:
        self.backbone_id = backbone_id
        self.batch_size = batch_size
        self.cache = cache
        self.strip_links = strip_links
        self._lock = threading.Lock()

    def warm_up(self) -> None:
        raise NotImplementedError

    @property
    def dimension(self) -> int:
        raise NotImplementedError

    def token_lengths(self, texts: Sequence[str]) -> list[int]:
        raise NotImplementedError

    def _forward(self, texts: list[str]) -> np.ndarray:
        raise NotImplementedError

    def encode(self, texts: Sequence[str], *, show_progress: bool = False) -> np.ndarray:
        """Unit-length float32 rows, one per text, in input order.

        Cached vectors are reused; the rest are encoded in batches of similar token length so
        that little compute goes to padding.
        """
        if isinstance(texts, str):
            raise TypeError("encode() takes a sequence of texts, not one string")
        clean = [encoder_text(t, strip_links=self.strip_links) for t in texts]
        keys = [text_hash(t) for t in clean]
        found = self.cache.get_many(self.backbone_id, keys) if self.cache else {}
        todo = list(dict.fromkeys(k for k in keys if k not in found))
        if todo:
            first_text = {}
            for key, text in zip(keys, clean, strict=True):
                first_text.setdefault(key, text)
            fresh = self._encode_uncached([first_text[k] for k in todo], show_progress)
            new = dict(zip(todo, fresh, strict=True))
            if self.cache:
                self.cache.put_many(self.backbone_id, new)
            found.update(new)
        if not keys:
            return np.zeros((0, self.dimension), dtype=np.float32)
        return np.stack([found[k] for k in keys]).astype(np.float32, copy=False)

    def _encode_uncached(self, texts: list[str], show_progress: bool) -> np.ndarray:
        self.warm_up()
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        with self._lock:  # one pass at a time (the runtime already uses every allowed thread); the tokenizer too
            order = np.argsort(self.token_lengths(texts), kind="stable") if len(texts) > 1 else np.zeros(len(texts), dtype=np.int64)
            batches = [order[i : i + self.batch_size] for i in range(0, len(order), self.batch_size)]
            if show_progress:
                from tqdm.auto import tqdm

                batches = tqdm(batches, desc=f"encode {self.backbone_id}", unit="batch", leave=False)
            for batch in batches:
                out[batch] = self._forward([texts[i] for i in batch])
        return out


class Backbone(CachedEncoder):
    """The sentence-transformers encoder on torch: training, the fp32 reference, and the fallback for serving."""

    backend = "torch"

    def __init__(
        self,
        model_path: Path,
        backbone_id: str,
        *,
        threads: int | None = None,
        batch_size: int = 32,
        max_seq_length: int | None = None,
        cache: EmbeddingCache | None = None,
        strip_links: bool = False,
    ) -> None:
        super().__init__(backbone_id, batch_size=batch_size, cache=cache, strip_links=strip_links)
        self.model_path = Path(model_path)
        self.threads = threads
        self.max_seq_length = max_seq_length
        self._model: SentenceTransformer | None = None

    def warm_up(self) -> None:
        """Import torch, load the weights and cap the thread count (process-wide in torch)."""
        if self._model is not None:
            return
        if self.threads:
            import torch

            torch.set_num_threads(self.threads)
        model = load_sentence_transformer(self.model_path)
        if self.max_seq_length:
            model.max_seq_length = self.max_seq_length
        self._model = model

    @property
    def model(self) -> SentenceTransformer:
        if self._model is None:
            self.warm_up()
        assert self._model is not None
        return self._model

    @property
    def dimension(self) -> int:
        return int(self.model.get_embedding_dimension())

    def parameter_count(self) -> int:
        return sum(p.numel() for p in self.model.parameters())

    def token_lengths(self, texts: Sequence[str]) -> list[int]:
        tokenizer = self.model.tokenizer
        ids = tokenizer(list(texts), add_special_tokens=True, truncation=True, max_length=self.model.max_seq_length)["input_ids"]
        return [len(row) for row in ids]

    def _forward(self, texts: list[str]) -> np.ndarray:
        return self.model.encode(texts, batch_size=len(texts), convert_to_numpy=True, normalize_embeddings=True, show_progress_bar=False)
