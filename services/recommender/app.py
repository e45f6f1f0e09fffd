"""The recommender service as a deployable FastAPI app: ``uvicorn services.recommender.app:app``."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from services.common.app import create_service_app
from services.recommender.api import catalogue_router, recommendations_router
from services.recommender.engine import Recommender
from services.recommender.settings import RecommenderSettings
from shared_backbone.client import BackboneClient


def create_app(settings: RecommenderSettings | None = None, client: BackboneClient | None = None) -> FastAPI:
    settings = settings or RecommenderSettings()
    recommender = Recommender(settings, client)

    def warm_up(app: FastAPI) -> None:
        recommender.warm_up()
        app.state.recommender = recommender

    def health(_: FastAPI) -> dict[str, Any]:
        info, state = recommender.client.info(), recommender.state
        return {
            "backbone": info.artifact_id,
            "backbone_id": info.backbone_id,
            "items": len(state.items),
            "users": len(recommender.viewers),
            "index": recommender.index.kind,
            "collaborative_items": len(state.model.columns),
        }

    return create_service_app(
        "recommender",
        settings,
        [recommendations_router, catalogue_router],
        warm_up=warm_up,
        shut_down=lambda _: recommender.database.dispose(),
        health=health,
    )


def __getattr__(name: str) -> Any:
    """``services.recommender.app:app`` for uvicorn, built on first access rather than at import."""
    if name == "app":
        return create_app()
    raise AttributeError(name)
