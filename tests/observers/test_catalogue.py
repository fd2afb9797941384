"""The metric catalogue (src/common/catalogue/) against what finemon really emits, and
docs/metrics.md against the catalogue.

NodeObserver samples a cgroup v2, a v1 and a hybrid fixture tree (kubelet's systemd layout, the
kernel files of ``fixtures/``, a fake ``/proc`` whose processes have the fixture ``stat``,
``smaps_rollup`` and ``smaps``), with containers that have and have not limits so that every
conditional metric is exercised. Every emitted metric must have a catalogue entry with its kind,
its extra labels and a cgroup column that admits the tree's arrangement, and the recorder must
have been given that entry's description and unit; every ``container.*`` and ``process.*``
entry must be emitted by one of the trees; every literal metric name in the source must be
catalogued with its kind. docs/metrics.md must hold exactly the catalogue's tables, and the
Prometheus endpoint must serve the catalogue's descriptions.
"""

from __future__ import annotations

import re
import socket
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from layouts import (
    FIXTURES,
    Layout,
    cgroup_file,
    install_kernel_files,
    systemd_v1,
    systemd_v2,
)

import capture
from capture.manager import WRITE_ERRORS_DESCRIPTION, WRITE_ERRORS_METRIC
from capture.registry import (
    DROPPED_DESCRIPTION,
    DROPPED_METRIC,
    MISSED_TICKS_DESCRIPTION,
    MISSED_TICKS_METRIC,
    CaptureRecorder,
)
from common.catalogue import (
    ENTRIES,
    MEMORY_EVENT_PREFIXES,
    STANDARD_LABELS,
    TABLES,
    UNITS,
    Entry,
    entry_for,
)
from common.catalogue import docs as catalogue_docs
from common.catalogue.docs import render_markdown
from monitor.selfstats import describe_daemon_metrics
from observers.node import NodeObserver, ObserverConfig

REPO = Path(__file__).resolve().parents[2]
DOCS = REPO / "docs" / "metrics.md"


# ------------------------------------------------------------------------------------------
# fixture trees
# ------------------------------------------------------------------------------------------


def _v2_tree(base: Path) -> Layout:
    layout = install_kernel_files(systemd_v2(base))
    fx, containers = layout.fixture, layout.expected
    # No limits at all: cpu.max/memory.max/pids.max read "max".
    relpath = containers[1].relpath
    cgroup_file(fx, relpath, "cpu.max").write_text("max 100000\n")
    cgroup_file(fx, relpath, "memory.max").write_text("max\n")
    cgroup_file(fx, relpath, "pids.max").write_text("max\n")
    # memory.high and memory.swap.max set (the fixture has them at "max").
    relpath = containers[2].relpath
    cgroup_file(fx, relpath, "memory.high").write_text("805306368\n")
    cgroup_file(fx, relpath, "memory.swap.max").write_text("0\n")
    # memory.stat of a kernel with NUMA balancing, zero-page swap counters and zswap_incomp.
    numa_swap = (FIXTURES / "cgroup_v2" / "numa_swap" / "memory.stat").read_bytes()
    cgroup_file(fx, relpath, "memory.stat").write_bytes(numa_swap)
    # io.stat with iocost and iolatency keys (gauges), and a device without any key.
    iocost = (FIXTURES / "cgroup_v2" / "iocost_root" / "io.stat").read_bytes()
    cgroup_file(fx, containers[3].relpath, "io.stat").write_bytes(iocost)
    return layout


def _v1_tree(base: Path, mode: str) -> Layout:
    layout = install_kernel_files(systemd_v1(base, mode=mode))  # type: ignore[arg-type]
    fx, relpath = layout.fixture, layout.expected[1].relpath
    # The fixture has a CPU quota and no memory or pids limit: the other way round here.
    cgroup_file(fx, relpath, "cpu.cfs_quota_us").write_text("-1\n")
    cgroup_file(fx, relpath, "memory.limit_in_bytes").write_text("536870912\n")
    cgroup_file(fx, relpath, "pids.max").write_text("1024\n")
    return layout


@dataclass(frozen=True)
class Emitted:
    name: str
    kind: str
    label_keys: frozenset[str]
    mode: str
    #: The description the recorder holds for the name.
    description: capture.Description | None


def _observer(layout: Layout, log_root: Path) -> NodeObserver:
    fx = layout.fixture
    return NodeObserver(
        ObserverConfig(cgroup_root=fx.root, proc_root=fx.proc_root, log_root=log_root, smaps=True)
    )


def _sample_twice(observer: NodeObserver, layout: Layout) -> None:
    first = observer.sample()
    time.sleep(0.02)
    second = observer.sample()
    assert first.read_errors == second.read_errors == 0, (first, second)
    assert second.containers == len(layout.expected)


def _sample_tree(layout: Layout, log_root: Path) -> Iterator[Emitted]:
    recorder = CaptureRecorder(global_labels={"node_name": "n"})
    capture.set_recorder(recorder)
    try:
        observer = _observer(layout, log_root)
        _sample_twice(observer, layout)
        for handle in recorder.live_handles():
            kind = "counter" if isinstance(handle, capture.Counter) else "gauge"
            keys = frozenset(key for key, _ in handle.labels)
            described = recorder.description(handle.name)
            yield Emitted(handle.name, kind, keys, layout.fixture.mode, described)
        observer.close()
    finally:
        capture.set_recorder(None)


@pytest.fixture(scope="module")
def emitted(tmp_path_factory: pytest.TempPathFactory) -> list[Emitted]:
    out: list[Emitted] = []
    for mode in ("v2", "v1", "hybrid"):
        base = tmp_path_factory.mktemp(mode)
        layout = _v2_tree(base) if mode == "v2" else _v1_tree(base, mode)
        out.extend(_sample_tree(layout, base / "log"))
    return out


# ------------------------------------------------------------------------------------------
# the catalogue and the docs
# ------------------------------------------------------------------------------------------


def test_catalogue_entries_are_well_formed() -> None:
    seen: dict[str, str] = {}
    assert len(ENTRIES) > 80
    for entry in ENTRIES:
        assert entry.table in TABLES, entry
        assert entry.kind in ("gauge", "counter", "by key"), entry
        assert entry.kind != "by key" or entry.name == "cgroup.memory.stat.<key>", entry
        assert entry.cgroup in ("both", "v1", "v2", "v2, hybrid", "-"), entry
        # A phrase instead of a unit only for a family with a mix of units.
        assert entry.unit in UNITS | {"-"} or not entry.exact or "{" in entry.name, entry
        assert not set(entry.labels) & STANDARD_LABELS, entry
        # The description is a HELP text: one line of plain text.
        text = entry.description
        assert text and text == " ".join(text.split()) and not set(text) & set("`|*"), entry
        for cell in (entry.name, entry.unit, entry.source, entry.derivation):
            assert "|" not in cell and "\n" not in cell, entry
        for name in entry.names():
            if entry.exact:
                assert name not in seen, f"{name} catalogued twice ({seen[name]}, {entry.name})"
                seen[name] = entry.name
            assert entry.pattern().fullmatch(name.replace("*", "some.key")), (entry, name)
    for table in TABLES:
        assert any(entry.table == table for entry in ENTRIES), table


def test_the_docs_tables_are_the_catalogues() -> None:
    text = DOCS.read_text(encoding="utf-8")
    assert render_markdown(text) == text, (
        "docs/metrics.md differs from src/common/catalogue/: run "
        "python -m common.catalogue --write docs/metrics.md"
    )
    rows = [line for line in text.splitlines() if line.startswith("| `")]
    catalogued = [line for line in rows if line.split("`")[1] in {e.name for e in ENTRIES}]
    assert len(catalogued) == len(ENTRIES)
    # The prose sections are kept.
    for heading in ("## Reading the tables", "## Raw pass-through", "## Describing metrics"):
        assert heading in text


def test_the_docs_are_checked_and_rewritten_from_the_command_line(tmp_path: Path) -> None:
    docs = tmp_path / "metrics.md"
    current = DOCS.read_text(encoding="utf-8")
    row = ENTRIES[0].markdown_row()
    docs.write_text(current.replace(row, row.replace(ENTRIES[0].kind, "gauge?")), "utf-8")
    assert catalogue_docs.main(["--check", str(docs)]) == 1
    assert catalogue_docs.main(["--write", str(docs)]) == 0
    assert docs.read_text(encoding="utf-8") == current
    assert catalogue_docs.main(["--check", str(docs)]) == 0
    docs.write_text(current.replace("<!-- catalogue: process -->", ""), "utf-8")
    assert catalogue_docs.main(["--check", str(docs)]) == 2  # a table no longer marked


def test_a_familys_kind_follows_the_documented_rule() -> None:
    stat = entry_for("cgroup.memory.stat.pgfault")
    assert stat is not None and stat.name == "cgroup.memory.stat.<key>"
    assert stat.kind_of("cgroup.memory.stat.pgfault") == "counter"
    assert stat.kind_of("cgroup.memory.stat.total_workingset_refault_anon") == "counter"
    assert stat.kind_of("cgroup.memory.stat.inactive_file") == "gauge"
    assert stat.kind_of("cgroup.memory.stat.zswap") == "gauge"
    for counter in (
        "numa_pages_migrated",
        "swpin_zero",
        "swpout_zero",
        "zswpout",
        "pgdemote_kswapd",
    ):
        assert stat.kind_of(f"cgroup.memory.stat.{counter}") == "counter", counter
    for gauge in ("zswapped", "zswap_incomp", "swapcached", "anon_thp", "hugetlb"):
        assert stat.kind_of(f"cgroup.memory.stat.{gauge}") == "gauge", gauge
    io = entry_for("cgroup.io.stat.rbytes")
    assert io is not None and io.kind == "counter" and io.exact
    other = entry_for("cgroup.io.stat.cost.vrate")
    assert other is not None and other.kind == "gauge" and not other.exact
    assert entry_for("container.cpu.usage_millicore") is None


def test_the_docs_kind_rule_names_the_memory_event_prefixes() -> None:
    rule = DOCS.read_text(encoding="utf-8").split("**Kind rule.**", 1)[1]
    line = rule.split("\n- `memory.stat`: ", 1)[1].split("\n- ", 1)[0]
    named = re.findall(r"`([a-z_]+)`", line.split("are counters", 1)[0])
    assert tuple(named[: named.index("total_")]) == MEMORY_EVENT_PREFIXES


def test_capture_entries_take_captures_own_descriptions() -> None:
    for own in (DROPPED_DESCRIPTION, MISSED_TICKS_DESCRIPTION, WRITE_ERRORS_DESCRIPTION):
        entry = entry_for(own.name)
        assert entry is not None and entry.table == "capture"
        assert (entry.description, entry.unit, entry.kind) == (own.description, own.unit, "counter")


# ------------------------------------------------------------------------------------------
# the catalogue against what is emitted
# ------------------------------------------------------------------------------------------


def test_every_emitted_metric_is_catalogued(emitted: list[Emitted]) -> None:
    problems: set[str] = set()
    for metric in emitted:
        entry = entry_for(metric.name)
        if entry is None:
            problems.add(f"{metric.name}: not in the catalogue")
            continue
        kind = entry.kind_of(metric.name)
        if metric.kind != kind:
            problems.add(f"{metric.name}: emitted as a {metric.kind}, catalogued as {kind}")
        extra = metric.label_keys - STANDARD_LABELS
        if extra != set(entry.labels):
            problems.add(
                f"{metric.name}: extra labels {sorted(extra)}, catalogued {sorted(entry.labels)}"
            )
        if entry.standard and "container_id" not in metric.label_keys:
            problems.add(f"{metric.name}: no container labels ({sorted(metric.label_keys)})")
        if not entry.standard and metric.label_keys & STANDARD_LABELS:
            problems.add(f"{metric.name}: has container labels, catalogued without")
        provided = set(entry.cgroup.replace(",", " ").split())
        allowed = (
            entry.cgroup in ("both", "-")
            or metric.mode in provided
            or (metric.mode == "hybrid" and "v1" in provided)
        )
        if not allowed:
            problems.add(f"{metric.name}: emitted on {metric.mode}, catalogued for {entry.cgroup}")
    assert not problems, "\n".join(sorted(problems))


def test_every_emitted_metric_is_described_as_catalogued(emitted: list[Emitted]) -> None:
    """The observer gave the recorder each entry's description and unit, and capture resolves
    a name to the same entry as the catalogue (an exact name over its family)."""
    problems: set[str] = set()
    for metric in emitted:
        entry = entry_for(metric.name)
        assert entry is not None, metric.name
        got = metric.description
        if got is None:
            problems.add(f"{metric.name}: not described")
        elif (got.description, got.unit) != (entry.description, entry.capture_unit):
            problems.add(f"{metric.name}: described as {got}, catalogued as {entry.name}")
    assert not problems, "\n".join(sorted(problems))


def test_the_node_observer_describes_its_metrics_when_it_starts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # No description from an earlier test in this process: a fresh process-wide table.
    monkeypatch.setattr(
        capture.facade.pending_recorder(), "descriptions", capture.descriptions.DescriptionTable()
    )
    layout = _v2_tree(tmp_path)
    recorder = CaptureRecorder()
    capture.set_recorder(recorder)
    try:
        assert recorder.description("container.memory.working_set_bytes") is None
        observer = _observer(layout, tmp_path / "log")
        observer.close()
    finally:
        capture.set_recorder(None)
    working_set = entry_for("container.memory.working_set_bytes")
    assert working_set is not None
    described = recorder.description("container.memory.working_set_bytes")
    assert described == capture.Description(
        "container.memory.working_set_bytes", working_set.description, "bytes"
    )
    # The daemon's own metrics are the daemon's to describe.
    assert recorder.description("finemon.self.rss_bytes") is None
    describe_daemon_metrics()
    rss = recorder.description("finemon.self.rss_bytes")
    assert rss is None  # (uninstalled: given to the next recorder)
    later = CaptureRecorder()
    capture.set_recorder(later)
    try:
        rss = later.description("finemon.self.rss_bytes")
    finally:
        capture.set_recorder(None)
    entry = entry_for("finemon.self.rss_bytes")
    assert entry is not None and rss is not None
    assert (rss.description, rss.unit) == (entry.description, "bytes")


def test_every_container_and_process_entry_is_emitted(emitted: list[Emitted]) -> None:
    names = {metric.name for metric in emitted}
    catalogued = [
        name
        for entry in ENTRIES
        if entry.name.startswith(("container.", "process."))
        for name in entry.names()
    ]
    assert len(catalogued) > 40
    missing = [name for name in catalogued if name not in names]
    assert not missing, f"catalogued but emitted by none of the fixture trees: {missing}"


def test_both_arrangements_give_the_core_metrics(emitted: list[Emitted]) -> None:
    """The issue's fixed core names, on every arrangement."""
    core = {
        "container.cpu.usage_millicores",
        "container.cpu.usage_percent",
        "container.cpu.limit_millicores",
        "container.cpu.throttled_periods",
        "container.cpu.throttled_usec",
        "container.memory.usage_bytes",
        "container.memory.working_set_bytes",
        "container.memory.rss_bytes",
        "container.memory.limit_bytes",
        "container.memory.oom_kills",
        "container.memory.pss_bytes",
        "process.memory.pss_bytes",
        "process.memory.rss_bytes",
        "process.memory.swap_bytes",
        "process.cpu.usage_millicores",
        "process.threads",
    }
    for mode in ("v2", "v1", "hybrid"):
        names = {m.name for m in emitted if m.mode == mode}
        assert core <= names, (mode, sorted(core - names))
    kinds = {m.name: m.kind for m in emitted}
    for name in ("container.cpu.throttled_periods", "container.cpu.throttled_usec"):
        assert kinds[name] == "counter"
    assert kinds["container.memory.oom_kills"] == "counter"
    assert "cgroup.memory.stat.inactive_file" in kinds
    assert "cgroup.cpu.stat.usage_usec" in kinds
    assert "cgroup.memory.pressure.some.avg10" in kinds


_LITERAL_NAME = re.compile(r"\.(gauge|counter)\(\s*\"([a-z][a-z0-9_.]*)\"")


def _source_names() -> dict[str, set[str]]:
    """Metric names passed as string literals to ``.gauge(``/``.counter(`` in src/observers and
    src/monitor (the daemon is still being written: new names must get an entry)."""
    names: dict[str, set[str]] = {}
    for directory in ("observers", "monitor"):
        for path in sorted((REPO / "src" / directory).glob("*.py")):
            for kind, name in _LITERAL_NAME.findall(path.read_text()):
                names.setdefault(name, set()).add(kind)
    return names


def test_every_literal_metric_name_in_the_source_is_catalogued() -> None:
    names = _source_names()
    assert "finemon.containers" in names and "finemon.self.rss_bytes" in names
    names.setdefault(DROPPED_METRIC, set()).add("counter")
    names.setdefault(MISSED_TICKS_METRIC, set()).add("counter")
    names.setdefault(WRITE_ERRORS_METRIC, set()).add("counter")
    problems = []
    for name, kinds in sorted(names.items()):
        entry = entry_for(name)
        if entry is None:
            problems.append(f"{name}: not in the catalogue")
        elif kinds != {entry.kind}:
            problems.append(f"{name}: {sorted(kinds)} in the source, {entry.kind} in the catalogue")
    assert not problems, "\n".join(problems)


# ------------------------------------------------------------------------------------------
# the live view
# ------------------------------------------------------------------------------------------


def _scrape(port: int, openmetrics: bool) -> str:
    accept = "application/openmetrics-text; version=1.0.0" if openmetrics else "text/plain"
    request = urllib.request.Request(f"http://127.0.0.1:{port}/metrics", headers={"Accept": accept})
    with urllib.request.urlopen(request, timeout=5) as response:
        body: bytes = response.read()
    return body.decode()


def _help(text: str) -> dict[str, str]:
    helps: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith("# HELP "):
            name, _, doc = line.removeprefix("# HELP ").partition(" ")
            helps[name] = doc
    return helps


def test_the_prometheus_endpoint_serves_the_catalogues_descriptions_and_units(
    tmp_path: Path,
) -> None:
    layout = _v2_tree(tmp_path)
    recorder = CaptureRecorder(global_labels={"node_name": "n"})
    capture.set_recorder(recorder)
    observer = _observer(layout, tmp_path / "log")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server, thread = capture.prometheus.start_http_endpoint(port, "127.0.0.1")
    try:
        _sample_twice(observer, layout)
        capture.gauge("not_in.the_catalogue").set(1)
        text, metrics = _scrape(port, openmetrics=False), _scrape(port, openmetrics=True)
    finally:
        server.shutdown()
        thread.join(timeout=5)
        observer.close()
        capture.set_recorder(None)

    def catalogued(name: str) -> Entry:
        entry = entry_for(name)
        assert entry is not None, name
        return entry

    helps = _help(text)
    working_set = catalogued("container.memory.working_set_bytes")
    assert helps["container_memory_working_set_bytes"] == working_set.description
    throttled = catalogued("container.cpu.throttled_usec")
    assert helps["container_cpu_throttled_usec_total"] == throttled.description
    # A raw key gets its family's description; a catalogued key its own entry's.
    assert catalogued("cgroup.memory.stat.pgfault").name == "cgroup.memory.stat.<key>"
    assert catalogued("cgroup.io.stat.cost.vrate").name == "cgroup.io.stat.<key>"
    assert (
        helps["cgroup_memory_stat_pgfault_total"]
        == catalogued("cgroup.memory.stat.pgfault").description
    )
    assert helps["cgroup_io_stat_rbytes_total"] == catalogued("cgroup.io.stat.rbytes").description
    assert helps["cgroup_io_stat_cost_vrate"] == catalogued("cgroup.io.stat.cost.vrate").description
    assert helps["finemon_pss_reads_total"] == catalogued("finemon.pss.reads").description
    assert helps["not_in_the_catalogue"] == "capture gauge not_in.the_catalogue"
    described = [name for name, doc in helps.items() if not doc.startswith("capture ")]
    assert len(described) == len(helps) - 1
    # OpenMetrics: UNIT where the name ends with the unit, and nothing renamed.
    units = {
        line.split()[2]: line.split()[3]
        for line in metrics.splitlines()
        if line.startswith("# UNIT ")
    }
    assert units["container_memory_working_set_bytes"] == "bytes"
    assert units["container_cpu_usage_millicores"] == "millicores"
    assert units["container_cpu_throttled_usec"] == "usec"
    assert units["container_cpu_usage_percent"] == "percent"
    assert units["finemon_observer_duration_seconds"] == "seconds"
    assert "cgroup_memory_current" not in units  # bytes, but the name does not say so
    assert "container_cpu_throttled_periods" not in units  # count
    for name, unit in units.items():
        assert name.endswith(f"_{unit}"), (name, unit)
    assert _help(metrics)["container_memory_working_set_bytes"] == working_set.description
