"""FileCycle on a real CaptureManager: background rotation, and each way the recording ends."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from pathlib import Path

import pyarrow.parquet as pq
import pytest

import capture
from monitor.layout import OutputLayout
from monitor.rotation import FileCycle
from monitor.signals import SignalWatch

INTERVAL = 0.05


class Calls:
    """What the cycle reported through its callbacks."""

    def __init__(self) -> None:
        self.published: list[tuple[Path, str]] = []
        self.errors: list[str] = []
        self.rotations = 0
        self.threads: set[str] = set()

    def on_published(self, published: capture.PublishedFile, what: str) -> None:
        self.published.append((published.path, what))

    def on_write_error(self, message: str) -> None:
        self.errors.append(message)

    def after_rotation(self, cycle: FileCycle) -> None:
        self.rotations += 1
        self.threads.add(threading.current_thread().name)


@pytest.fixture
def signals() -> Iterator[SignalWatch]:
    watch = SignalWatch()  # not installed: the tests add to ``received`` themselves
    yield watch
    watch.close()


def start(tmp_path: Path, calls: Calls) -> FileCycle:
    layout = OutputLayout(tmp_path / "out", "node-1", "a" * 32)
    manager = capture.CaptureManager(
        tmp_path / "out",
        tick_seconds=INTERVAL,
        window_ticks=2,
        flush_seconds=3600,
        auto_tick=False,
    )
    first_tick = manager.recorder.tick_of(1_700_000_000.0)
    manager.start(first_tick, layout.file_path(first_tick * INTERVAL, 1))
    return FileCycle(
        manager,
        layout,
        INTERVAL,
        on_published=calls.on_published,
        on_write_error=calls.on_write_error,
        after_rotation=calls.after_rotation,
    )


def take(cycle: FileCycle, ticks: int) -> None:
    gauge = capture.gauge("g")
    for _ in range(ticks):
        tick = cycle.manager.recorder.current_tick()
        gauge.set(float(tick))
        cycle.manager.take_tick(tick)


def test_rotation_publishes_in_a_thread_and_names_files_in_sequence(
    tmp_path: Path, signals: SignalWatch
) -> None:
    calls = Calls()
    cycle = start(tmp_path, calls)
    first = cycle.manager.current_path
    assert first is not None and first.name.endswith("-00001.parquet")
    for expected_seq in (2, 3):
        take(cycle, 4)
        cycle.rotate()
        cycle.wait()
        assert cycle.seq == expected_seq
        current = cycle.manager.current_path
        assert current is not None and current.name.endswith(f"-{expected_seq:05d}.parquet")
        assert cycle.live_files() == cycle.manager.live_files()
    assert calls.threads == {"finemon-rotate"}
    assert calls.rotations == 2 and not calls.errors
    assert [what for _, what in calls.published] == ["rotated", "rotated"]
    assert calls.published[0][0] == first
    take(cycle, 4)
    finished = cycle.finish(signals, timeout_seconds=30)
    assert finished.drain == "complete" and finished.failure is None
    assert finished.published is not None and finished.published.path.name.endswith(
        "-00003.parquet"
    )
    for path, _ in calls.published:
        assert pq.read_metadata(path).num_rows > 0


def test_a_failed_rotation_is_reported_and_the_current_file_goes_on(
    tmp_path: Path, signals: SignalWatch
) -> None:
    calls = Calls()
    cycle = start(tmp_path, calls)
    current = cycle.manager.current_path
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where a folder should be")
    cycle.layout = OutputLayout(blocker, "node-1", "a" * 32)
    take(cycle, 3)
    cycle.rotate()
    cycle.wait()
    assert len(calls.errors) == 1 and "rotation to" in calls.errors[0]
    assert calls.rotations == 1 and not calls.published
    assert cycle.seq == 1 and cycle.manager.current_path == current
    assert cycle.finish(signals, timeout_seconds=30).published is not None


def test_a_second_signal_skips_the_drain_and_leaves_the_journal(
    tmp_path: Path, signals: SignalWatch
) -> None:
    cycle = start(tmp_path, Calls())
    take(cycle, 3)
    journal = cycle.live_files()[1]
    signals.received += [signal.SIGTERM, signal.SIGTERM]
    finished = cycle.finish(signals, timeout_seconds=30)
    assert finished.drain == "skipped" and finished.published is None
    assert journal.is_file()  # for the next start to recover
    assert capture.recover(tmp_path / "out").recovered


class SlowClose:
    """A manager whose drain takes longer than anyone waits."""

    def __init__(self, release: threading.Event) -> None:
        self.release = release

    def close(self, *, drain: bool = True) -> None:
        if drain:
            self.release.wait(10)


def test_a_signal_during_the_drain_interrupts_it(tmp_path: Path, signals: SignalWatch) -> None:
    release = threading.Event()
    cycle = FileCycle(
        SlowClose(release),  # type: ignore[arg-type]
        OutputLayout(tmp_path, "x", "a" * 32),
        INTERVAL,
        on_published=Calls().on_published,
        on_write_error=Calls().on_write_error,
        after_rotation=Calls().after_rotation,
    )
    signals.received.append(signal.SIGTERM)  # the one that stopped the recording
    timer = threading.Timer(0.2, signals.received.append, (signal.SIGTERM,))
    timer.start()
    try:
        assert cycle.finish(signals, timeout_seconds=30).drain == "interrupted"
        # And a drain longer than its timeout is cut short the same way.
        assert cycle.finish(signals, timeout_seconds=0.2).drain == "skipped"  # two signals now
        signals.received.pop()
        assert cycle.finish(signals, timeout_seconds=0.2).drain == "interrupted"
    finally:
        release.set()
        timer.cancel()
