"""Periodicity, changepoints and peaks on series with planted answers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from analysis.query.studies import changepoints, peaks, periodicity


def _times(n: int, step: float = 1.0) -> list[float]:
    return [1_700_000_000.0 + step * i for i in range(n)]


@pytest.mark.parametrize("period", [30.0, 47.0, 120.0])
def test_periodicity_finds_a_planted_period(period: float) -> None:
    rng = np.random.default_rng(1)
    times = _times(1200)
    values = [100 + 20 * math.sin(2 * math.pi * i / period) + rng.normal(0, 3) for i in range(1200)]
    found = periodicity(times, values)
    assert found is not None
    assert found.period_seconds == pytest.approx(period, rel=0.03)
    assert 0.5 < found.strength <= 1.0


def test_periodicity_uses_the_time_step_and_skips_gaps() -> None:
    times = _times(600, step=5.0)
    values: list[float | None] = [math.sin(2 * math.pi * i / 24) for i in range(600)]
    values[100:110] = [None] * 10
    found = periodicity(times, values)
    assert found is not None
    assert found.period_seconds == pytest.approx(120.0, rel=0.03)


@pytest.mark.parametrize(
    "values",
    [
        [5.0] * 500,
        list(np.random.default_rng(2).normal(0, 1, 500)),
        [float(i) for i in range(500)],
        [1.0, 2.0, 3.0],
    ],
    ids=["flat", "noise", "ramp", "short"],
)
def test_periodicity_none_without_a_period(values: list[float]) -> None:
    assert periodicity(_times(len(values)), values) is None


def test_changepoints_find_planted_steps() -> None:
    rng = np.random.default_rng(3)
    levels = [10.0] * 300 + [25.0] * 200 + [5.0] * 300
    values = [level + rng.normal(0, 1) for level in levels]
    found = changepoints(_times(800), values)
    assert [c.time - 1_700_000_000 for c in found] == [300, 500]
    assert found[0].before_mean == pytest.approx(10, abs=0.3)
    assert found[0].after_mean == pytest.approx(25, abs=0.3)
    assert found[1].after_mean == pytest.approx(5, abs=0.3)


def test_changepoints_none_in_noise_or_a_ramp() -> None:
    rng = np.random.default_rng(4)
    assert changepoints(_times(1000), list(rng.normal(50, 5, 1000))) == []
    assert changepoints(_times(1000), [float(i) for i in range(1000)]) == []
    assert changepoints(_times(1000), [7.0] * 1000) == []


def test_changepoints_in_a_ramp_cut_by_a_drop() -> None:
    """A working set that grows until an OOM kill drops it: one step, not stairs."""
    values = [100.0 + i for i in range(200)] + [50.0 + i for i in range(40)]
    found = changepoints(_times(240), values)
    assert [c.time - 1_700_000_000 for c in found] == [200]


def test_peaks_highest_first_and_apart() -> None:
    values = [0.0] * 200
    values[20], values[21], values[120], values[150] = 5.0, 4.0, 9.0, 7.0
    found = peaks(_times(200), values, n=3)
    assert [(p.time - 1_700_000_000, p.value) for p in found] == [(120, 9.0), (150, 7.0), (20, 5.0)]
    assert peaks(_times(200), [3.0] * 200) == []
    assert peaks([], []) == []


def test_studies_reject_mismatched_lengths() -> None:
    with pytest.raises(ValueError, match="differ in length"):
        peaks([1.0, 2.0], [1.0])
