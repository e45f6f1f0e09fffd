"""Benchmark: torch fp32, ONNX fp32 and ONNX int8 encoding the same real texts, in turn, in one run.

Each backend runs in a fresh process (so memory and start-up are its own) with the embedding cache
off: texts/s at batch 1, 32 and 128, single-text p50/p95, RSS after load, and cosine to the torch
embeddings of the same texts. Then each backend is started as a real backbone server
(``spine backbones serve --backend ...``) to time start-up until healthy and read its RSS from its
own /metrics. Head accuracy deltas come from the export's verification in the manifest.

    python bench/encode_backends.py --backbone shared-full
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx
import numpy as np

from apps.ops import summarise_metrics
from bench.http_load import machine
from shared_backbone.artifacts import ArtifactStore
from shared_backbone.onnx_export import probe_set
from shared_backbone.settings import BackboneSettings

BACKENDS = ("torch", "onnx", "onnx-int8")
TARGETS = {
    "int8_over_torch_batch32": 1.6,
    "single_p50_ms": 6.0,
    "server_rss_mb": 250.0,
    "server_startup_s": 2.0,
    "min_cosine": 0.98,
    "head_drop_points": 0.5,
}

CHILD = """
import json, sys, time
started = time.perf_counter()
import numpy as np
from shared_backbone.artifacts import ArtifactStore
store = ArtifactStore(__import__("pathlib").Path(sys.argv[1]))
backbone = store.open_backbone(sys.argv[2], backend=sys.argv[3], threads=int(sys.argv[4]), batch_size=128)
backbone.warm_up()
backbone.encode(["warm the first call up"])
load_s = time.perf_counter() - started
rss = int([l for l in open("/proc/self/status") if l.startswith("VmRSS")][0].split()[1]) / 1024
texts = json.loads(open(sys.argv[5]).read())
out = {"load_s": load_s, "rss_after_load_mb": rss, "texts_per_s": {}}
for batch in (1, 32, 128):
    backbone.batch_size = batch
    chosen = texts[: 200 if batch == 1 else len(texts)]
    latencies = []
    t0 = time.perf_counter()
    for i in range(0, len(chosen), batch):
        t = time.perf_counter()
        backbone._encode_uncached(chosen[i : i + batch], False)
        latencies.append(1000 * (time.perf_counter() - t))
    out["texts_per_s"][str(batch)] = len(chosen) / (time.perf_counter() - t0)
    if batch == 1:
        out["single_ms"] = {"p50": float(np.percentile(latencies, 50)), "p95": float(np.percentile(latencies, 95))}
np.save(sys.argv[6], backbone._encode_uncached(texts, False))
out["peak_rss_mb"] = int([l for l in open("/proc/self/status") if l.startswith("VmHWM")][0].split()[1]) / 1024
print(json.dumps(out))
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def encode_in_child(root: Path, backbone: str, backend: str, threads: int, texts_file: Path, vectors_file: Path) -> dict[str, Any]:
    argv = [sys.executable, "-c", CHILD, str(root), backbone, backend, str(threads), str(texts_file), str(vectors_file)]
    result = subprocess.run(argv, capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"}, timeout=1800)
    if result.returncode != 0:
        raise SystemExit(f"{backend}: {result.stderr.strip().splitlines()[-1] if result.stderr.strip() else result.returncode}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def serve_once(backbone: str, backend: str, threads: int) -> dict[str, float]:
    """Start a real backbone server, time it until healthy, read its RSS after one request."""
    port = free_port()
    argv = [str(Path(sys.executable).with_name("spine")), "backbones", "serve", backbone, "--port", str(port), "--backend", backend]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "SPINE_THREADS": str(threads), "SPINE_EMBEDDING_CACHE": "false"}
    started = time.perf_counter()
    process = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        while True:
            if process.poll() is not None:
                raise SystemExit(f"the {backend} server exited with code {process.returncode}")
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        startup = time.perf_counter() - started
        httpx.post(f"{url}/v1/analyse", json={"input": ["rates rise again"], "tasks": []}, timeout=30)
        rss, _, _, _ = summarise_metrics(httpx.get(f"{url}/metrics", timeout=10).text)
    finally:
        process.terminate()
        process.wait(timeout=30)
    return {"startup_s": round(startup, 2), "rss_mb": round(rss or 0.0, 1)}


def markdown(rows: dict[str, dict[str, Any]], command: str) -> str:
    lines = [
        f"# Encoding backends ({datetime.now(UTC).date()})",
        "",
        f"`{command}`",
        "",
        "| backend | texts/s b=1 | b=32 | b=128 | single p50 / p95 ms | RSS after load MB | server RSS MB | server start-up s | cosine mean / min | head accuracy change (points) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for backend, r in rows.items():
        tps = r["texts_per_s"]
        deltas = ", ".join(f"{t} {d * 100:+.2f}" for t, d in r.get("head_accuracy_delta", {}).items()) or "reference"
        lines.append(
            f"| {backend} | {tps['1']:.0f} | {tps['32']:.0f} | {tps['128']:.0f} | {r['single_ms']['p50']:.1f} / {r['single_ms']['p95']:.1f} "
            f"| {r['rss_after_load_mb']:.0f} | {r['server']['rss_mb']:.0f} | {r['server']['startup_s']:.2f} "
            f"| {r['cosine_mean']:.4f} / {r['cosine_min']:.4f} | {deltas} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="shared-full")
    parser.add_argument("--texts", type=int, default=1024, help="distinct real texts per batch size")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    settings = BackboneSettings()
    store = ArtifactStore(settings.backbones_dir)
    manifest = store.manifest(args.backbone)
    missing = [b for b in BACKENDS[1:] if b not in manifest.exports]
    if missing:
        raise SystemExit(f"{args.backbone} has no {', '.join(missing)} export: run `spine backbones export {args.backbone}`")
    texts = probe_set(manifest.tasks, args.texts // 3 + 1, seed=1).texts[: args.texts]
    rows: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory() as scratch:
        texts_file = Path(scratch) / "texts.json"
        texts_file.write_text(json.dumps(texts))
        vectors: dict[str, np.ndarray] = {}
        for backend in BACKENDS:
            print(f"{backend}: encoding {len(texts)} texts at batch 1 / 32 / 128 ...", flush=True)
            rows[backend] = encode_in_child(store.root, args.backbone, backend, args.threads, texts_file, Path(scratch) / f"{backend}.npy")
            vectors[backend] = np.load(Path(scratch) / f"{backend}.npy")
            rows[backend]["server"] = serve_once(args.backbone, backend, args.threads)
    for backend, row in rows.items():
        cosine = np.sum(vectors[backend] * vectors["torch"], axis=1)
        row["cosine_mean"], row["cosine_min"] = float(cosine.mean()), float(cosine.min())
        if backend != "torch":
            row["head_accuracy_delta"] = manifest.exports[backend]["head_accuracy_delta"]
            row["recipe"] = manifest.exports[backend].get("recipe", "fp32")
    int8, torch_row = rows["onnx-int8"], rows["torch"]
    checks = {
        "onnx-int8 / torch texts/s at batch 32": round(int8["texts_per_s"]["32"] / torch_row["texts_per_s"]["32"], 2),
        "onnx-int8 single p50 ms": round(int8["single_ms"]["p50"], 2),
        "onnx-int8 server RSS MB": int8["server"]["rss_mb"],
        "onnx-int8 server start-up s": int8["server"]["startup_s"],
        "onnx-int8 min cosine": round(int8["cosine_min"], 4),
        "onnx-int8 worst head change, points": round(100 * min(int8["head_accuracy_delta"].values(), default=0.0), 2),
    }
    command = "python " + " ".join(sys.argv)
    result = {"benchmark": "encoding backends", "command": command, "machine": machine(), "backbone": args.backbone, "texts": len(texts)}
    result.update({"targets": TARGETS, "results": rows, "checks": checks, "finished": datetime.now(UTC).isoformat(timespec="seconds")})
    args.out.mkdir(parents=True, exist_ok=True)
    stem = args.out / f"encode_backends-{args.backbone}"
    stem.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    stem.with_suffix(".md").write_text(markdown(rows, command) + "\n" + "\n".join(f"- {k}: {v}" for k, v in checks.items()) + "\n")
    print(markdown(rows, command))
    for key, value in checks.items():
        print(f"{key}: {value}")
    print(f"wrote {stem}.json and {stem}.md")


if __name__ == "__main__":
    main()
