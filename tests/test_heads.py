from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from shared_backbone.errors import ArtifactError
from shared_backbone.heads import ClassifierHead, classification_metrics, expected_calibration_error, fit_temperature


def _blobs(seed: int, n: int = 60) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = np.eye(3, 8) * 3
    labels = rng.integers(0, 3, n)
    x = centres[labels] + rng.normal(0, 0.3, (n, 8))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32), labels


def test_head_separates_blobs_and_round_trips(tmp_path: Path) -> None:
    x, y = _blobs(0)
    vx, vy = _blobs(1)
    head = ClassifierHead.fit("demo", ("a", "b", "c"), x, y, vx, vy)
    assert head.evaluate(vx, vy)["accuracy"] == 1.0
    head.save(tmp_path)
    again = ClassifierHead.load(tmp_path, "demo")
    np.testing.assert_allclose(again.predict_proba(vx), head.predict_proba(vx), rtol=1e-6)
    assert again.labels == ("a", "b", "c") and again.temperature == pytest.approx(head.temperature)
    assert again.origin == head.origin == "logistic-regression"


def test_a_head_remembers_where_its_weights_came_from(tmp_path: Path) -> None:
    x, y = _blobs(0)
    head = ClassifierHead("demo", ("a", "b", "c"), np.eye(3, 8, dtype=np.float32) * 5, np.zeros(3, dtype=np.float32), origin="fine-tuned")
    assert head.evaluate(x, y)["accuracy"] == 1.0
    head.save(tmp_path)
    assert ClassifierHead.load(tmp_path, "demo").origin == "fine-tuned"
    meta = json.loads((tmp_path / "demo.json").read_text())
    del meta["origin"]  # a head saved before origins were recorded was a logistic regression
    (tmp_path / "demo.json").write_text(json.dumps(meta))
    assert ClassifierHead.load(tmp_path, "demo").origin == "logistic-regression"


def test_classes_absent_from_training_are_never_predicted() -> None:
    x, y = _blobs(0)
    keep = y < 2
    head = ClassifierHead.fit("demo", ("a", "b", "c", "d"), x[keep], y[keep])
    probs = head.predict_proba(x)
    assert probs.shape == (len(x), 4)
    assert probs[:, 2:].max() < 1e-6


def test_temperature_softens_overconfident_logits() -> None:
    # logits say 99.9% but the prediction is right only 3 times in 4
    logits = np.array([[10.0, 0.0]] * 4)
    labels = np.array([0, 0, 0, 1])
    t = fit_temperature(logits, labels)
    calibrated = np.exp(logits[0] / t) / np.exp(logits[0] / t).sum()
    assert calibrated[0] == pytest.approx(0.75, abs=0.01)


def test_metrics_on_a_hand_computed_case() -> None:
    metrics = classification_metrics(np.array([0, 0, 1, 1]), np.array([0, 1, 1, 1]))
    assert metrics["accuracy"] == 0.75
    assert metrics["macro_f1"] == pytest.approx((2 / 3 + 0.8) / 2)
    probs = np.array([[0.9, 0.1], [0.9, 0.1]])
    assert expected_calibration_error(probs, np.array([0, 1])) == pytest.approx(0.4)


def test_wrong_dimension_and_corrupt_files(tmp_path: Path) -> None:
    x, y = _blobs(0)
    head = ClassifierHead.fit("demo", ("a", "b", "c"), x, y)
    with pytest.raises(ValueError, match="dimension 8"):
        head.predict_proba(np.zeros((1, 5), dtype=np.float32))
    with pytest.raises(ArtifactError, match="missing"):
        ClassifierHead.load(tmp_path, "demo")
    head.save(tmp_path)
    (tmp_path / "demo.safetensors").write_bytes(b"garbage")
    with pytest.raises(ArtifactError, match="corrupt"):
        ClassifierHead.load(tmp_path, "demo")
    head.save(tmp_path)
    (tmp_path / "demo.json").write_text('{"format": 99, "kind": "classifier", "labels": []}', encoding="utf-8")
    with pytest.raises(ArtifactError, match="unknown head format"):
        ClassifierHead.load(tmp_path, "demo")


def test_one_class_is_refused() -> None:
    x, _ = _blobs(0)
    with pytest.raises(ValueError, match="two classes"):
        ClassifierHead.fit("demo", ("a", "b"), x, np.zeros(len(x), dtype=int))
