"""Rates from two readings of a cumulative counter."""

from __future__ import annotations


class RateTracker:
    """Turns successive readings of a cumulative counter into a per-second rate.

    The first reading is only a baseline (no rate, so no spike). A reading lower than the
    previous one is a counter reset (a restarted container or process): it becomes the new
    baseline. Elapsed time comes from the caller's monotonic clock at the moment of the read.
    """

    __slots__ = ("_last_time", "_last_value", "resets")

    def __init__(self) -> None:
        self._last_value: int | None = None
        self._last_time = 0.0
        self.resets = 0

    def update(self, value: int, monotonic_seconds: float) -> float | None:
        """Record ``value`` read at ``monotonic_seconds``; return units per second, or None."""
        last, last_time = self._last_value, self._last_time
        self._last_value, self._last_time = value, monotonic_seconds
        if last is None:
            return None
        if value < last:
            self.resets += 1
            return None
        elapsed = monotonic_seconds - last_time
        if elapsed <= 0:
            return None
        return (value - last) / elapsed
