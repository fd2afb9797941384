"""The windowed accumulator: tick frames, and how delayed writes change them.

Semantics (the contract the property tests check):

* Tick ``t`` is the interval ``[t * tick_seconds, (t + 1) * tick_seconds)`` of Unix time.
* The value of a series at tick ``t`` is the fold, in timestamp order, of all its writes with a
  timestamp up to the end of ``t``. A gauge ``set`` replaces the value, ``increment`` and
  ``decrement`` move it (from 0 when there is no value yet); a counter ``increment`` adds and
  ``absolute`` replaces the running total.
* Live writes (on a handle, with no timestamp) take effect at the end of the tick they are taken
  into, after the delayed writes carrying a timestamp inside that tick. Among themselves they
  apply in call order.
* A series has no value, hence no row, before its first write, and none after ``remove()``.

A :class:`TickFrame` holds one taken tick: the live values snapshotted from the handles, kept in
compact arrays, plus ``fixes``: values that delayed writes changed afterwards.
"""

from __future__ import annotations

from array import array
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from capture.handles import WRITE_ADD, WRITE_SET

Number = float | int
#: A delayed write: (timestamp seconds, sequence number, operation, value).
HistoricalWrite = tuple[float, int, str, Number]


def apply_write(value: Number | None, op: str, operand: Number) -> Number:
    """Apply one write operation to ``value`` (None: no value yet) and return the result."""
    if op in ("set", "absolute"):
        return operand
    if op == "increment":
        return operand if value is None else value + operand
    if op == "decrement":
        return -operand if value is None else value - operand
    raise ValueError(f"unknown write operation {op!r}")


def fold(value: Number | None, writes: Iterable[HistoricalWrite]) -> Number | None:
    """Apply ``writes`` (already in timestamp order) to ``value``."""
    for _ts, _seq, op, operand in writes:
        value = apply_write(value, op, operand)
    return value


@dataclass(slots=True)
class TickFrame:
    """One taken tick: gauge and counter values by series id, plus later fixes.

    ``*_sids`` arrays are shared between consecutive frames while the set of live series does not
    change. ``*_flags`` say how each series was written during the tick (see
    :mod:`capture.handles`). ``fixes`` maps a series id to the value a delayed write gave it
    (None: absent).
    """

    tick: int
    g_sids: array[int]
    g_vals: array[float]
    g_flags: bytes
    c_sids: array[int]
    c_vals: array[int]
    c_flags: bytes
    fixes: dict[int, Number | None] = field(default_factory=dict)
    _g_index: dict[int, int] | None = None
    _c_index: dict[int, int] | None = None

    def lookup(self, sid: int, is_gauge: bool) -> tuple[Number | None, int]:
        """Return (value, live write flag) of series ``sid`` in this tick."""
        flag = 0
        value: Number | None = None
        if is_gauge:
            if self._g_index is None:
                self._g_index = {s: i for i, s in enumerate(self.g_sids)}
            i = self._g_index.get(sid)
            if i is not None:
                value, flag = self.g_vals[i], self.g_flags[i]
        else:
            if self._c_index is None:
                self._c_index = {s: i for i, s in enumerate(self.c_sids)}
            i = self._c_index.get(sid)
            if i is not None:
                value, flag = self.c_vals[i], self.c_flags[i]
        if sid in self.fixes:
            value = self.fixes[sid]
        return value, flag

    def materialize(
        self, is_gauge: Callable[[int], bool]
    ) -> tuple[array[int], array[float], array[int], array[int]]:
        """Return the final (g_sids, g_vals, c_sids, c_vals) with fixes applied.

        ``is_gauge`` tells the kind of a series that only appears in ``fixes``.
        """
        if not self.fixes:
            return self.g_sids, self.g_vals, self.c_sids, self.c_vals
        g_sids, g_vals = array("q"), array("d")
        c_sids, c_vals = array("q"), array("q")
        fixes = self.fixes
        for sid, val in zip(self.g_sids, self.g_vals, strict=True):
            if sid in fixes:
                continue
            g_sids.append(sid)
            g_vals.append(val)
        for sid, cval in zip(self.c_sids, self.c_vals, strict=True):
            if sid in fixes:
                continue
            c_sids.append(sid)
            c_vals.append(cval)
        for sid, fixed in fixes.items():
            if fixed is None:
                continue
            if is_gauge(sid):
                g_sids.append(sid)
                g_vals.append(float(fixed))
            else:
                c_sids.append(sid)
                c_vals.append(int(fixed))
        return g_sids, g_vals, c_sids, c_vals


def refold(
    old_values: list[Number | None],
    flags: list[int],
    old_writes: list[list[HistoricalWrite]],
    new_writes: list[list[HistoricalWrite]],
    prev_value: Number | None,
    removed_from: int | None,
) -> list[Number | None]:
    """Recompute one series' values over consecutive ticks after a delayed write.

    ``old_values[i]``/``flags[i]`` are the series' value and live write flag at the i-th tick as
    recorded before the delayed write; ``old_writes[i]``/``new_writes[i]`` its delayed writes in
    that tick before and after inserting the new one; ``prev_value`` its (unchanged) value in the
    tick before the first; ``removed_from`` the index from which the series is removed, if any.
    The live part of each tick is recovered from the old values: a live absolute write keeps
    its value, live increments keep their sum.
    """
    result: list[Number | None] = []
    prev_old = prev_new = prev_value
    for i, old in enumerate(old_values):
        if removed_from is not None and i >= removed_from:
            result.append(None)
            prev_old = prev_new = None
            continue
        flag = flags[i]
        if flag == WRITE_SET:
            new = old
        else:
            new = fold(prev_new, new_writes[i])
            if flag == WRITE_ADD and old is not None:
                base = fold(prev_old, old_writes[i])
                delta = old if base is None else old - base
                new = delta if new is None else new + delta
        result.append(new)
        prev_old, prev_new = old, new
    return result
