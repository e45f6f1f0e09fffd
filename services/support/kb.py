"""The knowledge base: Markdown articles, split into passages, searched with FAISS.

Each article has front matter (``intent``, ``title``) and ``##`` sections; every section is a
passage, and every bullet under "Common questions" is one more, so a customer's question can match
a phrasing as well as an explanation. The index is keyed by backbone id and by a hash of the
articles, and rebuilt when either changes.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import faiss
import numpy as np

from shared_backbone.client import BackboneClient
from shared_backbone.errors import DataError

log = logging.getLogger(__name__)

MAX_ARTICLE_BYTES = 200_000
_FRONT = re.compile(r"\A---\s*\n(?P<meta>.*?)\n---\s*\n(?P<body>.*)\Z", re.S)


@dataclass(frozen=True)
class Article:
    id: str
    intent: str
    title: str
    body: str

    def sections(self) -> list[tuple[str, str]]:
        """(heading, text) pairs; the text before the first ``##`` is the "Overview"."""
        out, heading, lines = [], "Overview", []
        for line in self.body.splitlines():
            if line.startswith("# "):
                continue
            if line.startswith("## "):
                if "".join(lines).strip():
                    out.append((heading, "\n".join(lines).strip()))
                heading, lines = line[3:].strip(), []
            else:
                lines.append(line)
        if "".join(lines).strip():
            out.append((heading, "\n".join(lines).strip()))
        return out

    def section(self, heading: str) -> str:
        return next((text for name, text in self.sections() if name.lower() == heading.lower()), "")


@dataclass(frozen=True)
class Passage:
    article_id: str
    intent: str
    title: str
    section: str
    text: str

    def embedding_text(self) -> str:
        return self.text if self.section == "Common questions" else f"{self.title}. {self.section}: {self.text}"


@dataclass(frozen=True)
class Hit:
    passage: Passage
    score: float


def parse_article(path: Path) -> Article:
    if path.stat().st_size > MAX_ARTICLE_BYTES:
        raise DataError(f"{path}: article over {MAX_ARTICLE_BYTES} bytes")
    try:
        raw = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise DataError(f"{path}: not valid UTF-8") from None
    match = _FRONT.match(raw)
    if not match:
        raise DataError(f"{path}:1: missing front matter (--- intent: ... / title: ... ---)")
    meta = {}
    for number, line in enumerate(match.group("meta").splitlines(), start=2):
        if line.strip():
            key, sep, value = line.partition(":")
            if not sep:
                raise DataError(f"{path}:{number}: front matter line is not 'key: value'")
            meta[key.strip()] = value.strip()
    for key in ("intent", "title"):
        if not meta.get(key):
            raise DataError(f"{path}: front matter has no '{key}'")
    return Article(path.stem, meta["intent"], meta["title"], match.group("body").strip())


def passages_of(article: Article) -> list[Passage]:
    out = []
    for heading, text in article.sections():
        if heading.lower() == "common questions":
            for line in text.splitlines():
                question = line.strip().lstrip("-*").strip()
                if question:
                    out.append(Passage(article.id, article.intent, article.title, "Common questions", question))
        else:
            out.append(Passage(article.id, article.intent, article.title, heading, text))
    return out


class KnowledgeBase:
    """Articles from a folder and a FAISS inner-product index over their passages."""

    def __init__(self, folder: Path, index_root: Path) -> None:
        self.folder = Path(folder)
        self.index_root = Path(index_root)
        self._lock = threading.Lock()
        self._reindex_lock = threading.Lock()
        self._articles: dict[str, Article] = {}
        self._passages: list[Passage] = []
        self._index: faiss.Index | None = None
        self.backbone_id = ""

    def load_articles(self) -> dict[str, Article]:
        if not self.folder.is_dir():
            raise DataError(f"{self.folder}: knowledge-base folder not found")
        articles = {}
        for path in sorted(self.folder.glob("*.md")):
            if path.name.lower() == "readme.md":
                continue
            article = parse_article(path)
            articles[article.id] = article
        if not articles:
            raise DataError(f"{self.folder}: no articles (*.md with front matter)")
        return articles

    def _content_hash(self, articles: dict[str, Article]) -> str:
        digest = hashlib.sha256()
        for article in articles.values():
            digest.update(json.dumps(asdict(article), sort_keys=True).encode())
        return digest.hexdigest()[:16]

    def _index_dir(self, backbone_id: str) -> Path:
        return self.index_root / re.sub(r"[^A-Za-z0-9_.-]", "_", backbone_id)

    def warm_up(self, client: BackboneClient) -> None:
        """Load the saved index if it matches the articles and the backbone, else build it."""
        self.reindex(client, force=False)

    def reindex(self, client: BackboneClient, force: bool = True) -> dict[str, float | int | str | bool]:
        """Build (or reuse) the index; one rebuild at a time, files replaced atomically."""
        with self._reindex_lock:
            return self._reindex(client, force)

    def _saved_index(self, meta_path: Path, index_path: Path, content: str, passages: int) -> faiss.Index | None:
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
            if meta.get("content") == content and meta.get("passages") == passages:
                return faiss.read_index(str(index_path))
        except (OSError, ValueError, RuntimeError) as exc:  # missing, half-written or foreign files: rebuild
            log.warning("rebuilding the knowledge-base index: %s", exc)
        return None

    def _reindex(self, client: BackboneClient, force: bool) -> dict[str, float | int | str | bool]:
        started = time.perf_counter()
        articles = self.load_articles()
        passages = [p for article in articles.values() for p in passages_of(article)]
        if not passages:
            raise DataError(f"{self.folder}: the articles have no text to index")
        backbone_id = client.info().backbone_id
        content = self._content_hash(articles)
        folder = self._index_dir(backbone_id)
        meta_path, index_path = folder / "meta.json", folder / "index.faiss"
        index = None if force else self._saved_index(meta_path, index_path, content, len(passages))
        reused = index is not None
        if index is None:
            vectors = client.encode([p.embedding_text() for p in passages]).astype(np.float32)
            index = faiss.IndexFlatIP(vectors.shape[1])
            index.add(vectors)
            folder.mkdir(parents=True, exist_ok=True)
            faiss.write_index(index, str(index_path) + ".tmp")
            Path(str(index_path) + ".tmp").replace(index_path)
            meta = {"content": content, "passages": len(passages), "backbone_id": backbone_id}
            meta_tmp = meta_path.with_suffix(".json.tmp")
            meta_tmp.write_text(json.dumps(meta), encoding="utf-8")
            meta_tmp.replace(meta_path)
        with self._lock:  # swap everything at once: searches never see half an index
            self._articles, self._passages, self._index, self.backbone_id = articles, passages, index, backbone_id
        return {
            "articles": len(articles),
            "passages": len(passages),
            "backbone_id": backbone_id,
            "reused": reused,
            "seconds": round(time.perf_counter() - started, 3),
        }

    @property
    def articles(self) -> dict[str, Article]:
        return self._articles

    def article_for_intent(self, intent: str) -> Article | None:
        return next((a for a in self._articles.values() if a.intent == intent), None)

    def search(self, embeddings: np.ndarray, k: int = 5) -> list[list[Hit]]:
        """The ``k`` best passages for each query embedding, best first."""
        with self._lock:
            index, passages = self._index, self._passages
        if index is None:
            raise RuntimeError("KnowledgeBase.warm_up() has not run")
        if len(embeddings) == 0 or k <= 0:
            return [[] for _ in range(len(embeddings))]
        scores, ids = index.search(np.ascontiguousarray(embeddings, dtype=np.float32), min(k, index.ntotal))
        return [
            [Hit(passages[i], float(s)) for s, i in zip(row_s, row_i, strict=True) if i >= 0]
            for row_s, row_i in zip(scores, ids, strict=True)
        ]

    def best_articles(self, hits: list[Hit]) -> list[tuple[Article, float]]:
        """Articles in the order of their best passage."""
        seen: dict[str, float] = {}
        for hit in hits:
            seen.setdefault(hit.passage.article_id, hit.score)
        return [(self._articles[a], s) for a, s in seen.items() if a in self._articles]
