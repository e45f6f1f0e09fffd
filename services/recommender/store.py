"""Items, viewers and their interactions (SQLAlchemy 2), and the import of MovieLens-shaped CSVs.

One row per (viewer, item): a newer opinion replaces the older one, so a repeated like is not two likes.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import JSON, Float, ForeignKey, Integer, String, UniqueConstraint, func, insert, select, text
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from services.common.db import UtcDateTime
from shared_backbone.data import load_movies, load_ratings
from shared_backbone.errors import DataError

KINDS = ("rating", "like", "dismiss")  # dismiss: "not interested", never recommended again, never a like


def _now() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    type_annotation_map = {datetime: UtcDateTime()}  # noqa: RUF012 - SQLAlchemy's own class attribute


class Item(Base):
    __tablename__ = "recommender_items"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    title: Mapped[str] = mapped_column(String(300))
    year: Mapped[int | None] = mapped_column(Integer)
    genres: Mapped[list[str]] = mapped_column(JSON, default=list)
    tags: Mapped[list[str]] = mapped_column(JSON, default=list)
    source: Mapped[str] = mapped_column(String(16), default="api")  # import | api
    created_at: Mapped[datetime] = mapped_column(default=_now)


class Viewer(Base):
    __tablename__ = "recommender_users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str | None] = mapped_column(String(100))
    source: Mapped[str] = mapped_column(String(16), default="api")
    created_at: Mapped[datetime] = mapped_column(default=_now)


class Interaction(Base):
    __tablename__ = "recommender_interactions"
    __table_args__ = (UniqueConstraint("user_id", "item_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("recommender_users.id", ondelete="CASCADE"), index=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("recommender_items.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    rating: Mapped[float | None] = mapped_column(Float)
    at: Mapped[float] = mapped_column(Float, doc="seconds since the epoch, as MovieLens timestamps")


def is_empty(session: Session) -> bool:
    return session.scalar(select(func.count()).select_from(Item)) == 0


def move_id_sequences(session: Session, *models: type[Base]) -> None:
    """On PostgreSQL, move each table's id sequence past the table's largest id (never back).

    Rows inserted with explicit ids (the import's, a viewer first seen through an interaction) leave the
    sequence behind, and the next ``create_user`` or ``add_item`` would collide with them. SQLite needs
    nothing: it numbers from the largest id, which is what this reproduces (an empty table starts at 1).
    The recommender's write lock serialises it with the inserts that draw from the sequence.
    """
    if session.get_bind().dialect.name != "postgresql":
        return
    for model in models:
        table = model.__tablename__
        sequence = f"pg_get_serial_sequence('{table}', 'id')"
        following = f"GREATEST(nextval({sequence}), COALESCE((SELECT MAX(id) FROM {table}), 0) + 1)"
        session.execute(text(f"SELECT setval({sequence}, {following}, false)"))


def import_movielens(session: Session, folder: Path) -> dict[str, int]:
    """Load ``movies.csv`` (+ ``tags.csv``) and ``ratings.csv`` from ``folder`` into empty tables.

    Ratings of films missing from ``movies.csv`` are skipped (and logged) by the loader.
    """
    if not (folder / "movies.csv").is_file():
        raise DataError(f"{folder}: no movies.csv to import")
    movies = load_movies(folder)
    ratings, _ = load_ratings(folder / "ratings.csv", movies) if (folder / "ratings.csv").is_file() else ([], [])
    session.execute(
        insert(Item),
        [
            {"id": m.movie_id, "title": m.title, "year": m.year, "genres": list(m.genres), "tags": list(m.tags), "source": "import"}
            for m in movies.values()
        ],
    )
    users = sorted({r.user_id for r in ratings})
    if users:
        session.execute(insert(Viewer), [{"id": u, "source": "import"} for u in users])
    latest: dict[tuple[int, int], tuple[float, float]] = {}
    for r in ratings:  # a film rated twice keeps its latest rating, as the API would
        key = (r.user_id, r.movie_id)
        if key not in latest or r.timestamp >= latest[key][1]:
            latest[key] = (r.rating, float(r.timestamp))
    if latest:
        rows = [{"user_id": u, "item_id": i, "kind": "rating", "rating": v, "at": t} for (u, i), (v, t) in latest.items()]
        session.execute(insert(Interaction), rows)
    return {"items": len(movies), "users": len(users), "interactions": len(latest)}
