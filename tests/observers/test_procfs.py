"""Tests for observers.readers.procfs on captured /proc files and on this process."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from observers.readers import procfs
from observers.readers.errors import (
    MalformedFileError,
    OutOfRangeError,
    VanishedError,
    read_file_bytes,
)

FIXTURES = Path(__file__).parent / "fixtures" / "proc"
SELF = FIXTURES / "self"
WEIRD = FIXTURES / "weird"
ZOMBIE = FIXTURES / "zombie"
KTHREAD = FIXTURES / "kthread"
LIVE_SELF = Path("/proc/self")

needs_proc = pytest.mark.skipif(not LIVE_SELF.exists(), reason="no /proc on this machine")


# --- stat -----------------------------------------------------------------------------------------


def test_stat_self() -> None:
    assert procfs.read_stat(SELF) == procfs.ProcStat(
        pid=10731,
        comm="python3",
        state="S",
        ppid=10690,
        pgrp=10688,
        session=2380,
        minflt=1927,
        majflt=0,
        utime_ticks=4,
        stime_ticks=0,
        cutime_ticks=0,
        cstime_ticks=0,
        priority=20,
        nice=0,
        num_threads=1,
        starttime_ticks=112079,
        vsize_bytes=16957440,
        rss_pages=3347,
        processor=0,
        delayacct_blkio_ticks=0,
    )


def test_stat_comm_with_spaces_and_parentheses() -> None:
    stat = procfs.read_stat(WEIRD)
    assert stat.pid == 10732
    assert stat.comm == "a) b (c) d"
    assert stat.state == "S"
    assert stat.ppid == 10690
    assert (stat.utime_ticks, stat.stime_ticks) == (2, 1)
    assert stat.processor == 1


def test_stat_zombie_and_kernel_thread() -> None:
    zombie = procfs.read_stat(ZOMBIE)
    assert zombie.state == "Z"
    assert zombie.rss_pages == 0
    kthread = procfs.read_stat(KTHREAD)
    assert (kthread.pid, kthread.comm, kthread.ppid) == (2, "kthreadd", 0)
    assert kthread.vsize_bytes == 0


def test_stat_short_line_from_an_old_kernel() -> None:
    # Fields up to rss only (24 fields): later ones stay None.
    data = b"7 (init) S 0 7 7 0 -1 256 10 0 2 0 5 6 0 0 20 0 1 0 100 4096 12\n"
    stat = procfs.parse_stat(data, "/proc/7/stat")
    assert stat.rss_pages == 12
    assert stat.starttime_ticks == 100
    assert stat.processor is None
    assert stat.delayacct_blkio_ticks is None


def test_stat_empty_means_vanished() -> None:
    with pytest.raises(VanishedError) as info:
        procfs.parse_stat(b"", "/proc/123/stat")
    assert info.value.path == "/proc/123/stat"


@pytest.mark.parametrize(
    "data",
    [
        b"garbage\n",
        b"12 (x S 1 2\n",
        b"12 x) S 1 2\n",
        b"abc (x) S 1 2\n",
        b"12 (x)\n",
        b"12 (x) S one 2\n",
    ],
)
def test_stat_malformed(data: bytes) -> None:
    with pytest.raises(MalformedFileError, match=r"^/proc/12/stat:1: "):
        procfs.parse_stat(data, "/proc/12/stat")


# --- status ---------------------------------------------------------------------------------------


def test_status_self() -> None:
    status = procfs.read_status(SELF)
    assert status.name == "python3"
    assert status.state == "S"
    assert (status.tgid, status.pid, status.ppid, status.threads) == (10731, 10731, 10690, 1)
    assert status.vm_rss_bytes == 13484 * 1024
    assert status.rss_anon_bytes == 6868 * 1024
    assert status.rss_file_bytes == 6616 * 1024
    assert status.rss_shmem_bytes == 0
    assert status.vm_swap_bytes == 0
    assert status.vm_peak_bytes == 16560 * 1024
    assert status.vm_hwm_bytes == 13484 * 1024
    assert status.vm_pte_bytes == 80 * 1024
    assert status.hugetlb_pages_bytes == 0
    assert (status.voluntary_ctxt_switches, status.nonvoluntary_ctxt_switches) == (1, 6)


def test_status_name_keeps_spaces_and_parentheses() -> None:
    assert procfs.read_status(WEIRD).name == "a) b (c) d"


def test_status_zombie_has_no_memory_lines() -> None:
    status = procfs.read_status(ZOMBIE)
    assert status.state == "Z"
    assert status.threads == 1
    assert status.vm_rss_bytes is None
    assert status.rss_anon_bytes is None
    assert status.vm_swap_bytes is None


def test_status_kernel_thread() -> None:
    status = procfs.read_status(KTHREAD)
    assert status.name == "kthreadd"
    assert status.vm_rss_bytes is None


def test_status_empty_means_vanished() -> None:
    with pytest.raises(VanishedError):
        procfs.parse_status(b"", "/proc/1/status")


@pytest.mark.parametrize(
    ("data", "line"),
    [
        (b"Name:\tx\nVmRSS:\t 12 MB\n", 2),
        (b"Name:\tx\nThreads:\tmany\n", 2),
        (b"Name:\tx\nno colon here\n", 2),
        (b"VmRSS:\t\n", 1),
    ],
)
def test_status_malformed(data: bytes, line: int) -> None:
    with pytest.raises(MalformedFileError) as info:
        procfs.parse_status(data, "/proc/1/status")
    assert info.value.line_number == line


# --- comm, cmdline --------------------------------------------------------------------------------


def test_comm() -> None:
    assert procfs.read_comm(SELF) == "python3"
    assert procfs.read_comm(WEIRD) == "a) b (c) d"
    assert procfs.parse_comm(b"bad\xff\n", "comm") == "bad\ufffd"


def test_comm_empty_means_vanished() -> None:
    with pytest.raises(VanishedError):
        procfs.parse_comm(b"", "/proc/1/comm")


def test_cmdline() -> None:
    args = procfs.read_cmdline(SELF)
    assert args[1:] == ("-c", "import time; time.sleep(5)", "arg with space", "")
    assert args[0].endswith("python3")


def test_cmdline_invalid_utf8_is_replaced() -> None:
    args = procfs.read_cmdline(WEIRD)
    assert args[-2:] == ("caf\u00e9", "bad\ufffdbyte")


def test_cmdline_empty_for_zombie_and_kernel_thread() -> None:
    assert procfs.read_cmdline(ZOMBIE) == ()
    assert procfs.read_cmdline(KTHREAD) == ()


def test_cmdline_rewritten_without_nul() -> None:
    assert procfs.parse_cmdline(b"nginx: worker process", "cmdline") == ("nginx: worker process",)
    assert procfs.parse_cmdline(b"\0", "cmdline") == ("",)


# --- smaps_rollup ---------------------------------------------------------------------------------


def test_smaps_rollup_self() -> None:
    rollup = procfs.read_smaps_rollup(SELF)
    kib = 1024
    assert rollup.rss_bytes == 13484 * kib
    assert rollup.pss_bytes == 9658 * kib
    assert rollup.pss_dirty_bytes == 6868 * kib
    assert rollup.pss_anon_bytes == 6868 * kib
    assert rollup.pss_file_bytes == 2790 * kib
    assert rollup.pss_shmem_bytes == 0
    assert rollup.shared_clean_bytes == 6596 * kib
    assert rollup.shared_dirty_bytes == 0
    assert rollup.private_clean_bytes == 20 * kib
    assert rollup.private_dirty_bytes == 6868 * kib
    assert rollup.referenced_bytes == 13484 * kib
    assert rollup.anonymous_bytes == 6868 * kib
    assert rollup.ksm_bytes == 0
    assert rollup.lazy_free_bytes == 0
    assert rollup.anon_huge_pages_bytes == 0
    assert rollup.shmem_pmd_mapped_bytes == 0
    assert rollup.file_pmd_mapped_bytes == 0
    assert rollup.shared_hugetlb_bytes == 0
    assert rollup.private_hugetlb_bytes == 0
    assert rollup.swap_bytes == 0
    assert rollup.swap_pss_bytes == 0
    assert rollup.locked_bytes == 0
    assert len(rollup.values) == 22
    assert rollup.values["Rss"] == 13484 * kib
    assert rollup.values["Pss_File"] == 2790 * kib


ROLLUP_HEADER = b"00400000-7fff5a3b1000 ---p 00000000 00:00 0                  [rollup]\n"


def test_smaps_rollup_old_kernel_and_unknown_lines() -> None:
    data = ROLLUP_HEADER + b"Rss:  8 kB\nPss:  4 kB\nFutureThing:  2 kB\nFutureCount:  3\n"
    rollup = procfs.parse_smaps_rollup(data, "smaps_rollup")
    assert (rollup.rss_bytes, rollup.pss_bytes) == (8192, 4096)
    assert rollup.pss_anon_bytes is None
    assert rollup.ksm_bytes is None
    assert rollup.values == {"Rss": 8192, "Pss": 4096, "FutureThing": 2048, "FutureCount": 3}


def test_smaps_rollup_empty_means_vanished() -> None:
    with pytest.raises(VanishedError):
        procfs.parse_smaps_rollup(b"", "/proc/9/smaps_rollup")


@pytest.mark.parametrize(
    ("data", "line"),
    [
        (b"Rss:  8 kB\n", 1),
        (ROLLUP_HEADER + b"Rss:  8 kB\nPss 4 kB\n", 3),
        (ROLLUP_HEADER + b"Rss:  eight kB\n", 2),
        (ROLLUP_HEADER + b"Rss:  8 MB\n", 2),
        (ROLLUP_HEADER + b"Rss:  8 kB extra\n", 2),
    ],
)
def test_smaps_rollup_malformed(data: bytes, line: int) -> None:
    with pytest.raises(MalformedFileError) as info:
        procfs.parse_smaps_rollup(data, "/proc/9/smaps_rollup")
    assert info.value.line_number == line
    assert str(info.value).startswith(f"/proc/9/smaps_rollup:{line}: ")


# --- smaps ----------------------------------------------------------------------------------------


def test_smaps_self_regions() -> None:
    regions = procfs.read_smaps(SELF)
    assert len(regions) == 27
    assert regions["[heap]"] == procfs.SmapsRegion(
        path="[heap]",
        mappings=1,
        size_bytes=1630208,
        rss_bytes=1576960,
        pss_bytes=1576960,
        shared_clean_bytes=0,
        shared_dirty_bytes=0,
        private_clean_bytes=0,
        private_dirty_bytes=1576960,
        anonymous_bytes=1576960,
        swap_bytes=0,
        swap_pss_bytes=0,
    )
    anon = regions[procfs.ANON_REGION]
    assert anon.mappings == 6
    assert anon.rss_bytes == 3907584
    libc = regions["/usr/lib/x86_64-linux-gnu/libc.so.6"]
    assert libc.mappings == 5
    assert (libc.size_bytes, libc.rss_bytes, libc.pss_bytes) == (1921024, 1363968, 258048)
    assert libc.shared_clean_bytes == 1339392
    assert regions["[stack]"].rss_bytes == 36864
    assert regions["[vdso]"].shared_clean_bytes == 4096


def test_smaps_rss_adds_up_to_the_rollup() -> None:
    # Captured together from a sleeping process; Pss can differ by rounding (the rollup sums
    # Pss before converting to kB), Rss cannot.
    regions = procfs.read_smaps(SELF)
    rollup = procfs.read_smaps_rollup(SELF)
    assert sum(r.rss_bytes or 0 for r in regions.values()) == rollup.rss_bytes
    assert sum(r.mappings for r in regions.values()) == 104


def test_smaps_empty_for_zombie() -> None:
    assert procfs.read_smaps(ZOMBIE) == {}


def test_smaps_missing_keys_stay_none() -> None:
    data = b"00400000-00452000 r-xp 00000000 08:02 173521      /usr/bin/dbus-daemon\nRss:  8 kB\n"
    (region,) = procfs.parse_smaps(data, "smaps").values()
    assert region.rss_bytes == 8192
    assert region.swap_pss_bytes is None


@pytest.mark.parametrize(
    ("data", "line"),
    [
        (b"Rss:  8 kB\n", 1),
        (b"00400000-00452000 r-xp 00000000 08:02 1 /bin/x\nRss:  8 MB\n", 2),
        (b"00400000-00452000 r-xp 00000000 08:02 1 /bin/x\nRss: -8 kB\n", 2),
        (b"00400000-00452000 r-xp 00000000 08:02 1 /bin/x\nnonsense line\n", 2),
    ],
)
def test_smaps_malformed(data: bytes, line: int) -> None:
    with pytest.raises(MalformedFileError) as info:
        procfs.parse_smaps(data, "/proc/1/smaps")
    assert info.value.line_number == line


# --- values no kernel writes ----------------------------------------------------------------------

STAT = (SELF / "stat").read_bytes()


def stat_with(field: int, value: bytes) -> bytes:
    """``/proc/self/stat``'s fixture with field number ``field`` (1-based, as in proc(5))."""
    head, rest = STAT.rsplit(b")", 1)
    fields = rest.split(b" ")  # fields[1] is field 3
    fields[field - 2] = value
    return head + b")" + b" ".join(fields)


@pytest.mark.parametrize(
    ("data", "said"),
    [
        (stat_with(14, b"-4"), "negative"),  # utime
        (stat_with(14, b"18446744073709551617"), "2**64-1"),
        (stat_with(23, b"9223372036854775808"), "int64"),  # vsize
        (stat_with(4, b"4194304"), "a pid"),  # ppid
        (stat_with(18, b"40"), "scheduling priority"),
        (stat_with(18, b"-101"), "scheduling priority"),
        (stat_with(19, b"20"), "nice"),
        (stat_with(19, b"-21"), "nice"),
        (b"-3 (x) S 1 2 3\n", "a pid"),
    ],
)
def test_stat_number_no_kernel_writes_is_refused(data: bytes, said: str) -> None:
    with pytest.raises(OutOfRangeError) as info:
        procfs.parse_stat(data, "/proc/12/stat")
    assert str(info.value).startswith("/proc/12/stat:1: ") and said in str(info.value)


def test_stat_signed_fields_within_their_range() -> None:
    """A real-time task's priority is negative, a niced task's nice; an untyped field may be
    negative too (tpgid is -1 without a terminal, as in the fixture)."""
    assert STAT.split(b") ", 1)[1].split()[5] == b"-1"  # field 8, tpgid
    stat = procfs.parse_stat(stat_with(18, b"-100"), "s")
    assert (stat.priority, stat.nice) == (-100, 0)
    assert procfs.parse_stat(stat_with(19, b"-20"), "s").nice == -20
    assert procfs.parse_stat(STAT, "s").utime_ticks == 4


@pytest.mark.parametrize(
    ("parse", "data", "line", "said"),
    [
        (procfs.parse_status, b"Name:\tx\nVmRSS:\t-5 kB\n", 2, "negative"),
        (procfs.parse_status, b"Name:\tx\nVmRSS:\t9007199254740992 kB\n", 2, "a size in kB"),
        (procfs.parse_status, b"Name:\tx\nPid:\t4194304\n", 2, "a pid"),
        (procfs.parse_status, b"Name:\tx\nThreads:\t-1\n", 2, "negative"),
        (procfs.parse_smaps_rollup, b"[rollup]\nRss: 1 kB\nPss: -1 kB\n", 3, "negative"),
        (procfs.parse_smaps_rollup, b"[rollup]\nRss: 9007199254740992 kB\n", 2, "a size in kB"),
        (
            procfs.parse_smaps,
            b"00400000-00452000 r-xp 00000000 08:02 1 /bin/x\nRss: 9007199254740992 kB\n",
            2,
            "a size in kB",
        ),
    ],
)
def test_a_size_or_count_no_kernel_writes_is_refused(
    parse: Callable[[bytes, str], object], data: bytes, line: int, said: str
) -> None:
    with pytest.raises(OutOfRangeError) as info:
        parse(data, "/proc/1/file")
    assert info.value.line_number == line
    assert str(info.value).startswith(f"/proc/1/file:{line}: ") and said in str(info.value)


def test_the_largest_size_in_kb_is_accepted() -> None:
    largest = (2**63 - 1) >> 10
    rollup = procfs.parse_smaps_rollup(b"[rollup]\nRss: %d kB\n" % largest, "r")
    assert rollup.values["Rss"] == largest << 10 <= 2**63 - 1


# --- vanished processes ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "reader",
    [
        procfs.read_stat,
        procfs.read_status,
        procfs.read_comm,
        procfs.read_cmdline,
        procfs.read_smaps_rollup,
        procfs.read_smaps,
    ],
)
def test_nonexistent_pid_dir(reader: Callable[[Path], object], tmp_path: Path) -> None:
    with pytest.raises(VanishedError):
        reader(tmp_path / "424242")


@pytest.fixture
def zombie_pid() -> Iterator[int]:
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        os._exit(0)
    deadline = time.monotonic() + 5
    while procfs.read_stat(procfs.proc_pid_dir(pid)).state != "Z":
        if time.monotonic() > deadline:  # pragma: no cover
            pytest.fail("child did not become a zombie")
        time.sleep(0.01)
    yield pid
    os.waitpid(pid, 0)


@needs_proc
def test_live_zombie(zombie_pid: int) -> None:
    directory = procfs.proc_pid_dir(zombie_pid)
    assert procfs.read_stat(directory).state == "Z"
    assert procfs.read_status(directory).vm_rss_bytes is None
    assert procfs.read_cmdline(directory) == ()
    with pytest.raises(VanishedError):  # no address space: ESRCH
        procfs.read_smaps_rollup(directory)


@needs_proc
def test_live_reaped_process_through_a_kept_fd() -> None:
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        os._exit(0)
    path = f"{procfs.proc_pid_dir(pid)}/stat"
    fd = os.open(path, os.O_RDONLY)
    try:
        assert procfs.parse_stat(read_file_bytes(path, fd), path).pid == pid
        os.waitpid(pid, 0)
        with pytest.raises(VanishedError):
            read_file_bytes(path, fd)
    finally:
        os.close(fd)
    with pytest.raises(VanishedError):
        procfs.read_stat(procfs.proc_pid_dir(pid))


# --- this process ---------------------------------------------------------------------------------


@needs_proc
def test_live_self() -> None:
    stat = procfs.read_stat(LIVE_SELF)
    assert stat.pid == os.getpid()
    assert stat.state in {"R", "S"}
    assert stat.num_threads is not None
    assert stat.num_threads >= 1
    status = procfs.read_status(LIVE_SELF)
    assert status.pid == os.getpid()
    assert status.vm_rss_bytes is not None
    assert status.vm_rss_bytes > 0
    assert procfs.read_comm(LIVE_SELF)
    assert procfs.read_cmdline(LIVE_SELF)


@needs_proc
def test_live_smaps() -> None:
    if not (LIVE_SELF / "smaps_rollup").exists():
        pytest.skip("/proc/self/smaps_rollup absent: kernel older than 4.14")
    rollup = procfs.read_smaps_rollup(LIVE_SELF)
    assert rollup.rss_bytes is not None
    assert rollup.rss_bytes > 0
    assert rollup.pss_bytes is not None
    regions = procfs.read_smaps(LIVE_SELF)
    assert "[heap]" in regions or procfs.ANON_REGION in regions
    assert sum(r.rss_bytes or 0 for r in regions.values()) > 0
