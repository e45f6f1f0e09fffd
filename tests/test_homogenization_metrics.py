"""The homogenization study's metrics, against small cases worked out by hand (the arithmetic is in the comments)."""

from __future__ import annotations

import numpy as np
import pytest

from homogenization.metrics import (
    bootstrap_ci,
    cohen_kappa_errors,
    group_counts,
    group_failure_rates,
    group_homogenization,
    homogenization_ratio,
    linear_cka,
    mcnemar,
    mean_over_seeds,
    paired_bootstrap_diff,
    paired_homogenization_average,
    paired_homogenization_uniform,
    paired_homogenization_worst,
    systemic_failure_by_group,
)
from shared_backbone.evaluation import paired_bootstrap


def _matrix(rows: list[list[int]]) -> np.ndarray:
    return np.array(rows, dtype=bool)


# ------------------------------------------------------------------------------------------ homogenization_ratio


def test_homogenization_ratio_on_4x2_cases_by_hand() -> None:
    # system 1 fails rows 0,1 (rate 1/2), system 2 fails rows 0,2 (rate 1/2): expected 1/2 * 1/2 = 1/4,
    # observed (row 0 only) 1/4 -> H = 1
    assert homogenization_ratio(_matrix([[1, 1], [1, 0], [0, 1], [0, 0]])) == 1.0
    # system 1 fails rows 0,1 (1/2), system 2 fails row 0 (1/4): expected 1/8, observed 1/4 -> H = 2
    assert homogenization_ratio(_matrix([[1, 1], [1, 0], [0, 0], [0, 0]])) == 2.0
    # disjoint failures: observed 0, expected 1/2 * 1/4 -> H = 0
    assert homogenization_ratio(_matrix([[1, 0], [1, 0], [0, 1], [0, 0]])) == 0.0
    # three systems: rates 3/4, 1/2, 1/2 -> expected 3/16; rows 0 and 1 failed by all -> observed 2/4; H = (1/2)/(3/16) = 8/3
    assert homogenization_ratio(_matrix([[1, 1, 1], [1, 1, 1], [1, 0, 0], [0, 0, 0]])) == pytest.approx(8 / 3)


def test_perfectly_correlated_failures_give_one_over_p() -> None:
    # both systems fail the same 2 of 10 instances: observed 0.2, expected 0.2 * 0.2 = 0.04 -> H = 5 = 1/p
    failures = np.zeros((10, 2), dtype=bool)
    failures[:2] = True
    assert homogenization_ratio(failures) == pytest.approx(1 / 0.2)
    # three identical systems failing a share p: observed p, expected p^3 -> 1/p^2 = 25
    assert homogenization_ratio(np.repeat(failures[:, :1], 3, axis=1)) == pytest.approx(25.0)


def test_independent_failures_give_one() -> None:
    # a 10 x 10 grid of instances (u, v): system A fails when u < 3 (rate 0.3), B when v < 6 (rate 0.6);
    # both fail on 3 * 6 = 18 of 100 cells = 0.18 = 0.3 * 0.6 exactly -> H = 1
    u, v = np.divmod(np.arange(100), 10)
    assert homogenization_ratio(np.stack([u < 3, v < 6], axis=1)) == pytest.approx(1.0)
    # independent Bernoulli failures on a large balanced design: H is 1 up to sampling noise
    rng = np.random.default_rng(7)
    assert homogenization_ratio(rng.random((200_000, 2)) < [0.3, 0.5]) == pytest.approx(1.0, abs=0.03)


def test_homogenization_ratio_is_nan_when_a_system_never_fails() -> None:
    assert np.isnan(homogenization_ratio(_matrix([[1, 0], [1, 0], [0, 0]])))


@pytest.mark.parametrize(
    ("failures", "message"),
    [
        (np.zeros((0, 2), dtype=bool), "empty"),
        (np.array([[1, 0], [0, 1]]), "boolean"),
        (np.array([[0.5, 1.0]]), "boolean"),
        (np.zeros((4, 1), dtype=bool), "at least 2 systems"),
        (np.zeros(4, dtype=bool), "2-D"),
    ],
)
def test_homogenization_ratio_rejects_bad_input(failures: np.ndarray, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        homogenization_ratio(failures)


# --------------------------------------------------------------------------------- paired group-level variants

# rows 0-2 form group A, rows 3-5 group B; two systems
PAIRED = _matrix([[1, 1], [1, 1], [0, 0], [1, 0], [0, 1], [0, 0]])
GROUPS = {"A": [0, 1, 2], "B": [3, 4, 5]}


def test_systemic_failure_by_group_by_hand() -> None:
    table = systemic_failure_by_group(PAIRED, GROUPS)
    # A: both systems fail rows 0,1 -> rates 2/3, 2/3; observed 2/3; expected 4/9
    assert table["A"] == pytest.approx({"n": 3, "observed": 2 / 3, "expected": 4 / 9})
    # B: system 1 fails row 3, system 2 row 4 -> rates 1/3, 1/3; observed 0; expected 1/9
    assert table["B"] == pytest.approx({"n": 3, "observed": 0.0, "expected": 1 / 9})


def test_paired_variants_by_hand() -> None:
    # overall: each system fails 3 of 6 rows -> expected 1/4; rows 0,1 failed by both -> observed 1/3; H = 4/3
    assert homogenization_ratio(PAIRED) == pytest.approx(4 / 3)
    # average: mean(2/3, 0) / mean(4/9, 1/9) = (1/3) / (5/18) = 6/5
    assert paired_homogenization_average(PAIRED, GROUPS) == pytest.approx(6 / 5)
    # uniform: mean(2/3, 0) / (1/2 * 1/2) = (1/3) / (1/4) = 4/3
    assert paired_homogenization_uniform(PAIRED, GROUPS) == pytest.approx(4 / 3)
    # worst: max((2/3) / (4/9), 0 / (1/9)) = max(3/2, 0) = 3/2
    assert paired_homogenization_worst(PAIRED, GROUPS) == pytest.approx(3 / 2)


def test_paired_variants_accept_masks_and_lists_and_reduce_to_the_ratio_for_one_group() -> None:
    masks = [np.arange(6) < 3, np.arange(6) >= 3]  # groups as boolean masks, named by position
    assert paired_homogenization_average(PAIRED, masks) == pytest.approx(6 / 5)
    everyone = {"all": np.arange(6)}
    for variant in (paired_homogenization_average, paired_homogenization_uniform, paired_homogenization_worst):
        assert variant(PAIRED, everyone) == pytest.approx(homogenization_ratio(PAIRED))


def test_paired_variants_skip_empty_groups_and_return_nan_without_expected_failures() -> None:
    assert paired_homogenization_average(PAIRED, {**GROUPS, "empty": []}) == pytest.approx(6 / 5)
    # in group C = rows 2,5 nobody fails: expected 0 -> worst has nothing to compare, average divides by 0
    assert np.isnan(paired_homogenization_worst(PAIRED, {"C": [2, 5]}))
    assert np.isnan(paired_homogenization_average(PAIRED, {"C": [2, 5]}))
    with pytest.raises(ValueError, match="outside"):
        systemic_failure_by_group(PAIRED, {"A": [0, 6]})
    with pytest.raises(ValueError, match="every group is empty"):
        systemic_failure_by_group(PAIRED, {"A": []})
    with pytest.raises(ValueError, match="groups is empty"):
        systemic_failure_by_group(PAIRED, {})
    with pytest.raises(ValueError, match="boolean"):
        paired_homogenization_uniform(PAIRED.astype(int), GROUPS)


# ------------------------------------------------------------------------------- unpaired, the paper's group level

# two services answering different data sets, related only by the text-length group of each instance
FAILURES = {"support": np.array([1, 0, 1, 1], dtype=bool), "news": np.array([1, 0, 0, 0], dtype=bool)}
LABELS = {"support": np.array(["short", "short", "long", "long"]), "news": np.array(["short", "short", "short", "long"])}


def test_group_failure_rates_and_counts_by_hand() -> None:
    groups, rates = group_failure_rates(FAILURES, LABELS)
    assert groups.tolist() == ["long", "short"]
    # support: long 2/2 = 1, short 1/2; news: long 0/1 = 0, short 1/3
    assert rates == pytest.approx(np.array([[1.0, 0.0], [0.5, 1 / 3]]))
    same_groups, counts = group_counts(LABELS)
    assert same_groups.tolist() == ["long", "short"] and counts.tolist() == [[2, 1], [2, 3]]


def test_group_homogenization_matches_the_papers_formulas_by_hand() -> None:
    _, rates = group_failure_rates(FAILURES, LABELS)
    _, counts = group_counts(LABELS)
    result = group_homogenization(rates, counts)
    # overall rates: support 3/4, news 1/4 -> expected 3/16
    # prod_j r_gj: long 1 * 0 = 0, short 1/2 * 1/3 = 1/6
    # unif = mean(0, 1/6) / (3/16) = (1/12) / (3/16) = 4/9;  worst = (1/6) / (3/16) = 8/9
    # avg: q long = (2/4, 1/4), short = (2/4, 3/4); prod_j q: long 1/8, short 3/8
    #      numerator = 1/8 * 0 + 3/8 * 1/6 = 1/16; denominator = 3/16 * (1/8 + 3/8) = 3/32 -> avg = 2/3
    assert result == pytest.approx({"avg": 2 / 3, "unif": 4 / 9, "worst": 8 / 9})
    # one group holding everything: every variant compares the overall rates with themselves -> 1
    one = group_homogenization(np.array([[0.75, 0.25]]), np.array([[4, 4]]))
    assert one == pytest.approx({"avg": 1.0, "unif": 1.0, "worst": 1.0})


def test_group_homogenization_skips_groups_a_system_never_saw() -> None:
    failures = {**FAILURES, "news": np.array([1, 0, 0, 0, 1], dtype=bool)}
    labels = {**LABELS, "news": np.array(["short", "short", "short", "long", "emoji"])}
    groups, rates = group_failure_rates(failures, labels)
    assert groups.tolist() == ["emoji", "long", "short"] and np.isnan(rates[0, 0])  # support has no emoji texts
    _, counts = group_counts(labels)
    result = group_homogenization(rates, counts)
    # support overall 3/4, news overall 2/5 -> expected 3/10; emoji is skipped (the authors' code would count rate 1)
    # unif = mean(0, 1/6) / (3/10) = 5/18; worst = (1/6) / (3/10) = 5/9
    # avg: q_support = (0, 1/2, 1/2), q_news = (1/5, 1/5, 3/5); prod_j q = (0, 1/10, 3/10)
    #      numerator = 1/10 * 0 + 3/10 * 1/6 = 1/20; denominator = 3/10 * 4/10 = 3/25 -> avg = 25/60 = 5/12
    assert result == pytest.approx({"avg": 5 / 12, "unif": 5 / 18, "worst": 5 / 9})


def test_group_homogenization_on_paired_data_measures_group_not_instance_coupling() -> None:
    # the same six probe texts for both systems, labelled A, A, A, B, B, B
    labels = np.array(["A"] * 3 + ["B"] * 3)
    _, rates = group_failure_rates({"s1": PAIRED[:, 0], "s2": PAIRED[:, 1]}, {"s1": labels, "s2": labels})
    _, counts = group_counts({"s1": labels, "s2": labels})
    # rates A (2/3, 2/3), B (1/3, 1/3); overall (1/2, 1/2) -> expected 1/4
    # unif = mean(4/9, 1/9) / (1/4) = 10/9 = avg (equal group sizes); worst = (4/9) / (1/4) = 16/9
    assert group_homogenization(rates, counts) == pytest.approx({"avg": 10 / 9, "unif": 10 / 9, "worst": 16 / 9})
    # a given overall rate overrides the one derived from the counts: expected 1/2 * 1/4 = 1/8 -> unif 20/9
    assert group_homogenization(rates, counts, overall=np.array([0.5, 0.25]))["unif"] == pytest.approx(20 / 9)


def test_group_functions_reject_bad_input() -> None:
    with pytest.raises(ValueError, match="at least 2 systems"):
        group_failure_rates({"a": FAILURES["news"]}, {"a": LABELS["news"]})
    with pytest.raises(ValueError, match="same systems"):
        group_failure_rates(FAILURES, {"support": LABELS["support"], "other": LABELS["news"]})
    with pytest.raises(ValueError, match="group labels"):
        group_failure_rates(FAILURES, {**LABELS, "news": LABELS["news"][:3]})
    with pytest.raises(ValueError, match="boolean"):
        group_failure_rates({**FAILURES, "news": np.array([1, 0, 0, 0])}, LABELS)
    with pytest.raises(ValueError, match="shape of rates"):
        group_homogenization(np.ones((2, 2)), np.ones((3, 2)))
    with pytest.raises(ValueError, match="at least 2 systems"):
        group_homogenization(np.ones((2, 1)), np.ones((2, 1)))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        group_homogenization(np.array([[0.5, 1.5]]), np.ones((1, 2)))
    # a system that never fails: the expected rate is 0 and every ratio is NaN rather than a crash
    assert all(np.isnan(v) for v in group_homogenization(np.array([[0.5, 0.0]]), np.ones((1, 2))).values())


# ------------------------------------------------------------------------------------------------ error consistency


def test_cohen_kappa_errors_by_hand() -> None:
    errors = np.array([1, 0, 1, 1, 0, 0], dtype=bool)
    assert cohen_kappa_errors(errors, errors) == pytest.approx(1.0)
    # a errs on trials 0,1, b on 0,2: accuracies 1/2, 1/2 -> c_exp = 1/4 + 1/4 = 1/2; agree on 0 and 3 -> c_obs 1/2 -> 0
    assert cohen_kappa_errors(_bool([1, 1, 0, 0]), _bool([1, 0, 1, 0])) == pytest.approx(0.0)
    # complementary at 50% accuracy: c_obs = 0, c_exp = 1/2 -> (0 - 1/2) / (1 - 1/2) = -1
    assert cohen_kappa_errors(_bool([1, 1, 0, 0]), _bool([0, 0, 1, 1])) == pytest.approx(-1.0)
    # accuracies 0.8 and 0.6: c_exp = 0.8 * 0.6 + 0.2 * 0.4 = 0.56; agree on trials 0, 2, 3, 4 -> c_obs 0.8
    # kappa = (0.8 - 0.56) / (1 - 0.56) = 0.24 / 0.44 = 6/11
    assert cohen_kappa_errors(_bool([1, 0, 0, 0, 0]), _bool([1, 1, 0, 0, 0])) == pytest.approx(6 / 11)


def _bool(values: list[int]) -> np.ndarray:
    return np.array(values, dtype=bool)


def test_cohen_kappa_errors_nan_and_bad_input() -> None:
    never = np.zeros(5, dtype=bool)
    assert np.isnan(cohen_kappa_errors(never, never))  # both always right: c_exp = 1
    assert np.isnan(cohen_kappa_errors(~never, ~never))  # both always wrong: c_exp = 1
    assert cohen_kappa_errors(never, ~never) == pytest.approx(0.0)  # c_exp = 0, c_obs = 0
    with pytest.raises(ValueError, match="paired"):
        cohen_kappa_errors(never, never[:3])
    with pytest.raises(ValueError, match="empty"):
        cohen_kappa_errors(never[:0], never[:0])
    with pytest.raises(ValueError, match="boolean"):
        cohen_kappa_errors(np.zeros(5), np.zeros(5))


# ------------------------------------------------------------------------------------------------------ linear CKA


def test_linear_cka_invariances() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(50, 5))
    q, _ = np.linalg.qr(rng.normal(size=(5, 5)))  # an orthogonal matrix
    assert linear_cka(x, x) == pytest.approx(1.0)
    assert linear_cka(x, x @ q) == pytest.approx(1.0)
    assert linear_cka(x, 3 * x) == pytest.approx(1.0)
    y = rng.normal(size=(50, 3))  # a narrower, unrelated representation
    value = linear_cka(x, y)
    assert 0.0 <= value < 1.0
    assert linear_cka(2.5 * x, 0.1 * y) == pytest.approx(value)  # isotropic scaling
    assert linear_cka(x + 7.0, y - 2.0) == pytest.approx(value)  # feature centring removes offsets
    assert linear_cka(y, x) == pytest.approx(value)  # symmetric


def test_linear_cka_by_hand() -> None:
    # centred x = (-1, 0, 1), centred y = (-1, 1, 0): Y^T X = 1 -> squared 1; ||X^T X|| = 2, ||Y^T Y|| = 2 -> 1/4
    # (for one feature each, linear CKA is the squared correlation: r = 1/2)
    assert linear_cka(np.array([[1.0], [2.0], [3.0]]), np.array([[1.0], [3.0], [2.0]])) == pytest.approx(0.25)
    assert np.isnan(linear_cka(np.ones((3, 2)), np.array([[1.0], [3.0], [2.0]])))  # constant x: undefined
    with pytest.raises(ValueError, match="same rows"):
        linear_cka(np.ones((3, 2)), np.ones((4, 2)))
    with pytest.raises(ValueError, match="2-D"):
        linear_cka(np.ones(3), np.ones((3, 1)))


# ------------------------------------------------------------------------------------------------------- bootstrap


def test_bootstrap_ci_is_deterministic_contains_the_estimate_and_narrows_with_data() -> None:
    rng = np.random.default_rng(3)
    small, large = rng.normal(size=30), rng.normal(size=3000)
    assert bootstrap_ci(small, seed=5) == bootstrap_ci(small, seed=5)
    assert bootstrap_ci(small, seed=5) != bootstrap_ci(small, seed=6)
    estimate, low, high = bootstrap_ci(small)
    assert estimate == pytest.approx(small.mean()) and low < estimate < high
    _, large_low, large_high = bootstrap_ci(large)
    assert large_high - large_low < (high - low) / 3  # about sqrt(100) = 10 times narrower
    narrow_low, narrow_high = bootstrap_ci(small, level=0.5)[1:]
    assert low < narrow_low < narrow_high < high
    assert bootstrap_ci(np.full(10, 0.25)) == (0.25, 0.25, 0.25)  # no spread: a point interval


def test_bootstrap_ci_with_a_statistic_over_rows() -> None:
    # resampling whole rows of a failure matrix keeps each instance's outcomes for both systems together
    failures = np.zeros((40, 2), dtype=bool)
    failures[:8] = True  # both fail the same 8 of 40 -> H = 1/0.2 = 5
    failures[8:16, 0] = True  # system 1 also fails 8 more -> rates 0.4, 0.2; H = 0.2 / 0.08 = 2.5
    estimate, low, high = bootstrap_ci(failures, homogenization_ratio, n_resamples=500)
    assert estimate == pytest.approx(2.5) and low <= estimate <= high
    # the mean as an explicit statistic draws the same resamples as the default
    values = np.arange(10.0)
    assert bootstrap_ci(values, np.mean) == pytest.approx(bootstrap_ci(values))
    with pytest.raises(ValueError, match="statistic"):
        bootstrap_ci(failures)
    with pytest.raises(ValueError, match="at least one row"):
        bootstrap_ci(np.array([]))
    with pytest.raises(ValueError, match="level"):
        bootstrap_ci(values, level=1.0)


def test_bootstrap_ci_drops_resamples_where_the_statistic_is_undefined() -> None:
    # one failing instance in ten: resamples that miss it have no failures and a NaN ratio; the rest give H = 10
    failures = np.zeros((10, 2), dtype=bool)
    failures[0] = True
    assert bootstrap_ci(failures, homogenization_ratio, n_resamples=200)[0] == pytest.approx(10.0)
    assert np.isfinite(bootstrap_ci(failures, homogenization_ratio, n_resamples=200)[1:]).all()
    all_nan = bootstrap_ci(np.zeros((5, 2), dtype=bool), homogenization_ratio, n_resamples=20)
    assert np.isnan(all_nan).all()


def test_paired_bootstrap_diff_reuses_the_services_bootstrap() -> None:
    rng = np.random.default_rng(11)
    a, b = rng.random(200), rng.random(200)
    result = paired_bootstrap_diff(a, b, n_resamples=1000, seed=4)
    assert result == paired_bootstrap(a, b, resamples=1000, seed=4)
    assert result["mean_difference"] == pytest.approx((a - b).mean())
    # the generic bootstrap draws the same resamples, so the two agree on the interval
    estimate, low, high = bootstrap_ci(a - b, n_resamples=1000, seed=4)
    assert (estimate, low, high) == pytest.approx((result["mean_difference"], result["ci95_low"], result["ci95_high"]))


# -------------------------------------------------------------------------------------------------------- McNemar


def _paired_outcomes(both_right: int, only_a: int, only_b: int, both_wrong: int) -> tuple[np.ndarray, np.ndarray]:
    a = [True] * both_right + [True] * only_a + [False] * only_b + [False] * both_wrong
    b = [True] * both_right + [False] * only_a + [True] * only_b + [False] * both_wrong
    return np.array(a), np.array(b)


def test_mcnemar_exact_branch_by_hand() -> None:
    # b = 1, c = 9: P = 2 * P(X <= 1 | n = 10, 1/2) = 2 * (1 + 10) / 1024 = 22/1024 = 0.021484375
    result = mcnemar(*_paired_outcomes(5, 1, 9, 3))
    assert result["b"] == 1 and result["c"] == 9 and result["n_discordant"] == 10
    assert result["test"] == "exact_binomial" and result["statistic"] == 1.0
    assert result["p_value"] == pytest.approx(22 / 1024, rel=1e-12)
    # b = 12, c = 12 (24 discordant, still exact): a symmetric split -> p = 1
    tied = mcnemar(*_paired_outcomes(0, 12, 12, 0))
    assert tied["test"] == "exact_binomial" and tied["p_value"] == pytest.approx(1.0)


def test_mcnemar_chi_square_branch_by_hand() -> None:
    # b = 40, c = 20: statistic (|40 - 20| - 1)^2 / 60 = 361/60 = 6.01667; P(chi2_1 > 6.01667) = erfc(sqrt(6.01667 / 2)) = 0.014171
    result = mcnemar(*_paired_outcomes(100, 40, 20, 10))
    assert result["test"] == "chi_square_corrected"
    assert result["statistic"] == pytest.approx(361 / 60)
    assert result["p_value"] == pytest.approx(0.0141714, abs=1e-6)
    # 25 discordant pairs is the first size that uses the chi-square: b = 20, c = 5 -> (15 - 1)^2 / 25 = 7.84
    assert mcnemar(*_paired_outcomes(0, 20, 5, 0))["statistic"] == pytest.approx(7.84)


def test_mcnemar_without_disagreement_and_bad_input() -> None:
    result = mcnemar(*_paired_outcomes(6, 0, 0, 4))
    assert result == {"b": 0, "c": 0, "n_discordant": 0, "statistic": 0.0, "p_value": 1.0, "test": "none"}
    with pytest.raises(ValueError, match="paired"):
        mcnemar(np.ones(3, dtype=bool), np.ones(4, dtype=bool))
    with pytest.raises(ValueError, match="boolean"):
        mcnemar(np.ones(3), np.ones(3))


# ------------------------------------------------------------------------------------------------ mean over seeds


def test_mean_over_seeds_by_hand() -> None:
    # values 1, 2, 3: mean 2, s = 1, standard error 1/sqrt(3); t_{0.975, 2} = 4.302653 (a t-table)
    # half width = 4.302653 / sqrt(3) = 2.484138
    summary = mean_over_seeds([1.0, 2.0, 3.0])
    assert summary["n"] == 3 and summary["mean"] == 2.0 and summary["std"] == 1.0
    assert summary["low"] == pytest.approx(2 - 4.302653 / np.sqrt(3), abs=1e-6)
    assert summary["high"] == pytest.approx(2 + 4.302653 / np.sqrt(3), abs=1e-6)
    # one seed: no spread to estimate
    single = mean_over_seeds([0.7])
    assert single["mean"] == 0.7 and single["n"] == 1 and np.isnan(single["low"]) and np.isnan(single["high"])
    # identical seeds: the interval collapses onto the mean
    same = mean_over_seeds([0.5, 0.5, 0.5])
    assert same["low"] == same["high"] == 0.5
    with pytest.raises(ValueError, match="non-empty"):
        mean_over_seeds([])
    with pytest.raises(ValueError, match="finite"):
        mean_over_seeds([1.0, float("nan")])


def test_quality_intervals_stay_within_the_metric_range() -> None:
    from homogenization.analysis import over_seeds

    # mean 0.98, s = 0.04 / sqrt(2) = 0.028284, n 2: t(0.975, 1) = 12.7062 -> half width 12.7062 * 0.028284 / sqrt(2) = 0.25412
    clipped = over_seeds([0.96, 1.0], bounds=(0.0, 1.0))
    assert clipped["high"] == 1.0 and clipped["low"] == pytest.approx(0.98 - 0.25412, abs=1e-4)
    assert "clipped to [0, 1]" in clipped["interval"]
    free = over_seeds([0.96, 1.0])
    assert free["high"] == pytest.approx(0.98 + 0.25412, abs=1e-4) and "clipped" not in free["interval"]
    inside = over_seeds([0.5, 0.52], bounds=(0.0, 1.0))
    assert inside["interval"] == "t over seeds" and 0.0 < inside["low"] < inside["high"] < 1.0
