"""The journal: what a writer appends, a reader replays."""

from __future__ import annotations

import logging
from array import array
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pytest

import capture
from capture.accumulator import TickFrame
from capture.journal import (
    R_SERIES,
    SERIES_PER_BATCH,
    JournalCutShortError,
    JournalError,
    JournalWriter,
    read_journal,
)

T0 = 1_700_000_000


def test_many_series_are_journaled_in_bounded_batches_and_all_replayed(tmp_path: Path) -> None:
    # A rotation re-journals every series of the node; they go in several batches.
    count = 2 * SERIES_PER_BATCH + 5
    path = tmp_path / ".f.parquet.journal"
    journal = JournalWriter(path)
    journal.begin({"run_id": "r", "first_tick": T0})
    series = ((sid, "gauge", f"m{sid % 7}", (("pod", f"p{sid}"),)) for sid in range(count))
    frame = TickFrame.from_arrays(
        T0,
        array("q", range(count)),
        array("d", (float(s) for s in range(count))),
        bytes(count),
        array("q"),
        array("q"),
        b"",
    )
    journal.write(series=series, frames=[frame])
    journal.close(delete=False)

    with pa.ipc.open_stream(path) as reader:
        sizes = [pc.sum(pc.equal(batch.column(0), R_SERIES)).as_py() or 0 for batch in reader]
    assert max(sizes) == SERIES_PER_BATCH
    assert sum(sizes) == count

    contents = read_journal(path)
    assert contents.complete
    assert sorted(contents.series) == list(range(count))
    assert contents.series[count - 1].name == f"m{(count - 1) % 7}"
    assert dict(contents.series[count - 1].labels) == {"pod": f"p{count - 1}"}
    assert sorted(contents.points.sid.to_pylist()) == list(range(count))


def _journal_with_ticks(path: Path, ticks: int) -> int:
    """Write a journal of ``ticks`` ticks of two series; returns the size of its header."""
    journal = JournalWriter(path)
    # A header the size of finemon's (its metadata holds the metrics' descriptions).
    journal.begin({"run_id": "r", "first_tick": T0, "metadata": {"d": "described " * 2000}})
    header_bytes = path.stat().st_size
    journal.write(series=[(0, "gauge", "g", ()), (1, "gauge", "h", ())])
    for tick in range(T0, T0 + ticks):
        values = array("d", [float(tick), 2.0])
        frame = TickFrame.from_arrays(
            tick, array("q", [0, 1]), values, bytes(2), array("q"), array("q"), b""
        )
        journal.write(frames=[frame])
    journal.close(delete=False)
    return header_bytes


def test_a_journal_cut_within_its_header_holds_nothing_and_is_removed_quietly(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # A kill, or a full disk, while the header was written: at every byte it could end at.
    whole = tmp_path / ".whole.parquet.journal"
    header_bytes = _journal_with_ticks(whole, 3)
    data = whole.read_bytes()
    assert read_journal(whole).ticks == [T0, T0 + 1, T0 + 2]
    cut = tmp_path / "cut" / ".f.parquet.journal"
    cut.parent.mkdir()
    for size in range(header_bytes):
        cut.write_bytes(data[:size])
        with pytest.raises(JournalCutShortError):
            read_journal(cut)
    cut.write_bytes(data[:header_bytes])
    assert read_journal(cut).ticks == []
    cut.write_bytes(data[: header_bytes + 40])  # the header whole, no tick: a full disk's cut
    with caplog.at_level(logging.INFO, logger="capture"):
        report = capture.recover(cut.parent)
    assert report.recovered == () and report.failed == ()
    cut.write_bytes(data[: header_bytes // 2])
    with caplog.at_level(logging.INFO, logger="capture"):
        report = capture.recover(cut.parent)
    assert report.recovered == () and report.failed == () and report.removed == (cut,)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert list(cut.parent.iterdir()) == []  # no 0-row file, no .corrupt


@pytest.mark.parametrize("damage", ["marker", "metadata size", "garbage"])
def test_a_damaged_journal_with_data_is_set_aside_as_corrupt(tmp_path: Path, damage: str) -> None:
    path = tmp_path / ".f.parquet.journal"
    _journal_with_ticks(path, 3)
    data = bytearray(path.read_bytes())
    if damage == "marker":
        data[0] = 0  # the first message's marker
    elif damage == "metadata size":
        data[6] = 0x40  # a metadata size no header has
    else:
        data = bytearray(b"\x00garbage" * 200)
    path.write_bytes(bytes(data))
    with pytest.raises(JournalError) as raised:
        read_journal(path)
    assert not isinstance(raised.value, JournalCutShortError)
    report = capture.recover(tmp_path)
    assert [p for p, _ in report.failed] == [path]
    assert [p.name for p in tmp_path.iterdir()] == [".f.parquet.journal.corrupt"]
