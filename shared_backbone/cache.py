"""A persistent embedding cache keyed by (backbone id, text hash).

Encoding is the slow step on a CPU; re-fitting heads, re-evaluating or re-indexing with the same
backbone should not pay it twice. SQLite keeps one file per cache folder and is safe across the
threads of one process (one connection behind a lock).
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np

_SCHEMA = """
CREATE TABLE IF NOT EXISTS embeddings (
    backbone_id TEXT NOT NULL,
    text_hash TEXT NOT NULL,
    vector BLOB NOT NULL,
    PRIMARY KEY (backbone_id, text_hash)
) WITHOUT ROWID
"""


class EmbeddingCache:
    """Float32 vectors by key; ``path=None`` keeps them in memory only."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path
        self._lock = threading.Lock()
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path) if path else ":memory:", check_same_thread=False)
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL" if path else "PRAGMA journal_mode=MEMORY")
            self._db.execute(_SCHEMA)

    def get_many(self, backbone_id: str, keys: Sequence[str]) -> dict[str, np.ndarray]:
        found: dict[str, np.ndarray] = {}
        unique = list(dict.fromkeys(keys))
        with self._lock:
            for start in range(0, len(unique), 500):
                chunk = unique[start : start + 500]
                marks = ",".join("?" * len(chunk))
                rows = self._db.execute(
                    f"SELECT text_hash, vector FROM embeddings WHERE backbone_id = ? AND text_hash IN ({marks})",
                    [backbone_id, *chunk],
                )
                for key, blob in rows:
                    found[key] = np.frombuffer(blob, dtype=np.float32)
        return found

    def put_many(self, backbone_id: str, items: dict[str, np.ndarray]) -> None:
        rows = [(backbone_id, key, np.ascontiguousarray(vec, dtype=np.float32).tobytes()) for key, vec in items.items()]
        with self._lock, self._db:
            self._db.executemany("INSERT OR REPLACE INTO embeddings VALUES (?, ?, ?)", rows)

    def count(self, backbone_id: str | None = None) -> int:
        with self._lock:
            if backbone_id is None:
                return int(self._db.execute("SELECT COUNT(*) FROM embeddings").fetchone()[0])
            query = "SELECT COUNT(*) FROM embeddings WHERE backbone_id = ?"
            return int(self._db.execute(query, (backbone_id,)).fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._db.close()
