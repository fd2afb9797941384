"""Kept capture handles of one observed entity (a container or a process)."""

from __future__ import annotations

import sys
from collections.abc import Mapping

import capture


class SeriesSet:
    """The gauges and counters one entity emits, all with the same base labels.

    Handles are made on first use through the capture facade and kept, so a sample costs one
    dict lookup and one handle write per value. Hot loops may read :attr:`gauges` and
    :attr:`counters` (handles by name) directly and call :meth:`gauge`/:meth:`counter` on a
    miss: the entity holds each handle once, no per-series setter or second table (a node has
    100,000 series). :meth:`relabel` and :meth:`remove` end every series (a container that
    gained its pod name, or that is gone) and bump :attr:`generation`.
    """

    __slots__ = ("counters", "gauges", "generation", "labels")

    def __init__(self, labels: Mapping[str, str]) -> None:
        # Sorted by key, the order capture keeps labels in, so its lookup needs no second key.
        self.labels = dict(sorted(labels.items()))
        self.generation = 0
        #: Handles by name (``name\0label\0value`` for a series with an extra label); read-only
        #: for callers.
        self.gauges: dict[str, capture.Gauge] = {}
        self.counters: dict[str, capture.Counter] = {}

    def _labels(self, extra: tuple[str, str] | None) -> Mapping[str, str]:
        if extra is None:
            return self.labels
        return dict(sorted({**self.labels, extra[0]: extra[1]}.items()))

    def gauge(self, name: str, value: float, extra: tuple[str, str] | None = None) -> None:
        """Set gauge ``name`` (with one optional extra label) to ``value``."""
        key = name if extra is None else f"{name}\0{extra[0]}\0{extra[1]}"
        handle = self.gauges.get(key)
        if handle is None:
            # Names interned: the series of every entity share one string per name.
            key, name = sys.intern(key), sys.intern(name)
            handle = self.gauges[key] = capture.gauge(name, self._labels(extra))
        handle.set(value)

    def counter(self, name: str, value: int, extra: tuple[str, str] | None = None) -> None:
        """Set counter ``name``'s running total to ``value`` (a kernel counter)."""
        key = name if extra is None else f"{name}\0{extra[0]}\0{extra[1]}"
        handle = self.counters.get(key)
        if handle is None:
            key, name = sys.intern(key), sys.intern(name)
            handle = self.counters[key] = capture.counter(name, self._labels(extra))
        handle.absolute(value)

    def drop(self, name: str, extra: tuple[str, str] | None = None) -> None:
        """End one series (a value the kernel stopped reporting, e.g. a limit removed)."""
        key = name if extra is None else f"{name}\0{extra[0]}\0{extra[1]}"
        handle = self.gauges.pop(key, None) or self.counters.pop(key, None)
        if handle is not None:
            handle.remove()

    def remove(self) -> None:
        """End every series of the entity."""
        for g in self.gauges.values():
            g.remove()
        for c in self.counters.values():
            c.remove()
        self.gauges.clear()
        self.counters.clear()
        self.generation += 1

    def relabel(self, labels: Mapping[str, str]) -> None:
        """End every series and continue under new base labels."""
        self.remove()
        self.labels = dict(sorted(labels.items()))

    def __len__(self) -> int:
        return len(self.gauges) + len(self.counters)
