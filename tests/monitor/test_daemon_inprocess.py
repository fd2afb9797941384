"""The daemon run in this process: failures injected where a subprocess cannot reach."""

from __future__ import annotations

import logging
import os
import re
import signal
import time
from pathlib import Path

import fake_observer
import pytest
from finemon_process import FAST, hidden_leftovers, manifest, parquet_files, read_all

import monitor.daemon as daemon_module
from finemon.cli import build_parser
from monitor.config import Config, Environment, build_config
from monitor.daemon import Daemon
from monitor.selfstats import SelfUsage
from monitor.signals import SignalWatch

ENV = Environment(pod_name=None, node_name="n", cluster_name=None, git_revision=None, hostname="h")


def config_of(*argv: str) -> Config:
    return build_config(build_parser().parse_args(["run", *argv]), ENV)


def test_failed_rotation_is_logged_counted_and_the_file_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    out = tmp_path / "out"
    config = config_of("--output-dir", str(out), *FAST, "--duration", "4.5")
    daemon = Daemon(config, observer_factory=fake_observer.make)
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where a folder should be")
    original = daemon.layout.file_path
    calls: list[int] = []

    def file_path(first_tick_seconds: float, seq: int) -> Path:
        calls.append(seq)
        if len(calls) == 2:  # the first rotation
            return blocker / "dt=x" / "finemon.parquet"
        return original(first_tick_seconds, seq)

    monkeypatch.setattr(daemon.layout, "file_path", file_path)
    with caplog.at_level(logging.INFO, logger="finemon"):
        assert daemon.run() == 0
    assert any("rotation to" in r.message and "failed" in r.message for r in caplog.records)
    session = manifest(out)
    assert session["stats"]["write_errors"] == 1
    assert session["reason"] == "duration"
    assert not hidden_leftovers(out)
    table = read_all(out)
    rows = table.to_pylist()
    errors = [r["value_int"] for r in rows if r["metric_name"] == "finemon.write_errors"]
    assert max(errors) == 1
    ticks = sorted(r["fetch_index"] for r in rows if r["metric_name"] == "finemon.self.rss_bytes")
    assert ticks == list(range(ticks[0], ticks[-1] + 1))
    # The first file went on past the failed rotation (it holds more than one period).
    first = parquet_files(out)[0]
    first_ticks = [r["fetch_index"] for r in rows if r["file"] == first.name]
    assert max(first_ticks) - min(first_ticks) + 1 > config.rotation_ticks


def test_signal_before_recording_starts_exits_cleanly(tmp_path: Path) -> None:
    out = tmp_path / "out"
    config = config_of("--output-dir", str(out), *FAST)
    watch = SignalWatch()
    watch.install()
    try:
        os.kill(os.getpid(), signal.SIGTERM)
        watch.sleep_until(time.time() + 1, seen=0)
        assert watch.count == 1
        assert Daemon(config, observer_factory=fake_observer.make, signals=watch).run() == 0
    finally:
        watch.close()
    assert not parquet_files(out)
    assert not hidden_leftovers(out)


def test_signal_watch_wakes_a_sleeper() -> None:
    # What was there before (SIG_IGN when started in the background by a shell) comes back.
    before = signal.getsignal(signal.SIGINT)
    watch = SignalWatch()
    watch.install()
    try:
        started = time.monotonic()
        watch.sleep_until(time.time() + 0.05)
        assert watch.count == 0
        os.kill(os.getpid(), signal.SIGINT)
        watch.sleep_until(time.time() + 5, seen=0)
        assert watch.count == 1 and watch.last_name == "SIGINT"
        assert time.monotonic() - started < 2
        # Without ``seen``, only a signal after the call wakes it: here the deadline does.
        watch.sleep_until(time.time() + 0.05)
        assert watch.count == 1
    finally:
        watch.close()
    assert signal.getsignal(signal.SIGINT) is before


def test_self_usage() -> None:
    usage = SelfUsage()
    deadline = time.monotonic() + 0.1
    while time.monotonic() < deadline:
        pass
    assert 200 < usage.cpu_millicores() <= 2000
    assert usage.rss_bytes() > 1_000_000


def test_periodic_health_line_and_no_line_per_sample(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(daemon_module, "HEALTH_SECONDS", 0.5)
    config = config_of("--output-dir", str(tmp_path / "out"), *FAST, "--duration", "1.7")
    with caplog.at_level(logging.INFO, logger="finemon"):
        assert Daemon(config, observer_factory=fake_observer.make).run() == 0
    messages = [r.getMessage() for r in caplog.records if r.name == "finemon"]
    health = [m for m in messages if m.startswith("health ")]
    assert 2 <= len(health) <= 3, messages
    assert re.fullmatch(
        r"health ticks=\d+ skipped=\d+ containers=3 rss_bytes=\d+ cpu_millicores=[\d.]+ "
        r"files=\d+ write_errors=0 sample_errors=0",
        health[-1],
    )
    assert len(messages) < 12, messages  # about 17 samples, far fewer lines
