"""The support bot on the real all-MiniLM-L6-v2 (frozen encoder, quick heads): three real questions."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from services.support.app import create_app
from services.support.settings import SupportSettings
from shared_backbone.settings import BackboneSettings

pytestmark = pytest.mark.real_backbone


@pytest.fixture(scope="module")
def real_support(frozen_quick: BackboneSettings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    artifacts = tmp_path_factory.mktemp("real-support")
    backbone = frozen_quick
    settings = SupportSettings(
        deployment="frozen", profile="quick", database_url=f"sqlite:///{artifacts / 'support.db'}", backbone=backbone
    )
    with TestClient(create_app(settings)) as client:
        yield client


@pytest.mark.parametrize(
    ("question", "intent"),
    [
        ("I ordered a card two weeks ago and it still hasn't arrived", "card_arrival"),
        ("How do I top up with Apple Pay?", "apple_pay_or_google_pay"),
        ("Why is my transfer still pending?", "pending_transfer"),
    ],
)
def test_real_questions_are_answered_from_their_article(real_support: TestClient, question: str, intent: str) -> None:
    body = real_support.post("/chat", json={"message": question}).json()
    assert (body["action"], body["intent"]) == ("answer", intent), body
    assert body["sources"][0]["article_id"] == intent and not body["out_of_scope"]


def test_real_out_of_scope_question_is_handed_off(real_support: TestClient) -> None:
    body = real_support.post("/chat", json={"message": "What's a good recipe for banana bread?"}).json()
    assert body["action"] == "handoff" and body["handoff_ticket"] is not None, body
