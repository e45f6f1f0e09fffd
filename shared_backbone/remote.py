"""The remote backbone client: the same ``BackboneClient`` Protocol, over HTTP to a backbone server.

A service cannot tell it from the in-process client, which is what makes ``shared`` and
``per-domain`` a matter of configuration. Transport failures are retried with back-off; when the
server stays unreachable the client raises ``BackboneUnavailable`` (the service answers 503 with
Retry-After) and simply tries again on the next call, so a restarted server is picked up unaided.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import numpy as np

from shared_backbone.client import BackboneInfo, TaskPrediction, _check_texts
from shared_backbone.errors import BackboneUnavailable, ConfigError
from shared_backbone.server import decode_vectors

log = logging.getLogger(__name__)


class RemoteBackboneClient:
    """Talks to ``shared_backbone.server``; ``warm_up()`` waits for the server to be ready."""

    def __init__(
        self,
        base_url: str,
        *,
        timeout_s: float = 30.0,
        retries: int = 2,
        backoff_s: float = 0.2,
        startup_wait_s: float = 120.0,
        chunk_texts: int | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        parts = urlsplit(self.base_url)  # for messages and logs: never the credentials a URL may carry
        self.shown_url = (
            urlunsplit(parts._replace(netloc=parts.hostname + (f":{parts.port}" if parts.port else ""))) if parts.hostname else "?"
        )
        self.timeout_s = timeout_s
        self.retries = retries
        self.backoff_s = backoff_s
        self.startup_wait_s = startup_wait_s
        self.chunk_texts = chunk_texts
        self._http = httpx.Client(base_url=self.base_url, timeout=timeout_s)
        self._info: BackboneInfo | None = None
        self._lock = threading.Lock()

    def close(self) -> None:
        self._http.close()

    # --- transport ---------------------------------------------------------------------------

    def _call(self, method: str, path: str, payload: dict[str, Any] | None = None) -> dict[str, Any]:
        """One request with retries on transport errors and 5xx; 4xx is the caller's mistake (no retry)."""
        reason = ""
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(self.backoff_s * 2 ** (attempt - 1))
            try:
                response = self._http.request(method, path, json=payload)
            except httpx.ReadTimeout:  # the server has the work and is slow: sending it again only adds load
                reason = f"no reply within {self.timeout_s:.0f} s"
                break
            except httpx.TransportError as exc:
                reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
                continue
            if response.status_code >= 500:
                reason = f"HTTP {response.status_code}: {_detail(response)}"
                continue
            if response.status_code >= 400:
                raise ConfigError(f"backbone server refused the request ({response.status_code}): {_detail(response)}")
            try:
                return response.json()
            except ValueError:
                reason = f"HTTP {response.status_code} without JSON: is {self.shown_url} a backbone server?"
                continue
        raise BackboneUnavailable(f"backbone server {self.shown_url} unavailable after {attempt + 1} attempt(s) ({reason})")

    # --- the Protocol ------------------------------------------------------------------------

    def warm_up(self) -> None:
        """Wait (up to ``startup_wait_s``) for the server, as processes of one deployment start together."""
        deadline = time.monotonic() + self.startup_wait_s
        while True:
            try:
                self._info = self._fetch_info()
                return
            except BackboneUnavailable:
                if time.monotonic() >= deadline:
                    raise
                time.sleep(min(2.0, max(0.1, deadline - time.monotonic())))

    def _fetch_info(self) -> BackboneInfo:
        body = self._call("GET", "/v1/info")
        with self._lock:
            if self.chunk_texts is None:
                self.chunk_texts = int(body.get("limits", {}).get("max_texts_per_request", 256))
        return BackboneInfo(
            artifact_id=body["artifact_id"],
            backbone_id=body["backbone_id"],
            deployment=body["deployment"],
            dimension=int(body["dimension"]),
            tasks=tuple(body["tasks"]),
            heads=tuple(body["heads"]),
            parameter_count=int(body["parameter_count"]),
            seed=int(body.get("seed", 0)),
            backend=str(body.get("backend", "torch")),
        )

    @property
    def is_warm(self) -> bool:
        return self._info is not None

    def info(self) -> BackboneInfo:
        """What the server said at warm-up (health routes call this often; it must not cost a round trip)."""
        if self._info is None:
            self._info = self._fetch_info()
        return self._info

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        return self.analyse(texts, [])[0]

    def predict(self, task: str, texts: Sequence[str]) -> TaskPrediction:
        return self.analyse(texts, [task])[1][task]

    def analyse(self, texts: Sequence[str], tasks: Sequence[str]) -> tuple[np.ndarray, dict[str, TaskPrediction]]:
        texts = _check_texts(texts)
        if self._info is None:
            self._info = self._fetch_info()
        if not texts:
            return np.zeros((0, self._info.dimension), dtype=np.float32), {
                task: TaskPrediction(task, (), np.zeros((0, 0), dtype=np.float32)) for task in tasks
            }
        step = self.chunk_texts or 256
        vectors: list[np.ndarray] = []
        labels: dict[str, tuple[str, ...]] = {}
        probabilities: dict[str, list[np.ndarray]] = {task: [] for task in tasks}
        for start in range(0, len(texts), step):
            chunk = texts[start : start + step]
            body = self._call("POST", "/v1/analyse", {"input": chunk, "tasks": list(tasks), "encoding_format": "base64"})
            if body.get("backbone_id", self._info.backbone_id) != self._info.backbone_id:
                raise BackboneUnavailable(
                    f"the backbone server now serves {body['backbone_id']}, not {self._info.backbone_id} that this service's indexes were "
                    "built with: restart the service to rebuild them",
                    retry_after_s=60,
                )
            vectors.append(decode_vectors(body["embeddings"], len(chunk)))
            for task in tasks:
                labels[task] = tuple(body["heads"][task]["labels"])
                probabilities[task].append(np.asarray(body["heads"][task]["probabilities"], dtype=np.float32))
        predictions = {task: TaskPrediction(task, labels[task], np.concatenate(probabilities[task])) for task in tasks}
        return np.concatenate(vectors), predictions


def _detail(response: httpx.Response) -> str:
    try:
        return str(response.json().get("detail", response.text))[:300]
    except ValueError:
        return response.text[:300]
