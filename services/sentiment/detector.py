"""Surge detection: is this window's share of negative news far above the key's own trailing baseline?

Per key (a topic or a ticker) the windows form a series; each window is compared with an EWMA mean
and variance of the windows before it (Roberts 1959; the usual EWMA control chart). The deviation
allowed also includes the binomial noise of the window's own share, so a window of 5 documents
needs a far bigger jump than one of 500. A window fires only with enough volume, after a warm-up,
and outside the cooldown of the key's previous alert. Pure functions: the same series always gives
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
    z_threshold: float = 3.0
    min_volume: int = 5
    min_share_rise: float = 0.15
    warm_up_windows: int = 6
    cooldown: timedelta = timedelta(hours=3)

    def __post_init__(self) -> None:
        if not 0 < self.alpha <= 1 or self.z_threshold <= 0 or self.min_volume < 1 or self.warm_up_windows < 1:
            raise ValueError("alpha in (0, 1], z_threshold > 0, min_volume >= 1 and warm_up_windows >= 1 are needed")


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

    ``last_alert`` is the key's latest alert before the series, for the cooldown.
    """
    surges: list[Surge] = []
    mean = variance = 0.0
    seen = 0
    for window in sorted(series, key=lambda w: w.start):
        if window.volume <= 0:
            continue
        share = update = window.share
        if seen >= rule.warm_up_windows:
            noise = mean * (1 - mean) / window.volume  # binomial variance of this window's share
            std = math.sqrt(max(variance + noise, 1e-6))
            z = (share - mean) / std
            cooled = last_alert is None or window.start - last_alert >= rule.cooldown
            big_enough = window.volume >= rule.min_volume and share - mean >= rule.min_share_rise
            if z >= rule.z_threshold and big_enough and cooled:
                severity = "high" if z >= 2 * rule.z_threshold or share >= 0.8 else "medium"
                surges.append(Surge(window.key, window.start, window.volume, share, mean, std, z, severity))
                last_alert = window.start
            # a surge must not teach the baseline that surges are normal: it counts only up to the threshold
            update = min(share, mean + rule.z_threshold * std)
        if seen == 0:
            mean = share
        else:  # EWMA mean and variance (West 1979's incremental form)
            delta = update - mean
            mean += rule.alpha * delta
            variance = (1 - rule.alpha) * (variance + rule.alpha * delta * delta)
        seen += 1
    return surges
