"""The remote client against a real backbone server process, and a service that outlives its backbone."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from test_launch import free_port

from shared_backbone.client import InProcessBackboneClient
from shared_backbone.errors import BackboneUnavailable, ConfigError
from shared_backbone.remote import RemoteBackboneClient
from shared_backbone.settings import BackboneSettings


def start_backbone(artifacts: Path, port: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "SPINE_ARTIFACTS_DIR": str(artifacts), "SPINE_EMBEDDING_CACHE": "false", "HF_HUB_OFFLINE": "1"}
    argv = [sys.executable, "-m", "apps.cli", "backbones", "serve", "shared-smoke", "--port", str(port)]
    return subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def wait_for(url: str, timeout_s: float = 120, status: str = "ok") -> dict[str, object]:
    deadline = time.monotonic() + timeout_s
    last: dict[str, object] = {}
    while time.monotonic() < deadline:
        try:
            last = httpx.get(url, timeout=2).json()
            if last.get("status") == status:
                return last
        except (httpx.HTTPError, ValueError):
            pass
        time.sleep(0.3)
    raise AssertionError(f"{url} never reported {status}; last: {last}")


def stop(process: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
    if process.poll() is None:
        process.send_signal(sig)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()


@pytest.fixture(scope="module")
def backbone_url(trained_shared: BackboneSettings) -> Iterator[str]:
    port = free_port()
    process = start_backbone(trained_shared.artifacts_dir, port)
    try:
        wait_for(f"http://127.0.0.1:{port}/health")
        yield f"http://127.0.0.1:{port}"
    finally:
        stop(process)


def test_remote_and_in_process_clients_agree(backbone_url: str, trained_shared: BackboneSettings) -> None:
    local = InProcessBackboneClient(trained_shared.backbones_dir, "shared-smoke")
    remote = RemoteBackboneClient(backbone_url, chunk_texts=2)  # 5 texts -> 3 requests, stitched in order
    remote.warm_up()
    texts = ["card not arrived", "shares plunge", "space adventure", "refund please", "rates rise"]
    assert remote.info() == local.info()
    np.testing.assert_allclose(remote.encode(texts), local.encode(texts), atol=1e-5)
    vectors, heads = remote.analyse(texts, ["sentiment", "intent"])
    assert vectors.shape == (5, local.info().dimension)
    np.testing.assert_allclose(heads["sentiment"].probabilities, local.predict("sentiment", texts).probabilities, atol=1e-4)
    assert [label for label, _ in heads["intent"].best()] == [label for label, _ in local.predict("intent", texts).best()]
    assert remote.encode([]).shape == (0, local.info().dimension)


def test_a_refused_request_is_the_callers_error_not_an_outage(backbone_url: str) -> None:
    remote = RemoteBackboneClient(backbone_url)
    with pytest.raises(ConfigError, match="no head for task"):
        remote.predict("weather", ["sunny"])
    with pytest.raises(ConfigError, match="list of strings"):
        remote.encode("one string")  # type: ignore[arg-type]


def test_an_unreachable_server_is_backbone_unavailable_quickly() -> None:
    remote = RemoteBackboneClient(f"http://127.0.0.1:{free_port()}", retries=1, backoff_s=0.05, startup_wait_s=0)
    started = time.monotonic()
    with pytest.raises(BackboneUnavailable, match=r"unavailable after 2 attempt\(s\)"):
        remote.warm_up()
    assert time.monotonic() - started < 5


def test_a_service_answers_503_while_its_backbone_is_down_and_recovers_unaided(
    trained_shared: BackboneSettings, tmp_path: Path, small_movielens: Path
) -> None:
    """Start the service before its backbone, then kill the backbone under load and bring it back."""
    artifacts = shutil.copytree(trained_shared.artifacts_dir, tmp_path / "artifacts")
    backbone_port, support_port = free_port(), free_port()
    env = {
        **os.environ,
        "SPINE_ARTIFACTS_DIR": str(artifacts),
        "SPINE_PROFILE": "smoke",
        "SPINE_BACKBONE_URL": f"http://127.0.0.1:{backbone_port}",
        "SPINE_BACKBONE_STARTUP_WAIT_S": "1",
        "SPINE_BACKBONE_RETRIES": "1",
        "HF_HUB_OFFLINE": "1",
    }
    argv = [sys.executable, "-m", "uvicorn", "services.support.app:app", "--port", str(support_port), "--log-level", "warning"]
    service = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    backbone = None
    base = f"http://127.0.0.1:{support_port}"
    try:
        waiting = wait_for(f"{base}/health", status="waiting")  # not "unavailable": the launcher keeps waiting on it
        assert "backbone server" in str(waiting["error"])
        assert httpx.post(f"{base}/chat", json={"message": "hello"}, timeout=10).status_code == 503

        backbone = start_backbone(artifacts, backbone_port)
        wait_for(f"{base}/health", timeout_s=180)  # the service's own retry picked the server up
        assert httpx.post(f"{base}/chat", json={"message": "my card has not arrived"}, timeout=30).status_code == 200

        statuses: list[int] = []
        retry_after: set[str] = set()
        done = threading.Event()

        def load() -> None:
            with httpx.Client(timeout=30) as http:
                while not done.is_set():
                    reply = http.post(f"{base}/chat", json={"message": "where is my refund"})
                    statuses.append(reply.status_code)
                    if reply.status_code == 503:
                        retry_after.add(reply.headers.get("retry-after", ""))

        traffic = threading.Thread(target=load)
        traffic.start()
        time.sleep(1.0)
        stop(backbone, signal.SIGKILL)
        time.sleep(3.0)
        backbone = start_backbone(artifacts, backbone_port)
        wait_for(f"http://127.0.0.1:{backbone_port}/health")
        time.sleep(1.5)
        done.set()
        traffic.join(timeout=60)

        assert service.poll() is None, "the service must survive its backbone"
        assert set(statuses) <= {200, 503} and 503 in statuses and statuses[-1] == 200, statuses
        assert retry_after and all(value.isdigit() for value in retry_after)
    finally:
        stop(service)
        if backbone is not None:
            stop(backbone)


def test_the_warm_up_retry_survives_a_surprise_and_then_serves(monkeypatch: pytest.MonkeyPatch) -> None:
    from fastapi.testclient import TestClient

    from services.common import app as app_module
    from services.common.settings import ServiceSettings

    monkeypatch.setattr(app_module, "RETRY_WARM_UP_S", 0.05)
    outcomes = iter([BackboneUnavailable("backbone server down"), ValueError("garbled reply"), None])

    def warm_up(_: object) -> None:
        if (outcome := next(outcomes)) is not None:
            raise outcome

    with TestClient(app_module.create_service_app("support", ServiceSettings(), [], warm_up=warm_up)) as client:
        waiting = client.get("/health")
        assert waiting.status_code == 503 and waiting.json()["status"] == "waiting"  # the launcher keeps waiting on this
        deadline = time.monotonic() + 10
        while client.get("/health").json()["status"] != "ok" and time.monotonic() < deadline:
            time.sleep(0.05)
        assert client.get("/health").json()["status"] == "ok"
