"""The query layer of ``finemon view`` and ``finemon mcp``: one :class:`Explorer` over a dataset.

An :class:`Explorer` answers the questions an interactive viewer or an agent asks of a finemon
output directory: which nodes, runs, containers and metrics it holds, a metric's series for
some containers downsampled to a number of points, the per-process PSS of a container, the OOM
kills and container starts and stops to mark on a chart, a study of one container (peaks,
throttling, OOM kills, changepoints, periodicity) and read-only SQL with limits.

Everything is computed by DuckDB over the Parquet files (the ``metrics`` view of
:func:`analysis.dataset.connect`); no table is loaded whole into Python. What can be read from
the files' footers (time range, runs, metric descriptions) is, and the container list (one scan
of two metrics) is cached until :meth:`Explorer.refresh` sees new files. Series are downsampled
in DuckDB: time is cut into round buckets so that each series has at most ``max_points``
points, each the mean, minimum and maximum of the bucket's values; counters (cumulative) are
turned into per-second rates first (a counter going down, a restart, is skipped).

All text is returned raw (container and process names come from the monitored host): escaping
is the presenter's job. Times are UTC; in series and markers they are epoch seconds (floats).
Methods are safe to call from several threads (they take turns on one connection).
"""

from __future__ import annotations

import json
import math
import re
import tempfile
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from analysis.dataset import connect, parquet_files, sql_string
from analysis.errors import AnalysisError, one_line, require
from analysis.names import ContainerLabels, ContainerName, container_names
from analysis.report import bucket_ms
from analysis.studies import Changepoint, Peak, Periodicity, changepoints, peaks, periodicity
from common.catalogue.container import CONTAINER_CPU_LIMIT_MILLICORES as CPU_LIMIT
from common.catalogue.container import CONTAINER_CPU_PERIODS as CPU_PERIODS
from common.catalogue.container import CONTAINER_CPU_THROTTLED_PERIODS as THROTTLED_PERIODS
from common.catalogue.container import CONTAINER_CPU_THROTTLED_USEC as THROTTLED_USEC
from common.catalogue.container import CONTAINER_CPU_USAGE_MILLICORES as CPU_MILLICORES
from common.catalogue.container import CONTAINER_CPU_USAGE_USEC
from common.catalogue.container import CONTAINER_MEMORY_LIMIT_BYTES as MEMORY_LIMIT
from common.catalogue.container import CONTAINER_MEMORY_OOM_KILLS as OOM_KILLS
from common.catalogue.container import CONTAINER_MEMORY_WORKING_SET_BYTES as WORKING_SET
from common.catalogue.process import PROCESS_MEMORY_PSS_BYTES as PROCESS_PSS

if TYPE_CHECKING:
    import duckdb

#: Default bound on the points of one series.
DEFAULT_MAX_POINTS = 1200
#: Container metrics every container has on every tick: the container list scans only these.
PRESENCE_METRICS = (CONTAINER_CPU_USAGE_USEC, WORKING_SET)
#: Row limit and timeout of :meth:`Explorer.sql` by default, and their ceilings.
DEFAULT_SQL_LIMIT = 1000
MAX_SQL_LIMIT = 100_000
DEFAULT_SQL_TIMEOUT_SECONDS = 10.0
#: What one :meth:`Explorer.sql` result may weigh by default: its rows as compact JSON.
DEFAULT_SQL_RESULT_BYTES = 1024 * 1024
#: Bounds of the connection :meth:`Explorer.sql` runs on: DuckDB's memory (its buffer
#: manager: sorts, hash tables, aggregates, cached file data), its threads, and what it may
#: spill to disk, in a private temporary folder removed with the explorer.
SQL_MEMORY_LIMIT_BYTES = 512 * 1024 * 1024
SQL_THREADS = 2
SQL_SPILL_LIMIT_BYTES = 1024 * 1024 * 1024
#: How often a query past its timeout is interrupted again, until it stops.
_INTERRUPT_EVERY_SECONDS = 0.05
#: What the check of :meth:`Explorer.sql` raises for a value too large for any result.
_VALUE_TOO_LARGE = "finemon: a value is larger than the result may be"
#: Labels that are part of the container's identity, not of a series within it.
_CONTAINER_LABELS = frozenset({"cgroup"})
_WORD = re.compile(r"\S+")


# ------------------------------------------------------------------------------------------
# What the methods return


@dataclass(frozen=True, slots=True)
class NodeInfo:
    """A node of the dataset: its names, the time it covers and how many containers it ran."""

    node_name: str
    cluster_name: str | None
    first_time: datetime
    last_time: datetime
    containers: int
    runs: int


@dataclass(frozen=True, slots=True)
class RunInfo:
    """One ``finemon run``: from its manifest (``_sessions/RUN.json``) and its data files.

    ``start``/``end`` are the manifest's start and end (``end`` is None while it records or if
    it was killed), ``first_time``/``last_time`` the first and last tick in the data (None
    without data files); ``exit_reason`` the manifest's ``exit_reason`` or ``reason``.
    """

    run_id: str
    node_name: str | None
    cluster_name: str | None
    start: datetime | None
    end: datetime | None
    exit_reason: str | None
    files: int
    rows: int
    first_time: datetime | None
    last_time: datetime | None
    tick_seconds: float | None
    finemon_version: str | None


@dataclass(frozen=True, slots=True)
class ContainerInfo:
    """A container across the runs that saw it.

    ``key`` is stable (the container id, else the cgroup path, else the pod uid) and is what the
    other methods take; ``name`` a short display name unique in the dataset (the container name,
    else pod/container, else namespace/pod/container, else the shortest unique end of the cgroup
    path; a restarted container's lives followed by their first tick, ``api (since 14:02:11)``:
    :func:`analysis.names.container_names`); ``full_name`` is ``namespace/pod/container`` (else
    the short container id, else the cgroup path), the same for every life of a restarted
    container.
    """

    key: str
    name: str
    full_name: str
    namespace: str | None
    pod_name: str | None
    container_name: str | None
    container_id: str | None
    pod_uid: str | None
    qos_class: str | None
    node_name: str | None
    cluster_name: str | None
    cgroup: str | None
    first_time: datetime
    last_time: datetime
    runs: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class MetricInfo:
    """A metric of the dataset: kind (``gauge`` or ``counter``), unit and description (from the
    files' metadata, else the catalogue; None when unknown) and its number of series (one per
    container and label set, e.g. per process)."""

    name: str
    kind: str
    unit: str | None
    description: str | None
    series: int
    containers: int


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


@dataclass(frozen=True, slots=True)
class Marker:
    """An event to mark on a chart at ``time`` (epoch seconds): ``oom`` (OOM kills counted),
    ``start`` or ``stop`` (a container's first or last tick of a run, when that is not the run's
    own first or last tick)."""

    time: float
    kind: str
    container_key: str
    text: str


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
    """What :meth:`Explorer.analyze` found about one container over ``start``-``end``."""

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


@dataclass(frozen=True, slots=True)
class QueryResult:
    """Rows of a read-only query: at most ``limit`` rows; ``truncated`` when there were more."""

    columns: tuple[str, ...]
    types: tuple[str, ...]
    rows: list[tuple[object, ...]]
    truncated: bool
    seconds: float


class RefusedQueryError(AnalysisError):
    """SQL that :meth:`Explorer.sql` does not run (not a single read-only SELECT)."""


# ------------------------------------------------------------------------------------------
# The files' footers


@dataclass(frozen=True, slots=True)
class _FileInfo:
    path: Path
    signature: tuple[int, int]
    run_id: str | None
    node_name: str | None
    tick_seconds: float | None
    rows: int
    first_ms: int | None
    last_ms: int | None
    metrics: Mapping[str, Mapping[str, Any]]


def _epoch_ms(value: object) -> int | None:
    if isinstance(value, datetime):
        stamp = value if value.tzinfo else value.replace(tzinfo=UTC)
        return round(stamp.timestamp() * 1000)
    if isinstance(value, int):
        return value
    return None


def _read_footer(path: Path, signature: tuple[int, int]) -> _FileInfo:
    """What the footer of ``path`` says: metadata, rows and the time column's range."""
    import pyarrow.parquet as pq  # noqa: PLC0415 - a core dependency, only needed here

    meta = pq.read_metadata(path)
    kv = {k.decode(): v.decode(errors="replace") for k, v in (meta.metadata or {}).items()}
    first: int | None = None
    last: int | None = None
    names = meta.schema.names
    if "time" in names:
        column = names.index("time")
        for group in range(meta.num_row_groups):
            stats = meta.row_group(group).column(column).statistics
            if stats is None or not stats.has_min_max:
                first = last = None
                break
            low, high = _epoch_ms(stats.min), _epoch_ms(stats.max)
            if low is None or high is None:
                first = last = None
                break
            first = low if first is None else min(first, low)
            last = high if last is None else max(last, high)
    metrics: dict[str, Mapping[str, Any]] = {}
    try:
        described = json.loads(kv.get("capture.metrics", "{}"))
        if isinstance(described, dict):
            metrics = {str(k): v for k, v in described.items() if isinstance(v, dict)}
    except ValueError:
        pass
    try:
        tick = float(kv["capture.tick_seconds"]) if "capture.tick_seconds" in kv else None
    except ValueError:
        tick = None
    return _FileInfo(
        path=path,
        signature=signature,
        run_id=kv.get("capture.run_id"),
        node_name=kv.get("finemon.node_name"),
        tick_seconds=tick,
        rows=meta.num_rows,
        first_ms=first,
        last_ms=last,
        metrics=metrics,
    )


def _signature(path: Path) -> tuple[int, int]:
    stat = path.stat()
    return stat.st_size, stat.st_mtime_ns


# ------------------------------------------------------------------------------------------
# Helpers


def _utc(epoch_ms: float) -> datetime:
    return datetime.fromtimestamp(epoch_ms / 1000, UTC)


def _as_utc(value: datetime) -> datetime:
    return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)


def _parse_iso(text: object) -> datetime | None:
    if not isinstance(text, str):
        return None
    try:
        return _as_utc(datetime.fromisoformat(text.replace("Z", "+00:00")))
    except ValueError:
        return None


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def _keys_sql(keys: Iterable[str]) -> str:
    return ", ".join(sql_string(key) for key in keys)


@lru_cache(maxsize=4096)
def _catalogued(name: str) -> tuple[str | None, str | None]:
    """(unit, description) of ``name`` in the metric catalogue."""
    from common.catalogue import entry_for  # noqa: PLC0415 - only when a name is unknown

    entry = entry_for(name)
    if entry is None:
        return None, None
    return entry.capture_unit, entry.description or None


@lru_cache(maxsize=4096)
def has_series_labels(name: str) -> bool:
    """Whether metric ``name`` may have several series per container (labels beyond the
    container's, such as ``pid`` or ``device``): true for ``process.*`` metrics and for what the
    catalogue lists with labels or does not know. The labels map is the costly column to
    read, so queries group by it only for these."""
    from common.catalogue import entry_for  # noqa: PLC0415

    if name.startswith("process."):
        return True
    entry = entry_for(name)
    return entry is None or bool(entry.labels)


def _partition_sql(metric: str) -> str:
    """The columns that tell one series of ``metric`` from another (for window functions)."""
    return "series" if has_series_labels(metric) else "run_id, container_key"


def _matches(words: Sequence[str], texts: Iterable[str | None]) -> bool:
    haystack = " ".join(text.lower() for text in texts if text)
    return all(word in haystack for word in words)


def _choices(value: str | Sequence[str] | None) -> frozenset[str] | None:
    if value is None:
        return None
    return frozenset([value] if isinstance(value, str) else value)


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


# ------------------------------------------------------------------------------------------
# The explorer


class Explorer:
    """Questions to a finemon output directory (see the module's documentation).

    ``directory`` is a local folder (callers resolve ``s3://`` sources with
    :func:`analysis.source.local_directory`). Raises :class:`AnalysisError` when it holds no
    Parquet file or DuckDB cannot read them, :class:`MissingExtraError` without duckdb.
    """

    def __init__(self, directory: Path | str) -> None:
        self.directory = Path(directory)
        self._duckdb = require("duckdb")
        self._lock = threading.RLock()
        self._files: dict[Path, _FileInfo] = {}
        self._con: duckdb.DuckDBPyConnection | None = None
        self._sql_con: duckdb.DuckDBPyConnection | None = None
        self._sql_spill: tempfile.TemporaryDirectory[str] | None = None
        self._containers: dict[str, ContainerInfo] | None = None
        self._container_runs: list[tuple[str, str, int, int]] | None = None
        self._metrics: list[MetricInfo] | None = None
        self._load(parquet_files(self.directory))

    # -------------------------------------------------------------- files and connection
    def _load(self, paths: Sequence[Path]) -> None:
        files: dict[Path, _FileInfo] = {}
        for path in paths:
            try:
                signature = _signature(path)
            except OSError:
                continue  # removed since the listing (rotation, an uploader's --upload-delete)
            known = self._files.get(path)
            if known is not None and known.signature == signature:
                files[path] = known
                continue
            try:
                files[path] = _read_footer(path, signature)
            except (OSError, ValueError):
                # Not a readable Parquet file: connect() decides what to do with it.
                files[path] = _FileInfo(path, signature, None, None, None, 0, None, None, {})
        con = connect(self.directory)
        if self._con is not None:
            self._con.close()
        if self._sql_con is not None:
            self._sql_con.close()
            self._sql_con = None
        self._con = con
        self._files = files
        self._containers = None
        self._container_runs = None
        self._metrics = None

    def _connection(self) -> duckdb.DuckDBPyConnection:
        assert self._con is not None, "the explorer was closed"
        return self._con

    def _query(self, sql: str, params: Mapping[str, object] | None = None) -> list[tuple[Any, ...]]:
        try:
            return self._connection().execute(sql, params or {}).fetchall()
        except self._duckdb.Error as exc:
            raise AnalysisError(one_line(str(exc))) from None

    def close(self) -> None:
        """Close the DuckDB connections; the explorer is unusable afterwards."""
        with self._lock:
            for con in (self._con, self._sql_con):
                if con is not None:
                    con.close()
            self._con = self._sql_con = None
            if self._sql_spill is not None:
                self._sql_spill.cleanup()
                self._sql_spill = None

    def __enter__(self) -> Explorer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def refresh(self) -> bool:
        """Pick up files published (or removed) since the last look; True if anything changed.

        A live viewer calls it every few seconds: when nothing changed it only lists the
        directory and stats the files.
        """
        with self._lock:
            try:
                paths = parquet_files(self.directory)
            except AnalysisError:
                paths = []
            current = {}
            for path in paths:
                try:
                    current[path] = _signature(path)
                except OSError:
                    continue
            known = {path: info.signature for path, info in self._files.items()}
            if current == known or not current:
                return False
            self._load(sorted(current))
            return True

    # -------------------------------------------------------------- ranges, runs, nodes
    def _tick_seconds(self) -> float:
        ticks = [f.tick_seconds for f in self._files.values() if f.tick_seconds]
        return min(ticks) if ticks else 1.0

    def time_range(self) -> tuple[datetime, datetime] | None:
        """The first and last tick of the dataset (UTC), None when it holds no rows."""
        with self._lock:
            firsts = [f.first_ms for f in self._files.values() if f.rows]
            lasts = [f.last_ms for f in self._files.values() if f.rows]
            if firsts and None not in firsts and None not in lasts:
                return _utc(min(f for f in firsts if f is not None)), _utc(
                    max(f for f in lasts if f is not None)
                )
            rows = self._query("SELECT min(epoch_ms(time)), max(epoch_ms(time)) FROM metrics")
            if not rows or rows[0][0] is None:
                return None
            return _utc(rows[0][0]), _utc(rows[0][1])

    def _range_ms(self, start: datetime | None, end: datetime | None) -> tuple[int, int] | None:
        whole = self.time_range()
        if whole is None:
            return None
        first = round(_as_utc(start).timestamp() * 1000) if start else _epoch_ms(whole[0])
        last = round(_as_utc(end).timestamp() * 1000) if end else _epoch_ms(whole[1])
        assert first is not None and last is not None
        if last < first:
            raise AnalysisError(f"the range ends before it starts: {start} to {end}")
        return first, last

    def _run_ranges(self) -> dict[str, tuple[int, int]]:
        """Each run's first and last tick in the data (epoch ms), from the footers."""
        ranges: dict[str, tuple[int, int]] = {}
        if all(f.run_id and f.first_ms is not None for f in self._files.values() if f.rows):
            for f in self._files.values():
                if f.rows and f.run_id and f.first_ms is not None and f.last_ms is not None:
                    low, high = ranges.get(f.run_id, (f.first_ms, f.last_ms))
                    ranges[f.run_id] = (min(low, f.first_ms), max(high, f.last_ms))
            return ranges
        for run_id, low, high in self._query(
            "SELECT run_id, min(epoch_ms(time)), max(epoch_ms(time)) FROM metrics GROUP BY 1"
        ):
            ranges[str(run_id)] = (int(low), int(high))
        return ranges

    def _manifests(self) -> dict[str, dict[str, Any]]:
        found: dict[str, dict[str, Any]] = {}
        folder = self.directory / "_sessions"
        if not folder.is_dir():
            return found
        for path in sorted(folder.glob("*.json")):
            try:
                document = json.loads(path.read_bytes())
            except (OSError, ValueError):
                continue
            if isinstance(document, dict):
                found[str(document.get("run_id") or path.stem)] = document
        return found

    def runs(self) -> list[RunInfo]:
        """Every run, from its manifest and its data files, by start time."""
        with self._lock:
            manifests = self._manifests()
            ranges = self._run_ranges()
            per_run: dict[str, list[_FileInfo]] = {}
            for f in self._files.values():
                if f.run_id:
                    per_run.setdefault(f.run_id, []).append(f)
            found = []
            for run_id in sorted(set(manifests) | set(ranges)):
                manifest = manifests.get(run_id, {})
                files = per_run.get(run_id, [])
                first_last = ranges.get(run_id)
                nodes = [f.node_name for f in files if f.node_name]
                ticks = [f.tick_seconds for f in files if f.tick_seconds]
                reason = manifest.get("exit_reason") or manifest.get("reason")
                found.append(
                    RunInfo(
                        run_id=run_id,
                        node_name=manifest.get("node_name") or (nodes[0] if nodes else None),
                        cluster_name=manifest.get("cluster_name"),
                        start=_parse_iso(manifest.get("start_time")),
                        end=_parse_iso(manifest.get("end_time")),
                        exit_reason=str(reason) if reason else None,
                        files=len(files),
                        rows=sum(f.rows for f in files),
                        first_time=_utc(first_last[0]) if first_last else None,
                        last_time=_utc(first_last[1]) if first_last else None,
                        tick_seconds=ticks[0] if ticks else None,
                        finemon_version=manifest.get("finemon_version"),
                    )
                )
            epoch = datetime.min.replace(tzinfo=UTC)
            return sorted(found, key=lambda r: (r.start or r.first_time or epoch, r.run_id))

    def nodes(self) -> list[NodeInfo]:
        """Every node: from the containers' node names, the runs' manifests and the files."""
        with self._lock:
            containers = self._container_index()
            runs = self.runs()
            names: dict[str, dict[str, Any]] = {}

            def slot(name: str) -> dict[str, Any]:
                return names.setdefault(
                    name,
                    {"cluster": None, "first": None, "last": None, "keys": set(), "runs": set()},
                )

            for info in containers.values():
                entry = slot(info.node_name or "")
                entry["keys"].add(info.key)
                entry["cluster"] = entry["cluster"] or info.cluster_name
                entry["runs"].update(info.runs)
                for moment in (info.first_time, info.last_time):
                    entry["first"] = min(entry["first"] or moment, moment)
                    entry["last"] = max(entry["last"] or moment, moment)
            for run in runs:
                if run.first_time is None or run.last_time is None:
                    continue
                entry = slot(run.node_name or "")
                entry["cluster"] = entry["cluster"] or run.cluster_name
                entry["runs"].add(run.run_id)
                entry["first"] = min(entry["first"] or run.first_time, run.first_time)
                entry["last"] = max(entry["last"] or run.last_time, run.last_time)
            return [
                NodeInfo(
                    node_name=name,
                    cluster_name=entry["cluster"],
                    first_time=entry["first"],
                    last_time=entry["last"],
                    containers=len(entry["keys"]),
                    runs=len(entry["runs"]),
                )
                for name, entry in sorted(names.items())
                if entry["first"] is not None
            ]

    # -------------------------------------------------------------- containers
    def _container_index(self) -> dict[str, ContainerInfo]:
        if self._containers is not None:
            return self._containers
        labels = "namespace, pod_name, container_name, container_id, pod_uid, qos_class, " + (
            "node_name, cluster_name"
        )
        most_complete = ", ".join(f"max({name})" for name in labels.split(", "))
        # No column of the labels map is read: the cgroup label is the key of a container
        # without id (hosts that are not Kubernetes nodes).
        scan = f"""SELECT run_id, container_key, {most_complete},
                min(epoch_ms(time)), max(epoch_ms(time))
            FROM metrics WHERE container_key IS NOT NULL AND {{where}}
            GROUP BY run_id, container_key"""
        rows: list[tuple[Any, ...]] = []
        for metric in PRESENCE_METRICS:
            rows = self._query(scan.format(where="metric_name = $m"), {"m": metric})
            if rows:
                break
        if not rows:  # a capture without the usual metrics: any container metric will do
            rows = self._query(scan.format(where="starts_with(metric_name, 'container.')"))
        merged: dict[str, dict[str, Any]] = {}
        runs: list[tuple[str, str, int, int]] = []
        for run_id, key, *values, first, last in rows:
            runs.append((str(run_id), str(key), int(first), int(last)))
            entry = merged.setdefault(key, {"runs": set(), "first": first, "last": last})
            for name, value in zip(labels.split(", "), values, strict=True):
                if value is not None and entry.get(name) is None:
                    entry[name] = value
            entry["runs"].add(str(run_id))
            entry["first"] = min(entry["first"], first)
            entry["last"] = max(entry["last"], last)
        for key, entry in merged.items():
            if entry.get("container_id") is None and key != entry.get("pod_uid"):
                entry["cgroup"] = key
        display = self._display_names(merged)
        self._containers = {
            key: ContainerInfo(
                key=key,
                name=display[key].name,
                full_name=display[key].full_name,
                namespace=entry.get("namespace"),
                pod_name=entry.get("pod_name"),
                container_name=entry.get("container_name"),
                container_id=entry.get("container_id"),
                pod_uid=entry.get("pod_uid"),
                qos_class=entry.get("qos_class"),
                node_name=entry.get("node_name"),
                cluster_name=entry.get("cluster_name"),
                cgroup=entry.get("cgroup"),
                first_time=_utc(entry["first"]),
                last_time=_utc(entry["last"]),
                runs=tuple(sorted(entry["runs"])),
            )
            for key, entry in sorted(merged.items())
        }
        self._container_runs = runs
        return self._containers

    @staticmethod
    def _display_names(merged: Mapping[str, Mapping[str, Any]]) -> dict[str, ContainerName]:
        """The names of each container key (:func:`container_names`)."""
        keys = list(merged)
        labels = [
            ContainerLabels(
                key=key,
                namespace=merged[key].get("namespace"),
                pod_name=merged[key].get("pod_name"),
                container_name=merged[key].get("container_name"),
                container_id=merged[key].get("container_id"),
                cgroup=merged[key].get("cgroup"),
                first_ms=int(merged[key]["first"]),
            )
            for key in keys
        ]
        return dict(zip(keys, container_names(labels), strict=True))

    def containers(
        self,
        search: str = "",
        *,
        namespace: str | Sequence[str] | None = None,
        pod: str | Sequence[str] | None = None,
        qos: str | Sequence[str] | None = None,
        node: str | Sequence[str] | None = None,
    ) -> list[ContainerInfo]:
        """The containers, by name, whose names, labels, id or cgroup contain every word of
        ``search`` (case-insensitive), restricted to the given label values (each a value or a
        list of accepted values)."""
        with self._lock:
            index = self._container_index()
        words = [w.lower() for w in _WORD.findall(search)]
        filters = [
            (_choices(namespace), "namespace"),
            (_choices(pod), "pod_name"),
            (_choices(qos), "qos_class"),
            (_choices(node), "node_name"),
        ]
        found = []
        for info in index.values():
            if any(ok is not None and getattr(info, name) not in ok for ok, name in filters):
                continue
            texts = (info.name, info.full_name, info.container_id, info.cgroup, info.node_name,
                     info.pod_uid, info.qos_class, info.key)  # fmt: skip
            if _matches(words, texts):
                found.append(info)
        return sorted(found, key=lambda c: (c.full_name, c.first_time, c.key))

    def _key_filter(self, keys: Sequence[str]) -> str:
        """SQL true for the rows of containers ``keys``: ``container_id IN (...)`` where the
        key is a container id (DuckDB pushes that into the Parquet scan), ``container_key``
        otherwise."""
        index = self._container_index()
        ids = [k for k in keys if k in index and index[k].container_id == k]
        others = [k for k in keys if k not in ids]
        parts = []
        if ids:
            parts.append(f"container_id IN ({_keys_sql(ids)})")
        if others:
            parts.append(f"(container_id IS NULL AND container_key IN ({_keys_sql(others)}))")
        return "(" + " OR ".join(parts) + ")" if parts else "false"

    def container(self, key: str) -> ContainerInfo:
        """The container ``key``; raises :class:`AnalysisError` when there is none."""
        with self._lock:
            info = self._container_index().get(key)
        if info is None:
            raise AnalysisError(f"no container {key!r} in {self.directory}")
        return info

    # -------------------------------------------------------------- metrics
    def _describe(self, name: str) -> tuple[str | None, str | None]:
        for f in self._files.values():
            described = f.metrics.get(name)
            if described:
                unit, text = described.get("unit"), described.get("description")
                return (str(unit) if unit else None), (str(text) if text else None)
        return _catalogued(name)

    def metrics(self, search: str = "", container_keys: Sequence[str] = ()) -> list[MetricInfo]:
        """The metrics whose name or description contains every word of ``search``, by name;
        with ``container_keys``, only those some of these containers have (and their series
        counted among them only)."""
        with self._lock:
            if container_keys:
                listed = self._metric_rows(self._key_filter(container_keys))
            else:
                if self._metrics is None:
                    self._metrics = self._metric_rows("true")
                listed = self._metrics
        words = [w.lower() for w in _WORD.findall(search)]
        return [m for m in listed if _matches(words, (m.name, m.description))]

    def _metric_rows(self, where: str) -> list[MetricInfo]:
        rows = self._query(
            f"""SELECT metric_name, any_value(metric_kind), count(DISTINCT container_key),
                count(*) FILTER (WHERE container_key IS NULL) > 0
            FROM metrics WHERE {where} GROUP BY 1 ORDER BY 1"""
        )
        # Series are told apart by their labels only in metrics that have some: count those
        # (reading the labels map) for them alone.
        labelled = [str(row[0]) for row in rows if has_series_labels(str(row[0]))]
        series: dict[str, int] = {}
        if labelled:
            series = {
                str(name): int(count)
                for name, count in self._query(
                    f"""SELECT metric_name, count(*) FROM (
                        SELECT DISTINCT metric_name, container_key, labels FROM metrics
                        WHERE {where} AND metric_name IN ({_keys_sql(labelled)}))
                    GROUP BY 1"""
                )
            }
        found = []
        for name, kind, containers, node_wide in rows:
            unit, description = self._describe(str(name))
            count = series.get(str(name), int(containers) + int(bool(node_wide)))
            found.append(
                MetricInfo(str(name), str(kind or "gauge"), unit, description, count, containers)
            )
        return found

    def _kind(self, metric: str) -> str:
        if self._metrics is not None:
            for info in self._metrics:
                if info.name == metric:
                    return info.kind
        for f in self._files.values():
            described = f.metrics.get(metric)
            if described and described.get("kind") in ("gauge", "counter"):
                return str(described["kind"])
        rows = self._query(
            "SELECT any_value(metric_kind) FROM metrics WHERE metric_name = $m", {"m": metric}
        )
        return str(rows[0][0]) if rows and rows[0][0] else "gauge"

    # -------------------------------------------------------------- series
    def series(
        self,
        metric: str,
        container_keys: Sequence[str],
        start: datetime | None = None,
        end: datetime | None = None,
        max_points: int = DEFAULT_MAX_POINTS,
        process: bool = False,
    ) -> list[SeriesData]:
        """The series of ``metric`` for ``container_keys`` between ``start`` and ``end`` (the
        whole range by default), each at most ``max_points`` points.

        Time is cut into round buckets (at least ``(end - start) / max_points`` wide) and each
        bucket gives the mean, minimum and maximum of its values. A counter's values are first
        turned into per-second rates between consecutive rows of each series. Series within a
        container are split by their labels; for ``process.*`` metrics the processes' values
        are summed per tick unless ``process`` is true (one series per ``pid``/``comm`` then).
        Series are ordered as ``container_keys``, then by label. An unknown metric or container
        gives no series.
        """
        if max_points < 2:
            raise AnalysisError(f"max_points must be at least 2, got {max_points}")
        keys = list(dict.fromkeys(container_keys))
        if not keys:
            return []
        with self._lock:
            span = self._range_ms(start, end)
            if span is None:
                return []
            first_ms, last_ms = span
            width = bucket_ms(last_ms - first_ms, 1, max_points)
            # A counter's first rate in the range needs the row before it: read a bit earlier.
            tick_ms = round(3 * self._tick_seconds() * 1000)
            kind = self._kind(metric)
            counter = kind == "counter"
            aggregate = metric.startswith("process.") and not process
            rows = self._query(
                self._series_sql(
                    self._key_filter(keys),
                    has_series_labels(metric),
                    counter=counter,
                    aggregate=aggregate,
                ),
                {"m": metric, "w": width, "lo": first_ms, "hi": last_ms,
                 "lo_rows": first_ms - (max(width, tick_ms) if counter else 0)},
            )  # fmt: skip
            index = self._container_index()
            unit, _ = self._describe(metric)
        if counter:
            unit = f"{unit}/s" if unit else "/s"
        order = {key: i for i, key in enumerate(keys)}
        found = []
        for key, labels, times, means, lows, highs in rows:
            label_map = {
                str(k): str(v) for k, v in (labels or {}).items() if k not in _CONTAINER_LABELS
            }
            info = index.get(key)
            name = info.name if info else str(key)
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
                    bucket_seconds=width / 1000,
                    times=[t / 1000 for t in times],
                    values=[_finite(v) for v in means],
                    mins=[_finite(v) for v in lows],
                    maxs=[_finite(v) for v in highs],
                )
            )
        found.sort(key=lambda s: (order.get(s.container_key, len(order)), s.label))
        return found

    @staticmethod
    def _series_sql(keys: str, labelled: bool, *, counter: bool, aggregate: bool) -> str:
        """The downsampling query: ``$m`` metric, ``keys`` the containers' filter,
        ``labelled`` whether its series are told apart by labels, ``$w`` bucket ms,
        ``$lo``/``$hi`` range in epoch ms (``$lo_rows`` where rows are read from: a bit
        earlier for counters)."""
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

    def processes(
        self,
        container_key: str,
        start: datetime | None = None,
        end: datetime | None = None,
        max_points: int = DEFAULT_MAX_POINTS,
        top: int = 20,
    ) -> list[SeriesData]:
        """The PSS (``process.memory.pss_bytes``) of the container's processes, one series per
        process, the ``top`` with the highest PSS first."""
        found = self.series(PROCESS_PSS, [container_key], start, end, max_points, process=True)
        found.sort(key=lambda s: -max((v for v in s.maxs if v is not None), default=0.0))
        return found[:top]

    # -------------------------------------------------------------- markers
    def markers(
        self,
        container_keys: Sequence[str],
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> list[Marker]:
        """OOM kills (the ``container.memory.oom_kills`` counter going up, at the tick it was
        seen), container starts and stops (first or last tick of a container in a run, unless
        it is the run's own) of ``container_keys`` within the range, by time."""
        keys = list(dict.fromkeys(container_keys))
        if not keys:
            return []
        with self._lock:
            span = self._range_ms(start, end)
            if span is None:
                return []
            first_ms, last_ms = span
            self._container_index()
            assert self._container_runs is not None
            run_ranges = self._run_ranges()
            tolerance_ms = 1.5 * self._tick_seconds() * 1000
            # The counter's rows are read twice: first to find the containers whose counter
            # moved at all (rarely any), then, for those alone, the ticks where it went up.
            params = {"m": OOM_KILLS, "lo": first_ms, "hi": last_ms}
            where = f"""metric_name = $m AND {self._key_filter(keys)}
                AND time <= make_timestamp($hi * 1000)"""
            moved = [
                str(row[0])
                for row in self._query(
                    f"""SELECT container_key FROM metrics WHERE {where}
                    GROUP BY run_id, container_key HAVING min(value_int) < max(value_int)""",
                    {"m": OOM_KILLS, "hi": last_ms},
                )
            ]
            rows = []
            if moved:
                rows = self._query(
                    f"""SELECT container_key, ms, delta FROM (
                        SELECT container_key, epoch_ms(time) AS ms,
                            value_int - lag(value_int) OVER (
                                PARTITION BY {_partition_sql(OOM_KILLS)} ORDER BY time) AS delta
                        FROM metrics
                        WHERE metric_name = $m AND {self._key_filter(moved)}
                            AND time <= make_timestamp($hi * 1000))
                    WHERE delta > 0 AND ms >= $lo ORDER BY ms""",
                    params,
                )
            found = [
                Marker(ms / 1000, "oom", str(key), "OOM kill" if d == 1 else f"{d} OOM kills")
                for key, ms, d in rows
            ]
            wanted = set(keys)
            for run_id, key, first, last in self._container_runs:
                if key not in wanted:
                    continue
                run_first, run_last = run_ranges.get(run_id, (first, last))
                if first - run_first > tolerance_ms and first_ms <= first <= last_ms:
                    found.append(Marker(first / 1000, "start", key, "started"))
                if run_last - last > tolerance_ms and first_ms <= last <= last_ms:
                    found.append(Marker(last / 1000, "stop", key, "stopped"))
        order = {"start": 0, "oom": 1, "stop": 2}
        return sorted(found, key=lambda m: (m.time, order.get(m.kind, 3), m.container_key))

    # -------------------------------------------------------------- analysis
    def _study(
        self, metric: str, key: str, start: datetime | None, end: datetime | None
    ) -> MetricStudy | None:
        found = self.series(metric, [key], start, end, max_points=DEFAULT_MAX_POINTS)
        if not found:
            return None
        data = found[0]
        pairs = [(t, v) for t, v in zip(data.times, data.values, strict=True) if v is not None]
        if not pairs:
            return None
        highs = [h if h is not None else v for h, v in zip(data.maxs, data.values, strict=True)]
        top = max(range(len(highs)), key=lambda i: _or_lowest(highs[i]))
        times = [t for t, _ in pairs]
        means = [v for _, v in pairs]
        return MetricStudy(
            metric=metric,
            unit=data.unit,
            points=len(data.times),
            bucket_seconds=data.bucket_seconds,
            mean=sum(means) / len(means),
            max=float(highs[top] or 0.0),
            max_time=data.times[top],
            peaks=tuple(peaks(data.times, highs, 5)),
            changepoints=tuple(changepoints(times, means)),
            periodicity=periodicity(times, means),
        )

    def _increases(
        self, key: str, metrics: Sequence[str], first_ms: int, last_ms: int
    ) -> dict[str, float]:
        rows = self._query(
            f"""SELECT metric_name, sum(delta) FROM (
                SELECT metric_name, epoch_ms(time) AS ms,
                    coalesce(value_float, value_int::DOUBLE)
                        - lag(coalesce(value_float, value_int::DOUBLE))
                        OVER (PARTITION BY run_id, metric_name, container_key ORDER BY time)
                            AS delta
                FROM metrics
                WHERE metric_name IN ({_keys_sql(metrics)}) AND {self._key_filter([key])}
                    AND time >= make_timestamp($lo * 1000) AND time <= make_timestamp($hi * 1000))
            WHERE delta >= 0 GROUP BY 1""",
            {"lo": first_ms, "hi": last_ms},
        )
        return {str(name): float(total or 0) for name, total in rows}

    def _last_value(self, metric: str, key: str, first_ms: int, last_ms: int) -> float | None:
        rows = self._query(
            f"""SELECT max(coalesce(value_float, value_int::DOUBLE)) FROM metrics
            WHERE metric_name = $m AND {self._key_filter([key])}
                AND time >= make_timestamp($lo * 1000) AND time <= make_timestamp($hi * 1000)""",
            {"m": metric, "lo": first_ms, "hi": last_ms},
        )
        return _finite(rows[0][0]) if rows else None

    def analyze(
        self, container_key: str, start: datetime | None = None, end: datetime | None = None
    ) -> ContainerAnalysis:
        """Study one container over the range (default: its whole life): CPU (millicores) and
        working set (bytes) with their peaks, changepoints and periodicity, its limits (the
        highest seen), CPU throttling and OOM kills, and its markers.

        Raises :class:`AnalysisError` for an unknown container.
        """
        info = self.container(container_key)
        begin = _as_utc(start) if start else info.first_time
        finish = _as_utc(end) if end else info.last_time
        with self._lock:
            span = self._range_ms(begin, finish)
            assert span is not None
            first_ms, last_ms = span
            cpu = self._study(CPU_MILLICORES, container_key, begin, finish)
            memory = self._study(WORKING_SET, container_key, begin, finish)
            counters = self._increases(
                container_key, (CPU_PERIODS, THROTTLED_PERIODS, THROTTLED_USEC), first_ms, last_ms
            )
            cpu_limit = self._last_value(CPU_LIMIT, container_key, first_ms, last_ms)
            memory_limit = self._last_value(MEMORY_LIMIT, container_key, first_ms, last_ms)
            markers = tuple(self.markers([container_key], begin, finish))
        throttling = None
        if counters:
            periods = int(counters.get(CPU_PERIODS, 0))
            throttled = int(counters.get(THROTTLED_PERIODS, 0))
            throttling = Throttling(
                periods=periods,
                throttled_periods=throttled,
                throttled_ratio=throttled / periods if periods else None,
                throttled_seconds=counters.get(THROTTLED_USEC, 0.0) / 1e6,
            )
        ooms = sum(_oom_count(m.text) for m in markers if m.kind == "oom")
        notes = []
        if cpu is None:
            notes.append(f"no {CPU_MILLICORES} in the range")
        if memory is None:
            notes.append(f"no {WORKING_SET} in the range")
        return ContainerAnalysis(
            container=info,
            start=begin,
            end=finish,
            cpu=cpu,
            memory=memory,
            cpu_limit_millicores=cpu_limit,
            memory_limit_bytes=memory_limit,
            throttling=throttling,
            oom_kills=ooms,
            markers=markers,
            notes=tuple(notes),
        )

    # -------------------------------------------------------------- read-only SQL
    def _sql_connection(self) -> duckdb.DuckDBPyConnection:
        """A second connection for user SQL: the same views, bounded in memory, threads and
        spill (see ``SQL_*``), no file access beyond the dataset's folder, and its
        configuration locked so a query cannot undo any of that."""
        if self._sql_con is None:
            if self._sql_spill is None:
                self._sql_spill = tempfile.TemporaryDirectory(prefix="finemon-sql-")
            con = connect(self.directory)
            try:
                for setting in _sql_settings(self.directory.resolve(), Path(self._sql_spill.name)):
                    con.execute(setting)
            except BaseException:
                con.close()
                raise
            self._sql_con = con
        return self._sql_con

    def sql(
        self,
        query: str,
        *,
        limit: int = DEFAULT_SQL_LIMIT,
        timeout_seconds: float = DEFAULT_SQL_TIMEOUT_SECONDS,
        max_bytes: int = DEFAULT_SQL_RESULT_BYTES,
    ) -> QueryResult:
        """Run one read-only ``SELECT`` (or ``WITH ... SELECT``, ``VALUES``, ``FROM ...``)
        over the ``metrics`` and ``containers`` views and the ``rate``/``increase`` macros.

        Anything else (several statements, ``INSERT``, ``COPY``, ``ATTACH``, ``SET``,
        ``PRAGMA``, ``INSTALL``/``LOAD`` ...) raises :class:`RefusedQueryError`; the connection
        cannot read files outside the dataset's folder, nor change its settings. Comments
        (a final ``-- ...`` too) and a final ``;`` are fine.

        Bounds, each a one-line :class:`AnalysisError` when hit: at most ``limit`` rows are
        returned (``truncated`` tells whether there were more); a query running longer than
        ``timeout_seconds``, fetching included, is interrupted; the rows may weigh
        ``max_bytes`` as compact JSON: the result is streamed one row at a time and stops
        there, and a single value larger than that stops the query before it reaches
        Python; DuckDB may use ``SQL_MEMORY_LIMIT_BYTES`` of memory, ``SQL_THREADS`` threads
        and spill ``SQL_SPILL_LIMIT_BYTES`` to disk.
        """
        limit = max(0, min(int(limit), MAX_SQL_LIMIT))
        wrapped = self._wrapped_statement(query, limit + 1, max_bytes)
        with self._lock:
            con = self._sql_connection()
            began = time.monotonic()
            stop = threading.Event()
            interrupter = threading.Thread(
                target=_interrupt_from,
                args=(con, timeout_seconds, stop),
                name="finemon-sql-timeout",
                daemon=True,
            )
            interrupter.start()
            try:
                con.execute(wrapped)
                description = con.description or []
                rows, truncated = _bounded_rows(con, limit, max_bytes, began + timeout_seconds)
            except (self._duckdb.InterruptException, _PastDeadlineError):
                raise _timeout_error(timeout_seconds) from None
            except self._duckdb.OutOfMemoryException:
                raise AnalysisError(
                    f"the query needs more memory than it may use "
                    f"({_mib(SQL_MEMORY_LIMIT_BYTES)}, and {_mib(SQL_SPILL_LIMIT_BYTES)} "
                    "spilled to disk): filter or aggregate more, or select fewer columns"
                ) from None
            except self._duckdb.Error as exc:
                if _VALUE_TOO_LARGE in str(exc):
                    raise _too_large_error(max_bytes, "a single value is") from None
                raise AnalysisError(one_line(str(exc))) from None
            finally:
                # No interrupt may outlive this query (it would stop the next one).
                stop.set()
                interrupter.join()
                _drop_result(con)
            seconds = time.monotonic() - began
        return QueryResult(
            columns=tuple(str(d[0]) for d in description),
            types=tuple(str(d[1]) for d in description),
            rows=rows,
            truncated=truncated,
            seconds=seconds,
        )

    def _wrapped_statement(self, query: str, rows: int, max_value_bytes: int) -> str:
        """``query`` checked to be one read-only statement, limited to ``rows`` rows, and
        failing with ``_VALUE_TOO_LARGE`` on a value longer than ``max_value_bytes`` as text."""
        statement = _without_trailer(self._one_select(query), self._duckdb)
        # On lines of its own: a comment on its last line cannot swallow the wrapper. The check
        # sits above the limit, so it reads only the rows returned; COLUMNS(*) makes it one
        # check per column (a VARCHAR is measured without a copy).
        wrapped = (
            f"SELECT * FROM (SELECT * FROM (\n{statement}\n) AS q LIMIT {rows}) AS q\n"
            f"WHERE CASE WHEN strlen(CAST(COLUMNS(*) AS VARCHAR)) > {max_value_bytes}\n"
            f"THEN error({sql_string(_VALUE_TOO_LARGE)}) ELSE true END"
        )
        self._one_select(wrapped)
        return wrapped

    def _one_select(self, query: str) -> str:
        """The text of the one ``SELECT`` in ``query``, else :class:`RefusedQueryError`."""
        try:
            statements = self._duckdb.extract_statements(query)
        except self._duckdb.Error as exc:
            raise AnalysisError(one_line(str(exc))) from None
        if not statements:
            raise RefusedQueryError("no SQL statement in the query (only comments or ';')")
        if len(statements) != 1:
            raise RefusedQueryError(f"one SELECT statement only, got {len(statements)} statements")
        statement = statements[0]
        if statement.type != self._duckdb.StatementType.SELECT:
            kind = str(statement.type).rsplit(".", 1)[-1]
            raise RefusedQueryError(f"read-only: only SELECT queries run here, not {kind}")
        return str(statement.query)


def _sql_settings(dataset: Path, spill: Path) -> list[str]:
    """The statements that bound and lock the user-SQL connection, the lock last."""
    return [
        f"SET memory_limit = '{SQL_MEMORY_LIMIT_BYTES}B'",
        f"SET threads = {SQL_THREADS}",
        f"SET temp_directory = {sql_string(str(spill))}",
        f"SET max_temp_directory_size = '{SQL_SPILL_LIMIT_BYTES}B'",
        f"SET allowed_directories = [{sql_string(str(dataset))}]",
        "SET enable_external_access = false",
        "SET lock_configuration = true",
    ]


def _without_trailer(statement: str, duckdb_module: Any) -> str:
    """``statement`` without the comments and ``;`` that end it (by DuckDB's own tokenizer,
    so a ``;`` or ``--`` inside a string, a quoted name or a comment stays)."""
    comment = duckdb_module.token_type.comment
    operator = duckdb_module.token_type.operator
    text = statement.encode()  # the tokenizer's positions are offsets in UTF-8
    cut = len(text)
    for position, kind in reversed(duckdb_module.tokenize(statement)):
        if kind == comment or (kind == operator and text.startswith(b";", position)):
            cut = position
        else:
            break
    return text[:cut].decode().rstrip()


class _PastDeadlineError(Exception):
    """Rows were still being fetched when the query's time was up."""


def _interrupt_from(con: duckdb.DuckDBPyConnection, seconds: float, stop: threading.Event) -> None:
    """After ``seconds``, interrupt ``con`` again and again until ``stop`` is set: DuckDB looks
    for an interrupt between tasks and chunks, so one call that lands in between (while Python
    converts a row) must not be all there is."""
    if stop.wait(seconds):
        return
    while not stop.is_set():
        con.interrupt()
        stop.wait(_INTERRUPT_EVERY_SECONDS)


def _drop_result(con: duckdb.DuckDBPyConnection) -> None:
    """Let go of what is left of the result pending on ``con`` (and of the memory it holds):
    duckdb 2 has ``abort()`` for it (an unread result blocks the connection there); before,
    the next statement replaces it."""
    abort = getattr(con, "abort", None)
    if abort is not None:
        abort()
    else:
        con.execute("SELECT NULL")


def _bounded_rows(
    con: duckdb.DuckDBPyConnection, limit: int, max_bytes: int, deadline: float
) -> tuple[list[tuple[object, ...]], bool]:
    """Up to ``limit`` rows of the result pending on ``con`` and whether there are more.

    Fetched one at a time (a row costs microseconds), so no more is ever converted to Python
    than ``max_bytes`` and one row. Raises :class:`AnalysisError` when the rows weigh more
    than ``max_bytes`` as a compact JSON array, :class:`_PastDeadlineError` past
    ``deadline`` (a ``time.monotonic()`` value).
    """
    rows: list[tuple[object, ...]] = []
    total_bytes = 2  # the brackets of the JSON array
    while True:
        fetched = con.fetchmany(1)
        if time.monotonic() > deadline:
            raise _PastDeadlineError
        if not fetched:
            return rows, False
        if len(rows) == limit:
            return rows, True
        row = tuple(fetched[0])
        total_bytes += _json_bytes(row) + (1 if rows else 0)
        if total_bytes > max_bytes:
            raise _too_large_error(max_bytes, f"after {len(rows)} rows")
        rows.append(row)


def _json_bytes(row: tuple[object, ...]) -> int:
    """The size of ``row`` as compact JSON, in bytes (what JSON cannot hold counts as text)."""
    text = json.dumps(row, ensure_ascii=False, separators=(",", ":"), default=str, skipkeys=True)
    return len(text.encode())


def _mib(size_bytes: int) -> str:
    mib = size_bytes / (1024 * 1024)
    return f"{mib:g} MiB" if mib >= 1 else f"{size_bytes} bytes"


def _too_large_error(max_bytes: int, where: str) -> AnalysisError:
    return AnalysisError(
        f"the result is larger than {_mib(max_bytes)} of JSON ({where}): select fewer rows "
        "or columns, shorten long values, or aggregate"
    )


def _timeout_error(timeout_seconds: float) -> AnalysisError:
    return AnalysisError(f"the query ran longer than {timeout_seconds:g} s and was stopped")


def _or_lowest(value: float | None) -> float:
    return -math.inf if value is None else value


def _oom_count(text: str) -> int:
    head = text.split(" ", 1)[0]
    return int(head) if head.isdigit() else 1
