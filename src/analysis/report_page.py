"""The style and script of the report page (plain strings, so the package ships no data files).

The script reads the JSON in ``<script id="finemon-data">`` (built by :mod:`analysis.report`):
``containers`` (one entry per container, indexed by the series' ``c``; ``label`` is the short
unique name the legends and the side list show, ``name`` the full one of hovers, tooltips and
events, a restarted container's lives told apart in both: :mod:`analysis.query.names`),
``series`` (``chart``, ``role``, ``c``, ``start`` bucket, ``values`` one per bucket from there,
null where there was no data, and ``gap``, the ms of missing data past which the line breaks),
``events`` and the time grid ``t0 + bucket * bucket_ms`` (ms since the epoch, UTC). When every
chart is drawn it sets ``data-rendered`` on ``<body>`` to the number of charts, for tests and
scripts.
"""

from __future__ import annotations

PAGE_STYLE = """
:root { --fg: #1d2330; --muted: #667085; --line: #d0d5dd; --bg: #f8f9fb; --accent: #2563eb; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.4 system-ui, -apple-system, "Segoe UI", sans-serif;
  color: var(--fg); background: var(--bg); }
header { padding: 10px 18px; border-bottom: 1px solid var(--line); background: #fff; }
h1 { font-size: 18px; margin: 0; }
h2 { font-size: 15px; margin: 0 0 4px; display: flex; gap: 10px; align-items: baseline; }
h2 small { font-weight: normal; color: var(--muted); }
#meta { margin: 2px 0 0; color: var(--muted); }
#page { display: flex; align-items: flex-start; }
#picker { position: sticky; top: 0; width: 290px; flex: none; height: 100vh; overflow: auto;
  padding: 10px; border-right: 1px solid var(--line); background: #fff; }
#filter { width: 100%; padding: 5px; }
.buttons { display: flex; flex-wrap: wrap; gap: 4px; margin: 6px 0; }
.buttons button { font-size: 12px; padding: 2px 6px; cursor: pointer; }
#picked { color: var(--muted); margin: 4px 0; }
#containers { list-style: none; margin: 0; padding: 0; }
#containers li { display: flex; gap: 6px; align-items: center; padding: 1px 0; }
#containers label { overflow: hidden; text-overflow: ellipsis; white-space: nowrap; flex: 1;
  cursor: pointer; }
#containers .swatch { width: 10px; height: 10px; border-radius: 2px; flex: none; }
#containers .oom { color: #b42318; font-size: 11px; }
main { flex: 1; min-width: 0; padding: 10px 18px; }
section { background: #fff; border: 1px solid var(--line); border-radius: 6px; padding: 8px;
  margin-bottom: 12px; }
.plot { width: 100%; height: 330px; }
#events { border-collapse: collapse; width: 100%; font-size: 13px; }
#events th, #events td { text-align: left; padding: 2px 8px; border-bottom: 1px solid #eef0f3; }
#events tbody tr { cursor: pointer; }
#events tbody tr:hover { background: #eef4ff; }
#events .oom { color: #b42318; font-weight: 600; }
@media (max-width: 800px) {
  #page { display: block; }
  #picker { position: static; width: auto; height: auto; max-height: 40vh;
    border-right: 0; border-bottom: 1px solid var(--line); }
}
"""

PAGE_SCRIPT = r"""
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("finemon-data").textContent);
  var PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
    "#7f7f7f", "#bcbd22", "#17becf", "#393b79", "#ad494a", "#637939", "#8c6d31", "#7b4173",
    "#3182bd", "#e6550d", "#31a354", "#756bb1", "#636363"];
  var EVENT_STYLE = {
    oom: { color: "#b42318", symbol: "x", dash: "solid", label: "OOM kill" },
    start: { color: "#12b76a", symbol: "triangle-up", dash: "dot", label: "container start" },
    stop: { color: "#667085", symbol: "triangle-down", dash: "dot", label: "container stop" },
    run: { color: "#2563eb", symbol: "diamond", dash: "dash", label: "finemon run" },
    phase: { color: "#7c3aed", symbol: "star", dash: "dashdot", label: "phase" }
  };
  var MAX_SHAPES = 300;
  var CHARTS = [
    { id: "cpu", unit: "millicores", roles: {
        usage: { dash: "solid", width: 1.6 }, limit: { dash: "dash", width: 1 } } },
    { id: "memory", unit: "MiB", roles: {
        "working set": { dash: "solid", width: 1.6 }, usage: { dash: "dot", width: 1.2 },
        limit: { dash: "dash", width: 1 } } },
    { id: "pss", unit: "MiB", roles: null },
    { id: "throttling", unit: "ms/s", roles: { throttled: { dash: "solid", width: 1.6 } } },
    { id: "psi", unit: "%", roles: null }
  ];
  var containers = data.containers;
  var selected = {};
  data.selection.forEach(function (i) { selected[i] = true; });
  var byChart = {};
  data.series.forEach(function (s) { (byChart[s.chart] = byChart[s.chart] || []).push(s); });
  var xRange = null;
  var syncing = false;

  function color(i) { return PALETTE[i % PALETTE.length]; }
  function time(bucket) { return data.t0 + bucket * data.bucket_ms; }
  function fmtTime(ms) { return new Date(ms).toISOString().replace("T", " ").replace(".000Z", "")
    .replace("Z", ""); }

  function points(s) {
    var x = [], y = [], last = null;
    for (var i = 0; i < s.values.length; i++) {
      var v = s.values[i];
      if (v === null) continue;
      var t = time(s.start + i);
      if (last !== null && t - last > s.gap) { x.push(last + 1); y.push(null); }
      x.push(t); y.push(v); last = t;
    }
    return { x: x, y: y };
  }

  function traces(chart) {
    var out = [];
    var psi = document.getElementById("psi-resource").value;
    (byChart[chart.id] || []).forEach(function (s) {
      if (!selected[s.c]) return;
      if (chart.id === "psi" && s.role !== psi) return;
      var c = containers[s.c];
      var style = chart.roles ? chart.roles[s.role] : { dash: "solid", width: 1.4 };
      var role = chart.id === "psi" ? "" : " · " + s.role;
      var p = points(s);
      // The legend has a fixed width: it shows the short label (unique among the page's
      // containers); the hover shows the full name.
      out.push({
        type: "scatter", mode: p.x.length > 1 ? "lines" : "markers", x: p.x, y: p.y,
        name: (c.label || c.name) + role, legendgroup: String(s.c), connectgaps: false,
        line: { color: color(s.c), dash: style.dash, width: style.width },
        marker: { color: color(s.c), size: 5 },
        hoverlabel: { namelength: -1 },
        hovertemplate: "%{x|%Y-%m-%d %H:%M:%S} UTC<br>%{y} " + chart.unit +
          "<extra>" + (c.name + role).replace(/&/g, "&amp;").replace(/</g, "&lt;") + "</extra>"
      });
    });
    out.push(eventTrace());
    return out;
  }

  function visibleEvents() {
    return data.events.filter(function (e) { return e.c < 0 || selected[e.c]; });
  }

  function eventLabel(e) {
    return e.c < 0 ? e.text : containers[e.c].name + ": " + e.text;
  }

  function eventTrace() {
    var events = visibleEvents();
    return {
      type: "scatter", mode: "markers", yaxis: "y2", showlegend: false, hoverinfo: "text",
      x: events.map(function (e) { return e.t; }),
      y: events.map(function () { return 0.97; }),
      text: events.map(function (e) { return fmtTime(e.t) + " UTC<br>" + eventLabel(e); }),
      marker: { size: 9, color: events.map(function (e) { return EVENT_STYLE[e.kind].color; }),
        symbol: events.map(function (e) { return EVENT_STYLE[e.kind].symbol; }) }
    };
  }

  function shapes() {
    var events = visibleEvents().filter(function (e) { return e.kind !== "run"; });
    // OOM kills and phase marks first: the starts and stops are what is cut past MAX_SHAPES.
    var ooms = events.filter(function (e) { return e.kind === "oom"; });
    var phases = events.filter(function (e) { return e.kind === "phase"; });
    var rest = events.filter(function (e) { return e.kind !== "oom" && e.kind !== "phase"; });
    return ooms.concat(phases, rest).slice(0, MAX_SHAPES).map(function (e) {
      var style = EVENT_STYLE[e.kind];
      return { type: "line", xref: "x", yref: "paper", x0: e.t, x1: e.t, y0: 0, y1: 1,
        line: { color: style.color, width: e.kind === "oom" ? 1.5 : 1, dash: style.dash },
        opacity: e.kind === "oom" ? 0.9 : 0.5 };
    });
  }

  function layout(chart, traceCount) {
    var l = {
      // A fixed right margin holds the legend, so every chart's time axis lines up.
      margin: { l: 60, r: 250, t: 30, b: 36, autoexpand: false }, hovermode: "closest",
      showlegend: true, legend: { font: { size: 11 }, x: 1.01, xanchor: "left", y: 1 },
      uirevision: chart.id,
      xaxis: { type: "date", title: { text: "UTC" }, range: xRange ||
        [data.first, Math.max(data.last, data.first + 1000)] },
      yaxis: { title: { text: chart.unit }, rangemode: "tozero", autorange: true },
      yaxis2: { overlaying: "y", range: [0, 1], visible: false, fixedrange: true },
      shapes: shapes(), annotations: []
    };
    if (traceCount === 0) {
      l.annotations.push({ text: "no data for the selected containers", showarrow: false,
        xref: "paper", yref: "paper", x: 0.5, y: 0.5, font: { color: "#667085" } });
    }
    return l;
  }

  var CONFIG = { responsive: true, displaylogo: false, scrollZoom: false,
    modeBarButtonsToRemove: ["select2d", "lasso2d", "autoScale2d"] };

  function draw() {
    var drawn = CHARTS.map(function (chart) {
      var t = traces(chart);
      return Plotly.react("chart-" + chart.id, t, layout(chart, t.length - 1), CONFIG);
    });
    return Promise.all(drawn);
  }

  function zoomAll(range, except) {
    xRange = range;
    syncing = true;
    var update = range ? { "xaxis.range": range, "xaxis.autorange": false }
      : { "xaxis.range": [data.first, Math.max(data.last, data.first + 1000)] };
    var pending = CHARTS.filter(function (c) { return "chart-" + c.id !== except; })
      .map(function (c) { return Plotly.relayout("chart-" + c.id, update); });
    Promise.all(pending).then(function () { syncing = false; }, function () { syncing = false; });
  }

  function listen() {
    CHARTS.forEach(function (chart) {
      var div = document.getElementById("chart-" + chart.id);
      div.on("plotly_relayout", function (change) {
        if (syncing) return;
        if (change["xaxis.range[0]"] !== undefined) {
          zoomAll([change["xaxis.range[0]"], change["xaxis.range[1]"]], div.id);
        } else if (change["xaxis.range"]) {
          zoomAll(change["xaxis.range"], div.id);
        } else if (change["xaxis.autorange"]) {
          zoomAll(null, div.id);
        }
      });
    });
  }

  function renderPicker() {
    var filter = document.getElementById("filter").value.toLowerCase();
    var list = document.getElementById("containers");
    list.textContent = "";
    var order = containers.map(function (c, i) { return i; }).sort(function (a, b) {
      return containers[a].name < containers[b].name ? -1 : containers[a].name >
        containers[b].name ? 1 : a - b;
    });
    order.forEach(function (i) {
      var c = containers[i];
      var text = [c.name, c.node, c.qos, c.id].join(" ").toLowerCase();
      if (filter && text.indexOf(filter) < 0) return;
      var li = document.createElement("li");
      var box = document.createElement("input");
      box.type = "checkbox"; box.id = "pick-" + i; box.checked = !!selected[i];
      box.addEventListener("change", function () {
        if (box.checked) { selected[i] = true; } else { delete selected[i]; }
        update();
      });
      var swatch = document.createElement("span");
      swatch.className = "swatch"; swatch.style.background = color(i);
      var label = document.createElement("label");
      label.htmlFor = box.id; label.textContent = c.label || c.name;
      label.title = [c.name, "node " + c.node, c.qos || "", "id " + c.id].join("\n");
      li.appendChild(box); li.appendChild(swatch); li.appendChild(label);
      if (c.oom_kills) {
        var oom = document.createElement("span");
        oom.className = "oom"; oom.textContent = "OOM x" + c.oom_kills;
        li.appendChild(oom);
      }
      list.appendChild(li);
    });
    var count = Object.keys(selected).length;
    document.getElementById("picked").textContent = count + " of " + containers.length +
      " containers drawn" + (count > 30 ? " (many: charts get slower)" : "");
  }

  function pick(how) {
    var filter = document.getElementById("filter").value.toLowerCase();
    var pool = containers.map(function (c, i) { return i; }).filter(function (i) {
      var c = containers[i];
      return !filter || [c.name, c.node, c.qos, c.id].join(" ").toLowerCase().indexOf(filter) >= 0;
    });
    selected = {};
    if (how === "cpu" || how === "memory") {
      var key = how === "cpu" ? "cpu_peak" : "memory_peak";
      pool.sort(function (a, b) { return containers[b][key] - containers[a][key]; });
      pool.slice(0, 10).forEach(function (i) { selected[i] = true; });
    } else if (how === "oom") {
      pool.filter(function (i) { return containers[i].oom_kills > 0; })
        .forEach(function (i) { selected[i] = true; });
    } else if (how === "all") {
      pool.forEach(function (i) { selected[i] = true; });
    }
    update();
  }

  function renderEvents() {
    var body = document.querySelector("#events tbody");
    body.textContent = "";
    var events = visibleEvents();
    events.slice(0, 500).forEach(function (e) {
      var tr = document.createElement("tr");
      [fmtTime(e.t), e.text, e.c < 0 ? "" : containers[e.c].name].forEach(function (text, k) {
        var td = document.createElement("td");
        td.textContent = text;
        if (k === 1 && e.kind === "oom") td.className = "oom";
        tr.appendChild(td);
      });
      tr.addEventListener("click", function () { zoomAll([e.t - 90000, e.t + 30000], null); });
      body.appendChild(tr);
    });
    if (events.length > 500) {
      var tr = document.createElement("tr");
      var td = document.createElement("td");
      td.colSpan = 3; td.textContent = (events.length - 500) + " more events not listed";
      tr.appendChild(td); body.appendChild(tr);
    }
  }

  function update() {
    renderPicker();
    renderEvents();
    return draw();
  }

  document.getElementById("meta").textContent = data.source + " · " + fmtTime(data.first) +
    " to " + fmtTime(data.last) + " UTC · " + containers.length + " containers · one point per " +
    (data.bucket_ms / 1000) + " s (tick " + (data.tick_ms / 1000) + " s) · generated " +
    data.generated;
  document.getElementById("filter").addEventListener("input", renderPicker);
  document.getElementById("psi-resource").addEventListener("change", draw);
  Array.prototype.forEach.call(document.querySelectorAll("[data-pick]"), function (button) {
    button.addEventListener("click", function () { pick(button.getAttribute("data-pick")); });
  });
  update().then(function () {
    listen();
    document.body.setAttribute("data-rendered", String(CHARTS.length));
  }, function (error) {
    document.body.setAttribute("data-render-error", String(error));
    throw error;
  });
})();
"""
