"""The pending recorder: the stand-in installed while no recorder is.

Calls on it are cheap no-ops, counted and reported once; the handles it makes forward to every
recorder installed later, so module-level handles in user code start recording then.
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Mapping, Sequence

from capture.delayed import BatchOutcome, DelayedPoint, HistoricalOp
from capture.descriptions import DescriptionTable, make_description
from capture.keys import Kind, LabelTuple, canonical_labels, check_name
from capture.recorder import Counter, Gauge, Recorder

log = logging.getLogger("capture")


class _PendingGauge:
    """A gauge made before any recorder was installed; forwards once one is."""

    __slots__ = ("__weakref__", "_owner", "_target", "labels", "name")

    def __init__(self, owner: PendingRecorder, name: str, labels: Mapping[str, str]) -> None:
        self._owner = owner
        self.name = name
        self.labels = dict(labels)
        self._target: Gauge | None = None

    def set(self, value: float) -> None:
        if self._target is None:
            self._owner.dropped_call()
        else:
            self._target.set(value)

    def increment(self, value: float = 1.0) -> None:
        if self._target is None:
            self._owner.dropped_call()
        else:
            self._target.increment(value)

    def decrement(self, value: float = 1.0) -> None:
        if self._target is None:
            self._owner.dropped_call()
        else:
            self._target.decrement(value)

    def remove(self) -> None:
        if self._target is not None:
            self._target.remove()
            self._target = None

    def bind(self, recorder: Recorder | None) -> None:
        self._target = None if recorder is None else recorder.gauge(self.name, self.labels)


class _PendingCounter:
    """A counter made before any recorder was installed; forwards once one is."""

    __slots__ = ("__weakref__", "_owner", "_target", "labels", "name")

    def __init__(self, owner: PendingRecorder, name: str, labels: Mapping[str, str]) -> None:
        self._owner = owner
        self.name = name
        self.labels = dict(labels)
        self._target: Counter | None = None

    def increment(self, n: int = 1) -> None:
        if self._target is None:
            self._owner.dropped_call()
        else:
            self._target.increment(n)

    def absolute(self, n: int) -> None:
        if self._target is None:
            self._owner.dropped_call()
        else:
            self._target.absolute(n)

    def remove(self) -> None:
        if self._target is not None:
            self._target.remove()
            self._target = None

    def bind(self, recorder: Recorder | None) -> None:
        self._target = None if recorder is None else recorder.counter(self.name, self.labels)


class PendingRecorder:
    """The recorder in place while none is installed.

    Calls are cheap no-ops, counted in :attr:`dropped_calls` and reported once in the log.
    Handles it makes are remembered (weakly) and forward to every recorder installed later, so
    module-level handles in user code start recording as soon as a recorder is installed.
    Descriptions (:meth:`describe`) are kept for the whole process and given to every recorder
    installed later that has a ``describe`` method.
    """

    def __init__(self) -> None:
        #: Every description given to :func:`capture.describe` in this process.
        self.descriptions = DescriptionTable()
        self.dropped_calls = 0
        self._warned = False
        self._lock = threading.Lock()
        self._handles: weakref.WeakValueDictionary[
            tuple[str, str, LabelTuple], _PendingGauge | _PendingCounter
        ] = weakref.WeakValueDictionary()

    def dropped_call(self) -> None:
        self.dropped_calls += 1
        if not self._warned:
            self._warned = True
            log.warning(
                "capture: metrics written before a recorder is installed are dropped "
                "(see capture.set_recorder / CaptureManager.start); reported once"
            )

    def _handle(
        self, kind: str, name: str, labels: Mapping[str, str] | None
    ) -> _PendingGauge | _PendingCounter:
        check_name(name)
        canonical = canonical_labels(labels)
        key = (kind, name, canonical)
        with self._lock:
            handle = self._handles.get(key)
            if handle is None:
                cls = _PendingGauge if kind == "gauge" else _PendingCounter
                handle = cls(self, name, dict(canonical))
                self._handles[key] = handle
        return handle

    def gauge(self, name: str, labels: Mapping[str, str] | None = None) -> Gauge:
        handle = self._handle("gauge", name, labels)
        assert isinstance(handle, _PendingGauge)
        return handle

    def counter(self, name: str, labels: Mapping[str, str] | None = None) -> Counter:
        handle = self._handle("counter", name, labels)
        assert isinstance(handle, _PendingCounter)
        return handle

    def record_historical(
        self,
        kind: Kind,
        op: HistoricalOp,
        name: str,
        labels: Mapping[str, str] | None,
        value: float,
        timestamp: float,
    ) -> None:
        self.dropped_call()

    def record_historical_batch(self, points: Sequence[DelayedPoint]) -> BatchOutcome:
        """Drop every write (counted as calls); the outcome says ``no_recorder``."""
        for _ in points:
            self.dropped_call()
        return BatchOutcome(0, {"no_recorder": len(points)} if points else {})

    def describe(self, name: str, description: str, unit: str | None = None) -> None:
        """Keep the description of ``name`` (see :func:`capture.describe`)."""
        self.descriptions.add(make_description(name, description, unit))

    def describe_to(self, recorder: object) -> None:
        """Give every kept description to ``recorder`` if it has a ``describe`` method."""
        describe = getattr(recorder, "describe", None)
        if describe is not None and recorder is not self:
            for kept in self.descriptions:
                describe(kept.name, kept.description, kept.unit)

    def bind_all(self, recorder: Recorder | None) -> None:
        """Point every pending handle at ``recorder`` (None: back to dropping) and give it the
        kept descriptions."""
        with self._lock:
            handles = list(self._handles.values())
        for handle in handles:
            handle.bind(recorder)
        if recorder is not None:
            self.describe_to(recorder)
