"""The backbone server: one artifact, served over HTTP to every service that the deployment maps to it.

``POST /v1/embeddings`` follows the OpenAI embeddings API (``input``, ``model``, ``encoding_format``),
so any OpenAI-compatible client can use it; ``/v1/analyse`` returns embeddings and head probabilities
from one forward pass, which is what the services need. Concurrent requests are coalesced by the
micro-batcher; the model runs on one worker thread with a capped thread count.
"""

from __future__ import annotations

import base64
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Annotated, Literal

import numpy as np
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest
from pydantic import BaseModel, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared_backbone.batching import BatcherBusy, BatcherStopped, MicroBatcher
from shared_backbone.client import BackboneInfo, InProcessBackboneClient
from shared_backbone.errors import SpineError
from shared_backbone.settings import BackboneSettings
from shared_backbone.text import encoder_text

log = logging.getLogger(__name__)

REQUESTS = Counter("spine_backbone_requests_total", "Backbone server requests by route and status", ["route", "status"])
LATENCY = Histogram(
    "spine_backbone_request_seconds", "Backbone server latency by route", ["route"], buckets=(0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.5, 2)
)


class BackboneServerSettings(BaseSettings):
    """``SPINE_BACKBONE_SERVER_*``; the limits are the documented contract of the API."""

    model_config = SettingsConfigDict(env_prefix="SPINE_BACKBONE_SERVER_", env_file=".env", extra="ignore")

    artifact: str = Field(default="shared-quick", description="the backbone artifact this server loads")
    backend: str = Field(default="auto", description="auto (onnx-int8 where verified, else torch), torch, onnx or onnx-int8")
    max_batch_texts: int = Field(default=64, ge=1, le=1024, description="texts per coalesced forward pass")
    max_wait_ms: float = Field(default=2.0, ge=0, le=1000, description="how long a request waits for others to join its pass")
    max_queued_requests: int = Field(default=1024, ge=1, le=100_000, description="beyond this the server answers 503 (busy)")
    max_texts_per_request: int = Field(default=512, ge=1, le=8192)
    max_text_chars: int = Field(default=20_000, ge=1, le=1_000_000, description="longer texts are refused (the encoder reads 64 tokens)")
    max_request_bytes: int = Field(default=16 * 1024 * 1024, ge=1024)
    backbone: BackboneSettings = Field(default_factory=BackboneSettings)


class EmbeddingsRequest(BaseModel):
    input: str | list[str]
    model: str | None = Field(default=None, description="the artifact id or backbone id served here; omitted: this server's")
    encoding_format: Literal["float", "base64"] = "float"

    @field_validator("input")
    @classmethod
    def _not_empty(cls, value: str | list[str]) -> str | list[str]:
        if isinstance(value, list) and not value:
            raise ValueError("input must hold at least one text")
        return value


class AnalyseRequest(BaseModel):
    input: list[str] = Field(min_length=1)
    tasks: list[str] = Field(default_factory=list, description="heads to run on the same embeddings")
    encoding_format: Literal["float", "base64"] = "base64"


class PredictRequest(BaseModel):
    input: list[str] = Field(min_length=1)


def encode_vectors(vectors: np.ndarray, encoding_format: str) -> list[float] | list[list[float]] | str:
    """``base64`` is little-endian float32 bytes, as in the OpenAI API: 4x smaller than JSON floats."""
    if encoding_format == "base64":
        return base64.b64encode(np.ascontiguousarray(vectors, dtype="<f4").tobytes()).decode("ascii")
    return vectors.astype(float).tolist()


def decode_vectors(payload: list[list[float]] | str, rows: int) -> np.ndarray:
    if isinstance(payload, str):
        flat = np.frombuffer(base64.b64decode(payload), dtype="<f4")
        return flat.reshape(rows, -1).astype(np.float32) if rows else np.zeros((0, 0), dtype=np.float32)
    return np.asarray(payload, dtype=np.float32).reshape(rows, -1)


def served_backbone(request: Request) -> BackboneInfo:
    """What this server serves; 503 with the reason while it loads or when it could not load."""
    state = request.app.state
    if state.info is None:
        reason = state.failure or "still loading"
        raise HTTPException(503, f"backbone '{state.settings.artifact}' is unavailable: {reason}", headers={"Retry-After": "5"})
    return state.info


Served = Annotated[BackboneInfo, Depends(served_backbone)]


def _info_body(info: BackboneInfo, settings: BackboneServerSettings) -> dict[str, object]:
    return {
        "artifact_id": info.artifact_id,
        "backbone_id": info.backbone_id,
        "deployment": info.deployment,
        "dimension": info.dimension,
        "tasks": list(info.tasks),
        "heads": list(info.heads),
        "parameter_count": info.parameter_count,
        "seed": info.seed,
        "backend": info.backend,
        "limits": {
            "max_texts_per_request": settings.max_texts_per_request,
            "max_text_chars": settings.max_text_chars,
            "max_batch_texts": settings.max_batch_texts,
            "max_wait_ms": settings.max_wait_ms,
        },
    }


def create_backbone_app(settings: BackboneServerSettings | None = None) -> FastAPI:
    settings = settings or BackboneServerSettings()
    b = settings.backbone
    cache = b.cache_dir / "embeddings.sqlite" if b.embedding_cache else None
    client = InProcessBackboneClient(
        b.backbones_dir, settings.artifact, threads=b.threads, batch_size=b.encode_batch_size, cache_path=cache, backend=settings.backend
    )
    batcher = MicroBatcher(
        client.encode,
        max_batch_texts=settings.max_batch_texts,
        max_wait_s=settings.max_wait_ms / 1000,
        max_queued=settings.max_queued_requests,
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        try:
            client.warm_up()
            app.state.info = client.info()
            log.info("serving %s on %s (%s)", settings.artifact, app.state.info.backend, client.backend_reason)
        except SpineError as exc:  # stay up and say why: /health is 503 with the reason, no traceback
            log.error("backbone server cannot load %s: %s", settings.artifact, exc)
            app.state.failure = str(exc)
        await batcher.start()
        try:
            yield
        finally:
            await batcher.stop()

    app = FastAPI(title="Spine backbone server", lifespan=lifespan, max_body_size=settings.max_request_bytes)
    app.state.settings, app.state.info, app.state.failure = settings, None, None

    def checked(texts: list[str]) -> list[str]:
        if len(texts) > settings.max_texts_per_request:
            raise HTTPException(413, f"{len(texts)} texts in one request; the limit is {settings.max_texts_per_request}")
        for i, text in enumerate(texts):
            if len(text) > settings.max_text_chars:
                raise HTTPException(413, f"input[{i}] has {len(text)} characters; the limit is {settings.max_text_chars}")
            try:
                text.encode("utf-8")
            except UnicodeEncodeError:
                raise HTTPException(422, f"input[{i}] is not valid Unicode (a lone surrogate)") from None
        return texts

    async def encoded(texts: list[str]) -> np.ndarray:
        try:
            return await batcher.submit(texts)
        except BatcherBusy as exc:
            raise HTTPException(503, f"backbone server busy: {exc}", headers={"Retry-After": "1"}) from None
        except BatcherStopped as exc:
            raise HTTPException(503, str(exc), headers={"Retry-After": "5"}) from None

    def head_probabilities(info: BackboneInfo, tasks: list[str], vectors: np.ndarray) -> dict[str, dict[str, object]]:
        unknown = [t for t in tasks if t not in info.heads]
        if unknown:
            raise HTTPException(404, f"no head for task(s) {', '.join(unknown)} in '{info.artifact_id}' (heads: {', '.join(info.heads)})")
        out: dict[str, dict[str, object]] = {}
        for task in tasks:
            head = client.head(task)
            out[task] = {"labels": list(head.labels), "probabilities": head.predict_proba(vectors).astype(float).round(6).tolist()}
        return out

    v1 = APIRouter(prefix="/v1", tags=["backbone"])

    @v1.post("/embeddings")
    async def embeddings(body: EmbeddingsRequest, info: Served) -> dict[str, object]:
        if body.model not in (None, info.artifact_id, info.backbone_id):
            raise HTTPException(404, f"model '{body.model}' is not served here; this server serves '{info.artifact_id}'")
        texts = checked([body.input] if isinstance(body.input, str) else body.input)
        vectors = await encoded(texts)
        read = [encoder_text(t, strip_links=client.backbone.strip_links) for t in texts]  # what the encoder counts
        tokens = sum(await batcher.run_exclusive(client.backbone.token_lengths, read))
        data = [
            {"object": "embedding", "index": i, "embedding": encode_vectors(row, body.encoding_format)} for i, row in enumerate(vectors)
        ]
        return {"object": "list", "data": data, "model": info.artifact_id, "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}

    @v1.post("/analyse")
    async def analyse(body: AnalyseRequest, info: Served) -> dict[str, object]:
        texts = checked(body.input)
        if unknown := [t for t in body.tasks if t not in info.heads]:
            head_probabilities(info, unknown, np.zeros((0, info.dimension), dtype=np.float32))  # raises the 404
        vectors = await encoded(texts)
        return {
            "model": info.artifact_id,
            "backbone_id": info.backbone_id,
            "count": len(texts),
            "embeddings": encode_vectors(vectors, body.encoding_format),
            "heads": head_probabilities(info, body.tasks, vectors),
        }

    @v1.post("/heads/{task}/predict")
    async def predict(task: str, body: PredictRequest, info: Served) -> dict[str, object]:
        texts = checked(body.input)
        head_probabilities(info, [task], np.zeros((0, info.dimension), dtype=np.float32))  # 404 before paying for encoding
        vectors = await encoded(texts)
        result = head_probabilities(info, [task], vectors)[task]
        labels, probabilities = result["labels"], np.asarray(result["probabilities"])
        predictions = [{"label": labels[int(row.argmax())], "confidence": float(row.max())} for row in probabilities]  # type: ignore[index]
        return {
            "model": info.artifact_id,
            "task": task,
            "labels": labels,
            "predictions": predictions,
            "probabilities": result["probabilities"],
        }

    @v1.get("/info")
    def info_route(info: Served) -> dict[str, object]:
        return _info_body(info, settings)

    app.include_router(v1)

    @app.get("/health", tags=["ops"])
    def health() -> JSONResponse:
        if app.state.info is None:
            status = "unavailable" if app.state.failure else "starting"
            body = {"status": status, "artifact_id": settings.artifact, "error": app.state.failure}
            return JSONResponse(body, status_code=503, headers={"Retry-After": "5"})
        info = app.state.info
        return JSONResponse({"status": "ok", "artifact_id": settings.artifact, "backbone_id": info.backbone_id, "backend": info.backend})

    @app.get("/metrics", include_in_schema=False)
    def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    @app.middleware("http")
    async def measure(request: Request, call_next: Callable) -> Response:
        declared = request.headers.get("content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > settings.max_request_bytes):
            return JSONResponse({"detail": f"request body over the {settings.max_request_bytes}-byte limit"}, status_code=413)
        started = time.perf_counter()
        response = await call_next(request)
        route = getattr(request.scope.get("route"), "path", "unmatched")
        LATENCY.labels(route).observe(time.perf_counter() - started)
        REQUESTS.labels(route, str(response.status_code)).inc()
        return response

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        parts = [
            f"{'.'.join(str(p) for p in e.get('loc', ()) if p != 'body') or 'body'}: {e.get('msg', 'invalid')}" for e in exc.errors()[:5]
        ]
        return JSONResponse({"detail": "; ".join(parts)}, status_code=422)

    @app.exception_handler(SpineError)
    async def spine_error(_: Request, exc: SpineError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=400)

    app.state.client, app.state.batcher = client, batcher
    return app
