"""The item index: one embedding per catalogue item in FAISS, persisted per backbone, growable at once.

Exact inner product (IndexFlatIP) by default; HNSW once the catalogue passes ``hnsw_above`` items,
where an exact scan per query starts to cost more than the latency budget. The vectors are kept
beside the index (``vectors.npy``, no pickle) because profiles and MMR need them by item id.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from collections.abc import Sequence
from pathlib import Path

import faiss
import numpy as np

FORMAT_VERSION = 1


def content_key(item_ids: Sequence[int], texts: Sequence[str]) -> str:
    """A short hash of the catalogue as the backbone saw it: change a text and the index is rebuilt."""
    digest = hashlib.sha256()
    for item_id, text in zip(item_ids, texts, strict=True):
        digest.update(f"{item_id}\t{text}\n".encode())
    return digest.hexdigest()[:16]


class ItemIndex:
    def __init__(self, root: Path, *, hnsw_above: int = 50_000, hnsw_m: int = 32, ef_search: int = 128) -> None:
        if hnsw_above < 1 or hnsw_m < 4 or ef_search < 1:
            raise ValueError("hnsw_above >= 1, hnsw_m >= 4 and ef_search >= 1 are needed")
        self.root = root
        self.hnsw_above, self.hnsw_m, self.ef_search = hnsw_above, hnsw_m, ef_search
        self.backbone_id = ""
        self.kind = ""
        self._index: faiss.Index | None = None
        self._ids = np.zeros(0, dtype=np.int64)
        self._vectors = np.zeros((0, 0), dtype=np.float32)
        self._row: dict[int, int] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._ids)

    def __contains__(self, item_id: object) -> bool:
        return item_id in self._row

    def _folder(self, backbone_id: str) -> Path:
        return self.root / re.sub(r"[^A-Za-z0-9_.-]", "_", backbone_id)

    def _new_index(self, dimension: int, size: int) -> faiss.Index:
        if size > self.hnsw_above:
            inner = faiss.IndexHNSWFlat(dimension, self.hnsw_m, faiss.METRIC_INNER_PRODUCT)
            inner.hnsw.efSearch = self.ef_search
            self.kind = f"hnsw(M={self.hnsw_m}, efSearch={self.ef_search})"
        else:
            inner = faiss.IndexFlatIP(dimension)
            self.kind = "flat"
        return faiss.IndexIDMap2(inner)

    def build(self, backbone_id: str, item_ids: Sequence[int], vectors: np.ndarray, key: str) -> None:
        """Index ``vectors`` (unit rows, one per item id) and save them under the backbone's folder."""
        ids = np.asarray(item_ids, dtype=np.int64)
        if len(ids) != len(vectors) or len(set(ids.tolist())) != len(ids):
            raise ValueError("one vector per distinct item id is needed")
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        index = self._new_index(vectors.shape[1], len(ids))
        index.add_with_ids(vectors, ids)
        with self._lock:
            self._index, self._ids, self._vectors, self.backbone_id = index, ids, vectors, backbone_id
            self._row = {int(i): n for n, i in enumerate(ids)}
        self.save(key)

    def save(self, key: str) -> None:
        folder = self._folder(self.backbone_id)
        folder.mkdir(parents=True, exist_ok=True)
        with self._lock:
            index, ids, vectors = self._index, self._ids.copy(), self._vectors.copy()
        staged = {name: folder / f"staged-{name}" for name in ("index.faiss", "ids.npy", "vectors.npy", "meta.json")}
        faiss.write_index(index, str(staged["index.faiss"]))
        np.save(staged["ids.npy"], ids, allow_pickle=False)
        np.save(staged["vectors.npy"], vectors, allow_pickle=False)
        meta = {"format_version": FORMAT_VERSION, "backbone_id": self.backbone_id, "key": key, "items": len(ids), "kind": self.kind}
        staged["meta.json"].write_text(json.dumps(meta), encoding="utf-8")
        for name, path in staged.items():  # meta last: it vouches for the files before it
            path.replace(folder / name)

    def load(self, backbone_id: str, key: str) -> bool:
        """Reuse the saved index when it was built by this backbone from this catalogue."""
        folder = self._folder(backbone_id)
        try:
            meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
            if meta.get("format_version") != FORMAT_VERSION or meta.get("backbone_id") != backbone_id or meta.get("key") != key:
                return False
            index = faiss.read_index(str(folder / "index.faiss"))
            ids = np.load(folder / "ids.npy", allow_pickle=False)
            vectors = np.load(folder / "vectors.npy", allow_pickle=False)
        except (OSError, ValueError, RuntimeError, EOFError):  # missing or damaged: rebuild
            return False
        if len(ids) != index.ntotal or len(vectors) != len(ids):
            return False
        with self._lock:
            self._index, self._ids, self._vectors, self.backbone_id = index, ids, vectors, backbone_id
            self._row = {int(i): n for n, i in enumerate(ids)}
            self.kind = meta.get("kind", "")
        return True

    def add(self, item_ids: Sequence[int], vectors: np.ndarray) -> None:
        """New items become searchable at once (no rebuild)."""
        ids = np.asarray(item_ids, dtype=np.int64)
        if any(int(i) in self._row for i in ids) or len(set(ids.tolist())) != len(ids):
            raise ValueError("item ids are already indexed")
        if self._index is None:
            raise RuntimeError("build() or load() first")
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        with self._lock:
            self._index.add_with_ids(vectors, ids)
            start = len(self._ids)
            self._ids = np.concatenate([self._ids, ids])
            self._vectors = np.concatenate([self._vectors, vectors])
            self._row.update({int(i): start + n for n, i in enumerate(ids)})

    @property
    def ids(self) -> np.ndarray:
        """Item ids in row order (rows only ever grow, so a row number is stable)."""
        return self._ids

    @property
    def matrix(self) -> np.ndarray:
        """Every item's vector, rows in ``ids`` order; read-only for callers."""
        return self._vectors

    def vectors(self, item_ids: Sequence[int]) -> np.ndarray:
        with self._lock:
            return self._vectors[[self._row[int(i)] for i in item_ids]] if len(item_ids) else self._vectors[:0]

    def search(self, queries: np.ndarray, k: int) -> list[list[tuple[int, float]]]:
        """The ``k`` nearest items (id, inner product) per query row, best first."""
        if self._index is None:
            raise RuntimeError("build() or load() first")
        k = min(k, len(self._ids))
        if k <= 0 or len(queries) == 0:
            return [[] for _ in range(len(queries))]
        with self._lock:
            scores, ids = self._index.search(np.ascontiguousarray(queries, dtype=np.float32), k)
        return [[(int(i), float(s)) for s, i in zip(row_s, row_i, strict=True) if i >= 0] for row_s, row_i in zip(scores, ids, strict=True)]
