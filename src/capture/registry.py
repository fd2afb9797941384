"""CaptureRecorder: the registry of live series and the window of taken ticks."""

from __future__ import annotations

import itertools
import logging
import math
import threading
import time
from array import array
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from itertools import compress
from typing import Any

import numpy as np

from capture.accumulator import (
    FrameValues,
    HistoricalWrite,
    Number,
    SeriesIds,
    TickFrame,
    raw_history,
    refold,
)
from capture.descriptions import Description, DescriptionTable, make_description
from capture.handles import WRITE_NONE, CounterSeries, GaugeSeries, Series, as_count
from capture.keys import RESERVED_COLUMNS, LabelTuple, canonical_labels, check_name
from capture.recorder import HistoricalOp, Kind

log = logging.getLogger("capture")

SeriesKey = tuple[str, str, LabelTuple]

#: Name of the counter that counts rejected delayed writes, by ``reason``.
DROPPED_METRIC = "capture.dropped"
#: Name of the counter of ticks the tick loop could not take in time and skipped.
MISSED_TICKS_METRIC = "capture.missed_ticks"
#: What the recorder's own counters mean (every CaptureRecorder is given them).
DROPPED_DESCRIPTION = Description(
    DROPPED_METRIC,
    "Delayed (timestamped) writes rejected, by reason: future (a tick not yet begun) or "
    "too_old (older than the window or the run's first tick)",
    "count",
)
MISSED_TICKS_DESCRIPTION = Description(
    MISSED_TICKS_METRIC,
    "Ticks the tick loop could not take in time (more than a window behind) and skipped",
    "count",
)


#: Generations of the live series whose changes are kept for a live view (live_changes).
LIVE_LOG_GENERATIONS = 32

#: What the writer needs to know about a series, by its id: its handle (``kind``, ``name``,
#: ``labels``, ``removed``). One object per series, not two.
SeriesInfo = GaugeSeries | CounterSeries


@dataclass(slots=True)
class _Retired:
    sid: int
    last_tick: int


def _nonzero_positions(flags: bytes) -> array[int]:
    """Ascending positions of the non-zero bytes of ``flags``."""
    positions = array("Q")
    if flags.count(0) != len(flags):
        found = np.flatnonzero(np.frombuffer(flags, np.uint8)).astype(np.uint64, copy=False)
        positions.frombytes(found.tobytes())
    return positions


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
        self._reserved = RESERVED_COLUMNS | {k for k, _ in self.global_labels}
        self._clock = clock
        self._lock = threading.RLock()
        # Handles by label set, then name: ``table[tuple(labels.items())][name]``. The series of
        # one entity share a label set, so no (name, labels) key is made per series.
        self._gauges: dict[tuple[tuple[str, str], ...], dict[str, GaugeSeries]] = {}
        self._counters: dict[tuple[tuple[str, str], ...], dict[str, CounterSeries]] = {}
        # Other label orders a series was looked up by (mappings not in canonical order), by id.
        self._aliases: dict[int, list[tuple[tuple[str, str], ...]]] = {}
        self._kind_of_name: dict[str, Kind] = {}
        self._label_sets: dict[LabelTuple, LabelTuple] = {}
        self._label_refs: dict[LabelTuple, int] = {}
        # Every series not yet forgotten, by id: its handle (removed ones until their last tick
        # is handed to the writer).
        self._infos: dict[int, SeriesInfo] = {}
        self._retired: dict[SeriesKey, _Retired] = {}
        self._sids = itertools.count()
        self._fresh: list[SeriesInfo] = []
        self._g_live: list[GaugeSeries] = []
        self._c_live: list[CounterSeries] = []
        self._live_dirty = False
        # Bumped each time the live lists above change (see live_series), and what changed:
        # kept only once a live view asked (live_changes), for the last LIVE_LOG generations.
        self._live_generation = 0
        self._live_watched = False
        self._came: list[SeriesInfo] = []
        self._gone: list[Series] = []
        self._live_log: deque[tuple[int, list[SeriesInfo], list[Series]]] = deque(
            maxlen=LIVE_LOG_GENERATIONS
        )
        self._g_series = SeriesIds(array("q"))
        self._c_series = SeriesIds(array("q"))
        # Ids of live series whose value a delayed write changed since the last tick (no write
        # flag says so): the next delta frame must carry them.
        self._moved: set[int] = set()
        self._frames: deque[TickFrame] = deque()
        self._ready: list[TickFrame] = []
        self._history: dict[int, dict[int, list[HistoricalWrite]]] = {}
        self._seq = itertools.count()
        self.first_tick: int | None = None
        self.last_taken: int | None = None
        self._events: list[tuple[str, object]] = []
        #: Whether journal events are kept for :meth:`pop_events` (set by the manager).
        self.journaling = False
        self._dropped: dict[str, CounterSeries] = {}
        #: What the metrics mean (:meth:`describe`), for the live view and the files' metadata.
        self.descriptions = DescriptionTable()
        for own in (DROPPED_DESCRIPTION, MISSED_TICKS_DESCRIPTION):
            self.descriptions.add(own)

    # ------------------------------------------------------------------ registry
    def gauge(self, name: str, labels: Mapping[str, str] | None = None) -> GaugeSeries:
        """Return the handle of gauge ``name`` with ``labels``, registering it on first use."""
        try:
            return self._gauges[tuple(labels.items()) if labels else ()][name]
        except (KeyError, TypeError, AttributeError):
            handle = self._register("gauge", name, labels)
            assert isinstance(handle, GaugeSeries)
            return handle

    def counter(self, name: str, labels: Mapping[str, str] | None = None) -> CounterSeries:
        """Return the handle of counter ``name`` with ``labels``, registering it on first use."""
        try:
            return self._counters[tuple(labels.items()) if labels else ()][name]
        except (KeyError, TypeError, AttributeError):
            handle = self._register("counter", name, labels)
            assert isinstance(handle, CounterSeries)
            return handle

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
            return self._kind_of_name.get(name)

    def handle_tables(
        self,
    ) -> tuple[
        dict[tuple[tuple[str, str], ...], dict[str, GaugeSeries]],
        dict[tuple[tuple[str, str], ...], dict[str, CounterSeries]],
    ]:
        """The lookup tables behind :meth:`gauge`/:meth:`counter` (for the facade's fast path):
        handles by ``tuple(labels.items())``, then name."""
        return self._gauges, self._counters

    @property
    def lock(self) -> threading.RLock:
        """The registry's re-entrant lock. While it is held no tick is taken and no series is
        registered or removed: hold it to see one consistent state across several calls (the
        manager switches files under it)."""
        return self._lock

    def _register(self, kind: Kind, name: str, labels: object) -> SeriesInfo:
        check_name(name)
        canonical = canonical_labels(labels, self._reserved)
        # Series that share labels (every series of one container) share one tuple; it is
        # counted per series and forgotten when the last one's last tick is written.
        canonical = self._label_sets.setdefault(canonical, canonical)
        assert labels is None or isinstance(labels, Mapping)
        alias = tuple(labels.items()) if labels else ()
        table: dict[tuple[tuple[str, str], ...], dict[str, Any]] = (
            self._gauges if kind == "gauge" else self._counters
        )
        with self._lock:
            known = self._kind_of_name.setdefault(name, kind)
            if known != kind:
                raise ValueError(f"metric {name!r} is a {known}, not a {kind}")
            handle: SeriesInfo | None = table.get(canonical, {}).get(name)
            if handle is None:
                handle = self._new_series(kind, name, canonical)
            if alias != canonical:
                aliases = self._aliases.setdefault(handle.sid, [])
                if alias not in aliases:
                    aliases.append(alias)
                    table.setdefault(alias, {})[name] = handle
            return handle

    def _new_series(self, kind: Kind, name: str, canonical: LabelTuple) -> SeriesInfo:
        key = (kind, name, canonical)
        retired = self._retired.pop(key, None)
        sid = retired.sid if retired is not None else next(self._sids)
        handle: SeriesInfo
        if kind == "gauge":
            handle = GaugeSeries(name, canonical, sid, self)
            self._gauges.setdefault(canonical, {})[name] = handle
        else:
            handle = CounterSeries(name, canonical, sid, self)
            self._counters.setdefault(canonical, {})[name] = handle
        if retired is None or retired.sid not in self._infos:
            self._label_refs[canonical] = self._label_refs.get(canonical, 0) + 1
        self._infos[sid] = handle
        self._fresh.append(handle)
        if self.journaling:
            self._events.append(("series", handle))
        return handle

    def remove_series(self, handle: Series) -> None:
        """End ``handle``'s series (what ``handle.remove()`` calls): no row from the tick in
        progress on; a no-op for a handle already removed or not of this registry."""
        with self._lock:
            if self._infos.get(handle.sid) is not handle or handle.removed:
                return
            self._retire(handle)

    def _retire(self, handle: Series) -> None:
        handle.owner = None  # (removed)
        if self._live_watched:
            self._gone.append(handle)
        table: dict[Any, dict[str, Any]] = (
            self._gauges if handle.kind == "gauge" else self._counters
        )
        for labels in (handle.labels, *self._aliases.pop(handle.sid, ())):
            by_name = table.get(labels)
            if by_name is not None and by_name.get(handle.name) is handle:
                del by_name[handle.name]
                if not by_name:
                    del table[labels]
        self._live_dirty = True
        last = self.last_taken if self.last_taken is not None else -1
        self._retired[(handle.kind, handle.name, handle.labels)] = _Retired(handle.sid, last)

    def _release_labels(self, labels: LabelTuple) -> None:
        left = self._label_refs.get(labels, 0) - 1
        if left > 0:
            self._label_refs[labels] = left
        else:
            self._label_refs.pop(labels, None)
            self._label_sets.pop(labels, None)

    def series_count(self) -> int:
        """Number of registered series that are not removed."""
        with self._lock:
            return sum(1 for handle in self._infos.values() if not handle.removed)

    def live_handles(self) -> list[SeriesInfo]:
        """Handles of every series that is not removed and has a value (for a live scrape)."""
        with self._lock:
            return [h for h in self._infos.values() if not h.removed and h.current is not None]

    @property
    def live_generation(self) -> int:
        """A number that changes whenever the series a tick takes change (one came or went):
        while it holds, :meth:`live_series` returns the same series. Read without the lock."""
        return self._live_generation

    def live_series(self) -> tuple[int, list[GaugeSeries], list[CounterSeries]]:
        """(:attr:`live_generation`, gauges, counters): the series the last taken tick holds,
        in the recorder's stable order (copies; empty before the first tick). Their ``current``
        is their live value, never None. From the first call on the recorder also keeps what
        changes, for :meth:`live_changes`."""
        with self._lock:
            self._live_watched = True
            return self._live_generation, list(self._g_live), list(self._c_live)

    def live_changes(self, since: int) -> tuple[int, list[SeriesInfo], list[Series]] | None:
        """What changed in :meth:`live_series` after generation ``since`` (one it returned):
        (the generation now, series that came, series that went). A series may be in both
        (apply the ones that went first, and skip those of the ones that came that are
        ``removed`` by now). None when that is no longer known (more than
        :data:`LIVE_LOG_GENERATIONS` generations ago): call :meth:`live_series` again."""
        with self._lock:
            generation = self._live_generation
            if since == generation:
                return generation, [], []
            log = [entry for entry in self._live_log if entry[0] > since]
            if not self._live_watched or not log or log[0][0] != since + 1:
                return None
            came = [h for _, added, _ in log for h in added]
            gone = [h for _, _, removed in log for h in removed]
            return generation, came, gone

    def seconds_since_last_tick(self) -> float | None:
        """Seconds from the start of the last taken tick to now (the recorder's clock), None
        before the first tick: how stale the live values may be."""
        last = self.last_taken
        return None if last is None else self._clock() - last * self.tick_seconds

    # ------------------------------------------------------------------ ticks
    def tick_of(self, timestamp: float) -> int:
        """The tick that contains Unix time ``timestamp`` (seconds)."""
        return math.floor(timestamp / self.tick_seconds)

    def current_tick(self) -> int:
        """The tick in progress: the one after the last taken, or the one containing now."""
        if self.last_taken is not None:
            return self.last_taken + 1
        return self.tick_of(self._clock())

    def begin(self, tick: int | None = None) -> int:
        """Mark the run's first tick (default: the one containing now); ``fetch_index`` 0.

        Without it, the first tick taken is the run's first tick.
        """
        with self._lock:
            if self.last_taken is not None:
                raise RuntimeError("the run has already begun taking ticks")
            self.first_tick = self.tick_of(self._clock()) if tick is None else tick
            return self.first_tick

    def take_tick(self, tick: int | None = None) -> int:
        """Take every tick up to ``tick`` (default: the one containing now) not yet taken.

        Returns how many ticks were taken. Ticks between the last taken and ``tick`` are taken
        too (catch-up, values repeated), at most ``window_ticks`` of them; older ones are skipped
        and counted in ``capture.missed_ticks``.
        """
        with self._lock:
            if tick is None:
                tick = self.tick_of(self._clock())
            if self.last_taken is None:
                if self.first_tick is None:
                    self.first_tick = tick
                start = self.first_tick
            else:
                start = self.last_taken + 1
            if tick < start:
                return 0
            if tick - start >= self.window_ticks:
                skipped = tick - self.window_ticks + 1 - start
                self.counter(MISSED_TICKS_METRIC).increment(skipped)
                log.warning("capture: tick loop fell behind, skipped %d ticks", skipped)
                start = tick - self.window_ticks + 1
            for t in range(start, tick + 1):
                self._snapshot(t)
            return tick - start + 1

    def _refresh_live(self) -> None:
        if self._fresh:
            still: list[SeriesInfo] = []
            for handle in self._fresh:
                if handle.removed or self._infos.get(handle.sid) is not handle:
                    continue
                if handle.current is None:
                    still.append(handle)
                    continue
                if isinstance(handle, GaugeSeries):
                    self._g_live.append(handle)
                else:
                    self._c_live.append(handle)
                self._live_dirty = True
                if self._live_watched:
                    self._came.append(handle)
            self._fresh = still
        if self._live_dirty:
            self._g_live = [h for h in self._g_live if not h.removed]
            self._c_live = [h for h in self._c_live if not h.removed]
            self._g_series = SeriesIds(array("q", [h.sid for h in self._g_live]))
            self._c_series = SeriesIds(array("q", [h.sid for h in self._c_live]))
            self._live_dirty = False
            self._live_generation += 1
            if self._live_watched:
                self._live_log.append((self._live_generation, self._came, self._gone))
                self._came, self._gone = [], []

    def _snapshot(self, tick: int) -> None:
        self._refresh_live()
        previous = self._frames[-1] if self._frames else None
        expired: list[SeriesInfo] = []
        frame = TickFrame(
            tick,
            self._take_values(
                self._g_live,
                self._g_series,
                None if previous is None else previous.g,
                "d",
                tick,
                expired,
            ),
            self._take_values(
                self._c_live,
                self._c_series,
                None if previous is None else previous.c,
                "q",
                tick,
                expired,
            ),
        )
        self._moved.clear()
        for handle in expired:
            if not handle.removed and self._infos.get(handle.sid) is handle:
                self._retire(handle)
        self._frames.append(frame)
        self.last_taken = tick
        if self.journaling:
            self._events.append(("frame", frame))
        oldest_kept = tick - self.window_ticks + 1
        frames = self._frames
        while frames and frames[0].tick < oldest_kept:
            # Frames leave the window as they are (deltas against the one before): the window's
            # oldest frame is re-based when the writer takes them (pop_ready), so at most one
            # frame of the ready ones is dense between two flushes.
            self._ready.append(frames.popleft())

    def _take_values(
        self,
        live: Sequence[SeriesInfo],
        series: SeriesIds,
        previous: FrameValues | None,
        typecode: str,
        tick: int,
        expired: list[SeriesInfo],
    ) -> FrameValues:
        """Snapshot the live values of one kind: a delta against ``previous`` when it holds the
        same series, else dense. Clears the write flags (the tick has them now)."""
        flags = bytes([h.written for h in live])
        unwritten = flags.count(WRITE_NONE)
        written = live if not unwritten else list(compress(live, flags))
        # Clear each flag before reading the value: a write racing with this either lands
        # before the read (its value is in this tick) or sets the flag again (the next tick).
        for handle in written:
            handle.written = WRITE_NONE
        expire = self.expire_after_ticks
        if expire is not None:
            for handle, flag in zip(live, flags, strict=True):
                if flag or handle.last_write_tick < 0:
                    handle.last_write_tick = tick
                elif tick - handle.last_write_tick >= expire:
                    expired.append(handle)
        if previous is None or previous.series is not series or 2 * unwritten < len(live):
            # (A delta holding most series would cost more than the dense form: 17 bytes an
            # entry against 9, and more time.)
            dense: array[Any] = array(typecode, [h.current for h in live])
            return FrameValues(series, dense, flags)
        positions = _nonzero_positions(flags)
        written_flags = bytes(compress(flags, flags))
        if self._moved:
            extra = [series.position(sid) for sid in self._moved]
            moved = {i for i in extra if i is not None and not flags[i]}
            if moved:
                merged = sorted(moved.union(positions))
                positions = array("Q", merged)
                written = [live[i] for i in merged]
                written_flags = bytes([flags[i] for i in merged])
        values: array[Any] = array(typecode, [h.current for h in written])
        return FrameValues(series, values, written_flags, positions, previous)

    def drain(self) -> None:
        """Move every tick of the window to the ready list (on close)."""
        with self._lock:
            for frame in self._frames:  # oldest first: each one's base is dense by then
                frame.rebase()
            self._ready.extend(self._frames)
            self._frames.clear()

    def pop_ready(self) -> tuple[list[TickFrame], Mapping[int, SeriesInfo]]:
        """Take the ticks that left the window, with the series they mention.

        Forgets series that were removed and no longer appear in any tick still held. The
        mapping of series is the recorder's own when none was forgotten (a copy otherwise):
        look series up in it before the next call, do not iterate it while others record.
        """
        with self._lock:
            ready, self._ready = self._ready, []
            # The writer reads the series of ``ready`` after this returns (under the manager's
            # I/O lock, so no other pop_ready forgets any meanwhile; new series may be added,
            # which a lookup by id tolerates). A copy (about 5 MB at 100,000 series) only when
            # some of them are forgotten below.
            infos = self._infos
            if ready:
                if self._frames:
                    self._frames[0].rebase()  # no frame held refers to a frame handed over
                horizon = ready[-1].tick
                for sid_tick in [t for t in self._history.values()]:
                    for t in [t for t in sid_tick if t <= horizon]:
                        del sid_tick[t]
                self._history = {s: h for s, h in self._history.items() if h}
                gone = [k for k, r in self._retired.items() if r.last_tick <= horizon]
                if gone:
                    infos = dict(self._infos)
                for key in gone:
                    sid = self._retired.pop(key).sid
                    handle = self._infos.get(sid)
                    if handle is not None and handle.removed:
                        del self._infos[sid]
                        self._release_labels(handle.labels)
            return ready, infos

    def pop_events(self) -> list[tuple[str, object]]:
        """Take the journal events (new series, taken frames, fixes) since the last call."""
        with self._lock:
            events, self._events = self._events, []
            return events

    def ready_rows(self) -> tuple[int, bool]:
        """About how many rows the ticks that left the window hold (their series, both kinds),
        and whether their series changed from one tick to another (series came or went)."""
        with self._lock:
            ready = self._ready
            rows = sum(len(f.g.series) + len(f.c.series) for f in ready)
            first = ready[0] if ready else None
            changed = first is not None and any(
                f.g.series is not first.g.series or f.c.series is not first.c.series for f in ready
            )
            return rows, changed

    def window(self) -> list[TickFrame]:
        """The taken ticks still in the window (oldest first); for tests and inspection."""
        with self._lock:
            return list(self._frames)

    # ------------------------------------------------------------------ delayed writes
    def _drop(self, reason: str) -> None:
        handle = self._dropped.get(reason)
        if handle is None:
            handle = self._dropped[reason] = self.counter(DROPPED_METRIC, {"reason": reason})
        handle.increment()

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
        counted in ``capture.dropped`` with its reason and otherwise ignored.
        """
        if kind == "gauge":
            if op not in ("set", "increment", "decrement"):
                raise ValueError(f"gauge write operation must be set/increment/decrement: {op!r}")
            try:
                operand: Number = value + 0.0
            except TypeError:
                raise TypeError(
                    f"gauge {name!r}: value must be a real number, got {type(value).__name__}"
                ) from None
        else:
            if op not in ("increment", "absolute"):
                raise ValueError(f"counter write operation must be increment/absolute: {op!r}")
            operand = as_count(value, name)
        if not isinstance(timestamp, int | float) or isinstance(timestamp, bool):
            raise TypeError(f"timestamp must be epoch seconds, got {type(timestamp).__name__}")
        handle = self.gauge(name, labels) if kind == "gauge" else self.counter(name, labels)
        with self._lock:
            tick = self.tick_of(timestamp)
            now_tick = self.tick_of(self._clock())
            current = self.current_tick()
            if tick > max(now_tick, current):
                self._drop("future")
                return
            tick = min(tick, current)
            oldest = current - self.window_ticks + 1
            if self.first_tick is not None:
                oldest = max(oldest, self.first_tick)
            if tick < oldest:
                self._drop("too_old")
                return
            self._apply_historical(handle, tick, (timestamp, next(self._seq), op, operand))

    def _apply_historical(self, handle: Series, tick: int, write: HistoricalWrite) -> None:
        sid = handle.sid
        is_gauge = isinstance(handle, GaugeSeries)
        current = self.current_tick()
        by_tick = self._history.setdefault(sid, {})
        held = [f for f in self._frames if f.tick >= tick - 1]
        frames = [f for f in held if f.tick >= tick]
        ticks = [f.tick for f in frames] + [current]
        old_writes = [list(by_tick.get(t, ())) for t in ticks]
        new_writes = [list(w) for w in old_writes]
        bucket = new_writes[ticks.index(tick)] if tick in ticks else None
        if bucket is None:  # the tick is not held (no frame): nothing to change
            return
        bucket.append(write)
        bucket.sort(key=lambda w: (w[0], w[1]))
        by_tick[tick] = bucket
        # Each held frame's value with its fixes applied, from one pass over the window.
        looked = [
            (frame.fixes.get(sid, value), flag)
            for frame, (value, flag) in zip(held, raw_history(held, sid, is_gauge), strict=True)
        ]
        prev_value: Number | None = None
        if held and held[0].tick == tick - 1:
            prev_value = looked[0][0]
        old_values: list[Number | None] = []
        flags: list[int] = []
        for frame, (val, flag) in zip(held, looked, strict=True):
            if frame.tick >= tick:
                old_values.append(val)
                flags.append(flag)
        with handle.lock:
            old_values.append(handle.current)
            flags.append(handle.written)
            new_values = refold(old_values, flags, old_writes, new_writes, prev_value, None)
            new_current = new_values[-1]
            if new_current != handle.current and new_current is not None:
                if isinstance(handle, GaugeSeries):
                    handle.current = float(new_current)
                else:
                    handle.current = int(new_current)
                self._moved.add(sid)  # no write flag tells the next tick
        handle.last_write_tick = current
        fixes: list[tuple[int, int, Number | None]] = []
        for frame, old, new in zip(frames, old_values, new_values, strict=False):
            if new != old:
                frame.fixes[sid] = new
                fixes.append((frame.tick, sid, new))
        if fixes and self.journaling:
            self._events.append(("fixes", fixes))
