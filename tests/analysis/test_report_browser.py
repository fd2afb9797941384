"""The report in a real browser (Debian's headless Chromium, driven over the DevTools protocol):
it loads offline with no console error, draws every chart, and its controls work."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from analysis import write_report
from tests.analysis.browser import Browser, find_chromium

CHROMIUM = find_chromium()
pytestmark = pytest.mark.skipif(
    CHROMIUM is None,
    reason="no chromium on PATH (Debian: apt-get install --no-install-recommends chromium)",
)
CHARTS = ["chart-cpu", "chart-memory", "chart-pss", "chart-throttling", "chart-psi"]

CHART_STATE = """Array.from(document.querySelectorAll('.plot')).map(div => ({
  id: div.id,
  svgs: div.querySelectorAll('svg.main-svg').length,
  lines: div.querySelectorAll('.scatterlayer .trace path.js-line').length,
  traces: (div.data || []).length,
  range: div.layout ? div.layout.xaxis.range.map(x => new Date(x).getTime()) : null,
  empty: Array.from(div.querySelectorAll('.annotation-text')).some(
    a => a.textContent.includes('no data')),
}))"""


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Browser]:
    assert CHROMIUM is not None
    with Browser(CHROMIUM, tmp_path / "profile") as opened:
        yield opened


def open_report(browser: Browser, path: Path, timeout: float = 60.0) -> float:
    """Load the report and wait until it says every chart is drawn; returns the seconds taken."""
    started = time.monotonic()
    browser.open(path.as_uri())
    rendered = browser.wait_for(
        "document.body && (document.body.getAttribute('data-rendered') || "
        "document.body.getAttribute('data-render-error'))",
        timeout=timeout,
    )
    assert rendered == str(len(CHARTS)), rendered
    return time.monotonic() - started


def offline(urls: list[str]) -> list[str]:
    """``urls`` less the inline ``data:`` ones (plotly.js probes image support with one); any
    other scheme would be a load from elsewhere."""
    assert all(url.startswith(("file:", "data:")) for url in urls), urls
    return [url for url in urls if not url.startswith("data:")]


def click(browser: Browser, selector: str) -> None:
    browser.evaluate(f"document.querySelector({selector!r}).click()")
    browser.pump(0.5)


def test_the_harness_sees_console_errors_and_requests(browser: Browser, tmp_path: Path) -> None:
    page = tmp_path / "bad.html"
    page.write_text(
        "<script>console.error('oops'); setTimeout(() => { throw new Error('boom'); });"
        "</script><img src='https://example.invalid/x.png'>"
    )
    browser.open(page.as_uri())
    browser.pump(1.5)
    problems = " ".join(browser.problems())
    assert "oops" in problems and "boom" in problems
    assert "https://example.invalid/x.png" in browser.requests()


def test_the_report_loads_offline_without_errors_and_draws(
    browser: Browser, tmp_path: Path, small_dir: Path
) -> None:
    report = write_report(small_dir, tmp_path / "report.html").path
    open_report(browser, report)
    browser.pump(1.0)
    assert browser.problems() == []
    assert offline(browser.requests()) == [report.as_uri()]

    charts = browser.evaluate(CHART_STATE)
    assert [c["id"] for c in charts] == CHARTS
    for chart in charts:
        assert chart["svgs"] >= 1, chart
        assert chart["lines"] >= 1, chart
        assert not chart["empty"], chart
    # Every chart has the event markers (OOM kill, start, stop, runs) as its last trace.
    markers = browser.evaluate("document.getElementById('chart-cpu').data.at(-1).x.length")
    assert markers == 7
    assert browser.evaluate("document.querySelectorAll('#events tbody tr').length") == 7
    assert browser.evaluate("document.querySelectorAll('#containers input:checked').length") == 3

    # The controls: none, then only the OOM-killed container, then zoom to its kill.
    click(browser, "[data-pick=none]")
    assert all(chart["empty"] for chart in browser.evaluate(CHART_STATE))
    click(browser, "[data-pick=oom]")
    assert browser.evaluate("document.querySelectorAll('#containers input:checked').length") == 1
    cpu = browser.evaluate(CHART_STATE)[0]
    assert cpu["traces"] == 2 and not cpu["empty"]  # db's CPU and the event markers
    click(browser, "#events tbody tr td.oom")
    browser.pump(0.5)
    ranges = {tuple(chart["range"]) for chart in browser.evaluate(CHART_STATE)}
    assert len(ranges) == 1, ranges  # every chart zoomed alike
    (start, end), oom = (
        next(iter(ranges)),
        browser.evaluate(
            "JSON.parse(document.getElementById('finemon-data').textContent)"
            ".events.find(e => e.kind === 'oom').t"
        ),
    )
    assert (start, end) == (oom - 90_000, oom + 30_000)

    # Zooming one chart zooms the others.
    browser.evaluate(
        "Plotly.relayout('chart-memory', {'xaxis.range': [Date.UTC(2024, 1, 1, 0, 0, 10), "
        "Date.UTC(2024, 1, 1, 0, 0, 40)]}).then(() => true)"
    )
    browser.pump(0.5)
    ranges = {tuple(chart["range"]) for chart in browser.evaluate(CHART_STATE)}
    assert len(ranges) == 1, ranges

    browser.evaluate(
        "(s => { s.value = 'io'; s.dispatchEvent(new Event('change')); })"
        "(document.getElementById('psi-resource'))"
    )
    browser.pump(0.5)
    assert browser.problems() == []


@pytest.mark.slow
def test_a_day_for_100_containers_opens_quickly(
    browser: Browser, tmp_path: Path, large_dir: Path
) -> None:
    report = write_report(large_dir, tmp_path / "large.html").path
    seconds = open_report(browser, report)
    browser.pump(0.5)
    assert browser.problems() == []
    assert offline(browser.requests()) == [report.as_uri()]
    assert seconds < 30, f"the page took {seconds:.1f} s to draw"
    charts = browser.evaluate(CHART_STATE)
    assert all(chart["lines"] >= 8 for chart in charts), charts  # the 8 containers picked
    click(browser, "[data-pick=all]")
    assert browser.evaluate("document.querySelectorAll('#containers input:checked').length") == 100
    assert browser.problems() == []


def test_the_runs_phases_are_marked_on_every_chart_and_listed(
    browser: Browser, tmp_path: Path
) -> None:
    from tests.analysis import recorded as rec

    data = rec.write_two_runs(tmp_path / "finemon-out")
    report = write_report(data, tmp_path / "report.html").path
    open_report(browser, report)
    assert browser.problems() == []
    marks = [round(rec.mark_seconds(rec.RUN_A) * 1000), round((rec.RUN_A_START + 40.25) * 1000),
             round(rec.mark_seconds(rec.RUN_B) * 1000)]  # fmt: skip
    for chart in CHARTS:
        # A dash-dotted line across the chart at each mark, and a star on the markers' trace.
        lines = browser.evaluate(
            f"document.getElementById('{chart}').layout.shapes"
            ".filter(s => s.line.dash === 'dashdot').map(s => s.x0)"
        )
        assert lines == marks, chart
        stars = browser.evaluate(
            f"(t => t.x.filter((x, i) => t.marker.symbol[i] === 'star'))"
            f"(document.getElementById('{chart}').data.at(-1))"
        )
        assert stars == marks, chart
    rows = browser.evaluate(
        "Array.from(document.querySelectorAll('#events tbody tr'))"
        ".map(r => r.children[1].textContent).filter(t => t.startsWith('phase'))"
    )
    assert rows == ["phase load_started (run 3f9a2c00)", "phase manifest_only (run 3f9a2c00)",
                    "phase load_started (run 8b1e0700)"]  # fmt: skip
