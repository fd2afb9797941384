"""``finemon compact``: its flags and what it runs.

Exit codes: 0 done (including nothing to do), 1 the directory could not be compacted (missing,
not writable, another compaction running there) or a group failed, 2 bad flags (raised by the
umbrella command's parser).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from monitor.compaction import plan
from monitor.config import compression_level, size

COMPACT_DESCRIPTION = """\
Merge the finished Parquet files of each partition (dt=DAY/identifier=ID) of a finemon output
directory into files of 128 MiB to 1 GiB, rows ordered by metric, container and time, once they
are older than --older-than. Readers may read the directory meanwhile: none ever counts a row
twice or misses one (one that lists the files during the swap gets an error, and the right
answer when it tries again), and a compaction killed at any point is finished by the next one.
Running it again compacts only what is new. See docs/compaction.md.
"""


def older_than(text: str) -> float:
    """argparse type: a duration (``0s``, ``90s``, ``15m``, ``1h``, ``2d``) in seconds."""
    try:
        return plan.parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_compact_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of ``finemon compact``."""
    parser.add_argument("directory", metavar="DIR", help="a finemon --output-dir")
    parser.add_argument(
        "--older-than",
        type=older_than,
        default=plan.DEFAULT_OLDER_THAN_SECONDS,
        metavar="DURATION",
        help="compact only files published at least this long ago, e.g. 0s (every finished "
        "file), 30m, 1h, 2d (default: 1h)",
    )
    parser.add_argument(
        "--target-size",
        type=size,
        default=plan.TARGET_FILE_BYTES,
        metavar="SIZE",
        help="close a compacted file once its inputs reach SIZE; files of at least 128MiB are "
        "left alone and no compacted file exceeds 1GiB of inputs (default: 512MiB)",
    )
    parser.add_argument(
        "--compression-level",
        type=compression_level,
        default=3,
        metavar="N",
        help="ZSTD level of the compacted files, 1..22 (default: %(default)s)",
    )
    parser.add_argument("--log-level", default="INFO", metavar="LEVEL")


def run_compact(args: argparse.Namespace) -> int:
    """Run ``finemon compact`` with its parsed flags; returns the exit code."""
    from monitor.compaction.process import use_memory_policy  # noqa: PLC0415

    use_memory_policy()
    from monitor.cli import configure_logging  # noqa: PLC0415
    from monitor.compaction.local import (  # noqa: PLC0415 - pyarrow, not at parser build
        CompactionBusyError,
        CompactionSettings,
        compact_directory,
    )

    configure_logging(str(args.log_level).upper())
    directory = str(args.directory)
    if directory.startswith(("s3://", "s3a://")):
        print(
            "finemon compact: error: compacting a bucket directly is not supported yet: compact "
            "the output directory (finemon run --compact-older-than, or finemon compact DIR), "
            "and its uploader replaces the objects in the bucket",
            file=sys.stderr,
        )
        return 1
    settings = CompactionSettings(
        older_than_seconds=float(args.older_than),
        target_bytes=min(int(args.target_size), plan.MAX_FILE_BYTES),
        compression_level=int(args.compression_level),
    )
    try:
        report = compact_directory(Path(directory), settings)
    except (CompactionBusyError, OSError) as exc:
        print(f"finemon compact: error: {exc}", file=sys.stderr)
        return 1
    print(
        f"compacted {report.files_replaced} files into {report.files_written} in "
        f"{report.partitions} partitions: {report.rows} rows, {report.input_bytes} bytes into "
        f"{report.output_bytes} bytes, in {report.seconds:.1f} s"
        + (
            f"; finished {report.interrupted_finished} interrupted compactions"
            if report.interrupted_finished
            else ""
        )
    )
    for where, reason in report.failed:
        print(f"finemon compact: error: {where}: {reason}", file=sys.stderr)
    return 1 if report.failed else 0
