"""The files as a Delta table: deltalake's own readers give DuckDB's answers on the same files.

deltalake turns a column's missing min/max statistics into a filter that skips every file, so
each column a reader filters on must have them (capture/files.py ``statistics_columns``).
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from tests.analysis.test_docs import QUERYING, blocks
from tests.tables.recorded import CPU, record

deltalake = pytest.importorskip("deltalake", reason="deltalake is in the dev extra")


FILTERS = [
    (f"metric_name = '{CPU}'", pc.field("metric_name") == CPU),
    ("metric_kind = 'counter'", pc.field("metric_kind") == "counter"),
    ("metric_kind = 'gauge'", pc.field("metric_kind") == "gauge"),
    ("value_int > 10000", pc.field("value_int") > 10_000),
    ("value_float > 1500105", pc.field("value_float") > 1_500_105),
    ("container_id = 'c1'", pc.field("container_id") == "c1"),
    ("fetch_index < 3", pc.field("fetch_index") < 3),
]  # fmt: skip


def test_every_filtered_column_has_statistics(tmp_path: Path) -> None:
    record(tmp_path)
    for path in tmp_path.rglob("*.parquet"):
        metadata = pq.read_metadata(path)
        group = metadata.row_group(0)
        for i in range(group.num_columns):
            column = group.column(i)
            if column.path_in_schema.startswith("labels."):
                continue  # a map: no reader prunes by its keys and values
            stats = column.statistics
            assert stats is not None, column.path_in_schema
            assert stats.has_min_max or stats.null_count == group.num_rows, column.path_in_schema


@pytest.mark.parametrize(("sql", "expression"), FILTERS, ids=[sql for sql, _ in FILTERS])
def test_deltalake_reads_what_duckdb_reads(tmp_path: Path, sql: str, expression: object) -> None:
    record(tmp_path)
    want = duckdb.sql(
        f"SELECT count(*) FROM read_parquet('{tmp_path}/**/*.parquet', hive_partitioning = true)"
        f" WHERE {sql}"
    ).fetchall()[0][0]
    assert want > 0  # the filter keeps some rows, so a reader that skips every file fails
    deltalake.convert_to_deltalake(
        str(tmp_path),
        partition_by=deltalake.Schema(
            [deltalake.Field("dt", "string"), deltalake.Field("identifier", "string")]
        ),
        partition_strategy="hive",
    )
    table = deltalake.DeltaTable(str(tmp_path))
    assert table.to_pyarrow_dataset().to_table(filter=expression).num_rows == want
    by_partition = table.to_pyarrow_table(filters=[("identifier", "=", "node-2")])
    assert set(by_partition["container_id"].to_pylist()) == {"c1"}


def test_the_docs_delta_example_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (code,) = blocks(QUERYING, "## Delta Lake", "python deltalake")
    record(tmp_path / "finemon-data")
    monkeypatch.chdir(tmp_path)
    printed: list[object] = []
    exec(compile(code, "docs/querying.md", "exec"), {"print": printed.append})
    assert printed == [20]  # the counter's rows: two containers, ten ticks each
    assert (tmp_path / "finemon-data" / "_delta_log").is_dir()
