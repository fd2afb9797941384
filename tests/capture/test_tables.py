"""Tables of a flush: every row of the frames, cut into row groups of bounded size.

Frames are built directly (series ids in any order, series sets changing between frames, delayed
fixes on top) and turned into tables with a small ``row_group_rows``; the rows must be exactly the
frames' final values, each table sorted by series then tick, each a range of series that no other
table of the flush holds, and none larger than the bound.
"""

from __future__ import annotations

from array import array
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from capture import tables
from capture.accumulator import FrameValues, SeriesIds, TickFrame
from capture.manager import CaptureManager
from capture.recorder import CaptureRecorder
from capture.tables import (
    PointColumns,
    RowLayout,
    TableBuilder,
    frames_to_tables,
    points_to_tables,
)

T0 = 1_700_000_000
LAYOUT = RowLayout("run", 1.0, T0, label_columns=("pod",), global_labels=(("node", "n1"),))


@dataclass(frozen=True)
class Meta:
    kind: str
    name: str
    labels: tuple[tuple[str, str], ...]


def meta_of(sid: int) -> Meta:
    # Even ids are gauges, odd ones counters; the name tells the id back from a row.
    pod = (("pod", f"p{sid % 3}"),) if sid % 4 else ()
    return Meta("gauge" if sid % 2 == 0 else "counter", f"m{sid}", (*pod, ("k", str(sid % 5))))


@st.composite
def frame_lists(draw: st.DrawFn) -> list[TickFrame]:
    universe = draw(st.lists(st.integers(0, 60), min_size=1, max_size=30, unique=True))
    frames: list[TickFrame] = []
    shared: tuple[list[int], list[int]] | None = None
    for i in range(draw(st.integers(1, 6))):
        if shared is None or draw(st.booleans()):  # the series set changes
            chosen = draw(st.lists(st.sampled_from(universe), unique=True))  # any order
            shared = ([s for s in chosen if s % 2 == 0], [s for s in chosen if s % 2])
        g, c = shared
        frame = TickFrame.from_arrays(
            T0 + i,
            array("q", g),
            array("d", [draw(st.floats(-1e6, 1e6)) for _ in g]),
            bytes(len(g)),
            array("q", c),
            array("q", [draw(st.integers(0, 2**40)) for _ in c]),
            bytes(len(c)),
        )
        for sid in draw(st.lists(st.sampled_from(universe), max_size=4, unique=True)):
            fixed = draw(st.none() | st.integers(0, 1000))
            frame.fixes[sid] = fixed if fixed is None or sid % 2 else float(fixed)
        frames.append(frame)
    return frames


def expected_rows(frames: list[TickFrame]) -> list[tuple[int, int, float | int]]:
    rows = []
    for frame in frames:
        g_sids, g_vals, c_sids, c_vals = frame.materialize(lambda sid: sid % 2 == 0)
        rows += [(sid, frame.tick, v) for sid, v in zip(g_sids, g_vals, strict=True)]
        rows += [(sid, frame.tick, v) for sid, v in zip(c_sids, c_vals, strict=True)]
    return sorted(rows)


def rows_of(table: pa.Table) -> list[tuple[int, int, float | int]]:
    rows = []
    for row in table.to_pylist():
        sid = int(row["metric_name"][1:])
        value = row["value_float"] if sid % 2 == 0 else row["value_int"]
        assert (row["value_float"] is None) == (sid % 2 == 1)
        assert (row["value_int"] is None) == (sid % 2 == 0)
        meta = meta_of(sid)
        assert row["metric_kind"] == meta.kind
        labels = dict(meta.labels, node="n1")
        assert row["pod"] == labels.pop("pod", None)
        assert dict(row["labels"]) == labels
        tick = int(row["time"].timestamp())
        assert row["fetch_index"] == tick - T0
        rows.append((sid, tick, value))
    return rows


@settings(max_examples=150, deadline=None)
@given(frames=frame_lists(), bound=st.integers(1, 12))
def test_tables_hold_every_row_in_series_ranges_of_bounded_size(
    frames: list[TickFrame], bound: int
) -> None:
    check_tables(frames, bound)


@st.composite
def delta_frame_lists(draw: st.DrawFn) -> list[TickFrame]:
    """Frames as the recorder hands them over: consecutive frames share a series set (in any
    id order), most of them deltas that hold only the positions they changed, some dense (as
    after a drain); no fixes. The list may start after the dense frame its first delta is based
    on."""
    universe = draw(st.lists(st.integers(0, 60), min_size=1, max_size=30, unique=True))

    def delta(base: FrameValues, typecode: str) -> FrameValues:
        n = len(base.series)
        positions = sorted(draw(st.lists(st.integers(0, max(0, n - 1)), unique=True))) if n else []
        values = array(typecode, [number(typecode) for _ in positions])
        return FrameValues(
            base.series, values, bytes([1] * len(positions)), array("Q", positions), base
        )

    def number(typecode: str) -> float | int:
        return draw(st.floats(-1e6, 1e6)) if typecode == "d" else draw(st.integers(0, 2**40))

    frames: list[TickFrame] = []
    g = c = None
    for i in range(draw(st.integers(1, 12))):
        choice = draw(st.integers(0, 5))
        if g is not None and c is not None and choice == 1:  # dense over the same series set
            g = FrameValues(
                g.series, array("d", [number("d") for _ in g.series.sids]), bytes(len(g.series))
            )
            c = FrameValues(
                c.series, array("q", [number("q") for _ in c.series.sids]), bytes(len(c.series))
            )
        elif g is None or c is None or choice == 0:  # a new series set: dense
            chosen = draw(st.lists(st.sampled_from(universe), unique=True))
            g_ids = array("q", [s for s in chosen if s % 2 == 0])
            c_ids = array("q", [s for s in chosen if s % 2])
            g = FrameValues(
                SeriesIds(g_ids), array("d", [number("d") for _ in g_ids]), bytes(len(g_ids))
            )
            c = FrameValues(
                SeriesIds(c_ids), array("q", [number("q") for _ in c_ids]), bytes(len(c_ids))
            )
        else:
            g, c = delta(g, "d"), delta(c, "q")
        frames.append(TickFrame(T0 + i, g, c))
    return frames[draw(st.integers(0, len(frames) - 1)) :]


@settings(max_examples=300, deadline=None)
@given(frames=delta_frame_lists(), bound=st.integers(1, 40))
def test_delta_frames_give_the_rows_of_their_dense_form(
    frames: list[TickFrame], bound: int
) -> None:
    # The frames are left as handed over (no frame is made dense by writing them).
    forms = [(f.g.is_dense, f.c.is_dense) for f in frames]
    check_tables(frames, bound)
    assert [(f.g.is_dense, f.c.is_dense) for f in frames] == forms


def check_tables(frames: list[TickFrame], bound: int) -> None:
    expected = expected_rows(frames)
    series = {sid: meta_of(sid) for sid in range(61)}
    tables = list(frames_to_tables(frames, series, LAYOUT, TableBuilder(), bound))
    everything: list[tuple[int, int, float | int]] = []
    previous_last = -1
    for table in tables:
        assert table.schema == LAYOUT.schema
        rows = rows_of(table)
        assert rows, "no empty table"
        assert rows == sorted(rows), "each table is sorted by series, then tick"
        assert rows[0][0] > previous_last, "a series lies in one table only"
        previous_last = rows[-1][0]
        assert len(rows) <= max(bound, len(frames))
        for name in ("metric_name", "metric_kind", "pod"):
            column = table[name].combine_chunks()
            # A row group's dictionary holds what its rows use (it is stored whole).
            used = {v for v in column.to_pylist() if v is not None}
            assert sorted(column.dictionary.to_pylist()) == sorted(used)
        everything += rows
    assert everything == expected


def test_rows_of_unknown_series_are_dropped() -> None:
    frame = TickFrame.from_arrays(
        T0, array("q", [4, 2]), array("d", [4.0, 2.0]), bytes(2), array("q"), array("q"), b""
    )
    tables = list(frames_to_tables([frame], {2: meta_of(2)}, LAYOUT))
    assert [rows_of(t) for t in tables] == [[(2, T0, 2.0)]]


def test_points_are_sorted_and_cut_into_row_groups() -> None:
    sids = [7, 2, 7, 2, 5, 9]
    ticks = [T0 + 1, T0 + 1, T0, T0, T0, T0 + 2]
    points = PointColumns(
        pa.array(sids, pa.int64()),
        pa.array(ticks, pa.int64()),
        pa.array(
            [None if s % 2 == 0 else s * 10 + t - T0 for s, t in zip(sids, ticks, strict=True)],
            pa.int64(),
        ),
        pa.array([float(t - T0) if s % 2 == 0 else None for s, t in zip(sids, ticks, strict=True)]),
    )
    series = {sid: meta_of(sid) for sid in (2, 5, 7)}  # 9 is unknown: dropped
    tables = list(points_to_tables(points, series, LAYOUT, row_group_rows=2))
    assert [t.num_rows for t in tables] == [2, 2, 1]
    assert [r for t in tables for r in rows_of(t)] == [
        (2, T0, 0.0),
        (2, T0 + 1, 1.0),
        (5, T0, 50),
        (7, T0, 70),
        (7, T0 + 1, 71),
    ]


def test_the_manager_writes_row_groups_of_bounded_size(tmp_path: Path) -> None:
    path = tmp_path / "m.parquet"
    now = [float(T0)]
    manager = CaptureManager(
        path, window_ticks=2, row_group_rows=16, auto_tick=False, clock=lambda: now[0]
    )
    with manager:
        handles = [manager.recorder.gauge("g", {"i": str(i)}) for i in range(20)]
        for tick in range(6):
            for i, handle in enumerate(handles):
                handle.set(float(tick * 100 + i))
            manager.take_tick(T0 + tick)
            now[0] = T0 + tick + 1.0
    metadata = pq.ParquetFile(path).metadata
    assert metadata.num_rows == 20 * 6
    sizes = [metadata.row_group(i).num_rows for i in range(metadata.num_row_groups)]
    assert max(sizes) <= 16 and len(sizes) >= 120 // 16
    table = pq.read_table(path)
    got = sorted(zip(table["labels"].to_pylist(), table["value_float"].to_pylist(), strict=True))
    want = sorted(([("i", str(i))], float(t * 100 + i)) for i in range(20) for t in range(6))
    assert got == want


def test_flushes_over_unchanged_series_reuse_the_ids_they_write(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The ids a flush writes (a sort and a lookup per series: 4 MB of a 100,000-series flush's
    # peak) are computed again only when the series sets changed.
    computed: list[int] = []
    known_sids = tables._known_sids

    def counting(candidates: Any, series: Any) -> Any:
        computed.append(len(candidates))
        return known_sids(candidates, series)

    monkeypatch.setattr(tables, "_known_sids", counting)
    recorder = CaptureRecorder(window_ticks=2)
    recorder.begin(T0)
    gauges = [recorder.gauge("g", {"i": str(i)}) for i in range(5)]
    counters = [recorder.counter("c", {"i": str(i)}) for i in range(3)]
    builder = TableBuilder()
    layout = RowLayout("run", 1.0, T0)

    def take(ticks: range) -> None:
        for tick in ticks:
            for i, gauge in enumerate(gauges):
                gauge.set(tick - T0 + i / 10)
            for counter in counters:
                counter.increment()
            recorder.take_tick(tick)

    def flush() -> list[tuple[str, str, int, float | int]]:
        frames, infos = recorder.pop_ready()
        rows = [r for t in frames_to_tables(frames, infos, layout, builder) for r in t.to_pylist()]
        return sorted(
            (r["metric_name"], dict(r["labels"])["i"], r["fetch_index"],
             r["value_float"] if r["value_int"] is None else r["value_int"])
            for r in rows
        )  # fmt: skip

    take(range(T0, T0 + 4))  # ticks 0 and 1 leave the window
    assert flush() == sorted(
        [("g", str(i), t, t + i / 10) for i in range(5) for t in (0, 1)]
        + [("c", str(i), t, t + 1) for i in range(3) for t in (0, 1)]
    )
    assert computed == [8]
    take(range(T0 + 4, T0 + 6))  # the same series: nothing computed again
    second = flush()
    assert computed == [8]
    assert second == sorted(
        [("g", str(i), t, t + i / 10) for i in range(5) for t in (2, 3)]
        + [("c", str(i), t, t + 1) for i in range(3) for t in (2, 3)]
    )
    gauges.append(recorder.gauge("g", {"i": "5"}))  # a new series: a new gauge set
    take(range(T0 + 6, T0 + 10))
    third = flush()  # ticks 4 and 5 over the old sets, 6 and 7 over the new one
    assert len(computed) == 2
    assert ("g", "5", 6, 6.5) in third and ("g", "5", 7, 7.5) in third
    assert len(third) == 2 * 8 + 2 * 9


def test_files_keep_statistics_where_they_can_skip_a_read(tmp_path: Path) -> None:
    path = tmp_path / "s.parquet"
    now = [float(T0)]
    manager = CaptureManager(
        path, window_ticks=2, label_columns=("pod",), auto_tick=False, clock=lambda: now[0]
    )
    with manager:
        gauge = manager.recorder.gauge("g", {"pod": "p1", "k": "v"})
        counter = manager.recorder.counter("c", {"pod": "p1"})
        for tick in range(4):
            gauge.set(tick * 1.5)
            counter.increment(tick)
            manager.take_tick(T0 + tick)
            now[0] = T0 + tick + 1.0
    metadata = pq.ParquetFile(path).metadata
    assert metadata.num_row_groups >= 1
    group = metadata.row_group(0)
    with_statistics = {
        group.column(j).path_in_schema
        for j in range(group.num_columns)
        if group.column(j).is_stats_set and group.column(j).statistics.has_min_max
    }
    # Every column a reader filters on (deltalake skips a file whose filtered column has
    # none); the label map has none.
    assert {"time", "fetch_index", "run_id", "pod"} <= with_statistics
    assert {"metric_name", "metric_kind", "value_int", "value_float"} <= with_statistics
    assert not {name for name in with_statistics if name.startswith("labels.")}
    assert not any(name.startswith("labels.") for name in with_statistics)
    low = metadata.row_group(0).column(metadata.schema.names.index("time")).statistics.min
    assert int(low.timestamp()) == T0
