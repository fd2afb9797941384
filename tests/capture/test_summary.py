"""Each file's footer summary (``capture.summary``) against a DuckDB scan of the same file."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
import pytest

from capture.summary import (
    SUMMARY_METADATA_KEY,
    SummaryBuilder,
    loads,
    merge_summaries,
    sketch_quantile,
)
from common.contract import SUMMARY_AGGREGATE_METRICS
from tests.summary_data import CPU_USEC, OOM, PSS, record

duckdb = pytest.importorskip("duckdb", reason="duckdb is not installed (pip install -e '.[query]')")

KEY = "coalesce(container_id, element_at(labels, 'cgroup')[1], pod_uid)"


def footer_summary(path: Path) -> dict:
    meta = pq.read_metadata(path).metadata
    found = loads(meta[SUMMARY_METADATA_KEY.encode()])
    assert found is not None
    return found


def check_cells(summary: dict, expected: dict) -> None:
    """The summary's cells against the scan's: rows always, aggregates where it keeps them."""
    found = cells(summary)
    assert set(found) == set(expected)
    for key, cell in found.items():
        assert cell[1] == expected[key][0], key
        if len(cell) == 2:
            assert key[2] not in SUMMARY_AGGREGATE_METRICS
        elif summary["metrics"][key[2]] == "gauge":
            assert cell[2:5] == pytest.approx(expected[key][1:]), key
        else:
            assert cell[4] == expected[key][1], key


def cells(summary: dict) -> dict[tuple[str, str | None, str], list]:
    return {
        (run["run_id"], group["key"], metric): cell
        for run in summary["runs"]
        for group in run["groups"]
        for metric, cell in group["cells"].items()
    }


def scanned(path: Path | str) -> dict[tuple[str, str | None, str], tuple]:
    """Per (run, container key, metric): rows, then sum/min/max (gauges) or the increase over
    every series (the series as finemon query tells them: names left out), resets skipped."""
    con = duckdb.connect()
    source = f"read_parquet('{path}')"
    gauges = con.execute(
        f"""SELECT run_id, {KEY} AS k, metric_name, count(*), sum(value_float),
            min(value_float), max(value_float)
        FROM {source} WHERE metric_kind = 'gauge' GROUP BY ALL"""
    ).fetchall()
    counters = con.execute(
        f"""WITH r AS (
            SELECT run_id, {KEY} AS k, metric_name, value_int - lag(value_int) OVER (
                PARTITION BY run_id, metric_name, {KEY}, labels ORDER BY time) AS d
            FROM {source} WHERE metric_kind = 'counter')
        SELECT run_id, k, metric_name, count(*), coalesce(sum(d) FILTER (WHERE d >= 0), 0)
        FROM r GROUP BY ALL"""
    ).fetchall()
    out = {(r[0], r[1], r[2]): tuple(r[3:]) for r in gauges}
    out |= {(r[0], r[1], r[2]): tuple(r[3:]) for r in counters}
    return out


def test_the_footer_summary_matches_a_scan_of_the_file(tmp_path: Path) -> None:
    record(tmp_path, ticks=120, ticks_per_file=60, containers=2)
    files = sorted(tmp_path.rglob("*.parquet"))
    assert len(files) >= 2
    for path in files:
        summary = footer_summary(path)
        con = duckdb.connect()
        rows, first, last = con.execute(
            f"SELECT count(*), min(epoch_ms(time)), max(epoch_ms(time)) FROM read_parquet('{path}')"
        ).fetchone()
        assert (summary["rows"], summary["first_ms"], summary["last_ms"]) == (rows, first, last)
        kinds = dict(
            con.execute(
                f"SELECT DISTINCT metric_name, metric_kind FROM read_parquet('{path}')"
            ).fetchall()
        )
        assert summary["metrics"] == kinds
        check_cells(summary, scanned(path))
        # The late-named container is one group, keyed by its id, with its names.
        run = summary["runs"][0]
        groups = {g["key"]: g for g in run["groups"]}
        late = groups[f"{2:064x}"]
        assert late["labels"].get("node_name") == "node-a"
        # A cgroup-only container, and node-wide rows under no key.
        assert "system.slice/docker-abc.scope" in groups
        assert groups[None]["cells"] == {"node.load1": [1, groups[None]["rows"]]}
        # Its processes: two series of PSS, each with its own aggregates.
        pss = groups[f"{0:064x}"]["cells"][PSS]
        assert pss[0] == 2 and len(pss[6]) == 2
        assert run["labels"] == {"cluster_name": "c1", "node_name": "node-a"}


def test_counters_chain_across_a_renamed_series_and_skip_resets(tmp_path: Path) -> None:
    record(tmp_path, ticks=90, ticks_per_file=1000, containers=1)
    (path,) = tmp_path.rglob("*.parquet")
    found = cells(footer_summary(path))
    expected = scanned(path)
    run = next(iter({k[0] for k in found}))
    late = f"{1:064x}"
    # Renamed at a third of the run (a new capture series): one series, chained, as finemon
    # query sees it.
    assert found[(run, late, CPU_USEC)][0] == 1
    assert found[(run, late, CPU_USEC)][4] == expected[(run, late, CPU_USEC)][1] == 89 * 2000
    # The first container's counter restarts at half the run: the drop is skipped.
    first = f"{0:064x}"
    assert found[(run, first, CPU_USEC)][4] == expected[(run, first, CPU_USEC)][1]
    assert found[(run, first, CPU_USEC)][4] < 89 * 1000
    assert found[(run, first, OOM)][2:] == [0, 1, 1]


def test_merged_summaries_equal_the_summary_of_all_rows(tmp_path: Path) -> None:
    record(tmp_path, ticks=150, ticks_per_file=40, containers=2)
    files = sorted(tmp_path.rglob("*.parquet"))
    merged = merge_summaries(footer_summary(p) for p in reversed(files))
    assert merged is not None
    # Counters chained across files in time order: the increase of the whole run.
    check_cells(merged, scanned(f"{tmp_path}/**/*.parquet"))
    assert merged["rows"] == sum(pq.read_metadata(p).num_rows for p in files)


def test_the_sketch_quantile_is_within_its_accuracy() -> None:
    import numpy as np

    values = np.random.default_rng(3).lognormal(5, 1.5, 5000)
    builder = SummaryBuilder("r", 1.0, sketch_metrics=("g",))

    class Meta:
        kind, name, labels = "gauge", "g", ()

    n = len(values)
    builder.add(np.zeros(n, np.int64), np.arange(n), np.zeros(n, np.int64), values, {0: Meta()})
    summary = builder.summary()
    assert summary is not None
    cell = summary["runs"][0]["groups"][0]["cells"]["g"]
    for q in (0.5, 0.95, 0.99):
        exact = float(np.quantile(values, q))
        assert sketch_quantile(cell[5], q) == pytest.approx(exact, rel=0.02)


def test_the_footer_holds_the_summary_compressed_and_a_bomb_is_refused(tmp_path: Path) -> None:
    """The footer's value is the JSON deflated and base64'd, several times smaller than the
    JSON; a value that would inflate past the bound, a truncated one or garbage reads as no
    summary (the file is then scanned), never a crash or unbounded memory."""
    import base64
    import json
    import zlib

    from capture.summary import MAX_SUMMARY_JSON_BYTES, SUMMARY_ENCODING, dumps

    record(tmp_path, ticks=60, ticks_per_file=60, containers=4)
    path = sorted(tmp_path.rglob("*.parquet"))[0]
    stored = pq.read_metadata(path).metadata[SUMMARY_METADATA_KEY.encode()].decode()
    assert stored.startswith(SUMMARY_ENCODING)
    summary = loads(stored)
    assert summary is not None and summary["rows"] == pq.read_metadata(path).num_rows
    plain = zlib.decompress(base64.b64decode(stored[len(SUMMARY_ENCODING) :]))
    assert len(stored) * 2 < len(plain)
    assert loads(plain) == summary  # the plain JSON reads too
    assert loads(dumps(summary)) == summary

    bomb = zlib.compress(b"[" + b" " * (MAX_SUMMARY_JSON_BYTES + 1) + b"]", 9)
    assert len(bomb) < 200_000
    assert loads(SUMMARY_ENCODING + base64.b64encode(bomb).decode()) is None
    assert loads(stored[: len(stored) // 2]) is None  # truncated
    assert loads(SUMMARY_ENCODING + "not base64!") is None
    assert loads(json.dumps({"version": 99})) is None
