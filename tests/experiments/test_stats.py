"""metamask.experiments.stats: the paired t interval, win count and sentence, on hand-made
score tables whose answers are worked out here by hand."""

from __future__ import annotations

import math

import pytest

from metamask.errors import ConfigError
from metamask.experiments.stats import paired, t_interval

# t(0.975) quantiles, from printed tables: 2 degrees of freedom 4.302653, 4: 2.776445
T2, T4 = 4.302653, 2.776445


def test_interval_of_three_seeds_is_the_t_interval_with_two_degrees_of_freedom() -> None:
    base = {0: 0.50, 1: 0.60, 2: 0.70}
    arm = {0: 0.51, 1: 0.62, 2: 0.73}  # differences 0.01, 0.02, 0.03: mean 0.02, std 0.01
    pair = paired("B", arm, "A", base)
    assert pair.seeds == (0, 1, 2)
    assert pair.differences == pytest.approx((0.01, 0.02, 0.03))
    assert pair.mean == pytest.approx(0.02)
    assert pair.std == pytest.approx(0.01)
    half = T2 * 0.01 / math.sqrt(3)
    assert (pair.low, pair.high) == (pytest.approx(0.02 - half), pytest.approx(0.02 + half))
    assert (pair.wins, pair.ties, pair.losses) == (3, 0, 0)
    assert (
        pair.verdict == "within seed noise"
    )  # +2.0 ± 2.5 points: 3 wins, but the interval holds 0
    assert pair.sentence() == (
        "B − A = +2.0 [-0.5, +4.5] points (3/3 seeds ahead): within seed noise, the interval "
        "holds 0 (95% t interval over 3 paired seeds)"
    )


def test_a_consistent_gain_is_ahead_and_a_loss_behind() -> None:
    base = {s: 0.5 for s in range(5)}
    arm = {0: 0.52, 1: 0.53, 2: 0.51, 3: 0.52, 4: 0.52}  # +2, +3, +1, +2, +2 points
    pair = paired("MetaMAE", arm, "MAE", base)
    std = math.sqrt(sum((d - 0.02) ** 2 for d in (0.02, 0.03, 0.01, 0.02, 0.02)) / 4)
    half = T4 * std / math.sqrt(5)
    assert pair.low == pytest.approx(0.02 - half) and pair.low > 0
    assert pair.verdict == "ahead"
    assert pair.sentence().startswith(
        f"MetaMAE − MAE = +2.0 [{100 * (0.02 - half):+.1f}, {100 * (0.02 + half):+.1f}] "
        "points (5/5 seeds ahead): MetaMAE is ahead of MAE beyond seed noise"
    )
    behind = paired("MAE", base, "MetaMAE", arm)
    assert behind.verdict == "behind" and (behind.wins, behind.losses) == (0, 5)
    assert "(0/5 seeds ahead): MAE is behind MetaMAE beyond seed noise" in behind.sentence()


def test_a_tie_counts_as_neither_win_nor_loss() -> None:
    pair = paired("B", {0: 0.6, 1: 0.7, 2: 0.8}, "A", {0: 0.5, 1: 0.7, 2: 0.9})  # +, =, -
    assert (pair.wins, pair.ties, pair.losses) == (1, 1, 1)
    assert pair.mean == pytest.approx(0.0)
    assert pair.verdict == "within seed noise"
    assert "(1/3 seeds ahead, 1 tied)" in pair.sentence()


def test_only_seeds_both_arms_scored_are_paired() -> None:
    pair = paired("B", {0: 0.6, 1: 0.7, 5: 0.1}, "A", {0: 0.5, 1: 0.5, 2: 0.9})
    assert pair.seeds == (0, 1)
    assert pair.differences == pytest.approx((0.1, 0.2))
    with pytest.raises(ConfigError, match="no seed scored by both"):
        paired("B", {3: 0.5}, "A", {0: 0.5})


def test_a_single_seed_is_refused_an_interval_in_one_line() -> None:
    with pytest.raises(ConfigError) as error:
        t_interval([0.01])
    message = str(error.value)
    assert "\n" not in message
    assert message == "a 95% interval needs at least 2 paired seeds, got 1: run more --seeds"
    pair = paired("B", {0: 0.6}, "A", {0: 0.5})
    assert (pair.low, pair.high, pair.verdict) == (None, None, "no interval")
    assert pair.sentence() == (
        "B − A = +10.0 points (1/1 seeds ahead): no interval, a 95% interval needs at least 2 "
        "paired seeds, got 1: run more --seeds"
    )
