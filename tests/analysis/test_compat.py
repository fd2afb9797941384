"""What finemon's writer produces reads as a Hive-partitioned dataset in DuckDB, pandas and
pyarrow with the right types, and stays within what Spark reads (no unsigned integers, UTC
timestamps). The data comes from the real writer (capture.CaptureManager) on a fake clock, laid
out by monitor.layout as ``finemon run`` does."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

import capture
from common.contract import LABEL_COLUMNS
from monitor.layout import OutputLayout

START_SECONDS = 1_706_745_597.0  # 2024-01-31 23:59:57 UTC: the run crosses midnight
TICKS = 6
MIB = 1024 * 1024
SERIES = 3


class FakeClock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def write_with_capture(root: Path, node_wide: bool = False) -> Path:
    """Six ticks written by CaptureManager, rotated at midnight into the next dt partition:
    three container series, and with ``node_wide`` a fourth without container labels (null in
    the label columns) like finemon's own ``finemon.*`` metrics."""
    layout = OutputLayout(root, identifier="node-1", run_id="f" * 32)
    clock = FakeClock(START_SECONDS)
    manager = capture.CaptureManager(
        layout.file_path(START_SECONDS, 1),
        run_id=layout.run_id,
        auto_tick=False,
        window_ticks=2,
        flush_seconds=3600,
        label_columns=LABEL_COLUMNS,
        global_labels={"node_name": "node-1"},
        clock=clock,
    )
    labels = {
        "namespace": "shop",
        "pod_name": "web-0",
        "pod_uid": "1b4e28ba-2fa1-11d2-883f-0016d3cca427",
        "container_id": "d" * 64,
        "container_name": "nginx",
        "qos_class": "Burstable",
    }
    try:
        manager.start()
        for tick in range(TICKS):
            if tick == 3:  # 00:00:00: the next file goes to the next day's partition
                manager.rotate(layout.file_path(clock.now, 2))
            capture.gauge("container.memory.working_set_bytes", labels).set(float(100 + tick) * MIB)
            capture.counter("container.cpu.usage_usec", labels).absolute(2**40 + 500_000 * tick)
            capture.gauge("process.memory.pss_bytes", {**labels, "pid": "7", "comm": "nginx"}).set(
                60.0 * MIB
            )
            if node_wide:
                capture.gauge("finemon.containers").set(1.0)
            manager.take_tick()
            clock.now += 1.0
        manager.close()
    finally:
        capture.set_recorder(None)
    return root


@pytest.fixture
def written(tmp_path: Path) -> Path:
    return write_with_capture(tmp_path / "finemon-out")


def test_node_wide_rows_with_null_labels_are_written_and_read(tmp_path: Path) -> None:
    root = write_with_capture(tmp_path / "finemon-out", node_wide=True)
    rows = (
        duckdb.connect()
        .execute(
            f"""SELECT count(*), count(container_id) FROM read_parquet(
            '{root}/**/*.parquet', hive_partitioning = true)
        WHERE metric_name = 'finemon.containers'"""
        )
        .fetchone()
    )
    assert rows == (TICKS, 0)


def test_the_files_stay_within_what_spark_reads(written: Path) -> None:
    files = sorted(written.rglob("*.parquet"))
    assert [path.parent.parent.name for path in files] == ["dt=2024-01-31", "dt=2024-02-01"]
    for path in files:
        schema = pq.read_schema(path)
        for field in schema:
            assert not pa.types.is_unsigned_integer(field.type), field
            if pa.types.is_timestamp(field.type):
                assert field.type.tz == "UTC"
        parquet = pq.ParquetFile(path).schema
        logical = {parquet.column(i).path: str(parquet.column(i).logical_type) for i in range(15)}
        assert logical["time"].startswith("Timestamp(isAdjustedToUTC=true, timeUnit=milliseconds")
        assert not any(
            "Int(bitWidth=" in kind and "isSigned=false" in kind for kind in logical.values()
        )


def test_duckdb_reads_the_directory_with_its_partitions(written: Path) -> None:
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    relation = con.sql(
        f"SELECT * FROM read_parquet('{written}/**/*.parquet', hive_partitioning = true)"
    )
    types = dict(zip(relation.columns, [str(t) for t in relation.types], strict=True))
    assert types["time"] == "TIMESTAMP WITH TIME ZONE"
    assert types["value_int"] == "BIGINT"
    assert types["labels"] == "MAP(VARCHAR, VARCHAR)"
    assert types["dt"] == "DATE"
    assert types["identifier"] == "VARCHAR"
    rows = con.execute(
        f"""SELECT dt, identifier, time, value_int FROM read_parquet(
            '{written}/**/*.parquet', hive_partitioning = true)
        WHERE metric_name = 'container.cpu.usage_usec' ORDER BY time"""
    ).fetchall()
    assert len(rows) == TICKS
    assert rows[0][:2] == (dt.date(2024, 1, 31), "node-1")
    assert rows[-1][0] == dt.date(2024, 2, 1)
    assert rows[0][2] == dt.datetime(2024, 1, 31, 23, 59, 57, tzinfo=dt.UTC)
    assert rows[-1][3] == 2**40 + 500_000 * (TICKS - 1)


def test_pandas_reads_the_directory_with_its_partitions(written: Path) -> None:
    frame = pd.read_parquet(written)
    assert str(frame["time"].dtype) == "datetime64[ms, UTC]"
    assert {"dt", "identifier"} <= set(frame.columns)
    assert sorted(frame["dt"].astype(str).unique()) == ["2024-01-31", "2024-02-01"]
    assert set(frame["identifier"].astype(str)) == {"node-1"}
    assert frame["time"].min() == pd.Timestamp("2024-01-31 23:59:57", tz="UTC")
    pss = frame[frame["metric_name"] == "process.memory.pss_bytes"]
    assert next(dict(labels) for labels in pss["labels"]) == {"comm": "nginx", "pid": "7"}
    # Counters keep every digit with the nullable dtypes (value_int has nulls for gauges).
    exact = pd.read_parquet(written, dtype_backend="numpy_nullable")
    assert str(exact["value_int"].dtype) == "Int64"


def test_pyarrow_dataset_reads_the_directory_with_its_partitions(written: Path) -> None:
    dataset = ds.dataset(written, format="parquet", partitioning="hive")
    schema = dataset.schema
    assert schema.field("time").type == pa.timestamp("ms", tz="UTC")
    assert schema.field("dt").type == pa.string()
    assert schema.field("identifier").type == pa.string()
    assert schema.field("value_int").type == pa.int64()
    assert dataset.count_rows() == TICKS * SERIES
    table = dataset.to_table(columns=["dt", "time"], filter=ds.field("dt") == "2024-02-01")
    assert 0 < table.num_rows < TICKS * SERIES
    assert set(table.column("dt").to_pylist()) == {"2024-02-01"}
