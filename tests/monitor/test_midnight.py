"""A UTC midnight starts a file: rotating where ``midnight_rotation_tick`` says, with the real
capture manager and its window, leaves no file holding rows of two days."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
import pytest

import capture
from monitor.rotation import DAY_SECONDS, midnight_rotation_tick

MIDNIGHT = 1_796_601_600  # 2026-12-07T00:00:00Z


@pytest.mark.parametrize(
    ("interval", "window"), [(1.0, 60), (1.0, 8), (0.5, 10), (2.0, 5), (0.3, 7)]
)
def test_the_rotation_tick_makes_midnight_the_first_tick_of_a_file(
    interval: float, window: int
) -> None:
    for start_seconds in (MIDNIGHT - 3600, MIDNIGHT - 1, MIDNIGHT - window * interval / 2):
        tick = int(start_seconds / interval)
        rotate_after = midnight_rotation_tick(tick, window, interval)
        oldest_kept = rotate_after - window + 1  # the window's oldest tick after rotate_after
        assert oldest_kept * interval >= MIDNIGHT > (oldest_kept - 1) * interval
    # After that rotation, the next one is a day later.
    after = midnight_rotation_tick(rotate_after + 1, window, interval)
    assert (after - rotate_after) * interval == pytest.approx(DAY_SECONDS, abs=interval)


def test_files_rotated_at_midnight_each_hold_one_day(tmp_path: Path) -> None:
    window, first = 8, MIDNIGHT - 30
    manager = capture.CaptureManager(
        numbered(tmp_path, 0), auto_tick=False, window_ticks=window, flush_seconds=0.05
    )
    manager.start(first_tick=first)
    midnight = midnight_rotation_tick(first, window, 1.0)
    rotations = 0
    for tick in range(first, MIDNIGHT + 40):
        capture.gauge("g").set(float(tick))
        manager.take_tick(tick)
        if tick >= midnight or (tick - first) % 25 == 24:  # and a rotation every 25 ticks
            rotations += 1
            manager.rotate(numbered(tmp_path, rotations))
            if tick >= midnight:
                midnight = midnight_rotation_tick(tick + 1, window, 1.0)
    manager.close()
    days = []
    seen = 0
    for path in sorted(tmp_path.glob("*.parquet")):
        times = pq.read_table(path, columns=["time"])["time"].cast("int64").to_pylist()
        seen += len(times)
        first_day, last_day = min(times) // 86_400_000, max(times) // 86_400_000
        assert first_day == last_day, path.name
        days.append(first_day)
    assert seen == 70 and len(set(days)) == 2  # every tick once, on both days


def numbered(root: Path, n: int) -> Path:
    return root / f"f{n:03d}.parquet"
