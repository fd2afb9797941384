"""Reported series into the capture: names, labels, kinds, own timestamps, the series bound.

Each test records through a real CaptureManager into a Parquet file with finemon's columns and
reads the rows back."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

import capture
from common.contract import LABEL_COLUMNS
from monitor.intake.decode import ReportedSeries, ReportedSketch
from monitor.intake.record import BATCH_POINTS, IntakeWriter, series_labels

WINDOW = 60


@pytest.fixture(autouse=True)
def no_recorder_left() -> Iterator[None]:
    capture.set_recorder(None)
    yield
    capture.set_recorder(None)


def record(tmp_path: Path, write: Callable[[int], None]) -> list[dict[str, Any]]:
    """Run a manager whose window holds the last WINDOW ticks (1 s each) up to now, call
    ``write(now_tick)``, take the tick in progress, close and return the rows, sorted by
    name, labels and time."""
    now_tick = math.floor(time.time())
    manager = capture.CaptureManager(
        tmp_path / "out.parquet",
        window_ticks=WINDOW,
        label_columns=LABEL_COLUMNS,
        global_labels={"node_name": "n"},
        auto_tick=False,
    )
    manager.start(now_tick - WINDOW + 1)
    manager.take_tick(now_tick - 1)
    write(now_tick)
    manager.take_tick(now_tick)  # (the daemon takes a tick every interval)
    manager.close()
    rows: list[dict[str, Any]] = pq.read_table(tmp_path / "out.parquet").to_pylist()
    rows.sort(key=lambda r: (r["metric_name"], str(r["labels"]), r["time"]))
    return rows


def target_rows(rows: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    return [r for r in rows if r["metric_name"] == name]


def test_labels_from_tags_host_and_source() -> None:
    labels = series_labels(
        ["env:prod", "env:dev", "canary", "container_id:containerd://abc", "time:x", "a:b:c"],
        "node-1",
        "docker",
        [("device", "sda"), ("cluster", "c1")],
    )
    assert labels == {
        "env": "dev,prod",
        "tag.canary": "true",
        "container_id": "abc",
        "tag.time": "x",
        "a": "b:c",
        "device": "sda",
        "resource.cluster": "c1",
        "host": "node-1",
        "source_type_name": "docker",
    }


def test_reserved_tag_keys_never_collide_with_columns() -> None:
    labels = series_labels(["node_name:x", "run_id:y", "labels:z", "metric_name:w"])
    assert labels == {
        "tag.node_name": "x",
        "tag.run_id": "y",
        "tag.labels": "z",
        "tag.metric_name": "w",
    }


def test_every_point_lands_in_its_own_tick(tmp_path: Path) -> None:
    def write(now: int) -> None:
        points = ((now - 50, 1.0), (now - 30, 2.0), (now - 10, 3.0))
        series = ReportedSeries("mem", "gauge", points, ("container_id:cid-7", "k:v"), "h")
        IntakeWriter().write([series])

    rows = target_rows(record(tmp_path, write), "target.mem")
    assert rows, "no rows"
    first = rows[0]
    assert (first["container_id"], first["node_name"], dict(first["labels"])) == (
        "cid-7",
        "n",
        {"k": "v", "host": "h"},
    )
    by_second = {int(r["time"].timestamp()): r["value_float"] for r in rows}
    start = min(by_second)
    # The gauge holds each value from its point's tick to the next point's.
    assert [by_second[start], by_second[start + 19], by_second[start + 20]] == [1.0, 1.0, 2.0]
    assert by_second[start + 40] == 3.0
    assert len(by_second) == 51  # from the first point's tick to the one in progress


def test_count_is_a_counter_increment_and_rate_a_gauge(tmp_path: Path) -> None:
    def write(now: int) -> None:
        IntakeWriter().write(
            [
                ReportedSeries("reqs", "count", ((now - 20, 2.0), (now - 10, 3.0))),
                ReportedSeries("per_s", "rate", ((now - 20, 0.5),)),
            ]
        )

    rows = record(tmp_path, write)
    counts = target_rows(rows, "target.reqs")
    assert {r["metric_kind"] for r in counts} == {"counter"}
    assert [counts[0]["value_int"], counts[15]["value_int"]] == [2, 5]
    rates = target_rows(rows, "target.per_s")
    assert {(r["metric_kind"], r["value_float"]) for r in rates} == {("gauge", 0.5)}


def test_fractional_counts_carry_so_the_total_stays_true(tmp_path: Path) -> None:
    def write(now: int) -> None:
        points = tuple((now - 40 + i, 0.4) for i in range(10))  # 4.0 in all
        IntakeWriter().write([ReportedSeries("sampled", "count", points)])

    counts = target_rows(record(tmp_path, write), "target.sampled")
    assert counts[-1]["value_int"] == 4


def test_late_and_future_points_are_dropped_under_captures_reasons(tmp_path: Path) -> None:
    def write(now: int) -> None:
        points = ((now - 90, 1.0), (now + 120, 2.0), (now - 5, 3.0))
        IntakeWriter().write([ReportedSeries("g", "gauge", points)])

    rows = record(tmp_path, write)
    assert {r["value_float"] for r in target_rows(rows, "target.g")} == {3.0}
    dropped = {
        dict(r["labels"])["reason"]: r["value_int"]
        for r in rows
        if r["metric_name"] == "capture.dropped"
    }
    assert dropped == {"too_old": 1, "future": 1}


def test_series_past_the_bound_are_dropped_and_counted(tmp_path: Path) -> None:
    writer = IntakeWriter(max_series=2)

    def write(now: int) -> None:
        batch = [ReportedSeries("g", "gauge", ((now - 1, 1.0),), (f"i:{i}",)) for i in range(5)]
        writer.write(batch)
        writer.write(batch[:2])  # known series still go in

    rows = record(tmp_path, write)
    assert {dict(r["labels"])["i"] for r in target_rows(rows, "target.g")} == {"0", "1"}
    assert writer.stats.points_dropped == {"too_many_series": 3}
    assert writer.stats.series == 2
    dropped = [r for r in rows if r["metric_name"] == "finemon.intake.points_dropped"]
    assert dropped[-1]["value_int"] == 3


def test_bad_points_are_dropped_and_counted_never_raised(tmp_path: Path) -> None:
    writer = IntakeWriter()

    def write(now: int) -> None:
        writer.write(
            [
                ReportedSeries("c", "count", ((now - 1, -1.0), (now - 1, 1.0))),
                ReportedSeries("g", "gauge", ((now - 1, math.nan), (now - 1, math.inf))),
                ReportedSeries("c", "gauge", ((now - 1, 1.0),)),  # was a count: refused
            ]
        )

    rows = record(tmp_path, write)
    assert writer.stats.points_dropped == {"negative_count": 1, "non_finite": 2, "rejected": 1}
    assert writer.stats.points_received == 5
    assert writer.stats.points_written == 1
    assert target_rows(rows, "target.c")[-1]["value_int"] == 1


def test_sketches_record_count_sum_min_max(tmp_path: Path) -> None:
    def write(now: int) -> None:
        sketch = ReportedSketch("lat", "h", ("a:b",), ((now - 3, 4, 12.0, 0.5, 9.0),))
        IntakeWriter().write_sketches([sketch])

    rows = record(tmp_path, write)
    last = {r["metric_name"]: r for r in rows if r["metric_name"].startswith("target.lat")}
    assert last["target.lat.count"]["value_int"] == 4
    assert [last[f"target.lat.{k}"]["value_float"] for k in ("sum", "min", "max")] == [
        12.0,
        0.5,
        9.0,
    ]


def test_a_large_request_goes_in_batches_and_a_bad_point_stops_none(tmp_path: Path) -> None:
    writer = IntakeWriter()
    calls: list[int] = []
    series_count = BATCH_POINTS + 500  # two points each: the request takes three batches

    def write(now: int) -> None:
        writer.write([ReportedSeries("first", "count", ((now - 9, 1.0),))])
        batch = [
            ReportedSeries("g", "gauge", ((now - 3, float(i)), (now - 2, i + 0.5)), (f"i:{i}",))
            for i in range(series_count)
        ]
        batch.insert(1000, ReportedSeries("first", "gauge", ((now - 2, 1.0),)))  # a count
        writer.write(batch, checkpoint=lambda: calls.append(1))

    rows = record(tmp_path, write)
    points = target_rows(rows, "target.g")
    by_series: dict[str, list[float]] = {}
    for row in points:
        by_series.setdefault(dict(row["labels"])["i"], []).append(row["value_float"])
    assert len(by_series) == series_count
    # each series: its first point's tick, then its second's until the end of the window
    assert all(
        values[0] == float(i) and values[1] == i + 0.5
        for i, values in ((int(key), v) for key, v in by_series.items())
    )
    assert writer.stats.points_dropped == {"rejected": 1}
    assert writer.stats.points_written == 1 + 2 * series_count
    assert len(calls) >= 2  # between the batches, and every CHECKPOINT_SERIES series
