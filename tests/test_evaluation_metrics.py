"""The ranking metrics and the paired bootstrap, against small cases computed by hand."""

from __future__ import annotations

import numpy as np
import pytest

from shared_backbone.evaluation import paired_bootstrap, per_user_ranking, ranking_metrics, top_k


def test_top_k_skips_excluded_and_non_finite_scores() -> None:
    scores = np.array([0.1, 0.9, 0.5, -np.inf, 0.7])
    assert top_k(scores, 3) == [1, 4, 2]
    assert top_k(scores, 3, exclude=[1]) == [4, 2, 0]
    assert top_k(scores, 10) == [1, 4, 2, 0]  # -inf is never ranked


def test_ranking_metrics_by_hand() -> None:
    ranked = [[1, 2, 3], [4, 5, 6]]
    relevant = [{2, 9}, {7}]
    per_user = per_user_ranking(ranked, relevant, k=3)
    # user 1: one hit at rank 2 -> DCG 1/log2(3); ideal for 2 relevant: 1 + 1/log2(3)
    ideal = 1 + 1 / np.log2(3)
    assert per_user["ndcg@3"].tolist() == pytest.approx([(1 / np.log2(3)) / ideal, 0.0])
    assert per_user["hr@3"].tolist() == [1.0, 0.0] and per_user["recall@3"].tolist() == [0.5, 0.0]
    summary = ranking_metrics(ranked, relevant, k=3, catalogue_size=12)
    assert summary["hr@3"] == 0.5 and summary["recall@3"] == 0.25 and summary["coverage"] == 0.5 and summary["users"] == 2
    with pytest.raises(ValueError, match="one ranking per user"):
        ranking_metrics(ranked, relevant[:1], 3, 12)


def test_paired_bootstrap_centres_on_the_mean_difference() -> None:
    a = np.array([0.2, 0.4, 0.6, 0.8])
    same = paired_bootstrap(a, a)
    assert same["mean_difference"] == 0.0 and same["ci95_low"] == 0.0 and same["ci95_high"] == 0.0
    better = paired_bootstrap(a + 0.1, a)  # a constant lead: every resample sees exactly it
    assert better["mean_difference"] == pytest.approx(0.1) and better["ci95_low"] == pytest.approx(0.1)
    assert better["share_of_resamples_above_zero"] == 1.0
    mixed = paired_bootstrap(np.array([1.0, 0.0, 1.0, 0.0]), np.array([0.0, 1.0, 0.0, 0.0]), seed=1)
    assert mixed["mean_difference"] == pytest.approx(0.25) and mixed["ci95_low"] < 0.25 < mixed["ci95_high"]
    assert paired_bootstrap(a[::-1], a, seed=3) == paired_bootstrap(a[::-1], a, seed=3)  # deterministic per seed
    with pytest.raises(ValueError, match="paired"):
        paired_bootstrap(a, a[:2])
