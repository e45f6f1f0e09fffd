"""The recommender: catalogue, viewers' likes, the item index and the collaborative model, in one place.

Reads are served from memory (the database is the record, loaded at start-up). What a request reads
about the catalogue (ids, vectors, items, the collaborative model) is one immutable ``Catalogue``
taken once per request; adding a film or refitting builds a new one and swaps the reference, so a
request never sees half an update. Every write goes to the database first and reaches memory only
after its commit, so a failed request leaves both as they were. A like changes the viewer's next
list at once: the text profile and the collaborative row are computed per request, nothing is retrained.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from services.common.backbone import backbone_for
from services.common.db import Database
from services.recommender.collaborative import CollaborativeModel, InteractionMatrix
from services.recommender.index import ItemIndex, content_key
from services.recommender.ranking import (
    ItemFacts,
    Spread,
    because_you_liked,
    blend,
    hybrid_candidates,
    matching_words,
    mmr,
    passes,
    text_spread,
    user_profile,
)
from services.recommender.settings import RecommenderSettings
from services.recommender.store import Base, Interaction, Item, Viewer, import_movielens, is_empty, move_id_sequences
from shared_backbone.client import BackboneClient
from shared_backbone.data import Movie
from shared_backbone.errors import ConfigError
from shared_backbone.text import normalise_text

log = logging.getLogger(__name__)
MAX_ID = 2**31 - 1  # ids are 32-bit in every database we support


class UnknownItem(LookupError):
    """An item id that is not in the catalogue."""


class UnknownUser(LookupError):
    """A viewer id that this service has never seen."""


@dataclass
class Viewing:
    """What the service knows of one viewer: likes with their times, everything rated, and dismissals."""

    likes: dict[int, float] = field(default_factory=dict)
    seen: set[int] = field(default_factory=set)
    dismissed: set[int] = field(default_factory=set)


@dataclass(frozen=True)
class Catalogue:
    """Everything a request reads about the films, consistent with itself; replaced, never changed."""

    ids: np.ndarray  # item id per column (the index row)
    vectors: np.ndarray  # one unit row per column
    column: dict[int, int]
    items: dict[int, ItemFacts]
    model: CollaborativeModel
    genres: list[str]
    vector_sum: np.ndarray
    vector_gram: np.ndarray

    def item_at(self, column: int) -> ItemFacts:
        return self.items[int(self.ids[column])]

    def like_count(self, item_id: int) -> int:
        column = self.column.get(item_id)
        counts = self.model.like_counts
        return int(counts[column]) if column is not None and column < len(counts) else 0


def facts(item_id: int, title: str, year: int | None, genres: Sequence[str], tags: Sequence[str]) -> ItemFacts:
    text = Movie(item_id, title, year, tuple(genres), tuple(tags)).text()
    return ItemFacts(item_id, title, year, tuple(genres), text)


def describe(item: ItemFacts) -> dict[str, Any]:
    return {"item_id": item.item_id, "title": item.title, "year": item.year, "genres": list(item.genres)}


class Recommender:
    def __init__(self, settings: RecommenderSettings, client: BackboneClient | None = None) -> None:
        self.settings = settings
        self._client = client
        self.database = Database(settings.database_url_or_default("recommender"))
        # one folder per database: two stores (the service's, a benchmark's) never evict each other's index or model
        store = hashlib.sha256(self.database.url.encode()).hexdigest()[:12]
        root = settings.backbone.artifacts_dir / "recommender" / store
        self.index = ItemIndex(root / "index", hnsw_above=settings.hnsw_above)
        self.model_dir = root / "collaborative"
        self.viewers: dict[int, Viewing] = {}
        self.backbone_id = ""
        self.state = Catalogue(
            np.zeros(0, dtype=np.int64), np.zeros((0, 0), dtype=np.float32), {}, {}, self._new_model(), [], np.zeros(0), np.zeros((0, 0))
        )
        self._write = threading.Lock()  # writers, one at a time; readers never wait on a fit
        self._refit = threading.Lock()

    def _new_model(self) -> CollaborativeModel:
        s = self.settings
        return CollaborativeModel(
            s.ease_l2, s.text_neighbours, s.text_neighbour_weight, s.min_item_likes, s.ease_keep, half_precision=s.ease_half_precision
        )

    @property
    def client(self) -> BackboneClient:
        if self._client is None:
            s = self.settings
            self._client = backbone_for("recommender", s.deployment, s.profile, s.backbone)
        return self._client

    # --- start-up ---------------------------------------------------------------------------------

    def warm_up(self) -> None:
        """Load the store (importing the seed CSVs into an empty one), embed and index the catalogue, fit the model."""
        self.database.warm_up(Base.metadata)
        with self.database.session() as db:
            if is_empty(db) and self.settings.seed_dir is not None:
                counts = import_movielens(db, self.settings.seed_dir)
                log.info("imported %s from %s", counts, self.settings.seed_dir)
                move_id_sequences(db, Item, Viewer)
        items = self._load_store()
        self.client.warm_up()
        self.backbone_id = self.client.info().backbone_id
        ids, vectors = self._load_index(items)
        state = self._catalogue(ids, vectors, items, self._new_model())
        self.state = replace(state, model=self._load_model(state))

    def _load_store(self) -> dict[int, ItemFacts]:
        threshold = self.settings.positive_threshold
        with self.database.session() as db:
            items = {i.id: facts(i.id, i.title, i.year, i.genres, i.tags) for i in db.scalars(select(Item).order_by(Item.id))}
            self.viewers = {user: Viewing() for user in db.scalars(select(Viewer.id))}
            for row in db.execute(select(Interaction.user_id, Interaction.item_id, Interaction.kind, Interaction.rating, Interaction.at)):
                self._remember(self.viewers.setdefault(row.user_id, Viewing()), row.item_id, row.kind, row.rating, row.at, threshold)
        return items

    @staticmethod
    def _remember(viewing: Viewing, item_id: int, kind: str, rating: float | None, at: float, threshold: float) -> bool:
        positive = kind == "like" or (kind == "rating" and rating is not None and rating >= threshold)
        viewing.seen.add(item_id)
        if positive:
            viewing.likes[item_id] = at
        else:
            viewing.likes.pop(item_id, None)
        if kind == "dismiss":
            viewing.dismissed.add(item_id)
        else:
            viewing.dismissed.discard(item_id)
        return positive

    def _index_key(self, items: dict[int, ItemFacts]) -> str:
        """The catalogue's text (ids sorted) and the index kind's settings: change either and the index is rebuilt."""
        ids = sorted(items)
        return f"{content_key(ids, [items[i].text for i in ids])}-hnsw{self.settings.hnsw_above}"

    def _load_index(self, items: dict[int, ItemFacts]) -> tuple[np.ndarray, np.ndarray]:
        key = self._index_key(items)
        if not self.index.load(self.backbone_id, key):
            ids = sorted(items)
            started = time.perf_counter()
            vectors = self.client.encode([items[i].text for i in ids]) if ids else np.zeros((0, self.client.info().dimension))
            self.index.build(self.backbone_id, ids, vectors, key)
            log.info("indexed %d items in %.1f s (%s)", len(ids), time.perf_counter() - started, self.index.kind)
        return self.index.ids, self.index.matrix

    @staticmethod
    def _catalogue(ids: np.ndarray, vectors: np.ndarray, items: dict[int, ItemFacts], model: CollaborativeModel) -> Catalogue:
        wide = vectors.astype(np.float64)
        return Catalogue(
            ids=ids,
            vectors=vectors,
            column={int(i): row for row, i in enumerate(ids)},
            items=items,
            model=model,
            genres=sorted({g for item in items.values() for g in item.genres}),
            vector_sum=wide.sum(axis=0),
            vector_gram=wide.T @ wide,
        )

    def _likes(self) -> list[tuple[int, int]]:
        with self._write:
            return [(user, item) for user, viewing in self.viewers.items() for item in viewing.likes]

    def _model_digest(self, state: Catalogue, pairs: list[tuple[int, int]]) -> str:
        """What the fitted weights depend on: settings, the catalogue (its text, through the neighbours), every like."""
        s = self.settings
        digest = hashlib.sha256(
            f"{s.ease_l2}|{s.text_neighbours}|{s.text_neighbour_weight}|{s.min_item_likes}|{s.ease_keep}|{s.ease_half_precision}|".encode()
        )
        if s.text_neighbours:
            digest.update(
                f"{self.backbone_id}|{content_key(state.ids.tolist(), [state.item_at(c).text for c in range(len(state.ids))])}".encode()
            )
        digest.update(np.asarray(state.ids, dtype=np.int64).tobytes())
        digest.update(np.asarray(sorted(pairs), dtype=np.int64).tobytes())
        return digest.hexdigest()[:20]

    def _load_model(self, state: Catalogue) -> CollaborativeModel:
        pairs = self._likes()
        path = self.model_dir / f"{self._model_digest(state, pairs)}.npz"
        model = self._new_model()
        if not model.load(path):
            self._fit(model, state, pairs, path)
        return model

    def _fit(self, model: CollaborativeModel, state: Catalogue, pairs: list[tuple[int, int]], path: Any) -> None:
        started = time.perf_counter()
        model.fit(InteractionMatrix.build(pairs, [int(i) for i in state.ids]), state.vectors)
        log.info("fitted the collaborative model on %d likes in %.1f s", len(pairs), time.perf_counter() - started)
        try:
            model.save(path)
            for older in self.model_dir.glob("*.npz"):  # one saved model is enough: each is ~4 bytes x items^2
                if older != path:
                    older.unlink(missing_ok=True)
        except OSError as exc:  # a cache that cannot be written costs a refit at the next start, nothing more
            log.warning("could not save the collaborative model: %s", exc)

    def refit(self) -> dict[str, Any]:
        """Fit the collaborative model on every like so far (new viewers and films join it), then swap it in.

        The fit runs outside the write lock, so requests keep being served meanwhile; refits queue.
        """
        with self._refit:
            started = time.perf_counter()
            state, pairs, model = self.state, self._likes(), self._new_model()
            self._fit(model, state, pairs, self.model_dir / f"{self._model_digest(state, pairs)}.npz")
            with self._write:  # films added during the fit keep their columns: the model covers a prefix
                self.state = replace(self.state, model=model)
        return {"items_covered": len(model.columns), "seconds": round(time.perf_counter() - started, 2)}

    # --- reading ----------------------------------------------------------------------------------

    def viewing(self, user_id: int) -> Viewing | None:
        with self._write:  # a consistent copy: a like arriving meanwhile is either in or out
            found = self.viewers.get(user_id)
            return None if found is None else Viewing(dict(found.likes), set(found.seen), set(found.dismissed))

    def recommend(
        self,
        user_id: int,
        k: int,
        *,
        exclude_seen: bool = True,
        genres: Sequence[str] = (),
        year_from: int | None = None,
        year_to: int | None = None,
        diversity: float | None = None,
    ) -> dict[str, Any]:
        """A viewer's list; an unknown viewer or one without likes gets the cold-start list, flagged."""
        state, viewing = self.state, self.viewing(user_id)
        liked = [] if viewing is None else [(item, at) for item, at in viewing.likes.items() if item in state.column]
        blocked = set() if viewing is None else viewing.dismissed | (viewing.seen if exclude_seen else set())
        vectors = state.vectors
        if not liked:
            popular = np.zeros(len(vectors), dtype=np.float32)
            popular[: len(state.model.like_counts)] = state.model.like_counts
            order = np.argsort(-popular, kind="stable")
            ranked = [(int(c), float(popular[c])) for c in order]
            picks = self._pick(state, ranked, k, blocked, genres, year_from, year_to, 0.0 if diversity is None else diversity)
            results = [self._result(state, c, s, "popular with viewers", None) for c, s in picks]
            cold = "unknown user" if viewing is None else "no likes yet"
            return {"user_id": user_id, "cold_start": True, "cold_start_reason": cold, "items": results}
        columns = [state.column[item] for item, _ in liked]
        profile = user_profile(vectors[columns], [at for _, at in liked], self.settings.half_life_days)
        collaborative = state.model.scores(columns, len(vectors))
        spread = text_spread(state.vector_sum, state.vector_gram, len(vectors), profile)
        if genres or year_from is not None or year_to is not None:  # a narrow filter can empty the top candidates: score all that pass
            pool = np.array([state.column[i] for i, f in state.items.items() if passes(f, genres, year_from, year_to)], dtype=np.int64)
            scores = blend(vectors[pool] @ profile, spread, collaborative[pool], Spread.of(collaborative), self.settings.text_weight)
            order = np.argsort(-scores, kind="stable")
            pool, scores = pool[order], scores[order]
        else:
            hits = self.index.search(profile[None, :], self.settings.candidates + len(blocked))[0]
            text_top = [state.column[i] for i, _ in hits if i in state.column and i not in blocked]
            exclude = [state.column[i] for i in blocked if i in state.column]
            pool, scores = hybrid_candidates(
                profile, vectors, text_top, spread, collaborative, self.settings.text_weight, self.settings.candidates, exclude
            )
        ranked = [(int(c), float(s)) for c, s in zip(pool, scores, strict=True)]
        picks = self._pick(state, ranked, k, blocked, genres, year_from, year_to, diversity)
        results = [self._result(state, c, s, *self._because(state, c, columns)) for c, s in picks]
        return {"user_id": user_id, "cold_start": False, "cold_start_reason": None, "items": results}

    def wish(
        self, text: str, k: int, *, user_id: int | None = None, genres: Sequence[str] = (), diversity: float | None = None
    ) -> dict[str, Any]:
        """Cold start from words: the wish is encoded and searched; each result says which words it shares."""
        wish = normalise_text(text)
        if not wish:
            raise ValueError("the wish is empty: describe what you would like to watch")
        vector = np.asarray(self.client.encode([wish])[0], dtype=np.float32)
        state = self.state
        viewing = self.viewing(user_id) if user_id is not None else None
        blocked = set() if viewing is None else viewing.seen | viewing.dismissed
        wanted = len(state.column) if genres else min(len(state.column), max(self.settings.candidates, 5 * k) + len(blocked))
        hits = self.index.search(vector[None, :], wanted)[0]
        ranked = [(state.column[i], s) for i, s in hits if i in state.column]
        results = []
        for column, score in self._pick(state, ranked, k, blocked, genres, None, None, diversity):
            item = state.item_at(column)
            results.append(self._result(state, column, score, matching_words(wish, item) or "close in meaning to your wish", None))
        return {"wish": wish, "user_id": user_id, "items": results}

    def similar(self, item_id: int, k: int, diversity: float | None = None) -> dict[str, Any]:
        """Films like one film: its text neighbours and what its fans also liked, blended as for a viewer."""
        state = self.state
        if item_id not in state.column:
            raise UnknownItem(item_id)
        vectors, column = state.vectors, state.column[item_id]
        profile = vectors[column]
        hits = self.index.search(profile[None, :], self.settings.candidates)[0]
        text_top = [state.column[i] for i, _ in hits if i in state.column]
        spread = text_spread(state.vector_sum, state.vector_gram, len(vectors), profile)
        collaborative = state.model.scores([column], len(vectors))
        pool, scores = hybrid_candidates(
            profile, vectors, text_top, spread, collaborative, self.settings.text_weight, self.settings.candidates
        )
        source = state.items[item_id]
        results = []
        for c, s in self._pick(
            state, [(int(c), float(s)) for c, s in zip(pool, scores, strict=True)], k, {item_id}, (), None, None, diversity
        ):
            shared = [g for g in state.item_at(c).genres if g in source.genres]
            if state.model.weight(column, c) > 0:
                reason = f"liked by viewers who liked {source.title}"
            else:
                reason = f"also {', '.join(shared)}" if shared else "similar description"
            results.append(self._result(state, c, s, reason, item_id))
        return {"item": self.item(item_id), "items": results}

    def _pick(
        self,
        state: Catalogue,
        ranked: list[tuple[int, float]],
        k: int,
        blocked: set[int],
        genres: Sequence[str],
        year_from: int | None,
        year_to: int | None,
        diversity: float | None,
    ) -> list[tuple[int, float]]:
        """Filters, then a diversity re-rank (MMR) over a short list three times ``k`` long."""
        shortlist: list[tuple[int, float]] = []
        for column, score in ranked:
            item = state.item_at(column)
            if item.item_id in blocked or not passes(item, genres, year_from, year_to):
                continue
            shortlist.append((column, score))
            if len(shortlist) >= 3 * k:
                break
        diversity = self.settings.diversity if diversity is None else diversity
        if not shortlist or diversity == 0.0:
            return shortlist[:k]
        scores = np.array([s for _, s in shortlist])
        span = scores.max() - scores.min()
        relevance = (scores - scores.min()) / span if span > 0 else np.ones(len(scores))
        order = mmr(relevance, state.vectors[[c for c, _ in shortlist]], k, diversity)
        return [shortlist[i] for i in order]

    @staticmethod
    def _because(state: Catalogue, column: int, liked_columns: list[int]) -> tuple[str, int]:
        lifts = np.array([state.model.weight(liked, column) for liked in liked_columns])
        similarities = state.vectors[liked_columns] @ state.vectors[column]
        source = state.item_at(liked_columns[because_you_liked(lifts, similarities)])
        return f"because you liked {source.title}", source.item_id

    @staticmethod
    def _result(state: Catalogue, column: int, score: float, reason: str, because: int | None) -> dict[str, Any]:
        return {**describe(state.item_at(column)), "score": round(float(score), 4), "reason": reason, "because_item_id": because}

    def item(self, item_id: int) -> dict[str, Any]:
        state = self.state
        found = state.items.get(item_id)
        if found is None:
            raise UnknownItem(item_id)
        covered = state.model.covers(state.column[item_id])
        return {**describe(found), "text": found.text, "in_collaborative_model": covered}

    def genres(self) -> list[str]:
        return self.state.genres

    def find_items(self, query: str, limit: int) -> list[dict[str, Any]]:
        """Titles containing ``query`` (case-insensitive), the most liked first: for picking films by name."""
        state, needle = self.state, query.strip().lower()
        found = sorted(
            (f for f in state.items.values() if needle in f.title.lower()), key=lambda f: (-state.like_count(f.item_id), f.title)
        )
        return [{**describe(f), "likes": state.like_count(f.item_id)} for f in found[:limit]]

    def user(self, user_id: int, recent: int = 20) -> dict[str, Any]:
        state, viewing = self.state, self.viewing(user_id)
        if viewing is None:
            raise UnknownUser(user_id)
        latest = sorted(viewing.likes.items(), key=lambda pair: -pair[1])[:recent]
        return {
            "user_id": user_id,
            "likes": len(viewing.likes),
            "rated": len(viewing.seen),
            "dismissed": len(viewing.dismissed),
            "recent_likes": [{**describe(state.items[i]), "at": at} for i, at in latest if i in state.items],
        }

    def users(self, limit: int) -> list[dict[str, Any]]:
        """Viewers with the most likes first (a demo picker), newest accounts breaking ties."""
        with self._write:
            counts = [(user, len(viewing.likes)) for user, viewing in self.viewers.items()]
        counts.sort(key=lambda pair: (-pair[1], -pair[0]))
        return [{"user_id": user, "likes": likes} for user, likes in counts[:limit]]

    # --- writing ----------------------------------------------------------------------------------

    def create_user(self, name: str | None) -> dict[str, Any]:
        with self._write:
            with self.database.session() as db:
                viewer = Viewer(name=name, source="api")
                db.add(viewer)
                db.flush()
                if viewer.id > MAX_ID:  # rolled back: an id the API could not address is no account
                    raise ConfigError(f"viewer ids are exhausted (the next would be {viewer.id}, above {MAX_ID})")
                user_id = viewer.id
            self.viewers.setdefault(user_id, Viewing())
        return {"user_id": user_id, "name": name}

    def interact(self, user_id: int, item_id: int, kind: str, rating: float | None, at: float | None = None) -> dict[str, Any]:
        """Record one opinion; a second one on the same item replaces the first (one row per viewer and item)."""
        if item_id not in self.state.items:
            raise UnknownItem(item_id)
        at = time.time() if at is None else at
        with self._write:
            with self.database.session() as db:
                if db.get(Viewer, user_id) is None:
                    db.add(Viewer(id=user_id, source="api"))
                    db.flush()
                    move_id_sequences(db, Viewer)  # an explicit id: the next create_user must not collide with it
                row = db.scalar(select(Interaction).where(Interaction.user_id == user_id, Interaction.item_id == item_id))
                replaced = row is not None
                if row is None:
                    try:
                        with db.begin_nested():
                            db.add(Interaction(user_id=user_id, item_id=item_id, kind=kind, rating=rating, at=at))
                    except IntegrityError:  # another process wrote the same pair first: ours replaces it
                        row = db.scalar(select(Interaction).where(Interaction.user_id == user_id, Interaction.item_id == item_id))
                        replaced = True
                if row is not None:
                    row.kind, row.rating, row.at = kind, rating, at
            viewing = self.viewers.setdefault(user_id, Viewing())
            positive = self._remember(viewing, item_id, kind, rating, at, self.settings.positive_threshold)
        return {"user_id": user_id, "item_id": item_id, "kind": kind, "rating": rating, "positive": positive, "replaced": replaced}

    def add_item(self, title: str, year: int | None, genres: Sequence[str], tags: Sequence[str]) -> dict[str, Any]:
        """Embed first (a backbone failure stores nothing), commit, then index: recommendable before this returns."""
        draft = facts(0, title, year, genres, tags)
        vector = np.asarray(self.client.encode([draft.text]), dtype=np.float32)
        with self._write:
            with self.database.session() as db:
                row = Item(title=title, year=year, genres=list(genres), tags=list(tags), source="api")
                db.add(row)
                db.flush()
                item_id = row.id
            # committed: only now does the film join the index and the catalogue, so a failed commit leaves no trace
            self.index.add([item_id], vector)
            item = facts(item_id, title, year, genres, tags)
            old = self.state
            items = {**old.items, item_id: item}
            self.state = replace(
                old,
                ids=self.index.ids,
                vectors=self.index.matrix,
                column={**old.column, item_id: len(self.index.ids) - 1},
                items=items,
                genres=sorted({*old.genres, *item.genres}),
                vector_sum=old.vector_sum + vector[0],
                vector_gram=old.vector_gram + np.outer(vector[0], vector[0]),
            )
            try:
                self.index.save(self._index_key(items))
            except OSError as exc:  # the film is stored and served; the index is rebuilt from the store at the next start
                log.warning("could not save the item index: %s", exc)
        return self.item(item_id)
