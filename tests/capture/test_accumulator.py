"""Accumulator semantics, property-tested against a reference model.

Reference: the value of a series at tick t is the fold, in order, of all its accepted writes
whose position is at or before the end of t. A delayed write is positioned at its timestamp;
a live write at the end of the tick it is taken into, after every delayed write of that tick,
in call order. Delayed writes older than the window, before the run or in the future are
dropped and counted.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import capture
from capture.accumulator import apply_write, refold
from capture.handles import WRITE_ADD, WRITE_NONE, WRITE_SET
from capture.recorder import CaptureRecorder
from tests.capture.conftest import FakeClock

WINDOW = 4
T0 = 1_700_000_000  # a tick boundary with tick_seconds=1

live_op = st.one_of(
    st.tuples(st.just("live"), st.just("set"), st.integers(-50, 50)),
    st.tuples(st.just("live"), st.just("increment"), st.integers(0, 20)),
)
gauge_hist = st.tuples(
    st.just("hist"),
    st.sampled_from(["set", "increment", "decrement"]),
    st.integers(-50, 50),
    st.floats(-6.0, 1.5),  # timestamp offset from now, in ticks: old, in window, future
)
counter_hist = st.tuples(
    st.just("hist"),
    st.sampled_from(["increment", "absolute"]),
    st.integers(0, 50),
    st.floats(-6.0, 1.5),
)
tick_op = st.tuples(st.just("tick"), st.integers(1, 2))


def run_model(
    kind: str, ops: list[tuple[object, ...]], batched: bool = False
) -> tuple[dict[int, float | int], dict[int, float | int], int]:
    """Run ``ops`` through a real recorder and through the reference model. ``batched``: the
    delayed writes between two other operations go in one ``write_batch``."""
    clock = FakeClock(T0 + 0.5)
    rec = CaptureRecorder(clock=clock, window_ticks=WINDOW)
    capture.set_recorder(rec)
    pending: list[tuple[str, str, str, None, float, float]] = []

    def send() -> None:
        if pending:
            outcome = capture.historical.write_batch(pending)
            assert not outcome.rejected
            pending.clear()

    handle = rec.gauge("s") if kind == "gauge" else rec.counter("s")
    current = first = rec.begin()
    assert first == T0
    writes: list[tuple[tuple[float, int, float, int], str, int | float]] = []
    seq = 0
    dropped = 0
    for op in ops:
        if op[0] != "hist":
            send()
        if op[0] == "tick":
            n = int(op[1])  # type: ignore[arg-type]
            rec.take_tick(current + n - 1)
            current += n
            clock.now = current + 0.5
        elif op[0] == "live":
            _, name, value = op
            seq += 1
            if kind == "gauge":
                getattr(handle, str(name))(value)
            else:
                getattr(handle, "absolute" if name == "set" else "increment")(value)
            writes.append(
                ((current, 1, 0.0, seq), "absolute" if name == "set" else "increment", value)
            )  # type: ignore[arg-type]
        else:
            _, name, value, offset = op
            ts = clock.now + float(offset)  # type: ignore[arg-type]
            tick = int(ts // 1)
            oldest = max(current - WINDOW + 1, first)
            seq += 1
            if tick > current or tick < oldest:
                dropped += 1
            else:
                writes.append(((tick, 0, ts, seq), str(name), value))  # type: ignore[arg-type]
            if batched:
                pending.append((kind, name, "s", None, value, ts))  # type: ignore[arg-type]
            else:
                rec.record_historical(kind, name, "s", None, value, ts)  # type: ignore[arg-type]
    send()
    # close: take the tick in progress, drain
    rec.take_tick(current)
    rec.drain()
    frames, infos = rec.pop_ready()
    actual: dict[int, float | int] = {}
    for frame in frames:
        g_sids, g_vals, c_sids, c_vals = frame.materialize(lambda s: infos[s].kind == "gauge")
        for sid, v in [*zip(g_sids, g_vals, strict=True), *zip(c_sids, c_vals, strict=True)]:
            if infos[sid].name == "s":
                actual[frame.tick] = v
    expected: dict[int, float | int] = {}
    writes.sort(key=lambda w: w[0])
    for t in range(first, current + 1):
        value: float | int | None = None
        for key, name, operand in writes:
            if key[0] <= t:
                value = apply_write(value, name, operand)
        if value is not None:
            expected[t] = value
    return actual, expected, dropped


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(live_op, gauge_hist, tick_op), max_size=30))
def test_gauge_matches_the_reference_model(ops: list[tuple[object, ...]]) -> None:
    actual, expected, _ = run_model("gauge", ops)
    assert actual.keys() == expected.keys()
    for t in expected:
        assert actual[t] == pytest.approx(expected[t])


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(live_op.filter(lambda o: o[2] >= 0), counter_hist, tick_op), max_size=30))
def test_counter_matches_the_reference_model(ops: list[tuple[object, ...]]) -> None:
    actual, expected, _ = run_model("counter", ops)
    assert actual == expected


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(live_op, gauge_hist, tick_op), max_size=30))
def test_batched_gauge_writes_match_the_reference_model(ops: list[tuple[object, ...]]) -> None:
    actual, expected, _ = run_model("gauge", ops, batched=True)
    assert actual.keys() == expected.keys()
    for t in expected:
        assert actual[t] == pytest.approx(expected[t])


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(live_op.filter(lambda o: o[2] >= 0), counter_hist, tick_op), max_size=30))
def test_batched_counter_writes_match_the_reference_model(ops: list[tuple[object, ...]]) -> None:
    actual, expected, _ = run_model("counter", ops, batched=True)
    assert actual == expected


def test_a_batch_lands_each_point_in_its_tick_and_counts_what_it_drops(clock: FakeClock) -> None:
    clock.now = T0 + 0.5
    rec = CaptureRecorder(clock=clock, window_ticks=5)
    capture.set_recorder(rec)
    rec.gauge("kernel").set(1)
    for i in range(4):
        rec.take_tick(T0 + i)
        clock.now += 1
    labels = {"container_id": "abc"}
    outcome = capture.historical.write_batch(
        [
            ("gauge", "set", "g", labels, 10.0, T0 + 1.5),
            ("counter", "increment", "c", labels, 2, T0 + 2.5),
            ("gauge", "set", "g", labels, 20.0, datetime.fromtimestamp(T0 + 3.2, UTC)),
            ("counter", "increment", "c", labels, 3, T0 + 3.7),
            ("gauge", "set", "g", labels, 99.0, T0 - 10),  # too old
            ("gauge", "set", "g", labels, 99.0, clock.now + 5),  # future
            ("counter", "increment", "g", labels, 1, T0 + 2),  # g is a gauge
            ("counter", "increment", "c", labels, -1, T0 + 2),  # negative
            ("gauge", "set", "g", labels, 1.0, "yesterday"),  # not a timestamp
        ]
    )
    assert outcome.applied == 4
    assert outcome.dropped == {"too_old": 1, "future": 1}
    assert [index for index, _ in outcome.rejected] == [6, 7, 8]
    assert "gauge" in outcome.rejected[0][1]
    assert rec.counter("capture.dropped", {"reason": "too_old"}).value == 1
    assert rec.counter("capture.dropped", {"reason": "future"}).value == 1
    rec.take_tick(T0 + 4)
    rec.drain()
    frames, _ = rec.pop_ready()
    g, c = rec.gauge("g", labels), rec.counter("c", labels)
    assert [f.lookup(g.sid, True)[0] for f in frames] == [None, 10.0, 10.0, 20.0, 20.0]
    assert [f.lookup(c.sid, False)[0] for f in frames] == [None, None, 2, 5, 5]


def test_a_batch_without_a_recorder_is_dropped_and_says_so() -> None:
    outcome = capture.historical.write_batch([("gauge", "set", "g", None, 1.0, T0)])
    assert outcome.applied == 0
    assert outcome.dropped == {"no_recorder": 1}


def test_delayed_set_changes_its_tick_and_later_ones_up_to_the_next_write(clock: FakeClock) -> None:
    clock.now = T0 + 0.5
    rec = CaptureRecorder(clock=clock, window_ticks=10)
    g = rec.gauge("g")
    for i in range(5):  # ticks T0..T0+4 hold 0, 0, 0, 30, 30
        if i == 3:
            g.set(30)
        elif i == 0:
            g.set(0)
        rec.take_tick(T0 + i)
        clock.now += 1
    rec.record_historical("gauge", "set", "g", None, 7, T0 + 1.2)
    rec.drain()
    frames, _ = rec.pop_ready()
    assert [f.lookup(g.sid, True)[0] for f in frames] == [0, 7, 7, 30, 30]
    assert g.value == 30  # never overrides newer data


def test_a_delayed_set_stops_at_a_later_live_set_of_the_same_value(clock: FakeClock) -> None:
    # A later tick's live write that left the value as it was still ends the delayed write's
    # reach: the one-write shortcut reads the later frames' write flags, not their values.
    clock.now = T0 + 0.5
    rec = CaptureRecorder(clock=clock, window_ticks=10)
    g = rec.gauge("g")
    for i in range(4):  # ticks T0..T0+3 hold 3, 3, 3 (set again, live), 3
        if i in (0, 2):
            g.set(3)
        rec.take_tick(T0 + i)
        clock.now += 1
    rec.record_historical("gauge", "set", "g", None, 7, T0 + 1.5)
    rec.drain()
    frames, _ = rec.pop_ready()
    assert [f.lookup(g.sid, True)[0] for f in frames] == [3, 7, 3, 3]
    assert g.value == 3


def test_delayed_counter_increment_moves_every_later_tick(clock: FakeClock) -> None:
    clock.now = T0 + 0.5
    rec = CaptureRecorder(clock=clock, window_ticks=10)
    c = rec.counter("c")
    for _ in range(4):
        c.increment(10)
        rec.take_tick(rec.current_tick())
        clock.now += 1
    rec.record_historical("counter", "increment", "c", None, 5, T0 + 1.5)
    c.increment(10)
    rec.take_tick(rec.current_tick())
    rec.drain()
    frames, _ = rec.pop_ready()
    assert [f.lookup(c.sid, False)[0] for f in frames] == [10, 25, 35, 45, 55]


def test_rejected_writes_are_counted_by_reason(clock: FakeClock) -> None:
    clock.now = T0 + 0.5
    rec = CaptureRecorder(clock=clock, window_ticks=3)
    capture.set_recorder(rec)
    rec.gauge("g").set(1)
    for i in range(5):
        rec.take_tick(T0 + i)
        clock.now += 1
    capture.historical.gauge_set("g", None, 1.0, T0)  # far older than the window
    capture.historical.gauge_set("g", None, 1.0, clock.now + 10)  # future
    capture.historical.counter_increment(
        "c", {"a": "b"}, 1, datetime.fromtimestamp(clock.now + 5, UTC)
    )
    assert rec.counter("capture.dropped", {"reason": "too_old"}).value == 1
    assert rec.counter("capture.dropped", {"reason": "future"}).value == 2


def test_historical_timestamps_must_be_aware_or_epoch(clock: FakeClock) -> None:
    capture.set_recorder(CaptureRecorder(clock=clock))
    with pytest.raises(ValueError, match="aware"):
        capture.historical.gauge_set("g", None, 1.0, datetime(2024, 1, 1))
    with pytest.raises(TypeError):
        capture.historical.gauge_set("g", None, 1.0, "yesterday")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="negative"):
        capture.historical.counter_increment("c", None, -1, clock.now)


def test_refold_keeps_live_sets_and_live_increments() -> None:
    # ticks: [live set 10] [live +2] [nothing] ; a delayed +5 lands in the first tick,
    # before its live set (so the set wins there), and moves nothing else.
    old = [10.0, 12.0, 12.0]
    flags = [WRITE_SET, WRITE_ADD, WRITE_NONE]
    new_writes: list[list[tuple[float, int, str, float | int]]] = [
        [(0.1, 0, "increment", 5)],
        [],
        [],
    ]
    assert refold(old, flags, [[], [], []], new_writes, 1.0, None) == [10.0, 12.0, 12.0]
    # the same +5 in the second tick raises it and the third
    new_writes = [[], [(1.1, 0, "increment", 5)], []]
    assert refold(old, flags, [[], [], []], new_writes, 1.0, None) == [10.0, 17.0, 17.0]
