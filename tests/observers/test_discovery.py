"""Tests for observers.discovery on kubelet-shaped fixture trees and on the real kernel."""

from __future__ import annotations

import dataclasses
import errno
import os
import secrets
import shutil
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from layouts import (
    CgroupFixture,
    Expected,
    Layout,
    add_pod,
    cgroupfs,
    container_id,
    crio_v2,
    docker_host,
    kind_nested,
    many_pods,
    pod_uid,
    systemd_v1,
    systemd_v2,
)

from observers import discovery
from observers.discovery import (
    SKIP_REASONS,
    ContainerCgroup,
    Discovery,
    container_id_from_name,
    discover,
    find_kubepods,
    is_kubepods_dir,
    pod_uid_from_name,
    qos_from_name,
)
from observers.hierarchy import (
    CgroupHierarchy,
    NoCgroupMountError,
    find_hierarchy,
    hierarchy_from_root,
)
from observers.readers.cgroup_v2 import CgroupProcs
from observers.readers.errors import (
    AccessDeniedError,
    FileTooLargeError,
    MalformedFileError,
    OutOfRangeError,
)
from observers.readers.limits import max_bytes_for

CID = container_id("example")
UID = "7b1c9a4e-2f3d-4c5b-8a6e-0d9f8e7c6b5a"
UID_ = UID.replace("-", "_")
STATIC_UID = "5c0d3e6fc9ae77b0ff1b7a8bb4e1ad0f"


def _run(layout: Layout, **kwargs: object) -> Discovery:
    hierarchy = hierarchy_from_root(layout.fixture.root)
    return discover(hierarchy, proc_root=layout.fixture.proc_root, **kwargs)  # type: ignore[arg-type]


def _found(result: Discovery) -> list[Expected]:
    return [
        Expected(c.container_id, c.pod_uid, c.qos_class, c.runtime, c.relpath, c.pids)
        for c in result.containers
    ]


def _assert_matches(result: Discovery, layout: Layout) -> None:
    assert _found(result) == sorted(layout.expected, key=lambda e: e.relpath)
    assert dict(result.skipped) == {**dict.fromkeys(SKIP_REASONS, 0), **layout.skipped}


# --- names -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        (f"cri-containerd-{CID}.scope", (CID, "containerd")),
        (f"crio-{CID}.scope", (CID, "crio")),
        (f"docker-{CID}.scope", (CID, "docker")),
        (f"libpod-{CID}.scope", (CID, None)),
        (f"crio-{CID}", (CID, "crio")),
        (CID, (CID, None)),
        (f"crio-conmon-{CID}.scope", None),
        (f"cri-containerd-{CID[:-1]}.scope", None),
        (f"cri-containerd-{CID.upper()}.scope", None),
        (f"docker-{CID}.mount", None),
        ("kubepods-burstable.slice", None),
    ],
)
def test_container_id_from_name(name: str, expected: tuple[str, str | None] | None) -> None:
    assert container_id_from_name(name) == expected


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        (f"kubepods-burstable-pod{UID_}.slice", UID),
        (f"kubepods-besteffort-pod{UID_}.slice", UID),
        (f"kubepods-pod{UID_}.slice", UID),
        (f"kubelet-kubepods-burstable-pod{UID_}.slice", UID),
        (f"kubelet-kubepods-pod{UID_}.slice", UID),
        (f"pod{UID}", UID),
        (f"pod{STATIC_UID}", STATIC_UID),
        (f"kubepods-burstable-pod{STATIC_UID}.slice", STATIC_UID),
        ("kubepods-burstable.slice", None),
        ("burstable", None),
        (f"pod{UID[:-1]}", None),
        (CID, None),
    ],
)
def test_pod_uid_from_name(name: str, expected: str | None) -> None:
    assert pod_uid_from_name(name) == expected


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("burstable", "Burstable"),
        ("besteffort", "BestEffort"),
        ("kubepods-burstable.slice", "Burstable"),
        ("kubepods-besteffort.slice", "BestEffort"),
        ("kubelet-kubepods-burstable.slice", "Burstable"),
        (f"kubepods-burstable-pod{UID_}.slice", None),
        (f"pod{UID}", None),
        ("guaranteed", None),
    ],
)
def test_qos_from_name(name: str, expected: str | None) -> None:
    assert qos_from_name(name) == expected


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("kubepods", True),
        ("kubepods.slice", True),
        ("kubelet-kubepods.slice", True),
        ("kubepods-burstable.slice", False),
        ("kubelet.slice", False),
        ("kubepods2", False),
    ],
)
def test_is_kubepods_dir(name: str, expected: bool) -> None:
    assert is_kubepods_dir(name) is expected


# --- every kubelet layout ----------------------------------------------------------------

LAYOUTS: dict[str, Callable[[Path], Layout]] = {
    "systemd-v2-containerd": systemd_v2,
    "systemd-v2-docker": lambda base: systemd_v2(base, "docker"),
    "systemd-v1-docker": systemd_v1,
    "systemd-v1-containerd": lambda base: systemd_v1(base, "cri-containerd"),
    "systemd-hybrid-containerd": lambda base: systemd_v1(base, "cri-containerd", "hybrid"),
    "kind-nested-v2": kind_nested,
    "cgroupfs-v1": lambda base: cgroupfs(base, "v1"),
    "cgroupfs-v2": lambda base: cgroupfs(base, "v2"),
    "cgroupfs-v1-crio": lambda base: cgroupfs(base, "v1", "crio"),
    "crio-v2-conmon": crio_v2,
}


@pytest.mark.parametrize("make", LAYOUTS.values(), ids=LAYOUTS.keys())
def test_kubelet_layouts(tmp_path: Path, make: Callable[[Path], Layout]) -> None:
    layout = make(tmp_path)
    result = _run(layout)
    assert result.mode == "kubernetes"
    _assert_matches(result, layout)
    assert result.skipped["pause"] == 3
    assert result.skipped["empty"] == 1


def test_systemd_v2_exact_records(tmp_path: Path) -> None:
    layout = systemd_v2(tmp_path)
    result = _run(layout)
    uid = pod_uid("web")
    web = [c for c in result.containers if c.pod_uid == uid]
    cid = container_id("web/app-0")
    underscored = uid.replace("-", "_")
    relpath = (
        "kubepods.slice/kubepods-burstable.slice/"
        f"kubepods-burstable-pod{underscored}.slice/cri-containerd-{cid}.scope"
    )
    app = next(c for c in web if c.container_id == cid)
    assert app == ContainerCgroup(
        container_id=cid,
        pod_uid=uid,
        qos_class="Burstable",
        runtime="containerd",
        relpath=relpath,
        pids=app.pids,
        dirs=app.dirs,
    )
    assert len(app.pids) == 3
    assert app.dirs.v2 == layout.fixture.root / relpath
    assert app.dirs.pressure == app.dirs.v2
    assert app.dirs.memory is None
    assert result.kubepods_relpaths == ("kubepods.slice",)
    guaranteed = [c for c in result.containers if c.qos_class == "Guaranteed"]
    assert [c.pod_uid for c in guaranteed] == [pod_uid("db")]
    db_underscored = pod_uid("db").replace("-", "_")
    assert guaranteed[0].relpath.startswith(
        f"kubepods.slice/kubepods-pod{db_underscored}.slice/cri-containerd-"
    )


def test_v1_maps_relpath_into_every_controller(tmp_path: Path) -> None:
    layout = systemd_v1(tmp_path, "cri-containerd", "v1")
    result = _run(layout)
    root = layout.fixture.root
    for c in result.containers:
        assert c.dirs.v2 is None
        assert c.dirs.memory == root / "memory" / c.relpath
        assert c.dirs.cpu == root / "cpu" / c.relpath
        assert c.dirs.cpuacct == root / "cpuacct" / c.relpath
        assert c.dirs.blkio == root / "blkio" / c.relpath
        assert c.dirs.pids == root / "pids" / c.relpath
        assert c.dirs.pressure is None


def test_hybrid_reads_pressure_from_unified(tmp_path: Path) -> None:
    layout = systemd_v1(tmp_path, "cri-containerd", "hybrid")
    result = _run(layout)
    unified = layout.fixture.root / "unified"
    assert result.containers
    for c in result.containers:
        assert c.dirs.pressure == unified / c.relpath
        assert c.dirs.memory is not None


def test_v1_controller_without_the_cgroup_is_none(tmp_path: Path) -> None:
    layout = systemd_v1(tmp_path, "cri-containerd", "hybrid")
    target = layout.expected[0].relpath
    shutil.rmtree(layout.fixture.root / "blkio" / target)
    shutil.rmtree(layout.fixture.root / "unified" / target)
    result = _run(layout)
    (container,) = [c for c in result.containers if c.relpath == target]
    assert container.dirs.blkio is None
    assert container.dirs.pressure is None
    assert container.dirs.memory is not None


def test_kubepods_under_a_deeper_prefix(tmp_path: Path) -> None:
    layout = Layout(CgroupFixture(tmp_path, "v2"))
    kubepods = "machine.slice/node.slice/kubepods.slice"
    add_pod(
        layout, driver="systemd", runtime="cri-containerd", kubepods=kubepods, qos=None, label="a"
    )
    fx = layout.fixture
    fx.cgroup("system.slice/sshd.service", fx.pids(1))  # not a kubelet container: ignored
    result = _run(layout)
    assert result.mode == "kubernetes"
    assert result.kubepods_relpaths == (kubepods,)
    _assert_matches(result, layout)
    # Beyond the search depth the host looks like a host without kubelet.
    shallow = _run(layout, max_search_depth=2)
    assert shallow.mode == "host"
    assert shallow.kubepods_relpaths == ()


def test_several_kind_nodes_on_one_host(tmp_path: Path) -> None:
    layout = Layout(CgroupFixture(tmp_path, "v2"))
    for node in ("control-plane", "worker"):
        scope = f"system.slice/docker-{container_id(node)}.scope"
        add_pod(
            layout,
            driver="systemd",
            runtime="cri-containerd",
            kubepods=f"{scope}/kubelet.slice/kubelet-kubepods.slice",
            qos="besteffort",
            label=node,
        )
    result = _run(layout)
    assert len(result.kubepods_relpaths) == 2
    _assert_matches(result, layout)


def test_static_pod_uid(tmp_path: Path) -> None:
    fx = CgroupFixture(tmp_path, "v2")
    rel = f"kubepods/burstable/pod{STATIC_UID}/{CID}"
    fx.cgroup(rel, fx.pids(1, "kube-apiserver"))
    (container,) = discover(hierarchy_from_root(fx.root), proc_root=fx.proc_root).containers
    assert container.pod_uid == STATIC_UID
    assert container.container_id == CID
    assert container.qos_class == "Burstable"


def test_non_container_entries_are_counted(tmp_path: Path) -> None:
    layout = systemd_v2(tmp_path)
    fx = layout.fixture
    pod_dir = str(Path(layout.expected[0].relpath).parent)
    fx.cgroup(f"{pod_dir}/something-else", fx.pids(1))
    fx.cgroup("kubepods.slice/kubepods-weird.slice", fx.pids(1))
    fx.cgroup(f"{pod_dir}/docker-{CID}.mount")
    layout.skip("not_container", 3)
    _assert_matches(_run(layout), layout)


def test_pause_only_when_it_is_the_only_process(tmp_path: Path) -> None:
    fx = CgroupFixture(tmp_path, "v2")
    pod = f"kubepods.slice/kubepods-pod{UID_}.slice"
    two = container_id("two")
    fx.cgroup(f"{pod}/cri-containerd-{two}.scope", (*fx.pids(1, "pause"), *fx.pids(1)))
    exited = container_id("exited")
    # A single process whose /proc entry is gone is not a sandbox.
    fx.cgroup(f"{pod}/cri-containerd-{exited}.scope", (99999,))
    result = discover(hierarchy_from_root(fx.root), proc_root=fx.proc_root)
    assert [c.container_id for c in result.containers] == [two, exited]
    assert result.skipped["pause"] == 0


def test_unreadable_comm_of_a_single_process_is_counted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An errno that means neither gone nor denied (here EIO) on the comm of a container's only
    # process: the container is skipped as unreadable, the rest of the scan goes on.
    fx = CgroupFixture(tmp_path, "v2")
    pod = f"kubepods.slice/kubepods-pod{UID_}.slice"
    odd, fine = container_id("odd"), container_id("fine")
    (odd_pid,) = fx.pids(1, "app")
    fx.cgroup(f"{pod}/cri-containerd-{odd}.scope", (odd_pid,))
    fx.cgroup(f"{pod}/cri-containerd-{fine}.scope", fx.pids(1, "app"))
    real_open = os.open

    def failing_open(path: str, flags: int, *args: int) -> int:
        if path == f"{fx.proc_root}/{odd_pid}/comm":
            raise OSError(errno.EIO, os.strerror(errno.EIO), path)
        return real_open(path, flags, *args)

    monkeypatch.setattr(os, "open", failing_open)
    result = discover(hierarchy_from_root(fx.root), proc_root=fx.proc_root)
    assert [c.container_id for c in result.containers] == [fine]
    assert result.skipped["unreadable"] == 1


def test_crun_container_leaf(tmp_path: Path) -> None:
    # CRI-O with crun on cgroup v2 may put the processes in <scope>/container.
    fx = CgroupFixture(tmp_path, "v2")
    scope = (
        "kubepods.slice/kubepods-besteffort.slice/"
        f"kubepods-besteffort-pod{UID_}.slice/crio-{CID}.scope"
    )
    pids = fx.pids(2)
    fx.cgroup(f"{scope}/container", pids)
    (container,) = discover(hierarchy_from_root(fx.root), proc_root=fx.proc_root).containers
    assert container.relpath == scope
    assert container.pids == pids
    assert container.runtime == "crio"


# --- a tree that moves -------------------------------------------------------------------


def test_vanished_during_scan(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    layout = systemd_v2(tmp_path)
    root = layout.fixture.root
    gone_container = layout.expected[0]
    gone_pod = next(e for e in layout.expected if e.qos_class == "BestEffort")
    gone_pod_dir = root / Path(gone_pod.relpath).parent
    real_subdirs = discovery._subdirs

    def racing(path: str) -> list[str] | None:
        names = real_subdirs(path)
        # The runtime removes a container right after its pod was listed, and kubelet a whole
        # pod right after its QoS slice was listed.
        if Path(path) == root / Path(gone_container.relpath).parent:
            shutil.rmtree(root / gone_container.relpath)
        if Path(path) == gone_pod_dir.parent:
            shutil.rmtree(gone_pod_dir)
        return names

    monkeypatch.setattr(discovery, "_subdirs", racing)
    result = _run(layout)
    found = {c.relpath for c in result.containers}
    expected = {e.relpath for e in layout.expected} - {gone_container.relpath, gone_pod.relpath}
    assert found == expected
    assert result.skipped["vanished"] == 2  # the container and the pod


def test_enodev_from_a_removed_cgroup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A cgroup removed while its cgroup.procs is open reads ENODEV.
    layout = systemd_v2(tmp_path)
    victim = f"{layout.fixture.root}/{layout.expected[0].relpath}/cgroup.procs"
    victim_fds: set[int] = set()
    real_open, real_pread = os.open, os.pread

    def tracking_open(path: str, flags: int, *args: int) -> int:
        fd = real_open(path, flags, *args)
        if path == victim:
            victim_fds.add(fd)
        return fd

    def failing_pread(fd: int, size: int, offset: int) -> bytes:
        if fd in victim_fds:
            victim_fds.discard(fd)
            raise OSError(errno.ENODEV, "No such device")
        return real_pread(fd, size, offset)

    monkeypatch.setattr(os, "open", tracking_open)
    monkeypatch.setattr(os, "pread", failing_pread)
    result = _run(layout)
    assert layout.expected[0].relpath not in {c.relpath for c in result.containers}
    assert len(result.containers) == len(layout.expected) - 1
    assert result.skipped["vanished"] == 1


def test_access_denied_is_counted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    layout = systemd_v2(tmp_path)
    victim = f"{layout.fixture.root}/{layout.expected[0].relpath}/cgroup.procs"
    real_read_pids = discovery._read_pids

    def denying(path: str) -> CgroupProcs | None:
        if path == victim:  # what read_file_bytes turns EACCES into
            raise AccessDeniedError(path, f"{path}: access denied", errno.EACCES)
        return real_read_pids(path)

    monkeypatch.setattr(discovery, "_read_pids", denying)
    result = _run(layout)
    assert len(result.containers) == len(layout.expected) - 1
    assert result.skipped["access_denied"] == 1


@pytest.mark.parametrize(
    ("bad_line", "kind"),
    [
        (b"abc", MalformedFileError),
        (b"-1", OutOfRangeError),
        (b"", MalformedFileError),
        (b"4294967297", OutOfRangeError),
    ],
)
def test_a_bad_cgroup_procs_line_is_skipped_and_the_container_kept(
    tmp_path: Path, bad_line: bytes, kind: type[MalformedFileError]
) -> None:
    layout = systemd_v2(tmp_path)
    target = layout.expected[0]
    procs = Path(f"{layout.fixture.root}/{target.relpath}/cgroup.procs")
    procs.write_bytes(b"12\n" + bad_line + b"\n13\n")
    result = _run(layout)
    assert {c.relpath for c in result.containers} == {e.relpath for e in layout.expected}
    [kept] = [c for c in result.containers if c.relpath == target.relpath]
    assert kept.pids == (12, 13)
    assert result.skipped["unreadable"] == 0
    [skipped] = result.procs_skipped
    assert type(skipped.first) is kind
    assert skipped.count == 1
    assert skipped.first.path == str(procs)
    assert isinstance(skipped.first, MalformedFileError) and skipped.first.line_number == 2


def test_a_cgroup_procs_longer_than_its_cap_keeps_the_pids_within_it(tmp_path: Path) -> None:
    layout = systemd_v2(tmp_path)
    target = layout.expected[0]
    procs = Path(f"{layout.fixture.root}/{target.relpath}/cgroup.procs")
    cap = max_bytes_for("cgroup.procs")
    lines = b"".join(b"%d\n" % (100_000 + i % 4_000_000) for i in range(cap // 7 + 10))
    assert len(lines) > cap
    procs.write_bytes(lines)
    result = _run(layout)
    [kept] = [c for c in result.containers if c.relpath == target.relpath]
    assert kept.pids and len(kept.pids) == cap // 7  # every line is 6 digits and a newline
    assert kept.pids[:2] == (100_000, 100_001)
    [skipped] = result.procs_skipped
    assert isinstance(skipped.first, FileTooLargeError)
    assert skipped.first.max_bytes == cap


def test_pids_follow_cgroup_procs(tmp_path: Path) -> None:
    layout = systemd_v2(tmp_path)
    first = _run(layout)
    target = layout.expected[0]
    (layout.fixture.root / target.relpath / "cgroup.procs").write_text("4242\n4243\n")
    second = _run(layout, previous=first)
    (container,) = [c for c in second.containers if c.relpath == target.relpath]
    assert container.pids == (4242, 4243)


# --- reuse of the previous scan ------------------------------------------------------------


def test_previous_scan_is_reused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    layout = systemd_v1(tmp_path, "cri-containerd", "hybrid")
    first = _run(layout)
    assert set(first.pause_pids.values()) == {
        pid
        for pid in range(1000, layout.fixture.next_pid)
        if (layout.fixture.proc_root / str(pid) / "comm").read_text() == "pause\n"
    }
    comm_reads: list[int] = []
    real_is_pause = discovery._is_pause

    def counting_is_pause(proc_root: str, pid: int) -> bool:
        comm_reads.append(pid)
        return real_is_pause(proc_root, pid)

    def no_search(*args: object, **kwargs: object) -> tuple[str, ...]:
        raise AssertionError("kubepods searched again")

    def no_dirs(*args: object, **kwargs: object) -> object:
        raise AssertionError("controller directories looked up again")

    monkeypatch.setattr(discovery, "_is_pause", counting_is_pause)
    monkeypatch.setattr(discovery, "find_kubepods", no_search)
    monkeypatch.setattr(CgroupHierarchy, "dirs_for", no_dirs)
    second = _run(layout, previous=first)
    assert dataclasses.replace(second, pod_listings={}) == dataclasses.replace(
        first, pod_listings={}
    )
    # The same listings, reused once.
    assert {k: v[:2] for k, v in second.pod_listings.items()} == {
        k: v[:2] for k, v in first.pod_listings.items()
    }
    assert {v[2] for v in second.pod_listings.values()} == {1}
    assert not set(comm_reads) & set(first.pause_pids.values())


def test_new_container_and_recycled_pid_are_checked_again(tmp_path: Path) -> None:
    layout = systemd_v2(tmp_path)
    fx = layout.fixture
    first = _run(layout)
    # The sandbox's pid now belongs to an ordinary process in a new container cgroup.
    pause_rel, pause_pid = next(iter(first.pause_pids.items()))
    (fx.root / pause_rel / "cgroup.procs").write_text("")
    (fx.proc_root / str(pause_pid) / "comm").write_text("java\n")
    newcomer = f"{Path(pause_rel).parent}/cri-containerd-{container_id('new')}.scope"
    fx.cgroup(newcomer, (pause_pid,))
    second = _run(layout, previous=first)
    assert newcomer in {c.relpath for c in second.containers}
    assert pause_rel not in second.pause_pids


def _recording_subdirs(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    listed: list[str] = []
    real = discovery._subdirs

    def recording(path: str) -> list[str] | None:
        listed.append(path)
        return real(path)

    monkeypatch.setattr(discovery, "_subdirs", recording)
    return listed


def _a_container_and_its_pod(result: Discovery) -> tuple[ContainerCgroup, str]:
    container = next(c for c in result.containers if c.container_id is not None)
    return container, container.relpath.rsplit("/", 1)[0]


def test_a_pod_is_listed_again_only_when_its_subdirectories_change(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The fixture tree is on tmpfs or ext4, which count subdirectories in a directory's link
    # count as cgroupfs does.
    layout = systemd_v2(tmp_path)
    fx = layout.fixture
    first = _run(layout)
    _, pod_rel = _a_container_and_its_pod(first)
    pod_abs = f"{fx.root}/{pod_rel}"
    assert pod_abs in first.pod_listings
    listed = _recording_subdirs(monkeypatch)
    second = _run(layout, previous=first)
    assert second.containers == first.containers
    assert not [p for p in listed if p in first.pod_listings]  # one stat per pod, no listing
    # A second container in the pod: one directory more, the pod is listed again.
    newcomer = f"{pod_rel}/cri-containerd-{container_id('second')}.scope"
    fx.cgroup(newcomer, (fx.next_pid,))
    third = _run(layout, previous=second)
    assert newcomer in {c.relpath for c in third.containers}
    assert pod_abs in listed


def test_a_container_replaced_between_two_scans_is_found(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As many directories gone as come: the link count is the same, the listing stale. The
    # container that is gone reads as vanished, and the pod is listed again in the same scan.
    layout = systemd_v2(tmp_path)
    fx = layout.fixture
    first = _run(layout)
    old, pod_rel = _a_container_and_its_pod(first)
    shutil.rmtree(fx.root / old.relpath)
    replacement = f"{pod_rel}/cri-containerd-{container_id('replacement')}.scope"
    fx.cgroup(replacement, old.pids)
    assert os.stat(fx.root / pod_rel).st_nlink == first.pod_listings[f"{fx.root}/{pod_rel}"][0]
    second = _run(layout, previous=first)
    found = {c.relpath: c for c in second.containers}
    assert replacement in found and found[replacement].pids == old.pids
    assert old.relpath not in found
    # Removed before the scan began: not a cgroup that vanished during it.
    assert second.skipped["vanished"] == first.skipped["vanished"]
    listed = _recording_subdirs(monkeypatch)
    third = _run(layout, previous=second)
    assert replacement in {c.relpath for c in third.containers}
    assert f"{fx.root}/{pod_rel}" in listed  # listed once more after a stale listing


def test_kubepods_searched_again_when_gone(tmp_path: Path) -> None:
    layout = systemd_v2(tmp_path)
    first = _run(layout)
    shutil.rmtree(layout.fixture.root / "kubepods.slice")
    fx = layout.fixture
    fx.cgroup("system.slice/kubelet.service", fx.pids(1))
    second = _run(layout, previous=first)
    assert second.mode == "host"
    assert [c.relpath for c in second.containers] == ["system.slice/kubelet.service"]


# --- hosts without kubelet ---------------------------------------------------------------


@pytest.mark.parametrize("mode", ["v2", "v1", "hybrid"])
def test_host_without_kubelet(tmp_path: Path, mode: str) -> None:
    layout = docker_host(tmp_path, mode)  # type: ignore[arg-type]
    result = _run(layout)
    assert result.mode == "host"
    assert result.kubepods_relpaths == ()
    _assert_matches(result, layout)
    docker = next(c for c in result.containers if c.runtime == "docker")
    assert docker.container_id == container_id("nginx")
    assert docker.pod_uid is None
    assert docker.qos_class is None


def test_host_crun_leaf_is_reported_once(tmp_path: Path) -> None:
    fx = CgroupFixture(tmp_path, "v2")
    scope = f"machine.slice/libpod-{CID}.scope"
    leaf_pids = fx.pids(2)
    fx.cgroup(f"{scope}/container", leaf_pids)
    # A directory that happens to be called "container" under a service is its own cgroup.
    service_pids = fx.pids(1)
    fx.cgroup("system.slice/app.service/container", service_pids)
    result = discover(hierarchy_from_root(fx.root), proc_root=fx.proc_root)
    assert [(c.relpath, c.pids) for c in result.containers] == [
        (scope, leaf_pids),
        ("system.slice/app.service/container", service_pids),
    ]


@pytest.mark.parametrize("mode", ["v2", "v1"])
def test_a_subtree_limits_what_is_found_to_the_cgroups_below_it(tmp_path: Path, mode: str) -> None:
    """The demo's sandbox beside another sandbox, a node's kubepods and host services: with
    ``subtree`` only the sandbox's containers, in kubernetes mode; a host subtree gives its
    own cgroups, itself included when it holds processes."""
    layout = Layout(CgroupFixture(tmp_path, mode))  # type: ignore[arg-type]
    for prefix in ("demo.slice", "other.slice", ""):
        add_pod(
            layout, driver="systemd", runtime="cri-containerd",
            kubepods=f"{prefix}/kubepods.slice".lstrip("/"), qos="besteffort", label=prefix,
        )  # fmt: skip
    fx = layout.fixture
    fx.cgroup("system.slice/sshd.service", fx.pids(1))
    everything = _run(layout)
    assert len(everything.kubepods_relpaths) == 3
    mine = _run(layout, subtree="/demo.slice/")
    assert mine.mode == "kubernetes"
    assert mine.kubepods_relpaths == ("demo.slice/kubepods.slice",)
    assert [c.relpath for c in mine.containers] == [
        e.relpath for e in layout.expected if e.relpath.startswith("demo.slice/")
    ]
    assert mine.containers and all(c.container_id for c in mine.containers)
    # Reused from the previous scan, the kubepods stay the subtree's.
    again = _run(layout, subtree="demo.slice", previous=mine)
    assert again.containers == mine.containers

    service_pids = fx.pids(2)
    fx.cgroup("system.slice/app.service", service_pids)
    child_pids = fx.pids(1)
    fx.cgroup("system.slice/app.service/worker", child_pids)
    host = _run(layout, subtree="system.slice/app.service")
    assert host.mode == "host"
    assert [(c.relpath, c.pids) for c in host.containers] == [
        ("system.slice/app.service", service_pids),
        ("system.slice/app.service/worker", child_pids),
    ]


def test_find_kubepods_ignores_missing_root(tmp_path: Path) -> None:
    assert find_kubepods(tmp_path / "missing") == ()


# --- scale -------------------------------------------------------------------------------


def test_500_containers(tmp_path: Path, record_property: Callable[[str, object], None]) -> None:
    layout = many_pods(tmp_path, 500)
    hierarchy = hierarchy_from_root(layout.fixture.root)
    started = time.perf_counter()
    first = discover(hierarchy, proc_root=layout.fixture.proc_root)
    cold_seconds = time.perf_counter() - started
    started = time.perf_counter()
    second = discover(hierarchy, proc_root=layout.fixture.proc_root, previous=first)
    warm_seconds = time.perf_counter() - started
    record_property("discover_500_cold_ms", round(cold_seconds * 1e3, 2))
    record_property("discover_500_warm_ms", round(warm_seconds * 1e3, 2))
    assert len(second.containers) == 500
    assert second.skipped["pause"] == 250
    _assert_matches(second, layout)
    # Generous bound: a tick is one second and discovery must be a small part of it.
    assert warm_seconds < 0.25


# --- the real kernel -----------------------------------------------------------------------


def _rmdir_when_empty(directory: Path) -> None:
    for _ in range(100):
        try:
            directory.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError as e:
            if e.errno != errno.EBUSY:
                raise
            time.sleep(0.02)
    directory.rmdir()


@pytest.fixture
def real_kubelet_tree() -> Iterator[tuple[CgroupHierarchy, str, str, str, int]]:
    """A kubelet-shaped systemd tree with one sleeping container in the real hierarchies,
    under a prefix unique to this run; removed afterwards, deepest first, even on failure."""
    if os.geteuid() != 0:
        pytest.skip("needs root to create cgroups and move processes")
    try:
        hierarchy = find_hierarchy()
    except NoCgroupMountError as e:
        pytest.skip(f"no cgroup hierarchy: {e}")
    mounts: list[Path] = []
    for mount in (
        hierarchy.v1.get("memory"),
        hierarchy.v1.get("cpu"),
        hierarchy.v1.get("cpuacct"),
        hierarchy.unified,
    ):
        if mount is not None and mount.resolve() not in {m.resolve() for m in mounts}:
            mounts.append(mount)
    uid = str(uuid.uuid4())
    cid = secrets.token_hex(32)
    prefix = f"finemon-test-{os.getpid()}-{secrets.token_hex(4)}.slice"
    relpath = (
        f"{prefix}/kubepods.slice/kubepods-burstable.slice/"
        f"kubepods-burstable-pod{uid.replace('-', '_')}.slice/cri-containerd-{cid}.scope"
    )
    created: list[Path] = []
    sleeper: subprocess.Popen[bytes] | None = None
    try:
        for mount in mounts:
            directory = mount
            for part in relpath.split("/"):
                directory = directory / part
                try:
                    directory.mkdir()
                except OSError as e:
                    pytest.skip(f"cgroup hierarchy {mount} is not writable: {e}")
                created.append(directory)
        sleeper = subprocess.Popen(["sleep", "300"])
        for mount in mounts:
            (mount / relpath / "cgroup.procs").write_text(f"{sleeper.pid}\n")
        yield hierarchy, relpath, cid, uid, sleeper.pid
    finally:
        if sleeper is not None:
            sleeper.kill()
            sleeper.wait()
        for directory in reversed(created):
            _rmdir_when_empty(directory)


def test_a_pod_is_listed_again_after_a_while_whatever_its_link_count(tmp_path: Path) -> None:
    # Something that is not a container replaced by a container leaves the count as it was and
    # reads as nothing vanished: it is found at the pod's next periodic listing.
    layout = systemd_v2(tmp_path)
    fx = layout.fixture
    result = _run(layout)
    _, pod_rel = _a_container_and_its_pod(result)
    fx.cgroup(f"{pod_rel}/not-a-container")
    result = _run(layout, previous=result)
    shutil.rmtree(fx.root / pod_rel / "not-a-container")
    newcomer = f"{pod_rel}/cri-containerd-{container_id('late')}.scope"
    fx.cgroup(newcomer, (fx.next_pid,))
    scans = 0
    while newcomer not in {c.relpath for c in result.containers}:
        result = _run(layout, previous=result)
        scans += 1
        assert scans <= discovery.RELIST_POD_EVERY
    assert scans > 1  # (the listing was reused meanwhile: the count did not change)


@pytest.mark.root
def test_real_kernel_pod_listing_follows_the_link_count(
    real_kubelet_tree: tuple[CgroupHierarchy, str, str, str, int],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # cgroupfs keeps a cgroup directory's link count at 2 plus its subdirectories: an unchanged
    # pod is not listed again, and a container replaced between two scans is still found.
    hierarchy, relpath, _cid, _uid, pid = real_kubelet_tree
    pod_rel = relpath.rsplit("/", 1)[0]
    pod_abs = f"{hierarchy.scan_root}/{pod_rel}"
    first = discover(hierarchy)
    listed = _recording_subdirs(monkeypatch)
    second = discover(hierarchy, previous=first)
    assert pod_abs not in listed
    assert relpath in {c.relpath for c in second.containers}
    mounts = {
        m.resolve()
        for m in (*hierarchy.v1.values(), hierarchy.unified)
        if m is not None and (m / relpath).is_dir()
    }
    new_rel = f"{pod_rel}/cri-containerd-{secrets.token_hex(32)}.scope"
    try:
        for mount in mounts:
            (mount / new_rel).mkdir()
            (mount / new_rel / "cgroup.procs").write_text(f"{pid}\n")
            _rmdir_when_empty(mount / relpath)
        third = discover(hierarchy, previous=second)
        found = {c.relpath: c for c in third.containers}
        assert new_rel in found and found[new_rel].pids == (pid,)
        assert relpath not in found
        assert pod_abs in listed
    finally:
        for mount in mounts:
            (mount / relpath).mkdir(exist_ok=True)
            (mount / relpath / "cgroup.procs").write_text(f"{pid}\n")
            _rmdir_when_empty(mount / new_rel)


@pytest.mark.root
def test_real_kernel_discovery(
    real_kubelet_tree: tuple[CgroupHierarchy, str, str, str, int],
) -> None:
    hierarchy, relpath, cid, uid, pid = real_kubelet_tree
    result = discover(hierarchy)
    assert result.mode == "kubernetes"
    (container,) = [c for c in result.containers if c.relpath == relpath]
    assert container.container_id == cid
    assert container.pod_uid == uid
    assert container.qos_class == "Burstable"
    assert container.runtime == "containerd"
    assert container.pids == (pid,)
    if hierarchy.mode == "v2":
        assert container.dirs.v2 is not None and container.dirs.v2.is_dir()
    else:
        for directory in (container.dirs.memory, container.dirs.cpu, container.dirs.cpuacct):
            assert directory is not None and directory.is_dir()
        if hierarchy.mode == "hybrid":
            assert hierarchy.unified is not None
            assert container.dirs.pressure == hierarchy.unified / relpath
