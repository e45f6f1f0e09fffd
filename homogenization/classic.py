"""The ``classic`` deployment: no neural encoder at all, the pre-foundation-model baseline.

Text tasks get TF-IDF over word 1-2 grams and a multinomial logistic regression each, fitted on the same training
examples the neural heads see; the recommender gets plain EASE (``services.recommender.collaborative``, the model its
own evaluation reports as the classic baseline). ``ClassicClient`` offers the ``BackboneClient`` interface so the
support and sentiment services' own code paths (``understand``, ``predict``) score it exactly as they score a backbone.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from shared_backbone.client import BackboneInfo, TaskPrediction
from shared_backbone.data import ClassificationData
from shared_backbone.errors import ConfigError

TFIDF_SETTINGS = {"ngram_range": (1, 2), "sublinear_tf": True, "min_df": 1, "lowercase": True}
LOGISTIC_C = 10.0  # the neural heads' C (shared_backbone.heads.ClassifierHead.fit)


@dataclass
class TfidfClassifier:
    """TF-IDF 1-2 grams + logistic regression, with probabilities over every label of the task (unseen labels get 0)."""

    task: str
    labels: tuple[str, ...]
    pipeline: object

    @classmethod
    def fit(cls, data: ClassificationData, seed: int) -> TfidfClassifier:
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline

        texts, labels = [r.text for r in data.train], [r.label for r in data.train]
        if len(set(labels)) < 2:
            raise ConfigError(f"classic {data.name}: the training sample needs at least two classes")
        pipeline = make_pipeline(TfidfVectorizer(**TFIDF_SETTINGS), LogisticRegression(C=LOGISTIC_C, max_iter=2000, random_state=seed))
        with warnings.catch_warnings():  # the smoke sample has more classes than half its rows
            warnings.filterwarnings("ignore", category=UserWarning)
            pipeline.fit(texts, labels)
        return cls(data.name, tuple(data.labels), pipeline)

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        model = self.pipeline.steps[-1][1]  # type: ignore[attr-defined]
        out = np.zeros((len(texts), len(self.labels)), dtype=np.float64)
        out[:, model.classes_] = self.pipeline.predict_proba(list(texts))  # type: ignore[attr-defined]
        return out

    def parameter_count(self) -> int:
        model = self.pipeline.steps[-1][1]  # type: ignore[attr-defined]
        return int(model.coef_.size + model.intercept_.size)

    def nbytes(self) -> int:
        model = self.pipeline.steps[-1][1]  # type: ignore[attr-defined]
        return int(model.coef_.nbytes + model.intercept_.nbytes)

    def vocabulary_size(self) -> int:
        return len(self.pipeline.steps[0][1].vocabulary_)  # type: ignore[attr-defined]


class ClassicClient:
    """The classic models behind the ``BackboneClient`` interface: ``encode`` gives one constant column (no encoder)."""

    def __init__(self, models: Mapping[str, TfidfClassifier], seed: int) -> None:
        self.models = dict(models)
        self.seed = seed

    def warm_up(self) -> None:
        return None

    def info(self) -> BackboneInfo:
        return BackboneInfo(
            artifact_id="classic",
            backbone_id="classic-tfidf",
            deployment="classic",
            dimension=1,
            tasks=tuple(self.models),
            heads=tuple(sorted(self.models)),
            parameter_count=0,
            seed=self.seed,
            backend="scikit-learn",
        )

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        return np.ones((len(texts), 1), dtype=np.float32)

    def predict(self, task: str, texts: Sequence[str]) -> TaskPrediction:
        if task not in self.models:
            raise ConfigError(f"classic has no model for task '{task}' (models: {', '.join(sorted(self.models))})")
        model = self.models[task]
        return TaskPrediction(task, model.labels, model.predict_proba(texts))

    def analyse(self, texts: Sequence[str], tasks: Sequence[str]) -> tuple[np.ndarray, dict[str, TaskPrediction]]:
        return self.encode(texts), {task: self.predict(task, texts) for task in tasks}


def fit_classic(classification: Mapping[str, ClassificationData], seed: int) -> ClassicClient:
    """One TF-IDF model per classification task, on that task's training sample."""
    return ClassicClient({task: TfidfClassifier.fit(data, seed) for task, data in classification.items()}, seed)
