"""Scale-out on Ray Serve: the backbone and the three services as Serve deployments, composed with handles.

The same deployment file drives it as ``spine up``: one backbone application per distinct artifact
(``backbone`` for ``shared``, ``backbone-<service>`` for ``per-domain``), each a deployment whose
``@serve.batch`` method coalesces concurrent calls into one forward pass, with a configurable number
of replicas. Each service is its own application with a FastAPI ingress (the very app ``uvicorn``
serves) at ``/<service>``, and reaches its backbone through a deployment handle wrapped in
``RayBackboneClient``, which has the ``BackboneClient`` Protocol, so service code does not change.
"""

from __future__ import annotations

import asyncio
import dataclasses
import importlib
import itertools
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from ray import serve
from ray.serve.handle import DeploymentHandle

from apps.launch import backbone_servers
from shared_backbone.client import BackboneInfo, DeploymentConfig, InProcessBackboneClient, TaskPrediction, _check_texts
from shared_backbone.settings import BackboneSettings
from shared_backbone.tasks import SERVICES

BACKBONE_DEPLOYMENT = "Backbone"


@serve.deployment(name=BACKBONE_DEPLOYMENT, ray_actor_options={"num_cpus": 0})
class BackboneDeployment:
    """One artifact in memory; ``analyse`` calls from every service replica share forward passes."""

    def __init__(self, artifact: str, artifacts_dir: str, backend: str, threads: int, max_batch_texts: int, max_wait_s: float) -> None:
        settings = BackboneSettings(artifacts_dir=Path(artifacts_dir), threads=threads)
        cache = settings.cache_dir / "embeddings.sqlite" if settings.embedding_cache else None
        self.client = InProcessBackboneClient(settings.backbones_dir, artifact, threads=threads, backend=backend, cache_path=cache)
        self.client.warm_up()
        self._encode.set_max_batch_size(max_batch_texts)
        self._encode.set_batch_wait_timeout_s(max_wait_s)

    def info(self) -> dict[str, Any]:
        return dataclasses.asdict(self.client.info())

    @serve.batch(max_batch_size=64, batch_wait_timeout_s=0.002)
    async def _encode(self, requests: list[list[str]]) -> list[np.ndarray]:
        texts = [text for request in requests for text in request]
        vectors = await asyncio.to_thread(self.client.encode, texts)  # off the replica's event loop
        bounds = np.cumsum([0] + [len(request) for request in requests])
        return [vectors[start:end] for start, end in itertools.pairwise(bounds)]

    async def analyse(self, texts: list[str], tasks: list[str]) -> dict[str, Any]:
        heads = {task: self.client.head(task) for task in tasks}  # an unknown task fails before any encoding
        vectors = await self._encode(texts) if texts else np.zeros((0, self.client.info().dimension), dtype=np.float32)
        return {"embeddings": vectors, "heads": {task: (head.labels, head.predict_proba(vectors)) for task, head in heads.items()}}


def _wait(response: Any) -> Any:
    """A handle call's result from sync code; from inside an event loop (a lifespan), wait on a helper thread."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return response.result()
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(response.result).result()


class RayBackboneClient:
    """The ``BackboneClient`` Protocol over a Serve deployment handle."""

    def __init__(self, handle: DeploymentHandle) -> None:
        self.handle = handle
        self._info: BackboneInfo | None = None

    def warm_up(self) -> None:
        raw = _wait(self.handle.info.remote())
        self._info = BackboneInfo(**{k: tuple(v) if isinstance(v, list) else v for k, v in raw.items()})

    def info(self) -> BackboneInfo:
        if self._info is None:
            self.warm_up()
        assert self._info is not None
        return self._info

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        return self.analyse(texts, [])[0]

    def predict(self, task: str, texts: Sequence[str]) -> TaskPrediction:
        return self.analyse(texts, [task])[1][task]

    def analyse(self, texts: Sequence[str], tasks: Sequence[str]) -> tuple[np.ndarray, dict[str, TaskPrediction]]:
        body = _wait(self.handle.analyse.remote(_check_texts(texts), list(tasks)))
        predictions = {task: TaskPrediction(task, tuple(labels), probs) for task, (labels, probs) in body["heads"].items()}
        return body["embeddings"], predictions


def service_deployment(service: str, replicas: int) -> Any:
    """The service's own FastAPI app as the ingress of a Serve deployment, its backbone behind a handle."""

    @serve.deployment(name=service, num_replicas=replicas, ray_actor_options={"num_cpus": 0})
    @serve.ingress()
    class Service:
        def __init__(self, backbone: DeploymentHandle) -> None:
            self.backbone = backbone

        def __serve_build_asgi_app__(self) -> Any:
            """Built in the replica, after the constructor: the app holds locks and connections that do not pickle."""
            return importlib.import_module(f"services.{service}.app").create_app(client=RayBackboneClient(self.backbone))

    return Service


def forwarded_environment() -> dict[str, str]:
    """What replicas must see as the driver does: the platform's settings and offline model loading."""
    return {k: v for k, v in os.environ.items() if k.startswith(("SPINE_", "HF_", "TRANSFORMERS_"))} | {"HF_HUB_OFFLINE": "1"}


def run(config: DeploymentConfig, profile: str | None, settings: BackboneSettings, *, port: int, replicas: int = 1) -> dict[str, str]:
    """Deploy every backbone and service application; returns each service's URL."""
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    handles: dict[str, DeploymentHandle] = {}
    for name, served in backbone_servers(config, profile).items():
        artifact = config.artifact_for(served[0], profile)
        backbone = BackboneDeployment.options(num_replicas=replicas).bind(
            artifact, str(settings.artifacts_dir), config.backend, settings.threads, settings.encode_batch_size, 0.002
        )
        handle = serve.run(backbone, name=name, route_prefix=None)
        handles.update(dict.fromkeys(served, handle))
    urls = {}
    for service in SERVICES:
        serve.run(service_deployment(service, replicas).bind(handles[service]), name=service, route_prefix=f"/{service}")
        urls[service] = f"http://127.0.0.1:{port}/{service}"
    return urls
