"""The uploader process's flags and entry: ``python -m monitor.shipping``.

``finemon run --upload`` starts it with the command line of
:func:`monitor.shipping.flags.uploader_command`; it can also be run on its own. Exit codes: 0
done (nothing left with ``--once``), 1 it could not start, ``--once`` left files, or a second
signal stopped it at once; 2 bad flags.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from common.objectstore import (
    DEFAULT_PART_SIZE_BYTES,
    MIN_PART_SIZE_BYTES,
    ObjectStore,
    StoreError,
    StoreSettings,
    parse_s3_url,
)
from monitor.shipping.catalog import TableRegistrar
from monitor.shipping.flags import (
    DEFAULT_CATALOG_TABLE,
    DEFAULT_FINAL_SECONDS,
    DEFAULT_INTERVAL_SECONDS,
    positive_seconds,
)
from monitor.shipping.loop import HardStop, UploaderLoop, UploaderSettings, UploaderSignals
from monitor.shipping.ship import Uploader

log = logging.getLogger("finemon.upload")


def _configure_logging(level: str) -> None:
    """The same format as ``finemon run``'s log (``monitor.cli.configure_logging``), without
    importing the command's modules into this process."""
    formatter = logging.Formatter(
        "%(asctime)s.%(msecs)03dZ %(levelname)s %(name)s %(message)s", "%Y-%m-%dT%H:%M:%S"
    )
    formatter.converter = time.gmtime
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # The SDK's request-by-request lines are not finemon's (and would print signatures).
    for noisy in ("botocore", "boto3", "urllib3", "s3transfer"):
        logging.getLogger(noisy).setLevel(max(logging.INFO, root.level))


def build_parser() -> argparse.ArgumentParser:
    """Flags of ``python -m monitor.shipping``."""
    parser = argparse.ArgumentParser(
        prog="python -m monitor.shipping",
        description="Upload finemon's published Parquet files and run manifests from an output "
        "directory to s3://BUCKET/PREFIX under the same layout, verified; see finemon run "
        "--upload (which starts this process itself).",
    )
    parser.add_argument("--output-dir", required=True, metavar="DIR")
    parser.add_argument("--to", required=True, metavar="URL", help="s3://BUCKET[/PREFIX]")
    parser.add_argument("--endpoint", metavar="URL", help="an S3-compatible store's endpoint")
    parser.add_argument("--region", metavar="REGION")
    parser.add_argument("--delete", action="store_true", help="delete verified data files")
    parser.add_argument("--interval", type=positive_seconds, default=DEFAULT_INTERVAL_SECONDS)
    parser.add_argument("--final-seconds", type=positive_seconds, default=DEFAULT_FINAL_SECONDS)
    parser.add_argument(
        "--part-size",
        type=int,
        default=DEFAULT_PART_SIZE_BYTES,
        metavar="BYTES",
        help=f"files above this go up in parts of this size (at least {MIN_PART_SIZE_BYTES})",
    )
    parser.add_argument(
        "--parent-pid", type=int, metavar="PID", help="make a last pass and exit when it is gone"
    )
    parser.add_argument(
        "--catalog-uri",
        metavar="URI",
        help="register uploaded data objects in this Iceberg catalog (finemon run's "
        "--upload-catalog-uri)",
    )
    parser.add_argument("--catalog-table", default=DEFAULT_CATALOG_TABLE, metavar="NS.NAME")
    parser.add_argument("--catalog-warehouse", metavar="W")
    parser.add_argument(
        "--once",
        action="store_true",
        help="one pass (with retries up to "
        "--final-seconds), then exit: 0 if nothing is left, else 1",
    )
    parser.add_argument("--log-level", default="INFO", metavar="LEVEL")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the uploader; returns the exit code (2 for bad flags, 1 when it cannot start)."""
    args = build_parser().parse_args(argv)
    _configure_logging(args.log_level.upper())
    signals = UploaderSignals()
    signals.install()
    try:
        try:
            location = parse_s3_url(args.to)
            store = ObjectStore(
                location,
                StoreSettings(endpoint_url=args.endpoint, region=args.region),
                part_size_bytes=args.part_size,
            )
        except (ValueError, StoreError) as exc:
            print(f"finemon upload: error: {exc}", file=sys.stderr)
            return 1
        store.on_part = lambda number, count: log.debug("part %d/%d uploaded", number, count)
        settings = UploaderSettings(
            output_dir=Path(args.output_dir),
            interval_seconds=args.interval,
            final_seconds=args.final_seconds,
            parent_pid=args.parent_pid,
            once=args.once,
        )
        log.info(
            "uploader started to=%s dir=%s delete=%s interval=%gs",
            location.url,
            settings.output_dir,
            args.delete,
            settings.interval_seconds,
        )
        registrar = None
        if args.catalog_uri:
            registrar = TableRegistrar(
                location,
                store.settings,
                uri=args.catalog_uri,
                table=args.catalog_table,
                warehouse=args.catalog_warehouse,
            )
            log.info("registering in catalog table=%s", args.catalog_table)
        uploader = Uploader(settings.output_dir, store, delete=args.delete, registrar=registrar)
        return UploaderLoop(uploader, settings, signals).run()
    except HardStop:
        log.warning("second signal: stopping at once (what is left is uploaded at next start)")
        return 1
    finally:
        signals.close()
