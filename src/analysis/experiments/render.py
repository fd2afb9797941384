"""``finemon compare``'s outputs: ``text`` (a table sorted by effect size), ``json``, ``markdown``
(a pull request comment) and ``html`` (one offline file: the table, and each flagged metric
drawn for both sides, every run overlaid, aligned at its start or at ``--phase``)."""

from __future__ import annotations

import html
import json
import math
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Final

from analysis.errors import require
from analysis.experiments.compare import UNITS, Comparison, Row, SideSummary
from analysis.experiments.series import RunSeries
from analysis.experiments.statistics import IMPROVEMENT, NO_CHANGE, REGRESSION

FORMATS: Final = ("text", "json", "markdown", "html")
_MIB: Final = 1024.0 * 1024.0
#: Points per run drawn in the html charts at most (bucket means beyond).
MAX_CHART_POINTS: Final = 1000


def _scaled(metric: str, value: float) -> float:
    return value / _MIB if UNITS.get(metric) == "bytes" else value


def _unit(metric: str) -> str:
    return {"bytes": "MiB", "millicores": "m", "percent": "%", "count": ""}.get(
        UNITS.get(metric, ""), ""
    )


def _number(metric: str, value: float, signed: bool = False) -> str:
    scaled = _scaled(metric, value)
    digits = 0 if UNITS.get(metric) == "millicores" else 1 if UNITS.get(metric) == "bytes" else 2
    text = f"{scaled:+.{digits}f}" if signed else f"{scaled:.{digits}f}"
    return "0" if text in ("-0", "+0") and not signed else text


def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{value:+.1f} %"


def _interval(row: Row) -> str:
    low, high = row.ci90
    return f"[{_number(row.metric, low, True)}, {_number(row.metric, high, True)}]"


def _when(moment: datetime | None) -> str:
    return "?" if moment is None else moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def _side_line(name: str, side: SideSummary) -> str:
    runs = ", ".join(run[:8] for run in side.run_ids)
    extra = []
    if side.experiments:
        extra.append(f"experiment {', '.join(side.experiments)}")
    if side.variants:
        extra.append(f"variant {', '.join(side.variants)}")
    if side.phase:
        extra.append(f"from phase {side.phase}")
    described = f" ({'; '.join(extra)})" if extra else ""
    return (
        f"{name}: {side.selector}{described}: {len(side.run_ids)} run(s) {runs}, "
        f"{_when(side.first_time)} to {_when(side.last_time)}, {side.containers} containers"
    )


def _table(rows: list[list[str]], right: int = 3) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [
        "  ".join(
            cell.rjust(w) if i >= right and i < len(row) - 1 else cell.ljust(w)
            for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        ).rstrip()
        for row in rows
    ]


_HEADER: Final = ["container", "metric", "stat", "baseline", "comparison", "change", "change %",
                  "ci90", "unit", "verdict"]  # fmt: skip


def _cells(row: Row) -> list[str]:
    return [
        row.container,
        row.metric,
        row.statistic,
        _number(row.metric, row.baseline),
        _number(row.metric, row.comparison),
        _number(row.metric, row.change, True),
        _percent(row.change_percent),
        _interval(row),
        _unit(row.metric),
        row.verdict,
    ]


def _counts(comparison: Comparison) -> str:
    verdicts = [row.verdict for row in comparison.rows]
    return (
        f"{verdicts.count(REGRESSION)} regressions, {verdicts.count(IMPROVEMENT)} improvements, "
        f"{verdicts.count(NO_CHANGE)} no change (of {len(verdicts)} rows; a verdict needs the "
        f"90 % interval to exclude 0 and a change of at least {comparison.min_change_percent:g} "
        "%)"
    )


def render_text(comparison: Comparison) -> str:
    """The comparison as a table sorted by effect size, with both sides and the unmatched."""
    lines = [
        _side_line("baseline", comparison.baseline),
        _side_line("comparison", comparison.comparison),
        _counts(comparison),
        "",
    ]
    if comparison.rows:
        lines += _table([_HEADER, *(_cells(row) for row in comparison.rows)])
    else:
        lines.append("no container and metric on both sides")
    if comparison.unmatched:
        lines += ["", "unmatched (on one side only):"]
        lines += [f"  {u.side}: {u.container}" for u in comparison.unmatched]
    return "\n".join(lines) + "\n"


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _side_json(side: SideSummary) -> dict[str, Any]:
    return {
        "selector": side.selector,
        "directory": side.directory,
        "phase": side.phase,
        "run_ids": list(side.run_ids),
        "experiments": list(side.experiments),
        "variants": list(side.variants),
        "first_time": None if side.first_time is None else side.first_time.isoformat(),
        "last_time": None if side.last_time is None else side.last_time.isoformat(),
        "containers": side.containers,
    }


def comparison_json(comparison: Comparison) -> dict[str, Any]:
    """The comparison as JSON-ready data: ``baseline``, ``comparison``, ``rows`` (one per
    container, metric and statistic: ``container``, ``metric``, ``statistic``, ``baseline``,
    ``comparison``, ``change``, ``change_percent``, ``ci90`` [lo, hi], ``verdict``) and
    ``unmatched``; values in the metric's unit in the files (bytes, millicores, percent)."""
    return {
        "baseline": _side_json(comparison.baseline),
        "comparison": _side_json(comparison.comparison),
        "min_change_percent": comparison.min_change_percent,
        "rows": [
            {
                "container": row.container,
                "metric": row.metric,
                "statistic": row.statistic,
                "baseline": _finite(row.baseline),
                "comparison": _finite(row.comparison),
                "change": _finite(row.change),
                "change_percent": None
                if row.change_percent is None
                else _finite(row.change_percent),
                "ci90": [_finite(row.ci90[0]), _finite(row.ci90[1])],
                "verdict": row.verdict,
            }
            for row in comparison.rows
        ],
        "unmatched": [{"container": u.container, "side": u.side} for u in comparison.unmatched],
    }


def render_json(comparison: Comparison) -> str:
    """:func:`comparison_json` as indented JSON."""
    return json.dumps(comparison_json(comparison), indent=2) + "\n"


def _markdown_row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"


def render_markdown(comparison: Comparison) -> str:
    """A pull request comment: the sides, the counts, the flagged rows, then every row folded
    away."""
    flagged = [row for row in comparison.rows if row.verdict != NO_CHANGE]
    header = [*_HEADER]
    lines = [
        "### finemon compare",
        "",
        f"- {_side_line('**baseline**', comparison.baseline)}",
        f"- {_side_line('**comparison**', comparison.comparison)}",
        f"- {_counts(comparison)}",
        "",
    ]
    if flagged:
        lines += [_markdown_row(header), _markdown_row(["---"] * len(header))]
        lines += [_markdown_row(_cells(row)) for row in flagged]
    else:
        lines.append("No regression and no improvement.")
    lines += ["", "<details><summary>every row</summary>", ""]
    lines += [_markdown_row(header), _markdown_row(["---"] * len(header))]
    lines += [_markdown_row(_cells(row)) for row in comparison.rows]
    lines += ["", "</details>"]
    if comparison.unmatched:
        lines += ["", "Unmatched (on one side only): "]
        lines += [f"- {u.side}: `{u.container}`" for u in comparison.unmatched]
    return "\n".join(lines) + "\n"


def _trace(run: RunSeries, metric: str, side: str, color: str) -> dict[str, Any]:
    np = require("numpy")
    seconds = (run.times_ms - run.origin_ms) / 1000.0
    values = run.values
    if len(values) > MAX_CHART_POINTS:
        buckets = np.array_split(np.arange(len(values)), MAX_CHART_POINTS)
        seconds = np.array([seconds[b].mean() for b in buckets])
        values = np.array([values[b].mean() for b in buckets])
    scale = _MIB if UNITS.get(metric) == "bytes" else 1.0
    return {
        "type": "scatter",
        "mode": "lines",
        "name": f"{side} {run.run_id[:8]}",
        "legendgroup": side,
        "line": {"color": color, "width": 1.5},
        "x": [round(float(x), 3) for x in seconds],
        "y": [float(y) / scale for y in values],
    }


def render_html(comparison: Comparison) -> str:
    """One HTML file that opens offline (plotly.js inlined): the sides, the table, and each
    flagged (container, metric) drawn for every run of both sides, in seconds from each run's
    start or ``--phase`` mark."""
    plotly = require("plotly.offline")
    charts = []
    for index, (container, metric) in enumerate(comparison.flagged()):
        base_runs, comparison_runs = comparison.series[(container, metric)]
        traces = [_trace(run, metric, "baseline", "#1f77b4") for run in base_runs]
        traces += [_trace(run, metric, "comparison", "#d62728") for run in comparison_runs]
        phase = comparison.baseline.phase
        layout = {
            "title": {"text": f"{container}: {metric}"},
            "xaxis": {"title": {"text": f"seconds since {'phase ' + phase if phase else 'start'}"}},
            "yaxis": {"title": {"text": _unit(metric) or "value"}},
            "height": 320,
            "margin": {"t": 40, "b": 40, "l": 60, "r": 20},
        }
        charts.append((f"chart-{index}", traces, layout))
    rows = "".join(
        "<tr>" + "".join(f"<td>{html.escape(cell)}</td>" for cell in _cells(row)) + "</tr>"
        for row in comparison.rows
    )
    head = "".join(f"<th>{html.escape(cell)}</th>" for cell in _HEADER)
    unmatched = "".join(
        f"<li>{html.escape(u.side)}: {html.escape(u.container)}</li>" for u in comparison.unmatched
    )
    divs = "".join(f'<div id="{name}"></div>' for name, _, _ in charts)
    # "</" would end the script element: JSON allows "<\/" for it.
    plots = json.dumps([[name, traces, layout] for name, traces, layout in charts]).replace(
        "</", "<\\/"
    )
    script = plotly.get_plotlyjs()
    flagged_text = (
        ""
        if charts
        else "<p>No flagged metric: nothing to draw (no regression, no improvement).</p>"
    )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>finemon compare</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 1.5em; }}
table {{ border-collapse: collapse; font-size: 0.85em; }}
td, th {{ border: 1px solid #ccc; padding: 2px 6px; text-align: right; }}
td:first-child, td:nth-child(2), td:nth-child(3), td:last-child {{ text-align: left; }}
</style>
<script>{script}</script></head><body>
<h1>finemon compare</h1>
<p>{html.escape(_side_line("baseline", comparison.baseline))}<br>
{html.escape(_side_line("comparison", comparison.comparison))}<br>
{html.escape(_counts(comparison))}</p>
{flagged_text}{divs}
<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>
{"<h2>Unmatched</h2><ul>" + unmatched + "</ul>" if unmatched else ""}
<script>
for (const [name, traces, layout] of {plots}) {{
  Plotly.newPlot(name, traces, layout, {{responsive: true, displaylogo: false}});
}}
</script>
</body></html>
"""


def render(comparison: Comparison, output_format: str) -> str:
    """The comparison in ``output_format`` (one of :data:`FORMATS`)."""
    if output_format == "json":
        return render_json(comparison)
    if output_format == "markdown":
        return render_markdown(comparison)
    if output_format == "html":
        return render_html(comparison)
    return render_text(comparison)
