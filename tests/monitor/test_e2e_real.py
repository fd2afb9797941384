"""End to end: the real ``finemon run`` process with the real observer.

First against a fixture node (kubelet's layout on cgroup v2, the kernel's file formats, a fake
``/proc`` and kubelet's log files), then, as root, against real cgroups with real workloads
(``monitor.sandbox``): a CPU burner and a process holding 64 MiB, recorded while the Prometheus
endpoint is scraped, stopped by SIGTERM at a random moment, killed by SIGKILL and restarted,
and stopped by the size limit across a restart.
"""

from __future__ import annotations

import collections
import json
import os
import random
import re
import signal
import statistics
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import pyarrow.parquet as pq
import pytest
from e2e_nodes import (
    NODE,
    FixtureNode,
    RealFinemon,
    check_complete_slices,
    check_files_follow_each_other,
    every_parquet_readable,
    fixture_node,
    read_with_every_reader,
    run_real,
    samples,
    scrape,
    snapshot,
    undocumented_files,
)
from finemon_process import (
    FAST,
    Finemon,
    free_port,
    hidden_leftovers,
    index_bytes,
    manifest,
    parquet_files,
    wait_for,
)
from prometheus_client.parser import text_string_to_metric_families

from analysis.query.dataset_index import open_local_index
from common.contract import INDEX_DIR, LABEL_COLUMNS
from common.dataset_index import INDEX_FILE
from monitor.sandbox import KubeletSandbox, SandboxContainer, sandbox_unavailable
from monitor.sizelimit import finemon_files, used_bytes
from observers.hierarchy import find_hierarchy

MIB = 1024 * 1024
HELD_BYTES = 64 * MIB
#: The real-cgroup runs: 5 ticks a second, a 1 s window, a new file every 2 s.
#: The --cluster-name of the recording the SIGTERM tests read.
CLUSTER = "e2e-cluster"
REAL = ("--interval", "0.2", "--window-seconds", "1", "--rotation-seconds", "2")
ID_COLUMNS = ("container_id", "pod_uid", "qos_class")
NAME_COLUMNS = ("namespace", "pod_name", "container_name")


# ------------------------------------------------------------------------------------------
# a fixture node
# ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FixtureRun:
    node: FixtureNode
    output_dir: Path
    code: int
    log: str


@pytest.fixture(scope="module")
def fixture_run(tmp_path_factory: pytest.TempPathFactory) -> FixtureRun:
    base = tmp_path_factory.mktemp("fixture-node")
    node = fixture_node(base)
    out = base / "out"
    code, log = run_real(
        out,
        *FAST,
        "--duration",
        "5",
        "--cgroup-root",
        str(node.cgroup_root),
        "--proc-root",
        str(node.proc_root),
        "--log-root",
        str(node.log_root),
    )
    return FixtureRun(node, out, code, log)


def test_fixture_node_rotates_into_complete_files_every_reader_reads(
    fixture_run: FixtureRun,
) -> None:
    out, node = fixture_run.output_dir, fixture_run.node
    assert fixture_run.code == 0, fixture_run.log
    assert undocumented_files(out) == []
    files = parquet_files(out)
    assert len(files) >= 3, fixture_run.log
    assert fixture_run.log.count(" rotated file=") == len(files) - 1

    rows = read_with_every_reader(out)
    session = manifest(out)
    run_id = session["run_id"]
    assert {r["run_id"] for r in rows} == {run_id}
    assert session["reason"] == "duration"
    assert session["stats"]["rows"] == len(rows)
    assert session["host"]["observer"]["cgroup_mode"] == "v2"

    # Complete time slices: no (series, tick) twice, no tick missing, files back to back.
    ticks = check_complete_slices(rows)
    assert check_files_follow_each_other(out, run_id) == len(files)
    rss = next(t for s, t in ticks.items() if s[1] == "finemon.self.rss_bytes")
    assert rss[0] == 0 and rss[-1] >= 35, "about 50 ticks in 5 s"

    # Partition columns (dt: the UTC date of the file's first tick) and the node name.
    first_times: dict[str, Any] = {}
    for row in rows:
        assert row["identifier"] == NODE and row["node_name"] == NODE
        first_times[row["file"]] = min(first_times.get(row["file"], row["time"]), row["time"])
    dts = {row["file"]: row["dt"] for row in rows}
    assert dts == {name: f"{time:%Y-%m-%d}" for name, time in first_times.items()}

    # Every container of the tree, with its ids (from the cgroup path) and names (from the
    # log files); nothing from the pause sandboxes or the exited container.
    container_rows = [r for r in rows if r["metric_name"].startswith("container.")]
    found = {
        tuple(r[c] for c in ("container_id", *ID_COLUMNS[1:], *NAME_COLUMNS))
        for r in container_rows
    }
    expected = set()
    for container in node.containers:
        assert container.container_id is not None
        names = node.names[container.container_id]
        expected.add(
            (
                container.container_id,
                container.pod_uid,
                container.qos_class,
                names.namespace,
                names.pod_name,
                names.container_name,
            )
        )
    assert found == expected
    counts = [r["value_float"] for r in rows if r["metric_name"] == "finemon.containers"]
    assert set(counts) == {len(node.containers)}

    # Values straight from the fixture's kernel files, every tick of every container.
    for container in node.containers:
        memory_current = int((node.cgroup_root / container.relpath / "memory.current").read_text())
        usage = {
            r["value_float"]
            for r in container_rows
            if r["metric_name"] == "container.memory.usage_bytes"
            and r["container_id"] == container.container_id
        }
        assert usage == {memory_current}, container.relpath
    process_pids = {dict(r["labels"])["pid"] for r in rows if r["metric_name"] == "process.threads"}
    assert process_pids == {str(pid) for c in node.containers for pid in c.pids}


def test_fixture_node_manifest_names_the_layout_found(fixture_run: FixtureRun) -> None:
    observer = manifest(fixture_run.output_dir)["host"]["observer"]
    assert observer["layout"] == "kubernetes"
    assert observer["kubepods"] == ["kubepods.slice"]


# ------------------------------------------------------------------------------------------
# real cgroups
# ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RealNode:
    sandbox: KubeletSandbox
    burner: SandboxContainer
    holder: SandboxContainer
    log_root: Path


class CpuClock:
    """A process's CPU time as the kernel accounts it (``/proc/PID/stat``), against wall time."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.start = self._read()

    def _read(self) -> tuple[float, float]:
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        utime, stime = int(fields[11]), int(fields[12])
        return time.monotonic(), (utime + stime) / os.sysconf("SC_CLK_TCK")

    def millicores(self) -> float:
        """Mean CPU use since construction, in millicores."""
        (wall0, cpu0), (wall1, cpu1) = self.start, self._read()
        return (cpu1 - cpu0) / (wall1 - wall0) * 1000.0


def pss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1]) * 1024
    return 0


@pytest.fixture(scope="module")
def real_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealNode]:
    reason = sandbox_unavailable()
    if reason is not None:
        pytest.skip(f"cannot build real cgroups: {reason}")
    log_root = tmp_path_factory.mktemp("real-node") / "log"
    with KubeletSandbox(log_root=log_root) as box:
        burner = box.add_container("cpu-pod", "burner", [("burn", [])])
        holder = box.add_container(
            "mem-pod", "holder", [("hold", [str(HELD_BYTES)])], namespace="team-a", qos="besteffort"
        )
        wait_for(lambda: pss_bytes(holder.pids[0]) >= HELD_BYTES, 30, "the holder's pages")
        yield RealNode(box, burner, holder, log_root)
    for root in box.roots:
        assert not (root / box.prefix).exists(), "sandbox cgroups were not cleaned up"


def rows_of_container(
    rows: list[dict[str, Any]], container: SandboxContainer, metric: str, run_id: str
) -> list[dict[str, Any]]:
    return [
        r
        for r in rows
        if r["run_id"] == run_id
        and r["metric_name"] == metric
        and r["container_id"] == container.container_id
    ]


@dataclass(frozen=True)
class SigtermRun:
    node: RealNode
    output_dir: Path
    code: int
    log: str
    stop_seconds: float
    scraped: str
    #: The burner's mean CPU use over the recording, by the kernel's accounting.
    burner_kernel_millicores: float


@pytest.fixture(scope="module")
def sigterm_run(real_node: RealNode, tmp_path_factory: pytest.TempPathFactory) -> SigtermRun:
    """Record the real node with the Prometheus endpoint on; scrape it until the burner's CPU
    shows; SIGTERM at a random moment after two rotations."""
    out = tmp_path_factory.mktemp("real-run") / "out"
    port = free_port()
    url = f"http://127.0.0.1:{port}/metrics"
    proc = RealFinemon(
        out,
        *REAL,
        "--log-root",
        str(real_node.log_root),
        "--prometheus-port",
        str(port),
        "--prometheus-address",
        "127.0.0.1",
        "--cluster-name",
        CLUSTER,
    )
    burner_id = real_node.burner.container_id
    scraped = ""
    try:
        proc.wait_log("recording run_id=", timeout=30)
        burner_clock = CpuClock(real_node.burner.pids[0])

        def burner_shows() -> bool:
            nonlocal scraped
            scraped = scrape(url)
            return any(
                labels.get("container_id") == burner_id and value > 0
                for labels, value in samples(scraped, "container_cpu_usage_millicores")
            )

        wait_for(lambda: burner_shows() or not proc.alive(), 20, "the burner on /metrics", 0.1)
        proc.wait_rotations(2, timeout=30)
        pause = random.uniform(0.0, 2.0)  # within a rotation period
        print(f"SIGTERM {pause:.3f} s after the second rotation")
        time.sleep(pause)
        burner_kernel_millicores = burner_clock.millicores()
        proc.signal(signal.SIGTERM)
        started = time.monotonic()
        code = proc.wait(15)
        stop_seconds = time.monotonic() - started
    finally:
        proc.kill()
    return SigtermRun(
        real_node, out, code, proc.log, stop_seconds, scraped, burner_kernel_millicores
    )


@pytest.mark.root
def test_real_cgroups_sigterm_leaves_complete_readable_files(sigterm_run: SigtermRun) -> None:
    out, node = sigterm_run.output_dir, sigterm_run.node
    assert sigterm_run.code == 0, sigterm_run.log
    assert sigterm_run.stop_seconds < 15  # well within Kubernetes' 60 s grace period
    session = manifest(out)
    run_id = session["run_id"]
    assert session["reason"] == "signal" and session["signal"] == "SIGTERM"
    assert session["drain"] == "complete" and session["end_time"]
    assert session["host"]["observer"]["cgroup_mode"] == find_hierarchy().mode
    # Only what the daemon documents: data files and manifests, no journal, no partial file.
    assert undocumented_files(out) == []
    assert every_parquet_readable(out) > 0
    files = parquet_files(out)
    assert len(files) >= 3
    assert sigterm_run.log.count(" rotated file=") + 1 == len(files)
    assert sigterm_run.log.count(" closed file=") == 1

    rows = [r for r in read_with_every_reader(out) if r["run_id"] == run_id]
    ours = {node.burner.container_id, node.holder.container_id}
    # Another sandbox may share the machine: only our containers and finemon's own series.
    check_complete_slices(
        rows, lambda r: r["container_id"] in ours or r["metric_name"].startswith("finemon.")
    )
    assert check_files_follow_each_other(out, run_id) == len(files)

    cpu = [
        r["value_float"]
        for r in rows_of_container(rows, node.burner, "container.cpu.usage_millicores", run_id)
    ]
    assert len(cpu) >= 10
    # About 1000 on an idle machine; the band follows the kernel's accounting, because other
    # CPU burners (tests and benchmarks beside this one) can leave the burner less than a core.
    kernel = sigterm_run.burner_kernel_millicores
    assert kernel > 300, "the burner did not burn"
    assert 0.8 * kernel <= statistics.median(cpu) <= 1.2 * kernel, (kernel, cpu)
    assert 800 <= statistics.median(cpu) <= 1200 or kernel < 900, (kernel, cpu)
    pss = [
        r["value_float"] or r["value_int"]
        for r in rows_of_container(rows, node.holder, "container.memory.pss_bytes", run_id)
    ]
    assert pss and min(pss) >= HELD_BYTES, pss

    # Ids from the cgroup path, names from the log files.
    for container, qos in ((node.burner, "Burstable"), (node.holder, "BestEffort")):
        labelled = {
            tuple(r[c] for c in LABEL_COLUMNS)
            for r in rows
            if r["container_id"] == container.container_id
            and r["metric_name"].startswith("container.")
        }
        assert labelled == {
            (
                CLUSTER,
                NODE,
                container.namespace,
                container.pod,
                container.pod_uid,
                container.container_id,
                container.name,
                qos,
            )
        }


def indexed_files(out: Path) -> dict[str, dict[str, Any]]:
    """The entries of every partition's index file (``_index/<folder>/_files.json``), by the
    data file's path relative to ``out``."""
    found: dict[str, dict[str, Any]] = {}
    for index in (out / INDEX_DIR).rglob(INDEX_FILE):
        document = json.loads(index.read_bytes())
        for name, entry in document["files"].items():
            entry["keys"] = document["keysets"][entry["keys"]]
            entry["metrics"] = document["metricsets"][entry["metrics"]]
            found[f"{document['folder']}/{name}"] = entry
    return found


def check_index_is_complete(out: Path, containers: set[str]) -> None:
    """The index lists every data file, as it is now, with its summary (rows, time range,
    ``containers`` among its containers); a reader opening the dataset reads no footer."""
    files = {p.relative_to(out).as_posix(): p.stat() for p in parquet_files(out)}
    entries = indexed_files(out)
    assert set(entries) == set(files)
    for path, entry in entries.items():
        assert (entry["size"], entry["mtime"]) == (files[path].st_size, files[path].st_mtime_ns)
        assert entry["rows"] == pq.read_metadata(out / path).num_rows > 0
        assert entry["first_ms"] <= entry["last_ms"]
        assert entry["runs"] and entry["metrics"] and not entry["scanned"]
        assert containers <= set(entry["keys"]), path
    index = open_local_index(out)
    assert index.stats.footers_read == 0 and not index.stats.rebuilt, index.stats
    assert index.stats.kept == len({PurePosixPath(p).parent for p in files})
    assert index.summary is not None
    assert index.summary["rows"] == sum(e["rows"] for e in entries.values())


@pytest.mark.root
def test_real_cgroups_the_daemon_keeps_the_index_so_readers_read_no_footer(
    sigterm_run: SigtermRun,
) -> None:
    out, node = sigterm_run.output_dir, sigterm_run.node
    assert sigterm_run.code == 0, sigterm_run.log
    assert len(parquet_files(out)) >= 3
    # Every rotation (and the last file's close) added its file; the cost is in the log line.
    line = r" (?:rotated|closed) file=\S+ .* index=(\w+) index_ms=[\d.]+"
    lines = re.findall(line, sigterm_run.log)
    assert len(lines) == len(parquet_files(out))
    assert set(lines) == {"added"}, sigterm_run.log
    assert manifest(out)["stats"]["index_skips"] == 0
    check_index_is_complete(out, {node.burner.container_id, node.holder.container_id})


@pytest.mark.root
def test_real_cgroups_a_sigkill_between_publishing_and_indexing_is_repaired(
    real_node: RealNode, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    ours = {real_node.burner.container_id, real_node.holder.container_id}
    # Killed at its second rotation: the second file renamed into its partition, not indexed.
    proc = Finemon(
        out,
        *REAL,
        "--log-root",
        str(real_node.log_root),
        observer="killing_observer:at_second_rotation",
    )
    assert proc.wait(30) == -signal.SIGKILL, proc.log
    published = {p.relative_to(out).as_posix() for p in parquet_files(out)}
    assert len(published) == 2, proc.log
    indexed = set(indexed_files(out))
    assert len(indexed) == 1 and indexed < published  # the second file is not in the index

    # The next run's first rotation adds it (and the file recovered from the journal) before
    # its own: the index is whole again, with no reader in between.
    code, log = run_real(out, *REAL, "--log-root", str(real_node.log_root), "--duration", "3")
    assert code == 0, log
    assert "recovered file=" in log, log
    assert manifest(out)["stats"]["index_skips"] == 0, log
    check_index_is_complete(out, ours)


@pytest.mark.root
def test_real_cgroups_prometheus_serves_the_live_values(sigterm_run: SigtermRun) -> None:
    node = sigterm_run.node
    burner = [
        (labels, value)
        for labels, value in samples(sigterm_run.scraped, "container_cpu_usage_millicores")
        if labels.get("container_id") == node.burner.container_id
    ]
    assert len(burner) == 1, sigterm_run.scraped[:2000]
    labels, value = burner[0]
    # > 500 on an idle machine (the kernel then accounts about 1000).
    assert value > 0.5 * sigterm_run.burner_kernel_millicores, sigterm_run.burner_kernel_millicores
    assert labels["container_name"] == "burner"
    assert labels["pod_name"] == "cpu-pod" and labels["namespace"] == "default"
    assert labels["node_name"] == NODE and labels["qos_class"] == "Burstable"
    assert labels["cluster_name"] == CLUSTER  # a global label: on the live view too
    held = [
        value
        for labels, value in samples(sigterm_run.scraped, "container_memory_pss_bytes")
        if labels.get("container_id") == node.holder.container_id
    ]
    assert held == [] or held[0] >= HELD_BYTES  # PSS is read once a second


@pytest.mark.root
def test_real_cgroups_prometheus_serves_the_default_series_set(sigterm_run: SigtermRun) -> None:
    """The default set: each container's headline series (at most 30), none of its processes'
    nor a raw cgroup key; valid for prometheus_client's parser."""
    node = sigterm_run.node
    per_container: collections.Counter[str] = collections.Counter()
    for family in text_string_to_metric_families(sigterm_run.scraped):
        for sample in family.samples:
            assert "pid" not in sample.labels, sample
            assert not sample.name.startswith(("process_", "cgroup_", "proc_")), sample
            if sample.labels.get("container_id"):
                per_container[sample.labels["container_id"]] += 1
    for container in (node.burner, node.holder):
        assert 15 <= per_container[container.container_id] <= 30, per_container
    assert max(per_container.values()) <= 30


@pytest.mark.root
def test_real_cgroups_sigkill_then_restart_recovers_and_loses_nothing(
    sigterm_run: SigtermRun,
) -> None:
    out, node = sigterm_run.output_dir, sigterm_run.node
    first_run = manifest(out)["run_id"]
    before = snapshot(out)

    # A second run in the same directory, killed mid-way.
    proc = RealFinemon(out, *REAL, "--log-root", str(node.log_root))
    try:
        proc.wait_rotations(1, timeout=30)
        time.sleep(random.uniform(0.3, 1.5))
        published = snapshot(out)
        killed_at = time.time()
        proc.process.kill()
        proc.wait()
    finally:
        proc.kill()
    killed = manifest(out)
    assert killed["run_id"] != first_run and killed["end_time"] is None
    every_parquet_readable(out)
    journals = [p for p in hidden_leftovers(out) if p.name.endswith(".journal")]
    assert journals, "the file in progress left its journal"

    # A third run recovers it before recording.
    code, log = run_real(out, *REAL, "--log-root", str(node.log_root), "--duration", "1")
    assert code == 0, log
    assert "recovered file=" in log, log
    assert undocumented_files(out) == []
    every_parquet_readable(out)
    third = manifest(out)
    assert third["run_id"] not in (first_run, killed["run_id"])
    assert sorted(r["path"] for r in third["recovered"]) == sorted(
        str(j.with_name(j.name[1 : -len(".journal")])) for j in journals
    )
    # Nothing finalized was lost or changed: the first run's files, the killed run's
    # published files.
    after = snapshot(out)
    assert {p: after.get(p) for p in published} == published
    assert {p: after.get(p) for p in before} == before

    # The killed run: every tick from its first to just before the kill, none twice.
    rows = read_with_every_reader(out)
    ours = {node.burner.container_id, node.holder.container_id}
    check_complete_slices(
        rows,
        lambda r: (
            r["run_id"] == killed["run_id"]
            and (r["container_id"] in ours or r["metric_name"].startswith("finemon."))
        ),
    )
    killed_rows = [r for r in rows if r["run_id"] == killed["run_id"]]
    assert min(r["fetch_index"] for r in killed_rows) == 0
    last_time = max(r["time"] for r in killed_rows).timestamp()
    assert last_time >= killed_at - 1.0
    assert manifest(out, killed["run_id"]) == killed
    assert check_files_follow_each_other(out, killed["run_id"]) >= 2


@pytest.mark.root
def test_real_cgroups_size_limit_holds_across_a_restart(
    real_node: RealNode, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    limit = 50_000
    args = (*FAST, "--log-root", str(real_node.log_root), "--size-limit", str(limit))
    proc = RealFinemon(out, *args)
    highest = largest_journal = 0

    def stopped() -> bool:
        nonlocal highest, largest_journal
        sizes = {}
        for path in finemon_files(out):
            try:
                sizes[path] = path.stat().st_size
            except FileNotFoundError:  # published or deleted since the listing
                pass
        highest = max(highest, sum(sizes.values()))
        journals = [size for p, size in sizes.items() if p.name.endswith(".journal")]
        largest_journal = max([largest_journal, *journals])
        return (out / "_session.json").exists() and manifest(out).get("reason") == "size_limit"

    try:
        wait_for(lambda: stopped() or not proc.alive(), 25, "the size limit")
        time.sleep(0.5)
        assert proc.alive(), proc.log  # idle, not exited
        assert undocumented_files(out) == []
        every_parquet_readable(out)
        # The last file, and the index written after it.
        largest_file = max(p.stat().st_size for p in parquet_files(out)) + index_bytes(out)
        assert used_bytes(out) <= limit + largest_file
        # While running, the limit is checked once a tick, and a file is published before its
        # journal is deleted: for a moment the total may exceed the limit by a file plus the
        # journal written since the last check.
        assert highest <= limit + largest_file + largest_journal, (highest, largest_journal)
        data = {p: p.stat().st_size for p in out.rglob("*.parquet")}
        time.sleep(0.5)
        assert {p: p.stat().st_size for p in out.rglob("*.parquet")} == data  # idle
        proc.signal(signal.SIGTERM)
        assert proc.wait(10) == 0, proc.log
    finally:
        proc.kill()
    first = manifest(out)
    assert first["reason"] == "size_limit" and first["exit_reason"] == "signal"

    # A restart with the same limit writes no data, stays up, exits 0 when told.
    again = RealFinemon(out, *args)
    try:
        again.wait_log("not recording", timeout=30)
        time.sleep(1.0)
        assert again.alive(), again.log
        again.signal(signal.SIGTERM)
        assert again.wait(10) == 0, again.log
    finally:
        again.kill()
    assert {p: p.stat().st_size for p in out.rglob("*.parquet")} == data
    assert undocumented_files(out) == []
    total = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    assert total == used_bytes(out) <= limit + largest_file
    # The idle restart recorded nothing and wrote no manifest: the last run's stays.
    assert json.loads((out / "_session.json").read_text()) == first
