"""Faults injected into one backbone, in memory, to measure the blast radius: how many services degrade, and how much.

Two faults, both on a copy of the encoder (the artifact on disk is never touched, the heads are kept as trained, nothing
is re-fitted, and no embedding cache is used, since the cache is keyed by the artifact's weights):

* weight noise: every floating-point parameter tensor W gets Gaussian noise of standard deviation scale * std(W)
  (tensors with one element or no spread are left alone), from a seeded ``torch.Generator``;
* a bad update: a few AdamW steps of fine-tuning on one task's training texts with their labels shuffled (a
  mislabelled batch shipped as an update), through a fresh linear classifier on the scaled unit embeddings, the same
  objective ``shared_backbone.training`` fine-tunes with.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from shared_backbone.client import BackboneInfo, TaskPrediction
from shared_backbone.encoder import Backbone, CachedEncoder, load_sentence_transformer
from shared_backbone.errors import ConfigError
from shared_backbone.heads import ClassifierHead

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

CLASSIFIER_SCALE = 16.0  # as in shared_backbone.training._classification_loss


def load_encoder(encoder_dir: Path, max_seq_length: int, threads: int) -> SentenceTransformer:
    import torch

    torch.set_num_threads(threads)
    model = load_sentence_transformer(encoder_dir)
    model.max_seq_length = max_seq_length
    return model


def with_weight_noise(model: SentenceTransformer, scale: float, seed: int) -> SentenceTransformer:
    """A copy of ``model`` with noise of ``scale`` times each weight tensor's own standard deviation added."""
    import torch

    if scale < 0:
        raise ConfigError(f"noise scale must not be negative, got {scale}")
    noisy = copy.deepcopy(model)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for _, parameter in sorted(noisy.named_parameters(), key=lambda item: item[0]):
            if not parameter.is_floating_point() or parameter.numel() < 2:
                continue
            spread = float(parameter.float().std())
            if spread > 0 and scale > 0:
                noise = torch.randn(parameter.shape, generator=generator, dtype=torch.float32) * (scale * spread)
                parameter.add_(noise.to(parameter.dtype))
    noisy.eval()
    return noisy


def bad_updates(
    model: SentenceTransformer,
    texts: Sequence[str],
    labels: Sequence[int],
    num_labels: int,
    checkpoints: Sequence[int],
    *,
    batch_size: int,
    learning_rate: float,
    seed: int,
) -> Iterator[tuple[int, SentenceTransformer]]:
    """Fine-tune a copy of ``model`` on ``texts`` with ``labels`` shuffled; yield (steps so far, a frozen copy) at each checkpoint.

    Batches cycle through a seeded permutation of the texts; dropout is on during the steps, as in training.
    """
    import torch

    if not texts or len(texts) != len(labels):
        raise ConfigError("a bad update needs training texts with one label each")
    rng = np.random.default_rng(seed)
    shuffled = np.asarray(labels, dtype=np.int64)[rng.permutation(len(labels))]
    torch.manual_seed(seed)
    working = copy.deepcopy(model)
    classifier = torch.nn.Linear(working.get_embedding_dimension(), num_labels)
    optimiser = torch.optim.AdamW(list(working.parameters()) + list(classifier.parameters()), lr=learning_rate)
    order = rng.permutation(len(texts))
    steps, position = 0, 0
    for checkpoint in sorted(set(checkpoints)):
        working.train()
        while steps < checkpoint:
            batch = [int(order[(position + i) % len(order)]) for i in range(min(batch_size, len(order)))]
            position += len(batch)
            features = working.preprocess([texts[i] for i in batch])
            embeddings = working(features)["sentence_embedding"]
            loss = torch.nn.functional.cross_entropy(classifier(embeddings * CLASSIFIER_SCALE), torch.as_tensor(shuffled[batch]))
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            steps += 1
        snapshot = copy.deepcopy(working)
        snapshot.eval()
        yield steps, snapshot


class InMemoryBackbone(Backbone):
    """A ``Backbone`` around a model held in memory (a faulted copy); never cached, since its weights are nowhere else."""

    def __init__(self, model: SentenceTransformer, backbone_id: str, *, batch_size: int = 32, strip_links: bool = False) -> None:
        CachedEncoder.__init__(self, backbone_id, batch_size=batch_size, cache=None, strip_links=strip_links)
        self.model_path = Path("<memory>")
        self.threads = None
        self.max_seq_length = model.max_seq_length
        self._model = model


class StaticClient:
    """A ``BackboneClient`` over one encoder and a set of heads: how a service sees a faulted backbone."""

    def __init__(self, encoder: CachedEncoder, heads: Mapping[str, ClassifierHead], info: BackboneInfo) -> None:
        self.encoder, self.heads, self._info = encoder, dict(heads), info

    def warm_up(self) -> None:
        self.encoder.warm_up()

    def info(self) -> BackboneInfo:
        return self._info

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        return self.encoder.encode(list(texts))

    def predict(self, task: str, texts: Sequence[str]) -> TaskPrediction:
        return self.analyse(texts, [task])[1][task]

    def analyse(self, texts: Sequence[str], tasks: Sequence[str]) -> tuple[np.ndarray, dict[str, TaskPrediction]]:
        missing = [t for t in tasks if t not in self.heads]
        if missing:
            raise ConfigError(f"backbone '{self._info.artifact_id}' has no head for {', '.join(missing)}")
        embeddings = self.encode(texts)
        return embeddings, {t: TaskPrediction(t, self.heads[t].labels, self.heads[t].predict_proba(embeddings)) for t in tasks}
