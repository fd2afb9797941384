"""A full disk, for real: the output dir on a small tmpfs that a filler file takes up (the way
another program filling the node's disk would), the real ``finemon run`` process (fake observer).

finemon idles on a full disk as at the size limit (reason ``disk_full``), leaves no pile of
empty files, exits 0 on SIGTERM with the end in its manifest, and records again, as a new run,
once space returns.
"""

from __future__ import annotations

import logging
import signal
import time
import urllib.request
from pathlib import Path

import fake_observer
import pyarrow.parquet as pq
import pytest
from finemon_process import (
    FAST,
    Finemon,
    free_port,
    hidden_leftovers,
    manifest,
    parquet_files,
    read_all,
    run_finemon,
    wait_for,
)
from test_daemon_inprocess import config_of
from tests.small_disk import SmallDisk

import monitor.daemon as daemon_module
from monitor.daemon import Daemon

pytestmark = pytest.mark.root


def partials(out: Path) -> list[Path]:
    return [p for p in hidden_leftovers(out) if p.name.endswith(".partial")]


def ticks_of(out: Path, run_id: str) -> list[int]:
    rows = read_all(out).to_pylist()
    return sorted(
        r["fetch_index"]
        for r in rows
        if r["run_id"] == run_id and r["metric_name"] == "finemon.self.rss_bytes"
    )


def last_time(out: Path, run_id: str) -> float:
    """Unix time of the last tick of ``run_id`` in the files."""
    rows = read_all(out).select(["run_id", "time"]).to_pylist()
    return max(r["time"] for r in rows if r["run_id"] == run_id).timestamp()  # type: ignore[no-any-return]


def test_a_full_disk_while_recording_idles_and_records_again_when_space_returns(
    small_disk: SmallDisk,
) -> None:
    out = small_disk.root / "out"
    proc = Finemon(out, *FAST, log_path=small_disk.root.parent / "finemon.log")
    try:
        proc.wait_log(" rotated file=")
        small_disk.fill()
        filled_at = time.time()
        proc.wait_log("idle reason=disk_full")
        first = manifest(out)
        assert first["reason"] == "disk_full" and first["end_time"], first
        left = hidden_leftovers(out)
        # More than a rotation period later: no failed rotation left a file behind, and at most
        # the unfinished file's journal (and its partial) wait for recovery.
        time.sleep(2.5)
        assert proc.alive(), proc.log
        assert hidden_leftovers(out) == left
        assert len(partials(out)) <= 1
        assert proc.log.count("idle reason=disk_full") == 1  # logged once, not per tick

        small_disk.free()
        proc.wait_log("recording again as a new run")
        wait_for(lambda: manifest(out)["run_id"] != first["run_id"], 10, "a new run")
        second = manifest(out)
        wait_for(
            lambda: any(second["run_id"][:8] in p.name for p in parquet_files(out)),
            10,
            "a file of the new run",
        )
        proc.signal(signal.SIGTERM)
        assert proc.wait(10) == 0, proc.log
    finally:
        proc.kill()
    if [p for p in left if p.name.endswith(".journal")]:
        assert "recovered file=" in proc.log  # by the new run, at its start
    assert not hidden_leftovers(out), proc.log
    for path in parquet_files(out):
        pq.read_table(path)
    earlier = manifest(out, first["run_id"])
    assert earlier["exit_reason"] == "space_freed"
    assert earlier["disk_full"]["free_bytes"] < earlier["disk_full"]["reserve_bytes"]
    # The first run kept what it recorded up to the moment the disk filled.
    assert ticks_of(out, first["run_id"])[0] == 0
    assert last_time(out, first["run_id"]) >= filled_at - 1.0
    second_ticks = ticks_of(out, second["run_id"])
    assert second_ticks == list(range(second_ticks[0], second_ticks[-1] + 1))


def test_sigterm_on_a_full_disk_exits_0_with_the_end_in_the_manifest(
    small_disk: SmallDisk,
) -> None:
    out = small_disk.root / "out"
    proc = Finemon(out, *FAST, log_path=small_disk.root.parent / "finemon.log")
    try:
        proc.wait_log(" rotated file=")
        small_disk.fill()
        proc.signal(signal.SIGTERM)
        assert proc.wait(10) == 0, proc.log
    finally:
        proc.kill()
    session = manifest(out)
    assert session["end_time"] is not None, session
    assert session["reason"] in ("signal", "disk_full"), session
    assert len(partials(out)) <= 1
    for path in parquet_files(out):
        pq.read_table(path)

    # With space again, the next start recovers what the full disk kept from being finished.
    small_disk.free()
    code, log = run_finemon(out, *FAST, "--duration", "0.5")
    assert code == 0, log
    assert not hidden_leftovers(out), log
    assert ticks_of(out, session["run_id"])[0] == 0


def test_starting_on_a_full_disk_idles_until_space_returns(small_disk: SmallDisk) -> None:
    out = small_disk.root / "out"
    out.mkdir()
    small_disk.fill()
    port = free_port()
    proc = Finemon(
        out,
        *FAST,
        "--prometheus-port",
        str(port),
        "--prometheus-address",
        "127.0.0.1",
        log_path=small_disk.root.parent / "finemon.log",
    )
    try:
        proc.wait_log("idle reason=disk_full")
        time.sleep(1.0)
        assert proc.alive(), proc.log  # not exit 1: a DaemonSet pod does not crash-loop
        # The live view says why nothing is recorded.
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            lines = response.read().decode().splitlines()
        reached = [line for line in lines if line.startswith("finemon_disk_full_reached")]
        assert reached and reached[0].endswith(" 1.0"), lines
        # A run that records nothing writes nothing, not even a manifest.
        assert sorted(out.iterdir()) == []
        small_disk.free()
        proc.wait_log("recording again as a new run")
        wait_for(lambda: bool(parquet_files(out)), 10, "a published file")
        proc.signal(signal.SIGTERM)
        assert proc.wait(10) == 0, proc.log
    finally:
        proc.kill()
    assert len(list((out / "_sessions").iterdir())) == 1
    session = manifest(out)
    assert session["reason"] == "signal"
    assert ticks_of(out, session["run_id"])


def test_idling_on_a_full_disk_logs_a_health_line(
    small_disk: SmallDisk, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(daemon_module, "HEALTH_SECONDS", 0.5)
    monkeypatch.setattr(daemon_module, "RESUME_CHECK_SECONDS", 0.2)
    out = small_disk.root / "out"
    out.mkdir()
    small_disk.fill()
    config = config_of("--output-dir", str(out), *FAST, "--duration", "1.8")
    with caplog.at_level(logging.INFO, logger="finemon"):
        assert Daemon(config, observer_factory=fake_observer.make).run() == 0
    messages = [r.getMessage() for r in caplog.records if r.name == "finemon"]
    assert len([m for m in messages if m.startswith("idle reason=disk_full:")]) == 1, messages
    health = [m for m in messages if m.startswith("health idle reason=disk_full:")]
    assert 2 <= len(health) <= 4, messages
    assert "bytes free" in health[-1]
    assert sorted(out.iterdir()) == []
