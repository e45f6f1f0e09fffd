"""The artifact store: ``artifacts/backbones/<id>/`` holds an encoder, its heads and a manifest.

An artifact is written into a staging folder and moved into place only when complete, so a crash
mid-training never leaves a half artifact that looks loadable.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from shared_backbone.cache import EmbeddingCache
from shared_backbone.encoder import Backbone, CachedEncoder
from shared_backbone.errors import ArtifactError
from shared_backbone.heads import ClassifierHead

MANIFEST_FORMAT = 1
MANIFEST = "manifest.json"
ENCODER_DIR = "encoder"
HEADS_DIR = "heads"


class Manifest(BaseModel):
    """What an artifact is and how it was made; enough to reproduce and to compare it."""

    model_config = ConfigDict(extra="forbid")

    format_version: Literal[1] = MANIFEST_FORMAT
    id: str
    base_model: str
    deployment: str
    group: str
    services: list[str]
    tasks: list[str]
    heads: list[str]
    profile: str
    seed: int
    sampling: str
    hyperparameters: dict[str, float | int | dict[str, int] | None]
    data_hashes: dict[str, str]
    fingerprint: str = Field(description="sha256 prefix of the encoder weights; part of every cache key")
    training_seconds: float
    parameter_count: int
    embedding_dimension: int
    max_seq_length: int
    strip_links: bool = Field(default=False, description="trained on texts without web links: the encoder strips them too")
    created_at: str
    versions: dict[str, str]
    metrics: dict[str, dict[str, dict[str, float]]] = Field(description="task -> split -> metric -> value")
    exports: dict[str, dict[str, Any]] = Field(default_factory=dict, description="backend -> file, sha256, verification, servable")

    @property
    def backbone_id(self) -> str:
        return backbone_id(self.id, self.fingerprint, self.strip_links)


def backbone_id(artifact_id: str, fingerprint: str, strip_links: bool) -> str:
    """What every cache and index is keyed by: it changes whenever the encoder's outputs can.

    The weights' fingerprint alone misses one case: a ``frozen`` artifact keeps the pretrained weights
    whether or not it reads links, so reading without them is marked too.
    """
    return f"{artifact_id}@{fingerprint}" + ("+nolinks" if strip_links else "")


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def encoder_fingerprint(encoder_dir: Path) -> str:
    weights = sorted(encoder_dir.rglob("*.safetensors"))
    if not weights:
        raise ArtifactError(f"{encoder_dir}: no safetensors weights found")
    digest = hashlib.sha256()
    for path in weights:
        digest.update(file_sha256(path).encode())
    return digest.hexdigest()[:16]


@dataclass(frozen=True)
class ArtifactEntry:
    """One folder of the store: its manifest, or why it cannot be read."""

    id: str
    manifest: Manifest | None
    problem: str | None


class ArtifactStore:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def path(self, artifact_id: str) -> Path:
        if not artifact_id or "/" in artifact_id or artifact_id.startswith("."):
            raise ArtifactError(f"'{artifact_id}' is not a valid backbone id")
        return self.root / artifact_id

    def exists(self, artifact_id: str) -> bool:
        return (self.path(artifact_id) / MANIFEST).is_file()

    def entries(self) -> list[ArtifactEntry]:
        if not self.root.is_dir():
            return []
        out = []
        for folder in sorted(p for p in self.root.iterdir() if p.is_dir() and not p.name.startswith(".")):
            try:
                out.append(ArtifactEntry(folder.name, self.manifest(folder.name), None))
            except ArtifactError as exc:
                out.append(ArtifactEntry(folder.name, None, str(exc)))
        return out

    def manifest(self, artifact_id: str) -> Manifest:
        path = self.path(artifact_id) / MANIFEST
        if not path.is_file():
            known = (
                ", ".join(sorted(p.parent.name for p in self.root.glob(f"*/{MANIFEST}") if not p.parent.name.startswith(".")))
                or "none yet; run `spine train`"
            )
            raise ArtifactError(f"no backbone '{artifact_id}' in {self.root} (known: {known})")
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ArtifactError(f"{path}: corrupt manifest ({exc})") from None
        if not isinstance(raw, dict) or raw.get("format_version") != MANIFEST_FORMAT:
            version = raw.get("format_version") if isinstance(raw, dict) else None
            raise ArtifactError(f"{path}: manifest format {version!r} is not understood (this version reads {MANIFEST_FORMAT})")
        try:
            return Manifest.model_validate(raw)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise ArtifactError(f"{path}: invalid manifest at '{where}': {first['msg']}") from None

    @contextmanager
    def staging(self, artifact_id: str) -> Iterator[Path]:
        """A fresh folder that replaces the artifact only if the block finishes without error."""
        final = self.path(artifact_id)
        stage = self.root / f".staging-{artifact_id}-{uuid.uuid4().hex[:8]}"
        stage.mkdir(parents=True)
        try:
            yield stage
            if not (stage / MANIFEST).is_file():
                raise ArtifactError(f"artifact '{artifact_id}' was staged without a manifest")
            old = self.root / f".old-{artifact_id}-{uuid.uuid4().hex[:8]}"
            if final.exists():
                final.rename(old)
            stage.rename(final)
            shutil.rmtree(old, ignore_errors=True)
        finally:
            shutil.rmtree(stage, ignore_errors=True)

    def export_problem(self, artifact_id: str, backend: str) -> str | None:
        """Why an ONNX export cannot be served (not verified, or its files changed since), or None."""
        from shared_backbone.onnx_backend import sha256_of

        export = self.manifest(artifact_id).exports.get(backend)
        if export is None:
            return f"no {backend} export (run `spine backbones export {artifact_id}`)"
        if not export.get("servable"):
            return f"{backend} failed verification ({export.get('reason')})"
        graph, tokenizer = self.path(artifact_id) / str(export.get("file")), self.path(artifact_id) / ENCODER_DIR / "tokenizer.json"
        if not export.get("sha256") or not graph.is_file() or sha256_of(graph) != export["sha256"]:
            return f"{graph.name} is missing or does not match the manifest (re-run `spine backbones export {artifact_id}`)"
        if not tokenizer.is_file() or sha256_of(tokenizer) != export.get("tokenizer_sha256"):
            return f"{tokenizer.name} is missing or changed since the export (re-run `spine backbones export {artifact_id}`)"
        return None

    def choose_backend(self, artifact_id: str, wanted: str = "auto") -> tuple[str, str]:
        """The backend to serve and why: ``auto`` takes onnx-int8, then onnx, where verified and intact, else torch."""
        from shared_backbone.onnx_backend import BACKENDS

        if wanted not in (*BACKENDS, "auto"):
            raise ArtifactError(f"unknown backend '{wanted}': choose auto, {', '.join(BACKENDS)}")
        if wanted == "torch":
            return "torch", "asked for"
        if wanted != "auto":
            if problem := self.export_problem(artifact_id, wanted):
                raise ArtifactError(f"'{artifact_id}' cannot be served on {wanted}: {problem}")
            return wanted, "asked for, verified on the probe set"
        reasons = []
        for backend in ("onnx-int8", "onnx"):
            if (problem := self.export_problem(artifact_id, backend)) is None:
                return backend, "verified on the probe set"
            reasons.append(problem)
        return "torch", "; ".join(reasons)

    def open_backbone(
        self,
        artifact_id: str,
        *,
        threads: int | None = None,
        batch_size: int = 32,
        cache: EmbeddingCache | None = None,
        backend: str = "torch",
    ) -> CachedEncoder:
        manifest = self.manifest(artifact_id)
        if backend != "torch":
            from shared_backbone.onnx_backend import ONNX_FILES, OnnxBackbone

            export = manifest.exports.get(backend)
            if backend not in ONNX_FILES or export is None:
                raise ArtifactError(f"'{artifact_id}' has no {backend} export: run `spine backbones export {artifact_id}`")
            if not export.get("sha256"):
                raise ArtifactError(
                    f"'{artifact_id}': the {backend} export has no checksum in the manifest; re-run `spine backbones export`"
                )
            return OnnxBackbone(
                self.path(artifact_id) / export["file"],
                self.path(artifact_id) / ENCODER_DIR / "tokenizer.json",
                f"{manifest.backbone_id}+{backend}.{export['sha256'][:12]}",  # the cache key changes with the graph
                backend=backend,
                dimension=manifest.embedding_dimension,
                max_seq_length=manifest.max_seq_length,
                expected_sha256=export.get("sha256"),
                threads=threads,
                batch_size=batch_size,
                cache=cache,
                strip_links=manifest.strip_links,
            )
        return Backbone(
            self.path(artifact_id) / ENCODER_DIR,
            manifest.backbone_id,
            threads=threads,
            batch_size=batch_size,
            max_seq_length=manifest.max_seq_length,
            cache=cache,
            strip_links=manifest.strip_links,
        )

    def load_heads(self, artifact_id: str) -> dict[str, ClassifierHead]:
        manifest = self.manifest(artifact_id)
        folder = self.path(artifact_id) / HEADS_DIR
        return {task: ClassifierHead.load(folder, task) for task in manifest.heads}
