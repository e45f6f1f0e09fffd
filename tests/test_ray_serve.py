"""Scale-out on Ray Serve: a local single-node Ray runs the backbone and the three services; one call to each."""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from conftest import SMALL_MOVIES, SMALL_RATINGS, SMALL_TAGS
from test_launch import free_port

from shared_backbone.client import load_deployment
from shared_backbone.settings import BackboneSettings

ray = pytest.importorskip("ray", reason="Ray Serve is the `ray` extra; `make install` puts it in the venv")


def write_small_movielens(folder: Path) -> Path:
    """The conftest's ten-film MovieLens, for a module-scoped fixture."""
    target = folder / "small-movielens"
    target.mkdir(parents=True, exist_ok=True)
    (target / "movies.csv").write_text(SMALL_MOVIES, encoding="utf-8")
    (target / "tags.csv").write_text(SMALL_TAGS, encoding="utf-8")
    rows = [f"{u},{m},{r},{1_000_000 + n * 1000}" for n, (u, m, r) in enumerate(SMALL_RATINGS)]
    (target / "ratings.csv").write_text("userId,movieId,rating,timestamp\n" + "\n".join(rows) + "\n", encoding="utf-8")
    return target


@pytest.fixture(scope="module")
def ray_topology(trained_shared: BackboneSettings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    from apps import ray_serve

    folder = tmp_path_factory.mktemp("ray")
    artifacts = shutil.copytree(trained_shared.artifacts_dir, folder / "artifacts")
    movies = write_small_movielens(folder)
    env = {
        "SPINE_ARTIFACTS_DIR": str(artifacts),
        "SPINE_PROFILE": "smoke",
        "SPINE_EMBEDDING_CACHE": "false",
        "SPINE_SENTIMENT_DEMO_REPLAY": "false",
        "HF_HUB_OFFLINE": "1",
        "SPINE_ADMIN_API_KEY": "ray-s3cret",
    }
    env["SPINE_RECOMMENDER_SEED_DIR"] = str(movies)
    previous = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    ray.init(num_cpus=2, include_dashboard=False, runtime_env={"env_vars": ray_serve.forwarded_environment()}, log_to_driver=False)
    try:
        settings = BackboneSettings()
        config = load_deployment("shared", settings.deploy_dir)
        yield ray_serve.run(config, "smoke", settings, port=free_port())
    finally:
        from ray import serve

        serve.shutdown()
        ray.shutdown()
        for key, value in previous.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def test_each_service_answers_through_ray_serve(ray_topology: dict[str, str]) -> None:
    support, films, news = ray_topology["support"], ray_topology["recommender"], ray_topology["sentiment"]
    assert httpx.get(f"{support}/health", timeout=30).json()["status"] == "ok"
    reply = httpx.post(f"{support}/chat", json={"message": "my card has not arrived"}, timeout=60)
    assert reply.status_code == 200 and reply.json()["action"] in {"answer", "clarify", "handoff"}
    wish = httpx.post(f"{films}/recommendations/query", json={"text": "a funny space adventure", "k": 3}, timeout=60)
    assert wish.status_code == 200 and len(wish.json()["items"]) == 3
    pushed = httpx.post(
        f"{news}/documents",
        json={"documents": [{"text": "$TSLA shares plunge after the recall"}]},
        headers={"X-Admin-Key": "ray-s3cret"},
        timeout=60,
    )
    assert pushed.status_code == 200 and pushed.json()["stored"] == 1
    health = httpx.get(f"{news}/health", timeout=30).json()
    assert health["backbone"] == "shared-smoke", health


def test_an_unknown_engine_or_missing_ray_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from apps.cli import app

    result = CliRunner().invoke(app, ["serve", "--engine", "k8s"])
    assert result.exit_code == 1 and "unknown engine 'k8s'" in result.output
    monkeypatch.setitem(sys.modules, "ray", None)  # as if the extra were not installed
    result = CliRunner().invoke(app, ["serve"])
    assert result.exit_code == 1 and "Ray Serve is not installed" in result.output
