from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from shared_backbone.artifacts import ArtifactStore
from shared_backbone.client import BackboneClient, BackboneClients, DeploymentConfig, InProcessBackboneClient, load_deployment
from shared_backbone.errors import ArtifactError, ConfigError
from shared_backbone.settings import PROJECT_ROOT, BackboneSettings


@pytest.fixture
def store_copy(tmp_path: Path, trained_shared: BackboneSettings) -> ArtifactStore:
    shutil.copytree(trained_shared.backbones_dir / "shared-smoke", tmp_path / "shared-smoke")
    return ArtifactStore(tmp_path)


def _edit_manifest(store: ArtifactStore, change: dict) -> None:
    path = store.path("shared-smoke") / "manifest.json"
    raw = json.loads(path.read_text())
    raw.update(change)
    path.write_text(json.dumps(raw))


def test_manifest_of_unknown_format_is_refused(store_copy: ArtifactStore) -> None:
    _edit_manifest(store_copy, {"format_version": 7})
    with pytest.raises(ArtifactError, match="manifest format 7 is not understood"):
        store_copy.manifest("shared-smoke")


def test_manifest_with_unknown_or_bad_fields_is_refused(store_copy: ArtifactStore) -> None:
    _edit_manifest(store_copy, {"parameter_count": "many"})
    with pytest.raises(ArtifactError, match="invalid manifest at 'parameter_count'"):
        store_copy.manifest("shared-smoke")
    _edit_manifest(store_copy, {"parameter_count": 1, "surprise": True})
    with pytest.raises(ArtifactError, match="invalid manifest at 'surprise'"):
        store_copy.manifest("shared-smoke")


def test_corrupt_artifacts_are_listed_not_fatal(store_copy: ArtifactStore) -> None:
    (store_copy.path("shared-smoke") / "manifest.json").write_text("{not json")
    (store_copy.root / "empty").mkdir()
    entries = {e.id: e for e in store_copy.entries()}
    assert entries["shared-smoke"].manifest is None and "corrupt manifest" in (entries["shared-smoke"].problem or "")
    assert entries["empty"].manifest is None
    with pytest.raises(ArtifactError, match="not a valid backbone id"):
        store_copy.path("../etc")


def test_corrupt_weights_fail_on_load(store_copy: ArtifactStore) -> None:
    (store_copy.path("shared-smoke") / "encoder" / "model.safetensors").write_bytes(b"\x00" * 64)
    client = InProcessBackboneClient(store_copy.root, "shared-smoke")
    with pytest.raises(ArtifactError, match="cannot load encoder"):
        client.warm_up()


def test_in_process_client_predicts_and_encodes(trained_shared: BackboneSettings) -> None:
    client = InProcessBackboneClient(trained_shared.backbones_dir, "shared-smoke")
    assert isinstance(client, BackboneClient)
    embeddings, predictions = client.analyse(["my card has not arrived", "$TSLA falls 5%"], ["intent", "sentiment"])
    assert embeddings.shape == (2, client.info().dimension)
    assert predictions["intent"].probabilities.shape == (2, 77)
    np.testing.assert_allclose(predictions["sentiment"].probabilities.sum(axis=1), 1.0, rtol=1e-5)
    label, probability = predictions["sentiment"].best()[0]
    assert label in ("bearish", "bullish", "neutral") and 0 < probability <= 1
    np.testing.assert_allclose(client.encode(["my card has not arrived"])[0], embeddings[0], atol=1e-6)
    with pytest.raises(ConfigError, match="no head for task 'recommendation'"):
        client.predict("recommendation", ["x"])
    with pytest.raises(ConfigError, match="list of strings"):
        client.encode([1, 2])  # type: ignore[list-item]


def test_repository_deployments_are_valid() -> None:
    deploy = PROJECT_ROOT / "deploy"
    shared, per_domain, frozen = (load_deployment(name, deploy) for name in ("shared", "per-domain", "frozen"))
    assert {shared.artifact_for(s, "full") for s in ("support", "sentiment", "recommender")} == {"shared-full"}
    assert per_domain.artifact_for("support") == "per-domain-support-quick"
    assert frozen.artifact_for("sentiment", "smoke") == "frozen-smoke"
    with pytest.raises(ConfigError, match="unknown service"):
        shared.artifact_for("billing")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("name = 'x'\nshape = 'shared'\n[services]\nsupport = 'a'\n", "must name exactly"),
        ("name = 'x'\nshape = 'huge'\n[services]\nsupport='a'\nsentiment='b'\nrecommender='c'\n", "shape must be one of"),
        ("name = 'x\n", "malformed TOML"),
    ],
)
def test_bad_deployment_files(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "mine.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_deployment(str(path), tmp_path)
    with pytest.raises(ConfigError, match="unknown deployment 'nowhere'"):
        load_deployment("nowhere", tmp_path)


def test_shared_deployment_loads_one_model_for_three_services(trained_shared: BackboneSettings) -> None:
    config = load_deployment("shared", PROJECT_ROOT / "deploy")
    clients = BackboneClients(config, trained_shared, profile="smoke")
    support, sentiment = clients.for_service("support"), clients.for_service("sentiment")
    assert support is sentiment is clients.for_service("recommender")
    support.warm_up()
    assert clients.loaded_models() == 1


def test_per_domain_deployment_gives_each_service_its_own_client() -> None:
    config = DeploymentConfig(
        name="p", shape="per-domain", services={"support": "a-{profile}", "sentiment": "b-{profile}", "recommender": "c-{profile}"}
    )
    clients = BackboneClients(config, BackboneSettings(), profile="smoke")
    assert clients.artifact_ids() == {"support": "a-smoke", "recommender": "c-smoke", "sentiment": "b-smoke"}
    assert clients.for_service("support") is not clients.for_service("sentiment")
    with pytest.raises(ArtifactError, match="no backbone 'a-smoke'"):
        clients.for_service("support").warm_up()
