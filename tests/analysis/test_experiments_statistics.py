"""The interval of ``finemon compare`` on synthetic autocorrelated series (AR(1)), and the
verdict's rule."""

from __future__ import annotations

import numpy as np
import pytest

from analysis.experiments.statistics import (
    IMPROVEMENT,
    NO_CHANGE,
    REGRESSION,
    Change,
    block_length,
    compare_runs,
    verdict,
)


def ar1(rng: np.random.Generator, n: int, phi: float, mean: float) -> np.ndarray:
    """A stationary AR(1) series: x[t] = phi * x[t-1] + e[t], e standard normal."""
    noise = rng.normal(size=n)
    x = np.empty(n)
    x[0] = noise[0] / np.sqrt(1.0 - phi * phi)
    for t in range(1, n):
        x[t] = phi * x[t - 1] + noise[t]
    return x + mean


def test_the_interval_covers_the_true_change_of_the_mean_about_90_percent() -> None:
    # 200 pairs of AR(1) series of 300 ticks, coefficient 0.8 (a correlation time of about 9
    # ticks), means 10 and 12: the 90 % interval must cover +2 about 90 % of the time (here:
    # 0.90). The moving-block bootstrap alone, not widened for its few blocks, covers 0.845 of
    # these; a t interval that takes the ticks as independent far less (checked below).
    rng = np.random.default_rng(2026)
    covered = naive_covered = 0
    for i in range(200):
        a, b = ar1(rng, 300, 0.8, 10.0), ar1(rng, 300, 0.8, 12.0)
        mean = compare_runs([a], [b], seed=i)[0]
        assert mean.statistic == "mean"
        covered += mean.ci_low <= 2.0 <= mean.ci_high
        half = 1.645 * np.sqrt(a.var(ddof=1) / len(a) + b.var(ddof=1) / len(b))
        naive_covered += abs(mean.change - 2.0) <= half
    assert 0.85 <= covered / 200 <= 0.95, covered
    assert naive_covered / 200 < 0.70, naive_covered


def test_the_block_length_grows_with_the_autocorrelation() -> None:
    rng = np.random.default_rng(1)
    white = block_length(rng.normal(size=1000))
    mild = block_length(ar1(rng, 1000, 0.5, 0.0))
    strong = block_length(ar1(rng, 1000, 0.9, 0.0))
    assert white <= 2 < mild < strong <= 1000 // 3
    assert block_length(np.full(100, 3.0)) == 1
    assert block_length(np.arange(4.0)) == 1


def test_the_interval_is_reproducible_and_long_series_stay_bounded() -> None:
    rng = np.random.default_rng(3)
    a, b = ar1(rng, 100_000, 0.8, 5.0), ar1(rng, 100_000, 0.8, 5.0)
    first = compare_runs([a], [b], seed=7, replicates=200)
    assert first == compare_runs([a], [b], seed=7, replicates=200)
    assert [c.statistic for c in first] == ["mean", "p50", "p95", "max"]
    mean = first[0]
    assert mean.ci_low < 0.0 < mean.ci_high  # no true change


def test_several_runs_per_side_pool() -> None:
    rng = np.random.default_rng(4)
    base = [ar1(rng, 300, 0.5, 10.0) for _ in range(3)]
    comparison = [ar1(rng, 200, 0.5, 13.0), ar1(rng, 500, 0.5, 13.0)]
    mean = compare_runs(base, comparison)[0]
    assert mean.ci_low <= 3.0 <= mean.ci_high and mean.ci_low > 2.0
    with pytest.raises(ValueError, match="no values"):
        compare_runs([np.array([])], comparison)


@pytest.mark.parametrize(
    ("change", "low", "high", "expected"),
    [
        (10.0, 5.0, 15.0, REGRESSION),  # +10 %, interval above 0
        (-10.0, -15.0, -5.0, IMPROVEMENT),
        (10.0, -1.0, 20.0, NO_CHANGE),  # the interval holds 0
        (3.0, 2.0, 4.0, NO_CHANGE),  # sure, but under 5 %
        (5.0, 4.0, 6.0, REGRESSION),  # exactly 5 %
    ],
)
def test_the_verdict_needs_an_interval_without_0_and_the_minimum_change(
    change: float, low: float, high: float, expected: str
) -> None:
    result = Change("mean", 100.0, 100.0 + change, change, low, high)
    assert verdict(result, 5.0) == expected


def test_a_baseline_of_0_counts_any_sure_change() -> None:
    assert verdict(Change("max", 0.0, 1.0, 1.0, 1.0, 1.0), 5.0) == REGRESSION
    assert verdict(Change("max", 0.0, 0.0, 0.0, 0.0, 0.0), 5.0) == NO_CHANGE
