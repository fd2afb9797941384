"""The query layer's entry point: one :class:`Explorer` over a dataset.

An :class:`Explorer` answers the questions an interactive viewer or an agent asks of a finemon
output directory: which nodes, runs, containers and metrics it holds (:mod:`.index`, searched
by the one rule of :mod:`.search`), a metric's series for some containers downsampled to a
number of points (:mod:`.series`), the per-process PSS of a container, the OOM kills and
container starts and stops to mark on a chart (:mod:`.markers`), a study of one container
(peaks, throttling, OOM kills, changepoints, periodicity: :mod:`.analyze`) and read-only SQL
with limits (:mod:`.sql`).

Everything is computed by DuckDB over the Parquet files (the ``metrics`` view of
:func:`analysis.dataset.connect`); no table is loaded whole into Python. What can be read from
the files' footers (time range, runs, metric descriptions: :mod:`.files`) is, and the
container list (one scan of two metrics) is cached until :meth:`Explorer.refresh` sees new
files.

All text is returned raw (container and process names come from the monitored host): escaping
is the presenter's job. Times are UTC; in series and markers they are epoch seconds (floats).
Methods are safe to call from several threads (they take turns on one connection).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from analysis.dataset import connect, parquet_files
from analysis.errors import AnalysisError, one_line, require
from analysis.objects import DataObjects
from analysis.query import analyze as study
from analysis.query import files as footers
from analysis.query.analyze import ContainerAnalysis, MetricStudy
from analysis.query.dataset_index import DatasetIndex, open_local_index
from analysis.query.files import FileFooter
from analysis.query.index import (
    ContainerIndex,
    ContainerInfo,
    MetricInfo,
    NodeInfo,
    RunInfo,
    containers_from_summary,
    describe_metric,
    has_series_labels,
    index_containers,
    key_filter,
    list_metrics,
    list_nodes,
    list_runs,
    metric_kind,
    metrics_from_summary,
)
from analysis.query.labels import (
    LabelFilters,
    LabelValues,
    label_filter_sql,
    label_values_sql,
)
from analysis.query.markers import (
    Marker,
    PhaseMark,
    find_markers,
    find_phase_marks,
    marker_order,
    phase_markers,
)
from analysis.query.reported import (
    PAIRS,
    ReportedComparison,
    ReportedPair,
    compare_reported,
    pair_for,
    reported_containers_sql,
)
from analysis.query.search import Choice, search_containers, search_metrics
from analysis.query.series import (
    DEFAULT_MAX_POINTS,
    SeriesData,
    bucket_ms,
    series_from_rows,
    series_sql,
)
from analysis.query.sql import (
    DEFAULT_SQL_LIMIT,
    DEFAULT_SQL_RESULT_BYTES,
    DEFAULT_SQL_TIMEOUT_SECONDS,
    QueryResult,
    SqlSandbox,
)
from analysis.query.times import as_utc, to_epoch_ms, utc
from analysis.source import Source, as_source
from common.catalogue.container import CONTAINER_CPU_LIMIT_MILLICORES as CPU_LIMIT
from common.catalogue.container import CONTAINER_CPU_PERIODS as CPU_PERIODS
from common.catalogue.container import CONTAINER_CPU_THROTTLED_PERIODS as THROTTLED_PERIODS
from common.catalogue.container import CONTAINER_CPU_THROTTLED_USEC as THROTTLED_USEC
from common.catalogue.container import CONTAINER_CPU_USAGE_MILLICORES as CPU_MILLICORES
from common.catalogue.container import CONTAINER_MEMORY_LIMIT_BYTES as MEMORY_LIMIT
from common.catalogue.container import CONTAINER_MEMORY_WORKING_SET_BYTES as WORKING_SET
from common.catalogue.process import PROCESS_MEMORY_PSS_BYTES as PROCESS_PSS

if TYPE_CHECKING:
    import duckdb

log = logging.getLogger(__name__)
#: How often a bucket is listed again, at most (:meth:`Explorer.refresh`).
RELIST_SECONDS = 15.0


def _bytes_read(con: duckdb.DuckDBPyConnection) -> int:
    """Bytes the connection's last query read from its files, as DuckDB's profiler counts
    them (0 when this DuckDB does not say)."""
    try:
        profile = json.loads(con.get_profiling_information(format="json"))
        return int(profile.get("io", {}).get("total_bytes_read") or 0)
    except (AttributeError, TypeError, ValueError, RuntimeError):
        return 0  # an older DuckDB: no such count


class Explorer:
    """Questions to a finemon output directory (see the module's documentation).

    ``directory`` is a local folder, or a bucket (``s3://...`` or its
    :class:`analysis.source.Source`) read in place. Raises :class:`AnalysisError` when it
    holds no Parquet file, DuckDB cannot read them or the store fails,
    :class:`MissingExtraError` without duckdb. The answers come from the index beside the data
    where it can (``use_index``; a bucket's is kept in the bucket, :mod:`analysis.bucket_index`),
    else from the files' footers and rows.
    """

    def __init__(
        self,
        directory: Path | str | Source,
        *,
        relist_seconds: float = RELIST_SECONDS,
        use_index: bool = True,
    ) -> None:
        self.source = as_source(directory)
        #: The local folder, or the bucket's source.
        self.directory: Path | Source = self.source.local or self.source
        #: Whether the files' summaries answer (else every answer scans the rows).
        self.use_index = use_index
        self._duckdb = require("duckdb")
        self._lock = threading.RLock()
        self._files: dict[Path, FileFooter] = {}
        self._con: duckdb.DuckDBPyConnection | None = None
        self._objects: DataObjects | None = None
        self._relist_seconds = relist_seconds
        self._listed_at = time.monotonic()
        self._relisting = threading.Event()
        self._generation = 0
        #: The bucket's data objects the index was last brought in step with.
        self._seen_listing: tuple[Any, ...] = ()
        if self.source.local is None:
            self._objects = DataObjects(self.source)
            if not use_index:
                self._objects.refresh()
        self._sandbox = SqlSandbox(self.directory, self._container_names, self._objects)
        self._index: ContainerIndex | None = None
        self._metrics: list[MetricInfo] | None = None
        self._phase_marks: list[PhaseMark] | None = None
        self._closed = False
        #: The files' summaries (:mod:`.dataset_index`); the rows are read only for what they
        #: do not answer.
        self.dataset_index: DatasetIndex | None = None
        #: Files opened by the last series query, and how many bytes of them it read (the
        #: row groups of its metric, containers and time).
        self.last_read: tuple[int, int] = (0, 0)
        #: The connection over the files the last series query read (the next one often reads
        #: the same: a chart's other containers, a refresh).
        self._pruned: tuple[tuple[Path, ...], duckdb.DuckDBPyConnection] | None = None
        # The index lists the files itself.
        listed = self.source.local is not None and not self.use_index
        self._load(parquet_files(self.source.local) if listed and self.source.local else [])

    # -------------------------------------------------------------- files and connection
    def _load(self, paths: Sequence[Path], relisted: bool = False) -> None:
        root = self.source.local
        if root is not None:
            parquet_files(root)  # its errors: no data files
        if self._objects is not None and self.use_index and self._load_bucket_index(relisted):
            return
        if not self.use_index or root is None:
            if self._objects is not None and not self._objects.listed:
                self._objects.refresh()
            if self._objects is None:
                self._files = footers.read_footers(paths, self._files)
            else:
                self._files = self._objects.footers
                self._generation = self._objects.generation
            self._reconnect()
            self._sandbox.reset()
            self._index = None
            self._metrics = None
            self._phase_marks = None
            return
        index = open_local_index(root)
        if index.stats.unreadable:
            # What connect() says of them (a warning naming them, or an error for a file a
            # compaction replaced since the listing).
            self._reconnect()
        shared = dict(index.descriptions)
        files = {
            root / f.path: _indexed_footer(f, root / f.path, shared) for f in index.files.values()
        }
        for relative, _problem in index.stats.unreadable:
            # Known by their signature, so that refresh() does not see them as new each time.
            path = root / relative
            try:
                files[path] = FileFooter(
                    path, footers.signature(path), None, None, None, 0, None, None, {}
                )
            except OSError:
                continue
        if self._con is not None and not index.stats.unreadable:
            self._con.close()
            self._con = None
        self._sandbox.reset()
        if self._pruned is not None:  # its files may have changed
            self._pruned[1].close()
            self._pruned = None
        self.dataset_index = index
        self._files = files
        self._index = None
        self._metrics = None
        self._phase_marks = None

    def _load_bucket_index(self, relisted: bool) -> bool:
        """Answer from the bucket's index (listed again unless ``relisted`` just did); False
        when an object is outside it (not Parquet, say): every footer is read then, and the
        readers say what they say of it."""
        objects = self._objects
        assert objects is not None
        index = objects.index if relisted and objects.index is not None else objects.open_index()
        if index.stats.unreadable:
            self.use_index = False
            return False
        root = self.source.root
        shared = dict(index.descriptions)
        files = {}
        for f in index.files.values():
            path = Path(f"{root}/{f.path}" if root else f.path)
            files[path] = _indexed_footer(f, path, shared)
        if self._con is not None:
            self._con.close()
            self._con = None
        self._sandbox.reset()
        if self._pruned is not None:
            self._pruned[1].close()
            self._pruned = None
        self.dataset_index = index
        self._files = files
        self._seen_listing = objects.listing.data
        self._index = None
        self._metrics = None
        self._phase_marks = None
        return True

    def _reconnect(self) -> None:
        if self._objects is None:
            con = connect(self.directory)
        else:
            con = connect(self.source, objects=self._objects)
        if self._con is not None:
            self._con.close()
        self._con = con

    def _query(self, sql: str, params: Mapping[str, object] | None = None) -> list[tuple[Any, ...]]:
        if self._closed:
            raise AnalysisError("the explorer was closed")
        if self._con is None:
            self._reconnect()  # every file: for what the index does not answer
        assert self._con is not None
        try:
            return self._con.execute(sql, params or {}).fetchall()
        except self._duckdb.Error as exc:
            raise AnalysisError(one_line(str(exc))) from None

    def _summary(self) -> dict[str, Any] | None:
        index = self.dataset_index
        return None if index is None else index.summary

    def _files_for(
        self, keys: Sequence[str | None], metric: str, first_ms: int, last_ms: int
    ) -> list[Path]:
        """The files that may hold rows of ``metric`` for ``keys`` (None: its node-wide rows)
        in [first_ms, last_ms], by their summaries (a file without a time range is kept)."""
        index = self.dataset_index
        assert index is not None
        wanted = set(keys)
        root = self.source.local
        if root is None:
            prefix = f"{self.source.root}/" if self.source.root else ""
            return sorted(
                Path(prefix + f.path)
                for f in index.files.values()
                if f.rows
                and metric in f.metrics
                and wanted & f.keys
                and (f.first_ms is None or f.first_ms <= last_ms)
                and (f.last_ms is None or f.last_ms >= first_ms)
            )
        return sorted(
            root / f.path
            for f in index.files.values()
            if f.rows
            and metric in f.metrics
            and wanted & f.keys
            and (f.first_ms is None or f.first_ms <= last_ms)
            and (f.last_ms is None or f.last_ms >= first_ms)
        )

    def close(self) -> None:
        """Close the DuckDB connections; the explorer is unusable afterwards."""
        with self._lock:
            if self._con is not None:
                self._con.close()
            self._con = None
            if self._pruned is not None:
                self._pruned[1].close()
                self._pruned = None
            self._closed = True
            self._sandbox.close()

    def __enter__(self) -> Explorer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def refresh(self) -> bool:
        """Pick up files published (or removed) since the last look; True if anything changed.

        A live viewer calls it every few seconds: when nothing changed it only lists the
        directory and stats the files. A bucket is listed again in the background, at most
        every ``relist_seconds`` (a LIST of the prefix, then the footers of new objects), and
        what that found is picked up by the next call; a store that fails then is logged,
        and what was found before stays.
        """
        with self._lock:
            if self._objects is not None:
                self._start_relist()
                if self.dataset_index is not None and self.use_index:
                    if self._objects.listing.data == self._seen_listing:
                        return False
                    self._load([], relisted=True)
                    return True
                if self._objects.generation == self._generation:
                    return False
                self._load([])
                return True
            current = footers.current_signatures(self.source.local or Path())
            known = {path: info.signature for path, info in self._files.items()}
            if current == known or not current:
                return False
            self._load(sorted(current))
            return True

    def _start_relist(self) -> None:
        due = time.monotonic() - self._listed_at >= self._relist_seconds
        if not due or self._relisting.is_set():
            return
        self._relisting.set()
        threading.Thread(target=self._relist, name="finemon-relist", daemon=True).start()

    def _relist(self) -> None:
        assert self._objects is not None
        try:
            if self.dataset_index is not None and self.use_index:
                self._objects.open_index()
                if self._objects.listed:  # its footers serve SQL: kept in step too
                    self._objects.refresh()
            else:
                self._objects.refresh()
        except AnalysisError as exc:
            log.warning("%s", exc)
        finally:
            self._listed_at = time.monotonic()
            self._relisting.clear()

    # -------------------------------------------------------------- ranges, runs, nodes
    def time_range(self) -> tuple[datetime, datetime] | None:
        """The first and last tick of the dataset (UTC), None when it holds no rows."""
        with self._lock:
            span = footers.time_range_ms(self._files)
            if span is not None:
                return utc(span[0]), utc(span[1])
            rows = self._query("SELECT min(epoch_ms(time)), max(epoch_ms(time)) FROM metrics")
            if not rows or rows[0][0] is None:
                return None
            return utc(rows[0][0]), utc(rows[0][1])

    def _range_ms(self, start: datetime | None, end: datetime | None) -> tuple[int, int] | None:
        whole = self.time_range()
        if whole is None:
            return None
        first = to_epoch_ms(start or whole[0])
        last = to_epoch_ms(end or whole[1])
        if last < first:
            raise AnalysisError(f"the range ends before it starts: {start} to {end}")
        return first, last

    def _run_ranges(self) -> dict[str, tuple[int, int]]:
        """Each run's first and last tick in the data (epoch ms), from the footers."""
        ranges = footers.run_ranges_ms(self._files)
        if ranges is not None:
            return ranges
        return {
            str(run_id): (int(low), int(high))
            for run_id, low, high in self._query(
                "SELECT run_id, min(epoch_ms(time)), max(epoch_ms(time)) FROM metrics GROUP BY 1"
            )
        }

    def manifests(self) -> dict[str, dict[str, Any]]:
        """The runs' manifests (``_sessions/RUN.json``) by run id: a folder's, or those of a
        bucket's last listing."""
        return footers.read_manifests(self.source.local, self._objects)

    def runs(self) -> list[RunInfo]:
        """Every run, from its manifest and its data files, by start time."""
        with self._lock:
            return list_runs(self.manifests(), self._files, self._run_ranges())

    def nodes(self) -> list[NodeInfo]:
        """Every node: from the containers' node names, the runs' manifests and the files."""
        with self._lock:
            return list_nodes(self._container_index().containers.values(), self.runs())

    # -------------------------------------------------------------- containers
    def _container_index(self) -> ContainerIndex:
        if self._index is None:
            summary = self._summary()
            if summary is not None:
                self._index = containers_from_summary(summary)
            else:
                self._index = index_containers(self._query)
        return self._index

    def containers(
        self,
        search: str = "",
        *,
        namespace: Choice = None,
        pod: Choice = None,
        qos: Choice = None,
        node: Choice = None,
    ) -> list[ContainerInfo]:
        """The containers, by name, matching every word of ``search`` (the one rule of
        :func:`analysis.query.search.search_containers`), restricted to the given label values
        (each a value or a list of accepted values)."""
        with self._lock:
            index = self._container_index()
        return search_containers(
            index.containers.values(), search, namespace=namespace, pod=pod, qos=qos, node=node
        )

    def _container_names(self) -> list[tuple[str, str, str]]:
        """(key, name, full name) of every container, for the SQL ``containers`` view."""
        with self._lock:
            index = self._container_index()
        return [(info.key, info.name, info.full_name) for info in index.containers.values()]

    def _key_filter(self, keys: Sequence[str]) -> str:
        return key_filter(self._container_index().containers, keys)

    def container(self, key: str) -> ContainerInfo:
        """The container ``key``; raises :class:`AnalysisError` when there is none."""
        with self._lock:
            info = self._container_index().containers.get(key)
        if info is None:
            raise AnalysisError(f"no container {key!r} in {self.directory}")
        return info

    # -------------------------------------------------------------- metrics
    def metrics(self, search: str = "", container_keys: Sequence[str] = ()) -> list[MetricInfo]:
        """The metrics whose name or description contains every word of ``search``
        (:func:`analysis.query.search.search_metrics`), by name; with ``container_keys``, only
        those some of these containers have (and their series counted among them only)."""
        with self._lock:
            summary = self._summary()
            if container_keys:
                if summary is not None:
                    listed = metrics_from_summary(summary, self._files, container_keys)
                else:
                    where = self._key_filter(container_keys)
                    listed = list_metrics(self._query, self._files, where)
            else:
                if self._metrics is None:
                    self._metrics = (
                        metrics_from_summary(summary, self._files)
                        if summary is not None
                        else list_metrics(self._query, self._files, "true")
                    )
                listed = self._metrics
        return search_metrics(listed, search)

    # -------------------------------------------------------------- series
    def series(
        self,
        metric: str,
        container_keys: Sequence[str],
        start: datetime | None = None,
        end: datetime | None = None,
        max_points: int = DEFAULT_MAX_POINTS,
        process: bool = False,
        *,
        labels: LabelFilters | None = None,
        node_wide: bool = False,
    ) -> list[SeriesData]:
        """The series of ``metric`` for ``container_keys`` between ``start`` and ``end`` (the
        whole range by default), each at most ``max_points`` points; with ``node_wide``, also
        its series of no container (``container_key`` empty: a ``target.*`` metric of the
        agent's own, a daemon's); only those whose labels pass ``labels``
        (:mod:`analysis.query.labels`).

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
        if not keys and not node_wide:
            return []
        with self._lock:
            span = self._range_ms(start, end)
            if span is None:
                return []
            first_ms, last_ms = span
            rows_filter = self._key_filter(keys)
            if node_wide:
                rows_filter = f"({rows_filter} OR container_key IS NULL)"
            if labels:
                rows_filter = f"({rows_filter} AND {label_filter_sql(labels)})"
            width = bucket_ms(last_ms - first_ms, 1, max_points)
            # A counter's first rate in the range needs the row before it: read a bit earlier.
            tick_ms = round(3 * footers.tick_seconds(self._files) * 1000)
            counter = self._kind(metric) == "counter"
            aggregate = metric.startswith("process.") and not process
            lo_rows = first_ms - (max(width, tick_ms) if counter else 0)
            sql = series_sql(
                rows_filter, has_series_labels(metric), counter=counter, aggregate=aggregate,
            )  # fmt: skip
            params = {"m": metric, "w": width, "lo": first_ms, "hi": last_ms, "lo_rows": lo_rows}
            wanted: list[str | None] = [*keys, *([None] if node_wide else [])]
            rows = self._series_rows(sql, params, wanted, metric, lo_rows, last_ms)
            containers = self._container_index().containers
            unit, _ = describe_metric(self._files, metric)
        return series_from_rows(
            rows,
            metric=metric,
            keys=keys,
            containers=containers,
            counter=counter,
            unit=unit,
            width_ms=width,
        )

    def _kind(self, metric: str) -> str:
        summary = self._summary()
        if summary is not None and metric in summary.get("metrics", {}):
            return str(summary["metrics"][metric])
        return metric_kind(self._query, self._files, self._metrics, metric)

    def _series_rows(
        self,
        sql: str,
        params: Mapping[str, object],
        keys: Sequence[str | None],
        metric: str,
        first_ms: int,
        last_ms: int,
    ) -> list[tuple[Any, ...]]:
        """Rows of a series query read from the files that may hold them alone (their
        summaries say which), else over the whole dataset."""
        if self.dataset_index is None or self._summary() is None:
            return self._query(sql, params)
        files = self._files_for(keys, metric, first_ms, last_ms)
        if not files:
            self.last_read = (0, 0)
            return []
        selected = tuple(files)
        if self._pruned is None or self._pruned[0] != selected:
            if self._pruned is not None:
                self._pruned[1].close()
                self._pruned = None
            if self._objects is not None:
                chosen = self._objects.subset(str(f) for f in files)
                con = connect(self.source, objects=chosen)
            else:
                con = connect(self.directory, files=files)
            con.execute("PRAGMA enable_profiling = 'no_output'")
            self._pruned = (selected, con)
        con = self._pruned[1]
        try:
            found = con.execute(sql, dict(params)).fetchall()
        except self._duckdb.Error as exc:
            raise AnalysisError(one_line(str(exc))) from None
        self.last_read = (len(files), _bytes_read(con))
        return found

    def label_values(
        self, metric: str, container_keys: Sequence[str] = (), *, node_wide: bool = False
    ) -> list[LabelValues]:
        """The label keys of ``metric``'s series of ``container_keys`` (and, with
        ``node_wide``, of its series of no container), each with its values: what a label
        filter can take (:mod:`analysis.query.labels`)."""
        keys = list(dict.fromkeys(container_keys))
        if not keys and not node_wide:
            return []
        with self._lock:
            rows_filter = self._key_filter(keys)
            if node_wide:
                rows_filter = f"({rows_filter} OR container_key IS NULL)"
            rows = self._query(
                label_values_sql(f"metric_name = $m AND {rows_filter}"), {"m": metric}
            )
        return [LabelValues(str(k), tuple(str(v) for v in values), int(n)) for k, values, n in rows]

    # -------------------------------------------------------------- reported vs observed
    def reported_vs_observed(
        self,
        container_key: str,
        reported: str = PAIRS[0].reported,
        observed: Sequence[str] | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
        max_points: int = 200,
    ) -> ReportedComparison:
        """What the agent reported about the container (``reported``, a ``target.*`` metric)
        beside finemon's ``observed`` metrics for it (by default those
        :data:`analysis.query.reported.PAIRS` pairs it with), in at most ``max_points``
        buckets (:func:`analysis.query.reported.compare_reported`). Raises
        :class:`AnalysisError` for a bad pair or when the container has no such report."""
        if max_points < 2:
            raise AnalysisError(f"max_points must be at least 2, got {max_points}")
        pair = pair_for(reported, observed)
        with self._lock:
            return compare_reported(
                self._query,
                container_key,
                self._key_filter([container_key]),
                pair,
                start_ms=to_epoch_ms(start) if start else None,
                end_ms=to_epoch_ms(end) if end else None,
                max_points=max_points,
            )

    def reported_pairs(self) -> dict[str, list[ReportedPair]]:
        """By container key, the :data:`~analysis.query.reported.PAIRS` whose reported metric
        the agent sent about that container (none asked of the files unless the dataset has
        such a metric)."""
        known = {m.name for m in self.metrics()}
        wanted = [pair.reported for pair in PAIRS if pair.reported in known]
        if not wanted:
            return {}
        with self._lock:
            rows = self._query(reported_containers_sql(wanted), None)
        has = {(str(key), str(name)) for key, name in rows}
        return {
            key: [pair for pair in PAIRS if (key, pair.reported) in has]
            for key in sorted({key for key, _ in has})
        }

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
        *,
        phases: bool = True,
    ) -> list[Marker]:
        """OOM kills (the ``container.memory.oom_kills`` counter going up, at the tick it was
        seen), container starts and stops (first or last tick of a container in a run, unless
        it is the run's own) of ``container_keys`` within the range, and (unless ``phases`` is
        false) the runs' phase marks (kind ``phase``, whatever the containers), by time."""
        keys = list(dict.fromkeys(container_keys))
        with self._lock:
            span = self._range_ms(start, end)
            if span is None:
                return []
            found = phase_markers(self.phase_marks(), *span) if phases else []
            if keys:
                found += find_markers(
                    self._query,
                    self._container_index(),
                    keys,
                    *span,
                    run_ranges=self._run_ranges(),
                    tick_seconds=footers.tick_seconds(self._files),
                )
        return sorted(found, key=marker_order)

    def phase_marks(self) -> list[PhaseMark]:
        """Every run's phase marks (``finemon mark``), by time: from the ``finemon.phase``
        series, and the manifests' ``phases`` the files lack
        (:func:`analysis.query.markers.find_phase_marks`); kept until new files land."""
        with self._lock:
            if self._phase_marks is None:
                self._phase_marks = find_phase_marks(self._query, self.manifests())
            return self._phase_marks

    # -------------------------------------------------------------- analysis
    def _study(
        self, metric: str, key: str, start: datetime | None, end: datetime | None
    ) -> MetricStudy | None:
        found = self.series(metric, [key], start, end, max_points=DEFAULT_MAX_POINTS)
        return study.study(found[0]) if found else None

    def analyze(
        self, container_key: str, start: datetime | None = None, end: datetime | None = None
    ) -> ContainerAnalysis:
        """Study one container over the range (default: its whole life): CPU (millicores) and
        working set (bytes) with their peaks, changepoints and periodicity, its limits (the
        highest seen), CPU throttling and OOM kills, and its markers.

        Raises :class:`AnalysisError` for an unknown container.
        """
        info = self.container(container_key)
        begin = as_utc(start) if start else info.first_time
        finish = as_utc(end) if end else info.last_time
        with self._lock:
            span = self._range_ms(begin, finish)
            assert span is not None
            first_ms, last_ms = span
            keys = self._key_filter([container_key])
            cpu = self._study(CPU_MILLICORES, container_key, begin, finish)
            memory = self._study(WORKING_SET, container_key, begin, finish)
            counters = study.increases(
                self._query, keys, (CPU_PERIODS, THROTTLED_PERIODS, THROTTLED_USEC),
                first_ms, last_ms,
            )  # fmt: skip
            cpu_limit = study.highest(self._query, CPU_LIMIT, keys, first_ms, last_ms)
            memory_limit = study.highest(self._query, MEMORY_LIMIT, keys, first_ms, last_ms)
            markers = tuple(self.markers([container_key], begin, finish))
        ooms = sum(m.count for m in markers if m.kind == "oom")
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
            throttling=study.throttling(counters),
            oom_kills=ooms,
            markers=markers,
            notes=tuple(notes),
        )

    # -------------------------------------------------------------- read-only SQL
    def sql(
        self,
        query: str,
        *,
        limit: int = DEFAULT_SQL_LIMIT,
        timeout_seconds: float = DEFAULT_SQL_TIMEOUT_SECONDS,
        max_bytes: int = DEFAULT_SQL_RESULT_BYTES,
    ) -> QueryResult:
        """Run one read-only ``SELECT`` in the sandbox (:meth:`analysis.query.sql.SqlSandbox.run`
        says what runs, its bounds and its errors)."""
        with self._lock:
            return self._sandbox.run(
                query, limit=limit, timeout_seconds=timeout_seconds, max_bytes=max_bytes
            )


def _indexed_footer(entry: Any, path: Path, metrics: dict[str, Any]) -> FileFooter:
    """The :class:`FileFooter` of an index entry (its summary, no footer read) at ``path``;
    ``metrics`` the descriptions the index shares between its files."""
    return FileFooter(
        path=path,
        signature=(int(entry.signature[0]), int(entry.signature[1])),
        run_id=entry.run_ids[0] if len(entry.run_ids) == 1 else None,
        node_name=entry.node_name,
        tick_seconds=entry.tick_seconds,
        rows=entry.rows,
        first_ms=entry.first_ms,
        last_ms=entry.last_ms,
        metrics=metrics,
    )
