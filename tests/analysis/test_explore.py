"""The query layer (analysis.query.explorer) on synthetic datasets whose answers are known."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from analysis.errors import AnalysisError
from analysis.query.explorer import Explorer
from analysis.query.sql import RefusedQueryError
from tests.analysis import patterns as pat
from tests.analysis import synthetic as syn

MIB = 1024 * 1024


@pytest.fixture(scope="module")
def small(small_dir: Path) -> Explorer:
    return Explorer(small_dir)


@pytest.fixture(scope="module")
def planted(patterns_dir: Path) -> Explorer:
    return Explorer(patterns_dir)


def _at(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


def test_time_range_runs_and_nodes(small: Explorer) -> None:
    assert small.time_range() == (
        _at(syn.RUN_A_START_MS),
        _at(syn.RUN_B_START_MS + (syn.RUN_B_TICKS - 1) * 1000),
    )
    runs = small.runs()
    assert [r.run_id for r in runs] == [syn.RUN_A, syn.RUN_B]
    assert [r.files for r in runs] == [2, 1]
    assert runs[0].first_time == _at(syn.RUN_A_START_MS)
    assert runs[0].last_time == _at(syn.RUN_A_START_MS + (syn.RUN_A_TICKS - 1) * 1000)
    assert runs[0].node_name == syn.NODE and runs[0].tick_seconds == 1.0
    [node] = small.nodes()
    assert (node.node_name, node.containers, node.runs) == (syn.NODE, 3, 2)


def test_containers_keys_names_and_ranges(small: Explorer) -> None:
    found = {c.key: c for c in small.containers()}
    assert set(found) == {syn.WEB_ID, syn.DB_ID, syn.BATCH_ID}
    db = found[syn.DB_ID]
    # Named although kubelet's names appeared only at tick 10.
    assert (db.name, db.full_name, db.qos_class) == ("postgres", "shop/db-0/postgres", "Guaranteed")
    batch = found[syn.BATCH_ID]
    assert batch.first_time == _at(syn.RUN_A_START_MS + syn.BATCH_TICKS[0] * 1000)
    assert batch.last_time == _at(syn.RUN_A_START_MS + syn.BATCH_TICKS[-1] * 1000)
    assert found[syn.WEB_ID].runs == (syn.RUN_A, syn.RUN_B)


def test_container_search_and_label_filters(small: Explorer) -> None:
    def keys(found: list[object]) -> set[str]:
        return {c.key for c in found}  # type: ignore[attr-defined]

    assert keys(small.containers("POSTGRES")) == {syn.DB_ID}
    assert keys(small.containers("shop ngin")) == {syn.WEB_ID}
    assert keys(small.containers(namespace="shop")) == {syn.WEB_ID, syn.DB_ID}
    assert keys(small.containers(qos=["BestEffort", "Guaranteed"])) == {syn.DB_ID, syn.BATCH_ID}
    assert keys(small.containers(pod="batch-x")) == {syn.BATCH_ID}
    assert keys(small.containers(node="elsewhere")) == set()
    assert keys(small.containers("cccccccc")) == {syn.BATCH_ID}


def test_display_names_are_unique(tmp_path: Path) -> None:
    syn.write_large(tmp_path / "out", containers=3, ticks=20, ticks_per_file=20)
    explorer = Explorer(tmp_path / "out")
    # Every container is called "main": the pod tells them apart.
    assert [c.name for c in explorer.containers()] == [
        "app-000/main",
        "app-001/main",
        "app-002/main",
    ]


def test_a_restarted_container_is_named_by_its_start_time(tmp_path: Path) -> None:
    explorer = Explorer(syn.write_restarts(tmp_path / "out"))
    lives = [c.container_id for c in syn.API_LIVES]
    listed = [c for c in explorer.containers("api") if c.key in lives]
    # Listed in the order they started, each life by its first tick (UTC).
    assert [(c.key, c.name, c.full_name) for c in listed] == [
        (lives[0], "api (since 23:58:00)", "shop/api-6c8/api"),
        (lives[1], "api (since 23:59:20)", "shop/api-6c8/api"),
        (lives[2], "api (since 00:00:40)", "shop/api-6c8/api"),
    ]
    # The legends take the same names.
    found = explorer.series("container.memory.working_set_bytes", lives)
    assert [s.label for s in found] == [c.name for c in listed]


def test_metrics_kinds_units_descriptions(small: Explorer) -> None:
    by_name = {m.name: m for m in small.metrics()}
    usage = by_name["container.cpu.usage_usec"]
    assert (usage.kind, usage.unit, usage.series, usage.containers) == ("counter", "usec", 3, 3)
    assert "CPU time" in (usage.description or "")
    assert by_name["process.memory.pss_bytes"].series == 4
    assert [m.name for m in small.metrics("PSS process.")] == ["process.memory.pss_bytes"]
    only_batch = {m.name for m in small.metrics(container_keys=[syn.BATCH_ID])}
    assert "container.cpu.throttled_usec" not in only_batch
    assert "container.memory.oom_kills" in only_batch


def test_series_gauge_at_full_resolution(small: Explorer) -> None:
    [db] = small.series("container.memory.working_set_bytes", [syn.DB_ID], max_points=5000)
    assert db.kind == "gauge" and db.unit == "bytes" and db.label == "postgres"
    assert len(db.times) == syn.RUN_A_TICKS
    assert db.times[0] == syn.RUN_A_START_MS / 1000
    assert db.values[5] == (100 + 5) * MIB
    assert db.values[syn.OOM_TICK] == 50 * MIB
    assert db.values == db.mins == db.maxs


def test_series_downsampled_envelope(small: Explorer) -> None:
    [db] = small.series("container.memory.working_set_bytes", [syn.DB_ID], max_points=50)
    assert len(db.times) <= 50
    assert db.bucket_seconds >= 5
    # The bucket holding the OOM kill keeps both the peak and the drop.
    assert max(v for v in db.maxs if v is not None) == (100 + syn.OOM_TICK - 1) * MIB
    assert min(v for v in db.mins if v is not None) == 50 * MIB
    for low, mean, high in zip(db.mins, db.values, db.maxs, strict=True):
        assert low is not None and mean is not None and high is not None
        assert low <= mean <= high


def test_series_counter_as_rate_skipping_reset(small: Explorer) -> None:
    found = small.series("container.cpu.usage_usec", [syn.WEB_ID, syn.BATCH_ID], max_points=5000)
    assert [s.container_key for s in found] == [syn.WEB_ID, syn.BATCH_ID]
    web, batch = found
    assert web.unit == "usec/s" and web.kind == "rate"
    assert set(web.values) == {500_000.0}
    # 120 ticks of batch, its first without a rate and the reset skipped: 118 rates of 1 CPU.
    assert len(batch.values) == len(syn.BATCH_TICKS) - 2
    assert set(batch.values) == {1_000_000.0}


def test_series_range_and_unknowns(small: Explorer) -> None:
    start = _at(syn.RUN_A_START_MS + 100_000)
    end = start + timedelta(seconds=9)
    [web] = small.series("container.cpu.usage_usec", [syn.WEB_ID], start, end)
    # The first tick in the range has a rate: the row before the range is read too.
    assert web.times == [(syn.RUN_A_START_MS + (100 + i) * 1000) / 1000 for i in range(10)]
    assert small.series("no.such.metric", [syn.WEB_ID]) == []
    assert small.series("container.cpu.usage_usec", ["nope"]) == []
    assert small.series("container.cpu.usage_usec", []) == []
    with pytest.raises(AnalysisError, match="ends before it starts"):
        small.series("container.cpu.usage_usec", [syn.WEB_ID], end, start)


def test_process_series_summed_or_split(small: Explorer) -> None:
    [summed] = small.series("process.memory.pss_bytes", [syn.WEB_ID], max_points=5000)
    assert set(summed.values) == {90.0 * MIB} and summed.labels == {}
    split = small.series("process.memory.pss_bytes", [syn.WEB_ID], process=True, max_points=5000)
    assert [(s.label, s.labels) for s in split] == [
        ("nginx (101)", {"comm": "nginx", "pid": "101"}),
        ("worker (102)", {"comm": "worker", "pid": "102"}),
    ]
    processes = small.processes(syn.WEB_ID)
    assert [s.label for s in processes] == ["nginx (101)", "worker (102)"]
    assert small.processes(syn.WEB_ID, top=1)[0].labels["pid"] == "101"


def test_markers_oom_start_stop(small: Explorer) -> None:
    found = small.markers([syn.WEB_ID, syn.DB_ID, syn.BATCH_ID])
    assert [(m.kind, m.container_key, m.time * 1000, m.count, m.text) for m in found] == [
        ("start", syn.BATCH_ID, syn.RUN_A_START_MS + syn.BATCH_TICKS[0] * 1000, 1, "started"),
        ("stop", syn.BATCH_ID, syn.RUN_A_START_MS + syn.BATCH_TICKS[-1] * 1000, 1, "stopped"),
        ("oom", syn.DB_ID, syn.RUN_A_START_MS + syn.OOM_TICK * 1000, 1, "OOM kill"),
    ]
    # web runs from the first to the last tick of both runs: no start nor stop.
    assert small.markers([syn.WEB_ID]) == []
    before = _at(syn.RUN_A_START_MS + 100_000)
    assert [m.kind for m in small.markers([syn.DB_ID, syn.BATCH_ID], end=before)] == ["start"]


def test_analyze_planted_patterns(planted: Explorer) -> None:
    wave = planted.analyze(pat.WAVE.container_id)
    assert wave.cpu is not None and wave.cpu.periodicity is not None
    assert wave.cpu.periodicity.period_seconds == pytest.approx(pat.PERIOD_SECONDS, rel=0.03)
    assert wave.cpu.mean == pytest.approx(500, abs=5)
    assert wave.cpu.max == pytest.approx(700, abs=40)
    assert wave.throttling is not None
    assert wave.throttling.throttled_ratio == pytest.approx(0.3)
    assert wave.throttling.throttled_seconds == pytest.approx(0.005 * (pat.TICKS - 1))
    assert wave.memory_limit_bytes == 512 * MIB
    assert wave.oom_kills == 0

    step = planted.analyze(pat.STEP.container_id)
    assert step.memory is not None
    [change] = step.memory.changepoints
    # Within the bucket (of a few seconds) that holds the step.
    step_time = (pat.START_MS + pat.STEP_TICK * 1000) / 1000
    assert step_time <= change.time < step_time + step.memory.bucket_seconds
    assert change.before_mean == pytest.approx(100 * MIB, rel=0.01)
    assert change.after_mean == pytest.approx(300 * MIB, rel=0.01)
    assert step.memory.periodicity is None
    assert step.throttling is None

    oomy = planted.analyze(pat.OOMY.container_id)
    assert oomy.oom_kills == 2
    # The marker carries its number; the text is made from it.
    assert [(m.kind, m.count, m.text, m.time) for m in oomy.markers] == [
        ("oom", 2, "2 OOM kills", (pat.START_MS + pat.OOM_TICK * 1000) / 1000)
    ]

    late = planted.analyze(pat.LATE.container_id)
    assert late.start == _at(pat.START_MS + pat.LATE_TICK * 1000)
    assert [m.kind for m in late.markers] == ["start"]
    with pytest.raises(AnalysisError, match="no container"):
        planted.analyze("missing")


def test_analyze_a_sub_range(planted: Explorer) -> None:
    start = _at(pat.START_MS)
    before_step = planted.analyze(pat.STEP.container_id, start, start + timedelta(seconds=600))
    assert before_step.memory is not None and before_step.memory.changepoints == ()
    assert before_step.memory.mean == pytest.approx(100 * MIB, rel=0.01)


def test_label_text_is_returned_raw(planted: Explorer) -> None:
    labels = [s.label for s in planted.processes(pat.OOMY.container_id)]
    assert labels == ["<img src=x onerror=alert(1)> (41)", "helper (42)"]


def test_refresh_picks_up_new_files(tmp_path: Path, small_dir: Path) -> None:
    root = tmp_path / "live"
    shutil.copytree(small_dir, root)
    newest = max(root.rglob("*.parquet"))
    explorer = Explorer(root)
    assert not explorer.refresh()
    [web] = explorer.series("container.cpu.usage_usec", [syn.WEB_ID], max_points=5000)
    moved = newest.parent / ("." + newest.name)
    newest.rename(moved)  # as if this file had not been published yet
    assert explorer.refresh()
    [shorter] = explorer.series("container.cpu.usage_usec", [syn.WEB_ID], max_points=5000)
    assert len(shorter.times) < len(web.times)
    moved.rename(newest)
    assert explorer.refresh()
    assert explorer.time_range() == Explorer(root).time_range()
    assert not explorer.refresh()


def test_sql_reads_with_a_row_limit(small: Explorer) -> None:
    result = small.sql("select metric_name, count(*) n from metrics group by 1 order by 1", limit=3)
    assert result.columns == ("metric_name", "n")
    assert len(result.rows) == 3 and result.truncated
    whole = small.sql("with t as (select 1 as x) select * from t;")
    assert whole.rows == [(1,)] and not whole.truncated
    oom = small.sql("select container_key, increase from increase('container.memory.oom_kills') "
                    "where increase > 0")  # fmt: skip
    assert oom.rows == [(syn.DB_ID, 1)]


@pytest.mark.parametrize(
    "query",
    [
        "insert into metrics values (1)",
        "create table t as select 1",
        "copy (select 1) to '/tmp/finemon-explore-copy.csv'",
        "attach '/tmp/finemon-explore.db' as other",
        "install httpfs",
        "load httpfs",
        "pragma version",
        "set threads = 1",
        "select 1; drop view metrics",
        "select 1; -- a note\nselect 2",
        "select ';' as s; select 2 -- ;",
        "select 1 /* ; */; drop view metrics",
        "-- only a comment",
        "drop view metrics",
        "export database '/tmp/finemon-explore-export'",
    ],
)
def test_sql_refuses_anything_but_select(small: Explorer, query: str) -> None:
    with pytest.raises(RefusedQueryError):
        small.sql(query)
    assert not Path("/tmp/finemon-explore-copy.csv").exists()
    assert small.sql("select count(*) from metrics").rows[0][0] > 0


@pytest.mark.parametrize(
    "query",
    [
        "select * from read_csv('/etc/passwd')",
        "select * from read_text('/etc/passwd')",
        "select * from read_csv_auto('/etc/passwd', header=false)",
        "select * from glob('/etc/*')",
        "select current_setting('enable_external_access'), * from read_blob('/etc/hostname')",
    ],
)
def test_sql_cannot_read_outside_the_dataset(small: Explorer, query: str) -> None:
    with pytest.raises(AnalysisError) as caught:
        small.sql(query)
    assert "root:" not in str(caught.value)


def test_sql_cannot_change_its_settings(small: Explorer) -> None:
    with pytest.raises(AnalysisError):
        small.sql("select * from (select set_config('enable_external_access', 'true'))")
    with pytest.raises(AnalysisError):
        small.sql("select * from read_csv('/etc/passwd')")


def test_sql_timeout(small: Explorer) -> None:
    with pytest.raises(AnalysisError, match="longer than"):
        small.sql("select count(*) from range(1000000000000) a", timeout_seconds=0.2)
    assert small.sql("select 42").rows == [(42,)]


@pytest.mark.parametrize(
    ("query", "rows"),
    [
        ("select 42 -- the answer", [(42,)]),
        ("select 42; -- the answer", [(42,)]),
        ("-- a note\nselect 42\n-- the end", [(42,)]),
        ("select 42 /* a ; b */ ; /* the end */", [(42,)]),
        ("select ';' as s -- ; select 2", [(";",)]),
        ("select '-- not a comment' as s", [("-- not a comment",)]),
        ('select 42 as "a;--b" -- c', [(42,)]),
        ("select 42 -- ) as q; drop view metrics", [(42,)]),
        ("from range(3) -- from", [(0,), (1,), (2,)]),
        ("select 'été' as s; -- ü", [("été",)]),
    ],
)
def test_sql_takes_comments_and_semicolons(
    small: Explorer, query: str, rows: list[tuple[object]]
) -> None:
    """A trailing ``--`` comment once swallowed the row-limit wrapper (a parser error)."""
    assert small.sql(query).rows == rows
    assert small.sql("select count(*) from metrics").rows[0][0] > 0


def test_sql_connection_is_bounded(small_dir: Path) -> None:
    """Memory, threads and spill are set before the configuration is locked; the spill goes
    to a private folder (not the current directory) that closing the explorer removes."""
    explorer = Explorer(small_dir)
    settings = "memory_limit", "threads", "temp_directory", "max_temp_directory_size"
    [values] = explorer.sql(
        "select " + ", ".join(f"current_setting('{name}')" for name in settings)
    ).rows
    memory, threads, spill, spill_limit = map(str, values)
    assert memory == "512.0 MiB" and threads == "2" and spill_limit == "1.0 GiB"
    folder = Path(spill)
    assert folder.is_absolute() and folder.is_dir() and Path.cwd() not in folder.parents
    with pytest.raises(RefusedQueryError):
        explorer.sql("set memory_limit = '8GB'")
    explorer.close()
    assert not folder.exists()


def test_sql_stops_at_the_byte_cap(small: Explorer) -> None:
    query = "select repeat('x', 100) from range(10)"
    rows = small.sql(query, max_bytes=2000).rows
    assert len(rows) == 10
    cap = len(json.dumps(rows, separators=(",", ":"))) - 1  # one byte short of the 10 rows
    with pytest.raises(AnalysisError, match=rf"larger than {cap} bytes of JSON \(after 9 rows\)"):
        small.sql(query, max_bytes=cap)
    # A value too large for any result stops the query in DuckDB, before Python converts it.
    for query in ("select repeat('x', 5000)", "select list(range) from range(1000)",
                  "select 1 a, {'b': [repeat('y', 5000)]} c"):  # fmt: skip
        with pytest.raises(AnalysisError, match=r"larger than 2000 bytes .*a single value is"):
            small.sql(query, max_bytes=2000)
    assert small.sql("select 42").rows == [(42,)]


def test_sql_names_containers_as_the_viewer_does(tmp_path: Path) -> None:
    """The ``containers`` view's name is the viewer's, in the sandbox and in finemon query:
    a restarted container's three lives apart by their start times."""
    from analysis.query_cli import run_query

    root = syn.write_restarts(tmp_path / "out")
    with Explorer(root) as explorer:
        shown = {(c.key, c.name, c.full_name) for c in explorer.containers()}
        assert ("9a" * 32, "api (since 23:58:00)", "shop/api-6c8/api") in shown
        query = "SELECT DISTINCT container_key, name, full_name FROM containers"
        assert set(explorer.sql(query).rows) == shown
    assert set(run_query(root, query).rows) == shown
