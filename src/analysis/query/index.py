"""What the dataset holds: its runs, nodes, containers and metrics, as typed values.

The runs come from their manifests and the files' footers; the containers from one scan of
the rows of a metric every container has on every tick (:data:`PRESENCE_METRICS`), named by
:func:`analysis.query.names.container_names`; the metrics from one scan of their names, their
units and descriptions from the files' metadata, else the catalogue. The scans run through a
:data:`Query` (the explorer's connection, one query at a time).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

from analysis.dataset import sql_string
from analysis.query.files import FileFooter, described
from analysis.query.names import container_labels, container_names
from analysis.query.times import parse_iso, utc
from common.catalogue.container import CONTAINER_CPU_USAGE_USEC, CONTAINER_MEMORY_WORKING_SET_BYTES

#: Runs SQL with named parameters on the dataset's connection and returns every row; raises
#: :class:`analysis.errors.AnalysisError` for SQL DuckDB refuses.
Query = Callable[[str, Mapping[str, object] | None], list[tuple[Any, ...]]]

#: Container metrics every container has on every tick: the container list scans only these.
PRESENCE_METRICS = (
    CONTAINER_CPU_USAGE_USEC,
    CONTAINER_MEMORY_WORKING_SET_BYTES,
)
#: The label columns a container is described by, the most complete value seen kept.
_LABEL_COLUMNS = (
    "namespace", "pod_name", "container_name", "container_id", "pod_uid", "qos_class",
    "node_name", "cluster_name",
)  # fmt: skip


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
    :func:`analysis.query.names.container_names`); ``full_name`` is ``namespace/pod/container``
    (else the short container id, else the cgroup path), the same for every life of a restarted
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
class ContainerRun:
    """A container's first and last tick (epoch ms) within one run."""

    run_id: str
    container_key: str
    first_ms: int
    last_ms: int


@dataclass(frozen=True, slots=True)
class ContainerIndex:
    """Every container of the dataset by key, and its first and last tick in each run."""

    containers: Mapping[str, ContainerInfo]
    runs: tuple[ContainerRun, ...]


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


def keys_sql(keys: Iterable[str]) -> str:
    """``keys`` as a list of SQL string literals (for ``IN (...)``)."""
    return ", ".join(sql_string(key) for key in keys)


# ------------------------------------------------------------------------------ metric facts
@lru_cache(maxsize=4096)
def catalogued(name: str) -> tuple[str | None, str | None]:
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


def describe_metric(footers: Mapping[Path, FileFooter], name: str) -> tuple[str | None, str | None]:
    """(unit, description) of metric ``name``: from the files' metadata, else the catalogue."""
    found = described(footers, name)
    if found:
        unit, text = found.get("unit"), found.get("description")
        return (str(unit) if unit else None), (str(text) if text else None)
    return catalogued(name)


def metric_kind(
    query: Query,
    footers: Mapping[Path, FileFooter],
    listed: Sequence[MetricInfo] | None,
    metric: str,
) -> str:
    """``gauge`` or ``counter``: from the metrics ``listed`` already, else the files' metadata,
    else the rows' ``metric_kind``; ``gauge`` when none tells."""
    for info in listed or ():
        if info.name == metric:
            return info.kind
    found = described(footers, metric)
    if found and found.get("kind") in ("gauge", "counter"):
        return str(found["kind"])
    rows = query("SELECT any_value(metric_kind) FROM metrics WHERE metric_name = $m", {"m": metric})
    return str(rows[0][0]) if rows and rows[0][0] else "gauge"


def list_metrics(query: Query, footers: Mapping[Path, FileFooter], where: str) -> list[MetricInfo]:
    """The metrics of the rows ``where`` (SQL) selects, by name, their series counted there."""
    rows = query(
        f"""SELECT metric_name, any_value(metric_kind), count(DISTINCT container_key),
            count(*) FILTER (WHERE container_key IS NULL) > 0
        FROM metrics WHERE {where} GROUP BY 1 ORDER BY 1""",
        None,
    )
    # Series are told apart by their labels only in metrics that have some: count those
    # (reading the labels map) for them alone.
    labelled = [str(row[0]) for row in rows if has_series_labels(str(row[0]))]
    series: dict[str, int] = {}
    if labelled:
        series = {
            str(name): int(count)
            for name, count in query(
                f"""SELECT metric_name, count(*) FROM (
                    SELECT DISTINCT metric_name, container_key, labels FROM metrics
                    WHERE {where} AND metric_name IN ({keys_sql(labelled)}))
                GROUP BY 1""",
                None,
            )
        }
    found = []
    for name, kind, containers, node_wide in rows:
        unit, description = describe_metric(footers, str(name))
        count = series.get(str(name), int(containers) + int(bool(node_wide)))
        found.append(
            MetricInfo(str(name), str(kind or "gauge"), unit, description, count, containers)
        )
    return found


# ------------------------------------------------------------------------------ containers
def index_containers(query: Query) -> ContainerIndex:
    """Every container of the dataset, named (one scan of a :data:`PRESENCE_METRICS` metric's
    rows; of every ``container.*`` row when the dataset has none of them)."""
    most_complete = ", ".join(f"max({name})" for name in _LABEL_COLUMNS)
    # No column of the labels map is read: the cgroup label is the key of a container
    # without id (hosts that are not Kubernetes nodes).
    scan = f"""SELECT run_id, container_key, {most_complete},
            min(epoch_ms(time)), max(epoch_ms(time))
        FROM metrics WHERE container_key IS NOT NULL AND {{where}}
        GROUP BY run_id, container_key"""
    rows: list[tuple[Any, ...]] = []
    for metric in PRESENCE_METRICS:
        rows = query(scan.format(where="metric_name = $m"), {"m": metric})
        if rows:
            break
    if not rows:  # a capture without the usual metrics: any container metric will do
        rows = query(scan.format(where="starts_with(metric_name, 'container.')"), None)
    merged: dict[str, dict[str, Any]] = {}
    runs: list[ContainerRun] = []
    for run_id, key, *values, first, last in rows:
        runs.append(ContainerRun(str(run_id), str(key), int(first), int(last)))
        entry = merged.setdefault(key, {"runs": set(), "first": first, "last": last})
        for name, value in zip(_LABEL_COLUMNS, values, strict=True):
            # The most complete across runs as within one: the greatest (SQL's max()), so
            # the answer does not hang on the order the runs come in.
            if value is not None and (entry.get(name) is None or value > entry[name]):
                entry[name] = value
        entry["runs"].add(str(run_id))
        entry["first"] = min(entry["first"], first)
        entry["last"] = max(entry["last"], last)
    return _named(merged, runs)


def _named(merged: Mapping[str, dict[str, Any]], runs: list[ContainerRun]) -> ContainerIndex:
    """The containers of ``merged`` (by key: most complete labels, runs, first and last ms)
    named by the one rule."""
    labels = {
        key: container_labels(
            key,
            namespace=entry.get("namespace"),
            pod_name=entry.get("pod_name"),
            container_name=entry.get("container_name"),
            container_id=entry.get("container_id"),
            pod_uid=entry.get("pod_uid"),
            first_ms=entry["first"],
        )
        for key, entry in merged.items()
    }
    display = dict(zip(labels, container_names(list(labels.values())), strict=True))
    containers = {
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
            cgroup=labels[key].cgroup,
            first_time=utc(entry["first"]),
            last_time=utc(entry["last"]),
            runs=tuple(sorted(entry["runs"])),
        )
        for key, entry in sorted(merged.items())
    }
    return ContainerIndex(containers, tuple(runs))


def key_filter(containers: Mapping[str, ContainerInfo], keys: Sequence[str]) -> str:
    """SQL true for the rows of containers ``keys``: ``container_id IN (...)`` where the key
    is a container id (DuckDB pushes that into the Parquet scan), ``container_key``
    otherwise."""
    ids = [k for k in keys if k in containers and containers[k].container_id == k]
    others = [k for k in keys if k not in ids]
    parts = []
    if ids:
        parts.append(f"container_id IN ({keys_sql(ids)})")
    if others:
        parts.append(f"(container_id IS NULL AND container_key IN ({keys_sql(others)}))")
    return "(" + " OR ".join(parts) + ")" if parts else "false"


# ------------------------------------------------------------------------------ runs, nodes
def list_runs(
    manifests: Mapping[str, Mapping[str, Any]],
    footers: Mapping[Path, FileFooter],
    ranges: Mapping[str, tuple[int, int]],
) -> list[RunInfo]:
    """Every run, from its manifest, its files and its first and last tick (``ranges``, epoch
    ms), by start time."""
    per_run: dict[str, list[FileFooter]] = {}
    for f in footers.values():
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
                start=parse_iso(manifest.get("start_time")),
                end=parse_iso(manifest.get("end_time")),
                exit_reason=str(reason) if reason else None,
                files=len(files),
                rows=sum(f.rows for f in files),
                first_time=utc(first_last[0]) if first_last else None,
                last_time=utc(first_last[1]) if first_last else None,
                tick_seconds=ticks[0] if ticks else None,
                finemon_version=manifest.get("finemon_version"),
            )
        )
    epoch = datetime.min.replace(tzinfo=UTC)
    return sorted(found, key=lambda r: (r.start or r.first_time or epoch, r.run_id))


def list_nodes(containers: Iterable[ContainerInfo], runs: Iterable[RunInfo]) -> list[NodeInfo]:
    """Every node: from the containers' node names and the runs (manifests and files)."""
    names: dict[str, dict[str, Any]] = {}

    def slot(name: str) -> dict[str, Any]:
        return names.setdefault(
            name,
            {"cluster": None, "first": None, "last": None, "keys": set(), "runs": set()},
        )

    for info in containers:
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


# ------------------------------------------------------------------------------ from summaries
def _groups(summary: Mapping[str, Any]) -> Iterable[tuple[str, Mapping[str, Any]]]:
    for run in summary.get("runs", []):
        for group in run["groups"]:
            yield str(run["run_id"]), group


def containers_from_summary(summary: Mapping[str, Any]) -> ContainerIndex:
    """Every container of the dataset, named, from the files' merged summary
    (:mod:`capture.summary`) instead of a scan: the runs' groups that hold ``container.*``
    metrics, their most complete labels and first and last tick."""
    merged: dict[str, dict[str, Any]] = {}
    runs: list[ContainerRun] = []
    for run_id, group in _groups(summary):
        key = group["key"]
        if key is None or not any(m.startswith("container.") for m in group["cells"]):
            continue
        first, last = int(group["first_ms"]), int(group["last_ms"])
        runs.append(ContainerRun(run_id, str(key), first, last))
        entry = merged.setdefault(key, {"runs": set(), "first": first, "last": last})
        for name in _LABEL_COLUMNS:
            value = group["labels"].get(name)
            if value is not None and (entry.get(name) is None or value > entry[name]):
                entry[name] = value
        entry["runs"].add(run_id)
        entry["first"] = min(entry["first"], first)
        entry["last"] = max(entry["last"], last)
    return _named(merged, runs)


def metrics_from_summary(
    summary: Mapping[str, Any], footers: Mapping[Path, FileFooter], keys: Sequence[str] = ()
) -> list[MetricInfo]:
    """The metrics of the files' merged summary, by name (only those of containers ``keys``
    when given), their containers counted and their series (per container, the most seen at
    once in a file)."""
    wanted = set(keys)
    containers: dict[str, set[str]] = {}
    node_wide: set[str] = set()
    series: dict[tuple[str, Any], int] = {}
    for _run_id, group in _groups(summary):
        key = group["key"]
        if wanted and key not in wanted:
            continue
        for metric, cell in group["cells"].items():
            if key is None:
                node_wide.add(metric)
            else:
                containers.setdefault(metric, set()).add(str(key))
            series[(metric, key)] = max(series.get((metric, key), 0), int(cell[0]))
    kinds = summary.get("metrics", {})
    found = []
    for name in sorted(set(containers) | node_wide):
        count = sum(n for (metric, _), n in series.items() if metric == name)
        unit, description = describe_metric(footers, name)
        found.append(
            MetricInfo(name, str(kinds.get(name, "gauge")), unit, description, count,
                       len(containers.get(name, ())))
        )  # fmt: skip
    return found
