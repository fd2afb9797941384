"""The facade and handles: identity, validation, pending handles, removal, threads."""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path

import pytest

import capture
from capture.delayed import HistoricalOp
from capture.keys import RESERVED_COLUMNS, Kind
from capture.recorder import CaptureRecorder, IndexedRecorder
from tests.capture.conftest import FakeClock


def values_at(
    recorder: CaptureRecorder, tick: int
) -> dict[tuple[str, tuple[tuple[str, str], ...]], float | int]:
    recorder.drain()
    frames, infos = recorder.pop_ready()
    out: dict[tuple[str, tuple[tuple[str, str], ...]], float | int] = {}
    for frame in frames:
        if frame.tick != tick:
            continue
        g_sids, g_vals, c_sids, c_vals = frame.materialize(lambda s: infos[s].kind == "gauge")
        for sid, v in [*zip(g_sids, g_vals, strict=True), *zip(c_sids, c_vals, strict=True)]:
            out[(infos[sid].name, infos[sid].labels)] = v
    return out


def test_same_name_and_labels_give_the_same_series(clock: FakeClock) -> None:
    rec = CaptureRecorder(clock=clock)
    capture.set_recorder(rec)
    a = capture.gauge("g", {"x": "1", "y": "2"})
    b = capture.gauge("g", {"y": "2", "x": "1"})  # other insertion order
    assert a is b
    assert capture.gauge("g", {"x": "1"}) is not a
    assert capture.counter("c") is capture.counter("c", {})


class CallCounter:
    """A recorder of another back end: no handle tables, every call reaches it."""

    def __init__(self) -> None:
        self.backing = CaptureRecorder()
        self.calls = 0

    def gauge(self, name: str, labels: Mapping[str, str] | None = None) -> capture.Gauge:
        self.calls += 1
        return self.backing.gauge(name, labels)

    def counter(self, name: str, labels: Mapping[str, str] | None = None) -> capture.Counter:
        self.calls += 1
        return self.backing.counter(name, labels)

    def record_historical(
        self,
        kind: Kind,
        op: HistoricalOp,
        name: str,
        labels: Mapping[str, str] | None,
        value: float,
        timestamp: float,
    ) -> None:
        self.calls += 1


def test_the_facade_finds_known_series_in_the_tables_a_recorder_publishes() -> None:
    rec = CaptureRecorder()
    assert isinstance(rec, IndexedRecorder)
    capture.set_recorder(rec)
    g = capture.gauge("g", {"a": "1"})
    assert rec.handle_tables().gauges[(("a", "1"),)]["g"] is g
    assert capture.gauge("g", {"a": "1"}) is g
    # Bad labels still get the recorder's own error, not the lookup's.
    with pytest.raises(TypeError, match="mapping of str to str"):
        capture.gauge("g", ["a", "1"])  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="value must be a str"):
        capture.counter("c", {"a": ["1"]})  # type: ignore[dict-item]
    other = CallCounter()
    assert not isinstance(other, IndexedRecorder)
    capture.set_recorder(other)
    first = capture.gauge("g", {"a": "1"})
    assert first is not g and capture.gauge("g", {"a": "1"}) is first
    capture.counter("c")
    assert other.calls == 3  # no tables of the recorder before: every call reaches this one
    capture.set_recorder(None)
    assert capture.gauge("g", {"a": "1"}) is not first


def test_labels_in_capture_order_are_filed_once(clock: FakeClock) -> None:
    # A mapping in capture's own label order is the series' key as it is: no alias is filed.
    # observers.series builds its labels so, to keep one lookup entry per series.
    rec = CaptureRecorder(clock=clock)
    capture.set_recorder(rec)
    given = {"pod": "p", "container": "c", "namespace": "n"}
    labels = capture.ordered_labels(given)
    assert labels == given and list(labels) == ["container", "namespace", "pod"]
    g = capture.gauge("g", labels)
    assert g.labels == tuple(labels.items())
    assert rec._registry.gauges.table == {g.labels: {"g": g}}
    assert capture.gauge("g", given) is g  # another order: found, and filed as an alias
    assert rec._registry.gauges.table == {g.labels: {"g": g}, tuple(given.items()): {"g": g}}


def test_handle_values_reach_the_tick(clock: FakeClock) -> None:
    rec = CaptureRecorder(clock=clock)
    capture.set_recorder(rec)
    g = capture.gauge("g", {"k": "v"})
    c = capture.counter("c")
    g.set(3)
    g.increment(2)
    g.decrement(0.5)
    c.increment(4)
    c.increment()
    tick = rec.tick_of(clock.now)
    rec.take_tick(tick)
    assert values_at(rec, tick) == {("g", (("k", "v"),)): 4.5, ("c", ()): 5}


def test_absolute_resets_a_counter(clock: FakeClock) -> None:
    rec = CaptureRecorder(clock=clock)
    c = rec.counter("c")
    c.increment(10)
    c.absolute(3)
    c.increment(1)
    tick = rec.tick_of(clock.now)
    rec.take_tick(tick)
    assert values_at(rec, tick) == {("c", ()): 4}


@pytest.mark.parametrize(
    ("name", "labels", "error"),
    [
        ("", None, ValueError),
        (3, None, TypeError),
        ("m", {"": "v"}, ValueError),
        ("m", {1: "v"}, TypeError),
        ("m", {"k": 1}, TypeError),
        ("m", {"metric_name": "x"}, ValueError),
        ("m", {"labels": "x"}, ValueError),
        ("m", {"host": "x"}, ValueError),  # a global label's key
        ("m", ["k", "v"], TypeError),
        ("m", {"k": ["unhashable"]}, TypeError),
    ],
)
def test_bad_names_and_labels_are_refused(
    name: object, labels: object, error: type[Exception]
) -> None:
    rec = CaptureRecorder(global_labels={"host": "h"})
    with pytest.raises(error):
        rec.gauge(name, labels)  # type: ignore[arg-type]
    with pytest.raises(error):
        rec.counter(name, labels)  # type: ignore[arg-type]


def test_the_reserved_names_are_the_columns_of_a_capture_file(tmp_path: Path) -> None:
    # A label key or label column with one of these names would collide with a column.
    assert frozenset(capture.capture_schema().names) == RESERVED_COLUMNS
    for column in sorted(RESERVED_COLUMNS):
        with pytest.raises(ValueError, match="collides"):
            capture.CaptureManager(tmp_path / "x.parquet", label_columns=(column,))
        with pytest.raises(ValueError, match="collides"):
            CaptureRecorder().gauge("m", {column: "v"})


def test_one_name_cannot_be_both_kinds() -> None:
    rec = CaptureRecorder()
    rec.gauge("m")
    with pytest.raises(ValueError, match="is a gauge"):
        rec.counter("m")


@pytest.mark.parametrize("value", ["1", None, Decimal("1.5"), [1]])
def test_non_numeric_gauge_values_raise_at_the_call_site(value: object) -> None:
    g = CaptureRecorder().gauge("g")
    for call in (g.set, g.increment, g.decrement):
        with pytest.raises(TypeError, match="real number"):
            call(value)  # type: ignore[arg-type]
    assert g.value is None


def test_bad_counter_values_raise_at_the_call_site() -> None:
    c = CaptureRecorder().counter("c")
    with pytest.raises(ValueError, match="negative"):
        c.increment(-1)
    with pytest.raises(TypeError, match="integer"):
        c.increment(1.5)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="integer"):
        c.absolute("3")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="negative"):
        c.absolute(-3)
    assert c.value is None


def test_calls_before_a_recorder_are_counted_noops_reported_once(
    caplog: pytest.LogCaptureFixture, clock: FakeClock
) -> None:
    pending = capture.facade.pending_recorder()
    before = pending.dropped_calls
    early = capture.gauge("early", {"a": "b"})
    early_counter = capture.counter("early.count")
    with caplog.at_level(logging.WARNING, logger="capture"):
        early.set(1.0)
        early_counter.increment(5)
        early.set(2.0)
    assert pending.dropped_calls == before + 3
    assert capture.get_recorder() is None
    # Handles made before a recorder is installed record once one is.
    rec = CaptureRecorder(clock=clock)
    capture.set_recorder(rec)
    assert capture.get_recorder() is rec
    early.set(7.0)
    early_counter.increment(2)
    tick = rec.tick_of(clock.now)
    rec.take_tick(tick)
    assert values_at(rec, tick) == {("early", (("a", "b"),)): 7.0, ("early.count", ()): 2}
    # And stop when it is uninstalled.
    capture.set_recorder(None)
    early.set(9.0)
    assert rec.gauge("early", {"a": "b"}).value == 7.0


def test_warning_is_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    pending = capture.pending.PendingRecorder()
    with caplog.at_level(logging.WARNING, logger="capture"):
        for _ in range(5):
            pending.gauge("x").set(1)
    assert pending.dropped_calls == 5
    assert sum("dropped" in r.getMessage() for r in caplog.records) == 1


def test_remove_stops_rows_at_once_and_a_new_series_keeps_its_identity(clock: FakeClock) -> None:
    rec = CaptureRecorder(clock=clock, window_ticks=10)
    g = rec.gauge("g", {"c": "1"})
    g.set(1)
    t0 = rec.tick_of(clock.now)
    rec.take_tick(t0)
    g.remove()
    rec.take_tick(t0 + 1)
    again = rec.gauge("g", {"c": "1"})
    assert again is not g
    assert again.sid == g.sid  # same identity while its ticks are in the window
    again.set(5)
    rec.take_tick(t0 + 2)
    rec.drain()
    frames, _ = rec.pop_ready()
    rows = {f.tick: list(zip(f.g_sids, f.g_vals, strict=True)) for f in frames}
    assert rows == {t0: [(g.sid, 1.0)], t0 + 1: [], t0 + 2: [(g.sid, 5.0)]}


def test_a_removed_series_is_gone_under_every_label_order(clock: FakeClock) -> None:
    # A series found under two label orders is in the lookup tables twice; removing it must
    # take it out of both (the facade's fast path reads the same tables), and a label set whose
    # last series ended must leave no table behind (containers come and go all day).
    rec = CaptureRecorder(clock=clock)
    capture.set_recorder(rec)
    g = capture.gauge("g", {"x": "1", "y": "2"})
    assert capture.gauge("g", {"y": "2", "x": "1"}) is g
    other = capture.counter("c", {"y": "2", "x": "1"})
    g.remove()
    assert g.removed and not other.removed
    for labels in ({"x": "1", "y": "2"}, {"y": "2", "x": "1"}):
        fresh = capture.gauge("g", labels)
        assert fresh is not g and not fresh.removed
        fresh.remove()
    other.remove()
    assert rec._registry.gauges.table == {} and rec._registry.counters.table == {}


def test_series_not_written_expire(clock: FakeClock) -> None:
    rec = CaptureRecorder(clock=clock, window_ticks=50, expire_after_ticks=3)
    busy, idle = rec.gauge("busy"), rec.gauge("idle")
    idle.set(1)
    t0 = rec.tick_of(clock.now)
    for t in range(t0, t0 + 8):
        busy.set(t)
        rec.take_tick(t)
    rec.drain()
    frames, _ = rec.pop_ready()
    idle_ticks = [f.tick - t0 for f in frames if idle.sid in f.g_sids]
    assert idle_ticks == [0, 1, 2, 3]
    assert all(busy.sid in f.g_sids for f in frames)
    assert rec.series_count() == 1


def test_a_series_has_no_rows_before_its_first_write(clock: FakeClock) -> None:
    rec = CaptureRecorder(clock=clock)
    late = rec.gauge("late")
    t0 = rec.tick_of(clock.now)
    rec.take_tick(t0 + 2)
    late.set(1)
    rec.take_tick(t0 + 3)
    rec.drain()
    frames, _ = rec.pop_ready()
    assert [f.tick - t0 for f in frames if late.sid in f.g_sids] == [3]


def test_concurrent_increments_are_not_lost() -> None:
    rec = CaptureRecorder()
    c = rec.counter("c")
    g = rec.gauge("g")
    n, threads = 20_000, 4

    def work() -> None:
        for _ in range(n):
            c.increment()
            g.increment(1.0)

    pool = [threading.Thread(target=work) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    assert c.value == n * threads
    assert g.value == float(n * threads)


def test_registration_from_many_threads_gives_one_series() -> None:
    rec = CaptureRecorder()
    seen: list[object] = []

    def work(i: int) -> None:
        for j in range(200):
            seen.append(rec.gauge("g", {"j": str(j % 10)}))

    pool = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    assert len({id(h) for h in seen}) == 10
    assert rec.series_count() == 10


def test_tick_grid_is_whole_multiples_and_catches_up(clock: FakeClock) -> None:
    rec = CaptureRecorder(clock=clock, tick_seconds=0.5, window_ticks=100)
    g = rec.gauge("g")
    g.set(1)
    clock.now = 1_700_000_000.74
    assert rec.take_tick() == 1
    first = rec.first_tick
    assert first is not None
    assert first * 0.5 == pytest.approx(1_700_000_000.5)
    clock.now += 2.0  # the loop was late by four ticks: it catches up, the grid stays
    assert rec.take_tick() == 4
    assert [f.tick - first for f in rec.window()] == [0, 1, 2, 3, 4]


def test_a_very_late_loop_skips_and_counts(clock: FakeClock) -> None:
    rec = CaptureRecorder(clock=clock, window_ticks=5)
    rec.gauge("g").set(1)
    t0 = rec.tick_of(clock.now)
    rec.take_tick(t0)
    rec.take_tick(t0 + 100)
    assert rec.counter("capture.missed_ticks").value == 95
    assert [f.tick - t0 for f in rec.window()] == [96, 97, 98, 99, 100]


def test_one_handle_vocabulary_whatever_the_recorder(clock: FakeClock) -> None:
    # Before a recorder (pending handles) and with one: the same two protocols.
    handles = [capture.gauge("vocab.g"), capture.counter("vocab.c")]
    capture.set_recorder(CaptureRecorder(clock=clock))
    handles += [capture.gauge("vocab.g"), capture.counter("vocab.c")]
    for gauge, counter in (handles[:2], handles[2:]):
        assert isinstance(gauge, capture.Gauge) and not isinstance(gauge, capture.Counter)
        assert isinstance(counter, capture.Counter) and not isinstance(counter, capture.Gauge)
    # The registry's concrete handle classes are not part of the public face.
    assert not hasattr(capture, "GaugeHandle") and not hasattr(capture, "CounterHandle")
    public = {name for name in capture.__all__ if isinstance(getattr(capture, name), type)}
    assert {type(h).__name__ for h in handles}.isdisjoint(public)


def test_delayed_writes_before_a_recorder_are_counted_as_dropped() -> None:
    pending = capture.facade.pending_recorder()
    before = pending.dropped_calls
    capture.historical.gauge_set("late", None, 1.0, 0.0)
    capture.historical.counter_increment("late.count", None, 1, 0.0)
    assert pending.dropped_calls == before + 2
