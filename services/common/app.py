"""The app factory every service uses: lifespan, errors as clear 4xx, size limits, health, metrics."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest
from sqlalchemy.exc import SQLAlchemyError

from services.common.settings import ServiceSettings
from shared_backbone.errors import ArtifactError, BackboneUnavailable, SpineError

log = logging.getLogger(__name__)
RETRY_WARM_UP_S = 5.0
OPS_PATHS = ("/health", "/metrics")

REQUESTS = Counter("spine_http_requests_total", "HTTP requests by service, route and status", ["service", "route", "status"])
LATENCY = Histogram(
    "spine_http_request_seconds",
    "HTTP request latency by service and route",
    ["service", "route"],
    buckets=(0.005, 0.01, 0.02, 0.04, 0.06, 0.1, 0.2, 0.5, 1, 2, 5),
)


def without_credentials(url: str) -> str:
    """``http://user:secret@host`` -> ``http://host``: URLs are shown in health and errors, secrets never."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=parts.hostname + (f":{parts.port}" if parts.port else ""))) if parts.hostname else url


def _route_name(request: Request) -> str:
    """The route template (``/sessions/{session_id}``), so metrics do not grow one series per id."""
    route = request.scope.get("route")
    return getattr(route, "path", "unmatched")


def _message(exc: RequestValidationError) -> str:
    parts = []
    for error in exc.errors()[:5]:
        where = ".".join(str(p) for p in error.get("loc", ()) if p != "body") or "body"
        parts.append(f"{where}: {error.get('msg', 'invalid')}")
    return "; ".join(parts)


def create_service_app(
    service: str,
    settings: ServiceSettings,
    routers: list[APIRouter],
    *,
    warm_up: Callable[[FastAPI], None],
    shut_down: Callable[[FastAPI], None] | None = None,
    health: Callable[[FastAPI], dict[str, Any]] | None = None,
) -> FastAPI:
    """A FastAPI app whose heavy loading happens once, in ``warm_up``, at start-up."""

    def database_reason(exc: SQLAlchemyError) -> str:
        return f"database unavailable: {exc.orig if getattr(exc, 'orig', None) else type(exc).__name__}"

    def retry_warm_up(app: FastAPI, stop: threading.Event) -> None:
        """The backbone server was not up in time: keep trying, and serve as soon as it answers."""
        while not stop.wait(RETRY_WARM_UP_S):
            try:
                warm_up(app)
            except BackboneUnavailable as exc:
                app.state.failure = str(exc)
                continue
            except SpineError as exc:
                reason = str(exc)
            except SQLAlchemyError as exc:
                reason = database_reason(exc)
            except Exception as exc:  # a bug or a garbled reply must not leave a dead thread behind a stale reason
                log.exception("%s: warm-up retry failed", service)
                app.state.failure = f"warm-up failed: {type(exc).__name__}: {exc}"
                continue
            else:
                if not stop.is_set():
                    app.state.failure, app.state.waiting, app.state.ready = None, False, True
                    log.info("%s: backbone reachable, serving", service)
                return
            app.state.failure, app.state.waiting = reason, False
            log.error("%s cannot start: %s", service, reason)
            return

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        stop_retrying = threading.Event()
        retrying: threading.Thread | None = None
        try:
            warm_up(app)
            app.state.ready = True
        except BackboneUnavailable as exc:  # not our fault and not permanent: 503 until the server answers
            log.error("%s waits for its backbone: %s", service, exc)
            app.state.failure, app.state.waiting = str(exc), True
            retrying = threading.Thread(target=retry_warm_up, args=(app, stop_retrying), daemon=True, name="warm-up-retry")
            retrying.start()
        except SpineError as exc:  # stay up and say why (health and every route answer 503), no traceback
            log.error("%s cannot start: %s", service, exc)
            app.state.failure = str(exc)
        except SQLAlchemyError as exc:  # an unreachable or damaged database: the same, with the driver's reason
            log.error("%s cannot start: %s", service, database_reason(exc))
            app.state.failure = database_reason(exc)
        try:
            yield
        finally:
            stop_retrying.set()
            if retrying is not None:
                retrying.join(timeout=10)
            if shut_down is not None:
                shut_down(app)

    # the body limit holds for chunked uploads too (no Content-Length to check up front)
    app = FastAPI(title=f"Spine {service}", lifespan=lifespan, max_body_size=settings.max_request_bytes)
    app.state.settings = settings
    app.state.service = service
    app.state.ready = False
    app.state.failure = None
    app.state.waiting = False  # failing only because the backbone server is not answering yet: health says "waiting"
    if settings.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=settings.cors_origins, allow_methods=["*"], allow_headers=["*"])

    @app.middleware("http")
    async def limits_and_metrics(request: Request, call_next: Callable) -> Response:
        if app.state.failure and request.url.path not in ("/health", "/metrics"):
            detail = f"{service} is unavailable: {app.state.failure}"
            return JSONResponse({"detail": detail}, status_code=503, headers={"Retry-After": "30"})
        declared = request.headers.get("content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > settings.max_request_bytes):
            return JSONResponse({"detail": f"request body over the {settings.max_request_bytes}-byte limit"}, status_code=413)
        started = time.perf_counter()
        response = await call_next(request)
        if request.url.path in OPS_PATHS:  # probes are not traffic: they would skew the latency percentiles
            return response
        route = _route_name(request)
        LATENCY.labels(service, route).observe(time.perf_counter() - started)
        REQUESTS.labels(service, route, str(response.status_code)).inc()
        return response

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"detail": _message(exc)}, status_code=422)

    @app.exception_handler(SpineError)
    async def spine_error(_: Request, exc: SpineError) -> JSONResponse:
        """Bad names or data are the caller's (400); a missing or broken backbone is ours (503)."""
        if isinstance(exc, BackboneUnavailable):
            log.warning("backbone unavailable: %s", exc)
            return JSONResponse({"detail": str(exc)}, status_code=503, headers={"Retry-After": str(exc.retry_after_s)})
        if isinstance(exc, ArtifactError):
            log.error("backbone unavailable: %s", exc)
            return JSONResponse({"detail": f"backbone unavailable: {exc}"}, status_code=503, headers={"Retry-After": "30"})
        return JSONResponse({"detail": str(exc)}, status_code=400)

    @app.get("/health", tags=["ops"])
    def health_route() -> JSONResponse:
        if app.state.failure:
            status = "waiting" if app.state.waiting else "unavailable"
            body = {"status": status, "service": service, "deployment": settings.deployment, "error": app.state.failure}
            return JSONResponse(body, status_code=503, headers={"Retry-After": "30"})
        body = {"status": "ok" if app.state.ready else "starting", "service": service, "deployment": settings.deployment}
        body["backbone_url"] = without_credentials(settings.backbone.backbone_url) if settings.backbone.backbone_url else "in-process"
        if health is not None and app.state.ready:
            body.update(health(app))
        return JSONResponse(body)

    @app.get("/metrics", tags=["ops"], include_in_schema=False)
    def metrics_route() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    for router in routers:
        app.include_router(router)
    return app
