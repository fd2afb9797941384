// finemon view: the page. Everything it shows comes from the server's read-only JSON API
// (/api/...); every text from the dataset is inserted with textContent (never as HTML).
// The state (containers, panels, range, live, filters) lives in the URL's hash, so a link
// reopens the same view, and is what a saved dashboard holds.
"use strict";

(function () {
  const POLL_MS = 1000;
  const COLORS = ["#2563eb", "#dc2626", "#16a34a", "#d97706", "#7c3aed", "#0891b2", "#db2777",
    "#65a30d", "#4b5563", "#ea580c", "#0d9488", "#9333ea"];
  const MARKER_COLORS = { oom: "#dc2626", start: "#16a34a", stop: "#6b7280", phase: "#7c3aed" };
  const DASHBOARD_FORMAT = "finemon-view-dashboard";
  const Y_AXIS_PX = 96; // the width of a panel's value axis
  const FILTERS = ["namespace", "pod", "qos", "node"];

  const view = {
    state: defaultState(),
    panels: [], // {spec, element, plot, series, data, study}
    overview: null,
    overviewMetric: null, // the metric the strip draws
    markers: [],
    version: null,
    dataRange: null, // [start, end] of the whole dataset, epoch seconds
    containers: [], // the containers listed (after search and filters)
    reported: {}, // by container key: the agent metrics reported about it (target.*)
    metrics: [],
    runs: [], // the runs one can overlay (api/runs)
    overlayPick: ["", ""], // the runs the overlay menus show
    loading: 0,
    firstChartMs: null,
  };
  window.finemonView = view; // for tests and the curious: the state and the uPlot instances

  function defaultState() {
    return {
      containers: [], panels: [], range: null, live: false, localTime: false,
      search: "", metricSearch: "",
      filters: { namespace: "", pod: "", qos: "", node: "" },
      overlay: null, // {runs: [run id, run id], phase: null or a phase's name}
    };
  }

  // ---------------------------------------------------------------------------- helpers
  const $ = (id) => document.getElementById(id);

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (name === "class") node.className = value;
      else if (name === "text") node.textContent = value;
      else node.setAttribute(name, value);
    }
    for (const child of children) node.append(child); // strings become text nodes
    return node;
  }

  function say(message) {
    $("message").textContent = message || "";
  }

  async function api(path, params) {
    const query = new URLSearchParams();
    for (const [name, value] of Object.entries(params || {})) {
      if (value === null || value === undefined || value === "") continue;
      if (Array.isArray(value)) value.forEach((v) => query.append(name, v));
      else query.append(name, String(value));
    }
    const url = "api/" + path + (query.toString() ? "?" + query : "");
    view.loading += 1;
    try {
      const response = await fetch(url, { headers: { Accept: "application/json" } });
      let body;
      try {
        body = await response.json();
      } catch (e) {
        throw new Error(`${path}: HTTP ${response.status}, not JSON`);
      }
      if (!response.ok) throw new Error(`${path}: ${body.error || response.status}`);
      return body;
    } finally {
      view.loading -= 1;
    }
  }

  function containerName(c) {
    return c.name || c.display_name || c.key;
  }

  // Times are shown in UTC, as the report and the dataset's partitions have them, unless the
  // "local time" box is ticked: then in the browser's own zone. Either way 24-hour, and the
  // zone is named (the axes' label, the header, the hover's "time" row).
  const LOCAL_ZONE = new Intl.DateTimeFormat().resolvedOptions().timeZone || "local time";

  function timeZoneName() {
    return view.state.localTime ? LOCAL_ZONE : "UTC";
  }

  // A Date whose local fields (getHours...) are those of the shown zone: what uPlot's tzDate
  // option takes, for its ticks and their labels.
  function zoned(seconds) {
    const date = new Date(seconds * 1000);
    return view.state.localTime ? date : uPlot.tzDate(date, "Etc/UTC");
  }

  const pad = (n, width = 2) => String(n).padStart(width, "0");

  // "2024-02-01 14:02:11" (".250" when the time has milliseconds), in the shown zone.
  function formatTime(seconds) {
    if (seconds === null || seconds === undefined) return "";
    const d = zoned(seconds);
    const ms = d.getMilliseconds();
    return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} `
      + `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`
      + (ms ? "." + pad(ms, 3) : "");
  }

  // The time axis' tick labels, 24-hour: for each tick spacing (seconds) the label, then what
  // is added below it where the year, month, day, hour, minute or second changes (uPlot's
  // axis.values table; mode 1: added to the label).
  const TIME_TICKS = [
    [365 * 86400, "{YYYY}", null, null, null, null, null, null, 1],
    [28 * 86400, "{MMM}", "\n{YYYY}", null, null, null, null, null, 1],
    [86400, "{MM}-{DD}", "\n{YYYY}", null, null, null, null, null, 1],
    [3600, "{HH}:{mm}", "\n{YYYY}-{MM}-{DD}", null, "\n{MM}-{DD}", null, null, null, 1],
    [60, "{HH}:{mm}", "\n{YYYY}-{MM}-{DD}", null, "\n{MM}-{DD}", null, null, null, 1],
    [1, ":{ss}", "\n{YYYY}-{MM}-{DD} {HH}:{mm}", null, "\n{MM}-{DD} {HH}:{mm}", null,
      "\n{HH}:{mm}", null, 1],
    [0.001, ":{ss}.{fff}", "\n{YYYY}-{MM}-{DD} {HH}:{mm}", null, "\n{MM}-{DD} {HH}:{mm}", null,
      "\n{HH}:{mm}", null, 1],
  ];

  // The options every chart's time axis shares: the shown zone and its name as the label.
  function timeAxis() {
    return { values: TIME_TICKS, label: timeZoneName(), labelSize: 16, labelGap: 0,
      labelFont: "11px system-ui, sans-serif" };
  }

  function formatDuration(seconds) {
    if (seconds >= 3600) return (seconds / 3600).toFixed(seconds % 3600 ? 1 : 0) + " h";
    if (seconds >= 60) return (seconds / 60).toFixed(seconds % 60 ? 1 : 0) + " min";
    return (+seconds.toFixed(2)) + " s";
  }

  function formatValue(value, unit) {
    if (value === null || value === undefined || !isFinite(value)) return "--";
    if (unit && /byte/.test(unit)) {
      const units = ["B", "KiB", "MiB", "GiB", "TiB"];
      let v = Math.abs(value), i = 0;
      while (v >= 1024 && i < units.length - 1) { v /= 1024; i += 1; }
      return (value < 0 ? "-" : "") + (+v.toFixed(v < 10 ? 2 : 1)) + " " + units[i];
    }
    const abs = Math.abs(value);
    const text = abs >= 1e6 ? (value / 1e6).toFixed(2) + "M"
      : abs >= 1e4 ? (value / 1e3).toFixed(1) + "k"
      : abs >= 100 ? value.toFixed(0) : (+value.toPrecision(3)).toString();
    return unit ? `${text} ${unit}` : text;
  }

  // Axis ticks name long units short (Kubernetes' "m" for millicores); hovers keep them whole.
  function axisUnit(unit) {
    return { millicores: "m", percent: "%", count: "", usec: "us" }[unit] ?? unit;
  }

  // ---------------------------------------------------------------------------- URL state
  function encodeState(state) {
    return "#view=" + encodeURIComponent(JSON.stringify(state));
  }

  function decodeState(hash) {
    if (!hash || !hash.startsWith("#view=")) return null;
    try {
      return normalizeState(JSON.parse(decodeURIComponent(hash.slice(6))));
    } catch (e) {
      say("the link's view could not be read: " + e.message);
      return null;
    }
  }

  // A state from a link or a dashboard file, checked field by field (anything else dropped).
  function normalizeState(raw) {
    if (!raw || typeof raw !== "object") throw new Error("not a JSON object");
    const state = defaultState();
    const strings = (list) => (Array.isArray(list) ? list.filter((x) => typeof x === "string") : []);
    state.containers = strings(raw.containers);
    state.panels = (Array.isArray(raw.panels) ? raw.panels : []).map((p) => {
      if (p && typeof p.metric === "string") {
        return { metric: p.metric, study: typeof p.study === "string" ? p.study : null,
          labels: strings(p.labels).filter((x) => x.includes("=")) };
      }
      if (p && typeof p.processes === "string") {
        return { processes: p.processes, study: typeof p.study === "string" ? p.study : null };
      }
      if (p && typeof p.reported === "string" && typeof p.pair === "string") {
        return { reported: p.reported, pair: p.pair };
      }
      return null;
    }).filter(Boolean);
    if (Array.isArray(raw.range) && raw.range.length === 2 && raw.range.every(Number.isFinite)
        && raw.range[1] > raw.range[0]) {
      state.range = [raw.range[0], raw.range[1]];
    }
    state.live = raw.live === true;
    state.localTime = raw.localTime === true;
    state.search = typeof raw.search === "string" ? raw.search : "";
    state.metricSearch = typeof raw.metricSearch === "string" ? raw.metricSearch : "";
    for (const name of FILTERS) {
      const value = raw.filters && raw.filters[name];
      state.filters[name] = typeof value === "string" ? value : "";
    }
    const overlay = raw.overlay;
    if (overlay && Array.isArray(overlay.runs) && overlay.runs.length === 2
        && overlay.runs.every((r) => typeof r === "string" && r)) {
      state.overlay = { runs: [overlay.runs[0], overlay.runs[1]],
        phase: typeof overlay.phase === "string" && overlay.phase ? overlay.phase : null };
    }
    return state;
  }

  function saveUrl() {
    const hash = encodeState(view.state);
    if (location.hash !== hash) history.replaceState(null, "", hash);
  }

  // ---------------------------------------------------------------------------- sidebar
  async function loadContainers() {
    const s = view.state;
    const body = await api("containers", { search: s.search, ...s.filters });
    view.containers = body.containers;
    view.reported = body.reported || {};
    for (const name of FILTERS) {
      const select = $("filter-" + name);
      const current = s.filters[name];
      select.replaceChildren(el("option", { value: "", text: "any" }));
      const values = body.facets[name] || [];
      if (current && !values.includes(current)) values.push(current);
      for (const value of values) select.append(el("option", { value, text: value }));
      select.value = current;
    }
    $("container-count").textContent = `${body.containers.length} of ${body.total}`;
    renderContainers();
  }

  function renderContainers() {
    const list = $("containers");
    const picked = new Set(view.state.containers);
    list.replaceChildren();
    for (const c of view.containers) {
      const box = el("input", { type: "checkbox", "data-key": c.key });
      box.checked = picked.has(c.key);
      box.addEventListener("change", () => {
        const keys = view.state.containers.filter((k) => k !== c.key);
        if (box.checked) keys.push(c.key);
        setContainers(keys);
      });
      const meta = [c.namespace, c.qos_class, c.node_name].filter(Boolean).join(" · ");
      const name = el("span", { class: "name", title: c.key, text: containerName(c) });
      const pss = el("button", { type: "button", class: "pss", title: "PSS of its processes",
        "data-key": c.key, text: "PSS" });
      pss.addEventListener("click", () => addPanel({ processes: c.key, study: null }));
      const buttons = [pss];
      const reported = view.reported[c.key] || [];
      if (reported.length) {
        // What the agent reported about it beside the kernel's figures: a panel a pair.
        const versus = el("button", { type: "button", class: "versus", "data-key": c.key,
          title: "reported vs observed: what the agent reported beside finemon's figures",
          text: "vs" });
        versus.addEventListener("click", async () => {
          for (const pair of reported) await addPanel({ reported: c.key, pair });
        });
        buttons.unshift(versus);
      }
      list.append(el("li", { "data-key": c.key },
        el("label", { class: "name" }, box, " ",
          el("span", { class: "who" }, name, el("span", { class: "meta", text: meta }))),
        ...buttons));
    }
  }

  async function loadMetrics() {
    const body = await api("metrics", { search: view.state.metricSearch });
    view.metrics = body.metrics;
    const list = $("metrics");
    list.replaceChildren();
    for (const m of body.metrics) {
      const item = el("li", { "data-metric": m.name, title: m.description || "" },
        el("span", { class: "name", text: m.name }),
        el("span", { class: "meta", text: [m.kind, m.unit].filter(Boolean).join(", ") }));
      item.addEventListener("click", () => addPanel({ metric: m.name, study: null, labels: [] }));
      list.append(item);
    }
  }

  function renderMarkers() {
    const list = $("markers");
    list.replaceChildren();
    const names = new Map(view.containers.map((c) => [c.key, containerName(c)]));
    for (const m of view.markers) {
      // A phase is the run's (the node's), not a container's.
      const who = m.kind === "phase" ? `run ${m.run_id.slice(0, 8)}`
        : names.get(m.container_key) || m.container_key;
      const item = el("li", { "data-kind": m.kind },
        el("span", { class: "kind-" + m.kind, text: m.kind }),
        el("span", { class: "name", text: `${formatTime(m.time)} ${who} ${m.text || ""}` }));
      item.addEventListener("click", () => setRange([m.time - 90, m.time + 30]));
      list.append(item);
    }
  }

  async function setContainers(keys) {
    view.state.containers = keys;
    saveUrl();
    renderContainers();
    await refreshCharts();
  }

  // ---------------------------------------------------------------------------- overlay
  // Two runs overlaid: every metric panel draws the picked containers' series of both runs
  // (matched as finemon compare matches them: namespace/workload/container) on one axis of
  // seconds since each run's start or its mark of a phase. The server aligns them
  // (api/overlay, analysis.query.overlay).
  function overlaying() {
    return view.state.overlay;
  }

  function runText(run) {
    return `${run.run_id.slice(0, 8)} ${formatTime(run.first_time)}`
      + (run.variant ? ` (${run.variant})` : "");
  }

  async function loadRuns() {
    view.runs = (await api("runs")).runs;
    renderOverlayControls();
  }

  function renderOverlayControls() {
    // What the menus say: the overlay's runs, or a first run picked and no other yet.
    const chosen = view.state.overlay ? view.state.overlay.runs : view.overlayPick;
    ["a", "b"].forEach((side, i) => {
      const select = $("overlay-run-" + side);
      select.replaceChildren(el("option", { value: "", text: i ? "no other run" : "none" }));
      for (const run of view.runs) select.append(el("option", { value: run.run_id, text: runText(run) }));
      select.value = chosen[i] || "";
    });
    // The phases both runs were marked with.
    const phases = $("overlay-phase");
    const [a, b] = chosen.map((id) => view.runs.find((r) => r.run_id === id));
    const common = a && b ? a.phases.filter((name) => b.phases.includes(name)) : [];
    phases.replaceChildren(el("option", { value: "", text: "start" }));
    for (const name of common) phases.append(el("option", { value: name, text: "phase " + name }));
    phases.value = view.state.overlay && view.state.overlay.phase || "";
    $("overlay-text").textContent = view.state.overlay
      ? `metric panels: seconds since ${view.state.overlay.phase ? "phase "
        + view.state.overlay.phase : "start"} of each run` : "";
  }

  async function setOverlay() {
    const runs = [$("overlay-run-a").value, $("overlay-run-b").value];
    view.overlayPick = runs;
    const phase = $("overlay-phase").value || null;
    view.state.overlay = runs[0] && runs[1] && runs[0] !== runs[1] ? { runs, phase } : null;
    saveUrl();
    renderOverlayControls();
    await refreshCharts();
  }

  // ---------------------------------------------------------------------------- panels
  function panelTitle(spec) {
    const overlay = overlaying();
    if (spec.metric && overlay) {
      return `${spec.metric}: runs ${overlay.runs.map((r) => r.slice(0, 8)).join(" and ")}`
        + ` from ${overlay.phase ? "phase " + overlay.phase : "their start"}`;
    }
    if (spec.metric) return spec.metric;
    if (spec.reported) {
      const c = view.containers.find((x) => x.key === spec.reported);
      return `reported vs observed: ${spec.pair.replace(/^target\./, "")} of `
        + (c ? containerName(c) : spec.reported);
    }
    const c = view.containers.find((x) => x.key === spec.processes);
    return `process.memory.pss_bytes of ${c ? containerName(c) : spec.processes}`;
  }

  async function addPanel(spec) {
    view.state.panels.push(spec);
    saveUrl();
    const panel = createPanel(spec);
    await loadPanel(panel);
    await updateOverview();
  }

  function removePanel(panel) {
    const index = view.panels.indexOf(panel);
    if (index < 0) return;
    view.panels.splice(index, 1);
    view.state.panels.splice(index, 1);
    if (panel.plot) panel.plot.destroy();
    panel.element.remove();
    saveUrl();
    updateHint();
    updateOverview();
  }

  function createPanel(spec) {
    const title = el("span", { class: "title", text: panelTitle(spec) });
    const study = el("select", { class: "study", title: "study a series: periodicity, changepoints" });
    study.append(el("option", { value: "", text: "study: none" }));
    const studyText = el("span", { class: "study-text" });
    const remove = el("button", { type: "button", class: "remove", title: "remove this panel",
      text: "✕" });
    // A metric's label filters (key=value, the one rule of analysis.query.labels): the ones
    // set, each a button that removes it, and a menu of the labels its series have.
    const filters = el("span", { class: "label-filters" });
    const labelMenu = el("select", { class: "labels", title: "keep the series with this label" });
    labelMenu.hidden = !spec.metric;
    study.hidden = Boolean(spec.reported); // a comparison, not a series to study
    const state = el("div", { class: "state", text: "loading…" });
    const chart = el("div", { class: "chart" });
    const element = el("div", { class: "panel" },
      el("div", { class: "panel-head" }, title, filters, labelMenu, studyText, study, remove),
      state, chart);
    $("panels").append(element);
    const panel = { spec, element, chart, stateText: state, studySelect: study, studyText,
      title, labelMenu, filters, plot: null, series: [], data: null, study: null };
    labelMenu.addEventListener("change", () => {
      const chosen = labelMenu.value;
      if (!chosen) return;
      spec.labels = [...(spec.labels || []).filter((x) => x !== chosen), chosen];
      saveUrl();
      loadPanel(panel);
    });
    view.panels.push(panel);
    remove.addEventListener("click", () => removePanel(panel));
    study.addEventListener("change", () => {
      spec.study = study.value || null;
      saveUrl();
      loadStudy(panel);
    });
    updateHint();
    return panel;
  }

  function updateHint() {
    $("empty-hint").hidden = view.panels.length > 0;
  }

  function chartWidth() {
    return Math.max(300, $("panels").clientWidth - 16);
  }

  function maxPoints() {
    return Math.max(50, Math.min(4000, Math.round(chartWidth())));
  }

  function currentRange() {
    return view.state.range || view.dataRange;
  }

  // The series of one panel, as the server sends them.
  // The last request is kept on the panel (what was asked, for tests and the curious).
  async function fetchPanelSeries(panel) {
    const spec = panel.spec;
    const [start, end] = view.state.range || [null, null];
    panel.overlay = null;
    if (spec.metric && overlaying()) {
      // Each run whole (from its start or phase): the range is a time of day, not of a run.
      const overlay = overlaying();
      panel.request = { path: "overlay", metric: spec.metric, container: view.state.containers,
        run: overlay.runs, phase: overlay.phase, label: spec.labels || [],
        max_points: maxPoints() };
      const { path, ...params } = panel.request;
      const body = await api(path, params);
      panel.overlay = { origins: body.origins, phase: body.phase };
      return body.series;
    }
    if (spec.metric) {
      // With the envelope (each bucket's minimum and maximum): a one-second peak shows at
      // any zoom, as the band around the mean. A metric of no container (an agent's own) is
      // drawn whatever the containers picked: the server says which.
      panel.request = { path: "series", metric: spec.metric, container: view.state.containers,
        label: spec.labels || [], start, end, max_points: maxPoints() };
    } else if (spec.reported) {
      panel.request = { path: "reported", container: spec.reported, reported: spec.pair,
        start, end, max_points: maxPoints() };
      const { path, ...params } = panel.request;
      const [found] = (await api(path, params)).comparisons;
      panel.comparison = found || null;
      return found ? found.series : [];
    } else {
      panel.request = { path: "processes", container: spec.processes, start, end,
        max_points: maxPoints() };
    }
    const { path, ...params } = panel.request;
    return (await api(path, params)).series;
  }

  // uPlot wants one x array shared by every series: the union of their times, with null
  // where a series has no point (drawn as a gap). One column per series for each of `fields`
  // in turn: [x, values of every series, maxs of every series, ...].
  function align(series, fields = ["values"]) {
    const all = new Set();
    for (const s of series) for (const t of s.times) all.add(t);
    const times = Float64Array.from(all).sort();
    const index = new Map();
    times.forEach((t, i) => index.set(t, i));
    const slots = series.map((s) => s.times.map((t) => index.get(t)));
    const columns = [];
    for (const field of fields) {
      series.forEach((s, k) => {
        const column = new Array(times.length).fill(null);
        const values = s[field];
        slots[k].forEach((slot, i) => { column[slot] = values[i]; });
        columns.push(column);
      });
    }
    return [Array.from(times), ...columns];
  }

  // A panel's data: x, the n means (indices 1..n, the lines), then the n maxima (n+1..2n) and
  // the n minima (2n+1..3n) when the server sent the envelope (drawn as bands, no lines).
  function enveloped(series) {
    return series.length > 0 && series.every((s) => Array.isArray(s.mins) && Array.isArray(s.maxs));
  }

  async function loadPanel(panel) {
    let series;
    try {
      series = await fetchPanelSeries(panel);
    } catch (e) {
      panel.stateText.textContent = e.message;
      return;
    }
    if (!view.panels.includes(panel)) return; // removed meanwhile
    drawPanel(panel, series);
    if (panel.spec.reported) describeComparison(panel);
    if (panel.spec.study) loadStudy(panel);
    if (panel.spec.metric) loadLabels(panel).catch((e) => say(e.message));
  }

  // Reported minus observed over the range: its mean and largest size, per observed metric.
  function describeComparison(panel) {
    const found = panel.comparison;
    panel.studyText.textContent = !found ? "" : found.observed.map((name) => {
      const d = found.difference[name];
      return `reported - ${name}: mean ${formatValue(d.mean, found.unit)}, `
        + `largest ${formatValue(d.max_abs, found.unit)}`;
    }).join("; ");
  }

  // The panel's label filters, and the menu of the labels of its metric's series.
  async function loadLabels(panel) {
    const spec = panel.spec;
    panel.filters.replaceChildren(...(spec.labels || []).map((text) => {
      const chip = el("button", { type: "button", class: "label-filter", "data-label": text,
        title: "remove this label filter", text: text + " ✕" });
      chip.addEventListener("click", () => {
        spec.labels = spec.labels.filter((x) => x !== text);
        saveUrl();
        loadPanel(panel);
      });
      return chip;
    }));
    const body = await api("labels", { metric: spec.metric, container: view.state.containers });
    const menu = panel.labelMenu;
    menu.replaceChildren(el("option", { value: "", text: "label: any" }));
    for (const label of body.labels) {
      for (const value of label.values) {
        const text = `${label.key}=${value}`;
        if (!(spec.labels || []).includes(text)) menu.append(el("option", { value: text, text }));
      }
    }
    menu.value = "";
    panel.labelsReady = true;
  }

  function drawPanel(panel, series) {
    panel.title.textContent = panelTitle(panel.spec); // the container's name is known by now
    panel.series = series;
    const banded = enveloped(series);
    panel.data = align(series, banded ? ["values", "maxs", "mins"] : ["values"]);
    const unit = series.length ? series[0].unit : "";
    panel.stateText.textContent = series.length ? ""
      : (panel.spec.metric && !view.state.containers.length ? "pick containers on the left"
        : panel.spec.labels && panel.spec.labels.length ? "no series with these labels in this range"
        : "no data in this range");
    // The study choices: one per series, by its label (text only).
    const select = panel.studySelect;
    const chosen = panel.spec.study;
    select.replaceChildren(el("option", { value: "", text: "study: none" }));
    for (const s of series) select.append(el("option", { value: s.key, text: "study: " + s.label }));
    select.value = series.some((s) => s.key === chosen) ? chosen : "";

    if (panel.plot) { panel.plot.destroy(); panel.plot = null; }
    if (!series.length) return;
    const n = series.length;
    // The hover value: the bucket's mean, and its range when the bucket held more than that.
    const hover = (s, k) => (u, v, _, i) => {
      if (v === null || v === undefined || !banded || i === null) return formatValue(v, s.unit);
      const [lo, hi] = [u.data[1 + 2 * n + k][i], u.data[1 + n + k][i]];
      if (lo === null || hi === null || (lo === v && hi === v)) return formatValue(v, s.unit);
      // The unit once, but bytes keep theirs: the two ends may be in different multiples.
      const unit = s.unit && /byte/.test(s.unit) ? s.unit : null;
      return `${formatValue(v, s.unit)} (${formatValue(lo, unit)}–${formatValue(hi, unit)})`;
    };
    // The band's edges: a faint hairline (so a one-bucket peak, a sliver of band, still
    // shows), no point, no legend row, no hover dot (the "band-edge" class, which uPlot gives
    // their legend row and cursor point, hides them: view.css).
    const edge = (s, i, which) => ({
      label: `${s.label} ${which}`, class: "band-edge", stroke: COLORS[i % COLORS.length] + "66",
      width: 1 / devicePixelRatio, spanGaps: false, points: { show: false },
    });
    const seconds = Boolean(panel.overlay);
    const since = seconds && panel.overlay.phase ? `phase ${panel.overlay.phase}` : "start";
    const opts = {
      width: chartWidth(),
      height: 240,
      tzDate: zoned,
      // An overlay's axis starts at the origin (0 s: the start, or the phase's mark).
      scales: { x: seconds ? { time: false, range: (u, min, max) => [Math.min(0, min), max] }
        : { time: true } },
      series: [
        seconds ? { label: `seconds since ${since}`,
          value: (u, v) => (v === null ? "--" : `${+v.toFixed(2)} s`) }
          : { label: `time (${timeZoneName()})`, value: (u, v) => (v === null ? "--" : formatTime(v)) },
        ...series.map((s, i) => ({
          label: s.label, stroke: COLORS[i % COLORS.length], width: 1, spanGaps: false,
          value: hover(s, i),
        })),
        ...(banded ? series.map((s, i) => edge(s, i, "max")) : []),
        ...(banded ? series.map((s, i) => edge(s, i, "min")) : []),
      ],
      // Each series' min..max per bucket, filled in its colour, translucent over the lines.
      bands: banded ? series.map((s, i) => ({
        series: [1 + n + i, 1 + 2 * n + i], fill: COLORS[i % COLORS.length] + "2e",
      })) : [],
      axes: [seconds ? { label: `seconds since ${since} of each run`, labelSize: 16, labelGap: 0,
        labelFont: "11px system-ui, sans-serif" } : timeAxis(),
        { size: Y_AXIS_PX, values: (u, ticks) => ticks.map((v) => formatValue(v, axisUnit(unit))) }],
      cursor: {
        sync: { key: "finemon", setSeries: false },
        drag: { x: true, y: false, setScale: true },
        bind: { dblclick: () => () => { setRange(null); return null; } },
      },
      legend: { show: series.length <= 40 },
      hooks: {
        // Not while uPlot builds the plot (status 0): its first scales are not a zoom.
        setScale: [(u, key) => { if (key === "x" && u.status === 1) onZoom(u); }],
        // A series hidden or shown from the legend takes its band along.
        setSeries: [(u, i, opts) => {
          if (!banded || i === null || i < 1 || i > n || !opts || opts.show === undefined) return;
          for (const edgeIndex of [i + n, i + 2 * n]) {
            if (u.series[edgeIndex].show !== opts.show) u.setSeries(edgeIndex, { show: opts.show });
          }
        }],
        draw: [(u) => drawMarks(u, panel)],
      },
    };
    // uPlot sets its scales while it is built: not a zoom by the user.
    syncing = true;
    try {
      panel.plot = new uPlot(opts, panel.data, panel.chart);
    } finally {
      syncing = false;
    }
    const range = currentRange();
    if (range && !panel.overlay) scaleTo(panel.plot, range);
    if (view.firstChartMs === null) {
      view.firstChartMs = performance.now();
      document.body.setAttribute("data-first-chart", String(view.firstChartMs));
    }
  }

  // ---------------------------------------------------------------------------- zoom
  let syncing = false;
  let zoomTimer = null;

  // Set a plot's x range now (uPlot would commit it, and fire its hooks, in a microtask).
  function scaleTo(plot, [min, max]) {
    syncing = true;
    try {
      plot.batch(() => plot.setScale("x", { min, max }));
    } finally {
      syncing = false;
    }
  }

  // One panel zoomed (dragged, or setScale called): the others follow at once, and the
  // data of the new range is fetched once the zooming settles.
  function onZoom(source) {
    if (syncing) return;
    // An overlay's axis is seconds of a run: it zooms alone.
    if (view.panels.some((p) => p.plot === source && p.overlay)) return;
    const { min, max } = source.scales.x;
    if (!(max > min)) return;
    for (const panel of view.panels) {
      if (panel.plot && panel.plot !== source && !panel.overlay) scaleTo(panel.plot, [min, max]);
    }
    showOverviewSelection([min, max]);
    clearTimeout(zoomTimer);
    zoomTimer = setTimeout(() => setRange([min, max]), 300);
  }

  async function setRange(range) {
    const whole = view.dataRange;
    if (range && whole && range[0] <= whole[0] && range[1] >= whole[1]) range = null;
    view.state.range = range;
    saveUrl();
    updateRangeText();
    const shown = currentRange();
    if (shown) {
      for (const panel of view.panels) if (panel.plot && !panel.overlay) scaleTo(panel.plot, shown);
    }
    showOverviewSelection(range);
    await refreshCharts();
  }

  function updateRangeText() {
    const range = currentRange();
    $("range-text").textContent = range
      ? `${formatTime(range[0])} – ${formatTime(range[1])} ${timeZoneName()}`
        + (view.state.range ? "" : " (all)")
      : "no data";
  }

  // ---------------------------------------------------------------------------- marks
  // OOM kills, starts and stops of the picked containers, and the changepoints of the panel's
  // study, as vertical lines over the plot.
  function drawMarks(u, panel) {
    const ctx = u.ctx;
    const { left, top, height, width } = u.bbox;
    const [min, max] = [u.scales.x.min, u.scales.x.max];
    ctx.save();
    ctx.font = `${Math.round(10 * devicePixelRatio)}px sans-serif`;
    panel.drawnMarks = []; // what the last draw marked (for tests and the curious)
    const line = (t, color, dash, text) => {
      if (t < min || t > max) return;
      panel.drawnMarks.push({ time: t, color, text });
      const x = Math.round(u.valToPos(t, "x", true));
      ctx.strokeStyle = color;
      ctx.fillStyle = color;
      ctx.lineWidth = devicePixelRatio;
      ctx.setLineDash(dash);
      ctx.beginPath();
      ctx.moveTo(x, top);
      ctx.lineTo(x, top + height);
      ctx.stroke();
      if (text) ctx.fillText(text, Math.min(x + 3, left + width - 40), top + 12 * devicePixelRatio);
    };
    if (panel.overlay) {
      // Each overlaid run's phases, at their seconds since that run's origin.
      const origins = panel.overlay.origins;
      for (const m of view.markers) {
        if (m.kind !== "phase" || !(m.run_id in origins)) continue;
        line(m.time - origins[m.run_id], MARKER_COLORS.phase, [4, 4],
          `${m.phase} (${m.run_id.slice(0, 8)})`);
      }
    } else {
      for (const m of panelMarkers(panel)) {
        // A phase is labelled with its name (shown as text: it is drawn on the canvas).
        line(m.time, MARKER_COLORS[m.kind] || "#111", m.kind === "oom" ? [] : [4, 4],
          m.kind === "phase" ? m.phase : m.kind.toUpperCase());
      }
    }
    if (panel.study) {
      for (const c of panel.study.changepoints) line(c.time, "#7c3aed", [2, 3], "");
    }
    ctx.restore();
  }

  // The markers a panel draws: its container's (a PSS panel) or every picked container's,
  // and the phases of the runs (every panel).
  function panelMarkers(panel) {
    return view.markers.filter((m) => m.kind === "phase" || !panel.spec.processes
      || m.container_key === panel.spec.processes);
  }

  async function loadMarkers() {
    const [start, end] = view.state.range || [null, null];
    // The phases come whatever the containers picked: they are the runs'.
    const body = await api("markers", { container: view.state.containers, start, end });
    view.markers = body.markers;
    renderMarkers();
    for (const panel of view.panels) if (panel.plot) panel.plot.redraw(false, false);
  }

  // ---------------------------------------------------------------------------- studies
  async function loadStudy(panel) {
    const key = panel.spec.study;
    panel.study = null;
    panel.studyText.textContent = "";
    if (!key) { if (panel.plot) panel.plot.redraw(false, false); return; }
    const series = panel.series.find((s) => s.key === key);
    if (!series) return;
    const [start, end] = view.state.range || [null, null];
    let body;
    try {
      body = await api("studies", panel.spec.metric
        ? { metric: panel.spec.metric, container: series.container_key, series: key, start, end }
        : { metric: "process.memory.pss_bytes", container: panel.spec.processes, series: key,
          process: 1, start, end });
    } catch (e) {
      panel.studyText.textContent = e.message;
      return;
    }
    if (panel.spec.study !== key) return; // changed meanwhile
    panel.study = body;
    const parts = [];
    const p = body.periodicity;
    parts.push(p ? `period ${formatDuration(p.period_seconds)} (strength ${p.strength.toFixed(2)})`
      : "no period");
    parts.push(`${body.changepoints.length} changepoint${body.changepoints.length === 1 ? "" : "s"}`);
    panel.studyText.textContent = parts.join(", ");
    panel.studyText.setAttribute("data-ready", "1");
    if (panel.plot) panel.plot.redraw(false, false);
  }

  // ---------------------------------------------------------------------------- overview
  // The strip draws the first metric panel's metric.
  function overviewMetric() {
    const spec = view.state.panels.find((p) => p.metric);
    return spec ? spec.metric : null;
  }

  // Redraw the strip when the panel it draws was added or removed.
  async function updateOverview() {
    if (overviewMetric() === view.overviewMetric) return;
    try {
      await loadOverview();
    } catch (e) {
      say(e.message);
    }
  }

  async function loadOverview() {
    const box = $("overview");
    const metric = overviewMetric();
    let series = [];
    if (metric && view.state.containers.length) {
      // The means only (half the bytes): a strip to pick a range from, not to read peaks on.
      const body = await api("series", { metric, container: view.state.containers,
        max_points: Math.round(maxPoints() / 2), envelope: 0 });
      series = body.series;
    }
    if (view.overview) { view.overview.destroy(); view.overview = null; }
    view.overviewMetric = metric;
    const data = series.length ? align(series)
      : [view.dataRange ? [view.dataRange[0], view.dataRange[1]] : [], [null, null]];
    const opts = {
      width: chartWidth(),
      height: 86,
      // Its plot area lined up with the panels' (their value axis is 96 px wide).
      padding: [null, null, null, Y_AXIS_PX],
      tzDate: zoned,
      scales: { x: { time: true, range: () => view.dataRange || [0, 1] } },
      series: [{}, ...(series.length ? series : [{ label: "" }]).map((s, i) => ({
        label: s.label, stroke: COLORS[i % COLORS.length], width: 1,
      }))],
      axes: [timeAxis(), { show: false }],
      legend: { show: false },
      cursor: {
        drag: { x: true, y: false, setScale: false },
        bind: { dblclick: () => () => { setRange(null); return null; } },
      },
      hooks: {
        setSelect: [(u) => {
          if (syncing || u.select.width < 2) return;
          const min = u.posToVal(u.select.left, "x");
          const max = u.posToVal(u.select.left + u.select.width, "x");
          setRange([min, max]);
        }],
      },
    };
    syncing = true;
    try {
      view.overview = new uPlot(opts, data, box);
    } finally {
      syncing = false;
    }
    showOverviewSelection(view.state.range);
  }

  function showOverviewSelection(range) {
    const u = view.overview;
    if (!u) return;
    syncing = true;
    try {
      if (!range) {
        u.setSelect({ left: 0, top: 0, width: 0, height: 0 }, false);
      } else {
        const left = Math.max(0, u.valToPos(range[0], "x"));
        const right = Math.min(u.bbox.width / devicePixelRatio, u.valToPos(range[1], "x"));
        u.setSelect({ left, top: 0, width: Math.max(0, right - left),
          height: u.bbox.height / devicePixelRatio }, false);
      }
    } finally {
      syncing = false;
    }
  }

  // ---------------------------------------------------------------------------- refresh
  async function loadRange() {
    const body = await api("range");
    view.version = body.version;
    const r = body.range;
    view.dataRange = r ? [r[0], r[1]] : null;
    $("source").textContent = body.directory;
    updateRangeText();
  }

  let refreshing = null;
  let refreshAgain = false;

  // Redraw every panel, the overview and the markers for the current state; calls made while
  // one runs are folded into one more run after it.
  async function refreshCharts() {
    if (refreshing) { refreshAgain = true; return refreshing; }
    refreshing = (async () => {
      do {
        refreshAgain = false;
        await Promise.all(view.panels.map(loadPanel));
        await Promise.all([loadOverview(), loadMarkers()]);
      } while (refreshAgain);
    })();
    try {
      await refreshing;
    } catch (e) {
      say(e.message);
    } finally {
      refreshing = null;
      document.body.setAttribute("data-refreshed", String(Date.now()));
    }
  }

  // The times shown in another zone: every chart drawn again from the data it has.
  function redrawTimes() {
    updateRangeText();
    renderMarkers();
    for (const panel of view.panels) if (panel.plot) drawPanel(panel, panel.series);
    loadOverview().catch((e) => say(e.message));
  }

  // Rebuild the whole page from view.state (first load, a link, a dashboard).
  async function applyState(state) {
    view.state = state;
    saveUrl();
    $("container-search").value = state.search;
    $("metric-search").value = state.metricSearch;
    $("live").checked = state.live;
    $("local-time").checked = state.localTime;
    for (const panel of view.panels) if (panel.plot) panel.plot.destroy();
    view.panels = [];
    $("panels").replaceChildren();
    for (const spec of state.panels) createPanel(spec);
    updateHint();
    updateRangeText();
    await loadContainers();
    // The charts first: the server answers one call at a time (an overlay in the address
    // needs no run list to be drawn, only its menus do).
    await refreshCharts();
    await loadRuns();
    await loadMetrics();
    scheduleLive();
  }

  // ---------------------------------------------------------------------------- live mode
  let liveTimer = null;

  function scheduleLive() {
    clearTimeout(liveTimer);
    if (view.state.live) liveTimer = setTimeout(pollStatus, POLL_MS);
  }

  async function pollStatus() {
    try {
      const body = await api("status");
      if (body.version !== view.version) {
        view.version = body.version;
        view.dataRange = body.range ? [body.range[0], body.range[1]] : null;
        updateRangeText();
        await loadContainers();
        await loadRuns();
        // A chosen range stays as it is; the whole range (the default) grows with the data.
        if (!view.state.range) {
          await Promise.all([loadMetrics(), refreshCharts()]);
        }
      }
      say("");
    } catch (e) {
      say("live: " + e.message);
    }
    scheduleLive();
  }

  // ---------------------------------------------------------------------------- dashboards
  function saveDashboard() {
    const body = JSON.stringify({ format: DASHBOARD_FORMAT, version: 1, ...view.state }, null, 2);
    const link = el("a", { href: URL.createObjectURL(new Blob([body], { type: "application/json" })),
      download: "finemon-dashboard.json" });
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(link.href), 1000);
  }

  async function loadDashboard(text) {
    let raw;
    try {
      raw = JSON.parse(text);
    } catch (e) {
      say("not a dashboard: " + e.message);
      return;
    }
    if (!raw || raw.format !== DASHBOARD_FORMAT) {
      say(`not a dashboard: no "format": "${DASHBOARD_FORMAT}"`);
      return;
    }
    say("");
    await applyState(normalizeState(raw));
  }
  view.loadDashboard = loadDashboard;

  // ---------------------------------------------------------------------------- wiring
  function debounce(fn, ms) {
    let timer = null;
    return (...args) => { clearTimeout(timer); timer = setTimeout(() => fn(...args), ms); };
  }

  function wire() {
    $("container-search").addEventListener("input", debounce(() => {
      view.state.search = $("container-search").value;
      saveUrl();
      loadContainers().catch((e) => say(e.message));
    }, 200));
    $("metric-search").addEventListener("input", debounce(() => {
      view.state.metricSearch = $("metric-search").value;
      saveUrl();
      loadMetrics().catch((e) => say(e.message));
    }, 200));
    for (const name of FILTERS) {
      $("filter-" + name).addEventListener("change", (event) => {
        view.state.filters[name] = event.target.value;
        saveUrl();
        loadContainers().catch((e) => say(e.message));
      });
    }
    $("pick-shown").addEventListener("click", () => {
      const keys = new Set(view.state.containers);
      for (const c of view.containers) keys.add(c.key);
      setContainers([...keys]);
    });
    $("pick-none").addEventListener("click", () => setContainers([]));
    $("live").addEventListener("change", () => {
      view.state.live = $("live").checked;
      saveUrl();
      scheduleLive();
    });
    $("local-time").addEventListener("change", () => {
      view.state.localTime = $("local-time").checked;
      saveUrl();
      redrawTimes();
    });
    $("reset-zoom").addEventListener("click", () => setRange(null));
    for (const id of ["overlay-run-a", "overlay-run-b", "overlay-phase"]) {
      $(id).addEventListener("change", () => setOverlay().catch((e) => say(e.message)));
    }
    $("save-dashboard").addEventListener("click", saveDashboard);
    $("load-dashboard").addEventListener("click", () => $("dashboard-file").click());
    $("dashboard-file").addEventListener("change", async (event) => {
      const file = event.target.files[0];
      event.target.value = "";
      if (file) await loadDashboard(await file.text());
    });
    window.addEventListener("hashchange", () => {
      const state = decodeState(location.hash);
      if (state && JSON.stringify(state) !== JSON.stringify(view.state)) applyState(state);
    });
    window.addEventListener("resize", debounce(() => {
      for (const panel of view.panels) {
        if (panel.plot) panel.plot.setSize({ width: chartWidth(), height: 240 });
      }
      if (view.overview) view.overview.setSize({ width: chartWidth(), height: 86 });
    }, 200));
  }

  async function start() {
    wire();
    try {
      await loadRange();
      await applyState(decodeState(location.hash) || defaultState());
      document.body.setAttribute("data-ready", "1");
    } catch (e) {
      say(e.message);
      document.body.setAttribute("data-ready", "error");
    }
  }

  view.setRange = setRange;
  view.setContainers = setContainers;
  view.addPanel = addPanel;
  view.applyState = applyState;
  view.refresh = refreshCharts;
  start();
})();
