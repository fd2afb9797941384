"""``--prometheus-series default``: the catalogue's default set, and what the node observer's
series look like through it on fixture trees (cgroup v2 and v1, with processes)."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import pytest
from layouts import Layout, install_kernel_files, systemd_v1, systemd_v2
from prometheus_client.parser import text_string_to_metric_families

import capture
from capture.exposition import Exposition
from capture.registry import CaptureRecorder
from common.catalogue import (
    ENTRIES,
    PROMETHEUS_DEFAULT_ENTRIES,
    PROMETHEUS_DEFAULT_TABLES,
    TABLES,
    in_prometheus_default,
    prometheus_default_labels,
)
from common.catalogue import docs as catalogue_docs
from common.catalogue.prometheus import prometheus_default_markdown
from monitor.selfstats import describe_daemon_metrics
from observers.node import NodeObserver, ObserverConfig

#: What issue 19 allows a container in the default set.
MAX_SERIES_PER_CONTAINER = 30


def test_the_default_set_names_catalogue_entries_and_at_most_30_series_a_container() -> None:
    by_name = {entry.name: entry for entry in ENTRIES}
    assert by_name.keys() >= PROMETHEUS_DEFAULT_ENTRIES, PROMETHEUS_DEFAULT_ENTRIES - by_name.keys()
    assert set(TABLES) >= PROMETHEUS_DEFAULT_TABLES
    chosen = [by_name[name] for name in PROMETHEUS_DEFAULT_ENTRIES]
    assert all(entry.table.startswith("container-") and entry.exact for entry in chosen)
    assert sum(len(entry.names()) for entry in chosen) <= MAX_SERIES_PER_CONTAINER
    # The headline of each resource is in it.
    for name in (
        "container.cpu.usage_usec",
        "container.cpu.throttled_usec",
        "container.memory.usage_bytes",
        "container.memory.working_set_bytes",
        "container.memory.rss_bytes",
        "container.memory.pss_bytes",
        "container.memory.oom_kills",
        "container.memory.psi.some.stall_usec",
        "container.io.read_bytes",
        "container.pids.current",
        "finemon.ticks_skipped",
        "capture.missed_ticks",
    ):
        assert in_prometheus_default(name), name
    for name in (
        "process.memory.pss_bytes",
        "process.cpu.usage_millicores",
        "cgroup.memory.stat.anon",
        "cgroup.cpu.stat.usage_usec",
        "proc.smaps_rollup.pss_bytes",
        "container.cpu.user_millicores",
        "not.catalogued",
    ):
        assert not in_prometheus_default(name), name


def _served(layout: Layout, log_root: Path, include: bool) -> str:
    """The exposition of two samples of ``layout``, through the default set or not."""
    recorder = CaptureRecorder(global_labels={"node_name": "n"})
    capture.set_recorder(recorder)
    describe_daemon_metrics()
    fx = layout.fixture
    observer = NodeObserver(
        ObserverConfig(cgroup_root=fx.root, proc_root=fx.proc_root, log_root=log_root, smaps=True)
    )
    try:
        observer.sample()
        time.sleep(0.02)
        observer.sample()
        recorder.take_tick()
        exposition = (
            Exposition(recorder, in_prometheus_default, prometheus_default_labels)
            if include
            else Exposition(recorder)
        )
        return exposition.body().decode()
    finally:
        observer.close()
        capture.set_recorder(None)


@pytest.mark.parametrize("mode", ["v2", "v1"])
def test_the_default_set_serves_each_containers_headline_and_no_process(
    mode: str, tmp_path: Path
) -> None:
    layout = install_kernel_files(systemd_v2(tmp_path) if mode == "v2" else systemd_v1(tmp_path))
    text = _served(layout, tmp_path / "log", include=True)
    per_container: Counter[str] = Counter()
    names: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            assert "pid" not in sample.labels, sample
            assert not sample.name.startswith(("process_", "cgroup_", "proc_")), sample
            container = sample.labels.get("container_id")
            if container:
                assert "pod_uid" not in sample.labels, sample  # container_id tells them apart
                per_container[container] += 1
                names.setdefault(container, set()).add(sample.name)
    assert len(per_container) == len(layout.expected)
    assert max(per_container.values()) <= MAX_SERIES_PER_CONTAINER, per_container
    for container in names.values():
        assert {
            "container_cpu_usage_usec_total",
            "container_cpu_throttled_usec_total",
            "container_memory_working_set_bytes",
            "container_memory_rss_bytes",
            "container_memory_pss_bytes",  # summed over the container's processes
            "container_memory_oom_kills_total",
            "container_io_read_bytes_total",
            "container_pids_current",
        } <= container, sorted(container)
    if mode == "v2":
        assert all("container_memory_psi_some_stall_usec_total" in c for c in names.values())
    # --prometheus-series all: every series, the processes' too.
    everything = _served(layout, tmp_path / "log", include=False)
    assert "process_memory_pss_bytes{" in everything and "cgroup_" in everything
    assert 'pod_uid="' in everything
    assert len(everything) > 4 * len(text)


def test_the_docs_list_the_default_set_as_the_catalogue_has_it(tmp_path: Path) -> None:
    """docs/prometheus.md (a page of lists, no tables) and docs/metrics.md hold the generated
    list; the command line rewrites and checks a page without tables too."""
    docs = Path(__file__).resolve().parents[2] / "docs"
    listed = prometheus_default_markdown()
    for page in ("prometheus.md", "metrics.md"):
        text = (docs / page).read_text(encoding="utf-8")
        assert f"<!-- catalogue-list: prometheus-default -->\n{listed}<!-- /catalogue-list -->" in (
            text
        ), f"run python -m common.catalogue --write docs/{page}"
    assert "`container_memory_working_set_bytes` | gauge | bytes" in listed
    assert "`process_" not in listed
    page = tmp_path / "prometheus.md"
    current = (docs / "prometheus.md").read_text(encoding="utf-8")
    page.write_text(current.replace("container_memory_working_set_bytes", "stale"), "utf-8")
    assert catalogue_docs.main(["--check", str(page)]) == 1
    assert catalogue_docs.main(["--write", str(page)]) == 0
    assert page.read_text(encoding="utf-8") == current
    page.write_text("<!-- catalogue-list: nothing -->\n<!-- /catalogue-list -->\n", "utf-8")
    assert catalogue_docs.main(["--check", str(page)]) == 2  # an unknown list
