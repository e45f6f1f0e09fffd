"""Task heads: small models on top of the backbone's embeddings, kept apart from the encoder.

As in SetFit, the body (encoder) and the head are separate objects: a head is fitted on embeddings,
saved beside its backbone as ``<task>.safetensors`` + ``<task>.json``, and swapped without touching
the encoder. Prediction is plain numpy, so serving a head needs no torch.
"""

from __future__ import annotations

import itertools
import json
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file, save_file

from shared_backbone.errors import ArtifactError

HEAD_FORMAT = 1


def _softmax(logits: np.ndarray) -> np.ndarray:
    """Plain numpy, so serving a head imports neither scipy nor scikit-learn (seconds and ~100 MB saved)."""
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def classification_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    from sklearn.metrics import accuracy_score, f1_score

    return {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "macro_f1": float(f1_score(y_true, y_pred, average="macro", zero_division=0)),
        "n": len(y_true),
    }


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """The temperature that minimises validation negative log-likelihood (Guo et al. 2017)."""
    from scipy.optimize import minimize_scalar
    from scipy.special import log_softmax

    def nll(log_t: float) -> float:
        scaled = log_softmax(logits / np.exp(log_t), axis=1)
        return float(-scaled[np.arange(len(labels)), labels].mean())

    result = minimize_scalar(nll, bounds=(-3.0, 3.0), method="bounded")
    return float(np.exp(result.x))


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray, bins: int = 15) -> float:
    confidence = probs.max(axis=1)
    correct = probs.argmax(axis=1) == labels
    edges = np.linspace(0.0, 1.0, bins + 1)
    error = 0.0
    for low, high in itertools.pairwise(edges):
        inside = (confidence > low) & (confidence <= high)
        if inside.any():
            error += inside.mean() * abs(correct[inside].mean() - confidence[inside].mean())
    return float(error)


@dataclass
class ClassifierHead:
    """A linear classifier on unit embeddings, with a calibration temperature.

    ``origin`` says where the weights came from: a logistic regression fitted on the embeddings
    (``fit``), or the classification layer trained together with the encoder (``fine-tuned``).
    """

    task: str
    labels: tuple[str, ...]
    weight: np.ndarray  # (classes, dim)
    bias: np.ndarray  # (classes,)
    temperature: float = 1.0
    origin: str = "logistic-regression"

    @classmethod
    def fit(
        cls,
        task: str,
        labels: tuple[str, ...],
        train_x: np.ndarray,
        train_y: np.ndarray,
        calibration_x: np.ndarray | None = None,
        calibration_y: np.ndarray | None = None,
        c: float = 10.0,
        seed: int = 0,
    ) -> ClassifierHead:
        """Fit on training embeddings; calibrate the temperature on held-out ones when given."""
        present = np.unique(train_y)
        if len(present) < 2:
            raise ValueError(f"head '{task}' needs at least two classes in its training data")
        from sklearn.linear_model import LogisticRegression

        model = LogisticRegression(C=c, max_iter=2000, random_state=seed)
        with warnings.catch_warnings():  # tiny training sets (the smoke profile) have more classes than half their rows
            warnings.filterwarnings("ignore", message="The number of unique classes", category=UserWarning)
            model.fit(train_x, train_y)
        weight = np.zeros((len(labels), train_x.shape[1]), dtype=np.float32)
        bias = np.full(len(labels), -1e4, dtype=np.float32)  # classes never seen in training: never predicted
        weight[model.classes_] = model.coef_
        bias[model.classes_] = model.intercept_
        head = cls(task, tuple(labels), weight, bias)
        if calibration_x is not None and calibration_y is not None and len(calibration_y):
            head.temperature = fit_temperature(head.logits(calibration_x), calibration_y)
        return head

    @property
    def dimension(self) -> int:
        return int(self.weight.shape[1])

    def logits(self, embeddings: np.ndarray) -> np.ndarray:
        if embeddings.ndim != 2 or embeddings.shape[1] != self.dimension:
            raise ValueError(f"head '{self.task}' expects embeddings of dimension {self.dimension}, got shape {embeddings.shape}")
        return embeddings.astype(np.float32) @ self.weight.T + self.bias

    def predict_proba(self, embeddings: np.ndarray) -> np.ndarray:
        """Calibrated class probabilities, one row per embedding."""
        return _softmax(self.logits(embeddings) / self.temperature)

    def predict(self, embeddings: np.ndarray) -> np.ndarray:
        return self.logits(embeddings).argmax(axis=1)

    def evaluate(self, embeddings: np.ndarray, labels: np.ndarray) -> dict[str, float]:
        probs = self.predict_proba(embeddings)
        metrics = classification_metrics(labels, probs.argmax(axis=1))
        metrics["ece"] = expected_calibration_error(probs, labels)
        return metrics

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        save_file({"weight": self.weight, "bias": self.bias}, str(folder / f"{self.task}.safetensors"))
        meta = {
            "format": HEAD_FORMAT,
            "kind": "classifier",
            "task": self.task,
            "labels": list(self.labels),
            "temperature": self.temperature,
            "origin": self.origin,
        }
        (folder / f"{self.task}.json").write_text(json.dumps(meta, indent=2), encoding="utf-8")

    @classmethod
    def load(cls, folder: Path, task: str) -> ClassifierHead:
        meta_path, weights_path = folder / f"{task}.json", folder / f"{task}.safetensors"
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
            tensors = load_file(str(weights_path))
        except FileNotFoundError as exc:
            raise ArtifactError(f"{folder}: head '{task}' is missing ({Path(exc.filename or '').name})") from None
        except Exception as exc:  # json or safetensors: the file is corrupt
            raise ArtifactError(f"{folder}: head '{task}' is corrupt ({exc})") from None
        if meta.get("format") != HEAD_FORMAT or meta.get("kind") != "classifier":
            raise ArtifactError(f"{meta_path}: unknown head format {meta.get('format')!r} / kind {meta.get('kind')!r}")
        weight, bias, labels = tensors.get("weight"), tensors.get("bias"), tuple(meta.get("labels", ()))
        if weight is None or bias is None or weight.shape[0] != len(labels) or bias.shape != (len(labels),):
            raise ArtifactError(f"{weights_path}: weights do not match the {len(labels)} labels in {meta_path.name}")
        return cls(task, labels, weight, bias, float(meta.get("temperature", 1.0)), str(meta.get("origin", "logistic-regression")))
