"""Seed statistics of a comparison: mean ± std per arm, and the paired difference against a
baseline with its 95% t interval, the win count and one plain sentence.

Two arms of a comparison run at the same seeds, so arm − baseline is taken seed by seed (both
runs of a seed draw the same data order and initialisation where the graphs allow it), and the
interval is Student's t on those differences: ``mean ± t(0.975, n−1) · std / √n``. With the
three to five seeds a CPU affords, a bootstrap interval would be far too narrow (it resamples
three numbers); the t interval is wide when seeds disagree, which is the honest answer. One
paired seed gives no interval at all: it is refused, in one line, rather than drawn as zero-width.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from scipy import stats as scipy_stats

from metamask.errors import ConfigError

#: the interval's coverage and the name the tables print for its method
LEVEL = 0.95
METHOD = "t"


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation over seeds (std 0.0 for a single seed)."""
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return statistics.fmean(values), std


def t_interval(differences: Sequence[float], level: float = LEVEL) -> tuple[float, float]:
    """The ``level`` Student-t interval of the mean of ``differences`` (paired by seed).

    Raises:
        ConfigError: fewer than two differences (one seed says nothing about seed noise).
    """
    n = len(differences)
    if n < 2:
        raise ConfigError(
            f"a {level:.0%} interval needs at least 2 paired seeds, got {n}: run more --seeds"
        )
    mean, std = mean_std(differences)
    half = float(scipy_stats.t.ppf(0.5 + level / 2, n - 1)) * std / math.sqrt(n)
    return mean - half, mean + half


@dataclass(frozen=True)
class Paired:
    """``arm`` − ``baseline`` seed by seed, over the seeds both have.

    ``low``/``high`` is the t interval (None, with ``refused`` saying why, for one seed);
    ``wins``/``ties``/``losses`` count seeds where the difference is above, at, below 0.
    """

    arm: str
    baseline: str
    seeds: tuple[int, ...]
    differences: tuple[float, ...]
    mean: float
    std: float
    low: float | None
    high: float | None
    wins: int
    ties: int
    losses: int
    refused: str | None = None
    method: str = METHOD
    level: float = LEVEL

    @property
    def verdict(self) -> str:
        """``ahead`` / ``behind`` when the interval excludes 0, ``within seed noise`` when it
        holds 0, ``no interval`` for a single seed."""
        if self.low is None or self.high is None:
            return "no interval"
        if self.low > 0:
            return "ahead"
        if self.high < 0:
            return "behind"
        return "within seed noise"

    def sentence(self, scale: float = 100.0, unit: str = "points") -> str:
        """One plain sentence, e.g. ``MetaMAE − MAE = +1.0 [+0.3, +1.7] points (3/3 seeds):
        MetaMAE is ahead of MAE beyond seed noise (95% t interval over 3 paired seeds).``"""
        n = len(self.seeds)
        ties = f", {self.ties} tied" if self.ties else ""
        head = f"{self.arm} − {self.baseline} = {scale * self.mean:+.1f}"
        unit = f" {unit}" if unit else ""
        count = f"({self.wins}/{n} seeds ahead{ties})"
        if self.low is None or self.high is None:
            return f"{head}{unit} {count}: no interval, {self.refused}"
        interval = f"[{scale * self.low:+.1f}, {scale * self.high:+.1f}]"
        how = f"{self.level:.0%} {self.method} interval over {n} paired seeds"
        if self.verdict == "within seed noise":
            said = f"within seed noise, the interval holds 0 ({how})"
        else:
            where = "ahead of" if self.verdict == "ahead" else "behind"
            said = f"{self.arm} is {where} {self.baseline} beyond seed noise ({how})"
        return f"{head} {interval}{unit} {count}: {said}"


def paired(
    arm: str, arm_scores: Mapping[int, float], baseline: str, base_scores: Mapping[int, float]
) -> Paired:
    """``arm`` − ``baseline`` over the seeds both scored (seed -> score), with its interval.

    Raises:
        ConfigError: no seed in common (nothing to pair).
    """
    seeds = tuple(sorted(set(arm_scores) & set(base_scores)))
    if not seeds:
        raise ConfigError(f"{arm} vs {baseline}: no seed scored by both, nothing to pair")
    diffs = tuple(float(arm_scores[s]) - float(base_scores[s]) for s in seeds)
    mean, std = mean_std(diffs)
    low: float | None
    high: float | None
    refused = None
    try:
        low, high = t_interval(diffs)
    except ConfigError as exc:
        low = high = None
        refused = str(exc)
    return Paired(
        arm=arm,
        baseline=baseline,
        seeds=seeds,
        differences=diffs,
        mean=mean,
        std=std,
        low=low,
        high=high,
        wins=sum(d > 0 for d in diffs),
        ties=sum(d == 0 for d in diffs),
        losses=sum(d < 0 for d in diffs),
        refused=refused,
    )
