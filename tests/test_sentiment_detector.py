from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from services.sentiment.detector import SurgeRule, Window, scan

START = datetime(2026, 1, 1, tzinfo=UTC)
HOUR = timedelta(hours=1)


def series(shares: list[float], volume: int = 40, key: str = "topic:Earnings") -> list[Window]:
    return [Window(key, START + n * HOUR, volume, round(share * volume)) for n, share in enumerate(shares)]


def test_a_surge_fires_once_with_its_evidence() -> None:
    shares = [0.2, 0.25, 0.18, 0.22, 0.2, 0.23, 0.19, 0.21, 0.7, 0.2]
    surges = scan(series(shares), SurgeRule())
    assert len(surges) == 1
    surge = surges[0]
    assert surge.window_start == START + 8 * HOUR and surge.share == pytest.approx(0.7)
    assert 0.19 < surge.baseline_share < 0.23 and surge.z >= 3.5 and surge.severity == "medium"  # high: 2x threshold or 80%
    assert surge.dedupe_key == f"topic:Earnings@{(START + 8 * HOUR).isoformat()}"


def test_noise_stays_quiet() -> None:
    rng = np.random.default_rng(0)
    false_alarms = 0
    for _ in range(50):
        negative = rng.binomial(40, 0.25, size=48)  # two days of hourly windows, nothing going on
        windows = [Window("topic:Macro", START + n * HOUR, 40, int(k)) for n, k in enumerate(negative)]
        false_alarms += len(scan(windows, SurgeRule()))
    assert false_alarms <= 2  # at most one alarm per 25 quiet days


def test_small_windows_warm_up_and_cooldown_hold_alerts_back() -> None:
    rule = SurgeRule(warm_up_windows=6, cooldown=timedelta(hours=3))
    assert scan(series([0.2] * 6 + [1.0], volume=4), rule) == []  # too few documents to mean anything
    assert scan(series([0.2, 0.9]), rule) == []  # no baseline yet
    sustained = scan(series([0.2] * 8 + [0.8, 0.85, 0.9, 0.2, 0.2, 0.2, 0.2, 0.9]), rule)
    assert [s.window_start for s in sustained] == [START + 8 * HOUR, START + 15 * HOUR]  # one per episode
    previous = START + 7 * HOUR
    assert scan(series([0.2] * 8 + [0.9]), rule, last_alert=previous) == []  # the stored alert's cooldown


def test_a_rise_must_be_material_as_well_as_unusual() -> None:
    flat = series([0.010] * 10 + [0.05], volume=1000)  # 5x the baseline, but only 4 points of share
    assert scan(flat, SurgeRule(min_share_rise=0.15, extra_std=0.0)) == []
    assert len(scan(flat, SurgeRule(min_share_rise=0.02, extra_std=0.0))) == 1
    assert scan(flat, SurgeRule(min_share_rise=0.02)) == []  # within what news cycles move anyway


def test_a_rare_key_surges_without_its_sparse_history_hiding_it() -> None:
    sparse = [
        Window("topic:Legal", START + n * HOUR, v, k)
        for n, (v, k) in enumerate([(1, 0), (2, 1), (1, 0), (2, 0), (1, 1), (1, 0), (2, 0), (1, 0)])
    ]
    burst = Window("topic:Legal", START + 9 * HOUR, 13, 11)
    assert [s.window_start for s in scan([*sparse, burst], SurgeRule())] == [burst.start]


def test_bad_rules_are_refused() -> None:
    with pytest.raises(ValueError, match="alpha"):
        SurgeRule(alpha=0)
