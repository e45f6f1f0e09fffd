"""Metrics for the homogenization study: do services that share one backbone fail on the same texts?

Pure functions over arrays: no models, no I/O. Every function says exactly what it counts, so a report can quote it.

Two kinds of data reach these metrics, and they support different claims:

* Instance-paired data: the same probe texts are sent to every service's head, giving a boolean ``failures`` matrix
  (instances x systems). Here the systemic failure rate, the share of texts that *every* system fails, is observed
  directly, and :func:`homogenization_ratio` compares it with the rate expected if the systems failed independently.
* Unpaired data: each service is scored on its own data set, so no text is seen by every service and the systemic
  failure rate cannot be measured. Instances can then be related across services only through shared groups
  (text-length bins, texts with digits or tickers, typo-perturbed copies). :func:`group_failure_rates` and
  :func:`group_homogenization` implement the group-level metrics of Bommasani et al. (2022), which compare each group's
  per-system failure rates with the systems' overall rates; a group's "systemic" rate there is a product of rates,
  an independence assumption inside the group, never a count of texts that all services failed.

Reference: Bommasani, Creel, Kumar, Jurafsky, Liang, "Picking on the Same Person: Does Algorithmic Monoculture lead to
Outcome Homogenization?", NeurIPS 2022; the group-level formulas follow the authors' released code
(rishibommasani/HomogenizationNeurIPS2022, src/homogenization.py).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import Any

import numpy as np
from scipy import stats

from shared_backbone.evaluation import paired_bootstrap

__all__ = [
    "bootstrap_ci",
    "cohen_kappa_errors",
    "group_counts",
    "group_failure_rates",
    "group_homogenization",
    "homogenization_ratio",
    "linear_cka",
    "mcnemar",
    "mean_over_seeds",
    "paired_bootstrap_diff",
    "paired_homogenization_average",
    "paired_homogenization_uniform",
    "paired_homogenization_worst",
    "systemic_failure_by_group",
]

EXACT_MCNEMAR_BELOW = 25  # discordant pairs; below this the chi-square approximation is poor, so the exact test is used


# ----------------------------------------------------------------------------------------------------- input checks


def _bool_vector(values: Any, name: str) -> np.ndarray:
    """A non-empty 1-D boolean array; 0/1 integers are refused so that a score is never mistaken for an outcome."""
    array = np.asarray(values)
    if array.ndim != 1:
        raise ValueError(f"{name} must be a 1-D boolean array, got shape {array.shape}")
    if array.size == 0:
        raise ValueError(f"{name} is empty")
    if array.dtype != np.bool_:
        raise ValueError(f"{name} must be boolean, got dtype {array.dtype} (pass values.astype(bool) for 0/1 data)")
    return array


def _bool_pair(a: Any, b: Any, names: tuple[str, str]) -> tuple[np.ndarray, np.ndarray]:
    first, second = _bool_vector(a, names[0]), _bool_vector(b, names[1])
    if first.shape != second.shape:
        raise ValueError(f"{names[0]} and {names[1]} must be paired item by item, got lengths {len(first)} and {len(second)}")
    return first, second


def _failure_matrix(failures: Any) -> np.ndarray:
    """The instances x systems boolean matrix every instance-paired metric takes, checked once here."""
    matrix = np.asarray(failures)
    if matrix.ndim != 2:
        raise ValueError(f"failures must be a 2-D boolean matrix (instances x systems), got shape {matrix.shape}")
    if matrix.shape[0] == 0:
        raise ValueError("failures is empty: no instances")
    if matrix.dtype != np.bool_:
        raise ValueError(f"failures must be a boolean matrix, got dtype {matrix.dtype} (pass failures.astype(bool) for 0/1 data)")
    if matrix.shape[1] < 2:
        raise ValueError(f"homogenization needs at least 2 systems (columns), got {matrix.shape[1]}")
    return matrix


def _ratio(numerator: float, denominator: float) -> float:
    """numerator / denominator, NaN when the denominator is 0: the ratio is undefined, not infinite."""
    return float(numerator / denominator) if denominator > 0 else float("nan")


# --------------------------------------------------------------------------------- instance-paired homogenization


def homogenization_ratio(failures: np.ndarray) -> float:
    """Individual-level outcome homogenization (Bommasani et al. 2022) on instance-paired data.

    H = mean_i prod_j f_ij / prod_j mean_i f_ij: the observed share of instances that all k systems fail, over the share
    expected if the systems failed independently with their own failure rates. 1 = independent failures, > 1 = the
    systems fail the same instances more often than chance (up to 1/p for k = 2 identical systems failing a share p),
    < 1 = they fail different instances. NaN when some system never fails (the expected rate is 0).
    """
    matrix = _failure_matrix(failures)
    observed = matrix.all(axis=1).mean()
    expected = np.prod(matrix.mean(axis=0))
    return _ratio(observed, expected)


def _group_indices(groups: Mapping[Hashable, Any] | Sequence[Any], n: int) -> dict[Hashable, np.ndarray]:
    """Each group as sorted unique instance indices; a group may be given as indices or as a length-n boolean mask."""
    items = list(groups.items()) if isinstance(groups, Mapping) else list(enumerate(groups))
    if not items:
        raise ValueError("groups is empty: at least one group of instance indices is needed")
    indices: dict[Hashable, np.ndarray] = {}
    for name, members in items:
        array = np.asarray(members)
        if array.dtype == np.bool_:
            if array.shape != (n,):
                raise ValueError(f"group {name!r}: a boolean mask must have one entry per instance ({n}), got shape {array.shape}")
            array = np.flatnonzero(array)
        elif array.size == 0:
            array = np.zeros(0, dtype=np.intp)
        elif array.ndim != 1 or not np.issubdtype(array.dtype, np.integer):
            raise ValueError(f"group {name!r} must be a 1-D array of instance indices or a boolean mask, got {array.dtype} {array.shape}")
        if array.size and (array.min() < 0 or array.max() >= n):
            raise ValueError(f"group {name!r} has instance indices outside 0..{n - 1}")
        indices[name] = np.unique(array)
    return indices


def systemic_failure_by_group(failures: np.ndarray, groups: Mapping[Hashable, Any] | Sequence[Any]) -> dict[Hashable, dict[str, float]]:
    """Per group g of instance-paired data: its size n, observed_g and expected_g; the table behind the paired_* ratios.

    observed_g = share of g's instances that every system fails; expected_g = prod_j (share of g's instances system j
    fails), the rate if the systems failed independently inside g. Empty groups are left out. Groups may overlap.
    """
    matrix = _failure_matrix(failures)
    table: dict[Hashable, dict[str, float]] = {}
    for name, members in _group_indices(groups, matrix.shape[0]).items():
        if members.size == 0:
            continue
        rows = matrix[members]
        table[name] = {"n": float(members.size), "observed": float(rows.all(axis=1).mean()), "expected": float(np.prod(rows.mean(axis=0)))}
    if not table:
        raise ValueError("every group is empty")
    return table


def paired_homogenization_average(failures: np.ndarray, groups: Mapping[Hashable, Any] | Sequence[Any]) -> float:
    """Within-group homogenization on paired data, groups weighted equally: mean_g observed_g / mean_g expected_g.

    observed_g and expected_g as in :func:`systemic_failure_by_group`. Because expected_g uses the group's own failure
    rates, a group that is simply hard for every system does not raise it: 1 = independent failures inside groups, so
    this isolates same-instance coupling that group difficulty does not explain. This project's paired adaptation,
    not the paper's average case (that is ``group_homogenization(...)["avg"]``). NaN when mean_g expected_g is 0.
    """
    table = systemic_failure_by_group(failures, groups).values()
    return _ratio(np.mean([row["observed"] for row in table]), np.mean([row["expected"] for row in table]))


def paired_homogenization_uniform(failures: np.ndarray, groups: Mapping[Hashable, Any] | Sequence[Any]) -> float:
    """Paired homogenization with the systems' overall rates as baseline: mean_g observed_g / prod_j overall_j.

    overall_j = share of all rows of ``failures`` (in a group or not) that system j fails. This counts both hard groups
    and same-instance coupling, with every group weighted equally; with one group holding every instance it equals
    :func:`homogenization_ratio`. This project's paired adaptation; the paper's uniform case replaces observed_g by
    prod_j fail_g(h_j) (see :func:`group_homogenization`). NaN when some system never fails.
    """
    table = systemic_failure_by_group(failures, groups).values()
    return _ratio(np.mean([row["observed"] for row in table]), np.prod(_failure_matrix(failures).mean(axis=0)))


def paired_homogenization_worst(failures: np.ndarray, groups: Mapping[Hashable, Any] | Sequence[Any]) -> float:
    """The worst group's within-group homogenization on paired data: max_g observed_g / expected_g.

    observed_g and expected_g as in :func:`systemic_failure_by_group`; groups with expected_g = 0 (some system never fails
    in them) are skipped, and the result is NaN when every group is skipped. This project's paired adaptation; the
    paper's worst case is max_g prod_j fail_g(h_j) / prod_j fail(h_j) (``group_homogenization(...)["worst"]``).
    """
    ratios = [row["observed"] / row["expected"] for row in systemic_failure_by_group(failures, groups).values() if row["expected"] > 0]
    return float(max(ratios)) if ratios else float("nan")


# ------------------------------------------------------------------------ group-level homogenization (unpaired data)


def _systems(failures_by_system: Mapping[str, Any], groups_by_system: Mapping[str, Any]) -> list[str]:
    names = list(failures_by_system)
    if len(names) < 2:
        raise ValueError(f"homogenization needs at least 2 systems, got {len(names)}")
    if set(names) != set(groups_by_system):
        raise ValueError(
            f"failures_by_system and groups_by_system must name the same systems, got {sorted(names)} and {sorted(groups_by_system)}"
        )
    return names


def _labels(labels: Any, system: str, n: int | None = None) -> np.ndarray:
    array = np.asarray(labels)
    if array.ndim != 1 or array.size == 0:
        raise ValueError(f"groups for system {system!r} must be a non-empty 1-D array of group labels, got shape {array.shape}")
    if n is not None and array.size != n:
        raise ValueError(f"system {system!r} has {n} failures but {array.size} group labels")
    return array


def group_counts(groups_by_system: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """(groups, counts): the sorted union of group labels, and how many instances each system has in each (G x k).

    Systems (columns) follow the mapping's order, as in :func:`group_failure_rates`; the avg variant of
    :func:`group_homogenization` weights groups by these counts.
    """
    names = list(groups_by_system)
    labels = [_labels(groups_by_system[name], name) for name in names]
    groups = np.unique(np.concatenate(labels))
    counts = np.stack([np.array([(column == group).sum() for group in groups]) for column in labels], axis=1)
    return groups, counts


def group_failure_rates(
    failures_by_system: Mapping[str, np.ndarray], groups_by_system: Mapping[str, np.ndarray]
) -> tuple[np.ndarray, np.ndarray]:
    """(groups, rates): each system's failure rate inside each group, from each system's own (unpaired) data.

    ``failures_by_system[s]`` is a boolean vector over system s's instances and ``groups_by_system[s]`` one group label per
    instance. groups = sorted union of labels; rates[g, j] = failures of system j on its instances labelled g / its
    instances labelled g, NaN where system j has none. Columns follow the order of ``failures_by_system``.
    """
    names = _systems(failures_by_system, groups_by_system)
    failures = [_bool_vector(failures_by_system[name], f"failures for system {name!r}") for name in names]
    labels = [_labels(groups_by_system[name], name, len(fails)) for name, fails in zip(names, failures, strict=True)]
    groups = np.unique(np.concatenate(labels))
    rates = np.full((len(groups), len(names)), np.nan)
    for j, (fails, column) in enumerate(zip(failures, labels, strict=True)):
        for g, group in enumerate(groups):
            members = column == group
            if members.any():
                rates[g, j] = fails[members].mean()
    return groups, rates


def group_homogenization(rates: np.ndarray, counts: np.ndarray, overall: np.ndarray | None = None) -> dict[str, float]:
    """Group-level homogenization of Bommasani et al. (2022), as in the authors' code: avg, unif and worst.

    With r_gj = failure rate of system j in group g, q_gj = n_gj / sum_g n_gj (system j's share of instances in g) and
    r_j = system j's overall failure rate (default: sum_g n_gj r_gj / sum_g n_gj, exact when the labels cover all of j's
    instances; pass ``overall`` otherwise):

    * avg   = sum_g prod_j q_gj r_gj / (prod_j r_j * sum_g prod_j q_gj): the chance that k instances, one drawn per system,
      all fail given that they share a group, over the chance they all fail with no regard to group;
    * unif  = mean_g prod_j r_gj / prod_j r_j: the same with every group weighted equally;
    * worst = max_g prod_j r_gj / prod_j r_j.

    What is counted: prod_j r_gj is NOT an observed count of texts every system failed; it is the rate at which k
    members of g, drawn independently one per system, would all fail. With unpaired data (each service answers its
    own data set) a group's observed systemic failure cannot be measured, so this compares each group's rates with the
    overall rates; same-text systemic failure needs instance-paired probes and :func:`homogenization_ratio`.
    Groups that some system never saw are skipped in unif and worst (the authors' code counts such a group as failure
    rate 1) and add nothing to avg (q_gj = 0 in both). Each value is NaN when its denominator is 0.
    """
    rates, counts = np.asarray(rates, dtype=np.float64), np.asarray(counts, dtype=np.float64)
    if rates.ndim != 2 or rates.shape[0] == 0:
        raise ValueError(f"rates must be a non-empty groups x systems matrix, got shape {rates.shape}")
    if rates.shape[1] < 2:
        raise ValueError(f"homogenization needs at least 2 systems (columns), got {rates.shape[1]}")
    if counts.shape != rates.shape:
        raise ValueError(f"counts must have the shape of rates {rates.shape}, got {counts.shape}")
    if (counts < 0).any() or (counts.sum(axis=0) == 0).any():
        raise ValueError("counts must be non-negative and every system needs at least one instance")
    seen = counts > 0
    if np.isnan(rates[seen]).any() or ((rates[seen] < 0) | (rates[seen] > 1)).any():
        raise ValueError("rates must lie in [0, 1] wherever the count is positive")
    observed_rates = np.where(seen, rates, 0.0)
    if overall is None:
        overall_rates = (counts * observed_rates).sum(axis=0) / counts.sum(axis=0)
    else:
        overall_rates = np.asarray(overall, dtype=np.float64)
        if overall_rates.shape != (rates.shape[1],):
            raise ValueError(f"overall must hold one failure rate per system ({rates.shape[1]}), got shape {overall_rates.shape}")
    expected = float(np.prod(overall_rates))
    frequencies = counts / counts.sum(axis=0)
    joint_frequency = np.prod(frequencies, axis=1)
    complete = seen.all(axis=1)
    systemic = np.prod(observed_rates[complete], axis=1)
    return {
        "avg": _ratio(float((joint_frequency * np.prod(observed_rates, axis=1)).sum()), expected * float(joint_frequency.sum())),
        "unif": _ratio(float(systemic.mean()), expected) if systemic.size else float("nan"),
        "worst": _ratio(float(systemic.max()), expected) if systemic.size else float("nan"),
    }


# -------------------------------------------------------------------------------------- agreement between systems


def cohen_kappa_errors(errors_a: np.ndarray, errors_b: np.ndarray) -> float:
    """Error consistency (Geirhos, Meding, Wichmann, NeurIPS 2020): do two systems err on the same trials beyond chance?

    kappa = (c_obs - c_exp) / (1 - c_exp), c_obs = share of trials both get right or both get wrong, c_exp = p_a p_b +
    (1 - p_a)(1 - p_b) with p = accuracy, the agreement expected from independent systems with these accuracies.
    1 = identical errors, 0 = chance overlap, -1 = complementary errors. NaN when c_exp = 1 (both always right or
    both always wrong: agreement is forced, so consistency is undefined). Computed by sklearn's cohen_kappa_score.
    """
    from sklearn.metrics import cohen_kappa_score  # imported here: sklearn adds about a second to importing this module

    first, second = _bool_pair(errors_a, errors_b, ("errors_a", "errors_b"))
    accuracy_a, accuracy_b = 1 - first.mean(), 1 - second.mean()
    if accuracy_a * accuracy_b + (1 - accuracy_a) * (1 - accuracy_b) == 1:
        return float("nan")
    return float(cohen_kappa_score(first, second, labels=[False, True]))


def linear_cka(x: np.ndarray, y: np.ndarray) -> float:
    """Linear centred kernel alignment (Kornblith et al. 2019) between two representations of the same n rows.

    CKA = ||Y^T X||_F^2 / (||X^T X||_F ||Y^T Y||_F) with X and Y column-centred; x and y may have different widths.
    1 when y is x up to an orthogonal transform and isotropic scaling, 0 when the representations are linearly
    unrelated. NaN when either representation is constant (all rows equal).
    """
    first, second = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if first.ndim != 2 or second.ndim != 2:
        raise ValueError(f"x and y must be 2-D (rows x features), got shapes {first.shape} and {second.shape}")
    if first.shape[0] != second.shape[0]:
        raise ValueError(f"x and y must describe the same rows, got {first.shape[0]} and {second.shape[0]} rows")
    if first.shape[0] == 0:
        raise ValueError("x and y are empty: no rows")
    first, second = first - first.mean(axis=0), second - second.mean(axis=0)
    cross = np.linalg.norm(second.T @ first) ** 2
    return _ratio(cross, np.linalg.norm(first.T @ first) * np.linalg.norm(second.T @ second))


# ------------------------------------------------------------------------------------------------- uncertainty


def bootstrap_ci(
    data: Any,
    statistic: Callable[[np.ndarray], float] | None = None,
    *,
    n_resamples: int = 2000,
    seed: int = 0,
    level: float = 0.95,
) -> tuple[float, float, float]:
    """(estimate, low, high): the statistic on all rows and its percentile-bootstrap interval over rows.

    Rows (axis 0 of ``data``) are drawn with replacement n_resamples times from np.random.default_rng(seed), with the same
    draws as shared_backbone.evaluation.paired_bootstrap, so both give one interval for one seed; statistic defaults to
    the mean over axis 0 of 1-D data. Bounds are the (1 - level)/2 and (1 + level)/2 percentiles of the resampled
    statistic; resamples where the statistic is not finite (a ratio whose denominator vanished) are dropped, and the
    bounds are NaN when none is left.
    """
    values = np.asarray(data)
    if values.ndim == 0 or values.shape[0] == 0:
        raise ValueError("bootstrap_ci needs at least one row of data")
    if not 0 < level < 1:
        raise ValueError(f"level must lie strictly between 0 and 1, got {level}")
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be at least 1, got {n_resamples}")
    if statistic is None and values.ndim != 1:
        raise ValueError("pass a statistic for data with more than one column")
    rows = np.random.default_rng(seed).integers(0, values.shape[0], size=(n_resamples, values.shape[0]))
    if statistic is None:
        values = values.astype(np.float64)
        estimate, resampled = float(values.mean()), values[rows].mean(axis=1)
    else:
        estimate, resampled = float(statistic(values)), np.array([statistic(values[draw]) for draw in rows], dtype=np.float64)
    resampled = resampled[np.isfinite(resampled)]
    if resampled.size == 0:
        return estimate, float("nan"), float("nan")
    low, high = np.percentile(resampled, [100 * (1 - level) / 2, 100 * (1 + level) / 2])
    return estimate, float(low), float(high)


def paired_bootstrap_diff(a: np.ndarray, b: np.ndarray, *, n_resamples: int = 2000, seed: int = 0) -> dict[str, float]:
    """Mean of a - b over paired items (e.g. per-user NDCG of two deployments) with its 95% percentile-bootstrap interval.

    Delegates to shared_backbone.evaluation.paired_bootstrap, so the study and the services' evaluations report the same
    numbers: keys mean_difference, ci95_low, ci95_high and share_of_resamples_above_zero (how often a resampled mean
    difference favours a). For another level use ``bootstrap_ci(a - b, level=...)``, which draws the same resamples.
    """
    return paired_bootstrap(a, b, resamples=n_resamples, seed=seed)


def mcnemar(correct_a: np.ndarray, correct_b: np.ndarray) -> dict[str, Any]:
    """McNemar's test: do two systems scored on the same items differ in accuracy? Only discordant items count.

    b = items a gets right and b wrong, c = items a gets wrong and b right. With b + c < 25 the exact two-sided binomial
    test of min(b, c) successes in b + c trials at p = 0.5 (scipy.stats.binomtest; statistic = min(b, c)); otherwise the
    chi-square test with continuity correction, statistic (|b - c| - 1)^2 / (b + c) on 1 degree of freedom. p = 1.0 and
    test "none" when b + c = 0 (the systems never disagree).
    """
    first, second = _bool_pair(correct_a, correct_b, ("correct_a", "correct_b"))
    b, c = int((first & ~second).sum()), int((~first & second).sum())
    discordant = b + c
    if discordant == 0:
        test, statistic, p_value = "none", 0.0, 1.0
    elif discordant < EXACT_MCNEMAR_BELOW:
        test, statistic = "exact_binomial", float(min(b, c))
        p_value = float(stats.binomtest(min(b, c), discordant, 0.5, alternative="two-sided").pvalue)
    else:
        test, statistic = "chi_square_corrected", (abs(b - c) - 1) ** 2 / discordant
        p_value = float(stats.chi2.sf(statistic, df=1))
    return {"b": b, "c": c, "n_discordant": discordant, "statistic": statistic, "p_value": p_value, "test": test}


def mean_over_seeds(values_by_seed: Sequence[float], level: float = 0.95) -> dict[str, float]:
    """Mean of one metric over training seeds with a Student-t interval: mean ± t_{(1+level)/2, n-1} · s / sqrt(n).

    s is the sample standard deviation (ddof = 1). With one seed there is no spread to estimate, so std, low and high
    are NaN; with identical values the interval collapses to the mean.
    """
    values = np.asarray(values_by_seed, dtype=np.float64)
    if values.ndim != 1 or values.size == 0:
        raise ValueError("mean_over_seeds needs a non-empty list of per-seed values")
    if not np.isfinite(values).all():
        raise ValueError(f"per-seed values must be finite, got {values.tolist()}")
    if not 0 < level < 1:
        raise ValueError(f"level must lie strictly between 0 and 1, got {level}")
    n, mean = int(values.size), float(values.mean())
    if n == 1:
        return {"mean": mean, "low": float("nan"), "high": float("nan"), "n": n, "std": float("nan")}
    std = float(values.std(ddof=1))
    half_width = float(stats.t.ppf((1 + level) / 2, df=n - 1)) * std / np.sqrt(n)
    return {"mean": mean, "low": mean - half_width, "high": mean + half_width, "n": n, "std": std}
