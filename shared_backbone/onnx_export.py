"""Train on torch, serve on ONNX: export an artifact's encoder, quantize it, and prove it on a probe set.

``torch.onnx.export`` writes the transformer with mean pooling and L2 normalisation inside the graph;
``onnxruntime.quantization.quantize_dynamic`` makes int8 weights (signed, per channel, reduced range:
per-tensor int8 loses too much on this model). A backend is marked servable in the manifest only if
its embeddings stay within cosine 0.98 of the fp32 encoder on every probe text and no head loses more
than half a point of accuracy; otherwise it is recorded with the reason and ``auto`` serving falls
back to torch.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from shared_backbone.artifacts import ENCODER_DIR, MANIFEST, ArtifactStore
from shared_backbone.data import DEFAULT_DATA_DIR, load_banking77, load_financial_sentiment, load_financial_topic, load_movies
from shared_backbone.errors import ArtifactError
from shared_backbone.onnx_backend import ONNX_DIR, ONNX_FILES, OnnxBackbone, sha256_of

log = logging.getLogger(__name__)

MIN_COSINE = 0.98
MAX_ACCURACY_DROP = 0.005
HEAD_DATA = {"intent": load_banking77, "sentiment": load_financial_sentiment, "topic": load_financial_topic}


@dataclass(frozen=True)
class Probe:
    """Texts from every domain, and each head's labelled examples among them."""

    texts: list[str]
    labelled: dict[str, tuple[list[int], np.ndarray]]  # task -> (rows in texts, gold labels)


def probe_set(tasks: list[str], per_task: int, data_dir: Path = DEFAULT_DATA_DIR, seed: int = 0) -> Probe:
    rng = np.random.default_rng(seed)
    texts: list[str] = []
    labelled: dict[str, tuple[list[int], np.ndarray]] = {}
    for task in tasks:
        if task not in HEAD_DATA:
            continue
        test = HEAD_DATA[task](data_dir).test
        chosen = rng.choice(len(test), size=min(per_task, len(test)), replace=False)
        rows = list(range(len(texts), len(texts) + len(chosen)))
        texts += [test[i].text for i in chosen]
        labelled[task] = (rows, np.array([test[i].label for i in chosen]))
    films = list(load_movies(data_dir / "movielens_latest_small").values())
    texts += [films[i].text() for i in rng.choice(len(films), size=min(per_task, len(films)), replace=False)]
    return Probe(texts, labelled)


def _export_graph(encoder_dir: Path, target: Path, max_seq_length: int) -> None:
    import torch

    from shared_backbone.encoder import load_sentence_transformer

    transformer = load_sentence_transformer(encoder_dir)[0].model.eval()

    class Pooled(torch.nn.Module):
        """Transformer + masked mean pooling + L2 normalisation: what the sentence-transformers pipeline computes."""

        def __init__(self) -> None:
            super().__init__()
            self.transformer = transformer

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor) -> torch.Tensor:
            hidden = self.transformer(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
            return torch.nn.functional.normalize(pooled, p=2.0, dim=1)

    sample = torch.ones((2, min(8, max_seq_length)), dtype=torch.int64)
    axes = {
        "input_ids": {0: "batch", 1: "tokens"},
        "attention_mask": {0: "batch", 1: "tokens"},
        "token_type_ids": {0: "batch", 1: "tokens"},
    }
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer notes on shape checks that are constant for this encoder (verified after export)
        torch.onnx.export(
            Pooled(),
            (sample, sample, torch.zeros_like(sample)),
            str(target),
            input_names=["input_ids", "attention_mask", "token_type_ids"],
            output_names=["embedding"],
            dynamic_axes={**axes, "embedding": {0: "batch"}},
            opset_version=17,
            dynamo=False,
        )


# int8 recipes, most compressed first: fine-tuning can leave outlier activations after the FFN's GELU that
# per-tensor dynamic activation scales cannot hold, so the FFN projections are kept fp32 only when needed.
RECIPES: dict[str, Callable[[str], bool]] = {
    "all-matmuls": lambda node: False,
    "ffn-down-fp32": lambda node: "/output/dense/" in node and "/attention/" not in node,
    "ffn-fp32": lambda node: "/intermediate/" in node or ("/output/dense/" in node and "/attention/" not in node),
}


def _quantize(source: Path, target: Path, recipe: str) -> None:
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    keep_fp32 = [
        n.name for n in onnx.load(str(source), load_external_data=False).graph.node if n.op_type == "MatMul" and RECIPES[recipe](n.name)
    ]
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # the quantizer logs every tensor on the root logger
    try:
        quantize_dynamic(
            str(source), str(target), weight_type=QuantType.QInt8, per_channel=True, reduce_range=True, nodes_to_exclude=keep_fp32
        )
    finally:
        root.setLevel(level)


def verify(reference: np.ndarray, candidate: np.ndarray, probe: Probe, heads: dict[str, Any]) -> dict[str, Any]:
    """Cosine to the fp32 encoder and each head's accuracy change; ``servable`` only within both limits."""
    with np.errstate(invalid="ignore", divide="ignore"):  # a zero row gives NaN, caught below
        cosine = np.sum(reference * candidate, axis=1) / (np.linalg.norm(reference, axis=1) * np.linalg.norm(candidate, axis=1))
    deltas = {}
    for task, (rows, gold) in probe.labelled.items():
        if task in heads:
            before = float((heads[task].predict(reference[rows]) == gold).mean())
            after = float((heads[task].predict(candidate[rows]) == gold).mean())
            deltas[task] = round(after - before, 4)
    problems = []
    if not np.isfinite(cosine).all():
        problems.append("non-finite or zero embeddings")
    elif float(cosine.min()) < MIN_COSINE:
        problems.append(f"min cosine {cosine.min():.4f} < {MIN_COSINE}")
    problems += [f"{task} accuracy {delta * 100:+.2f} points" for task, delta in deltas.items() if delta < -MAX_ACCURACY_DROP]
    return {
        "cosine_mean": round(float(cosine.mean()), 5),
        "cosine_min": round(float(cosine.min()), 5),
        "head_accuracy_delta": deltas,
        "probe_texts": len(probe.texts),
        "servable": not problems,
        "reason": "; ".join(problems),
    }


def export_artifact(
    store: ArtifactStore, artifact_id: str, *, quantize: bool = True, probe_per_task: int = 300, threads: int | None = None
) -> dict[str, Any]:
    """Write ``onnx/model.onnx`` (and ``model.int8.onnx``), verify both, and record them in the manifest."""
    manifest = store.manifest(artifact_id)
    folder = store.path(artifact_id)
    out = folder / ONNX_DIR
    out.mkdir(exist_ok=True)
    reference_backbone = store.open_backbone(artifact_id, threads=threads, backend="torch")
    heads = store.load_heads(artifact_id)
    probe = probe_set(manifest.tasks, probe_per_task)
    reference = reference_backbone.encode(probe.texts)
    tokenizer = folder / ENCODER_DIR / "tokenizer.json"

    def check(path: Path, backend: str) -> dict[str, Any]:
        candidate = OnnxBackbone(
            path,
            tokenizer,
            f"{manifest.backbone_id}+{backend}",
            backend=backend,
            dimension=manifest.embedding_dimension,
            max_seq_length=manifest.max_seq_length,
            threads=threads,
            strip_links=manifest.strip_links,
        ).encode(probe.texts)
        return verify(reference, candidate, probe, heads)

    exports: dict[str, Any] = {}
    staged: dict[str, Path] = {}
    tokenizer_sha = sha256_of(tokenizer)
    with tempfile.TemporaryDirectory(dir=out) as scratch:  # nothing takes a real name until every check has run
        staged["onnx"] = Path(scratch) / ONNX_FILES["onnx"]
        _export_graph(folder / ENCODER_DIR, staged["onnx"], manifest.max_seq_length)
        exports["onnx"] = check(staged["onnx"], "onnx")
        if quantize:
            tried = []
            for recipe in RECIPES:
                candidate = Path(scratch) / f"{recipe}.onnx"
                _quantize(staged["onnx"], candidate, recipe)
                result = check(candidate, "onnx-int8")
                tried.append(f"{recipe}: {result['reason'] or 'ok'}")
                if result["servable"] or recipe == list(RECIPES)[-1]:
                    staged["onnx-int8"] = candidate
                    exports["onnx-int8"] = {"recipe": recipe, "recipes_tried": tried, **result}
                    break
        for backend, path in staged.items():
            final = out / ONNX_FILES[backend]
            meta = {
                "file": f"{ONNX_DIR}/{final.name}",
                "sha256": sha256_of(path),
                "bytes": path.stat().st_size,
                "tokenizer_sha256": tokenizer_sha,
            }
            exports[backend] = {**meta, **exports[backend]}
            os.replace(path, final)  # a crash between here and the manifest leaves a sha mismatch, which serving refuses
    for backend, export in exports.items():
        log.info("%s %s: cosine min %.4f, servable %s %s", artifact_id, backend, export["cosine_min"], export["servable"], export["reason"])
    record_exports(store, artifact_id, exports)
    return exports


def record_exports(store: ArtifactStore, artifact_id: str, exports: dict[str, Any]) -> None:
    """Rewrite the manifest with the exports, atomically (a reader never sees half a file)."""
    path = store.path(artifact_id) / MANIFEST
    raw = json.loads(path.read_text(encoding="utf-8"))
    raw["exports"] = {**raw.get("exports", {}), **exports}
    staged = path.with_suffix(".json.tmp")
    staged.write_text(json.dumps(raw, indent=2), encoding="utf-8")
    os.replace(staged, path)
    store.manifest(artifact_id)  # still valid
    if not exports:
        raise ArtifactError(f"nothing exported for '{artifact_id}'")
