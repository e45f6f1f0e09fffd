"""The recommender on the real all-MiniLM-L6-v2: a wish for a genre brings mostly films of that genre."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from services.recommender.app import create_app
from services.recommender.settings import RecommenderSettings
from shared_backbone.data import DEFAULT_DATA_DIR
from shared_backbone.settings import BackboneSettings

pytestmark = pytest.mark.real_backbone
FILMS = 2000  # the first films of MovieLens latest-small: enough genres, ~15 s to encode on 2 cores


def movielens_head(folder: Path) -> Path:
    """The first ``FILMS`` films of the vendored MovieLens, their tags and ratings, in the same CSV shape."""
    source = DEFAULT_DATA_DIR / "movielens_latest_small"
    folder.mkdir(parents=True)
    kept: set[str] = set()
    for name in ("movies.csv", "tags.csv", "ratings.csv"):
        with (source / name).open(encoding="utf-8", newline="") as handle, (folder / name).open("w", encoding="utf-8", newline="") as out:
            reader = csv.DictReader(handle)
            writer = csv.DictWriter(out, fieldnames=reader.fieldnames or [])
            writer.writeheader()
            for row in reader:
                if name == "movies.csv" and len(kept) < FILMS:
                    kept.add(row["movieId"])
                if row["movieId"] in kept:
                    writer.writerow(row)
    return folder


@pytest.fixture(scope="module")
def real_recommender(frozen_quick: BackboneSettings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    folder = tmp_path_factory.mktemp("real-recommender")
    settings = RecommenderSettings(
        deployment="frozen",
        profile="quick",
        seed_dir=movielens_head(folder / "seed"),
        database_url=f"sqlite:///{folder / 'recommender.db'}",
        backbone=frozen_quick,
    )
    with TestClient(create_app(settings)) as client:
        yield client


@pytest.mark.parametrize(
    ("wish", "genres"),
    [
        ("a scary horror movie with monsters and ghosts", {"Horror"}),
        ("an animated cartoon for children", {"Animation", "Children"}),
        ("a romantic love story", {"Romance"}),
        ("a war film about soldiers in battle", {"War"}),
    ],
)
def test_a_wish_for_a_genre_brings_mostly_that_genre(real_recommender: TestClient, wish: str, genres: set[str]) -> None:
    body = real_recommender.post("/recommendations/query", json={"text": wish, "k": 10, "diversity": 0}).json()
    matching = [item["title"] for item in body["items"] if genres & set(item["genres"])]
    assert len(body["items"]) == 10 and len(matching) >= 7, body["items"]


def test_a_new_viewer_who_likes_two_films_gets_a_list_in_their_vein(real_recommender: TestClient) -> None:
    toy_story, aladdin = 1, 588
    viewer = real_recommender.post("/users", json={}).json()["user_id"]
    for film in (toy_story, aladdin):
        real_recommender.post("/interactions", json={"user_id": viewer, "item_id": film, "kind": "like"})
    body = real_recommender.get(f"/users/{viewer}/recommendations", params={"k": 10, "diversity": 0}).json()
    assert body["cold_start"] is False
    family = [item for item in body["items"] if {"Animation", "Children"} & set(item["genres"])]
    assert len(family) >= 5, body["items"]
