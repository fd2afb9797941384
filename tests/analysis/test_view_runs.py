"""The viewer's and the report's data for runs and the watched agent's report, on two runs
written with the capture library (:mod:`tests.analysis.recorded`): phase markers, two runs
overlaid, ``target.*`` label filters and node-wide series, reported vs observed."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from analysis.query.explorer import Explorer
from tests.analysis import recorded as rec

pytest.importorskip("starlette", reason="starlette is not installed (pip install -e '.[view]')")
pytest.importorskip("httpx", reason="httpx (starlette's test client) is not installed")

from starlette.testclient import TestClient

from analysis.view import create_app


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return rec.write_two_runs(tmp_path_factory.mktemp("two-runs") / "finemon-out")


@pytest.fixture(scope="module")
def explorer(two_runs: Path) -> Iterator[Explorer]:
    with Explorer(two_runs) as opened:
        yield opened


@pytest.fixture
def client(explorer: Explorer, two_runs: Path) -> Iterator[TestClient]:
    with TestClient(create_app(explorer, two_runs), base_url="http://127.0.0.1:8050") as c:
        yield c


def get(client: TestClient, path: str, **params: Any) -> Any:
    response = client.get(path, params=params)
    assert response.status_code == 200, response.text
    return response.json()


# ------------------------------------------------------------------------------ phases
def test_phase_marks_come_from_the_files_and_the_manifests(explorer: Explorer) -> None:
    marks = [(m.run_id, m.name, m.time, m.source) for m in explorer.phase_marks()]
    assert marks == [
        (rec.RUN_A, rec.PHASE, rec.mark_seconds(rec.RUN_A), "files"),
        (rec.RUN_A, "manifest_only", rec.RUN_A_START + 40.25, "manifest"),
        (rec.RUN_B, rec.PHASE, rec.mark_seconds(rec.RUN_B), "files"),
    ]


def test_phase_markers_are_listed_whatever_the_containers(client: TestClient) -> None:
    markers = get(client, "/api/markers")["markers"]
    assert [(m["kind"], m["time"], m["phase"], m["run_id"], m["text"]) for m in markers] == [
        ("phase", rec.mark_seconds(rec.RUN_A), rec.PHASE, rec.RUN_A, "phase load_started"),
        ("phase", rec.RUN_A_START + 40.25, "manifest_only", rec.RUN_A, "phase manifest_only"),
        ("phase", rec.mark_seconds(rec.RUN_B), rec.PHASE, rec.RUN_B, "phase load_started"),
    ]
    # Within a range only those in it.
    first = get(client, "/api/markers", start=rec.RUN_A_START, end=rec.RUN_A_START + 30)
    assert [m["phase"] for m in first["markers"]] == [rec.PHASE]


def test_the_reports_events_mark_the_phases(two_runs: Path) -> None:
    from analysis.report import build_report_data

    events = [e for e in build_report_data(two_runs)["events"] if e["kind"] == "phase"]
    assert [(e["t"], e["c"], e["text"]) for e in events] == [
        (round(rec.mark_seconds(rec.RUN_A) * 1000), -1, "phase load_started (run 3f9a2c00)"),
        (round((rec.RUN_A_START + 40.25) * 1000), -1, "phase manifest_only (run 3f9a2c00)"),
        (round(rec.mark_seconds(rec.RUN_B) * 1000), -1, "phase load_started (run 8b1e0700)"),
    ]
    # One run's report: its phases only.
    one = build_report_data(two_runs, run_id=rec.RUN_B)["events"]
    assert [e["text"] for e in one if e["kind"] == "phase"] == ["phase load_started (run 8b1e0700)"]


# ------------------------------------------------------------------------------ target.* labels
QUEUE = "target.agent.queue.items"
REPORTED_MEMORY = "target.container.memory.usage"


def _drawn(series: list[dict[str, Any]]) -> list[tuple[str, str, dict[str, str]]]:
    return [(s["container_key"], s["label"], s["labels"]) for s in series]


def test_an_agents_own_metric_is_found_and_drawn_with_no_container(client: TestClient) -> None:
    found = get(client, "/api/metrics", search="queue items")["metrics"]
    assert [(m["name"], m["containers"], m["series"]) for m in found] == [(QUEUE, 0, 2)]
    # No container picked: its series of no container, one per label set.
    series = get(client, "/api/series", metric=QUEUE)["series"]
    assert _drawn(series) == [
        ("", "node host=node-1 queue=dogstatsd", {"host": "node-1", "queue": "dogstatsd"}),
        ("", "node host=node-1 queue=forwarder", {"host": "node-1", "queue": "forwarder"}),
    ]
    assert {v for v in series[1]["values"] if v is not None} == {rec.QUEUES["forwarder"]}
    # A container metric stays a container's: none drawn without a container picked.
    assert get(client, "/api/series", metric=REPORTED_MEMORY)["series"] == []


def test_a_series_of_no_container_can_be_studied(client: TestClient) -> None:
    series = get(client, "/api/series", metric=QUEUE, label="queue=forwarder")["series"]
    studied = get(client, "/api/studies", metric=QUEUE, series=series[0]["key"])
    assert studied["series"] == series[0]["key"] and studied["container"] == ""
    assert studied["changepoints"] == []  # a flat 7 items
    # A container metric still needs its container.
    refused = client.get("/api/studies", params={"metric": WORKING_SET})
    assert refused.status_code == 400 and "container" in refused.json()["error"]


def test_tags_are_label_filters(client: TestClient) -> None:
    labels = get(client, "/api/labels", metric=QUEUE)["labels"]
    assert labels == [
        {"key": "host", "values": ["node-1"], "count": 1},
        {"key": "queue", "values": ["dogstatsd", "forwarder"], "count": 2},
    ]
    one = get(client, "/api/series", metric=QUEUE, label="queue=forwarder")["series"]
    assert [s["labels"]["queue"] for s in one] == ["forwarder"]
    both = client.get("/api/series", params=[("metric", QUEUE), ("label", "queue=forwarder"),
                                             ("label", "queue=dogstatsd")]).json()  # fmt: skip
    assert len(both["series"]) == 2
    neither = client.get("/api/series", params=[("metric", QUEUE), ("label", "queue=forwarder"),
                                                ("label", "host=elsewhere")]).json()  # fmt: skip
    assert neither["series"] == []
    # A bare tag of a container's report: tag.canary=true.
    app = rec.CONTAINER_IDS[rec.RUN_A]
    keys = {k["key"] for k in get(client, "/api/labels", metric=REPORTED_MEMORY,
                                  container=app)["labels"]}  # fmt: skip
    assert keys == {"host", "kube_namespace", "tag.canary"}
    canary = get(client, "/api/series", metric=REPORTED_MEMORY, container=app,
                 label="tag.canary=true")["series"]  # fmt: skip
    assert [s["container_key"] for s in canary] == [app]
    assert get(client, "/api/series", metric=REPORTED_MEMORY, container=app,
               label="tag.canary=false")["series"] == []  # fmt: skip
    bad = client.get("/api/series", params={"metric": QUEUE, "label": "queue"})
    assert bad.status_code == 400 and "key=value" in bad.json()["error"]


def test_the_mcp_tools_take_the_same_label_filters(explorer: Explorer) -> None:
    pytest.importorskip("mcp", reason="the mcp extra is not installed")
    import asyncio

    from mcp import Client

    from analysis.mcp_server import build_server

    async def run() -> None:
        async with Client(build_server(explorer)) as client:
            listed = await client.call_tool("list_labels", {"metric": QUEUE})
            assert listed.structured_content is not None
            assert [k["key"] for k in listed.structured_content["labels"]] == ["host", "queue"]
            found = await client.call_tool(
                "get_series",
                {"metric": QUEUE, "containers": [], "node_wide": True,
                 "labels": ["queue=dogstatsd"]},
            )  # fmt: skip
            assert found.structured_content is not None
            [series] = found.structured_content["series"]
            assert series["labels"] == {"host": "node-1", "queue": "dogstatsd"}
            assert {p[1] for p in series["points"]} == {rec.QUEUES["dogstatsd"]}

    asyncio.run(run())


# ----------------------------------------------------------------------- reported vs observed
APP = rec.CONTAINER_IDS[rec.RUN_A]


def test_the_containers_the_agent_reported_on_are_listed_with_their_pairs(
    client: TestClient,
) -> None:
    listed = get(client, "/api/containers")
    assert listed["reported"] == {
        APP: ["target.container.memory.usage", "target.container.cpu.usage"]
    }


def test_reported_vs_observed_pairs_the_agents_figures_with_the_kernels(
    client: TestClient,
) -> None:
    found = get(client, "/api/reported", container=APP, max_points=60)
    memory, cpu = found["comparisons"]
    assert memory["pair"] == "memory usage" and memory["unit"] == "bytes"
    assert memory["observed"] == ["container.memory.usage_bytes",
                                  "container.memory.working_set_bytes"]  # fmt: skip
    assert memory["bucket_seconds"] == 1.0 and len(memory["points"]) == rec.TICKS
    # Each tick: the agent's last report (every 15 s) beside the kernel's figures.
    for tick, (at, reported, usage, working_set) in enumerate(memory["points"]):
        assert at == rec.RUN_A_START + tick
        last_report = tick - tick % rec.REPORT_EVERY
        expected_report = (rec.working_set_bytes(rec.RUN_A, last_report) + rec.USAGE_EXTRA_BYTES
                           + rec.REPORTED_EXTRA_BYTES)  # fmt: skip
        assert reported == expected_report, tick
        assert working_set == rec.working_set_bytes(rec.RUN_A, tick)
        assert usage == working_set + rec.USAGE_EXTRA_BYTES
    # The differences over time, drawn as series: reported minus each observed figure.
    by_role = {s["label"]: s for s in memory["series"]}
    gap = by_role["reported - container.memory.working_set_bytes"]["values"]
    assert gap[0] == rec.USAGE_EXTRA_BYTES + rec.REPORTED_EXTRA_BYTES
    assert gap[rec.mark_tick(rec.RUN_A)] == gap[0] - rec.LOAD_MIB * rec.MIB  # the agent lags
    assert memory["difference"]["container.memory.working_set_bytes"]["max_abs"] == max(
        abs(v) for v in gap
    )
    # CPU: the agent's nanocores scaled to millicores.
    assert cpu["pair"] == "CPU usage" and cpu["reported_scale"] == 1e-6
    assert {p[1] for p in cpu["points"]} == {rec.MILLICORES + rec.REPORTED_EXTRA_MILLICORES}
    assert cpu["difference"]["container.cpu.usage_millicores"]["mean"] == pytest.approx(
        rec.REPORTED_EXTRA_MILLICORES
    )
    # A container the agent said nothing about: no comparison.
    other = rec.CONTAINER_IDS[rec.RUN_B]
    assert get(client, "/api/reported", container=other)["comparisons"] == []


def test_the_mcp_tool_compares_from_the_same_table(explorer: Explorer) -> None:
    pytest.importorskip("mcp", reason="the mcp extra is not installed")
    import asyncio

    from mcp import Client

    from analysis.mcp_server import build_server

    async def run() -> None:
        async with Client(build_server(explorer)) as client:
            found = await client.call_tool(
                "compare_reported",
                {"container": APP, "reported": "target.container.cpu.usage", "max_points": 60},
            )
            assert found.structured_content is not None
            answer = found.structured_content
            assert answer["observed"] == ["container.cpu.usage_millicores"]
            assert answer["unit"] == "millicores"
            assert {p[1] for p in answer["points"]} == {
                rec.MILLICORES + rec.REPORTED_EXTRA_MILLICORES
            }

    asyncio.run(run())


# ------------------------------------------------------------------------------ overlay
WORKING_SET = "container.memory.working_set_bytes"


def test_the_runs_to_overlay_with_their_phases(client: TestClient) -> None:
    runs = get(client, "/api/runs")["runs"]
    found = [(r["run_id"], r["first_time"], r["last_time"], r["variant"], r["phases"])
             for r in runs]  # fmt: skip
    last_a, last_b = rec.RUN_A_START + rec.TICKS - 1, rec.RUN_B_START + rec.TICKS - 1
    assert found == [
        (rec.RUN_A, rec.RUN_A_START, last_a, "3f9a2c", [rec.PHASE, "manifest_only"]),
        (rec.RUN_B, rec.RUN_B_START, last_b, "8b1e07", [rec.PHASE]),
    ]


def _overlay(client: TestClient, phase: str = "", **more: Any) -> Any:
    params = [("metric", WORKING_SET), ("container", APP), ("run", rec.RUN_A),
              ("run", rec.RUN_B), ("phase", phase), ("max_points", "100")]  # fmt: skip
    return client.get("/api/overlay", params=params + list(more.items()))


def test_two_runs_overlaid_from_their_start(client: TestClient) -> None:
    found = _overlay(client).json()
    assert found["origins"] == {rec.RUN_A: rec.RUN_A_START, rec.RUN_B: rec.RUN_B_START}
    a, b = found["series"]
    # Run A's container picked: run B's is matched by namespace/workload/container.
    assert (a["label"], b["label"]) == (
        "shop/web/app (run 3f9a2c00)",
        "shop/web/app (run 8b1e0700)",
    )
    assert b["container_key"] == rec.CONTAINER_IDS[rec.RUN_B]
    assert a["times"] == b["times"] == [float(t) for t in range(rec.TICKS)]
    for series, run_id in ((a, rec.RUN_A), (b, rec.RUN_B)):
        assert series["values"] == [rec.working_set_bytes(run_id, t) for t in range(rec.TICKS)]


def test_two_runs_overlaid_from_a_phase_as_finemon_compare_aligns_them(
    client: TestClient, two_runs: Path
) -> None:
    found = _overlay(client, rec.PHASE).json()
    assert found["phase"] == rec.PHASE
    assert found["origins"] == {r: rec.mark_seconds(r) for r in (rec.RUN_A, rec.RUN_B)}
    a, b = found["series"]
    # Only what follows the mark: from the next tick, 0.5 s after it, both runs loaded.
    assert a["times"][0] == b["times"][0] == 0.5
    assert len(a["times"]) == rec.TICKS - rec.mark_tick(rec.RUN_A)
    assert len(b["times"]) == rec.TICKS - rec.mark_tick(rec.RUN_B)
    assert set(a["values"]) == {float((rec.HELD_MIB[rec.RUN_A] + rec.LOAD_MIB) * rec.MIB)}
    assert set(b["values"]) == {float((rec.HELD_MIB[rec.RUN_B] + rec.LOAD_MIB) * rec.MIB)}
    # The origins are those of finemon compare --phase (its html overlay's).
    from analysis.experiments.compare import compare

    compared = compare(two_runs, rec.RUN_A, two_runs, rec.RUN_B, phase=rec.PHASE)
    base, other = compared.series[("shop/web/app", WORKING_SET)]
    assert [base[0].origin_ms / 1000, other[0].origin_ms / 1000] == list(found["origins"].values())
    assert (base[0].times_ms[0] - base[0].origin_ms) / 1000 == a["times"][0]


def test_a_bad_overlay_is_a_clear_error(client: TestClient) -> None:
    missing = _overlay(client, "manifest_only")
    assert missing.status_code == 400
    assert missing.json()["error"] == (
        "run 8b1e0700 has no phase 'manifest_only' (its phases: load_started)"
    )
    unknown = client.get("/api/overlay", params={"metric": WORKING_SET, "run": "nope"})
    assert unknown.status_code == 400 and "no run 'nope'" in unknown.json()["error"]
    no_run = client.get("/api/overlay", params={"metric": WORKING_SET})
    assert no_run.status_code == 400 and "run" in no_run.json()["error"]
