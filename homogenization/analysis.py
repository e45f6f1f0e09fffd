"""From per-item outcomes to the study's numbers: quality with intervals, paired tests, error consistency, homogenization.

Every statistic comes from ``homogenization.metrics``; this module only decides what is paired with what and which
interval applies: with two or more seeds, the Student-t interval over the per-seed values (``mean_over_seeds``); with
one seed, the percentile bootstrap over the test items (``bootstrap_ci``).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from homogenization.metrics import bootstrap_ci, cohen_kappa_errors, mcnemar, mean_over_seeds, paired_bootstrap_diff
from homogenization.probes import FAMILIES, bootstrap_family, homogenization_by_family

QUALITY_METRICS = (
    "intent_accuracy",
    "intent_macro_f1",
    "oos_auroc",
    "sentiment_accuracy",
    "sentiment_macro_f1",
    "topic_accuracy",
    "topic_macro_f1",
    "recall@10",
    "ndcg@10",
    "hr@10",
    "cold_recall@10",
)
KAPPA_TASKS = ("intent", "sentiment", "topic", "recommendation")
SYSTEMS = {"support": "intent", "sentiment": "sentiment", "recommender": "recommendation"}


@dataclass
class Outcomes:
    """One deployment's per-item outcomes at one seed (arrays aligned with that seed's test items and users)."""

    gold: dict[str, np.ndarray]  # task -> gold label index per test item
    predicted: dict[str, np.ndarray]  # task -> predicted label index
    predicted_typo: dict[str, np.ndarray]  # intent, sentiment -> prediction on the typo copy
    oos_in: np.ndarray  # the support bot's out-of-scope score on in-scope questions
    oos_out: np.ndarray  # ... and on CLINC150 out-of-scope queries
    ranking: dict[str, np.ndarray]  # hr, recall, ndcg (per user), cold_recall (per user with a cold like), coverage
    hr_typo: np.ndarray  # HR@10 per user with every catalogue text typo-perturbed
    labels: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)  # system -> family -> group label per item

    def errors(self, task: str) -> np.ndarray:
        """Boolean failure per item: a wrong class, or for the recommender a user with no held-out film in the top 10."""
        if task == "recommendation":
            return self.ranking["hr"] == 0
        return self.predicted[task] != self.gold[task]

    def typo_errors(self, task: str) -> np.ndarray:
        if task == "recommendation":
            return self.hr_typo == 0
        return self.predicted_typo[task] != self.gold[task]


def _f1(rows: np.ndarray) -> float:
    """Macro-F1 over the labels present in gold or prediction, as sklearn's f1_score(average="macro", zero_division=0).

    Written with numpy because the one-seed bootstrap calls it a thousand times per metric (sklearn's input checks
    cost milliseconds per call); a test checks it against sklearn.
    """
    gold, predicted = rows[:, 0], rows[:, 1]
    labels = np.union1d(gold, predicted)
    k = len(labels)
    confusion = np.bincount(np.searchsorted(labels, gold) * k + np.searchsorted(labels, predicted), minlength=k * k).reshape(k, k)
    tp = np.diag(confusion).astype(np.float64)
    denominator = confusion.sum(axis=0) + confusion.sum(axis=1)  # 2 tp + fp + fn
    return float(np.mean(np.where(denominator > 0, 2 * tp / np.maximum(denominator, 1), 0.0)))


def _auroc(rows: np.ndarray) -> float:
    """ROC AUC from ranks (Mann-Whitney U, ties averaged), equal to sklearn's roc_auc_score; NaN with one class only."""
    from scipy.stats import rankdata

    positive = rows[:, 0] == 1
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(rows[:, 1])
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def item_statistics(o: Outcomes) -> dict[str, tuple[np.ndarray, Callable[[np.ndarray], float] | None]]:
    """Each quality metric as (rows over items, statistic); statistic None = the mean of 1-D rows."""
    out: dict[str, tuple[np.ndarray, Callable[[np.ndarray], float] | None]] = {}
    for task in ("intent", "sentiment", "topic"):
        out[f"{task}_accuracy"] = ((o.predicted[task] == o.gold[task]).astype(np.float64), None)
        out[f"{task}_macro_f1"] = (np.c_[o.gold[task], o.predicted[task]], _f1)
    oos_rows = np.c_[np.r_[np.zeros(len(o.oos_in)), np.ones(len(o.oos_out))], np.r_[o.oos_in, o.oos_out]]
    out["oos_auroc"] = (oos_rows, _auroc)
    out["recall@10"] = (o.ranking["recall"], None)
    out["ndcg@10"] = (o.ranking["ndcg"], None)
    out["hr@10"] = (o.ranking["hr"], None)
    out["cold_recall@10"] = (o.ranking["cold_recall"], None)
    return out


def point_metrics(o: Outcomes) -> dict[str, float]:
    values = {}
    for name, (rows, statistic) in item_statistics(o).items():
        if len(rows) == 0:
            values[name] = float("nan")
        else:
            values[name] = float(statistic(rows)) if statistic else float(np.mean(rows))
    return values


def _finite(values: Sequence[float]) -> list[float]:
    return [float(v) for v in values if v is not None and np.isfinite(v)]


def over_seeds(values: Sequence[float], bounds: tuple[float, float] | None = None) -> dict[str, Any]:
    """Mean and t interval over the seeds whose value is defined (an undefined value, e.g. no cold item, is left out).

    ``bounds`` clips the interval to the metric's range (an accuracy's t interval can reach past 1 with few seeds).
    """
    finite = _finite(values)
    if not finite:
        return {"mean": None, "low": None, "high": None, "n": 0, "interval": "undefined"}
    summary = mean_over_seeds(finite)
    interval = "t over seeds" if len(finite) > 1 else "none (one value)"
    if bounds is not None and len(finite) > 1:
        low, high = max(summary["low"], bounds[0]), min(summary["high"], bounds[1])
        if (low, high) != (summary["low"], summary["high"]):
            interval += f", clipped to [{bounds[0]:g}, {bounds[1]:g}]"
        summary = {**summary, "low": low, "high": high}
    return {**summary, "interval": interval}


def quality(by_seed: Mapping[int, Mapping[str, Outcomes]], deployments: Sequence[str], resamples: int) -> dict[str, Any]:
    """Per deployment and metric: per-seed values, mean and 95% interval (t over seeds, or bootstrap over items for one seed)."""
    seeds = sorted(by_seed)
    out: dict[str, Any] = {}
    for deployment in deployments:
        per_seed = [point_metrics(by_seed[s][deployment]) for s in seeds]
        row = {}
        for metric in QUALITY_METRICS:
            values = [p[metric] for p in per_seed]
            if len(seeds) > 1:
                summary = over_seeds(values, bounds=(0.0, 1.0))  # every quality metric is a rate or a ranking score in [0, 1]
            else:
                rows, statistic = item_statistics(by_seed[seeds[0]][deployment])[metric]
                if len(rows) == 0:
                    summary = {"mean": None, "low": None, "high": None, "n": 0, "interval": "undefined"}
                else:
                    mean, low, high = bootstrap_ci(rows, statistic, n_resamples=resamples, seed=seeds[0])
                    summary = {"mean": mean, "low": low, "high": high, "n": len(rows), "interval": "bootstrap over items (one seed)"}
            row[metric] = {**summary, "per_seed": values}
        out[deployment] = row
    return out


def paired_tests(by_seed: Mapping[int, Mapping[str, Outcomes]], reference: str, others: Sequence[str], resamples: int) -> dict[str, Any]:
    """``reference`` against each other deployment on the same items: McNemar per classification task, paired
    bootstrap of per-user NDCG@10 for the recommender; per seed and pooled over seeds (items stay paired within a seed)."""
    seeds = sorted(by_seed)
    out: dict[str, Any] = {}
    for other in others:
        row: dict[str, Any] = {}
        for task in ("intent", "sentiment", "topic"):
            correct = {d: [~by_seed[s][d].errors(task) for s in seeds] for d in (reference, other)}
            row[task] = {
                "test": "mcnemar",
                "per_seed": [mcnemar(a, b) for a, b in zip(correct[reference], correct[other], strict=True)],
                "pooled": mcnemar(np.concatenate(correct[reference]), np.concatenate(correct[other])),
            }
        ndcg = {d: [by_seed[s][d].ranking["ndcg"] for s in seeds] for d in (reference, other)}
        row["recommendation"] = {
            "test": "paired bootstrap of per-user NDCG@10 (reference - other)",
            "per_seed": [paired_bootstrap_diff(a, b, n_resamples=resamples, seed=s) for s, a, b in zip(seeds, *ndcg.values(), strict=True)],
            "pooled": paired_bootstrap_diff(np.concatenate(ndcg[reference]), np.concatenate(ndcg[other]), n_resamples=resamples, seed=0),
        }
        out[f"{reference} vs {other}"] = {"a": reference, "b": other, "tasks": row}
    return out


def error_consistency(by_seed: Mapping[int, Mapping[str, Outcomes]], deployments: Sequence[str]) -> dict[str, Any]:
    """Cohen's kappa between two deployments' error vectors on the same task and items, per seed, then over seeds."""
    seeds = sorted(by_seed)
    out: dict[str, Any] = {}
    for a, b in itertools.combinations(deployments, 2):
        row = {}
        for task in KAPPA_TASKS:
            values = [cohen_kappa_errors(by_seed[s][a].errors(task), by_seed[s][b].errors(task)) for s in seeds]
            row[task] = {**over_seeds(values), "per_seed": values}
        out[f"{a} vs {b}"] = {"a": a, "b": b, "tasks": row}
    return out


def _system_vectors(o: Outcomes) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    return {s: o.errors(t) for s, t in SYSTEMS.items()}, {s: o.typo_errors(t) for s, t in SYSTEMS.items()}


def homogenization(by_seed: Mapping[int, Mapping[str, Outcomes]], deployments: Sequence[str], seed_for_detail: int) -> dict[str, Any]:
    """Group-level homogenization (avg / unif / worst) across the three services, per deployment and group family."""
    seeds = sorted(by_seed)
    out: dict[str, Any] = {}
    for deployment in deployments:
        per_seed = []
        for s in seeds:
            o = by_seed[s][deployment]
            clean, typo = _system_vectors(o)
            per_seed.append(homogenization_by_family(clean, typo, o.labels))
        families: dict[str, Any] = {}
        intervals = {}
        if len(seeds) == 1:
            o = by_seed[seeds[0]][deployment]
            clean, typo = _system_vectors(o)
            intervals = bootstrap_family(clean, typo, o.labels, seed=seeds[0])
        for family in FAMILIES:
            row: dict[str, Any] = {}
            for key in ("avg", "unif", "worst"):
                values = [float(p[family][key]) for p in per_seed]
                row[key] = {**over_seeds(values), "per_seed": values}
            for key, (low, high) in intervals.get(family, {}).items():
                row[key].update(low=low, high=high, interval="bootstrap over each service's items (one seed)")
            detail = per_seed[seeds.index(seed_for_detail)][family]
            row["detail"] = {"seed": seed_for_detail, "groups": detail["groups"], "rates": detail["rates"], "counts": detail["counts"]}
            families[family] = row
        failure_rates = {
            system: over_seeds([float(by_seed[s][deployment].errors(task).mean()) for s in seeds]) for system, task in SYSTEMS.items()
        }
        out[deployment] = {"families": families, "failure_rates": failure_rates}
    return out
