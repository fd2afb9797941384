"""Compacting an output directory: every partition's finished files, merged and swapped.

:func:`compact_directory` takes a lock on the directory (one compaction at a time: ``finemon
compact`` and the daemon's may share a directory), finishes what a killed compaction left
(:func:`~monitor.compaction.swap.finish_interrupted`), then merges each group that
:func:`~monitor.compaction.plan.plan_groups` plans and swaps it in.
"""

from __future__ import annotations

import fcntl
import logging
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa

from common.dataset_index import update_partition
from monitor.compaction import plan, swap
from monitor.compaction.merge import MergeError, merge_files, merged_metadata, read_footer_metadata

log = logging.getLogger("finemon.compact")

#: The lock file at the output root (hidden: no reader, uploader or size limit looks at it).
LOCK_FILE = ".finemon-compact.lock"


class CompactionBusyError(Exception):
    """Another compaction holds the directory's lock."""


@dataclass(frozen=True, slots=True)
class CompactionSettings:
    """How a compaction chooses and writes: sizes in bytes, the ZSTD level, and
    ``min_new_bytes`` (the daemon's: wait for that much new data in a partition whose day is not
    over; see :func:`~monitor.compaction.plan.plan_groups`)."""

    older_than_seconds: float = plan.DEFAULT_OLDER_THAN_SECONDS
    target_bytes: int = plan.TARGET_FILE_BYTES
    min_bytes: int = plan.MIN_FILE_BYTES
    max_bytes: int = plan.MAX_FILE_BYTES
    min_new_bytes: int = 0
    compression_level: int = 3


@dataclass(slots=True)
class CompactionReport:
    """What one :func:`compact_directory` did (bytes of the files replaced and written)."""

    partitions: int = 0
    files_written: int = 0
    files_replaced: int = 0
    rows: int = 0
    input_bytes: int = 0
    output_bytes: int = 0
    interrupted_finished: int = 0
    #: Partitions whose index (``_index/``, docs/output.md) was rewritten after their swaps, and
    #: those whose index could not be (left to the readers to rebuild).
    indexes_written: int = 0
    index_failures: int = 0
    seconds: float = 0.0
    #: ``(partition or file, reason)`` of each group that could not be compacted.
    failed: list[tuple[Path, str]] = field(default_factory=list)


@contextmanager
def directory_lock(root: Path) -> Iterator[None]:
    """Hold the compaction lock of ``root``; raises :class:`CompactionBusyError` when another
    process holds it, OSError when it cannot be made."""
    fd = os.open(root / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise CompactionBusyError(f"{root}: another compaction is running") from None
        yield
    finally:
        os.close(fd)


def compact_partition(
    partition: Path,
    settings: CompactionSettings,
    report: CompactionReport,
    now_seconds: float,
    stop: Callable[[], bool] = lambda: False,
) -> None:
    """Finish interrupted swaps in ``partition``, then merge and swap every planned group
    (adding to ``report``). A file whose footer cannot be read is left out, and a group that
    fails to merge skipped, both logged and recorded in ``report.failed``. Raises OSError when
    the partition cannot be written."""
    report.interrupted_finished += swap.finish_interrupted(partition)
    footers: dict[Path, dict[str, str]] = {}
    readable: list[plan.Candidate] = []
    for candidate in plan.finished_files(partition, settings.older_than_seconds, now_seconds):
        try:
            footers[candidate.path] = read_footer_metadata(candidate.path)
        except (OSError, pa.ArrowException) as exc:
            # Left as it is, for a person to look at: a file no reader can read either.
            reason = f"{candidate.path.name}: not compacted: {' '.join(str(exc).split())}"
            log.warning("compaction: %s/%s", partition, reason)
            report.failed.append((partition, reason))
            continue
        readable.append(candidate)
    groups = plan.plan_groups(
        readable,
        target_bytes=settings.target_bytes,
        min_bytes=settings.min_bytes,
        max_bytes=settings.max_bytes,
        min_new_bytes=settings.min_new_bytes,
        day_over=plan.partition_day_over(partition, now_seconds),
    )
    for group in groups:
        if stop():
            return
        inputs = [c.path for c in group]
        final = partition / plan.compacted_name(inputs)
        hidden = swap.compacting_path(final)
        started = time.monotonic()
        try:
            metadata = merged_metadata([(p.name, footers[p]) for p in inputs])
            result = merge_files(
                inputs,
                hidden,
                metadata=metadata,
                compression_level=settings.compression_level,
                scratch=swap.scratch_path(final),
            )
        except (MergeError, OSError, pa.ArrowException) as exc:
            hidden.unlink(missing_ok=True)
            reason = " ".join(str(exc).split())
            log.warning("compaction: %s skipped: %s", partition, reason)
            report.failed.append((partition, reason))
            continue
        swap.swap(final, inputs)
        report.files_written += 1
        report.files_replaced += len(inputs)
        report.rows += result.rows
        report.input_bytes += result.input_bytes
        report.output_bytes += result.output_bytes
        log.info(
            "compacted file=%s files=%d rows=%d row_groups=%d input_bytes=%d output_bytes=%d "
            "seconds=%.1f",
            final,
            len(inputs),
            result.rows,
            result.row_groups,
            result.input_bytes,
            result.output_bytes,
            time.monotonic() - started,
        )


def _update_index(root: Path, partition: Path, report: CompactionReport) -> None:
    """Rebuild the index of ``partition`` after its swaps (the files it lists were replaced), so
    that the next reader reads no footer; a failure is logged and counted, the files stay."""
    folder = partition.relative_to(root).as_posix()
    stats = update_partition(root, folder, rebuild_at_most=None)
    if stats.written:
        report.indexes_written += 1
    else:
        why = "; ".join(f"{path}: {problem}" for path, problem in stats.unreadable)
        log.warning("compaction: index of %s not written%s", folder, f" ({why})" if why else "")
        report.index_failures += 1


def compact_directory(
    root: Path,
    settings: CompactionSettings | None = None,
    *,
    now_seconds: float | None = None,
    stop: Callable[[], bool] = lambda: False,
) -> CompactionReport:
    """Compact every partition of the output directory ``root`` (see the module). ``stop`` is
    asked between groups (a signal). Raises :class:`CompactionBusyError` when another compaction
    runs there, FileNotFoundError when ``root`` does not exist, OSError when it cannot be
    written."""
    settings = settings or CompactionSettings()
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such directory")
    started = time.monotonic()
    now = time.time() if now_seconds is None else now_seconds
    report = CompactionReport()
    with directory_lock(root):
        for partition in plan.partitions(root):
            if stop():
                break
            report.partitions += 1
            swapped = report.files_written + report.interrupted_finished
            compact_partition(partition, settings, report, now, stop)
            if report.files_written + report.interrupted_finished > swapped:
                _update_index(root, partition, report)
    report.seconds = time.monotonic() - started
    return report
