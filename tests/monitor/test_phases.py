"""``finemon run --experiment/--variant`` and ``finemon mark``: the real daemon on this host's
real cgroups, marked over its control socket and over ``POST /mark`` on the Prometheus port."""

from __future__ import annotations

import itertools
import json
import os
import signal
import socket
import urllib.error
import urllib.request
from datetime import datetime
from pathlib import Path

import duckdb
import pytest
from e2e_nodes import RealFinemon, undocumented_files
from finemon_process import free_port, manifest, run_cli

from common.contract import CONTROL_SOCKET, CONTROL_SOCKET_POINTER
from monitor.phases import MAX_SOCKET_PATH_BYTES, PHASE_METRIC

#: 5 ticks a second, a 1 s window, a new file every 2 s.
REAL = ("--interval", "0.2", "--window-seconds", "1", "--rotation-seconds", "2")


def post_mark(port: int, query: str = "", body: bytes = b"") -> tuple[int, dict[str, object]]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/mark{query}", data=body, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def phase_rows(output_dir: Path) -> list[tuple[str, float, float]]:
    """(phase, tick as epoch seconds, value) of every ``finemon.phase`` row, in time order."""
    rows = duckdb.sql(
        f"""SELECT element_at(labels, 'phase')[1], epoch_ms(time) / 1000.0, value_float
        FROM read_parquet('{output_dir}/**/*.parquet')
        WHERE metric_name = '{PHASE_METRIC}' ORDER BY 2, 1"""
    ).fetchall()
    return [(str(r[0]), float(r[1]), float(r[2])) for r in rows]


def epoch(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def test_marks_over_the_socket_and_http_land_in_the_manifest_and_the_files(
    tmp_path: Path,
) -> None:
    out = tmp_path / "out"
    port = free_port()
    proc = RealFinemon(
        out,
        *REAL,
        "--experiment",
        "agent-memory",
        "--variant",
        "candidate",
        "--prometheus-port",
        str(port),
        "--prometheus-address",
        "127.0.0.1",
    )
    try:
        proc.wait_log("recording run_id=", timeout=30)
        assert (out / CONTROL_SOCKET).is_socket()
        marked = run_cli("mark", "--output-dir", str(out), "load_started")
        assert marked.returncode == 0, marked.stderr
        assert marked.stdout.startswith("phase load_started marked at ")
        # Already in the manifest when finemon mark returns.
        assert [p["name"] for p in manifest(out)["phases"]] == ["load_started"]
        status, answer = post_mark(port, "?name=warmup_done")
        assert status == 200 and answer["ok"] is True and answer["name"] == "warmup_done"
        status, answer = post_mark(port, body=b'{"name": "steady"}')
        assert status == 200 and answer["run_id"] == manifest(out)["run_id"]
        status, answer = post_mark(port, "?name=no%20spaces")
        assert status == 400 and "invalid phase name" in str(answer["error"])
        status, answer = post_mark(port)
        assert status == 400
        proc.wait_rotations(1, timeout=30)
        proc.signal(signal.SIGTERM)
        assert proc.wait(20) == 0, proc.log
    finally:
        proc.kill()

    session = manifest(out)
    assert session["experiment"] == "agent-memory" and session["variant"] == "candidate"
    phases = session["phases"]
    assert [p["name"] for p in phases] == ["load_started", "warmup_done", "steady"]
    assert manifest(out, session["run_id"])["phases"] == phases
    # The socket is gone with the run: only manifests and data files are left.
    assert undocumented_files(out) == []

    rows = phase_rows(out)
    for phase in phases:
        at = epoch(phase["time"])
        ticks = [tick for name, tick, _ in rows if name == phase["name"]]
        values = {value for name, _, value in rows if name == phase["name"]}
        # From the first tick taken after the mark on (the tick the mark falls in, or the next
        # one when that was already taken; later when a loaded machine made the loop skip
        # ticks), every tick to the end of the run, valued with the mark's time.
        assert at - 0.2 < ticks[0] <= at + 1.0, (phase, ticks[:3])
        assert all(abs(b - a - 0.2) < 0.01 for a, b in itertools.pairwise(ticks))
        [value] = values
        assert value == pytest.approx(at, abs=0.002)
    last_tick = max(tick for _, tick, _ in rows)
    assert all(max(t for n, t, _ in rows if n == p["name"]) == last_tick for p in phases), (
        "a phase series ended before the run"
    )


def test_a_long_output_dir_gets_its_socket_under_a_short_path(tmp_path: Path) -> None:
    out = tmp_path / ("a-long-folder-name-" * 6) / "out"
    assert len(os.fsencode(out.absolute() / CONTROL_SOCKET)) > MAX_SOCKET_PATH_BYTES
    out.parent.mkdir()
    proc = RealFinemon(out, *REAL)
    try:
        proc.wait_log("recording run_id=", timeout=30)
        pointer = out / CONTROL_SOCKET_POINTER
        short = Path(pointer.read_text().strip())
        assert short.is_socket() and len(os.fsencode(short)) <= MAX_SOCKET_PATH_BYTES
        assert not (out / CONTROL_SOCKET).exists()
        marked = run_cli("mark", "--output-dir", str(out), "target_running")
        assert marked.returncode == 0, marked.stderr
        proc.wait_rotations(2, timeout=30)
        # A killed run leaves both behind; the next run replaces them.
        proc.signal(signal.SIGKILL)
        proc.wait(10)
        assert pointer.exists() and short.is_socket()
        stale = run_cli("mark", "--output-dir", str(out), "too_late")
        assert stale.returncode == 1
        assert "stale" in stale.stderr and len(stale.stderr.strip().splitlines()) == 1
    finally:
        proc.kill()
    again = RealFinemon(out, *REAL)
    try:
        again.wait_log("recording run_id=", timeout=30)
        marked = run_cli("mark", "--output-dir", str(out), "second_run")
        assert marked.returncode == 0, marked.stderr + again.log
        again.wait_rotations(1, timeout=30)
        again.signal(signal.SIGTERM)
        assert again.wait(20) == 0, again.log
    finally:
        again.kill()
    assert [p["name"] for p in manifest(out)["phases"]] == ["second_run"]
    assert not pointer.exists() and not short.exists()
    assert {name for name, _, _ in phase_rows(out)} == {"target_running", "second_run"}


def test_a_mark_with_no_running_daemon_fails_with_one_line(tmp_path: Path) -> None:
    missing = run_cli("mark", "--output-dir", str(tmp_path / "nothing-here"), "load_started")
    assert missing.returncode == 1
    assert missing.stderr.startswith("finemon mark: error: no finemon run is recording into")
    assert len(missing.stderr.strip().splitlines()) == 1

    empty = run_cli("mark", "--output-dir", str(tmp_path), "load_started")
    assert empty.returncode == 1 and "no control socket" in empty.stderr

    # A socket nothing listens on any more (the run was killed).
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dead.bind(str(tmp_path / CONTROL_SOCKET))
    dead.close()
    stale = run_cli("mark", "--output-dir", str(tmp_path), "load_started")
    assert stale.returncode == 1 and "stale" in stale.stderr
    assert len(stale.stderr.strip().splitlines()) == 1

    bad = run_cli("mark", "--output-dir", str(tmp_path), "_not_a_start")
    assert bad.returncode == 2
    bad = run_cli("mark", "--output-dir", str(tmp_path), "has space")
    assert bad.returncode == 2 and "invalid phase name" in bad.stderr


def test_run_refuses_an_empty_experiment_or_variant(tmp_path: Path) -> None:
    for flag in ("--experiment", "--variant"):
        done = run_cli("run", "--output-dir", str(tmp_path / "out"), flag, " ")
        assert done.returncode == 2 and flag in done.stderr
