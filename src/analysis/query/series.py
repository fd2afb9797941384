"""Series downsampled in DuckDB: the bucket width, the SQL, and the typed series it gives.

Time is cut into round buckets so that each series has at most ``max_points`` points, each the
mean, minimum and maximum of the bucket's values; counters (cumulative) are turned into
per-second rates first (a counter going down, a restart, gives no rate).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from analysis.query.index import ContainerInfo, has_series_labels

#: Default bound on the points of one series (a chart is about this many pixels wide).
DEFAULT_MAX_POINTS = 1200
#: Labels that are part of the container's identity, not of a series within it.
CONTAINER_LABELS = frozenset({"cgroup"})
#: The display name of a series of no container (the node's: an agent's own metric).
NODE_LABEL = "node"
# Round widths for the time buckets, in milliseconds.
_NICE_STEPS_MS = (
    1, 2, 5, 10, 20, 50, 100, 200, 250, 500,
    1_000, 2_000, 5_000, 10_000, 15_000, 30_000,
    60_000, 120_000, 300_000, 600_000, 900_000, 1_800_000,
    3_600_000, 7_200_000, 10_800_000, 21_600_000, 43_200_000, 86_400_000,
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class SeriesData:
    """One downsampled series: per bucket the time (mean time of the rows in it, epoch
    seconds), the mean value and the minimum and maximum (the envelope).

    For a counter the values are per-second rates and ``unit`` is ``<unit>/s``. ``labels`` are
    the series' labels within its container (``pid`` and ``comm`` for a process); ``label`` a
    display text: the container's name, ``comm (pid)`` for a process, plus other labels.
    """

    key: str
    container_key: str
    metric: str
    label: str
    labels: Mapping[str, str]
    kind: str
    unit: str | None
    bucket_seconds: float
    times: list[float]
    values: list[float | None]
    mins: list[float | None]
    maxs: list[float | None]


def bucket_ms(span_ms: int, tick_ms: int, max_points: int) -> int:
    """The bucket width: the smallest round width, and at least one tick, that fits ``span_ms``
    in ``max_points`` buckets (a span is cut into at most ``span / width + 2`` buckets)."""
    needed = math.ceil(span_ms / max(1, max_points - 2))
    for step in _NICE_STEPS_MS:
        if step >= needed:
            return max(step, tick_ms)
    day = _NICE_STEPS_MS[-1]
    return max(math.ceil(needed / day) * day, tick_ms)


def finite(value: float | None) -> float | None:
    """``value``, None when it is None, NaN or infinite."""
    return value if value is not None and math.isfinite(value) else None


def partition_sql(metric: str) -> str:
    """The columns that tell one series of ``metric`` from another (for window functions)."""
    return "series" if has_series_labels(metric) else "run_id, container_key"


def series_label(container: str, labels: Mapping[str, str]) -> str:
    """A series' display text: ``comm (pid)`` for a process, else ``container``; other labels
    follow as ``key=value``."""
    rest = {k: v for k, v in labels.items() if k not in ("pid", "comm")}
    if "pid" in labels or "comm" in labels:
        text = f"{labels.get('comm', '?')} ({labels.get('pid', '?')})"
    else:
        text = container
    if rest:
        text += " " + " ".join(f"{k}={v}" for k, v in sorted(rest.items()))
    return text


def series_sql(keys: str, labelled: bool, *, counter: bool, aggregate: bool) -> str:
    """The downsampling query: ``$m`` metric, ``keys`` the containers' filter, ``labelled``
    whether its series are told apart by labels, ``$w`` bucket ms, ``$lo``/``$hi`` range in
    epoch ms (``$lo_rows`` where rows are read from: a bit earlier for counters); ``aggregate``
    sums a container's series per tick. Rows: container key, labels, and the lists of bucket
    times, means, minima and maxima."""
    empty = "MAP {}::MAP(VARCHAR, VARCHAR)"
    labels = "labels" if labelled else f"{empty} AS labels"
    partition = "series" if labelled else "run_id, container_key"
    where = f"""metric_name = $m AND {keys}
        AND time >= make_timestamp($lo_rows * 1000) AND time <= make_timestamp($hi * 1000)"""
    value = "coalesce(value_float, value_int::DOUBLE)"
    if counter:
        # Per-second rate between consecutive rows of one series; a counter that went
        # down restarted and gives no rate.
        rows = f"""SELECT container_key, labels, ms, v FROM (
            SELECT container_key, {labels}, ms,
                CASE WHEN x >= lag(x) OVER s AND ms > lag(ms) OVER s
                    THEN (x - lag(x) OVER s) * 1000.0 / (ms - lag(ms) OVER s) END AS v
            FROM (SELECT *, epoch_ms(time) AS ms, {value} AS x FROM metrics WHERE {where})
            WINDOW s AS (PARTITION BY {partition} ORDER BY ms))
        WHERE v IS NOT NULL AND ms >= $lo"""
    else:
        rows = f"""SELECT container_key, {labels}, epoch_ms(time) AS ms, {value} AS v
            FROM metrics WHERE {where} AND ms >= $lo"""
    if aggregate:
        # The container's processes summed per tick (their labels dropped).
        rows = f"""SELECT container_key, {empty} AS labels, ms,
                sum(v) AS v
            FROM ({rows}) GROUP BY container_key, ms"""
    return f"""SELECT container_key, labels, list(t ORDER BY b), list(mean ORDER BY b),
            list(low ORDER BY b), list(high ORDER BY b)
        FROM (
            SELECT container_key, labels, ms // $w AS b, avg(ms) AS t, avg(v) AS mean,
                min(v) AS low, max(v) AS high
            FROM ({rows}) WHERE v IS NOT NULL
            GROUP BY container_key, labels, b)
        GROUP BY container_key, labels"""


def series_from_rows(
    rows: Sequence[tuple[Any, ...]],
    *,
    metric: str,
    keys: Sequence[str],
    containers: Mapping[str, ContainerInfo],
    counter: bool,
    unit: str | None,
    width_ms: int,
) -> list[SeriesData]:
    """The series of :func:`series_sql`'s ``rows``, ordered as ``keys``, then by label; a
    counter's ``unit`` becomes a rate's (``unit/s``)."""
    if counter:
        unit = f"{unit}/s" if unit else "/s"
    order = {key: i for i, key in enumerate(keys)}
    found = []
    for row_key, labels, times, means, lows, highs in rows:
        key = "" if row_key is None else str(row_key)  # "": the node's, no container's
        label_map = {str(k): str(v) for k, v in (labels or {}).items() if k not in CONTAINER_LABELS}
        info = containers.get(key)
        name = info.name if info else (key or NODE_LABEL)
        suffix = "".join(f"|{k}={v}" for k, v in sorted(label_map.items()))
        found.append(
            SeriesData(
                key=f"{metric}|{key}{suffix}",
                container_key=str(key),
                metric=metric,
                label=series_label(name, label_map),
                labels=label_map,
                kind="rate" if counter else "gauge",
                unit=unit,
                bucket_seconds=width_ms / 1000,
                times=[t / 1000 for t in times],
                values=[finite(v) for v in means],
                mins=[finite(v) for v in lows],
                maxs=[finite(v) for v in highs],
            )
        )
    found.sort(key=lambda s: (order.get(s.container_key, len(order)), s.label))
    return found
