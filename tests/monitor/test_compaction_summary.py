"""A compacted file's footer summary: its inputs' merged, equal to a scan of its rows."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.capture.test_summary import cells, check_cells, footer_summary, scanned
from tests.summary_data import record

from common.contract import COMPACTED_MARKER
from monitor.compaction.local import CompactionSettings, compact_directory

pytest.importorskip("duckdb", reason="duckdb is not installed (pip install -e '.[query]')")


def test_a_compacted_file_holds_the_merged_summary_of_its_inputs(tmp_path: Path) -> None:
    record(tmp_path, ticks=200, ticks_per_file=50, containers=2)
    record(tmp_path, ticks=60, ticks_per_file=50, containers=1, start_seconds=1_706_742_500)
    compact_directory(tmp_path, CompactionSettings(older_than_seconds=0))
    compacted = sorted(p for p in tmp_path.rglob("*.parquet") if COMPACTED_MARKER in p.name)
    assert compacted
    for path in compacted:
        summary = footer_summary(path)
        check_cells(summary, scanned(path))
        assert len({k[0] for k in cells(summary)}) == len(summary["runs"]) == 2
