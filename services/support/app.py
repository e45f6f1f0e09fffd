"""The support service as a deployable FastAPI app: ``uvicorn services.support.app:app``."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from services.common.app import create_service_app
from services.support.api import chat_router, kb_router
from services.support.bot import SupportBot
from services.support.settings import SupportSettings
from shared_backbone.client import BackboneClient


def create_app(settings: SupportSettings | None = None, client: BackboneClient | None = None) -> FastAPI:
    settings = settings or SupportSettings()
    bot = SupportBot(settings, client)

    def warm_up(app: FastAPI) -> None:
        bot.warm_up()
        app.state.bot = bot

    def health(_: FastAPI) -> dict[str, Any]:
        info = bot.client.info()
        return {
            "backbone": info.artifact_id,
            "backbone_id": info.backbone_id,
            "articles": len(bot.kb.articles),
            "oos_threshold": round(bot.oos_threshold, 4),
        }

    return create_service_app(
        "support", settings, [chat_router, kb_router], warm_up=warm_up, shut_down=lambda _: bot.database.dispose(), health=health
    )


def __getattr__(name: str) -> Any:
    """``services.support.app:app`` for uvicorn, built on first access rather than at import."""
    if name == "app":
        return create_app()
    raise AttributeError(name)
