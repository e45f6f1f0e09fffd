"""The sentiment alerts page (Streamlit): trend lines per topic, the live alert feed, documents, subscriptions.

It only calls the monitor's API; "live" means the page refreshes itself every few seconds
(``st.fragment(run_every=...)``), so a new alert shows up without a click.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from services.common.ui import ServiceApi, ServiceError

SENTIMENTS = ("bearish", "neutral", "bullish")


class SentimentApi(ServiceApi):
    def trends(self, topic: str | None = None, windows: int = 48) -> dict[str, Any]:
        params: dict[str, Any] = {"windows": windows}
        if topic:
            params["topic"] = topic
        return self.call("GET", "/trends", params=params)

    def alerts(self, limit: int = 20) -> list[dict[str, Any]]:
        return self.call("GET", "/alerts", params={"limit": limit})

    def acknowledge(self, alert_id: int) -> dict[str, Any]:
        return self.call("POST", f"/alerts/{alert_id}/ack")

    def documents(self, topic: str | None, ticker: str | None, sentiment: str | None, limit: int = 100) -> list[dict[str, Any]]:
        params = {k: v for k, v in {"topic": topic, "ticker": ticker, "sentiment": sentiment, "limit": limit}.items() if v}
        return self.call("GET", "/documents", params=params)

    def subscriptions(self) -> list[dict[str, Any]]:
        return self.call("GET", "/subscriptions")

    def subscribe(self, body: dict[str, Any]) -> dict[str, Any]:
        return self.call("POST", "/subscriptions", json=body)


def trend_frame(trends: dict[str, Any], measure: str = "share_negative") -> pd.DataFrame:
    """One column per topic, one row per window: what ``st.line_chart`` draws."""
    frame = pd.DataFrame(
        {
            key.removeprefix("topic:"): {p["start"]: p[measure] for p in points}
            for key, points in trends["series"].items()
            if key.startswith("topic:")
        }
    )
    if not frame.empty:
        frame.index = pd.to_datetime(frame.index)
    return frame.sort_index()


def _acknowledge(api: SentimentApi, alert_id: int) -> None:
    try:
        api.acknowledge(alert_id)
    except ServiceError as exc:
        st.session_state["sentiment-error"] = str(exc)


def _feed(api: SentimentApi) -> None:
    st.subheader("Alerts")
    try:
        feed = api.alerts()
    except ServiceError as exc:
        st.error(str(exc))
        return
    if not feed:
        st.caption("No alerts yet.")
    for alert in feed:
        what = alert["key"].replace(":", ": ", 1)
        title = f"{'🔴' if alert['severity'] == 'high' else '🟠'} {what} · {alert['share_negative']:.0%} negative (usually {alert['baseline_share']:.0%})"
        with st.container(border=True):
            st.markdown(f"**{title}**")
            st.caption(f"window from {alert['window_start'][:16].replace('T', ' ')} UTC · {alert['volume']} documents · z {alert['z']}")
            for item in alert["evidence"][:3]:
                st.markdown(f"- {item['text']}")
            if alert["acknowledged_at"]:
                st.caption(f"acknowledged {alert['acknowledged_at'][:16].replace('T', ' ')}")
            else:
                st.button("Acknowledge", key=f"ack-{alert['id']}", on_click=_acknowledge, args=(api, alert["id"]))


def _subscription_form(api: SentimentApi, topics: list[str]) -> None:
    with st.form("sentiment-subscribe", clear_on_submit=True):
        st.markdown("**Subscribe**")
        name = st.text_input("Name")
        chosen = st.multiselect("Topics (none: all)", topics)
        tickers = st.text_input("Tickers, comma-separated", placeholder="TSLA, AAPL")
        webhook = st.text_input("Webhook URL (optional)")
        email = st.text_input("E-mail (optional)")
        if st.form_submit_button("Subscribe"):
            body = {"name": name, "topics": chosen, "tickers": [t.strip() for t in tickers.split(",") if t.strip()]}
            body |= {k: v.strip() for k, v in {"webhook_url": webhook, "email": email}.items() if v.strip()}
            try:
                made = api.subscribe(body)
                st.success(f"Subscribed '{made['name']}'")
            except ServiceError as exc:
                st.error(str(exc))


def page(api: SentimentApi, refresh_s: float | None = 10.0) -> None:
    """Render the monitor: chart and feed refresh on their own every ``refresh_s`` seconds."""
    st.title("Sentiment alerts")
    if st.session_state.get("sentiment-error"):
        st.error(st.session_state.pop("sentiment-error"))

    @st.fragment(run_every=refresh_s)
    def live() -> None:
        try:
            trends = api.trends()
        except ServiceError as exc:
            st.error(str(exc))
            return
        frame = trend_frame(trends)
        st.subheader(f"Share of negative news per topic ({trends['window_minutes']}-minute windows)")
        if frame.empty:
            st.caption("No documents yet.")
        else:
            st.line_chart(frame)
        _feed(api)

    live()
    st.subheader("Documents")
    try:
        topics = sorted({key.removeprefix("topic:") for key in api.trends()["series"] if key.startswith("topic:")})
    except ServiceError:
        topics = []
    left, middle, right = st.columns(3)
    topic = left.selectbox("Topic", ["(all)", *topics])
    ticker = middle.text_input("Ticker", placeholder="TSLA")
    sentiment = right.selectbox("Sentiment", ["(all)", *SENTIMENTS])
    try:
        rows = api.documents(None if topic == "(all)" else topic, ticker.strip() or None, None if sentiment == "(all)" else sentiment)
        table = pd.DataFrame(rows, columns=["published_at", "sentiment", "score", "topic", "tickers", "text"])
        st.dataframe(table, hide_index=True, use_container_width=True)
    except ServiceError as exc:
        st.error(str(exc))
    _subscription_form(api, topics)
