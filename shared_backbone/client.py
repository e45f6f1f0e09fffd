"""How a service reaches its backbone: a ``BackboneClient``, chosen by deployment configuration.

A service asks for "the backbone of service X" and never loads a model itself, so switching a
deployment between ``shared`` and ``per-domain`` changes a TOML file, not code. The in-process
client lives here; a remote client with the same Protocol talks to the backbone server.
"""

from __future__ import annotations

import logging
import threading
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator, model_validator

from shared_backbone.artifacts import ArtifactStore, Manifest
from shared_backbone.cache import EmbeddingCache
from shared_backbone.encoder import CachedEncoder
from shared_backbone.errors import ConfigError
from shared_backbone.heads import ClassifierHead
from shared_backbone.settings import BackboneSettings
from shared_backbone.tasks import DEPLOYMENTS, PROFILES, SERVICES, parse_profile, parse_service

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TaskPrediction:
    """Calibrated class probabilities for a batch of texts."""

    task: str
    labels: tuple[str, ...]
    probabilities: np.ndarray  # (texts, classes)

    def best(self) -> list[tuple[str, float]]:
        """The most likely label and its probability, per text."""
        top = self.probabilities.argmax(axis=1)
        return [(self.labels[i], float(self.probabilities[row, i])) for row, i in enumerate(top)]


@dataclass(frozen=True)
class BackboneInfo:
    artifact_id: str
    backbone_id: str
    deployment: str
    dimension: int
    tasks: tuple[str, ...]
    heads: tuple[str, ...]
    parameter_count: int
    seed: int = 0
    backend: str = "torch"


@runtime_checkable
class BackboneClient(Protocol):
    """What a service may ask of its backbone."""

    def warm_up(self) -> None: ...

    def info(self) -> BackboneInfo: ...

    def encode(self, texts: Sequence[str]) -> np.ndarray: ...

    def predict(self, task: str, texts: Sequence[str]) -> TaskPrediction: ...

    def analyse(self, texts: Sequence[str], tasks: Sequence[str]) -> tuple[np.ndarray, dict[str, TaskPrediction]]: ...


def _check_texts(texts: Sequence[str]) -> list[str]:
    if isinstance(texts, str) or not all(isinstance(t, str) for t in texts):
        raise ConfigError("texts must be a list of strings")
    return list(texts)


class InProcessBackboneClient:
    """The backbone loaded into this process (``warm_up()`` does the loading)."""

    def __init__(
        self,
        backbones_dir: Path,
        artifact_id: str,
        *,
        threads: int | None = None,
        batch_size: int = 32,
        cache_path: Path | None = None,
        backend: str = "torch",
    ) -> None:
        self.store = ArtifactStore(backbones_dir)
        self.artifact_id = artifact_id
        self.wanted_backend = backend
        self.backend_reason = ""
        self.threads = threads
        self.batch_size = batch_size
        self.cache_path = cache_path
        self._lock = threading.Lock()
        self._manifest: Manifest | None = None
        self._backbone: CachedEncoder | None = None
        self._heads: dict[str, ClassifierHead] = {}

    def warm_up(self) -> None:
        with self._lock:
            if self._backbone is not None:
                return
            manifest = self.store.manifest(self.artifact_id)
            heads = self.store.load_heads(self.artifact_id)
            cache = EmbeddingCache(self.cache_path) if self.cache_path else None
            backend, self.backend_reason = self.store.choose_backend(self.artifact_id, self.wanted_backend)
            if backend == "torch" and self.wanted_backend == "auto":
                log.warning("%s: serving on torch (%s)", self.artifact_id, self.backend_reason)
            backbone = self.store.open_backbone(
                self.artifact_id, threads=self.threads, batch_size=self.batch_size, cache=cache, backend=backend
            )
            backbone.warm_up()
            self._manifest, self._heads, self._backbone = manifest, heads, backbone

    @property
    def is_warm(self) -> bool:
        return self._backbone is not None

    @property
    def backbone(self) -> CachedEncoder:
        if self._backbone is None:
            self.warm_up()
        assert self._backbone is not None
        return self._backbone

    def info(self) -> BackboneInfo:
        backbone = self.backbone
        assert self._manifest is not None
        return BackboneInfo(
            artifact_id=self.artifact_id,
            backbone_id=backbone.backbone_id,
            deployment=self._manifest.deployment,
            dimension=self._manifest.embedding_dimension,
            tasks=tuple(self._manifest.tasks),
            heads=tuple(sorted(self._heads)),
            parameter_count=self._manifest.parameter_count,
            seed=self._manifest.seed,
            backend=backbone.backend,
        )

    def head(self, task: str) -> ClassifierHead:
        self.backbone  # noqa: B018 - loads heads too
        if task not in self._heads:
            raise ConfigError(
                f"backbone '{self.artifact_id}' has no head for task '{task}' (heads: {', '.join(sorted(self._heads)) or 'none'})"
            )
        return self._heads[task]

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        return self.backbone.encode(_check_texts(texts))

    def predict(self, task: str, texts: Sequence[str]) -> TaskPrediction:
        return self.analyse(texts, [task])[1][task]

    def analyse(self, texts: Sequence[str], tasks: Sequence[str]) -> tuple[np.ndarray, dict[str, TaskPrediction]]:
        """One forward pass: the embeddings and every requested head's probabilities."""
        heads = {task: self.head(task) for task in tasks}
        embeddings = self.encode(texts)
        return embeddings, {task: TaskPrediction(task, head.labels, head.predict_proba(embeddings)) for task, head in heads.items()}


# --- deployment configuration --------------------------------------------------------------------


class DeploymentConfig(BaseModel):
    """``deploy/<name>.toml``: which backbone artifact serves each service."""

    model_config = ConfigDict(extra="forbid")

    name: str
    shape: str
    profile: str = "quick"
    description: str = ""
    backend: str = "auto"
    services: dict[str, str]

    @field_validator("backend")
    @classmethod
    def _known_backend(cls, value: str) -> str:
        if value not in ("auto", "torch", "onnx", "onnx-int8"):
            raise ValueError("backend must be auto, torch, onnx or onnx-int8")
        return value

    @field_validator("shape")
    @classmethod
    def _known_shape(cls, value: str) -> str:
        if value not in DEPLOYMENTS:
            raise ValueError(f"shape must be one of {', '.join(DEPLOYMENTS)}")
        return value

    @field_validator("profile")
    @classmethod
    def _known_profile(cls, value: str) -> str:
        if value not in PROFILES:
            raise ValueError(f"profile must be one of {', '.join(PROFILES)}")
        return value

    @model_validator(mode="after")
    def _every_service(self) -> DeploymentConfig:
        missing, unknown = set(SERVICES) - set(self.services), set(self.services) - set(SERVICES)
        if missing or unknown:
            raise ValueError(f"[services] must name exactly {', '.join(SERVICES)} (missing: {sorted(missing)}, unknown: {sorted(unknown)})")
        return self

    def artifact_for(self, service: str, profile: str | None = None) -> str:
        parse_service(service)
        chosen = parse_profile(profile or self.profile).name
        return self.services[service].format(profile=chosen)


def load_deployment(name_or_path: str, deploy_dir: Path) -> DeploymentConfig:
    """A deployment by name (``shared`` -> ``deploy/shared.toml``) or by path to a TOML file."""
    path = Path(name_or_path) if name_or_path.endswith(".toml") else deploy_dir / f"{name_or_path}.toml"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in deploy_dir.glob("*.toml"))) if deploy_dir.is_dir() else "none"
        raise ConfigError(f"unknown deployment '{name_or_path}': no {path} (known: {known})")
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
        return DeploymentConfig.model_validate(raw)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: malformed TOML ({exc})") from None
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "file"
        raise ConfigError(f"{path}: {where}: {first['msg']}") from None


class BackboneClients:
    """Hands each service its client; services mapped to the same artifact share one model."""

    def __init__(self, config: DeploymentConfig, settings: BackboneSettings | None = None, profile: str | None = None) -> None:
        self.config = config
        self.settings = settings or BackboneSettings()
        self.profile = profile
        self._clients: dict[str, InProcessBackboneClient] = {}
        self._lock = threading.Lock()

    def artifact_ids(self) -> dict[str, str]:
        return {service: self.config.artifact_for(service, self.profile) for service in SERVICES}

    def for_service(self, service: str) -> BackboneClient:
        artifact = self.config.artifact_for(service, self.profile)
        with self._lock:
            if artifact not in self._clients:
                cache = self.settings.cache_dir / "embeddings.sqlite" if self.settings.embedding_cache else None
                self._clients[artifact] = InProcessBackboneClient(
                    self.settings.backbones_dir,
                    artifact,
                    threads=self.settings.threads,
                    batch_size=self.settings.encode_batch_size,
                    cache_path=cache,
                    backend=self.config.backend,
                )
            return self._clients[artifact]

    def loaded_models(self) -> int:
        return sum(1 for client in self._clients.values() if client.is_warm)
