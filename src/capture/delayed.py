"""Delayed writes: applying a write with a past timestamp to the ticks still in the window.

The rules (which ticks a write changes, and how live writes fold in) are the accumulator's,
see :mod:`capture.accumulator`; :mod:`capture.historical` is the public face that sends such
writes to the installed recorder.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Literal

from capture.accumulator import HistoricalWrite, Number, TickFrame, raw_history, refold
from capture.descriptions import Description
from capture.events import Fix
from capture.handles import GaugeSeries, SeriesInfo, as_count
from capture.keys import Kind

#: Operations of a timestamped (delayed) write.
HistoricalOp = Literal["set", "increment", "decrement", "absolute"]

#: Name of the counter that counts rejected delayed writes, by ``reason``.
DROPPED_METRIC = "capture.dropped"
#: What it means (every CaptureRecorder describes it).
DROPPED_DESCRIPTION = Description(
    DROPPED_METRIC,
    "Delayed (timestamped) writes rejected, by reason: future (a tick not yet begun) or "
    "too_old (older than the window or the run's first tick)",
    "count",
)


def delayed_operand(kind: Kind, op: HistoricalOp, name: str, value: float) -> Number:
    """Validate one delayed write to ``name`` and return its operand.

    Raises ValueError for an operation the kind does not have, TypeError for a non-numeric
    gauge value, and TypeError/ValueError for a counter value that is not a non-negative integer.
    """
    if kind == "gauge":
        if op not in ("set", "increment", "decrement"):
            raise ValueError(f"gauge write operation must be set/increment/decrement: {op!r}")
        try:
            return value + 0.0
        except TypeError:
            raise TypeError(
                f"gauge {name!r}: value must be a real number, got {type(value).__name__}"
            ) from None
    if op not in ("increment", "absolute"):
        raise ValueError(f"counter write operation must be increment/absolute: {op!r}")
    return as_count(value, name)


class DelayedWrites:
    """The delayed writes of the ticks still in the window, and applying a new one.

    Callers hold the recorder's lock. :attr:`moved` is read by the next tick's snapshot.
    """

    __slots__ = ("_by_series", "_sequence", "moved")

    def __init__(self) -> None:
        # Each series' delayed writes by tick, in timestamp order.
        self._by_series: dict[int, dict[int, list[HistoricalWrite]]] = {}
        self._sequence = itertools.count()
        #: Ids of live series whose value a delayed write changed since the last tick (no write
        #: flag says so): the next delta frame must carry them. The snapshot clears it.
        self.moved: set[int] = set()

    def write(self, timestamp: float, op: HistoricalOp, operand: Number) -> HistoricalWrite:
        """A write record; writes with one timestamp keep their call order."""
        return (timestamp, next(self._sequence), op, operand)

    def apply(
        self,
        handle: SeriesInfo,
        tick: int,
        write: HistoricalWrite,
        frames: Sequence[TickFrame],
        current_tick: int,
    ) -> list[Fix]:
        """Apply ``write`` at ``tick`` to ``handle``'s series: change its values in ``frames``
        (the window, oldest first) from ``tick`` on and its live value (the tick in progress,
        ``current_tick``). Returns the changes made to the frames, for the journal."""
        sid = handle.sid
        is_gauge = isinstance(handle, GaugeSeries)
        by_tick = self._by_series.setdefault(sid, {})
        held = [f for f in frames if f.tick >= tick - 1]
        changed = [f for f in held if f.tick >= tick]
        ticks = [f.tick for f in changed] + [current_tick]
        old_writes = [list(by_tick.get(t, ())) for t in ticks]
        new_writes = [list(w) for w in old_writes]
        bucket = new_writes[ticks.index(tick)] if tick in ticks else None
        if bucket is None:  # the tick is not held (no frame): nothing to change
            return []
        bucket.append(write)
        bucket.sort(key=lambda w: (w[0], w[1]))
        by_tick[tick] = bucket
        # Each held frame's value with its fixes applied, from one pass over the window.
        looked = [
            (frame.fixes.get(sid, value), flag)
            for frame, (value, flag) in zip(held, raw_history(held, sid, is_gauge), strict=True)
        ]
        prev_value: Number | None = None
        if held and held[0].tick == tick - 1:
            prev_value = looked[0][0]
        old_values: list[Number | None] = []
        flags: list[int] = []
        for frame, (val, flag) in zip(held, looked, strict=True):
            if frame.tick >= tick:
                old_values.append(val)
                flags.append(flag)
        with handle.lock:
            old_values.append(handle.current)
            flags.append(handle.written)
            new_values = refold(old_values, flags, old_writes, new_writes, prev_value, None)
            new_current = new_values[-1]
            if new_current != handle.current and new_current is not None:
                if isinstance(handle, GaugeSeries):
                    handle.current = float(new_current)
                else:
                    handle.current = int(new_current)
                self.moved.add(sid)  # no write flag tells the next tick
        handle.last_write_tick = current_tick
        fixes: list[Fix] = []
        for frame, old, new in zip(changed, old_values, new_values, strict=False):
            if new != old:
                frame.fixes[sid] = new
                fixes.append((frame.tick, sid, new))
        return fixes

    def forget_through(self, tick: int) -> None:
        """Forget the writes of ``tick`` and earlier (their ticks were handed to the writer)."""
        for by_tick in self._by_series.values():
            for t in [t for t in by_tick if t <= tick]:
                del by_tick[t]
        self._by_series = {s: h for s, h in self._by_series.items() if h}
