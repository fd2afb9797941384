"""The docs' examples stay true: the README's first query, and every DuckDB, pandas and finemon
example of docs/querying.md and docs/cli.md, run against the synthetic dataset and give the
answers it was built with, whichever way it was recorded (:class:`Layout`): on a Kubernetes
node, on a host that is not one (no container_id nor kubelet names: the ``cgroup`` label names
the container), on a node whose kubelet names are not known yet. The Spark blocks run where
pyspark and a Java runtime are installed (pyspark is not in the dev extra) and are parsed
everywhere; the Trino table is checked against the files' schema."""

from __future__ import annotations

import ast
import datetime
import os
import re
import shlex
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from capture.schema import capture_schema
from common.contract import LABEL_COLUMNS, PARTITION_KEYS
from finemon.cli import main
from tests.analysis.synthetic import (
    BATCH_ID,
    DB_ID,
    HOST_CGROUPS,
    MIB,
    NODE,
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


#: An identifier of digits only (a node named 42): DuckDB, pyarrow, pandas and polars would
#: read it as the number 42 unless told its type.
DIGITS_IDENTIFIER = "42"


@dataclass(frozen=True)
class Layout:
    """How the synthetic dataset was recorded: ``kubernetes``, ``host`` (not a Kubernetes node:
    the ``cgroup`` label names each container), ``nameless`` (a Kubernetes node whose kubelet
    names are not on disk yet: ``container_id``, ``pod_uid`` and ``qos_class`` only) or
    ``digits`` (a Kubernetes node whose ``identifier`` is made of digits only, which readers
    that guess partition types take for a number)."""

    name: str

    @property
    def host(self) -> bool:
        return self.name == "host"

    @property
    def named(self) -> bool:
        """Whether the rows carry kubelet's names (namespace, pod_name, container_name)."""
        return self.name in ("kubernetes", "digits")

    @property
    def identifier(self) -> str:
        """The ``identifier=`` partition of every file."""
        return DIGITS_IDENTIFIER if self.name == "digits" else NODE

    def key(self, container_id: str) -> str:
        """The container as the docs group it: ``coalesce(container_id, labels['cgroup'])``."""
        return HOST_CGROUPS[container_id] if self.host else container_id

    def container_name(self, container_name: str) -> str | None:
        return container_name if self.named else None

    def shown(self, container_name: str, container_id: str) -> str:
        """``coalesce(container_name, container)``: the name, else the key."""
        return self.container_name(container_name) or self.key(container_id)


def forget_names(root: Path) -> None:
    """Rewrite every file of ``root`` as a node records containers whose kubelet names it has
    not found: the name columns null."""
    for path in root.rglob("*.parquet"):
        table = pq.read_table(path)
        for column in ("namespace", "pod_name", "container_name"):
            index = table.schema.get_field_index(column)
            empty = pc.if_else(True, None, table[column])  # same type, every value null
            table = table.set_column(index, table.schema.field(column), empty)
        pq.write_table(table, path, compression="zstd")


def make_dataset(directory: Path, layout: Layout) -> None:
    """The synthetic dataset as ``finemon-data`` (and as ``finemon-demo``, the README's) in
    ``directory``, recorded as ``layout`` says."""
    write_small(directory / "finemon-data", host=layout.host)
    if layout.name == "nameless":
        forget_names(directory / "finemon-data")
    for folder in list((directory / "finemon-data").glob("dt=*/identifier=*")):
        folder.rename(folder.with_name(f"identifier={layout.identifier}"))
    (directory / "finemon-demo").symlink_to("finemon-data")


@pytest.fixture(params=["kubernetes", "host", "nameless", "digits"])
def layout(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Layout]:
    """The working directory holds the dataset, recorded in each :class:`Layout`."""
    chosen = Layout(request.param)
    make_dataset(tmp_path, chosen)
    cwd = Path.cwd()
    os.chdir(tmp_path)
    try:
        yield chosen
    finally:
        os.chdir(cwd)


@pytest.fixture(params=["kubernetes", "host"])
def named_layout(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Layout]:
    """As :func:`layout`, for the commands whose output shows finemon's display names, where
    every name is known (a Kubernetes node's or a host's)."""
    chosen = Layout(request.param)
    make_dataset(tmp_path, chosen)
    cwd = Path.cwd()
    os.chdir(tmp_path)
    try:
        yield chosen
    finally:
        os.chdir(cwd)


def test_the_docs_have_the_examples_they_promise() -> None:
    assert len(blocks(README, "## A first query", "sh")) == 1
    assert len(blocks(README, "## A first query", "python")) == 1
    assert len(blocks(QUERYING, "## DuckDB", "sql")) == 3
    assert len(blocks(QUERYING, "## pandas", "python")) == 4
    assert len(blocks(QUERYING, "## pyarrow", "python pyarrow")) == 1
    assert len(blocks(QUERYING, "## polars", "python polars")) == 1
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


def display_names(layout: Layout) -> tuple[str, str, str]:
    """The display names of db, web and batch in finemon's commands (the viewer's: a
    container's name, a host cgroup path's last components)."""
    if layout.host:
        return "postgresql.service", "nginx.service", "session-4.scope"
    return "postgres", "nginx", "job"


def test_the_finemon_commands_run(named_layout: Layout, capsys: pytest.CaptureFixture[str]) -> None:
    for argv in finemon_commands(CLI, "## The analysis commands"):
        assert main(argv[1:]) == 0, argv
    out = capsys.readouterr().out
    assert Path("report.html").exists()
    db, web, batch = display_names(named_layout)
    # The first query gives each container's CPU, the second finds the OOM kill, the third
    # the throttled container.
    for name, millicores in ((batch, 1000), (web, 500), (db, 100)):
        assert re.search(rf"^{re.escape(name)}\s+{millicores}$", out, re.M), out
    assert re.search(rf"{re.escape(db)}\s+2024-02-01 00:01:20\+00:00\s+1", out), out
    assert re.search(rf"{re.escape(web)}\s+478", out), out


def test_the_readme_first_query_answers_right(
    layout: Layout, capsys: pytest.CaptureFixture[str]
) -> None:
    ((argv),) = finemon_commands(README, "## A first query")
    assert main(argv[1:]) == 0, argv
    out = capsys.readouterr().out
    # Peak working sets: db 100 + 199 MiB before its OOM kill, web 100 MiB, batch 10 MiB, each
    # on a line of its own, whatever the containers' display names.
    peaks = re.findall(r"^\S+\s+(\d+)(?:\.0)?$", out, re.M)
    assert sorted(peaks, key=int) == ["10", "100", "299"], out

    (code,) = blocks(README, "## A first query", "python")
    exec(compile(code, str(README), "exec"), {})  # our own docs
    shown = capsys.readouterr().out
    # DuckDB's table: container, container_name, peak (it cuts long values).
    rows = [[cell.strip() for cell in line.split("│")[1:-1]] for line in shown.splitlines()]
    data = [row for row in rows if len(row) == 3 and re.fullmatch(r"[\d.]+", row[2])]
    by_key = {row[0][:20]: row[1:] for row in data}
    for container_id, container_name, mib in (
        (DB_ID, "postgres", "299.0"), (WEB_ID, "nginx", "100.0"), (BATCH_ID, "job", "10.0")
    ):  # fmt: skip
        name = layout.container_name(container_name) or "NULL"
        assert by_key[layout.key(container_id)[:20]] == [name, mib], shown
    assert len(data) == 3, shown


def run_sql(code: str) -> list[tuple[Any, ...]]:
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    rows: list[tuple[Any, ...]] = con.execute(code).fetchall()
    return rows


def test_the_duckdb_examples_answer_right(layout: Layout) -> None:
    rates, shares, before_kill = blocks(QUERYING, "## DuckDB", "sql")
    key, name, shown = layout.key, layout.container_name, layout.shown

    by_container = {row[0]: row[1:] for row in run_sql(rates)}
    assert by_container == {
        key(WEB_ID): (name("nginx"), 500.0),
        key(DB_ID): (name("postgres"), 100.0),  # its nameless first rows included
        key(BATCH_ID): (name("job"), 1000.0),  # the reset skipped
    }

    found = {(row[0], row[1], row[2]): (row[3], row[4]) for row in run_sql(shares)}
    assert found == {
        (shown("nginx", WEB_ID), "101", "nginx"): (60.0, 66.7),
        (shown("nginx", WEB_ID), "102", "worker"): (30.0, 33.3),
        (shown("postgres", DB_ID), "201", "postgres"): (float(100 + OOM_TICK - 1), 100.0),
    }

    rows = run_sql(before_kill)
    assert {row[0] for row in rows} == {OOM_AT.to_pydatetime()}
    assert {row[2] for row in rows} == {shown("postgres", DB_ID)}
    working_set = [row[4] for row in rows if row[3] == "container.memory.working_set_bytes"]
    assert len(working_set) == 61  # 60 seconds before the kill, and its tick
    assert working_set[0] == (100 + OOM_TICK - 60) * MIB
    assert working_set[-1] == 50 * MIB  # the tick of the kill: the container started over


def test_the_pandas_examples_answer_right(layout: Layout) -> None:
    namespace: dict[str, Any] = {}
    for code in blocks(QUERYING, "## pandas", "python"):
        exec(compile(code, str(QUERYING), "exec"), namespace)  # our own docs
    key = layout.key

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

    # The folders' columns, as text: an identifier of digits stays what it was.
    df = namespace["df"]
    assert list(df["identifier"].unique()) == [layout.identifier]
    assert sorted(df["dt"].unique()) == ["2024-01-31", "2024-02-01"]


#: Every ``read_parquet(...)`` of a DuckDB example.
DUCKDB_READ = re.compile(r"read_parquet\([^)]*\)")


def test_every_duckdb_example_reads_the_folders_typed(layout: Layout) -> None:
    sources = [
        *blocks(README, "## A first query", "python"),
        *blocks(QUERYING, "## DuckDB", "sql"),
    ]
    reads = [read for code in sources for read in DUCKDB_READ.findall(code)]
    assert len(reads) == 4
    for read in reads:
        source = read.replace("finemon-demo", "finemon-data")
        partitions = run_sql(f"SELECT DISTINCT dt, identifier FROM {source} ORDER BY dt")
        assert partitions == [
            (datetime.date(2024, 1, 31), layout.identifier),
            (datetime.date(2024, 2, 1), layout.identifier),
        ], read


def test_the_pyarrow_example_answers_right(layout: Layout) -> None:
    (code,) = blocks(QUERYING, "## pyarrow", "python pyarrow")
    namespace: dict[str, Any] = {}
    exec(compile(code, str(QUERYING), "exec"), namespace)  # our own docs
    key, name = layout.key, layout.container_name
    peaks = {
        row["container"]: (row["identifier"], row["container_name_max"], row["value_float_max"])
        for row in namespace["peaks"].to_pylist()
    }
    assert peaks == {  # db: 100 + 199 MiB before its OOM kill
        key(WEB_ID): (layout.identifier, name("nginx"), 100.0 * MIB),
        key(DB_ID): (layout.identifier, name("postgres"), 299.0 * MIB),
        key(BATCH_ID): (layout.identifier, name("job"), 10.0 * MIB),
    }


def test_the_polars_example_answers_right(layout: Layout) -> None:
    (code,) = blocks(QUERYING, "## polars", "python polars")
    namespace: dict[str, Any] = {}
    exec(compile(code, str(QUERYING), "exec"), namespace)  # our own docs
    key = layout.key
    millicores = dict(namespace["millicores"].iter_rows())
    assert millicores == pytest.approx(
        {key(WEB_ID): 500.0, key(DB_ID): 100.0, key(BATCH_ID): 1000.0}
    )
    partitions = namespace["df"].select("dt", "identifier").unique().collect()
    assert sorted(partitions.iter_rows()) == [
        (datetime.date(2024, 1, 31), layout.identifier),
        (datetime.date(2024, 2, 1), layout.identifier),
    ]


@pytest.fixture(scope="module")
def spark_available() -> Iterator[None]:
    """pyspark and a Java runtime, or a skip; the session the examples create is stopped after
    the module's tests."""
    pyspark = pytest.importorskip("pyspark", reason="pyspark is not installed (not in dev)")
    if shutil.which("java") is None:
        pytest.skip("Spark needs a Java runtime: no java on PATH")
    yield
    active = pyspark.sql.SparkSession.getActiveSession()
    if active is not None:
        active.stop()


def test_the_spark_examples_answer_right(spark_available: None, layout: Layout) -> None:
    # Spark resolves a relative path against its JVM's working directory, that of the first
    # test that started it: the examples read this test's directory by its absolute path.
    data = f'"{Path.cwd() / "finemon-data"}"'
    (local,) = blocks(QUERYING, "## Spark", "python spark")
    namespace: dict[str, Any] = {}
    exec(compile(local.replace('"finemon-data"', data), str(QUERYING), "exec"), namespace)
    key = layout.key
    millicores = {row["container"]: row["millicores"] for row in namespace["millicores"].collect()}
    assert millicores == pytest.approx(
        {key(WEB_ID): 500.0, key(DB_ID): 100.0, key(BATCH_ID): 1000.0}
    )
    shares = {
        (row["container"], row["pid"], row["comm"]): row["share"]
        for row in namespace["shares"].collect()
    }
    assert shares[(key(WEB_ID), "101", "nginx")] == pytest.approx(2 / 3)
    assert shares[(key(DB_ID), "201", "postgres")] == pytest.approx(1.0)
    assert namespace["before_kill"].count() == 61

    (bucket,) = blocks(QUERYING, "## A bucket: Spark and Trino", "python spark")
    # The bucket's example, on the local directory and the dataset's first day.
    bucket = bucket.replace('"s3a://my-bucket/finemon/prod"', data)
    exec(compile(bucket.replace("2026-11-28", "2024-01-31"), str(QUERYING), "exec"), namespace)
    peaks = {
        row["container"]: (row["identifier"], row["container_name"], row["peak_bytes"])
        for row in namespace["peaks"].collect()
    }
    name = layout.container_name
    assert peaks == {  # db's peak before midnight: 100 + 119 MiB
        key(WEB_ID): (layout.identifier, name("nginx"), 100.0 * MIB),
        key(DB_ID): (layout.identifier, name("postgres"), 219.0 * MIB),
        key(BATCH_ID): (layout.identifier, name("job"), 10.0 * MIB),
    }


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


INTAKE = REPO / "docs" / "intake.md"


def test_the_intake_sql_puts_the_agents_report_beside_the_kernels(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import capture

    # A container's kernel memory every second, and the agent's report of it every 15 s at
    # its own timestamps (delayed writes, as the intake makes them), in finemon's columns.
    start = 1_706_745_600  # 2024-02-01T00:00:00Z
    folder = tmp_path / "finemon-data" / "dt=2024-02-01" / "identifier=node-1"
    folder.mkdir(parents=True)
    manager = capture.CaptureManager(
        folder / "f.parquet",
        label_columns=LABEL_COLUMNS,
        global_labels={"node_name": "node-1"},
        auto_tick=False,
    )
    manager.start(start)
    container = {"container_id": "c" * 64, "container_name": "app"}
    agent = {"container_id": "c" * 64, "host": "node-1", "kube_namespace": "shop"}
    for second in range(40):
        capture.gauge("container.memory.usage_bytes", container).set((200 + second) * MIB)
        capture.gauge("container.memory.working_set_bytes", container).set((150 + second) * MIB)
        manager.take_tick(start + second)
        if second % 15 == 0:
            capture.historical.gauge_set(
                "target.container.memory.usage", agent, (180 + second) * MIB, start + second
            )
    manager.close()

    (code,) = blocks(INTAKE, "## Reported vs observed", "sql")
    monkeypatch.chdir(tmp_path)
    rows = run_sql(code)
    assert len(rows) == 40
    by_second = {int(row[0].timestamp()) - start: row[1:] for row in rows}
    assert by_second[0] == ("c" * 64, 180.0, 200.0, 150.0, 30.0)
    # The report holds between the agent's points while the working set climbs.
    assert by_second[14] == ("c" * 64, 180.0, 214.0, 164.0, 16.0)
    assert by_second[15] == ("c" * 64, 195.0, 215.0, 165.0, 30.0)
