"""The index beside the data, as the readers open it: every file's summary, cached, kept up to
date on open.

The format and the rules that keep it in step with the files are :mod:`common.dataset_index`'s
(shared with ``finemon run``, which adds each file it publishes, and ``finemon compact``).
:func:`open_index` reconciles every folder's index with the files there now (see that module):
files added after the others are merged in; a file removed, changed or added before another has
the folder rebuilt from its files' footers; a missing or untrustworthy index is rebuilt, counted
and logged. A file whose footer has no summary (written before summaries existed) gets one from
a scan of its rows, once. The index is written back when the folder can be written (else it is
kept in memory for this open only).

The storage is behind :class:`IndexStore`, five calls over paths relative to the dataset's
root: the local :class:`LocalStore` here, an object store's (pyarrow filesystem) the same way.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from analysis.dataset import COMPACTING, describe_unreadable, parquet_files, parquet_problem
from analysis.errors import AnalysisError, UnreadableFilesWarning
from analysis.query.summaries import scan_summary
from capture.summary import merge_summaries
from common.dataset_index import (
    INDEX_FILE,
    Footer,
    IndexStats,
    IndexStore,
    LocalIndexFiles,
    Signature,
    folder_of,
    read_footer,
    reconcile_folder,
)

log = logging.getLogger("analysis.index")

__all__ = [
    "INDEX_FILE",
    "DatasetIndex",
    "IndexStats",
    "IndexStore",
    "IndexedFile",
    "LocalStore",
    "open_index",
    "open_local_index",
    "report_unreadable",
]


class LocalStore(LocalIndexFiles):
    """An :class:`IndexStore` over a local output directory."""

    def list_files(self) -> dict[str, Signature]:
        found: dict[str, Signature] = {}
        for path in parquet_files(self.root):
            try:
                stat = path.stat()
            except OSError:
                continue  # gone since the listing
            found[path.relative_to(self.root).as_posix()] = (stat.st_size, stat.st_mtime_ns)
        return found

    def read_footer(self, path: str) -> Footer:
        full = self.root / path
        problem = parquet_problem(full)
        if problem is not None:
            raise ValueError(problem)
        return read_footer(full)

    def scan_summary(self, path: str) -> dict[str, Any] | None:
        return scan_summary(self.root / path)


@dataclass(frozen=True, slots=True)
class IndexedFile:
    """One data file as the index knows it (``path`` relative to the root)."""

    path: str
    signature: Signature
    rows: int
    first_ms: int | None
    last_ms: int | None
    run_ids: tuple[str, ...]
    node_name: str | None
    tick_seconds: float | None
    keys: frozenset[str | None]
    metrics: frozenset[str]
    #: True when the file's summary came from a scan of its rows (its footer has none).
    scanned: bool


@dataclass(frozen=True, slots=True)
class DatasetIndex:
    """Every data file's summary, per file and merged (None without a readable file)."""

    files: Mapping[str, IndexedFile]
    summary: dict[str, Any] | None
    descriptions: Mapping[str, Any]
    stats: IndexStats


def open_index(store: IndexStore) -> DatasetIndex:
    """The index of every data file of ``store``, reconciled with the files there now (see the
    module). Raises :class:`AnalysisError` when the dataset holds no data file (the listing's
    error)."""
    current = store.list_files()
    by_folder: dict[str, dict[str, Signature]] = {}
    for path, signature in current.items():
        by_folder.setdefault(folder_of(path), {})[path] = signature
    stats = IndexStats()
    files: dict[str, IndexedFile] = {}
    summaries = []
    descriptions: dict[str, Any] = {}
    for folder, listed in sorted(by_folder.items()):
        state = reconcile_folder(store, folder, listed, stats)
        assert state is not None  # (without a bound on rebuilds there is always one)
        for name, entry in state.files.items():
            path = f"{folder}/{name}" if folder else name
            files[path] = IndexedFile(
                path=path,
                signature=tuple(entry["signature"]),
                rows=int(entry["rows"]),
                first_ms=entry.get("first_ms"),
                last_ms=entry.get("last_ms"),
                run_ids=tuple(entry.get("runs") or ()),
                node_name=entry.get("node_name"),
                tick_seconds=entry.get("tick_seconds"),
                keys=frozenset(entry["keys"]),
                metrics=frozenset(entry["metrics"]),
                scanned=bool(entry.get("scanned")),
            )
        if state.summary is not None:
            summaries.append(state.summary)
        for metric, description in state.descriptions.items():
            descriptions.setdefault(metric, description)
    if stats.rebuilt:
        reasons = sorted({why for why in stats.rebuilt.values() if why != "no index"})
        log.info(
            "index: %d folders rebuilt%s, %d footers read, %d files scanned",
            len(stats.rebuilt),
            f" ({', '.join(reasons)})" if reasons else "",
            stats.footers_read,
            stats.scanned,
        )
    return DatasetIndex(files, merge_summaries(summaries), descriptions, stats)


def report_unreadable(directory: Path, unreadable: Sequence[tuple[str, str]]) -> None:
    """Say what :func:`analysis.dataset.connect` says of the files an index left out: an
    :class:`AnalysisError` for a file replaced by a compaction since the listing (a retry gives
    the answer), else an :class:`UnreadableFilesWarning` naming them."""
    if not unreadable:
        return
    for path, problem in unreadable:
        if problem == COMPACTING:
            raise AnalysisError(
                f"{directory / path}: replaced or removed while being read (a compaction is "
                "swapping files in); run the command again"
            )
    found = [(directory / path, problem) for path, problem in unreadable]
    warnings.warn(describe_unreadable(directory, found), UnreadableFilesWarning, stacklevel=3)


def open_local_index(directory: Path) -> DatasetIndex:
    """:func:`open_index` over a local output directory (raises :class:`AnalysisError` when it
    holds no data file)."""
    if not directory.is_dir():
        raise AnalysisError(f"{directory}: not a directory")
    return open_index(LocalStore(directory))
