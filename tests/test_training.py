from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from shared_backbone import training
from shared_backbone.artifacts import ArtifactStore, Manifest, encoder_fingerprint
from shared_backbone.errors import ConfigError
from shared_backbone.settings import BackboneSettings
from shared_backbone.tasks import PROFILES, artifact_id, encoder_groups


def test_shared_artifact_has_everything(trained_shared: BackboneSettings) -> None:
    store = ArtifactStore(trained_shared.backbones_dir)
    manifest = store.manifest("shared-smoke")
    assert manifest.deployment == "shared" and manifest.tasks == ["intent", "sentiment", "topic", "recommendation"]
    assert manifest.services == ["recommender", "sentiment", "support"]
    assert manifest.heads == ["intent", "sentiment", "topic"]
    assert manifest.profile == "smoke" and manifest.seed == 0 and manifest.parameter_count > 0
    assert set(manifest.metrics) == {"intent", "sentiment", "topic", "recommendation"}
    assert 0.0 <= manifest.metrics["sentiment"]["test"]["accuracy"] <= 1.0
    assert "ndcg@10" in manifest.metrics["recommendation"]["validation"]
    assert "banking77/train.csv" in manifest.data_hashes
    assert manifest.strip_links and store.open_backbone("shared-smoke").strip_links  # served as it was trained
    for task in ("intent", "sentiment", "topic"):  # each head chosen on validation, and the choice recorded
        choice = manifest.metrics[task]["head_choice"]
        assert set(choice) == {"logistic_regression_validation_macro_f1", "fine_tuned_validation_macro_f1", "fine_tuned_chosen"}
    heads = store.load_heads("shared-smoke")
    assert heads["topic"].labels[0] == "Analyst Update" and len(heads["intent"].labels) == 77
    # the encoder was fine-tuned: its weights differ from the tiny base model's
    assert manifest.fingerprint != encoder_fingerprint(trained_shared.base_model)
    assert not [p for p in store.root.iterdir() if p.name.startswith(".")]  # no staging leftovers


def test_same_seed_same_metrics(tiny_settings: BackboneSettings, trained_shared: BackboneSettings) -> None:
    again = training.train_deployment("shared", "smoke", tiny_settings, progress=False)[0]
    first = ArtifactStore(trained_shared.backbones_dir).manifest("shared-smoke")
    assert again.fingerprint == first.fingerprint
    assert again.metrics == first.metrics


def test_per_domain_trains_one_encoder_per_service(tiny_settings: BackboneSettings) -> None:
    manifests = training.train_deployment("per-domain", "smoke", tiny_settings, progress=False)
    assert {m.id: m.tasks for m in manifests} == {
        "per-domain-support-smoke": ["intent"],
        "per-domain-recommender-smoke": ["recommendation"],
        "per-domain-sentiment-smoke": ["sentiment", "topic"],
    }
    recommender = next(m for m in manifests if m.group == "recommender")
    assert recommender.heads == [] and "recommendation" in recommender.metrics
    assert len({m.fingerprint for m in manifests}) == 3


def test_frozen_keeps_the_pretrained_weights(tiny_settings: BackboneSettings) -> None:
    (manifest,) = training.train_deployment("frozen", "smoke", tiny_settings, seed=3, progress=False)
    assert manifest.id == "frozen-smoke-s3"
    assert manifest.fingerprint == encoder_fingerprint(tiny_settings.base_model)
    assert manifest.heads == ["intent", "sentiment", "topic"]


def test_a_failed_run_leaves_no_artifact(tiny_settings: BackboneSettings, monkeypatch: pytest.MonkeyPatch) -> None:
    def explode(*args: object, **kwargs: object) -> None:
        raise RuntimeError("disk full")

    monkeypatch.setattr(training, "fine_tune", explode)
    with pytest.raises(RuntimeError, match="disk full"):
        training.train_deployment("shared", "smoke", tiny_settings, progress=False)
    store = ArtifactStore(tiny_settings.backbones_dir)
    assert store.entries() == [] and not list(store.root.iterdir())


def test_unknown_names_are_refused(tiny_settings: BackboneSettings) -> None:
    with pytest.raises(ConfigError, match="unknown deployment 'both'"):
        training.train_deployment("both", "smoke", tiny_settings)
    with pytest.raises(ConfigError, match="unknown profile 'huge'"):
        training.train_deployment("shared", "huge", tiny_settings)
    with pytest.raises(ConfigError, match="unknown sampling"):
        training.train_deployment("shared", "smoke", tiny_settings, sampling="random")


def test_artifact_ids_and_groups() -> None:
    assert artifact_id("shared", "all", "quick") == "shared-quick"
    assert artifact_id("per-domain", "support", "full", seed=2) == "per-domain-support-full-s2"
    assert encoder_groups("frozen") == {"all": ("intent", "sentiment", "topic", "recommendation")}


def test_recommendation_data_holds_out_unseen_likes() -> None:
    profile = replace(PROFILES["smoke"], evaluation_users=10, catalogue_size=50)
    rec = training.prepare_recommendation(BackboneSettings().data_dir, profile, seed=0)
    assert len(rec.pairs) == profile.recommendation_pairs
    for split in ("validation", "test"):
        assert 0 < len(rec.held_out[split]) <= 10
        for user, truth in rec.held_out[split].items():
            assert truth and not truth & rec.seen[split][user]
            assert set(rec.history[split][user]) <= set(rec.catalogue) and truth <= set(rec.catalogue)
    assert training.prepare_recommendation(BackboneSettings().data_dir, profile, seed=0).pairs == rec.pairs


def test_manifest_is_plain_json(trained_shared: BackboneSettings) -> None:
    raw = json.loads((trained_shared.backbones_dir / "shared-smoke" / "manifest.json").read_text())
    assert raw["format_version"] == 1 and np.isfinite(raw["training_seconds"])
    assert Manifest.model_validate(raw).backbone_id == f"{raw['id']}@{raw['fingerprint']}+nolinks"  # caches tell the readings apart
    del raw["strip_links"]  # written before links were stripped: read as it was trained, links and all
    old = Manifest.model_validate(raw)
    assert not old.strip_links and old.backbone_id == f"{raw['id']}@{raw['fingerprint']}"


def test_task_passes_repeat_one_task_in_the_mix_and_are_recorded(tiny_settings: BackboneSettings, monkeypatch: pytest.MonkeyPatch) -> None:
    import sentence_transformers

    sizes: dict[str, int] = {}
    texts: list[str] = []

    class Recorder:
        def __init__(self, *, model, args, train_dataset, loss) -> None:
            sizes.update({task: len(rows) for task, rows in train_dataset.items()})
            texts.extend(train_dataset["sentiment"]["text"])

        def train(self) -> None:
            pass

    monkeypatch.setattr(sentence_transformers, "SentenceTransformerTrainer", Recorder)
    profile = replace(PROFILES["smoke"], task_passes=(("sentiment", 3),))
    data = training.prepare_data(("intent", "sentiment"), profile, 0, tiny_settings.data_dir)
    model = training.load_sentence_transformer(tiny_settings.base_model)
    layers = training.fine_tune(model, data, ("intent", "sentiment"), profile, 0, "proportional", progress=False)
    assert sizes == {"intent": len(data.classification["intent"].train), "sentiment": 3 * len(data.classification["sentiment"].train)}
    assert profile.passes("sentiment") == 3 and profile.passes("topic") == 1
    # the encoder learns texts as it will read them served: links gone
    assert any("https://" in r.text for r in data.classification["sentiment"].train)
    assert texts and not any("https://" in t for t in texts)
    # each classification task's co-trained layer comes back as a head on the unit embeddings
    dimension = model.get_embedding_dimension()
    assert {task: (w.shape, b.shape) for task, (w, b) in layers.items()} == {
        "intent": ((77, dimension), (77,)),
        "sentiment": ((3, dimension), (3,)),
    }


def test_the_co_trained_layer_is_the_head_only_when_it_wins_on_validation(tiny_settings: BackboneSettings) -> None:
    from shared_backbone.encoder import Backbone
    from shared_backbone.heads import ClassifierHead

    data = training.prepare_data(("sentiment",), PROFILES["smoke"], 0, tiny_settings.data_dir)
    backbone = Backbone(tiny_settings.base_model, "tiny")
    split = data.classification["sentiment"]
    val_x = backbone.encode([r.text for r in split.validation])
    val_y = np.array([r.label for r in split.validation])
    # a layer that has learned the validation set by heart beats a regression fitted on 48 training texts
    oracle = ClassifierHead.fit("sentiment", split.labels, val_x, val_y, c=1e4)
    useless = (np.zeros_like(oracle.weight), np.array([0.0, 0.0, 1.0], dtype=np.float32))  # always "neutral"
    for layer, wins in (((oracle.weight, oracle.bias), True), (useless, False)):
        heads, metrics = training.fit_classification_heads(backbone, data, ("sentiment",), 0, fine_tuned={"sentiment": layer})
        choice = metrics["sentiment"]["head_choice"]
        assert (heads["sentiment"].origin == "fine-tuned") is wins and choice["fine_tuned_chosen"] == float(wins)
        better = choice["fine_tuned_validation_macro_f1"] > choice["logistic_regression_validation_macro_f1"]
        assert better is wins
        kept = "fine_tuned_validation_macro_f1" if wins else "logistic_regression_validation_macro_f1"
        assert metrics["sentiment"]["validation"]["macro_f1"] == pytest.approx(choice[kept])
    heads, metrics = training.fit_classification_heads(backbone, data, ("sentiment",), 0)  # frozen: nothing co-trained
    assert (
        heads["sentiment"].origin == "logistic-regression" and "fine_tuned_validation_macro_f1" not in metrics["sentiment"]["head_choice"]
    )
