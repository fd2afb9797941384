"""The README's "Analysing a run" stays true: every DuckDB, pandas and finemon example in it
runs against the synthetic dataset and gives the answers the dataset was built with. The Spark
block is only checked to be Python (Spark is not installed)."""

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

from monitor.cli import main
from tests.analysis.synthetic import (
    DB_ID,
    MIB,
    OOM_TICK,
    RUN_A_START_MS,
    WEB_ID,
    write_small,
)

README = Path(__file__).resolve().parents[2] / "README.md"


def section_text() -> str:
    """The README's "## Analysing a run" section, up to the next top-level section."""
    text = README.read_text()
    start = text.index("## Analysing a run\n")
    end = text.find("\n## ", start + 1)
    return text[start : end + 1 if end != -1 else len(text)]


FENCE = re.compile(r"^```([^\n]*)\n(.*?)^```$", re.M | re.S)
OOM_AT = pd.Timestamp(RUN_A_START_MS + OOM_TICK * 1000, unit="ms", tz="UTC")


def blocks(info: str) -> list[str]:
    """The code of every fenced block whose info string is exactly ``info``."""
    return [code for kind, code in FENCE.findall(section_text()) if kind.strip() == info]


@pytest.fixture
def in_dataset_dir(tmp_path: Path) -> Iterator[Path]:
    """The working directory holds the synthetic dataset as ``finemon-out``, as the docs say."""
    write_small(tmp_path / "finemon-out")
    cwd = Path.cwd()
    os.chdir(tmp_path)
    try:
        yield tmp_path
    finally:
        os.chdir(cwd)


def test_the_doc_has_the_examples_it_promises() -> None:
    assert section_text().startswith("## Analysing a run\n")
    assert len(blocks("sql")) == 3
    assert len(blocks("python")) == 4
    assert len(blocks("python spark")) == 1
    assert len(blocks("sh")) == 3


def test_the_spark_example_is_python() -> None:
    (spark,) = blocks("python spark")
    ast.parse(spark)


def test_the_finemon_commands_run(in_dataset_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    commands = [
        shlex.split(line)
        for code in blocks("sh")
        for line in code.splitlines()
        if line.startswith("finemon ")
    ]
    assert [argv[1] for argv in commands] == ["summary", "report", "query", "query", "query"]
    for argv in commands:
        assert main(argv[1:]) == 0, argv
    out = capsys.readouterr().out
    assert (in_dataset_dir / "report.html").exists()
    # The second query finds the OOM kill, the third the throttled container.
    assert re.search(r"shop/db-0/postgres\s+2024-02-01 00:01:20\+00:00\s+1", out), out
    assert re.search(r"shop/web-7d9/nginx\s+478", out), out


def run_sql(code: str) -> list[tuple[Any, ...]]:
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    rows: list[tuple[Any, ...]] = con.execute(code).fetchall()
    return rows


def test_the_duckdb_examples_answer_right(in_dataset_dir: Path) -> None:
    rates, shares, before_kill = blocks("sql")

    by_container = {row[0]: row[1:] for row in run_sql(rates)}
    assert by_container[WEB_ID] == ("nginx", 500.0)
    assert by_container[DB_ID] == ("postgres", 100.0)  # its nameless first rows included
    assert by_container["c" * 64] == ("job", 1000.0)  # the reset skipped

    found = {(row[1], row[2]): (row[3], row[4]) for row in run_sql(shares)}
    assert found == {
        ("101", "nginx"): (60.0, 66.7),
        ("102", "worker"): (30.0, 33.3),
        ("201", "postgres"): (float(100 + OOM_TICK - 1), 100.0),
    }

    rows = run_sql(before_kill)
    assert {row[0] for row in rows} == {OOM_AT.to_pydatetime()}
    assert {row[2] for row in rows} == {"postgres"}
    working_set = [row[4] for row in rows if row[3] == "container.memory.working_set_bytes"]
    assert len(working_set) == 61  # 60 seconds before the kill, and its tick
    assert working_set[0] == (100 + OOM_TICK - 60) * MIB
    assert working_set[-1] == 50 * MIB  # the tick of the kill: the container started over


def test_the_pandas_examples_answer_right(in_dataset_dir: Path) -> None:
    namespace: dict[str, Any] = {}
    for code in blocks("python"):
        exec(compile(code, str(README), "exec"), namespace)  # our own docs

    millicores = namespace["millicores"]
    assert millicores[WEB_ID] == pytest.approx(500.0)
    assert millicores["c" * 64] == pytest.approx(1000.0)  # the reset skipped

    shares = namespace["shares"]
    assert shares[(WEB_ID, "101", "nginx")] == pytest.approx(2 / 3)
    assert shares[(DB_ID, "201", "postgres")] == pytest.approx(1.0)

    ((key, minute),) = namespace["before_kill"].items()
    assert key == (DB_ID, OOM_AT)
    assert len(minute) == 61
    assert minute["value_float"].max() == (100 + OOM_TICK - 1) * MIB
