"""``finemon report``: one self-contained, offline HTML file of interactive time-series charts.

The page inlines plotly.js (from the ``plotly`` package of the ``analysis`` extra) and the data,
so it opens from a file with no network. Charts: CPU (usage and limit, millicores), memory
(working set, usage and limit, MiB), PSS of the top processes of each container (MiB), CPU
throttling (ms throttled per second) and pressure stall (PSI ``some`` avg10, %, CPU, memory or
I/O), with OOM kills, container starts and stops, finemon runs and their phases (``finemon
mark``) marked on every chart and
listed in a table (click a row to zoom to the two minutes around it). Zooming one chart zooms
them all; the side list picks the containers drawn.

Downsampling happens in DuckDB on the way in: time is cut into equal buckets (a round width, at
least one tick, chosen so the whole range fits in ``max_points`` buckets) and each series keeps
one value per bucket: the mean for CPU, PSI and throttling rates, the maximum for memory and
limits (so peaks survive). Every series therefore has at most ``max_points`` values, whatever
the length of the recording; only the ``top_processes`` processes with the highest PSS of each
container are kept. The file is plotly.js (its size: docs/benchmarks.md) plus the data.
"""

from __future__ import annotations

import html
import json
import math
import time
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from analysis.dataset import CONTAINER_ROWS, connect, container_names_of, label_sql
from analysis.errors import AnalysisError, one_line, require
from analysis.query.files import read_manifests
from analysis.query.index import index_containers
from analysis.query.markers import find_markers, find_phase_marks, phase_markers
from analysis.query.names import ContainerLabels, ContainerName, full_name
from analysis.query.series import bucket_ms
from analysis.report_page import PAGE_SCRIPT, PAGE_STYLE
from common.catalogue import container as metrics
from common.catalogue.container import CONTAINER_CPU_THROTTLED_USEC as THROTTLED_USEC
from common.catalogue.process import PROCESS_MEMORY_PSS_BYTES as PROCESS_PSS

if TYPE_CHECKING:
    import duckdb

#: Default bound on the values kept per series of the report: fewer than a chart's
#: (analysis.query.series.DEFAULT_MAX_POINTS), since every series of every container is inlined
#: in one page.
REPORT_MAX_POINTS = 400
#: Default number of processes per container in the PSS chart.
DEFAULT_TOP_PROCESSES = 5
#: Containers selected when the page opens (the busiest by CPU and memory, and the OOM-killed).
DEFAULT_SELECTION = 8
#: Start and stop markers kept (OOM kills are always kept).
MAX_LIFECYCLE_EVENTS = 2000

_MIB = 1024.0 * 1024.0


@dataclass(frozen=True, slots=True)
class GaugeSeries:
    """A gauge drawn per container: chart, trace role, aggregate per bucket, scale, decimals,
    and the gap (in ticks) past which the line breaks."""

    metric: str
    chart: str
    role: str
    aggregate: str
    scale: float
    digits: int
    gap_ticks: int = 5


#: The container gauges of the report.
GAUGES = (
    GaugeSeries(metrics.CONTAINER_CPU_USAGE_MILLICORES, "cpu", "usage", "avg", 1.0, 1),
    GaugeSeries(
        metrics.CONTAINER_CPU_LIMIT_MILLICORES, "cpu", "limit", "max", 1.0, 1, gap_ticks=25
    ),
    GaugeSeries(
        metrics.CONTAINER_MEMORY_WORKING_SET_BYTES, "memory", "working set", "max", _MIB, 2
    ),
    GaugeSeries(metrics.CONTAINER_MEMORY_USAGE_BYTES, "memory", "usage", "max", _MIB, 2),
    GaugeSeries(
        metrics.CONTAINER_MEMORY_LIMIT_BYTES, "memory", "limit", "max", _MIB, 2, gap_ticks=25
    ),
    *(
        GaugeSeries(
            metrics.container_psi_avg10_percent(resource, "some"), "psi", resource, "avg", 1.0, 2
        )
        for resource in ("cpu", "memory", "io")
    ),
)


@dataclass(frozen=True, slots=True)
class ReportResult:
    """What :func:`write_report` wrote: the file, its size, the data it holds and its cost."""

    path: Path
    size_bytes: int
    data_bytes: int
    containers: int
    series: int
    max_values_per_series: int
    bucket_seconds: float
    events: int
    seconds: float


def _tick_ms(con: duckdb.DuckDBPyConnection) -> int:
    # fetch_index counts ticks from the run's first tick and time is the tick's start, so each
    # run's tick is its time span over its index span.
    row = con.execute(
        """SELECT min(tick) FROM (
            SELECT (max(epoch_ms(time)) - min(epoch_ms(time)))
                / nullif(max(fetch_index) - min(fetch_index), 0) AS tick
            FROM metrics GROUP BY run_id)"""
    ).fetchone()
    return max(1, round(row[0])) if row and row[0] else 1000


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def _dense(buckets: list[int], values: list[float | None]) -> tuple[int, list[float | None]]:
    """(first bucket, one value per bucket from the first to the last, None where missing)."""
    start = buckets[0]
    dense: list[float | None] = [None] * (buckets[-1] - start + 1)
    for bucket, value in zip(buckets, values, strict=True):
        dense[bucket - start] = _finite(value)
    return start, dense


class _ReportBuilder:
    """Runs the report's queries on ``con`` and assembles the page's data."""

    def __init__(
        self,
        con: duckdb.DuckDBPyConnection,
        max_points: int,
        top: int,
        manifests: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> None:
        self.con = con
        self.manifests = manifests or {}
        self.max_points = max_points
        self.top = top
        self.containers: dict[tuple[str, str], int] = {}
        self.series: list[dict[str, Any]] = []
        first, last = con.execute(
            "SELECT min(epoch_ms(time)), max(epoch_ms(time)) FROM metrics"
        ).fetchone() or (None, None)
        if first is None or last is None:
            raise AnalysisError("the dataset has no rows")
        self.first_ms, self.last_ms = int(first), int(last)
        self.tick_ms = _tick_ms(con)
        self.bucket_ms = bucket_ms(self.last_ms - self.first_ms, self.tick_ms, max_points)
        self.t0 = self.first_ms // self.bucket_ms * self.bucket_ms
        self.params = {"t0": self.t0, "bucket": self.bucket_ms}
        # The container table reads it twice (labels, names): scan the container rows once.
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE report_containers AS SELECT * FROM {CONTAINER_ROWS}"
        )

    def _bucket_sql(self) -> str:
        return "(epoch_ms(time) - $t0) // $bucket"

    def _gap_ms(self, ticks: int) -> int:
        return max(int(2.5 * self.bucket_ms), ticks * self.tick_ms)

    def _add(self, node: str, key: str, fields: dict[str, Any], buckets: list[int],
             values: list[float | None]) -> None:  # fmt: skip
        if not buckets:
            return
        index = self.containers.setdefault((node, key), len(self.containers))
        start, dense = _dense(buckets, values)
        self.series.append({**fields, "c": index, "start": start, "values": dense})

    def gauges(self) -> None:
        names = ", ".join(f"'{g.metric}'" for g in GAUGES)
        by_metric = {g.metric: g for g in GAUGES}
        aggregate = " ".join(
            f"WHEN '{g.metric}' THEN round({g.aggregate}(value_float) / {g.scale}, {g.digits})"
            for g in GAUGES
        )
        rows = self.con.execute(
            f"""SELECT node, container_key, metric_name, list(b ORDER BY b), list(v ORDER BY b)
            FROM (
                SELECT coalesce(node_name, '') AS node, container_key, metric_name,
                    {self._bucket_sql()} AS b, CASE metric_name {aggregate} END AS v
                FROM metrics
                WHERE metric_name IN ({names}) AND container_key IS NOT NULL
                    AND value_float IS NOT NULL
                GROUP BY 1, 2, 3, 4)
            GROUP BY ALL ORDER BY ALL""",
            self.params,
        ).fetchall()
        for node, key, metric, buckets, values in rows:
            gauge = by_metric[metric]
            fields = {
                "chart": gauge.chart,
                "role": gauge.role,
                "gap": self._gap_ms(gauge.gap_ticks),
            }
            self._add(node, key, fields, buckets, values)

    def throttling(self) -> None:
        rows = self.con.execute(
            f"""SELECT node, container_key, list(b ORDER BY b), list(v ORDER BY b)
            FROM (
                SELECT coalesce(node_name, '') AS node, container_key, {self._bucket_sql()} AS b,
                    round(sum(delta) / sum(seconds) / 1000.0, 2) AS v
                FROM _rate('{THROTTLED_USEC}')
                WHERE container_key IS NOT NULL AND delta IS NOT NULL AND seconds > 0
                GROUP BY ALL)
            GROUP BY ALL ORDER BY ALL""",
            self.params,
        ).fetchall()
        for node, key, buckets, values in rows:
            fields = {"chart": "throttling", "role": "throttled", "gap": self._gap_ms(5)}
            self._add(node, key, fields, buckets, values)

    def processes(self) -> None:
        pid, comm = label_sql("pid"), label_sql("comm")
        rows = self.con.execute(
            f"""WITH pss AS (
                SELECT coalesce(node_name, '') AS node, container_key, {pid} AS pid,
                    {comm} AS comm, {self._bucket_sql()} AS b, max(value_float) AS v
                FROM metrics
                WHERE metric_name = '{PROCESS_PSS}' AND container_key IS NOT NULL
                    AND value_float IS NOT NULL
                GROUP BY ALL),
            top AS (
                SELECT node, container_key, pid, comm, max(v) AS peak FROM pss
                GROUP BY node, container_key, pid, comm
                QUALIFY row_number() OVER (
                    PARTITION BY node, container_key ORDER BY peak DESC, pid, comm) <= $top)
            SELECT node, container_key, pid, comm, list(b ORDER BY b),
                list(round(v / {_MIB}, 2) ORDER BY b)
            FROM pss SEMI JOIN top USING (node, container_key, pid, comm)
            GROUP BY ALL ORDER BY ALL""",
            {**self.params, "top": self.top},
        ).fetchall()
        for node, key, pid_value, comm_value, buckets, values in rows:
            fields = {
                "chart": "pss",
                "role": f"{comm_value or '?'} [{pid_value or '?'}]",
                "gap": self._gap_ms(10),
            }
            self._add(node, key, fields, buckets, values)

    def _query(self, sql: str, params: Mapping[str, object] | None) -> list[tuple[Any, ...]]:
        return self.con.execute(sql, params or {}).fetchall()

    def events(self) -> list[dict[str, Any]]:
        """The finemon runs' first and last ticks, and the markers the viewer shows
        (:mod:`analysis.query.markers`: OOM kills, starts and stops, the runs' phases)."""
        found: list[dict[str, Any]] = []
        runs = self.con.execute(
            """SELECT run_id, max(node_name), min(epoch_ms(time)), max(epoch_ms(time))
            FROM metrics GROUP BY run_id ORDER BY 3"""
        ).fetchall()
        for run_id, node, first, last in runs:
            where = f" on {node}" if node else ""
            found.append(
                {"t": first, "kind": "run", "c": -1, "text": f"finemon run {run_id[:8]}{where}"}
            )
            found.append(
                {"t": last, "kind": "run", "c": -1, "text": f"end of run {run_id[:8]}{where}"}
            )
        in_data = {str(run_id) for run_id, *_ in runs}
        marks = [m for m in find_phase_marks(self._query, self.manifests) if m.run_id in in_data]
        for marker in phase_markers(marks, self.first_ms, self.last_ms):
            found.append(
                {"t": round(marker.time * 1000), "kind": "phase", "c": -1,
                 "text": f"{marker.text} (run {marker.run_id[:8]})"}
            )  # fmt: skip
        index = index_containers(self._query)
        markers = find_markers(
            self._query,
            index,
            list(index.containers),
            self.first_ms,
            self.last_ms,
            run_ranges={str(run_id): (int(first), int(last)) for run_id, _, first, last in runs},
            tick_seconds=self.tick_ms / 1000,
        )
        lifecycle = 0
        for marker in markers:
            if marker.kind != "oom":
                lifecycle += 1
                if lifecycle > MAX_LIFECYCLE_EVENTS:
                    continue
            node = index.containers[marker.container_key].node_name or ""
            slot = self.containers.setdefault((node, marker.container_key), len(self.containers))
            found.append(
                {"t": round(marker.time * 1000), "kind": marker.kind, "c": slot,
                 "count": marker.count, "text": marker.text}
            )  # fmt: skip
        return sorted(found, key=lambda event: (event["t"], event["kind"]))

    def container_table(self, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
        rows = self.con.execute(
            """SELECT coalesce(node_name, ''), container_key, max(qos_class), max(namespace),
                max(pod_name), max(container_id), max(cgroup)
            FROM report_containers GROUP BY ALL"""
        ).fetchall()
        described = {(row[0], row[1]): row[2:] for row in rows}
        names = container_names_of(self.con, "report_containers")
        peaks: dict[tuple[int, str], float] = defaultdict(float)
        for series in self.series:
            top = max((v for v in series["values"] if v is not None), default=0.0)
            slot = (series["c"], f"{series['chart']}:{series['role']}")
            peaks[slot] = max(peaks[slot], top)
        kills: dict[int, int] = defaultdict(int)
        for event in events:
            if event["kind"] == "oom":
                kills[event["c"]] += event["count"]
        table: list[dict[str, Any]] = [{} for _ in self.containers]
        for (node, key), index in self.containers.items():
            qos, namespace, pod, container_id, cgroup = described.get(
                (node, key), (None, None, None, None, None)
            )
            name = names.get(key) or _named_by_key(key)
            table[index] = {
                "key": key,
                "name": name.long_name,
                "label": name.name,
                "node": node,
                "qos": qos,
                "namespace": namespace,
                "pod": pod,
                "id": (container_id or "")[:12],
                "cgroup": cgroup,
                "cpu_peak": peaks[(index, "cpu:usage")],
                "memory_peak": peaks[(index, "memory:working set")],
                "oom_kills": kills[index],
            }
        return table

    def build(self, title: str, source: str) -> dict[str, Any]:
        self.gauges()
        self.throttling()
        self.processes()
        events = self.events()
        containers = self.container_table(events)
        return {
            "title": title,
            "source": source,
            "generated": datetime.now(UTC).isoformat(timespec="seconds"),
            "first": self.first_ms,
            "last": self.last_ms,
            "t0": self.t0,
            "bucket_ms": self.bucket_ms,
            "tick_ms": self.tick_ms,
            "max_points": self.max_points,
            "containers": containers,
            "selection": default_selection(containers),
            "series": self.series,
            "events": events,
        }


def _named_by_key(key: str) -> ContainerName:
    """The name of a container with series but no ``container.*`` row: its key, shortened."""
    name = full_name(ContainerLabels(key, None, None, None, None, None, 0))
    return ContainerName(name, name, "")


def default_selection(containers: list[dict[str, Any]], size: int = DEFAULT_SELECTION) -> list[int]:
    """The containers drawn when the page opens: every OOM-killed one, then the busiest by CPU
    and by working set in turn, ``size`` in all (more only when more were OOM-killed)."""
    chosen = [i for i, c in enumerate(containers) if c["oom_kills"]]
    by_cpu = sorted(range(len(containers)), key=lambda i: -containers[i]["cpu_peak"])
    by_memory = sorted(range(len(containers)), key=lambda i: -containers[i]["memory_peak"])
    for pair in zip(by_cpu, by_memory, strict=True):
        for index in pair:
            if len(chosen) < size and index not in chosen:
                chosen.append(index)
    return sorted(chosen)


def build_report_data(
    directory: str | Path,
    *,
    max_points: int = REPORT_MAX_POINTS,
    top_processes: int = DEFAULT_TOP_PROCESSES,
    title: str | None = None,
    run_id: str | None = None,
    container_keys: Sequence[str] | None = None,
) -> dict[str, Any]:
    """The data the page draws (see :func:`write_report`), as a JSON-ready dict."""
    if max_points < 10:
        raise AnalysisError(f"--max-points must be at least 10, got {max_points}")
    duckdb_module = require("duckdb")
    con = connect(directory, run_id=run_id, container_keys=container_keys)
    try:
        manifests = read_manifests(Path(directory)) if Path(directory).is_dir() else {}
        builder = _ReportBuilder(con, max_points, max(0, top_processes), manifests)
        return builder.build(title or f"finemon report: {directory}", str(directory))
    except duckdb_module.Error as exc:
        raise AnalysisError(f"{directory}: {one_line(str(exc))}") from None
    finally:
        con.close()


def plotly_js() -> str:
    """The minified plotly.js that ships with the ``plotly`` package (no network)."""
    offline = require("plotly.offline")
    source: str = offline.get_plotlyjs()
    return source


def _script_json(data: dict[str, Any]) -> str:
    # Inside <script> only "</" could end the element early; "<" never appears outside strings
    # in JSON, where \u003c means the same.
    text = json.dumps(data, separators=(",", ":"), allow_nan=False, ensure_ascii=False)
    return text.replace("<", "\\u003c")


def render_html(data: dict[str, Any], script: str) -> str:
    """The page: ``script`` (plotly.js) and ``data`` inlined, nothing loaded from elsewhere."""
    return _render(str(data["title"]), _script_json(data), script)


def _render(title_text: str, data_json: str, script: str) -> str:
    title = html.escape(title_text)
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="finemon report">
<title>{title}</title>
<style>{PAGE_STYLE}</style>
<script>{script}</script>
</head>
<body>
<header>
  <h1>{title}</h1>
  <p id="meta"></p>
</header>
<div id="page">
  <aside id="picker">
    <input id="filter" type="search" placeholder="filter containers" aria-label="filter">
    <div class="buttons">
      <button type="button" data-pick="cpu">top CPU</button>
      <button type="button" data-pick="memory">top memory</button>
      <button type="button" data-pick="oom">OOM-killed</button>
      <button type="button" data-pick="all">all shown</button>
      <button type="button" data-pick="none">none</button>
    </div>
    <p id="picked"></p>
    <ul id="containers"></ul>
  </aside>
  <main>
    <section><h2>CPU <small>millicores, mean per bucket; dashed: limit</small></h2>
      <div class="plot" id="chart-cpu"></div></section>
    <section><h2>Memory <small>MiB, max per bucket; solid: working set, dotted: usage,
      dashed: limit</small></h2><div class="plot" id="chart-memory"></div></section>
    <section><h2>PSS per process <small>MiB, max per bucket; top processes of each
      container</small></h2><div class="plot" id="chart-pss"></div></section>
    <section><h2>CPU throttling <small>ms throttled per second, mean per bucket</small></h2>
      <div class="plot" id="chart-throttling"></div></section>
    <section><h2>Pressure stall <small>PSI some avg10, %, mean per bucket</small>
      <select id="psi-resource" aria-label="resource">
        <option value="cpu">CPU</option><option value="memory">memory</option>
        <option value="io">I/O</option></select></h2>
      <div class="plot" id="chart-psi"></div></section>
    <section><h2>Events <small>click a row to zoom to it</small></h2>
      <table id="events"><thead><tr><th>time (UTC)</th><th>event</th><th>container</th></tr>
      </thead><tbody></tbody></table></section>
  </main>
</div>
<script type="application/json" id="finemon-data">{data_json}</script>
<script>{PAGE_SCRIPT}</script>
</body>
</html>
"""


def write_report(
    directory: str | Path,
    output: str | Path,
    *,
    max_points: int = REPORT_MAX_POINTS,
    top_processes: int = DEFAULT_TOP_PROCESSES,
    title: str | None = None,
    run_id: str | None = None,
    container_keys: Sequence[str] | None = None,
) -> ReportResult:
    """Write the report of ``directory`` to ``output`` (written whole, then renamed into place);
    only run ``run_id`` and the containers ``container_keys`` when given (see
    :func:`analysis.dataset.connect`).

    Raises :class:`MissingExtraError` without duckdb or plotly and :class:`AnalysisError` when
    the directory cannot be read or ``output`` cannot be written.
    """
    started = time.monotonic()
    script = plotly_js()
    data = build_report_data(
        directory,
        max_points=max_points,
        top_processes=top_processes,
        title=title,
        run_id=run_id,
        container_keys=container_keys,
    )
    data_json = _script_json(data)
    page = _render(str(data["title"]), data_json, script)
    path = Path(output)
    partial = path.with_name(f".{path.name}.partial")
    try:
        partial.write_text(page, encoding="utf-8")
        partial.replace(path)
    except OSError as exc:
        partial.unlink(missing_ok=True)
        raise AnalysisError(f"cannot write {path}: {exc.strerror or exc}") from None
    return ReportResult(
        path=path,
        size_bytes=len(page.encode()),
        data_bytes=len(data_json.encode()),
        containers=len(data["containers"]),
        series=len(data["series"]),
        max_values_per_series=max((len(s["values"]) for s in data["series"]), default=0),
        bucket_seconds=data["bucket_ms"] / 1000.0,
        events=len(data["events"]),
        seconds=time.monotonic() - started,
    )
