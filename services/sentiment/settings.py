"""Settings of the sentiment monitor (``SPINE_SENTIMENT_*``; platform-wide ones from ``SPINE_*``)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from services.common.settings import ServiceSettings


class SentimentSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="SPINE_SENTIMENT_", env_file=".env", extra="ignore", populate_by_name=True)

    drop_dir: Path | None = Field(default=None, description="folder of JSONL/CSV files to ingest; None: no drop-folder source")
    max_document_chars: int = Field(default=5000, ge=10, le=100_000, description="longer documents are rejected and counted")
    batch_size: int = Field(default=64, ge=1, le=1024, description="documents scored per backbone call")
    fetch_limit: int = Field(default=500, ge=1, le=100_000, description="documents one source run reads at most")
    feed_timeout_s: float = Field(default=10.0, gt=0, le=120)
    feed_max_bytes: int = Field(default=5 * 1024 * 1024, ge=1024, description="a bigger feed is refused unread")
    ticker_names: dict[str, str] = Field(
        default_factory=lambda: {"tesla": "TSLA", "apple": "AAPL", "microsoft": "MSFT", "amazon": "AMZN", "nvidia": "NVDA"},
        description="company name (lower case) -> ticker, besides $CASHTAGS",
    )
    # surge detection
    window_minutes: int = Field(default=60, ge=1, le=7 * 24 * 60, description="width of one detection window")
    ewma_alpha: float = Field(default=0.1, gt=0, le=1, description="weight of the newest window in the trailing baseline")
    z_threshold: float = Field(default=3.5, gt=0, description="negative share this many deviations above the baseline rate: surge")
    extra_std: float = Field(default=0.05, ge=0, le=1, description="share deviation allowed beyond binomial noise (news cycles)")
    min_volume: int = Field(default=10, ge=1, description="windows with fewer documents never alert")
    min_share_rise: float = Field(default=0.3, ge=0, le=1, description="and the negative share must be at least this much above baseline")
    warm_up_windows: int = Field(default=6, ge=1, description="windows of history before a key may alert")
    cooldown_minutes: int = Field(default=180, ge=0, description="after an alert, the same topic or ticker is quiet this long")
    history_windows: int = Field(default=72, ge=2, le=10_000, description="windows of history the detector scans per run")
    # delivery
    delivery_interval_s: int = Field(default=30, ge=1, description="how often pending webhooks and e-mails are sent")
    delivery_attempts: int = Field(default=5, ge=1, le=20)
    retry_base_s: float = Field(default=30.0, gt=0, description="first retry after this, doubling each time")
    webhook_timeout_s: float = Field(default=5.0, gt=0, le=60)
    allow_private_webhooks: bool = Field(
        default=False, description="let webhooks reach loopback and private addresses (a receiver inside your own network)"
    )
    smtp_host: str = "localhost"
    smtp_port: int = Field(default=25, ge=1, le=65535)
    smtp_sender: str = "spine-alerts@localhost"
    smtp_user: str | None = None
    smtp_password: SecretStr | None = None
    smtp_starttls: bool = False
    scheduler: bool = Field(default=True, description="run the APScheduler jobs in this process")
    demo_replay: bool = Field(default=True, description="on first start, add a replay of the vendored test set with one injected surge")
