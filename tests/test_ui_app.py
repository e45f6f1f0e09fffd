"""The Streamlit entry point renders its navigation and the support page, even with the API down."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from shared_backbone.settings import PROJECT_ROOT


def test_ui_app_renders_and_reports_an_unreachable_support_api(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPINE_UI_SUPPORT_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("SPINE_UI_TIMEOUT_S", "2")
    app = AppTest.from_file(str(PROJECT_ROOT / "apps" / "ui.py"), default_timeout=60)
    app.run()
    assert not app.exception
    assert app.title[0].value == "Support"
    assert any("not reachable" in e.value for e in app.sidebar.error)
