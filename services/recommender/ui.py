"""The recommendations page (Streamlit): pick or create a viewer, see their list with reasons, react, wish.

Every reaction (like, not interested) is one ``POST /interactions``; the list is fetched again on the
rerun that follows, so it re-ranks at once. The page holds no model: it only calls the API.
"""

from __future__ import annotations

from typing import Any

import streamlit as st

from services.common.ui import ServiceApi, ServiceError

STATE = "recommender"
COLUMNS = 4


class RecommenderApi(ServiceApi):
    def users(self, limit: int = 30) -> list[dict[str, Any]]:
        return self.call("GET", "/users", params={"limit": limit})

    def create_user(self, name: str | None = None) -> dict[str, Any]:
        return self.call("POST", "/users", json={"name": name})

    def user(self, user_id: int) -> dict[str, Any]:
        return self.call("GET", f"/users/{user_id}")

    def recommendations(self, user_id: int, k: int, genres: list[str], diversity: float) -> dict[str, Any]:
        params: dict[str, Any] = {"k": k, "diversity": diversity}
        if genres:
            params["genres"] = ",".join(genres)
        return self.call("GET", f"/users/{user_id}/recommendations", params=params)

    def wish(self, text: str, k: int, user_id: int | None) -> dict[str, Any]:
        return self.call("POST", "/recommendations/query", json={"text": text, "k": k, "user_id": user_id})

    def genres(self) -> list[str]:
        return self.call("GET", "/genres")

    def find_items(self, title: str, limit: int = 8) -> list[dict[str, Any]]:
        return self.call("GET", "/items", params={"title": title, "limit": limit})

    def interact(self, user_id: int, item_id: int, kind: str) -> dict[str, Any]:
        return self.call("POST", "/interactions", json={"user_id": user_id, "item_id": item_id, "kind": kind})


def _state() -> dict[str, Any]:
    if STATE not in st.session_state:
        st.session_state[STATE] = {"user_id": None, "error": None, "notice": None}
    return st.session_state[STATE]


def react(api: RecommenderApi, item: dict[str, Any], kind: str) -> None:
    state = _state()
    try:
        api.interact(state["user_id"], item["item_id"], kind)
    except ServiceError as exc:
        state["error"] = str(exc)
        return
    verb = "Liked" if kind == "like" else "Won't show again:"
    state["notice"] = f"{verb} {item['title']}"


def new_viewer(api: RecommenderApi) -> None:
    state = _state()
    try:
        state["user_id"] = api.create_user()["user_id"]
    except ServiceError as exc:
        state["error"] = str(exc)


def _grid(api: RecommenderApi, items: list[dict[str, Any]], key: str, reactions: bool) -> None:
    for start in range(0, len(items), COLUMNS):
        for column, item in zip(st.columns(COLUMNS), items[start : start + COLUMNS], strict=False):
            with column.container(border=True):
                st.markdown(f"**{item['title']}**")
                st.caption(" · ".join(item["genres"]) or "no genres")
                if item.get("reason"):
                    st.caption(f"_{item['reason']}_")
                if reactions:
                    left, right = st.columns(2)
                    left.button("👍 Like", key=f"{key}-like-{item['item_id']}", on_click=react, args=(api, item, "like"))
                    right.button("🚫 Not for me", key=f"{key}-dismiss-{item['item_id']}", on_click=react, args=(api, item, "dismiss"))


def _sidebar(api: RecommenderApi, state: dict[str, Any]) -> None:
    with st.sidebar:
        try:
            viewers = api.users()
            health = api.health()
            st.caption(f"backbone `{health.get('backbone', '?')}` · {health.get('items', '?'):,} films")
        except ServiceError as exc:
            st.error(str(exc))
            return
        options = [v["user_id"] for v in viewers]
        if state["user_id"] is not None and state["user_id"] not in options:
            options.insert(0, state["user_id"])
        likes = {v["user_id"]: v["likes"] for v in viewers}
        if options:
            chosen = st.selectbox(
                "Viewer",
                options,
                index=options.index(state["user_id"]) if state["user_id"] in options else 0,
                format_func=lambda u: f"viewer {u} · {likes.get(u, 0)} likes",
            )
            state["user_id"] = chosen
        st.button("New viewer", on_click=new_viewer, args=(api,))


def page(api: RecommenderApi) -> None:
    """Render the viewer's recommendations, a wish box and a film picker for new viewers."""
    state = _state()
    st.title("Recommendations")
    _sidebar(api, state)
    if state["notice"]:
        st.success(state["notice"])
        state["notice"] = None
    user_id = state["user_id"]
    wish = st.text_input("Describe what you'd like to watch", placeholder="a funny space adventure", max_chars=500)
    if wish.strip():
        try:
            found = api.wish(wish, 8, user_id)
            st.subheader("For your wish")
            _grid(api, found["items"], "wish", reactions=user_id is not None)
        except ServiceError as exc:
            st.error(str(exc))
    if user_id is None:
        st.info("Pick a viewer in the sidebar, or create a new one, to see their recommendations.")
        return
    left, right = st.columns([3, 1])
    try:
        known_genres = api.genres()
    except ServiceError:
        known_genres = []
    genres = left.multiselect("Only these genres", known_genres, key="recommender-genres")
    diversity = right.slider("Variety", 0.0, 1.0, 0.1, 0.1, help="0: most likely first; higher: more varied lists")
    try:
        listing = api.recommendations(user_id, 12, genres, diversity)
    except ServiceError as exc:
        st.error(str(exc))
        return
    if listing["cold_start"]:
        st.info("New here? Like a few films below, or describe a wish above: the list adapts at once.")
        title = st.text_input("Find a film you like", key="recommender-find")
        if title.strip():
            try:
                _grid(api, api.find_items(title), "find", reactions=True)
            except ServiceError as exc:
                st.error(str(exc))
    st.subheader("Popular with viewers" if listing["cold_start"] else f"For viewer {user_id}")
    _grid(api, listing["items"], "list", reactions=True)
    if state["error"]:
        st.error(state["error"])
        state["error"] = None
