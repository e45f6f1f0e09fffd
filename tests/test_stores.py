"""The three services' stores on SQLite (the default) and on PostgreSQL (production's), through the services' own code.

Every test takes ``database_url``: once a SQLite file, once a fresh schema on the server that
``SPINE_TEST_POSTGRES_URL`` names (``scripts/test-postgres.sh``), whose session runs in a non-UTC zone.
The backbones are the keyword and bag-of-words fakes the service tests use: these tests are about storage.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sentiment_fakes import KeywordClient
from sqlalchemy import Engine, create_engine, event, func, insert, select
from sqlalchemy.exc import IntegrityError
from test_recommender_service import WordClient
from test_sentiment_monitor import START, base_texts, replay_config
from test_support import ScriptedClient, write_kb

from services.common.db import Database
from services.recommender import app as recommender_app
from services.recommender.engine import Recommender
from services.recommender.settings import RecommenderSettings
from services.recommender.store import Interaction, Item, Viewer
from services.sentiment import app as sentiment_app
from services.sentiment.alerts import _alert
from services.sentiment.delivery import summary
from services.sentiment.detector import Surge
from services.sentiment.documents import RawDocument, utc
from services.sentiment.monitor import Monitor
from services.sentiment.pipeline import IngestReport
from services.sentiment.settings import SentimentSettings
from services.sentiment.store import Alert, Delivery, Document, DocumentTicker, SourceRecord, Subscription
from services.support import app as support_app
from services.support.settings import SupportSettings
from services.support.store import Feedback, Turn
from shared_backbone.settings import BackboneSettings

ADMIN = {"X-Admin-Key": "s3cret"}


def count(url: str, table: type, *where: Any) -> int:
    """Rows as a separate connection sees them: only what was committed."""
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            return int(connection.scalar(select(func.count()).select_from(table).where(*where)) or 0)
    finally:
        engine.dispose()


def near_now(stamp: str) -> bool:
    """The API's naive times are UTC: a server that stored its own wall time would be hours off."""
    return abs(utc(datetime.fromisoformat(stamp)) - datetime.now(UTC)) < timedelta(minutes=5)


def on_first_select(engine: Engine, table: str, action: Callable[[], None]) -> Callable[[], None]:
    """Run ``action`` (another writer) right after the first SELECT that reads ``table``: a race, on cue. Returns the undo."""
    armed = [True]

    def listener(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if armed[0] and statement.lstrip().upper().startswith("SELECT") and table in statement:
            armed[0] = False
            action()

    event.listen(engine, "after_cursor_execute", listener)
    return lambda: event.remove(engine, "after_cursor_execute", listener)


# --- sentiment -------------------------------------------------------------------------------------


def sentiment_settings(database_url: str, tmp_path: Path, **extra: Any) -> SentimentSettings:
    return SentimentSettings(
        database_url=database_url,
        backbone=BackboneSettings(artifacts_dir=tmp_path / "artifacts"),
        admin_api_key="s3cret",
        ticker_names={"tesla": "TSLA"},
        scheduler=False,
        demo_replay=False,
        **extra,
    )


@pytest.fixture
def monitor(database_url: str, tmp_path: Path) -> Iterator[Monitor]:
    instance = Monitor(sentiment_settings(database_url, tmp_path), KeywordClient())
    instance.warm_up()
    yield instance
    instance.shut_down()


NEWS = [
    RawDocument("push", "Tesla earnings miss, shares plunge", published_at=START, url="https://news.example/1"),
    RawDocument("push", "Oil soars on supply cut, $XOM and $CVX up", published_at=START + timedelta(minutes=5)),
    RawDocument("push", "Markets steady ahead of the data", title="Quiet day", published_at=START + timedelta(minutes=9)),
]


def test_sentiment_stores_each_story_once_with_its_tickers_and_times(monitor: Monitor, database_url: str) -> None:
    first = monitor.push(NEWS)
    again = monitor.push(NEWS)  # the usual path: known hashes are counted before scoring
    assert (first["stored"], first["duplicates"]) == (3, 0) and (again["stored"], again["duplicates"]) == (0, 3)

    # The store's own guard (another process stored them between the check and the insert): ON CONFLICT DO NOTHING,
    # counted as duplicates, and the transaction goes on: a later story in it is stored.
    pipeline, report = monitor.pipeline, IngestReport()
    late = RawDocument("push", "Tesla beats on deliveries", published_at=START + timedelta(minutes=20))
    scored = pipeline.score(pipeline.prepare([*NEWS, late], report))
    with monitor.database.session() as db:
        push = db.get(SourceRecord, "push")
        assert push is not None
        pipeline.store(db, push, scored, {"pushed": 2}, report)
    assert (report.stored, report.duplicates) == (1, 3)
    assert count(database_url, Document) == 4

    with monitor.database.session() as db:
        docs = {d.text: d for d in db.scalars(select(Document))}
        tickers = {(t.ticker, t.document_id) for t in db.scalars(select(DocumentTicker))}
        assert tickers == {
            ("TSLA", docs["Tesla earnings miss, shares plunge"].id),
            ("XOM", docs["Oil soars on supply cut, $XOM and $CVX up"].id),
            ("CVX", docs["Oil soars on supply cut, $XOM and $CVX up"].id),
            ("TSLA", docs["Tesla beats on deliveries"].id),
        }
        assert docs["Oil soars on supply cut, $XOM and $CVX up"].tickers == ["XOM", "CVX"]
        assert utc(docs["Quiet day. Markets steady ahead of the data"].published_at) == START + timedelta(minutes=9)
        push = db.get(SourceRecord, "push")
        assert push is not None and push.stored == 4 and push.cursor == {"pushed": 2}


def test_sentiment_store_keeps_one_copy_of_a_story_repeated_within_one_run(monitor: Monitor, database_url: str) -> None:
    """The multi-row insert meets the same hash twice in one statement: one row, one ticker link, one duplicate."""
    pipeline, report = monitor.pipeline, IngestReport()
    story = RawDocument("push", "Nvidia guides higher, $NVDA jumps", published_at=START)
    (scored,) = pipeline.score(pipeline.prepare([story], report))
    with monitor.database.session() as db:
        push = db.get(SourceRecord, "push")
        assert push is not None
        pipeline.store(db, push, [scored, scored], {"pushed": 1}, report)
    assert (report.stored, report.duplicates, len(report.document_ids)) == (1, 1, 1)
    assert count(database_url, Document) == 1 and count(database_url, DocumentTicker) == 1


def test_sentiment_source_cursor_is_read_back_by_a_new_database_object(database_url: str, tmp_path: Path) -> None:
    settings = sentiment_settings(database_url, tmp_path, fetch_limit=7)
    first = Monitor(settings, KeywordClient(), replay_texts=base_texts(40))
    first.warm_up()
    first.add_source("replay", "replay", {"start": START.isoformat(), "spacing_s": 60}, interval_s=0)
    assert first.run_source("replay")["stored"] == 7
    first.shut_down()

    database = Database(database_url)  # a new engine: only what was committed is there
    database.warm_up(SourceRecord.metadata)
    with database.session() as db:
        record = db.get(SourceRecord, "replay")
        assert record is not None and record.cursor == {"position": 7} and record.stored == 7
        assert record.config == {"start": START.isoformat(), "spacing_s": 60} and record.last_run_at is not None
    database.dispose()

    second = Monitor(settings, KeywordClient(), replay_texts=base_texts(40))
    second.warm_up()
    assert [s["name"] for s in second.sources()] == ["push", "replay"]
    assert second.run_source("replay")["stored"] == 7
    assert second.sources()[1]["cursor"] == {"position": 14}
    second.shut_down()
    assert count(database_url, Document) == 14


@pytest.fixture
def sentiment_api(database_url: str, tmp_path: Path) -> Iterator[TestClient]:
    with TestClient(sentiment_app.create_app(sentiment_settings(database_url, tmp_path), KeywordClient())) as client:
        client.app.state.monitor.replay_texts = base_texts()  # type: ignore[attr-defined]
        yield client


def test_sentiment_alerts_are_raised_once_queued_for_subscribers_and_acknowledged(sentiment_api: TestClient, database_url: str) -> None:
    api = sentiment_api
    desk = {
        "name": "desk",
        "topics": ["Earnings"],
        "tickers": ["$tsla"],
        "email": "ana@example.com",
        "webhook_url": "https://hooks.example/T0/x",
    }
    made = api.post("/subscriptions", json=desk, headers=ADMIN)
    assert made.status_code == 201 and made.json()["tickers"] == ["TSLA"] and made.json()["webhook"] == "https://hooks.example/..."
    api.post("/subscriptions", json={"name": "oil", "topics": ["Energy | Oil"]}, headers=ADMIN)
    listed = api.get("/subscriptions").json()
    assert [(s["name"], s["topics"], s["tickers"], s["email"]) for s in listed] == [
        ("desk", ["Earnings"], ["TSLA"], "ana@example.com"),
        ("oil", ["Energy | Oil"], [], None),
    ]

    made = api.post("/sources", json={"name": "replay", "kind": "replay", "config": replay_config(), "interval_s": 0}, headers=ADMIN)
    assert made.status_code == 201
    while api.post("/sources/replay/run", headers=ADMIN).json()["fetched"]:
        pass
    (alert,) = api.get("/alerts").json()
    assert alert["key"] == "topic:Earnings" and alert["window_start"] == (START + timedelta(hours=12)).isoformat()
    assert len(alert["evidence"]) == 5 and all("miss" in e["text"] for e in alert["evidence"])

    monitor: Monitor = api.app.state.monitor  # type: ignore[attr-defined]
    with monitor.database.session() as db:
        deliveries = sorted((d.channel, d.status, d.subscription_id) for d in db.scalars(select(Delivery)))
        assert deliveries == [("email", "pending", 1), ("in_app", "sent", None), ("webhook", "pending", 1)]
        stored = db.get(Alert, alert["id"])
        assert stored is not None and "window from 2026-03-02 12:00 UTC" in summary(stored)
        # The same surge again (a re-read after a crash, another process): the unique dedupe key refuses it inside a
        # savepoint, and the rest of the transaction still commits.
        start = START + timedelta(hours=12)
        again = Surge("topic:Earnings", start, 40, 0.8, 0.1, 0.05, 9.0, "high")
        assert _alert(db, again, monitor.width) is None
        other = _alert(db, Surge("topic:Markets", start, 40, 0.8, 0.1, 0.05, 9.0, "high"), monitor.width)
        assert other is not None
    assert count(database_url, Alert) == 2 and count(database_url, Alert, Alert.dedupe_key == again.dedupe_key) == 1
    with pytest.raises(IntegrityError), monitor.database.session() as db:
        values = {"volume": 40, "share_negative": 0.8, "baseline_share": 0.1, "z": 9.0, "severity": "high"}
        db.add(Alert(dedupe_key=again.dedupe_key, key="topic:Earnings", window_start=start, window_end=start, **values))

    acked = api.post(f"/alerts/{alert['id']}/ack", headers=ADMIN).json()
    twice = api.post(f"/alerts/{alert['id']}/ack", headers=ADMIN).json()
    assert acked["acknowledged_at"] is not None and twice["acknowledged_at"] == acked["acknowledged_at"]
    assert near_now(acked["acknowledged_at"])
    assert [a["key"] for a in api.get("/alerts", params={"acknowledged": False}).json()] == ["topic:Markets"]
    assert api.get("/health").json()["open_alerts"] == 1


def test_sentiment_refuses_a_name_too_wide_for_its_column_once_normalised(sentiment_api: TestClient, database_url: str) -> None:
    """One U+FDFA is 18 characters after NFKC: 100 of them fit the request but not the column (PostgreSQL checks)."""
    response = sentiment_api.post("/subscriptions", json={"name": "\ufdfa" * 100}, headers=ADMIN)
    assert response.status_code == 422 and "longer than 100 characters" in response.json()["detail"]
    assert sentiment_api.post("/subscriptions", json={"name": "\ufdfa" * 5}, headers=ADMIN).status_code == 201
    assert count(database_url, Subscription) == 1


# --- recommender -----------------------------------------------------------------------------------


@pytest.fixture
def recommender_settings(database_url: str, tmp_path: Path, small_movielens: Path) -> RecommenderSettings:
    return RecommenderSettings(
        seed_dir=small_movielens,
        database_url=database_url,
        admin_api_key="s3cret",
        backbone=BackboneSettings(artifacts_dir=tmp_path / "artifacts"),
        ease_l2=1.0,
        text_neighbours=2,
        diversity=0.0,
    )


@pytest.fixture
def recommender(recommender_settings: RecommenderSettings) -> Iterator[Recommender]:
    instance = Recommender(recommender_settings, WordClient())
    instance.warm_up()
    yield instance
    instance.database.dispose()


def test_recommender_imports_movielens_and_new_rows_get_fresh_ids(
    recommender: Recommender, recommender_settings: RecommenderSettings
) -> None:
    url = recommender_settings.database_url or ""
    assert (count(url, Item), count(url, Viewer), count(url, Interaction)) == (10, 6, 15)
    with recommender.database.session() as db:
        wedding = db.get(Item, 6)
        assert wedding is not None and (wedding.title, wedding.year, wedding.genres) == (
            "Wedding Chaos, The (1995)",
            1995,
            ["Comedy", "Romance"],
        )
        assert db.get(Item, 9).tags == ["funny", "space"]  # type: ignore[union-attr]
        assert db.scalar(select(Interaction.rating).where(Interaction.user_id == 1, Interaction.item_id == 2)) == 4.5

    # After an import with explicit ids, PostgreSQL's sequences must have moved past them.
    assert recommender.add_item("Late Addition", 2024, ["Drama"], ["quiet"])["item_id"] == 11
    assert recommender.create_user("ana")["user_id"] == 7
    # A viewer first seen through an interaction is stored under the id they came with; the next account skips it.
    recommender.interact(8, 1, "like", None)
    assert recommender.create_user("bo")["user_id"] == 9
    assert recommender.add_item("Later Still", None, [], [])["item_id"] == 12

    again = Recommender(recommender_settings, WordClient())  # a restart: nothing imported twice
    again.warm_up()
    assert (count(url, Item), count(url, Viewer), count(url, Interaction)) == (12, 9, 16)
    assert again.create_user(None)["user_id"] == 10
    again.database.dispose()


@pytest.mark.parametrize("seed", ["none", "films only"])
def test_an_empty_table_numbers_from_one(database_url: str, tmp_path: Path, small_movielens: Path, seed: str) -> None:
    films = tmp_path / "films-only"
    films.mkdir()
    (films / "movies.csv").write_bytes((small_movielens / "movies.csv").read_bytes())
    backbone = BackboneSettings(artifacts_dir=tmp_path / "artifacts")
    settings = RecommenderSettings(database_url=database_url, seed_dir=None if seed == "none" else films, backbone=backbone)
    recommender = Recommender(settings, WordClient())
    recommender.warm_up()
    assert recommender.create_user(None)["user_id"] == 1
    assert recommender.add_item("First Film", 2000, [], [])["item_id"] == (1 if seed == "none" else 11)
    recommender.database.dispose()


def test_recommender_keeps_one_opinion_per_viewer_and_film(recommender: Recommender, recommender_settings: RecommenderSettings) -> None:
    url = recommender_settings.database_url or ""
    pair = (Interaction.user_id == 2, Interaction.item_id == 5)
    assert recommender.interact(2, 5, "rating", 5.0)["replaced"] is False
    assert recommender.interact(2, 5, "rating", 2.0)["replaced"] is True
    assert count(url, Interaction, *pair) == 1

    # Another process records the first opinion between our check and our insert: ours replaces it.
    def elsewhere() -> None:
        with recommender.database.engine.begin() as other:
            other.execute(insert(Interaction).values(user_id=3, item_id=1, kind="like", rating=None, at=1.0))

    undo = on_first_select(recommender.database.engine, "recommender_interactions", elsewhere)
    try:
        raced = recommender.interact(3, 1, "dismiss", None)
    finally:
        undo()
    assert raced["replaced"] is True
    with recommender.database.session() as db:
        rows = db.execute(select(Interaction.kind, Interaction.rating).where(Interaction.user_id == 3, Interaction.item_id == 1)).all()
        assert [tuple(r) for r in rows] == [("dismiss", None)]

    # The constraint itself, which that fallback relies on.
    with pytest.raises(IntegrityError), recommender.database.session() as db:
        db.add(Interaction(user_id=2, item_id=5, kind="like", rating=None, at=2.0))
    assert count(url, Interaction, *pair) == 1


def test_recommender_input_postgresql_cannot_hold_is_cleaned_or_refused(recommender_settings: RecommenderSettings) -> None:
    with TestClient(recommender_app.create_app(recommender_settings, WordClient())) as api:
        made = api.post("/users", json={"name": "ana\u0000 b"})
        assert made.status_code == 201 and made.json() == {"user_id": 7, "name": "ana b"}
        wide = api.post("/items", json={"title": "\ufdfa" * 300}, headers=ADMIN)
        assert wide.status_code == 422 and "longer than 300 characters" in wide.json()["detail"]
        assert api.post("/items", json={"title": "\ufdfa" * 16}, headers=ADMIN).status_code == 201
    assert count(recommender_settings.database_url or "", Item) == 11


# --- support ---------------------------------------------------------------------------------------


@pytest.fixture
def support_api(database_url: str, tmp_path: Path) -> Iterator[TestClient]:
    settings = SupportSettings(
        kb_dir=write_kb(tmp_path / "kb"),
        database_url=database_url,
        admin_api_key="s3cret",
        backbone=BackboneSettings(artifacts_dir=tmp_path / "artifacts"),
    )
    with TestClient(support_app.create_app(settings, ScriptedClient())) as client:
        yield client


def test_support_conversations_feedback_and_handoffs_round_trip(support_api: TestClient, database_url: str) -> None:
    api = support_api
    first = api.post("/chat", json={"message": "my card has not arrived"}).json()
    session = first["session_id"]
    asked = api.post("/chat", json={"session_id": session, "message": "what rate do you use"}).json()
    assert first["action"] == "answer" and asked["action"] == "clarify"
    stored = api.get(f"/sessions/{session}").json()
    assert stored["status"] == "open" and stored["pending_options"] == ["exchange_rate", "card_payment_wrong_exchange_rate"]
    assert [(t["position"], t["role"]) for t in stored["turns"]] == [(1, "user"), (2, "bot"), (3, "user"), (4, "bot")]
    assert stored["turns"][0]["text"] == "my card has not arrived" and all(near_now(t["at"]) for t in stored["turns"])

    rate = {"session_id": session, "turn_id": first["turn_id"], "rating": "down", "comment": "slow"}
    assert api.post("/feedback", json=rate).json()["replaced"] is False
    assert api.post("/feedback", json={**rate, "rating": "up"}).json()["replaced"] is True
    assert count(database_url, Feedback) == 1

    handed = api.post("/chat", json={"message": "something vague"}).json()
    assert handed["action"] == "handoff" and handed["handoff_ticket"] is not None
    api.post("/chat", json={"session_id": handed["session_id"], "message": "hello?"})
    (ticket,) = api.get("/handoffs", headers=ADMIN).json()
    assert ticket["reason"] == "low confidence" and near_now(ticket["created_at"])
    assert [t["text"] for t in ticket["transcript"]][::2] == ["something vague", "hello?"]


def test_support_turn_positions_and_ratings_are_unique(support_api: TestClient, database_url: str) -> None:
    api = support_api
    body = api.post("/chat", json={"message": "my card has not arrived"}).json()
    bot = api.app.state.bot  # type: ignore[attr-defined]
    with pytest.raises(IntegrityError), bot.database.session() as db:
        db.add(Turn(conversation_id=body["session_id"], position=2, role="bot", text="a second turn 2"))
    rate = {"session_id": body["session_id"], "turn_id": body["turn_id"], "rating": "up"}
    assert api.post("/feedback", json=rate).status_code == 201
    with pytest.raises(IntegrityError), bot.database.session() as db:
        db.add(Feedback(turn_id=body["turn_id"], rating="down"))

    # A simultaneous first rating from elsewhere wins the insert: the route replaces it instead of failing.
    second = api.post("/chat", json={"session_id": body["session_id"], "message": "my card has not arrived yet"}).json()

    def elsewhere() -> None:
        with bot.database.engine.begin() as other:
            other.execute(insert(Feedback).values(turn_id=second["turn_id"], rating="up"))

    undo = on_first_select(bot.database.engine, "support_feedback", elsewhere)
    try:
        raced = api.post("/feedback", json={**rate, "turn_id": second["turn_id"], "rating": "down"})
    finally:
        undo()
    assert raced.status_code == 201 and raced.json()["replaced"] is True
    assert count(database_url, Feedback) == 2 and count(database_url, Feedback, Feedback.rating == "down") == 1


def test_support_concurrent_turns_in_one_session_keep_every_turn(support_api: TestClient) -> None:
    api = support_api
    session = api.post("/chat", json={"message": "my card has not arrived"}).json()["session_id"]
    codes: list[int] = []

    def send(n: int) -> None:
        codes.append(api.post("/chat", json={"session_id": session, "message": f"my card has not arrived {n}"}).status_code)

    threads = [threading.Thread(target=send, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert codes == [200] * 6
    assert [t["position"] for t in api.get(f"/sessions/{session}").json()["turns"]] == list(range(1, 15))


def test_support_drops_nul_which_postgresql_text_cannot_hold(support_api: TestClient, database_url: str) -> None:
    api = support_api
    body = api.post("/chat", json={"message": "my card\u0000 has not arrived"}).json()
    assert api.get(f"/sessions/{body['session_id']}").json()["turns"][0]["text"] == "my card has not arrived"
    rated = api.post(
        "/feedback", json={"session_id": body["session_id"], "turn_id": body["turn_id"], "rating": "up", "comment": "f\u0000ast"}
    )
    assert rated.status_code == 201 and count(database_url, Feedback, Feedback.comment == "fast") == 1
    empty = api.post("/chat", json={"message": " \u0000 "})
    assert empty.status_code == 422 and "message is empty" in empty.json()["detail"]
