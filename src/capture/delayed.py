"""Delayed writes: applying a write with a past timestamp to the ticks still in the window.

The rules (which ticks a write changes, and how live writes fold in) are the accumulator's,
see :mod:`capture.accumulator`; :mod:`capture.historical` is the public face that sends such
writes to the installed recorder.
"""

from __future__ import annotations

import itertools
from array import array
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from capture.accumulator import (
    HistoricalWrite,
    Number,
    TickFrame,
    apply_write,
    raw_history,
    refold,
)
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


#: One delayed write as a batch takes it: (kind, operation, name, labels, value, timestamp in
#: Unix seconds), the arguments of :meth:`capture.Recorder.record_historical`.
DelayedPoint = tuple[Kind, HistoricalOp, str, "Mapping[str, str] | None", float, float]


@dataclass(frozen=True, slots=True)
class BatchOutcome:
    """What became of a batch of delayed writes (:func:`capture.historical.write_batch`).

    ``applied``: writes that reached their tick. ``dropped``: writes not applied, by reason:
    ``too_old`` and ``future`` (also counted in ``capture.dropped``), ``no_recorder`` (none was
    installed). ``rejected``: (index in the batch, why) of each invalid write (a bad operation,
    value, timestamp, name or labels, or a name of the other kind), which the others did not
    stop.
    """

    applied: int = 0
    dropped: Mapping[str, int] = field(default_factory=dict)
    rejected: tuple[tuple[int, str], ...] = ()


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


#: One series' delayed writes in one tick, in timestamp order, from its last ``set`` or
#: ``absolute`` on (the writes before it cannot change the tick's value, so none is kept).
Bucket = tuple[HistoricalWrite, ...]


def _kept(bucket: Bucket) -> Bucket:
    """``bucket`` (in timestamp order) from its last absolute write (set/absolute) on."""
    for i in range(len(bucket) - 1, 0, -1):
        if bucket[i][2] in ("set", "absolute"):
            return bucket[i:]
    return bucket


class DelayedWrites:
    """The delayed writes of the ticks still in the window, and applying new ones.

    Callers hold the recorder's lock. :attr:`moved` is read by the next tick's snapshot.
    """

    __slots__ = ("_by_series", "_sequence", "_series_by_tick", "moved")

    def __init__(self) -> None:
        # Each series' delayed writes by tick (see Bucket).
        self._by_series: dict[int, dict[int, Bucket]] = {}
        # The series with writes kept in each tick, so that forgetting a tick touches only them.
        # (arrays: the garbage collector does not walk them)
        self._series_by_tick: dict[int, array[int]] = {}
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
        writes: Sequence[tuple[int, HistoricalWrite]],
        frames: Sequence[TickFrame],
        current_tick: int,
    ) -> list[Fix]:
        """Apply ``writes`` ((tick, write) pairs, in any order) to ``handle``'s series: change
        its values in ``frames`` (the window, oldest first) from the earliest write's tick on,
        and its live value (the tick in progress, ``current_tick``), in one pass however many
        writes. A write whose tick no frame holds (and that is not ``current_tick``) changes
        nothing. Returns the changes made to the frames, for the journal."""
        if not writes:
            return []
        if len(writes) == 1:
            latest = self._apply_latest(handle, *writes[0], frames, current_tick)
            if latest is not None:
                return latest
        sid = handle.sid
        is_gauge = isinstance(handle, GaugeSeries)
        first = min(t for t, _ in writes) if len(writes) > 1 else writes[0][0]
        # The frames from the tick before the first write's on (oldest first, so a suffix).
        start = len(frames)
        while start and frames[start - 1].tick >= first - 1:
            start -= 1
        held = list(frames[start:]) if start else list(frames)
        changed = held[1:] if held and held[0].tick < first else held
        ticks = [f.tick for f in changed]
        ticks.append(current_tick)
        by_tick = self._by_series.get(sid)
        if by_tick is None:
            by_tick = self._by_series[sid] = {}
        empty: Bucket = ()
        old_writes = [by_tick.get(t, empty) for t in ticks]
        new_writes = list(old_writes)
        position = {t: i for i, t in enumerate(ticks)}
        touched: set[int] = set()
        for tick, write in writes:
            i = position.get(tick)
            if i is None:
                continue  # the tick is not held (no frame): nothing to change
            new_writes[i] = (*new_writes[i], write)
            touched.add(i)
        if not touched:
            if not by_tick:
                del self._by_series[sid]
            return []
        for i in touched:
            bucket = new_writes[i]
            if len(bucket) > 1:
                bucket = _kept(tuple(sorted(bucket)))  # (timestamp, sequence): unique
            new_writes[i] = bucket
            tick = ticks[i]
            if tick not in by_tick:
                self._series_by_tick.setdefault(tick, array("q")).append(sid)
            by_tick[tick] = bucket
        # Each held frame's value with its fixes applied, from one pass over the window.
        looked = [
            (frame.fixes.get(sid, value), flag)
            for frame, (value, flag) in zip(held, raw_history(held, sid, is_gauge), strict=True)
        ]
        prev_value: Number | None = None
        if len(held) > len(changed):
            prev_value = looked[0][0]
            looked = looked[1:]
        old_values: list[Number | None] = [value for value, _ in looked]
        flags: list[int] = [flag for _, flag in looked]
        with handle.lock:
            old_values.append(handle.current)
            flags.append(handle.written)
            new_values = refold(old_values, flags, old_writes, new_writes, prev_value, None)
            new_current = new_values[-1]
            if new_current != handle.current and new_current is not None:
                if is_gauge:
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

    def _apply_latest(
        self,
        handle: SeriesInfo,
        tick: int,
        write: HistoricalWrite,
        frames: Sequence[TickFrame],
        current_tick: int,
    ) -> list[Fix] | None:
        """The common case of :meth:`apply`, without refolding: one write that is the latest
        of its series (no write of it kept in a later tick, none later in its own), on a series
        no live write touched from its tick on (no write flag in those frames, nor now). Its
        tick's value is then the write applied to the value it had, and every later tick holds
        that value. None when the case does not hold (the caller refolds)."""
        sid = handle.sid
        by_tick = self._by_series.get(sid)
        bucket: Bucket = ()
        if by_tick:
            if max(by_tick) > tick:
                return None
            bucket = by_tick.get(tick, ())
            if bucket and bucket[-1] > write:  # (timestamp, sequence) order
                return None
        is_gauge = isinstance(handle, GaugeSeries)
        old: Number | None = None
        changed: Sequence[TickFrame] = ()
        if tick == current_tick:
            old = handle.current
        else:
            start = len(frames)
            while start and frames[start - 1].tick >= tick:
                start -= 1
            changed = frames[start:]
            if not changed or changed[0].tick != tick:
                return None
            for k, frame in enumerate(changed):
                part = frame.g if is_gauge else frame.c
                i = part.series.position(sid)
                if i is None:
                    if k and old is not None:
                        return None  # (not in a later frame: the case does not hold)
                    continue
                if k:  # a later frame: only its flag matters (no walk down its bases)
                    if part.flag_at(i):
                        return None
                    continue
                value, flag = part.at(i)
                if flag:
                    return None
                old = value
            first = changed[0]
            if sid in first.fixes:
                old = first.fixes[sid]
        _ts, _seq, op, operand = write
        new = apply_write(old, op, operand)
        with handle.lock:
            if handle.written or (changed and handle.current != old):
                return None
            if new != handle.current:
                if is_gauge:
                    handle.current = float(new)
                else:
                    handle.current = int(new)
            # The next delta frame holds the series even when its value did not change, so
            # that the series' next delayed write finds its value in a frame or two instead of
            # walking the deltas down to the window's dense frame (a series an intake writes
            # every few seconds, with the same value, is common).
            self.moved.add(sid)
        if by_tick is None:
            by_tick = self._by_series[sid] = {}
        if tick not in by_tick:
            self._series_by_tick.setdefault(tick, array("q")).append(sid)
        by_tick[tick] = _kept((*bucket, write)) if bucket else (write,)
        handle.last_write_tick = current_tick
        fixes: list[Fix] = []
        if new != old:
            for frame in changed:
                frame.fixes[sid] = new
                fixes.append((frame.tick, sid, new))
        return fixes

    def forget_through(self, tick: int) -> None:
        """Forget the writes of ``tick`` and earlier (their ticks were handed to the writer)."""
        by_series = self._by_series
        for old in [t for t in self._series_by_tick if t <= tick]:
            for sid in self._series_by_tick.pop(old):
                by_tick = by_series.get(sid)
                if by_tick is not None:
                    by_tick.pop(old, None)
                    if not by_tick:
                        del by_series[sid]
