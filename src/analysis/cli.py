"""The ``finemon query``, ``summary`` and ``report`` commands: flags, help and what they run.

Importing this module is cheap (no duckdb, no plotly): ``finemon.cli`` builds its parser from it
for every command. The run functions return the exit code: 0 success, 1 a failure reported as
one line on stderr (``finemon query: error: ...``), including a missing ``analysis`` extra.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

from analysis.errors import (
    INSTALL_HINT,
    AnalysisError,
    MissingExtraError,
    UnreadableFilesWarning,
)
from analysis.query.times import parse_iso
from analysis.source import add_source_arguments, source_of
from common.exit_codes import EXIT_FAILURE, EXIT_OK

#: Where ``finemon report DIR`` writes without ``-o``: inside DIR, named so that dataset
#: readers (pyarrow, Spark) skip it like the manifests.
DEFAULT_REPORT_NAME = "_report.html"
#: The report of one Parquet file given as the dataset: ``<file stem>.report.html`` beside it.
REPORT_SUFFIX = ".report.html"
#: Where ``finemon report s3://...`` writes without ``-o``: in the current folder.
BUCKET_REPORT_NAME = "finemon-report.html"

QUERY_DESCRIPTION = f"""\
Run SQL (DuckDB) over every Parquet file under DIR and print the result. The view `metrics` holds
every row (columns run_id, time (UTC), fetch_index, metric_name, metric_kind, value_int,
value_float, cluster_name, node_name, namespace, pod_name, pod_uid, container_id, container_name,
qos_class, labels (a map: labels['pid']), dt and identifier from the folders, plus container_key and
series). Counters are cumulative: the table macro rate('NAME') adds delta, seconds and
per_second to each row of counter NAME (per series, resets skipped) and increase('NAME') gives
one row per series with its increase over its range (both refuse a gauge or a name not recorded).
The view `containers` names each container of each run as finemon view does (name: short and
unique, full_name: namespace/pod/container, or the cgroup path off Kubernetes). Times are shown
in UTC. Example:

  finemon query DIR "select name, round(avg(per_second) / 1000) as millicores
                     from rate('container.cpu.usage_usec')
                     join containers using (run_id, container_key)
                     group by name order by millicores desc"

Needs the analysis extra ({INSTALL_HINT}).
"""

SUMMARY_DESCRIPTION = f"""\
Print, per run and per container: the time range seen, CPU in millicores (mean, p95, max), CPU
throttling over the range (throttled periods, their share of all periods, seconds throttled),
working set and PSS in MiB (mean, max) and OOM kills; then the processes with the highest PSS.
Needs the analysis extra ({INSTALL_HINT}).
"""

REPORT_DESCRIPTION = f"""\
Write one self-contained HTML file (plotly.js and the data inlined: it opens offline, from a
file) with interactive charts of CPU, memory and working set, PSS per process, CPU throttling
and pressure stall (PSI), with OOM kills and container starts and stops marked; zoom in one
chart to zoom them all, pick the containers drawn in the side list. Data is downsampled in
DuckDB to at most --max-points values per series, so a day of 1 Hz data for 100 containers
stays light. Needs the analysis extra ({INSTALL_HINT}).
"""


def _at_least(minimum: int) -> Callable[[str], int]:
    """An argparse type: an integer not below ``minimum`` (a usage error otherwise)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        return value

    return parse


DIR_HELP = "a finemon --output-dir, or s3://BUCKET/PREFIX where finemon run --upload ships it"


def _utc_time(text: str) -> datetime:
    found = parse_iso(text)
    if found is None:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 time: {text!r}")
    return found


def add_query_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of ``finemon query``."""
    parser.add_argument("directory", metavar="DIR", help=DIR_HELP)
    parser.add_argument("sql", metavar="SQL", help="the query (DuckDB SQL)")
    parser.add_argument(
        "--from",
        dest="start",
        type=_utc_time,
        metavar="TIME",
        help="only the rows from TIME on (ISO 8601, UTC unless it says otherwise); only the "
        "files that hold such rows are read",
    )
    parser.add_argument(
        "--to",
        dest="end",
        type=_utc_time,
        metavar="TIME",
        help="only the rows up to TIME (included)",
    )
    parser.add_argument(
        "--container",
        action="append",
        metavar="KEY",
        help="only this container's rows (its container_key; repeat for more); node-wide rows "
        "are left out then",
    )
    parser.add_argument(
        "--format",
        choices=("table", "csv"),
        default="table",
        help="output format (default: %(default)s)",
    )
    parser.add_argument(
        "--max-rows",
        type=_at_least(0),
        default=1000,
        metavar="N",
        help="rows printed at most, 0 for all (default: %(default)s)",
    )
    add_source_arguments(parser)


def add_summary_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of ``finemon summary``."""
    parser.add_argument("directory", metavar="DIR", help=DIR_HELP)
    parser.add_argument(
        "--top",
        type=_at_least(0),
        default=10,
        metavar="N",
        help="processes listed per run by PSS (default: %(default)s)",
    )
    add_source_arguments(parser)


def add_report_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of ``finemon report``."""
    parser.add_argument("directory", metavar="DIR", help=DIR_HELP)
    parser.add_argument(
        "-o",
        "--output",
        metavar="FILE",
        help=(
            f"the HTML file to write (default: DIR/{DEFAULT_REPORT_NAME}; for one Parquet file, "
            f"FILE_STEM{REPORT_SUFFIX} beside it; for s3://, ./{BUCKET_REPORT_NAME})"
        ),
    )
    parser.add_argument(
        "--max-points",
        type=_at_least(10),
        default=400,
        metavar="N",
        help="values kept per series at most (default: %(default)s)",
    )
    parser.add_argument(
        "--top-processes",
        type=_at_least(0),
        default=5,
        metavar="N",
        help="processes per container in the PSS chart (default: %(default)s)",
    )
    parser.add_argument("--title", metavar="TEXT", help="the page's title")
    add_source_arguments(parser)


@contextmanager
def _warnings_on_stderr(command: str) -> Iterator[None]:
    """Print the dataset warnings raised inside (unreadable files skipped) as one line each on
    stderr, ``finemon COMMAND: warning: ...``, instead of Python's warning format."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UnreadableFilesWarning)
        try:
            yield
        finally:
            for warning in caught:
                if issubclass(warning.category, UnreadableFilesWarning):
                    print(f"finemon {command}: warning: {warning.message}", file=sys.stderr)
                else:
                    warnings.warn_explicit(
                        warning.message, warning.category, warning.filename, warning.lineno
                    )


def _fail(command: str, exc: AnalysisError) -> int:
    print(f"finemon {command}: error: {exc}", file=sys.stderr)
    return EXIT_FAILURE


def run_query(args: argparse.Namespace) -> int:
    """``finemon query DIR SQL``."""
    from analysis.query_cli import format_csv, format_table, run_query  # noqa: PLC0415

    try:
        with _warnings_on_stderr("query"):
            source = source_of(args.directory, args)
            result = run_query(
                source,
                args.sql,
                max_rows=args.max_rows or None,
                start=args.start,
                end=args.end,
                container_keys=args.container or None,
            )
    except AnalysisError as exc:
        return _fail("query", exc)
    text = format_csv(result) if args.format == "csv" else format_table(result) + "\n"
    sys.stdout.write(text)
    return EXIT_OK


def run_summary(args: argparse.Namespace) -> int:
    """``finemon summary DIR``."""
    from analysis.summary import format_summary, summarize  # noqa: PLC0415

    try:
        with _warnings_on_stderr("summary"):
            runs = summarize(source_of(args.directory, args), top_processes=args.top)
    except AnalysisError as exc:
        return _fail("summary", exc)
    print(format_summary(runs))
    return EXIT_OK


def _describe(result_path: Path, size_bytes: int, data_bytes: int, seconds: float) -> str:
    mb = 1_000_000
    return (
        f"{result_path} ({size_bytes / mb:.1f} MB, of which data {data_bytes / mb:.1f} MB) "
        f"in {seconds:.1f} s"
    )


def run_report(args: argparse.Namespace) -> int:
    """``finemon report DIR [-o FILE]``."""
    from analysis.report import write_report  # noqa: PLC0415

    try:
        source = source_of(args.directory, args)
    except AnalysisError as exc:
        return _fail("report", exc)
    directory = source.local
    if args.output:
        output = Path(args.output)
    elif directory is None:  # a bucket: the report is written here
        output = Path(BUCKET_REPORT_NAME)
    elif directory.is_file():
        # One Parquet file given as the dataset: the report goes beside it.
        output = directory.with_name(f"{directory.stem}{REPORT_SUFFIX}")
    else:
        output = directory / DEFAULT_REPORT_NAME
    try:
        with _warnings_on_stderr("report"):
            result = write_report(
                source,
                output,
                max_points=args.max_points,
                top_processes=args.top_processes,
                title=args.title,
            )
    except AnalysisError as exc:
        return _fail("report", exc)
    print(
        f"wrote {_describe(result.path, result.size_bytes, result.data_bytes, result.seconds)}: "
        f"{result.containers} containers, {result.series} series, one point per "
        f"{result.bucket_seconds:g} s, {result.events} events"
    )
    return EXIT_OK


def report_after_demo(
    output: Path, run_id: str | None = None, container_keys: Sequence[str] | None = None
) -> None:
    """Write the demo's report to ``output/_report.html`` (only run ``run_id`` and the
    containers ``container_keys`` when given) and print its path; without the analysis extra,
    print how to get it instead. Never raises for a report that fails."""
    from analysis.report import write_report  # noqa: PLC0415

    try:
        with _warnings_on_stderr("demo"):
            result = write_report(
                output,
                output / DEFAULT_REPORT_NAME,
                title="finemon demo",
                run_id=run_id,
                container_keys=container_keys,
            )
    except MissingExtraError:
        print(
            f"\nfor an HTML report with charts, install the analysis extra ({INSTALL_HINT}) "
            f"and run: finemon report {output}"
        )
        return
    except AnalysisError as exc:
        print(f"\nno HTML report: {exc}")
        return
    print(f"\nreport (open it in a browser, it works offline): {result.path}")
