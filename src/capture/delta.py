"""Delta encoding of a taken tick: one kind's live values as a frame's :class:`FrameValues`.

On an idle node most series are not written on most ticks, so a frame over the same series as
the frame before holds only the positions written during the tick (and those whose value a
delayed write moved), with their values and write flags; see :mod:`capture.accumulator`.
"""

from __future__ import annotations

from array import array
from collections.abc import Collection, Sequence
from itertools import compress
from typing import Any

import numpy as np

from capture.accumulator import FrameValues, SeriesIds
from capture.handles import WRITE_NONE, SeriesInfo


def _nonzero_positions(flags: bytes) -> array[int]:
    """Ascending positions of the non-zero bytes of ``flags``."""
    positions = array("Q")
    if flags.count(0) != len(flags):
        found = np.flatnonzero(np.frombuffer(flags, np.uint8)).astype(np.uint64, copy=False)
        positions.frombytes(found.tobytes())
    return positions


def take_values(
    live: Sequence[SeriesInfo],
    series: SeriesIds,
    previous: FrameValues | None,
    typecode: str,
    tick: int,
    expire_after_ticks: int | None,
    moved: Collection[int],
    expired: list[SeriesInfo],
) -> FrameValues:
    """Snapshot the live values of one kind at ``tick``: a delta against ``previous`` when it
    holds the same ``series`` and most of them were not written, else dense.

    ``live`` are the handles in the order of ``series``; ``typecode`` the array type of their
    values (``"d"`` gauges, ``"q"`` counters). Clears the handles' write flags (the tick has them
    now). ``moved`` are the ids of series whose value a delayed write changed since the last
    tick (no flag says so: a delta carries them too). With ``expire_after_ticks``, series not
    written for that many ticks are appended to ``expired`` (the caller ends them).
    """
    flags = bytes([h.written for h in live])
    unwritten = flags.count(WRITE_NONE)
    written = live if not unwritten else list(compress(live, flags))
    # Clear each flag before reading the value: a write racing with this either lands
    # before the read (its value is in this tick) or sets the flag again (the next tick).
    for handle in written:
        handle.written = WRITE_NONE
    if expire_after_ticks is not None:
        for handle, flag in zip(live, flags, strict=True):
            if flag or handle.last_write_tick < 0:
                handle.last_write_tick = tick
            elif tick - handle.last_write_tick >= expire_after_ticks:
                expired.append(handle)
    if previous is None or previous.series is not series or 2 * unwritten < len(live):
        # A delta holding most series would cost more than the dense form (17 bytes an entry
        # against 9, and more time).
        dense: array[Any] = array(typecode, [h.current for h in live])
        return FrameValues(series, dense, flags)
    positions = _nonzero_positions(flags)
    written_flags = bytes(compress(flags, flags))
    if moved:
        extra = [series.position(sid) for sid in moved]
        moved_positions = {i for i in extra if i is not None and not flags[i]}
        if moved_positions:
            merged = sorted(moved_positions.union(positions))
            positions = array("Q", merged)
            written = [live[i] for i in merged]
            written_flags = bytes([flags[i] for i in merged])
    values: array[Any] = array(typecode, [h.current for h in written])
    return FrameValues(series, values, written_flags, positions, previous)
