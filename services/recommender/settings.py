"""Settings of the recommender service (``SPINE_RECOMMENDER_*``; platform-wide ones from ``SPINE_*``)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from services.common.settings import ServiceSettings
from shared_backbone.data import DEFAULT_DATA_DIR


class RecommenderSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="SPINE_RECOMMENDER_", env_file=".env", extra="ignore", populate_by_name=True)

    seed_dir: Path | None = Field(
        default=DEFAULT_DATA_DIR / "movielens_latest_small",
        description="MovieLens-shaped CSVs (movies.csv, ratings.csv, tags.csv) loaded into an empty database; None: start empty",
    )
    positive_threshold: float = Field(default=4.0, ge=0.0, le=5.0, description="a rating at or above this is a like")
    default_k: int = Field(default=10, ge=1, le=100)
    max_k: int = Field(default=100, ge=1, le=500)
    max_wish_chars: int = Field(default=500, ge=1, le=5000)
    max_title_chars: int = Field(default=300, ge=1, le=2000)
    half_life_days: float | None = Field(
        default=365.0, gt=0, description="recency half-life of a profile; None: every like counts the same"
    )
    text_weight: float = Field(default=0.3, ge=0.0, le=1.0, description="weight of the text profile against the collaborative score")
    candidates: int = Field(default=200, ge=10, le=5000, description="candidates drawn from each source before blending")
    diversity: float = Field(default=0.1, ge=0.0, le=1.0, description="MMR trade-off: 0 relevance only, 1 novelty only")
    ease_l2: float = Field(default=100.0, gt=0)
    text_neighbours: int = Field(default=10, ge=0, le=100, description="text neighbours joined into the collaborative model; 0: plain EASE")
    text_neighbour_weight: float = Field(default=1.0, ge=0.0, le=100.0)
    min_item_likes: int = Field(default=1, ge=1, description="items with fewer likes are left to the text model")
    ease_keep: int = Field(
        default=0, ge=0, le=100_000, description="strongest item-item weights kept per item (sparse); 0: the dense matrix"
    )
    ease_half_precision: bool = Field(
        default=True, description="hold the dense EASE matrix in float16: half its memory (76 MB of 151 MB on MovieLens)"
    )
    hnsw_above: int = Field(default=50_000, ge=1, description="catalogue size above which the index is HNSW instead of exact")
