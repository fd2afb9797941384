"""NodeObserver against the real kernel: real cgroups in kubelet's layout, real workloads."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import capture
from capture.recorder import CaptureRecorder
from monitor.sandbox import KubeletSandbox, sandbox_unavailable
from observers.node import NodeObserver, ObserverConfig

HELD_BYTES = 256 * 1024 * 1024

pytestmark = pytest.mark.root


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[KubeletSandbox]:
    reason = sandbox_unavailable()
    if reason is not None:
        pytest.skip(f"cannot build real cgroups: {reason}")
    with KubeletSandbox(log_root=tmp_path / "log") as box:
        yield box
    for root in box.roots:
        assert not (root / box.prefix).exists(), "sandbox cgroups were not cleaned up"


def cpu_seconds(pid: int) -> float:
    """utime + stime of ``pid`` in seconds, from /proc/PID/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def values(recorder: CaptureRecorder, name: str) -> dict[str, float]:
    """Live values of ``name`` by container_name."""
    out: dict[str, float] = {}
    for handle in recorder.live_handles():
        labels = dict(handle.labels)
        if handle.name == name and handle.value is not None:
            out[labels.get("container_name", "?")] = float(handle.value)
    return out


def test_cpu_millicores_and_pss_of_real_workloads(sandbox: KubeletSandbox, tmp_path: Path) -> None:
    burner = sandbox.add_container("cpu-pod", "burner", [("burn", [])])
    holder = sandbox.add_container(
        "mem-pod", "holder", [("hold", [str(HELD_BYTES)])], namespace="team-a", qos="besteffort"
    )
    recorder = CaptureRecorder(global_labels={"node_name": "test-node"})
    capture.set_recorder(recorder)
    try:
        observer = NodeObserver(ObserverConfig(log_root=tmp_path / "log", node_name="test-node"))
        time.sleep(1.5)  # let the holder touch its pages
        burner_cpu = cpu_seconds(burner.pids[0])
        started = time.monotonic()
        first = observer.sample()
        time.sleep(2.0)
        report = observer.sample()
        # What the burner really got (another load on the machine may take part of its core).
        got_millicores = (
            (cpu_seconds(burner.pids[0]) - burner_cpu) / (time.monotonic() - started) * 1000
        )
        assert observer.mode == "kubernetes"
        assert report.containers >= 2 and first.containers >= 2
        millicores = values(recorder, "container.cpu.usage_millicores")
        assert abs(millicores["burner"] - got_millicores) <= 0.15 * got_millicores, millicores
        if got_millicores >= 950:  # a quiet machine: one whole core, as the issue says
            assert 900 <= millicores["burner"] <= 1100, millicores
        assert millicores["holder"] < 100
        pss = values(recorder, "container.memory.pss_bytes")
        assert abs(pss["holder"] - HELD_BYTES) <= 0.10 * HELD_BYTES, pss
        proc_pss = values(recorder, "process.memory.pss_bytes")
        assert abs(proc_pss["holder"] - HELD_BYTES) <= 0.10 * HELD_BYTES
        usage = values(recorder, "container.memory.usage_bytes")
        assert usage["holder"] >= HELD_BYTES * 0.9
        # labels: pod metadata from the log files, ids and QoS from the cgroup path
        labels = {
            dict(h.labels).get("container_name"): dict(h.labels)
            for h in recorder.live_handles()
            if h.name == "container.memory.usage_bytes"
        }
        assert labels["holder"]["namespace"] == "team-a"
        assert labels["holder"]["pod_name"] == "mem-pod"
        assert labels["holder"]["pod_uid"] == holder.pod_uid
        assert labels["holder"]["container_id"] == holder.container_id
        assert labels["holder"]["qos_class"] == "BestEffort"
        assert labels["burner"]["qos_class"] == "Burstable"
        proc_labels = [
            dict(h.labels) for h in recorder.live_handles() if h.name == "process.threads"
        ]
        burner_proc = [lab for lab in proc_labels if lab.get("pid") == str(burner.pids[0])]
        assert len(burner_proc) == 1
        assert burner_proc[0]["comm"] == Path(sys.executable).name[:15]
        assert burner_proc[0]["container_name"] == "burner"
        # a container that stops has its series ended, not repeated
        sandbox.stop_container(burner)
        observer.sample()
        assert "burner" not in values(recorder, "container.memory.usage_bytes")
        assert "burner" not in values(recorder, "process.threads")
        observer.close()
    finally:
        capture.set_recorder(None)


def labelled(recorder: CaptureRecorder, name: str, **match: str) -> float | None:
    """The live value of ``name`` whose labels include ``match``."""
    found = [
        float(h.value)
        for h in recorder.live_handles()
        if h.name == name
        and h.value is not None
        and all(dict(h.labels).get(k) == v for k, v in match.items())
    ]
    assert len(found) <= 1, (name, match, found)
    return found[0] if found else None


def vm_size_bytes(pid: int) -> int:
    """``VmSize`` of /proc/PID/status, in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmSize:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmSize for {pid}")


def test_user_system_percent_and_virtual_size_of_real_processes(
    sandbox: KubeletSandbox, tmp_path: Path
) -> None:
    """A CPU burner limited to one CPU runs in user mode: user percent near 100, system small,
    for the container and for its process; a process's virtual size is its VmSize."""
    burner = sandbox.add_container("cpu-pod", "burner", [("burn", [])])
    sleeper = sandbox.add_container("idle-pod", "sleeper", [("sleep", [])])
    dirs = sandbox.hierarchy.dirs_for(burner.relpath)
    if dirs.v2 is not None:
        (dirs.v2 / "cpu.max").write_text("100000 100000\n")
    else:
        assert dirs.cpu is not None
        (dirs.cpu / "cpu.cfs_period_us").write_text("100000\n")
        (dirs.cpu / "cpu.cfs_quota_us").write_text("100000\n")
    recorder = CaptureRecorder(global_labels={"node_name": "test-node"})
    capture.set_recorder(recorder)
    try:
        observer = NodeObserver(ObserverConfig(log_root=tmp_path / "log", node_name="test-node"))
        pid = burner.pids[0]
        burner_cpu = cpu_seconds(pid)
        started = time.monotonic()
        observer.sample()
        time.sleep(2.0)
        observer.sample()
        # What the burner really got, in percent of its one-CPU limit.
        got_percent = (cpu_seconds(pid) - burner_cpu) / (time.monotonic() - started) * 100
        assert got_percent >= 30, f"the burner hardly ran ({got_percent:.0f} %): machine too busy"
        container = {"container_name": "burner"}
        assert labelled(recorder, "container.cpu.limit_millicores", **container) == 1000
        usage = labelled(recorder, "container.cpu.usage_percent", **container)
        user = labelled(recorder, "container.cpu.user_percent", **container)
        system = labelled(recorder, "container.cpu.system_percent", **container)
        assert usage is not None and user is not None and system is not None
        assert abs(user - got_percent) <= 0.15 * got_percent, (user, got_percent)
        assert system < 10, system
        # v1 counts user and system in 10 ms ticks: over 2 s they match usage to a point or two.
        assert abs(user + system - usage) <= 3, (user, system, usage)
        if got_percent >= 95:  # a quiet machine: the whole CPU it is allowed
            assert user >= 85, user
        process = {"pid": str(pid)}
        process_usage = labelled(recorder, "process.cpu.usage_percent", **process)
        process_user = labelled(recorder, "process.cpu.user_percent", **process)
        process_system = labelled(recorder, "process.cpu.system_percent", **process)
        assert process_usage is not None and process_user is not None
        assert process_system is not None
        # The container's only process: its share of the container's limit is the container's.
        assert abs(process_usage - usage) <= 0.1 * usage, (process_usage, usage)
        assert abs(process_user - got_percent) <= 0.15 * got_percent, (process_user, got_percent)
        assert process_system < 10, process_system
        # Virtual size: /proc/PID/stat vsize is status's VmSize (kB) in bytes.
        for entry in (sleeper, burner):
            (entry_pid,) = entry.pids
            virtual = labelled(recorder, "process.memory.virtual_bytes", pid=str(entry_pid))
            assert virtual == vm_size_bytes(entry_pid), entry.name
        observer.close()
    finally:
        capture.set_recorder(None)


def bind_mount(content: bytes, target: Path, tmp_path: Path, mounted: list[Path]) -> None:
    """Hide the kernel file ``target`` of a real cgroup behind a regular file holding
    ``content`` (a bind mount, undone by the caller): what a corrupted or fake cgroup tree
    would show, in a real cgroup with real processes."""
    source = tmp_path / f"bad-{len(mounted)}-{target.name}"
    source.write_bytes(content)
    command = ["mount", "--bind", str(source), str(target)]
    done = subprocess.run(command, check=False, capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot bind-mount over a cgroup file: {done.stderr.decode().strip()}")
    mounted.append(target)


def test_real_cgroups_keep_what_the_kernel_writes_and_refuse_what_it_never_writes(
    sandbox: KubeletSandbox, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Real cgroups at the edges of their ranges (the kernel clamps cpu.shares to 2, a 1 ms CFS
    period, no memory limit) are recorded exactly; in a real cgroup whose files are hidden behind
    garbage (pids.current -7, a memory usage of 2**64+1, a cgroup.procs line "abc", a 10 MB
    memory.stat) each file is refused and counted, the container and its process kept."""
    victim = sandbox.add_container("bad-pod", "victim", [("sleep", [])])
    witness = sandbox.add_container("good-pod", "witness", [("sleep", [])])
    (victim_pid,) = victim.pids
    for entry in (victim, witness):
        dirs = sandbox.hierarchy.dirs_for(entry.relpath)
        if dirs.v2 is not None:
            (dirs.v2 / "cpu.weight").write_text("10000\n")
            (dirs.v2 / "cpu.max").write_text("max 1000\n")
        else:
            assert dirs.cpu is not None
            (dirs.cpu / "cpu.shares").write_text("1\n")  # the kernel keeps 2
            (dirs.cpu / "cpu.cfs_period_us").write_text("1000\n")
    dirs = sandbox.hierarchy.dirs_for(victim.relpath)
    memory_dir = dirs.v2 if dirs.v2 is not None else dirs.memory
    pids_dir = dirs.v2 if dirs.v2 is not None else dirs.pids
    assert memory_dir is not None and pids_dir is not None
    usage_file = "memory.current" if dirs.v2 is not None else "memory.usage_in_bytes"
    scan_dir = sandbox.hierarchy.scan_root / victim.relpath
    mounted: list[Path] = []
    recorder = CaptureRecorder(global_labels={"node_name": "test-node"})
    capture.set_recorder(recorder)
    observer: NodeObserver | None = None
    try:
        bind_mount(b"-7\n", pids_dir / "pids.current", tmp_path, mounted)
        bind_mount(b"18446744073709551617\n", memory_dir / usage_file, tmp_path, mounted)
        bind_mount(b"%d\nabc\n" % victim_pid, scan_dir / "cgroup.procs", tmp_path, mounted)
        stat = (memory_dir / "memory.stat").read_bytes()
        bind_mount(
            stat * (10_000_000 // len(stat) + 1), memory_dir / "memory.stat", tmp_path, mounted
        )
        observer = NodeObserver(ObserverConfig(log_root=tmp_path / "log", node_name="test-node"))
        with caplog.at_level("WARNING", logger="finemon.observers"):
            reports = [observer.sample() for _ in range(2)]
        for report in reports:  # the victim's four files, each tick; every other file is good
            assert report.errors_by_reason["out_of_range"] == 2, report.errors_by_reason
            assert report.errors_by_reason["malformed"] == 1, report.errors_by_reason
            assert report.errors_by_reason["too_large"] == 1, report.errors_by_reason
        victim_labels = {"container_name": "victim"}
        witness_labels = {"container_name": "witness"}
        # The victim is kept with its process; the refused files wrote nothing.
        assert labelled(recorder, "container.processes", **victim_labels) == 1
        assert labelled(recorder, "process.threads", pid=str(victim_pid)) is not None
        assert labelled(recorder, "cgroup.pids.current", **victim_labels) is None
        assert labelled(recorder, f"cgroup.{usage_file}", **victim_labels) is None
        assert labelled(recorder, "cgroup.memory.stat.anon", **victim_labels) is None
        assert labelled(recorder, "cgroup.pids.current", **witness_labels) == 1
        # What the kernel writes at the edges of its ranges is kept, exactly.
        for labels in (victim_labels, witness_labels):
            if dirs.v2 is not None:
                assert labelled(recorder, "cgroup.cpu.weight", **labels) == 10000
                assert labelled(recorder, "cgroup.cpu.max.period_usec", **labels) == 1000
            else:
                assert labelled(recorder, "cgroup.cpu.shares", **labels) == 2
                assert labelled(recorder, "cgroup.cpu.cfs_period_us", **labels) == 1000
                assert labelled(recorder, "cgroup.cpu.cfs_quota_us", **labels) == -1
                limit = int((memory_dir / "memory.limit_in_bytes").read_bytes())
                assert labelled(recorder, "cgroup.memory.limit_in_bytes", **labels) == limit
        logged = [r.getMessage() for r in caplog.records if r.getMessage().startswith("read error")]
        assert len(logged) == 4, logged  # once each, not once per tick
    finally:
        if observer is not None:
            observer.close()  # its kept descriptors would keep the mounts busy
        capture.set_recorder(None)
        for target in reversed(mounted):
            # Lazily: detached from the tree at once even if still busy, so that the sandbox
            # can remove its cgroups (a mount left on a removed cgroup's file cannot be undone).
            subprocess.run(["umount", "--lazy", str(target)], check=True)
