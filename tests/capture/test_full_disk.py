"""A full disk (a real tmpfs filled up): what cannot be created leaves nothing behind."""

from __future__ import annotations

import errno
import logging
import subprocess
import sys
import textwrap
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


#: Starts a manager (its journal's header written), prints "started", then on the line "tick"
#: takes a tick of 2,000 gauges (a journal batch far larger than a page) and prints "ticked".
CUT_BY_A_FULL_DISK = textwrap.dedent(
    """
    import sys, time
    import capture
    m = capture.CaptureManager(sys.argv[1], auto_tick=False)
    m.start()
    gauges = [capture.gauge("g", {"i": str(i)}) for i in range(2000)]
    print("started", flush=True)
    sys.stdin.readline()
    for i, g in enumerate(gauges):
        g.set(float(i))
    m.take_tick()
    time.sleep(0.5)  # the tick thread tries to journal it
    print("ticked", flush=True)
    time.sleep(60)
    """
)


def test_a_journal_cut_short_by_a_full_disk_publishes_no_empty_file(
    small_disk: SmallDisk, caplog: pytest.LogCaptureFixture
) -> None:
    out = small_disk.root / "out"
    out.mkdir()
    proc = subprocess.Popen(
        [sys.executable, "-c", CUT_BY_A_FULL_DISK, str(out / "f.parquet")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdin is not None and proc.stdout is not None
    try:
        assert proc.stdout.readline().strip() == "started"
        journal = out / ".f.parquet.journal"
        header_bytes = journal.stat().st_size
        small_disk.fill()
        proc.stdin.write("tick\n")
        proc.stdin.flush()
        assert proc.stdout.readline().strip() == "ticked"
    finally:
        proc.kill()
        proc.wait()
    # The tick did not fit: the journal ends after its header, short of the tick.
    assert header_bytes <= journal.stat().st_size < header_bytes + 2000 * 8
    small_disk.free()
    with caplog.at_level(logging.INFO, logger="capture"):
        report = capture.recover(out)
    assert report.recovered == () and report.failed == ()
    assert journal in report.removed
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert list(out.iterdir()) == []  # no 0-row file, no .corrupt, no leftovers
