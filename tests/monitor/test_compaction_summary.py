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


def test_a_compaction_leaves_the_index_so_that_readers_read_no_footer(tmp_path: Path) -> None:
    from analysis.query.dataset_index import open_local_index

    record(tmp_path, ticks=7200, ticks_per_file=600, containers=2)  # two days, 12 files
    before = open_local_index(tmp_path)  # a reader builds the index of the raw files
    assert before.stats.footers_read == 12 and before.summary is not None
    report = compact_directory(tmp_path, CompactionSettings(older_than_seconds=0))
    assert report.files_replaced == 12 and report.indexes_written == 2
    after = open_local_index(tmp_path)
    assert after.stats.footers_read == 0 and not after.stats.rebuilt, after.stats
    compacted = {p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.parquet")}
    assert set(after.files) == compacted
    assert all(COMPACTED_MARKER in path for path in compacted)
    assert after.summary is not None
    assert (
        after.summary["rows"] == before.summary["rows"] == sum(f.rows for f in after.files.values())
    )
