"""Tests for observers.readers.cgroup_v1 on fixtures in the kernel's formats and on this machine."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from observers.readers import cgroup_v1 as v1
from observers.readers.errors import MalformedFileError, OutOfRangeError, VanishedError

FIXTURES = Path(__file__).parent / "fixtures" / "cgroup_v1"
HOST_ROOT = FIXTURES / "host_root"
CONTAINER = FIXTURES / "container"
LIVE = Path("/sys/fs/cgroup")


def live_hierarchy(controller: str, probe: str) -> Path:
    """The root of the live v1 hierarchy holding ``controller``, or skip the test."""
    for candidate in (LIVE / controller, LIVE / f"cpu,{controller}", LIVE / f"{controller},cpu"):
        if (candidate / probe).exists():
            return candidate
    pytest.skip(f"no v1 {controller} hierarchy with {probe} on this machine")


# --- cpuacct --------------------------------------------------------------------------------------


def test_cpuacct_host_root() -> None:
    assert v1.read_cpuacct_usage_nsec(HOST_ROOT) == 123305590626
    stat = v1.read_cpuacct_stat(HOST_ROOT)
    assert (stat.user_ticks, stat.system_ticks) == (9483, 2846)
    assert dict(stat.values) == {"user": 9483, "system": 2846}


def test_cpuacct_container() -> None:
    assert v1.read_cpuacct_usage_nsec(CONTAINER) == 2113650917284
    stat = v1.read_cpuacct_stat(CONTAINER)
    assert stat == v1.CpuacctStat({"user": 171233, "system": 40127})
    assert (stat.user_ticks, stat.system_ticks) == (171233, 40127)


def test_cpuacct_stat_missing_key() -> None:
    stat = v1.parse_cpuacct_stat(b"user 5\n", "cpuacct.stat")
    assert stat.user_ticks == 5
    assert stat.system_ticks is None


# --- cpu ------------------------------------------------------------------------------------------


def test_cpu_stat_container() -> None:
    stat = v1.read_cpu_stat(CONTAINER)
    assert stat.nr_periods == 48211
    assert stat.nr_throttled == 1022
    assert stat.throttled_time_nsec == 61838127744
    assert stat.nr_bursts == 0
    assert stat.burst_time_nsec == 0
    assert stat.values["throttled_time"] == 61838127744


def test_cpu_stat_pre_5_14_has_no_burst_keys() -> None:
    stat = v1.parse_cpu_stat(b"nr_periods 3\nnr_throttled 1\nthrottled_time 900\n", "cpu.stat")
    assert (stat.nr_periods, stat.nr_throttled, stat.throttled_time_nsec) == (3, 1, 900)
    assert stat.nr_bursts is None
    assert stat.burst_time_nsec is None


def test_cpu_stat_unknown_key_kept_in_values() -> None:
    stat = v1.parse_cpu_stat(b"nr_periods 3\nwait_sum 12\n", "cpu.stat")
    assert stat.values == {"nr_periods": 3, "wait_sum": 12}
    assert stat.nr_periods == 3


def test_cfs_bandwidth() -> None:
    assert v1.read_cpu_cfs_quota_usec(HOST_ROOT) is None
    assert v1.read_cpu_cfs_period_usec(HOST_ROOT) == 100000
    assert v1.read_cpu_shares(HOST_ROOT) == 1024
    assert v1.read_cpu_cfs_quota_usec(CONTAINER) == 50000
    assert v1.read_cpu_cfs_period_usec(CONTAINER) == 100000
    assert v1.read_cpu_shares(CONTAINER) == 512


@pytest.mark.parametrize("data", [b"-2\n", b"max\n", b""])
def test_cfs_quota_malformed(data: bytes) -> None:
    with pytest.raises(MalformedFileError, match=r"^cpu\.cfs_quota_us:1: "):
        v1.parse_cfs_quota_usec(data, "cpu.cfs_quota_us")


# --- memory ---------------------------------------------------------------------------------------


def test_memory_single_values() -> None:
    assert v1.read_memory_usage_in_bytes(CONTAINER) == 45559808
    assert v1.read_memory_max_usage_in_bytes(CONTAINER) == 83714048
    assert v1.read_memory_failcnt(CONTAINER) == 0
    limit = v1.read_memory_limit_in_bytes(CONTAINER)
    assert limit == 9223372036854771712
    assert v1.is_unlimited_bytes(limit)
    assert v1.read_memory_usage_in_bytes(HOST_ROOT) == 473296896


@pytest.mark.parametrize(
    ("limit", "unlimited"),
    [
        (9223372036854771712, True),  # LONG_MAX rounded down to 4 KiB pages
        (9223372036854710272, True),  # ... to 64 KiB pages
        (2**62, True),
        (2**62 - 1, False),
        (536870912, False),
    ],
)
def test_is_unlimited_bytes(limit: int, unlimited: bool) -> None:
    assert v1.is_unlimited_bytes(limit) is unlimited


def test_memory_stat_container() -> None:
    stat = v1.read_memory_stat(CONTAINER)
    assert stat.cache == 41484288
    assert stat.rss == 1945600
    assert stat.rss_huge == 0
    assert stat.shmem == 0
    assert stat.mapped_file == 8192
    assert stat.dirty == 204800
    assert stat.swap == 0
    assert stat.pgfault == 419393
    assert stat.pgmajfault == 181
    assert stat.inactive_file == 4988928
    assert stat.active_file == 36495360
    assert stat.hierarchical_memory_limit == 9223372036854771712
    assert stat.total_cache == 41484288
    assert stat.total_inactive_file == 4988928
    assert stat.total_unevictable == 0
    # Newer keys without a typed field are kept.
    assert stat.values["workingset_refault_file"] == 16074
    assert stat.values["total_workingset_refault_file"] == 16074
    assert stat.values["swapcached"] == 0
    assert len(stat.values) == 42


def test_memory_stat_host_root_has_every_key() -> None:
    stat = v1.read_memory_stat(HOST_ROOT)
    for name, value in stat.values.items():
        if hasattr(stat, name):
            assert getattr(stat, name) == value
    assert stat.hierarchical_memsw_limit is not None


def test_memory_stat_without_swap_accounting() -> None:
    stat = v1.parse_memory_stat(b"cache 4096\nrss 8192\n", "memory.stat")
    assert (stat.cache, stat.rss) == (4096, 8192)
    assert stat.swap is None
    assert stat.hierarchical_memsw_limit is None


def test_oom_control() -> None:
    assert v1.read_memory_oom_control(CONTAINER) == v1.OomControl(
        {"oom_kill_disable": 0, "under_oom": 0, "oom_kill": 0},
        oom_kill_disable=False,
        under_oom=False,
        oom_kill=0,
    )
    stat = v1.parse_memory_oom_control(b"oom_kill_disable 1\nunder_oom 1\n", "memory.oom_control")
    assert stat.oom_kill_disable is True
    assert stat.under_oom is True
    assert stat.oom_kill is None  # before 4.13


def test_memory_stat_malformed() -> None:
    with pytest.raises(MalformedFileError) as info:
        v1.parse_memory_stat(b"cache 1\nrss 2\nrss_huge\n", "/sys/fs/cgroup/memory/x/memory.stat")
    assert str(info.value).startswith("/sys/fs/cgroup/memory/x/memory.stat:3: expected 'key value'")


# --- blkio ----------------------------------------------------------------------------------------


def test_blkio_io_service_bytes() -> None:
    stat = v1.read_blkio_throttle_io_service_bytes(CONTAINER)
    assert stat.total == 406663168
    assert [(d.major, d.minor) for d in stat.devices] == [(8, 16), (8, 0)]
    first = stat.devices[0]
    assert (first.read, first.write, first.sync, first.async_) == (
        1459200,
        314773504,
        300466688,
        15766016,
    )
    assert (first.discard, first.total) == (0, 316232704)
    assert dict(first.values) == {
        "Read": 1459200,
        "Write": 314773504,
        "Sync": 300466688,
        "Async": 15766016,
        "Discard": 0,
        "Total": 316232704,
    }


def test_blkio_io_serviced() -> None:
    stat = v1.read_blkio_throttle_io_serviced(CONTAINER)
    assert stat.total == 9495
    assert stat.devices[1] == v1.BlkioDeviceStat(
        8,
        0,
        {"Read": 8950, "Write": 0, "Sync": 8950, "Async": 0, "Discard": 0, "Total": 8950},
        read=8950,
        write=0,
        sync=8950,
        async_=0,
        discard=0,
        total=8950,
    )


def test_blkio_no_io() -> None:
    assert v1.read_blkio_throttle_io_service_bytes(HOST_ROOT) == v1.BlkioStat((), 0)
    assert v1.parse_blkio_rwstat(b"", "blkio") == v1.BlkioStat((), None)


def test_blkio_pre_4_19_without_discard() -> None:
    data = b"8:0 Read 1\n8:0 Write 2\n8:0 Sync 3\n8:0 Async 0\n8:0 Total 3\nTotal 3\n"
    (dev,) = v1.parse_blkio_rwstat(data, "blkio").devices
    assert dev.discard is None
    assert dev.total == 3


@pytest.mark.parametrize(
    ("data", "line"),
    [
        (b"8:0 Read 1\n8:0 Write\n", 2),
        (b"sda Read 1\n", 1),
        (b"8:0 Read x\n", 1),
        (b"Total\n", 1),
        (b"8:0 Read 1\nTotal 1 2\n", 2),
        (b"Grand 5\n", 1),
    ],
)
def test_blkio_malformed(data: bytes, line: int) -> None:
    with pytest.raises(MalformedFileError) as info:
        v1.parse_blkio_rwstat(data, "blkio.throttle.io_serviced")
    assert info.value.line_number == line


# --- pids, cgroup.procs ---------------------------------------------------------------------------


def test_pids_and_procs() -> None:
    assert v1.read_pids_current(CONTAINER) == 12
    assert v1.read_pids_max(CONTAINER) is None
    assert v1.read_cgroup_procs(CONTAINER).pids == (2359, 2380, 10529, 10530, 10553)


# --- values no kernel writes ----------------------------------------------------------------------

MEMORY_STAT = (CONTAINER / "memory.stat").read_bytes()


@pytest.mark.parametrize(
    ("parse", "data", "line", "said"),
    [
        (v1.parse_cfs_quota_usec, b"-2\n", 1, "-1 (-1.."),
        (v1.parse_cfs_quota_usec, b"9223372036854775808\n", 1, "int64"),
        (v1.parse_cfs_period_usec, b"0\n", 1, "CFS period"),
        (v1.parse_cfs_period_usec, b"1000001\n", 1, "CFS period"),
        (v1.parse_cpu_shares, b"1\n", 1, "cpu.shares"),
        (v1.parse_cpu_shares, b"262145\n", 1, "cpu.shares"),
        (v1.parse_memory_stat, MEMORY_STAT.replace(b"rss 1945600", b"rss -1945600"), 2, "negative"),
        (v1.parse_cpuacct_stat, b"user 1\nsystem 18446744073709551617\n", 2, "2**64-1"),
        (v1.parse_cpu_stat, b"nr_periods -1\n", 1, "negative"),
        (v1.parse_memory_oom_control, b"oom_kill_disable 0\noom_kill -4\n", 2, "negative"),
        (v1.parse_blkio_rwstat, b"8:0 Read -1\nTotal 0\n", 1, "negative"),
        (v1.parse_blkio_rwstat, b"8:0 Read 1\nTotal 9223372036854775808\n", 2, "int64"),
        (v1.parse_blkio_rwstat, b"8:4294967296 Read 1\nTotal 1\n", 1, "device number"),
    ],
)
def test_a_number_no_kernel_writes_is_refused(
    parse: Callable[[bytes, str], object], data: bytes, line: int, said: str
) -> None:
    with pytest.raises(OutOfRangeError) as info:
        parse(data, "/cg/file")
    assert info.value.line_number == line
    assert str(info.value).startswith(f"/cg/file:{line}: ") and said in str(info.value)


def test_the_bounds_of_the_v1_ranges_are_accepted() -> None:
    assert v1.parse_cfs_quota_usec(b"-1\n", "q") is None
    assert v1.parse_cfs_quota_usec(b"1000\n", "q") == 1000
    assert v1.parse_cfs_period_usec(b"1000\n", "p") == 1000
    assert v1.parse_cfs_period_usec(b"1000000\n", "p") == 1000000
    assert v1.parse_cpu_shares(b"2\n", "s") == 2
    assert v1.parse_cpu_shares(b"262144\n", "s") == 262144


# --- vanished -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "reader",
    [
        v1.read_cpuacct_usage_nsec,
        v1.read_cpuacct_stat,
        v1.read_cpu_stat,
        v1.read_cpu_cfs_quota_usec,
        v1.read_memory_limit_in_bytes,
        v1.read_memory_stat,
        v1.read_memory_oom_control,
        v1.read_blkio_throttle_io_service_bytes,
        v1.read_pids_max,
        v1.read_cgroup_procs,
    ],
)
def test_vanished_cgroup(reader: Callable[[Path], object], tmp_path: Path) -> None:
    with pytest.raises(VanishedError) as info:
        reader(tmp_path / "gone")
    assert info.value.path.startswith(str(tmp_path / "gone") + "/")


# --- this machine ---------------------------------------------------------------------------------


def test_live_cpuacct() -> None:
    root = live_hierarchy("cpuacct", "cpuacct.stat")
    stat = v1.read_cpuacct_stat(root)
    assert stat.user_ticks is not None
    assert stat.system_ticks is not None
    assert v1.read_cpuacct_usage_nsec(root) > 0


def test_live_cpu() -> None:
    root = live_hierarchy("cpu", "cpu.cfs_period_us")
    assert v1.read_cpu_cfs_period_usec(root) > 0
    assert v1.read_cpu_shares(root) > 0
    stat = v1.read_cpu_stat(root)
    assert stat.nr_periods is not None
    assert stat.throttled_time_nsec is not None


def test_live_memory() -> None:
    root = live_hierarchy("memory", "memory.stat")
    stat = v1.read_memory_stat(root)
    assert stat.total_cache is not None
    assert v1.read_memory_usage_in_bytes(root) > 0
    assert v1.read_memory_oom_control(root).under_oom is not None
    for child in sorted(p.parent for p in root.rglob("memory.limit_in_bytes")):
        v1.read_memory_limit_in_bytes(child)
        v1.read_memory_stat(child)
        v1.read_cgroup_procs(child)


def test_live_blkio() -> None:
    root = live_hierarchy("blkio", "blkio.throttle.io_service_bytes")
    stat = v1.read_blkio_throttle_io_service_bytes(root)
    assert stat.total is not None
    v1.read_blkio_throttle_io_serviced(root)


def test_live_pids() -> None:
    root = live_hierarchy("pids", "cgroup.procs")
    v1.read_cgroup_procs(root)
    children = sorted(p.parent for p in root.rglob("pids.current"))
    if not children:
        pytest.skip("the v1 pids hierarchy has no child cgroups (pids.* exist only below the root)")
    assert v1.read_pids_current(children[0]) >= 0
    v1.read_pids_max(children[0])
