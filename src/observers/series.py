"""Kept capture handles of one observed entity (a container or a process)."""

from __future__ import annotations

import sys
from collections.abc import Mapping

import capture
from observers.readers.errors import TooManySeriesError
from observers.readers.limits import limits_for


class SeriesSet:
    """The gauges and counters one entity emits, all with the same base labels.

    Handles are made on first use through the capture facade and kept, so a sample costs one
    dict lookup and one handle write per value. Hot loops may read :attr:`gauges` and
    :attr:`counters` (handles by name) directly and call :meth:`gauge`/:meth:`counter` on a
    miss: the entity holds each handle once, no per-series setter or second table (a node has
    100,000 series). :meth:`relabel` and :meth:`remove` end every series (a container that
    gained its pod name, or that is gone) and bump :attr:`generation`.

    **Series per file.** While :attr:`source` names a kernel file (the sampler sets it around the
    emission of that file's values), a new series counts against that file's cap
    (:func:`observers.readers.limits.limits_for`, ``max_series``), for this entity, from its
    first reading on (a series ended by :meth:`drop` gives its place back); past the cap no
    series is made and the value is counted in :attr:`refused` instead, which
    :meth:`take_refused` hands over as an error. Existing series are always written.
    ``source`` empty (derived metrics): no cap.
    """

    __slots__ = ("counters", "gauges", "generation", "labels", "made", "refused", "source")

    def __init__(self, labels: Mapping[str, str]) -> None:
        # In the order capture keeps labels in, so its lookup needs no second key.
        self.labels = capture.ordered_labels(labels)
        self.generation = 0
        #: Handles by name (``name\0label\0value`` for a series with an extra label); read-only
        #: for callers.
        self.gauges: dict[str, capture.Gauge] = {}
        self.counters: dict[str, capture.Counter] = {}
        #: The kernel file whose values are being written ("" for none); see the class doc.
        self.source = ""
        #: Values refused since the caller last reset it to 0: their file had made its cap.
        self.refused = 0
        #: Series made per source file (made on the first capped series).
        self.made: dict[str, int] | None = None

    def _admit(self) -> bool:
        """Whether a new series may be made now (counted against :attr:`source`'s cap)."""
        source = self.source
        if not source:
            return True
        made = self.made
        if made is None:
            made = self.made = {}
        count = made.get(source, 0)
        if count >= limits_for(source).max_series:
            self.refused += 1
            return False
        made[source] = count + 1
        return True

    def take_refused(self, path: str) -> TooManySeriesError | None:
        """The values refused since the last call, as an error naming ``path`` (the file of
        :attr:`source`), or None when none was; resets :attr:`refused` to 0."""
        refused = self.refused
        if not refused:
            return None
        self.refused = 0
        return TooManySeriesError(path, refused, limits_for(self.source).max_series)

    def _labels(self, extra: tuple[str, str] | None) -> Mapping[str, str]:
        if extra is None:
            return self.labels
        return capture.ordered_labels({**self.labels, extra[0]: extra[1]})

    def gauge(self, name: str, value: float, extra: tuple[str, str] | None = None) -> None:
        """Set gauge ``name`` (with one optional extra label) to ``value``; a new series past
        :attr:`source`'s cap is not made (counted in :attr:`refused`)."""
        key = name if extra is None else f"{name}\0{extra[0]}\0{extra[1]}"
        handle = self.gauges.get(key)
        if handle is None:
            if not self._admit():
                return
            # Names interned: the series of every entity share one string per name.
            key, name = sys.intern(key), sys.intern(name)
            handle = self.gauges[key] = capture.gauge(name, self._labels(extra))
        handle.set(value)

    def counter(self, name: str, value: int, extra: tuple[str, str] | None = None) -> None:
        """Set counter ``name``'s running total to ``value`` (a kernel counter); capped like
        :meth:`gauge`."""
        key = name if extra is None else f"{name}\0{extra[0]}\0{extra[1]}"
        handle = self.counters.get(key)
        if handle is None:
            if not self._admit():
                return
            key, name = sys.intern(key), sys.intern(name)
            handle = self.counters[key] = capture.counter(name, self._labels(extra))
        handle.absolute(value)

    def drop(self, name: str, extra: tuple[str, str] | None = None) -> None:
        """End one series (a value the kernel stopped reporting, e.g. a limit removed)."""
        key = name if extra is None else f"{name}\0{extra[0]}\0{extra[1]}"
        handle = self.gauges.pop(key, None) or self.counters.pop(key, None)
        if handle is not None:
            handle.remove()
            made = self.made
            if made and made.get(self.source):
                made[self.source] -= 1

    def remove(self) -> None:
        """End every series of the entity."""
        for g in self.gauges.values():
            g.remove()
        for c in self.counters.values():
            c.remove()
        self.gauges.clear()
        self.counters.clear()
        self.made = None
        self.generation += 1

    def relabel(self, labels: Mapping[str, str]) -> None:
        """End every series and continue under new base labels."""
        self.remove()
        self.labels = capture.ordered_labels(labels)

    def __len__(self) -> int:
        return len(self.gauges) + len(self.counters)
