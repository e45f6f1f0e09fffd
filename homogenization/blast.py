"""Blast radius: corrupt the backbone that serves the sentiment monitor and measure every service's metric change.

In ``shared`` that backbone also serves support and the recommender, so one fault reaches all three services; in
``per-domain`` only the sentiment monitor's own backbone is corrupted and the other two keep theirs. Every service is
scored again through the same outcome functions as the quality table, on the blast subsets (the first N of the seed's
sampled test items, which are a random sample already; the recommender's users and catalogue of that evaluation).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from homogenization.faults import InMemoryBackbone, StaticClient, bad_updates, load_encoder, with_weight_noise
from homogenization.outcomes import Catalogue, SeedData, head_outcomes, support_outcomes
from shared_backbone.artifacts import ENCODER_DIR, ArtifactStore, Manifest
from shared_backbone.client import BackboneClient, BackboneInfo
from shared_backbone.text import encoder_text

log = logging.getLogger(__name__)
SERVICE_METRICS = {
    "support": ("intent_accuracy",),
    "sentiment": ("sentiment_accuracy", "topic_accuracy"),
    "recommender": ("ndcg@10", "hr@10"),
}
DEGRADED_BELOW = -0.01  # a service counts as degraded when one of its metrics falls by more than 1 point


@dataclass(frozen=True)
class BlastSettings:
    noise_scales: tuple[float, ...]
    bad_update_steps: tuple[int, ...]
    bad_update_task: str
    items: int | None
    batch_size: int
    learning_rate: float
    max_seq_length: int
    threads: int
    encode_batch_size: int
    oos_method: str


def service_metrics(
    clients: Mapping[str, BackboneClient],
    data: SeedData,
    catalogue: Catalogue,
    settings: BlastSettings,
    memo: dict[str, tuple[float, float]],
) -> dict[str, float]:
    """The blast metrics of every service, each through its own client; ``memo`` keeps rankings by item-vector digest."""
    limit = settings.items
    out: dict[str, float] = {}
    intent = data.classification["intent"]
    test = intent.test[:limit] if limit else intent.test
    support = support_outcomes(clients["support"], [r.text for r in test], None, settings.oos_method, intent.labels)
    out["intent_accuracy"] = float(np.mean(support["predicted"] == np.array([r.label for r in test])))
    for task in ("sentiment", "topic"):
        split = data.classification[task]
        sample = split.test[:limit] if limit else split.test
        predicted = head_outcomes(clients["sentiment"], task, [r.text for r in sample])
        out[f"{task}_accuracy"] = float(np.mean(predicted == np.array([r.label for r in sample])))
    vectors = clients["recommender"].encode(catalogue.texts())
    key = hashlib.sha256(np.ascontiguousarray(vectors).tobytes()).hexdigest()
    if key not in memo:  # an untouched backbone gives the same vectors: the same ranking, without refitting EASE
        ranking = catalogue.outcomes(vectors)
        memo[key] = (float(ranking["ndcg"].mean()), float(ranking["hr"].mean()))
    out["ndcg@10"], out["hr@10"] = memo[key]
    return out


def _row(kind: str, size: float, metrics: Mapping[str, float], baseline: Mapping[str, float]) -> dict[str, Any]:
    change = {name: metrics[name] - baseline[name] for name in metrics}
    degraded = sorted(service for service, names in SERVICE_METRICS.items() if any(change[n] < DEGRADED_BELOW for n in names))
    return {kind: size, "metrics": dict(metrics), "change": change, "degraded_services": degraded}


def blast_radius(
    deployment: str,
    service_artifacts: Mapping[str, str],
    clients: Mapping[str, BackboneClient],
    store: ArtifactStore,
    data: SeedData,
    catalogue: Catalogue,
    settings: BlastSettings,
) -> dict[str, Any]:
    """Baseline, then each noise scale and each bad-update checkpoint applied to the sentiment service's backbone."""
    target = service_artifacts["sentiment"]
    manifest = store.manifest(target)
    reached = sorted(s for s, a in service_artifacts.items() if a == target)
    memo: dict[str, tuple[float, float]] = {}
    baseline = service_metrics(clients, data, catalogue, settings, memo)
    model = load_encoder(store.path(target) / ENCODER_DIR, settings.max_seq_length, settings.threads)
    heads = store.load_heads(target)

    def faulted(label: str, faulty_model: Any) -> dict[str, float]:
        encoder = InMemoryBackbone(
            faulty_model, f"{manifest.backbone_id}+{label}", batch_size=settings.encode_batch_size, strip_links=manifest.strip_links
        )
        client = StaticClient(encoder, heads, _info(manifest, f"{target}+{label}"))
        swapped = {service: client if service_artifacts[service] == target else clients[service] for service in clients}
        return service_metrics(swapped, data, catalogue, settings, memo)

    noise = []
    for scale in settings.noise_scales:
        log.info("blast radius %s: weight noise %.3g on %s", deployment, scale, target)
        noise.append(_row("scale", scale, faulted(f"noise{scale:g}", with_weight_noise(model, scale, data.seed)), baseline))
    updates = []
    task = settings.bad_update_task
    split = data.classification[task]
    steps_iter: Iterable[tuple[int, Any]] = bad_updates(
        model,
        [encoder_text(r.text, strip_links=manifest.strip_links) for r in split.train],  # as the backbone learned to read
        [r.label for r in split.train],
        len(split.labels),
        settings.bad_update_steps,
        batch_size=settings.batch_size,
        learning_rate=settings.learning_rate,
        seed=data.seed,
    )
    for steps, updated in steps_iter:
        log.info("blast radius %s: %d shuffled-label steps on %s", deployment, steps, target)
        updates.append(_row("steps", steps, faulted(f"badupdate{steps}", updated), baseline))
    return {
        "corrupted_backbone": target,
        "services_on_corrupted_backbone": reached,
        "baseline": baseline,
        "noise": noise,
        "bad_update": updates,
    }


def _info(manifest: Manifest, artifact_id: str) -> BackboneInfo:
    return BackboneInfo(
        artifact_id=artifact_id,
        backbone_id=artifact_id,
        deployment=manifest.deployment,
        dimension=manifest.embedding_dimension,
        tasks=tuple(manifest.tasks),
        heads=tuple(manifest.heads),
        parameter_count=manifest.parameter_count,
        seed=manifest.seed,
    )
