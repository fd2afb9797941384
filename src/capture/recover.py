"""Recovery of files that a killed process left behind.

After a SIGKILL, an OOM kill or a power loss, a directory may hold journals
(``.<name>.parquet.journal``) and unfinished files (``.<name>.parquet.partial``), never an
unreadable ``.parquet``. :func:`recover` rebuilds each file from its journal, publishes it under
its final name and removes the leftovers. Journals held by a live writer are skipped.
"""

from __future__ import annotations

import logging
import os
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from capture.files import (
    CORRUPT_JOURNAL_SUFFIX,
    JOURNAL_SUFFIX,
    PARTIAL_SUFFIX,
    final_from_journal,
    partial_path,
    write_parquet_atomically,
)
from capture.journal import JournalError, read_journal, try_lock
from capture.tables import PointColumns, RowLayout, points_to_tables

log = logging.getLogger("capture")


@dataclass(frozen=True, slots=True)
class RecoveredFile:
    """One file rebuilt from its journal."""

    path: Path
    rows: int
    ticks: int
    complete: bool


@dataclass(frozen=True, slots=True)
class RecoveryReport:
    """What :func:`recover` did."""

    recovered: tuple[RecoveredFile, ...]
    removed: tuple[Path, ...]
    failed: tuple[tuple[Path, str], ...]


def _layout(header: dict[str, object]) -> RowLayout:
    labels = header.get("global_labels") or []
    assert isinstance(labels, list)
    columns = header.get("label_columns") or []
    assert isinstance(columns, list)
    return RowLayout(
        run_id=str(header["run_id"]),
        tick_seconds=float(header["tick_seconds"]),  # type: ignore[arg-type]
        first_tick=int(header["first_tick"]),  # type: ignore[call-overload]
        label_columns=tuple(str(c) for c in columns),
        global_labels=tuple((str(k), str(v)) for k, v in labels),
    )


def _owned(points: PointColumns, start: int, end: int | None) -> PointColumns:
    import pyarrow.compute as pc  # noqa: PLC0415 - only when there is something to recover

    mask = pc.greater_equal(points.tick, start)
    if end is not None:
        mask = pc.and_(mask, pc.less(points.tick, end))
    return PointColumns(
        points.sid.filter(mask),
        points.tick.filter(mask),
        points.value_int.filter(mask),
        points.value_float.filter(mask),
    )


def recover(directory: str | os.PathLike[str]) -> RecoveryReport:
    """Rebuild every file under ``directory`` (recursively) that a killed writer left behind.

    Returns what was recovered, removed and what failed (with the reason); never raises for a
    damaged journal (it is renamed ``*.journal.corrupt`` and reported).
    """
    root = Path(directory)
    recovered: list[RecoveredFile] = []
    removed: list[Path] = []
    failed: list[tuple[Path, str]] = []
    if not root.is_dir():
        return RecoveryReport((), (), ())
    journals = sorted(p for p in root.rglob(f".*{JOURNAL_SUFFIX}") if p.is_file())
    # Journals of one run (rotation in progress at the crash) own consecutive tick ranges.
    loaded = []
    locks = []
    for journal in journals:
        lock = try_lock(journal)
        if lock is None:
            continue  # a live writer owns it
        locks.append(lock)
        try:
            contents = read_journal(journal)
        except (JournalError, OSError, pa.ArrowException, ValueError, KeyError) as exc:
            corrupt = journal.with_name(
                journal.name[: -len(JOURNAL_SUFFIX)] + CORRUPT_JOURNAL_SUFFIX
            )
            try:
                journal.rename(corrupt)
            except OSError:
                pass
            failed.append((journal, str(exc)))
            log.error("capture: cannot recover %s: %s", journal, exc)
            continue
        loaded.append((journal, contents))
    by_run: dict[str, list[tuple[Path, int]]] = defaultdict(list)
    for journal, contents in loaded:
        by_run[str(contents.header.get("run_id"))].append(
            (journal, int(contents.header.get("owned_from", contents.header["first_tick"])))
        )
    next_start: dict[Path, int | None] = {}
    for entries in by_run.values():
        entries.sort(key=lambda e: e[1])
        for i, (journal, _start) in enumerate(entries):
            next_start[journal] = entries[i + 1][1] if i + 1 < len(entries) else None
    try:
        for journal, contents in loaded:
            final = final_from_journal(journal)
            try:
                if final.exists():
                    # Published before the crash; only the journal was left.
                    journal.unlink()
                    removed.append(journal)
                else:
                    start = int(contents.header.get("owned_from", contents.header["first_tick"]))
                    points = _owned(contents.points, start, next_start[journal])
                    layout = _layout(contents.header)
                    metadata = {k: str(v) for k, v in contents.header.get("metadata", {}).items()}
                    metadata["capture.recovered"] = "true"
                    rows = write_parquet_atomically(
                        final,
                        layout.schema,
                        points_to_tables(points, contents.series, layout),
                        int(contents.header.get("compression_level", 3)),
                        metadata,
                    )
                    ticks = len(set(points.tick.to_pylist()))
                    recovered.append(RecoveredFile(final, rows, ticks, contents.complete))
                    log.info(
                        "capture: recovered %s from its journal: %d rows, %d ticks%s",
                        final,
                        rows,
                        ticks,
                        "" if contents.complete else " (journal tail was truncated)",
                    )
                    journal.unlink()
                    removed.append(journal)
                partial = partial_path(final)
                if partial.exists():
                    partial.unlink()
                    removed.append(partial)
            except (OSError, pa.ArrowException, ValueError) as exc:
                failed.append((journal, str(exc)))
                log.error("capture: cannot recover %s: %s", journal, exc)
    finally:
        for lock in locks:
            lock.close()
    # A partial file without a journal holds nothing recoverable (its journal was published).
    for partial in root.rglob(f".*{PARTIAL_SUFFIX}"):
        journal = partial.with_name(partial.name[: -len(PARTIAL_SUFFIX)] + JOURNAL_SUFFIX)
        if not journal.exists():
            try:
                partial.unlink()
                removed.append(partial)
            except OSError:
                pass
    return RecoveryReport(tuple(recovered), tuple(removed), tuple(failed))
