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


@dataclass(frozen=True, slots=True)
class UploadConfig:
    """``finemon run``'s upload settings (the ``--upload*`` flags)."""

    url: str
    endpoint_url: str | None = None
    region: str | None = None
    delete: bool = False
    interval_seconds: float = DEFAULT_INTERVAL_SECONDS
    final_seconds: float = DEFAULT_FINAL_SECONDS

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
    return UploadConfig(
        url=args.upload.strip(),
        endpoint_url=endpoint,
        region=args.upload_region,
        delete=bool(args.upload_delete),
        interval_seconds=float(args.upload_interval),
        final_seconds=float(args.upload_final_seconds),
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
    return command
