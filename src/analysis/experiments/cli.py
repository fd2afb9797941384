"""The ``finemon compare`` and ``finemon check`` commands: flags, help and what they run.

Importing this module is cheap (no duckdb, numpy or yaml). ``finemon compare`` exits 0 with its
output, 1 (one line on stderr) when a side cannot be read or selects nothing; ``finemon check``
exits 0 when every bound holds, 1 when one fails (or the data cannot be read), 2 for a bounds
file that is not valid (the message names its line).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from analysis.errors import INSTALL_HINT, AnalysisError
from analysis.source import add_source_arguments, source_of

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_BAD_BOUNDS = 2

SELECTOR_HELP = (
    "a run id or its prefix, variant=NAME (runs recorded with finemon run --variant NAME), or "
    "FROM..TO (ISO 8601, UTC; either side may be left out)"
)

COMPARE_DESCRIPTION = f"""\
Compare two selections of runs container by container: CPU millicores, throttled share, memory
usage, working set, RSS, PSS (summed over the container's processes), OOM kills and PSI some
avg10, each side's mean, p50, p95 and max, the change with its 90 % interval from a
moving-block bootstrap (it respects autocorrelation), and a verdict: regression (the interval
above 0 and the change at least --min-change percent; higher is worse for every one of
them), improvement, or no change. Containers are matched across runs by
namespace/workload/container (the pod name without its ReplicaSet hash and random suffix; a
StatefulSet keeps its ordinal), host cgroups by path; what matches nothing is listed apart.
The baseline comes from DIR, the comparison from DIR2 when given. See docs/experiments.md.
Needs the analysis extra ({INSTALL_HINT}).
"""

CHECK_DESCRIPTION = f"""\
Check the bounds of a YAML file on the runs of DIR (all of them, or --run SEL) and print each
bound with the value measured and whether it holds. Each entry: container (namespace/workload/
container, * and ? allowed), metric (as in the files), statistic (mean, p50, p95, p99, max,
increase), min: and/or max: (a number or a size such as 255MiB). A bound that matches no data
fails. Exit code 0 when every bound holds, 1 when one fails, 2 for a bad bounds file (naming
the line). --junit FILE writes JUnit XML for CI. See docs/experiments.md. Needs the analysis
extra ({INSTALL_HINT}).
"""


def _percent(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0.0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a percentage of at least 0, got {text!r}")
    return value


def add_compare_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of ``finemon compare``."""
    from analysis.experiments.render import FORMATS  # noqa: PLC0415 - only names, no numpy

    parser.add_argument(
        "directory",
        metavar="DIR",
        help="the baseline's dataset (and the comparison's without DIR2): a finemon "
        "--output-dir or s3://BUCKET/PREFIX",
    )
    parser.add_argument(
        "directory2", metavar="DIR2", nargs="?", help="the comparison's dataset (default: DIR)"
    )
    parser.add_argument("--baseline", required=True, metavar="SEL", help=SELECTOR_HELP)
    parser.add_argument("--comparison", required=True, metavar="SEL", help=SELECTOR_HELP)
    parser.add_argument(
        "--phase",
        metavar="NAME",
        help="keep only what follows the mark NAME (finemon mark) in each run, and align there",
    )
    parser.add_argument(
        "--format", choices=FORMATS, default="text", help="output format (default: %(default)s)"
    )
    parser.add_argument(
        "--min-change",
        type=_percent,
        default=5.0,
        metavar="PCT",
        help="smallest change, in percent of the baseline, that counts as a regression or an "
        "improvement (default: %(default)g)",
    )
    parser.add_argument("-o", "--output", metavar="FILE", help="write there instead of stdout")
    add_source_arguments(parser)


def add_check_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of ``finemon check``."""
    parser.add_argument(
        "directory", metavar="DIR", help="a finemon --output-dir, or s3://BUCKET/PREFIX"
    )
    parser.add_argument("--bounds", required=True, metavar="FILE.yaml", help="the bounds")
    parser.add_argument(
        "--run", metavar="SEL", help=f"the runs checked: {SELECTOR_HELP} (default: every run)"
    )
    parser.add_argument("--junit", metavar="FILE", help="also write the results as JUnit XML")
    add_source_arguments(parser)


def _write(text: str, output: str | None) -> None:
    if output is None:
        sys.stdout.write(text)
        return
    Path(output).write_text(text, encoding="utf-8")
    print(f"wrote {output}", file=sys.stderr)


def run_compare(args: argparse.Namespace) -> int:
    """``finemon compare DIR [DIR2] --baseline SEL --comparison SEL``."""
    from analysis.experiments.compare import compare  # noqa: PLC0415 - duckdb and numpy
    from analysis.experiments.render import render  # noqa: PLC0415

    try:
        baseline_dir = source_of(args.directory, args)
        comparison_dir = (
            baseline_dir if args.directory2 is None else source_of(args.directory2, args)
        )
        result = compare(
            baseline_dir,
            args.baseline,
            comparison_dir,
            args.comparison,
            phase=args.phase,
            min_change_percent=args.min_change,
        )
        text = render(result, args.format)
        _write(text, args.output)
    except AnalysisError as exc:
        print(f"finemon compare: error: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    except OSError as exc:
        print(f"finemon compare: error: {args.output}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_FAILURE
    return EXIT_OK


def run_check(args: argparse.Namespace) -> int:
    """``finemon check DIR --bounds FILE.yaml [--run SEL] [--junit FILE]``."""
    from analysis.experiments.check import (  # noqa: PLC0415 - duckdb, numpy and yaml
        BoundsError,
        check,
        format_results,
        junit_xml,
        read_bounds,
    )

    try:
        bounds = read_bounds(Path(args.bounds))
    except BoundsError as exc:
        print(f"finemon check: error: {exc}", file=sys.stderr)
        return EXIT_BAD_BOUNDS
    except AnalysisError as exc:  # yaml missing
        print(f"finemon check: error: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    try:
        results = check(source_of(args.directory, args), bounds, args.run)
    except AnalysisError as exc:
        print(f"finemon check: error: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    sys.stdout.write(format_results(results))
    if args.junit:
        try:
            Path(args.junit).write_bytes(junit_xml(results))
        except OSError as exc:
            print(f"finemon check: error: {args.junit}: {exc.strerror or exc}", file=sys.stderr)
            return EXIT_FAILURE
    return EXIT_OK if all(result.holds for result in results) else EXIT_FAILURE
