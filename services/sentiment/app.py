"""The sentiment monitor as a deployable FastAPI app: ``uvicorn services.sentiment.app:app``.

The scheduler runs inside this process (``SPINE_SENTIMENT_SCHEDULER=false`` turns it off, e.g. for a
second API replica over the same database: APScheduler 3 jobs must run in one process only).
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from sqlalchemy import func, select

from services.common.app import create_service_app
from services.sentiment.api import alerts_router, documents_router, sources_router
from services.sentiment.monitor import Monitor
from services.sentiment.settings import SentimentSettings
from services.sentiment.store import Alert, Document
from shared_backbone.client import BackboneClient


def create_app(settings: SentimentSettings | None = None, client: BackboneClient | None = None) -> FastAPI:
    settings = settings or SentimentSettings()
    monitor = Monitor(settings, client)

    def warm_up(app: FastAPI) -> None:
        monitor.warm_up()
        app.state.monitor = monitor

    def health(_: FastAPI) -> dict[str, Any]:
        info = monitor.client.info()
        with monitor.database.session() as db:
            documents = db.scalar(select(func.count()).select_from(Document))
            open_alerts = db.scalar(select(func.count()).select_from(Alert).where(Alert.acknowledged_at.is_(None)))
        running = monitor.scheduler is not None and monitor.scheduler.running
        return {
            "backbone": info.artifact_id,
            "backbone_id": info.backbone_id,
            "documents": documents,
            "open_alerts": open_alerts,
            "scheduler": running,
        }

    return create_service_app(
        "sentiment",
        settings,
        [documents_router, alerts_router, sources_router],
        warm_up=warm_up,
        shut_down=lambda _: monitor.shut_down(),
        health=health,
    )


def __getattr__(name: str) -> Any:
    """``services.sentiment.app:app`` for uvicorn, built on first access rather than at import."""
    if name == "app":
        return create_app()
    raise AttributeError(name)
