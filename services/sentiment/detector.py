"""Surge detection: is this window's share of negative news far above the key's own trailing baseline?

Per key (a topic or a ticker) the windows form a series; each window is compared with an EWMA mean
rate of the windows before it (Roberts 1959's EWMA control chart, on a proportion). The deviation
allowed is the binomial noise of the window's share at that rate plus a fixed allowance for news
cycles, so a window of 5 documents needs a far bigger jump than one of 500. A window fires only
with enough volume, after a warm-up, and outside the cooldown of the key's previous alert. Pure functions: the same series always gives
the same surges, which is what makes restarts safe (the store deduplicates on key and window).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True)
class Window:
    key: str  # "topic:Earnings", "ticker:TSLA"
    start: datetime
    volume: int
    negative: int

    @property
    def share(self) -> float:
        return self.negative / self.volume if self.volume else 0.0


@dataclass(frozen=True)
class SurgeRule:
    alpha: float = 0.1
    z_threshold: float = 3.5
    min_volume: int = 10
    min_share_rise: float = 0.3
    warm_up_windows: int = 6
    cooldown: timedelta = timedelta(hours=3)
    extra_std: float = 0.05

    def __post_init__(self) -> None:
        if not 0 < self.alpha <= 1 or self.z_threshold <= 0 or self.min_volume < 1 or self.warm_up_windows < 1 or self.extra_std < 0:
            raise ValueError("alpha in (0, 1], z_threshold > 0, min_volume >= 1, warm_up_windows >= 1 and extra_std >= 0 are needed")


@dataclass(frozen=True)
class Surge:
    key: str
    window_start: datetime
    volume: int
    share: float
    baseline_share: float
    baseline_std: float
    z: float
    severity: str  # "high" at twice the threshold or with most of the window negative, else "medium"

    @property
    def dedupe_key(self) -> str:
        return f"{self.key}@{self.window_start.isoformat()}"


def scan(series: Sequence[Window], rule: SurgeRule, last_alert: datetime | None = None) -> list[Surge]:
    """Every surge in one key's time-ordered windows (empty windows may be left out: they carry no share).

    The baseline rate is an EWMA of negative counts over an EWMA of volumes (so a window of 3 stories
    weighs less than one of 300); the allowed deviation is the window's binomial noise at that rate
    plus ``rule.extra_std`` for what news cycles add beyond chance. ``last_alert`` is the key's latest
    alert before the series, for the cooldown.
    """
    surges: list[Surge] = []
    negatives = volume = 0.0
    seen = 0
    for window in sorted(series, key=lambda w: w.start):
        if window.volume <= 0:
            continue
        share = window.share
        counted = float(window.negative)
        if seen >= rule.warm_up_windows:
            rate = negatives / volume if volume else 0.0
            std = max(math.sqrt(rate * (1 - rate) / window.volume + rule.extra_std**2), 1e-3)
            z = (share - rate) / std
            cooled = last_alert is None or window.start - last_alert >= rule.cooldown
            big_enough = window.volume >= rule.min_volume and share - rate >= rule.min_share_rise
            if z >= rule.z_threshold and big_enough and cooled:
                severity = "high" if z >= 2 * rule.z_threshold or share >= 0.8 else "medium"
                surges.append(Surge(window.key, window.start, window.volume, share, rate, std, z, severity))
                last_alert = window.start
            # a surge must not teach the baseline that surges are normal: it counts only up to the threshold
            counted = min(share, rate + rule.z_threshold * std) * window.volume
        if seen == 0:
            negatives, volume = counted, float(window.volume)
        else:
            negatives = (1 - rule.alpha) * negatives + rule.alpha * counted
            volume = (1 - rule.alpha) * volume + rule.alpha * window.volume
        seen += 1
    return surges
