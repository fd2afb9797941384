"""Kubelet-shaped cgroup trees for discovery tests, in the kernel's real formats.

A :class:`CgroupFixture` is a fake ``/sys/fs/cgroup`` plus a fake ``/proc`` under a temporary
directory: a v2 root (``cgroup.controllers`` in every directory), a v1 root (one directory
per controller, ``cpu`` and ``cpuacct`` symlinked to ``cpu,cpuacct`` as distributions do), or
hybrid (v1 plus ``unified/``). Every cgroup directory has ``cgroup.procs`` with one pid per
line and a trailing newline (empty when the cgroup has no processes), in every hierarchy, and
every pid has ``<proc>/<pid>/comm``.

The layout functions build the trees kubelet and the runtimes produce and return what
discovery must find (:class:`Expected`) and what it must skip.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

Mode = Literal["v2", "v1", "hybrid"]
Driver = Literal["systemd", "cgroupfs"]
# How the runtime names a container cgroup: systemd scope prefixes, or the cgroupfs forms.
RuntimePrefix = Literal["cri-containerd", "crio", "docker", "bare"]

V2_ROOT_CONTROLLERS = "cpuset cpu io memory hugetlb pids rdma misc\n"
V1_HIERARCHIES = ("cpu,cpuacct", "cpuset", "memory", "devices", "freezer", "blkio", "pids")
V1_SYMLINKS = {"cpu": "cpu,cpuacct", "cpuacct": "cpu,cpuacct"}

RUNTIME_NAMES = {"cri-containerd": "containerd", "crio": "crio", "docker": "docker", "bare": None}


def container_id(label: str) -> str:
    """A real-looking 64-hex container id, stable for a label."""
    return hashlib.sha256(label.encode()).hexdigest()


def pod_uid(label: str) -> str:
    """A real-looking (version 4) pod UID, stable for a label."""
    return str(uuid.UUID(hashlib.md5(label.encode()).hexdigest(), version=4))


@dataclass(frozen=True)
class Expected:
    container_id: str | None
    pod_uid: str | None
    qos_class: str | None
    runtime: str | None
    relpath: str
    pids: tuple[int, ...]


@dataclass
class CgroupFixture:
    base: Path
    mode: Mode
    next_pid: int = 1000
    root: Path = field(init=False)
    proc_root: Path = field(init=False)

    def __post_init__(self) -> None:
        self.root = self.base / "cgroup"
        self.proc_root = self.base / "proc"
        self.root.mkdir(parents=True)
        self.proc_root.mkdir(parents=True, exist_ok=True)
        if self.mode == "v2":
            (self.root / "cgroup.controllers").write_text(V2_ROOT_CONTROLLERS)
            (self.root / "cgroup.procs").write_text("1\n")
            return
        for name in (*V1_HIERARCHIES, "systemd"):
            (self.root / name).mkdir()
            (self.root / name / "cgroup.procs").write_text("1\n")
        for link, target in V1_SYMLINKS.items():
            (self.root / link).symlink_to(target)
        if self.mode == "hybrid":
            (self.root / "unified").mkdir()
            # Hybrid: every controller is bound to v1, so the unified root offers none.
            (self.root / "unified" / "cgroup.controllers").write_text("")
            (self.root / "unified" / "cgroup.procs").write_text("1\n")

    @property
    def hierarchies(self) -> tuple[Path, ...]:
        """The mount points a cgroup is created in (each real directory once)."""
        if self.mode == "v2":
            return (self.root,)
        roots = tuple(self.root / name for name in (*V1_HIERARCHIES, "systemd"))
        return (*roots, self.root / "unified") if self.mode == "hybrid" else roots

    def pids(self, count: int, comm: str = "app") -> tuple[int, ...]:
        """Allocate ``count`` fresh pids whose ``comm`` is ``comm``."""
        allocated = tuple(range(self.next_pid, self.next_pid + count))
        self.next_pid += count
        for pid in allocated:
            (self.proc_root / str(pid)).mkdir()
            (self.proc_root / str(pid) / "comm").write_text(f"{comm}\n")
        return allocated

    def cgroup(self, relpath: str, pids: Iterable[int] = ()) -> None:
        """Create ``relpath`` (and missing parents) in every hierarchy, holding ``pids``."""
        procs = "".join(f"{pid}\n" for pid in pids)
        for hierarchy in self.hierarchies:
            directory = hierarchy
            for part in relpath.split("/"):
                directory = directory / part
                if not directory.exists():
                    directory.mkdir()
                    (directory / "cgroup.procs").write_text("")
                    if self.mode == "v2" or hierarchy.name == "unified":
                        (directory / "cgroup.controllers").write_text("")
            (directory / "cgroup.procs").write_text(procs)


@dataclass
class Layout:
    fixture: CgroupFixture
    expected: list[Expected] = field(default_factory=list)
    skipped: dict[str, int] = field(default_factory=dict)

    def skip(self, reason: str, count: int = 1) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + count


def _pod_relpath(driver: Driver, kubepods: str, qos: str | None, uid: str) -> str:
    if driver == "cgroupfs":
        return f"{kubepods}/pod{uid}" if qos is None else f"{kubepods}/{qos}/pod{uid}"
    # systemd: each slice's name repeats its parent's, '-' in the UID is written '_'.
    parent = kubepods.rsplit("/", 1)[-1].removesuffix(".slice")
    underscored = uid.replace("-", "_")
    if qos is None:
        return f"{kubepods}/{parent}-pod{underscored}.slice"
    return f"{kubepods}/{parent}-{qos}.slice/{parent}-{qos}-pod{underscored}.slice"


def _container_name(driver: Driver, runtime: RuntimePrefix, cid: str) -> str:
    if runtime == "bare":
        return cid
    if driver == "cgroupfs":
        return f"{runtime}-{cid}"
    return f"{runtime}-{cid}.scope"


QOS_CLASSES = {None: "Guaranteed", "burstable": "Burstable", "besteffort": "BestEffort"}


def add_pod(
    layout: Layout,
    *,
    driver: Driver,
    runtime: RuntimePrefix,
    kubepods: str,
    qos: str | None,
    label: str,
    containers: tuple[int, ...] = (1,),
    pause: bool = True,
    empty: int = 0,
) -> None:
    """One pod: a container per entry of ``containers`` (its process count), a pause sandbox,
    ``empty`` exited containers (cgroup left without processes), and, for CRI-O, a conmon scope
    beside each container."""
    fx = layout.fixture
    uid = pod_uid(label)
    pod_rel = _pod_relpath(driver, kubepods, qos, uid)
    fx.cgroup(pod_rel)
    runtime_name = RUNTIME_NAMES[runtime]

    def container(name: str, pids: tuple[int, ...]) -> str:
        cid = container_id(f"{label}/{name}")
        rel = f"{pod_rel}/{_container_name(driver, runtime, cid)}"
        fx.cgroup(rel, pids)
        if runtime == "crio" and driver == "systemd":
            fx.cgroup(f"{pod_rel}/crio-conmon-{cid}.scope", fx.pids(1, "conmon"))
            layout.skip("conmon")
        return rel

    if pause:
        container("POD", fx.pids(1, "pause"))
        layout.skip("pause")
    for index in range(empty):
        container(f"exited-{index}", ())
        layout.skip("empty")
    for index, process_count in enumerate(containers):
        pids = fx.pids(process_count)
        rel = container(f"app-{index}", pids)
        layout.expected.append(
            Expected(
                container_id=container_id(f"{label}/app-{index}"),
                pod_uid=uid,
                qos_class=QOS_CLASSES[qos],
                runtime=runtime_name,
                relpath=rel,
                pids=pids,
            )
        )


def _standard_pods(
    layout: Layout, *, driver: Driver, runtime: RuntimePrefix, kubepods: str
) -> Layout:
    """A Burstable pod with two containers (one multi-process) and an exited one, a
    BestEffort pod and a Guaranteed pod, each with its pause sandbox."""
    for qos, label, containers, empty in (
        ("burstable", "web", (3, 1), 1),
        ("besteffort", "batch", (1,), 0),
        (None, "db", (2,), 0),
    ):
        add_pod(
            layout,
            driver=driver,
            runtime=runtime,
            kubepods=kubepods,
            qos=qos,
            label=label,
            containers=containers,
            empty=empty,
        )
    return layout


def systemd_v2(base: Path, runtime: RuntimePrefix = "cri-containerd") -> Layout:
    """cgroup v2, systemd driver: kubepods.slice/kubepods-<qos>.slice/...<rt>-<id>.scope."""
    layout = Layout(CgroupFixture(base, "v2"))
    return _standard_pods(layout, driver="systemd", runtime=runtime, kubepods="kubepods.slice")


def systemd_v1(base: Path, runtime: RuntimePrefix = "docker", mode: Mode = "v1") -> Layout:
    """cgroup v1 (or hybrid), systemd driver, the same tree in every controller."""
    layout = Layout(CgroupFixture(base, mode))
    return _standard_pods(layout, driver="systemd", runtime=runtime, kubepods="kubepods.slice")


def kind_nested(base: Path) -> Layout:
    """kind's nodes: --cgroup-root=/kubelet with the systemd driver, containerd, v2."""
    layout = Layout(CgroupFixture(base, "v2"))
    return _standard_pods(
        layout,
        driver="systemd",
        runtime="cri-containerd",
        kubepods="kubelet.slice/kubelet-kubepods.slice",
    )


def cgroupfs(base: Path, mode: Mode, runtime: RuntimePrefix = "bare") -> Layout:
    """cgroupfs driver: kubepods/<qos>/pod<uid>/<id> and kubepods/pod<uid>/<id>."""
    layout = Layout(CgroupFixture(base, mode))
    return _standard_pods(layout, driver="cgroupfs", runtime=runtime, kubepods="kubepods")


def crio_v2(base: Path) -> Layout:
    """CRI-O with the systemd driver: crio-<id>.scope plus crio-conmon-<id>.scope each."""
    layout = Layout(CgroupFixture(base, "v2"))
    return _standard_pods(layout, driver="systemd", runtime="crio", kubepods="kubepods.slice")


def docker_host(base: Path, mode: Mode = "v2") -> Layout:
    """A host without kubelet: Docker and Podman containers, services, a session, a plain dir."""
    layout = Layout(CgroupFixture(base, mode))
    fx = layout.fixture

    def cgroup(rel: str, count: int, cid: str | None = None, runtime: str | None = None) -> None:
        pids = fx.pids(count)
        fx.cgroup(rel, pids)
        layout.expected.append(Expected(cid, None, None, runtime, rel, pids))

    docker_id = container_id("nginx")
    podman_id = container_id("redis")
    cgroup(f"system.slice/docker-{docker_id}.scope", 2, docker_id, "docker")
    cgroup(f"machine.slice/libpod-{podman_id}.scope", 1, podman_id, None)
    fx.cgroup(f"machine.slice/libpod-conmon-{podman_id}.scope", fx.pids(1, "conmon"))
    layout.skip("conmon")
    cgroup("system.slice/containerd.service", 3)
    cgroup("system.slice/ssh.service", 1)
    cgroup("user.slice/user-1000.slice/session-1.scope", 2)
    cgroup("batch-jobs", 1)
    # Cgroups without processes: a mount unit and the four intermediate slices.
    fx.cgroup("system.slice/var-lib-docker-overlay2-merged.mount")
    layout.skip("empty", 5)
    return layout


def many_pods(base: Path, containers: int = 500, mode: Mode = "v2") -> Layout:
    """``containers`` application containers, two per pod plus each pod's pause sandbox,
    spread over the three QoS classes (systemd driver, containerd)."""
    layout = Layout(CgroupFixture(base, mode))
    qos_cycle = ("burstable", "besteffort", None)
    for index in range(containers // 2):
        add_pod(
            layout,
            driver="systemd",
            runtime="cri-containerd",
            kubepods="kubepods.slice",
            qos=qos_cycle[index % 3],
            label=f"pod-{index}",
            containers=(1, 2),
        )
    return layout


# ------------------------------------------------------------------------------------------
# Kernel files for the trees above, for tests that sample them (NodeObserver)
# ------------------------------------------------------------------------------------------

FIXTURES = Path(__file__).parent / "fixtures"
V2_CONTAINER_FILES = FIXTURES / "cgroup_v2" / "container"
V1_CONTAINER_FILES = FIXTURES / "cgroup_v1" / "container"
PROC_FILES = FIXTURES / "proc" / "self"
PRESSURE_FILES = ("cpu.pressure", "memory.pressure", "io.pressure")

# The v1 hierarchy that holds a file, by the file's controller prefix.
_V1_FILE_HIERARCHY = {
    "cpu": "cpu,cpuacct",
    "cpuacct": "cpu,cpuacct",
    "memory": "memory",
    "blkio": "blkio",
    "pids": "pids",
}


def cgroup_file(fixture: CgroupFixture, relpath: str, name: str) -> Path:
    """Where the kernel keeps file ``name`` of the cgroup at ``relpath``: the one directory on
    v2; on v1 and hybrid the directory in the file's controller hierarchy, and on hybrid the
    ``*.pressure`` files in ``unified/``."""
    if fixture.mode == "v2":
        return fixture.root / relpath / name
    if name in PRESSURE_FILES:
        if fixture.mode != "hybrid":
            raise ValueError(f"pure cgroup v1 has no {name}")
        return fixture.root / "unified" / relpath / name
    return fixture.root / _V1_FILE_HIERARCHY[name.split(".", 1)[0]] / relpath / name


def install_cgroup_files(fixture: CgroupFixture, relpath: str) -> tuple[str, ...]:
    """Copy the real-format kernel files of ``fixtures/cgroup_v2/container`` (v2) or
    ``fixtures/cgroup_v1/container`` (v1; on hybrid also the v2 ``*.pressure`` files) into the
    cgroup at ``relpath``, leaving its ``cgroup.procs`` alone; returns the file names."""
    sources = [V2_CONTAINER_FILES] if fixture.mode == "v2" else [V1_CONTAINER_FILES]
    names: list[str] = []
    for source in sorted(p for s in sources for p in s.iterdir() if p.name != "cgroup.procs"):
        cgroup_file(fixture, relpath, source.name).write_bytes(source.read_bytes())
        names.append(source.name)
    if fixture.mode == "hybrid":
        for name in PRESSURE_FILES:
            data = (V2_CONTAINER_FILES / name).read_bytes()
            cgroup_file(fixture, relpath, name).write_bytes(data)
            names.append(name)
    return tuple(names)


def install_proc_files(
    fixture: CgroupFixture,
    pids: Iterable[int],
    names: Iterable[str] = ("stat", "status", "smaps_rollup", "smaps", "cmdline"),
) -> None:
    """Copy ``fixtures/proc/self``'s files into ``<proc>/<pid>/`` of each pid (``comm`` stays
    what :meth:`CgroupFixture.pids` wrote, so pause detection is unchanged)."""
    wanted = tuple(names)
    for pid in pids:
        for name in wanted:
            (fixture.proc_root / str(pid) / name).write_bytes((PROC_FILES / name).read_bytes())


def write_pod_logs(
    log_root: Path,
    expected: Expected,
    *,
    namespace: str,
    pod_name: str,
    container_name: str,
) -> None:
    """Kubelet's log entries for one container: ``pods/<namespace>_<pod>_<uid>/<container>/0.log``
    and the ``containers/<pod>_<namespace>_<container>-<id>.log`` symlink to it."""
    assert expected.container_id is not None and expected.pod_uid is not None
    pod_dir = log_root / "pods" / f"{namespace}_{pod_name}_{expected.pod_uid}" / container_name
    pod_dir.mkdir(parents=True, exist_ok=True)
    (pod_dir / "0.log").write_text("")
    containers = log_root / "containers"
    containers.mkdir(parents=True, exist_ok=True)
    link = containers / f"{pod_name}_{namespace}_{container_name}-{expected.container_id}.log"
    link.symlink_to(pod_dir / "0.log")


def install_kernel_files(layout: Layout) -> Layout:
    """:func:`install_cgroup_files` into every expected container of ``layout`` and
    :func:`install_proc_files` for each of its pids; returns ``layout``."""
    for expected in layout.expected:
        install_cgroup_files(layout.fixture, expected.relpath)
        install_proc_files(layout.fixture, expected.pids)
    return layout
