"""Reported vs observed: what the watched agent reported about a container (``target.*``,
written by ``finemon run --intake-port``) beside finemon's kernel figures for the same
container, bucketed, with their difference. The viewer's panel and MCP's ``compare_reported``
both answer from here.

:data:`PAIRS` is the one table of which agent metric compares with which of finemon's, and
how the agent's unit becomes finemon's: a Datadog Agent reports a container's memory in
bytes and its CPU in nanocores (``container.cpu.usage``: nanoseconds of CPU a second), which
``reported_scale`` turns into millicores.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from analysis.dataset import sql_string
from analysis.errors import AnalysisError
from analysis.query.index import Query, keys_sql
from common.catalogue.container import (
    CONTAINER_CPU_USAGE_MILLICORES,
    CONTAINER_MEMORY_RSS_BYTES,
    CONTAINER_MEMORY_USAGE_BYTES,
    CONTAINER_MEMORY_WORKING_SET_BYTES,
)

#: The prefix of the names of what the agent reported.
REPORTED_PREFIX: Final = "target."
#: Most observed metrics one comparison takes.
MAX_OBSERVED: Final = 5


@dataclass(frozen=True, slots=True)
class ReportedPair:
    """An agent metric (``reported``) and finemon's metrics it is compared with (``observed``,
    gauges in ``unit``); the agent's values times ``reported_scale`` are in ``unit``."""

    name: str
    reported: str
    observed: tuple[str, ...]
    unit: str
    reported_scale: float = 1.0


#: What is compared, in this order (a Datadog Agent's container metrics).
PAIRS: Final = (
    ReportedPair(
        "memory usage",
        "target.container.memory.usage",
        (CONTAINER_MEMORY_USAGE_BYTES, CONTAINER_MEMORY_WORKING_SET_BYTES),
        "bytes",
    ),
    ReportedPair(
        "memory working set",
        "target.container.memory.working_set",
        (CONTAINER_MEMORY_WORKING_SET_BYTES,),
        "bytes",
    ),
    ReportedPair(
        "memory RSS", "target.container.memory.rss", (CONTAINER_MEMORY_RSS_BYTES,), "bytes"
    ),
    ReportedPair(
        "CPU usage",
        "target.container.cpu.usage",
        (CONTAINER_CPU_USAGE_MILLICORES,),
        "millicores",
        reported_scale=1e-6,
    ),
)
PAIRS_BY_REPORTED: Final = {pair.reported: pair for pair in PAIRS}


@dataclass(frozen=True, slots=True)
class Difference:
    """Reported minus observed over the buckets that have both: the mean and the largest
    absolute value (None without such a bucket)."""

    mean: float | None
    max_abs: float | None


@dataclass(frozen=True, slots=True)
class ReportedComparison:
    """One container's ``reported`` metric beside its ``observed`` ones, per time bucket of
    ``bucket_seconds`` over the reported metric's span: ``points`` are [bucket start (epoch
    seconds), reported mean (times ``reported_scale``), each observed metric's mean], None
    where a bucket has no value; ``difference`` by observed metric."""

    container_key: str
    pair: str | None
    reported: str
    observed: tuple[str, ...]
    unit: str | None
    reported_scale: float
    bucket_seconds: float
    points: list[list[float | None]]
    difference: dict[str, Difference]


def pair_for(reported: str, observed: Sequence[str] | None = None) -> ReportedPair:
    """The pair of ``reported`` in :data:`PAIRS` (with ``observed`` instead of its own when
    given), else an ad hoc pair of scale 1. Raises :class:`AnalysisError` for a metric that is
    not the agent's, or no or too many observed metrics."""
    if not reported.startswith(REPORTED_PREFIX):
        raise AnalysisError(f"reported must be a target.* metric (the agent's), got {reported!r}")
    known = PAIRS_BY_REPORTED.get(reported)
    chosen = tuple(observed) if observed else (known.observed if known else ())
    if not chosen or len(chosen) > MAX_OBSERVED:
        raise AnalysisError(f"give 1 to {MAX_OBSERVED} observed metrics")
    if known is not None:
        return ReportedPair(known.name, reported, chosen, known.unit, known.reported_scale)
    return ReportedPair(reported.removeprefix(REPORTED_PREFIX), reported, chosen, "", 1.0)


def comparison_sql(
    container_filter: str, pair: ReportedPair, start_ms: int | None, end_ms: int | None
) -> str:
    """The bounded SQL of :func:`compare_reported`: rows of (bucket start, bucket seconds,
    reported mean, each observed mean), ``$points`` buckets at most."""
    names = [pair.reported, *pair.observed]
    where = [container_filter, f"metric_name IN ({keys_sql(names)})"]
    if start_ms is not None:
        where.append(f"time >= make_timestamp({int(start_ms)} * 1000)")
    if end_ms is not None:
        where.append(f"time <= make_timestamp({int(end_ms)} * 1000)")
    means = ", ".join(
        f"avg(value) FILTER (WHERE metric_name = {sql_string(name)})" for name in names
    )
    return f"""
        WITH m AS (
            SELECT epoch(time) AS t, metric_name,
                coalesce(value_float, CAST(value_int AS DOUBLE)) AS value
            FROM metrics WHERE {" AND ".join(where)}
        ), span AS (
            SELECT min(t) AS t0, max(t) AS t1 FROM m
            WHERE metric_name = {sql_string(pair.reported)}
        ), b AS (
            SELECT t0, t1, greatest(1, ceil((t1 - t0 + 1) / $points)) AS seconds FROM span
        )
        SELECT floor((m.t - b.t0) / b.seconds) * b.seconds + b.t0 AS bucket,
            any_value(b.seconds) AS seconds, {means}
        FROM m, b WHERE m.t BETWEEN b.t0 AND b.t1
        GROUP BY bucket ORDER BY bucket"""


def compare_reported(
    query: Query,
    container_key: str,
    container_filter: str,
    pair: ReportedPair,
    *,
    start_ms: int | None = None,
    end_ms: int | None = None,
    max_points: int = 200,
) -> ReportedComparison:
    """``pair`` for the container ``container_key`` (its rows: the SQL ``container_filter``)
    in at most ``max_points`` buckets over the reported metric's span (within ``start_ms`` ..
    ``end_ms``, epoch ms, when given). Raises :class:`AnalysisError` when the container has no
    row of the reported metric there."""
    rows = query(comparison_sql(container_filter, pair, start_ms, end_ms), {"points": max_points})
    if not rows:
        raise AnalysisError(f"container {container_key} has no rows of {pair.reported}")
    scale = pair.reported_scale
    points: list[list[float | None]] = []
    for bucket, _, reported, *observed in rows:
        points.append(
            [
                float(bucket),
                None if reported is None else float(reported) * scale,
                *(None if v is None else float(v) for v in observed),
            ]
        )
    difference = {}
    for index, name in enumerate(pair.observed, start=2):
        gaps = [
            reported_mean - observed_mean
            for p in points
            if (reported_mean := p[1]) is not None and (observed_mean := p[index]) is not None
        ]
        difference[name] = Difference(
            sum(gaps) / len(gaps) if gaps else None, max((abs(g) for g in gaps), default=None)
        )
    return ReportedComparison(
        container_key=container_key,
        pair=pair.name if pair.reported in PAIRS_BY_REPORTED else None,
        reported=pair.reported,
        observed=pair.observed,
        unit=pair.unit or None,
        reported_scale=scale,
        bucket_seconds=float(rows[0][1]),
        points=points,
        difference=difference,
    )


def reported_containers_sql(reported: Sequence[str]) -> str:
    """SQL of (container_key, metric_name): which containers have rows of which of the
    ``reported`` metrics."""
    return f"""SELECT DISTINCT container_key, metric_name FROM metrics
        WHERE metric_name IN ({keys_sql(reported)}) AND container_key IS NOT NULL"""
