"""The index beside the data: reconciled with the files, rebuilt from garbage, and the
answers it gives (explorer, summary) equal to those of a scan of the rows."""

from __future__ import annotations

import dataclasses
import os
from datetime import timedelta
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from analysis.query.dataset_index import INDEX_FILE, open_local_index
from common.contract import INDEX_DIR, SUMMARY_KEY
from monitor.compaction.local import CompactionSettings, compact_directory
from tests.summary_data import CPU, START_SECONDS, WORKING_SET, record

pytest.importorskip("duckdb", reason="duckdb is not installed (pip install -e '.[query]')")


def index_files(root: Path) -> list[Path]:
    return sorted((root / INDEX_DIR).rglob(INDEX_FILE))


def total_rows(root: Path) -> int:
    return sum(pq.read_metadata(p).num_rows for p in root.rglob("*.parquet"))


def strip_summary(path: Path) -> None:
    """Make ``path`` a file of before summaries: the same rows, no ``capture.summary``."""
    table = pq.read_table(path)
    meta = {k: v for k, v in (table.schema.metadata or {}).items() if k != SUMMARY_KEY.encode()}
    stat = path.stat()
    pq.write_table(table.replace_schema_metadata(meta), path)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1))


def test_the_index_follows_added_removed_and_compacted_files(tmp_path: Path) -> None:
    record(tmp_path, ticks=120, ticks_per_file=30)
    first = open_local_index(tmp_path)
    assert first.stats.rebuilt and first.stats.written == 1
    assert len(index_files(tmp_path)) == 1
    assert first.summary is not None and first.summary["rows"] == total_rows(tmp_path)

    again = open_local_index(tmp_path)
    assert (again.stats.kept, again.stats.footers_read) == (1, 0)

    # A later run: its files are merged in, the others' footers not read again.
    record(tmp_path, ticks=60, ticks_per_file=30, start_seconds=START_SECONDS + 600)
    extended = open_local_index(tmp_path)
    assert extended.stats.extended == 1 and not extended.stats.rebuilt
    assert extended.stats.footers_read == 2
    assert extended.summary is not None
    assert extended.summary["rows"] == total_rows(tmp_path)
    assert len(extended.summary["runs"]) == 2

    # The size limit removes the oldest file: rebuilt, its rows gone from the summary.
    oldest = min(tmp_path.rglob("*.parquet"))
    oldest.unlink()
    removed = open_local_index(tmp_path)
    assert "removed" in next(iter(removed.stats.rebuilt.values()))
    assert removed.summary is not None and removed.summary["rows"] == total_rows(tmp_path)
    assert oldest.relative_to(tmp_path).as_posix() not in removed.files

    # A compaction replaces them all by one file whose footer holds their merged summary.
    compact_directory(tmp_path, CompactionSettings(older_than_seconds=0))
    compacted = open_local_index(tmp_path)
    assert len(compacted.files) == len(list(tmp_path.rglob("*.parquet"))) < len(removed.files)
    assert compacted.summary is not None
    assert compacted.summary["rows"] == removed.summary["rows"]
    assert compacted.stats.scanned == 0


def test_a_file_added_before_the_others_has_its_folder_rebuilt(tmp_path: Path) -> None:
    # A file published late (recovered from its journal) holds ticks before the others': its
    # counters must chain in time order, so the folder is summed again from its files.
    record(tmp_path, ticks=120, ticks_per_file=30)
    whole = open_local_index(tmp_path).summary
    middle = sorted(tmp_path.rglob("*.parquet"))[1]
    kept = middle.read_bytes()
    middle.unlink()
    open_local_index(tmp_path)
    middle.write_bytes(kept)
    again = open_local_index(tmp_path)
    assert list(again.stats.rebuilt.values()) == ["files added before others"]
    assert again.summary == whole


@pytest.mark.parametrize(
    "garbage",
    [b"", b"{not json", b'{"version": 99}', b'{"version": 1, "folder": "elsewhere"}',
     b'{"version": 1, "folder": "F", "files": {"x.parquet": {}}, "keysets": [], '
     b'"metricsets": []}'],
    ids=["empty", "truncated", "version", "foreign", "malformed"],
)  # fmt: skip
def test_a_garbage_index_is_rebuilt_never_trusted(tmp_path: Path, garbage: bytes) -> None:
    record(tmp_path, ticks=60, ticks_per_file=30)
    good = open_local_index(tmp_path)
    (path,) = index_files(tmp_path)
    folder = path.parent.relative_to(tmp_path / INDEX_DIR).as_posix()
    path.write_bytes(garbage.replace(b'"F"', f'"{folder}"'.encode()))
    rebuilt = open_local_index(tmp_path)
    assert list(rebuilt.stats.rebuilt) == [folder]
    assert rebuilt.summary == good.summary
    assert rebuilt.files.keys() == good.files.keys()


def test_a_changed_file_is_not_taken_from_the_index(tmp_path: Path) -> None:
    record(tmp_path, ticks=60, ticks_per_file=30)
    open_local_index(tmp_path)
    path = max(tmp_path.rglob("*.parquet"))
    table = pq.read_table(path)
    pq.write_table(table.slice(0, 10).replace_schema_metadata(table.schema.metadata), path)
    changed = open_local_index(tmp_path)
    assert changed.stats.rebuilt
    assert changed.files[path.relative_to(tmp_path).as_posix()].rows == 10


def test_files_without_a_footer_summary_are_scanned_once(tmp_path: Path) -> None:
    record(tmp_path, ticks=90, ticks_per_file=30)
    with_footers = open_local_index(tmp_path)
    for path in tmp_path.rglob("*.parquet"):
        strip_summary(path)
    scanned = open_local_index(tmp_path)
    assert scanned.stats.scanned == 3
    assert all(f.scanned for f in scanned.files.values())
    # The same summary from the rows as the capture library wrote (floats aside).
    assert scanned.summary is not None and with_footers.summary is not None
    assert scanned.summary["rows"] == with_footers.summary["rows"]
    assert scanned.summary["metrics"] == with_footers.summary["metrics"]
    groups = {g["key"]: g for g in scanned.summary["runs"][0]["groups"]}
    expected = {g["key"]: g for g in with_footers.summary["runs"][0]["groups"]}
    assert groups.keys() == expected.keys()
    for key, group in groups.items():
        assert group["labels"] == expected[key]["labels"]
        assert group["cells"].keys() == expected[key]["cells"].keys()
        for metric, cell in group["cells"].items():
            assert cell[:5] == pytest.approx(expected[key]["cells"][metric][:5]), (key, metric)
    # Kept in the index: not scanned again.
    assert open_local_index(tmp_path).stats.scanned == 0


def test_an_unwritable_folder_keeps_the_index_in_memory(tmp_path: Path) -> None:
    record(tmp_path, ticks=60, ticks_per_file=30)
    (tmp_path / INDEX_DIR).write_text("a file where the folder would be")
    found = open_local_index(tmp_path)
    assert found.stats.written == 0
    assert found.summary is not None and found.summary["rows"] == total_rows(tmp_path)


# ------------------------------------------------------------------ the answers it gives
@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("indexed")
    record(root, ticks=400, ticks_per_file=40, containers=3)
    record(root, ticks=120, ticks_per_file=40, containers=2, start_seconds=START_SECONDS + 900)
    return root


def test_the_explorer_answers_from_the_index_as_from_the_rows(dataset: Path) -> None:
    from analysis.query.explorer import Explorer

    with Explorer(dataset) as indexed, Explorer(dataset, use_index=False) as scanned:
        assert indexed.dataset_index is not None and scanned.dataset_index is None
        assert indexed.containers() == scanned.containers()
        assert indexed.metrics() == scanned.metrics()
        keys = [c.key for c in scanned.containers()[:2]]
        assert indexed.metrics(container_keys=keys) == scanned.metrics(container_keys=keys)
        assert indexed.runs() == scanned.runs()
        assert indexed.nodes() == scanned.nodes()
        assert indexed.time_range() == scanned.time_range()
        for metric in (CPU, WORKING_SET, "container.cpu.usage_usec"):
            assert indexed.series(metric, keys, max_points=40) == scanned.series(
                metric, keys, max_points=40
            )
        # No scan of the rows: the index answered everything but the series.
        assert indexed._con is None


def test_the_summary_from_the_index_equals_the_summary_from_the_rows(dataset: Path) -> None:
    from analysis.summary import summarize

    indexed, scanned = summarize(dataset), summarize(dataset, use_index=False)
    assert len(indexed) == len(scanned) == 2
    for a, b in zip(indexed, scanned, strict=True):
        assert (a.run_id, a.node_name, a.first_time, a.last_time) == (
            b.run_id, b.node_name, b.first_time, b.last_time
        )  # fmt: skip
        assert a.top_processes == b.top_processes
        assert len(a.containers) == len(b.containers)
        for x, y in zip(a.containers, b.containers, strict=True):
            for name in ("cpu_millicores", "working_set_bytes", "pss_bytes"):
                sx, sy = getattr(x, name), getattr(y, name)
                assert (sx is None) == (sy is None), name
                if sx is not None:
                    assert (sx.mean, sx.max) == pytest.approx((sy.mean, sy.max), rel=1e-12)
                    assert sx.p95 == pytest.approx(sy.p95, rel=0.02)  # the sketch's accuracy
            exact = ("cpu_millicores", "working_set_bytes", "pss_bytes")
            plain = {f.name for f in dataclasses.fields(x)} - set(exact)
            assert {n: getattr(x, n) for n in plain} == {n: getattr(y, n) for n in plain}


def test_a_question_about_one_container_and_some_minutes_opens_only_its_files(
    dataset: Path,
) -> None:
    from analysis.query.explorer import Explorer

    with Explorer(dataset) as explorer:
        index = explorer.dataset_index
        assert index is not None
        key = explorer.containers()[0].key
        first = explorer.containers()[0].first_time
        found = explorer.series(
            CPU, [key], first + timedelta(seconds=45), first + timedelta(seconds=100)
        )
        assert found and found[0].container_key == key
        opened, read = explorer.last_read
        # The files holding seconds 45 to 100 of the first run: two of its ten.
        overlapping = [
            f for f in index.files.values()
            if f.first_ms is not None and f.last_ms is not None and key in f.keys
            and f.first_ms <= (first.timestamp() + 100) * 1000
            and f.last_ms >= (first.timestamp() + 45) * 1000
        ]  # fmt: skip
        assert opened == len(overlapping) == 2
        whole = sum(p.stat().st_size for p in dataset.rglob("*.parquet"))
        assert 0 < read < whole / 4


def test_finemon_query_with_a_range_and_a_container_reads_only_their_files(
    tmp_path: Path,
) -> None:
    from analysis.query.times import utc
    from analysis.query_cli import run_query

    dataset = tmp_path
    record(dataset, ticks=400, ticks_per_file=40, containers=3)
    index = open_local_index(dataset)
    key = f"{1:064x}"
    start, end = utc((START_SECONDS + 100) * 1000), utc((START_SECONDS + 150) * 1000)
    sql = "SELECT metric_name, count(*), min(time), max(time) FROM metrics GROUP BY 1 ORDER BY 1"
    expected = run_query(
        dataset,
        f"""SELECT metric_name, count(*), min(time), max(time) FROM metrics
        WHERE container_key = '{key}' AND time BETWEEN '{start}' AND '{end}'
        GROUP BY 1 ORDER BY 1""",
    )
    # Every file outside the range is made unreadable, its size and mtime kept: the index
    # still trusts it, so a query that opened it would fail.
    inside = {
        f.path for f in index.files.values()
        if f.first_ms <= (START_SECONDS + 150) * 1000 and f.last_ms >= (START_SECONDS + 100) * 1000
    }  # fmt: skip
    assert 0 < len(inside) < len(index.files) / 3
    for f in index.files.values():
        if f.path not in inside:
            path = dataset / f.path
            stat = path.stat()
            path.write_bytes(b"x" * stat.st_size)
            os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    found = run_query(dataset, sql, start=start, end=end, container_keys=[key])
    assert found == expected and found.rows


def test_an_unreadable_file_is_warned_of_once_not_seen_as_new_at_every_look(
    tmp_path: Path,
) -> None:
    from analysis.errors import UnreadableFilesWarning
    from analysis.query.explorer import Explorer

    record(tmp_path, ticks=60, ticks_per_file=30)
    (next(tmp_path.rglob("*.parquet")).parent / "junk.parquet").write_bytes(b"junk")
    with pytest.warns(UnreadableFilesWarning, match="junk.parquet"):
        explorer = Explorer(tmp_path)
    with explorer:
        assert explorer.refresh() is False  # a live viewer's look: nothing new
        assert explorer.containers()
