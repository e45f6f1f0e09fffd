"""Fine-tuning, one code path for every deployment shape.

``shared`` trains one encoder on all tasks (a multi-dataset run of sentence-transformers' trainer),
``per-domain`` trains one encoder per service on that service's tasks with the very same function,
``frozen`` skips encoder training. Every encoder then gets its heads fitted on its own embeddings
and is evaluated the same way, so differences between deployments come from the encoder alone.
"""

from __future__ import annotations

import itertools
import logging
import platform
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from shared_backbone.artifacts import (
    ENCODER_DIR,
    HEADS_DIR,
    MANIFEST,
    ArtifactStore,
    Manifest,
    backbone_id,
    encoder_fingerprint,
    file_sha256,
)
from shared_backbone.cache import EmbeddingCache
from shared_backbone.data import (
    ClassificationData,
    LabeledText,
    Movie,
    load_banking77,
    load_financial_sentiment,
    load_financial_topic,
    load_movielens,
)
from shared_backbone.encoder import Backbone, load_sentence_transformer
from shared_backbone.errors import ConfigError
from shared_backbone.evaluation import ranking_metrics, top_k
from shared_backbone.heads import ClassifierHead, fit_temperature
from shared_backbone.settings import BackboneSettings, packaged_model_path
from shared_backbone.tasks import TASKS, Profile, artifact_id, encoder_groups, parse_deployment, parse_profile, parse_sampling
from shared_backbone.text import encoder_text

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

log = logging.getLogger(__name__)
POSITIVE_RATING = 4.0
# new encoders learn (and so always read) texts without web links; the manifest records it, so
# artifacts trained before still read links as they learned to
STRIP_LINKS = True
CLASSIFICATION_LOADERS: dict[str, Callable[..., ClassificationData]] = {
    "intent": load_banking77,
    "sentiment": load_financial_sentiment,
    "topic": load_financial_topic,
}
DATA_FILES = {
    "intent": ("banking77/train.csv", "banking77/test.csv", "banking77/categories.json"),
    "sentiment": ("twitter_financial_news_sentiment/sent_train.csv", "twitter_financial_news_sentiment/sent_valid.csv"),
    "topic": (
        "twitter_financial_news_topic/train.parquet",
        "twitter_financial_news_topic/validation.parquet",
        "twitter_financial_news_topic/classes.txt",
    ),
    "recommendation": ("movielens_latest_small/movies.csv", "movielens_latest_small/ratings.csv", "movielens_latest_small/tags.csv"),
}


# --- data for one run ----------------------------------------------------------------------------


@dataclass
class RecommendationData:
    """Co-liked item pairs to train on, and users with held-out likes to evaluate on."""

    movies: dict[int, Movie]
    catalogue: list[int]
    pairs: list[tuple[str, str]]
    history: dict[str, dict[int, list[int]]] = field(default_factory=dict)  # split -> user -> liked before it
    seen: dict[str, dict[int, set[int]]] = field(default_factory=dict)  # split -> user -> rated before it
    held_out: dict[str, dict[int, set[int]]] = field(default_factory=dict)  # split -> user -> liked in it


@dataclass
class RunData:
    classification: dict[str, ClassificationData]
    recommendation: RecommendationData | None
    data_hashes: dict[str, str]


def _sample(records: list, limit: int | None, rng: np.random.Generator) -> list:
    if limit is None or len(records) <= limit:
        return list(records)
    return [records[i] for i in sorted(rng.choice(len(records), size=limit, replace=False))]


def prepare_recommendation(data_dir: Path, profile: Profile, seed: int) -> RecommendationData:
    movielens = load_movielens(data_dir)
    rng = np.random.default_rng(seed)
    likes: dict[str, dict[int, list[int]]] = {split: defaultdict(list) for split in ("train", "validation", "test")}
    rated: dict[str, dict[int, set[int]]] = {split: defaultdict(set) for split in ("train", "validation", "test")}
    for split, ratings in (("train", movielens.train), ("validation", movielens.validation), ("test", movielens.test)):
        for r in sorted(ratings, key=lambda r: (r.user_id, r.timestamp, r.movie_id)):
            rated[split][r.user_id].add(r.movie_id)
            if r.rating >= POSITIVE_RATING:
                likes[split][r.user_id].append(r.movie_id)
    # training pairs: consecutive likes of one user in the training period
    all_pairs = []
    for user in sorted(likes["train"]):
        items = likes["train"][user]
        all_pairs.extend((a, b) for a, b in itertools.pairwise(items) if a != b)
    pairs = _sample(all_pairs, profile.recommendation_pairs, rng)
    movies = movielens.movies
    data = RecommendationData(movies, [], [(movies[a].text(), movies[b].text()) for a, b in pairs])
    needed: set[int] = set()
    for split, before in (("validation", ("train",)), ("test", ("train", "validation"))):
        users = sorted(u for u in likes[split] if any(likes[b].get(u) for b in before))
        users = _sample(users, profile.evaluation_users, rng)
        data.history[split] = {u: [i for b in before for i in likes[b].get(u, [])] for u in users}
        data.seen[split] = {u: set().union(*(rated[b].get(u, set()) for b in before)) for u in users}
        data.held_out[split] = {u: set(likes[split][u]) - data.seen[split][u] for u in users}
        data.held_out[split] = {u: items for u, items in data.held_out[split].items() if items}
        for u in users:
            needed.update(data.history[split][u])
            needed.update(data.held_out[split].get(u, ()))
    others = sorted(set(movies) - needed)
    room = None if profile.catalogue_size is None else max(profile.catalogue_size - len(needed), 0)
    data.catalogue = sorted(needed | set(_sample(others, room, rng)))
    return data


def prepare_data(tasks: Iterable[str], profile: Profile, seed: int, data_dir: Path) -> RunData:
    """Load and subsample every task's data for one training run."""
    rng = np.random.default_rng(seed)
    classification = {}
    recommendation = None
    hashes = {}
    for task in tasks:
        for name in DATA_FILES[task]:
            path = data_dir / name
            hashes[name] = file_sha256(path)[:16] if path.is_file() else "missing"
        if TASKS[task].kind == "classification":
            full = CLASSIFICATION_LOADERS[task](data_dir, seed=seed)
            classification[task] = ClassificationData(
                full.name,
                full.labels,
                _sample(full.train, profile.train_per_task, rng),
                _sample(full.validation, profile.eval_per_task, rng),
                _sample(full.test, profile.eval_per_task, rng),
            )
        else:
            recommendation = prepare_recommendation(data_dir, profile, seed)
    return RunData(classification, recommendation, hashes)


# --- the fine-tuning objective -------------------------------------------------------------------


def _classification_loss(model: SentenceTransformer, num_labels: int):
    """Cross-entropy through a linear layer on the unit embeddings (kept as a candidate head after)."""
    import torch
    from sentence_transformers.base.losses.merged_forward import embed_columns

    class ClassificationLoss(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model
            self.classifier = torch.nn.Linear(model.get_embedding_dimension(), num_labels)
            self.scale = 16.0  # unit vectors give tiny logits; scaling lets the layer learn at a sane rate

        def forward(self, sentence_features, labels):
            (embeddings,) = embed_columns(self.model, sentence_features)
            logits = self.classifier(embeddings * self.scale)
            return torch.nn.functional.cross_entropy(logits, labels.view(-1))

        def head_arrays(self) -> tuple[np.ndarray, np.ndarray]:
            """The trained layer as a head on unit embeddings: the scale folded into the weight."""
            with torch.no_grad():
                weight = (self.classifier.weight * self.scale).cpu().numpy().astype(np.float32)
                return weight, self.classifier.bias.cpu().numpy().astype(np.float32)

    return ClassificationLoss()


def fine_tune(
    model: SentenceTransformer,
    data: RunData,
    tasks: tuple[str, ...],
    profile: Profile,
    seed: int,
    sampling: str,
    progress: bool,
    strip_links: bool = STRIP_LINKS,
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Multi-task fine-tuning with sentence-transformers' trainer (one dataset and loss per task).

    Texts go in as the encoder will read them when served (``encoder_text``). Returns each
    classification task's trained layer (weight, bias) on the unit embeddings.
    """

    def read(text: str) -> str:
        return encoder_text(text, strip_links=strip_links)

    from datasets import Dataset, DatasetDict
    from sentence_transformers import SentenceTransformerTrainer, SentenceTransformerTrainingArguments
    from sentence_transformers.base.sampler import MultiDatasetBatchSamplers
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss

    train_sets, losses = {}, {}
    for task in tasks:
        if TASKS[task].kind == "classification":
            split = data.classification[task]
            records = split.train * profile.passes(task)
            train_sets[task] = Dataset.from_dict({"text": [read(r.text) for r in records], "label": [r.label for r in records]})
            losses[task] = _classification_loss(model, len(split.labels))
        elif data.recommendation is not None and data.recommendation.pairs:
            anchors, positives = zip(*data.recommendation.pairs, strict=True)
            train_sets[task] = Dataset.from_dict({"anchor": [read(t) for t in anchors], "positive": [read(t) for t in positives]})
            losses[task] = MultipleNegativesRankingLoss(model)
    has_classifier = any(TASKS[task].kind == "classification" for task in train_sets)
    sampler = MultiDatasetBatchSamplers.PROPORTIONAL if sampling == "proportional" else MultiDatasetBatchSamplers.ROUND_ROBIN
    with tempfile.TemporaryDirectory(prefix="spine-train-") as scratch:
        args = SentenceTransformerTrainingArguments(
            output_dir=scratch,
            num_train_epochs=profile.epochs,
            per_device_train_batch_size=profile.batch_size,
            learning_rate=profile.learning_rate,
            learning_rate_mapping={r"classifier\.": profile.head_learning_rate} if has_classifier else None,
            warmup_steps=0.1,  # a float is a ratio of all steps in transformers 5
            seed=seed,
            data_seed=seed,
            multi_dataset_batch_sampler=sampler,
            save_strategy="no",
            report_to="none",
            logging_steps=50,
            use_cpu=True,
            dataloader_num_workers=0,
            disable_tqdm=not progress,
        )
        trainer = SentenceTransformerTrainer(model=model, args=args, train_dataset=DatasetDict(train_sets), loss=losses)
        trainer.train()
    return {task: loss.head_arrays() for task, loss in losses.items() if hasattr(loss, "head_arrays")}


# --- heads and evaluation ------------------------------------------------------------------------


def _encode_split(backbone: Backbone, records: list[LabeledText], progress: bool) -> tuple[np.ndarray, np.ndarray]:
    return backbone.encode([r.text for r in records], show_progress=progress), np.array([r.label for r in records], dtype=np.int64)


def fit_classification_heads(
    backbone: Backbone,
    data: RunData,
    tasks: Iterable[str],
    seed: int,
    progress: bool = False,
    fine_tuned: Mapping[str, tuple[np.ndarray, np.ndarray]] | None = None,
) -> tuple[dict[str, ClassifierHead], dict[str, dict[str, dict[str, float]]]]:
    """One head per classification task: a logistic regression on the embeddings, or the layer
    trained with the encoder (``fine_tuned``) when it scores a higher macro-F1 on validation.

    A logistic regression refitted on the training texts meets embeddings the encoder has already
    pulled apart, so it can trust them too much; the co-trained layer has seen them move.
    """
    heads, metrics = {}, {}
    for task in tasks:
        if TASKS[task].kind != "classification":
            continue
        split = data.classification[task]
        train_x, train_y = _encode_split(backbone, split.train, progress)
        val_x, val_y = _encode_split(backbone, split.validation, progress)
        test_x, test_y = _encode_split(backbone, split.test, progress)
        head = ClassifierHead.fit(task, split.labels, train_x, train_y, val_x, val_y, seed=seed)
        choice = {"logistic_regression_validation_macro_f1": head.evaluate(val_x, val_y)["macro_f1"]}
        if fine_tuned and task in fine_tuned and len(val_y):
            weight, bias = fine_tuned[task]
            trained = ClassifierHead(task, split.labels, weight, bias, origin="fine-tuned")
            trained.temperature = fit_temperature(trained.logits(val_x), val_y)
            choice["fine_tuned_validation_macro_f1"] = trained.evaluate(val_x, val_y)["macro_f1"]
            if choice["fine_tuned_validation_macro_f1"] > choice["logistic_regression_validation_macro_f1"]:
                head = trained
        choice["fine_tuned_chosen"] = float(head.origin == "fine-tuned")
        heads[task] = head
        metrics[task] = {"validation": head.evaluate(val_x, val_y), "test": head.evaluate(test_x, test_y), "head_choice": choice}
    return heads, metrics


def evaluate_recommendation(
    backbone: Backbone, rec: RecommendationData, progress: bool = False, k: int = 10
) -> dict[str, dict[str, float]]:
    """Content-only ranking over the catalogue: profile = mean of the user's liked items."""
    items = backbone.encode([rec.movies[m].text() for m in rec.catalogue], show_progress=progress)
    position = {movie: i for i, movie in enumerate(rec.catalogue)}
    out = {}
    for split in ("validation", "test"):
        ranked, relevant = [], []
        for user, truth in rec.held_out.get(split, {}).items():
            liked = [position[m] for m in rec.history[split][user] if m in position]
            if not liked:
                continue
            profile = items[liked].mean(axis=0)
            seen = [position[m] for m in rec.seen[split][user] if m in position]
            ranked.append([rec.catalogue[i] for i in top_k(items @ profile, k, seen)])
            relevant.append(truth)
        out[split] = ranking_metrics(ranked, relevant, k, len(rec.catalogue))
    return out


# --- one artifact, one deployment ----------------------------------------------------------------


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    found = {"python": platform.python_version()}
    for package in ("torch", "sentence-transformers", "transformers", "scikit-learn"):
        try:
            found[package] = version(package)
        except PackageNotFoundError:
            found[package] = "absent"
    return found


def hyperparameters(profile: Profile) -> dict[str, float | int | dict[str, int] | None]:
    """A profile's settings as its manifests record them."""
    return {k: dict(v) if k == "task_passes" else v for k, v in asdict(profile).items() if k != "name"}


def train_encoder(
    store: ArtifactStore,
    deployment: str,
    group: str,
    tasks: tuple[str, ...],
    profile: Profile,
    seed: int,
    sampling: str,
    base_model: Path,
    data: RunData,
    settings: BackboneSettings,
    cache: EmbeddingCache | None,
    progress: bool,
) -> Manifest:
    aid = artifact_id(deployment, group, profile.name, seed)
    log.info("training %s on %s", aid, ", ".join(tasks))
    with store.staging(aid) as stage:
        started = time.perf_counter()
        model = load_sentence_transformer(base_model)
        model.max_seq_length = profile.max_seq_length
        fine_tuned: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        if deployment != "frozen":
            import transformers

            transformers.set_seed(seed)
            fine_tuned = fine_tune(model, data, tasks, profile, seed, sampling, progress, STRIP_LINKS)
        model.save(str(stage / ENCODER_DIR), safe_serialization=True)
        training_seconds = time.perf_counter() - started
        fingerprint = encoder_fingerprint(stage / ENCODER_DIR)
        # evaluate what was saved, not what is in memory: the artifact is what gets served
        backbone = Backbone(
            stage / ENCODER_DIR,
            backbone_id(aid, fingerprint, STRIP_LINKS),
            threads=settings.threads,
            batch_size=settings.encode_batch_size,
            max_seq_length=profile.max_seq_length,
            cache=cache,
            strip_links=STRIP_LINKS,
        )
        heads, metrics = fit_classification_heads(backbone, data, tasks, seed, progress, fine_tuned)
        if "recommendation" in tasks and data.recommendation is not None:
            metrics["recommendation"] = evaluate_recommendation(backbone, data.recommendation, progress)
        for head in heads.values():
            head.save(stage / HEADS_DIR)
        manifest = Manifest(
            id=aid,
            base_model=str(base_model),
            deployment=deployment,
            group=group,
            services=sorted({TASKS[t].service for t in tasks}),
            tasks=list(tasks),
            heads=sorted(heads),
            profile=profile.name,
            seed=seed,
            sampling=sampling,
            hyperparameters=hyperparameters(profile),
            data_hashes={name: h for name, h in data.data_hashes.items() if any(name in DATA_FILES[t] for t in tasks)},
            fingerprint=fingerprint,
            training_seconds=round(training_seconds, 2),
            parameter_count=backbone.parameter_count(),
            embedding_dimension=backbone.dimension,
            max_seq_length=profile.max_seq_length,
            strip_links=STRIP_LINKS,
            created_at=datetime.now(UTC).isoformat(timespec="seconds"),
            versions=_versions(),
            metrics=metrics,
        )
        (stage / MANIFEST).write_text(manifest.model_dump_json(indent=2), encoding="utf-8")
    return manifest


def train_deployment(
    deployment: str,
    profile: str,
    settings: BackboneSettings | None = None,
    *,
    seed: int | None = None,
    sampling: str = "proportional",
    epochs: float | None = None,
    progress: bool = True,
) -> list[Manifest]:
    """Train (or, for ``frozen``, just fit heads for) every encoder a deployment serves.

    ``epochs`` overrides the profile's number of passes over the training data.
    """
    settings = settings or BackboneSettings()
    deployment = parse_deployment(deployment)
    chosen = parse_profile(profile)
    if epochs is not None:
        if not 0 < epochs <= 20:
            raise ConfigError(f"epochs must be in (0, 20], got {epochs}")
        chosen = replace(chosen, epochs=epochs)
    sampling = parse_sampling(sampling)
    seed = settings.seed if seed is None else seed
    base_model = settings.base_model or packaged_model_path()
    groups = encoder_groups(deployment)
    all_tasks = tuple(dict.fromkeys(t for tasks in groups.values() for t in tasks))
    data = prepare_data(all_tasks, chosen, seed, settings.data_dir)
    store = ArtifactStore(settings.backbones_dir)
    cache = EmbeddingCache(settings.cache_dir / "embeddings.sqlite") if settings.embedding_cache else None
    if settings.threads:
        import torch

        torch.set_num_threads(settings.threads)
    try:
        return [
            train_encoder(store, deployment, group, tasks, chosen, seed, sampling, base_model, data, settings, cache, progress)
            for group, tasks in groups.items()
        ]
    finally:
        if cache is not None:
            cache.close()
