"""The ONNX Runtime backends (``onnx`` fp32 and ``onnx-int8``): the same encoder, served without torch.

Only ``tokenizers``, ``onnxruntime`` and numpy are imported, so a backbone server on this path starts
in about a second and holds a fraction of the memory of a torch process. The graph already contains
mean pooling and L2 normalisation (see ``onnx_export``), so a forward pass returns unit rows.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from shared_backbone.cache import EmbeddingCache
from shared_backbone.encoder import CachedEncoder
from shared_backbone.errors import ArtifactError

ONNX_DIR = "onnx"
ONNX_FILES = {"onnx": "model.onnx", "onnx-int8": "model.int8.onnx"}
BACKENDS = ("torch", "onnx", "onnx-int8")


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def load_tokenizer(tokenizer_file: Path, max_seq_length: int) -> Any:
    from tokenizers import Tokenizer

    if not tokenizer_file.is_file():
        raise ArtifactError(f"{tokenizer_file}: missing (the ONNX backends need the encoder's tokenizer.json)")
    tokenizer = Tokenizer.from_file(str(tokenizer_file))
    tokenizer.enable_truncation(max_length=max_seq_length)
    tokenizer.no_padding()  # padded per batch, to that batch's longest text
    return tokenizer


class OnnxBackbone(CachedEncoder):
    """An exported encoder graph on ONNX Runtime; refuses a file that is not the one the manifest recorded."""

    def __init__(
        self,
        model_file: Path,
        tokenizer_file: Path,
        backbone_id: str,
        *,
        backend: str,
        dimension: int,
        max_seq_length: int,
        expected_sha256: str | None = None,
        threads: int | None = None,
        batch_size: int = 32,
        cache: EmbeddingCache | None = None,
        strip_links: bool = False,
    ) -> None:
        super().__init__(backbone_id, batch_size=batch_size, cache=cache, strip_links=strip_links)
        self.backend = backend
        self.model_file = Path(model_file)
        self.tokenizer_file = Path(tokenizer_file)
        self.expected_sha256 = expected_sha256
        self.threads = threads
        self.max_seq_length = max_seq_length
        self._dimension = dimension
        self._session: Any = None
        self._tokenizer: Any = None
        self._inputs: set[str] = set()

    def warm_up(self) -> None:
        if self._session is not None:
            return
        import onnxruntime as ort

        if not self.model_file.is_file():
            raise ArtifactError(f"{self.model_file}: missing; run `spine backbones export`")
        if self.expected_sha256 and sha256_of(self.model_file) != self.expected_sha256:
            raise ArtifactError(
                f"{self.model_file}: does not match the manifest (changed since export); run `spine backbones export` again"
            )
        options = ort.SessionOptions()
        if self.threads:
            options.intra_op_num_threads = self.threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        try:
            session = ort.InferenceSession(str(self.model_file), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own types for one cause: not a usable graph
            raise ArtifactError(f"{self.model_file}: not a loadable ONNX graph ({str(exc).splitlines()[0][:200]})") from None
        outputs = session.get_outputs()
        width = outputs[0].shape[-1] if outputs and outputs[0].shape else None
        if len(outputs) != 1 or width != self._dimension:
            raise ArtifactError(f"{self.model_file}: outputs {width}-dimensional rows, the manifest says {self._dimension}")
        self._tokenizer = load_tokenizer(self.tokenizer_file, self.max_seq_length)
        self._inputs = {i.name for i in session.get_inputs()}
        self._session = session

    @property
    def dimension(self) -> int:
        return self._dimension

    def token_lengths(self, texts: Sequence[str]) -> list[int]:
        self.warm_up()
        return [len(e.ids) for e in self._tokenizer.encode_batch(list(texts))]

    def _forward(self, texts: list[str]) -> np.ndarray:
        encodings = self._tokenizer.encode_batch(texts)
        width = max(len(e.ids) for e in encodings)
        ids = np.zeros((len(texts), width), dtype=np.int64)
        mask = np.zeros_like(ids)
        for row, encoding in enumerate(encodings):
            ids[row, : len(encoding.ids)] = encoding.ids
            mask[row, : len(encoding.ids)] = 1
        feed = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in self._inputs:
            feed["token_type_ids"] = np.zeros_like(ids)
        (vectors,) = self._session.run(None, feed)
        return np.asarray(vectors, dtype=np.float32)
