"""The dataset's files: which there are, what their footers say, and when they changed.

The footers (Parquet metadata: rows, the ``time`` column's range, the run, the node, the tick
and the metric descriptions) are read once per file and kept while the file's size and
modification time stay the same, so a live viewer's look for new files lists the folder and
stats the files, nothing more. The runs' manifests (``_sessions/RUN.json``) are read here too.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from analysis.dataset import parquet_files
from analysis.errors import AnalysisError
from analysis.query.times import epoch_ms

if TYPE_CHECKING:
    from analysis.objects import DataObjects

#: A file's size in bytes and modification time in ns: a file whose signature is unchanged
#: is not read again.
Signature = tuple[int, int]


@dataclass(frozen=True, slots=True)
class FileFooter:
    """What the footer of one data file says; ``first_ms``/``last_ms`` (epoch ms) are None
    when a row group lacks statistics of ``time``, the other fields when the metadata lacks
    them. ``metrics`` maps a metric name to its description (``kind``, ``unit``,
    ``description``)."""

    path: Path
    signature: Signature
    run_id: str | None
    node_name: str | None
    tick_seconds: float | None
    rows: int
    first_ms: int | None
    last_ms: int | None
    metrics: Mapping[str, Mapping[str, Any]]


def signature(path: Path) -> Signature:
    """``path``'s size and modification time; raises :class:`OSError` when it is gone."""
    stat = path.stat()
    return stat.st_size, stat.st_mtime_ns


def read_footer(path: Path, file_signature: Signature) -> FileFooter:
    """What the footer of ``path`` says: metadata, rows and the time column's range.

    Raises :class:`OSError` or :class:`ValueError` when ``path`` is not a readable Parquet file.
    """
    import pyarrow.parquet as pq  # noqa: PLC0415 - a core dependency, only needed here

    return footer_of(path, file_signature, pq.read_metadata(path))


def footer_of(path: Path, file_signature: Signature, meta: Any) -> FileFooter:
    """What the footer ``meta`` (a ``pyarrow.parquet.FileMetaData``) of the file at ``path``
    says; the footer reader of :func:`read_footer` and of objects read in place
    (:mod:`analysis.objects`)."""
    kv = {k.decode(): v.decode(errors="replace") for k, v in (meta.metadata or {}).items()}
    first: int | None = None
    last: int | None = None
    names = meta.schema.names
    if "time" in names:
        column = names.index("time")
        for group in range(meta.num_row_groups):
            stats = meta.row_group(group).column(column).statistics
            if stats is None or not stats.has_min_max:
                first = last = None
                break
            low, high = epoch_ms(stats.min), epoch_ms(stats.max)
            if low is None or high is None:
                first = last = None
                break
            first = low if first is None else min(first, low)
            last = high if last is None else max(last, high)
    metrics: dict[str, Mapping[str, Any]] = {}
    try:
        described = json.loads(kv.get("capture.metrics", "{}"))
        if isinstance(described, dict):
            metrics = {str(k): v for k, v in described.items() if isinstance(v, dict)}
    except ValueError:
        pass
    try:
        tick = float(kv["capture.tick_seconds"]) if "capture.tick_seconds" in kv else None
    except ValueError:
        tick = None
    return FileFooter(
        path=path,
        signature=file_signature,
        run_id=kv.get("capture.run_id"),
        node_name=kv.get("finemon.node_name"),
        tick_seconds=tick,
        rows=meta.num_rows,
        first_ms=first,
        last_ms=last,
        metrics=metrics,
    )


def read_footers(
    paths: Sequence[Path], known: Mapping[Path, FileFooter] | None = None
) -> dict[Path, FileFooter]:
    """The footer of each of ``paths`` still there, those of ``known`` reused where the file's
    signature is unchanged. A file that is not readable Parquet gets an empty footer (what
    :func:`analysis.dataset.connect` does with it is its business)."""
    footers: dict[Path, FileFooter] = {}
    for path in paths:
        try:
            file_signature = signature(path)
        except OSError:
            continue  # removed since the listing (rotation, an uploader's --upload-delete)
        seen = (known or {}).get(path)
        if seen is not None and seen.signature == file_signature:
            footers[path] = seen
            continue
        try:
            footers[path] = read_footer(path, file_signature)
        except (OSError, ValueError):
            footers[path] = FileFooter(path, file_signature, None, None, None, 0, None, None, {})
    return footers


def current_signatures(directory: Path) -> dict[Path, Signature]:
    """The signature of every data file of ``directory`` now (none when it holds none)."""
    try:
        paths = parquet_files(directory)
    except AnalysisError:
        paths = []
    current = {}
    for path in paths:
        try:
            current[path] = signature(path)
        except OSError:
            continue
    return current


def tick_seconds(footers: Mapping[Path, FileFooter]) -> float:
    """The shortest tick the files declare; 1 s when none does."""
    ticks = [f.tick_seconds for f in footers.values() if f.tick_seconds]
    return min(ticks) if ticks else 1.0


def time_range_ms(footers: Mapping[Path, FileFooter]) -> tuple[int, int] | None:
    """The first and last tick (epoch ms) of the files with rows, when every one of their
    footers has the time range; else None (the data must be asked)."""
    firsts = [f.first_ms for f in footers.values() if f.rows]
    lasts = [f.last_ms for f in footers.values() if f.rows]
    known_firsts = [ms for ms in firsts if ms is not None]
    known_lasts = [ms for ms in lasts if ms is not None]
    if not firsts or len(known_firsts) < len(firsts) or len(known_lasts) < len(lasts):
        return None
    return min(known_firsts), max(known_lasts)


def run_ranges_ms(footers: Mapping[Path, FileFooter]) -> dict[str, tuple[int, int]] | None:
    """Each run's first and last tick (epoch ms), when every file with rows names its run and
    time range; else None (the data must be asked)."""
    if not all(f.run_id and f.first_ms is not None for f in footers.values() if f.rows):
        return None
    ranges: dict[str, tuple[int, int]] = {}
    for f in footers.values():
        if f.rows and f.run_id and f.first_ms is not None and f.last_ms is not None:
            low, high = ranges.get(f.run_id, (f.first_ms, f.last_ms))
            ranges[f.run_id] = (min(low, f.first_ms), max(high, f.last_ms))
    return ranges


def described(footers: Mapping[Path, FileFooter], metric: str) -> Mapping[str, Any] | None:
    """The first description of ``metric`` in the files' metadata, None when none has one."""
    for f in footers.values():
        description = f.metrics.get(metric)
        if description:
            return description
    return None


def read_manifests(
    directory: Path | None, objects: DataObjects | None = None
) -> dict[str, dict[str, Any]]:
    """The runs' manifests (``_sessions/*.json``) of ``directory`` (or, for a bucket, of the
    last listing of its ``objects``) by run id; unreadable ones are left out."""
    found: dict[str, dict[str, Any]] = {}
    documents: list[tuple[str, bytes]] = []
    if objects is not None:
        documents = [
            (PurePosixPath(name).stem, content)
            for name, content in objects.manifests()
            if name.startswith("_sessions/")
        ]
    elif directory is not None and (directory / "_sessions").is_dir():
        for path in sorted((directory / "_sessions").glob("*.json")):
            try:
                documents.append((path.stem, path.read_bytes()))
            except OSError:
                continue
    for stem, content in documents:
        try:
            document = json.loads(content)
        except ValueError:
            continue
        if isinstance(document, dict):
            found[str(document.get("run_id") or stem)] = document
    return found
