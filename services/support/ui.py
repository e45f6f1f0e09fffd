"""The support chat page (Streamlit): the customer's conversation, talking to the support API.

Intent and confidence are shown small, under each reply, for the curious; sources are links to the
articles; quick replies are buttons; a hand-off is a visible banner with its ticket number.
"""

from __future__ import annotations

from typing import Any

import streamlit as st

from services.common.ui import ServiceApi, ServiceError

STATE = "support"
RATINGS = ("down", "up")  # st.feedback("thumbs") gives 0 for down, 1 for up


class SupportApi(ServiceApi):
    def chat(self, message: str, session_id: str | None) -> dict[str, Any]:
        body: dict[str, Any] = {"message": message}
        if session_id:
            body["session_id"] = session_id
        return self.call("POST", "/chat", json=body)

    def feedback(self, session_id: str, turn_id: int, rating: str, comment: str | None = None) -> dict[str, Any]:
        return self.call("POST", "/feedback", json={"session_id": session_id, "turn_id": turn_id, "rating": rating, "comment": comment})


def _state() -> dict[str, Any]:
    if STATE not in st.session_state:
        st.session_state[STATE] = {"session_id": None, "messages": [], "error": None}
    return st.session_state[STATE]


def send(api: SupportApi, text: str) -> None:
    state = _state()
    state["error"] = None
    try:
        reply = api.chat(text, state["session_id"])
    except ServiceError as exc:
        state["error"] = str(exc)
        return
    state["session_id"] = reply["session_id"]
    state["messages"] += [{"role": "user", "text": text}, {"role": "assistant", **reply}]


def _rate(api: SupportApi, turn_id: int) -> None:
    state = _state()
    value = st.session_state.get(f"support-rating-{turn_id}")
    if value is None or state["session_id"] is None:
        return
    comment = st.session_state.get(f"support-comment-{turn_id}") or None
    try:
        api.feedback(state["session_id"], turn_id, RATINGS[value], comment)
    except ServiceError as exc:
        state["error"] = str(exc)


def _reply(api: SupportApi, message: dict[str, Any], latest: bool) -> None:
    st.markdown(message["reply"])
    if message.get("handoff_ticket"):
        st.warning(f"Handed to a person: ticket #{message['handoff_ticket']}. A member of the team will answer in this chat.", icon="🙋")
    if message.get("sources"):
        links = [f"[{s['title']}]({api.link(s['url'])}?format=text)" for s in message["sources"]]
        st.markdown("Sources: " + " · ".join(links))
    if message.get("intent"):
        confidence = message.get("confidence")
        st.caption(f"intent `{message['intent']}`" + (f" · confidence {confidence:.0%}" if confidence is not None else ""))
    if latest and message.get("quick_replies"):
        columns = st.columns(len(message["quick_replies"]))
        for column, option in zip(columns, message["quick_replies"], strict=True):
            column.button(option, key=f"support-quick-{message['turn_id']}-{option}", on_click=send, args=(api, option))
    turn_id = message["turn_id"]
    st.feedback("thumbs", key=f"support-rating-{turn_id}", on_change=_rate, args=(api, turn_id))
    if st.session_state.get(f"support-rating-{turn_id}") == 0:
        st.text_input("What went wrong? (optional)", key=f"support-comment-{turn_id}", on_change=_rate, args=(api, turn_id))


def page(api: SupportApi) -> None:
    """Render the chat; each submitted message is one ``POST /chat``."""
    state = _state()
    st.title("Support")
    with st.sidebar:
        if st.button("New conversation"):
            state.update(session_id=None, messages=[], error=None)
        if state["session_id"]:
            st.caption(f"session `{state['session_id']}`")
        try:
            health = api.health()
            st.caption(f"backbone `{health.get('backbone', '?')}` · {health.get('articles', '?')} articles")
        except ServiceError as exc:
            st.error(str(exc))
    if not state["messages"]:
        st.info("Ask about your card, your account, payments, transfers or top-ups. Type 'agent' to reach a person.")
    last = len(state["messages"]) - 1
    for index, message in enumerate(state["messages"]):
        with st.chat_message(message["role"]):
            if message["role"] == "user":
                st.markdown(message["text"])
            else:
                _reply(api, message, latest=index == last)
    if state["error"]:
        st.error(state["error"])
    prompt = st.chat_input("Type your question", max_chars=2000)
    if prompt:
        send(api, prompt)
        st.rerun()
