from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from services.recommender.app import create_app
from services.recommender.settings import RecommenderSettings
from services.recommender.store import Interaction, Item
from shared_backbone.client import BackboneInfo, TaskPrediction
from shared_backbone.errors import ArtifactError
from shared_backbone.settings import BackboneSettings


class WordClient:
    """A BackboneClient whose embedding is a bag of hashed words: texts that share words are close."""

    DIMENSION = 256

    def __init__(self, failing: bool = False) -> None:
        self.failing = failing
        self.encoded = 0

    def warm_up(self) -> None:
        pass

    def info(self) -> BackboneInfo:
        return BackboneInfo("words", "words@1", "shared", self.DIMENSION, (), (), 0, 0)

    def encode(self, texts: list[str]) -> np.ndarray:
        if self.failing:
            raise ArtifactError("the backbone went away")
        self.encoded += len(texts)
        out = np.zeros((len(texts), self.DIMENSION), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in re.findall(r"[a-z]+", text.lower()):
                if word not in {"genres", "tags", "the", "a"}:
                    out[row, sum(ord(c) * 31**i for i, c in enumerate(word)) % self.DIMENSION] += 1.0
            out[row] /= max(float(np.linalg.norm(out[row])), 1e-9)
        return out

    def predict(self, task: str, texts: list[str]) -> TaskPrediction:
        raise NotImplementedError

    def analyse(self, texts: list[str], tasks: list[str]) -> tuple[np.ndarray, dict[str, TaskPrediction]]:
        return self.encode(texts), {}


@pytest.fixture
def settings(tmp_path: Path, small_movielens: Path) -> RecommenderSettings:
    return RecommenderSettings(
        seed_dir=small_movielens,
        database_url=f"sqlite:///{tmp_path / 'recommender.db'}",
        admin_api_key="s3cret",
        backbone=BackboneSettings(artifacts_dir=tmp_path / "artifacts"),
        ease_l2=1.0,
        text_neighbours=2,
        diversity=0.0,
    )


@pytest.fixture
def api(settings: RecommenderSettings):
    with TestClient(create_app(settings, WordClient())) as client:
        yield client


def ids(body: dict) -> list[int]:
    return [item["item_id"] for item in body["items"]]


def test_a_known_viewer_gets_unseen_films_of_their_taste_with_reasons(api: TestClient) -> None:
    body = api.get("/users/2/recommendations", params={"k": 3}).json()
    assert body["cold_start"] is False and len(body["items"]) == 3
    assert ids(body)[0] == 3 and not {1, 2} & set(ids(body))  # what fellow sci-fi fans liked, nothing already seen
    top = body["items"][0]
    assert top["reason"] in ("because you liked Star Voyage (1980)", "because you liked Galaxy Raiders (1985)")
    assert top["because_item_id"] in (1, 2)
    assert [i["score"] for i in body["items"]] == sorted((i["score"] for i in body["items"]), reverse=True)


def test_an_unknown_viewer_gets_the_flagged_cold_start_list(api: TestClient) -> None:
    response = api.get("/users/4242/recommendations", params={"k": 2})
    body = response.json()
    assert response.status_code == 200 and body["cold_start"] is True and body["cold_start_reason"] == "unknown user"
    assert ids(body)[0] in (1, 2, 4)  # the most liked films
    assert all(item["reason"] == "popular with viewers" for item in body["items"])


def test_a_new_viewer_who_likes_one_film_gets_a_list_at_once_and_dismissals_stick(api: TestClient) -> None:
    user = api.post("/users", json={"name": "Ada"}).json()["user_id"]
    assert user > 6 and api.get(f"/users/{user}/recommendations").json()["cold_start_reason"] == "no likes yet"
    liked = api.post("/interactions", json={"user_id": user, "item_id": 7, "kind": "like"}).json()
    assert liked["positive"] is True and liked["replaced"] is False
    body = api.get(f"/users/{user}/recommendations", params={"k": 3}).json()
    assert body["cold_start"] is False and ids(body)[0] == 8 and 7 not in ids(body)
    assert body["items"][0]["reason"] == "because you liked Night Terror (1979)"
    api.post("/interactions", json={"user_id": user, "item_id": 8, "kind": "dismiss"})
    after = api.get(f"/users/{user}/recommendations", params={"k": 9, "exclude_seen": False})
    assert 8 not in ids(after.json()) and 7 in ids(after.json())  # dismissed never shows; seen may when asked
    profile = api.get(f"/users/{user}").json()
    assert profile["likes"] == 1 and profile["dismissed"] == 1 and profile["recent_likes"][0]["item_id"] == 7


def test_filters_by_genre_and_year(api: TestClient) -> None:
    comedies = api.get("/users/1/recommendations", params={"genres": "comedy", "k": 5}).json()
    assert set(ids(comedies)) == {4, 5, 6, 9}
    both = api.get("/users/1/recommendations", params=[("genres", "Horror"), ("genres", "Drama"), ("k", 5)]).json()
    assert set(ids(both)) == {7, 8, 10}
    nineties = api.get("/users/1/recommendations", params={"year_from": 1990, "year_to": 1999, "k": 10}).json()
    assert set(ids(nineties)) == {6, 8} and 3 not in ids(nineties)  # 3 is from 1990 but already seen


def test_diversity_reorders_only_when_asked(api: TestClient) -> None:
    plain = api.get("/users/3/recommendations", params={"k": 4, "diversity": 0}).json()
    assert [i["score"] for i in plain["items"]] == sorted((i["score"] for i in plain["items"]), reverse=True)
    varied = api.get("/users/3/recommendations", params={"k": 4, "diversity": 1}).json()
    assert ids(varied)[0] == ids(plain)[0]  # the most relevant film always leads

    def genres(body: dict) -> set[str]:
        return {g for item in body["items"] for g in item["genres"]}

    assert len(genres(varied)) > len(genres(plain))


def test_a_wish_finds_films_by_words_and_says_which(api: TestClient) -> None:
    body = api.post("/recommendations/query", json={"text": "a funny space film", "k": 3}).json()
    assert body["items"][0]["item_id"] == 9 and body["items"][0]["reason"] == "matches 'funny, space'"
    seen = api.post("/recommendations/query", json={"text": "space", "k": 10, "user_id": 1}).json()
    assert not {1, 2, 3} & set(ids(seen))
    comedy_only = api.post("/recommendations/query", json={"text": "space", "k": 10, "genres": ["Comedy"]}).json()
    assert set(ids(comedy_only)) <= {4, 5, 6, 9} and ids(comedy_only)[0] == 9


def test_similar_items(api: TestClient) -> None:
    body = api.get("/items/1/similar", params={"k": 3}).json()
    assert body["item"]["item_id"] == 1 and 1 not in ids(body) and set(ids(body)[:2]) == {2, 3}
    assert body["items"][0]["reason"] == "liked by viewers who liked Star Voyage (1980)"
    assert api.get("/items/999/similar").status_code == 404


@pytest.mark.parametrize(
    ("method", "path", "payload", "code", "detail"),
    [
        ("get", "/users/1/recommendations?k=0", None, 422, "k must be between 1 and 100"),
        ("get", "/users/1/recommendations?k=101", None, 422, "k must be between 1 and 100"),
        ("get", "/users/0/recommendations", None, 422, "user_id"),
        ("get", "/users/1/recommendations?genres=Polka", None, 422, "unknown genre(s) ['Polka']"),
        ("get", "/users/1/recommendations?year_from=2000&year_to=1990", None, 422, "is after year_to"),
        ("post", "/recommendations/query", {"text": "   "}, 422, "the wish is empty"),
        ("post", "/recommendations/query", {"text": "x" * 501}, 422, "the limit is 500"),
        ("post", "/recommendations/query", {"text": "space", "k": -1}, 422, "k must be between"),
        ("post", "/interactions", {"user_id": 1, "item_id": 999, "kind": "like"}, 404, "no item 999"),
        ("post", "/interactions", {"user_id": 1, "item_id": 4, "kind": "rating"}, 422, "a rating (0.5 to 5)"),
        ("post", "/interactions", {"user_id": 1, "item_id": 4, "kind": "like", "rating": 5}, 422, "a rating (0.5 to 5)"),
        ("post", "/interactions", {"user_id": 1, "item_id": 4, "kind": "rating", "rating": 9}, 422, "rating"),
        ("post", "/interactions", {"user_id": 1, "item_id": 4, "kind": "love"}, 422, "kind"),
        ("get", "/items/999", None, 404, "no item 999"),
        ("get", "/users/999", None, 404, "unknown user 999"),
    ],
)
def test_bad_input_is_a_clear_4xx(api: TestClient, method: str, path: str, payload: dict | None, code: int, detail: str) -> None:
    response = api.request(method.upper(), path, json=payload)
    assert response.status_code == code and detail in response.json()["detail"]


def count(settings: RecommenderSettings, table: type) -> int:
    from sqlalchemy import create_engine

    engine = create_engine(settings.database_url or "")
    with engine.connect() as connection:
        value = connection.scalar(select(func.count()).select_from(table))
    engine.dispose()
    return int(value or 0)


def test_a_repeated_interaction_replaces_the_first_and_failures_store_nothing(api: TestClient, settings: RecommenderSettings) -> None:
    before = count(settings, Interaction)
    first = api.post("/interactions", json={"user_id": 2, "item_id": 5, "kind": "rating", "rating": 5}).json()
    again = api.post("/interactions", json={"user_id": 2, "item_id": 5, "kind": "rating", "rating": 2}).json()
    assert first["replaced"] is False and first["positive"] is True
    assert again["replaced"] is True and again["positive"] is False
    assert count(settings, Interaction) == before + 1
    assert 5 not in [i["item_id"] for i in api.get("/users/2").json()["recent_likes"]]
    api.post("/interactions", json={"user_id": 2, "item_id": 999, "kind": "like"})
    assert count(settings, Interaction) == before + 1


def test_adding_a_film_needs_the_key_and_makes_it_recommendable_at_once(api: TestClient, settings: RecommenderSettings) -> None:
    film = {"title": "Funny Space Cadets", "year": 2024, "genres": ["Comedy", "Sci-Fi"], "tags": ["space", "funny"]}
    assert api.post("/items", json=film).status_code == 403
    assert api.post("/items", json=film, headers={"X-Admin-Key": "wrong"}).status_code == 403
    created = api.post("/items", json=film, headers={"X-Admin-Key": "s3cret"})
    assert created.status_code == 201
    new_id = created.json()["item_id"]
    assert new_id > 10 and created.json()["in_collaborative_model"] is False
    wish = api.post("/recommendations/query", json={"text": "funny space cadets", "k": 1}).json()
    assert ids(wish) == [new_id]
    assert api.get("/items", params={"title": "cadets"}).json()[0]["item_id"] == new_id
    api.post("/interactions", json={"user_id": 1, "item_id": new_id, "kind": "like"})
    assert api.post("/model/refit").status_code == 403
    refit = api.post("/model/refit", headers={"X-Admin-Key": "s3cret"}).json()
    assert refit["items_covered"] == 9  # the eight liked seed films and, once liked, the new one
    assert api.get(f"/items/{new_id}").json()["in_collaborative_model"] is True
    bad = api.post("/items", json={"title": " ", "genres": []}, headers={"X-Admin-Key": "s3cret"})
    assert bad.status_code == 422 and "title" in bad.json()["detail"]
    assert count(settings, Item) == 11


def test_a_backbone_failure_while_adding_stores_and_indexes_nothing(settings: RecommenderSettings) -> None:
    client = WordClient()
    app = create_app(settings, client)
    with TestClient(app) as api:
        size = len(app.state.recommender.index)
        client.failing = True
        response = api.post("/items", json={"title": "Lost Film"}, headers={"X-Admin-Key": "s3cret"})
        assert response.status_code == 503 and "backbone unavailable" in response.json()["detail"]
        assert len(app.state.recommender.index) == size and count(settings, Item) == 10
        client.failing = False
        assert api.get("/users/1/recommendations").status_code == 200


def test_everything_survives_a_restart_without_re_encoding(settings: RecommenderSettings) -> None:
    client = WordClient()
    with TestClient(create_app(settings, client)) as api:
        api.post("/items", json={"title": "Late Addition", "genres": ["Drama"]}, headers={"X-Admin-Key": "s3cret"})
        api.post("/interactions", json={"user_id": 77, "item_id": 10, "kind": "like"})
    restarted = WordClient()
    with TestClient(create_app(settings, restarted)) as api:
        assert restarted.encoded == 0  # the saved index matched the catalogue: no encoding at start-up
        health = api.get("/health").json()
        assert health["items"] == 11 and health["users"] == 7 and health["index"] == "flat"
        assert api.get("/users/77").json()["recent_likes"][0]["item_id"] == 10
        assert api.get("/items", params={"title": "late addition"}).json()[0]["genres"] == ["Drama"]


def test_health_metrics_and_genres(api: TestClient) -> None:
    health = api.get("/health").json()
    assert health["status"] == "ok" and health["items"] == 10 and health["collaborative_items"] == 8  # films 9 and 10 have no likes
    assert api.get("/genres").json()[:3] == ["Action", "Adventure", "Comedy"]
    api.get("/users/1/recommendations")
    metrics = api.get("/metrics").text
    assert 'route="/users/{user_id}/recommendations"' in metrics


def test_an_empty_catalogue_starts_and_answers_with_empty_lists(tmp_path: Path) -> None:
    settings = RecommenderSettings(
        seed_dir=None, database_url=f"sqlite:///{tmp_path / 'empty.db'}", backbone=BackboneSettings(artifacts_dir=tmp_path / "a")
    )
    with TestClient(create_app(settings, WordClient())) as api:
        assert api.get("/health").json()["items"] == 0
        assert api.get("/users/1/recommendations").json()["items"] == []
        assert api.post("/recommendations/query", json={"text": "anything"}).json()["items"] == []


def test_the_service_runs_on_the_tiny_trained_backbone(tmp_path: Path, small_movielens: Path, trained_shared: BackboneSettings) -> None:
    """The API contract through the real in-process client (the tiny encoder), not a stand-in."""
    backbone = trained_shared.model_copy(update={"artifacts_dir": trained_shared.artifacts_dir})
    settings = RecommenderSettings(
        profile="smoke", seed_dir=small_movielens, database_url=f"sqlite:///{tmp_path / 'r.db'}", backbone=backbone
    )
    with TestClient(create_app(settings)) as api:
        health = api.get("/health").json()
        assert health["status"] == "ok" and health["backbone"] == "shared-smoke" and health["items"] == 10
        listing = api.get("/users/1/recommendations", params={"k": 4}).json()
        assert len(listing["items"]) == 4 and not {1, 2, 3} & set(ids(listing))
        wish = api.post("/recommendations/query", json={"text": "a space comedy", "k": 3}).json()
        assert len(wish["items"]) == 3 and all(item["reason"] for item in wish["items"])


def _recommender_page(api: object) -> None:
    from services.recommender.ui import page

    page(api)  # type: ignore[arg-type]


def test_ui_page_lists_reacts_and_re_ranks(api: TestClient) -> None:
    from streamlit.testing.v1 import AppTest

    from services.recommender.ui import RecommenderApi

    app = AppTest.from_function(_recommender_page, args=(RecommenderApi("http://testserver", http=api),), default_timeout=30)
    app.run()
    assert not app.exception and app.sidebar.selectbox[0].value == 3  # most likes (3), the newest account first
    assert app.subheader[0].value == "For viewer 3"
    titles = [m.value for m in app.markdown if m.value.startswith("**")]
    assert titles and "because you liked" in " ".join(c.value for c in app.caption)
    first = app.session_state["recommender"]["user_id"]
    shown = api.get(f"/users/{first}/recommendations", params={"k": 12, "diversity": 0.1}).json()["items"]
    app.button(key=f"list-dismiss-{shown[0]['item_id']}").click().run()
    assert app.success[0].value.startswith("Won't show again")
    assert f"**{shown[0]['title']}**" not in [m.value for m in app.markdown]  # gone from the list at once
    # a new viewer starts cold, finds a film by title, likes it, and gets a personal list
    app.sidebar.button[0].click().run()
    new_user = app.session_state["recommender"]["user_id"]
    assert new_user > 6 and app.subheader[0].value == "Popular with viewers"
    app.text_input(key="recommender-find").input("night").run()
    app.button(key="find-like-7").click().run()
    assert app.session_state["recommender"]["user_id"] == new_user and app.subheader[-1].value == f"For viewer {new_user}"
    assert api.get(f"/users/{new_user}").json()["likes"] == 1
    app.text_input[0].input("funny space").run()
    assert app.subheader[0].value == "For your wish" and "**Space Jokers (2001)**" in [m.value for m in app.markdown]


def test_ui_page_reports_an_unreachable_service() -> None:
    from streamlit.testing.v1 import AppTest

    from services.recommender.ui import RecommenderApi

    app = AppTest.from_function(_recommender_page, args=(RecommenderApi("http://127.0.0.1:9", timeout_s=2),), default_timeout=30)
    app.run()
    assert not app.exception and any("not reachable" in e.value for e in app.sidebar.error)
    assert "Pick a viewer" in app.info[0].value


@pytest.mark.parametrize(
    ("path", "body", "detail"),
    [
        ("/interactions", '{"user_id": 1, "item_id": 4, "kind": "like", "at": Infinity}', "at"),
        ("/interactions", '{"user_id": 1, "item_id": 4, "kind": "like", "at": 99999999999}', "at is in the future"),
        ("/recommendations/query", '{"text": "\\u200b\\u0000"}', "the wish is empty"),
    ],
)
def test_non_finite_future_and_invisible_values_are_refused(api: TestClient, path: str, body: str, detail: str) -> None:
    response = api.post(path, content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 422 and detail in response.json()["detail"]
    assert all(item["score"] is not None for item in api.get("/users/1/recommendations").json()["items"])


def test_new_film_labels_are_cleaned_and_commas_refused(api: TestClient) -> None:
    admin = {"X-Admin-Key": "s3cret"}
    bad = api.post("/items", json={"title": "X", "genres": ["Sci-Fi,Comedy"]}, headers=admin)
    assert bad.status_code == 422 and "no comma" in bad.json()["detail"]
    made = api.post("/items", json={"title": "  Tidy  ", "genres": [" Drama ", "Drama"], "tags": ["quiet"]}, headers=admin).json()
    assert made["title"] == "Tidy" and made["genres"] == ["Drama"]


def test_reads_stay_whole_while_films_are_added_and_the_model_refits(settings: RecommenderSettings) -> None:
    import threading

    app = create_app(settings, WordClient())
    errors: list[BaseException] = []
    with TestClient(app):
        recommender = app.state.recommender
        stop = threading.Event()

        def read() -> None:
            while not stop.is_set():
                try:
                    for user in (1, 3, 5, 4242):
                        assert recommender.recommend(user, 5)["items"] is not None
                        recommender.recommend(user, 3, genres=["Comedy"])
                    recommender.similar(1, 5)
                    recommender.wish("space comedy", 5)
                except BaseException as exc:  # any failure in a reader is the finding
                    errors.append(exc)
                    return

        readers = [threading.Thread(target=read) for _ in range(3)]
        for reader in readers:
            reader.start()
        for n in range(12):
            recommender.add_item(f"Space Comedy {n}", 2020, ["Comedy", "Sci-Fi"], ["space"])
            recommender.interact(1, 10 + n + 1, "like", None)
            if n % 4 == 3:
                recommender.refit()
        stop.set()
        for reader in readers:
            reader.join()
        assert not errors, errors[:3]
        assert len(recommender.state.items) == len(recommender.index) == 22


def test_a_failed_commit_leaves_neither_a_film_nor_an_index_row(settings: RecommenderSettings) -> None:
    from sqlalchemy import event
    from sqlalchemy.orm import Session

    app = create_app(settings, WordClient())
    with TestClient(app, raise_server_exceptions=False) as api:
        recommender = app.state.recommender
        failing = {"once": True}

        def fail_once(_: Session) -> None:
            if failing.pop("once", False):
                raise RuntimeError("disk full")

        event.listen(Session, "before_commit", fail_once)
        try:
            assert api.post("/items", json={"title": "Doomed"}, headers={"X-Admin-Key": "s3cret"}).status_code == 500
        finally:
            event.remove(Session, "before_commit", fail_once)
        assert len(recommender.index) == 10 and count(settings, Item) == 10
        retry = api.post("/items", json={"title": "Doomed"}, headers={"X-Admin-Key": "s3cret"})
        assert retry.status_code == 201 and len(recommender.index) == 11


def test_damaged_saved_artifacts_are_rebuilt_not_fatal(settings: RecommenderSettings) -> None:
    with TestClient(create_app(settings, WordClient())):
        pass
    root = settings.backbone.artifacts_dir / "recommender"
    for saved in [*root.glob("*/collaborative/*.npz"), *root.glob("*/index/*/vectors.npy")]:
        saved.write_bytes(b"")
    client = WordClient()
    with TestClient(create_app(settings, client)) as api:
        assert api.get("/health").json()["status"] == "ok" and client.encoded == 10
        assert len(api.get("/users/2/recommendations").json()["items"]) > 0
    assert len(list(root.glob("*/collaborative/*.npz"))) == 1
