"""Container discovery: walk the cgroup tree and find kubelet's containers.

Kubelet names pod cgroups after the QoS class and the pod UID, and the container runtime names
the container cgroup after the container id; all the layouts kubelet and the runtimes produce
(see ``pkg/kubelet/cm/cgroup_manager_linux.go`` and cAdvisor's container factories) are:

systemd cgroup driver (``.slice`` names repeat their parents' names; ``-`` in the UID is
written as ``_`` because systemd reads ``-`` as a level of the hierarchy)::

    kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod<uid_>.slice/<rt>-<id>.scope
    kubepods.slice/kubepods-pod<uid_>.slice/<rt>-<id>.scope                     (Guaranteed)
    kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-besteffort.slice/...  (kind)

with ``<rt>`` one of ``cri-containerd``, ``crio``, ``docker``; the ``kubelet-`` prefix comes
from ``--cgroup-root=/kubelet``, which kind uses.

cgroupfs driver::

    kubepods/burstable/pod<uid>/<id>        kubepods/pod<uid>/<id>   (Guaranteed)

CRI-O also creates ``crio-conmon-<id>.scope`` for its monitor process, which is not a container.
On a host without kubelet every cgroup that holds processes is reported instead.

Everything here assumes the tree moves while it is walked: a cgroup that vanishes between being
listed and being read is simply absent from the result.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal

from observers.hierarchy import CgroupDirs, CgroupHierarchy
from observers.readers.cgroup_v2 import CgroupProcs, parse_cgroup_procs
from observers.readers.errors import (
    ACCESS_DENIED,
    VANISHED,
    AccessDeniedError,
    FileTooLargeError,
    ReaderError,
    Skipped,
    VanishedError,
    oserror_outcome,
    read_file_bytes,
)
from observers.readers.procfs import parse_comm

__all__ = [
    "ContainerCgroup",
    "Discovery",
    "DiscoveryMode",
    "QosClass",
    "Runtime",
    "SKIP_REASONS",
    "container_id_from_name",
    "discover",
    "find_kubepods",
    "is_kubepods_dir",
    "pod_uid_from_name",
    "qos_from_name",
]

Runtime = Literal["containerd", "crio", "docker"]
QosClass = Literal["Guaranteed", "Burstable", "BestEffort"]
DiscoveryMode = Literal["kubernetes", "host"]

SKIP_EMPTY = "empty"
SKIP_PAUSE = "pause"
SKIP_CONMON = "conmon"
SKIP_NOT_CONTAINER = "not_container"
SKIP_VANISHED = "vanished"
SKIP_ACCESS_DENIED = "access_denied"
SKIP_UNREADABLE = "unreadable"
SKIP_REASONS = (
    SKIP_EMPTY,
    SKIP_PAUSE,
    SKIP_CONMON,
    SKIP_NOT_CONTAINER,
    SKIP_VANISHED,
    SKIP_ACCESS_DENIED,
    SKIP_UNREADABLE,
)

_CONTAINER_NAME = re.compile(r"(?:(cri-containerd|crio|docker|libpod)-)?([0-9a-f]{64})(?:\.scope)?")
_CONMON_NAME = re.compile(r"(?:crio|libpod)-conmon-[0-9a-f]{64}(?:\.scope)?")
# Pod UIDs are UUIDs, except static pods' which are a 32-hex hash (kubelet pkg/kubelet/config).
_POD_NAME = re.compile(
    r"(?:.*-)?pod([0-9a-f]{8}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{12}"
    r"|[0-9a-f]{32})(?:\.slice)?"
)
_QOS_NAME = re.compile(r"(?:(?:.*-)?kubepods-)?(burstable|besteffort)(?:\.slice)?")
_RUNTIMES: Mapping[str | None, Runtime | None] = {
    "cri-containerd": "containerd",
    "crio": "crio",
    "docker": "docker",
    "libpod": None,
    None: None,
}
_QOS_CLASSES: Mapping[str, QosClass] = {"burstable": "Burstable", "besteffort": "BestEffort"}
_PAUSE_COMM = "pause"
#: A pod cgroup whose link count did not change is listed again after this many scans anyway.
RELIST_POD_EVERY = 30
# crun (CRI-O's default on cgroup v2) may move the processes into this child of the scope.
_CRUN_LEAF = "container"


@dataclass(frozen=True, slots=True)
class ContainerCgroup:
    """One container (or, on a host without kubelet, one cgroup) that has processes.

    ``relpath`` is relative to the hierarchy root, without a leading slash, and is the
    container's identity on a host without kubelet. ``container_id`` is the runtime's full
    64-hex id when the cgroup name carries one; ``pod_uid`` is dashed; ``pids`` come from
    ``cgroup.procs`` at discovery time; ``dirs`` are the directories that existed then.
    """

    container_id: str | None
    pod_uid: str | None
    qos_class: QosClass | None
    runtime: Runtime | None
    relpath: str
    pids: tuple[int, ...]
    dirs: CgroupDirs


@dataclass(frozen=True, slots=True)
class Discovery:
    """The result of one scan.

    ``skipped`` counts the cgroups left out, by reason: ``empty`` (no processes), ``pause``
    (pod sandbox), ``conmon`` (CRI-O/Podman monitor), ``not_container`` (a directory that is
    not a pod or container where one was expected), ``vanished`` (removed during the scan),
    ``access_denied``, ``unreadable`` (``cgroup.procs`` failed with another errno).
    ``kubepods_relpaths`` are the kubepods directories found,
    ``pause_pids`` the sandboxes recognised (relpath -> pid) and ``pod_listings`` each pod
    cgroup's subdirectories with the directory's link count when they were listed and the
    scans that reused them since (absolute path -> (st_nlink, names, reuses)); pass the whole
    result as ``previous`` to the next :func:`discover` so it need not find them again.
    ``procs_skipped`` are the ``cgroup.procs`` lines that were no pid (each file's first error
    of each kind, and how many lines had it; the cgroup was kept with its other pids) and the
    ``cgroup.procs`` files longer than their cap (a FileTooLargeError; the pids within the cap
    were kept): the caller counts and logs them.
    """

    mode: DiscoveryMode
    containers: tuple[ContainerCgroup, ...]
    skipped: Mapping[str, int]
    kubepods_relpaths: tuple[str, ...] = ()
    pause_pids: Mapping[str, int] = field(default_factory=lambda: MappingProxyType({}))
    pod_listings: Mapping[str, tuple[int, tuple[str, ...], int]] = field(
        default_factory=lambda: MappingProxyType({})
    )
    procs_skipped: tuple[Skipped, ...] = ()


def container_id_from_name(name: str) -> tuple[str, Runtime | None] | None:
    """The container id and runtime a cgroup directory name denotes, or ``None``.

    ``cri-containerd-<id>.scope``, ``crio-<id>.scope``, ``docker-<id>.scope``,
    ``libpod-<id>.scope`` (runtime ``None``), ``crio-<id>`` and a bare ``<id>`` (cgroupfs
    driver, runtime unknown). A conmon scope is not a container.
    """
    match = _CONTAINER_NAME.fullmatch(name)
    if match is None:
        return None
    return match.group(2), _RUNTIMES[match.group(1)]


def pod_uid_from_name(name: str) -> str | None:
    """The dashed pod UID of a pod cgroup name (``pod<uid>``, ``kubepods-*-pod<uid_>.slice``)."""
    match = _POD_NAME.fullmatch(name)
    return None if match is None else match.group(1).replace("_", "-")


def qos_from_name(name: str) -> QosClass | None:
    """The QoS class of a QoS-level cgroup name (``burstable``, ``kubepods-besteffort.slice``)."""
    match = _QOS_NAME.fullmatch(name)
    return None if match is None else _QOS_CLASSES[match.group(1)]


def is_kubepods_dir(name: str) -> bool:
    """Whether a directory is kubelet's pod root: ``kubepods``, ``kubepods.slice``, or a
    ``<prefix>-kubepods.slice`` made by ``--cgroup-root`` with the systemd driver."""
    return name in ("kubepods", "kubepods.slice") or name.endswith("-kubepods.slice")


def _subdirs(path: str) -> list[str] | None:
    """Names of the subdirectories of ``path`` (d_type, no stat); ``None`` if it is gone.

    Raises OSError for any other failure (access denied included).
    """
    try:
        with os.scandir(path) as entries:
            return [entry.name for entry in entries if entry.is_dir(follow_symlinks=False)]
    except OSError as e:
        if oserror_outcome(e) == VANISHED:
            return None
        raise


def _read_pids(procs_path: str) -> CgroupProcs | None:
    """The pids in a ``cgroup.procs`` file; ``None`` if the cgroup is gone.

    Lines that are no pid are skipped (in ``skipped``). A file longer than its cap keeps the
    pids of its complete lines within the cap, its FileTooLargeError added to ``skipped``.
    Raises AccessDeniedError or ReaderError (another errno).
    """
    try:
        return parse_cgroup_procs(read_file_bytes(procs_path), procs_path)
    except VanishedError:
        return None
    except FileTooLargeError as exc:
        procs = parse_cgroup_procs(exc.head, procs_path)
        return CgroupProcs(procs.pids, (*procs.skipped, Skipped(exc, 1)))


def _is_pause(proc_root: str, pid: int) -> bool:
    """Whether process ``pid`` is a pod sandbox's ``pause``; a vanished process is not.

    Raises ReaderError for an errno that means neither gone nor denied.
    """
    path = f"{proc_root}/{pid}/comm"
    try:
        return parse_comm(read_file_bytes(path), path) == _PAUSE_COMM
    except (VanishedError, AccessDeniedError):
        # comm is world-readable; an error means the process exited (ESRCH on read).
        return False


def find_kubepods(scan_root: str | os.PathLike[str], max_depth: int = 4) -> tuple[str, ...]:
    """Relative paths of the kubepods directories at most ``max_depth`` levels below the root.

    Breadth-first; does not descend into a kubepods directory once found. Several can exist
    (e.g. a kind cluster's nodes as containers of this host).
    """
    found: list[str] = []
    level: list[tuple[str, str]] = [(os.fspath(scan_root), "")]
    for _ in range(max_depth):
        next_level: list[tuple[str, str]] = []
        for abs_dir, rel in level:
            names = _subdirs(abs_dir)
            if names is None:
                continue
            for name in names:
                child_rel = f"{rel}/{name}" if rel else name
                if is_kubepods_dir(name):
                    found.append(child_rel)
                else:
                    next_level.append((f"{abs_dir}/{name}", child_rel))
        level = next_level
    return tuple(sorted(found))


class _Scan:
    """The mutable state of one :func:`discover` call."""

    def __init__(
        self, hierarchy: CgroupHierarchy, proc_root: str, previous: Discovery | None
    ) -> None:
        self.hierarchy = hierarchy
        self.root = str(hierarchy.scan_root)
        self.proc_root = proc_root
        self.known = {} if previous is None else {c.relpath: c for c in previous.containers}
        # A sandbox stays one while its single process lives: no need to read comm again.
        self.known_pause: Mapping[str, int] = {} if previous is None else previous.pause_pids
        self.pause_pids: dict[str, int] = {}
        self.known_listings: Mapping[str, tuple[int, tuple[str, ...], int]] = (
            {} if previous is None else previous.pod_listings
        )
        self.pod_listings: dict[str, tuple[int, tuple[str, ...], int]] = {}
        self.containers: list[ContainerCgroup] = []
        self.skipped = dict.fromkeys(SKIP_REASONS, 0)
        self.procs_skipped: list[Skipped] = []

    def read_pids(self, procs_path: str) -> tuple[int, ...] | None:
        """:func:`_read_pids`, its skipped lines noted in :attr:`procs_skipped`."""
        procs = _read_pids(procs_path)
        if procs is None:
            return None
        if procs.skipped:
            self.procs_skipped += procs.skipped
        return procs.pids

    def subdirs(self, abs_dir: str, *, count_vanished: bool = True) -> list[str]:
        try:
            names = _subdirs(abs_dir)
        except OSError as e:
            if oserror_outcome(e) != ACCESS_DENIED:
                raise
            self.skipped[SKIP_ACCESS_DENIED] += 1
            return []
        if names is None:
            if count_vanished:
                self.skipped[SKIP_VANISHED] += 1
            return []
        return names

    def live_pids(
        self, abs_dir: str, relpath: str, *, is_container: bool
    ) -> tuple[int, ...] | None:
        """The cgroup's pids, or ``None`` (counted) if it is empty, gone, denied or a sandbox.

        Only a container cgroup is checked for a pause process and a crun leaf.
        """
        try:
            pids = self.read_pids(f"{abs_dir}/cgroup.procs")
            if pids == () and is_container:
                pids = self.read_pids(f"{abs_dir}/{_CRUN_LEAF}/cgroup.procs") or ()
            if pids is None:
                self.skipped[SKIP_VANISHED] += 1
                return None
            if not pids:
                self.skipped[SKIP_EMPTY] += 1
                return None
            if is_container and len(pids) == 1:
                pid = pids[0]
                if self.known_pause.get(relpath) == pid or _is_pause(self.proc_root, pid):
                    self.pause_pids[relpath] = pid
                    self.skipped[SKIP_PAUSE] += 1
                    return None
        except AccessDeniedError:
            self.skipped[SKIP_ACCESS_DENIED] += 1
            return None
        except ReaderError:  # an errno that does not mean gone
            self.skipped[SKIP_UNREADABLE] += 1
            return None
        return pids

    def dirs(self, relpath: str) -> CgroupDirs:
        # On v2 the one directory was just listed; on v1 the other controllers may lack it.
        return self.hierarchy.dirs_for(relpath, only_existing=self.hierarchy.mode != "v2")

    def add(
        self,
        relpath: str,
        pids: tuple[int, ...],
        container: tuple[str, Runtime | None] | None,
        pod_uid: str | None,
        qos_class: QosClass | None,
    ) -> None:
        known = self.known.get(relpath)
        self.containers.append(
            ContainerCgroup(
                container_id=None if container is None else container[0],
                pod_uid=pod_uid,
                qos_class=qos_class,
                runtime=None if container is None else container[1],
                relpath=relpath,
                pids=pids,
                dirs=self.dirs(relpath) if known is None else known.dirs,
            )
        )

    def kubepods(self, kubepods_rel: str) -> None:
        kubepods_abs = f"{self.root}/{kubepods_rel}"
        for name in self.subdirs(kubepods_abs):
            qos = qos_from_name(name)
            if qos is not None:
                qos_abs, qos_rel = f"{kubepods_abs}/{name}", f"{kubepods_rel}/{name}"
                for pod_name in self.subdirs(qos_abs):
                    self.pod(qos_abs, qos_rel, pod_name, qos)
            else:
                self.pod(kubepods_abs, kubepods_rel, name, "Guaranteed")

    def pod(self, parent_abs: str, parent_rel: str, name: str, qos: QosClass) -> None:
        pod_uid = pod_uid_from_name(name)
        if pod_uid is None:
            self.skipped[SKIP_NOT_CONTAINER] += 1
            return
        pod_abs, pod_rel = f"{parent_abs}/{name}", f"{parent_rel}/{name}"
        # A cgroup directory's link count is 2 plus its subdirectories (kernfs keeps it), so
        # while it has not changed the pod's last listing is reused: one stat instead of
        # listing the pod's 20-40 files every tick. A listing can only be stale with as many
        # directories gone as come; a container gone shows when its cgroup.procs vanishes, and
        # the pod is listed again at once. A pod holds only its containers' cgroups (and
        # CRI-O's conmon scopes, which go with their container); for anything else a pod is
        # listed at least every RELIST_POD_EVERY scans. (The count is taken before listing: a
        # child made in between changes the count the next scan sees.)
        try:
            nlink = os.stat(pod_abs).st_nlink
        except OSError as e:
            outcome = oserror_outcome(e)
            if outcome == VANISHED:
                self.skipped[SKIP_VANISHED] += 1
                return
            if outcome != ACCESS_DENIED:
                raise
            nlink = -1
        known = self.known_listings.get(pod_abs)
        # (Below 2 the filesystem does not count subdirectories, as btrfs and overlayfs do not:
        # a tree copied there is listed every tick.)
        reused = known is not None and known[0] == nlink >= 2 and known[2] < RELIST_POD_EVERY - 1
        if known is not None and reused:
            names, reuses = known[1], known[2] + 1
        else:
            names, reuses = tuple(self.subdirs(pod_abs)), 0
        gone = self.pod_children(pod_abs, pod_rel, names, pod_uid, qos)
        if gone and reused:
            fresh = self.subdirs(pod_abs, count_vanished=False)
            seen = set(names)
            self.pod_children(pod_abs, pod_rel, [n for n in fresh if n not in seen], pod_uid, qos)
            # A container removed before this scan began is no cgroup "removed during the scan".
            listed = set(fresh)
            self.skipped[SKIP_VANISHED] -= sum(1 for child in gone if child not in listed)
            nlink, names = -1, tuple(fresh)  # listed again next tick too
        self.pod_listings[pod_abs] = (nlink, names, reuses)

    def pod_children(
        self,
        pod_abs: str,
        pod_rel: str,
        names: Sequence[str],
        pod_uid: str,
        qos: QosClass,
    ) -> list[str]:
        """Add the containers among ``names``; returns those whose cgroup vanished."""
        gone: list[str] = []
        for child in names:
            container = container_id_from_name(child)
            if container is None:
                is_conmon = _CONMON_NAME.fullmatch(child) is not None
                self.skipped[SKIP_CONMON if is_conmon else SKIP_NOT_CONTAINER] += 1
                continue
            child_rel = f"{pod_rel}/{child}"
            vanished_before = self.skipped[SKIP_VANISHED]
            pids = self.live_pids(f"{pod_abs}/{child}", child_rel, is_container=True)
            if pids is not None:
                self.add(child_rel, pids, container, pod_uid, qos)
            elif self.skipped[SKIP_VANISHED] != vanished_before:
                gone.append(child)
        return gone

    def host(self, subtree: str) -> None:
        # (absolute dir, relpath, whether it is a container cgroup)
        top = f"{self.root}/{subtree}" if subtree else self.root
        stack: list[tuple[str, str, bool]] = [(top, subtree, False)]
        if subtree:  # a cgroup below the root: its own processes count too
            container = container_id_from_name(subtree.rsplit("/", 1)[-1])
            pids = self.live_pids(top, subtree, is_container=container is not None)
            if pids is not None:
                self.add(subtree, pids, container, None, None)
        while stack:
            abs_dir, rel, parent_is_container = stack.pop()
            # A child that vanished was counted when its cgroup.procs was read.
            for name in self.subdirs(abs_dir, count_vanished=rel == subtree):
                if parent_is_container and name == _CRUN_LEAF:
                    continue  # its processes were reported as the container's
                child_abs = f"{abs_dir}/{name}"
                child_rel = f"{rel}/{name}" if rel else name
                container = container_id_from_name(name)
                stack.append((child_abs, child_rel, container is not None))
                if _CONMON_NAME.fullmatch(name) is not None:
                    self.skipped[SKIP_CONMON] += 1
                    continue
                pids = self.live_pids(child_abs, child_rel, is_container=container is not None)
                if pids is not None:
                    self.add(child_rel, pids, container, None, None)


def _still_there(root: str, relpaths: tuple[str, ...]) -> bool:
    return bool(relpaths) and all(os.path.isdir(f"{root}/{rel}") for rel in relpaths)


def discover(
    hierarchy: CgroupHierarchy,
    *,
    proc_root: str | os.PathLike[str] = "/proc",
    previous: Discovery | None = None,
    max_search_depth: int = 4,
    subtree: str = "",
) -> Discovery:
    """Scan the cgroup tree for containers.

    Walks ``hierarchy.scan_root`` (the unified hierarchy on v2, the memory one on v1/hybrid),
    or only the cgroup ``subtree`` below it (a path relative to the hierarchy roots, e.g. the
    demo's sandbox: nothing outside it is found), and maps each container's relative path into
    the other controllers. When kubepods directories exist (searched up to
    ``max_search_depth`` levels down), returns kubelet's containers ("kubernetes" mode);
    otherwise every non-root cgroup with processes ("host").
    ``proc_root`` is read for ``<pid>/comm`` to recognise pause containers. ``previous``, the
    last result, lets the scan reuse the kubepods locations and the controller directories of
    containers it already knew (one ``cgroup.procs`` read each instead of several stats).

    Never raises for a cgroup or process that vanishes during the scan; raises
    :class:`~observers.hierarchy.NoCgroupMountError` if the hierarchy has nothing to walk.
    """
    scan = _Scan(hierarchy, os.fspath(proc_root), previous)
    subtree = subtree.strip("/")
    kubepods: tuple[str, ...] = ()
    if previous is not None and _still_there(scan.root, previous.kubepods_relpaths):
        kubepods = previous.kubepods_relpaths
    elif subtree:
        found = find_kubepods(f"{scan.root}/{subtree}", max_search_depth)
        kubepods = tuple(f"{subtree}/{rel}" for rel in found)
    else:
        kubepods = find_kubepods(scan.root, max_search_depth)
    if kubepods:
        for kubepods_rel in kubepods:
            scan.kubepods(kubepods_rel)
    else:
        scan.host(subtree)
    scan.containers.sort(key=lambda c: c.relpath)
    return Discovery(
        mode="kubernetes" if kubepods else "host",
        containers=tuple(scan.containers),
        skipped=MappingProxyType(scan.skipped),
        kubepods_relpaths=kubepods,
        pause_pids=MappingProxyType(scan.pause_pids),
        pod_listings=MappingProxyType(scan.pod_listings),
        procs_skipped=tuple(scan.procs_skipped),
    )
