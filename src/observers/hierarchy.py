"""Where the cgroup hierarchies are mounted, and where to read a cgroup's files.

The kernel offers three arrangements: the unified cgroup2 hierarchy alone ("v2"), the legacy
per-controller v1 hierarchies alone ("v1"), or v1 controllers plus a cgroup2 mount without
controllers, usually at ``/sys/fs/cgroup/unified`` ("hybrid"; systemd's default on older
distributions). :func:`find_hierarchy` reads ``/proc/self/mountinfo`` to tell which one is in
use; :func:`hierarchy_from_root` does the same from a directory given on the command line.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Literal

from observers.readers.errors import VANISHED, ReaderError, oserror_outcome
from observers.readers.mountinfo import Mount, read_mountinfo

__all__ = [
    "CgroupDirs",
    "CgroupHierarchy",
    "HierarchyMode",
    "NoCgroupMountError",
    "find_hierarchy",
    "hierarchy_from_mounts",
    "hierarchy_from_root",
    "v1_controllers",
]

HierarchyMode = Literal["v2", "hybrid", "v1"]

# v1 super options that are mount flags, not controllers (kernel/cgroup/cgroup-v1.c, and
# SELinux's "seclabel"); options with "=" other than name= are dropped too (release_agent=).
_V1_GENERIC_OPTIONS = frozenset(
    {
        "rw",
        "ro",
        "seclabel",
        "none",
        "all",
        "noprefix",
        "clone_children",
        "xattr",
        "cpuset_v2_mode",
        "favordynmods",
        "nofavordynmods",
    }
)

# Controllers a v1 root may hold as subdirectories (alone or comma-joined, e.g. cpu,cpuacct).
_V1_CONTROLLERS = frozenset(
    {
        "blkio",
        "cpu",
        "cpuacct",
        "cpuset",
        "debug",
        "devices",
        "freezer",
        "hugetlb",
        "memory",
        "misc",
        "net_cls",
        "net_prio",
        "perf_event",
        "pids",
        "rdma",
    }
)

# Controllers any one of which makes a directory recognisably a v1 root.
_V1_ROOT_MARKERS = frozenset({"cpu", "cpuacct", "memory"})

# Which v1 hierarchy discovery walks, in order of preference (Datadog and cAdvisor use memory).
_V1_SCAN_ORDER = ("memory", "cpu", "cpuacct", "pids", "blkio")


class NoCgroupMountError(OSError):
    """No usable cgroup hierarchy: neither a cgroup2 mount nor a v1 resource controller."""


@dataclass(frozen=True, slots=True)
class CgroupDirs:
    """The absolute directories holding one cgroup's files, ``None`` where not applicable.

    On v2 only ``v2`` and ``pressure`` (the same directory) are set. On v1 and hybrid the
    controller fields are set (several may be the same directory when controllers are
    co-mounted, e.g. ``cpu,cpuacct``), and on hybrid ``pressure`` is the cgroup's directory in
    the unified hierarchy, where the kernel keeps ``cpu.pressure`` and friends.
    """

    v2: Path | None = None
    cpu: Path | None = None
    cpuacct: Path | None = None
    memory: Path | None = None
    blkio: Path | None = None
    pids: Path | None = None
    pressure: Path | None = None


@dataclass(frozen=True, slots=True)
class CgroupHierarchy:
    """Which cgroup arrangement the host uses and where its hierarchies are mounted.

    ``unified`` is the cgroup2 mount (``None`` on pure v1); ``v1`` maps every v1 controller to
    its mount point, each controller of a co-mounted hierarchy (``cpu,cpuacct``) separately,
    and named hierarchies under their option (``"name=systemd"``).
    """

    mode: HierarchyMode
    unified: Path | None
    v1: Mapping[str, Path]

    @property
    def scan_root(self) -> Path:
        """The hierarchy whose tree discovery walks: unified on v2, else memory (or cpu)."""
        if self.mode == "v2":
            assert self.unified is not None
            return self.unified
        for controller in _V1_SCAN_ORDER:
            mount = self.v1.get(controller)
            if mount is not None:
                return mount
        raise NoCgroupMountError("no v1 memory, cpu, cpuacct, pids or blkio hierarchy mounted")

    def dirs_for(self, relpath: str, *, only_existing: bool = False) -> CgroupDirs:
        """Where to read the cgroup at ``relpath`` (relative to each hierarchy's root).

        Pure unless ``only_existing``: then each distinct directory is checked with one
        ``stat`` and one that does not exist (e.g. a controller the runtime did not create
        the cgroup in, or a cgroup removed meanwhile) is left ``None``.
        """
        rel = relpath.strip("/")
        made: dict[str, Path | None] = {}

        def under(mount: Path | None) -> Path | None:
            if mount is None:
                return None
            directory = f"{mount}/{rel}" if rel else str(mount)
            if directory not in made:
                exists = not only_existing or os.path.isdir(directory)
                made[directory] = Path(directory) if exists else None
            return made[directory]

        if self.mode == "v2":
            v2_dir = under(self.unified)
            return CgroupDirs(v2=v2_dir, pressure=v2_dir)
        v1 = self.v1
        return CgroupDirs(
            cpu=under(v1.get("cpu")),
            cpuacct=under(v1.get("cpuacct")),
            memory=under(v1.get("memory")),
            blkio=under(v1.get("blkio")),
            pids=under(v1.get("pids")),
            pressure=under(self.unified),
        )


def v1_controllers(mount: Mount) -> tuple[str, ...]:
    """The controllers (and ``name=`` hierarchy) a v1 cgroup mount carries."""
    return tuple(
        option
        for option in mount.super_options
        if option.startswith("name=") or ("=" not in option and option not in _V1_GENERIC_OPTIONS)
    )


def hierarchy_from_mounts(mounts: tuple[Mount, ...]) -> CgroupHierarchy:
    """Build the hierarchy description from parsed mounts.

    When a hierarchy is mounted more than once (a container sees its own subtree at
    /sys/fs/cgroup and the host's at /host/sys/fs/cgroup), the mount of the hierarchy's root
    (mountinfo ``root`` == "/") wins over a bind mount of a subtree, then the first listed.
    Raises :class:`NoCgroupMountError` when there is neither a cgroup2 mount nor a v1 resource
    controller.
    """
    unified: Mount | None = None
    v1: dict[str, Mount] = {}
    for mount in mounts:
        if mount.fs_type == "cgroup2":
            if unified is None or _better(mount, unified):
                unified = mount
        elif mount.fs_type == "cgroup":
            for controller in v1_controllers(mount):
                current = v1.get(controller)
                if current is None or _better(mount, current):
                    v1[controller] = mount
    return _hierarchy(
        None if unified is None else unified.mount_point,
        {controller: mount.mount_point for controller, mount in v1.items()},
        where="mountinfo",
    )


def _better(candidate: Mount, current: Mount) -> bool:
    return candidate.root == "/" and current.root != "/"


def _hierarchy(unified: Path | None, v1: dict[str, Path], *, where: str) -> CgroupHierarchy:
    has_v1_resources = any(not controller.startswith("name=") for controller in v1)
    if has_v1_resources:
        mode: HierarchyMode = "v1" if unified is None else "hybrid"
    elif unified is not None:
        mode = "v2"
    else:
        raise NoCgroupMountError(f"no cgroup2 mount and no cgroup v1 controller found in {where}")
    return CgroupHierarchy(
        mode=mode, unified=unified, v1=MappingProxyType(dict(sorted(v1.items())))
    )


def find_hierarchy(
    mountinfo_path: str | os.PathLike[str] = "/proc/self/mountinfo",
) -> CgroupHierarchy:
    """Describe the cgroup hierarchies this process sees, from its mountinfo file.

    Raises :class:`NoCgroupMountError` when the file cannot be read or lists no usable cgroup
    mount, and :class:`~observers.readers.mountinfo.MountinfoParseError` for a malformed line.
    """
    try:
        mounts = read_mountinfo(mountinfo_path)
    except ReaderError as e:
        raise NoCgroupMountError(f"cannot read {e}") from e
    try:
        return hierarchy_from_mounts(mounts)
    except NoCgroupMountError as e:
        raise NoCgroupMountError(f"{e} ({os.fspath(mountinfo_path)})") from None


def hierarchy_from_root(root: str | os.PathLike[str]) -> CgroupHierarchy:
    """Describe the hierarchies under a directory laid out like ``/sys/fs/cgroup``.

    For ``--cgroup-root`` (tests, or a node's cgroup root mounted at /host/sys/fs/cgroup): a
    root holding ``cgroup.controllers`` is cgroup2; one with controller subdirectories (``cpu``,
    ``memory``, ``cpu,cpuacct``, ...) is v1, and hybrid if it also has ``unified/``. A
    ``systemd`` subdirectory is recorded as ``name=systemd``. A comma-joined directory maps each
    of its controllers unless a directory of that single name exists (usually a symlink to it).
    Raises :class:`NoCgroupMountError` when the root is neither.
    """
    base = Path(root)
    if os.path.isfile(base / "cgroup.controllers"):
        return CgroupHierarchy(mode="v2", unified=base, v1=MappingProxyType({}))
    try:
        with os.scandir(base) as entries:
            names = sorted(entry.name for entry in entries if entry.is_dir())
    except OSError as e:
        if oserror_outcome(e) == VANISHED:
            raise NoCgroupMountError(f"cgroup root {base} does not exist") from None
        raise
    v1: dict[str, Path] = {}
    for name in names:
        parts = name.split(",")
        if name == "systemd":
            v1["name=systemd"] = base / name
        elif all(part in _V1_CONTROLLERS for part in parts):
            for part in parts:
                if len(parts) == 1 or part not in v1:
                    v1[part] = base / name
    if not _V1_ROOT_MARKERS.intersection(v1):
        raise NoCgroupMountError(
            f"{base} is not a cgroup root: no cgroup.controllers and no cpu, cpuacct or memory"
        )
    unified = base / "unified"
    return _hierarchy(unified if os.path.isdir(unified) else None, v1, where=str(base))
