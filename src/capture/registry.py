"""The series registry: which series exist, their ids, kinds and handles.

A series is registered on first use (its name and labels validated once), keeps one id while
any of its ticks is still held (a series removed and made again within the window is the same
series), and is forgotten once its last tick was handed to the writer. Series that share labels
(every series of one container) share one label tuple.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from capture.delayed import DROPPED_DESCRIPTION, DROPPED_METRIC
from capture.events import JournalEvents
from capture.handle_index import HandleIndex
from capture.handles import CounterSeries, GaugeSeries, Series, SeriesInfo, SeriesOwner
from capture.keys import Kind, LabelTuple, SeriesKey, canonical_labels, check_name
from capture.window import MISSED_TICKS_DESCRIPTION, MISSED_TICKS_METRIC

# CaptureRecorder and its own counters' names and descriptions lived here before the recorder
# was split; they stay importable from here (the catalogue and its tests import them so) until
# those imports move to capture.recorder, capture.delayed and capture.window.
__all__ = [
    "DROPPED_DESCRIPTION",
    "DROPPED_METRIC",
    "MISSED_TICKS_DESCRIPTION",
    "MISSED_TICKS_METRIC",
    "SeriesRegistry",
]


def __getattr__(name: str) -> Any:
    if name == "CaptureRecorder":  # (imported late: capture.recorder imports this module)
        from capture.recorder import CaptureRecorder  # noqa: PLC0415

        return CaptureRecorder
    raise AttributeError(f"module 'capture.registry' has no attribute {name!r}")


@dataclass(slots=True)
class _Retired:
    sid: int
    last_tick: int


class SeriesRegistry:
    """The registered series of one recorder, with the handle indexes the lookups read.

    Registration takes ``lock`` (the recorder's); the other methods expect the caller to hold it.
    """

    def __init__(
        self,
        owner: SeriesOwner,
        reserved: frozenset[str],
        lock: threading.RLock,
        events: JournalEvents,
    ) -> None:
        self._owner = owner
        self._reserved = reserved
        self._lock = lock
        self._events = events
        #: Gauge and counter handles by the label items callers give, then name.
        self.gauges: HandleIndex[GaugeSeries] = HandleIndex()
        self.counters: HandleIndex[CounterSeries] = HandleIndex()
        self._kind_of_name: dict[str, Kind] = {}
        self._label_sets: dict[LabelTuple, LabelTuple] = {}
        self._label_refs: dict[LabelTuple, int] = {}
        #: Every series not yet forgotten, by id: its handle (removed ones until their last tick
        #: is handed to the writer).
        self.by_id: dict[int, SeriesInfo] = {}
        self._retired: dict[SeriesKey, _Retired] = {}
        self._sids = itertools.count()
        #: Series registered since the live series last took them in (see LiveSeries.refresh).
        self.fresh: list[SeriesInfo] = []

    def gauge(self, name: str, labels: object) -> GaugeSeries:
        """Register gauge ``name`` with ``labels`` (or find it under a new label order).

        Raises TypeError/ValueError for a bad name or labels, ValueError if ``name`` is a counter.
        """
        check_name(name)
        canonical = self._shared(canonical_labels(labels, self._reserved))
        with self._lock:
            self._claim(name, "gauge")
            handle = self.gauges.get(name, canonical)
            if handle is None:
                sid = self._sid("gauge", name, canonical)
                handle = GaugeSeries(name, canonical, sid, self._owner)
                self.gauges.add(handle)
                self._added(handle)
            if labels:
                assert isinstance(labels, Mapping)
                self.gauges.add_alias(handle, labels)
            return handle

    def counter(self, name: str, labels: object) -> CounterSeries:
        """Register counter ``name`` with ``labels``; see :meth:`gauge`."""
        check_name(name)
        canonical = self._shared(canonical_labels(labels, self._reserved))
        with self._lock:
            self._claim(name, "counter")
            handle = self.counters.get(name, canonical)
            if handle is None:
                sid = self._sid("counter", name, canonical)
                handle = CounterSeries(name, canonical, sid, self._owner)
                self.counters.add(handle)
                self._added(handle)
            if labels:
                assert isinstance(labels, Mapping)
                self.counters.add_alias(handle, labels)
            return handle

    def _shared(self, canonical: LabelTuple) -> LabelTuple:
        # Series that share labels share one tuple; it is counted per series and forgotten when
        # the last one's last tick is written.
        return self._label_sets.setdefault(canonical, canonical)

    def _claim(self, name: str, kind: Kind) -> None:
        known = self._kind_of_name.setdefault(name, kind)
        if known != kind:
            raise ValueError(f"metric {name!r} is a {known}, not a {kind}")

    def _sid(self, kind: Kind, name: str, canonical: LabelTuple) -> int:
        # A series removed and made again while its ticks are held keeps its id.
        retired = self._retired.pop((kind, name, canonical), None)
        if retired is not None and retired.sid in self.by_id:
            return retired.sid
        self._label_refs[canonical] = self._label_refs.get(canonical, 0) + 1
        return retired.sid if retired is not None else next(self._sids)

    def _added(self, handle: SeriesInfo) -> None:
        self.by_id[handle.sid] = handle
        self.fresh.append(handle)
        self._events.series(handle)

    def kind_of(self, name: str) -> Kind | None:
        """Whether ``name`` was registered as a gauge or a counter (None: never registered)."""
        return self._kind_of_name.get(name)

    def is_current(self, handle: Series) -> bool:
        """Whether ``handle`` is its series' handle and not removed."""
        return not handle.removed and self.by_id.get(handle.sid) is handle

    def retire(self, handle: SeriesInfo, last_tick: int) -> None:
        """End ``handle``'s series: it is dead at once, and forgotten once ``last_tick`` (the
        last tick holding it) is handed to the writer."""
        handle.owner = None  # (removed)
        if isinstance(handle, GaugeSeries):
            self.gauges.remove(handle)
        else:
            self.counters.remove(handle)
        self._retired[(handle.kind, handle.name, handle.labels)] = _Retired(handle.sid, last_tick)

    def forget_through(self, tick: int) -> Mapping[int, SeriesInfo]:
        """Forget the removed series whose last tick is ``tick`` or earlier; returns the series by
        id as they were before (:attr:`by_id` itself when none was forgotten, else a copy)."""
        gone = [k for k, r in self._retired.items() if r.last_tick <= tick]
        if not gone:
            return self.by_id
        # The writer reads the series of the ticks handed over after this returns; a copy
        # (about 5 MB at 100,000 series) only when some of them are forgotten here.
        before = dict(self.by_id)
        for key in gone:
            sid = self._retired.pop(key).sid
            handle = self.by_id.get(sid)
            if handle is not None and handle.removed:
                del self.by_id[sid]
                self._release_labels(handle.labels)
        return before

    def _release_labels(self, labels: LabelTuple) -> None:
        left = self._label_refs.get(labels, 0) - 1
        if left > 0:
            self._label_refs[labels] = left
        else:
            self._label_refs.pop(labels, None)
            self._label_sets.pop(labels, None)
