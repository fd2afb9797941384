"""NodeObserver against the real kernel: real cgroups in kubelet's layout, real workloads."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import capture
from capture.registry import CaptureRecorder
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
