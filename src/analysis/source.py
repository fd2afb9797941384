"""Where ``finemon query/summary/report/view/mcp/compare/check`` read from: a :class:`Source`.

A source is a local folder (an output directory, or one Parquet file), read by DuckDB's own
Parquet reader, or ``s3://bucket/prefix``, read in place through pyarrow's S3 filesystem: a LIST
of the prefix, each data object's footer (a ranged GET of its tail), then only the byte ranges
of the columns and row groups a question needs (:mod:`analysis.objects`). Nothing is mirrored.
It works offline with the installed packages (pyarrow; boto3 from the ``s3`` extra for the
credentials; DuckDB's httpfs extension, which it would have to download, is not used).

The commands still read a bucket through a local mirror (:func:`local_directory`): the
download of the bucket's files into a folder, brought up to date each time.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

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


@dataclass(frozen=True, slots=True)
class Source:
    """A dataset's location. ``url`` is what the messages show; ``local`` the folder or file
    of a local source (None for a bucket); ``filesystem`` and ``root`` where a bucket's objects
    are (a pyarrow filesystem and the prefix's path in it, ``bucket/prefix``)."""

    url: str
    local: Path | None = None
    filesystem: Any = None
    root: str = ""

    def __str__(self) -> str:
        return self.url

    def relative(self, path: str) -> str:
        """``path`` (in :attr:`filesystem`) relative to the root, ``/``-separated."""
        return str(PurePosixPath(path).relative_to(self.root)) if self.root else path


def local_source(path: str | Path) -> Source:
    """The source of a local folder or Parquet file (not checked here: the readers say what
    is wrong with it)."""
    return Source(url=str(path), local=Path(path))


def bucket_source(url: str, endpoint: str | None = None, region: str | None = None) -> Source:
    """The source of ``s3://bucket/prefix``, reached through ``endpoint`` (an S3-compatible
    store; default AWS) in ``region`` (default: the AWS configuration's).

    Raises :class:`AnalysisError` (one line) for a malformed URL, without boto3 or without
    credentials. Nothing is asked of the store yet.
    """
    from common.objectstore import (  # noqa: PLC0415 - pyarrow.fs and botocore, for s3:// only
        StoreError,
        StoreSettings,
        arrow_filesystem,
        parse_s3_url,
    )

    try:
        location = parse_s3_url(url)
    except ValueError as exc:
        raise AnalysisError(str(exc)) from None
    try:
        filesystem = arrow_filesystem(location, StoreSettings(endpoint_url=endpoint, region=region))
    except StoreError as exc:
        raise AnalysisError(f"{location.url}: {exc}") from None
    root = f"{location.bucket}/{location.prefix}" if location.prefix else location.bucket
    return Source(url=location.url, filesystem=filesystem, root=root)


def as_source(where: str | Path | Source) -> Source:
    """``where`` as a :class:`Source`: itself, a bucket for an ``s3://`` URL (default endpoint
    and region), else a local path. Raises :class:`AnalysisError` as :func:`bucket_source`."""
    from common.objectstore import is_s3_url  # noqa: PLC0415

    if isinstance(where, Source):
        return where
    if isinstance(where, str) and is_s3_url(where):
        return bucket_source(where)
    return local_source(where)


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
