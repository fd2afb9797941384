"""``finemon catalog DIR|s3://BUCKET/PREFIX --uri URI [--warehouse W] [--table NS.NAME]``: register
an output directory's files, or a bucket's objects, in an Apache Iceberg table
(:mod:`common.iceberg`)."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from common.exit_codes import EXIT_FAILURE, EXIT_OK, EXIT_USAGE
from common.objectstore import StoreSettings, add_store_arguments, is_s3_url, parse_s3_url

CATALOG_DESCRIPTION = """\
Register every finished Parquet file of DIR (or every data object of s3://BUCKET/PREFIX, where
finemon run --upload ships them) in an Apache Iceberg table, in place (no data is copied), in
one commit: files the table does not hold yet are added, files it holds that are gone (compacted,
or removed by the size limit) are removed. Run it again and it registers only what is new. The
table is partitioned by day(time), cluster_name and node_name.
URI is a SQLAlchemy URL of a SQL catalog (sqlite:///catalog.db for one machine,
postgresql+psycopg2://... for a team) or a REST catalog's http(s) URL. Needs the iceberg extra.
"""


def add_catalog_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of ``finemon catalog``."""
    parser.add_argument(
        "directory",
        metavar="DIR",
        help="finemon's output directory, or s3://BUCKET/PREFIX where finemon run --upload "
        "ships it",
    )
    parser.add_argument(
        "--uri",
        required=True,
        metavar="URI",
        help="the catalog: a SQLAlchemy URL (SQL catalog) or an http(s) URL (REST catalog)",
    )
    parser.add_argument(
        "--warehouse",
        metavar="W",
        default=None,
        help="where the table's metadata goes (default for a SQL catalog: DIR/_iceberg, or "
        "s3://BUCKET/PREFIX/_iceberg, which dataset readers skip)",
    )
    parser.add_argument(
        "--table",
        metavar="NS.NAME",
        default="finemon.metrics",
        help="the table (default: finemon.metrics)",
    )
    group = parser.add_argument_group("an s3://BUCKET/PREFIX (needs the s3 extra)")
    add_store_arguments(group)


def run_catalog(args: argparse.Namespace) -> int:
    """Run ``finemon catalog``; 0 when the table is up to date, 1 on a catalog or store error,
    2 on a bad directory or URL."""
    from common.iceberg import (  # noqa: PLC0415 - pyiceberg, only when asked
        DEFAULT_WAREHOUSE_DIR,
        CatalogError,
        Registration,
        open_catalog,
        register,
        register_bucket,
    )
    from common.objectstore import StoreError  # noqa: PLC0415

    # pyiceberg warns of each file's label map, which has no statistics on purpose.
    logging.getLogger("pyiceberg.io.pyarrow").setLevel(logging.ERROR)
    rest = args.uri.startswith(("http://", "https://"))
    warehouse = args.warehouse
    result: Registration
    if is_s3_url(args.directory):
        try:
            location = parse_s3_url(args.directory)
        except ValueError as exc:
            print(f"finemon catalog: error: {exc}", file=sys.stderr)
            return EXIT_USAGE
        if warehouse is None and not rest:
            warehouse = f"{location.url}/{DEFAULT_WAREHOUSE_DIR}"
        settings = StoreSettings(endpoint_url=args.endpoint, region=args.region)
        try:
            catalog = open_catalog(args.uri, warehouse, settings)
            result = register_bucket(location, settings, catalog, args.table)
        except (CatalogError, StoreError) as exc:
            print(f"finemon catalog: error: {exc}", file=sys.stderr)
            return EXIT_FAILURE
    else:
        directory = Path(args.directory)
        if not directory.is_dir():
            print(f"finemon catalog: error: {directory} is not a directory", file=sys.stderr)
            return EXIT_USAGE
        if warehouse is None and not rest:
            warehouse = (directory / DEFAULT_WAREHOUSE_DIR).resolve().as_uri()
        try:
            catalog = open_catalog(args.uri, warehouse)
            result = register(directory, catalog, args.table)
        except CatalogError as exc:
            print(f"finemon catalog: error: {exc}", file=sys.stderr)
            return EXIT_FAILURE
    snapshot = f", snapshot {result.snapshot_id}" if result.snapshot_id is not None else ""
    print(
        f"{result.table}: {len(result.added)} files added, {len(result.removed)} removed, "
        f"{result.known} already registered, {len(result.skipped)} skipped{snapshot}"
    )
    for path, reason in result.skipped:
        print(f"  skipped {path}: {reason}")
    return EXIT_OK
