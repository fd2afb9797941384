"""The journal: what a writer appends, a reader replays."""

from __future__ import annotations

from array import array
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from capture.accumulator import TickFrame
from capture.journal import R_SERIES, SERIES_PER_BATCH, JournalWriter, read_journal

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
