"""The backbone server: OpenAI-shaped embeddings, heads, limits, and the micro-batcher under it."""

from __future__ import annotations

import asyncio
import base64
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from shared_backbone.batching import BatcherBusy, BatcherStopped, MicroBatcher
from shared_backbone.client import InProcessBackboneClient
from shared_backbone.server import BackboneServerSettings, create_backbone_app
from shared_backbone.settings import BackboneSettings


def server_settings(backbone: BackboneSettings, **limits: object) -> BackboneServerSettings:
    return BackboneServerSettings(artifact="shared-smoke", backbone=backbone.model_copy(update={"embedding_cache": False}), **limits)


@pytest.fixture(scope="module")
def server(trained_shared: BackboneSettings) -> Iterator[TestClient]:
    with TestClient(create_backbone_app(server_settings(trained_shared, max_texts_per_request=4, max_text_chars=200))) as client:
        yield client


@pytest.fixture(scope="module")
def reference(trained_shared: BackboneSettings) -> InProcessBackboneClient:
    client = InProcessBackboneClient(trained_shared.backbones_dir, "shared-smoke")
    client.warm_up()
    return client


TEXTS = ["my card has not arrived", "$TSLA shares plunge after the recall", "a funny space adventure"]


def test_info_and_health_describe_the_served_artifact(server: TestClient, reference: InProcessBackboneClient) -> None:
    info = server.get("/v1/info").json()
    assert info["artifact_id"] == "shared-smoke" and info["backbone_id"] == reference.info().backbone_id
    assert info["dimension"] == reference.info().dimension and set(info["heads"]) == {"intent", "sentiment", "topic"}
    assert info["limits"]["max_texts_per_request"] == 4
    health = {"status": "ok", "artifact_id": "shared-smoke", "backbone_id": info["backbone_id"], "backend": "torch"}
    assert server.get("/health").json() == health and info["backend"] == "torch"  # never exported: auto falls back to torch


def test_embeddings_follow_the_openai_shape_in_both_encodings(server: TestClient, reference: InProcessBackboneClient) -> None:
    expected = reference.encode(TEXTS)
    floats = server.post("/v1/embeddings", json={"input": TEXTS, "model": "shared-smoke"}).json()
    assert floats["object"] == "list" and floats["model"] == "shared-smoke" and [d["index"] for d in floats["data"]] == [0, 1, 2]
    assert floats["usage"]["prompt_tokens"] == floats["usage"]["total_tokens"] > len(TEXTS)
    np.testing.assert_allclose(np.array([d["embedding"] for d in floats["data"]]), expected, atol=1e-5)
    packed = server.post("/v1/embeddings", json={"input": TEXTS[0], "encoding_format": "base64"}).json()
    vector = np.frombuffer(base64.b64decode(packed["data"][0]["embedding"]), dtype="<f4")
    np.testing.assert_allclose(vector, expected[0], atol=1e-6)


def test_analyse_and_predict_match_the_in_process_heads(server: TestClient, reference: InProcessBackboneClient) -> None:
    body = server.post("/v1/analyse", json={"input": TEXTS, "tasks": ["sentiment", "topic"], "encoding_format": "float"}).json()
    np.testing.assert_allclose(np.array(body["embeddings"]), reference.encode(TEXTS), atol=1e-5)
    for task in ("sentiment", "topic"):
        np.testing.assert_allclose(np.array(body["heads"][task]["probabilities"]), reference.predict(task, TEXTS).probabilities, atol=1e-4)
    predicted = server.post("/v1/heads/intent/predict", json={"input": TEXTS}).json()
    assert [p["label"] for p in predicted["predictions"]] == [label for label, _ in reference.predict("intent", TEXTS).best()]


@pytest.mark.parametrize(
    ("path", "payload", "status", "message"),
    [
        ("/v1/embeddings", {"input": []}, 422, "at least one text"),
        ("/v1/embeddings", {"input": ["a"] * 5}, 413, "the limit is 4"),
        ("/v1/embeddings", {"input": ["x" * 201]}, 413, "input[0] has 201 characters"),
        ("/v1/embeddings", {"input": [1, 2]}, 422, "input"),
        ("/v1/embeddings", {"input": "a", "model": "text-embedding-3-small"}, 404, "is not served here"),
        ("/v1/embeddings", {"input": "a", "encoding_format": "int8"}, 422, "encoding_format"),
        ("/v1/analyse", {"input": ["a"], "tasks": ["weather"]}, 404, "no head for task(s) weather"),
        ("/v1/heads/weather/predict", {"input": ["a"]}, 404, "no head for task(s) weather"),
        ("/v1/heads/intent/predict", {"input": "not a list"}, 422, "input"),
    ],
)
def test_bad_input_is_a_clear_4xx(server: TestClient, path: str, payload: dict[str, object], status: int, message: str) -> None:
    response = server.post(path, json=payload)
    assert response.status_code == status and message in response.json()["detail"]


def test_a_missing_artifact_keeps_the_server_up_with_the_reason(tmp_path: Path) -> None:
    settings = BackboneServerSettings(artifact="shared-nowhere", backbone=BackboneSettings(artifacts_dir=tmp_path))
    with TestClient(create_backbone_app(settings)) as client:
        health = client.get("/health")
        assert (
            health.status_code == 503
            and health.json()["status"] == "unavailable"
            and "no backbone 'shared-nowhere'" in health.json()["error"]
        )
        refused = client.post("/v1/embeddings", json={"input": "hello"})
        assert refused.status_code == 503 and refused.headers["retry-after"] == "5"


def test_concurrent_requests_share_forward_passes_and_keep_their_order() -> None:
    calls: list[int] = []

    def encode(texts: Sequence[str]) -> np.ndarray:
        calls.append(len(texts))
        return np.array([[float(t)] for t in texts], dtype=np.float32)

    async def scenario() -> list[np.ndarray]:
        batcher = MicroBatcher(encode, max_batch_texts=8, max_wait_s=0.05)
        await batcher.start()
        try:
            return await asyncio.gather(*(batcher.submit([str(i), str(i + 0.5)]) for i in range(10)))
        finally:
            await batcher.stop()

    results = asyncio.run(scenario())
    assert [r[:, 0].tolist() for r in results] == [[i, i + 0.5] for i in range(10)]
    assert sum(calls) == 20 and len(calls) < 10 and max(calls) <= 8  # coalesced, never over the batch size


def test_a_failing_pass_fails_its_requests_and_the_batcher_keeps_serving() -> None:
    def encode(texts: Sequence[str]) -> np.ndarray:
        if "boom" in texts:
            raise RuntimeError("encoder exploded")
        return np.ones((len(texts), 2), dtype=np.float32)

    async def scenario() -> tuple[BaseException | np.ndarray, np.ndarray]:
        batcher = MicroBatcher(encode, max_batch_texts=4, max_wait_s=0)
        await batcher.start()
        try:
            failed = (await asyncio.gather(batcher.submit(["boom"]), return_exceptions=True))[0]
            return failed, await batcher.submit(["fine", "too"])
        finally:
            await batcher.stop()

    failed, fine = asyncio.run(scenario())
    assert isinstance(failed, RuntimeError) and "exploded" in str(failed)
    assert fine.shape == (2, 2)


def test_stopping_fails_every_waiting_request_and_a_full_queue_sheds_load() -> None:
    release = threading.Event()

    def slow(texts: Sequence[str]) -> np.ndarray:
        release.wait(5)
        return np.zeros((len(texts), 1), dtype=np.float32)

    async def scenario() -> tuple[list[BaseException | np.ndarray], BaseException | None]:
        batcher = MicroBatcher(slow, max_batch_texts=1, max_wait_s=0, max_queued=2)
        await batcher.start()
        first = asyncio.create_task(batcher.submit(["in the pass"]))
        await asyncio.sleep(0.05)  # the worker now holds it, blocked in encode
        waiting = [asyncio.create_task(batcher.submit([f"queued {i}"])) for i in range(2)]
        await asyncio.sleep(0.05)
        busy = None
        try:
            await batcher.submit(["one too many"])
        except BatcherBusy as exc:
            busy = exc
        asyncio.get_running_loop().call_later(0.2, release.set)  # let the blocked pass end while stop() waits for its thread
        await batcher.stop()
        return await asyncio.gather(first, *waiting, return_exceptions=True), busy

    results, busy = asyncio.run(scenario())
    assert isinstance(busy, BatcherBusy)
    assert all(isinstance(r, BatcherStopped) for r in results), results  # in the pass, queued: none is left hanging


def test_a_lone_surrogate_is_a_422_not_a_500(server: TestClient) -> None:
    response = server.post("/v1/embeddings", content=b'{"input": ["ok", "\\ud800"]}', headers={"content-type": "application/json"})
    assert response.status_code == 422 and "input[1] is not valid Unicode" in response.json()["detail"]
