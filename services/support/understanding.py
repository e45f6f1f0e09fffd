"""What the customer means: the intent (calibrated) and how far the message is from every intent.

The out-of-scope score comes from the intent head's calibrated probabilities (1 - max probability,
or normalised entropy). Its threshold is chosen on validation data only: Banking77 validation
questions as in-scope, CLINC150's out-of-scope validation queries as out-of-scope, at the point that
maximises Youden's J (out-of-scope recall minus the share of in-scope questions wrongly flagged).
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from shared_backbone.client import BackboneClient
from shared_backbone.data import load_banking77, load_clinc_out_of_scope

log = logging.getLogger(__name__)
INTENT_TASK = "intent"


def out_of_scope_scores(probabilities: np.ndarray, method: str) -> np.ndarray:
    """Higher means further from every known intent."""
    if method == "max_probability":
        return 1.0 - probabilities.max(axis=1)
    if method == "entropy":
        p = np.clip(probabilities, 1e-12, 1.0)
        return -(p * np.log(p)).sum(axis=1) / np.log(probabilities.shape[1])
    raise ValueError(f"unknown out-of-scope score '{method}'")


@dataclass(frozen=True)
class Understanding:
    embedding: np.ndarray
    ranked: list[tuple[str, float]]  # the most likely intents, best first
    oos_score: float
    out_of_scope: bool

    @property
    def intent(self) -> str:
        return self.ranked[0][0]

    @property
    def confidence(self) -> float:
        return self.ranked[0][1]


@dataclass(frozen=True)
class OutOfScopeCalibration:
    method: str
    threshold: float
    validation_auroc: float
    in_scope_kept: float
    out_of_scope_caught: float
    backbone_id: str


def choose_threshold(in_scope: np.ndarray, out_of_scope: np.ndarray) -> tuple[float, float, float, float]:
    """Threshold, AUROC, share of in-scope kept and of out-of-scope caught, at Youden's J."""
    from sklearn.metrics import roc_auc_score, roc_curve  # here: a running bot reads its cached threshold, and sklearn costs ~100 MB

    labels = np.r_[np.zeros(len(in_scope)), np.ones(len(out_of_scope))]
    scores = np.r_[in_scope, out_of_scope]
    fpr, tpr, thresholds = roc_curve(labels, scores)
    best = int(np.argmax(tpr - fpr))
    threshold = float(min(thresholds[best], 1.0))
    return threshold, float(roc_auc_score(labels, scores)), float((in_scope < threshold).mean()), float((out_of_scope >= threshold).mean())


def calibrate_out_of_scope(client: BackboneClient, method: str, data_dir: Path, cache_dir: Path | None = None) -> OutOfScopeCalibration:
    """Choose the out-of-scope threshold on validation data (cached per backbone and method)."""
    info = client.info()
    cache = cache_dir / f"{re.sub(r'[^A-Za-z0-9_.-]', '_', info.backbone_id)}-{method}.json" if cache_dir else None
    if cache is not None and cache.is_file():
        return OutOfScopeCalibration(**json.loads(cache.read_text(encoding="utf-8")))
    in_scope = [r.text for r in load_banking77(data_dir, seed=info.seed).validation]
    oos = load_clinc_out_of_scope(data_dir).validation
    probabilities = client.predict(INTENT_TASK, in_scope + oos).probabilities
    scores = out_of_scope_scores(probabilities, method)
    threshold, auroc, kept, caught = choose_threshold(scores[: len(in_scope)], scores[len(in_scope) :])
    calibration = OutOfScopeCalibration(method, threshold, auroc, kept, caught, info.backbone_id)
    log.info(
        "out-of-scope threshold %.3f (validation AUROC %.3f, in-scope kept %.3f, out-of-scope caught %.3f)", threshold, auroc, kept, caught
    )
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        cache.write_text(json.dumps(asdict(calibration)), encoding="utf-8")
    return calibration


def understand(client: BackboneClient, texts: list[str], method: str, threshold: float, top: int = 3) -> list[Understanding]:
    """One forward pass for a batch of messages."""
    embeddings, predictions = client.analyse(texts, [INTENT_TASK])
    prediction = predictions[INTENT_TASK]
    scores = out_of_scope_scores(prediction.probabilities, method)
    out = []
    for row, probs in enumerate(prediction.probabilities):
        order = np.argsort(-probs)[:top]
        ranked = [(prediction.labels[i], float(probs[i])) for i in order]
        out.append(Understanding(embeddings[row], ranked, float(scores[row]), bool(scores[row] >= threshold)))
    return out
