"""``finemon compare``: two selections of runs, container by container, headline by headline.

Each side (:func:`analysis.experiments.series.read_side`) gives per container identity and
headline metric (:data:`~analysis.experiments.series.HEADLINES`) one series per run; for every
identity and metric both sides have, and each statistic (mean, p50, p95, max), a
:class:`Row` holds both values, the change, its 90 % interval
(:func:`analysis.experiments.statistics.compare_runs`) and the verdict against
``min_change_percent``. Identities on one side only are listed apart (:class:`Unmatched`).
Rows are sorted by effect size: the largest change in percent first.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Final

from analysis.experiments.series import HEADLINES, RunSeries, Side, read_side
from analysis.experiments.statistics import (
    NO_CHANGE,
    Change,
    change_percent,
    compare_runs,
    verdict,
)
from analysis.source import Source

#: ``--min-change``'s default, in percent.
DEFAULT_MIN_CHANGE_PERCENT: Final = 5.0
UNITS: Final = {headline.metric: headline.unit for headline in HEADLINES}
FLOORS: Final = {headline.metric: headline.floor for headline in HEADLINES}


@dataclass(frozen=True, slots=True)
class Row:
    """One container, metric and statistic on both sides (``change_percent`` None when the
    baseline's value is 0; ``ci90`` is the interval of ``change``)."""

    container: str
    metric: str
    statistic: str
    baseline: float
    comparison: float
    change: float
    change_percent: float | None
    ci90: tuple[float, float]
    verdict: str


@dataclass(frozen=True, slots=True)
class Unmatched:
    """A container found on one side only."""

    container: str
    side: str


@dataclass(frozen=True, slots=True)
class SideSummary:
    """What a side selected: the selector, the directory, the runs (with their experiment and
    variant where the manifests say), the phase, the time covered."""

    selector: str
    directory: str
    phase: str | None
    run_ids: tuple[str, ...]
    experiments: tuple[str, ...]
    variants: tuple[str, ...]
    first_time: datetime | None
    last_time: datetime | None
    containers: int


@dataclass(frozen=True, slots=True)
class Comparison:
    """The result of :func:`compare`; ``series`` keeps each compared (container, metric)'s
    runs per side (baseline, comparison) for the html overlay."""

    baseline: SideSummary
    comparison: SideSummary
    min_change_percent: float
    rows: tuple[Row, ...]
    unmatched: tuple[Unmatched, ...]
    series: dict[tuple[str, str], tuple[tuple[RunSeries, ...], tuple[RunSeries, ...]]]

    def flagged(self) -> list[tuple[str, str]]:
        """The (container, metric) pairs with a row other than ``no change``, in row order."""
        seen: dict[tuple[str, str], None] = {}
        for row in self.rows:
            if row.verdict != NO_CHANGE:
                seen.setdefault((row.container, row.metric), None)
        return list(seen)


def _summary(side: Side) -> SideSummary:
    manifests = side.manifests.values()
    return SideSummary(
        selector=side.selection.text,
        directory=str(side.directory),
        phase=side.phase,
        run_ids=side.run_ids,
        experiments=tuple(sorted({m.experiment for m in manifests if m.experiment})),
        variants=tuple(sorted({m.variant for m in manifests if m.variant})),
        first_time=side.first_time,
        last_time=side.last_time,
        containers=len(side.identities),
    )


def _effect(row: Row) -> float:
    if row.change_percent is None:
        return math.inf
    return abs(row.change_percent)


def compare(
    baseline_dir: Path | Source,
    baseline: str,
    comparison_dir: Path | Source,
    comparison: str,
    *,
    phase: str | None = None,
    min_change_percent: float = DEFAULT_MIN_CHANGE_PERCENT,
    seed: int = 0,
) -> Comparison:
    """Compare the runs ``baseline`` selects in ``baseline_dir`` with those ``comparison``
    selects in ``comparison_dir`` (the same directory, or another). Raises
    :class:`~analysis.errors.AnalysisError` when a side cannot be read or selects nothing."""
    metrics = [(headline.metric, headline.reading) for headline in HEADLINES]
    base_side = read_side(baseline_dir, baseline, metrics, phase=phase)
    comparison_side = read_side(comparison_dir, comparison, metrics, phase=phase)
    rows: list[Row] = []
    series = {}
    for key in sorted(set(base_side.series) & set(comparison_side.series)):
        base_runs, comparison_runs = base_side.series[key], comparison_side.series[key]
        container, metric, _ = key
        changes = compare_runs(
            [run.values for run in base_runs],
            [run.values for run in comparison_runs],
            seed=seed,
        )
        series[(container, metric)] = (base_runs, comparison_runs)
        rows.extend(_row((container, metric), change, min_change_percent) for change in changes)
    rows.sort(key=lambda row: (-_effect(row), row.container, row.metric))
    base_ids, comparison_ids = set(base_side.identities), set(comparison_side.identities)
    unmatched = [Unmatched(c, "baseline") for c in sorted(base_ids - comparison_ids)]
    unmatched += [Unmatched(c, "comparison") for c in sorted(comparison_ids - base_ids)]
    return Comparison(
        baseline=_summary(base_side),
        comparison=_summary(comparison_side),
        min_change_percent=min_change_percent,
        rows=tuple(rows),
        unmatched=tuple(unmatched),
        series=series,
    )


def _row(key: tuple[str, str], change: Change, min_change_percent: float) -> Row:
    container, metric = key
    return Row(
        container=container,
        metric=metric,
        statistic=change.statistic,
        baseline=change.baseline,
        comparison=change.comparison,
        change=change.change,
        change_percent=change_percent(change),
        ci90=(change.ci_low, change.ci_high),
        verdict=verdict(change, min_change_percent, FLOORS.get(metric, 0.0)),
    )
