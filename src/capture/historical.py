"""Delayed metrics: writes that carry their own timestamp.

Each function applies one write to the series ``name`` with ``labels`` as of ``timestamp``
(an aware :class:`datetime.datetime` or Unix epoch seconds). The write changes the tick that
contains the timestamp and the later ticks it reaches under the accumulator's rules (see
:mod:`capture.accumulator`), never overriding newer data. A write older than the window or in
the future is dropped and counted in ``capture.dropped`` with a ``reason`` label.

:func:`write_batch` applies many writes at once, with the same rules: for a caller with
thousands of points at a time (an intake), it takes the recorder's lock once and changes each
series' ticks in one pass.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import NamedTuple

from capture import facade
from capture.delayed import BatchOutcome, DelayedPoint, HistoricalOp
from capture.keys import Kind
from capture.recorder import Recorder

__all__ = [
    "BatchOutcome",
    "DelayedPoint",
    "HistoricalPoint",
    "Timestamp",
    "counter_absolute",
    "counter_increment",
    "gauge_decrement",
    "gauge_increment",
    "gauge_set",
    "write_batch",
]

Timestamp = datetime | float | int


class HistoricalPoint(NamedTuple):
    """One write of a :func:`write_batch` (a plain tuple in this order does as well).

    ``kind`` ``"gauge"`` takes ``op`` ``set``, ``increment`` or ``decrement`` and a real
    ``value``; ``"counter"`` takes ``increment`` or ``absolute`` and a non-negative integer.
    """

    kind: Kind
    op: HistoricalOp
    name: str
    labels: Mapping[str, str] | None
    value: float
    timestamp: Timestamp


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


def write_batch(
    points: Iterable[
        HistoricalPoint | tuple[Kind, HistoricalOp, str, Mapping[str, str] | None, float, Timestamp]
    ],
) -> BatchOutcome:
    """Apply every write of ``points`` ((kind, op, name, labels, value, timestamp) each, see
    :class:`HistoricalPoint`), in order, as the one-write functions above would.

    Each write lands in the tick holding its timestamp; one older than the window or in the
    future is dropped and counted in ``capture.dropped{reason}`` as ever, and in the outcome.
    An invalid write (bad kind, operation, value, timestamp, name or labels, a name of the
    other kind) does not stop the others: it is skipped and named, with its index and why, in
    the outcome's ``rejected``. The cost is about a series lookup and a tick's change per
    point, under one lock for the whole batch: pass one labels mapping for all the points of a
    series, so that each series is looked up once.
    """
    recorder = _recorder()
    if isinstance(points, list) and all(p[5].__class__ is float for p in points):
        as_given: list[DelayedPoint] = points
        batch = getattr(recorder, "record_historical_batch", None)
        if batch is not None:  # (the common case: epoch seconds, no copy)
            return batch(as_given)  # type: ignore[no-any-return]
    converted: list[DelayedPoint] = []
    rejected: list[tuple[int, str]] = []
    indexes: list[int] = []
    for index, (kind, op, name, labels, value, timestamp) in enumerate(points):
        seconds = timestamp
        if seconds.__class__ is not float:
            try:
                seconds = _epoch(timestamp)
            except (TypeError, ValueError) as exc:
                rejected.append((index, str(exc)))
                continue
        converted.append((kind, op, name, labels, value, seconds))
        indexes.append(index)
    batch = getattr(recorder, "record_historical_batch", None)
    if batch is not None:
        outcome: BatchOutcome = batch(converted)
        if not rejected:  # the recorder's indexes are the caller's
            return outcome
        rejected.extend((indexes[i], why) for i, why in outcome.rejected)
        rejected.sort()
        return BatchOutcome(outcome.applied, outcome.dropped, tuple(rejected))
    # A recorder without a batch method: one write at a time.
    applied = 0
    for index, point in zip(indexes, converted, strict=True):
        try:
            recorder.record_historical(*point)
        except (TypeError, ValueError) as exc:
            rejected.append((index, str(exc)))
            continue
        applied += 1
    rejected.sort()
    return BatchOutcome(applied, {}, tuple(rejected))
