"""Studies of one time series: periodicity, changepoints and peaks (numpy only).

Each function takes ``times`` (epoch seconds, ascending) and ``values`` of the same length, as
:meth:`analysis.query.explorer.Explorer.series` returns them (downsampled, so a study runs on at
most a few thousand points). Non-finite values (gaps) are dropped first. The functions never
raise for short or flat input: they return ``None`` or an empty list.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

Floats = npt.NDArray[np.float64]

#: Below this autocorrelation at its peak a series is not called periodic.
MIN_PERIOD_STRENGTH = 0.3
#: Fewer points than this and no study is made.
MIN_POINTS = 8


@dataclass(frozen=True, slots=True)
class Periodicity:
    """A repeating pattern: its period in seconds and how strongly the series repeats it (the
    autocorrelation at that lag, from 0 to 1)."""

    period_seconds: float
    strength: float


@dataclass(frozen=True, slots=True)
class Changepoint:
    """A step in the series' mean at ``time`` (epoch seconds): the mean of the segment before
    and of the segment after."""

    time: float
    before_mean: float
    after_mean: float


@dataclass(frozen=True, slots=True)
class Peak:
    """A local maximum at ``time`` (epoch seconds)."""

    time: float
    value: float


def _clean(times: Sequence[float], values: Sequence[float | None]) -> tuple[Floats, Floats]:
    """Finite (time, value) pairs as arrays, sorted by time."""
    t = np.asarray(times, dtype=np.float64)
    v = np.asarray([np.nan if x is None else x for x in values], dtype=np.float64)
    if t.shape != v.shape:
        raise ValueError(f"times and values differ in length: {t.size} and {v.size}")
    keep = np.isfinite(t) & np.isfinite(v)
    t, v = t[keep], v[keep]
    order = np.argsort(t, kind="stable")
    return t[order], v[order]


def _uniform(t: Floats, v: Floats) -> tuple[float, Floats]:
    """(step, values) on a uniform grid of the median step, linearly interpolated over gaps."""
    step = float(np.median(np.diff(t)))
    if step <= 0:
        return 0.0, v
    count = round((t[-1] - t[0]) / step) + 1
    grid = t[0] + step * np.arange(count)
    return step, np.interp(grid, t, v)


def periodicity(
    times: Sequence[float],
    values: Sequence[float | None],
    *,
    min_strength: float = MIN_PERIOD_STRENGTH,
) -> Periodicity | None:
    """The dominant period of the series by autocorrelation, or None when it has none.

    The series is put on a uniform grid (its median step), its linear trend removed, and its
    autocorrelation computed (by FFT). The period is the lag of the highest autocorrelation peak
    after the first zero crossing, among lags that fit at least twice in the series; the series
    is periodic when that autocorrelation reaches ``min_strength``. The period is refined
    between grid steps by a parabola through the peak.
    """
    t, v = _clean(times, values)
    if t.size < MIN_POINTS:
        return None
    step, y = _uniform(t, v)
    n = y.size
    if step <= 0 or n < MIN_POINTS:
        return None
    x = np.arange(n, dtype=np.float64)
    y = y - np.polyval(np.polyfit(x, y, 1), x)
    if float(np.dot(y, y)) <= 1e-12 * max(1.0, float(np.max(np.abs(v))) ** 2) * n:
        return None  # flat (after the trend): nothing repeats
    size = 1 << int(2 * n - 1).bit_length()
    spectrum = np.fft.rfft(y, size)
    acf = np.fft.irfft(spectrum * np.conj(spectrum), size)[:n]
    acf = acf / acf[0]
    half = n // 2
    below = np.nonzero(acf[1 : half + 1] <= 0)[0]
    if below.size == 0:
        return None
    first = int(below[0]) + 1
    window = acf[first : half + 1]
    if window.size < 3:
        return None
    # Local maxima only: a slope still rising at the window's end is not a period. The biased
    # autocorrelation (its envelope falls with the lag) makes the fundamental the highest,
    # not one of its multiples.
    interior = window[1:-1]
    maxima = np.nonzero((interior >= window[:-2]) & (interior >= window[2:]))[0] + 1
    if maxima.size == 0:
        return None
    lag = first + int(maxima[np.argmax(window[maxima])])
    # The strength is the unbiased autocorrelation: each lag's sum has n - lag terms.
    strength = float(acf[lag] * n / (n - lag))
    if strength < min_strength:
        return None
    left, centre, right = acf[lag - 1], acf[lag], acf[lag + 1] if lag + 1 < n else acf[lag]
    curvature = left - 2 * centre + right
    shift = 0.5 * (left - right) / curvature if curvature < 0 else 0.0
    return Periodicity(period_seconds=float((lag + shift) * step), strength=min(1.0, strength))


def _best_split(cumsum: Floats, start: int, stop: int, min_size: int) -> tuple[int, float]:
    """(index, cost reduction) of the best single split of ``[start, stop)`` that is a step;
    (-1, 0) if none.

    A split is a step when the mean of the ``min_size`` points after it minus the mean of the
    ``min_size`` points before it is at least half the difference of the two parts' means, in
    the same direction: a ramp, whose parts' means differ although no two neighbours do, is
    not cut into stairs.
    """
    n = stop - start
    if n < 2 * min_size:
        return -1, 0.0
    splits = np.arange(start + min_size, stop - min_size + 1)
    left_n = (splits - start).astype(np.float64)
    right_n = (stop - splits).astype(np.float64)
    left_sum = cumsum[splits] - cumsum[start]
    right_sum = cumsum[stop] - cumsum[splits]
    difference = right_sum / right_n - left_sum / left_n
    local = (
        (cumsum[splits + min_size] - cumsum[splits]) - (cumsum[splits] - cumsum[splits - min_size])
    ) / min_size
    step = (local * difference > 0) & (np.abs(local) >= 0.5 * np.abs(difference))
    # The cost (squared deviations from the mean) saved by splitting there.
    gain = np.where(step, (left_n * right_n / n) * difference**2, -1.0)
    best = int(np.argmax(gain))
    if gain[best] < 0:
        return -1, 0.0
    return int(splits[best]), float(gain[best])


def changepoints(
    times: Sequence[float],
    values: Sequence[float | None],
    *,
    penalty: float | None = None,
    min_size: int = 5,
    max_changepoints: int = 10,
) -> list[Changepoint]:
    """Steps in the mean of the series, by binary segmentation, in time order.

    A segment is split where splitting lowers the squared deviations from the segments' means
    the most, as long as that gain exceeds ``penalty`` and the split is a step (the ``min_size``
    points on each side differ by at least half as much as the two parts: a ramp is not a
    step); each part is then searched again (at most ``max_changepoints`` splits, segments of
    at least ``min_size`` points). The default
    penalty is ``3 * sigma**2 * log(n)``, sigma estimated from the median absolute difference
    of consecutive values (robust to the steps themselves), so noise alone rarely splits; a
    noiseless series splits at every step larger than a millionth of its scale.
    """
    t, v = _clean(times, values)
    n = t.size
    if n < max(MIN_POINTS, 2 * min_size):
        return []
    if penalty is None:
        sigma = float(np.median(np.abs(np.diff(v)))) / (np.sqrt(2) * 0.6745)
        scale = max(float(np.max(np.abs(v))), 1e-300)
        sigma = max(sigma, 1e-6 * scale)
        penalty = 3.0 * sigma**2 * float(np.log(n))
    cumsum = np.concatenate(([0.0], np.cumsum(v)))
    cuts: list[int] = []
    pending = [(0, n)]
    while pending and len(cuts) < max_changepoints:
        # Split the segment whose best split gains the most first.
        candidates = [(_best_split(cumsum, a, b, min_size), (a, b)) for a, b in pending]
        (split, gain), segment = max(candidates, key=lambda c: c[0][1])
        if split < 0 or gain <= penalty:
            break
        pending.remove(segment)
        cuts.append(split)
        pending += [(segment[0], split), (split, segment[1])]
    cuts.sort()
    bounds = [0, *cuts, n]
    means = [float(np.mean(v[a:b])) for a, b in itertools.pairwise(bounds)]
    return [
        Changepoint(time=float(t[cut]), before_mean=means[i], after_mean=means[i + 1])
        for i, cut in enumerate(cuts)
    ]


def peaks(times: Sequence[float], values: Sequence[float | None], n: int = 5) -> list[Peak]:
    """The ``n`` highest local maxima, highest first, at least 2 % of the series' length apart
    (so one wide hump gives one peak); none for a flat series."""
    t, v = _clean(times, values)
    if t.size == 0 or n <= 0 or float(np.ptp(v)) == 0.0:
        return []
    if t.size < 3:
        best = int(np.argmax(v))
        return [Peak(float(t[best]), float(v[best]))]
    padded = np.concatenate(([-np.inf], v, [-np.inf]))
    left, centre, right = padded[:-2], padded[1:-1], padded[2:]
    # A plateau's first point stands for it; a flat series has no peak.
    is_max = (centre > left) & (centre >= right)

    candidates = np.nonzero(is_max)[0]
    candidates = candidates[np.argsort(-v[candidates], kind="stable")]
    separation = max(1, t.size // 50)
    taken: list[int] = []
    for index in candidates:
        if all(abs(int(index) - other) > separation for other in taken):
            taken.append(int(index))
            if len(taken) == n:
                break
    return [Peak(float(t[i]), float(v[i])) for i in taken]
