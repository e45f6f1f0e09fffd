"""The Ops page: quantiles from Prometheus buckets, one row per process, and a page that survives a dead process."""

from __future__ import annotations

import math

import pytest
from fastapi.testclient import TestClient

from apps.ops import collect, histogram_quantile, inspect, summarise_metrics
from shared_backbone.server import BackboneServerSettings, create_backbone_app
from shared_backbone.settings import BackboneSettings


def test_histogram_quantile_interpolates_inside_the_bucket_like_promql() -> None:
    buckets = [(0.01, 5.0), (0.02, 10.0), (math.inf, 10.0)]
    assert histogram_quantile(buckets, 0.5) == pytest.approx(0.01)
    assert histogram_quantile(buckets, 0.75) == pytest.approx(0.015)  # rank 7.5: half-way through (0.01, 0.02]
    assert histogram_quantile([(0.01, 0.0), (math.inf, 4.0)], 0.5) == pytest.approx(0.01)  # all beyond the last bound
    assert histogram_quantile([(0.01, 0.0), (math.inf, 0.0)], 0.5) is None


def test_summarise_metrics_adds_every_route_and_reads_memory() -> None:
    text = "\n".join(
        [
            "# TYPE process_resident_memory_bytes gauge",
            "process_resident_memory_bytes 104857600.0",
            "# TYPE spine_http_request_seconds histogram",
            'spine_http_request_seconds_bucket{route="/a",service="s",le="0.01"} 2.0',
            'spine_http_request_seconds_bucket{route="/a",service="s",le="+Inf"} 2.0',
            'spine_http_request_seconds_count{route="/a",service="s"} 2.0',
            'spine_http_request_seconds_sum{route="/a",service="s"} 0.01',
            'spine_http_request_seconds_bucket{route="/b",service="s",le="0.01"} 0.0',
            'spine_http_request_seconds_bucket{route="/b",service="s",le="+Inf"} 2.0',
            'spine_http_request_seconds_count{route="/b",service="s"} 2.0',
            'spine_http_request_seconds_sum{route="/b",service="s"} 0.5',
        ]
    )
    rss, requests, p50, p95 = summarise_metrics(text + "\n")
    assert rss == pytest.approx(100.0) and requests == 4
    assert p50 == pytest.approx(10.0) and p95 == pytest.approx(10.0)  # half the requests under 10 ms, the rest beyond the last bound


def test_a_backbone_server_and_a_dead_process_each_get_a_row(trained_shared: BackboneSettings) -> None:
    settings = BackboneServerSettings(artifact="shared-smoke", backbone=trained_shared.model_copy(update={"embedding_cache": False}))
    with TestClient(create_backbone_app(settings)) as server:
        server.post("/v1/embeddings", json={"input": ["hello", "world"]})
        row = inspect("backbone", "http://testserver", server)
    assert row.status == "ok" and row.backbone == "shared-smoke" and row.rss_mb and row.rss_mb > 10
    assert row.requests >= 1 and row.p50_ms is not None
    [dead] = collect({"support": "http://127.0.0.1:9"}, timeout_s=1)
    assert dead.status == "unreachable" and dead.rss_mb is None and dead.detail


def test_ops_page_renders_with_every_process_down() -> None:
    from streamlit.testing.v1 import AppTest

    def ops_page() -> None:
        from apps.ops import page

        page("per-domain", {"backbone-support": "http://127.0.0.1:9", "support": "http://127.0.0.1:9"}, timeout_s=1)

    app = AppTest.from_function(ops_page, default_timeout=30)
    app.run()
    assert not app.exception and app.title[0].value == "Ops"
    assert app.metric[0].value == "per-domain" and app.metric[2].value == "0 / 2"
    assert list(app.dataframe[0].value["status"]) == ["unreachable", "unreachable"]
