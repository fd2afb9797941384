"""The docs' examples stay true: the README's first query, and every DuckDB, pandas and finemon
example of docs/querying.md and docs/cli.md, run against the synthetic dataset, as a Kubernetes
node records it and as a host that is not one records it (no container_id nor kubelet names:
the ``cgroup`` label names the container), and give the answers the dataset was built with.
The Spark blocks are only checked to be Python (Spark is not installed)."""

from __future__ import annotations

import ast
import os
import re
import shlex
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pytest

from capture.schema import capture_schema
from monitor.cli import main
from monitor.contract import LABEL_COLUMNS, PARTITION_KEYS
from tests.analysis.synthetic import (
    BATCH_ID,
    DB_ID,
    HOST_CGROUPS,
    MIB,
    OOM_TICK,
    RUN_A_START_MS,
    WEB_ID,
    write_small,
)

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
QUERYING = REPO / "docs" / "querying.md"
CLI = REPO / "docs" / "cli.md"


def section_text(doc: Path, title: str) -> str:
    """Section ``title`` of ``doc``, up to the next section of the same or a higher level."""
    text = doc.read_text()
    start = text.index(f"\n{title}\n") + 1
    level = title.split(" ", maxsplit=1)[0]
    ends = [text.find(f"\n{'#' * n} ", start + 1) for n in range(2, len(level) + 1)]
    end = min((e for e in ends if e != -1), default=len(text))
    return text[start : end + 1]


FENCE = re.compile(r"^```([^\n]*)\n(.*?)^```$", re.M | re.S)
OOM_AT = pd.Timestamp(RUN_A_START_MS + OOM_TICK * 1000, unit="ms", tz="UTC")


def blocks(doc: Path, title: str, info: str) -> list[str]:
    """The code of every fenced block of section ``title`` of ``doc`` whose info string is
    ``info``."""
    return [code for kind, code in FENCE.findall(section_text(doc, title)) if kind.strip() == info]


def finemon_commands(doc: Path, title: str) -> list[list[str]]:
    """The ``finemon ...`` lines of the ``sh`` blocks of section ``title``, split as a shell
    would."""
    return [
        shlex.split(line)
        for code in blocks(doc, title, "sh")
        for line in code.splitlines()
        if line.startswith("finemon ")
    ]


@pytest.fixture(params=["kubernetes", "host"])
def host(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[bool]:
    """The working directory holds the synthetic dataset as ``finemon-data`` (and as
    ``finemon-demo``, the README's), as a Kubernetes node records it or (True) as a host that
    is not one does."""
    write_small(tmp_path / "finemon-data", host=request.param == "host")
    (tmp_path / "finemon-demo").symlink_to("finemon-data")
    cwd = Path.cwd()
    os.chdir(tmp_path)
    try:
        yield request.param == "host"
    finally:
        os.chdir(cwd)


def test_the_docs_have_the_examples_they_promise() -> None:
    assert len(blocks(README, "## A first query", "sh")) == 1
    assert len(blocks(README, "## A first query", "python")) == 1
    assert len(blocks(QUERYING, "## DuckDB", "sql")) == 3
    assert len(blocks(QUERYING, "## pandas", "python")) == 4
    assert len(blocks(QUERYING, "## Spark", "python spark")) == 1
    assert len(blocks(QUERYING, "## A bucket: Spark and Trino", "python spark")) == 1
    assert [argv[1] for argv in finemon_commands(CLI, "## The analysis commands")] == [
        "query", "query", "query", "summary", "report"]  # fmt: skip


def test_the_spark_examples_are_python() -> None:
    spark = [
        *blocks(QUERYING, "## Spark", "python spark"),
        *blocks(QUERYING, "## A bucket: Spark and Trino", "python spark"),
    ]
    for code in spark:
        ast.parse(code)


def names(host: bool) -> tuple[str, str, str]:
    """The display names of db, web and batch in finemon's commands."""
    if host:
        return HOST_CGROUPS[DB_ID], HOST_CGROUPS[WEB_ID], HOST_CGROUPS[BATCH_ID]
    return "shop/db-0/postgres", "shop/web-7d9/nginx", "jobs/batch-x/job"


def test_the_finemon_commands_run(host: bool, capsys: pytest.CaptureFixture[str]) -> None:
    for argv in finemon_commands(CLI, "## The analysis commands"):
        assert main(argv[1:]) == 0, argv
    out = capsys.readouterr().out
    assert Path("report.html").exists()
    db, web, batch = names(host)
    # The first query gives each container's CPU, the second finds the OOM kill, the third
    # the throttled container.
    for name, millicores in ((batch, 1000), (web, 500), (db, 100)):
        assert re.search(rf"^{re.escape(name)}\s+{millicores}$", out, re.M), out
    assert re.search(rf"{re.escape(db)}\s+2024-02-01 00:01:20\+00:00\s+1", out), out
    assert re.search(rf"{re.escape(web)}\s+478", out), out


def test_the_readme_first_query_answers_right(
    host: bool, capsys: pytest.CaptureFixture[str]
) -> None:
    ((argv),) = finemon_commands(README, "## A first query")
    assert main(argv[1:]) == 0, argv
    out = capsys.readouterr().out
    db, web, batch = names(host)
    # Peak working sets: db 100 + 199 MiB before its OOM kill, web 100 MiB, batch 10 MiB.
    for name, mib in ((db, 299), (web, 100), (batch, 10)):
        assert re.search(rf"^{re.escape(name)}\s+{mib}(\.0)?$", out, re.M), out

    (code,) = blocks(README, "## A first query", "python")
    exec(compile(code, str(README), "exec"), {})  # our own docs
    shown = capsys.readouterr().out
    key = HOST_CGROUPS[DB_ID] if host else DB_ID
    # DuckDB's table cuts long values: the db container's key starts its line.
    db_line = next(line for line in shown.splitlines() if key[:20] in line)
    assert "299.0" in db_line, shown
    assert bool(re.search(r"\bpostgres\b", db_line)) != host, shown


def run_sql(code: str) -> list[tuple[Any, ...]]:
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    rows: list[tuple[Any, ...]] = con.execute(code).fetchall()
    return rows


def test_the_duckdb_examples_answer_right(host: bool) -> None:
    rates, shares, before_kill = blocks(QUERYING, "## DuckDB", "sql")

    def key(container_id: str) -> str:
        return HOST_CGROUPS[container_id] if host else container_id

    def name(container_name: str, container_id: str) -> str | None:
        return HOST_CGROUPS[container_id] if host else container_name

    by_container = {row[0]: row[1:] for row in run_sql(rates)}
    assert by_container == {
        key(WEB_ID): (None if host else "nginx", 500.0),
        key(DB_ID): (None if host else "postgres", 100.0),  # its nameless first rows included
        key(BATCH_ID): (None if host else "job", 1000.0),  # the reset skipped
    }

    found = {(row[0], row[1], row[2]): (row[3], row[4]) for row in run_sql(shares)}
    assert found == {
        (name("nginx", WEB_ID), "101", "nginx"): (60.0, 66.7),
        (name("nginx", WEB_ID), "102", "worker"): (30.0, 33.3),
        (name("postgres", DB_ID), "201", "postgres"): (float(100 + OOM_TICK - 1), 100.0),
    }

    rows = run_sql(before_kill)
    assert {row[0] for row in rows} == {OOM_AT.to_pydatetime()}
    assert {row[2] for row in rows} == {name("postgres", DB_ID)}
    working_set = [row[4] for row in rows if row[3] == "container.memory.working_set_bytes"]
    assert len(working_set) == 61  # 60 seconds before the kill, and its tick
    assert working_set[0] == (100 + OOM_TICK - 60) * MIB
    assert working_set[-1] == 50 * MIB  # the tick of the kill: the container started over


def test_the_pandas_examples_answer_right(host: bool) -> None:
    namespace: dict[str, Any] = {}
    for code in blocks(QUERYING, "## pandas", "python"):
        exec(compile(code, str(QUERYING), "exec"), namespace)  # our own docs

    def key(container_id: str) -> str:
        return HOST_CGROUPS[container_id] if host else container_id

    millicores = namespace["millicores"]
    assert millicores[key(WEB_ID)] == pytest.approx(500.0)
    assert millicores[key(BATCH_ID)] == pytest.approx(1000.0)  # the reset skipped
    assert len(millicores) == 3

    shares = namespace["shares"]
    assert shares[(key(WEB_ID), "101", "nginx")] == pytest.approx(2 / 3)
    assert shares[(key(DB_ID), "201", "postgres")] == pytest.approx(1.0)

    ((killed, minute),) = namespace["before_kill"].items()
    assert killed == (key(DB_ID), OOM_AT)
    assert len(minute) == 61
    assert minute["value_float"].max() == (100 + OOM_TICK - 1) * MIB


#: The Trino type of each Arrow type of finemon's files (the Hive connector reads Parquet).
TRINO_TYPES = {
    "string": "VARCHAR",
    "timestamp[ms, tz=UTC]": "TIMESTAMP(3)",
    "int64": "BIGINT",
    "double": "DOUBLE",
    "map<string, string>": "MAP(VARCHAR, VARCHAR)",
}


def test_the_trino_table_has_every_column_of_the_files() -> None:
    (ddl,) = blocks(QUERYING, "## A bucket: Spark and Trino", "sql trino")
    create = re.search(r"CREATE TABLE \S+ \((.*?)\n\)\nWITH \((.*?)\n\);", ddl, re.S)
    assert create, ddl
    declared = [
        tuple(line.split("--")[0].strip().rstrip(",").split(" ", 1))
        for line in create.group(1).strip().splitlines()
    ]
    schema = capture_schema(LABEL_COLUMNS)
    expected = [(field.name, TRINO_TYPES[str(field.type)]) for field in schema]
    # Partition columns come last in the Hive connector's DDL, as strings.
    expected += [(key, "VARCHAR") for key in PARTITION_KEYS]
    assert declared == expected
    keys = ", ".join(f"'{key}'" for key in PARTITION_KEYS)
    assert f"partitioned_by = ARRAY[{keys}]" in create.group(2)
