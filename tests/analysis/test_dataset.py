"""The DuckDB view over an output directory: columns, partitions, rate(), increase(), containers."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from analysis import AnalysisError, connect, parquet_files
from analysis.dataset import (
    describe_unreadable,
    name_containers,
    parquet_problem,
    reads_containers,
)
from analysis.errors import UnreadableFilesWarning
from tests.analysis.synthetic import (
    BATCH_ID,
    DB_ID,
    DB_NAMELESS_TICKS,
    OOM_TICK,
    RESET_TICK,
    RUN_A,
    RUN_A_START_MS,
    RUN_A_TICKS,
    RUN_B,
    WEB_ID,
    write_small,
)


def at(tick: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(RUN_A_START_MS / 1000 + tick, dt.UTC)


def test_metrics_view_has_the_standard_columns_and_partition_types(small_dir: Path) -> None:
    con = connect(small_dir)
    types = {row[0]: row[1] for row in con.execute("DESCRIBE metrics").fetchall()}
    assert types == {
        "run_id": "VARCHAR",
        "time": "TIMESTAMP WITH TIME ZONE",
        "fetch_index": "BIGINT",
        "metric_name": "VARCHAR",
        "metric_kind": "VARCHAR",
        "value_int": "BIGINT",
        "value_float": "DOUBLE",
        "cluster_name": "VARCHAR",
        "node_name": "VARCHAR",
        "namespace": "VARCHAR",
        "pod_name": "VARCHAR",
        "pod_uid": "VARCHAR",
        "container_id": "VARCHAR",
        "container_name": "VARCHAR",
        "qos_class": "VARCHAR",
        "labels": "MAP(VARCHAR, VARCHAR)",
        "dt": "DATE",
        "identifier": "VARCHAR",
        "container_key": "VARCHAR",
        "series": "UBIGINT",
    }
    days = con.execute("SELECT DISTINCT dt FROM metrics ORDER BY 1").fetchall()
    assert days == [(dt.date(2024, 1, 31),), (dt.date(2024, 2, 1),)]
    first = con.execute("SELECT min(time) FROM metrics").fetchone()
    assert first == (at(0),)
    assert first[0].utcoffset() == dt.timedelta(0)


def test_manifests_and_hidden_files_are_skipped(tmp_path: Path) -> None:
    root = write_small(tmp_path / "out")
    (root / "dt=2024-01-31" / "identifier=node-1" / ".finemon-x.parquet.partial").write_text("")
    (root / "_report.html").write_text("<html>")
    files = parquet_files(root)
    assert len(files) == 3
    assert all(path.suffix == ".parquet" and not path.name.startswith(".") for path in files)
    assert connect(root).execute("SELECT count(DISTINCT run_id) FROM metrics").fetchone() == (2,)


def test_the_files_are_listed_in_path_order(tmp_path: Path) -> None:
    # Part by part, as paths sort: "a/z" before "a-b/..." although "-" sorts before "/".
    names = ["a/z.parquet", "a-b/c.parquet", "a/b/c.parquet", "b.parquet", "a/a.parquet"]
    for name in names:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    assert parquet_files(tmp_path) == sorted(tmp_path / name for name in names)


def test_a_numeric_identifier_stays_a_string(tmp_path: Path, small_dir: Path) -> None:
    root = tmp_path / "out"
    source = next(small_dir.rglob("*.parquet"))
    target = root / "dt=2024-01-31" / "identifier=0042" / source.name
    target.parent.mkdir(parents=True)
    shutil.copy(source, target)
    assert connect(root).execute("SELECT DISTINCT identifier FROM metrics").fetchall() == [
        ("0042",)
    ]


def test_rate_gives_per_second_values_and_skips_resets(small_dir: Path) -> None:
    con = connect(small_dir)
    web = con.execute(
        "SELECT fetch_index, delta, seconds, per_second FROM rate('container.cpu.usage_usec') "
        "WHERE container_id = $id AND run_id = $run ORDER BY time",
        {"id": WEB_ID, "run": RUN_A},
    ).fetchall()
    assert web[0] == (0, None, None, None)
    assert web[1:] == [(i, 500_000, 1.0, 500_000.0) for i in range(1, RUN_A_TICKS)]

    batch = dict(
        con.execute(
            "SELECT fetch_index, per_second FROM rate('container.cpu.usage_usec') "
            "WHERE container_id = $id",
            {"id": BATCH_ID},
        ).fetchall()
    )
    assert batch[RESET_TICK] is None  # the counter went down: a reset, no rate
    assert batch[RESET_TICK - 1] == batch[RESET_TICK + 1] == 1_000_000.0


def test_a_series_continues_when_names_appear_late(small_dir: Path) -> None:
    con = connect(small_dir)
    names = con.execute(
        "SELECT count(DISTINCT container_name), count(*) FILTER (WHERE container_name IS NULL), "
        "count(DISTINCT series) FROM metrics "
        "WHERE container_id = $id AND metric_name = 'container.cpu.usage_usec'",
        {"id": DB_ID},
    ).fetchone()
    assert names == (1, DB_NAMELESS_TICKS, 1)
    rates = con.execute(
        "SELECT count(per_second) FROM rate('container.cpu.usage_usec') WHERE container_id = $id",
        {"id": DB_ID},
    ).fetchone()
    assert rates == (RUN_A_TICKS - 1,)  # no tick lost at the switch


def test_increase_totals_each_series(small_dir: Path) -> None:
    con = connect(small_dir)
    rows = con.execute(
        "SELECT run_id, container_name, increase, first_time, last_time, per_second "
        "FROM increase('container.cpu.throttled_periods') ORDER BY first_time"
    ).fetchall()
    assert rows == [
        (RUN_A, "nginx", 2 * (RUN_A_TICKS - 1), at(0), at(RUN_A_TICKS - 1), 2.0),
        (RUN_B, "nginx", 2 * 59, at(420), at(479), 2.0),
    ]
    kills = con.execute(
        "SELECT container_name, increase FROM increase('container.memory.oom_kills') "
        "WHERE increase > 0"
    ).fetchall()
    assert kills == [("postgres", 1)]
    when = con.execute(
        "SELECT time FROM rate('container.memory.oom_kills') WHERE delta > 0"
    ).fetchall()
    assert when == [(at(OOM_TICK),)]


def test_containers_view_names_every_container_of_every_run(small_dir: Path) -> None:
    con = connect(small_dir)
    query = """SELECT run_id, name, full_name, container_id, first_time, last_time
        FROM containers ORDER BY ALL"""
    # Unnamed until asked: naming scans every container row.
    assert {row[1:3] for row in con.execute(query).fetchall()} == {(None, None)}
    name_containers(con)
    assert con.execute(query).fetchall() == [
        (RUN_A, "job", "jobs/batch-x/job", BATCH_ID, at(60), at(179)),
        (RUN_A, "nginx", "shop/web-7d9/nginx", WEB_ID, at(0), at(RUN_A_TICKS - 1)),
        (RUN_A, "postgres", "shop/db-0/postgres", DB_ID, at(0), at(RUN_A_TICKS - 1)),
        (RUN_B, "nginx", "shop/web-7d9/nginx", WEB_ID, at(420), at(479)),
    ]


@pytest.mark.parametrize(
    ("sql", "reads"),
    [
        ("SELECT name FROM containers", True),
        ('select * from metrics join "Containers" using (run_id, container_key)', True),
        ("SELECT 1; SELECT * FROM CONTAINERS", True),
        ("SELECT 'containers' FROM metrics -- containers", False),
        ("SELECT container_name FROM metrics", False),
        ("SELECT FROM WHERE (", False),
    ],
)
def test_sql_that_reads_the_containers_view_is_told(sql: str, reads: bool) -> None:
    assert reads_containers(sql) is reads


def test_a_host_that_is_no_kubernetes_node_is_keyed_by_cgroup(tmp_path: Path) -> None:
    import capture

    table = pa.table(
        {
            "run_id": ["r", "r"],
            "time": pa.array([0, 1000], pa.timestamp("ms", "UTC")),
            "fetch_index": [0, 1],
            "metric_name": ["container.memory.usage_bytes"] * 2,
            "metric_kind": ["gauge"] * 2,
            "value_int": pa.nulls(2, pa.int64()),
            "value_float": [1.0, 2.0],
            "labels": pa.array(
                [[("cgroup", "system.slice/cron.service")]] * 2, pa.map_(pa.string(), pa.string())
            ),
        },
        schema=capture.capture_schema(()),
    )
    pq.write_table(table, tmp_path / "plain.parquet")
    con = connect(tmp_path)
    assert con.execute("SELECT DISTINCT container_key, container_id FROM metrics").fetchall() == [
        ("system.slice/cron.service", None)
    ]
    name_containers(con)
    assert con.execute("SELECT name, full_name, cgroup FROM containers").fetchall() == [
        ("cron.service", "system.slice/cron.service", "system.slice/cron.service")
    ]


def test_unreadable_directories_are_one_line_errors(tmp_path: Path) -> None:
    with pytest.raises(AnalysisError, match="no such file or directory"):
        connect(tmp_path / "missing")
    with pytest.raises(AnalysisError, match="no Parquet files"):
        connect(tmp_path)
    (tmp_path / "broken.parquet").write_bytes(b"not parquet at all")
    with pytest.raises(AnalysisError) as raised:
        connect(tmp_path)
    message = str(raised.value)
    assert "\n" not in message
    assert "no readable Parquet file" in message
    assert "broken.parquet (not a Parquet file)" in message
    assert "read_parquet" not in message and "LINE" not in message
    (tmp_path / "broken.parquet").unlink()
    pq.write_table(pa.table({"x": [1]}), tmp_path / "other.parquet")
    with pytest.raises(AnalysisError, match="not finemon data"):
        connect(tmp_path)


def copy_with_strays(small_dir: Path, tmp_path: Path) -> tuple[Path, list[str]]:
    """The small dataset plus the unreadable files a crash, a full disk or a stray copy leave:
    a zero-length file, garbage bytes and a real file cut in half."""
    root = tmp_path / "finemon-out"
    shutil.copytree(small_dir, root)
    first = parquet_files(root)[0]
    (first.parent / "empty.parquet").write_bytes(b"")
    (first.parent / "garbage.parquet").write_bytes(b"\x00garbage, not Parquet\n" * 10)
    data = first.read_bytes()
    (first.parent / "truncated.parquet").write_bytes(data[: len(data) // 2])
    return root, ["empty.parquet", "garbage.parquet", "truncated.parquet"]


def test_unreadable_files_are_skipped_with_one_warning(small_dir: Path, tmp_path: Path) -> None:
    root, strays = copy_with_strays(small_dir, tmp_path)
    with pytest.warns(UnreadableFilesWarning) as caught:
        con = connect(root)
    assert len(caught) == 1
    message = str(caught[0].message)
    assert message.startswith(f"skipped 3 unreadable Parquet files in {root}: ")
    for name, problem in zip(strays, ("empty", "not a Parquet file", "truncated"), strict=True):
        assert f"{name} ({problem})" in message
    # The readable files answer as without the strays.
    clean = connect(small_dir)
    query = "SELECT count(*), sum(value_int), count(DISTINCT run_id) FROM metrics"
    assert con.execute(query).fetchall() == clean.execute(query).fetchall()


def test_the_warning_names_three_files_and_counts_the_rest(tmp_path: Path) -> None:
    files = [(tmp_path / f"f{i}.parquet", "empty") for i in range(5)]
    text = describe_unreadable(tmp_path, files)
    assert text == (
        f"skipped 5 unreadable Parquet files in {tmp_path}: "
        "f0.parquet (empty), f1.parquet (empty), f2.parquet (empty) and 2 more"
    )


def test_parquet_problem_reads_the_envelope(small_dir: Path, tmp_path: Path) -> None:
    good = parquet_files(small_dir)[0]
    assert parquet_problem(good) is None
    data = good.read_bytes()
    cases = {
        b"": "empty",
        b"PAR1": "truncated",
        data[:-1]: "truncated",
        data[:100]: "truncated",
        b"PAR1" + b"\x00" * 20 + (10**6).to_bytes(4, "little") + b"PAR1": "truncated",
        b"{}": "not a Parquet file",
    }
    for content, problem in cases.items():
        path = tmp_path / "case.parquet"
        path.write_bytes(content)
        assert parquet_problem(path) == problem, content[:30]


def test_a_parquet_file_is_a_dataset_of_one_file(small_dir: Path) -> None:
    first = parquet_files(small_dir)[0]
    con = connect(first)
    # Its partitions still come from the folders.
    (runs, dt_values, identifiers) = con.execute(
        "SELECT count(DISTINCT run_id), count(DISTINCT dt), any_value(identifier) FROM metrics"
    ).fetchone() or (None, None, None)
    assert (runs, dt_values, identifiers) == (1, 1, "node-1")
    assert con.execute("SELECT count(*) FROM metrics").fetchone() == (
        pq.read_metadata(first).num_rows,
    )


def test_a_file_that_is_not_parquet_is_a_clear_error(small_dir: Path) -> None:
    with pytest.raises(AnalysisError) as raised:
        connect(small_dir / "_session.json")
    assert str(raised.value) == (
        f"{small_dir / '_session.json'}: not a Parquet file; give a finemon --output-dir or one "
        "of its .parquet files"
    )


@pytest.mark.parametrize("macro", ["rate", "increase"])
def test_rate_of_a_missing_counter_names_it_and_near_names(small_dir: Path, macro: str) -> None:
    con = connect(small_dir)
    with pytest.raises(duckdb.Error) as raised:
        con.execute(f"SELECT * FROM {macro}('container.cpu.usage_usecs')").fetchall()
    message = str(raised.value)
    assert (
        f"{macro}('container.cpu.usage_usecs'): no counter named container.cpu.usage_usecs in "
        "this dataset; did you mean container.cpu.usage_usec" in message
    ), message
    with pytest.raises(duckdb.Error) as raised:
        con.execute(f"SELECT * FROM {macro}('no.such.thing')").fetchall()
    assert "no counter named no.such.thing in this dataset" in str(raised.value)
    assert "did you mean" not in str(raised.value)


def test_rate_of_a_gauge_says_it_is_a_gauge(small_dir: Path) -> None:
    con = connect(small_dir)
    with pytest.raises(duckdb.Error) as raised:
        con.execute("SELECT * FROM rate('container.memory.working_set_bytes')").fetchall()
    assert "container.memory.working_set_bytes is a gauge, not a counter" in str(raised.value)


def test_rate_of_a_counter_with_no_new_rows_is_empty_not_an_error(small_dir: Path) -> None:
    con = connect(small_dir)
    # OOM kills exist as a counter: no kill in run B is an empty answer, not an error.
    rows = con.execute(
        f"SELECT * FROM rate('container.memory.oom_kills') WHERE run_id = '{RUN_B}' AND delta > 0"
    ).fetchall()
    assert rows == []


def test_the_selection_keeps_one_run_and_some_containers(small_dir: Path) -> None:
    con = connect(small_dir, run_id=RUN_A, container_keys=[WEB_ID, DB_ID])
    assert con.execute(
        "SELECT DISTINCT run_id, container_key FROM metrics ORDER BY ALL"
    ).fetchall() == [(RUN_A, WEB_ID), (RUN_A, DB_ID)]
    assert connect(small_dir, container_keys=[]).execute(
        "SELECT count(*) FROM metrics"
    ).fetchone() == (0,)


def _bytes_read_by_this_process() -> int:
    """``rchar`` of ``/proc/self/io``: every byte read through read()/pread(), cached or not."""
    with open("/proc/self/io") as io:
        return int(next(line for line in io if line.startswith("rchar")).split()[1])


def test_a_query_over_small_files_reads_each_footer_once(small_dir: Path, tmp_path: Path) -> None:
    # Small files whose footer is most of the file (as a 90 s file with its summary is): a
    # connection that bound the files once per view and macro read every footer a dozen times.
    source = parquet_files(small_dir)[0]
    table = pq.read_table(source, partitioning=None)
    metadata = {**(table.schema.metadata or {}), b"padding": b"x" * 50_000}
    folder = tmp_path / "dt=2024-01-31" / "identifier=node-1"
    folder.mkdir(parents=True)
    for seq in range(20):
        pq.write_table(table.replace_schema_metadata(metadata), folder / f"f-{seq:02d}.parquet")
    dataset_bytes = sum(p.stat().st_size for p in folder.iterdir())
    before = _bytes_read_by_this_process()
    con = connect(tmp_path)
    count = con.execute(
        "SELECT count(*) FROM metrics WHERE metric_name = 'container.memory.usage_bytes'"
    ).fetchone()
    con.close()
    read = _bytes_read_by_this_process() - before
    assert count is not None and count[0] > 0
    assert read < 1.5 * dataset_bytes, f"read {read} bytes of a {dataset_bytes}-byte dataset"
