"""``finemon compact``: its flags and what it runs.

Exit codes: 0 done (including nothing to do), 1 the directory could not be compacted (missing,
not writable, another compaction running there) or a group failed, 2 bad flags (raised by the
umbrella command's parser).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from common.objectstore import StoreError, add_store_arguments, is_s3_url
from monitor.compaction import plan
from monitor.config import compression_level, size

if TYPE_CHECKING:
    from monitor.compaction.local import CompactionReport, CompactionSettings

COMPACT_DESCRIPTION = """\
Merge the finished Parquet files of each partition (dt=DAY/identifier=ID) of a finemon output
directory into files of 128 MiB to 1 GiB, rows ordered by metric, container and time, once they
are older than --older-than. Readers may read the directory meanwhile: none ever counts a row
twice or misses one (one that lists the files during the swap gets an error, and the right
answer when it tries again), and a compaction killed at any point is finished by the next one.
Running it again compacts only what is new. On s3://BUCKET/PREFIX (where finemon run --upload
ships the files) each group's objects are downloaded to a temporary folder, merged there and
swapped in the bucket the same way. See docs/compaction.md.
"""


def older_than(text: str) -> float:
    """argparse type: a duration (``0s``, ``90s``, ``15m``, ``1h``, ``2d``) in seconds."""
    try:
        return plan.parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_compact_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of ``finemon compact``."""
    parser.add_argument(
        "directory",
        metavar="DIR",
        help="a finemon --output-dir, or s3://BUCKET/PREFIX where finemon run --upload ships it",
    )
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
    group = parser.add_argument_group("an s3://BUCKET/PREFIX (needs the s3 extra)")
    add_store_arguments(group)
    group.add_argument(
        "--work-dir",
        metavar="DIR",
        help="where a group's objects are downloaded and merged: about three times the group "
        "(at most 1GiB of inputs) free (default: the system's temporary folder)",
    )


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
    settings = CompactionSettings(
        older_than_seconds=float(args.older_than),
        target_bytes=min(int(args.target_size), plan.MAX_FILE_BYTES),
        compression_level=int(args.compression_level),
    )
    try:
        if is_s3_url(directory):
            report = _compact_bucket(args, settings)
        else:
            report = compact_directory(Path(directory), settings)
    except (CompactionBusyError, StoreError, OSError, ValueError) as exc:
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


def _compact_bucket(args: argparse.Namespace, settings: CompactionSettings) -> CompactionReport:
    """``finemon compact s3://...``; raises ValueError for a bad URL, StoreError, OSError."""
    from common.objectstore import ObjectStore, StoreSettings, parse_s3_url  # noqa: PLC0415
    from monitor.compaction.bucket import compact_bucket  # noqa: PLC0415

    # The SDK's lines (credentials found, each request) are not the command's.
    for noisy in ("botocore", "boto3", "urllib3", "s3transfer"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    store = ObjectStore(
        parse_s3_url(str(args.directory)),
        StoreSettings(endpoint_url=args.endpoint, region=args.region),
    )
    work_dir = Path(args.work_dir) if args.work_dir else None
    return compact_bucket(store, settings, work_dir=work_dir)
