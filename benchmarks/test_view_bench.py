"""``finemon view`` on a day of 100 containers at 1 Hz: the first chart in under 2 s.

Run by hand (not in the default test run; building the dataset takes minutes)::

    PYTHONPATH=src python -m pytest -q -s benchmarks/test_view_bench.py

Two measures, each printed against the 2 s target, the server started beforehand (and its first
answer, which opens the dataset, made before the clock starts):

* through the HTTP API: the page's calls before its first chart (range, containers, metrics,
  then /api/series of one metric for every container at a chart's width of points);
* in Debian's chromium: from navigating to a link (100 containers, one panel) to the chart
  drawn, read from the page's own clock (``performance.now()`` at the first drawn chart).
"""

from __future__ import annotations

import json
import os
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from tests.analysis.synthetic import write_large

TARGET_SECONDS = 2.0
CONTAINERS = 100
TICKS = 86_400  # a day at 1 Hz
METRIC = "container.memory.working_set_bytes"
CHROMIUM = os.environ.get("FINEMON_CHROMIUM", "/usr/bin/chromium")

pytest.importorskip("uvicorn", reason="uvicorn is not installed (pip install -e '.[view]')")
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def day_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    cached = os.environ.get("FINEMON_BENCH_DAY_DIR")
    if cached and Path(cached).is_dir():
        return Path(cached)  # a dataset built by an earlier run of this file
    root = tmp_path_factory.mktemp("day-1hz") / "finemon-out"
    started = time.monotonic()
    rows = write_large(
        root, containers=CONTAINERS, ticks=TICKS, tick_seconds=1.0, ticks_per_file=3600
    )
    print(f"\ndataset: {rows:,} rows written in {time.monotonic() - started:.0f} s")
    return root


def _get(base: str, path: str, params: list[tuple[str, str]] | None = None) -> Any:
    url = base + path + ("?" + urllib.parse.urlencode(params) if params else "")
    with urllib.request.urlopen(url, timeout=120) as response:
        return json.loads(response.read())


def _report(what: str, seconds: float) -> None:
    verdict = "within" if seconds < TARGET_SECONDS else "OVER"
    print(f"\n{what}: {seconds:.2f} s ({verdict} the {TARGET_SECONDS:g} s target)")


def test_first_chart_through_the_api(day_dir: Path) -> None:
    from tests.analysis.view_server import running_view

    with running_view(day_dir) as base:
        _get(base, "api/status")  # the server is up and the dataset opened
        started = time.perf_counter()
        _get(base, "api/range")
        containers = _get(base, "api/containers")["containers"]
        _get(base, "api/metrics")
        keys = [("container", c["key"]) for c in containers]
        body = _get(base, "api/series", [("metric", METRIC), *keys, ("max_points", "1200")])
        seconds = time.perf_counter() - started
    assert len(containers) == CONTAINERS
    assert len(body["series"]) == CONTAINERS
    assert all(0 < len(s["times"]) <= 1200 for s in body["series"])
    _report(f"API: range, containers, metrics and {METRIC} of {CONTAINERS} containers", seconds)
    assert seconds < TARGET_SECONDS


@pytest.mark.skipif(not os.access(CHROMIUM, os.X_OK), reason=f"no chromium at {CHROMIUM}")
def test_first_chart_in_the_browser(day_dir: Path) -> None:
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    from tests.analysis.test_view_browser import CHROMIUM_ARGS
    from tests.analysis.view_server import running_view

    with running_view(day_dir) as base:
        keys = [c["key"] for c in _get(base, "api/containers")["containers"]]
        state = {"containers": keys, "panels": [{"metric": METRIC}]}
        link = base + "#view=" + urllib.parse.quote(json.dumps(state))
        with sync_api.sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page(bypass_csp=True, viewport={"width": 1400, "height": 1000})
            page.goto(link)
            page.wait_for_function("document.body.dataset.firstChart", timeout=60_000)
            # performance.now() counts from the navigation's start.
            seconds = float(page.evaluate("Number(document.body.dataset.firstChart)")) / 1000
            drawn = page.evaluate("finemonView.panels[0].series.length")
            # x, then each container's means, maxima and minima (its line and its band).
            columns = page.evaluate("finemonView.panels[0].plot.data.length")
            browser.close()
    assert drawn == CONTAINERS
    assert columns == 1 + 3 * CONTAINERS
    _report(f"browser: link opened to {METRIC} of {CONTAINERS} containers drawn", seconds)
    assert seconds < TARGET_SECONDS
