"""The report's PNG plots (matplotlib, Agg backend), each drawn from the results dict alone.

Every plot is always written, with a "not run" note where its section is empty, so the report's links never break.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from shared_backbone.errors import ConfigError

COLOURS = {"shared": "#1f77b4", "per-domain": "#ff7f0e", "frozen": "#2ca02c", "classic": "#7f7f7f"}
SERVICE_COLOURS = {
    "intent_accuracy": "#1f77b4",
    "sentiment_accuracy": "#d62728",
    "topic_accuracy": "#9467bd",
    "ndcg@10": "#2ca02c",
    "hr@10": "#8c564b",
}


def require_matplotlib() -> None:
    """Fail before a long study, not at its end, when the plots cannot be drawn."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise ConfigError("the report's plots need matplotlib: run `.venv/bin/pip install matplotlib`") from None


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _empty(path: Path, message: str) -> Path:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 2))
    ax.axis("off")
    ax.text(0.5, 0.5, message, ha="center", va="center")
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _value(summary: dict[str, Any] | None) -> tuple[float, float, float]:
    """mean and the error-bar half-widths below and above (0 where no interval)."""
    if not summary or summary.get("mean") is None:
        return np.nan, 0.0, 0.0
    mean = summary["mean"]
    low, high = summary.get("low"), summary.get("high")
    below = max(mean - low, 0.0) if low is not None else 0.0  # a bootstrap estimate may sit outside its percentile interval
    above = max(high - mean, 0.0) if high is not None else 0.0
    return mean, below, above


def quality(results: dict[str, Any], path: Path) -> Path:
    plt = _pyplot()
    q = results["quality"]
    deployments, metrics = list(q["by_deployment"]), q["metrics"]
    columns = 4
    rows = int(np.ceil(len(metrics) / columns))
    fig, axes = plt.subplots(rows, columns, figsize=(4 * columns, 3 * rows), squeeze=False)
    for ax, metric in zip(axes.ravel(), metrics, strict=False):
        values = [_value(q["by_deployment"][d][metric]) for d in deployments]
        means = [v[0] for v in values]
        errors = np.array([[v[1] for v in values], [v[2] for v in values]])
        ax.bar(range(len(deployments)), np.nan_to_num(means), yerr=errors, color=[COLOURS.get(d, "#333") for d in deployments], capsize=3)
        ax.set_xticks(range(len(deployments)), deployments, rotation=20, fontsize=8)
        ax.set_title(metric, fontsize=10)
        ax.set_ylim(0, 1)
    for ax in axes.ravel()[len(metrics) :]:
        ax.axis("off")
    fig.suptitle("Quality (mean and 95% interval)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def homogenization(results: dict[str, Any], path: Path) -> Path:
    h = results["homogenization"]
    if not h["by_deployment"]:
        return _empty(path, "homogenization: no deployment")
    plt = _pyplot()
    deployments, families, keys = list(h["by_deployment"]), h["families"], ("avg", "unif", "worst")
    fig, axes = plt.subplots(1, len(families), figsize=(5 * len(families), 3.5), squeeze=False)
    width = 0.8 / len(deployments)
    for ax, family in zip(axes[0], families, strict=True):
        for n, d in enumerate(deployments):
            values = [_value(h["by_deployment"][d]["families"][family][k]) for k in keys]
            x = np.arange(len(keys)) + n * width
            errors = np.array([[v[1] for v in values], [v[2] for v in values]])
            ax.bar(x, np.nan_to_num([v[0] for v in values]), width, yerr=errors, label=d, color=COLOURS.get(d, "#333"), capsize=2)
        ax.axhline(1.0, color="black", linewidth=0.8, linestyle="--")
        ax.set_xticks(np.arange(len(keys)) + width * (len(deployments) - 1) / 2, keys)
        ax.set_title(f"groups: {family}")
    axes[0][0].set_ylabel("homogenization (1 = independent)")
    axes[0][-1].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def blast_radius(results: dict[str, Any], path: Path) -> Path:
    b = results["blast_radius"]
    if not b["by_deployment"]:
        return _empty(path, "blast radius: not run (needs shared or per-domain)")
    plt = _pyplot()
    deployments = list(b["by_deployment"])
    metrics = [m for names in b["setup"]["service_metrics"].values() for m in names]
    kinds = (("noise", "scale", "weight noise (x std of each tensor)"), ("bad_update", "steps", "shuffled-label update steps"))
    fig, axes = plt.subplots(len(kinds), len(deployments), figsize=(5.5 * len(deployments), 7), squeeze=False)
    for col, d in enumerate(deployments):
        row = b["by_deployment"][d]
        for r, (kind, key, label) in enumerate(kinds):
            ax = axes[r][col]
            xs = [0.0, *(level[key] for level in row[kind])]
            for metric in metrics:
                ys = [0.0, *(level["change"][metric] for level in row[kind])]
                ax.plot(range(len(xs)), ys, marker="o", label=metric, color=SERVICE_COLOURS.get(metric))
            ax.set_xticks(range(len(xs)), [f"{x:g}" for x in xs])
            ax.axhline(0.0, color="black", linewidth=0.8)
            ax.set_xlabel(label)
            ax.set_ylabel("change vs baseline")
            ax.set_title(f"{d}: {row['corrupted_backbone']} corrupted", fontsize=10)
    axes[0][-1].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def similarity(results: dict[str, Any], path: Path) -> Path:
    s = results["representation_similarity"]
    encoders = s["encoders"]
    if not encoders:
        return _empty(path, "representation similarity: no neural deployment")
    plt = _pyplot()
    matrix = np.eye(len(encoders))
    for pair, summary in s["pairs"]["all"].items():
        a, b = pair.split(" | ")
        value = summary.get("mean")
        matrix[encoders.index(a), encoders.index(b)] = matrix[encoders.index(b), encoders.index(a)] = np.nan if value is None else value
    fig, ax = plt.subplots(figsize=(1.2 * len(encoders) + 2.5, 1.0 * len(encoders) + 1.5))
    image = ax.imshow(matrix, vmin=0, vmax=1, cmap="viridis")
    ax.set_xticks(range(len(encoders)), encoders, rotation=30, ha="right", fontsize=8)
    ax.set_yticks(range(len(encoders)), encoders, fontsize=8)
    for i in range(len(encoders)):
        for j in range(len(encoders)):
            if np.isfinite(matrix[i, j]):
                ax.text(j, i, f"{matrix[i, j]:.2f}", ha="center", va="center", color="white" if matrix[i, j] < 0.6 else "black", fontsize=8)
    fig.colorbar(image, ax=ax, label="linear CKA")
    ax.set_title("Linear CKA on the probe set (mean over seeds)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def cost(results: dict[str, Any], path: Path) -> Path:
    c = results["cost"]["by_deployment"]
    if not c:
        return _empty(path, "cost: no deployment")
    plt = _pyplot()
    deployments = list(c)
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.5))
    axes[0].bar(deployments, [c[d]["parameters"] / 1e6 for d in deployments], color=[COLOURS.get(d, "#333") for d in deployments])
    axes[0].set_ylabel("backbone parameters (millions)")
    axes[1].bar(deployments, [c[d]["encoder_bytes"] / 2**20 for d in deployments], color=[COLOURS.get(d, "#333") for d in deployments])
    axes[1].set_ylabel("encoder safetensors (MB)")
    for ax in axes:
        ax.tick_params(axis="x", rotation=20)
    fig.suptitle("What each deployment serves")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def draw_all(results: dict[str, Any], folder: Path) -> list[Path]:
    return [
        quality(results, folder / "quality.png"),
        homogenization(results, folder / "homogenization.png"),
        blast_radius(results, folder / "blast_radius.png"),
        similarity(results, folder / "similarity.png"),
        cost(results, folder / "cost.png"),
    ]
