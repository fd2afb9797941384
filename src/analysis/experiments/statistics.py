"""The change between two sets of autocorrelated series and its confidence interval.

Samples at 1 Hz are far from independent (a container's memory this second is nearly last
second's), so a t-test on them claims a precision the data does not have. The interval here
comes from a moving-block bootstrap: each run's series is rebuilt from blocks of consecutive
ticks drawn at random (with replacement), which keeps the dependence within a block, and the
statistic (mean, p50, p95, max) is computed on the rebuilt series of each side; the interval
of the change is the 5th to 95th percentile of (comparison - baseline) over the replicates.

The interval is widened where the bootstrap falls short in finite samples (see
:func:`compare_runs`): on AR(1) series of 300 to 600 ticks with coefficients 0.5 to 0.9 a 90 %
interval covers the true change of the mean 84 to 88 % of the time, white noise 90 %.

The block length is chosen from each series' own autocorrelation by Politis and White's rule
(2004, with the correction of Patton, Politis and White, 2009): a flat-top lag window over the
autocovariances out to where the autocorrelation stops being significant gives the
spectral density at 0 and its first moment, and the length that minimises the bootstrap
variance's error, about n^(1/3) scaled by how persistent the series is (1 for white noise,
longer the slower it decorrelates; at most a third of the series).

Series longer than :data:`MAX_BOOTSTRAP_POINTS` are thinned evenly for the bootstrap only (the
statistics themselves use every tick), so memory and time stay bounded: a day at 1 Hz is
bootstrapped on every 22nd tick. The max's interval is indicative only: no bootstrap of an
extreme is exact, and a series' max is rebuilt from its own values.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist
from typing import TYPE_CHECKING, Any, Final

from analysis.errors import require

if TYPE_CHECKING:
    import numpy as np

#: The statistics compared, in this order.
STATISTICS: Final = ("mean", "p50", "p95", "max")
#: Bootstrap replicates per comparison.
REPLICATES: Final = 1000
#: The confidence of the interval.
CONFIDENCE: Final = 0.90
#: Longest series the bootstrap resamples (longer ones are thinned evenly).
MAX_BOOTSTRAP_POINTS: Final = 4096
#: Resampled values held at once (replicates are drawn in chunks of this many values).
_CHUNK_VALUES: Final = 4_000_000


@dataclass(frozen=True, slots=True)
class Change:
    """One statistic on both sides: its value on each, the change (comparison - baseline) and
    the interval of the change (``ci_low`` .. ``ci_high``, at :data:`CONFIDENCE`)."""

    statistic: str
    baseline: float
    comparison: float
    change: float
    ci_low: float
    ci_high: float


def statistic_of(values: np.ndarray, name: str) -> float:
    """Statistic ``name`` of ``values`` (``mean``, ``p50``, ``p95``, ``p99``, ``max``)."""
    np = require("numpy")
    if name == "mean":
        return float(np.mean(values))
    if name == "max":
        return float(np.max(values))
    if name.startswith("p") and name[1:].isdigit():
        return float(np.quantile(values, int(name[1:]) / 100.0))
    raise ValueError(f"unknown statistic {name!r}")


def _statistics_of_rows(matrix: np.ndarray) -> dict[str, np.ndarray]:
    """Each of :data:`STATISTICS` of each row of ``matrix``."""
    np = require("numpy")
    p50, p95 = np.quantile(matrix, [0.5, 0.95], axis=1)
    return {"mean": matrix.mean(axis=1), "p50": p50, "p95": p95, "max": matrix.max(axis=1)}


@dataclass(frozen=True, slots=True)
class Dependence:
    """What the autocorrelation of a series says: the bootstrap's block length and the
    long-run variance (the spectral density at 0: ``n`` times the variance of the mean)."""

    block_length: int
    long_run_variance: float


def block_length(values: np.ndarray) -> int:
    """The moving-block bootstrap's block length for ``values`` (Politis and White's rule, see
    the module's documentation): at least 1, at most a third of the series."""
    return dependence(values).block_length


def dependence(values: np.ndarray) -> Dependence:
    """The :class:`Dependence` of ``values``: a flat-top lag window over its autocovariances
    (Politis and White, see the module's documentation)."""
    np = require("numpy")
    n = len(values)
    centred = values - values.mean() if n else values
    variance = float(np.dot(centred, centred)) / n if n else 0.0
    if n < 8 or variance <= 0.0:
        return Dependence(1, variance)
    kn = max(5, math.ceil(math.log10(n)))
    max_lag = min(n - 1, math.ceil(math.sqrt(n)) + kn)
    longest = max(1, math.ceil(min(3.0 * math.sqrt(n), n / 3.0)))
    autocovariance = np.array(
        [float(np.dot(centred[: n - k], centred[k:])) / n for k in range(max_lag + 1)]
    )
    autocorrelation = autocovariance / autocovariance[0]
    threshold = 2.0 * math.sqrt(math.log10(n) / n)
    insignificant = np.abs(autocorrelation[1:]) < threshold  # lag k at index k - 1
    cut = max_lag
    for m in range(max_lag - kn + 1):
        if insignificant[m : m + kn].all():  # lags m+1 .. m+kn
            cut = m
            break
    window_lags = min(max(2 * cut, 1), max_lag)
    lags = np.arange(-window_lags, window_lags + 1)
    ratio = np.abs(lags) / window_lags
    flat_top = np.where(ratio <= 0.5, 1.0, np.where(ratio <= 1.0, 2.0 * (1.0 - ratio), 0.0))
    covariances = autocovariance[np.abs(lags)]
    g = float(np.sum(flat_top * np.abs(lags) * covariances))
    spectral_zero = float(np.sum(flat_top * covariances))
    long_run = max(spectral_zero, variance / n)
    d = 4.0 / 3.0 * spectral_zero**2
    if d <= 0.0 or g == 0.0:
        return Dependence(1, long_run)
    length = (2.0 * g * g / d) ** (1.0 / 3.0) * n ** (1.0 / 3.0)
    return Dependence(int(min(max(1, round(length)), longest)), long_run)


def _t_over_normal(degrees_of_freedom: float, tail: float = 0.05) -> float:
    """Student's t quantile over the normal one at ``1 - tail`` (Cornish-Fisher expansion,
    within 1 % from 3 degrees of freedom on)."""
    z = NormalDist().inv_cdf(1.0 - tail)
    df = degrees_of_freedom
    t = z + (z**3 + z) / (4 * df) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * df**2)
    return t / z


def _thinned(values: np.ndarray) -> np.ndarray:
    step = math.ceil(len(values) / MAX_BOOTSTRAP_POINTS)
    return values[::step] if step > 1 else values


def _replicates(
    runs: Sequence[np.ndarray], replicates: int, rng: np.random.Generator, tail: float
) -> dict[str, np.ndarray]:
    """The deviations from their own mean of the statistics of ``replicates`` moving-block
    resamples of one side (each run resampled on its own, with its own block length, then
    pooled), scaled up where the bootstrap's variance of the mean falls short of the
    long-run variance's (see :func:`compare_runs`)."""
    np = require("numpy")
    series = [_thinned(run) for run in runs]
    dependences = [dependence(run) for run in series]
    lengths = [d.block_length for d in dependences]
    total = sum(len(run) for run in series)
    chunk = max(1, _CHUNK_VALUES // max(total, 1))
    out: dict[str, list[Any]] = {name: [] for name in STATISTICS}
    done = 0
    while done < replicates:
        count = min(chunk, replicates - done)
        parts = []
        for run, length in zip(series, lengths, strict=True):
            n = len(run)
            blocks = math.ceil(n / length)
            starts = rng.integers(0, n - length + 1, size=(count, blocks))
            index = (starts[:, :, None] + np.arange(length)).reshape(count, blocks * length)
            parts.append(run[index[:, :n]])
        for name, values in _statistics_of_rows(np.concatenate(parts, axis=1)).items():
            out[name].append(values)
        done += count
    draws = {name: np.concatenate(values) for name, values in out.items()}
    # The variance of the pooled mean the long-run variances give, against the bootstrap's.
    expected = sum(len(r) * d.long_run_variance for r, d in zip(series, dependences, strict=True))
    expected /= total * total
    found = float(np.var(draws["mean"]))
    scale = math.sqrt(expected / found) if found > 0.0 and expected > found else 1.0
    # The spread is estimated from the blocks the series hold: as with a t interval, fewer
    # blocks leave a longer tail.
    held_blocks = math.fsum(len(r) / length for r, length in zip(series, lengths, strict=True))
    scale *= _t_over_normal(max(1.0, held_blocks - 1.0), tail)
    return {name: (values - values.mean()) * scale for name, values in draws.items()}


def compare_runs(
    baseline: Sequence[np.ndarray],
    comparison: Sequence[np.ndarray],
    *,
    replicates: int = REPLICATES,
    confidence: float = CONFIDENCE,
    seed: int = 0,
) -> list[Change]:
    """The change of each of :data:`STATISTICS` from ``baseline`` to ``comparison`` (each a
    list of runs' series, every series non-empty), with its interval from a moving-block
    bootstrap seeded with ``seed`` (the same data give the same interval). Raises ValueError
    when a side has no values.

    The interval is the change plus the spread of the replicates' changes around their own
    mean (the moving-block resamples' mean is biased towards the middle of the series). With
    few blocks in a series the bootstrap's spread falls short of the truth (by about 10 % of
    the standard error with 20 to 40 blocks); where the variance of the mean its replicates
    give is below the one the flat-top long-run variance gives, the replicates of every
    statistic are scaled up to it, and by Student's t over the normal quantile for as many
    degrees of freedom as the series hold blocks.
    """
    np = require("numpy")
    if not any(len(run) for run in baseline) or not any(len(run) for run in comparison):
        raise ValueError("a side has no values")
    baseline = [run for run in baseline if len(run)]
    comparison = [run for run in comparison if len(run)]
    rng = np.random.default_rng(seed)
    tail = (1.0 - confidence) / 2.0
    base_draws = _replicates(baseline, replicates, rng, tail)
    comparison_draws = _replicates(comparison, replicates, rng, tail)
    pooled_base, pooled_comparison = np.concatenate(baseline), np.concatenate(comparison)
    changes = []
    for name in STATISTICS:
        base_value = statistic_of(pooled_base, name)
        comparison_value = statistic_of(pooled_comparison, name)
        change = comparison_value - base_value
        low, high = np.quantile(comparison_draws[name] - base_draws[name], [tail, 1.0 - tail])
        changes.append(
            Change(name, base_value, comparison_value, change, change + low, change + high)
        )
    return changes


def change_percent(change: Change) -> float | None:
    """The change in percent of the baseline's value; None when that is 0 (and the change
    is not)."""
    if change.baseline == 0.0:
        return 0.0 if change.change == 0.0 else None
    return 100.0 * change.change / abs(change.baseline)


REGRESSION: Final = "regression"
IMPROVEMENT: Final = "improvement"
NO_CHANGE: Final = "no change"


def verdict(change: Change, min_change_percent: float, floor: float = 0.0) -> str:
    """``regression`` when the interval lies above 0 and the change is at least
    ``min_change_percent`` of the baseline and at least ``floor`` (in the metric's unit: the
    smallest change that matters, see :data:`analysis.experiments.series.HEADLINES`) (every
    headline metric is worse when higher), ``improvement`` when it lies below 0 and the change
    is as large downwards, else ``no change``. A baseline of 0 counts any change of at least
    ``floor`` as large enough."""
    percent = change_percent(change)
    large = (percent is None or abs(percent) >= min_change_percent) and abs(change.change) >= floor
    if change.ci_low > 0.0 and change.change > 0.0 and large:
        return REGRESSION
    if change.ci_high < 0.0 and change.change < 0.0 and large:
        return IMPROVEMENT
    return NO_CHANGE
