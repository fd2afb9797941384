"""The registry's series handles: the cells that hold a series' live value.

Users see these objects through the :class:`capture.Gauge` and :class:`capture.Counter`
protocols (what :func:`capture.gauge`/:func:`capture.counter` return); the classes here are
the implementation behind :class:`capture.CaptureRecorder`, package-internal. Writes on a kept
handle are a couple of attribute stores (``set``) or a short striped-lock section (the
read-modify-write operations), so the single-threaded hot path never pays for label parsing,
validation or a registry lookup.

The cell's state is shared with its registry, which reads and resets it at every tick (these
attributes are for the registry, not for users): ``current`` (the live value, None before the
first write), ``written`` (what happened since the last tick was taken: :data:`WRITE_NONE`,
:data:`WRITE_ADD` only increments, :data:`WRITE_SET` an absolute write), ``last_write_tick``
(for expiry) and ``owner`` (the registry; None once the series is removed).
"""

from __future__ import annotations

import threading
from typing import ClassVar, Final, Literal, Protocol

WRITE_NONE: Final = 0
WRITE_ADD: Final = 1
WRITE_SET: Final = 2

# Striped locks for read-modify-write operations: one lock per handle would cost memory at
# 50,000 series, one lock for everything would make unrelated threads contend.
_STRIPES: Final = 64
_LOCKS: Final = tuple(threading.Lock() for _ in range(_STRIPES))


class SeriesOwner(Protocol):
    """The registry a handle belongs to (told when the handle is removed)."""

    def remove_series(self, handle: Series) -> None: ...


class Series:
    """What every handle holds: identity, the live value and the write flag for the tick.

    A handle is also the registry's record of its series (the writer reads ``kind``, ``name``,
    ``labels`` and ``removed``): a node holds about 100,000 series, so every object per series
    counts.
    """

    __slots__ = (
        "current",
        "labels",
        "last_write_tick",
        "name",
        "owner",
        "sid",
        "written",
    )
    kind: ClassVar[Literal["gauge", "counter"]]

    def __init__(
        self,
        name: str,
        labels: tuple[tuple[str, str], ...],
        sid: int,
        owner: SeriesOwner,
    ) -> None:
        self.name: Final = name
        self.labels: Final = labels
        self.sid: Final = sid
        self.current: float | int | None = None
        self.written = WRITE_NONE
        # Tick of the last write, kept by the registry for expiry.
        self.last_write_tick = -1
        # The registry; None once the series is removed (or expired).
        self.owner: SeriesOwner | None = owner

    @property
    def removed(self) -> bool:
        """Whether the series was removed (or expired); the handle is dead then."""
        return self.owner is None

    @property
    def lock(self) -> threading.Lock:
        """The striped lock of this series' read-modify-write operations (not a slot: a node
        holds 100,000 handles)."""
        return _LOCKS[self.sid % _STRIPES]

    def remove(self) -> None:
        """End this series now: it produces no row from the tick in progress on.

        The handle is dead afterwards; call :func:`capture.gauge` or :func:`capture.counter`
        again to start the series anew.
        """
        if self.owner is not None:
            self.owner.remove_series(self)


class GaugeSeries(Series):
    """Handle of one gauge series (a float that goes up and down).

    ``set`` replaces the value; ``increment``/``decrement`` move it. A gauge holds its value
    from tick to tick until it is written again or removed. A non-numeric value raises
    :class:`TypeError` at the call site.
    """

    __slots__ = ()
    kind: ClassVar[Literal["gauge", "counter"]] = "gauge"
    current: float | None

    def set(self, value: float) -> None:
        """Set the gauge to ``value``."""
        try:
            self.current = value + 0.0
        except TypeError:
            raise TypeError(
                f"gauge {self.name!r}: value must be a real number, got {type(value).__name__}"
            ) from None
        self.written = WRITE_SET

    def increment(self, value: float = 1.0) -> None:
        """Add ``value`` to the gauge (a gauge never written before starts from 0)."""
        try:
            delta = value + 0.0
        except TypeError:
            raise TypeError(
                f"gauge {self.name!r}: value must be a real number, got {type(value).__name__}"
            ) from None
        with self.lock:
            current = self.current
            self.current = delta if current is None else current + delta
            if self.written == WRITE_NONE:
                self.written = WRITE_ADD

    def decrement(self, value: float = 1.0) -> None:
        """Subtract ``value`` from the gauge."""
        try:
            self.increment(-value)
        except TypeError:
            raise TypeError(
                f"gauge {self.name!r}: value must be a real number, got {type(value).__name__}"
            ) from None

    @property
    def value(self) -> float | None:
        """The live value (None before the first write)."""
        return self.current

    def __repr__(self) -> str:
        return f"Gauge({self.name!r}, {dict(self.labels)!r}, value={self.current!r})"


def as_count(n: object, name: str) -> int:
    """Validate a counter operand: a non-negative integer (anything with ``__index__``)."""
    if isinstance(n, bool) or not isinstance(n, int):
        try:
            index = n.__index__  # type: ignore[attr-defined]
        except AttributeError:
            raise TypeError(
                f"counter {name!r}: value must be an integer, got {type(n).__name__}"
            ) from None
        n = index()
    assert isinstance(n, int)
    if n < 0:
        raise ValueError(f"counter {name!r}: value must not be negative, got {n}")
    return n


class CounterSeries(Series):
    """Handle of one counter series (a cumulative, non-negative integer).

    ``increment(n)`` adds ``n >= 0``; ``absolute(n)`` sets the running total (use it to mirror a
    kernel counter). Rows carry the cumulative value. A negative or non-integer value raises
    :class:`ValueError`/:class:`TypeError` at the call site.
    """

    __slots__ = ()
    kind: ClassVar[Literal["gauge", "counter"]] = "counter"
    current: int | None

    def increment(self, n: int = 1) -> None:
        """Add ``n`` (a non-negative integer) to the counter."""
        if n.__class__ is not int or n < 0:
            n = as_count(n, self.name)
        with self.lock:
            current = self.current
            self.current = n if current is None else current + n
            if self.written == WRITE_NONE:
                self.written = WRITE_ADD

    def absolute(self, n: int) -> None:
        """Set the counter's running total to ``n`` (a non-negative integer)."""
        if n.__class__ is not int or n < 0:
            n = as_count(n, self.name)
        self.current = n
        self.written = WRITE_SET

    @property
    def value(self) -> int | None:
        """The live cumulative value (None before the first write)."""
        return self.current

    def __repr__(self) -> str:
        return f"Counter({self.name!r}, {dict(self.labels)!r}, value={self.current!r})"


#: A handle of either kind: what the registry keeps per series and the writer reads (``kind``,
#: ``name``, ``labels``, ``removed``). One object per series, not two.
SeriesInfo = GaugeSeries | CounterSeries
