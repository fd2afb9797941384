"""``finemon run``'s ``--upload*`` flags, their settings, and the uploader's command line."""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

from common.objectstore import S3Location, parse_s3_url

#: Seconds between passes by default.
DEFAULT_INTERVAL_SECONDS = 10.0
#: Time for the last pass at shutdown by default.
DEFAULT_FINAL_SECONDS = 10.0
#: The Iceberg table ``--upload-catalog-uri`` registers objects in by default (the same as
#: ``finemon catalog``'s; common.iceberg is not imported here: it is pyiceberg's side).
DEFAULT_CATALOG_TABLE = "finemon.metrics"


@dataclass(frozen=True, slots=True)
class UploadConfig:
    """``finemon run``'s upload settings (the ``--upload*`` flags)."""

    url: str
    endpoint_url: str | None = None
    region: str | None = None
    delete: bool = False
    interval_seconds: float = DEFAULT_INTERVAL_SECONDS
    final_seconds: float = DEFAULT_FINAL_SECONDS
    #: ``--upload-catalog-uri``: register every uploaded data object in this Iceberg catalog.
    catalog_uri: str | None = None
    catalog_table: str = DEFAULT_CATALOG_TABLE
    catalog_warehouse: str | None = None

    @property
    def location(self) -> S3Location:
        """The bucket and prefix of :attr:`url`."""
        return parse_s3_url(self.url)


def positive_seconds(text: str) -> float:
    """argparse type: a number of seconds greater than 0 (and finite)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be greater than 0 seconds, got {text!r}")
    return value


def add_upload_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``finemon run``'s ``--upload*`` flags to ``parser``."""
    group = parser.add_argument_group("upload to object storage (needs the s3 extra)")
    group.add_argument(
        "--upload",
        metavar="URL",
        help="ship every published Parquet file and run manifest to s3://BUCKET/PREFIX, under "
        "the same layout (PREFIX/dt=.../identifier=.../FILE.parquet, PREFIX/_sessions/RUN_ID"
        ".json), from a separate uploader process; credentials from the standard AWS chain "
        "(env, shared files, web identity/IRSA, instance metadata) (default: off)",
    )
    group.add_argument(
        "--upload-endpoint",
        metavar="URL",
        help="endpoint of an S3-compatible store, e.g. http://minio:9000 (path-style "
        "addressing) (default: AWS S3)",
    )
    group.add_argument(
        "--upload-region",
        metavar="REGION",
        help="the bucket's region (default: the AWS chain's, e.g. $AWS_REGION)",
    )
    group.add_argument(
        "--upload-delete",
        action="store_true",
        help="delete each data file locally once the store holds it, verified (size and MD5); "
        "this frees space under --size-limit, and recording resumes when it does",
    )
    group.add_argument(
        "--upload-interval",
        type=positive_seconds,
        default=DEFAULT_INTERVAL_SECONDS,
        metavar="S",
        help="look for new files every S seconds (default: %(default)g)",
    )
    group.add_argument(
        "--upload-final-seconds",
        type=positive_seconds,
        default=DEFAULT_FINAL_SECONDS,
        metavar="S",
        help="at shutdown, time for a last pass after the last file is published; what is "
        "left is uploaded at the next start (default: %(default)g)",
    )
    group.add_argument(
        "--upload-catalog-uri",
        metavar="URI",
        help="also register every uploaded data object (s3:// paths, in place) in the Apache "
        "Iceberg table of this catalog, after each pass, with a compacted object's swap as "
        "one commit: a SQLAlchemy URL (SQL catalog) or an http(s) URL (REST catalog); needs "
        "the iceberg extra. With --upload-delete a file is deleted locally only once "
        "registered (default: off)",
    )
    group.add_argument(
        "--upload-catalog-table",
        metavar="NS.NAME",
        default=DEFAULT_CATALOG_TABLE,
        help="the table (default: %(default)s)",
    )
    group.add_argument(
        "--upload-catalog-warehouse",
        metavar="W",
        help="where the table's metadata goes (default for a SQL catalog: "
        "s3://BUCKET/PREFIX/_iceberg of --upload)",
    )


def upload_config(args: argparse.Namespace) -> UploadConfig | None:
    """The :class:`UploadConfig` of parsed flags, None without ``--upload``. Raises ValueError
    (one line) for a bad URL or an ``--upload-*`` flag without ``--upload``."""
    if args.upload is None:
        others = [
            flag
            for flag, value in (
                ("--upload-endpoint", args.upload_endpoint),
                ("--upload-region", args.upload_region),
                ("--upload-delete", args.upload_delete),
                ("--upload-catalog-uri", args.upload_catalog_uri),
                ("--upload-catalog-warehouse", args.upload_catalog_warehouse),
            )
            if value
        ]
        if others:
            raise ValueError(f"{', '.join(others)} needs --upload s3://BUCKET/PREFIX")
        return None
    parse_s3_url(args.upload)  # raises ValueError
    endpoint = args.upload_endpoint
    if endpoint is not None and not endpoint.startswith(("http://", "https://")):
        raise ValueError(f"--upload-endpoint {endpoint}: expected http://HOST[:PORT] or https://")
    table = str(args.upload_catalog_table)
    namespace, _, name = table.rpartition(".")
    if not namespace or not name:
        raise ValueError(f"--upload-catalog-table {table}: expected NAMESPACE.NAME")
    if args.upload_catalog_warehouse and not args.upload_catalog_uri:
        raise ValueError("--upload-catalog-warehouse needs --upload-catalog-uri")
    return UploadConfig(
        url=args.upload.strip(),
        endpoint_url=endpoint,
        region=args.upload_region,
        delete=bool(args.upload_delete),
        interval_seconds=float(args.upload_interval),
        final_seconds=float(args.upload_final_seconds),
        catalog_uri=args.upload_catalog_uri,
        catalog_table=table,
        catalog_warehouse=args.upload_catalog_warehouse,
    )


def uploader_command(config: UploadConfig, output_dir: Path, parent_pid: int) -> list[str]:
    """The command line of the uploader process for ``finemon run``'s settings."""
    command = [
        sys.executable,
        "-m",
        "monitor.shipping",
        "--output-dir",
        str(output_dir),
        "--to",
        config.url,
        "--interval",
        repr(config.interval_seconds),
        "--final-seconds",
        repr(config.final_seconds),
        "--parent-pid",
        str(parent_pid),
    ]
    if config.endpoint_url:
        command += ["--endpoint", config.endpoint_url]
    if config.region:
        command += ["--region", config.region]
    if config.delete:
        command.append("--delete")
    if config.catalog_uri:
        command += ["--catalog-uri", config.catalog_uri, "--catalog-table", config.catalog_table]
        if config.catalog_warehouse:
            command += ["--catalog-warehouse", config.catalog_warehouse]
    return command
