"""Journal events: what the recorder did since the journal writer last asked.

The manager's journal (:mod:`capture.journal`) appends every new series, every taken tick and
every change a delayed write made to a tick, so that a killed process loses almost nothing. The
recorder notes them here while :attr:`JournalEvents.enabled` (the manager enables it); a
recorder without a manager keeps nothing.
"""

from __future__ import annotations

from capture.accumulator import Number, TickFrame
from capture.handles import SeriesInfo

#: A delayed write's change to a held tick: (tick, series id, new value; None: no value).
Fix = tuple[int, int, Number | None]
#: One journal event: ("series", handle), ("frame", TickFrame) or ("fixes", list of Fix).
JournalEvent = tuple[str, object]


class JournalEvents:
    """The journal events since the last :meth:`pop`, oldest first (callers hold the recorder's
    lock)."""

    __slots__ = ("_events", "enabled")

    def __init__(self) -> None:
        #: Whether events are kept (off: every note is a no-op).
        self.enabled = False
        self._events: list[JournalEvent] = []

    def series(self, handle: SeriesInfo) -> None:
        """Note a new series."""
        if self.enabled:
            self._events.append(("series", handle))

    def frame(self, frame: TickFrame) -> None:
        """Note a taken tick."""
        if self.enabled:
            self._events.append(("frame", frame))

    def fixes(self, fixes: list[Fix]) -> None:
        """Note the ticks a delayed write changed (nothing for an empty list)."""
        if fixes and self.enabled:
            self._events.append(("fixes", fixes))

    def pop(self) -> list[JournalEvent]:
        """Take the events noted since the last call."""
        events, self._events = self._events, []
        return events
