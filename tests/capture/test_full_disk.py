"""A full disk (a real tmpfs filled up): what cannot be created leaves nothing behind."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest

import capture
from capture.files import ParquetFile
from capture.journal import JournalWriter
from capture.schema import capture_schema
from tests.small_disk import SmallDisk

pytestmark = pytest.mark.root


def hidden_files(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.rglob(".*") if p.is_file())


def test_a_parquet_file_that_cannot_be_created_leaves_no_partial(small_disk: SmallDisk) -> None:
    small_disk.fill()
    with pytest.raises(OSError) as raised:
        ParquetFile(small_disk.root / "f.parquet", capture_schema(()))
    assert raised.value.errno == errno.ENOSPC
    assert hidden_files(small_disk.root) == []


def test_a_journal_that_cannot_begin_is_deleted_on_close(small_disk: SmallDisk) -> None:
    small_disk.fill()
    journal = JournalWriter(small_disk.root / ".f.parquet.journal")  # buffered: no write yet
    with pytest.raises(OSError):
        journal.begin({"run_id": "r"})
    journal.close(delete=True)  # its buffer cannot be flushed: it goes anyway
    assert hidden_files(small_disk.root) == []


def test_failed_rotations_on_a_full_disk_leave_nothing_behind(small_disk: SmallDisk) -> None:
    out = small_disk.root / "out"
    manager = capture.CaptureManager(
        out / "f000.parquet", tick_seconds=0.05, window_ticks=2, auto_tick=False
    )
    manager.start()
    try:
        gauge = capture.gauge("mem.bytes")
        for value in range(3):
            gauge.set(float(value))
            manager.take_tick()
        live = hidden_files(out)
        assert live == [".f000.parquet.journal", ".f000.parquet.partial"]
        small_disk.fill()
        for n in range(1, 4):
            with pytest.raises(OSError):
                manager.rotate(out / f"f{n:03d}.parquet")
        # Only the file still being written; no new partial or journal per failed rotation.
        assert hidden_files(out) == live
        assert manager.current_path == out / "f000.parquet"
    finally:
        small_disk.free()
        manager.close()
