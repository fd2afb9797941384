"""The per-tick series ``finemon compare`` and ``finemon check`` work on, read with DuckDB.

One side of a comparison (or the runs a check covers) is a :class:`Selection` of a dataset,
optionally cut at a phase (``--phase NAME``: each run from its mark on, the time the
``finemon.phase{phase=NAME}`` series holds). For each container and metric it gives, per run,
one value per tick:

- a gauge: its value, summed over the container's series of that tick (``process.*`` metrics:
  over its processes, so ``process.memory.pss_bytes`` is the container's PSS);
- a counter: its increase since the previous tick (per series, a reset skipped), summed; for
  ``finemon check`` also per second (:data:`RATE`);
- the throttled share (:data:`THROTTLED_SHARE`): ``container.cpu.throttled_periods`` over
  ``container.cpu.periods`` in the tick, in percent (ticks without a CFS period are left out).

Containers are matched by identity (:func:`analysis.experiments.workload.container_identity`);
where several containers of one run share one (replicas of a workload, a container restarted),
their values of a tick are averaged.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Final, Literal

from analysis.dataset import connect, label_sql, sql_string
from analysis.errors import AnalysisError, one_line, require
from analysis.experiments.runs import RunManifest, read_run_manifests
from analysis.experiments.selection import Selection, select
from analysis.experiments.workload import container_identity
from analysis.query.markers import phase_marks_sql

if TYPE_CHECKING:
    import duckdb
    import numpy as np

#: How a metric becomes one value per tick (see the module's documentation).
Reading = Literal["value", "delta", "rate", "throttled_share"]
VALUE: Final = "value"
DELTA: Final = "delta"
RATE: Final = "rate"
THROTTLED_SHARE: Final = "throttled_share"

THROTTLED_PERIODS: Final = "container.cpu.throttled_periods"
PERIODS: Final = "container.cpu.periods"


@dataclass(frozen=True, slots=True)
class Headline:
    """A headline metric of ``finemon compare``: its name in the files, its unit, how it is
    read per tick, and the smallest change of it that counts (in its unit: smaller ones are
    ``no change`` whatever their percentage, as two runs of one workload differ by a few pages
    of memory or a few millicores). Every headline is worse when higher."""

    metric: str
    unit: str
    reading: Reading
    floor: float


#: What ``finemon compare`` compares, in this order.
HEADLINES: Final = (
    Headline("container.cpu.usage_millicores", "millicores", VALUE, 10.0),
    Headline(THROTTLED_PERIODS, "percent", THROTTLED_SHARE, 1.0),
    Headline("container.memory.usage_bytes", "bytes", VALUE, 1024.0 * 1024.0),
    Headline("container.memory.working_set_bytes", "bytes", VALUE, 1024.0 * 1024.0),
    Headline("container.memory.rss_bytes", "bytes", VALUE, 1024.0 * 1024.0),
    Headline("process.memory.pss_bytes", "bytes", VALUE, 1024.0 * 1024.0),
    Headline("container.memory.oom_kills", "count", DELTA, 0.0),
    Headline("container.cpu.psi.some.avg10_percent", "percent", VALUE, 1.0),
    Headline("container.memory.psi.some.avg10_percent", "percent", VALUE, 1.0),
    Headline("container.io.psi.some.avg10_percent", "percent", VALUE, 1.0),
)


@dataclass(frozen=True, slots=True)
class RunSeries:
    """One run's values of one container and metric: tick times (epoch ms), values, and the
    time the run's side is aligned at (its first tick kept, or the phase's mark), epoch ms."""

    run_id: str
    times_ms: np.ndarray
    values: np.ndarray
    origin_ms: int


@dataclass(frozen=True, slots=True)
class Side:
    """The data a selection holds: its runs (oldest first), the time it covers, every
    container identity seen in it, and the series read (by identity, metric and reading)."""

    directory: Path
    selection: Selection
    phase: str | None
    run_ids: tuple[str, ...]
    manifests: dict[str, RunManifest]
    first_time: datetime | None
    last_time: datetime | None
    identities: tuple[str, ...]
    series: dict[tuple[str, str, Reading], tuple[RunSeries, ...]]


def _where(selection: Selection) -> str:
    conditions = []
    if selection.run_ids is not None:
        conditions.append(f"run_id IN ({', '.join(sql_string(r) for r in selection.run_ids)})")
    if selection.start is not None:
        conditions.append(f"time >= {sql_string(selection.start.isoformat())}::TIMESTAMPTZ")
    if selection.end is not None:
        conditions.append(f"time < {sql_string(selection.end.isoformat())}::TIMESTAMPTZ")
    return " AND ".join(conditions) or "true"


def _selected_view(con: duckdb.DuckDBPyConnection, selection: Selection, phase: str | None) -> None:
    """``sel``: the rows of ``metrics`` the selection keeps, each run from ``phase`` on."""
    where = _where(selection)
    if phase is None:
        con.execute(f"CREATE OR REPLACE TEMP VIEW sel AS SELECT * FROM metrics WHERE {where}")
        return
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE phase_marks AS
        SELECT run_id, to_timestamp(mark_seconds) AS mark_time FROM ({phase_marks_sql(where)})
        WHERE phase = {sql_string(phase)}"""
    )
    con.execute(
        f"""CREATE OR REPLACE TEMP VIEW sel AS
        SELECT m.* FROM metrics m JOIN phase_marks p USING (run_id)
        WHERE {where} AND m.time >= p.mark_time"""
    )


def _per_key_sql(metric: str, reading: Reading) -> str:
    """SQL of (run_id, container_key, t (epoch ms), v): ``metric``'s value per container and
    tick, read as ``reading``."""
    name = sql_string(metric)
    if reading == VALUE:
        return f"""SELECT run_id, container_key, epoch_ms(time) AS t, sum(value_float) AS v
            FROM sel WHERE metric_name = {name} AND container_key IS NOT NULL
                AND value_float IS NOT NULL
            GROUP BY ALL"""

    def deltas(counter: str) -> str:
        return f"""SELECT run_id, container_key, epoch_ms(time) AS t,
                value_int - lag(value_int) OVER w AS delta,
                (epoch_ms(time) - lag(epoch_ms(time)) OVER w) / 1000.0 AS seconds
            FROM sel WHERE metric_name = {sql_string(counter)} AND container_key IS NOT NULL
                AND value_int IS NOT NULL
            WINDOW w AS (PARTITION BY series ORDER BY time)"""

    if reading in (DELTA, RATE):
        value = "sum(delta)" if reading == DELTA else "sum(delta / seconds)"
        return f"""SELECT run_id, container_key, t, {value}::DOUBLE AS v
            FROM ({deltas(metric)}) WHERE delta >= 0 AND seconds > 0 GROUP BY ALL"""
    return f"""WITH throttled AS (
            SELECT run_id, container_key, t, sum(delta) AS d FROM ({deltas(THROTTLED_PERIODS)})
            WHERE delta >= 0 GROUP BY ALL
        ), periods AS (
            SELECT run_id, container_key, t, sum(delta) AS d FROM ({deltas(PERIODS)})
            WHERE delta >= 0 GROUP BY ALL
        )
        SELECT run_id, container_key, t, 100.0 * throttled.d / periods.d AS v
        FROM throttled JOIN periods USING (run_id, container_key, t) WHERE periods.d > 0"""


def _register_identities(con: duckdb.DuckDBPyConnection) -> tuple[str, ...]:
    """Table ``identities`` (run_id, container_key, identity) of the selected containers;
    returns the identities, sorted."""
    pa = require("pyarrow")
    rows = con.execute(
        f"""SELECT run_id, container_key, max(namespace), max(pod_name), max(container_name),
            max({label_sql("cgroup")})
        FROM sel WHERE container_key IS NOT NULL AND starts_with(metric_name, 'container.')
        GROUP BY run_id, container_key"""
    ).fetchall()
    runs, keys, identities = [], [], []
    for run_id, key, namespace, pod, container, cgroup in rows:
        runs.append(run_id)
        keys.append(key)
        identities.append(container_identity(namespace, pod, container, cgroup, key))
    table = pa.table(
        {
            "run_id": pa.array(runs, pa.string()),
            "container_key": pa.array(keys, pa.string()),
            "identity": pa.array(identities, pa.string()),
        }
    )
    con.register("identities_arrow", table)
    con.execute("CREATE OR REPLACE TEMP TABLE identities AS SELECT * FROM identities_arrow")
    con.unregister("identities_arrow")
    return tuple(sorted(set(identities)))


def _read_metric(
    con: duckdb.DuckDBPyConnection,
    metric: str,
    reading: Reading,
    origins: dict[str, int],
) -> dict[str, tuple[RunSeries, ...]]:
    """``metric``'s series by identity (each run's, oldest first), replicas averaged per tick."""
    np = require("numpy")
    result = con.execute(
        f"""SELECT i.identity, k.run_id, k.t, avg(k.v) AS v
        FROM ({_per_key_sql(metric, reading)}) k JOIN identities i USING (run_id, container_key)
        WHERE isfinite(k.v)
        GROUP BY ALL ORDER BY i.identity, k.run_id, k.t"""
    ).fetchnumpy()
    identities, run_ids = result["identity"], result["run_id"]
    times, values = np.asarray(result["t"], dtype=np.int64), np.asarray(result["v"], dtype=float)
    found: dict[str, list[RunSeries]] = {}
    start = 0
    for index in range(1, len(identities) + 1):
        if index < len(identities) and (
            identities[index] == identities[start] and run_ids[index] == run_ids[start]
        ):
            continue
        if index > start:
            run_id = str(run_ids[start])
            found.setdefault(str(identities[start]), []).append(
                RunSeries(run_id, times[start:index], values[start:index], origins[run_id])
            )
        start = index
    order = {run_id: i for i, run_id in enumerate(origins)}
    return {
        identity: tuple(sorted(series, key=lambda s: order[s.run_id]))
        for identity, series in found.items()
    }


def read_side(
    directory: Path,
    selector: str | None,
    metrics: Sequence[tuple[str, Reading]],
    *,
    phase: str | None = None,
) -> Side:
    """The series of ``metrics`` (name, reading) in the runs of ``directory`` that
    ``selector`` selects (None: every run), each run from ``phase``'s mark on when given.

    Raises :class:`AnalysisError` when the directory cannot be read, the selector selects
    nothing, or no selected run has the phase.
    """
    duckdb_module = require("duckdb")
    manifests = read_run_manifests(directory)
    con = connect(directory)
    try:
        run_ids = [
            str(row[0])
            for row in con.execute(
                "SELECT run_id FROM metrics GROUP BY run_id ORDER BY min(time), run_id"
            ).fetchall()
        ]
        selection = (
            Selection("every run", None, None, None)
            if selector is None
            else select(selector, run_ids, manifests)
        )
        _selected_view(con, selection, phase)
        spans = con.execute(
            "SELECT run_id, min(time), max(time), epoch_ms(min(time)) FROM sel "
            "GROUP BY run_id ORDER BY min(time), run_id"
        ).fetchall()
        if not spans:
            if phase is not None:
                raise AnalysisError(
                    f"{selection.text!r}: no selected run has the phase {phase!r} "
                    f"(finemon mark --output-dir DIR {phase} during the run records it)"
                )
            raise AnalysisError(f"{selection.text!r}: selects no data in {directory}")
        origins = {str(run_id): int(origin) for run_id, _, _, origin in spans}
        if phase is not None:
            marks = dict(
                con.execute(
                    "SELECT run_id, epoch_ms(mark_time)::BIGINT FROM phase_marks"
                ).fetchall()
            )
            origins = {run_id: int(marks[run_id]) for run_id in origins}
        identities = _register_identities(con)
        series: dict[tuple[str, str, Reading], tuple[RunSeries, ...]] = {}
        for metric, reading in metrics:
            for identity, found in _read_metric(con, metric, reading, origins).items():
                series[(identity, metric, reading)] = found
    except duckdb_module.Error as exc:
        raise AnalysisError(f"{directory}: {one_line(str(exc))}") from None
    finally:
        con.close()
    return Side(
        directory=directory,
        selection=selection,
        phase=phase,
        run_ids=tuple(origins),
        manifests={r: manifests[r] for r in origins if r in manifests},
        first_time=min(span[1] for span in spans),
        last_time=max(span[2] for span in spans),
        identities=identities,
        series=series,
    )
