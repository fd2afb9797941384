"""Where ``finemon query/summary/report/view/mcp/compare/check`` read from: a :class:`Source`.

A source is a local folder (an output directory, or one Parquet file), read by DuckDB's own
Parquet reader, or ``s3://bucket/prefix``, read in place through pyarrow's S3 filesystem: a LIST
of the prefix, each data object's footer (a ranged GET of its tail), then only the byte ranges
of the columns and row groups a question needs (:mod:`analysis.objects`). Nothing is mirrored.
It works offline with the installed packages (pyarrow; boto3 from the ``s3`` extra for the
credentials; DuckDB's httpfs extension, which it would have to download, is not used).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from analysis.errors import AnalysisError
from common.objectstore import add_store_arguments

#: What a hidden ``--cache-dir`` (the flag of the mirror finemon once kept) prints.
CACHE_DIR_IGNORED = "--cache-dir is ignored: s3:// is read in place, nothing is mirrored"


def add_source_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags for an ``s3://`` DIR: the store's endpoint and region."""
    group = parser.add_argument_group("reading s3://BUCKET/PREFIX (needs the s3 extra)")
    add_store_arguments(group)
    # Accepted so that scripts written for the mirror keep working; it does nothing.
    group.add_argument("--cache-dir", metavar="DIR", help=argparse.SUPPRESS)


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


def source_of(text: str, args: argparse.Namespace) -> Source:
    """The source a command's DIR argument names, with its ``--endpoint`` and ``--region``.

    Raises :class:`AnalysisError` as :func:`bucket_source`.
    """
    from common.objectstore import is_s3_url  # noqa: PLC0415

    if getattr(args, "cache_dir", None):
        print(f"finemon: warning: {CACHE_DIR_IGNORED}", file=sys.stderr)
    if not is_s3_url(text):
        return local_source(text)
    return bucket_source(text, getattr(args, "endpoint", None), getattr(args, "region", None))
