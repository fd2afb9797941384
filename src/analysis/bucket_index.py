"""The index beside a bucket's data: :class:`BucketStore`, the :class:`IndexStore` of a dataset
read in place through a pyarrow filesystem (``s3://``), and :func:`open_bucket_index`.

The index's format and rules are :mod:`common.dataset_index`'s, as in a folder: its objects are
``<root>/_index/<folder>/_files.json`` in the bucket. So the first reader of a bucket reads each
data object's footer once and leaves the index there; the next readers read one small object
per folder, and the footers only of the objects added since (or of a folder whose objects were
replaced or removed, rebuilt).

- **Signature**: an object's size and the modification time pyarrow's listing gives (S3's
  ``LastModified``, whole seconds). pyarrow's ``FileInfo`` carries no ETag, and a HEAD per
  object for it would cost what the index saves; an object rewritten with the same size in the
  same second is the one change it misses (finemon never writes an object twice: a compaction
  writes new names).
- **Footers**: one ranged GET of the object's tail (pyarrow reads its last 64 KiB, more only
  for a larger footer). The fragment read is kept (:attr:`BucketStore.fragments`), so a reader
  that then scans the object reads no footer again.
- **Gone or swapped objects**: an object removed since the listing, or a compaction's
  placeholder, raises the :class:`AnalysisError` asking to run the command again (what the
  readers of a folder say): a wrong count is never answered.
- **Objects without a summary** in their footer (written before summaries) are fetched whole
  once and scanned, as in a folder; the index keeps what the scan found.
- **Writes**: an index object that cannot be written (read-only credentials, a full store) is
  ``False``, counted in the stats and logged once per store; the index is then kept in memory
  for the store's life, and the readers' answers are the same.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from pathlib import Path
from typing import Any

from analysis.objects import (
    Listing,
    StoredFile,
    make_fragment,
    placeholder_or_gone,
    store_problem,
)
from analysis.query.dataset_index import DatasetIndex, open_index
from analysis.source import Source
from common.dataset_index import Footer, Signature, footer_from_metadata

log = logging.getLogger("analysis.index")


class BucketStore:
    """An :class:`IndexStore` over the data objects of ``listing`` (one LIST of ``source``),
    their footers read by ranged GETs and the index kept as objects under ``_index/``.

    ``memory`` holds the index objects read or written (by path): a store whose writes fail
    keeps its index there, and a store reused for a later listing (a live viewer's) reads each
    index object once."""

    def __init__(self, source: Source, listing: Listing) -> None:
        if source.filesystem is None:
            raise ValueError(f"{source.url}: not a source read through a pyarrow filesystem")
        self.source = source
        self.listing = listing
        #: The signature and fragment (its footer read) of each object read, by its path in
        #: the filesystem.
        self.fragments: dict[str, tuple[tuple[int, int], Any]] = {}
        self._listed: tuple[Listing, dict[str, StoredFile]] | None = None
        self.memory: dict[str, bytes] = {}
        self.write_failures = 0

    def _full(self, path: str) -> str:
        return f"{self.source.root}/{path}" if self.source.root else path

    def _by_path(self) -> dict[str, StoredFile]:
        if self._listed is None or self._listed[0] is not self.listing:
            self._listed = (self.listing, {f.path: f for f in self.listing.data})
        return self._listed[1]

    def list_files(self) -> dict[str, Signature]:
        return {self.source.relative(f.path): (f.size_bytes, f.mtime_ns) for f in self.listing.data}

    def read_footer(self, path: str) -> Footer:
        """The footer of data object ``path`` (a ranged GET of its tail). Raises ValueError for
        an object that is not Parquet, OSError for the store's failure, :class:`AnalysisError`
        for an object gone since the listing or a compaction's placeholder."""
        import pyarrow  # noqa: PLC0415

        full = self._full(path)
        stored = self._by_path().get(full)
        size = None if stored is None else stored.size_bytes
        if size == 0:
            raise ValueError("empty")
        fragment = make_fragment(self.source, full, size)
        try:
            fragment.ensure_complete_metadata()
        except pyarrow.ArrowInvalid as exc:
            placeholder_or_gone(self.source, full, size or 0, None)
            raise ValueError(
                "not a Parquet file" if "magic bytes" in str(exc) else "corrupt footer"
            ) from None
        except OSError as exc:
            placeholder_or_gone(self.source, full, size or 0, exc)
            raise OSError(store_problem(exc)) from None
        if stored is not None:
            self.fragments[full] = (stored.signature, fragment)
        meta = fragment.metadata
        kv = {k.decode(): v.decode(errors="replace") for k, v in (meta.metadata or {}).items()}
        return footer_from_metadata(meta.num_rows, kv)

    def scan_summary(self, path: str) -> dict[str, Any] | None:
        """The summary of an object without one in its footer, from a scan of its rows: the
        object is fetched whole (once: the index keeps the summary) into a temporary file."""
        from analysis.query.summaries import scan_summary  # noqa: PLC0415

        with tempfile.NamedTemporaryFile(suffix=".parquet") as local:
            with self.source.filesystem.open_input_stream(self._full(path)) as stream:
                shutil.copyfileobj(stream, local)
            local.flush()
            return scan_summary(Path(local.name))

    def read_index(self, path: str) -> bytes | None:
        if path in self.memory:
            return self.memory[path]
        try:
            with self.source.filesystem.open_input_stream(self._full(path)) as stream:
                data: bytes = stream.read()
        except FileNotFoundError:
            return None
        except OSError as exc:
            log.info("index: cannot read %s/%s (%s)", self.source.url, path, store_problem(exc))
            return None
        self.memory[path] = data
        return data

    def write_index(self, path: str, data: bytes) -> bool:
        """Put ``data`` as object ``path`` (one PUT: a reader sees the old object or the new
        one). False when the store refuses it (logged once per store); kept in memory then."""
        self.memory[path] = data
        try:
            with self.source.filesystem.open_output_stream(
                self._full(path), metadata={"Content-Type": "application/json"}
            ) as stream:
                stream.write(data)
        except OSError as exc:
            if not self.write_failures:
                log.info(
                    "index: cannot write %s/%s (%s); reading without a stored index",
                    self.source.url,
                    path,
                    store_problem(exc),
                )
            self.write_failures += 1
            return False
        return True


def open_bucket_index(store: BucketStore) -> DatasetIndex:
    """The index of every data object of ``store``'s listing, reconciled with them (see
    :func:`analysis.query.dataset_index.open_index`). Raises :class:`AnalysisError` when an
    object is gone or swapped while its footer is read (run the command again)."""
    return open_index(store)
