"""Sparse (delta) tick frames against dense ones.

The recorder stores a frame whose live series did not change since the frame before as a delta
against it. These tests run the same writes through a recorder and through one that keeps every
frame dense (the plain snapshot of every live value), and require the same values, write flags,
journal replay and rotation output from both, at every step: ticks with and without writes,
series added and removed between ticks, delayed writes into delta frames, windows sliding.
"""

from __future__ import annotations

from array import array
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import capture
from capture.accumulator import FrameValues, SeriesIds, TickFrame, raw_history
from capture.handles import CounterSeries, GaugeSeries, Series
from capture.journal import JournalWriter, read_journal
from capture.recorder import CaptureRecorder
from tests.capture.conftest import FakeClock

T0 = 1_700_000_000
GAUGES = ("g0", "g1", "g2")
COUNTERS = ("c0", "c1")


class DenseRecorder(CaptureRecorder):
    """The reference: every frame dense, whatever the frame before."""

    def _take_values(  # type: ignore[override]
        self,
        live: list[Series],
        series: SeriesIds,
        previous: FrameValues | None,
        typecode: str,
        tick: int,
        expired: list[Series],
    ) -> FrameValues:
        return super()._take_values(live, series, None, typecode, tick, expired)


# Names of every series a recorder ever had, by id (pop_ready forgets removed ones).
_names: dict[int, dict[int, str]] = {}


def remember(rec: CaptureRecorder) -> None:
    known = _names.setdefault(id(rec), {})
    known.update((sid, h.name) for sid, h in rec.registered().items())


def final_values(frame: TickFrame, rec: CaptureRecorder) -> dict[int, float | int]:
    remember(rec)
    known = _names[id(rec)]
    g_sids, g_vals, c_sids, c_vals = frame.materialize(lambda s: known[s].startswith("g"))
    values = dict(zip(g_sids, g_vals, strict=True))
    values.update(zip(c_sids, c_vals, strict=True))
    return values


def named(rec: CaptureRecorder, values: dict[int, float | int]) -> dict[str, float | int]:
    known = _names[id(rec)]
    return {known[sid]: v for sid, v in values.items()}


def check_window_shape(rec: CaptureRecorder) -> None:
    """The oldest frame held is dense, or a delta against the last frame that left the window
    and is not yet handed to the writer; no frame refers to any other frame outside the window."""
    window = rec.window()
    if not window:
        return
    ready = rec.ready()
    last_left = ready[-1] if ready else None
    for part, left in (
        (window[0].g, last_left and last_left.g),
        (window[0].c, last_left and last_left.c),
    ):
        assert part.is_dense or (left is not None and part.state[3] is left)
    for part_of, is_gauge in ((lambda f: f.g, True), (lambda f: f.c, False)):
        for sid in {s for f in window for s in part_of(f).series.sids}:
            expected = []
            for f in window:
                i = part_of(f).series.position(sid)
                expected.append((None, 0) if i is None else part_of(f).at(i))
            assert raw_history(window, sid, is_gauge) == expected
    held = {id(f.g) for f in window} | {id(f.c) for f in window}
    for frame in window[1:]:
        for part in (frame.g, frame.c):
            base = part.state[3]
            assert base is None or id(base) in held
            if base is not None:
                assert base.series is part.series


def same_frames(
    a: list[TickFrame], ra: CaptureRecorder, b: list[TickFrame], rb: CaptureRecorder
) -> None:
    assert [f.tick for f in a] == [f.tick for f in b]
    for fa, fb in zip(a, b, strict=True):
        assert named(ra, final_values(fa, ra)) == named(rb, final_values(fb, rb)), fa.tick
        # The write flags refold relies on, series by series (the dense form says them all).
        for kind_a, kind_b in ((fa.g, fb.g), (fa.c, fb.c)):
            va, fla = kind_a.dense()
            vb, flb = kind_b.dense()
            assert list(kind_a.series.sids) == list(kind_b.series.sids)
            assert list(va) == list(vb)
            assert fla == flb
            for i, sid in enumerate(kind_a.series.sids):
                assert fa.lookup(sid, kind_a is fa.g) == fb.lookup(sid, kind_b is fb.g)
                assert kind_a.at(i) == (va[i], fla[i])


op = st.one_of(
    st.tuples(st.just("set"), st.sampled_from(GAUGES), st.integers(-20, 20)),
    st.tuples(st.just("inc"), st.sampled_from(GAUGES + COUNTERS), st.integers(0, 9)),
    st.tuples(st.just("abs"), st.sampled_from(COUNTERS), st.integers(0, 99)),
    st.tuples(st.just("remove"), st.sampled_from(GAUGES + COUNTERS)),
    st.tuples(st.just("tick"), st.integers(1, 3)),
    st.tuples(st.just("tick"), st.just(1)),
    st.tuples(
        st.just("hist"),
        st.sampled_from(GAUGES + COUNTERS),
        st.sampled_from(["set", "increment"]),
        st.integers(0, 30),
        st.floats(-4.0, 0.9),
    ),
)


def apply(rec: CaptureRecorder, clock: FakeClock, step: tuple[object, ...]) -> None:
    kind, *args = step
    if kind == "tick":
        n = int(args[0])  # type: ignore[call-overload]
        rec.take_tick(rec.current_tick() + n - 1)
        clock.now = rec.current_tick() + 0.5
        return
    name = str(args[0])
    is_gauge = name.startswith("g")
    handle = rec.gauge(name) if is_gauge else rec.counter(name)
    if kind == "set":
        assert isinstance(handle, GaugeSeries)
        handle.set(float(args[1]))  # type: ignore[arg-type]
    elif kind == "inc":
        handle.increment(args[1])  # type: ignore[arg-type]
    elif kind == "abs":
        assert isinstance(handle, CounterSeries)
        handle.absolute(args[1])  # type: ignore[arg-type]
    elif kind == "remove":
        handle.remove()
    else:
        hist_op = str(args[1])
        if not is_gauge and hist_op == "set":
            hist_op = "absolute"
        ts = clock.now + float(args[3])  # type: ignore[arg-type]
        rec.record_historical(
            "gauge" if is_gauge else "counter",
            hist_op,  # type: ignore[arg-type]
            name,
            None,
            args[2],  # type: ignore[arg-type]
            ts,
        )


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(op, max_size=40), st.integers(1, 4))
def test_delta_frames_hold_the_values_of_dense_ones(
    ops: list[tuple[object, ...]], window: int
) -> None:
    clocks = FakeClock(T0 + 0.5), FakeClock(T0 + 0.5)
    sparse = CaptureRecorder(clock=clocks[0], window_ticks=window)
    dense = DenseRecorder(clock=clocks[1], window_ticks=window)
    for rec in (sparse, dense):
        rec.begin()
    ready: tuple[list[TickFrame], list[TickFrame]] = ([], [])
    for step in ops:
        for rec, clock in ((sparse, clocks[0]), (dense, clocks[1])):
            apply(rec, clock, step)
            remember(rec)
        check_window_shape(sparse)
        same_frames(sparse.window(), sparse, dense.window(), dense)
        if step[0] == "tick":
            # Handed to the writer: the first dense, each other one dense or a delta against
            # the one before it; the same values; the window's oldest frame dense from then on.
            got = sparse.pop_ready()[0], dense.pop_ready()[0]
            check_handed(got[0])
            window_now = sparse.window()
            if window_now:
                assert window_now[0].g.is_dense and window_now[0].c.is_dense
            same_frames(got[0], sparse, got[1], dense)
            ready[0].extend(got[0])
            ready[1].extend(got[1])
    for rec in (sparse, dense):
        rec.take_tick(rec.current_tick())
        remember(rec)
        rec.drain()
    got = sparse.pop_ready()[0], dense.pop_ready()[0]
    check_handed(got[0])
    same_frames(got[0], sparse, got[1], dense)


def check_handed(frames: list[TickFrame]) -> None:
    """Frames handed to the writer refer to no frame but the one before them in the batch."""
    for i, frame in enumerate(frames):
        before = frames[i - 1] if i else None
        for part, prior in ((frame.g, before and before.g), (frame.c, before and before.c)):
            assert part.is_dense or (prior is not None and part.state[3] is prior)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(op, max_size=40), st.integers(1, 4))
def test_the_journal_of_delta_frames_replays_the_dense_values(
    tmp_path_factory: pytest.TempPathFactory, ops: list[tuple[object, ...]], window: int
) -> None:
    path = tmp_path_factory.mktemp("j") / ".x.parquet.journal"
    clocks = FakeClock(T0 + 0.5), FakeClock(T0 + 0.5)
    sparse = CaptureRecorder(clock=clocks[0], window_ticks=window)
    sparse.journaling = True
    dense = DenseRecorder(clock=clocks[1], window_ticks=window)
    for rec in (sparse, dense):
        rec.begin()
    journal = JournalWriter(path)
    journal.begin({"run_id": "r"})

    def write_events() -> None:
        series, frames, fixes = [], [], []
        for kind, payload in sparse.pop_events():
            if kind == "series":
                assert isinstance(payload, Series)
                series.append((payload.sid, payload.kind, payload.name, payload.labels))
            elif kind == "frame":
                assert isinstance(payload, TickFrame)
                frames.append(payload)
            else:
                assert isinstance(payload, list)
                fixes.extend(payload)
        journal.write(series=series, frames=frames, fixes=fixes)

    for step in ops:
        for rec, clock in ((sparse, clocks[0]), (dense, clocks[1])):
            apply(rec, clock, step)
            remember(rec)
        write_events()
    for rec in (sparse, dense):
        rec.take_tick(rec.current_tick())
        remember(rec)
        rec.drain()
    write_events()
    journal.close(delete=False)
    expected: dict[tuple[int, str], float | int] = {}
    for frame in dense.pop_ready()[0]:
        for name, value in named(dense, final_values(frame, dense)).items():
            expected[(frame.tick, name)] = value
    contents = read_journal(path)
    got: dict[tuple[int, str], float | int] = {}
    for sid, tick, ival, fval in zip(
        contents.points.sid.to_pylist(),
        contents.points.tick.to_pylist(),
        contents.points.value_int.to_pylist(),
        contents.points.value_float.to_pylist(),
        strict=True,
    ):
        got[(tick, contents.series[sid].name)] = fval if ival is None else ival
    assert got == expected


def test_a_tick_without_writes_stores_nothing_but_reads_the_tick_before(clock: FakeClock) -> None:
    clock.now = T0 + 0.5
    rec = CaptureRecorder(clock=clock, window_ticks=10)
    handles = [rec.gauge("g", {"i": str(i)}) for i in range(100)]
    for i, h in enumerate(handles):
        h.set(i)
    rec.take_tick(T0)
    handles[7].set(70.0)
    rec.take_tick(T0 + 1)
    rec.take_tick(T0 + 4)  # catch-up: three ticks without writes
    first, second, *rest = rec.window()
    assert first.g.is_dense
    values, _flags, positions, base = second.g.state
    assert list(positions or ()) == [7] and list(values) == [70.0] and base is first.g
    assert all(len(f.g.state[0]) == 0 for f in rest)
    assert rest[-1].g_vals == array("d", [70.0 if i == 7 else i for i in range(100)])
    assert rest[-1].lookup(handles[7].sid, True) == (70.0, 0)
    assert second.lookup(handles[7].sid, True) == (70.0, 2)
    assert rest[-1].lookup(handles[8].sid, True) == (8.0, 0)


def test_a_delayed_write_that_moves_the_live_value_reaches_the_next_delta(
    clock: FakeClock,
) -> None:
    # The delayed increment changes the live value without a write flag: the next frame, a
    # delta, must still carry the new value.
    clock.now = T0 + 0.5
    rec = CaptureRecorder(clock=clock, window_ticks=10)
    c = rec.counter("c")
    other = rec.counter("other")
    c.increment(10)
    other.increment(1)
    rec.take_tick(T0)
    clock.now += 1
    rec.record_historical("counter", "increment", "c", None, 5, T0 + 0.7)
    assert c.value == 15
    rec.take_tick(T0 + 1)
    rec.take_tick(T0 + 2)
    assert [f.lookup(c.sid, False)[0] for f in rec.window()] == [15, 15, 15]
    assert not rec.window()[1].c.is_dense
    rec.drain()
    frames, _ = rec.pop_ready()
    assert [final_values(f, rec)[c.sid] for f in frames] == [15, 15, 15]


def test_rotation_carries_delta_frames_and_their_fixes(tmp_path: Path) -> None:
    clock = FakeClock(T0 + 0.5)
    manager = capture.CaptureManager(
        tmp_path / "a.parquet", window_ticks=6, auto_tick=False, clock=clock
    )
    manager.start(T0)
    rec = manager.recorder
    g = rec.gauge("g")
    quiet = rec.gauge("quiet")
    quiet.set(1.0)
    expected: dict[int, float] = {}
    for k in range(10):
        if k % 3 == 0:
            g.set(float(k))
        manager.take_tick(T0 + k)
        clock.now += 1
        expected[T0 + k] = float(k - k % 3)
    rec.record_historical("gauge", "set", "g", None, 100.0, T0 + 7.5)
    expected[T0 + 7] = expected[T0 + 8] = 100.0
    manager.rotate(tmp_path / "b.parquet")
    for k in range(10, 12):
        manager.take_tick(T0 + k)
        clock.now += 1
        expected[T0 + k] = 9.0
    manager.close()
    table = pq.read_table([tmp_path / "a.parquet", tmp_path / "b.parquet"])
    rows = table.to_pylist()
    got = {int(r["time"].timestamp()): r["value_float"] for r in rows if r["metric_name"] == "g"}
    assert got == expected
    assert sorted(int(r["time"].timestamp()) for r in rows if r["metric_name"] == "quiet") == list(
        range(T0, T0 + 12)
    )
