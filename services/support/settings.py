"""Settings of the support service (``SPINE_SUPPORT_*``; platform-wide ones from ``SPINE_*``)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from services.common.settings import ServiceSettings
from shared_backbone.data import DEFAULT_DATA_DIR


class SupportSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="SPINE_SUPPORT_", env_file=".env", extra="ignore", populate_by_name=True)

    kb_dir: Path = DEFAULT_DATA_DIR / "support_kb"
    max_message_chars: int = Field(default=2000, ge=1, le=20_000)
    oos_score: Literal["max_probability", "entropy"] = "max_probability"
    oos_threshold: float | None = Field(default=None, description="None: chosen on validation data at start-up")
    answer_threshold: float = Field(default=0.45, ge=0.0, le=1.0, description="below this top probability: hand off")
    clarify_margin: float = Field(default=0.2, ge=0.0, le=1.0, description="top-2 probabilities closer than this: ask")
    clarify_min_second: float = Field(default=0.3, ge=0.0, le=1.0, description="the runner-up must be at least this likely to be offered")
    passages_per_answer: int = Field(default=3, ge=0, le=10)
