"""The sentiment monitor's HTTP API: push, documents, trends, subscriptions, alerts, sources, bad input."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sentiment_fakes import KeywordClient
from test_sentiment_monitor import base_texts, replay_config

from services.sentiment.app import create_app
from services.sentiment.settings import SentimentSettings
from shared_backbone.settings import BackboneSettings

ADMIN = {"X-Admin-Key": "s3cret"}


@pytest.fixture
def api(tmp_path: Path) -> Iterator[TestClient]:
    settings = SentimentSettings(
        database_url=f"sqlite:///{tmp_path / 'sentiment.db'}",
        backbone=BackboneSettings(artifacts_dir=tmp_path / "artifacts"),
        admin_api_key="s3cret",
        scheduler=False,
        demo_replay=False,
        max_document_chars=200,
        ticker_names={"tesla": "TSLA"},
    )
    with TestClient(create_app(settings, KeywordClient())) as client:
        yield client


def test_push_then_filter_documents(api: TestClient) -> None:
    docs = [
        {"text": "Tesla earnings miss, shares plunge", "published_at": "2026-03-02T10:00:00Z", "url": "https://news/1"},
        {"text": "Oil soars on supply cut", "published_at": "2026-03-02T11:00:00Z"},
        {"text": "oil SOARS on supply cut"},
        {"text": "y" * 300},
    ]
    report = api.post("/documents", json={"documents": docs}, headers=ADMIN).json()
    assert (report["stored"], report["duplicates"], report["rejected"]) == (2, 1, 1) and report["reasons"] == {"oversized": 1}
    tesla = api.get("/documents", params={"ticker": "$tsla"}).json()
    assert len(tesla) == 1 and tesla[0]["sentiment"] == "bearish" and tesla[0]["topic"] == "Earnings" and tesla[0]["tickers"] == ["TSLA"]
    assert [d["topic"] for d in api.get("/documents", params={"sentiment": "bullish"}).json()] == ["Energy | Oil"]
    assert api.get("/documents", params={"since": "2026-03-02T10:30:00Z"}).json()[0]["text"] == "Oil soars on supply cut"


def test_trends_alerts_and_acknowledgement_after_a_replay(api: TestClient) -> None:
    api.app.state.monitor.replay_texts = base_texts()
    assert api.post("/sources", json={"name": "replay", "kind": "replay", "config": replay_config()}).status_code == 403
    made = api.post("/sources", json={"name": "replay", "kind": "replay", "config": replay_config(), "interval_s": 0}, headers=ADMIN)
    assert made.status_code == 201 and made.json()["kind"] == "replay"
    while api.post("/sources/replay/run", headers=ADMIN).json()["fetched"]:
        pass
    feed = api.get("/alerts").json()
    assert len(feed) == 1 and feed[0]["key"] == "topic:Earnings" and feed[0]["evidence"]
    trend = api.get("/trends", params={"topic": "Earnings", "windows": 24}).json()
    points = trend["series"]["topic:Earnings"]
    assert trend["window_minutes"] == 60 and max(p["share_negative"] for p in points) > 0.5
    acked = api.post(f"/alerts/{feed[0]['id']}/ack", headers=ADMIN).json()
    again = api.post(f"/alerts/{feed[0]['id']}/ack", headers=ADMIN).json()
    assert acked["acknowledged_at"] is not None and again["acknowledged_at"] == acked["acknowledged_at"]
    assert api.get("/alerts", params={"acknowledged": False}).json() == []
    assert api.post("/alerts/999/ack", headers=ADMIN).status_code == 404
    listed = api.get("/sources", headers=ADMIN).json()
    assert {s["name"] for s in listed} == {"push", "replay"} and listed[1]["counts"]["stored"] == 24 * 60 + 30
    assert api.get("/health").json()["open_alerts"] == 0


def test_subscriptions(api: TestClient) -> None:
    made = api.post(
        "/subscriptions", json={"name": "desk", "topics": ["Earnings"], "tickers": ["$tsla"], "email": "ana@example.com"}, headers=ADMIN
    )
    assert made.status_code == 201 and made.json()["tickers"] == ["TSLA"]
    assert [s["name"] for s in api.get("/subscriptions").json()] == ["desk"]


@pytest.mark.parametrize(
    ("method", "path", "body", "code", "detail"),
    [
        ("post", "/documents", {"documents": []}, 422, "documents"),
        ("post", "/documents", {"documents": [{"text": "x"}] * 501}, 422, "documents"),
        ("post", "/documents", {"documents": [{"title": "no text"}]}, 422, "text"),
        ("post", "/subscriptions", {"name": "x", "topics": ["Astrology"]}, 422, "unknown topic(s) ['Astrology']"),
        ("post", "/subscriptions", {"name": "x", "email": "not-an-address"}, 422, "email"),
        ("post", "/subscriptions", {"name": "x", "tickers": ["TOO-LONG-TICKER"]}, 422, "tickers"),
        ("post", "/subscriptions", {"name": "x", "webhook_url": "ftp://example.com"}, 422, "webhook_url"),
        ("get", "/trends?topic=Earnings&ticker=TSLA", None, 422, "not both"),
        ("post", "/sources/nothing/run", None, 404, "no source 'nothing'"),
    ],
)
def test_bad_input_is_a_clear_4xx(api: TestClient, method: str, path: str, body: dict | None, code: int, detail: str) -> None:
    response = api.request(method.upper(), path, json=body, headers=ADMIN)
    assert response.status_code == code and detail in response.json()["detail"]


def test_bad_source_configuration_is_a_4xx(api: TestClient) -> None:
    response = api.post("/sources", json={"name": "f", "kind": "feed", "config": {"url": "gopher://x"}}, headers=ADMIN)
    assert response.status_code == 400 and "url" in response.json()["detail"]
    assert api.post("/sources", json={"name": "bad name!", "kind": "feed"}, headers=ADMIN).status_code == 422


def _sentiment_page(api: object) -> None:
    from services.sentiment.ui import page

    page(api, refresh_s=None)  # type: ignore[arg-type]


def test_ui_page_charts_trends_lists_alerts_and_acknowledges(api: TestClient) -> None:
    from streamlit.testing.v1 import AppTest

    from services.sentiment.ui import SentimentApi

    api.app.state.monitor.replay_texts = base_texts()
    api.post("/sources", json={"name": "replay", "kind": "replay", "config": replay_config(), "interval_s": 0}, headers=ADMIN)
    while api.post("/sources/replay/run", headers=ADMIN).json()["fetched"]:
        pass
    app = AppTest.from_function(
        _sentiment_page, args=(SentimentApi("http://testserver", admin_key="s3cret", http=api),), default_timeout=30
    )
    app.run()
    assert not app.exception
    assert app.get("line_chart") or app.get("vega_lite_chart") or app.get("arrow_vega_lite_chart")  # a chart, not a table
    assert any("Earnings" in m.value and "negative" in m.value for m in app.markdown)
    alert_id = api.get("/alerts").json()[0]["id"]
    app.button(key=f"ack-{alert_id}").click().run()
    assert api.get("/alerts").json()[0]["acknowledged_at"] is not None
    app.selectbox[1].set_value("bearish").run()
    assert not app.exception and len(app.dataframe) == 1
    app.text_input[1].input("desk")
    app.button[-1].click().run()
    assert [s["name"] for s in api.get("/subscriptions").json()] == ["desk"]


def test_trend_frame_pivots_topics_into_columns() -> None:
    from services.sentiment.ui import trend_frame

    trends = {
        "window_minutes": 60,
        "series": {
            "topic:Earnings": [
                {"start": "2026-01-01T00:00:00+00:00", "share_negative": 0.1},
                {"start": "2026-01-01T01:00:00+00:00", "share_negative": 0.7},
            ],
            "topic:Macro": [{"start": "2026-01-01T01:00:00+00:00", "share_negative": 0.2}],
            "ticker:TSLA": [{"start": "2026-01-01T01:00:00+00:00", "share_negative": 0.9}],
        },
    }
    frame = trend_frame(trends)
    assert list(frame.columns) == ["Earnings", "Macro"] and frame["Earnings"].tolist() == [0.1, 0.7]
    assert frame["Macro"].isna().tolist() == [True, False]


@pytest.mark.parametrize(
    ("method", "path", "body", "code", "detail"),
    [
        ("post", "/documents", {"documents": [{"text": "x", "published_at": "0001-01-01T00:00:00Z"}]}, 422, "time"),
        ("post", "/documents", {"documents": [{"text": "x", "published_at": "2999-01-01T00:00:00Z"}]}, 422, "time"),
        ("get", "/documents?since=0001-01-01T00:00:00%2B01:00", None, 422, "since"),
        ("get", "/trends?since=0001-01-01T00:00:00%2B01:00", None, 422, "since"),
        ("post", "/alerts/999999999999999999999999999999/ack", None, 422, "alert_id"),
        ("post", "/sources", {"name": "r", "kind": "replay", "config": {"texts": 5}}, 400, "replay configuration"),
        ("post", "/sources", {"name": "r", "kind": "replay", "config": {"texts": ["a"], "spacing_s": 1e308}}, 400, "replay configuration"),
        ("post", "/sources", {"name": "push", "kind": "folder", "config": {"folder": "/tmp"}}, 400, "built-in"),
    ],
)
def test_out_of_range_input_is_a_4xx_not_a_500(api: TestClient, method: str, path: str, body: dict | None, code: int, detail: str) -> None:
    response = api.request(method.upper(), path, json=body, headers=ADMIN)
    assert response.status_code == code and detail in response.json()["detail"], response.text


def test_webhook_urls_are_not_listed_in_full(api: TestClient) -> None:
    api.post("/subscriptions", json={"name": "slack", "webhook_url": "https://hooks.example.com/services/T000/B000/secret"}, headers=ADMIN)
    listed = api.get("/subscriptions").json()[0]
    assert listed["webhook"] == "https://hooks.example.com/..." and "secret" not in str(listed)


def test_an_unusable_database_leaves_the_service_up_and_unavailable(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the database's folder should be", encoding="utf-8")
    settings = SentimentSettings(
        database_url=f"sqlite:///{blocker / 'sentiment.db'}",
        backbone=BackboneSettings(artifacts_dir=tmp_path / "artifacts"),
        scheduler=False,
        demo_replay=False,
    )
    with TestClient(create_app(settings, KeywordClient())) as api:
        health = api.get("/health")
        assert health.status_code == 503 and "database unavailable" in health.json()["error"]
        assert api.get("/alerts").status_code == 503


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/documents", {"documents": [{"text": "$TSLA shares plunge"}]}),
        ("/subscriptions", {"name": "desk"}),
        ("/alerts/1/ack", None),
    ],
)
def test_write_routes_need_the_admin_key(api: TestClient, path: str, body: dict | None) -> None:
    for headers in ({}, {"X-Admin-Key": "wrong"}):
        response = api.post(path, json=body, headers=headers)
        assert response.status_code == 403 and "X-Admin-Key" in response.json()["detail"]
    assert api.get("/documents").json() == [] and api.get("/subscriptions").json() == []  # nothing was written


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:9000/hook",
        "http://localhost/hook",
        "http://10.1.2.3/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]/hook",
        "http://[::ffff:192.168.0.1]/hook",
        "http://0.0.0.0/hook",
    ],
)
def test_webhooks_to_private_addresses_are_refused(api: TestClient, url: str) -> None:
    response = api.post("/subscriptions", json={"name": "internal", "webhook_url": url}, headers=ADMIN)
    assert response.status_code == 422 and "public addresses only" in response.json()["detail"]
    assert api.get("/subscriptions").json() == []
