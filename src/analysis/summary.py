"""``finemon summary``: per run and per container, what the resources did over the run.

CPU comes from ``container.cpu.usage_millicores`` (mean, 95th percentile, max over the ticks),
throttling from the counters ``container.cpu.throttled_periods``, ``container.cpu.periods`` and
``container.cpu.throttled_usec`` (increase over the container's range, resets skipped), memory
from ``container.memory.working_set_bytes`` and ``container.memory.pss_bytes`` (mean, max), OOM
kills from ``container.memory.oom_kills`` (increase), and the top processes by their highest
``process.memory.pss_bytes``.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from analysis.dataset import connect, container_names_of, label_sql
from analysis.errors import AnalysisError, one_line, require
from analysis.experiments.runs import RunManifest, read_run_manifests
from analysis.objects import listed_objects
from analysis.query.dataset_index import open_local_index, report_unreadable
from analysis.query.names import container_labels, container_names
from analysis.source import Source, as_source
from capture.summary import sketch_quantile
from common.catalogue.container import CONTAINER_CPU_PERIODS as PERIODS
from common.catalogue.container import CONTAINER_CPU_THROTTLED_PERIODS as THROTTLED_PERIODS
from common.catalogue.container import CONTAINER_CPU_THROTTLED_USEC as THROTTLED_USEC
from common.catalogue.container import CONTAINER_CPU_USAGE_MILLICORES as CPU
from common.catalogue.container import CONTAINER_MEMORY_OOM_KILLS as OOM_KILLS
from common.catalogue.container import CONTAINER_MEMORY_PSS_BYTES as PSS
from common.catalogue.container import CONTAINER_MEMORY_WORKING_SET_BYTES as WORKING_SET
from common.catalogue.process import PROCESS_MEMORY_PSS_BYTES as PROCESS_PSS

if TYPE_CHECKING:
    import duckdb


_MIB = 1024 * 1024
LEGEND = (
    "(times in UTC; cpu in millicores; thr: CPU throttling: throttled periods, their % of all"
    " periods, seconds throttled; wset (working set) and pss in MiB; oom: OOM kills)"
)


@dataclass(frozen=True, slots=True)
class Stats:
    """Mean, 95th percentile and maximum of a gauge over a container's ticks."""

    mean: float
    p95: float
    max: float


@dataclass(frozen=True, slots=True)
class ContainerSummary:
    """One container in one run; a field is None when the run has no such metric for it.
    ``name`` is its full name, a restarted container's lives told apart by their start time
    (:attr:`analysis.query.names.ContainerName.long_name`)."""

    container_key: str
    name: str
    first_time: datetime
    last_time: datetime
    cpu_millicores: Stats | None
    throttled_periods: int | None
    periods: int | None
    throttled_seconds: float | None
    working_set_bytes: Stats | None
    pss_bytes: Stats | None
    oom_kills: int | None


@dataclass(frozen=True, slots=True)
class ProcessSummary:
    """A process's PSS over a run (bytes)."""

    container_name: str
    pid: str
    comm: str
    pss_mean_bytes: float
    pss_max_bytes: float


@dataclass(frozen=True, slots=True)
class RunSummary:
    """One ``run_id``: its node, time range, containers (by name) and top processes by PSS, and
    the experiment and variant its manifest names (``finemon run --experiment/--variant``)."""

    run_id: str
    node_name: str | None
    first_time: datetime
    last_time: datetime
    containers: tuple[ContainerSummary, ...]
    top_processes: tuple[ProcessSummary, ...]
    experiment: str | None = None
    variant: str | None = None


def _gauge_stats(con: duckdb.DuckDBPyConnection) -> dict[tuple[str, str, str], Stats]:
    rows = con.execute(
        f"""SELECT run_id, container_key, metric_name, avg(value_float),
            quantile_cont(value_float, 0.95), max(value_float)
        FROM metrics
        WHERE metric_name IN ('{CPU}', '{WORKING_SET}', '{PSS}')
            AND container_key IS NOT NULL AND value_float IS NOT NULL
        GROUP BY ALL"""
    ).fetchall()
    return {(r[0], r[1], r[2]): Stats(r[3], r[4], r[5]) for r in rows}


def _counter_increases(con: duckdb.DuckDBPyConnection) -> dict[tuple[str, str, str], int]:
    union = " UNION ALL ".join(
        f"SELECT run_id, container_key, metric_name, increase FROM _increase('{name}')"
        for name in (THROTTLED_PERIODS, PERIODS, THROTTLED_USEC, OOM_KILLS)
    )
    rows = con.execute(
        f"""SELECT run_id, container_key, metric_name, sum(increase)::BIGINT
        FROM ({union}) WHERE container_key IS NOT NULL GROUP BY ALL"""
    ).fetchall()
    return {(r[0], r[1], r[2]): int(r[3]) for r in rows}


def _top_processes(
    con: duckdb.DuckDBPyConnection, top: int
) -> dict[str, list[tuple[str, str, str, float, float]]]:
    rows = con.execute(
        f"""SELECT run_id, container_key, {label_sql("pid")} AS pid, {label_sql("comm")} AS comm,
            avg(value_float) AS mean, max(value_float) AS peak
        FROM metrics
        WHERE metric_name = '{PROCESS_PSS}' AND value_float IS NOT NULL
        GROUP BY run_id, container_key, pid, comm
        QUALIFY row_number() OVER (PARTITION BY run_id ORDER BY peak DESC, pid) <= $top
        ORDER BY run_id, peak DESC, pid""",
        {"top": top},
    ).fetchall()
    found: dict[str, list[tuple[str, str, str, float, float]]] = defaultdict(list)
    for run_id, key, pid, comm, mean, peak in rows:
        found[run_id].append((key, pid or "?", comm or "?", mean, peak))
    return found


def summarize(
    directory: str | Path | Source,
    top_processes: int = 10,
    *,
    run_id: str | None = None,
    container_keys: Sequence[str] | None = None,
    use_index: bool = True,
) -> list[RunSummary]:
    """Summaries of every run in ``directory`` (a folder, or a bucket read in place), oldest
    first, with at most ``top_processes`` processes each; only run ``run_id`` and the
    containers ``container_keys`` when given (see :func:`analysis.dataset.connect`).

    They come from the files' summaries, through the index beside the data
    (:mod:`analysis.query.dataset_index`; :func:`summarize_summary`), without reading a row;
    with ``use_index=False``, from a scan of the rows (the same answers: means, maxima and
    counter increases exact, the p95 within the sketch's 1 %).

    Raises :class:`MissingExtraError` without duckdb and :class:`AnalysisError` when the
    directory cannot be read.
    """
    duckdb_module = require("duckdb")  # (older files' summaries come from a scan)
    source = as_source(directory)
    local = source.local
    if use_index and local is not None and local.is_dir():
        index = open_local_index(local)
        report_unreadable(local, index.stats.unreadable)
        if index.summary is not None:
            return summarize_summary(
                index.summary,
                read_run_manifests(local),
                top_processes,
                run_id=run_id,
                container_keys=container_keys,
            )
    objects = None
    if use_index and local is None and source.filesystem is not None:
        from analysis.objects import DataObjects  # noqa: PLC0415 - s3:// only

        objects = DataObjects(source)
        bucket_index = objects.open_index()
        # An object the index lacks (not Parquet, no summary in its footer) is read by a scan.
        if bucket_index.summary is not None and not bucket_index.stats.unreadable:
            return summarize_summary(
                bucket_index.summary,
                read_run_manifests(source, objects),
                top_processes,
                run_id=run_id,
                container_keys=container_keys,
            )
    if objects is None:
        objects = listed_objects(source)
    else:
        objects.refresh()
    con = connect(source, run_id=run_id, container_keys=container_keys, objects=objects)
    try:
        runs = con.execute(
            """SELECT run_id, max(node_name), min(time), max(time) FROM metrics
            GROUP BY run_id ORDER BY min(time), run_id"""
        ).fetchall()
        containers = con.execute(
            "SELECT run_id, container_key, first_time, last_time FROM containers"
        ).fetchall()
        names = container_names_of(con)
        stats = _gauge_stats(con)
        increases = _counter_increases(con)
        processes = _top_processes(con, top_processes)
    except duckdb_module.Error as exc:
        raise AnalysisError(f"{directory}: {one_line(str(exc))}") from None
    finally:
        con.close()

    manifests = read_run_manifests(source.local or source, objects)
    by_run: dict[str, list[ContainerSummary]] = defaultdict(list)
    # By name, a restarted container's lives in the order they started.
    by_name = sorted(containers, key=lambda row: (row[0], names[row[1]].full_name, row[2], row[1]))
    for run, key, first, last in by_name:
        throttled_usec = increases.get((run, key, THROTTLED_USEC))
        by_run[run].append(
            ContainerSummary(
                container_key=key,
                name=names[key].long_name,
                first_time=first,
                last_time=last,
                cpu_millicores=stats.get((run, key, CPU)),
                throttled_periods=increases.get((run, key, THROTTLED_PERIODS)),
                periods=increases.get((run, key, PERIODS)),
                throttled_seconds=None if throttled_usec is None else throttled_usec / 1e6,
                working_set_bytes=stats.get((run, key, WORKING_SET)),
                pss_bytes=stats.get((run, key, PSS)),
                oom_kills=increases.get((run, key, OOM_KILLS)),
            )
        )
    return [
        RunSummary(
            run_id=run,
            node_name=node,
            first_time=first,
            last_time=last,
            containers=tuple(by_run.get(run, [])),
            top_processes=tuple(
                ProcessSummary(
                    names[key].long_name if key in names else key[:12], pid, comm, mean, peak
                )
                for key, pid, comm, mean, peak in processes.get(run, [])
            ),
            experiment=manifests[run].experiment if run in manifests else None,
            variant=manifests[run].variant if run in manifests else None,
        )
        for run, node, first, last in runs
    ]


def _utc(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def _gauge(cell: Sequence[Any] | None) -> Stats | None:
    if cell is None or not cell[1]:
        return None
    p95 = sketch_quantile(cell[5], 0.95, cell[3], cell[4]) if len(cell) > 5 and cell[5] else None
    return Stats(cell[2] / cell[1], cell[4] if p95 is None else p95, cell[4])


def _increase(cell: Sequence[Any] | None) -> int | None:
    return None if cell is None else int(cell[4])


def summarize_summary(
    summary: Mapping[str, Any],
    manifests: Mapping[str, RunManifest],
    top_processes: int = 10,
    *,
    run_id: str | None = None,
    container_keys: Sequence[str] | None = None,
) -> list[RunSummary]:
    """:func:`summarize` from the merged summary of the files (:mod:`capture.summary`): means
    and maxima from the sums, counts and maxima, increases from the counters' chained
    increases, the p95 from the sketch, the top processes from their per-process aggregates."""
    wanted = None if container_keys is None else set(container_keys)
    runs = [r for r in summary.get("runs", []) if run_id is None or r["run_id"] == run_id]
    # Names: one rule over every container of the selection, its most complete labels.
    labels: dict[str, dict[str, Any]] = {}
    for run in runs:
        for group in run["groups"]:
            key = group["key"]
            if key is None or (wanted is not None and key not in wanted):
                continue
            if not any(m.startswith("container.") for m in group["cells"]):
                continue
            entry = labels.setdefault(key, {"first": group["first_ms"]})
            entry["first"] = min(entry["first"], group["first_ms"])
            for name, value in group["labels"].items():
                if value is not None and (entry.get(name) is None or value > entry[name]):
                    entry[name] = value
    made = [
        container_labels(
            key, namespace=e.get("namespace"), pod_name=e.get("pod_name"),
            container_name=e.get("container_name"), container_id=e.get("container_id"),
            pod_uid=e.get("pod_uid"), first_ms=e["first"],
        )
        for key, e in sorted(labels.items())
    ]  # fmt: skip
    names = dict(zip((c.key for c in made), container_names(made), strict=True))
    found = []
    for run in sorted(runs, key=lambda r: (r["first_ms"], r["run_id"])):
        rid = str(run["run_id"])
        containers = []
        processes: list[tuple[str, str, str, float, float]] = []
        node = run["labels"].get("node_name")
        for group in run["groups"]:
            key, cells = group["key"], group["cells"]
            node = max(node or "", group["labels"].get("node_name") or "") or None
            if key is None or (wanted is not None and key not in wanted):
                continue
            pss = cells.get(PROCESS_PSS)
            if pss is not None and len(pss) > 6:
                for pairs, (rows, total, _low, high) in pss[6].items():
                    other = dict(json.loads(pairs))
                    if rows:
                        processes.append((key, other.get("pid") or "?", other.get("comm") or "?",
                                          total / rows, high))  # fmt: skip
            if key not in labels:
                continue
            throttled_usec = _increase(cells.get(THROTTLED_USEC))
            containers.append(
                ContainerSummary(
                    container_key=key,
                    name=names[key].long_name,
                    first_time=_utc(group["first_ms"]),
                    last_time=_utc(group["last_ms"]),
                    cpu_millicores=_gauge(cells.get(CPU)),
                    throttled_periods=_increase(cells.get(THROTTLED_PERIODS)),
                    periods=_increase(cells.get(PERIODS)),
                    throttled_seconds=None if throttled_usec is None else throttled_usec / 1e6,
                    working_set_bytes=_gauge(cells.get(WORKING_SET)),
                    pss_bytes=_gauge(cells.get(PSS)),
                    oom_kills=_increase(cells.get(OOM_KILLS)),
                )
            )
        containers.sort(
            key=lambda c: (names[c.container_key].full_name, c.first_time, c.container_key)
        )
        processes.sort(key=lambda p: (-p[4], p[1]))
        manifest = manifests.get(rid)
        found.append(
            RunSummary(
                run_id=rid,
                node_name=node,
                first_time=_utc(run["first_ms"]),
                last_time=_utc(run["last_ms"]),
                containers=tuple(containers),
                top_processes=tuple(
                    ProcessSummary(
                        names[key].long_name if key in names else key[:12], pid, comm, mean, peak
                    )
                    for key, pid, comm, mean, peak in processes[:top_processes]
                ),
                experiment=manifest.experiment if manifest else None,
                variant=manifest.variant if manifest else None,
            )
        )
    return found


def _duration(seconds: float) -> str:
    seconds = round(seconds)
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min {seconds % 60} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60} min"


def _stat(stats: Stats | None, which: str) -> float | None:
    return None if stats is None else float(getattr(stats, which))


def _number(value: float | None, scale: float = 1.0, digits: int = 0) -> str:
    return "-" if value is None else f"{value / scale:.{digits}f}"


def _table(rows: list[list[str]], left: int = 1) -> list[str]:
    """Rows aligned in columns; the first ``left`` columns left-aligned, the others right."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [
        "  ".join(
            cell.ljust(w) if i < left else cell.rjust(w)
            for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        ).rstrip()
        for row in rows
    ]


def format_summary(runs: list[RunSummary]) -> str:
    """The summaries as text tables, one block per run (CPU in millicores, memory in MiB)."""
    blocks: list[str] = []
    for run in runs:
        same_day = run.first_time.date() == run.last_time.date()
        clock = "%H:%M:%S" if same_day else "%Y-%m-%d %H:%M:%S"
        span = (run.last_time - run.first_time).total_seconds()
        tags = [f"experiment {run.experiment}"] if run.experiment else []
        tags += [f"variant {run.variant}"] if run.variant else []
        tagged = f" ({', '.join(tags)})" if tags else ""
        lines = [
            f"run {run.run_id}{tagged} on node {run.node_name or '?'}: "
            f"{run.first_time:%Y-%m-%d %H:%M:%S} to {run.last_time.strftime(clock)} UTC "
            f"({_duration(span)}), {len(run.containers)} "
            f"container{'' if len(run.containers) == 1 else 's'}"
        ]
        if run.containers:
            rows = [
                ["container", "from", "to", "cpu:mean", "p95", "max", "thr:periods", "%", "s",
                 "wset:mean", "max", "pss:mean", "max", "oom"],
            ]  # fmt: skip
            for c in run.containers:
                share = (
                    100.0 * c.throttled_periods / c.periods
                    if c.throttled_periods is not None and c.periods
                    else None
                )
                cpu, wset, pss = c.cpu_millicores, c.working_set_bytes, c.pss_bytes
                rows.append(
                    [
                        c.name,
                        c.first_time.strftime(clock),
                        c.last_time.strftime(clock),
                        _number(_stat(cpu, "mean")),
                        _number(_stat(cpu, "p95")),
                        _number(_stat(cpu, "max")),
                        _number(c.throttled_periods),
                        _number(share, digits=1),
                        _number(c.throttled_seconds, digits=1),
                        _number(_stat(wset, "mean"), _MIB, 1),
                        _number(_stat(wset, "max"), _MIB, 1),
                        _number(_stat(pss, "mean"), _MIB, 1),
                        _number(_stat(pss, "max"), _MIB, 1),
                        _number(c.oom_kills),
                    ]
                )
            lines += ["", *_table(rows, left=3), LEGEND]
        else:
            lines.append("no container metrics in this run")
        if run.top_processes:
            rows = [["top processes by PSS", "pid", "comm", "PSS mean (MiB)", "max (MiB)"]]
            rows += [
                [p.container_name, p.pid, p.comm, _number(p.pss_mean_bytes, _MIB, 1),
                 _number(p.pss_max_bytes, _MIB, 1)]
                for p in run.top_processes
            ]  # fmt: skip
            lines += ["", *_table(rows, left=3)]
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) if blocks else "no runs"
