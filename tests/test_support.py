from __future__ import annotations

import threading
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from services.support.app import create_app
from services.support.kb import KnowledgeBase, parse_article
from services.support.policy import NEITHER, Action, Thresholds, decide, resolve_clarification
from services.support.settings import SupportSettings
from services.support.store import Feedback
from services.support.understanding import Understanding, choose_threshold, out_of_scope_scores
from shared_backbone.client import BackboneInfo, TaskPrediction
from shared_backbone.data import load_banking77
from shared_backbone.errors import DataError
from shared_backbone.settings import BackboneSettings

INTENTS = load_banking77().labels
ARTICLES = {
    "card_arrival": (
        "Where is my new card?",
        "Cards usually arrive within 5 working days.",
        "1. Open Cards.\n2. Tap Track delivery.",
        "- my card has not come yet",
    ),
    "exchange_rate": ("Which exchange rate do you use?", "We use the interbank rate.", "1. Open Exchange.", "- what rate do you use"),
    "card_payment_wrong_exchange_rate": (
        "A card payment used the wrong rate",
        "Card payments abroad use the network rate.",
        "1. Check the payment.",
        "- wrong rate on a payment",
    ),
    "age_limit": ("How old do I need to be?", "You must be 18 to open an account.", "1. Have your ID ready.", "- minimum age"),
}


def write_kb(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for intent, (title, overview, steps, questions) in ARTICLES.items():
        text = f"---\nintent: {intent}\ntitle: {title}\n---\n# {title}\n\n{overview}\n\n## What to do\n{steps}\n\n## Common questions\n{questions}\n"
        (folder / f"{intent}.md").write_text(text, encoding="utf-8")
    return folder


class ScriptedClient:
    """A BackboneClient whose intent probabilities are scripted by keywords: every policy path on demand."""

    SCRIPT: ClassVar[dict[str, dict[str, float]]] = {
        "arrived": {"card_arrival": 0.9},
        "rate": {"exchange_rate": 0.42, "card_payment_wrong_exchange_rate": 0.38},
        "vague": {"age_limit": 0.3, "card_arrival": 0.05},
    }

    def warm_up(self) -> None:
        pass

    def info(self) -> BackboneInfo:
        return BackboneInfo("scripted", "scripted@1", "shared", 64, ("intent",), ("intent",), 0, 0)

    def encode(self, texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), 64), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in text.lower().split():
                out[row, sum(map(ord, word)) % 64] += 1.0
            out[row] /= max(np.linalg.norm(out[row]), 1e-9)
        return out

    def _probabilities(self, text: str) -> np.ndarray:
        for keyword, scripted in self.SCRIPT.items():
            if keyword in text.lower():
                probs = np.full(len(INTENTS), (1 - sum(scripted.values())) / (len(INTENTS) - len(scripted)))
                for intent, p in scripted.items():
                    probs[INTENTS.index(intent)] = p
                return probs
        return np.full(len(INTENTS), 1 / len(INTENTS))  # knows nothing: out of scope

    def predict(self, task: str, texts: list[str]) -> TaskPrediction:
        return self.analyse(texts, [task])[1][task]

    def analyse(self, texts: list[str], tasks: list[str]) -> tuple[np.ndarray, dict[str, TaskPrediction]]:
        probs = np.stack([self._probabilities(t) for t in texts]) if texts else np.zeros((0, len(INTENTS)))
        return self.encode(texts), {"intent": TaskPrediction("intent", INTENTS, probs)}


@pytest.fixture
def settings(tmp_path: Path) -> SupportSettings:
    return SupportSettings(
        kb_dir=write_kb(tmp_path / "kb"),
        database_url=f"sqlite:///{tmp_path / 'support.db'}",
        admin_api_key="s3cret",
        backbone=BackboneSettings(artifacts_dir=tmp_path / "artifacts"),
    )


@pytest.fixture
def api(settings: SupportSettings):
    with TestClient(create_app(settings, ScriptedClient())) as client:
        yield client


def test_confident_question_is_answered_with_sources(api: TestClient) -> None:
    body = api.post("/chat", json={"message": "my card has not arrived"}).json()
    assert body["action"] == "answer" and body["intent"] == "card_arrival" and body["confidence"] == pytest.approx(0.9)
    assert "Where is my new card?" in body["reply"] and "Track delivery" in body["reply"]
    assert body["sources"][0]["article_id"] == "card_arrival" and body["sources"][0]["url"] == "/kb/articles/card_arrival"
    assert not body["out_of_scope"] and body["handoff_ticket"] is None
    assert api.get(body["sources"][0]["url"]).json()["intent"] == "card_arrival"
    as_text = api.get(body["sources"][0]["url"], params={"format": "text"})
    assert as_text.headers["content-type"].startswith("text/plain") and as_text.text.startswith("# Where is my new card?")


def test_close_intents_ask_then_the_reply_resolves(api: TestClient) -> None:
    first = api.post("/chat", json={"message": "what rate do you use"}).json()
    assert first["action"] == "clarify"
    assert first["quick_replies"] == ["Which exchange rate do you use?", "A card payment used the wrong rate", NEITHER]
    session = first["session_id"]
    assert api.get(f"/sessions/{session}").json()["pending_options"] == ["exchange_rate", "card_payment_wrong_exchange_rate"]
    second = api.post("/chat", json={"session_id": session, "message": "the second one"}).json()
    assert second["action"] == "answer" and second["intent"] == "card_payment_wrong_exchange_rate"
    state = api.get(f"/sessions/{session}").json()
    assert state["pending_options"] == [] and state["last_intent"] == "card_payment_wrong_exchange_rate"
    assert [t["role"] for t in state["turns"]] == ["user", "bot", "user", "bot"]


def test_clarification_by_option_text_and_by_neither(api: TestClient) -> None:
    session = api.post("/chat", json={"message": "rate please"}).json()["session_id"]
    by_text = api.post("/chat", json={"session_id": session, "message": "Which exchange rate do you use?"}).json()
    assert by_text["intent"] == "exchange_rate" and by_text["action"] == "answer"
    session = api.post("/chat", json={"message": "rate please"}).json()["session_id"]
    neither = api.post("/chat", json={"session_id": session, "message": NEITHER}).json()
    assert neither["action"] == "handoff" and neither["handoff_ticket"] is not None


def test_out_of_scope_hands_off_with_a_ticket_and_transcript(api: TestClient) -> None:
    body = api.post("/chat", json={"message": "what is the weather on mars"}).json()
    assert body["action"] == "handoff" and body["out_of_scope"] and body["intent"] is None
    tickets = api.get("/handoffs", params={"status": "open"}, headers={"X-Admin-Key": "s3cret"}).json()
    assert tickets[0]["id"] == body["handoff_ticket"] and tickets[0]["reason"] == "out of scope"
    assert [t["role"] for t in tickets[0]["transcript"]] == ["user", "bot"]
    assert tickets[0]["transcript"][0]["text"] == "what is the weather on mars"
    assert api.get(f"/sessions/{body['session_id']}").json()["status"] == "handed_off"


def test_low_confidence_and_asking_for_a_person_hand_off(api: TestClient) -> None:
    assert api.post("/chat", json={"message": "something vague"}).json()["action"] == "handoff"
    asked = api.post("/chat", json={"message": "my card has not arrived, let me talk to a human"}).json()
    assert asked["action"] == "handoff" and asked["intent"] == "card_arrival"
    reasons = {t["reason"] for t in api.get("/handoffs", headers={"X-Admin-Key": "s3cret"}).json()}
    assert reasons == {"low confidence", "asked for a person"}


def test_feedback_round_trip_and_replacement(api: TestClient) -> None:
    body = api.post("/chat", json={"message": "my card has not arrived"}).json()
    ok = api.post("/feedback", json={"session_id": body["session_id"], "turn_id": body["turn_id"], "rating": "down", "comment": "too slow"})
    assert ok.status_code == 201 and ok.json()["replaced"] is False
    again = api.post("/feedback", json={"session_id": body["session_id"], "turn_id": body["turn_id"], "rating": "up"})
    assert again.json()["replaced"] is True
    user_turn = api.get(f"/sessions/{body['session_id']}").json()["turns"][0]["id"]
    wrong = api.post("/feedback", json={"session_id": body["session_id"], "turn_id": user_turn, "rating": "up"})
    assert wrong.status_code == 422 and "bot's replies" in wrong.json()["detail"]
    missing = api.post("/feedback", json={"session_id": body["session_id"], "turn_id": 9999, "rating": "up"})
    assert missing.status_code == 404


@pytest.mark.parametrize(
    ("payload", "code", "detail"),
    [
        ({"message": ""}, 422, "message is empty"),
        ({"message": "   \n\t "}, 422, "message is empty"),
        ({"message": "x" * 2001}, 422, "the limit is 2,000"),
        ({"message": "hi", "session_id": "not/valid"}, 422, "session_id"),
        ({"message": "hi", "extra": 1}, 422, "extra"),
        ({"text": "hi"}, 422, "message: Field required"),
        ({"message": "hi", "session_id": "0000-unknown"}, 404, "unknown session id"),
    ],
)
def test_bad_chat_input(api: TestClient, payload: dict, code: int, detail: str) -> None:
    response = api.post("/chat", json=payload)
    assert response.status_code == code and detail in response.json()["detail"]


def test_malformed_bodies(api: TestClient) -> None:
    invalid_json = api.post("/chat", content=b'{"message": ', headers={"content-type": "application/json"})
    assert invalid_json.status_code == 422 and "JSON" in invalid_json.json()["detail"]
    not_utf8 = api.post("/chat", content=b'{"message": "\xff\xfe"}', headers={"content-type": "application/json"})
    assert not_utf8.status_code == 400
    huge = api.post("/chat", content=b"x" * 70_000, headers={"content-type": "application/json"})
    assert huge.status_code == 413

    def chunks():  # no Content-Length: the limit must still hold while the body streams in
        for _ in range(70):
            yield b"x" * 1024

    chunked = api.post("/chat", content=chunks(), headers={"content-type": "application/json"})
    assert chunked.status_code == 413
    assert api.get("/sessions/nope").status_code == 404


def test_nothing_is_stored_for_a_rejected_message(api: TestClient) -> None:
    session = api.post("/chat", json={"message": "my card has not arrived"}).json()["session_id"]
    api.post("/chat", json={"session_id": session, "message": " "})
    api.post("/chat", json={"session_id": session, "message": "y" * 5000})
    assert len(api.get(f"/sessions/{session}").json()["turns"]) == 2


def test_concurrent_turns_in_one_session_keep_every_turn(api: TestClient) -> None:
    session = api.post("/chat", json={"message": "my card has not arrived"}).json()["session_id"]
    codes: list[int] = []

    def send(n: int) -> None:
        codes.append(api.post("/chat", json={"session_id": session, "message": f"my card has not arrived {n}"}).status_code)

    threads = [threading.Thread(target=send, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert codes == [200] * 8
    turns = api.get(f"/sessions/{session}").json()["turns"]
    assert [t["position"] for t in turns] == list(range(1, 19))
    assert [t["role"] for t in turns] == ["user", "bot"] * 9


def test_admin_reindex_needs_the_key(api: TestClient, settings: SupportSettings) -> None:
    assert api.post("/kb/reindex").status_code == 403
    assert api.post("/kb/reindex", headers={"X-Admin-Key": "wrong"}).status_code == 403
    (settings.kb_dir / "extra.md").write_text("---\nintent: age_limit\ntitle: Another\n---\nBody.\n", encoding="utf-8")
    done = api.post("/kb/reindex", headers={"X-Admin-Key": "s3cret"}).json()
    assert done["articles"] == 5 and done["reused"] is False


def test_admin_routes_are_off_without_a_key(settings: SupportSettings) -> None:
    settings.admin_api_key = None
    with TestClient(create_app(settings, ScriptedClient())) as api:
        response = api.post("/kb/reindex", headers={"X-Admin-Key": "anything"})
        assert response.status_code == 503 and "SPINE_ADMIN_API_KEY" in response.json()["detail"]


def test_health_and_metrics(api: TestClient) -> None:
    health = api.get("/health").json()
    assert health["status"] == "ok" and health["backbone"] == "scripted" and health["articles"] == 4
    api.post("/chat", json={"message": "my card has not arrived"})
    metrics = api.get("/metrics").text
    assert 'spine_http_requests_total{route="/chat",service="support",status="200"}' in metrics


def test_secret_never_reaches_the_logs(settings: SupportSettings, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level("DEBUG"), TestClient(create_app(settings, ScriptedClient())) as api:
        api.post("/kb/reindex", headers={"X-Admin-Key": "s3cret"})
    assert "s3cret" not in caplog.text and "s3cret" not in repr(settings)


# --- pieces ---------------------------------------------------------------------------------------


def _understanding(*ranked: tuple[str, float], oos: bool = False) -> Understanding:
    return Understanding(np.zeros(4), list(ranked), 0.0, oos)


def test_policy_decisions() -> None:
    t = Thresholds(answer=0.45, clarify_margin=0.15, clarify_min_second=0.2)
    assert decide(_understanding(("a", 0.9), ("b", 0.05)), t, "hi").action == Action.ANSWER
    clarify = decide(_understanding(("a", 0.4), ("b", 0.35)), t, "hi")
    assert clarify.action == Action.CLARIFY and clarify.options == ("a", "b")
    assert decide(_understanding(("a", 0.4), ("b", 0.1)), t, "hi").reason == "low confidence"
    assert decide(_understanding(("a", 0.9), ("b", 0.05), oos=True), t, "hi").reason == "out of scope"
    # two close intents explain a low top probability: ask rather than call it out of scope
    ambiguous = decide(_understanding(("a", 0.4), ("b", 0.35), oos=True), t, "hi")
    assert ambiguous.action == Action.CLARIFY
    assert decide(_understanding(("a", 0.9), ("b", 0.05)), t, "can I speak to someone").reason == "asked for a person"


def test_resolving_a_clarification() -> None:
    options, titles = ["x_intent", "y_intent"], {"x_intent": "Exchange rates", "y_intent": "Wrong rate"}
    assert resolve_clarification("The first one", options, titles) == "x_intent"
    assert resolve_clarification("2", options, titles) == "y_intent"
    assert resolve_clarification("wrong rate", options, titles) == "y_intent"
    assert resolve_clarification("neither", options, titles) == NEITHER
    assert resolve_clarification("how do I top up?", options, titles) is None


def test_out_of_scope_scores_and_threshold() -> None:
    probs = np.array([[0.9, 0.05, 0.05], [1 / 3, 1 / 3, 1 / 3]])
    np.testing.assert_allclose(out_of_scope_scores(probs, "max_probability"), [0.1, 2 / 3])
    np.testing.assert_allclose(out_of_scope_scores(probs, "entropy")[1], 1.0)
    threshold, auroc, kept, caught = choose_threshold(np.array([0.1, 0.2, 0.3]), np.array([0.7, 0.8, 0.15]))
    assert auroc == pytest.approx(7 / 9) and 0.3 < threshold <= 0.7 and kept == 1.0 and caught == pytest.approx(2 / 3)


def test_kb_parsing_and_errors(tmp_path: Path) -> None:
    folder = write_kb(tmp_path / "kb")
    article = parse_article(folder / "card_arrival.md")
    assert article.intent == "card_arrival" and article.section("What to do").startswith("1. Open Cards")
    (tmp_path / "bad.md").write_text("no front matter here", encoding="utf-8")
    with pytest.raises(DataError, match="bad.md:1: missing front matter"):
        parse_article(tmp_path / "bad.md")
    (tmp_path / "notitle.md").write_text("---\nintent: x\n---\nbody", encoding="utf-8")
    with pytest.raises(DataError, match="no 'title'"):
        parse_article(tmp_path / "notitle.md")
    with pytest.raises(DataError, match="knowledge-base folder not found"):
        KnowledgeBase(tmp_path / "missing", tmp_path / "idx").load_articles()


def test_kb_index_is_reused_until_articles_change(tmp_path: Path) -> None:
    kb = KnowledgeBase(write_kb(tmp_path / "kb"), tmp_path / "idx")
    client = ScriptedClient()
    assert kb.reindex(client, force=False)["reused"] is False
    assert KnowledgeBase(kb.folder, tmp_path / "idx").reindex(client, force=False)["reused"] is True
    (kb.folder / "age_limit.md").write_text("---\nintent: age_limit\ntitle: Changed\n---\nNew body.\n", encoding="utf-8")
    assert KnowledgeBase(kb.folder, tmp_path / "idx").reindex(client, force=False)["reused"] is False
    hits = kb.search(client.encode(["minimum age"]), k=2)[0]
    assert hits[0].passage.article_id == "age_limit"


def _support_page(api: object) -> None:
    from services.support.ui import page

    page(api)  # type: ignore[arg-type]


def test_ui_page_chats_clarifies_and_rates(api: TestClient) -> None:
    from streamlit.testing.v1 import AppTest

    from services.support.ui import SupportApi

    app = AppTest.from_function(_support_page, args=(SupportApi("http://testserver", http=api),), default_timeout=30)
    app.run()
    assert not app.exception and app.info[0].value.startswith("Ask about your card")
    app.chat_input[0].set_value("my card has not arrived").run()
    answer = app.chat_message[1]
    assert "Where is my new card?" in answer.markdown[0].value and "card_arrival" in answer.caption[0].value
    assert "/kb/articles/card_arrival?format=text" in answer.markdown[1].value
    app.chat_input[0].set_value("what rate do you use").run()
    options = [b.label for b in app.button if b.key and b.key.startswith("support-quick-")]
    assert options == ["Which exchange rate do you use?", "A card payment used the wrong rate", NEITHER]
    next(b for b in app.button if b.label == NEITHER).click().run()
    assert "ticket #" in app.warning[0].value
    session_id = app.session_state["support"]["session_id"]
    first_bot_turn = app.session_state["support"]["messages"][1]["turn_id"]
    app.get_by_key(f"support-rating-{first_bot_turn}").set_value(0).run()
    app.get_by_key(f"support-comment-{first_bot_turn}").input("wrong card").run()
    assert [t["role"] for t in api.get(f"/sessions/{session_id}").json()["turns"]] == ["user", "bot"] * 3
    assert api.get("/handoffs", headers={"X-Admin-Key": "s3cret"}).json()[0]["session_id"] == session_id
    with api.app.state.bot.database.session() as db:
        stored = db.scalars(select(Feedback)).all()
    assert [(f.turn_id, f.rating, f.comment) for f in stored] == [(first_bot_turn, "down", "wrong card")]


def test_ui_page_reports_an_unreachable_service() -> None:
    from streamlit.testing.v1 import AppTest

    from services.support.ui import SupportApi

    app = AppTest.from_function(_support_page, args=(SupportApi("http://127.0.0.1:9", timeout_s=2),), default_timeout=30)
    app.run()
    app.chat_input[0].set_value("hello").run()
    assert not app.exception and any("not reachable" in e.value for e in app.error)
    assert app.session_state["support"]["messages"] == []


def test_a_handed_off_conversation_keeps_one_ticket(api: TestClient) -> None:
    first = api.post("/chat", json={"message": "what is the weather on mars"}).json()
    later = api.post("/chat", json={"session_id": first["session_id"], "message": "hello? my card has not arrived"}).json()
    assert later["action"] == "handoff" and later["handoff_ticket"] == first["handoff_ticket"] and later["intent"] is None
    tickets = api.get("/handoffs", headers={"X-Admin-Key": "s3cret"}).json()
    assert len(tickets) == 1 and [t["text"] for t in tickets[0]["transcript"]][2] == "hello? my card has not arrived"
    assert api.get("/handoffs").status_code == 403  # other customers' transcripts need the admin key
    assert api.get("/handoffs", params={"status": "weird"}, headers={"X-Admin-Key": "s3cret"}).status_code == 422


def test_a_clarified_turn_is_stored_under_the_chosen_intent(api: TestClient) -> None:
    session = api.post("/chat", json={"message": "what rate do you use"}).json()["session_id"]
    answer = api.post("/chat", json={"session_id": session, "message": "the first one"}).json()
    assert answer["intent"] == "exchange_rate" and len(answer["sources"]) <= 1 + 3
    turns = api.get(f"/sessions/{session}").json()["turns"]
    assert (turns[2]["text"], turns[2]["intent"], turns[2]["confidence"]) == ("the first one", "exchange_rate", None)


def test_a_broken_backbone_leaves_the_service_up_and_unavailable(settings: SupportSettings) -> None:
    settings.deployment = "shared"
    settings.profile = "smoke"  # no such artifact in this empty artifacts folder
    with TestClient(create_app(settings)) as api:
        health = api.get("/health")
        assert health.status_code == 503 and "shared-smoke" in health.json()["error"]
        chat = api.post("/chat", json={"message": "hi"})
        assert chat.status_code == 503 and chat.headers["retry-after"] == "30" and "unavailable" in chat.json()["detail"]
