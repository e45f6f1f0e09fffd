"""The study behind ``spine compare``: deployments x seeds x services, from artifacts to one JSON-ready dict.

Order of work, so that bad input fails before anything slow runs: check the configuration, draw every seed's
evaluation data (an empty set is a ``DataError``), check every artifact (with ``train_missing=False`` a missing one is
an ``ArtifactError``), train what is missing, then evaluate. Values that change from run to run (wall-clock times,
dates, which artifacts were trained or reused) live under the ``timing`` key only, so the rest of the result is a
function of the configuration, the data, the artifacts and the seeds.
"""

from __future__ import annotations

import logging
import math
import os
import platform
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np

from homogenization import analysis
from homogenization.analysis import Outcomes
from homogenization.blast import DEGRADED_BELOW, SERVICE_METRICS, BlastSettings, blast_radius
from homogenization.classic import TFIDF_SETTINGS, ClassicClient, fit_classic
from homogenization.outcomes import (
    CLASSIFICATION_TASKS,
    Catalogue,
    K,
    SeedData,
    head_outcomes,
    movielens_likes,
    prepare_seed,
    support_outcomes,
)
from homogenization.probes import FAMILIES, TYPO_SHARE, family_labels
from homogenization.similarity import cka_matrix, probe_texts
from shared_backbone.artifacts import ENCODER_DIR, HEADS_DIR, ArtifactStore, Manifest, backbone_id, encoder_fingerprint, file_sha256
from shared_backbone.client import BackboneClient, InProcessBackboneClient
from shared_backbone.encoder import Backbone
from shared_backbone.errors import ArtifactError, ConfigError
from shared_backbone.settings import PROJECT_ROOT, BackboneSettings, packaged_model_path
from shared_backbone.tasks import DEPLOYMENTS, PROFILES, SERVICES, Profile, artifact_id, parse_profile
from shared_backbone.training import DATA_FILES, STRIP_LINKS, hyperparameters, prepare_recommendation, train_deployment

log = logging.getLogger(__name__)
STUDY_DEPLOYMENTS = (*DEPLOYMENTS, "classic")
MAX_SEEDS = 20
BLAST_ITEMS = {"smoke": 48, "quick": 200, "full": 300}
PROBE_PER_DOMAIN = {"smoke": 48, "quick": 200, "full": 200}
FAILURE_DEFINITIONS = {
    "support": "one Banking77 test question of the seed's sample; a failure when the intent the bot's understanding step "
    "ranks first (services.support.understanding.understand, calibrated intent head) is not the gold intent. "
    "Out-of-scope queries are not part of the failure vector (they are scored by AUROC).",
    "sentiment": "one financial-news test story of the seed's sample; a failure when the sentiment head's most likely "
    "class (what the monitor stores) is not the gold sentiment (bearish / bullish / neutral).",
    "recommender": f"one evaluated MovieLens user; a failure when none of the films they liked in the held-out period is in "
    f"the top {K} of the full-catalogue ranking minus what they had rated (HR@{K} = 0), ranked by the service's hybrid "
    "(classic: plain EASE).",
}
GROUP_DEFINITIONS = {
    "length": "tertiles of character length, cut within each service's own items (short / medium / long); for the "
    "recommender the text is the user's most recently liked film's text (title, genres, tags)",
    "digits": "the text has a digit or a $TICKER cashtag (links and a film title's '(year)' removed first) vs not",
    "typo": f"each item (clean) and a copy with two adjacent letters swapped in about {TYPO_SHARE:.0%} of its words "
    "(typo), seeded by the training seed and the text; for the recommender every catalogue film's text is perturbed, "
    "re-encoded and the service's collaborative model refitted on those vectors (plain EASE reads no text, so classic "
    "is unchanged by construction)",
}

LIMITATIONS = [
    "Serving figures (RSS, throughput, latency) are read from bench/serving.py's serving-<profile>.json; without that "
    "file they are 'not measured'. This command starts no servers.",
    "Quality is measured on the torch fp32 backbone; a deployment may serve ONNX int8, which export verifies to within "
    "0.5 accuracy points per head.",
    "Support quality here is intent accuracy / macro-F1 and out-of-scope AUROC; answer, clarify and hand-off rates, "
    "knowledge-base retrieval and the monitor's surge detection are left to `spine eval support` / `spine eval sentiment`.",
    "Homogenization is group-level on unpaired data: each service answers its own items, so a group's systemic failure "
    "is a product of the services' rates in that group, not an observed count of items every service failed.",
    "Recommender groups: a user's text is their most recently liked film's text; the typo copy perturbs every catalogue "
    "text at once. Classic's EASE reads no text, so its typo failures equal its clean ones by construction.",
    "Blast radius: first seed only, the sentiment monitor's backbone only, shared and per-domain only (frozen has "
    "shared's topology, classic has no backbone); subsets of the test items; with the full profile the recommender part "
    "uses the quick profile's users and films.",
    "With one seed the intervals are a bootstrap over test items (no training-seed variance); with two or three seeds "
    "the Student-t interval is wide. Test items are the profile's seeded sample, so they differ between seeds; paired "
    "tests and kappa pair items within a seed.",
    "Determinism: the same artifacts, data and seeds give the same results.json except the timing key; whether retraining "
    "reproduces bit-identical weights (thread counts, library versions) is not checked here.",
]


def parse_deployments(text: str) -> tuple[str, ...]:
    """``shared,per-domain`` -> ("shared", "per-domain"); unknown or repeated names are a ``ConfigError``."""
    names = [part.strip() for part in text.split(",") if part.strip()]
    if not names:
        raise ConfigError(f"no deployment given: choose from {', '.join(STUDY_DEPLOYMENTS)}")
    for name in names:
        if name not in STUDY_DEPLOYMENTS:
            raise ConfigError(f"unknown deployment '{name}': choose from {', '.join(STUDY_DEPLOYMENTS)}")
    if len(set(names)) != len(names):
        raise ConfigError(f"a deployment is named twice in '{text}'")
    return tuple(names)


@dataclass(frozen=True)
class StudyConfig:
    """Plain values: what to compare, how many seeds, and how hard to push the faults."""

    deployments: tuple[str, ...] = STUDY_DEPLOYMENTS
    profile: str = "quick"
    seeds: int = 1
    train_missing: bool = True
    noise_scales: tuple[float, ...] = (0.01, 0.03, 0.1)
    bad_update_steps: tuple[int, ...] = (5, 20, 50)
    bad_update_task: str = "sentiment"
    blast_items: int | None = None  # None: the profile's default (BLAST_ITEMS)
    probe_per_domain: int | None = None  # None: PROBE_PER_DOMAIN
    resamples: int = 1000
    serving_dir: Path | None = None  # where serving-<profile>.json lives; None: bench/results
    command: str | None = None
    progress: bool = False

    def checked(self) -> StudyConfig:
        deployments = parse_deployments(",".join(self.deployments))
        profile = parse_profile(self.profile).name
        if not 1 <= self.seeds <= MAX_SEEDS:
            raise ConfigError(f"--seeds must be between 1 and {MAX_SEEDS}, got {self.seeds}")
        if any(not (math.isfinite(s) and s > 0) for s in self.noise_scales):
            raise ConfigError(f"noise scales must be positive, got {list(self.noise_scales)}")
        if any(s < 1 for s in self.bad_update_steps):
            raise ConfigError(f"bad-update steps must be at least 1, got {list(self.bad_update_steps)}")
        if self.bad_update_task not in CLASSIFICATION_TASKS:
            raise ConfigError(f"bad-update task must be one of {', '.join(CLASSIFICATION_TASKS)}, got '{self.bad_update_task}'")
        for name, value in (("blast items", self.blast_items), ("probe texts per domain", self.probe_per_domain)):
            if value is not None and value < 2:
                raise ConfigError(f"{name} must be at least 2, got {value}")
        if self.resamples < 10:
            raise ConfigError(f"resamples must be at least 10, got {self.resamples}")
        return replace(self, deployments=deployments, profile=profile)

    def command_line(self) -> str:
        if self.command:
            return self.command
        train = "" if self.train_missing else " --no-train"
        return f"spine compare --deployments {','.join(self.deployments)} --profile {self.profile} --seeds {self.seeds}{train}"


def service_artifacts(deployment: str, profile: str, seed: int) -> dict[str, str]:
    """Which artifact serves each service in a neural deployment, for one training seed."""
    if deployment == "per-domain":
        return {service: artifact_id(deployment, service, profile, seed) for service in SERVICES}
    return {service: artifact_id(deployment, "all", profile, seed) for service in SERVICES}


def artifact_problem(store: ArtifactStore, aid: str, deployment: str, profile: str, seed: int, base_model: Path) -> str | None:
    """Why an artifact cannot be reused for this study (missing, unreadable, or made with other settings), or None."""
    try:
        manifest = store.manifest(aid)
    except ArtifactError as exc:
        return "missing" if not (store.path(aid) / "manifest.json").exists() else str(exc)
    if (manifest.deployment, manifest.profile, manifest.seed) != (deployment, profile, seed):
        return f"its manifest says {manifest.deployment} / {manifest.profile} / seed {manifest.seed}"
    if Path(manifest.base_model).resolve() != base_model.resolve():
        return f"trained from {manifest.base_model}, not {base_model}"
    if manifest.hyperparameters != hyperparameters(PROFILES[profile]):
        return f"trained with other {profile} settings than today's (its manifest: {manifest.hyperparameters})"
    if manifest.strip_links != STRIP_LINKS:
        return "trained on texts with web links in them, before the encoders learned to read without"
    return None


class Study:
    """One run of the study; ``run()`` returns the results dict (JSON-safe after ``json_safe``)."""

    def __init__(self, config: StudyConfig, settings: BackboneSettings) -> None:
        self.config = config.checked()
        self.settings = settings
        self.profile: Profile = PROFILES[self.config.profile]
        self.base_model = Path(settings.base_model or packaged_model_path())
        self.store = ArtifactStore(settings.backbones_dir)
        self.neural = [d for d in self.config.deployments if d != "classic"]
        self.seeds = list(range(self.config.seeds))
        self.timing: dict[str, Any] = {"started_at": datetime.now(UTC).isoformat(timespec="seconds"), "phases_s": {}}
        self._clients: dict[str, InProcessBackboneClient] = {}

    # --- helpers ----------------------------------------------------------------------------------

    def _phase(self, name: str, started: float) -> None:
        self.timing["phases_s"][name] = round(self.timing["phases_s"].get(name, 0.0) + time.perf_counter() - started, 2)

    def _client(self, aid: str) -> InProcessBackboneClient:
        if aid not in self._clients:
            cache = self.settings.cache_dir / "embeddings.sqlite" if self.settings.embedding_cache else None
            self._clients[aid] = InProcessBackboneClient(
                self.settings.backbones_dir,
                aid,
                threads=self.settings.threads,
                batch_size=self.settings.encode_batch_size,
                cache_path=cache,
                backend="torch",
            )
        return self._clients[aid]

    # --- the run ----------------------------------------------------------------------------------

    def run(self) -> dict[str, Any]:
        from services.recommender.settings import RecommenderSettings
        from services.support.settings import SupportSettings

        missing = self._check_artifacts()
        started = time.perf_counter()
        self.recommender = RecommenderSettings()
        self.oos_method = SupportSettings().oos_score
        likes = movielens_likes(self.settings.data_dir)
        data = {s: prepare_seed(self.settings.data_dir, self.profile, s, likes, self.recommender) for s in self.seeds}
        self._phase("data", started)
        self._train(missing)
        by_seed: dict[int, dict[str, Outcomes]] = {}
        cka_by_seed: list[dict[str, dict[str, float]]] = []
        classic: ClassicClient | None = None
        blast: dict[str, Any] = {}
        self.timing["classic_fit_s"] = []
        for seed in self.seeds:
            started = time.perf_counter()
            labels = {
                "support": family_labels([r.text for r in data[seed].classification["intent"].test]),
                "sentiment": family_labels([r.text for r in data[seed].classification["sentiment"].test]),
                "recommender": family_labels(data[seed].catalogue.user_texts()),
            }
            row: dict[str, Outcomes] = {}
            for deployment in self.config.deployments:
                log.info("seed %d: evaluating %s", seed, deployment)
                if deployment == "classic":
                    fit_started = time.perf_counter()
                    fitted = fit_classic({t: data[seed].classification[t] for t in CLASSIFICATION_TASKS}, seed)
                    self.timing["classic_fit_s"].append(round(time.perf_counter() - fit_started, 3))
                    classic = classic or fitted
                    clients: dict[str, BackboneClient | None] = {"support": fitted, "sentiment": fitted, "recommender": None}
                else:
                    clients = {svc: self._client(aid) for svc, aid in service_artifacts(deployment, self.profile.name, seed).items()}
                row[deployment] = self._evaluate(clients, data[seed])
                row[deployment].labels = labels
            by_seed[seed] = row
            self._phase("evaluation", started)
            if self.neural:
                started = time.perf_counter()
                cka_by_seed.append(self._cka(seed))
                self._phase("representation_similarity", started)
            if seed == self.seeds[0]:
                started = time.perf_counter()
                blast = self._blast(data[seed], likes)
                self._phase("blast_radius", started)
            self._release()
        started = time.perf_counter()
        results = self._assemble(by_seed, cka_by_seed, blast, classic, data)
        self._phase("statistics", started)
        self.timing["finished_at"] = datetime.now(UTC).isoformat(timespec="seconds")
        results["timing"] = self.timing
        return results

    def _release(self) -> None:
        """Drop this seed's models: the next seed loads other artifacts, and per-domain holds three encoders."""
        self._clients.clear()

    def _check_artifacts(self) -> dict[tuple[str, int], dict[str, str]]:
        """Artifacts that cannot be reused, by (deployment, seed); with ``train_missing=False`` any is an ``ArtifactError``."""
        problems: dict[tuple[str, int], dict[str, str]] = {}
        for deployment in self.neural:
            for seed in self.seeds:
                for aid in sorted(set(service_artifacts(deployment, self.profile.name, seed).values())):
                    problem = artifact_problem(self.store, aid, deployment, self.profile.name, seed, self.base_model)
                    if problem is not None:
                        problems.setdefault((deployment, seed), {})[aid] = problem
        if problems and not self.config.train_missing:
            first = next(iter(problems))
            listed = "; ".join(f"{aid} ({why})" for found in problems.values() for aid, why in found.items())
            raise ArtifactError(
                f"--no-train, but backbone artifact(s) cannot be reused from {self.store.root}: {listed}. Run "
                f"`spine train --deployment {first[0]} --profile {self.profile.name} --seed {first[1]}` or drop --no-train"
            )
        return problems

    def _train(self, problems: dict[tuple[str, int], dict[str, str]]) -> None:
        started = time.perf_counter()
        trained = []
        for (deployment, seed), found in problems.items():
            log.info(
                "training %s (profile %s, seed %d): %s",
                deployment,
                self.profile.name,
                seed,
                "; ".join(f"{a} {w}" for a, w in found.items()),
            )
            train_deployment(deployment, self.profile.name, self.settings, seed=seed, progress=self.config.progress)
            trained.extend(sorted(set(service_artifacts(deployment, self.profile.name, seed).values())))
        self.timing["artifacts_trained"] = trained
        self._phase("training", started)
        self.timing["training_s"] = {
            deployment: [
                round(
                    sum(
                        self.store.manifest(aid).training_seconds
                        for aid in sorted(set(service_artifacts(deployment, self.profile.name, s).values()))
                    ),
                    2,
                )
                for s in self.seeds
            ]
            for deployment in self.neural
        }

    def _evaluate(self, clients: Mapping[str, BackboneClient | None], data: SeedData) -> Outcomes:
        """Every service's per-item outcomes (and on the typo copies) through its own client."""
        intent = data.classification["intent"]
        support, monitor = clients["support"], clients["sentiment"]
        assert support is not None and monitor is not None
        clean = support_outcomes(support, [r.text for r in intent.test], data.oos, self.oos_method, intent.labels)
        typo = support_outcomes(support, data.typo["intent"], None, self.oos_method, intent.labels)
        predicted = {"intent": clean["predicted"]}
        for task in ("sentiment", "topic"):
            predicted[task] = head_outcomes(monitor, task, [r.text for r in data.classification[task].test])
        predicted_typo = {"intent": typo["predicted"], "sentiment": head_outcomes(monitor, "sentiment", data.typo["sentiment"])}
        catalogue, recommender = data.catalogue, clients["recommender"]
        if recommender is None:  # classic: plain EASE, which reads no text, so the typo copy changes nothing
            ranking = catalogue.outcomes(None)
            hr_typo = ranking["hr"].copy()
        else:
            ranking = catalogue.outcomes(recommender.encode(catalogue.texts()))
            hr_typo = catalogue.outcomes(recommender.encode(catalogue.texts(typo_seed=data.seed)))["hr"]
        gold = {task: np.array([r.label for r in data.classification[task].test], dtype=np.int64) for task in CLASSIFICATION_TASKS}
        return Outcomes(gold, predicted, predicted_typo, clean["oos_in"], clean["oos_out"], ranking, hr_typo)

    def _encoders(self, seed: int) -> dict[str, Any]:
        """Every distinct encoder of the neural deployments at this seed, and the pretrained one, by label."""
        encoders: dict[str, Any] = {}
        for deployment in self.neural:
            artifacts = service_artifacts(deployment, self.profile.name, seed)
            if deployment == "per-domain":
                for service, aid in artifacts.items():
                    encoders[f"per-domain/{service}"] = self._client(aid)
            else:
                encoders[deployment] = self._client(artifacts["support"])
        try:
            fingerprint = encoder_fingerprint(self.base_model)
        except ArtifactError:
            fingerprint = file_sha256_text(str(self.base_model))
        cache = None
        if self.settings.embedding_cache:
            from shared_backbone.cache import EmbeddingCache

            cache = EmbeddingCache(self.settings.cache_dir / "embeddings.sqlite")
        encoders["pretrained"] = Backbone(
            self.base_model,
            backbone_id("pretrained", fingerprint, STRIP_LINKS),
            threads=self.settings.threads,
            batch_size=self.settings.encode_batch_size,
            max_seq_length=self.profile.max_seq_length,
            cache=cache,
            strip_links=STRIP_LINKS,  # reads what the study's artifacts read, so frozen and pretrained stay identical
        )
        return encoders

    def _cka(self, seed: int) -> dict[str, dict[str, float]]:
        if not hasattr(self, "_probes"):
            self._probes = probe_texts(self.settings.data_dir, self.config.probe_per_domain or PROBE_PER_DOMAIN[self.profile.name])
        probes = self._probes
        texts = [t for domain in probes.values() for t in domain]
        embeddings = {label: encoder.encode(texts) for label, encoder in self._encoders(seed).items()}
        out = {"all": cka_matrix(embeddings)}
        start = 0
        for domain, domain_texts in probes.items():
            rows = slice(start, start + len(domain_texts))
            out[domain] = cka_matrix({label: e[rows] for label, e in embeddings.items()})
            start += len(domain_texts)
        self.probe_sizes = {domain: len(t) for domain, t in probes.items()}
        return out

    def _blast_settings(self) -> BlastSettings:
        return BlastSettings(
            noise_scales=tuple(self.config.noise_scales),
            bad_update_steps=tuple(self.config.bad_update_steps),
            bad_update_task=self.config.bad_update_task,
            items=self.config.blast_items or BLAST_ITEMS[self.profile.name],
            batch_size=self.profile.batch_size,
            learning_rate=self.profile.learning_rate,
            max_seq_length=self.profile.max_seq_length,
            threads=self.settings.threads,
            encode_batch_size=self.settings.encode_batch_size,
            oos_method=self.oos_method,
        )

    def _blast(self, data: SeedData, likes: list) -> dict[str, Any]:
        targets = [d for d in ("shared", "per-domain") if d in self.config.deployments]
        if not targets:
            return {}
        catalogue = data.catalogue
        if self.profile.name == "full":  # ranking 9,742 films per fault level is the slow part: use the quick profile's users and films
            catalogue = Catalogue(prepare_recommendation(self.settings.data_dir, PROFILES["quick"], data.seed), likes, self.recommender)
        self.blast_catalogue = {"users": len(catalogue.users), "catalogue": len(catalogue.data.catalogue)}
        settings = self._blast_settings()
        out = {}
        for deployment in targets:
            artifacts = service_artifacts(deployment, self.profile.name, data.seed)
            clients = {service: self._client(aid) for service, aid in artifacts.items()}
            out[deployment] = blast_radius(deployment, artifacts, clients, self.store, data, catalogue, settings)
        return out

    # --- assembling the result --------------------------------------------------------------------

    def _assemble(
        self,
        by_seed: dict[int, dict[str, Outcomes]],
        cka_by_seed: list[dict[str, dict[str, float]]],
        blast: dict[str, Any],
        classic: ClassicClient | None,
        data: dict[int, SeedData],
    ) -> dict[str, Any]:
        deployments = list(self.config.deployments)
        reference = "shared" if "shared" in deployments else deployments[0]
        others = [d for d in deployments if d != reference]
        quality = analysis.quality(by_seed, deployments, self.config.resamples)
        settings = self._blast_settings()
        return {
            "schema": 1,
            "setup": self._setup(data),
            "quality": {
                "metrics": list(analysis.QUALITY_METRICS),
                "k": K,
                "by_deployment": quality,
                "paired_tests": analysis.paired_tests(by_seed, reference, others, self.config.resamples) if others else {},
            },
            "cost": self._cost(classic, data[self.seeds[0]]),
            "homogenization": {
                "systems": dict(analysis.SYSTEMS),
                "families": list(FAMILIES),
                "failure_definitions": FAILURE_DEFINITIONS,
                "group_definitions": GROUP_DEFINITIONS,
                "by_deployment": analysis.homogenization(by_seed, deployments, self.seeds[0]),
            },
            "error_consistency": {
                "tasks": list(analysis.KAPPA_TASKS),
                "pairs": analysis.error_consistency(by_seed, deployments) if len(deployments) > 1 else {},
            },
            "blast_radius": {
                "setup": {
                    "seed": self.seeds[0],
                    "corrupted": "the backbone that serves the sentiment monitor (shared: the one backbone; per-domain: its own)",
                    "noise": "W += N(0, (scale * std(W))^2) on every floating-point parameter tensor of the encoder; heads kept",
                    "noise_scales": [0.0, *settings.noise_scales],
                    "bad_update": f"AdamW steps (batch {settings.batch_size}, learning rate {settings.learning_rate:g}) on the "
                    f"{settings.bad_update_task} training sample with shuffled labels, through a fresh linear layer; heads kept",
                    "bad_update_steps": [0, *settings.bad_update_steps],
                    "items_per_task": settings.items,
                    "recommender": getattr(self, "blast_catalogue", None),
                    "service_metrics": {k: list(v) for k, v in SERVICE_METRICS.items()},
                    "degraded_when_change_below": DEGRADED_BELOW,
                },
                "by_deployment": blast,
            },
            "representation_similarity": self._similarity(cka_by_seed),
            "limitations": LIMITATIONS,
        }

    def _similarity(self, cka_by_seed: list[dict[str, dict[str, float]]]) -> dict[str, Any]:
        if not cka_by_seed:
            return {"encoders": [], "pairs": {}, "note": "no neural deployment in this study"}
        subsets = list(cka_by_seed[0])
        pairs = {
            subset: {
                pair: {**analysis.over_seeds([c[subset][pair] for c in cka_by_seed]), "per_seed": [c[subset][pair] for c in cka_by_seed]}
                for pair in cka_by_seed[0][subset]
            }
            for subset in subsets
        }
        encoders = sorted({name for pair in cka_by_seed[0]["all"] for name in pair.split(" | ")}, key=_encoder_order)
        return {"encoders": encoders, "probe_texts": getattr(self, "probe_sizes", {}), "pairs": pairs}

    def _setup(self, data: dict[int, SeedData]) -> dict[str, Any]:
        hashes = {}
        for name in sorted({n for files in DATA_FILES.values() for n in files} | {"clinc150/data_full.json"}):
            path = self.settings.data_dir / name
            hashes[name] = file_sha256(path)[:16] if path.is_file() else "missing"
        return {
            "command": self.config.command_line(),
            "deployments": list(self.config.deployments),
            "profile": self.profile.name,
            "profile_settings": {k: v for k, v in asdict(self.profile).items() if k != "name"},
            "seeds": self.seeds,
            "base_model": str(self.base_model),
            "artifacts": {d: {s: service_artifacts(d, self.profile.name, s) for s in self.seeds} for d in self.neural},
            "data_dir": str(self.settings.data_dir),
            "data_hashes": hashes,
            "evaluation_sizes": {s: data[s].sizes() for s in self.seeds},
            "splits": "Banking77: published test split; financial-news sentiment and topic: the published validation "
            "split as test; CLINC150 out-of-scope: the published test queries; each sampled per seed to the profile's "
            "eval size (training's own sample). MovieLens: per-user temporal split (latest 20% test, 10% before it "
            "validation), collaborative models learn from every like before the test period.",
            "support_oos_score": self.oos_method,
            "recommender_settings": self.recommender.model_dump(
                include={
                    "ease_l2",
                    "text_neighbours",
                    "text_neighbour_weight",
                    "min_item_likes",
                    "text_weight",
                    "candidates",
                    "half_life_days",
                }
            ),
            "classic": {"text": f"TF-IDF {TFIDF_SETTINGS} + LogisticRegression(C=10) per task", "recommender": "plain EASE (l2 = ease_l2)"},
            "evaluation_backend": "torch (fp32), the reference every serving backend is verified against",
            "versions": _versions(),
            "machine": {
                "platform": platform.platform(),
                "machine": platform.machine(),
                "cpus": os.cpu_count(),
                "torch_threads": self.settings.threads,
            },
            "intervals": "95%: Student-t over seeds (mean_over_seeds) with two or more seeds (with two, t = 12.71: very wide, "
            "and not clipped to the metric's range); percentile bootstrap over "
            f"test items ({self.config.resamples} resamples) with one seed",
        }

    def _cost(self, classic: ClassicClient | None, first: SeedData) -> dict[str, Any]:
        seed = self.seeds[0]
        out: dict[str, Any] = {"seed": seed, "by_deployment": {}}
        for deployment in self.neural:
            ids = sorted(set(service_artifacts(deployment, self.profile.name, seed).values()))
            backbones = [self._artifact_cost(self.store.manifest(aid)) for aid in ids]
            onnx = [b["onnx_int8_bytes"] for b in backbones]
            out["by_deployment"][deployment] = {
                "backbones": len(backbones),
                "parameters": sum(b["parameters"] for b in backbones),
                "encoder_bytes": sum(b["encoder_bytes"] for b in backbones),
                "heads_bytes": sum(b["heads_bytes"] for b in backbones),
                "onnx_int8_bytes": sum(onnx) if all(v is not None for v in onnx) else None,
                "artifacts": backbones,
            }
        if classic is not None:
            ease_size = len(first.catalogue.data.catalogue)
            ease = first.catalogue.ease
            ease_parameters = ease.parameters if ease is not None else ease_size * ease_size
            out["by_deployment"]["classic"] = {
                "backbones": 0,
                "parameters": 0,
                "encoder_bytes": 0,
                "heads_bytes": 0,
                "onnx_int8_bytes": None,
                "models": {
                    **{
                        f"tfidf_{t}": {"parameters": m.parameter_count(), "bytes": m.nbytes(), "vocabulary": m.vocabulary_size()}
                        for t, m in classic.models.items()
                    },
                    "ease": {"parameters": ease_parameters, "bytes": ease.nbytes if ease is not None else None},
                },
                "note": "no backbone; model parameters are in-memory arrays (TF-IDF logistic regressions and the EASE item-item matrix)",
            }
        out["serving"] = self._serving()
        return out

    def _artifact_cost(self, manifest: Manifest) -> dict[str, Any]:
        folder = self.store.path(manifest.id)
        onnx = folder / "onnx" / "model.int8.onnx"
        return {
            "id": manifest.id,
            "services": manifest.services,
            "parameters": manifest.parameter_count,
            "embedding_dimension": manifest.embedding_dimension,
            "encoder_bytes": sum(p.stat().st_size for p in (folder / ENCODER_DIR).rglob("*.safetensors")),
            "heads_bytes": sum(p.stat().st_size for p in (folder / HEADS_DIR).glob("*.safetensors")),
            "onnx_int8_bytes": onnx.stat().st_size if onnx.is_file() else None,
        }

    def _serving(self) -> dict[str, Any]:
        path = (self.config.serving_dir or PROJECT_ROOT / "bench" / "results") / f"serving-{self.profile.name}.json"
        return serving_figures(path, self.config.deployments, self.profile.name)


def serving_figures(path: Path, deployments: Sequence[str], profile: str) -> dict[str, Any]:
    """Serving figures from bench/serving.py's JSON when it exists; never estimated."""
    import json

    out: dict[str, Any] = {"source": str(path), "by_deployment": {}}
    rows: list[dict[str, Any]] = []
    if not path.is_file():
        out["note"] = f"not measured: {path.name} does not exist (run bench/serving.py --profile {profile})"
    else:
        try:
            rows = [r for r in json.loads(path.read_text(encoding="utf-8")).get("results", []) if isinstance(r, dict)]
        except (json.JSONDecodeError, UnicodeDecodeError, AttributeError) as exc:
            out["note"] = f"not measured: {path.name} is unreadable ({exc})"
    measured = {r.get("deployment"): r for r in rows}
    for deployment in deployments:
        r = measured.get(deployment)
        out["by_deployment"][deployment] = (
            {
                "measured": True,
                "total_rss_mb": r.get("total_rss_mb"),
                "throughput_per_s": r.get("throughput_per_s"),
                "latency_ms": r.get("latency_ms"),
                "backbone_servers": r.get("backbone_servers"),
            }
            if r
            else {"measured": False}
        )
    return out


def _encoder_order(name: str) -> tuple[int, str]:
    order = ["shared", "per-domain/support", "per-domain/sentiment", "per-domain/recommender", "frozen", "pretrained"]
    return (order.index(name) if name in order else len(order), name)


def file_sha256_text(text: str) -> str:
    import hashlib

    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for package in ("torch", "sentence-transformers", "transformers", "scikit-learn", "numpy", "scipy", "matplotlib", "spine-platform"):
        try:
            found[package] = version(package)
        except PackageNotFoundError:
            found[package] = "absent"
    return found


def json_safe(value: Any) -> Any:
    """Plain JSON values: numpy scalars and arrays unwrapped, tuples as lists, paths as text, NaN and infinities as null."""
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, np.ndarray):
        return [json_safe(v) for v in value.tolist()]
    if isinstance(value, (np.bool_, bool)):
        return bool(value)
    if isinstance(value, (np.integer, int)):
        return int(value)
    if isinstance(value, (np.floating, float)):
        return float(value) if math.isfinite(float(value)) else None
    if isinstance(value, Path):
        return str(value)
    return value


def run_study(config: StudyConfig, settings: BackboneSettings | None = None) -> dict[str, Any]:
    """The whole study as a JSON-safe dict (see the module docstring for the order of checks)."""
    return json_safe(Study(config, settings or BackboneSettings()).run())


__all__ = ["STUDY_DEPLOYMENTS", "StudyConfig", "parse_deployments", "run_study", "service_artifacts"]
