"""CaptureManager end to end: files, rotation, readers, crash recovery, bad paths."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

import capture
from capture.schema import capture_schema


def run_manager(
    tmp_path: Path, ticks: int, rotate_every: int | None = None, **kwargs: object
) -> list[capture.PublishedFile]:
    """Drive a manager by hand (owner-driven ticks on a 50 ms grid) and return its files."""
    published: list[capture.PublishedFile] = []
    manager = capture.CaptureManager(
        tmp_path / "f000.parquet",
        tick_seconds=0.05,
        window_ticks=5,
        flush_seconds=0.1,
        auto_tick=False,
        label_columns=("container",),
        global_labels={"node_name": "n1"},
        **kwargs,  # type: ignore[arg-type]
    )
    manager.start()
    g = {c: capture.gauge("mem.bytes", {"container": c}) for c in ("a", "b")}
    c = capture.counter("cpu.usec", {"container": "a", "extra": "x"})
    taken = 0
    files = 0
    while taken < ticks:
        tick = manager.recorder.current_tick()
        g["a"].set(float(tick % 7))
        g["b"].set(1.5)
        c.increment(10)
        taken += manager.take_tick()
        if rotate_every and taken // rotate_every > files:
            files += 1
            published.append(manager.rotate(tmp_path / f"f{files:03d}.parquet"))
        next_boundary = (tick + 1) * 0.05
        time.sleep(max(0.0, next_boundary - time.time()) + 0.002)
    last = manager.close()
    assert last is not None
    published.append(last)
    return published


def test_rows_schema_and_labels(tmp_path: Path) -> None:
    (published,) = run_manager(tmp_path, 12)
    table = pq.read_table(published.path)
    assert table.schema.equals(capture_schema(("container",)), check_metadata=False)
    for field in table.schema:
        assert not pa.types.is_unsigned_integer(field.type)
    meta = pq.read_metadata(published.path)
    assert meta.row_group(0).column(0).compression == "ZSTD"
    rows = table.to_pylist()
    assert {r["metric_kind"] for r in rows} == {"gauge", "counter"}
    counter_rows = [r for r in rows if r["metric_name"] == "cpu.usec"]
    assert all(r["value_float"] is None for r in counter_rows)
    assert all(dict(r["labels"]) == {"extra": "x", "node_name": "n1"} for r in counter_rows)
    values = [r["value_int"] for r in sorted(counter_rows, key=lambda r: r["fetch_index"])]
    assert values == sorted(values) and values[0] >= 10
    gauges = [r for r in rows if r["metric_name"] == "mem.bytes"]
    assert {r["container"] for r in gauges} == {"a", "b"}
    assert all(r["value_int"] is None for r in gauges)
    # one row per series per tick, ticks counted from 0 with no gap
    per_series: dict[object, list[int]] = {}
    for r in rows:
        per_series.setdefault((r["metric_name"], r["container"]), []).append(r["fetch_index"])
    for idx in per_series.values():
        assert sorted(idx) == list(range(len(idx)))
    assert published.rows == table.num_rows


def test_live_files_are_the_hidden_file_and_journal_being_written(tmp_path: Path) -> None:
    manager = capture.CaptureManager(tmp_path / "a.parquet", auto_tick=False, flush_seconds=3600)
    assert manager.live_files() == []  # not started
    manager.start()
    try:
        live = manager.live_files()
        assert [p.name for p in live] == [".a.parquet.partial", ".a.parquet.journal"]
        assert all(p.is_file() for p in live)
        manager.rotate(tmp_path / "b.parquet")
        assert [p.name for p in manager.live_files()] == [
            ".b.parquet.partial",
            ".b.parquet.journal",
        ]
        assert not any(p.exists() for p in live)  # the old ones are gone
    finally:
        manager.close()
    assert manager.live_files() == []
    # Neither file held a row: nothing was published, nothing is left.
    assert list(tmp_path.iterdir()) == []


def test_rotation_neither_loses_nor_duplicates_a_tick(tmp_path: Path) -> None:
    published = run_manager(tmp_path, 40, rotate_every=12)
    assert len(published) >= 3
    tables = [pq.read_table(p.path) for p in published]
    seen: dict[tuple[str, str | None, int], int] = {}
    tick_sets = []
    for i, t in enumerate(tables):
        ticks = set()
        for r in t.select(["metric_name", "container", "fetch_index"]).to_pylist():
            key = (r["metric_name"], r["container"], r["fetch_index"])
            assert key not in seen, f"{key} in file {seen.get(key)} and {i}"
            seen[key] = i
            ticks.add(r["fetch_index"])
        tick_sets.append(ticks)
    all_ticks = sorted(set().union(*tick_sets))
    assert all_ticks == list(range(all_ticks[-1] + 1))
    # each file holds complete time slices: every series of a tick sits in one file
    for ticks in tick_sets:
        for other in tick_sets:
            if ticks is not other:
                assert not ticks & other
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_rotation_in_a_thread_while_ticks_go_on_names_the_file_by_its_first_tick(
    tmp_path: Path,
) -> None:
    # An owner samples and takes ticks while another thread rotates (what finemon does): the
    # file is named from the first tick it really holds, and no tick is lost or doubled.
    manager = capture.CaptureManager(
        tmp_path / "first.parquet",
        tick_seconds=1.0,
        window_ticks=5,
        auto_tick=False,
        label_columns=("container",),
    )
    manager.start(first_tick=0, path=tmp_path / "t0.parquet")
    assert manager.path == tmp_path / "t0.parquet"
    gauges = [capture.gauge("g", {"container": str(i)}) for i in range(300)]
    names: list[int] = []

    def path_for(first_tick: int) -> Path:
        names.append(first_tick)
        return tmp_path / f"t{first_tick}.parquet"

    published: list[capture.PublishedFile] = []
    rotations: list[threading.Thread] = []
    for tick in range(40):
        for i, g in enumerate(gauges):
            g.set(tick * 1000 + i)
        manager.take_tick(tick)
        if tick in (12, 25):
            before = manager.current_path
            thread = threading.Thread(target=lambda: published.append(manager.rotate(path_for)))
            thread.start()
            rotations.append(thread)
            while manager.current_path == before:  # the switch; publishing goes on meanwhile
                time.sleep(0.0005)
    for thread in rotations:
        thread.join()
    last = manager.close()
    assert last is not None
    published.append(last)
    assert not (tmp_path / "first.parquet").exists()
    seen: set[tuple[str, int]] = set()
    firsts = {}
    for p in published:
        columns = ["metric_name", "container", "fetch_index", "value_float"]
        rows = [
            r for r in pq.read_table(p.path, columns=columns).to_pylist() if r["metric_name"] == "g"
        ]
        firsts[p.path.name] = min(r["fetch_index"] for r in rows)
        for r in rows:
            key = (r["container"], r["fetch_index"])
            assert key not in seen
            seen.add(key)
            assert r["value_float"] == r["fetch_index"] * 1000 + int(r["container"])
    assert len(seen) == 300 * 40
    assert len(names) == 2
    for first in names:
        assert firsts[f"t{first}.parquet"] == first


def test_on_flush_runs_after_each_row_group_and_its_failure_is_counted(tmp_path: Path) -> None:
    calls: list[int] = []

    def on_flush() -> None:
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("boom")

    # Row groups of one row: every flush with a tick that left the window writes one.
    published = run_manager(tmp_path, 30, on_flush=on_flush, row_group_rows=1)
    assert len(published) == 1
    groups = pq.ParquetFile(published[0].path).metadata.num_row_groups
    # One call per flush that wrote a row group (the final drain at close is not a flush).
    assert 2 <= len(calls) <= groups
    rows = pq.read_table(published[0].path).to_pylist()
    errors = [
        r["value_int"]
        for r in rows
        if r["metric_name"] == "capture.write_errors" and ("stage", "on_flush") in r["labels"]
    ]
    assert errors and max(errors) == 1


def test_ticks_wait_for_a_row_group_before_they_are_written(tmp_path: Path) -> None:
    # Three series over 40 ticks (120 rows), flushed every 2 ticks: with row groups of 50 rows
    # the ticks that left the window wait until they make 50 rows, then go out together.
    flushes: list[int] = []
    published = run_manager(tmp_path, 40, row_group_rows=50, on_flush=lambda: flushes.append(1))
    (only,) = published
    rows = pq.read_table(only.path).to_pylist()
    assert len({r["fetch_index"] for r in rows}) >= 40  # every tick is there
    # 35 ticks leave the window over about 18 flushes; 17 of them make 51 rows: two flushes
    # wrote (each a few row groups of whole series), the rest waited, and close wrote the rest.
    assert 1 <= len(flushes) <= 2, len(flushes)
    control = run_manager(tmp_path / "control", 40, row_group_rows=1)
    groups = pq.ParquetFile(only.path).metadata.num_row_groups
    assert groups < pq.ParquetFile(control[0].path).metadata.num_row_groups / 3


@pytest.mark.parametrize("churn", [False, True], ids=["steady", "series-come-and-go"])
def test_ticks_are_written_at_once_when_series_come_and_go(tmp_path: Path, churn: bool) -> None:
    # Row groups far larger than the run: a steady set of series waits for close, a changing
    # one is written at every flush (its ended series are then forgotten).
    flushes: list[int] = []
    manager = capture.CaptureManager(
        tmp_path / "churn.parquet",
        tick_seconds=0.05,
        window_ticks=2,
        flush_seconds=0.1,
        auto_tick=False,
        row_group_rows=1_000_000,
        on_flush=lambda: flushes.append(1),
    )
    manager.start()
    try:
        for tick in range(30):
            capture.gauge("churn.bytes", {"c": str(tick if churn else 0)}).set(tick)
            if churn and tick:
                capture.gauge("churn.bytes", {"c": str(tick - 1)}).remove()
            manager.take_tick()
            time.sleep(0.05)
    finally:
        last = manager.close()
    assert last is not None and last.rows >= 28
    if churn:
        assert len(flushes) >= 5
    else:
        assert flushes == []


def test_the_directory_reads_as_a_dataset(tmp_path: Path) -> None:
    part = tmp_path / "dt=2026-01-01" / "identifier=node-a"
    part.mkdir(parents=True)
    published = run_manager(part, 20, rotate_every=8)
    total = sum(p.rows for p in published)
    frame = pd.read_parquet(tmp_path)
    assert len(frame) == total
    assert set(frame["identifier"].astype(str)) == {"node-a"}
    dataset = ds.dataset(tmp_path, format="parquet", partitioning="hive")
    assert dataset.count_rows() == total
    con = duckdb.connect()
    n, kinds = con.execute(
        "select count(*), count(distinct metric_kind) "
        f"from read_parquet('{tmp_path}/**/*.parquet', hive_partitioning=true)"
    ).fetchone()  # type: ignore[misc]
    assert (n, kinds) == (total, 2)
    tz = con.execute(
        f"select typeof(time) from read_parquet('{tmp_path}/**/*.parquet') limit 1"
    ).fetchone()
    assert tz == ("TIMESTAMP WITH TIME ZONE",)


def test_start_on_an_unwritable_path_raises_and_installs_nothing(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    manager = capture.CaptureManager(blocker / "sub" / "x.parquet")
    with pytest.raises(OSError):
        manager.start()
    assert capture.get_recorder() is None


def test_rotate_to_an_unwritable_path_raises_and_keeps_writing(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    manager = capture.CaptureManager(tmp_path / "a.parquet", tick_seconds=0.05, window_ticks=2)
    manager.start()
    capture.gauge("g").set(1)
    with pytest.raises(OSError):
        manager.rotate(blocker / "b.parquet")
    assert manager.current_path == tmp_path / "a.parquet"
    time.sleep(0.2)
    published = manager.close()
    assert published is not None
    assert pq.read_table(published.path).num_rows >= 3


def test_bad_settings_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        capture.CaptureManager(tmp_path / "x.parquet", label_columns=("time",))
    with pytest.raises(ValueError):
        capture.CaptureManager(tmp_path / "x.parquet", compression_level=0)
    with pytest.raises(ValueError):
        capture.CaptureManager(tmp_path / "x.parquet", tick_seconds=0)
    with pytest.raises(ValueError):
        capture.CaptureManager(tmp_path / "x.parquet", global_labels={"labels": "x"})


KILLED_WRITER = textwrap.dedent(
    """
    import sys, time
    import capture
    out, ticks = sys.argv[1], int(sys.argv[2])
    m = capture.CaptureManager(out, tick_seconds=0.05, window_ticks=40, flush_seconds=0.2,
                               auto_tick=False, run_id="killed-run")
    m.start(first_tick=0)
    g = capture.gauge("g", {"k": "v"})
    c = capture.counter("c")
    for i in range(ticks):
        g.set(float(i))
        c.increment(1)
        m.take_tick(i)
        time.sleep(0.05)
    print("done", flush=True)
    time.sleep(60)
    """
)


def test_sigkill_loses_nothing_that_was_journaled(tmp_path: Path) -> None:
    out = tmp_path / "run.parquet"
    proc = subprocess.Popen(
        [sys.executable, "-c", KILLED_WRITER, str(out), "30"],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "done"
    time.sleep(0.3)  # longer than the journal's write cadence (one tick)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    # no unreadable .parquet exists: only hidden journal and partial files
    assert not list(tmp_path.glob("*.parquet"))
    assert list(tmp_path.glob(".*.journal"))
    report = capture.recover(tmp_path)
    assert [r.path for r in report.recovered] == [out]
    assert not report.failed
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
    table = pq.read_table(out).to_pylist()
    gauge = sorted((r["fetch_index"], r["value_float"]) for r in table if r["metric_name"] == "g")
    counter = sorted((r["fetch_index"], r["value_int"]) for r in table if r["metric_name"] == "c")
    # all 30 ticks are there, those still inside the 40-tick window included
    assert gauge == [(i, float(i)) for i in range(30)]
    assert counter == [(i, i + 1) for i in range(30)]
    assert {r["run_id"] for r in table} == {"killed-run"}
    # a manager started on the directory recovers automatically too (nothing left here)
    assert capture.recover(tmp_path).recovered == ()


#: Takes ticks 0..TICKS-1 of three gauges and a counter (with a first rotation at ROTATE_AT and a
#: delayed write into the window), lets the tick thread journal them, then rotates with the
#: process killing itself at the rotation's step KILL_AT.
KILLED_IN_ROTATION = textwrap.dedent(
    """
    import os, signal, sys, time
    import capture, capture.historical, capture.manager
    out, ticks, rotate_at, kill_at = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    m = capture.CaptureManager(f"{out}/f0.parquet", tick_seconds=0.05, window_ticks=8,
                               flush_seconds=0.1, auto_tick=False, run_id="killed-run")
    m.start(first_tick=0)
    gauges = [capture.gauge("g", {"s": str(i)}) for i in range(3)]
    counter = capture.counter("c")
    for tick in range(ticks):
        for i, g in enumerate(gauges):
            g.set(tick * 10 + i)
        counter.absolute(tick)
        m.take_tick(tick)
        if tick == rotate_at:
            m.rotate(f"{out}/f1.parquet")
    capture.historical.gauge_set("late", None, 99.0, (ticks - 3 + 0.5) * 0.05)
    time.sleep(0.3)  # the tick thread journals every tick taken and the delayed write

    def kill(step):
        if step == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)

    capture.manager.step_hook = kill
    m.rotate(f"{out}/f2.parquet")
    print("not killed", flush=True)
    """
)
ROTATION_STEPS = [
    "journal_created",
    "switched",
    "carry_series",
    "carry_frames",
    "carried",
    "published",
]


Row = tuple[str, tuple[tuple[str, str], ...], int, object]


def recorded_values(path: Path) -> list[Row]:
    """(metric, labels, tick, value) of every row of a published file, which has rows."""
    table = pq.read_table(path)
    assert table.num_rows > 0, f"{path.name} has no row"
    found = []
    for r in table.to_pylist():
        value = r["value_float"] if r["metric_kind"] == "gauge" else r["value_int"]
        found.append((r["metric_name"], tuple(sorted(r["labels"])), r["fetch_index"], value))
    return found


@pytest.mark.parametrize("step", ROTATION_STEPS)
def test_a_kill_at_any_step_of_a_rotation_loses_no_tick_and_doubles_none(
    tmp_path: Path, step: str, caplog: pytest.LogCaptureFixture
) -> None:
    ticks = 30
    proc = subprocess.run(
        [sys.executable, "-c", KILLED_IN_ROTATION, str(tmp_path), str(ticks), "12", step],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    with caplog.at_level(logging.INFO, logger="capture"):
        report = capture.recover(tmp_path)
    assert not report.failed
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]
    found = [row for path in tmp_path.glob("*.parquet") for row in recorded_values(path)]
    keys = [row[:3] for row in found]
    assert len(keys) == len(set(keys)), "a tick is in two files"
    expected = {
        ("g", (("s", str(i)),), t, float(t * 10 + i)) for t in range(ticks) for i in range(3)
    }
    expected |= {("c", (), t, t) for t in range(ticks)}
    expected |= {("late", (), t, 99.0) for t in range(ticks - 3, ticks)}
    assert set(found) == expected
    # The first rotation's file holds the ticks that had left the 8-tick window by then.
    assert {t for _, _, t, _ in recorded_values(tmp_path / "f0.parquet")} == set(range(5))


#: finemon's way: ticks every 20 ms while a thread rotates after tick 20, the process killing
#: itself at the rotation's step KILL_AT; prints each tick once taken.
KILLED_IN_ROTATION_THREAD = textwrap.dedent(
    """
    import os, signal, sys, threading, time
    import capture, capture.manager
    out, kill_at = sys.argv[1], sys.argv[2]
    m = capture.CaptureManager(f"{out}/f0.parquet", tick_seconds=0.05, window_ticks=8,
                               flush_seconds=0.1, auto_tick=False)
    m.start(first_tick=0)
    g = capture.gauge("g")

    def kill(step):
        if step == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)

    capture.manager.step_hook = kill
    for tick in range(1000):
        g.set(tick)
        m.take_tick(tick)
        print(tick, flush=True)
        if tick == 20:
            threading.Thread(target=m.rotate, args=(f"{out}/f1.parquet",)).start()
        time.sleep(0.02)
    """
)


@pytest.mark.parametrize("step", ROTATION_STEPS)
def test_a_kill_in_a_rotation_while_ticks_go_on_keeps_every_tick_taken_before_it(
    tmp_path: Path, step: str
) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", KILLED_IN_ROTATION_THREAD, str(tmp_path), step],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    last_taken = int(proc.stdout.split()[-1])
    report = capture.recover(tmp_path)
    assert not report.failed
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]
    found = [row for path in tmp_path.glob("*.parquet") for row in recorded_values(path)]
    ticks = sorted(t for name, _, t, _ in found if name == "g")
    assert all(value == float(t) for name, _, t, value in found if name == "g")
    # Every tick once, from the first on: at most the ticks taken while the rotation wrote (not
    # yet journaled) are missing at the end, never one taken before rotate() was called.
    assert ticks == list(range(len(ticks)))
    assert 20 <= ticks[-1] <= last_taken


#: Starts a manager, writes a gauge and is killed before taking a tick; with KILL_AT
#: ``journal_created`` it kills itself before the journal's header is written.
KILLED_AT_START = textwrap.dedent(
    """
    import os, signal, sys, time
    import capture, capture.manager
    if sys.argv[2] == "journal_created":
        capture.manager.step_hook = lambda step: os.kill(os.getpid(), signal.SIGKILL)
    m = capture.CaptureManager(sys.argv[1], auto_tick=False)
    m.start()
    capture.gauge("g").set(1.0)
    print("started", flush=True)
    time.sleep(60)
    """
)


@pytest.mark.parametrize("kill_at", ["journal_created", "started"])
def test_a_kill_at_start_leaves_nothing_and_no_error(
    tmp_path: Path, kill_at: str, caplog: pytest.LogCaptureFixture
) -> None:
    out = tmp_path / "run.parquet"
    proc = subprocess.Popen(
        [sys.executable, "-c", KILLED_AT_START, str(out), kill_at],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    if kill_at == "started":
        assert proc.stdout.readline().strip() == "started"
        time.sleep(0.2)
        os.kill(proc.pid, signal.SIGKILL)
    assert proc.wait(timeout=60) == -signal.SIGKILL
    journal = tmp_path / ".run.parquet.journal"
    assert journal.exists()
    if kill_at == "journal_created":
        assert journal.stat().st_size == 0  # the header never reached it
    with caplog.at_level(logging.INFO, logger="capture"):
        report = capture.recover(tmp_path)
    assert report.recovered == () and report.failed == ()
    assert journal in report.removed
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert list(tmp_path.iterdir()) == []  # no 0-row file, no .corrupt, no leftovers


def test_close_right_after_start_publishes_nothing(tmp_path: Path) -> None:
    # A SIGTERM within a second of the start, before the owner's first tick: no file.
    published: list[capture.PublishedFile] = []
    manager = capture.CaptureManager(
        tmp_path / "a.parquet", auto_tick=False, on_publish=published.append
    )
    manager.start()
    capture.gauge("g").set(1.0)
    assert manager.close() is None
    assert published == []
    assert list(tmp_path.iterdir()) == []


def test_recovery_skips_a_live_journal_and_survives_garbage(tmp_path: Path) -> None:
    manager = capture.CaptureManager(tmp_path / "live.parquet", tick_seconds=0.05)
    manager.start()
    capture.gauge("g").set(1)
    (tmp_path / ".junk.parquet.journal").write_bytes(b"\x00garbage")
    report = capture.recover(tmp_path)
    assert report.recovered == ()
    assert [p.name for p, _ in report.failed] == [".junk.parquet.journal"]
    assert (tmp_path / ".live.parquet.journal").exists()
    assert (tmp_path / ".junk.parquet.journal.corrupt").exists()
    published = manager.close()
    assert published is not None and published.rows >= 1


def test_truncated_journal_recovers_what_is_complete(tmp_path: Path) -> None:
    out = tmp_path / "run.parquet"
    proc = subprocess.Popen(
        [sys.executable, "-c", KILLED_WRITER, str(out), "20"], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "done"
    time.sleep(0.3)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    journal = next(tmp_path.glob(".*.journal"))
    data = journal.read_bytes()
    journal.write_bytes(data[: len(data) - 50])  # a torn last write: the last tick's
    report = capture.recover(tmp_path)
    (rec,) = report.recovered
    assert not rec.complete
    rows = pq.read_table(out).to_pylist()
    gauge = sorted((r["fetch_index"], r["value_float"]) for r in rows if r["metric_name"] == "g")
    assert gauge == [(i, float(i)) for i in range(19)]  # every tick before the torn one


@pytest.mark.root
def test_full_disk_keeps_earlier_files_intact(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root to mount a small tmpfs (a real full disk)")
    mnt = tmp_path / "small"
    mnt.mkdir()
    if subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=600k", "tmpfs", str(mnt)], check=False
    ).returncode:
        pytest.skip("cannot mount tmpfs here")
    try:
        manager = capture.CaptureManager(
            mnt / "a.parquet", tick_seconds=0.02, window_ticks=2, flush_seconds=0.05
        )
        manager.start()
        for i in range(20):
            capture.gauge("g", {"i": str(i)}).set(i)
        time.sleep(0.3)
        first = manager.rotate(mnt / "b.parquet")
        before = pq.read_table(first.path).num_rows
        # fill the disk with series until writes fail
        filler = mnt / "filler"
        with open(filler, "wb") as f:
            try:
                while True:
                    f.write(b"\xff" * 65536)
            except OSError:
                pass
        for i in range(2000):
            capture.gauge("big", {"i": f"{i:06d}" * 5}).set(i)
        time.sleep(0.5)
        assert manager.recorder.counter("capture.write_errors", {"stage": "journal"}).value or (
            manager.recorder.counter("capture.write_errors", {"stage": "parquet"}).value
        )
        with pytest.raises(OSError):
            manager.rotate(mnt / "c.parquet")
        filler.unlink()
        try:
            manager.close()
        except capture.CaptureWriteError:
            pass
        assert pq.read_table(first.path).num_rows == before  # the earlier file is intact
        for p in mnt.glob("*.parquet"):
            pq.read_metadata(p)  # every published file is readable
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_series_without_a_label_column_has_nulls_there(tmp_path: Path) -> None:
    manager = capture.CaptureManager(
        tmp_path / "x.parquet", tick_seconds=0.05, label_columns=("pod_name", "container_id")
    )
    manager.start()
    capture.gauge("node.wide").set(1.0)
    capture.gauge("per.pod", {"pod_name": "p"}).set(2.0)
    time.sleep(0.15)
    published = manager.close()
    assert published is not None
    rows = pq.read_table(published.path).to_pylist()
    assert {r["metric_name"]: r["pod_name"] for r in rows} == {"node.wide": None, "per.pod": "p"}
    assert all(r["container_id"] is None for r in rows)
