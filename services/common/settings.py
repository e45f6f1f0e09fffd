"""The settings every deployable service shares; each service subclasses with its own env prefix."""

from __future__ import annotations

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared_backbone.settings import BackboneSettings


class ServiceSettings(BaseSettings):
    """Platform-wide values come from ``SPINE_*``; a service's own from ``SPINE_<SERVICE>_*``."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", populate_by_name=True)

    deployment: str = Field(default="shared", validation_alias=AliasChoices("deployment", "SPINE_DEPLOYMENT"))
    profile: str | None = Field(default=None, validation_alias=AliasChoices("profile", "SPINE_PROFILE"))
    admin_api_key: SecretStr | None = Field(default=None, validation_alias=AliasChoices("admin_api_key", "SPINE_ADMIN_API_KEY"))
    database_url: str | None = Field(default=None, description="SQLAlchemy URL; default: SQLite in the artifacts folder")
    max_request_bytes: int = Field(default=64 * 1024, ge=1024, le=16 * 1024 * 1024)
    cors_origins: list[str] = Field(default_factory=list, description="empty: CORS off")
    backbone: BackboneSettings = Field(default_factory=BackboneSettings)

    def database_url_or_default(self, service: str) -> str:
        if self.database_url:
            return self.database_url
        self.backbone.artifacts_dir.mkdir(parents=True, exist_ok=True)
        return f"sqlite:///{self.backbone.artifacts_dir / f'{service}.db'}"
