"""End to end: the real ``finemon run`` process with a fake observer, against a tmp output dir."""

from __future__ import annotations

import contextlib
import itertools
import os
import random
import re
import signal
import socket
import subprocess
import time
import urllib.request
from collections import defaultdict
from datetime import UTC
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest
from finemon_process import (
    FAST,
    Finemon,
    free_port,
    hidden_leftovers,
    index_bytes,
    manifest,
    parquet_files,
    read_all,
    run_finemon,
    wait_for,
)

from analysis.dataset import connect
from common.contract import INDEX_DIR, LABEL_COLUMNS
from monitor.sizelimit import used_bytes

TICK_MS = 100


def rows_of(output_dir: Path) -> list[dict[str, Any]]:
    return read_all(output_dir).to_pylist()  # type: ignore[no-any-return]


def check_ticks(rows: list[dict[str, Any]], run_id: str) -> tuple[int, int]:
    """No (series, tick) twice, across files; no tick missing between the first and the last.

    Returns the first and last fetch_index of the run.
    """
    seen: dict[tuple[Any, ...], str] = {}
    ticks_by_series: dict[tuple[Any, ...], list[int]] = defaultdict(list)
    for row in rows:
        if row["run_id"] != run_id:
            continue
        series = (
            row["metric_name"],
            tuple(row[c] for c in LABEL_COLUMNS),
            tuple(sorted(row["labels"] or [])),
        )
        key = (*series, row["fetch_index"])
        assert key not in seen, f"{key} in {seen[key]} and {row['file']}"
        seen[key] = row["file"]
        ticks_by_series[series].append(row["fetch_index"])
        # Each tick sits on the grid, at its fetch_index.
        millis = int(row["time"].timestamp() * 1000)
        assert millis % TICK_MS == 0
    rss = [s for s in ticks_by_series if s[0] == "finemon.self.rss_bytes"]
    assert len(rss) == 1
    ticks = sorted(ticks_by_series[rss[0]])
    assert ticks == list(range(ticks[0], ticks[-1] + 1)), "a tick is missing"
    for series, series_ticks in ticks_by_series.items():
        series_ticks.sort()
        assert series_ticks == list(range(series_ticks[0], series_ticks[-1] + 1)), series
    return ticks[0], ticks[-1]


def all_readable(output_dir: Path) -> None:
    for path in parquet_files(output_dir):
        pq.read_table(path)  # raises for an unreadable file
    assert not list(output_dir.rglob("*.parquet.partial.parquet"))


def test_rotation_yields_complete_non_overlapping_files(tmp_path: Path) -> None:
    out = tmp_path / "out"
    code, log = run_finemon(out, *FAST, "--duration", "5", "--cluster-name", "c1")
    assert code == 0, log
    files = parquet_files(out)
    assert len(files) >= 2, log
    assert not hidden_leftovers(out)
    session = manifest(out)
    run_id = session["run_id"]

    # One log line per rotation plus start/stop lines, never one per sample (~50 samples).
    assert log.count(" rotated file=") == len(files) - 1
    assert len(log.strip().splitlines()) < 15, log
    assert re.search(r"rotated file=\S+ rows=\d+ bytes=\d+", log)

    # Every reader sees the same rows, with the partition columns.
    rows = rows_of(out)
    dataset = ds.dataset(out, format="parquet", partitioning="hive").to_table()
    assert dataset.num_rows == len(rows)
    assert {"dt", "identifier"} <= set(dataset.column_names)
    assert set(dataset.column("identifier").to_pylist()) == {"test-node"}
    frame = pd.read_parquet(out)
    assert len(frame) == len(rows)
    assert {"dt", "identifier"} <= set(frame.columns)
    con = duckdb.connect()
    count, dts, identifiers, runs = con.execute(
        "SELECT count(*), count(DISTINCT dt), min(identifier), min(run_id) "
        f"FROM read_parquet('{out}/**/*.parquet', hive_partitioning=true)"
    ).fetchone()  # type: ignore[misc]
    assert count == len(rows)
    assert dts >= 1 and identifiers == "test-node" and runs == run_id

    # Complete time slices: no duplicate, no gap, files in time order.
    first, last = check_ticks(rows, run_id)
    assert first == 0 and last >= 40
    spans = []
    for path in files:
        table = pq.read_table(path)
        ticks = table.column("fetch_index").to_pylist()
        spans.append((min(ticks), max(ticks)))
        first_time = min(table.column("time").to_pylist())
        assert path.parent.parent.name == f"dt={first_time.astimezone(UTC):%Y-%m-%d}"
        assert table.column("node_name").unique().to_pylist() == ["test-node"]
        # --cluster-name is a column of every row, like the node's name.
        assert table.column("cluster_name").unique().to_pylist() == ["c1"]
    spans.sort()
    for (_, end), (start, _) in itertools.pairwise(spans):
        assert start == end + 1

    # The fake containers' label columns and finemon's own metrics are there.
    names = {r["metric_name"] for r in rows}
    assert {
        "fake.cpu_millicores",
        "fake.samples",
        "finemon.self.cpu_millicores",
        "finemon.self.rss_bytes",
        "finemon.tick.duration_seconds",
        "finemon.containers",
        "finemon.ticks_skipped",
        "finemon.write_errors",
    } <= names
    fake = [r for r in rows if r["metric_name"] == "fake.cpu_millicores"]
    assert {r["pod_name"] for r in fake} == {"pod-0", "pod-1", "pod-2"}
    assert {dict(r["labels"])["cgroup"] for r in fake} == {f"/kubepods/pod-{i}" for i in range(3)}
    rss = [r["value_float"] for r in rows if r["metric_name"] == "finemon.self.rss_bytes"]
    assert min(rss) > 1_000_000

    # The analysis commands read the column.
    with connect(out) as con:
        by_cluster = con.execute(
            "SELECT cluster_name, count(*) FROM metrics GROUP BY ALL"
        ).fetchall()
        assert by_cluster == [("c1", len(rows))]
        # (The fake observer writes no container.* rows, so the containers view is empty here.)
        described = con.execute("DESCRIBE containers").fetchall()
        assert "cluster_name" in [row[0] for row in described]

    # The manifest describes the run.
    assert session["reason"] == "duration"
    assert session["end_time"] and session["start_time"]
    assert session["identifier"] == "test-node"
    assert session["node_name"] == "test-node"
    assert session["cluster_name"] == "c1"
    assert session["config"]["interval_seconds"] == 0.1
    assert session["config"]["rotation_seconds"] == 2.0
    assert session["finemon_version"]
    assert "git_revision" in session
    host = session["host"]
    assert host["kernel_release"] == os.uname().release
    assert host["cpu_count"] == os.cpu_count()
    assert host["memory_bytes"] > 0
    assert host["observer"]["cgroup_version"] == "fake"
    assert session["stats"]["files"] == len(files)
    assert session["stats"]["rows"] == len(rows)
    assert manifest(out, run_id) == session


def test_sigterm_at_random_moments(tmp_path: Path) -> None:
    out = tmp_path / "out"
    rng = random.Random()
    run_ids = []
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGTERM):
        proc = Finemon(out, *FAST)
        proc.wait_log("recording run_id=")
        time.sleep(rng.uniform(0.0, 1.6))
        proc.signal(sig)
        started = time.monotonic()
        assert proc.wait(10) == 0, proc.log
        assert time.monotonic() - started < 5
        all_readable(out)
        assert not hidden_leftovers(out)
        session = manifest(out)
        assert session["reason"] == "signal"
        assert session["signal"] == sig.name
        assert session["end_time"]
        assert session["drain"] == "complete"
        run_ids.append(session["run_id"])
        # No --cluster-name, no $CLUSTER_NAME: the column is there, null.
        for path in parquet_files(out):
            assert pq.read_table(path, columns=["cluster_name"]).column(0).null_count == (
                pq.read_metadata(path).num_rows
            )
        if session["stats"]["ticks_sampled"]:
            check_ticks(rows_of(out), session["run_id"])
        else:  # signalled before the first tick: no file (a file of no rows is never written)
            assert not [p for p in parquet_files(out) if session["run_id"][:8] in p.name]
    # Every run's manifest is kept.
    assert sorted(p.stem for p in (out / "_sessions").iterdir()) == sorted(run_ids)


def test_second_signal_still_leaves_readable_files(tmp_path: Path) -> None:
    out = tmp_path / "out"
    proc = Finemon(out, *FAST)
    proc.wait_log(" rotated file=")
    proc.signal(signal.SIGTERM)
    proc.signal(signal.SIGTERM)
    assert proc.wait(10) == 0, proc.log
    all_readable(out)
    first = manifest(out)
    assert first["reason"] == "signal"
    assert first["drain"] in ("skipped", "interrupted", "complete")
    if first["drain"] != "complete":
        assert hidden_leftovers(out)
    # The next start recovers whatever the hurried stop left.
    code, log = run_finemon(out, *FAST, "--duration", "0.5")
    assert code == 0, log
    assert not hidden_leftovers(out)
    all_readable(out)
    check_ticks(rows_of(out), first["run_id"])


def test_second_signal_during_the_drain_leaves_the_journal_for_recovery(tmp_path: Path) -> None:
    out = tmp_path / "out"
    # 10,000 series and a 3 s window: the drain writes about 300,000 rows (some 0.2 s).
    slow_drain = ("--interval", "0.1", "--window-seconds", "3", "--rotation-seconds", "8")
    proc = Finemon(out, *slow_drain, observer="fake_observer:make_many")
    proc.wait_log("recording run_id=")
    time.sleep(3.2)
    proc.signal(signal.SIGTERM)
    proc.wait_log("stopping reason=signal", poll=0.002)
    proc.signal(signal.SIGTERM)
    assert proc.wait(10) == 0, proc.log
    all_readable(out)
    first = manifest(out)
    assert first["reason"] == "signal"
    # Interrupted mid-drain, or (if the signal beat the drain's start) no drain at all.
    assert first["drain"] in ("interrupted", "skipped"), proc.log
    assert [p for p in hidden_leftovers(out) if p.name.endswith(".journal")]

    code, log = run_finemon(out, *FAST, "--duration", "0.3")
    assert code == 0, log
    assert "recovered file=" in log
    assert not hidden_leftovers(out)
    all_readable(out)
    rows = [r for r in rows_of(out) if r["run_id"] == first["run_id"]]
    assert len({r["fetch_index"] for r in rows}) >= 25


def test_sigkill_then_restart_recovers_the_journal(tmp_path: Path) -> None:
    out = tmp_path / "out"
    proc = Finemon(out, *FAST)
    proc.wait_log(" rotated file=")
    time.sleep(0.7)
    killed_at = time.time()
    proc.process.kill()
    proc.wait()
    all_readable(out)
    journals = [p for p in hidden_leftovers(out) if p.name.endswith(".journal")]
    assert journals, "the file in progress left its journal"
    first = manifest(out)
    assert first["end_time"] is None

    code, log = run_finemon(out, *FAST, "--duration", "1")
    assert code == 0, log
    assert "recovered file=" in log
    assert not hidden_leftovers(out)
    all_readable(out)
    second = manifest(out)
    assert second["run_id"] != first["run_id"]
    assert [r["path"] for r in second["recovered"]] == [
        str(j.with_name(j.name[1 : -len(".journal")])) for j in journals
    ]
    # The killed run: every tick up to the kill, none twice, none missing.
    rows = rows_of(out)
    first_tick, _ = check_ticks(rows, first["run_id"])
    assert first_tick == 0
    last_time = max(r["time"] for r in rows if r["run_id"] == first["run_id"]).timestamp()
    assert last_time >= killed_at - 0.5
    # The killed run's manifest is still there, unchanged.
    assert manifest(out, first["run_id"]) == first


#: A tick every 5 s: a stop right after the start comes before the first tick.
SLOW = ("--interval", "5", "--window-seconds", "10", "--rotation-seconds", "20")


@pytest.mark.parametrize("stop", ["SIGTERM", "SIGKILL"])
def test_a_stop_before_the_first_tick_publishes_no_empty_file(tmp_path: Path, stop: str) -> None:
    out = tmp_path / "out"
    proc = Finemon(out, *SLOW)
    proc.wait_log("recording run_id=")
    if stop == "SIGTERM":
        proc.signal(signal.SIGTERM)
        assert proc.wait(10) == 0, proc.log
        session = manifest(out)
        assert session["stats"]["ticks_sampled"] == 0, "the test needs a stop before a tick"
        assert session["stats"]["files"] == 0
    else:
        proc.process.kill()
        proc.wait()
        assert [p.name for p in hidden_leftovers(out)]  # the journal, for the next start
        code, log = run_finemon(out, *SLOW, "--duration", "0.3")
        assert code == 0, log
        assert "recovered file=" not in log and "ERROR" not in log, log
    # A file of no rows would only clutter the dataset and count against the size limit.
    assert parquet_files(out) == []
    assert not hidden_leftovers(out)
    assert not list(out.rglob("*.corrupt"))


def test_size_limit_holds_across_a_restart(tmp_path: Path) -> None:
    out = tmp_path / "out"
    limit = 25_000
    proc = Finemon(out, *FAST, "--size-limit", str(limit))
    highest = largest_journal = 0

    def stopped() -> bool:
        nonlocal highest, largest_journal
        highest = max(highest, used_bytes(out))
        for journal in hidden_leftovers(out):
            if journal.name.endswith(".journal"):
                with contextlib.suppress(FileNotFoundError):  # a rotation deletes it
                    largest_journal = max(largest_journal, journal.stat().st_size)
        return (out / "_session.json").exists() and manifest(out).get("reason") == "size_limit"

    wait_for(stopped, 15, "the size limit")
    time.sleep(0.5)
    assert proc.alive(), proc.log
    assert not hidden_leftovers(out)
    largest_file = max(p.stat().st_size for p in parquet_files(out)) + index_bytes(out)
    assert used_bytes(out) <= limit + largest_file
    # Within a tick while running, and for a moment in a rotation the window is in both
    # journals (the new one has it before the old one goes): at most a journal more.
    assert highest <= limit + largest_file + largest_journal + 2_000
    proc.signal(signal.SIGTERM)
    assert proc.wait(10) == 0, proc.log
    # The stop says what it counted: the finished files and the file being written.
    (stop,) = re.findall(
        r"size limit reached: finished files (\d+) bytes \+ the file being written (\d+) bytes "
        r"\(its Parquet part and journal\) >= limit (\d+) bytes: finishing the current file",
        proc.log,
    )
    finished, writing, said_limit = map(int, stop)
    assert finished + writing >= said_limit == limit
    # Then the idle: the total once the last file is finished (its journal deleted).
    (idle,) = re.findall(
        rf"idle reason=size_limit: stopped at the size limit of {limit} bytes; with the last "
        r"file finished \(its journal deleted\) finemon's files under \S+ total (\d+) bytes; "
        "not recording",
        proc.log,
    )
    first = manifest(out)
    assert first["reason"] == "size_limit"
    assert first["exit_reason"] == "signal" and first["exit_time"]
    assert first["size_limit"] == {"limit_bytes": limit, "used_bytes": int(idle)}

    # Restarts find the limit reached: each stays up, writes nothing (no data, no manifest:
    # restarts do not creep past the limit), exits 0 when told.
    everything = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    for _ in range(3):
        again = Finemon(out, *FAST, "--size-limit", str(limit))
        again.wait_log("not recording")
        assert "idle reason=size_limit: the last run stopped at the size limit" in again.log
        time.sleep(0.5)
        assert again.alive(), again.log
        again.signal(signal.SIGTERM)
        assert again.wait(10) == 0, again.log
        assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == everything
    assert used_bytes(out) <= limit + largest_file
    assert [p.stem for p in (out / "_sessions").iterdir()] == [first["run_id"]]


def test_unwritable_output_dir_fails_before_starting(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    code, log = run_finemon(blocker / "out", log_path=tmp_path / "finemon.log")
    assert code == 1
    lines = log.strip().splitlines()
    assert len(lines) == 1, log
    assert lines[0].startswith("finemon: error: cannot create output dir")


def test_output_dir_that_is_a_file_is_not_a_directory(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    code, log = run_finemon(blocker, log_path=tmp_path / "finemon.log")
    assert code == 1
    assert log.strip().splitlines() == [f"finemon: error: output dir {blocker} is not a directory"]
    assert blocker.read_text() == "not a directory"


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes through chmod 0500")
def test_read_only_output_dir_fails_before_starting(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    out.chmod(0o500)
    try:
        code, log = run_finemon(out)
    finally:
        out.chmod(0o700)
    assert code == 1
    lines = log.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("finemon: error:"), log
    assert "not writable" in log
    assert not list(out.iterdir())


def test_missing_cgroup_mount_fails_before_starting(tmp_path: Path) -> None:
    out = tmp_path / "out"
    code, log = run_finemon(out, observer="fake_observer:make_no_cgroup")
    assert code == 1
    lines = log.strip().splitlines()
    assert len(lines) == 1, log
    assert "no cgroup mount" in lines[0] and lines[0].startswith("finemon: error:")
    assert not out.exists()  # created for the run, removed with it


def test_bad_cgroup_root_fails_and_removes_the_output_dir_it_made(tmp_path: Path) -> None:
    not_cgroups = tmp_path / "not-cgroups"
    not_cgroups.mkdir()
    out = tmp_path / "new" / "deeper" / "out"
    code, log = run_finemon(
        out,
        "--cgroup-root",
        str(not_cgroups),
        observer="observers.node:NodeObserver",
        log_path=tmp_path / "finemon.log",
    )
    assert code == 1
    lines = log.strip().splitlines()
    assert len(lines) == 1, log
    assert lines[0].startswith("finemon: error: cannot start the observer:")
    assert f"{not_cgroups} is not a cgroup root" in lines[0]
    assert sorted(tmp_path.iterdir()) == [tmp_path / "finemon.log", not_cgroups]

    # An output dir that was there already is left, empty as it was.
    out.mkdir(parents=True)
    code, log = run_finemon(
        out, "--cgroup-root", str(not_cgroups), observer="observers.node:NodeObserver"
    )
    assert code == 1, log
    assert out.is_dir() and not list(out.iterdir())


def test_overrunning_samples_are_skipped_and_the_grid_holds(tmp_path: Path) -> None:
    out = tmp_path / "out"
    code, log = run_finemon(out, *FAST, "--duration", "3", observer="fake_observer:make_slow")
    assert code == 0, log
    session = manifest(out)
    assert session["stats"]["ticks_skipped"] > 0
    rows = rows_of(out)
    check_ticks(rows, session["run_id"])  # on the grid, nothing missing
    skipped = max(r["value_int"] for r in rows if r["metric_name"] == "finemon.ticks_skipped")
    assert skipped == session["stats"]["ticks_skipped"]


def test_observer_failures_are_counted_not_fatal(tmp_path: Path) -> None:
    out = tmp_path / "out"
    code, log = run_finemon(out, *FAST, "--duration", "1.5", observer="fake_observer:make_broken")
    assert code == 0, log
    assert log.count("sample failed") == 1
    session = manifest(out)
    assert session["stats"]["sample_errors"] >= 5
    rows = rows_of(out)
    errors = [r["value_int"] for r in rows if r["metric_name"] == "finemon.sample_errors"]
    assert max(errors) == session["stats"]["sample_errors"]


def test_prometheus_endpoint_serves_live_values(tmp_path: Path) -> None:
    out = tmp_path / "out"
    port = free_port()
    proc = Finemon(
        out,
        *FAST,
        "--prometheus-port",
        str(port),
        "--prometheus-address",
        "127.0.0.1",
        "--prometheus-series",
        "all",  # the fake observer's metrics are not in the default set
    )
    try:
        proc.wait_log("recording run_id=")
        url = f"http://127.0.0.1:{port}/metrics"

        def scrape() -> dict[str, float]:
            with urllib.request.urlopen(url, timeout=5) as response:
                text = response.read().decode()
            values = {}
            for line in text.splitlines():
                if line and not line.startswith("#"):
                    name, _, value = line.rpartition(" ")
                    values[name] = float(value)
            return values

        def loop_samples() -> bool:  # the priming sample is 1; the loop's come after it
            return any(k.startswith("fake_samples_total") and v >= 2 for k, v in scrape().items())

        wait_for(loop_samples, 5, "a sample of the loop")
        before = scrape()
        time.sleep(0.5)
        after = scrape()
        key = next(
            k for k in after if k.startswith("fake_samples_total") and 'pod_name="pod-1"' in k
        )
        assert after[key] >= before[key] + 3  # ten samples a second
        assert 'node_name="test-node"' in key
        rss = next(v for k, v in after.items() if k.startswith("finemon_self_rss_bytes"))
        assert rss > 1_000_000
    finally:
        proc.signal(signal.SIGTERM)
        assert proc.wait(10) == 0, proc.log


def test_an_index_that_cannot_be_written_is_a_counted_skip(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / INDEX_DIR).write_text("a file where the index's folder would be")
    code, log = run_finemon(out, *FAST, "--duration", "5")
    assert code == 0, log
    files = parquet_files(out)
    assert len(files) >= 2, log
    # Every file is published and readable; each one's index update is counted and logged.
    session = manifest(out)
    assert session["stats"]["files"] == len(files) == session["stats"]["index_skips"]
    assert log.count(" index=not_written ") == len(files), log
    assert "ERROR" not in log and "Traceback" not in log, log
    assert sum(pq.read_metadata(p).num_rows for p in files) == len(rows_of(out)) > 0
    assert not list(out.rglob("*.tmp"))


def test_the_daemon_loads_no_pandas_compute_or_remote_filesystems(tmp_path: Path) -> None:
    # pyarrow imports pandas (installed here, for the tests) on its first conversion of a Python
    # value; finemon run keeps it out: about 45 MB of RSS it would never use. Nor does it load
    # pyarrow's compute functions (9 MB) or, through pyarrow.parquet, pyarrow.fs with the S3,
    # GCS and Azure filesystems (9 MB): writing Parquet and journals needs neither.
    assert pd.__version__
    out = tmp_path / "out"
    proc = Finemon(out, *FAST)
    try:
        proc.wait_log("recording run_id=")
        wait_for(lambda: bool(parquet_files(out)), 15, "a published file")
        maps = Path(f"/proc/{proc.process.pid}/maps").read_text()
        assert "pyarrow" in maps  # the check can see what the process loaded
        assert "/pandas/" not in maps
        assert "pyarrow/_compute." not in maps
        assert "pyarrow/_fs." not in maps
        assert "libarrow_s3" not in maps
        assert "libcrypto" not in maps  # (hashlib, through the secrets module: 3 MB)
    finally:
        proc.signal(signal.SIGTERM)
        assert proc.wait(10) == 0, proc.log
    assert rows_of(out), "the run wrote rows (so pyarrow converted values)"


def test_busy_prometheus_port_fails_before_starting(tmp_path: Path) -> None:
    out = tmp_path / "out"
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        code, log = run_finemon(
            out, "--prometheus-port", str(port), "--prometheus-address", "127.0.0.1"
        )
    assert code == 1
    lines = log.strip().splitlines()
    assert len(lines) == 1, log
    assert lines[0].startswith(f"finemon: error: cannot serve Prometheus on 127.0.0.1:{port}")
    assert not out.exists()  # created for the run, removed with it


@pytest.mark.root
def test_unwritable_sessions_dir_still_leaves_the_runs_manifest(tmp_path: Path) -> None:
    out = tmp_path / "out"
    sessions = out / "_sessions"
    sessions.mkdir(parents=True)
    # Read-only even for root: a read-only bind mount of the folder onto itself.
    for command in (
        ["mount", "--bind", str(sessions), str(sessions)],
        ["mount", "-o", "remount,bind,ro", str(sessions)],
    ):
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode:
            subprocess.run(["umount", str(sessions)], capture_output=True, check=False)
            pytest.skip(f"cannot make a read-only bind mount: {done.stderr.strip()}")
    try:
        code, log = run_finemon(out, *FAST, "--duration", "4")
    finally:
        subprocess.run(["umount", str(sessions)], check=True)
    assert code == 0, log
    assert list(sessions.iterdir()) == []
    session = manifest(out)
    assert session["reason"] == "duration" and session["end_time"], session
    assert session["stats"]["files"] == len(parquet_files(out)) >= 2
    # Said once (not at every rotation), saying where the manifest is.
    run_manifest = sessions / f"{session['run_id']}.json"
    (warning,) = [line for line in log.splitlines() if "manifest not written" in line]
    assert f"manifest not written to {run_manifest}: Read-only file system" in warning
    assert f"the run's manifest is in {out / '_session.json'} only" in warning
