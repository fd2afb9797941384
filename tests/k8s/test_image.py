"""The container image, built for real and run the way ``k8s/daemonset.yaml`` runs it.

``k8s/build-image.sh`` builds the Dockerfile with podman from a Debian root filesystem made
with mmdebstrap (no registry is pulled from). The DaemonSet's container is then started from
it with ``podman run`` options read from the manifest (``podman_pod``: command, args and env,
``hostPID``, the host's ``/sys/fs/cgroup`` and ``/proc``, a kubelet-shaped ``/var/log``, a data
directory, the securityContext and the memory limit), on real cgroups holding real processes
(``monitor.sandbox``: a CPU burner and a process holding 64 MiB). Only the rotation is
shortened, by flags appended to the DaemonSet's args (the last of a repeated flag wins), so that
a few files are published in seconds. It is stopped as the kubelet stops it: SIGTERM, then
SIGKILL after ``terminationGracePeriodSeconds``.

Needs root, writable cgroups and Debian's podman, runc and mmdebstrap (``.ci/run`` installs
them); a first build also needs the Debian mirror and PyPI.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from podman_pod import PodInputs, capability_names, podman_run_command, quantity_bytes

from common.contract import LABEL_COLUMNS
from common.version import __version__
from monitor.sandbox import KubeletSandbox, SandboxContainer, sandbox_unavailable
from observers.hierarchy import find_hierarchy

# The dataset checks of the end-to-end tests live beside them; this is the one place that
# makes them importable from here.
MONITOR_TESTS = Path(__file__).resolve().parents[1] / "monitor"
if str(MONITOR_TESTS) not in sys.path:
    sys.path.append(str(MONITOR_TESTS))

from e2e_nodes import (  # noqa: E402
    check_complete_slices,
    check_files_follow_each_other,
    every_parquet_readable,
    undocumented_files,
)
from finemon_process import hidden_leftovers, manifest, parquet_files, read_all, wait_for  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.root]

REPO = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = REPO / "k8s" / "build-image.sh"
CONTAINERS_CONF = REPO / "k8s" / "podman" / "containers.conf"
DAEMONSET = REPO / "k8s" / "daemonset.yaml"
KUSTOMIZATION = REPO / "k8s" / "kustomization.yaml"

MIB = 1024 * 1024
HELD_BYTES = 64 * MIB
NODE = "image-test-node"
POD = "finemon-x7k2p"
#: Appended to the DaemonSet's args: a new file every 5 s instead of every 90 s (the window
#: must stay below the rotation); the interval, flush and everything else are the DaemonSet's.
SHORT_ROTATION = ("--rotation-seconds", "5", "--window-seconds", "2")
ROTATIONS = 3
#: The image today is about 417 MB (k8s/README.md); far more means something unintended
#: (a build tool, a cache, every extra) made it in.
MAX_IMAGE_BYTES = 500_000_000


def podman_unavailable() -> str | None:
    """Why the image cannot be built and run here (None if it can)."""
    missing = [tool for tool in ("podman", "runc", "mmdebstrap") if shutil.which(tool) is None]
    if missing:
        return f"{', '.join(missing)} not installed (apt-get install podman runc mmdebstrap)"
    reason = sandbox_unavailable()
    if reason is not None:
        return f"cannot build real cgroups: {reason}"
    info = podman("info", check=False)
    if info.returncode != 0:
        return f"podman info failed: {info.stderr.strip()[-500:]}"
    return None


def podman(
    *args: str, check: bool = True, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """``podman ARGS`` with the project's containers.conf (runc, cgroupfs, no ulimits)."""
    env = {**os.environ, "CONTAINERS_CONF": str(CONTAINERS_CONF)}
    result = subprocess.run(
        ["podman", *args], capture_output=True, text=True, env=env, timeout=timeout, check=False
    )
    if check and result.returncode != 0:
        raise AssertionError(f"podman {' '.join(args)}: {result.returncode}\n{result.stderr}")
    return result


def load_yaml(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(path.read_text())
    return data


def config_map_values() -> dict[tuple[str, str], str]:
    """The kustomization's generated ConfigMaps' literals, by (name, key)."""
    values = {}
    for generator in load_yaml(KUSTOMIZATION).get("configMapGenerator", []):
        for literal in generator.get("literals", []):
            key, _, value = literal.partition("=")
            values[(generator["name"], key)] = value
    return values


@dataclass(frozen=True)
class Image:
    tag: str
    size_bytes: int


@pytest.fixture(scope="module")
def image() -> Iterator[Image]:
    reason = podman_unavailable()
    if reason is not None:
        pytest.skip(reason)
    # A tag of its own: a build beside this one (another checkout's test) cannot replace it.
    tag = f"localhost/finemon-test:{__version__}-{uuid.uuid4().hex[:8]}"
    started = time.monotonic()
    build = subprocess.run(
        ["bash", str(BUILD_SCRIPT), tag],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
        env={**os.environ, "CONTAINERS_CONF": str(CONTAINERS_CONF)},
    )
    build_seconds = time.monotonic() - started
    assert build.returncode == 0, f"{build.stdout[-3000:]}\n{build.stderr[-3000:]}"
    size = int(podman("image", "inspect", "--format", "{{.Size}}", tag).stdout)
    print(f"built {tag} in {build_seconds:.0f} s: {size / 1e6:.0f} MB")
    try:
        yield Image(tag, size)
    finally:
        podman("rmi", "--force", tag, check=False)


#: Run inside the image: what a leftover of the build would show.
INVENTORY = """
import glob, json, os, shutil, subprocess
site = glob.glob("/opt/finemon/lib/python3*/site-packages")[0]
print(json.dumps({
    "finemon": shutil.which("finemon"),
    "version": subprocess.run(["finemon", "--version"], capture_output=True, text=True).stdout,
    "tools": [t for t in ("pip", "pip3", "gcc", "cc", "make", "git") if shutil.which(t)],
    "root": os.listdir("/root"),
    "tmp": os.listdir("/tmp"),
    "opt": os.listdir("/opt"),
    "pyarrow": os.listdir(os.path.join(site, "pyarrow")),
    "numpy": os.listdir(os.path.join(site, "numpy", "_core")),
}))
"""


def test_image_holds_finemon_and_no_build_leftovers(image: Image) -> None:
    assert image.size_bytes < MAX_IMAGE_BYTES, image.size_bytes
    found = json.loads(
        podman(
            "run",
            "--rm",
            "--network",
            "none",
            "--entrypoint",
            "python3",
            image.tag,
            "-c",
            INVENTORY,
        ).stdout
    )
    assert found["finemon"] == "/opt/finemon/bin/finemon"
    assert found["version"].split() == ["finemon", __version__]
    # No pip or build tool, no cache in /root (the base's dot files only), nothing in /tmp,
    # only the virtual environment in /opt, and the dependencies without their test suites
    # and C headers.
    assert found["tools"] == [] and found["tmp"] == []
    assert set(found["root"]) <= {".bashrc", ".profile"}, found["root"]
    assert found["opt"] == ["finemon"]
    assert "parquet" in " ".join(found["pyarrow"])
    assert not {"tests", "include"} & {*found["pyarrow"], *found["numpy"]}


# ------------------------------------------------------------------------------------------
# the DaemonSet's container on real cgroups
# ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Node:
    sandbox: KubeletSandbox
    burner: SandboxContainer
    holder: SandboxContainer
    log_root: Path


def pss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1]) * 1024
    return 0


def cpu_seconds(pid: int) -> float:
    """A process's CPU time as the kernel accounts it (``/proc/PID/stat``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@pytest.fixture(scope="module")
def node(image: Image, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    log_root = tmp_path_factory.mktemp("image-node") / "var-log"
    with KubeletSandbox(log_root=log_root) as box:
        burner = box.add_container("cpu-pod", "burner", [("burn", [])])
        holder = box.add_container(
            "mem-pod", "holder", [("hold", [str(HELD_BYTES)])], namespace="team-a", qos="besteffort"
        )
        wait_for(lambda: pss_bytes(holder.pids[0]) >= HELD_BYTES, 30, "the holder's pages")
        yield Node(box, burner, holder, log_root)


@dataclass(frozen=True)
class Run:
    node: Node
    data_dir: Path
    pod: dict[str, Any]
    container: dict[str, Any]
    #: /proc/PID/status of the container's process, read from the host while it ran.
    status: dict[str, str]
    root_mount_options: set[str]
    memory_limit_bytes: int
    ready_seconds: float
    liveness_ok: bool
    stop_seconds: float
    exit_code: int
    oom_killed: bool
    log: str
    burner_kernel_millicores: float


def probe(name: str, container: dict[str, Any], kind: str) -> bool:
    """One HTTP probe of the container's ``kind`` (``readinessProbe``), run inside its network
    namespace as the kubelet runs it against the pod's IP."""
    spec = container[kind]
    get = spec["httpGet"]
    ports = {p["name"]: p["containerPort"] for p in container.get("ports", [])}
    port = ports.get(get["port"], get["port"])
    url = f"http://127.0.0.1:{port}{get['path']}"
    code = (
        "import sys, urllib.request\n"
        "with urllib.request.urlopen(sys.argv[1], timeout=float(sys.argv[2])) as r:\n"
        "    sys.exit(0 if 200 <= r.status < 400 else 1)\n"
    )
    timeout = str(spec.get("timeoutSeconds", 1))
    return podman("exec", name, "python3", "-c", code, url, timeout, check=False).returncode == 0


def status_fields(pid: int) -> dict[str, str]:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        fields[key] = value.strip()
    return fields


def root_mount_options(pid: int) -> set[str]:
    for line in Path(f"/proc/{pid}/mountinfo").read_text().splitlines():
        fields = line.split()
        if fields[4] == "/":
            return set(fields[5].split(","))
    raise AssertionError(f"no / in /proc/{pid}/mountinfo")


def memory_limit_bytes(pid: int) -> int:
    hierarchy = find_hierarchy()
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if "memory" in controllers.split(","):
            mount = hierarchy.v1["memory"]
            return int((mount / path.lstrip("/") / "memory.limit_in_bytes").read_text())
        if controllers == "" and hierarchy.mode == "v2" and hierarchy.unified is not None:
            text = (hierarchy.unified / path.lstrip("/") / "memory.max").read_text().strip()
            return -1 if text == "max" else int(text)
    raise AssertionError(f"no memory cgroup in /proc/{pid}/cgroup")


@pytest.fixture(scope="module")
def run(image: Image, node: Node, tmp_path_factory: pytest.TempPathFactory) -> Run:
    daemonset = load_yaml(DAEMONSET)
    pod = daemonset["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    data_dir = tmp_path_factory.mktemp("image-run") / "var-lib-finemon"
    inputs = PodInputs(
        field_values={
            "metadata.name": POD,
            "metadata.namespace": daemonset["metadata"]["namespace"],
            "spec.nodeName": NODE,
        },
        config_map_values=config_map_values(),
        host_paths={
            "/sys/fs/cgroup": Path("/sys/fs/cgroup"),
            "/proc": Path("/proc"),
            "/var/log/pods": node.log_root / "pods",
            "/var/log/containers": node.log_root / "containers",
            "/var/lib/finemon": data_dir,
        },
    )
    name = f"finemon-image-test-{uuid.uuid4().hex[:8]}"
    command = podman_run_command(
        pod, container, image.tag, inputs, name=name, extra_args=SHORT_ROTATION
    )
    print(" ".join(command))
    grace_seconds = int(pod["terminationGracePeriodSeconds"])
    readiness = container["readinessProbe"]
    ready_deadline = readiness.get("initialDelaySeconds", 0) + readiness.get(
        "periodSeconds", 10
    ) * readiness.get("failureThreshold", 3)
    podman(*command[1:])
    try:
        started = time.monotonic()
        pid = int(podman("inspect", "--format", "{{.State.Pid}}", name).stdout)
        status = status_fields(pid)
        mount_options = root_mount_options(pid)
        limit = memory_limit_bytes(pid)
        wait_for(lambda: probe(name, container, "readinessProbe"), ready_deadline, "ready", 1)
        ready_seconds = time.monotonic() - started
        burner_cpu_start, burner_wall_start = cpu_seconds(node.burner.pids[0]), time.monotonic()

        def rotations() -> int:
            logs = podman("logs", name)
            return (logs.stdout + logs.stderr).count(" rotated file=")

        wait_for(lambda: rotations() >= ROTATIONS, 60, f"{ROTATIONS} rotations", 0.5)
        liveness_ok = probe(name, container, "livenessProbe")
        burner_kernel_millicores = (
            (cpu_seconds(node.burner.pids[0]) - burner_cpu_start)
            / (time.monotonic() - burner_wall_start)
            * 1000.0
        )
        stopping = time.monotonic()
        # The kubelet's stop: SIGTERM (the image sets no STOPSIGNAL), SIGKILL after the grace.
        podman("stop", "--time", str(grace_seconds), name, timeout=grace_seconds + 30)
        stop_seconds = time.monotonic() - stopping
        state = json.loads(podman("inspect", "--format", "{{json .State}}", name).stdout)
        logs = podman("logs", name)
        log = logs.stdout + logs.stderr
    finally:
        podman("rm", "--force", name, check=False)
    return Run(
        node,
        data_dir,
        pod,
        container,
        status,
        mount_options,
        limit,
        ready_seconds,
        liveness_ok,
        stop_seconds,
        int(state["ExitCode"]),
        bool(state["OOMKilled"]),
        log,
        burner_kernel_millicores,
    )


def test_runs_with_exactly_what_the_security_context_grants(run: Run) -> None:
    context = run.container["securityContext"]
    uid, gid = str(context["runAsUser"]), str(context["runAsGroup"])
    assert run.status["Uid"].split() == [uid] * 4 and run.status["Gid"].split() == [gid] * 4
    granted = set(context["capabilities"]["add"])
    # drop: ALL, then add: the effective, permitted and bounding sets hold these and no more.
    assert context["capabilities"]["drop"] == ["ALL"]
    for field in ("CapEff", "CapPrm", "CapBnd"):
        assert capability_names(run.status[field]) == granted, (field, run.status[field])
    assert capability_names(run.status["CapAmb"]) == set()
    assert run.status["NoNewPrivs"] == "1"  # allowPrivilegeEscalation: false
    assert run.status["Seccomp"] == "2"  # seccompProfile: RuntimeDefault (a filter)
    assert "ro" in run.root_mount_options  # readOnlyRootFilesystem
    limits = run.container["resources"]["limits"]
    assert run.memory_limit_bytes == quantity_bytes(limits["memory"])
    # hostPID: finemon is not PID 1 of a namespace of its own.
    assert run.status["NSpid"].split()[0] != "1"
    assert not run.oom_killed, run.log


def test_ready_then_sigterm_finalizes_within_the_grace_period(run: Run) -> None:
    grace_seconds = int(run.pod["terminationGracePeriodSeconds"])
    print(f"ready after {run.ready_seconds:.1f} s, stopped in {run.stop_seconds:.1f} s")
    assert run.liveness_ok
    assert run.exit_code == 0, run.log
    # podman stop SIGKILLs at the grace period; a clean exit well before it.
    assert run.stop_seconds < grace_seconds / 2, run.stop_seconds
    assert "stopping reason=signal" in run.log and run.log.count(" closed file=") == 1, run.log
    session = manifest(run.data_dir)
    assert session["reason"] == "signal" and session["signal"] == "SIGTERM"
    assert session["drain"] == "complete" and session["end_time"]
    assert session["host"]["observer"]["cgroup_mode"] == find_hierarchy().mode
    # Only what the daemon documents: data files and manifests, no journal, no partial file.
    assert hidden_leftovers(run.data_dir) == []
    assert undocumented_files(run.data_dir) == []


def test_records_the_containers_cgroups_and_their_processes(run: Run) -> None:
    node, data_dir = run.node, run.data_dir
    files = parquet_files(data_dir)
    assert len(files) >= ROTATIONS + 1, files
    assert every_parquet_readable(data_dir) > 0
    # The partition is the pod's name ($(POD_NAME) expanded into --identifier).
    assert {path.parent.name for path in files} == {f"identifier={POD}"}
    run_id = manifest(data_dir)["run_id"]
    rows = [r for r in read_all(data_dir).to_pylist() if r["run_id"] == run_id]
    ours = {node.burner.container_id, node.holder.container_id}
    # Other cgroups of the machine are recorded too: check only ours and finemon's own.
    check_complete_slices(
        rows, lambda r: r["container_id"] in ours or r["metric_name"].startswith("finemon.")
    )
    assert check_files_follow_each_other(data_dir, run_id) == len(files)

    def values(container: SandboxContainer, metric: str, pid: int | None = None) -> list[float]:
        return [
            r["value_float"] if r["value_float"] is not None else r["value_int"]
            for r in rows
            if r["metric_name"] == metric
            and r["container_id"] == container.container_id
            and (pid is None or dict(r["labels"]).get("pid") == str(pid))
        ]

    cpu = values(node.burner, "container.cpu.usage_millicores")
    assert len(cpu) >= 10
    # About 1000 on an idle machine; the band follows the kernel's accounting, because other
    # CPU burners beside this test can leave the burner less than a core.
    kernel = run.burner_kernel_millicores
    assert kernel > 300, "the burner did not burn"
    assert 0.8 * kernel <= statistics.median(cpu) <= 1.2 * kernel, (kernel, cpu)
    assert 800 <= statistics.median(cpu) <= 1200 or kernel < 900, (kernel, cpu)

    usage = values(node.holder, "container.memory.usage_bytes")
    assert usage and min(usage) >= HELD_BYTES and max(usage) <= HELD_BYTES + 32 * MIB, usage
    pss = values(node.holder, "container.memory.pss_bytes")
    assert pss and min(pss) >= HELD_BYTES, f"PSS: {pss}"

    # Per-process PSS from /proc/PID/smaps_rollup, which only CAP_SYS_PTRACE opens for these
    # processes (they run as root with every capability): what the DaemonSet grants suffices.
    for container in (node.burner, node.holder):
        for pid in container.pids:
            pss = values(container, "process.memory.pss_bytes", pid)
            assert len(pss) >= 10 and min(pss) > 0, (container.name, pid, pss)
    held = values(node.holder, "process.memory.pss_bytes", node.holder.pids[0])
    assert min(held) >= HELD_BYTES, held

    # Ids from the cgroup path, names from the log files' names (their targets, absolute host
    # paths, do not resolve in the container), cluster and node from the downward API.
    cluster = config_map_values()[("finemon-cluster", "CLUSTER_NAME")]
    for container, qos in ((node.burner, "Burstable"), (node.holder, "BestEffort")):
        labelled = {
            tuple(r[c] for c in LABEL_COLUMNS)
            for r in rows
            if r["container_id"] == container.container_id
            and r["metric_name"].startswith("container.")
        }
        assert labelled == {
            (
                cluster,
                NODE,
                container.namespace,
                container.pod,
                container.pod_uid,
                container.container_id,
                container.name,
                qos,
            )
        }
