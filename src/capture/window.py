"""The tick window: the ticks taken and still changeable, and those that left it.

Tick ``t`` is the interval ``[t * tick_seconds, (t + 1) * tick_seconds)`` of Unix time. The
window holds the last ``window_ticks`` taken ticks, which delayed writes may still change; a
tick that leaves it waits in the ready list until the writer takes it.
"""

from __future__ import annotations

import math
from collections import deque

from capture.accumulator import TickFrame
from capture.descriptions import Description

#: Name of the counter of ticks the tick loop could not take in time and skipped.
MISSED_TICKS_METRIC = "capture.missed_ticks"
#: What it means (every CaptureRecorder describes it).
MISSED_TICKS_DESCRIPTION = Description(
    MISSED_TICKS_METRIC,
    "Ticks the tick loop could not take in time (more than a window behind) and skipped",
    "count",
)


class TickWindow:
    """Taken ticks, oldest first: the window and the ready list (callers hold the recorder's
    lock)."""

    __slots__ = ("_ready", "first_tick", "frames", "last_taken", "tick_seconds", "window_ticks")

    def __init__(self, tick_seconds: float, window_ticks: int) -> None:
        self.tick_seconds = tick_seconds
        self.window_ticks = window_ticks
        #: The run's first tick (``fetch_index`` 0); None until begun or the first tick taken.
        self.first_tick: int | None = None
        #: The last tick taken; None before the first.
        self.last_taken: int | None = None
        #: The taken ticks still in the window, oldest first.
        self.frames: deque[TickFrame] = deque()
        self._ready: list[TickFrame] = []

    def tick_of(self, timestamp: float) -> int:
        """The tick that contains Unix time ``timestamp`` (seconds)."""
        return math.floor(timestamp / self.tick_seconds)

    def current_tick(self, now: float) -> int:
        """The tick in progress: the one after the last taken, or the one containing ``now``."""
        if self.last_taken is not None:
            return self.last_taken + 1
        return self.tick_of(now)

    def due(self, tick: int) -> tuple[range, int]:
        """The ticks to take to bring the window up to ``tick``, and how many older ones are
        skipped (more than a window behind). The first call fixes the run's first tick."""
        if self.last_taken is None:
            if self.first_tick is None:
                self.first_tick = tick
            start = self.first_tick
        else:
            start = self.last_taken + 1
        skipped = 0
        if tick - start >= self.window_ticks:
            skipped = tick - self.window_ticks + 1 - start
            start = tick - self.window_ticks + 1
        return range(start, tick + 1), skipped

    def newest(self) -> TickFrame | None:
        """The last taken tick still in the window."""
        return self.frames[-1] if self.frames else None

    def push(self, frame: TickFrame) -> None:
        """Add a taken tick; the ticks it pushes out of the window become ready."""
        frames = self.frames
        frames.append(frame)
        self.last_taken = frame.tick
        oldest_kept = frame.tick - self.window_ticks + 1
        while frames and frames[0].tick < oldest_kept:
            # Frames leave the window as they are (deltas against the one before): the window's
            # oldest frame is re-based when the writer takes them (pop_ready), so at most one
            # frame of the ready ones is dense between two flushes.
            self._ready.append(frames.popleft())

    def drain(self) -> None:
        """Make every tick of the window ready (on close)."""
        for frame in self.frames:  # oldest first: each one's base is dense by then
            frame.rebase()
        self._ready.extend(self.frames)
        self.frames.clear()

    def pop_ready(self) -> list[TickFrame]:
        """Take the ready ticks (the first one dense, deltas after it)."""
        ready, self._ready = self._ready, []
        if ready and self.frames:
            self.frames[0].rebase()  # no frame held refers to a frame handed over
        return ready

    def ready_rows(self) -> tuple[int, bool]:
        """About how many rows the ready ticks hold (their series, both kinds), and whether
        their series changed from one tick to another (series came or went)."""
        ready = self._ready
        rows = sum(len(f.g.series) + len(f.c.series) for f in ready)
        first = ready[0] if ready else None
        changed = first is not None and any(
            f.g.series is not first.g.series or f.c.series is not first.c.series for f in ready
        )
        return rows, changed

    def ready(self) -> list[TickFrame]:
        """The ready ticks (a copy), for tests and inspection."""
        return list(self._ready)
