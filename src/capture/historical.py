"""Delayed metrics: writes that carry their own timestamp.

Each function applies one write to the series ``name`` with ``labels`` as of ``timestamp``
(an aware :class:`datetime.datetime` or Unix epoch seconds). The write changes the tick that
contains the timestamp and the later ticks it reaches under the accumulator's rules (see
:mod:`capture.accumulator`), never overriding newer data. A write older than the window or in
the future is dropped and counted in ``capture.dropped`` with a ``reason`` label.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from capture import facade
from capture.recorder import Recorder

Timestamp = datetime | float | int


def _recorder() -> Recorder:
    # The installed recorder, else the stand-in that counts (and reports) dropped writes.
    recorder = facade.get_recorder()
    return facade.pending_recorder() if recorder is None else recorder


def _epoch(timestamp: Timestamp) -> float:
    if isinstance(timestamp, datetime):
        if timestamp.tzinfo is None or timestamp.utcoffset() is None:
            raise ValueError("timestamp datetime must be timezone-aware")
        return timestamp.timestamp()
    if isinstance(timestamp, bool) or not isinstance(timestamp, int | float):
        raise TypeError(
            f"timestamp must be an aware datetime or epoch seconds, got {type(timestamp).__name__}"
        )
    return float(timestamp)


def gauge_set(
    name: str, labels: Mapping[str, str] | None, value: float, timestamp: Timestamp
) -> None:
    """Set gauge ``name`` to ``value`` as of ``timestamp``."""
    _recorder().record_historical("gauge", "set", name, labels, value, _epoch(timestamp))


def gauge_increment(
    name: str, labels: Mapping[str, str] | None, value: float, timestamp: Timestamp
) -> None:
    """Add ``value`` to gauge ``name`` as of ``timestamp``."""
    _recorder().record_historical("gauge", "increment", name, labels, value, _epoch(timestamp))


def gauge_decrement(
    name: str, labels: Mapping[str, str] | None, value: float, timestamp: Timestamp
) -> None:
    """Subtract ``value`` from gauge ``name`` as of ``timestamp``."""
    _recorder().record_historical("gauge", "decrement", name, labels, value, _epoch(timestamp))


def counter_increment(
    name: str, labels: Mapping[str, str] | None, value: int, timestamp: Timestamp
) -> None:
    """Add ``value`` (a non-negative integer) to counter ``name`` as of ``timestamp``."""
    _recorder().record_historical("counter", "increment", name, labels, value, _epoch(timestamp))


def counter_absolute(
    name: str, labels: Mapping[str, str] | None, value: int, timestamp: Timestamp
) -> None:
    """Set counter ``name``'s running total to ``value`` as of ``timestamp``."""
    _recorder().record_historical("counter", "absolute", name, labels, value, _epoch(timestamp))
