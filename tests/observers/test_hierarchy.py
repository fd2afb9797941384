"""Tests for observers.hierarchy and observers.readers.mountinfo: mountinfo parsing and cgroup
hierarchy detection."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from layouts import CgroupFixture

from observers.hierarchy import (
    CgroupDirs,
    NoCgroupMountError,
    find_hierarchy,
    hierarchy_from_mounts,
    hierarchy_from_root,
)
from observers.readers.errors import MalformedFileError, VanishedError
from observers.readers.mountinfo import (
    Mount,
    MountinfoParseError,
    parse_mountinfo,
    read_mountinfo,
)

# Ubuntu 22.04: cgroup v2 only.
V2_ONLY = """\
22 1 252:1 / / rw,relatime shared:1 - ext4 /dev/vda1 rw
24 22 0:22 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
35 24 0:30 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:9 - cgroup2 cgroup2 \
rw,nsdelegate,memory_recursiveprot
"""

# Ubuntu 20.04: systemd's hybrid layout.
HYBRID = """\
24 29 0:22 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
33 24 0:28 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:9 - tmpfs tmpfs ro,mode=755
34 33 0:29 / /sys/fs/cgroup/unified rw,nosuid,nodev,noexec,relatime shared:10 - cgroup2 cgroup2 \
rw,nsdelegate
35 33 0:30 / /sys/fs/cgroup/systemd rw,nosuid,nodev,noexec,relatime shared:11 - cgroup cgroup \
rw,xattr,name=systemd
38 33 0:33 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid,nodev,noexec,relatime shared:15 - cgroup \
cgroup rw,cpu,cpuacct
39 33 0:34 / /sys/fs/cgroup/memory rw,nosuid,nodev,noexec,relatime shared:16 - cgroup cgroup \
rw,memory
40 33 0:35 / /sys/fs/cgroup/net_cls,net_prio rw,nosuid,nodev,noexec,relatime shared:17 - cgroup \
cgroup rw,net_cls,net_prio
41 33 0:36 / /sys/fs/cgroup/blkio rw,nosuid,nodev,noexec,relatime shared:18 - cgroup cgroup \
rw,blkio
42 33 0:37 / /sys/fs/cgroup/pids rw,nosuid,nodev,noexec,relatime shared:19 - cgroup cgroup rw,pids
"""

# CentOS 7: v1 only, SELinux labels, the kernel printing cpuacct before cpu, a release agent.
V1_ONLY = """\
18 62 0:17 / /sys rw,nosuid,nodev,noexec,relatime shared:6 - sysfs sysfs rw,seclabel
22 18 0:19 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:3 - tmpfs tmpfs ro,seclabel,mode=755
23 22 0:20 / /sys/fs/cgroup/systemd rw,nosuid,nodev,noexec,relatime shared:4 - cgroup cgroup \
rw,seclabel,xattr,release_agent=/usr/lib/systemd/systemd-cgroups-agent,name=systemd
26 22 0:23 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid,nodev,noexec,relatime shared:7 - cgroup cgroup \
rw,seclabel,cpuacct,cpu
27 22 0:24 / /sys/fs/cgroup/memory rw,nosuid,nodev,noexec,relatime shared:8 - cgroup cgroup \
rw,seclabel,memory
28 22 0:25 / /sys/fs/cgroup/blkio rw,nosuid,nodev,noexec,relatime shared:9 - cgroup cgroup \
rw,seclabel,blkio
29 22 0:26 / /sys/fs/cgroup/cpuset rw,nosuid,nodev,noexec,relatime shared:10 - cgroup cgroup \
rw,seclabel,cpuset
"""

# A monitor container on a v1 node: its own cgroup (root = its subtree) at /sys/fs/cgroup and
# the host's hierarchy bind-mounted at /host/sys/fs/cgroup (root = /).
CONTAINER_VIEW = """\
1510 1492 0:24 /kubepods/besteffort/pod1f0e/abc /sys/fs/cgroup/memory ro,nosuid,nodev,noexec,\
relatime master:8 - cgroup cgroup rw,memory
1511 1492 0:23 /kubepods/besteffort/pod1f0e/abc /sys/fs/cgroup/cpu,cpuacct ro,nosuid,nodev,\
noexec,relatime master:7 - cgroup cgroup rw,cpu,cpuacct
1530 1492 0:24 / /host/sys/fs/cgroup/memory ro,nosuid,nodev,noexec,relatime master:8 - cgroup \
cgroup rw,memory
1531 1492 0:23 / /host/sys/fs/cgroup/cpu,cpuacct ro,nosuid,nodev,noexec,relatime master:7 - \
cgroup cgroup rw,cpu,cpuacct
"""


def _mountinfo(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "mountinfo"
    path.write_text(text)
    return path


# --- parse_mountinfo ---------------------------------------------------------------------


def test_parse_mountinfo_fields() -> None:
    mounts = parse_mountinfo(HYBRID)
    assert len(mounts) == 9
    assert mounts[4] == Mount(
        mount_id=38,
        parent_id=33,
        major=0,
        minor=33,
        root="/",
        mount_point=Path("/sys/fs/cgroup/cpu,cpuacct"),
        mount_options=("rw", "nosuid", "nodev", "noexec", "relatime"),
        optional_fields=("shared:15",),
        fs_type="cgroup",
        source="cgroup",
        super_options=("rw", "cpu", "cpuacct"),
    )


def test_parse_mountinfo_no_and_several_optional_fields() -> None:
    data = (
        "40 30 0:35 / /a rw - tmpfs tmpfs rw\n"
        "41 30 0:36 / /b rw shared:5 master:1 propagate_from:2 - tmpfs none rw,size=4k\n"
    )
    first, second = parse_mountinfo(data)
    assert first.optional_fields == ()
    assert first.fs_type == "tmpfs"
    assert second.optional_fields == ("shared:5", "master:1", "propagate_from:2")
    assert second.source == "none"
    assert second.super_options == ("rw", "size=4k")


def test_parse_mountinfo_decodes_octal_escapes() -> None:
    data = (
        r"50 22 0:40 /dir\040with\011tab /host/sys/fs/cgroup\040copy\134x rw,relatime - "
        r"cgroup2 cgroup\040two rw" + "\n"
    )
    (mount,) = parse_mountinfo(data)
    assert mount.root == "/dir with\ttab"
    assert mount.mount_point == Path("/host/sys/fs/cgroup copy\\x")
    assert mount.source == "cgroup two"


def test_parse_mountinfo_malformed_line_names_source_and_line() -> None:
    data = V2_ONLY + "36 24 0:31 / /broken rw shared:9\n"
    with pytest.raises(MountinfoParseError) as excinfo:
        parse_mountinfo(data, source="/proc/self/mountinfo")
    assert excinfo.value.line_number == 4
    assert str(excinfo.value).startswith("/proc/self/mountinfo:4: malformed mountinfo line")
    # One error style with the other readers: file and line, a MalformedFileError.
    assert isinstance(excinfo.value, MalformedFileError)
    assert excinfo.value.path == "/proc/self/mountinfo"


@pytest.mark.parametrize(
    "line",
    [
        "x 24 0:31 / /a rw - tmpfs tmpfs rw",  # mount id not a number
        "36 24 0-31 / /a rw - tmpfs tmpfs rw",  # no major:minor
        "36 24 0:31 / /a rw - tmpfs tmpfs",  # no super options
    ],
)
def test_parse_mountinfo_rejects_bad_fields(line: str) -> None:
    with pytest.raises(MountinfoParseError):
        parse_mountinfo(line + "\n")


# --- find_hierarchy ----------------------------------------------------------------------


def test_v2_only(tmp_path: Path) -> None:
    h = find_hierarchy(_mountinfo(tmp_path, V2_ONLY))
    assert h.mode == "v2"
    assert h.unified == Path("/sys/fs/cgroup")
    assert dict(h.v1) == {}
    assert h.scan_root == Path("/sys/fs/cgroup")


def test_hybrid(tmp_path: Path) -> None:
    h = find_hierarchy(_mountinfo(tmp_path, HYBRID))
    assert h.mode == "hybrid"
    assert h.unified == Path("/sys/fs/cgroup/unified")
    base = Path("/sys/fs/cgroup")
    assert dict(h.v1) == {
        "name=systemd": base / "systemd",
        "cpu": base / "cpu,cpuacct",
        "cpuacct": base / "cpu,cpuacct",
        "memory": base / "memory",
        "net_cls": base / "net_cls,net_prio",
        "net_prio": base / "net_cls,net_prio",
        "blkio": base / "blkio",
        "pids": base / "pids",
    }
    assert h.scan_root == base / "memory"


def test_v1_with_selinux_and_release_agent(tmp_path: Path) -> None:
    h = find_hierarchy(_mountinfo(tmp_path, V1_ONLY))
    assert h.mode == "v1"
    assert h.unified is None
    base = Path("/sys/fs/cgroup")
    assert dict(h.v1) == {
        "name=systemd": base / "systemd",
        "cpu": base / "cpu,cpuacct",
        "cpuacct": base / "cpu,cpuacct",
        "memory": base / "memory",
        "blkio": base / "blkio",
        "cpuset": base / "cpuset",
    }


def test_prefers_the_hierarchy_root_over_a_bind_mounted_subtree(tmp_path: Path) -> None:
    h = find_hierarchy(_mountinfo(tmp_path, CONTAINER_VIEW))
    assert h.mode == "v1"
    assert h.v1["memory"] == Path("/host/sys/fs/cgroup/memory")
    assert h.v1["cpu"] == Path("/host/sys/fs/cgroup/cpu,cpuacct")


def test_no_cgroup_mount(tmp_path: Path) -> None:
    (tmp_path / "mountinfo").write_text("22 1 252:1 / / rw,relatime shared:1 - ext4 /dev/vda1 rw\n")
    with pytest.raises(NoCgroupMountError, match="no cgroup2 mount"):
        find_hierarchy(tmp_path / "mountinfo")


def test_only_a_named_v1_hierarchy_is_not_enough(tmp_path: Path) -> None:
    line = (
        "35 33 0:30 / /sys/fs/cgroup/systemd rw,relatime shared:11 - cgroup cgroup "
        "rw,xattr,name=systemd\n"
    )
    (tmp_path / "mountinfo").write_text(line)
    with pytest.raises(NoCgroupMountError):
        find_hierarchy(tmp_path / "mountinfo")


def test_unreadable_mountinfo_is_no_cgroup_mount(tmp_path: Path) -> None:
    with pytest.raises(NoCgroupMountError, match="cannot read"):
        find_hierarchy(tmp_path / "missing")


@pytest.mark.skipif(
    not os.path.isfile("/sys/fs/cgroup/unified/cgroup.procs")
    or not os.path.isdir("/sys/fs/cgroup/memory"),
    reason="this host is not a systemd hybrid host (no /sys/fs/cgroup/unified and memory)",
)
def test_this_machine_is_hybrid() -> None:
    h = find_hierarchy()
    assert h.mode == "hybrid"
    assert h.unified == Path("/sys/fs/cgroup/unified")
    for controller in ("cpu", "cpuacct", "memory", "blkio", "pids", "cpuset"):
        assert h.v1[controller].is_dir(), controller
    assert "name=systemd" in h.v1
    assert h.scan_root == h.v1["memory"]


# --- hierarchy_from_root -----------------------------------------------------------------


def test_from_root_v2(tmp_path: Path) -> None:
    fixture = CgroupFixture(tmp_path, "v2")
    h = hierarchy_from_root(fixture.root)
    assert h.mode == "v2"
    assert h.unified == fixture.root
    assert dict(h.v1) == {}


def test_from_root_v1_with_symlinked_comounts(tmp_path: Path) -> None:
    fixture = CgroupFixture(tmp_path, "v1")
    h = hierarchy_from_root(fixture.root)
    assert h.mode == "v1"
    assert h.unified is None
    root = fixture.root
    # cpu and cpuacct are symlinks to cpu,cpuacct: the single names win.
    assert h.v1["cpu"] == root / "cpu"
    assert h.v1["cpuacct"] == root / "cpuacct"
    assert h.v1["memory"] == root / "memory"
    assert h.v1["name=systemd"] == root / "systemd"
    assert h.scan_root == root / "memory"


def test_from_root_v1_comounted_without_symlinks(tmp_path: Path) -> None:
    for name in ("cpu,cpuacct", "memory", "net_cls,net_prio"):
        (tmp_path / name).mkdir()
    (tmp_path / "unrelated").mkdir()
    h = hierarchy_from_root(tmp_path)
    assert h.v1["cpu"] == h.v1["cpuacct"] == tmp_path / "cpu,cpuacct"
    assert h.v1["net_prio"] == tmp_path / "net_cls,net_prio"
    assert "unrelated" not in h.v1


def test_from_root_hybrid(tmp_path: Path) -> None:
    fixture = CgroupFixture(tmp_path, "hybrid")
    h = hierarchy_from_root(fixture.root)
    assert h.mode == "hybrid"
    assert h.unified == fixture.root / "unified"


def test_from_root_not_a_cgroup_root(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    with pytest.raises(NoCgroupMountError, match="not a cgroup root"):
        hierarchy_from_root(tmp_path)
    with pytest.raises(NoCgroupMountError, match="does not exist"):
        hierarchy_from_root(tmp_path / "missing")


# --- where to read -----------------------------------------------------------------------


def test_dirs_for_v2(tmp_path: Path) -> None:
    h = find_hierarchy(_mountinfo(tmp_path, V2_ONLY))
    rel = "kubepods.slice/kubepods-pod1.slice/cri-containerd-a.scope"
    container = Path("/sys/fs/cgroup") / rel
    assert h.dirs_for(rel) == CgroupDirs(v2=container, pressure=container)
    assert h.dirs_for("/" + rel + "/") == h.dirs_for(rel)
    assert h.dirs_for("") == CgroupDirs(v2=Path("/sys/fs/cgroup"), pressure=Path("/sys/fs/cgroup"))


def test_dirs_for_hybrid_reads_pressure_from_unified(tmp_path: Path) -> None:
    h = find_hierarchy(_mountinfo(tmp_path, HYBRID))
    dirs = h.dirs_for("system.slice/a.service")
    base = Path("/sys/fs/cgroup")
    assert dirs == CgroupDirs(
        v2=None,
        cpu=base / "cpu,cpuacct/system.slice/a.service",
        cpuacct=base / "cpu,cpuacct/system.slice/a.service",
        memory=base / "memory/system.slice/a.service",
        blkio=base / "blkio/system.slice/a.service",
        pids=base / "pids/system.slice/a.service",
        pressure=base / "unified/system.slice/a.service",
    )


def test_dirs_for_v1_has_no_pressure(tmp_path: Path) -> None:
    dirs = find_hierarchy(_mountinfo(tmp_path, V1_ONLY)).dirs_for("x")
    assert dirs.pressure is None
    assert dirs.pids is None  # not mounted on that host
    assert dirs.memory == Path("/sys/fs/cgroup/memory/x")


def test_dirs_for_only_existing(tmp_path: Path) -> None:
    fixture = CgroupFixture(tmp_path, "hybrid")
    (fixture.root / "memory" / "a").mkdir()
    (fixture.root / "cpu,cpuacct" / "a").mkdir()
    h = hierarchy_from_root(fixture.root)
    dirs = h.dirs_for("a", only_existing=True)
    assert dirs.memory == fixture.root / "memory" / "a"
    assert dirs.cpu == fixture.root / "cpu" / "a"
    assert dirs.cpuacct == fixture.root / "cpuacct" / "a"
    assert dirs.blkio is None
    assert dirs.pids is None
    assert dirs.pressure is None  # not in unified/
    (fixture.root / "unified" / "a").mkdir()
    assert h.dirs_for("a", only_existing=True).pressure == fixture.root / "unified" / "a"


def test_read_mountinfo_of_the_fixture_copied_from_a_hybrid_host() -> None:
    path = Path(__file__).parent / "fixtures" / "proc" / "self" / "mountinfo"
    mounts = read_mountinfo(path)
    assert len(mounts) == len(path.read_text().splitlines())
    by_point = {str(m.mount_point): m for m in mounts}
    assert by_point["/sys/fs/cgroup/unified"].fs_type == "cgroup2"
    assert by_point["/sys/fs/cgroup/cpu"].super_options == ("rw", "cpu")
    assert hierarchy_from_mounts(mounts).mode == "hybrid"


def test_parse_mountinfo_bytes_keeps_undecodable_path_bytes() -> None:
    line = b"36 24 0:31 / /mnt/caf\xe9 rw - tmpfs tmpfs rw\n"
    (mount,) = parse_mountinfo(line)
    assert os.fsencode(mount.mount_point) == b"/mnt/caf\xe9"


def test_read_mountinfo_of_a_missing_file_is_vanished(tmp_path: Path) -> None:
    with pytest.raises(VanishedError):
        read_mountinfo(tmp_path / "mountinfo")
