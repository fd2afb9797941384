"""capture.describe: descriptions kept apart from the series, used by the views and the files."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import pyarrow.parquet as pq
import pytest

import capture
from capture.delayed import DROPPED_METRIC, HistoricalOp
from capture.facade import pending_recorder
from capture.files import journal_path
from capture.journal import read_journal
from capture.keys import Kind
from capture.manager import METRICS_METADATA_KEY, WRITE_ERRORS_METRIC
from capture.recorder import CaptureRecorder, Counter, Gauge
from capture.window import MISSED_TICKS_METRIC


def test_a_description_given_before_any_recorder_reaches_every_recorder_installed_later() -> None:
    capture.describe("describe_test.early_bytes", "Given before any recorder", "bytes")
    first, second = CaptureRecorder(), CaptureRecorder()
    assert first.description("describe_test.early_bytes") is None
    capture.set_recorder(first)
    assert first.description("describe_test.early_bytes") == capture.Description(
        "describe_test.early_bytes", "Given before any recorder", "bytes"
    )
    capture.set_recorder(second)
    described = second.description("describe_test.early_bytes")
    assert described is not None and described.unit == "bytes"


def test_a_description_given_while_a_recorder_is_installed_reaches_it_and_later_ones() -> None:
    installed = CaptureRecorder()
    capture.set_recorder(installed)
    capture.describe("describe_test.late", "Given  while\n installed")
    described = installed.description("describe_test.late")
    assert described is not None
    assert described.description == "Given while installed"  # whitespace folded: one line
    assert described.unit is None
    later = CaptureRecorder()
    capture.set_recorder(later)
    assert later.description("describe_test.late") == described


def test_describing_again_replaces_and_an_exact_name_wins_over_a_pattern() -> None:
    recorder = CaptureRecorder()
    recorder.describe("fam.*", "Any member", "count")
    recorder.describe("fam.stat.*", "A stat member")
    recorder.describe("fam.stat.*_usec", "A stat time", "usec")
    recorder.describe("fam.stat.special", "The special one")
    assert recorder.description("fam.other.x").description == "Any member"  # type: ignore[union-attr]
    assert recorder.description("fam.stat.a.b").description == "A stat member"  # type: ignore[union-attr]
    timed = recorder.description("fam.stat.core.idle_usec")
    assert timed is not None and (timed.description, timed.unit) == ("A stat time", "usec")
    assert recorder.description("fam.stat.special").description == "The special one"  # type: ignore[union-attr]
    assert recorder.description("famine") is None
    assert recorder.description("fam") is None
    recorder.describe("fam.stat.special", "Replaced", "bytes")
    special = recorder.description("fam.stat.special")
    assert special is not None and (special.description, special.unit) == ("Replaced", "bytes")
    recorder.describe("fam.stat.*", "A stat member, replaced")
    assert recorder.description("fam.stat.a").description == "A stat member, replaced"  # type: ignore[union-attr]
    assert [d.name for d in recorder.descriptions].count("fam.stat.*") == 1


def test_bad_descriptions_are_refused() -> None:
    with pytest.raises(ValueError):
        capture.describe("describe_test.bad", "  ")
    with pytest.raises(TypeError):
        capture.describe("describe_test.bad", None)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        capture.describe("", "no name")
    with pytest.raises(ValueError):
        capture.describe("describe_test.bad", "unit with a space", "kilo bytes")
    assert pending_recorder().descriptions.get("describe_test.bad") is None


def test_the_recorders_own_counters_describe_themselves() -> None:
    recorder = CaptureRecorder()
    for name in (DROPPED_METRIC, MISSED_TICKS_METRIC):
        described = recorder.description(name)
        assert described is not None and described.unit == "count", name
    assert "too_old" in recorder.description(DROPPED_METRIC).description  # type: ignore[union-attr]


class _PlainRecorder:
    """A recorder without ``describe`` (it is optional)."""

    def gauge(self, name: str, labels: Mapping[str, str] | None = None) -> Gauge:
        raise NotImplementedError

    def counter(self, name: str, labels: Mapping[str, str] | None = None) -> Counter:
        raise NotImplementedError

    def record_historical(
        self,
        kind: Kind,
        op: HistoricalOp,
        name: str,
        labels: Mapping[str, str] | None,
        value: float,
        timestamp: float,
    ) -> None:
        raise NotImplementedError


def test_a_recorder_without_describe_is_still_a_recorder() -> None:
    plain = _PlainRecorder()
    assert isinstance(plain, capture.Recorder)
    capture.set_recorder(plain)
    capture.describe("describe_test.plain", "Kept for the next recorder")
    capture.set_recorder(None)
    described = pending_recorder().descriptions.get("describe_test.plain")
    assert described is not None and described.description == "Kept for the next recorder"


def test_each_file_carries_the_descriptions_in_its_metadata(tmp_path: Path) -> None:
    capture.describe("describe_test.file_bytes", "Bytes in the file test", "bytes")
    capture.describe("describe_test.family.*", "A family in the file test")
    out = tmp_path / "a.parquet"
    manager = capture.CaptureManager(out, auto_tick=False, window_ticks=1)
    manager.start()
    try:
        capture.gauge("describe_test.file_bytes").set(5)
        capture.counter("describe_test.family.n").increment()
        manager.take_tick()
        # The journal's header has them too: a file recovered after a crash keeps them.
        header = read_journal(journal_path(out)).header
        journaled = json.loads(header["metadata"][METRICS_METADATA_KEY])
        capture.describe("describe_test.rotated", "Described after the first file was opened")
        manager.take_tick(manager.recorder.current_tick())  # the first tick leaves the window
        second = manager.rotate(tmp_path / "b.parquet")
    finally:
        manager.close()
    # Registered after the file was opened: its kind unknown then; a pattern has no kind.
    assert journaled["describe_test.file_bytes"] == {
        "unit": "bytes",
        "description": "Bytes in the file test",
    }
    assert journaled["describe_test.family.*"] == {"description": "A family in the file test"}
    assert journaled[WRITE_ERRORS_METRIC]["unit"] == "count"
    assert journaled[DROPPED_METRIC]["description"].startswith("Delayed")
    assert "describe_test.rotated" not in journaled
    assert second is not None and second.path == out
    first = json.loads(pq.read_schema(out).metadata[METRICS_METADATA_KEY.encode()])
    assert set(first) == {"describe_test.file_bytes", "describe_test.family.*"}
    rotated = json.loads(
        pq.read_schema(tmp_path / "b.parquet").metadata[METRICS_METADATA_KEY.encode()]
    )
    assert rotated["describe_test.file_bytes"] == {
        "kind": "gauge",
        "unit": "bytes",
        "description": "Bytes in the file test",
    }
    # A file with rows describes the metrics it holds, no others: the family by its pattern,
    # not the metric described after the first file but never recorded, nor capture's own.
    assert set(rotated) == {"describe_test.file_bytes", "describe_test.family.*"}


def test_a_file_describes_only_the_metrics_it_holds(tmp_path: Path) -> None:
    capture.describe("describe_test.held_bytes", "Held in the file", "bytes")
    capture.describe("describe_test.never_recorded", "Described, never recorded")
    capture.describe("describe_test.stat.*", "A family with one member recorded")
    capture.describe("describe_test.other.*", "A family with none recorded")
    out = tmp_path / "held.parquet"
    with capture.CaptureManager(out, window_ticks=2, auto_tick=False) as manager:
        capture.gauge("describe_test.held_bytes").set(1)
        capture.counter("describe_test.stat.pgfault").increment(3)
        for _ in range(3):
            manager.take_tick()
        # The journal's header keeps every description (a crash's recovery has no rows yet).
        header = read_journal(journal_path(out)).header
        assert "describe_test.never_recorded" in json.loads(
            header["metadata"][METRICS_METADATA_KEY]
        )
    table = pq.read_table(out)
    assert set(table["metric_name"].to_pylist()) == {
        "describe_test.held_bytes",
        "describe_test.stat.pgfault",
    }
    described = json.loads(pq.read_schema(out).metadata[METRICS_METADATA_KEY.encode()])
    assert described == {
        "describe_test.held_bytes": {
            "kind": "gauge",
            "unit": "bytes",
            "description": "Held in the file",
        },
        "describe_test.stat.*": {"description": "A family with one member recorded"},
    }
