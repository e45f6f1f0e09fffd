"""The dialogue policy: answer, ask which of two, or hand off to a person. Pure functions."""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from services.support.understanding import Understanding


class Action(StrEnum):
    ANSWER = "answer"
    CLARIFY = "clarify"
    HANDOFF = "handoff"


@dataclass(frozen=True)
class Thresholds:
    answer: float = 0.45
    clarify_margin: float = 0.2
    clarify_min_second: float = 0.3


@dataclass(frozen=True)
class Decision:
    action: Action
    intent: str | None = None
    options: tuple[str, ...] = ()
    reason: str = ""


NEITHER = "Neither of these: talk to a person"
_ASKS_FOR_PERSON = re.compile(r"\b(human|real person|(live |an? )?agent|operator|representative|speak to (someone|somebody))\b", re.I)
_FIRST = re.compile(r"^(the )?(first|1st|1|one|former|top|upper)( one| option)?[.!]?$", re.I)
_SECOND = re.compile(r"^(the )?(second|2nd|2|two|latter|other|last|bottom|lower)( one| option)?[.!]?$", re.I)
_NEITHER = re.compile(r"^(neither|none|no|nope|neither of (them|these)|none of (them|these))[.!]?$", re.I)


def decide(understanding: Understanding, thresholds: Thresholds, message: str) -> Decision:
    """Asked for a person: hand off; two close intents: ask; out of scope or unsure: hand off; else answer.

    Two close intents are checked before the out-of-scope score: when two intents share most of the
    probability, the low top probability means the question is ambiguous, not that it is out of scope.
    """
    if _ASKS_FOR_PERSON.search(message):
        return Decision(Action.HANDOFF, understanding.intent, reason="asked for a person")
    (first, p1), (second, p2) = understanding.ranked[0], understanding.ranked[1] if len(understanding.ranked) > 1 else ("", 0.0)
    if p2 >= thresholds.clarify_min_second and p1 - p2 < thresholds.clarify_margin:
        return Decision(Action.CLARIFY, first, options=(first, second), reason="two intents are close")
    if understanding.out_of_scope:
        return Decision(Action.HANDOFF, None, reason="out of scope")
    if p1 < thresholds.answer:
        return Decision(Action.HANDOFF, first, reason="low confidence")
    return Decision(Action.ANSWER, first)


def resolve_clarification(reply: str, options: list[str], titles: dict[str, str]) -> str | None:
    """The option a reply picks: an intent, ``NEITHER``, or ``None`` when it is a new question."""
    text = reply.strip().lower()
    if not options:
        return None
    if _FIRST.match(text):
        return options[0]
    if _SECOND.match(text) and len(options) > 1:
        return options[1]
    if _NEITHER.match(text) or text == NEITHER.lower():
        return NEITHER
    for option in options:
        title = titles.get(option, option).lower()
        if text in (title, option.lower(), option.lower().replace("_", " ")):
            return option
    return None
