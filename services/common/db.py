"""One database per service: SQLite by default (WAL, synchronous=NORMAL, foreign keys on), PostgreSQL by URL."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

from sqlalchemy import DateTime, Dialect, Engine, MetaData, TypeDecorator, create_engine, event
from sqlalchemy.orm import Session, sessionmaker


class UtcDateTime(TypeDecorator[datetime]):
    """A time zone-less ``DateTime`` column that holds UTC on every database, read back naive as before.

    PostgreSQL casts an aware time bound to ``timestamp without time zone`` to the session's own wall time
    (a server in Kolkata stored 12:00 UTC as 17:30); SQLite kept the UTC wall time. Converting here stores
    what SQLite always did, on both, with the same column type (no migration).
    """

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is not None:
            return value.astimezone(UTC).replace(tzinfo=None)
        return value


class Database:
    """Plain URL in, engine and sessions out after ``warm_up()``."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._engine: Engine | None = None
        self._sessions: sessionmaker[Session] | None = None

    def warm_up(self, metadata: MetaData) -> None:
        if self._engine is not None:
            return
        is_sqlite = self.url.startswith("sqlite")
        engine = create_engine(
            self.url, connect_args={"check_same_thread": False, "timeout": 30} if is_sqlite else {}, pool_pre_ping=not is_sqlite
        )
        if is_sqlite:

            @event.listens_for(engine, "connect")
            def _sqlite_pragmas(connection, _record) -> None:  # type: ignore[no-untyped-def]
                cursor = connection.cursor()
                cursor.execute("PRAGMA journal_mode=WAL")
                cursor.execute("PRAGMA synchronous=NORMAL")  # with WAL: no fsync per commit, still crash-safe
                cursor.execute("PRAGMA foreign_keys=ON")
                cursor.execute("PRAGMA busy_timeout=30000")
                cursor.close()

        metadata.create_all(engine)
        self._engine = engine
        self._sessions = sessionmaker(engine, expire_on_commit=False)

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            raise RuntimeError("Database.warm_up() has not run")
        return self._engine

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A transaction: committed when the block ends, rolled back if it raises."""
        if self._sessions is None:
            raise RuntimeError("Database.warm_up() has not run")
        with self._sessions() as session, session.begin():
            yield session

    def dispose(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
