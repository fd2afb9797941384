"""The ``finemon`` command: one parser over every subcommand, each run by its own layer.

Subcommands are looked up in :data:`COMMANDS` (name -> :class:`Command`); adding one is adding an
entry. ``finemon run`` is the daemon's (:mod:`monitor.cli`), ``mark`` and ``compact`` too
(:mod:`monitor.phases`, :mod:`monitor.compaction.cli`), ``demo`` this package's
(:mod:`finemon.demo`), ``query``, ``summary``, ``report``, ``compare``, ``check``, ``mcp`` and
``view`` the analysis's;
building the parser imports none of their heavy dependencies. Exit codes: 0 success (including a
stop by SIGINT/SIGTERM), 1 finemon could not start or failed while running, 2 bad command-line
flags. Errors are one line on stderr. ``python -m finemon`` is the same command.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import NoReturn

from analysis.cli import (
    QUERY_DESCRIPTION,
    REPORT_DESCRIPTION,
    SUMMARY_DESCRIPTION,
    add_query_arguments,
    add_report_arguments,
    add_summary_arguments,
)
from analysis.experiments.cli import (
    CHECK_DESCRIPTION,
    COMPARE_DESCRIPTION,
    add_check_arguments,
    add_compare_arguments,
)
from analysis.mcp_server import MCP_DESCRIPTION, add_mcp_arguments
from analysis.view_cli import VIEW_DESCRIPTION, add_view_arguments
from common.exit_codes import EXIT_OK, EXIT_USAGE
from common.version import __version__
from finemon.catalog import CATALOG_DESCRIPTION, add_catalog_arguments, run_catalog
from finemon.demo import add_demo_arguments
from monitor.cli import (
    RUN_DESCRIPTION,
    UsageError,
    configure_logging,
    run_command,
)
from monitor.compaction.cli import COMPACT_DESCRIPTION, add_compact_arguments, run_compact
from monitor.config import add_run_arguments
from monitor.phases import MARK_DESCRIPTION, add_mark_arguments, run_mark


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are a single line (no usage dump)."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


@dataclass(frozen=True, slots=True)
class Command:
    """A ``finemon`` subcommand: its one-line help, its flags and what it runs."""

    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]
    description: str = ""


def _demo(args: argparse.Namespace) -> int:
    from finemon.demo import run_demo  # noqa: PLC0415 - pulls in pyarrow

    configure_logging("WARNING")
    return run_demo(args)


def _query(args: argparse.Namespace) -> int:
    from analysis.cli import run_query  # noqa: PLC0415 - duckdb, from the analysis extra

    return run_query(args)


def _summary(args: argparse.Namespace) -> int:
    from analysis.cli import run_summary  # noqa: PLC0415 - duckdb, from the analysis extra

    return run_summary(args)


def _report(args: argparse.Namespace) -> int:
    from analysis.cli import run_report  # noqa: PLC0415 - duckdb and plotly (analysis extra)

    return run_report(args)


def _compare(args: argparse.Namespace) -> int:
    from analysis.experiments.cli import run_compare  # noqa: PLC0415 - duckdb and numpy

    return run_compare(args)


def _check(args: argparse.Namespace) -> int:
    from analysis.experiments.cli import run_check  # noqa: PLC0415 - duckdb, numpy and yaml

    return run_check(args)


def _view(args: argparse.Namespace) -> int:
    from analysis.view_cli import run_view  # noqa: PLC0415 - the web server (view extra)

    return run_view(args)


def _mcp(args: argparse.Namespace) -> int:
    from analysis.mcp_server import run_mcp  # noqa: PLC0415 - duckdb and the mcp SDK (extras)

    return run_mcp(args)


def _catalog(args: argparse.Namespace) -> int:
    configure_logging("WARNING")
    return run_catalog(args)


def _version(args: argparse.Namespace) -> int:
    print(f"finemon {__version__}")
    return EXIT_OK


DEMO_DESCRIPTION = """\
Build a kubelet-shaped tree of real cgroups with three small real workloads (one burning a CPU,
one growing its memory, one idle) and the log files kubelet would write, record them with
finemon run for --seconds, print a summary per container (CPU, memory, PSS) and remove
everything it created. Needs root and a writable cgroup hierarchy; without them it records the
host's own cgroups instead and says why.
"""

#: The subcommands of ``finemon``, by name.
COMMANDS: dict[str, Command] = {
    "run": Command(
        help="record container metrics into Parquet until stopped",
        add_arguments=add_run_arguments,
        run=run_command,
        description=RUN_DESCRIPTION,
    ),
    "mark": Command(
        help="tell the finemon run recording into a directory that a phase starts now",
        add_arguments=add_mark_arguments,
        run=run_mark,
        description=MARK_DESCRIPTION,
    ),
    "demo": Command(
        help="record a small demo node (real cgroups and workloads) for a minute and summarize",
        add_arguments=add_demo_arguments,
        run=_demo,
        description=DEMO_DESCRIPTION,
    ),
    "compact": Command(
        help="merge each partition's finished files into large sorted ones, safely for readers",
        add_arguments=add_compact_arguments,
        run=run_compact,
        description=COMPACT_DESCRIPTION,
    ),
    "query": Command(
        help="run SQL (DuckDB) over an output directory: metrics view, rate() and increase()",
        add_arguments=add_query_arguments,
        run=_query,
        description=QUERY_DESCRIPTION,
    ),
    "summary": Command(
        help="print CPU, throttling, memory, PSS and OOM kills per run and container",
        add_arguments=add_summary_arguments,
        run=_summary,
        description=SUMMARY_DESCRIPTION,
    ),
    "report": Command(
        help="write a self-contained HTML report with interactive charts",
        add_arguments=add_report_arguments,
        run=_report,
        description=REPORT_DESCRIPTION,
    ),
    "compare": Command(
        help="compare two sets of runs container by container: changes, intervals, verdicts",
        add_arguments=add_compare_arguments,
        run=_compare,
        description=COMPARE_DESCRIPTION,
    ),
    "check": Command(
        help="check bounds (YAML) on a run's metrics; exit 1 when one fails, for CI",
        add_arguments=add_check_arguments,
        run=_check,
        description=CHECK_DESCRIPTION,
    ),
    "mcp": Command(
        help="serve a dataset to AI agents over MCP (stdio or HTTP): series, analysis, SQL",
        add_arguments=add_mcp_arguments,
        run=_mcp,
        description=MCP_DESCRIPTION,
    ),
    "view": Command(
        help="serve a live web viewer of an output directory (search, panels, studies)",
        add_arguments=add_view_arguments,
        run=_view,
        description=VIEW_DESCRIPTION,
    ),
    "catalog": Command(
        help="register an output directory's files in an Apache Iceberg table (in place)",
        add_arguments=add_catalog_arguments,
        run=_catalog,
        description=CATALOG_DESCRIPTION,
    ),
    "version": Command(
        help="print the version",
        add_arguments=lambda parser: None,
        run=_version,
    ),
}


def build_parser() -> argparse.ArgumentParser:
    """The ``finemon`` parser with every command of :data:`COMMANDS`."""
    parser = _Parser(
        prog="finemon",
        description="finemon: high-resolution container monitor (cgroup and /proc metrics into "
        "Parquet).",
    )
    parser.add_argument("--version", action="version", version=f"finemon {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, command in COMMANDS.items():
        sub = subparsers.add_parser(
            name,
            help=command.help,
            description=command.description or command.help,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        command.add_arguments(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``finemon`` command; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        return COMMANDS[args.command].run(args)
    except UsageError as exc:
        print(f"finemon {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    raise SystemExit(main())
