"""Recorders: the handle and recorder protocols, and :class:`CaptureRecorder`.

:class:`Gauge` and :class:`Counter` are the one vocabulary of handles: what :func:`capture.gauge`
and :func:`capture.counter` return whatever the recorder, and what user code types against.
:class:`Recorder` is what the facade routes calls to. :class:`CaptureRecorder` is capture's own
recorder, put together from the registry of series (:mod:`capture.registry`), the live series
(:mod:`capture.live`), the tick window (:mod:`capture.window`), delta-encoded snapshots
(:mod:`capture.delta`), delayed writes (:mod:`capture.delayed`) and the journal events
(:mod:`capture.events`).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from capture.accumulator import HistoricalWrite, TickFrame
from capture.delayed import (
    DROPPED_DESCRIPTION,
    DROPPED_METRIC,
    BatchOutcome,
    DelayedPoint,
    DelayedWrites,
    HistoricalOp,
    delayed_operand,
)
from capture.delta import take_values
from capture.descriptions import Description, DescriptionTable, make_description
from capture.events import Fix, JournalEvent, JournalEvents
from capture.handles import CounterSeries, GaugeSeries, Series, SeriesInfo
from capture.keys import RESERVED_COLUMNS, Kind, LabelTuple, canonical_labels
from capture.live import LiveChanges, LiveSeries
from capture.registry import SeriesRegistry
from capture.window import MISSED_TICKS_DESCRIPTION, MISSED_TICKS_METRIC, TickWindow

log = logging.getLogger("capture")


@runtime_checkable
class Gauge(Protocol):
    """Handle of one gauge series (a float that goes up and down); :func:`capture.gauge`.

    ``set`` replaces the value, ``increment``/``decrement`` move it (a gauge never written
    starts from 0); the value holds from tick to tick until written again. A non-numeric value
    raises TypeError at the call site. ``remove`` ends the series at once (no row from the
    tick in progress on); the handle is dead afterwards.
    """

    def set(self, value: float) -> None: ...
    def increment(self, value: float = 1.0) -> None: ...
    def decrement(self, value: float = 1.0) -> None: ...
    def remove(self) -> None: ...


@runtime_checkable
class Counter(Protocol):
    """Handle of one counter series (a cumulative, non-negative integer); :func:`capture.counter`.

    ``increment(n)`` adds ``n >= 0``; ``absolute(n)`` sets the running total (to mirror a kernel
    counter). A negative or non-integer value raises ValueError/TypeError at the call site.
    ``remove`` ends the series at once; the handle is dead afterwards.
    """

    def increment(self, n: int = 1) -> None: ...
    def absolute(self, n: int) -> None: ...
    def remove(self) -> None: ...


@runtime_checkable
class Recorder(Protocol):
    """A metrics back end that the facade routes calls to.

    ``gauge``/``counter`` return a handle for the series (the same or an equivalent handle for
    the same name and labels); ``record_historical`` applies a write with a past timestamp
    (epoch seconds).

    A recorder may also have ``describe(name, description, unit=None)`` (as
    :class:`capture.CaptureRecorder` has): :func:`capture.describe` then passes it every
    description, those given before it was installed included; and
    ``record_historical_batch(points) -> BatchOutcome`` (a sequence of the arguments of
    ``record_historical`` as tuples), which :func:`capture.historical.write_batch` calls
    instead of one ``record_historical`` per point. Both are optional, so that a recorder
    without them still satisfies the protocol.
    """

    def gauge(self, name: str, labels: Mapping[str, str] | None = None) -> Gauge: ...

    def counter(self, name: str, labels: Mapping[str, str] | None = None) -> Counter: ...

    def record_historical(
        self,
        kind: Kind,
        op: HistoricalOp,
        name: str,
        labels: Mapping[str, str] | None,
        value: float,
        timestamp: float,
    ) -> None: ...


@dataclass(frozen=True, slots=True)
class HandleTables:
    """A recorder's known handles by ``tuple(labels.items())``, then metric name, one table per
    kind: the facade finds a known series in them with one tuple and two dict lookups, no call.

    The recorder keeps them up to date (a series that ends leaves them at once); readers hold
    no lock and must not change them.
    """

    gauges: Mapping[LabelTuple, Mapping[str, Gauge]]
    counters: Mapping[LabelTuple, Mapping[str, Counter]]


@runtime_checkable
class IndexedRecorder(Recorder, Protocol):
    """A :class:`Recorder` that lets the facade find its known handles itself
    (:class:`CaptureRecorder` is one). The handle a table gives must be the one ``gauge`` or
    ``counter`` would return for the same name and labels."""

    def handle_tables(self) -> HandleTables: ...


class CaptureRecorder:
    """A registry of live series with a windowed accumulator of taken ticks.

    ``gauge``/``counter`` register a series on first use (validating its name and labels once)
    and return its kept handle. :meth:`take_tick` snapshots every live series into the window;
    ticks that leave the window (``window_ticks`` later) are handed to the writer by
    :meth:`pop_ready`. Delayed writes (:meth:`record_historical`) change the ticks still in the
    window. Thread-safe: handle writes are lock-free or striped-lock, registration and ticks
    take the recorder's lock.
    """

    def __init__(
        self,
        *,
        tick_seconds: float = 1.0,
        window_ticks: int = 60,
        global_labels: Mapping[str, str] | None = None,
        expire_after_ticks: int | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not tick_seconds > 0:
            raise ValueError(f"tick_seconds must be positive, got {tick_seconds!r}")
        if window_ticks < 1:
            raise ValueError(f"window_ticks must be at least 1, got {window_ticks!r}")
        if expire_after_ticks is not None and expire_after_ticks < 1:
            raise ValueError(f"expire_after_ticks must be at least 1, got {expire_after_ticks!r}")
        self.tick_seconds = float(tick_seconds)
        self.window_ticks = int(window_ticks)
        self.expire_after_ticks = expire_after_ticks
        self.global_labels: LabelTuple = canonical_labels(global_labels)
        self._clock = clock
        self._lock = threading.RLock()
        self._events = JournalEvents()
        reserved = RESERVED_COLUMNS | {k for k, _ in self.global_labels}
        self._registry = SeriesRegistry(self, reserved, self._lock, self._events)
        # The lookup tables of the handle indexes, read by gauge()/counter() without a lock.
        self._gauge_table = self._registry.gauges.table
        self._counter_table = self._registry.counters.table
        self._live = LiveSeries()
        self._window = TickWindow(self.tick_seconds, self.window_ticks)
        self._delayed = DelayedWrites()
        self._dropped: dict[str, CounterSeries] = {}
        #: What the metrics mean (:meth:`describe`), for the live view and the files' metadata.
        self.descriptions = DescriptionTable()
        for own in (DROPPED_DESCRIPTION, MISSED_TICKS_DESCRIPTION):
            self.descriptions.add(own)

    # ------------------------------------------------------------------ series
    def gauge(self, name: str, labels: Mapping[str, str] | None = None) -> GaugeSeries:
        """Return the handle of gauge ``name`` with ``labels``, registering it on first use.

        Raises TypeError/ValueError for a bad name or labels (checked once per new series),
        ValueError if ``name`` is a counter.
        """
        try:
            return self._gauge_table[tuple(labels.items()) if labels else ()][name]
        except KeyError:  # not filed under this name and label order yet
            pass
        except (TypeError, AttributeError):  # labels not a mapping of str: register says so
            pass
        return self._registry.gauge(name, labels)

    def counter(self, name: str, labels: Mapping[str, str] | None = None) -> CounterSeries:
        """Return the handle of counter ``name`` with ``labels``; see :meth:`gauge`."""
        try:
            return self._counter_table[tuple(labels.items()) if labels else ()][name]
        except KeyError:  # not filed under this name and label order yet
            pass
        except (TypeError, AttributeError):  # labels not a mapping of str: register says so
            pass
        return self._registry.counter(name, labels)

    def handle_tables(self) -> HandleTables:
        """The tables :meth:`gauge` and :meth:`counter` look known series up in (the facade's
        fast path, see :class:`IndexedRecorder`)."""
        return HandleTables(self._gauge_table, self._counter_table)

    def describe(self, name: str, description: str, unit: str | None = None) -> None:
        """Keep what metric ``name`` (or ``*`` pattern) means; see :func:`capture.describe`.

        Describing again replaces it. Raises TypeError/ValueError for a bad argument.
        """
        self.descriptions.add(make_description(name, description, unit))

    def description(self, name: str) -> Description | None:
        """The description of metric ``name`` (its own or its pattern's), None if undescribed."""
        return self.descriptions.get(name)

    def kind_of(self, name: str) -> Kind | None:
        """Whether ``name`` was registered as a gauge or a counter (None: never registered)."""
        with self._lock:
            return self._registry.kind_of(name)

    @property
    def lock(self) -> threading.RLock:
        """The registry's re-entrant lock. While it is held no tick is taken and no series is
        registered or removed: hold it to see one consistent state across several calls (the
        manager switches files under it)."""
        return self._lock

    def remove_series(self, handle: Series) -> None:
        """End ``handle``'s series (what ``handle.remove()`` calls): no row from the tick in
        progress on; a no-op for a handle already removed or not of this registry."""
        with self._lock:
            if isinstance(handle, GaugeSeries | CounterSeries) and self._registry.is_current(
                handle
            ):
                self._retire(handle)

    def _retire(self, handle: SeriesInfo) -> None:
        last = self._window.last_taken
        self._registry.retire(handle, last if last is not None else -1)
        self._live.went(handle)

    def series_count(self) -> int:
        """Number of registered series that are not removed."""
        with self._lock:
            return sum(1 for handle in self._registry.by_id.values() if not handle.removed)

    def live_handles(self) -> list[SeriesInfo]:
        """Handles of every series that is not removed and has a value (for a live scrape)."""
        with self._lock:
            return [
                h for h in self._registry.by_id.values() if not h.removed and h.current is not None
            ]

    @property
    def live_generation(self) -> int:
        """A number that changes whenever the series a tick takes change (one came or went):
        while it holds, :meth:`live_series` returns the same series. Read without the lock."""
        return self._live.generation

    def live_series(self) -> tuple[int, list[GaugeSeries], list[CounterSeries]]:
        """(:attr:`live_generation`, gauges, counters): the series the last taken tick holds,
        in the recorder's stable order (copies; empty before the first tick). Their ``current``
        is their live value, never None. From the first call on the recorder also keeps what
        changes, for :meth:`live_changes`."""
        with self._lock:
            return self._live.watch()

    def live_changes(self, since: int) -> LiveChanges | None:
        """What changed in :meth:`live_series` after generation ``since`` (one it returned):
        (the generation now, series that came, series that went). A series may be in both
        (apply the ones that went first, and skip those of the ones that came that are
        ``removed`` by now). None when that is no longer known (more than
        :data:`capture.live.LIVE_LOG_GENERATIONS` generations ago): call :meth:`live_series`
        again."""
        with self._lock:
            return self._live.changes(since)

    def seconds_since_last_tick(self) -> float | None:
        """Seconds from the start of the last taken tick to now (the recorder's clock), None
        before the first tick: how stale the live values may be."""
        last = self._window.last_taken
        return None if last is None else self._clock() - last * self.tick_seconds

    # ------------------------------------------------------------------ ticks
    @property
    def first_tick(self) -> int | None:
        """The run's first tick (``fetch_index`` 0); None until begun or a tick is taken."""
        return self._window.first_tick

    @property
    def last_taken(self) -> int | None:
        """The last tick taken; None before the first."""
        return self._window.last_taken

    def tick_of(self, timestamp: float) -> int:
        """The tick that contains Unix time ``timestamp`` (seconds)."""
        return self._window.tick_of(timestamp)

    def current_tick(self) -> int:
        """The tick in progress: the one after the last taken, or the one containing now."""
        return self._window.current_tick(self._clock())

    def begin(self, tick: int | None = None) -> int:
        """Mark the run's first tick (default: the one containing now); ``fetch_index`` 0.

        Without it, the first tick taken is the run's first tick.
        """
        with self._lock:
            window = self._window
            if window.last_taken is not None:
                raise RuntimeError("the run has already begun taking ticks")
            window.first_tick = window.tick_of(self._clock()) if tick is None else tick
            return window.first_tick

    def take_tick(self, tick: int | None = None) -> int:
        """Take every tick up to ``tick`` (default: the one containing now) not yet taken.

        Returns how many ticks were taken. Ticks between the last taken and ``tick`` are taken
        too (catch-up, values repeated), at most ``window_ticks`` of them; older ones are skipped
        and counted in ``capture.missed_ticks``.
        """
        with self._lock:
            if tick is None:
                tick = self._window.tick_of(self._clock())
            due, skipped = self._window.due(tick)
            if skipped:
                self.counter(MISSED_TICKS_METRIC).increment(skipped)
                log.warning("capture: tick loop fell behind, skipped %d ticks", skipped)
            for t in due:
                self._take(t)
            return len(due)

    def _take(self, tick: int) -> None:
        registry, live = self._registry, self._live
        registry.fresh = live.refresh(registry.fresh, registry.by_id)
        previous = self._window.newest()
        expire = self.expire_after_ticks
        moved = self._delayed.moved
        expired: list[SeriesInfo] = []
        frame = TickFrame(
            tick,
            take_values(
                live.gauges,
                live.gauge_ids,
                None if previous is None else previous.g,
                "d",
                tick,
                expire,
                moved,
                expired,
            ),
            take_values(
                live.counters,
                live.counter_ids,
                None if previous is None else previous.c,
                "q",
                tick,
                expire,
                moved,
                expired,
            ),
        )
        moved.clear()
        for handle in expired:
            if registry.is_current(handle):
                self._retire(handle)
        self._window.push(frame)
        self._events.frame(frame)

    def drain(self) -> None:
        """Move every tick of the window to the ready list (on close)."""
        with self._lock:
            self._window.drain()

    def pop_ready(self) -> tuple[list[TickFrame], Mapping[int, SeriesInfo]]:
        """Take the ticks that left the window, with the series they mention.

        Forgets series that were removed and no longer appear in any tick still held. The
        mapping of series is the recorder's own when none was forgotten (a copy otherwise):
        look series up in it before the next call, do not iterate it while others record.
        """
        with self._lock:
            # The writer reads the series of ``ready`` after this returns (under the manager's
            # I/O lock, so no other pop_ready forgets any meanwhile; new series may be added,
            # which a lookup by id tolerates).
            ready = self._window.pop_ready()
            if not ready:
                return ready, self._registry.by_id
            horizon = ready[-1].tick
            self._delayed.forget_through(horizon)
            return ready, self._registry.forget_through(horizon)

    @property
    def journaling(self) -> bool:
        """Whether journal events are kept for :meth:`pop_events` (set by the manager)."""
        return self._events.enabled

    @journaling.setter
    def journaling(self, enabled: bool) -> None:
        self._events.enabled = enabled

    def pop_events(self) -> list[JournalEvent]:
        """Take the journal events (new series, taken frames, fixes) since the last call."""
        with self._lock:
            return self._events.pop()

    def ready_rows(self) -> tuple[int, bool]:
        """About how many rows the ticks that left the window hold (their series, both kinds),
        and whether their series changed from one tick to another (series came or went)."""
        with self._lock:
            return self._window.ready_rows()

    def window(self) -> list[TickFrame]:
        """The taken ticks still in the window (oldest first); for tests and inspection."""
        with self._lock:
            return list(self._window.frames)

    def ready(self) -> list[TickFrame]:
        """The ticks that left the window, not yet popped; for tests and inspection."""
        with self._lock:
            return self._window.ready()

    def registered(self) -> Mapping[int, SeriesInfo]:
        """Every series not yet forgotten, by id (the recorder's own mapping); for tests."""
        return self._registry.by_id

    # ------------------------------------------------------------------ delayed writes
    def _drop(self, reason: str, count: int = 1) -> None:
        handle = self._dropped.get(reason)
        if handle is None:
            handle = self._dropped[reason] = self.counter(DROPPED_METRIC, {"reason": reason})
        handle.increment(count)

    def record_historical(
        self,
        kind: Kind,
        op: HistoricalOp,
        name: str,
        labels: Mapping[str, str] | None,
        value: float,
        timestamp: float,
    ) -> None:
        """Apply a write with a past ``timestamp`` (Unix seconds) to the ticks it changes.

        A write older than the window, before the run's first tick or in a future tick is
        counted in ``capture.dropped`` with its reason and otherwise ignored. Raises
        TypeError/ValueError for a bad operation, value or timestamp (and as :meth:`gauge`
        does for bad labels).
        """
        operand = delayed_operand(kind, op, name, value)
        if not isinstance(timestamp, int | float) or isinstance(timestamp, bool):
            raise TypeError(f"timestamp must be epoch seconds, got {type(timestamp).__name__}")
        handle: SeriesInfo = (
            self.gauge(name, labels) if kind == "gauge" else self.counter(name, labels)
        )
        self._apply([(handle, timestamp, op, operand)])

    def record_historical_batch(self, points: Sequence[DelayedPoint]) -> BatchOutcome:
        """Apply many delayed writes at once (what :func:`capture.historical.write_batch`
        calls): each as :meth:`record_historical` would, in order, under one lock, each series'
        writes to the window in one pass. An invalid write is skipped and named in the
        outcome's ``rejected`` (the others are applied); too old and future ones are counted
        in ``capture.dropped`` and in the outcome."""
        resolved: list[tuple[SeriesInfo, float, HistoricalOp, float | int]] = []
        rejected: list[tuple[int, str]] = []
        # The handle of each (kind, name, labels object): callers pass one labels mapping for
        # every point of a series, so each series is looked up once (``points`` keeps the
        # mappings alive, so no id is reused meanwhile).
        handles: dict[tuple[str, str, int], SeriesInfo] = {}
        for index, (kind, op, name, labels, value, timestamp) in enumerate(points):
            try:
                if value.__class__ is float and kind == "gauge" and op == "set":
                    operand: float | int = value  # (the common case, checked at once)
                else:
                    operand = delayed_operand(kind, op, name, value)
                if timestamp.__class__ is not float and (
                    not isinstance(timestamp, int | float) or isinstance(timestamp, bool)
                ):
                    raise TypeError(
                        f"timestamp must be epoch seconds, got {type(timestamp).__name__}"
                    )
                key = (kind, name, id(labels))
                handle = handles.get(key)
                if handle is None:
                    handle = handles[key] = (
                        self.gauge(name, labels) if kind == "gauge" else self.counter(name, labels)
                    )
            except (TypeError, ValueError) as exc:
                rejected.append((index, str(exc)))
                continue
            resolved.append((handle, timestamp, op, operand))
        applied, dropped = self._apply(resolved)
        return BatchOutcome(applied, dropped, tuple(rejected))

    def _apply(
        self, writes: Sequence[tuple[SeriesInfo, float, HistoricalOp, float | int]]
    ) -> tuple[int, dict[str, int]]:
        """Apply validated delayed writes (handle, timestamp, operation, operand), in order;
        returns how many reached a tick and how many were dropped, by reason (counted)."""
        future = too_old = 0
        with self._lock:
            window = self._window
            tick_seconds = window.tick_seconds
            current = self.current_tick()
            newest = max(window.tick_of(self._clock()), current)
            oldest = current - self.window_ticks + 1
            if window.first_tick is not None:
                oldest = max(oldest, window.first_tick)
            delayed = self._delayed
            frames = list(window.frames)
            fixes: list[Fix] = []
            by_series: dict[int, tuple[SeriesInfo, list[tuple[int, HistoricalWrite]]]] = {}
            for handle, timestamp, op, operand in writes:
                tick = math.floor(timestamp / tick_seconds)
                if tick > newest:
                    future += 1
                    continue
                tick = min(tick, current)
                if tick < oldest:
                    too_old += 1
                    continue
                entry = by_series.get(handle.sid)
                if entry is None or entry[0] is not handle:
                    if entry is not None:  # (the series was ended and made again meanwhile)
                        fixes += delayed.apply(entry[0], entry[1], frames, current)
                    entry = by_series[handle.sid] = (handle, [])
                entry[1].append((tick, delayed.write(timestamp, op, operand)))
            for handle, series_writes in by_series.values():
                fixes += delayed.apply(handle, series_writes, frames, current)
            self._events.fixes(fixes)
            dropped: dict[str, int] = {}
            if future:
                self._drop("future", future)
                dropped["future"] = future
            if too_old:
                self._drop("too_old", too_old)
                dropped["too_old"] = too_old
        return len(writes) - future - too_old, dropped
