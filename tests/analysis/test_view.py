"""``finemon view``'s server: its JSON API over the Explorer (through starlette's test client),
its safety rules, the page's files, and the command itself (a real process on a real port)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from analysis.view import STATIC_DIR, host_name, is_loopback, jsonable
from tests.analysis.synthetic import DB_ID, MIB, OOM_TICK, RUN_A_START_MS, WEB_ID

pytest.importorskip("starlette", reason="starlette is not installed (pip install -e '.[view]')")
pytest.importorskip("httpx", reason="httpx (starlette's test client) is not installed")

from starlette.testclient import TestClient

from analysis.query.explorer import Explorer
from analysis.view import create_app

WORKING_SET = "container.memory.working_set_bytes"


@pytest.fixture(scope="module")
def explorer(small_dir: Path) -> Explorer:
    return Explorer(small_dir)


@pytest.fixture
def client(explorer: Explorer, small_dir: Path) -> Iterator[TestClient]:
    with TestClient(create_app(explorer, small_dir), base_url="http://127.0.0.1:8050") as c:
        yield c


def get(client: TestClient, path: str, **params: Any) -> Any:
    response = client.get(path, params=params)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    return response.json()


def test_range_and_status(client: TestClient, explorer: Explorer, small_dir: Path) -> None:
    body = get(client, "/api/range")
    start, end = explorer.time_range() or (None, None)
    assert start is not None and end is not None
    assert body["range"] == [start.timestamp(), end.timestamp()]
    assert body["range"][0] == RUN_A_START_MS / 1000
    assert body["directory"] == str(small_dir)
    status = get(client, "/api/status")
    assert status == {"version": 1, "range": body["range"]}


def test_containers_search_filters_and_facets(client: TestClient) -> None:
    body = get(client, "/api/containers")
    assert body["total"] == 3
    assert sorted(c["key"] for c in body["containers"]) == sorted([WEB_ID, DB_ID, "c" * 64])
    assert body["facets"]["namespace"] == ["jobs", "shop"]
    assert body["facets"]["qos"] == ["BestEffort", "Burstable", "Guaranteed"]
    assert body["facets"]["node"] == ["node-1"]
    found = get(client, "/api/containers", search="postgres")["containers"]
    assert [c["key"] for c in found] == [DB_ID]
    found = get(client, "/api/containers", namespace="shop", qos="Burstable")["containers"]
    assert [c["key"] for c in found] == [WEB_ID]


def test_metrics(client: TestClient) -> None:
    names = [m["name"] for m in get(client, "/api/metrics")["metrics"]]
    assert WORKING_SET in names and "process.memory.pss_bytes" in names
    only = [m["name"] for m in get(client, "/api/metrics", search="working")["metrics"]]
    assert only == [WORKING_SET]


def test_series_are_the_explorers_downsampled(client: TestClient, explorer: Explorer) -> None:
    body = get(client, "/api/series", metric=WORKING_SET, container=DB_ID, max_points=40)
    (series,) = body["series"]
    (expected,) = explorer.series(WORKING_SET, [DB_ID], max_points=40)
    assert series == jsonable(expected)
    assert 10 <= len(series["times"]) <= 40
    assert series["container_key"] == DB_ID
    # Both containers asked for, by a repeated parameter.
    response = client.get(
        "/api/series",
        params=[("metric", WORKING_SET), ("container", DB_ID), ("container", WEB_ID)],
    )
    keys = [s["container_key"] for s in response.json()["series"]]
    assert sorted(keys) == sorted([DB_ID, WEB_ID])
    # A range: only its points.
    start = RUN_A_START_MS / 1000 + 60
    body = get(client, "/api/series", metric=WORKING_SET, container=DB_ID, start=start,
               end=start + 30)  # fmt: skip
    times = body["series"][0]["times"]
    assert times and start - 1 <= times[0] and times[-1] <= start + 31


def test_processes_markers_and_studies(client: TestClient) -> None:
    body = get(client, "/api/processes", container=WEB_ID)
    labels = {s["label"] for s in body["series"]}
    assert len(labels) == 2 and any("nginx" in label for label in labels)
    markers = get(client, "/api/markers", container=DB_ID)["markers"]
    ooms = [m for m in markers if m["kind"] == "oom"]
    assert [m["time"] for m in ooms] == [(RUN_A_START_MS + OOM_TICK * 1000) / 1000]
    study = get(client, "/api/studies", metric=WORKING_SET, container=DB_ID)
    assert study["series"] is not None
    oom = (RUN_A_START_MS + OOM_TICK * 1000) / 1000
    assert any(abs(c["time"] - oom) <= 2 for c in study["changepoints"]), study
    (big,) = [c for c in study["changepoints"] if abs(c["time"] - oom) <= 2]
    assert big["before_mean"] > 150 * MIB > 100 * MIB > big["after_mean"]


@pytest.mark.parametrize(
    ("path", "params", "message"),
    [
        ("/api/series", {}, "missing parameter 'metric'"),
        ("/api/series", {"metric": WORKING_SET, "start": "yesterday"}, "start: not epoch"),
        ("/api/series", {"metric": WORKING_SET, "start": "20", "end": "10"}, "end must be after"),
        ("/api/series", {"metric": WORKING_SET, "max_points": "1"}, "max_points: must be"),
        ("/api/series", {"metric": WORKING_SET, "max_points": "x"}, "max_points: not an int"),
        ("/api/processes", {}, "missing parameter 'container'"),
        ("/api/studies", {"metric": WORKING_SET}, "missing parameter 'container'"),
    ],
)
def test_bad_requests_are_json_errors(
    client: TestClient, path: str, params: dict[str, str], message: str
) -> None:
    response = client.get(path, params=params)
    assert response.status_code == 400
    assert message in response.json()["error"]


def test_read_only_and_unknown_paths_answer_json(client: TestClient) -> None:
    response = client.post("/api/series", json={})
    assert response.status_code == 405
    assert "POST /api/series" in response.json()["error"]
    response = client.get("/api/nope")
    assert response.status_code == 404
    assert response.json()["error"].startswith("GET /api/nope")
    for method in ("put", "delete", "patch"):
        assert getattr(client, method)("/api/status").status_code == 405


def test_a_foreign_host_header_is_refused(client: TestClient) -> None:
    # A page on another site whose name resolves to 127.0.0.1 (DNS rebinding) sends its Host.
    response = client.get("/api/range", headers={"Host": "evil.example:8050"})
    assert response.status_code == 400
    assert "Host" in response.json()["error"]
    for host in ("localhost:8050", "127.0.0.1", "[::1]:8050"):
        assert client.get("/api/status", headers={"Host": host}).status_code == 200
    assert host_name("[::1]:8050") == "::1" and host_name("localhost:1") == "localhost"
    assert is_loopback("127.0.0.2") and not is_loopback("0.0.0.0")


def test_the_page_and_its_assets(client: TestClient) -> None:
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    policy = page.headers["content-security-policy"]
    assert "default-src 'self'" in policy and "script-src 'self'" in policy
    assets = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert sorted(assets) == sorted([
        "static/vendor/uPlot.min.css", "static/view.css",
        "static/vendor/uPlot.iife.min.js", "static/view.js",
    ])  # fmt: skip
    for asset in assets:
        assert client.get("/" + asset).status_code == 200, asset


def test_the_page_references_nothing_on_the_network() -> None:
    for name in ("index.html", "view.js", "view.css", "vendor/uPlot.min.css"):
        text = (STATIC_DIR / name).read_text()
        assert not re.search(r"https?://", text), name
    # uPlot's minified script: its only URL is its licence comment's.
    script = (STATIC_DIR / "vendor" / "uPlot.iife.min.js").read_text()
    assert re.findall(r"https?://[^\s\"')]+", script) == ["https://github.com/leeoniya/uPlot"]
    assert "innerHTML" not in (STATIC_DIR / "view.js").read_text()


def test_the_static_files_are_package_data() -> None:
    text = (Path(__file__).parents[2] / "pyproject.toml").read_text()
    assert '"view_static/*", "view_static/vendor/*"' in text
    names = {p.relative_to(STATIC_DIR).as_posix() for p in STATIC_DIR.rglob("*") if p.is_file()}
    assert {"index.html", "view.js", "view.css", "vendor/uPlot.iife.min.js",
            "vendor/uPlot.min.css", "vendor/uPlot.LICENSE"} <= names  # fmt: skip


def _start(directory: Path, *flags: str) -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "finemon", "view", str(directory), "--port", "0", *flags],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    match = re.search(r"on (http://\S+/) ", line)
    assert match, (line, process.stderr.read() if process.poll() is not None else "")
    return process, match.group(1)


def _stop(process: subprocess.Popen[str]) -> tuple[int, str]:
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=20)
    return process.returncode, stderr


def test_finemon_view_serves_until_interrupted(small_dir: Path) -> None:
    process, url = _start(small_dir)
    try:
        assert url.startswith("http://127.0.0.1:")
        with urllib.request.urlopen(url + "api/range", timeout=10) as response:
            body = json.loads(response.read())
        assert body["range"][0] == RUN_A_START_MS / 1000
        with urllib.request.urlopen(url, timeout=10) as response:
            assert b"finemon view" in response.read()
    finally:
        code, stderr = _stop(process)
    assert code == 0, stderr
    assert "warning" not in stderr


def test_finemon_view_warns_off_loopback_and_fails_in_one_line(
    small_dir: Path, tmp_path: Path
) -> None:
    process, _ = _start(small_dir, "--address", "0.0.0.0")
    code, stderr = _stop(process)
    assert code == 0
    assert "finemon view: warning: listening on 0.0.0.0" in stderr
    empty = tmp_path / "empty"
    empty.mkdir()
    done = subprocess.run(
        [sys.executable, "-m", "finemon", "view", str(empty), "--port", "0"],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    assert done.returncode == 1
    assert done.stderr.startswith("finemon view: error: ") and done.stderr.count("\n") == 1
