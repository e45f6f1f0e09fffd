"""Acceptance on the real packaged all-MiniLM-L6-v2: smoke training of both shapes through the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from shared_backbone.client import InProcessBackboneClient
from shared_backbone.encoder import Backbone
from shared_backbone.settings import packaged_model_path

pytestmark = pytest.mark.real_backbone


def _spine(*args: str, artifacts: Path) -> subprocess.CompletedProcess[str]:
    spine = Path(sys.executable).with_name("spine")
    env = {**os.environ, "SPINE_ARTIFACTS_DIR": str(artifacts), "HF_HUB_OFFLINE": "1", "COLUMNS": "250"}
    env.pop("SPINE_BASE_MODEL", None)
    return subprocess.run([str(spine), *args], capture_output=True, text=True, env=env, timeout=300)


def test_packaged_encoder_places_paraphrases_close() -> None:
    backbone = Backbone(packaged_model_path(), "pretrained")
    a, b, c = backbone.encode(["My card still has not arrived", "When will my new card be delivered?", "Tesla shares fell after earnings"])
    assert backbone.dimension == 384
    assert float(a @ b) > float(a @ c) + 0.2


def test_smoke_training_of_both_shapes_on_the_real_backbone(tmp_path: Path) -> None:
    for deployment, expected in (
        ("shared", {"shared-smoke"}),
        ("per-domain", {"per-domain-support-smoke", "per-domain-sentiment-smoke", "per-domain-recommender-smoke"}),
    ):
        started = time.perf_counter()
        result = _spine("train", "--deployment", deployment, "--profile", "smoke", "--no-progress", artifacts=tmp_path)
        elapsed = time.perf_counter() - started
        assert result.returncode == 0, result.stderr[-2000:]
        print(f"spine train --deployment {deployment} --profile smoke: {elapsed:.1f} s")
        for artifact in expected:
            manifest = json.loads((tmp_path / "backbones" / artifact / "manifest.json").read_text())
            assert manifest["parameter_count"] == 22_713_216 and manifest["base_model"].endswith("model")
    listed = _spine("backbones", "list", artifacts=tmp_path)
    assert listed.returncode == 0
    for artifact in ("shared-smoke", "per-domain-support-smoke", "per-domain-sentiment-smoke", "per-domain-recommender-smoke"):
        assert artifact in listed.stdout
    client = InProcessBackboneClient(tmp_path / "backbones", "shared-smoke")
    prediction = client.predict("sentiment", ["Stocks rally as earnings beat expectations"])
    assert np.isclose(prediction.probabilities.sum(), 1.0)
