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
