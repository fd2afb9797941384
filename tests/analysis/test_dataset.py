"""The DuckDB view over an output directory: columns, partitions, rate(), increase(), containers."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from analysis import AnalysisError, connect, parquet_files
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
    rows = (
        connect(small_dir)
        .execute(
            "SELECT run_id, name, container_id, first_time, last_time FROM containers ORDER BY ALL"
        )
        .fetchall()
    )
    assert rows == [
        (RUN_A, "jobs/batch-x/job", BATCH_ID, at(60), at(179)),
        (RUN_A, "shop/db-0/postgres", DB_ID, at(0), at(RUN_A_TICKS - 1)),
        (RUN_A, "shop/web-7d9/nginx", WEB_ID, at(0), at(RUN_A_TICKS - 1)),
        (RUN_B, "shop/web-7d9/nginx", WEB_ID, at(420), at(479)),
    ]


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
    assert con.execute("SELECT name FROM containers").fetchall() == [("system.slice/cron.service",)]


def test_unreadable_directories_are_one_line_errors(tmp_path: Path) -> None:
    with pytest.raises(AnalysisError, match="no such directory"):
        connect(tmp_path / "missing")
    with pytest.raises(AnalysisError, match="no Parquet files"):
        connect(tmp_path)
    (tmp_path / "broken.parquet").write_bytes(b"not parquet at all")
    with pytest.raises(AnalysisError) as raised:
        connect(tmp_path)
    assert "\n" not in str(raised.value)
    (tmp_path / "broken.parquet").unlink()
    pq.write_table(pa.table({"x": [1]}), tmp_path / "other.parquet")
    with pytest.raises(AnalysisError, match="not finemon data"):
        connect(tmp_path)
