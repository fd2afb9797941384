"""The live series: the series a tick takes, in a stable order, and what came and went.

A series joins at the first tick after its first write and leaves when it is removed (or
expires). Each change bumps :attr:`LiveSeries.generation`; once a live view asked
(:meth:`LiveSeries.watch`) the changes of the last :data:`LIVE_LOG_GENERATIONS` generations
are kept, so that a view can follow them instead of reading every series again.
"""

from __future__ import annotations

from array import array
from collections import deque
from collections.abc import Mapping

from capture.accumulator import SeriesIds
from capture.handles import CounterSeries, GaugeSeries, Series, SeriesInfo

#: Generations of the live series whose changes are kept for a live view (live_changes).
LIVE_LOG_GENERATIONS = 32

#: (the generation now, series that came, series that went).
LiveChanges = tuple[int, list[SeriesInfo], list[Series]]


class LiveSeries:
    """The gauges and counters a tick takes, with their ids in the same order (callers hold the
    recorder's lock)."""

    __slots__ = (
        "_came",
        "_dirty",
        "_gone",
        "_log",
        "counter_ids",
        "counters",
        "gauge_ids",
        "gauges",
        "generation",
        "watched",
    )

    def __init__(self) -> None:
        self.gauges: list[GaugeSeries] = []
        self.counters: list[CounterSeries] = []
        #: The ids of :attr:`gauges`/:attr:`counters`, one object per generation (frames over the
        #: same series share it).
        self.gauge_ids = SeriesIds(array("q"))
        self.counter_ids = SeriesIds(array("q"))
        #: Bumped each time the lists above change; read without the lock.
        self.generation = 0
        #: Whether a live view asked: only then are changes kept.
        self.watched = False
        self._dirty = False
        self._came: list[SeriesInfo] = []
        self._gone: list[Series] = []
        self._log: deque[LiveChanges] = deque(maxlen=LIVE_LOG_GENERATIONS)

    def went(self, handle: Series) -> None:
        """Note that ``handle``'s series ended (it leaves at the next :meth:`refresh`)."""
        self._dirty = True
        if self.watched:
            self._gone.append(handle)

    def refresh(
        self, fresh: list[SeriesInfo], registered: Mapping[int, SeriesInfo]
    ) -> list[SeriesInfo]:
        """Bring the lists up to date before a tick: the ``fresh`` series (registered since)
        that have a value join, ended ones leave. Returns the fresh ones still without a value.

        ``registered`` are the registry's series by id (a fresh handle that is no longer there
        was replaced or forgotten).
        """
        still: list[SeriesInfo] = []
        for handle in fresh:
            if handle.removed or registered.get(handle.sid) is not handle:
                continue
            if handle.current is None:
                still.append(handle)
                continue
            if isinstance(handle, GaugeSeries):
                self.gauges.append(handle)
            else:
                self.counters.append(handle)
            self._dirty = True
            if self.watched:
                self._came.append(handle)
        if self._dirty:
            self.gauges = [h for h in self.gauges if not h.removed]
            self.counters = [h for h in self.counters if not h.removed]
            self.gauge_ids = SeriesIds(array("q", [h.sid for h in self.gauges]))
            self.counter_ids = SeriesIds(array("q", [h.sid for h in self.counters]))
            self._dirty = False
            self.generation += 1
            if self.watched:
                self._log.append((self.generation, self._came, self._gone))
                self._came, self._gone = [], []
        return still

    def watch(self) -> tuple[int, list[GaugeSeries], list[CounterSeries]]:
        """(generation, gauges, counters) as copies; from now on changes are kept."""
        self.watched = True
        return self.generation, list(self.gauges), list(self.counters)

    def changes(self, since: int) -> LiveChanges | None:
        """What changed after generation ``since``; None when that is no longer known."""
        generation = self.generation
        if since == generation:
            return generation, [], []
        log = [entry for entry in self._log if entry[0] > since]
        if not self.watched or not log or log[0][0] != since + 1:
            return None
        came = [h for _, added, _ in log for h in added]
        gone = [h for _, _, removed in log for h in removed]
        return generation, came, gone
