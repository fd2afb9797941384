"""Where ``finemon query/summary/report`` read from: a local folder, or ``s3://bucket/prefix``.

A bucket is read through a local mirror (default ``~/.cache/finemon/s3/<bucket>/<prefix>``, or
``--cache-dir``): the data files and run manifests under the prefix are downloaded with the same
relative paths, only those missing or changed since the last time (by size and ETag), and files
the bucket no longer holds are removed from the mirror. The commands then run on the mirror as on
any output directory. This works offline with the installed packages (boto3 from the ``s3``
extra; DuckDB's httpfs extension, which it would have to download, is not used).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from analysis.errors import AnalysisError


def add_source_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags for an ``s3://`` DIR: the store's endpoint and region, the mirror's folder."""
    group = parser.add_argument_group("reading s3://BUCKET/PREFIX (needs the s3 extra)")
    group.add_argument(
        "--endpoint",
        "--upload-endpoint",
        dest="endpoint",
        metavar="URL",
        help="endpoint of an S3-compatible store, as finemon run's --upload-endpoint "
        "(default: AWS S3)",
    )
    group.add_argument(
        "--region",
        "--upload-region",
        dest="region",
        metavar="REGION",
        help="the bucket's region (default: the AWS chain's, e.g. $AWS_REGION)",
    )
    group.add_argument(
        "--cache-dir",
        metavar="DIR",
        help="where the bucket's files are mirrored (default: ~/.cache/finemon/s3/BUCKET/PREFIX)",
    )


def local_directory(source: str, args: argparse.Namespace) -> Path:
    """The local folder to read for ``source``: ``source`` itself, or for ``s3://...`` its
    mirror, brought up to date first (a line on stderr says what was downloaded).

    Raises :class:`AnalysisError` (one line) when the store cannot be read or boto3 is missing.
    """
    sync = mirror_sync(source, args)
    if sync is None:
        return Path(source)
    directory, summary = sync()
    print(summary, file=sys.stderr)
    return directory


def mirror_sync(source: str, args: argparse.Namespace) -> Callable[[], tuple[Path, str]] | None:
    """For an ``s3://`` source, a function that brings its mirror up to date and returns the
    mirror's folder and a line saying what it downloaded and removed (``finemon view``'s live
    mode calls it again to follow the bucket); None for a local folder.

    Raises :class:`AnalysisError` for a malformed URL; the function raises it (one line) when
    the store cannot be read, holds no finemon files, or the mirror cannot be written.
    """
    from common.objectstore import (  # noqa: PLC0415 - boto3 only for s3:// sources
        ObjectStore,
        StoreError,
        StoreSettings,
        default_cache_dir,
        is_s3_url,
        mirror,
        parse_s3_url,
    )

    if not is_s3_url(source):
        return None
    try:
        location = parse_s3_url(source)
    except ValueError as exc:
        raise AnalysisError(str(exc)) from None
    cache = getattr(args, "cache_dir", None)
    directory = Path(cache) if cache else default_cache_dir(location)
    settings = StoreSettings(
        endpoint_url=getattr(args, "endpoint", None), region=getattr(args, "region", None)
    )

    def sync() -> tuple[Path, str]:
        try:
            result = mirror(ObjectStore(location, settings), directory)
        except StoreError as exc:
            raise AnalysisError(f"{location.url}: {exc}") from None
        except OSError as exc:
            raise AnalysisError(f"{directory}: {exc.strerror or exc}") from None
        if result.objects == 0:
            raise AnalysisError(f"{location.url}: no finemon files under this prefix")
        return directory, (
            f"{location.url}: {result.objects} files, {result.downloaded} downloaded "
            f"({result.downloaded_bytes / 1e6:.1f} MB), {result.removed} removed, in {directory}"
        )

    return sync
