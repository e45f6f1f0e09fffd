"""The Streamlit UI: one page per service, each talking to its service's HTTP API, plus the study's report and Ops.

Run with ``streamlit run apps/ui.py`` (``spine up`` starts it beside the services). Where each
service listens comes from ``SPINE_UI_*`` settings.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st
from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from apps.ops import page as ops_page
from homogenization.ui import page as homogenization_page
from services.recommender.ui import RecommenderApi
from services.recommender.ui import page as recommender_page
from services.sentiment.ui import SentimentApi
from services.sentiment.ui import page as sentiment_page
from services.support.ui import SupportApi
from services.support.ui import page as support_page
from shared_backbone.settings import PROJECT_ROOT


class UISettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SPINE_UI_", env_file=".env", extra="ignore")

    support_url: str = "http://127.0.0.1:8101"
    recommender_url: str = "http://127.0.0.1:8102"
    sentiment_url: str = "http://127.0.0.1:8103"
    backbone_urls: dict[str, str] = Field(default_factory=dict, description="backbone servers by process name (JSON); `spine up` sets it")
    deployment: str = Field(default="shared", validation_alias="SPINE_DEPLOYMENT")
    timeout_s: float = 30.0
    report_dirs: list[Path] = Field(
        default_factory=lambda: [PROJECT_ROOT / "reports", PROJECT_ROOT / "docs" / "homogenization"],
        description="where the Homogenization page looks for spine compare reports (JSON list)",
    )
    admin_api_key: SecretStr | None = Field(default=None, validation_alias=AliasChoices("admin_api_key", "SPINE_ADMIN_API_KEY"))

    def admin_key(self) -> str | None:
        return self.admin_api_key.get_secret_value() if self.admin_api_key else None

    def processes(self) -> dict[str, str]:
        return {**self.backbone_urls, "support": self.support_url, "recommender": self.recommender_url, "sentiment": self.sentiment_url}


@st.cache_resource
def _support_api(url: str, timeout_s: float) -> SupportApi:
    return SupportApi(url, timeout_s=timeout_s)


@st.cache_resource
def _recommender_api(url: str, timeout_s: float) -> RecommenderApi:
    return RecommenderApi(url, timeout_s=timeout_s)


@st.cache_resource
def _sentiment_api(url: str, timeout_s: float, admin_key: str | None) -> SentimentApi:
    return SentimentApi(url, timeout_s=timeout_s, admin_key=admin_key)


def main() -> None:
    settings = UISettings()
    st.set_page_config(page_title="Spine", page_icon="🦴", layout="wide")

    def support() -> None:
        support_page(_support_api(settings.support_url, settings.timeout_s))

    def recommendations() -> None:
        recommender_page(_recommender_api(settings.recommender_url, settings.timeout_s))

    def alerts() -> None:
        sentiment_page(_sentiment_api(settings.sentiment_url, settings.timeout_s, settings.admin_key()))

    def homogenization() -> None:
        homogenization_page(settings.report_dirs)

    def ops() -> None:
        ops_page(settings.deployment, settings.processes(), timeout_s=min(settings.timeout_s, 5.0))

    st.navigation(
        [
            st.Page(support, title="Support chat", icon="💬", url_path="support", default=True),
            st.Page(recommendations, title="Recommendations", icon="🎬", url_path="recommendations"),
            st.Page(alerts, title="Sentiment alerts", icon="📈", url_path="sentiment"),
            st.Page(homogenization, title="Homogenization", icon="🧬", url_path="homogenization"),
            st.Page(ops, title="Ops", icon="🛠️", url_path="ops"),
        ]
    ).run()


if __name__ == "__main__":
    main()
