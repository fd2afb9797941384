"""docs/metrics.md against what finemon really emits.

NodeObserver samples a cgroup v2, a v1 and a hybrid fixture tree (kubelet's systemd layout, the
kernel files of ``fixtures/``, a fake ``/proc`` whose processes have the fixture ``stat``,
``smaps_rollup`` and ``smaps``), with containers that have and have not limits so that every
conditional metric is exercised. Every emitted metric must have a catalogue row with its kind,
its extra labels and a cgroup column that admits the tree's arrangement; every ``container.*``
and ``process.*`` row must be emitted by one of the trees; every literal metric name in the
source must be catalogued with its kind.
"""

from __future__ import annotations

import re
import time
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
from capture.manager import WRITE_ERRORS_METRIC
from capture.registry import DROPPED_METRIC, MISSED_TICKS_METRIC, CaptureRecorder
from observers.node import NodeObserver, ObserverConfig

REPO = Path(__file__).resolve().parents[2]
CATALOGUE = REPO / "docs" / "metrics.md"

#: Labels every container and process series may carry (node_name is a global label).
STANDARD_LABELS = frozenset(
    {"namespace", "pod_name", "pod_uid", "container_id", "container_name", "qos_class", "cgroup"}
)
#: memory.stat keys that count events (the documented kind rule).
MEMORY_EVENT_PREFIXES = ("pg", "workingset_", "thp_", "zswp", "pswp")

_PLACEHOLDER = re.compile(r"<([a-z_]+)>|\{([^}]+)\}")


@dataclass(frozen=True)
class Row:
    name: str
    kind: str
    extra_labels: frozenset[str]
    standard: bool
    cgroup: str
    pattern: re.Pattern[str]

    @property
    def exact(self) -> bool:
        return "<" not in self.name

    def expand(self) -> list[str]:
        """Every name an exact row stands for (``{a,b}`` expanded)."""
        names = [""]
        position = 0
        for match in _PLACEHOLDER.finditer(self.name):
            assert match.group(2) is not None, f"{self.name}: not an exact row"
            literal = self.name[position : match.start()]
            choices = match.group(2).split(",")
            names = [n + literal + choice for n in names for choice in choices]
            position = match.end()
        return [n + self.name[position:] for n in names]


def _name_regex(name: str) -> re.Pattern[str]:
    parts: list[str] = []
    position = 0
    for match in _PLACEHOLDER.finditer(name):
        parts.append(re.escape(name[position : match.start()]))
        if match.group(1) == "key":  # keys may hold dots: core_sched.force_idle_usec, cost.vrate
            parts.append(r"[A-Za-z0-9_]+(?:\.[A-Za-z0-9_]+)*")
        elif match.group(1) is not None:
            parts.append(r"[A-Za-z0-9_]+")
        else:
            parts.append("(?:" + "|".join(map(re.escape, match.group(2).split(","))) + ")")
        position = match.end()
    parts.append(re.escape(name[position:]))
    return re.compile("".join(parts))


def parse_catalogue(text: str) -> list[Row]:
    """The rows of every metric table (header ``| Name | Kind | Unit | Labels | Source |
    cgroup | ...``)."""
    rows: list[Row] = []
    columns: list[str] | None = None
    for line in text.splitlines():
        if not line.startswith("|"):
            columns = None
            continue
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if cells[0] == "Name":
            columns = [cell.lower() for cell in cells]
            continue
        if columns is None or set(cells[0]) <= {"-", " "}:
            continue
        cell = dict(zip(columns, cells, strict=True))
        name = cell["name"].strip("`")
        rows.append(
            Row(
                name=name,
                kind=cell["kind"],
                extra_labels=frozenset(re.findall(r"`([a-z_]+)`", cell["labels"])),
                standard="standard" in cell["labels"],
                cgroup=cell["cgroup"],
                pattern=_name_regex(name),
            )
        )
    return rows


@pytest.fixture(scope="module")
def catalogue() -> list[Row]:
    rows = parse_catalogue(CATALOGUE.read_text())
    assert len(rows) > 50, "the catalogue tables were not found"
    return rows


def row_for(rows: list[Row], name: str) -> Row | None:
    """The most specific row matching ``name``: an exact row, else the pattern with the longest
    literal text."""
    matches = [row for row in rows if row.pattern.fullmatch(name)]
    if not matches:
        return None
    return max(matches, key=lambda r: (r.exact, len(_PLACEHOLDER.sub("", r.name))))


def kind_by_rule(name: str) -> str:
    """The documented kind rule of ``memory.stat`` keys."""
    assert name.startswith("cgroup.memory.stat."), name
    key = name.removeprefix("cgroup.memory.stat.").removeprefix("total_")
    return "counter" if key.startswith(MEMORY_EVENT_PREFIXES) else "gauge"


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


def _sample_tree(layout: Layout, log_root: Path) -> Iterator[Emitted]:
    recorder = CaptureRecorder(global_labels={"node_name": "n"})
    capture.set_recorder(recorder)
    try:
        fx = layout.fixture
        observer = NodeObserver(
            ObserverConfig(
                cgroup_root=fx.root, proc_root=fx.proc_root, log_root=log_root, smaps=True
            )
        )
        first = observer.sample()
        time.sleep(0.02)
        second = observer.sample()
        assert first.read_errors == second.read_errors == 0, (first, second)
        assert second.containers == len(layout.expected)
        for handle in recorder.live_handles():
            kind = "counter" if isinstance(handle, capture.Counter) else "gauge"
            keys = frozenset(key for key, _ in handle.labels)
            yield Emitted(handle.name, kind, keys, fx.mode)
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
# tests
# ------------------------------------------------------------------------------------------


def test_catalogue_rows_are_well_formed(catalogue: list[Row]) -> None:
    seen: dict[str, str] = {}
    for row in catalogue:
        assert row.kind in ("gauge", "counter", "by key"), row
        assert row.kind != "by key" or row.name == "cgroup.memory.stat.<key>", row
        assert row.cgroup in ("both", "v1", "v2", "v2, hybrid", "-"), row
        if row.exact:
            for name in row.expand():
                assert name not in seen, f"{name} catalogued twice ({seen[name]}, {row.name})"
                seen[name] = row.name


def test_every_emitted_metric_is_catalogued(catalogue: list[Row], emitted: list[Emitted]) -> None:
    problems: set[str] = set()
    for metric in emitted:
        row = row_for(catalogue, metric.name)
        if row is None:
            problems.add(f"{metric.name}: not in docs/metrics.md")
            continue
        kind = kind_by_rule(metric.name) if row.kind == "by key" else row.kind
        if metric.kind != kind:
            problems.add(f"{metric.name}: emitted as a {metric.kind}, catalogued as {row.kind}")
        extra = metric.label_keys - STANDARD_LABELS
        if extra != row.extra_labels:
            problems.add(
                f"{metric.name}: extra labels {sorted(extra)}, catalogued "
                f"{sorted(row.extra_labels)}"
            )
        if row.standard and "container_id" not in metric.label_keys:
            problems.add(f"{metric.name}: no container labels ({sorted(metric.label_keys)})")
        if not row.standard and metric.label_keys & STANDARD_LABELS:
            problems.add(f"{metric.name}: has container labels, catalogued without")
        provided = set(row.cgroup.replace(",", " ").split())
        allowed = (
            row.cgroup in ("both", "-")
            or metric.mode in provided
            or (metric.mode == "hybrid" and "v1" in provided)
        )
        if not allowed:
            problems.add(f"{metric.name}: emitted on {metric.mode}, catalogued for {row.cgroup}")
    assert not problems, "\n".join(sorted(problems))


def test_every_container_and_process_row_is_emitted(
    catalogue: list[Row], emitted: list[Emitted]
) -> None:
    names = {metric.name for metric in emitted}
    catalogued = [
        name
        for row in catalogue
        if row.name.startswith(("container.", "process."))
        for name in row.expand()
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
    src/monitor (the daemon is still being written: new names must get a row)."""
    names: dict[str, set[str]] = {}
    for directory in ("observers", "monitor"):
        for path in sorted((REPO / "src" / directory).glob("*.py")):
            for kind, name in _LITERAL_NAME.findall(path.read_text()):
                names.setdefault(name, set()).add(kind)
    return names


def test_every_literal_metric_name_in_the_source_is_catalogued(catalogue: list[Row]) -> None:
    names = _source_names()
    assert "finemon.containers" in names and "finemon.self.rss_bytes" in names
    names.setdefault(DROPPED_METRIC, set()).add("counter")
    names.setdefault(MISSED_TICKS_METRIC, set()).add("counter")
    names.setdefault(WRITE_ERRORS_METRIC, set()).add("counter")
    problems = []
    for name, kinds in sorted(names.items()):
        row = row_for(catalogue, name)
        if row is None:
            problems.append(f"{name}: not in docs/metrics.md")
        elif kinds != {row.kind}:
            problems.append(f"{name}: {sorted(kinds)} in the source, {row.kind} in the catalogue")
    assert not problems, "\n".join(problems)
