"""Train on torch, serve on ONNX: export round trip, parity, refusals, backend choice, and a torch-free server."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from shared_backbone.artifacts import MANIFEST, ArtifactStore
from shared_backbone.client import InProcessBackboneClient
from shared_backbone.errors import ArtifactError
from shared_backbone.onnx_backend import OnnxBackbone
from shared_backbone.onnx_export import Probe, export_artifact, verify
from shared_backbone.settings import BackboneSettings

PROBE = ["my card has not arrived", "$TSLA shares plunge after the recall", "Toy Story (1995) Genres: Animation.", "refund", "x"]


@pytest.fixture(scope="module")
def exported(trained_shared: BackboneSettings, tmp_path_factory: pytest.TempPathFactory) -> tuple[ArtifactStore, dict[str, dict]]:
    root = shutil.copytree(trained_shared.backbones_dir, tmp_path_factory.mktemp("onnx") / "backbones")
    store = ArtifactStore(root)
    # the production probe size: with 40 texts a task one flipped prediction is 2.5 points, over the 0.5-point limit
    return store, export_artifact(store, "shared-smoke", probe_per_task=300, threads=2)


def test_export_writes_both_graphs_and_records_them_in_the_manifest(exported: tuple[ArtifactStore, dict[str, dict]]) -> None:
    store, exports = exported
    recorded = store.manifest("shared-smoke").exports
    assert set(recorded) == {"onnx", "onnx-int8"} and recorded == exports
    for backend, export in recorded.items():
        assert (store.path("shared-smoke") / export["file"]).stat().st_size == export["bytes"] > 0
        assert len(export["sha256"]) == 64 and len(export["tokenizer_sha256"]) == 64 and export["probe_texts"] == 300 * 3 + 300
        assert export["servable"] == (not export["reason"]), backend
    assert recorded["onnx"]["cosine_min"] > 0.999 and recorded["onnx"]["servable"]
    assert recorded["onnx-int8"]["recipe"] in {"all-matmuls", "ffn-down-fp32", "ffn-fp32"} and recorded["onnx-int8"]["recipes_tried"]
    assert recorded["onnx-int8"]["bytes"] < recorded["onnx"]["bytes"]


def test_onnx_backends_agree_with_torch(exported: tuple[ArtifactStore, dict[str, dict]]) -> None:
    store, exports = exported
    assert exports["onnx-int8"]["servable"], exports["onnx-int8"]["recipes_tried"]  # some recipe must hold even on the tiny encoder
    clients = {b: InProcessBackboneClient(store.root, "shared-smoke", backend=b) for b in ("torch", "onnx", "onnx-int8")}
    vectors = {b: c.encode(PROBE) for b, c in clients.items()}
    np.testing.assert_allclose(vectors["onnx"], vectors["torch"], atol=1e-4)
    assert np.all(np.sum(vectors["onnx-int8"] * vectors["torch"], axis=1) > 0.9)
    intents = {b: [label for label, _ in c.predict("intent", PROBE).best()] for b, c in clients.items()}
    assert intents["onnx"] == intents["torch"]
    # every backend reads as the artifact was trained: without links
    linked = clients["onnx"].encode(["card never arrived https://t.co/b9vKnTeu3n", "card never arrived"])
    np.testing.assert_array_equal(linked[0], linked[1])
    info = clients["onnx-int8"].info()
    assert (
        info.backend == "onnx-int8"
        and f"+onnx-int8.{store.manifest('shared-smoke').exports['onnx-int8']['sha256'][:12]}" in info.backbone_id
    )


def test_auto_serves_the_best_verified_backend_and_says_why(
    exported: tuple[ArtifactStore, dict[str, dict]], trained_shared: BackboneSettings
) -> None:
    store, exports = exported
    expected = "onnx-int8" if exports["onnx-int8"]["servable"] else "onnx"
    assert store.choose_backend("shared-smoke", "auto") == (expected, "verified on the probe set")
    plain = ArtifactStore(trained_shared.backbones_dir)  # never exported
    backend, reason = plain.choose_backend("shared-smoke", "auto")
    assert backend == "torch" and "no onnx-int8 export" in reason and "no onnx export" in reason
    with pytest.raises(ArtifactError, match="no onnx-int8 export"):
        plain.choose_backend("shared-smoke", "onnx-int8")
    with pytest.raises(ArtifactError, match="unknown backend 'tensorrt'"):
        store.choose_backend("shared-smoke", "tensorrt")


def test_a_changed_broken_or_mismatched_graph_is_refused_and_auto_falls_back(
    exported: tuple[ArtifactStore, dict[str, dict]], tmp_path: Path
) -> None:
    source, exports = exported
    root = shutil.copytree(source.root, tmp_path / "backbones")
    store = ArtifactStore(root)
    folder = store.path("shared-smoke")
    int8 = folder / "onnx" / "model.int8.onnx"

    int8.write_bytes(int8.read_bytes()[:1000])  # changed since export
    with pytest.raises(ArtifactError, match="does not match the manifest"):
        store.open_backbone("shared-smoke", backend="onnx-int8").warm_up()
    with pytest.raises(ArtifactError, match="cannot be served on onnx-int8: model.int8.onnx is missing or does not match"):
        store.choose_backend("shared-smoke", "onnx-int8")
    backend, _ = store.choose_backend("shared-smoke", "auto")
    assert backend == ("onnx" if exports["onnx"]["servable"] else "torch")  # auto steps over the damaged graph

    not_a_graph = OnnxBackbone(int8, folder / "encoder" / "tokenizer.json", "x", backend="onnx-int8", dimension=32, max_seq_length=32)
    with pytest.raises(ArtifactError, match="not a loadable ONNX graph"):
        not_a_graph.warm_up()

    manifest_path = folder / MANIFEST
    raw = json.loads(manifest_path.read_text())
    raw["exports"]["onnx"]["sha256"] = None
    manifest_path.write_text(json.dumps(raw))
    with pytest.raises(ArtifactError, match="has no checksum"):
        store.open_backbone("shared-smoke", backend="onnx")

    raw["exports"]["onnx"]["sha256"] = exports["onnx"]["sha256"]
    raw["embedding_dimension"] = 7
    manifest_path.write_text(json.dumps(raw))
    with pytest.raises(ArtifactError, match="outputs .*-dimensional rows, the manifest says 7"):
        store.open_backbone("shared-smoke", backend="onnx").warm_up()

    (folder / "encoder" / "tokenizer.json").write_text("{}")
    assert "tokenizer.json is missing or changed" in (store.export_problem("shared-smoke", "onnx") or "")


def test_a_backend_that_failed_verification_is_never_served(exported: tuple[ArtifactStore, dict[str, dict]], tmp_path: Path) -> None:
    store = ArtifactStore(shutil.copytree(exported[0].root, tmp_path / "backbones"))
    manifest_path = store.path("shared-smoke") / MANIFEST
    raw = json.loads(manifest_path.read_text())
    for export in raw["exports"].values():
        export.update(servable=False, reason="min cosine 0.9 < 0.98")
    manifest_path.write_text(json.dumps(raw))
    with pytest.raises(ArtifactError, match=r"failed verification \(min cosine 0.9 < 0.98\)"):
        store.choose_backend("shared-smoke", "onnx-int8")
    backend, reason = store.choose_backend("shared-smoke", "auto")
    assert backend == "torch" and "onnx-int8 failed verification" in reason and "onnx failed verification" in reason


def test_verify_refuses_low_cosine_and_lost_accuracy() -> None:
    class Head:
        def predict(self, x: np.ndarray) -> np.ndarray:
            return (x[:, 0] > 0).astype(int)

    reference = np.array([[1.0, 0.0], [1.0, 0.1], [-1.0, 0.0], [-1.0, 0.1]])
    probe = Probe(["a", "b", "c", "d"], {"sentiment": ([0, 1, 2, 3], np.array([1, 1, 0, 0]))})
    assert verify(reference, reference, probe, {"sentiment": Head()})["servable"]
    flipped = reference.copy()
    flipped[1] = [-1.0, 0.1]  # one of four examples now wrong: -25 points, and cosine far below 0.98
    result = verify(reference, flipped, probe, {"sentiment": Head()})
    assert not result["servable"] and "min cosine" in result["reason"] and "sentiment accuracy -25.00 points" in result["reason"]
    assert result["head_accuracy_delta"] == {"sentiment": -0.25}
    broken = reference.copy()
    broken[0] = 0.0  # an all-zero row has no direction: its cosine is NaN, which must not slip through a "< 0.98" test
    assert verify(reference, broken, probe, {})["reason"] == "non-finite or zero embeddings"


def test_the_onnx_backbone_server_never_imports_torch(exported: tuple[ArtifactStore, dict[str, dict]]) -> None:
    store, _ = exported
    script = f"""
import sys
from fastapi.testclient import TestClient
from shared_backbone.server import BackboneServerSettings, create_backbone_app
from shared_backbone.settings import BackboneSettings
settings = BackboneServerSettings(
    artifact="shared-smoke", backend="onnx", backbone=BackboneSettings(artifacts_dir={str(store.root.parent)!r}, embedding_cache=False)
)
with TestClient(create_backbone_app(settings)) as client:
    assert client.get("/health").json()["backend"] == "onnx"
    assert client.post("/v1/analyse", json={{"input": ["hello"], "tasks": ["intent"]}}).status_code == 200
print(sorted(m for m in ("torch", "sentence_transformers", "transformers", "sklearn", "scipy") if m in sys.modules))
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd=Path(__file__).parents[1])
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "[]"
