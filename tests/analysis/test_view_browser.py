"""``finemon view`` in a real browser: Debian's chromium driven by Playwright (its Python
package only; no browser download), against the app served by uvicorn on a loopback port.

What the page draws is read back from the uPlot instances the page exposes on
``window.finemonView`` and compared with the API's and the Explorer's answers."""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import pytest

from tests.analysis.synthetic import (
    API_LIVES,
    DB_ID,
    MIB,
    NODE,
    OOM_TICK,
    RESTARTS_NEIGHBOURS,
    RUN_A_START_MS,
    RUN_B,
    WEB,
    WEB_ID,
    Container,
    _Rows,
    write_file,
    write_restarts,
    write_small,
)

CHROMIUM = os.environ.get("FINEMON_CHROMIUM", "/usr/bin/chromium")
playwright_api = pytest.importorskip(
    "playwright.sync_api", reason="playwright is not installed (pip install -e '.[dev]')"
)
pytest.importorskip("uvicorn", reason="uvicorn is not installed (pip install -e '.[view]')")
pytestmark = pytest.mark.skipif(
    not os.access(CHROMIUM, os.X_OK),
    reason=f"no chromium at {CHROMIUM} (Debian: apt-get install --no-install-recommends "
    "chromium; or set FINEMON_CHROMIUM)",
)

from analysis.query.explorer import Explorer  # noqa: E402
from tests.analysis.view_server import running_view  # noqa: E402

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-dev-shm-usage",
]
XSS_COMM = "<img src=x onerror=window.__xss=1>"
#: The browser's time zone: UTC-5 in January, so a local time differs from UTC by hours.
BROWSER_ZONE = "America/New_York"
WORKING_SET = "container.memory.working_set_bytes"
MILLICORES = "container.cpu.usage_millicores"


@dataclass
class Page:
    """A page and what it did: console errors, uncaught exceptions, requested URLs."""

    page: Any
    base: str
    problems: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)

    def open(self, url: str = "") -> None:
        self.page.goto(url or self.base)
        self.page.wait_for_function("document.body.dataset.ready", timeout=30_000)
        self.settle()

    def settle(self) -> None:
        """Wait until the page has no API call in flight and no zoom pending."""
        self.page.wait_for_timeout(100)
        self.page.wait_for_function("finemonView.loading === 0", timeout=30_000)
        self.page.wait_for_timeout(400)  # a zoom's fetch starts 300 ms after it
        self.page.wait_for_function("finemonView.loading === 0", timeout=30_000)

    def js(self, expression: str, arg: Any = None) -> Any:
        return self.page.evaluate(expression, arg)

    def state(self) -> dict[str, Any]:
        return dict(self.js("JSON.parse(JSON.stringify(finemonView.state))"))

    def panel_data(self, index: int = 0) -> list[list[float | None]]:
        return list(self.js(f"finemonView.panels[{index}].plot.data.map(a => Array.from(a))"))

    def offsite(self) -> list[str]:
        origin = urlsplit(self.base).netloc
        return [u for u in self.requests if urlsplit(u).netloc != origin and
                not u.startswith(("data:", "blob:"))]  # fmt: skip


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with playwright_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


def _xss_rows(rows: _Rows) -> None:
    """A container whose process has a comm that is HTML."""
    evil = Container("e" * 64, "evil", "evil-pod", XSS_COMM)
    for i in range(30):
        at = RUN_A_START_MS + i * 1000
        rows.add("e5" * 16, at, i, "container.cpu.usage_usec", 1000 * i, evil.columns())
        rows.add("e5" * 16, at, i, "container.memory.working_set_bytes", 5.0 * MIB, evil.columns())
        extra = {"pid": "666", "comm": XSS_COMM}
        rows.add("e5" * 16, at, i, "process.memory.pss_bytes", 4.0 * MIB, evil.columns(), extra)


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    """The small synthetic dataset plus a container named and running HTML, in a fresh folder
    (the live test adds files to it)."""
    root = write_small(tmp_path / "finemon-out")
    rows = _Rows()
    _xss_rows(rows)
    write_file(root, rows.table(), "e5" * 16, 1, identifier="evil")
    return root


@pytest.fixture
def page(browser: Any, dataset: Path) -> Iterator[Page]:
    with _page_on(browser, dataset) as opened:
        yield opened


@contextmanager
def _page_on(browser: Any, dataset: Path) -> Iterator[Page]:
    """A fresh browser context's page on ``dataset``'s viewer, recording what it did."""
    with running_view(dataset) as base:
        # Playwright's wait_for_function evaluates a string: allowed past the page's CSP
        # (script-src 'self', checked in test_view.py) for the tests only.
        # In a zone other than the machine's (UTC on CI): the page must show UTC regardless.
        context = browser.new_context(
            accept_downloads=True,
            bypass_csp=True,
            viewport={"width": 1400, "height": 1000},
            timezone_id=BROWSER_ZONE,
        )
        opened = Page(context.new_page(), base)
        opened.page.on("console", lambda m: m.type in ("error", "assert") and
                       opened.problems.append(f"console.{m.type}: {m.text}"))  # fmt: skip
        opened.page.on("pageerror", lambda e: opened.problems.append(f"exception: {e}"))
        opened.page.on("request", lambda r: opened.requests.append(r.url))
        yield opened
        context.close()


def pick(page: Page, search: str, key: str) -> None:
    """Search containers for ``search`` and tick the one whose key is ``key``."""
    page.page.fill("#container-search", search)
    page.page.wait_for_selector(f'#containers input[data-key="{key}"]')
    page.settle()
    page.page.check(f'#containers input[data-key="{key}"]')
    page.settle()


def add_metric(page: Page, search: str, metric: str) -> None:
    page.page.fill("#metric-search", search)
    page.page.wait_for_selector(f'#metrics li[data-metric="{metric}"]')
    page.settle()
    page.page.click(f'#metrics li[data-metric="{metric}"]')
    page.page.wait_for_function(
        "finemonView.panels.length && finemonView.panels.at(-1).plot", timeout=30_000
    )
    page.settle()


def api(page: Page, path: str) -> Any:
    return page.js("p => fetch(p).then(r => r.json())", path)


def test_search_pick_and_the_chart_draws_the_explorers_points(page: Page, dataset: Path) -> None:
    page.open()
    assert page.js("document.querySelectorAll('#containers li').length") == 4
    pick(page, "postgres", DB_ID)
    assert page.js("document.querySelectorAll('#containers li').length") == 1
    add_metric(page, "working", WORKING_SET)

    drawn = page.panel_data()
    asked = page.js("finemonView.panels[0].request")
    assert asked["container"] == [DB_ID] and asked["start"] is None
    answer = api(page, f"api/series?metric={WORKING_SET}&container={DB_ID}&max_points="
                 f"{asked['max_points']}")  # fmt: skip
    assert len(drawn) == 4  # x, then one series' means, maxima and minima
    series = answer["series"]
    assert len(series) == 1
    # The chart draws the API's points exactly, and they are the Explorer's.
    assert drawn[0] == series[0]["times"]
    assert drawn[1] == series[0]["values"]
    assert drawn[2:] == [series[0]["maxs"], series[0]["mins"]]
    # A sample a bucket: its band is as thin as its line.
    assert drawn[2] == drawn[3] == drawn[1]
    explorer = Explorer(dataset).series(WORKING_SET, [DB_ID], max_points=asked["max_points"])
    assert len(explorer) == 1
    assert asked["max_points"] > 240  # the panel is wider than the data: every tick shown
    assert len(drawn[0]) == 240
    assert drawn[0] == pytest.approx(list(explorer[0].times))
    assert drawn[1] == pytest.approx(list(explorer[0].values))
    # db's working set: 100 MiB + 1 MiB a tick until its OOM kill.
    assert drawn[1][0] == 100 * MIB and max(v for v in drawn[1] if v) == (100 + OOM_TICK - 1) * MIB

    # Its OOM kill is listed and marked.
    kinds = page.js("finemonView.markers.map(m => m.kind)")
    assert "oom" in kinds
    assert page.js("document.querySelector('#markers [data-kind=oom]') !== null")
    assert page.problems == []
    assert page.offsite() == []


def test_zoom_on_one_panel_zooms_the_other(page: Page) -> None:
    page.open()
    pick(page, "shop", WEB_ID)
    page.page.check(f'#containers input[data-key="{DB_ID}"]')
    page.settle()
    add_metric(page, "working", WORKING_SET)
    add_metric(page, "millicores", MILLICORES)
    # x, then web's and db's means, then their maxima and minima (the bands).
    assert page.js("finemonView.panels[1].plot.data.length") == 1 + 3 * 2
    assert page.js("finemonView.panels[1].series.map(s => s.container_key)") == [WEB_ID, DB_ID]
    start = RUN_A_START_MS / 1000 + 30
    end = start + 60
    page.js(f"finemonView.panels[0].plot.setScale('x', {{min: {start}, max: {end}}})")
    scales = page.js("finemonView.panels.map(p => [p.plot.scales.x.min, p.plot.scales.x.max])")
    assert scales == [[start, end], [start, end]]
    page.settle()
    # The zoom became the view's range: fetched anew at that range, and in the URL.
    assert page.state()["range"] == [start, end]
    assert page.js("finemonView.panels[1].plot.scales.x.min") == start
    times = page.panel_data(1)[0]
    assert times[0] >= start - 1 and times[-1] <= end + 1
    assert "range" in page.js("decodeURIComponent(location.hash)")
    # A drag on the second panel with the mouse zooms the first one too.
    box = page.page.locator(".panel").nth(1).locator(".u-over").bounding_box()
    y = box["y"] + box["height"] / 2
    page.page.mouse.move(box["x"] + box["width"] * 0.25, y)
    page.page.mouse.down()
    page.page.mouse.move(box["x"] + box["width"] * 0.5, y, steps=5)
    page.page.mouse.up()
    page.settle()
    scales = page.js("finemonView.panels.map(p => [p.plot.scales.x.min, p.plot.scales.x.max])")
    assert scales[0] == scales[1]
    assert start < scales[0][0] < scales[0][1] < end
    assert page.problems == []


def _overview_lines(page: Page) -> list[list[float | None]]:
    """The strip's series (x aside), as drawn."""
    return list(page.js("finemonView.overview.data.slice(1).map(a => Array.from(a))"))


def test_the_overview_strip_draws_a_panel_added_without_a_reload(page: Page) -> None:
    page.open()
    pick(page, "postgres", DB_ID)
    assert all(v is None for line in _overview_lines(page) for v in line)  # no panel yet
    add_metric(page, "working", WORKING_SET)
    drawn = _overview_lines(page)
    assert len(drawn) == 1
    assert max(v for v in drawn[0] if v is not None) > 100 * MIB
    assert page.js("finemonView.overview.series[1].label") == "postgres"
    # Its canvas holds the line: pixels in the series' colour, not a blank strip.
    coloured = page.js("""(() => {
        const u = finemonView.overview, ctx = u.ctx;
        const px = ctx.getImageData(0, 0, u.ctx.canvas.width, u.ctx.canvas.height).data;
        let n = 0;
        for (let i = 0; i < px.length; i += 4) if (px[i + 2] > 200 && px[i] < 100) n += 1;
        return n; })()""")
    assert coloured > 50
    # The strip follows the first metric panel: removed, it is blank again.
    page.page.click(".panel button.remove")
    page.settle()
    assert all(v is None for line in _overview_lines(page) for v in line)
    assert page.problems == []


def _tick_labels(page: Page, plot: str = "finemonView.panels[0].plot") -> list[str]:
    """The time axis' tick labels as drawn (uPlot keeps the texts it drew)."""
    return list(page.js(f"{plot}.axes[0]._values"))


def test_chart_times_are_utc_24_hour_and_labelled(page: Page) -> None:
    page.open()
    assert page.js("new Intl.DateTimeFormat().resolvedOptions().timeZone") == BROWSER_ZONE
    pick(page, "postgres", DB_ID)
    add_metric(page, "working", WORKING_SET)
    # db's data: 23:58:00 to 00:01:59 UTC (18:58 to 19:01 in New York).
    for plot in ("finemonView.panels[0].plot", "finemonView.overview"):
        labels = _tick_labels(page, plot)
        text = " ".join(labels)
        assert "2024-01-31 23:58" in text and "00:00" in text and "00:01" in text, labels
        assert not re.search(r"am|pm|18:5|19:0", text, re.IGNORECASE), labels
        assert page.js(f"{plot}.axes[0].label") == "UTC"
    # The hover's time row and the header say UTC too.
    at = (RUN_A_START_MS + 90_000) / 1000  # 23:59:30 UTC
    page.js(f"(() => {{ const u = finemonView.panels[0].plot;"
            f" u.setCursor({{left: u.valToPos({at}, 'x'), top: 10}}); }})()")  # fmt: skip
    row = page.js("document.querySelector('.panel .u-legend tr.u-series').textContent")
    assert re.fullmatch(r"time \(UTC\)2024-01-31 23:59:(29|30|31)(\.\d+)?", row), row
    header = page.js("document.getElementById('range-text').textContent")
    assert header.startswith("2024-01-31 23:58:00 \N{EN DASH} 2024-02-01 "), header
    assert "UTC" in header, header

    # The local-time box: the browser's zone, named, kept in the URL.
    page.page.check("#local-time")
    page.settle()
    labels = _tick_labels(page)
    text = " ".join(labels)
    assert "2024-01-31 18:58" in text and "19:00" in text and "19:01" in text, labels
    assert not re.search(r"am|pm|23:5|00:0", text, re.IGNORECASE), labels
    assert page.js("finemonView.panels[0].plot.axes[0].label") == BROWSER_ZONE
    assert page.js("finemonView.overview.axes[0].label") == BROWSER_ZONE
    assert BROWSER_ZONE in page.js("document.getElementById('range-text').textContent")
    assert page.state()["localTime"] is True
    assert page.problems == []


def _later_rows(first_tick: int, ticks: int) -> _Rows:
    rows = _Rows()
    start_ms = RUN_A_START_MS + 600_000  # 00:08:00, after everything else
    for i in range(first_tick, first_tick + ticks):
        rows.add(RUN_B, start_ms + i * 1000, i, MILLICORES, 700.0, WEB.columns())
    return rows


def test_live_mode_draws_a_file_that_lands_while_the_page_is_open(
    page: Page, dataset: Path, tmp_path: Path
) -> None:
    page.open()
    pick(page, "nginx", WEB_ID)
    add_metric(page, "millicores", MILLICORES)
    page.page.check("#live")
    before = page.js("finemonView.panels[0].plot.data[0].at(-1)")
    # Written elsewhere, then renamed into place, as finemon publishes a finished file.
    staged = write_file(tmp_path / "staging", _later_rows(0, 30).table(), RUN_B, 99)
    published = dataset / staged.relative_to(tmp_path / "staging")
    published.parent.mkdir(parents=True, exist_ok=True)
    os.replace(staged, published)
    landed_end = (RUN_A_START_MS + 600_000 + 29_000) / 1000
    page.page.wait_for_function(
        f"finemonView.panels[0].plot.data[0].at(-1) >= {landed_end}", timeout=20_000
    )
    page.settle()
    data = page.panel_data()
    assert data[0][-1] == landed_end > before
    assert data[1][-1] == 700.0
    assert page.problems == []


def test_a_comm_that_is_html_is_shown_as_text(page: Page) -> None:
    page.open()
    pick(page, "evil", "e" * 64)
    page.page.click(f'#containers button.pss[data-key="{"e" * 64}"]')
    page.page.wait_for_function("finemonView.panels.length && finemonView.panels[0].plot")
    page.settle()
    label = page.js("finemonView.panels[0].plot.series[1].label")
    assert XSS_COMM in label
    legend = page.js("document.querySelector('.panel .u-legend').textContent")
    assert XSS_COMM in legend
    sidebar = page.js("document.querySelector('#containers').textContent")
    assert XSS_COMM in sidebar  # the container's name is the same text
    options = page.js("Array.from(document.querySelectorAll('.panel select.study option'))"
                      ".map(o => o.textContent)")  # fmt: skip
    assert any(XSS_COMM in text for text in options)
    page.page.wait_for_timeout(300)
    assert page.js("document.querySelectorAll('img').length") == 0
    assert page.js("window.__xss") is None
    assert page.problems == []


def test_the_url_reopens_the_same_view(page: Page) -> None:
    page.open()
    pick(page, "shop", WEB_ID)
    page.page.check(f'#containers input[data-key="{DB_ID}"]')
    page.settle()
    add_metric(page, "working", WORKING_SET)
    page.page.click(f'#containers button.pss[data-key="{DB_ID}"]')
    page.settle()
    start = RUN_A_START_MS / 1000 + 100
    page.js(f"finemonView.setRange([{start}, {start + 90}])")
    page.settle()
    state, url = page.state(), page.page.url
    drawn = [page.panel_data(0), page.panel_data(1)]

    fresh = page.page.context.new_page()
    reopened = Page(fresh, page.base)
    reopened.open(url)
    assert reopened.state() == state
    assert reopened.js("finemonView.panels.length") == 2
    assert [reopened.panel_data(0), reopened.panel_data(1)] == drawn
    checked = reopened.js("Array.from(document.querySelectorAll('#containers input:checked'))"
                          ".map(b => b.dataset.key)")  # fmt: skip
    assert sorted(checked) == sorted([WEB_ID, DB_ID])
    assert page.problems == []


def test_a_dashboard_saved_as_json_loads_back(page: Page, tmp_path: Path) -> None:
    page.open()
    pick(page, "nginx", WEB_ID)
    add_metric(page, "millicores", MILLICORES)
    add_metric(page, "working", WORKING_SET)
    state = page.state()
    with page.page.expect_download() as download:
        page.page.click("#save-dashboard")
    saved = tmp_path / "dashboard.json"
    download.value.save_as(saved)
    dashboard = json.loads(saved.read_text())
    assert dashboard["format"] == "finemon-view-dashboard"
    assert [p["metric"] for p in dashboard["panels"]] == [MILLICORES, WORKING_SET]
    assert dashboard["containers"] == [WEB_ID]

    fresh = Page(page.page.context.new_page(), page.base)
    fresh.open()
    assert fresh.js("finemonView.panels.length") == 0
    fresh.page.set_input_files("#dashboard-file", str(saved))
    fresh.page.wait_for_function("finemonView.panels.length === 2 && "
                                 "finemonView.panels.every(p => p.plot)")  # fmt: skip
    fresh.settle()
    assert fresh.state() == state
    assert fresh.panel_data(1) == page.panel_data(1)

    # Not a dashboard: said so, nothing changed.
    bad = tmp_path / "bad.json"
    bad.write_text('{"panels": "nope"}')
    fresh.page.set_input_files("#dashboard-file", str(bad))
    fresh.page.wait_for_function("document.getElementById('message').textContent !== ''")
    assert "not a dashboard" in fresh.js("document.getElementById('message').textContent")
    assert fresh.state() == state


def test_a_study_marks_the_changepoint_of_the_oom_kill(page: Page) -> None:
    page.open()
    pick(page, "postgres", DB_ID)
    add_metric(page, "working", WORKING_SET)
    key = page.js("finemonView.panels[0].series[0].key")
    page.page.select_option(".panel select.study", key)
    page.page.wait_for_selector(".panel .study-text[data-ready]")
    page.settle()
    study = page.js("finemonView.panels[0].study")
    oom_time = (RUN_A_START_MS + OOM_TICK * 1000) / 1000
    assert any(math.isclose(c["time"], oom_time, abs_tol=2) for c in study["changepoints"])
    assert "changepoint" in page.js("document.querySelector('.panel .study-text').textContent")
    assert page.state()["panels"][0]["study"] == key
    assert page.problems == []


def test_the_node_filter_and_label_filters(page: Page) -> None:
    page.open()
    options = page.js("Array.from(document.querySelectorAll('#filter-namespace option'))"
                      ".map(o => o.value)")  # fmt: skip
    assert options == ["", "evil", "jobs", "shop"]
    page.page.select_option("#filter-namespace", "shop")
    page.settle()
    assert page.js("Array.from(document.querySelectorAll('#containers li'))"
                   ".map(li => li.dataset.key).sort()") == sorted([WEB_ID, DB_ID])  # fmt: skip
    page.page.select_option("#filter-qos", "Guaranteed")
    page.settle()
    assert page.js("Array.from(document.querySelectorAll('#containers li'))"
                   ".map(li => li.dataset.key)") == [DB_ID]  # fmt: skip
    assert page.js("Array.from(document.querySelectorAll('#filter-node option'))"
                   ".map(o => o.value)") == ["", NODE]  # fmt: skip
    assert page.state()["filters"]["qos"] == "Guaranteed"


# ------------------------------------------------------------------------------------------
# A peak shorter than a bucket: an hour at 1 Hz drawn at a chart's width (seconds per bucket).
SPIKY = Container("d" * 64, "shop", "spiky-0", "spiky")
CALM = Container("f" * 64, "shop", "calm-0", "calm")
SPIKY_RUN = "d4" * 16
SPIKE_TICK = 1234
SPIKE = 512.0 * MIB


@pytest.fixture
def spiky_page(browser: Any, tmp_path: Path) -> Iterator[Page]:
    """An hour at 1 Hz of two containers' working set: spiky's 64 to 67 MiB (a sawtooth) with
    one tick at 512 MiB, calm's a flat 32 MiB."""
    rows = _Rows()
    for i in range(3600):
        at = RUN_A_START_MS + i * 1000
        spiky = SPIKE if i == SPIKE_TICK else (64.0 + i % 4) * MIB
        rows.add(SPIKY_RUN, at, i, WORKING_SET, spiky, SPIKY.columns())
        rows.add(SPIKY_RUN, at, i, WORKING_SET, 32.0 * MIB, CALM.columns())
    root = tmp_path / "finemon-out"
    write_file(root, rows.table(), SPIKY_RUN, 1)
    with _page_on(browser, root) as opened:
        yield opened


def test_a_one_second_peak_shows_as_the_band_of_a_zoomed_out_chart(spiky_page: Page) -> None:
    page = spiky_page
    state = {"containers": [SPIKY.container_id, CALM.container_id],
             "panels": [{"metric": WORKING_SET}]}  # fmt: skip
    page.open(page.base + "#view=" + quote(json.dumps(state)))
    asked = page.js("finemonView.panels[0].request")
    answer = api(page, f"api/series?metric={WORKING_SET}&container={SPIKY.container_id}"
                 f"&container={CALM.container_id}&max_points={asked['max_points']}")  # fmt: skip
    series = answer["series"]
    assert [s["container_key"] for s in series] == [SPIKY.container_id, CALM.container_id]
    assert series[0]["bucket_seconds"] >= 2  # zoomed out: several samples a bucket
    drawn = page.panel_data()
    n = len(series)
    assert len(drawn) == 1 + 3 * n
    assert drawn[0] == series[0]["times"]
    # Indices 1..n: the means, drawn as the lines (the spike averaged away in them).
    assert drawn[1 : n + 1] == [s["values"] for s in series]
    means = drawn[1]
    assert max(v for v in means if v is not None) < SPIKE
    # One band per series, from its maxima down to its minima: the API's envelope exactly.
    bands = page.js("finemonView.panels[0].plot.bands.map(b => b.series)")
    assert len(bands) == n
    for k, (high, low) in enumerate(bands):
        assert drawn[high] == series[k]["maxs"]
        assert drawn[low] == series[k]["mins"]
    spiky_max = drawn[bands[0][0]]
    assert max(v for v in spiky_max if v is not None) == SPIKE
    at = spiky_max.index(SPIKE)
    # The bucket that holds the spike's tick (a bucket's time is the mean of its rows' times).
    spike_time = RUN_A_START_MS / 1000 + SPIKE_TICK
    assert abs(drawn[0][at] - spike_time) < series[0]["bucket_seconds"]
    assert means[at] is not None and means[at] < SPIKE
    assert drawn[bands[0][1]][at] == 64.0 * MIB  # the bucket's lowest sample
    assert set(drawn[bands[1][0]]) == set(drawn[bands[1][1]]) == {32.0 * MIB}  # calm: no band
    assert page.js("finemonView.panels[0].plot.scales.y.max") >= SPIKE  # the axis holds it

    # The legend: the time, then one row per container (no rows for the bands' edges).
    rows = page.js("Array.from(document.querySelectorAll('.panel .u-legend tr.u-series'))"
                   ".filter(r => getComputedStyle(r).display !== 'none')"
                   ".map(r => r.querySelector('.u-label').textContent)")  # fmt: skip
    assert rows == ["time (UTC)", "spiky", "calm"]
    # Hovering the spike's bucket: the mean, then the bucket's range.
    page.js(f"(() => {{ const u = finemonView.panels[0].plot;"
            f" u.setCursor({{left: u.valToPos({drawn[0][at]}, 'x'), top: 10}}); }})()")  # fmt: skip
    value = page.js("document.querySelectorAll('.panel .u-legend tr.u-series')[1]"
                    ".querySelector('.u-value').textContent")  # fmt: skip
    assert value.endswith("(64 MiB\N{EN DASH}512 MiB)") and not value.startswith("512")
    # Hiding spiky from its legend row hides its band too; showing it brings the band back.
    page.page.locator(".panel .u-legend tr.u-series").nth(1).locator("th").click()
    shown = page.js("finemonView.panels[0].plot.series.map(s => s.show)")
    assert shown == [True, False, True, False, True, False, True]
    page.page.locator(".panel .u-legend tr.u-series").nth(1).locator("th").click()
    assert all(page.js("finemonView.panels[0].plot.series.map(s => s.show)"))
    assert page.problems == []


# ------------------------------------------------------------------------------------------
# A container restarted twice (three container ids, one namespace/pod/container) and three
# neighbours: six containers.
LONG_HEX = re.compile("[0-9a-f]{13,}")
LIVES = [life.container_id for life in API_LIVES]
SIX = [*LIVES, *(c.container_id for c in RESTARTS_NEIGHBOURS)]


@pytest.fixture
def restarts_page(browser: Any, tmp_path: Path) -> Iterator[Page]:
    with _page_on(browser, write_restarts(tmp_path / "finemon-out")) as opened:
        yield opened


def _legend_labels(page: Page, panel: int = 0) -> list[str]:
    return list(
        page.js(f"""Array.from(document.querySelectorAll('.panel')[{panel}]
        .querySelectorAll('.u-legend tr.u-series'))
        .filter(r => getComputedStyle(r).display !== 'none')
        .map(r => r.querySelector('.u-label').textContent)""")
    )


def test_a_restarted_container_is_named_by_its_start_time_not_its_id(
    restarts_page: Page,
) -> None:
    page = restarts_page
    page.open()
    listed = page.js("Array.from(document.querySelectorAll('#containers li')).map(li =>"
                     " [li.dataset.key, li.querySelector('.who .name').textContent])")  # fmt: skip
    names = dict(listed)
    assert [names[key] for key in LIVES] == [
        "api (since 23:58:00)",
        "api (since 23:59:20)",
        "api (since 00:00:40)",
    ]
    # The lives are listed together, in the order they started.
    keys = [key for key, _ in listed]
    assert keys.index(LIVES[0]) + 1 == keys.index(LIVES[1]) == keys.index(LIVES[2]) - 1
    page.page.fill("#container-search", "api")
    page.settle()
    page.page.click("#pick-shown")
    page.settle()
    add_metric(page, "working", WORKING_SET)
    assert _legend_labels(page)[1:] == [names[key] for key in LIVES]
    # No 64-hex id anywhere on the page: list, legend, events (the OOM kill, the starts).
    text = page.js("document.body.innerText")
    assert "api (since 23:59:20)" in page.js("document.querySelector('#markers').textContent")
    assert not LONG_HEX.search(text), LONG_HEX.search(text)
    assert page.problems == []


def test_the_legend_shows_every_one_of_six_series(restarts_page: Page) -> None:
    page = restarts_page
    page.page.set_viewport_size({"width": 1000, "height": 900})  # a laptop's browser window
    state = {"containers": SIX, "panels": [{"metric": WORKING_SET}]}
    page.open(page.base + "#view=" + quote(json.dumps(state)))
    # Hovered, so every row holds a value too.
    box = page.page.locator(".panel .u-over").bounding_box()
    page.page.mouse.move(box["x"] + box["width"] * 0.3, box["y"] + 40)
    page.page.wait_for_timeout(100)
    rows = page.js("""(() => {
        const legend = document.querySelector('.panel .u-legend');
        const shown = legend.getBoundingClientRect();
        return Array.from(legend.querySelectorAll('tr.u-series'))
            .filter(r => getComputedStyle(r).display !== 'none')
            .map(r => { const b = r.getBoundingClientRect();
                        return [r.querySelector('.u-label').textContent,
                                b.height > 0 && b.top >= shown.top && b.bottom <= shown.bottom
                                && b.left >= shown.left && b.right <= shown.right]; }); })()""")
    assert len(rows) == 1 + 6  # the time, then the six containers
    assert [label for label, visible in rows if not visible] == []
    assert page.js("(() => { const l = document.querySelector('.panel .u-legend');"
                   " return l.scrollHeight <= l.clientHeight; })()")  # fmt: skip
    assert page.problems == []


# ------------------------------------------------------------------------------ two runs
@pytest.fixture
def runs_page(browser: Any, tmp_path: Path) -> Iterator[Page]:
    """Two runs written with the capture library (:mod:`tests.analysis.recorded`): phases,
    the agent's report through the intake."""
    from tests.analysis import recorded as rec

    with _page_on(browser, rec.write_two_runs(tmp_path / "finemon-out")) as opened:
        yield opened


def test_the_runs_phases_are_drawn_on_the_charts_and_listed(runs_page: Page) -> None:
    from tests.analysis import recorded as rec

    page = runs_page
    page.open()
    # Listed with no container picked: a phase is the run's.
    listed = page.js("Array.from(document.querySelectorAll('#markers li[data-kind=phase]'))"
                     ".map(li => li.textContent)")  # fmt: skip
    assert listed == [
        "phase2024-02-01 00:00:10.500 run 3f9a2c00 phase load_started",
        "phase2024-02-01 00:00:40.250 run 3f9a2c00 phase manifest_only",
        "phase2024-02-01 01:00:20.500 run 8b1e0700 phase load_started",
    ]
    state = {"containers": [rec.CONTAINER_IDS[rec.RUN_A]], "panels": [{"metric": WORKING_SET}],
             "range": [rec.RUN_A_START, rec.RUN_A_START + 59]}  # fmt: skip
    page.open(page.base + "#view=" + quote(json.dumps(state)))
    drawn = page.js("finemonView.panels[0].drawnMarks")
    assert [(m["time"], m["text"]) for m in drawn] == [
        (rec.mark_seconds(rec.RUN_A), rec.PHASE),
        (rec.RUN_A_START + 40.25, "manifest_only"),
    ]
    assert page.problems == []


def test_an_agents_own_metric_is_searched_drawn_and_filtered_by_its_tags(runs_page: Page) -> None:
    page = runs_page
    page.open()
    add_metric(page, "queue", "target.agent.queue.items")  # no container picked
    labels = page.js("finemonView.panels[0].series.map(s => s.label)")
    assert labels == ["node host=node-1 queue=dogstatsd", "node host=node-1 queue=forwarder"]
    page.page.wait_for_function("finemonView.panels[0].labelsReady")
    options = page.js("Array.from(document.querySelectorAll('.panel select.labels option'))"
                      ".map(o => o.value)")  # fmt: skip
    assert options == ["", "host=node-1", "queue=dogstatsd", "queue=forwarder"]
    page.page.select_option(".panel select.labels", "queue=forwarder")
    page.page.wait_for_function("finemonView.panels[0].series.length === 1")
    page.settle()
    assert page.js("finemonView.panels[0].series[0].labels.queue") == "forwarder"
    assert page.js("finemonView.panels[0].plot.data.length") == 4  # x, mean, max, min
    assert page.state()["panels"][0]["labels"] == ["queue=forwarder"]
    # The filter is a button that removes it.
    page.page.click('.panel button.label-filter[data-label="queue=forwarder"]')
    page.page.wait_for_function("finemonView.panels[0].series.length === 2")
    assert page.problems == []


def test_the_reported_vs_observed_panel_draws_the_agents_and_the_kernels_figures(
    runs_page: Page,
) -> None:
    from tests.analysis import recorded as rec

    page = runs_page
    page.open()
    app = rec.CONTAINER_IDS[rec.RUN_A]
    # Only the container the agent reported on has the button.
    assert page.js("Array.from(document.querySelectorAll('#containers button.versus'))"
                   ".map(b => b.dataset.key)") == [app]  # fmt: skip
    page.page.click(f'#containers button.versus[data-key="{app}"]')
    page.page.wait_for_function("finemonView.panels.length === 2 && "
                                "finemonView.panels.every(p => p.plot)")  # fmt: skip
    page.settle()
    titles = page.js("finemonView.panels.map(p => p.title.textContent)")
    assert titles == [
        "reported vs observed: container.memory.usage of web-7d9f8c6b5-x2x9q/app",
        "reported vs observed: container.cpu.usage of web-7d9f8c6b5-x2x9q/app",
    ]
    labels = page.js("finemonView.panels[0].series.map(s => s.label)")
    assert labels == [
        "reported: container.memory.usage",
        "observed: container.memory.usage_bytes",
        "observed: container.memory.working_set_bytes",
        "reported - container.memory.usage_bytes",
        "reported - container.memory.working_set_bytes",
    ]
    asked = page.js("finemonView.panels[0].request")
    answer = api(page, f"api/reported?container={app}&reported={asked['reported']}"
                 f"&max_points={asked['max_points']}")  # fmt: skip
    [comparison] = answer["comparisons"]
    drawn = page.panel_data(0)
    assert drawn[0] == [p[0] for p in comparison["points"]]
    assert drawn[1:] == [s["values"] for s in comparison["series"]]
    text = page.js("finemonView.panels[0].studyText.textContent")
    assert text.startswith("reported - container.memory.usage_bytes: mean ")
    cpu = page.panel_data(1)
    assert set(cpu[1]) == {rec.MILLICORES + rec.REPORTED_EXTRA_MILLICORES}
    # The panels are in the page's address: a link reopens them.
    assert [p.get("pair") for p in page.state()["panels"]] == [
        "target.container.memory.usage",
        "target.container.cpu.usage",
    ]
    assert page.problems == []


def test_two_runs_overlaid_at_their_start_or_at_a_phase(runs_page: Page) -> None:
    from tests.analysis import recorded as rec

    page = runs_page
    state = {"containers": [rec.CONTAINER_IDS[rec.RUN_A]], "panels": [{"metric": WORKING_SET}]}
    page.open(page.base + "#view=" + quote(json.dumps(state)))
    assert page.js("finemonView.panels[0].series.length") == 1  # run A's container only
    # The controls: run A with run B, from their start.
    page.page.select_option("#overlay-run-a", rec.RUN_A)
    page.page.select_option("#overlay-run-b", rec.RUN_B)
    page.page.wait_for_function("finemonView.panels[0].overlay && "
                                "finemonView.panels[0].series.length === 2")  # fmt: skip
    page.settle()
    labels = page.js("finemonView.panels[0].series.map(s => s.label)")
    assert labels == ["shop/web/app (run 3f9a2c00)", "shop/web/app (run 8b1e0700)"]
    drawn = page.panel_data()
    assert drawn[0][0] == 0.0 and drawn[0][-1] == rec.TICKS - 1  # seconds since each start
    mib = [[v / MIB if v is not None else None for v in column] for column in drawn[1:3]]
    assert mib[0][0] == rec.HELD_MIB[rec.RUN_A] and mib[1][0] == rec.HELD_MIB[rec.RUN_B]
    # Each run's load step where its own mark is: 11 s in for A, 21 s for B.
    assert mib[0][rec.mark_tick(rec.RUN_A)] == rec.HELD_MIB[rec.RUN_A] + rec.LOAD_MIB
    assert mib[1][rec.mark_tick(rec.RUN_A)] == rec.HELD_MIB[rec.RUN_B]
    axis = page.js("finemonView.panels[0].plot.axes[0].label")
    assert axis == "seconds since start of each run"
    options = page.js("Array.from(document.querySelectorAll('#overlay-phase option'))"
                      ".map(o => o.value)")  # fmt: skip
    assert options == ["", rec.PHASE]  # manifest_only is run A's alone
    # Aligned at the phase: the steps line up, at 0.5 s after the mark (the next tick).
    page.page.select_option("#overlay-phase", rec.PHASE)
    page.page.wait_for_function("finemonView.panels[0].overlay?.phase === 'load_started'")
    page.settle()
    drawn = page.panel_data()
    assert drawn[0][0] == 0.5
    first = [column[0] / MIB for column in drawn[1:3]]
    assert first == [rec.HELD_MIB[rec.RUN_A] + rec.LOAD_MIB,
                     rec.HELD_MIB[rec.RUN_B] + rec.LOAD_MIB]  # fmt: skip
    # The API's series are what is drawn.
    asked = page.js("finemonView.panels[0].request")
    answer = api(page, f"api/overlay?metric={WORKING_SET}&container={state['containers'][0]}"
                 f"&run={rec.RUN_A}&run={rec.RUN_B}&phase={rec.PHASE}"
                 f"&max_points={asked['max_points']}")  # fmt: skip
    a, b = answer["series"]
    assert drawn[0] == a["times"] and drawn[1] == a["values"]  # A is the longer after its mark
    assert drawn[2] == b["values"] + [None] * (len(a["times"]) - len(b["times"]))
    # Both runs' marks at 0 s, where the axis starts; run A's other phase 29.75 s later.
    assert page.js("finemonView.panels[0].plot.scales.x.min") == 0
    marks = page.js("finemonView.panels[0].drawnMarks")
    assert [(m["time"], m["text"]) for m in marks] == [
        (0.0, f"{rec.PHASE} (3f9a2c00)"),
        (40.25 - rec.MARK_AFTER[rec.RUN_A], "manifest_only (3f9a2c00)"),
        (0.0, f"{rec.PHASE} (8b1e0700)"),
    ]
    assert page.state()["overlay"] == {"runs": [rec.RUN_A, rec.RUN_B], "phase": rec.PHASE}
    assert page.problems == []
