"""``finemon catalog``: the files registered in an Iceberg table, read back through pyiceberg.

A real SQL catalog (SQLite) and pyiceberg's own scans; the counts are checked against DuckDB
over the same files.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from common.iceberg import open_catalog, register
from tests.analysis.test_docs import blocks
from tests.tables.recorded import CPU, DAY_START, MEMORY, record, write_file

pytest.importorskip("pyiceberg", reason="pyiceberg is in the dev extra (iceberg)")

SRC = Path(__file__).resolve().parents[2] / "src"
TABLES = SRC.parent / "docs" / "tables.md"


def catalog_of(tmp_path: Path):  # type: ignore[no-untyped-def]
    return open_catalog(f"sqlite:///{tmp_path}/catalog.db", (tmp_path / "warehouse").as_uri())


def duckdb_count(root: Path, where: str = "true") -> int:
    return int(
        duckdb.sql(
            f"SELECT count(*) FROM read_parquet('{root}/**/*.parquet', hive_partitioning = true)"
            f" WHERE {where}"
        ).fetchall()[0][0]
    )


def test_files_are_registered_once_with_their_partitions(tmp_path: Path) -> None:
    data = tmp_path / "data"
    record(data)
    catalog = catalog_of(tmp_path)
    first = register(data, catalog)
    assert len(first.added) == 2 and first.removed == [] and first.snapshot_id is not None
    table = catalog.load_table("finemon.metrics")
    assert [f.name for f in table.spec().fields] == ["time_day", "cluster_name", "node_name"]
    partitions = sorted(
        (row["partition"]["node_name"], str(row["partition"]["time_day"]))
        for row in table.inspect.files().to_pylist()
    )
    assert partitions == [("node-1", "2026-12-07"), ("node-2", "2026-12-07")]
    # Again: nothing new, nothing committed.
    again = register(data, catalog)
    assert again.added == [] and again.known == 2 and again.snapshot_id is None
    assert len(catalog.load_table("finemon.metrics").snapshots()) == 1
    # A new file: only it is added.
    write_file(
        data / "dt=2026-12-07" / "identifier=node-1" / "f2.parquet", DAY_START + 500, 5, "c9"
    )
    third = register(data, catalog)
    assert [Path(p).name for p in third.added] == ["f2.parquet"] and third.known == 2


def test_scans_prune_by_partition_and_count_as_duckdb_does(tmp_path: Path) -> None:
    data = tmp_path / "data"
    record(data)
    catalog = catalog_of(tmp_path)
    register(data, catalog)
    table = catalog.load_table("finemon.metrics")
    assert table.scan().to_arrow().num_rows == duckdb_count(data) == 40
    node2 = table.scan(row_filter="node_name = 'node-2'")
    assert len(list(node2.plan_files())) == 1  # the other node's file is not planned
    assert node2.to_arrow().num_rows == duckdb_count(data, "node_name = 'node-2'")
    by_metric = table.scan(row_filter=f"metric_name = '{CPU}' and value_int > 10000").to_arrow()
    assert by_metric.num_rows == duckdb_count(data, f"metric_name = '{CPU}' and value_int > 10000")
    assert by_metric.num_rows > 0
    next_day = table.scan(row_filter="time >= '2026-12-08T00:00:00+00:00'")
    assert list(next_day.plan_files()) == []


def test_files_replaced_by_a_merge_are_swapped_in_one_commit(tmp_path: Path) -> None:
    data = tmp_path / "data"
    folder = data / "dt=2026-12-07" / "identifier=node-1"
    inputs = [
        write_file(folder / f"in{n}.parquet", DAY_START + 20 * n, 10, f"c{n}") for n in range(3)
    ]
    catalog = catalog_of(tmp_path)
    register(data, catalog)
    before = catalog.load_table("finemon.metrics").scan().to_arrow().num_rows
    # As compaction does: one file with the inputs' rows, then the inputs go.
    merged = pa.concat_tables([pq.ParquetFile(p).read() for p in inputs])
    pq.write_table(merged, folder / "merged.parquet")
    for path in inputs:
        path.unlink()
    swap = register(data, catalog)
    assert [Path(p).name for p in swap.added] == ["merged.parquet"]
    assert sorted(Path(p).name for p in swap.removed) == [
        "in0.parquet",
        "in1.parquet",
        "in2.parquet",
    ]
    table = catalog.load_table("finemon.metrics")
    snapshots = table.snapshots()
    assert len(snapshots) == 2  # the swap is one snapshot: no reader sees both or neither
    assert (
        snapshots[-1].summary is not None and snapshots[-1].summary.operation.value == "overwrite"
    )
    assert table.scan().to_arrow().num_rows == before == 60
    files = [row["file_path"] for row in table.inspect.files().to_pylist()]
    assert [Path(p).name for p in files] == ["merged.parquet"]
    # The snapshot before the swap still plans the inputs only (its data files are gone from
    # the directory, as compaction leaves it: time travel across a compaction cannot read).
    old = table.scan(snapshot_id=snapshots[0].snapshot_id)
    assert sorted(Path(task.file.file_path).name for task in old.plan_files()) == [
        p.name for p in inputs
    ]


def test_a_file_across_midnight_is_skipped_and_said(tmp_path: Path) -> None:
    data = tmp_path / "data"
    folder = data / "dt=2026-12-06" / "identifier=node-1"
    across = write_file(folder / "across.parquet", DAY_START - 5, 10, "c0")
    write_file(folder / "before.parquet", DAY_START - 100, 10, "c1")
    result = register(data, catalog_of(tmp_path))
    assert [Path(p).name for p in result.added] == ["before.parquet"]
    assert result.skipped == [(str(across.resolve()), "its rows span two UTC days")]


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    return subprocess.run(
        [sys.executable, "-m", "finemon", "catalog", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )


def test_finemon_catalog_registers_and_says_what_it_did(tmp_path: Path) -> None:
    data = tmp_path / "data"
    record(data)
    uri = f"sqlite:///{tmp_path}/catalog.db"
    done = run_cli(str(data), "--uri", uri, "--table", "fleet.metrics")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("fleet.metrics: 2 files added, 0 removed, 0 already")
    assert "WARNING" not in done.stderr
    assert (data / "_iceberg").is_dir()  # the default warehouse, which dataset readers skip
    assert duckdb_count(data) == 40  # DuckDB's glob still reads only the data
    again = run_cli(str(data), "--uri", uri, "--table", "fleet.metrics")
    assert (
        again.returncode == 0 and "0 files added, 0 removed, 2 already registered" in again.stdout
    )
    table = open_catalog(uri, (data / "_iceberg").as_uri()).load_table("fleet.metrics")
    assert table.scan(row_filter=f"metric_name = '{MEMORY}'").to_arrow().num_rows == 20


def test_finemon_catalog_bad_input_gets_one_line(tmp_path: Path) -> None:
    missing = run_cli(str(tmp_path / "nope"), "--uri", f"sqlite:///{tmp_path}/c.db")
    assert missing.returncode == 2 and "is not a directory" in missing.stderr
    bad_table = run_cli(str(tmp_path), "--uri", f"sqlite:///{tmp_path}/c.db", "--table", "x")
    assert bad_table.returncode == 1 and "is not NAMESPACE.NAME" in bad_table.stderr
    record(tmp_path / "data")
    bad_uri = run_cli(str(tmp_path / "data"), "--uri", "nosuchdriver://x")
    assert bad_uri.returncode == 1
    assert bad_uri.stderr.startswith("finemon catalog: error: cannot open the catalog")
    assert len(bad_uri.stderr.strip().splitlines()) == 1


def test_the_docs_examples_run_and_parse(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (code,) = blocks(TABLES, "### Reading the table", "python iceberg")
    (spark,) = blocks(TABLES, "### Reading the table", "python spark")
    ast.parse(spark)  # pyspark and Java are not here: the Spark example is only parsed
    data = tmp_path / "finemon-data"
    record(data)
    monkeypatch.chdir(tmp_path)
    assert run_cli("finemon-data", "--uri", "sqlite:///finemon-catalog.db").returncode == 0
    printed: list[object] = []
    exec(compile(code, "docs/tables.md", "exec"), {"print": printed.append})
    assert printed == ["1 of 2 files planned", [("c1", 1_500_109.0)]]
