"""Command-line entry point of ``finemon``.

Subcommands are looked up in :data:`COMMANDS` (name -> :class:`Command`); adding one is adding an
entry. Exit codes: 0 success (including a stop by SIGINT/SIGTERM), 1 finemon could not start or
failed while running, 2 bad command-line flags. Errors are one line on stderr.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
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
from analysis.mcp_server import MCP_DESCRIPTION, add_mcp_arguments
from analysis.view_cli import VIEW_DESCRIPTION, add_view_arguments
from monitor import __version__
from monitor.config import Config, ConfigError, Environment, add_run_arguments, build_config
from monitor.demo import add_demo_arguments
from monitor.objectstore import S3_INSTALL_HINT
from monitor.signals import SignalWatch
from monitor.supervisor import UploaderSupervisor

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2


class UsageError(Exception):
    """A bad command line; the message is one line."""


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


def configure_logging(level: str) -> None:
    """Log to stderr as ``2024-01-31T23:59:30.125Z INFO finemon message`` (UTC)."""
    formatter = logging.Formatter(
        "%(asctime)s.%(msecs)03dZ %(levelname)s %(name)s %(message)s", "%Y-%m-%dT%H:%M:%S"
    )
    formatter.converter = time.gmtime
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)


def _run(args: argparse.Namespace) -> int:
    try:
        config = build_config(args, Environment.from_os())
    except ConfigError as exc:
        raise UsageError(str(exc)) from None
    # Signals are noted from here on, even while pyarrow is still being imported.
    signals = SignalWatch()
    signals.install()
    uploader = None
    try:
        from monitor import allocator  # noqa: PLC0415

        configure_logging(config.log_level)
        if config.upload is not None:
            uploader = _start_uploader(config)
            if uploader is None:
                return EXIT_FAILURE
        # From before pyarrow is imported: Arrow's C++ code allocates from the C library's
        # allocator (trimmed after each flush), and pandas (~45 MB of RSS) is never loaded.
        allocator.arrow_pool_from_c_library()
        with allocator.pandas_kept_out():
            from monitor.daemon import StartupError, run  # noqa: PLC0415 - pulls in pyarrow

            try:
                code = run(config, signals=signals)
            except StartupError as exc:
                print(f"finemon: error: {exc}", file=sys.stderr)
                if uploader is not None:
                    uploader.kill()
                return EXIT_FAILURE
            if uploader is not None and config.upload is not None:
                uploader.stop(config.upload.final_seconds)
            return code
    finally:
        if uploader is not None:
            uploader.kill()  # no-op after stop(); an exception must not leave it running
        signals.close()


def _start_uploader(config: Config) -> UploaderSupervisor | None:
    """Start ``python -m monitor.upload`` for ``--upload`` (see :mod:`monitor.supervisor`);
    None, with the reason on stderr, when it cannot run here."""
    import importlib.util  # noqa: PLC0415

    from monitor.upload import uploader_command  # noqa: PLC0415

    assert config.upload is not None
    if importlib.util.find_spec("boto3") is None:
        print(
            f"finemon: error: --upload needs boto3, which is not installed ({S3_INSTALL_HINT})",
            file=sys.stderr,
        )
        return None
    command = uploader_command(config.upload, config.output_dir, os.getpid())
    supervisor = UploaderSupervisor(command)
    try:
        supervisor.start()
    except OSError as exc:
        print(f"finemon: error: cannot start the uploader: {exc}", file=sys.stderr)
        return None
    return supervisor


def _demo(args: argparse.Namespace) -> int:
    from monitor.demo import run_demo  # noqa: PLC0415 - pulls in pyarrow

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


def _view(args: argparse.Namespace) -> int:
    from analysis.view_cli import run_view  # noqa: PLC0415 - the web server (view extra)

    return run_view(args)


def _mcp(args: argparse.Namespace) -> int:
    from analysis.mcp_server import run_mcp  # noqa: PLC0415 - duckdb and the mcp SDK (extras)

    return run_mcp(args)


def _version(args: argparse.Namespace) -> int:
    print(f"finemon {__version__}")
    return EXIT_OK


RUN_DESCRIPTION = """\
Sample every container's cgroup and /proc metrics on a fixed tick grid and record them into
Parquet files under --output-dir (DIR/dt=YYYY-MM-DD/identifier=ID/*.parquet, readable by pandas,
pyarrow, DuckDB and Spark as a Hive-partitioned dataset), with a session manifest
DIR/_session.json and DIR/_sessions/RUN_ID.json.

SIGINT/SIGTERM stop cleanly (the last file is finalized, exit 0); a second signal cuts the drain
short and leaves the journal for the next start, which recovers it. Reaching --size-limit or a
full disk stops recording but keeps finemon up, idle, until it is signalled or space is freed
(then it records again as a new run). Env: POD_NAME, NODE_NAME and
CLUSTER_NAME (Kubernetes downward API) give the defaults of --identifier, --node-name and
--cluster-name; FINEMON_GIT_REV is recorded in the manifest.
"""

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
        run=_run,
        description=RUN_DESCRIPTION,
    ),
    "demo": Command(
        help="record a small demo node (real cgroups and workloads) for a minute and summarize",
        add_arguments=add_demo_arguments,
        run=_demo,
        description=DEMO_DESCRIPTION,
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
