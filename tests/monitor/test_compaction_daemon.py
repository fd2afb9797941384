"""``finemon run --compact-older-than``: the daemon's compaction process, beside a real run."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.dataset as ds
from finemon_process import FAST, Finemon, read_all
from tests.monitor.compaction_data import record


def test_the_daemon_compacts_finished_days_while_it_records(tmp_path: Path) -> None:
    out = tmp_path / "out"
    # A day that is over, left by earlier runs; the run below records today.
    record(out, ticks=300, ticks_per_file=30, containers=2, identifier="test-node")
    old_day = next(out.glob("dt=2024-01-31/identifier=test-node"))
    old_rows = ds.dataset(old_day, format="parquet").count_rows()
    proc = Finemon(out, *FAST, "--duration", "8", "--compact-older-than", "0s")
    assert proc.wait(60) == 0, proc.log
    log = proc.log
    assert "compaction started pid=" in log, log
    assert [p.name for p in old_day.glob("*.parquet") if "-compact-" in p.name], log
    assert len(list(old_day.glob("*.parquet"))) == 1
    assert ds.dataset(old_day, format="parquet").count_rows() == old_rows
    status = json.loads((out / "_compaction.json").read_text())
    assert status["counters"]["files_written"] == 1 and status["counters"]["failures"] == 0
    # Today's files are small and their day goes on: left for later. Every tick is there.
    today = [p for p in out.glob("dt=*/identifier=test-node") if p != old_day]
    assert today and not [p for p in today[0].glob("*-compact-*")]
    table = read_all(today[0])
    ticks = sorted(set(table["fetch_index"].to_pylist()))
    assert ticks == list(range(ticks[0], ticks[-1] + 1)) and len(ticks) >= 50
