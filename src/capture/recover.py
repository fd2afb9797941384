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
from capture.journal import (
    JournalContents,
    JournalCutShortError,
    JournalError,
    read_journal,
    try_lock,
)
from capture.summary import SummaryBuilder
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


def _names(value: object) -> list[str] | None:
    return None if not isinstance(value, list) else [str(v) for v in value]


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


def _owned_from(contents: JournalContents) -> int:
    header = contents.header
    return int(header.get("owned_from", header["first_tick"]))


def _remove(path: Path, removed: list[Path]) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        return
    removed.append(path)


def _rebuild(
    journal: Path, contents: JournalContents, start: int, end: int | None, removed: list[Path]
) -> RecoveredFile | None:
    """Publish the file of ``journal`` with its ticks in [start, end), then remove the journal
    and the partial file. None (nothing published) when it holds no such tick. Raises OSError,
    ArrowException or ValueError (the journal is then left)."""
    final = final_from_journal(journal)
    if contents.end is not None:
        end = contents.end if end is None else min(end, contents.end)
    points = _owned(contents.points, start, end)
    rows = 0
    if len(points.tick):
        layout = _layout(contents.header)
        metadata = {k: str(v) for k, v in contents.header.get("metadata", {}).items()}
        metadata["capture.recovered"] = "true"
        header = contents.header
        summary = SummaryBuilder(
            layout.run_id,
            layout.tick_seconds,
            global_labels=layout.global_labels,
            label_columns=layout.label_columns,
            key_labels=[str(k) for k in header.get("summary_key_labels") or []],
            sketch_metrics=[str(m) for m in header.get("summary_sketch_metrics") or []],
            series_metrics=[str(m) for m in header.get("summary_series_metrics") or []],
            aggregate_metrics=_names(header.get("summary_aggregate_metrics")),
        )
        rows = write_parquet_atomically(
            final,
            layout.schema,
            points_to_tables(points, contents.series, layout, summary=summary),
            int(header.get("compression_level", 3)),
            metadata,
            summary,
        )
    recovered = None
    if rows:
        ticks = len(set(points.tick.to_pylist()))
        recovered = RecoveredFile(final, rows, ticks, contents.complete)
        log.info(
            "capture: recovered %s from its journal: %d rows, %d ticks%s",
            final,
            rows,
            ticks,
            "" if contents.complete else " (journal tail was truncated)",
        )
    else:
        log.info("capture: %s held no tick of its own to recover; removed", journal)
    _remove(journal, removed)
    _remove(partial_path(final), removed)
    return recovered


def recover_journal(journal: Path, end: int | None = None) -> RecoveredFile | None:
    """Rebuild the file of one journal no live writer holds, with the ticks it owns below
    ``end`` (None: all of them); None when it holds none (nothing is published, the journal is
    removed). Raises what :func:`capture.journal.read_journal` raises, and OSError when the file
    cannot be written (the journal is then left)."""
    contents = read_journal(journal)
    return _rebuild(journal, contents, _owned_from(contents), end, [])


def _ranges(loaded: list[tuple[Path, JournalContents]]) -> dict[Path, tuple[int, int | None]]:
    """The ticks [start, end) each journal owns: a run's journals own consecutive ranges.

    A journal made by a rotation owns the ticks from its ``owned_from`` on (the window it
    carried), but only once the journal before it was given up: until its file was published,
    the previous journal still holds every tick taken before the switch, and the window may be
    carried only in part. So a journal owns from ``owned_from`` or from just after the last tick
    the previous journal holds (its recorded ``end`` if it has one), whichever is later; the
    previous journal owns the ticks below that. Every tick in the journals is then owned once.
    """
    by_run: dict[str, list[tuple[Path, JournalContents]]] = defaultdict(list)
    for journal, contents in loaded:
        by_run[str(contents.header.get("run_id"))].append((journal, contents))
    ranges: dict[Path, tuple[int, int | None]] = {}
    for entries in by_run.values():
        # The order the manager made them in (journals before ``sequence`` was written: by their
        # first owned tick).
        entries.sort(key=lambda e: (int(e[1].header.get("sequence", 0)), _owned_from(e[1])))
        previous: Path | None = None
        limit = 0  # the first tick the previous journal does not hold
        for journal, contents in entries:
            start = _owned_from(contents)
            if previous is not None:
                start = max(start, limit)
                ranges[previous] = (ranges[previous][0], start)
            ranges[journal] = (start, None)
            if contents.end is not None:
                limit = contents.end
            else:
                limit = max(start, contents.ticks[-1] + 1) if contents.ticks else start
            previous = journal
    return ranges


def recover(directory: str | os.PathLike[str]) -> RecoveryReport:
    """Rebuild every file under ``directory`` (recursively) that a killed writer left behind.

    Returns what was recovered, removed and what failed (with the reason); never raises for a
    damaged journal (it is renamed ``*.journal.corrupt`` and reported). A journal with nothing
    to recover (cut short before its header was complete, or holding no tick of its own) is
    removed, and no file is published for it.
    """
    root = Path(directory)
    recovered: list[RecoveredFile] = []
    removed: list[Path] = []
    failed: list[tuple[Path, str]] = []
    if not root.is_dir():
        return RecoveryReport((), (), ())
    journals = sorted(p for p in root.rglob(f".*{JOURNAL_SUFFIX}") if p.is_file())
    loaded: list[tuple[Path, JournalContents]] = []
    locks = []
    try:
        for journal in journals:
            lock = try_lock(journal)
            if lock is None:
                continue  # a live writer owns it
            locks.append(lock)
            final = final_from_journal(journal)
            try:
                if final.exists():
                    # Published before the crash, only the journal was left: the next journal
                    # holds the ticks this one held past its file (a rotation publishes the old
                    # file only once the window is carried).
                    _remove(journal, removed)
                    _remove(partial_path(final), removed)
                    continue
                loaded.append((journal, read_journal(journal)))
            except JournalCutShortError:
                log.info("capture: %s ends before its header is complete; removed", journal)
                _remove(journal, removed)
                _remove(partial_path(final), removed)
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
        ranges = _ranges(loaded)
        for journal, contents in loaded:
            start, end = ranges[journal]
            try:
                rebuilt = _rebuild(journal, contents, start, end, removed)
            except (OSError, pa.ArrowException, ValueError) as exc:
                failed.append((journal, str(exc)))
                log.error("capture: cannot recover %s: %s", journal, exc)
                continue
            if rebuilt is not None:
                recovered.append(rebuilt)
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
