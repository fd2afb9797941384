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

A :class:`TickFrame` holds one taken tick: for each kind (gauges, counters) a
:class:`FrameValues` with the live values snapshotted from the handles, plus ``fixes``: values
that delayed writes changed afterwards. The series ids of a kind live in a :class:`SeriesIds`
that consecutive frames share while the live series do not change. Such a frame stores
only a delta against the frame before it (the positions written during the tick, or whose live
value a delayed write moved, with their values and write flags; every other position holds the
previous tick's value and no write flag), since on an idle node most series are not written on
most ticks. Every frame whose series set changed is dense (a value and a flag per series), and so
is the oldest frame of the window once the frames that left it are handed to the writer: it is
re-based in place then (:meth:`TickFrame.rebase`), so no frame held keeps a chain to frames handed
over. The frames handed over in one batch are the first one dense and deltas after it; the writer
re-bases them in order. ``fixes`` always apply on top of the snapshot values, whichever the form.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

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


class SeriesIds:
    """The ids of the live series of one kind, in the order of a frame's values.

    Consecutive frames share one object while the live series do not change (the journal and
    the delta frames test this by identity). The position index is built on first use.
    """

    __slots__ = ("_index", "sids")

    def __init__(self, sids: array[int]) -> None:
        self.sids = sids
        self._index: dict[int, int] | None = None

    def __len__(self) -> int:
        return len(self.sids)

    def position(self, sid: int) -> int | None:
        """The position of series ``sid`` (None: not in the set)."""
        index = self._index
        if index is None:
            index = self._index = {s: i for i, s in enumerate(self.sids)}
        return index.get(sid)


#: (values, flags, positions, base) of a :class:`FrameValues`; see there.
ValuesState = tuple["array[Any]", bytes, "array[int] | None", "FrameValues | None"]


def _held(state: ValuesState, i: int) -> tuple[Number, int] | None:
    """(value, write flag) of position ``i`` if ``state`` holds it (always when dense; in a
    delta, when the position was written), else None: the value is its base's."""
    values, flags, positions, _base = state
    if positions is None:
        return values[i], flags[i]
    j = bisect_left(positions, i)
    if j < len(positions) and positions[j] == i:
        return values[j], flags[j]
    return None


class FrameValues:
    """The snapshot values of one kind (gauges or counters) in one tick, aligned with ``series``.

    ``state`` is ``(values, flags, positions, base)``. Dense: ``positions`` and ``base`` are None
    and ``values[i]``/``flags[i]`` belong to ``series.sids[i]``. Delta: ``values[j]``/``flags[j]``
    belong to position ``positions[j]`` (ascending); every other position holds ``base``'s value
    (the previous tick's, over the same series) and write flag 0. The state is replaced as a
    whole (:meth:`rebase`) and read once by each reader, so a reader in another thread never sees
    half of each form.
    """

    __slots__ = ("series", "state")

    def __init__(
        self,
        series: SeriesIds,
        values: array[Any],
        flags: bytes,
        positions: array[int] | None = None,
        base: FrameValues | None = None,
    ) -> None:
        self.series = series
        self.state: ValuesState = (values, flags, positions, base)

    @property
    def is_dense(self) -> bool:
        """Whether every position's value is held here (no base)."""
        return self.state[2] is None

    def at(self, i: int) -> tuple[Number, int]:
        """(value, write flag) at position ``i``."""
        held = _held(self.state, i)
        if held is not None:
            return held
        base = self.state[3]
        assert base is not None
        return base.value_at(i), 0

    def flag_at(self, i: int) -> int:
        """The write flag at position ``i`` (0 where a delta does not hold it; no base read)."""
        held = _held(self.state, i)
        return 0 if held is None else held[1]

    def value_at(self, i: int) -> Number:
        """The value at position ``i`` (following the bases of delta frames)."""
        node = self
        while True:
            held = _held(node.state, i)
            if held is not None:
                return held[0]
            base = node.state[3]
            assert base is not None
            node = base

    def dense(self) -> tuple[array[Any], bytes]:
        """(values, flags) with one entry per position; the held arrays when already dense."""
        values, flags, positions, base = self.state
        if positions is None:
            return values, flags
        chain: list[tuple[array[Any], array[int]]] = [(values, positions)]
        node = base
        while True:
            assert node is not None
            node_values, _flags, node_positions, node_base = node.state
            if node_positions is None:
                break
            chain.append((node_values, node_positions))
            node = node_base
        out = node_values[:]
        if len(out):
            view = _numbers_view(out)
            for delta_values, delta_positions in reversed(chain):
                if len(delta_positions):
                    view[np.asarray(delta_positions)] = np.asarray(delta_values)
        dense_flags = bytearray(len(out))
        for i, flag in zip(positions, flags, strict=True):
            if flag:
                dense_flags[i] = flag
        return out, bytes(dense_flags)

    def rebase(self) -> None:
        """Hold every value here, dropping the reference to the frame before."""
        if self.state[2] is not None:
            values, flags = self.dense()
            self.state = (values, flags, None, None)


class TickFrame:
    """One taken tick: gauge and counter values by series id, plus later fixes.

    ``g``/``c`` hold the gauges' and counters' snapshot values (dense or a delta against the
    previous frame, see :class:`FrameValues`); the ``g_*``/``c_*`` properties give them dense.
    Flags say how each series was written during the tick (see :mod:`capture.handles`).
    ``fixes`` maps a series id to the value a delayed write gave it (None: absent).
    """

    __slots__ = ("c", "fixes", "g", "tick")

    def __init__(
        self,
        tick: int,
        g: FrameValues,
        c: FrameValues,
        fixes: dict[int, Number | None] | None = None,
    ) -> None:
        self.tick = tick
        self.g = g
        self.c = c
        self.fixes: dict[int, Number | None] = {} if fixes is None else fixes

    @classmethod
    def from_arrays(
        cls,
        tick: int,
        g_sids: array[int],
        g_vals: array[float],
        g_flags: bytes,
        c_sids: array[int],
        c_vals: array[int],
        c_flags: bytes,
    ) -> TickFrame:
        """A dense frame from its arrays."""
        return cls(
            tick,
            FrameValues(SeriesIds(g_sids), g_vals, g_flags),
            FrameValues(SeriesIds(c_sids), c_vals, c_flags),
        )

    @property
    def g_sids(self) -> array[int]:
        return self.g.series.sids

    @property
    def g_vals(self) -> array[float]:
        return self.g.dense()[0]

    @property
    def g_flags(self) -> bytes:
        return self.g.dense()[1]

    @property
    def c_sids(self) -> array[int]:
        return self.c.series.sids

    @property
    def c_vals(self) -> array[int]:
        return self.c.dense()[0]

    @property
    def c_flags(self) -> bytes:
        return self.c.dense()[1]

    def rebase(self) -> None:
        """Make both kinds dense (the frame no longer refers to the one before)."""
        self.g.rebase()
        self.c.rebase()

    def lookup(self, sid: int, is_gauge: bool) -> tuple[Number | None, int]:
        """Return (value, live write flag) of series ``sid`` in this tick."""
        part = self.g if is_gauge else self.c
        i = part.series.position(sid)
        value: Number | None
        value, flag = (None, 0) if i is None else part.at(i)
        if sid in self.fixes:
            value = self.fixes[sid]
        return value, flag

    def materialize(
        self, is_gauge: Callable[[int], bool]
    ) -> tuple[array[int], array[float], array[int], array[int]]:
        """Return the final (g_sids, g_vals, c_sids, c_vals) with fixes applied.

        ``is_gauge`` tells the kind of a series that only appears in ``fixes``.
        """
        g_sids, c_sids = self.g.series.sids, self.c.series.sids
        g_dense, c_dense = self.g.dense()[0], self.c.dense()[0]
        fixes = dict(self.fixes)  # a copy: a delayed write may add a fix meanwhile
        if not fixes:
            return g_sids, g_dense, c_sids, c_dense
        g_position, c_position = self.g.series.position, self.c.series.position
        # Fixes of series in the snapshot replace their values in place (None: drop the row);
        # series only in the fixes are added at the end.
        g_at: list[int] = []
        g_new: list[float] = []
        c_at: list[int] = []
        c_new: list[int] = []
        g_gone: list[int] = []
        c_gone: list[int] = []
        g_more: list[tuple[int, float]] = []
        c_more: list[tuple[int, int]] = []
        for sid, fixed in fixes.items():
            i = g_position(sid)
            if i is not None:
                if fixed is None:
                    g_gone.append(i)
                else:
                    g_at.append(i)
                    g_new.append(float(fixed))
                continue
            i = c_position(sid)
            if i is not None:
                if fixed is None:
                    c_gone.append(i)
                else:
                    c_at.append(i)
                    c_new.append(int(fixed))
                continue
            if fixed is None:
                continue
            if is_gauge(sid):
                g_more.append((sid, float(fixed)))
            else:
                c_more.append((sid, int(fixed)))
        g_out, g_vals = _fixed(g_sids, g_dense, g_at, g_new, g_gone, g_more)
        c_out, c_vals = _fixed(c_sids, c_dense, c_at, c_new, c_gone, c_more)
        return g_out, g_vals, c_out, c_vals


def _numbers_view(values: array[Any]) -> npt.NDArray[Any]:
    """A writable numpy view of ``values`` (its dtype the array's typecode)."""
    return np.asarray(values)


def _fixed(
    sids: array[int],
    values: array[Any],
    at: list[int],
    new: list[Any],
    gone: list[int],
    more: list[tuple[int, Any]],
) -> tuple[array[int], array[Any]]:
    """``sids``/``values`` with the values at positions ``at`` replaced by ``new``, the
    positions ``gone`` left out and the (sid, value) pairs of ``more`` added at the end; the
    arrays themselves when nothing changes."""
    if not (at or gone or more):
        return sids, values
    out_values = values[:]
    if at:
        view = _numbers_view(out_values)
        view[np.array(at, np.int64)] = np.array(new, view.dtype)
        del view  # (an array with a view on it cannot grow)
    out_sids = sids
    if gone:
        keep = np.ones(len(sids), np.bool_)
        keep[np.array(gone, np.int64)] = False
        out_sids = array(sids.typecode, np.asarray(sids)[keep].tobytes())
        out_values = array(out_values.typecode, _numbers_view(out_values)[keep].tobytes())
    if more:
        if out_sids is sids:
            out_sids = sids[:]
        out_sids.extend(sid for sid, _ in more)
        out_values.extend(value for _, value in more)
    return out_sids, out_values


def raw_history(
    frames: Sequence[TickFrame], sid: int, is_gauge: bool
) -> list[tuple[Number | None, int]]:
    """(snapshot value, live write flag) of series ``sid`` in each of ``frames``, fixes not applied.

    One pass from the oldest frame: a delta frame's untouched position takes the value just found
    in its base, so no frame's chain is walked again.
    """
    result: list[tuple[Number | None, int]] = []
    previous: FrameValues | None = None
    previous_value: Number | None = None
    for frame in frames:
        part = frame.g if is_gauge else frame.c
        i = part.series.position(sid)
        value: Number | None
        if i is None:
            value, flag = None, 0
        else:
            held = _held(part.state, i)
            base = part.state[3]
            if held is not None:
                value, flag = held
            elif base is previous and base is not None:
                value, flag = previous_value, 0
            else:
                value, flag = part.at(i)
        result.append((value, flag))
        previous, previous_value = part, value
    return result


def refold(
    old_values: list[Number | None],
    flags: list[int],
    old_writes: Sequence[Sequence[HistoricalWrite]],
    new_writes: Sequence[Sequence[HistoricalWrite]],
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
