"""``summarize``: per run and container, the numbers the synthetic dataset was built with."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from analysis import format_summary, summarize
from analysis.summary import ContainerSummary, Stats
from tests.analysis.synthetic import (
    API_LIVES,
    MIB,
    OOM_TICK,
    RUN_A,
    RUN_A_START_MS,
    RUN_A_TICKS,
    RUN_B,
    RUN_B_TICKS,
    write_restarts,
)


def at(tick: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(RUN_A_START_MS / 1000 + tick, dt.UTC)


def by_name(containers: tuple[ContainerSummary, ...]) -> dict[str, ContainerSummary]:
    return {c.name: c for c in containers}


def test_every_run_and_container_is_summarized(small_dir: Path) -> None:
    run_a, run_b = summarize(small_dir)
    assert (run_a.run_id, run_a.node_name, run_a.first_time, run_a.last_time) == (
        RUN_A,
        "node-1",
        at(0),
        at(RUN_A_TICKS - 1),
    )
    assert (run_b.run_id, run_b.first_time, run_b.last_time) == (RUN_B, at(420), at(479))
    assert [c.name for c in run_a.containers] == [
        "jobs/batch-x/job",
        "shop/db-0/postgres",
        "shop/web-7d9/nginx",
    ]
    assert [c.name for c in run_b.containers] == ["shop/web-7d9/nginx"]

    web = by_name(run_a.containers)["shop/web-7d9/nginx"]
    assert web.cpu_millicores == Stats(500.0, 500.0, 500.0)
    assert web.throttled_periods == 2 * (RUN_A_TICKS - 1)
    assert web.periods == 10 * (RUN_A_TICKS - 1)
    assert web.throttled_seconds == pytest.approx(0.02 * (RUN_A_TICKS - 1))
    assert web.working_set_bytes == Stats(100.0 * MIB, 100.0 * MIB, 100.0 * MIB)
    assert web.pss_bytes is not None and web.pss_bytes.max == 90.0 * MIB
    assert web.oom_kills == 0
    assert by_name(run_b.containers)["shop/web-7d9/nginx"].throttled_periods == 2 * (
        RUN_B_TICKS - 1
    )

    db = by_name(run_a.containers)["shop/db-0/postgres"]
    assert db.oom_kills == 1
    assert db.working_set_bytes is not None
    assert db.working_set_bytes.max == (100 + OOM_TICK - 1) * MIB
    assert db.throttled_periods is None  # no such counter for it: unknown, not 0

    batch = by_name(run_a.containers)["jobs/batch-x/job"]
    assert (batch.first_time, batch.last_time) == (at(60), at(179))
    assert batch.cpu_millicores == Stats(1000.0, 1000.0, 1000.0)


def test_top_processes_by_pss(small_dir: Path) -> None:
    run_a = summarize(small_dir, top_processes=2)[0]
    assert [(p.container_name, p.pid, p.comm) for p in run_a.top_processes] == [
        ("shop/db-0/postgres", "201", "postgres"),
        ("shop/web-7d9/nginx", "101", "nginx"),
    ]
    assert run_a.top_processes[0].pss_max_bytes == (100 + OOM_TICK - 1) * MIB


def test_the_text_has_a_block_per_run(small_dir: Path) -> None:
    text = format_summary(summarize(small_dir))
    lines = text.splitlines()
    assert lines[0].startswith(f"run {RUN_A} on node node-1: 2024-01-31 23:58:00 to 2024-02-01")
    assert any(line.startswith(f"run {RUN_B} on node node-1") for line in lines)
    web = next(line for line in lines if line.startswith("shop/web-7d9/nginx"))
    # name, from and to (dates: the run crosses midnight), cpu mean/p95/max, throttled
    # periods/%/s, working set mean/max, pss mean/max, oom kills
    assert web.split()[4:] == [
        "00:01:59", "500", "500", "500", "478", "20.0", "4.8", "100.0", "100.0", "90.0", "90.0",
        "0",
    ]  # fmt: skip
    assert "top processes by PSS" in text


def test_a_restarted_containers_lives_are_told_apart_by_their_start_time(tmp_path: Path) -> None:
    (run,) = summarize(write_restarts(tmp_path / "out"))
    lives = {life.container_id for life in API_LIVES}
    named = [(c.name, c.oom_kills) for c in run.containers if c.container_key in lives]
    # In the order they started; the OOM kill ended the first.
    assert named == [
        ("shop/api-6c8/api (since 23:58:00)", 1),
        ("shop/api-6c8/api (since 23:59:20)", 0),
        ("shop/api-6c8/api (since 00:00:40)", 0),
    ]
    rows = format_summary([run]).splitlines()
    assert sum(row.startswith("shop/api-6c8/api (since ") for row in rows) == 3
