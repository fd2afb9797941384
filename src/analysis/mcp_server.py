"""``finemon mcp DIR``: a Model Context Protocol server over a finemon dataset, for agents.

Built on the ``mcp`` SDK (the ``mcp`` extra: ``pip install 'finemon[mcp]'``) and on
:class:`analysis.query.explorer.Explorer`; tools:

``list_nodes``, ``list_runs``
    The nodes and ``finemon run`` sessions of the dataset.
``list_containers``
    Containers by search words and label filters (namespace, pod, qos, node).
``list_metrics``
    Metric names with kind, unit, description and series count.
``list_labels``
    A metric's label keys and values (a ``target.*`` metric's tags), what filters take.
``get_series``
    A metric's downsampled series (mean, min and max per time bucket, counters as rates),
    optionally filtered by labels (``key=value``) and with the series of no container.
``analyze_container``
    CPU and memory peaks, changepoints and periodicity, throttling, OOM kills, starts/stops.
``compare_reported``
    What the watched agent reported about a container (``target.*``, from ``finemon run
    --intake-port``) beside the kernel's figures for it, bucketed, with their difference.
``compare_runs``, ``check_bounds``
    ``finemon compare`` (two selections of runs, container by container) and ``finemon check``
    (bounds given as YAML text), as JSON (:mod:`analysis.experiments`).
``run_sql``
    One read-only DuckDB ``SELECT`` over the ``metrics``/``containers`` views, with a row
    limit, a timeout, a cap on the result's size and DuckDB's memory bounded (see
    :meth:`analysis.query.sql.SqlSandbox.run`); anything else is refused and no file outside the
    dataset is read.

Every result is JSON (structured content): times as ISO 8601 UTC strings, except the points of
series (epoch seconds). Each call first picks up files published since the last one, so the
server follows a dataset that ``finemon run`` is still writing. Over HTTP (streamable HTTP,
path ``/mcp``) it binds 127.0.0.1 by default, with the SDK's DNS-rebinding protection.

Importing this module is cheap (the SDK is imported when the server is built).
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys
from collections.abc import Mapping, Sequence
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any
from uuid import UUID

from analysis.errors import AnalysisError, MissingExtraError
from analysis.query.labels import parse_label_filters
from analysis.source import add_source_arguments, local_directory

if TYPE_CHECKING:
    from mcp.server.mcpserver import MCPServer

    from analysis.query.explorer import Explorer
    from analysis.query.index import ContainerInfo

#: How to get the SDK.
MCP_INSTALL_HINT = "pip install 'finemon[mcp]'"
DEFAULT_PORT = 8051
DEFAULT_ADDRESS = "127.0.0.1"
HTTP_PATH = "/mcp"
#: Bounds on what one call returns, so an agent's context is not flooded.
MAX_SERIES_POINTS = 2000
MAX_SERIES_CONTAINERS = 20
MAX_LISTED = 1000
MAX_SQL_ROWS = 10_000
MAX_SQL_TIMEOUT_SECONDS = 60.0

MCP_DESCRIPTION = f"""\
Serve the dataset in DIR to AI agents over the Model Context Protocol: tools to list nodes,
runs, containers and metrics, fetch a downsampled series, analyze a container (CPU and memory
peaks, throttling, OOM kills, changepoints, periodicity) and run read-only SQL (one SELECT, row
limit, timeout, bounded result size and memory, no file access outside DIR). --transport stdio
(the default) is for an MCP client that starts the server itself, e.g. in a client's config:
"command": "finemon", "args": ["mcp", "/path/to/finemon-out"]. --transport http serves
streamable HTTP at http://ADDRESS:PORT{HTTP_PATH}, on 127.0.0.1 unless --address says
otherwise. New files are picked up on every call. Needs the mcp extra ({MCP_INSTALL_HINT}).
"""

INSTRUCTIONS = """\
finemon records container metrics (cgroup and /proc) of Kubernetes nodes or plain hosts at
about 1 Hz. Start with list_containers (a container's `key` is what the other tools take;
names work too when unique) and list_metrics. get_series returns downsampled points
[epoch seconds, mean, min, max] per time bucket; counters (metric kind "counter", cumulative)
come as per-second rates. Useful metrics: container.cpu.usage_millicores (1000 = one CPU),
container.memory.working_set_bytes, container.memory.oom_kills, container.cpu.throttled_usec,
process.memory.pss_bytes (per process with process=true). analyze_container summarizes one
container. run_sql runs one read-only DuckDB SELECT over the view `metrics` (run_id, time,
metric_name, metric_kind, value_int, value_float, namespace, pod_name, container_name,
container_id, qos_class, node_name, labels map, container_key, series), the view
`containers` and the table macros rate('counter') and increase('counter'). Times are UTC.
Metrics named target.* are what the watched agent reported about itself (finemon run
--intake-port); their tags are labels (list_labels; get_series labels=["key=value"]), those of
no container come with get_series node_wide=true; compare_reported puts one beside the
kernel's figures for the same container.
"""


# ------------------------------------------------------------------------------------------
# JSON


def jsonable(value: Any) -> Any:
    """``value`` as JSON-ready data: dataclasses and mappings as objects, sequences as lists,
    times as ISO 8601 strings, non-finite floats as null, decimals as floats, bytes as hex."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, Decimal):
        return jsonable(float(value))
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).hex()
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, Sequence | set | frozenset):
        return [jsonable(v) for v in value]
    return str(value)


def _time(text: str | None, name: str) -> datetime | None:
    """An ISO 8601 argument (UTC when it has no offset); None for empty."""
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise AnalysisError(f"{name}: not an ISO 8601 time: {text!r}") from None
    from datetime import UTC  # noqa: PLC0415

    return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)


def resolve_container(explorer: Explorer, reference: str) -> ContainerInfo:
    """The container ``reference`` names: its key, its display name, its full name when no
    other container has it (a restarted container's lives share theirs), its container id or
    a prefix of it (at least 8 characters), else the single container a search finds.

    Raises :class:`AnalysisError` naming the candidates (by display name, which tells a
    restarted container's lives apart) when there are none or several.
    """
    listed = explorer.containers()
    for info in listed:
        if reference in (info.key, info.name):
            return info
    found = [c for c in listed if c.full_name == reference]
    if len(reference) >= 8 and not found:
        found = [c for c in listed if (c.container_id or "").startswith(reference)]
    if not found:
        found = explorer.containers(reference)
    if len(found) == 1:
        return found[0]
    if not found:
        raise AnalysisError(f"no container matches {reference!r} (see list_containers)")
    names = ", ".join(c.name for c in found[:10])
    more = f" and {len(found) - 10} more" if len(found) > 10 else ""
    raise AnalysisError(f"{reference!r} matches {len(found)} containers: {names}{more}")


# ------------------------------------------------------------------------------------------
# The server


def build_server(explorer: Explorer, *, name: str = "finemon") -> MCPServer:
    """An MCP server whose tools answer from ``explorer`` (every call refreshes it first).

    Raises :class:`MissingExtraError` without the ``mcp`` package.
    """
    try:
        from mcp.server.mcpserver import MCPServer  # noqa: PLC0415
        from mcp.server.mcpserver.exceptions import ToolError  # noqa: PLC0415
        from mcp_types import ToolAnnotations  # noqa: PLC0415
    except ImportError as exc:
        raise MissingExtraError(
            f"the mcp package is not installed (it comes with the mcp extra: {MCP_INSTALL_HINT})"
        ) from exc
    from analysis.query.reported import PAIRS  # noqa: PLC0415
    from common.version import __version__  # noqa: PLC0415

    server: MCPServer = MCPServer(
        name, instructions=INSTRUCTIONS, version=__version__, log_level="WARNING"
    )
    read_only = ToolAnnotations(read_only_hint=True, open_world_hint=False)

    def fresh() -> Explorer:
        try:
            explorer.refresh()
        except AnalysisError as exc:
            raise ToolError(str(exc)) from None
        return explorer

    def container_keys(references: Sequence[str]) -> list[str]:
        return [resolve_container(explorer, ref).key for ref in references]

    @server.tool(annotations=read_only)
    def list_nodes() -> dict[str, Any]:
        """The nodes of the dataset: name, cluster, time covered, number of containers and
        runs."""
        try:
            return {"nodes": jsonable(fresh().nodes())}
        except AnalysisError as exc:
            raise ToolError(str(exc)) from None

    @server.tool(annotations=read_only)
    def list_runs() -> dict[str, Any]:
        """The finemon runs (recording sessions): run id, node, start and end, exit reason,
        data files and rows, first and last tick, tick length."""
        try:
            return {"runs": jsonable(fresh().runs())}
        except AnalysisError as exc:
            raise ToolError(str(exc)) from None

    @server.tool(annotations=read_only)
    def list_containers(
        search: str = "",
        namespace: str | None = None,
        pod: str | None = None,
        qos: str | None = None,
        node: str | None = None,
        limit: int = 200,
    ) -> dict[str, Any]:
        """Containers whose name, namespace, pod, id or cgroup contain every word of `search`
        (case-insensitive), with exact label filters (namespace, pod name, QoS class
        Guaranteed/Burstable/BestEffort, node name). Each has a `key` for the other tools, a
        short `name`, its labels and first/last time seen. At most `limit` (max 1000)."""
        try:
            found = fresh().containers(search, namespace=namespace, pod=pod, qos=qos, node=node)
        except AnalysisError as exc:
            raise ToolError(str(exc)) from None
        limit = max(1, min(limit, MAX_LISTED))
        return {
            "containers": jsonable(found[:limit]),
            "total": len(found),
            "truncated": len(found) > limit,
        }

    @server.tool(annotations=read_only)
    def list_metrics(
        search: str = "", containers: list[str] | None = None, limit: int = 500
    ) -> dict[str, Any]:
        """Metrics whose name or description contain every word of `search`, with kind
        (gauge or counter: cumulative), unit, description and number of series; with
        `containers` (keys or names), only the metrics those containers have."""
        try:
            keys = container_keys(containers or [])
            found = fresh().metrics(search, keys)
        except AnalysisError as exc:
            raise ToolError(str(exc)) from None
        limit = max(1, min(limit, MAX_LISTED))
        return {
            "metrics": jsonable(found[:limit]),
            "total": len(found),
            "truncated": len(found) > limit,
        }

    @server.tool(annotations=read_only)
    def list_labels(
        metric: str, containers: list[str] | None = None, node_wide: bool = False
    ) -> dict[str, Any]:
        """The label keys of a metric's series, each with its values (at most 100, sorted)
        and their count: what get_series' `labels` filters take ('key=value'). Of the
        series of `containers` (keys or names), and with `node_wide` of those of no
        container (the agent's own target.* metrics)."""
        try:
            keys = container_keys(containers or [])
            found = fresh().label_values(metric, keys, node_wide=node_wide or not keys)
        except AnalysisError as exc:
            raise ToolError(str(exc)) from None
        return {"metric": metric, "labels": jsonable(found)}

    @server.tool(annotations=read_only)
    def get_series(
        metric: str,
        containers: list[str],
        start: str | None = None,
        end: str | None = None,
        max_points: int = 200,
        process: bool = False,
        labels: list[str] | None = None,
        node_wide: bool = False,
    ) -> dict[str, Any]:
        """A metric's series for up to 20 containers (keys or names) between `start` and `end`
        (ISO 8601, UTC by default; the whole dataset when omitted), downsampled to at most
        `max_points` (max 2000) time buckets. Each point is [epoch seconds, mean, min, max]
        of its bucket. Counters come as per-second rates (unit '<unit>/s'). For process.*
        metrics the processes are summed per container unless `process` is true (then one
        series per process, labelled 'comm (pid)'). `labels`: filters 'key=value' on the
        series' labels (a target.* metric's tags: 'source_type_name=System',
        'tag.canary=true'); several values of one key are alternatives, different keys must
        all match. `node_wide`: also the series of no container (container_key ''), such as
        the agent's own target.* metrics; `containers` may then be empty."""
        try:
            if len(containers) > MAX_SERIES_CONTAINERS:
                raise AnalysisError(f"at most {MAX_SERIES_CONTAINERS} containers per call")
            keys = container_keys(containers)
            found = fresh().series(
                metric,
                keys,
                _time(start, "start"),
                _time(end, "end"),
                max_points=max(2, min(max_points, MAX_SERIES_POINTS)),
                process=process,
                labels=parse_label_filters(labels or []),
                node_wide=node_wide,
            )
        except AnalysisError as exc:
            raise ToolError(str(exc)) from None
        series = []
        for data in found:
            points = zip(data.times, data.values, data.mins, data.maxs, strict=True)
            series.append(
                {
                    "key": data.key,
                    "container_key": data.container_key,
                    "label": data.label,
                    "labels": dict(data.labels),
                    "kind": data.kind,
                    "unit": data.unit,
                    "bucket_seconds": data.bucket_seconds,
                    "points": jsonable([list(point) for point in points]),
                }
            )
        return {"metric": metric, "series": series}

    @server.tool(annotations=read_only)
    def analyze_container(
        container: str, start: str | None = None, end: str | None = None
    ) -> dict[str, Any]:
        """Study one container (key or name) over a range (ISO 8601; its whole life by
        default): CPU (millicores) and working set (bytes) with mean, max, top peaks, steps
        in the mean (changepoints) and period (autocorrelation) if any; its CPU and memory
        limits; CPU throttling (periods throttled, ratio, seconds); OOM kills; starts and
        stops."""
        try:
            explorer = fresh()
            key = resolve_container(explorer, container).key
            analysis = explorer.analyze(key, _time(start, "start"), _time(end, "end"))
        except AnalysisError as exc:
            raise ToolError(str(exc)) from None
        result: dict[str, Any] = jsonable(analysis)
        return result

    @server.tool(annotations=read_only)
    def compare_reported(
        container: str,
        reported: str = PAIRS[0].reported,
        observed: list[str] | None = None,
        start: str | None = None,
        end: str | None = None,
        max_points: int = 200,
    ) -> dict[str, Any]:
        """What the watched agent reported about a container (a `target.*` metric, written by
        `finemon run --intake-port`) next to what the kernel showed (finemon's metrics) for the
        same container (key or name), in up to `max_points` (max 2000) time buckets over the
        reported metric's span (or `start`..`end`, ISO 8601). Each point is [epoch seconds,
        reported mean, then each observed metric's mean]; `difference` gives, per observed
        metric, the mean and the largest absolute value of reported minus observed over the
        buckets that have both. Known pairs (`observed` defaults to the pair's; the reported
        values are scaled to the observed `unit` by `reported_scale`): the agent's
        container.memory.usage against container.memory.usage_bytes and
        container.memory.working_set_bytes (the default), container.memory.working_set and
        container.memory.rss against finemon's working set and RSS, container.cpu.usage
        (nanocores) against container.cpu.usage_millicores."""
        try:
            explorer = fresh()
            key = resolve_container(explorer, container).key
            comparison = explorer.reported_vs_observed(
                key,
                reported,
                list(observed) if observed else None,
                _time(start, "start"),
                _time(end, "end"),
                max(2, min(max_points, MAX_SERIES_POINTS)),
            )
        except AnalysisError as exc:
            raise ToolError(str(exc)) from None
        result: dict[str, Any] = jsonable(comparison)
        return result

    @server.tool(annotations=read_only)
    def compare_runs(
        baseline: str,
        comparison: str,
        phase: str | None = None,
        min_change_percent: float = 5.0,
    ) -> dict[str, Any]:
        """Compare two selections of runs of the dataset, as `finemon compare --format json`.
        A selection is a run id or prefix, `variant=NAME`, or `FROM..TO` (ISO 8601 UTC).
        Containers are matched as namespace/workload/container; for each headline metric
        (CPU millicores, throttled share, memory usage, working set, RSS, PSS, OOM kills, PSI
        some avg10) and statistic (mean, p50, p95, max): both values, the change, its 90 %
        interval (moving-block bootstrap) and a verdict (regression, improvement, no change)
        against `min_change_percent`. `phase` keeps what follows that mark in each run."""
        from analysis.experiments.compare import compare  # noqa: PLC0415
        from analysis.experiments.render import comparison_json  # noqa: PLC0415

        try:
            directory = fresh().directory
            result = compare(
                directory,
                baseline,
                directory,
                comparison,
                phase=phase,
                min_change_percent=max(0.0, min_change_percent),
            )
        except AnalysisError as exc:
            raise ToolError(str(exc)) from None
        return comparison_json(result)

    @server.tool(annotations=read_only)
    def check_bounds(bounds: str, run: str | None = None) -> dict[str, Any]:
        """Check bounds, given as the YAML text of a `finemon check --bounds` file (a list of
        {container: namespace/workload/container glob, metric, statistic: mean|p50|p95|p99|
        max|increase, min and/or max: a number or a size such as 255MiB}), on the runs `run`
        selects (default: every run). Each result: the check, the value measured, whether it
        holds; `ok` is true when every bound holds (a bound matching no data fails)."""
        from analysis.experiments.check import check, parse_bounds  # noqa: PLC0415

        try:
            parsed = parse_bounds(bounds, Path("bounds"))
            results = check(fresh().directory, parsed, run)
        except AnalysisError as exc:
            raise ToolError(str(exc)) from None
        return {
            "ok": all(result.holds for result in results),
            "results": [
                {
                    "name": result.name,
                    "container": result.container,
                    "metric": result.bound.metric,
                    "statistic": result.bound.statistic,
                    "min": result.bound.minimum,
                    "max": result.bound.maximum,
                    "value": jsonable(result.value),
                    "holds": result.holds,
                    "detail": result.detail,
                }
                for result in results
            ],
        }

    @server.tool(annotations=read_only, description=_run_sql_description())
    def run_sql(query: str, limit: int = 200, timeout_seconds: float = 10.0) -> dict[str, Any]:
        try:
            result = fresh().sql(
                query,
                limit=max(0, min(limit, MAX_SQL_ROWS)),
                timeout_seconds=max(0.1, min(timeout_seconds, MAX_SQL_TIMEOUT_SECONDS)),
            )
        except AnalysisError as exc:
            raise ToolError(str(exc)) from None
        return {
            "columns": list(result.columns),
            "types": list(result.types),
            "rows": jsonable(result.rows),
            "truncated": result.truncated,
            "seconds": round(result.seconds, 3),
        }

    return server


def _run_sql_description() -> str:
    """What ``run_sql`` tells an agent, with the bounds it keeps."""
    from analysis.query.sql import (  # noqa: PLC0415 - duckdb, from the analysis extra
        DEFAULT_SQL_RESULT_BYTES,
        SQL_MEMORY_LIMIT_BYTES,
    )

    mib = 1024 * 1024
    return (
        "Run one read-only DuckDB SELECT (or WITH ... SELECT) over the view `metrics` (one "
        "row per series per tick), the view `containers` and the macros rate('name') (per-row "
        "delta and per_second of a counter) and increase('name') (per-series increase). "
        "Writes, COPY, ATTACH, SET, PRAGMA, INSTALL/LOAD and file reads outside the dataset "
        f"are refused. At most `limit` rows (max {MAX_SQL_ROWS}) are returned, `truncated` "
        "says whether there were more; the query is stopped after `timeout_seconds` (max "
        f"{MAX_SQL_TIMEOUT_SECONDS:g}), and with a message when its rows would exceed "
        f"{DEFAULT_SQL_RESULT_BYTES // mib} MiB of JSON or it needs more than "
        f"{SQL_MEMORY_LIMIT_BYTES // mib} MiB of memory: aggregate in SQL rather than fetch "
        "raw rows."
    )


# ------------------------------------------------------------------------------------------
# Command line


def add_mcp_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of ``finemon mcp``."""
    parser.add_argument(
        "directory",
        metavar="DIR",
        help="a finemon --output-dir, or s3://BUCKET/PREFIX where finemon run --upload ships it",
    )
    parser.add_argument(
        "--transport",
        choices=("stdio", "http"),
        default="stdio",
        help="stdio (the client starts the server) or http (streamable HTTP at "
        f"http://ADDRESS:PORT{HTTP_PATH}) (default: %(default)s)",
    )
    parser.add_argument(
        "--port",
        type=int,
        default=DEFAULT_PORT,
        help="HTTP port (default: %(default)s)",
    )
    parser.add_argument(
        "--address",
        default=DEFAULT_ADDRESS,
        help="HTTP address to bind (default: %(default)s; anything else exposes the data)",
    )
    add_source_arguments(parser)


def run_mcp(args: argparse.Namespace) -> int:
    """``finemon mcp DIR``: serve until the client goes away (stdio) or SIGINT (HTTP)."""
    from analysis.query.explorer import Explorer  # noqa: PLC0415 - duckdb, from the analysis extra

    try:
        directory: Path = local_directory(args.directory, args)
        explorer = Explorer(directory)
        server = build_server(explorer)
    except AnalysisError as exc:
        print(f"finemon mcp: error: {exc}", file=sys.stderr)
        return 1
    try:
        if args.transport == "stdio":
            server.run("stdio")
        else:
            print(
                f"finemon mcp: serving {directory} at "
                f"http://{_host(args.address)}:{args.port}{HTTP_PATH} (Ctrl-C stops)",
                file=sys.stderr,
            )
            server.run(
                "streamable-http",
                host=args.address,
                port=args.port,
                streamable_http_path=HTTP_PATH,
            )
    except KeyboardInterrupt:
        pass
    finally:
        explorer.close()
    return 0


def _host(address: str) -> str:
    return f"[{address}]" if ":" in address else address


if __name__ == "__main__":  # python -m analysis.mcp_server DIR ...: what the tests spawn
    _parser = argparse.ArgumentParser(prog="finemon mcp", description=MCP_DESCRIPTION)
    add_mcp_arguments(_parser)
    sys.exit(run_mcp(_parser.parse_args()))
