"""The report's data (downsampled series, events) and the page: self-contained and bounded."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import pytest

from analysis import build_report_data, write_report
from analysis.query.series import bucket_ms
from analysis.report import default_selection
from tests.analysis import synthetic
from tests.analysis.synthetic import (
    API_LIVES,
    BATCH_TICKS,
    LARGE_PROCESSES,
    OOM_TICK,
    RESTARTS_NEIGHBOURS,
    RUN_A_START_MS,
    RUN_A_TICKS,
    RUN_B,
    WEB_ID,
    write_restarts,
    write_small,
)

DATA = re.compile(r'<script type="application/json" id="finemon-data">(.*?)</script>', re.S)
#: What plotly.js weighs inlined; the rest of the page is the data and a little script.
PLOTLY_BYTES_MAX = 6_000_000


def page_data(html: str) -> dict[str, Any]:
    match = DATA.search(html)
    assert match is not None
    data: dict[str, Any] = json.loads(match.group(1))
    return data


@pytest.mark.parametrize(
    ("span_ms", "tick_ms", "max_points"),
    [
        (0, 1000, 400),
        (23_000, 1000, 400),
        (86_400_000, 1000, 400),
        (86_400_000, 1000, 10),
        (7 * 86_400_000, 1000, 400),
        (400_000, 100, 400),
        (3_600_000, 15_000, 1000),
    ],
)
def test_buckets_fit_the_span_in_max_points(span_ms: int, tick_ms: int, max_points: int) -> None:
    width = bucket_ms(span_ms, tick_ms, max_points)
    assert width >= tick_ms
    assert span_ms // width + 2 <= max_points


def at_ms(tick: int) -> int:
    return RUN_A_START_MS + tick * 1000


def test_small_report_data(small_dir: Path) -> None:
    data = build_report_data(small_dir, max_points=1000)
    assert data["bucket_ms"] == data["tick_ms"] == 1000
    names = [c["name"] for c in data["containers"]]
    assert sorted(names) == ["jobs/batch-x/job", "shop/db-0/postgres", "shop/web-7d9/nginx"]
    index = {name: i for i, name in enumerate(names)}
    events = {(e["kind"], e["c"], e["t"]) for e in data["events"]}
    assert ("oom", index["shop/db-0/postgres"], at_ms(OOM_TICK)) in events
    assert ("start", index["jobs/batch-x/job"], at_ms(BATCH_TICKS[0])) in events
    assert ("stop", index["jobs/batch-x/job"], at_ms(BATCH_TICKS[-1])) in events
    assert sum(kind == "run" for kind, _, _ in events) == 4  # two runs, start and end
    assert data["containers"][index["shop/db-0/postgres"]]["oom_kills"] == 1

    def series(chart: str, role: str, name: str) -> list[float | None]:
        found = [
            s
            for s in data["series"]
            if (s["chart"], s["role"], s["c"]) == (chart, role, index[name])
        ]
        assert len(found) == 1, (chart, role, name)
        values: list[float | None] = found[0]["values"]
        return values

    web_cpu = series("cpu", "usage", "shop/web-7d9/nginx")
    assert {v for v in web_cpu if v is not None} == {500.0}
    # Run B starts 180 s after run A ends: the gap is null, not interpolated.
    assert web_cpu.count(None) == 180 + 1  # and the first tick of run B, a baseline
    assert {v for v in series("throttling", "throttled", "shop/web-7d9/nginx") if v} == {20.0}
    assert {v for v in series("memory", "working set", "shop/web-7d9/nginx") if v} == {100.0}
    assert {v for v in series("psi", "memory", "shop/db-0/postgres") if v} == {20.0}
    db_pss = series("pss", "postgres [201]", "shop/db-0/postgres")
    assert max(v for v in db_pss if v is not None) == 100 + OOM_TICK - 1
    assert len(db_pss) == RUN_A_TICKS
    roles = {s["role"] for s in data["series"] if s["chart"] == "pss"}
    assert roles == {"nginx [101]", "worker [102]", "postgres [201]", "job [301]"}
    assert data["selection"] == [0, 1, 2]


def test_processes_are_limited_per_container(small_dir: Path) -> None:
    data = build_report_data(small_dir, top_processes=1)
    roles = {s["role"] for s in data["series"] if s["chart"] == "pss"}
    assert roles == {"nginx [101]", "postgres [201]", "job [301]"}


def test_default_selection_keeps_the_oom_killed_and_the_busiest() -> None:
    containers = [
        {"oom_kills": 0, "cpu_peak": float(i), "memory_peak": float(-i)} for i in range(20)
    ]
    containers[5]["oom_kills"] = 2
    chosen = default_selection(containers, size=4)
    assert chosen == [0, 5, 18, 19]


def test_the_page_is_self_contained(tmp_path: Path, small_dir: Path) -> None:
    result = write_report(small_dir, tmp_path / "report.html", title="a <b> & c")
    html = result.path.read_text(encoding="utf-8")
    assert result.size_bytes == len(html.encode())
    assert "plotly.js v" in html[:2_000_000]
    # Nothing is loaded from anywhere: no element with a src or href, no stylesheet link.
    assert not re.search(r"<(script|link|img|iframe|object|embed)\b[^>]*\b(src|href)\s*=", html)
    assert "<title>a &lt;b&gt; &amp; c</title>" in html
    data = page_data(html)
    assert data["title"] == "a <b> & c"
    assert result.containers == len(data["containers"]) == 3


@pytest.mark.slow
def test_a_day_for_100_containers_stays_bounded(tmp_path: Path, large_dir: Path) -> None:
    started = time.monotonic()
    result = write_report(large_dir, tmp_path / "large.html", max_points=400)
    seconds = time.monotonic() - started
    html = result.path.read_text(encoding="utf-8")
    data = page_data(html)
    assert result.containers == len(data["containers"]) == 100
    assert data["bucket_ms"] == 300_000  # a day in 400 points: one per 5 minutes
    assert max(len(s["values"]) for s in data["series"]) <= 400
    assert result.max_values_per_series <= 400
    per_chart: dict[str, int] = {}
    for s in data["series"]:
        per_chart[s["chart"]] = per_chart.get(s["chart"], 0) + 1
    assert per_chart == {
        "cpu": 100,
        "memory": 200,
        "psi": 200,
        "throttling": 100,
        "pss": 100 * len(LARGE_PROCESSES),
    }
    assert len(data["selection"]) == 8
    assert [e["kind"] for e in data["events"]] == ["run", "oom", "run"]
    # 900 series of at most 400 values: the data stays a few MB, whatever the ticks.
    assert result.data_bytes < 3_000_000
    assert result.size_bytes < PLOTLY_BYTES_MAX + 3_000_000
    assert seconds < 60, f"report took {seconds:.1f} s"


def test_host_cgroups_get_short_distinct_legend_labels(tmp_path: Path) -> None:
    data = build_report_data(write_small(tmp_path / "host", host=True))
    labels = {c["name"]: c["label"] for c in data["containers"]}
    assert labels == {
        "system.slice/nginx.service": "nginx.service",
        "system.slice/postgresql.service": "postgresql.service",
        "user.slice/user-0.slice/session-4.scope": "session-4.scope",
    }


def test_kubernetes_containers_are_labelled_as_in_the_viewer(small_dir: Path) -> None:
    data = build_report_data(small_dir)
    assert {c["label"]: c["name"] for c in data["containers"]} == {
        "nginx": "shop/web-7d9/nginx",
        "postgres": "shop/db-0/postgres",
        "job": "jobs/batch-x/job",
    }


def test_a_restarted_container_is_named_by_its_start_time(tmp_path: Path) -> None:
    data = build_report_data(write_restarts(tmp_path / "out"))
    by_id = {c["key"]: c for c in data["containers"]}
    lives = [by_id[life.container_id] for life in API_LIVES]
    assert [(c["label"], c["name"]) for c in lives] == [
        ("api (since 23:58:00)", "shop/api-6c8/api (since 23:58:00)"),
        ("api (since 23:59:20)", "shop/api-6c8/api (since 23:59:20)"),
        ("api (since 00:00:40)", "shop/api-6c8/api (since 00:00:40)"),
    ]
    assert by_id[RESTARTS_NEIGHBOURS[0].container_id]["label"] == "checkout-5d4f8b7c9-x2x7q/server"
    # The OOM kill is the first life's, which the events name.
    ooms = [e for e in data["events"] if e["kind"] == "oom"]
    assert [data["containers"][e["c"]]["key"] for e in ooms] == [API_LIVES[0].container_id]
    shown = json.dumps([[c["label"], c["name"]] for c in data["containers"]])
    assert not re.search("[0-9a-f]{13,}", shown)


def test_one_run_and_some_containers_only(tmp_path: Path, small_dir: Path) -> None:
    result = write_report(small_dir, tmp_path / "r.html", run_id=RUN_B, container_keys=[WEB_ID])
    assert result.containers == 1
    page = (tmp_path / "r.html").read_text()
    assert "finemon run b2b2b2b2" in page and "finemon run a1a1a1a1" not in page


def test_oom_kills_are_counted_not_their_events(patterns_dir: Path) -> None:
    """Two OOM kills seen at one tick: one event of count 2, and the container's table says 2."""

    data = build_report_data(patterns_dir)
    [oomy] = [i for i, c in enumerate(data["containers"]) if c["label"] == "oomy"]
    ooms = [e for e in data["events"] if e["kind"] == "oom"]
    assert [(e["c"], e["count"], e["text"]) for e in ooms] == [(oomy, 2, "2 OOM kills")]
    assert data["containers"][oomy]["oom_kills"] == 2


def _write_late_discovery(root: Path) -> Path:
    """web from the run's first tick; db seen from its second tick only (found one tick
    late, as discovery does), both to the end: no container started or stopped."""
    rows = synthetic._Rows()
    for tick in range(20):
        at = RUN_A_START_MS + tick * 1000
        for container in (synthetic.WEB, synthetic.DB):
            if container is synthetic.DB and tick == 0:
                continue
            rows.add(synthetic.RUN_A, at, tick, "container.memory.working_set_bytes",
                     10.0 * synthetic.MIB, container.columns())  # fmt: skip
    synthetic.write_file(root, rows.table(), synthetic.RUN_A, 0)
    return root


@pytest.mark.parametrize("dataset", ["small", "restarts", "patterns", "late discovery"])
def test_the_events_are_the_viewers_markers(
    dataset: str, small_dir: Path, patterns_dir: Path, tmp_path: Path
) -> None:
    """OOM kills, starts and stops: the same events, counts and texts as the viewer marks."""
    from analysis.query.explorer import Explorer

    root = {
        "small": lambda: small_dir,
        "restarts": lambda: write_restarts(tmp_path / "out"),
        "patterns": lambda: patterns_dir,
        "late discovery": lambda: _write_late_discovery(tmp_path / "out"),
    }[dataset]()
    data = build_report_data(root)
    keys = [c["key"] for c in data["containers"]]
    events = sorted(
        (e["t"], e["kind"], keys[e["c"]], e.get("count", 1), e["text"])
        for e in data["events"]
        if e["kind"] != "run"
    )
    with Explorer(root) as explorer:
        markers = explorer.markers([c.key for c in explorer.containers()])
    assert events == sorted(
        (round(m.time * 1000), m.kind, m.container_key, m.count, m.text) for m in markers
    )
    assert bool(events) is (dataset != "late discovery")
