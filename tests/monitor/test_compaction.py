"""Compaction on files the capture library wrote: rows kept, ordered, swapped safely for
readers, finished after a SIGKILL at any step, idempotent."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest
from tests.monitor.compaction_data import START_SECONDS, record

from monitor.compaction import swap
from monitor.compaction.local import CompactionSettings, compact_directory
from monitor.compaction.merge import REPLACES_KEY, RUN_IDS_KEY

SRC = Path(__file__).resolve().parents[2] / "src"
ALL = CompactionSettings(older_than_seconds=0)


def rows(root: Path) -> list[tuple[object, ...]]:
    """Every row of the dataset, labels included, as sorted tuples (a multiset)."""
    table = ds.dataset(root, format="parquet", partitioning="hive").to_table()
    out = []
    for row in table.to_pylist():
        row["labels"] = sorted(row["labels"] or [])
        out.append(tuple(json.dumps(v, default=str) for v in row.values()))
    return sorted(out)


def visible(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


@pytest.fixture
def two_runs(tmp_path: Path) -> Path:
    """Two runs on one node, the first crossing midnight: two partitions, one of two runs."""
    root = tmp_path / "out"
    record(root, ticks=600, ticks_per_file=60, start_seconds=START_SECONDS + 7200 - 300)
    record(root, ticks=300, ticks_per_file=60, start_seconds=START_SECONDS + 7200 + 600)
    return root


def test_every_row_is_kept_once_and_ordered_for_pruning(two_runs: Path) -> None:
    before = rows(two_runs)
    inputs = sorted(p.name for p in two_runs.rglob("*.parquet"))
    report = compact_directory(two_runs, ALL)
    assert report.files_replaced == len(inputs) and report.files_written == 2
    assert rows(two_runs) == before
    files = sorted(two_runs.rglob("*.parquet"))
    assert [p.parent.parent.name for p in files] == ["dt=2024-01-31", "dt=2024-02-01"]
    replaced: list[str] = []
    for path in files:
        assert "-compact-" in path.name
        table = pq.read_table(path)
        container = [c or "" for c in table["container_id"].to_pylist()]
        names, times = table["metric_name"].to_pylist(), table["time"].to_pylist()
        keys = list(zip(names, container, times, strict=True))
        # Sorted by metric, container and time (nulls, node-wide rows, last in a metric).
        assert keys == sorted(keys, key=lambda k: (k[0], k[1] == "", k[1], k[2]))
        meta = pq.read_metadata(path)
        kv = {k.decode(): v.decode() for k, v in meta.metadata.items()}
        replaced += json.loads(kv[REPLACES_KEY])
        assert "capture.metrics" in kv and "container.memory.usage_bytes" in kv["capture.metrics"]
        group = meta.row_group(0)
        for i in range(group.num_columns):
            column = group.column(i)
            if not column.path_in_schema.startswith("labels"):
                assert column.is_stats_set, column.path_in_schema
                assert column.has_column_index, column.path_in_schema
    assert sorted(replaced) == inputs
    # The second day holds both runs: no single capture.run_id, both listed.
    second = {k.decode(): v.decode() for k, v in pq.read_metadata(files[1]).metadata.items()}
    assert "capture.run_id" not in second and len(json.loads(second[RUN_IDS_KEY])) == 2
    first = {k.decode(): v.decode() for k, v in pq.read_metadata(files[0]).metadata.items()}
    assert json.loads(first[RUN_IDS_KEY]) == [first["capture.run_id"]]


def test_compaction_is_idempotent(two_runs: Path) -> None:
    compact_directory(two_runs, ALL)
    after = {p: p.stat().st_mtime_ns for p in two_runs.rglob("*.parquet")}
    report = compact_directory(two_runs, ALL)
    assert report.files_written == 0 and report.files_replaced == 0
    assert {p: p.stat().st_mtime_ns for p in two_runs.rglob("*.parquet")} == after


def test_only_finished_files_older_than_the_age(tmp_path: Path) -> None:
    root = tmp_path / "out"
    record(root, ticks=300, ticks_per_file=60, age_seconds=7200)
    record(root, ticks=300, ticks_per_file=60, start_seconds=START_SECONDS + 600, age_seconds=60)
    partition = next(root.glob("dt=*/identifier=*"))
    fresh = time.time() - 600
    recent = sorted(p.name for p in partition.glob("*.parquet") if p.stat().st_mtime > fresh)
    # What the daemon is writing: hidden, never an input.
    live = [partition / ".finemon-x.parquet.partial", partition / ".finemon-x.parquet.journal"]
    for path in live:
        path.write_bytes(b"being written")
    old = len(list(partition.glob("*.parquet"))) - len(recent)
    report = compact_directory(root, CompactionSettings(older_than_seconds=3600))
    assert report.files_written == 1 and report.files_replaced == old >= 4
    names = sorted(p.name for p in partition.glob("*.parquet"))
    assert [n for n in names if "-compact-" not in n] == recent
    assert all(p.read_bytes() == b"being written" for p in live)


def test_the_analysis_reads_compacted_files(two_runs: Path) -> None:
    from analysis.query.explorer import Explorer

    with Explorer(two_runs) as explorer:
        before = [(r.run_id, r.first_time, r.last_time) for r in explorer.runs()]
    compact_directory(two_runs, ALL)
    with Explorer(two_runs) as explorer:
        assert [(r.run_id, r.first_time, r.last_time) for r in explorer.runs()] == before


READER = textwrap.dedent(
    """
    import json, os, sys, time
    import duckdb, pyarrow.dataset as ds
    root, stop, out = sys.argv[1:4]
    seen = {"duckdb": [], "pyarrow": [], "errors": []}
    while not os.path.exists(stop):
        try:
            seen["duckdb"].append(duckdb.sql(
                f"SELECT count(*) FROM read_parquet('{root}/**/*.parquet', hive_partitioning=true)"
            ).fetchall()[0][0])
        except duckdb.Error as exc:
            seen["errors"].append(str(exc).splitlines()[0])
        try:
            dataset = ds.dataset(root, format="parquet", partitioning="hive")
            seen["pyarrow"].append(dataset.count_rows())
        except (OSError, ValueError) as exc:
            seen["errors"].append(str(exc).splitlines()[0])
    json.dump(seen, open(out, "w"))
    """
)


@pytest.fixture
def many_partitions(tmp_path: Path) -> Path:
    root = tmp_path / "out"
    for node in range(6):
        record(root, ticks=240, ticks_per_file=30, containers=2, identifier=f"node-{node}")
    return root


def test_readers_during_compaction_never_count_a_duplicate_or_a_missing_row(
    many_partitions: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    expected = ds.dataset(many_partitions, format="parquet", partitioning="hive").count_rows()
    stop, out = tmp_path / "stop", tmp_path / "seen.json"
    reader = subprocess.Popen(
        [sys.executable, "-c", READER, str(many_partitions), str(stop), str(out)],
        env={**os.environ, "PYTHONPATH": str(SRC)},
    )
    try:
        time.sleep(1.0)  # the reader is reading
        # Each step held open a little, so that reads fall between every pair of steps.
        monkeypatch.setattr(swap, "step_hook", lambda name: time.sleep(0.05))
        report = compact_directory(many_partitions, ALL)
        time.sleep(1.0)
    finally:
        stop.touch()
        assert reader.wait(60) == 0
    assert report.files_written == 6
    seen = json.loads(out.read_text())
    counts = seen["duckdb"] + seen["pyarrow"]
    assert len(counts) >= 10, seen
    assert set(counts) == {expected}, seen
    # Errors name a file that is not Parquet (a placeholder) or is gone: a retry fixes them.
    for error in seen["errors"]:
        assert "magic" in error.lower() or "no such file" in error.lower(), error


KILLER = textwrap.dedent(
    """
    import os, signal, sys
    from pathlib import Path
    from monitor.compaction import swap
    from monitor.compaction.local import CompactionSettings, compact_directory
    root, at, occurrence = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    seen = []
    def hook(name):
        seen.append(name)
        if seen.count(at) == occurrence:
            os.kill(os.getpid(), signal.SIGKILL)
    swap.step_hook = hook
    compact_directory(root, CompactionSettings(older_than_seconds=0))
    """
)


@pytest.mark.parametrize(
    ("step", "occurrence"),
    [
        ("written", 1),
        ("intent", 1),
        ("placeholder", 1),
        ("placeholder", 3),
        ("published", 1),
        ("removed", 2),
        ("done", 1),
    ],
)
def test_a_sigkill_at_any_step_is_finished_by_the_next_run(
    tmp_path: Path, step: str, occurrence: int
) -> None:
    root = tmp_path / "out"
    record(root, ticks=300, ticks_per_file=60, containers=2)
    before = rows(root)
    killed = subprocess.run(
        [sys.executable, "-c", KILLER, str(root), step, str(occurrence)],
        env={**os.environ, "PYTHONPATH": str(SRC)},
        check=False,
    )
    assert killed.returncode == -9
    left = visible(root)
    assert any(name.rsplit("/", 1)[-1].startswith(".finemon-") for name in left) or step == "done"
    report = compact_directory(root, ALL)
    assert rows(root) == before
    names = [name.rsplit("/", 1)[-1] for name in visible(root)]
    assert [n for n in names if n.endswith(".parquet")] == [n for n in names if "-compact-" in n], (
        names
    )
    assert len([n for n in names if n.endswith(".parquet")]) == 1
    assert [n for n in names if n.startswith(".") and n != ".finemon-compact.lock"] == []
    assert report.interrupted_finished == (1 if step not in ("written", "done") else 0)


def test_a_file_that_cannot_be_read_is_left_alone_and_the_others_compacted(
    tmp_path: Path,
) -> None:
    root = tmp_path / "out"
    record(root, ticks=300, ticks_per_file=60, containers=2)
    files = sorted(root.rglob("*.parquet"))
    damaged = files[2]
    cut = damaged.read_bytes()[:100]
    damaged.unlink()
    before = rows(root)
    damaged.write_bytes(cut)
    report = compact_directory(root, ALL)
    assert report.files_written == 1 and report.files_replaced == len(files) - 1
    assert len(report.failed) == 1 and damaged.name in report.failed[0][1]
    assert damaged.read_bytes() == cut
    damaged.unlink()
    assert rows(root) == before


def test_placeholders_are_not_parquet(tmp_path: Path) -> None:
    path = tmp_path / "x.parquet"
    path.write_bytes(b"PAR1")
    swap._place_placeholder(path, tmp_path / "y.parquet")
    assert swap.is_placeholder(path)
    with pytest.raises(pa.ArrowInvalid):
        pq.read_metadata(path)


def test_finemon_commands_say_a_compaction_is_under_way(two_runs: Path) -> None:
    from analysis.dataset import connect
    from analysis.errors import AnalysisError

    victim = sorted(two_runs.rglob("*.parquet"))[1]
    swap._place_placeholder(victim, victim.with_name("finemon-x-compact-0.parquet"))
    with pytest.raises(AnalysisError, match=r"compaction.*run the command again"):
        connect(two_runs)


def test_finemon_compact_command(two_runs: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    command = [sys.executable, "-m", "finemon", "compact", str(two_runs)]
    bad = subprocess.run(
        [*command, "--older-than", "soon"], env=env, capture_output=True, check=False
    )
    assert bad.returncode == 2 and b"invalid duration 'soon'" in bad.stderr
    for path in two_runs.rglob("*.parquet"):
        os.utime(path)  # published just now
    young = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
    assert young.stdout.startswith("compacted 0 files into 0")  # all younger than 1h: no
    before = rows(two_runs)
    done = subprocess.run(
        [*command, "--older-than", "0s"], env=env, capture_output=True, text=True, check=True
    )
    assert "into 2 in 2 partitions" in done.stdout, done.stdout
    assert rows(two_runs) == before


class _StopError(Exception):
    pass


def test_the_size_limit_counts_compacted_files_not_the_replaced_ones(
    two_runs: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from monitor.sizelimit import finemon_files, used_bytes

    def stop_at_intent(name: str) -> None:
        if name == "intent":
            raise _StopError

    monkeypatch.setattr(swap, "step_hook", stop_at_intent)
    with pytest.raises(_StopError):
        compact_directory(two_runs, ALL)
    hidden = sorted(p.name.rsplit(".", 1)[-1] for p in finemon_files(two_runs) if p.name[0] == ".")
    assert hidden == ["compacting", "intent"]
    monkeypatch.setattr(swap, "step_hook", None)
    compact_directory(two_runs, ALL)
    files = list(two_runs.rglob("*.parquet"))
    assert len(files) == 2
    # The compacted files and the index compaction wrote for them: the replaced files are gone.
    indexes = [p for p in (two_runs / "_index").rglob("*") if p.is_file()]
    assert len(indexes) == 2
    assert used_bytes(two_runs) == sum(p.stat().st_size for p in [*files, *indexes])
