"""A kubelet-shaped tree of real cgroups with real workloads, for the demo, tests and benchmarks.

:class:`KubeletSandbox` creates, under a unique prefix in every cgroup hierarchy of the machine
(v2, hybrid or v1, found from ``/proc/self/mountinfo``), the systemd-driver layout kubelet makes::

    <prefix>.slice/kubepods.slice/kubepods-<qos>.slice/kubepods-<qos>-pod<uid>.slice/
        cri-containerd-<64 hex id>.scope

plus kubelet's log files (``<log_root>/pods/<ns>_<pod>_<uid>/<container>/`` and the
``containers/<pod>_<ns>_<container>-<id>.log`` links) so pod names resolve. Workloads are real
processes that move themselves into their container's cgroups before they start. Everything is
torn down by :meth:`KubeletSandbox.close` (also on SIGINT/SIGTERM through the context manager).
Needs root and writable cgroup hierarchies; :func:`sandbox_unavailable` says why not.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from observers.hierarchy import CgroupHierarchy, NoCgroupMountError, find_hierarchy

#: Workload programs (run with ``python -c``); each reads its arguments from argv.
WORKLOADS = {
    "burn": "while True:\n    pass\n",
    "hold": (
        "import sys, time\n"
        "size = int(sys.argv[1])\n"
        "block = bytearray(size)\n"
        "for i in range(0, size, 4096):\n"
        "    block[i] = 1\n"
        "while True:\n"
        "    time.sleep(3600)\n"
    ),
    "grow": (
        "import sys, time\n"
        "step, limit = int(sys.argv[1]), int(sys.argv[2])\n"
        "blocks = []\n"
        "while True:\n"
        "    if sum(len(b) for b in blocks) < limit:\n"
        "        b = bytearray(step)\n"
        "        for i in range(0, step, 4096):\n"
        "            b[i] = 1\n"
        "        blocks.append(b)\n"
        "    time.sleep(1)\n"
    ),
    "idle": "import time\nwhile True:\n    time.sleep(3600)\n",
}
#: Workloads that are a plain program rather than Python (``sleep``: an idle process of ~1 MiB).
PROGRAMS = {"sleep": ["sleep", "infinity"]}

_CONTROLLERS = ("cpu", "cpuacct", "memory", "pids", "blkio")


def sandbox_unavailable(hierarchy: CgroupHierarchy | None = None) -> str | None:
    """Why a sandbox cannot be built here (None if it can)."""
    if os.geteuid() != 0:
        return "not running as root"
    try:
        hierarchy = hierarchy or find_hierarchy()
        roots = _roots(hierarchy)
    except NoCgroupMountError as exc:
        return f"no cgroup hierarchy: {exc}"
    probe = f"finemon-probe-{os.getpid()}-{os.urandom(3).hex()}"
    for root in roots:
        try:
            (root / probe).mkdir()
            (root / probe).rmdir()
        except OSError as exc:
            return f"cannot create cgroups under {root}: {exc.strerror}"
    return None


def _roots(hierarchy: CgroupHierarchy) -> list[Path]:
    roots: list[Path] = []
    if hierarchy.unified is not None:
        roots.append(hierarchy.unified)
    for controller in _CONTROLLERS:
        mount = hierarchy.v1.get(controller)
        if mount is not None and mount not in roots:
            roots.append(mount)
    if not roots:
        raise NoCgroupMountError("no cgroup hierarchy mounted")
    return roots


@dataclass
class SandboxContainer:
    """One container of the sandbox."""

    name: str
    pod: str
    namespace: str
    pod_uid: str
    container_id: str
    qos: str
    relpath: str
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.processes]


class KubeletSandbox:
    """Builds the tree; :meth:`add_container` adds a container running workloads."""

    def __init__(
        self,
        log_root: Path | None = None,
        hierarchy: CgroupHierarchy | None = None,
        prefix: str | None = None,
    ) -> None:
        self.hierarchy = hierarchy or find_hierarchy()
        self.roots = _roots(self.hierarchy)
        self.prefix = prefix or f"finemon-sandbox-{os.getpid()}-{os.urandom(3).hex()}.slice"
        self.log_root = log_root
        self.containers: list[SandboxContainer] = []
        self._made: list[Path] = []
        self._closed = False

    def __enter__(self) -> KubeletSandbox:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _mkdir(self, relpath: str) -> None:
        for root in self.roots:
            directory = root / relpath
            if not directory.exists():
                directory.mkdir()
                self._made.append(directory)

    def add_container(
        self,
        pod: str,
        container: str,
        workloads: Sequence[tuple[str, Sequence[str]]],
        *,
        namespace: str = "default",
        qos: str = "burstable",
        pod_uid: str | None = None,
    ) -> SandboxContainer:
        """Create a container cgroup (and its pod's, once) and start ``workloads`` in it.

        ``workloads`` are (name in :data:`WORKLOADS` or :data:`PROGRAMS`, argv) pairs;
        ``qos`` is ``guaranteed``, ``burstable`` or ``besteffort``.
        """
        uid = pod_uid or str(uuid.uuid4())
        container_id = os.urandom(32).hex()
        underscored = uid.replace("-", "_")
        if qos == "guaranteed":
            parts = ["kubepods.slice", f"kubepods-pod{underscored}.slice"]
        else:
            parts = [
                "kubepods.slice",
                f"kubepods-{qos}.slice",
                f"kubepods-{qos}-pod{underscored}.slice",
            ]
        parts.append(f"cri-containerd-{container_id}.scope")
        relpath = self.prefix
        self._mkdir(relpath)
        for part in parts:
            relpath = f"{relpath}/{part}"
            self._mkdir(relpath)
        entry = SandboxContainer(container, pod, namespace, uid, container_id, qos, relpath)
        if self.log_root is not None:
            self._write_logs(entry)
        for name, argv in workloads:
            entry.processes.append(self._start(relpath, name, argv))
        self.containers.append(entry)
        return entry

    def _write_logs(self, c: SandboxContainer) -> None:
        assert self.log_root is not None
        pod_dir = self.log_root / "pods" / f"{c.namespace}_{c.pod}_{c.pod_uid}" / c.name
        pod_dir.mkdir(parents=True, exist_ok=True)
        (pod_dir / "0.log").touch()
        links = self.log_root / "containers"
        links.mkdir(parents=True, exist_ok=True)
        link = links / _link_name(c)
        if not link.is_symlink():
            link.symlink_to(pod_dir / "0.log")

    def _start(self, relpath: str, workload: str, argv: Sequence[str]) -> subprocess.Popen[bytes]:
        procs_files = [str(root / relpath / "cgroup.procs") for root in self.roots]

        def enter_cgroups() -> None:  # runs in the child, before exec
            pid = str(os.getpid())
            for path in procs_files:
                with open(path, "w") as f:
                    f.write(pid)

        command = (
            [*PROGRAMS[workload], *argv]
            if workload in PROGRAMS
            else [sys.executable, "-c", WORKLOADS[workload], *argv]
        )
        return subprocess.Popen(
            command,
            preexec_fn=enter_cgroups,  # noqa: PLW1509 - single-threaded at this point
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )

    def stop_container(self, container: SandboxContainer) -> None:
        """Kill a container's processes and remove its cgroup (churn)."""
        _kill(container.processes)
        for root in self.roots:
            _rmdir(root / container.relpath, self._made)
        self.containers.remove(container)

    def close(self) -> None:
        """Kill every workload and remove every cgroup and log file made (deepest first)."""
        if self._closed:
            return
        self._closed = True
        _kill([p for c in self.containers for p in c.processes])
        for directory in sorted(self._made, key=lambda p: len(p.parts), reverse=True):
            _rmdir(directory, None)
        if self.log_root is not None:
            for c in self.containers:
                link = (
                    self.log_root
                    / "containers"
                    / f"{c.pod}_{c.namespace}_{c.name}-{c.container_id}.log"
                )
                link.unlink(missing_ok=True)
                shutil.rmtree(
                    self.log_root / "pods" / f"{c.namespace}_{c.pod}_{c.pod_uid}",
                    ignore_errors=True,
                )
        self.containers.clear()


def _link_name(c: SandboxContainer) -> str:
    return f"{c.pod}_{c.namespace}_{c.name}-{c.container_id}.log"


def _kill(processes: Sequence[subprocess.Popen[bytes]]) -> None:
    for p in processes:
        if p.poll() is None:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    for p in processes:
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass


def _rmdir(directory: Path, made: list[Path] | None) -> None:
    # A cgroup can only be removed once its last process has been reaped: retry briefly.
    for _ in range(50):
        try:
            directory.rmdir()
            break
        except FileNotFoundError:
            break
        except OSError:
            time.sleep(0.02)
    if made is not None and directory in made:
        made.remove(directory)
