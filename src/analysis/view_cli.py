"""The ``finemon view`` command: flags, help and what it runs.

Importing this module is cheap (no duckdb, no web server): ``finemon.cli`` builds its parser from
it for every command.
"""

from __future__ import annotations

import argparse
import sys

from analysis.cli import DIR_HELP
from analysis.errors import AnalysisError
from analysis.source import add_source_arguments, local_directory, mirror_sync
from common.exit_codes import EXIT_FAILURE, EXIT_OK

VIEW_INSTALL_HINT = "pip install 'finemon[view]'"

VIEW_DESCRIPTION = f"""\
Serve a web page over the dataset in DIR (on http://127.0.0.1:8050/ by default) until
interrupted: search containers by name and filter them by namespace, pod, QoS class and node;
search metrics; add panels (a metric over the picked containers, or the PSS of one container's
processes), whose zoom and cursor move together; filter a metric's series by their labels
(the watched agent's tags); put what the agent reported about a container beside finemon's
figures ("reported vs observed"); overlay two runs aligned at their start or at a phase;
pick the range on an overview strip; OOM kills, container starts and stops and the runs'
phases marked on every chart; study a series (its period, by autocorrelation, and the points
where its mean changes); live mode follows the files finemon
writes as they land (for s3://, the mirror is brought up to date every 15 s while live). The
view is kept in the page's address (a link reopens it) and can be saved and loaded as a JSON
dashboard. Data is downsampled by the server to the chart's width. The page and its chart
library (uPlot) are served from the package: nothing is fetched from the network. Read-only.
Needs the view extra ({VIEW_INSTALL_HINT}).
"""


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be from 0 to 65535, got {value}")
    return value


def add_view_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of ``finemon view``."""
    parser.add_argument("directory", metavar="DIR", help=DIR_HELP)
    parser.add_argument(
        "--port",
        type=_port,
        default=8050,
        help="TCP port to listen on, 0 for any free one (default: %(default)s)",
    )
    parser.add_argument(
        "--address",
        default="127.0.0.1",
        help="address to listen on (default: %(default)s, this machine only; the page has no "
        "authentication: another address lets anyone who reaches it read the dataset)",
    )
    add_source_arguments(parser)


def run_view(args: argparse.Namespace) -> int:
    """``finemon view DIR``: serve until interrupted (Ctrl-C exits 0)."""
    from analysis.view import is_loopback, serve  # noqa: PLC0415 - starlette, uvicorn, duckdb

    try:
        directory = local_directory(args.directory, args)
        sync = mirror_sync(args.directory, args)
        if not is_loopback(args.address):
            print(
                f"finemon view: warning: listening on {args.address}: anyone who can reach "
                "this address can read the dataset (no authentication)",
                file=sys.stderr,
            )
        serve(directory, port=args.port, address=args.address, resync=sync)
    except KeyboardInterrupt:  # uvicorn re-raises the SIGINT it stopped on; so may an early one
        return EXIT_OK
    except AnalysisError as exc:
        print(f"finemon view: error: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    except OSError as exc:  # the port is taken, the address is not ours
        print(f"finemon view: error: cannot listen on {args.address}:{args.port}: {exc}",
              file=sys.stderr)  # fmt: skip
        return EXIT_FAILURE
    return EXIT_OK
