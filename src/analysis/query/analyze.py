"""A study of one container over a range: what :meth:`Explorer.analyze` returns, and its parts.

The series come downsampled (:mod:`analysis.query.series`); their peaks, changepoints and
periodicity are :mod:`analysis.query.studies`; CPU throttling is the increase of the CFS
counters (restarts skipped); limits are the highest value seen.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from analysis.query.index import ContainerInfo, Query, keys_sql
from analysis.query.markers import Marker
from analysis.query.series import SeriesData, finite
from analysis.query.studies import Changepoint, Peak, Periodicity, changepoints, peaks, periodicity
from common.catalogue.container import CONTAINER_CPU_PERIODS as CPU_PERIODS
from common.catalogue.container import CONTAINER_CPU_THROTTLED_PERIODS as THROTTLED_PERIODS
from common.catalogue.container import CONTAINER_CPU_THROTTLED_USEC as THROTTLED_USEC

#: The peaks a study lists.
STUDY_PEAKS = 5


@dataclass(frozen=True, slots=True)
class MetricStudy:
    """A container metric studied over a range: mean and maximum (of the bucket means and
    maxima), the highest peaks, steps in its mean and its period if it repeats."""

    metric: str
    unit: str | None
    points: int
    bucket_seconds: float
    mean: float
    max: float
    max_time: float
    peaks: tuple[Peak, ...]
    changepoints: tuple[Changepoint, ...]
    periodicity: Periodicity | None


@dataclass(frozen=True, slots=True)
class Throttling:
    """CPU throttling over a range: CFS periods elapsed and throttled, their ratio, and time
    spent throttled (counter increases, restarts skipped)."""

    periods: int
    throttled_periods: int
    throttled_ratio: float | None
    throttled_seconds: float


@dataclass(frozen=True, slots=True)
class ContainerAnalysis:
    """What :meth:`analysis.query.explorer.Explorer.analyze` found about one container over
    ``start``-``end``."""

    container: ContainerInfo
    start: datetime
    end: datetime
    cpu: MetricStudy | None
    memory: MetricStudy | None
    cpu_limit_millicores: float | None
    memory_limit_bytes: float | None
    throttling: Throttling | None
    oom_kills: int
    markers: tuple[Marker, ...]
    notes: tuple[str, ...] = field(default=())


def _or_lowest(value: float | None) -> float:
    return -math.inf if value is None else value


def study(data: SeriesData) -> MetricStudy | None:
    """The study of one series; None when it has no value."""
    pairs = [(t, v) for t, v in zip(data.times, data.values, strict=True) if v is not None]
    if not pairs:
        return None
    highs = [h if h is not None else v for h, v in zip(data.maxs, data.values, strict=True)]
    top = max(range(len(highs)), key=lambda i: _or_lowest(highs[i]))
    times = [t for t, _ in pairs]
    means = [v for _, v in pairs]
    return MetricStudy(
        metric=data.metric,
        unit=data.unit,
        points=len(data.times),
        bucket_seconds=data.bucket_seconds,
        mean=sum(means) / len(means),
        max=float(highs[top] or 0.0),
        max_time=data.times[top],
        peaks=tuple(peaks(data.times, highs, STUDY_PEAKS)),
        changepoints=tuple(changepoints(times, means)),
        periodicity=periodicity(times, means),
    )


def increases(
    query: Query, keys: str, metrics: Sequence[str], first_ms: int, last_ms: int
) -> dict[str, float]:
    """The increase of each counter of ``metrics`` over the rows ``keys`` (SQL) selects from
    ``first_ms`` to ``last_ms`` (epoch ms), decreases (restarts) skipped."""
    rows = query(
        f"""SELECT metric_name, sum(delta) FROM (
            SELECT metric_name, epoch_ms(time) AS ms,
                coalesce(value_float, value_int::DOUBLE)
                    - lag(coalesce(value_float, value_int::DOUBLE))
                    OVER (PARTITION BY run_id, metric_name, container_key ORDER BY time)
                        AS delta
            FROM metrics
            WHERE metric_name IN ({keys_sql(metrics)}) AND {keys}
                AND time >= make_timestamp($lo * 1000) AND time <= make_timestamp($hi * 1000))
        WHERE delta >= 0 GROUP BY 1""",
        {"lo": first_ms, "hi": last_ms},
    )
    return {str(name): float(total or 0) for name, total in rows}


def highest(query: Query, metric: str, keys: str, first_ms: int, last_ms: int) -> float | None:
    """The highest value of gauge ``metric`` in the rows ``keys`` (SQL) selects from
    ``first_ms`` to ``last_ms`` (epoch ms); None when there is none."""
    rows = query(
        f"""SELECT max(coalesce(value_float, value_int::DOUBLE)) FROM metrics
        WHERE metric_name = $m AND {keys}
            AND time >= make_timestamp($lo * 1000) AND time <= make_timestamp($hi * 1000)""",
        {"m": metric, "lo": first_ms, "hi": last_ms},
    )
    return finite(rows[0][0]) if rows else None


def throttling(counters: Mapping[str, float]) -> Throttling | None:
    """The throttling the CFS counters' increases tell; None without any."""
    if not counters:
        return None
    periods = int(counters.get(CPU_PERIODS, 0))
    throttled = int(counters.get(THROTTLED_PERIODS, 0))
    return Throttling(
        periods=periods,
        throttled_periods=throttled,
        throttled_ratio=throttled / periods if periods else None,
        throttled_seconds=counters.get(THROTTLED_USEC, 0.0) / 1e6,
    )
