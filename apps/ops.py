"""The Ops page: which deployment runs, which backbone serves each service, and what each process costs.

Everything comes from the processes' own ``/health`` and ``/metrics`` over HTTP, so the page shows a
local ``spine up``, a compose stack or a remote deployment the same way.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import httpx
from prometheus_client.parser import text_string_to_metric_families

LATENCY_FAMILIES = ("spine_http_request_seconds", "spine_backbone_request_seconds")


@dataclass(frozen=True)
class ProcessReport:
    name: str
    url: str
    status: str
    backbone: str
    rss_mb: float | None
    requests: int
    p50_ms: float | None
    p95_ms: float | None
    detail: str = ""


def histogram_quantile(buckets: list[tuple[float, float]], q: float) -> float | None:
    """The q-quantile from cumulative ``(upper bound, count)`` buckets, interpolated inside its bucket (as PromQL does)."""
    buckets = sorted(buckets)
    if not buckets or buckets[-1][1] <= 0:
        return None
    rank = q * buckets[-1][1]
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            if math.isinf(bound):
                return lower_bound  # beyond the last finite bucket: its bound is the best claim we can make
            share = (rank - lower_count) / (count - lower_count) if count > lower_count else 1.0
            return lower_bound + (bound - lower_bound) * share
        lower_bound, lower_count = bound, count
    return None


def summarise_metrics(text: str) -> tuple[float | None, int, float | None, float | None]:
    """Resident memory (MB), request count and p50/p95 latency (ms) over every route of one process."""
    rss = None
    buckets: dict[float, float] = {}
    requests = 0
    for family in text_string_to_metric_families(text):
        if family.name == "process_resident_memory_bytes":
            rss = family.samples[0].value / 2**20 if family.samples else None
        if family.name in LATENCY_FAMILIES:
            for sample in family.samples:
                if sample.name.endswith("_bucket"):
                    bound = float(sample.labels["le"])
                    buckets[bound] = buckets.get(bound, 0.0) + sample.value
                elif sample.name.endswith("_count"):
                    requests += int(sample.value)
    pairs = list(buckets.items())
    p50, p95 = histogram_quantile(pairs, 0.5), histogram_quantile(pairs, 0.95)
    return rss, requests, p50 * 1000 if p50 is not None else None, p95 * 1000 if p95 is not None else None


def inspect(name: str, url: str, http: httpx.Client) -> ProcessReport:
    """One process's health and cost; an unreachable process is a row that says so, not an error."""
    try:
        health_response = http.get(f"{url}/health")
        metrics_response = http.get(f"{url}/metrics")
    except httpx.HTTPError as exc:
        return ProcessReport(name, url, "unreachable", "", None, 0, None, None, type(exc).__name__)
    try:
        health = health_response.json()
    except ValueError:
        health = {}
    backbone = health.get("backbone") or health.get("artifact_id") or ""
    if health.get("backbone_url"):
        backbone = f"{backbone} via {health['backbone_url']}"
    rss, requests, p50, p95 = summarise_metrics(metrics_response.text) if metrics_response.status_code == 200 else (None, 0, None, None)
    return ProcessReport(name, url, str(health.get("status", "unknown")), backbone, rss, requests, p50, p95, str(health.get("error") or ""))


def collect(processes: dict[str, str], timeout_s: float = 3.0) -> list[ProcessReport]:
    with httpx.Client(timeout=timeout_s) as http:
        return [inspect(name, url, http) for name, url in processes.items()]


def page(deployment: str, processes: dict[str, str], timeout_s: float = 3.0) -> None:
    import streamlit as st

    st.title("Ops")
    reports = collect(processes, timeout_s)
    servers = [r for r in reports if r.name.startswith("backbone")]
    known_rss = [r.rss_mb for r in reports if r.rss_mb is not None]
    cols = st.columns(4)
    cols[0].metric("deployment", deployment)
    cols[1].metric("backbone servers", len(servers) or "in-process")
    cols[2].metric("processes up", f"{sum(r.status == 'ok' for r in reports)} / {len(reports)}")
    cols[3].metric("total RSS", f"{sum(known_rss):,.0f} MB" if known_rss else "n/a")
    rows = [
        {
            "process": r.name,
            "status": r.status,
            "backbone": r.backbone,
            "RSS MB": None if r.rss_mb is None else round(r.rss_mb),
            "requests": r.requests,
            "p50 ms": None if r.p50_ms is None else round(r.p50_ms, 1),
            "p95 ms": None if r.p95_ms is None else round(r.p95_ms, 1),
            "url": r.url,
            "note": r.detail,
        }
        for r in reports
    ]
    st.dataframe(rows, hide_index=True, use_container_width=True)
    st.caption("Latency percentiles are estimated from each process's Prometheus histogram since it started.")
    if st.button("Refresh"):
        st.rerun()
