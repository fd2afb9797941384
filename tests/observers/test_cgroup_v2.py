"""Tests for observers.readers.cgroup_v2 on fixtures in the kernel's formats and on this machine."""

from __future__ import annotations

import errno
import math
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from observers.readers import cgroup_v2 as v2
from observers.readers.errors import (
    AccessDeniedError,
    FileTooLargeError,
    MalformedFileError,
    OutOfRangeError,
    ReaderError,
    UnsupportedError,
    VanishedError,
    oserror_outcome,
    read_file_bytes,
    reader_error_from_oserror,
)
from observers.readers.limits import DEFAULT_MAX_BYTES, max_bytes_for

FIXTURES = Path(__file__).parent / "fixtures" / "cgroup_v2"
CONTAINER = FIXTURES / "container"
OLD_KERNEL = FIXTURES / "old_kernel"
HOST_ROOT = FIXTURES / "host_root"
UNIFIED = Path("/sys/fs/cgroup/unified")
LIVE_V2 = next(
    (p for p in (UNIFIED, Path("/sys/fs/cgroup")) if (p / "cgroup.controllers").exists()), None
)

needs_live_v2 = pytest.mark.skipif(
    LIVE_V2 is None, reason="no cgroup2 mount at /sys/fs/cgroup or /sys/fs/cgroup/unified"
)


# --- cpu.stat -------------------------------------------------------------------------------------


def test_cpu_stat_container() -> None:
    stat = v2.read_cpu_stat(CONTAINER)
    assert stat.usage_usec == 1824307511
    assert stat.user_usec == 1471820284
    assert stat.system_usec == 352487227
    assert stat.nr_periods == 172835
    assert stat.nr_throttled == 3179
    assert stat.throttled_usec == 86329412
    assert stat.nr_bursts == 12
    assert stat.burst_usec == 48211
    # Keys without a typed field are kept, under the kernel's spelling.
    assert stat.values["nice_usec"] == 0
    assert stat.values["core_sched.force_idle_usec"] == 0
    assert len(stat.values) == 10


def test_cpu_stat_without_controller_has_no_throttling_keys() -> None:
    stat = v2.read_cpu_stat(HOST_ROOT)
    assert (stat.usage_usec, stat.user_usec, stat.system_usec) == (119174355, 91652452, 27521903)
    assert stat.nr_periods is None
    assert stat.throttled_usec is None
    assert stat.burst_usec is None
    assert dict(stat.values) == {
        "usage_usec": 119174355,
        "user_usec": 91652452,
        "system_usec": 27521903,
        "nice_usec": 0,
    }


def test_cpu_stat_old_kernel_has_no_burst_keys() -> None:
    stat = v2.read_cpu_stat(OLD_KERNEL)
    assert stat.throttled_usec == 0
    assert stat.nr_bursts is None
    assert stat.burst_usec is None


def test_cpu_stat_empty_is_all_none() -> None:
    stat = v2.parse_cpu_stat(b"", "cpu.stat")
    assert stat == v2.CpuStat({})
    assert stat.usage_usec is None


def test_cpu_stat_unknown_key_ignored_by_typed_fields() -> None:
    stat = v2.parse_cpu_stat(b"usage_usec 5\nfuture_key 7\n", "cpu.stat")
    assert stat.usage_usec == 5
    assert stat.values == {"usage_usec": 5, "future_key": 7}
    assert not hasattr(stat, "future_key")


def test_cpu_stat_is_frozen_and_hashable() -> None:
    stat = v2.parse_cpu_stat(b"usage_usec 5\n", "cpu.stat")
    with pytest.raises(AttributeError):
        stat.usage_usec = 6  # type: ignore[misc]
    assert hash(stat) == hash(v2.parse_cpu_stat(b"usage_usec 5\n", "cpu.stat"))


@pytest.mark.parametrize(
    ("data", "line", "fragment"),
    [
        (b"usage_usec 5\nuser_usec 3\ngarbage\n", 3, "expected 'key value', got b'garbage'"),
        (b"usage_usec five\n", 1, "value is not an integer"),
        (b"usage_usec 5\nuser_usec 3 4\n", 2, "expected 'key value'"),
        (b"usage_usec 5\n\xff\xfe 3\n", 2, "key is not UTF-8"),
    ],
)
def test_cpu_stat_malformed_names_path_and_line(data: bytes, line: int, fragment: str) -> None:
    path = "/sys/fs/cgroup/x/cpu.stat"
    with pytest.raises(MalformedFileError) as info:
        v2.parse_cpu_stat(data, path)
    err = info.value
    assert str(err).startswith(f"{path}:{line}: ")
    assert fragment in str(err)
    assert err.path == path
    assert err.line_number == line
    assert isinstance(err, ValueError)


def test_malformed_message_matches_documented_example() -> None:
    with pytest.raises(MalformedFileError) as info:
        v2.parse_cpu_stat(b"a 1\nb 2\ngarbage\n", "/sys/fs/cgroup/x/cpu.stat")
    assert str(info.value) == "/sys/fs/cgroup/x/cpu.stat:3: expected 'key value', got b'garbage'"


def test_flat_keyed_tolerates_blank_lines_and_missing_final_newline() -> None:
    assert v2.parse_flat_keyed(b"a 1\n\nb 2", "f") == {"a": 1, "b": 2}
    assert v2.parse_flat_keyed(b"\n", "f") == {}


def test_malformed_message_quotes_at_most_80_bytes() -> None:
    with pytest.raises(MalformedFileError) as info:
        v2.parse_cpu_stat(b"x" * 100_000 + b"\n", "cpu.stat")
    assert len(str(info.value)) < 200


# --- cpu.max, cpu.weight --------------------------------------------------------------------------


def test_cpu_max_limited() -> None:
    assert v2.read_cpu_max(CONTAINER) == v2.CpuMax(quota_usec=200000, period_usec=100000)


def test_cpu_max_unlimited() -> None:
    assert v2.parse_cpu_max(b"max 100000\n", "cpu.max") == v2.CpuMax(None, 100000)


@pytest.mark.parametrize("data", [b"", b"max\n", b"max max\n", b"1 2 3\n", b"x 100000\n"])
def test_cpu_max_malformed(data: bytes) -> None:
    with pytest.raises(MalformedFileError, match=r"^cpu\.max:1: "):
        v2.parse_cpu_max(data, "cpu.max")


def test_cpu_weight() -> None:
    assert v2.read_cpu_weight(CONTAINER) == 100


# --- single-value files ---------------------------------------------------------------------------


def test_single_value_files() -> None:
    assert v2.read_memory_current(CONTAINER) == 758525952
    assert v2.read_memory_peak(CONTAINER) == 981487616
    assert v2.read_memory_max(CONTAINER) == 1073741824
    assert v2.read_memory_high(CONTAINER) is None
    assert v2.read_memory_low(CONTAINER) == 0
    assert v2.read_memory_min(CONTAINER) == 0
    assert v2.read_memory_swap_current(CONTAINER) == 0
    assert v2.read_memory_swap_max(CONTAINER) is None
    assert v2.read_pids_current(CONTAINER) == 37
    assert v2.read_pids_max(CONTAINER) == 4096


@pytest.mark.parametrize(
    ("data", "expected"), [(b"max\n", None), (b"max", None), (b"0\n", 0), (b"4096\n", 4096)]
)
def test_int_or_max(data: bytes, expected: int | None) -> None:
    assert v2.parse_int_or_max(data, "pids.max") == expected


@pytest.mark.parametrize(
    ("data", "line"), [(b"", 1), (b"\n", 1), (b"12abc\n", 1), (b"1\n2\n", 2), (b"max max\n", 1)]
)
def test_int_or_max_malformed(data: bytes, line: int) -> None:
    with pytest.raises(MalformedFileError) as info:
        v2.parse_int_or_max(data, "memory.max")
    assert info.value.line_number == line


def test_single_int_rejects_max() -> None:
    with pytest.raises(MalformedFileError, match=r"^memory\.current:1: expected an integer"):
        v2.parse_single_int(b"max\n", "memory.current")


# --- values no kernel writes ----------------------------------------------------------------------

MEMORY_STAT = (CONTAINER / "memory.stat").read_bytes()

#: (parser, content, line, what the message says): a number in the kernel's syntax that the
#: kernel never prints in that file.
OUT_OF_RANGE: list[tuple[Callable[[bytes, str], object], bytes, int, str]] = [
    (v2.parse_single_int, b"18446744073709551617\n", 1, "above 2**64-1"),
    (v2.parse_single_int, b"18446744073709551615\n", 1, "int64"),
    (v2.parse_single_int, b"9223372036854775808\n", 1, "int64"),
    (v2.parse_single_int, b"-7\n", 1, "negative"),
    (v2.parse_single_int, b"-0\n", 1, "negative"),
    (v2.parse_single_int, b"9" * 5000 + b"\n", 1, "above 2**64-1"),
    (v2.parse_int_or_max, b"-1\n", 1, "negative"),
    (v2.parse_int_or_max, b"18446744073709551617\n", 1, "above 2**64-1"),
    (v2.parse_cpu_weight, b"10001\n", 1, "cpu.weight (0..10000)"),
    (v2.parse_cpu_max, b"-1 100000\n", 1, "negative"),
    (v2.parse_cpu_max, b"max 999\n", 1, "CFS period"),
    (v2.parse_cpu_max, b"50000 1000001\n", 1, "CFS period"),
    (v2.parse_cpu_stat, b"usage_usec 1\nuser_usec -5\n", 2, "negative"),
    (v2.parse_memory_stat, MEMORY_STAT + b"anon_new 18446744073709551617\n", 59, "2**64-1"),
    (v2.parse_memory_events, b"low 0\nhigh 0\nmax -1\n", 3, "negative"),
    (v2.parse_pressure, b"some avg10=100.01 avg60=0.00 avg300=0.00 total=0\n", 1, "PSI"),
    (v2.parse_pressure, b"some avg10=0.00 avg60=0.00 avg300=0.00 total=-1\n", 1, "negative"),
    (v2.parse_pressure, b"full avg10=-1.00 avg60=0.00 avg300=0.00 total=0\n", 1, "PSI"),
    (v2.parse_io_stat, b"8:0 rbytes=1 wbytes=-2 rios=0 wios=0 dbytes=0 dios=0\n", 1, "negative"),
    (v2.parse_io_stat, b"8:0 rbytes=1\n8:16 rios=18446744073709551617\n", 2, "2**64-1"),
    (v2.parse_io_stat, b"4294967296:0 rbytes=1\n", 1, "device number"),
    (v2.parse_io_stat, b"8:0 rbytes=1 cost.vrate=-3.5\n", 1, "non-negative"),
]


@pytest.mark.parametrize(
    ("parse", "data", "line", "said"),
    OUT_OF_RANGE,
    ids=[f"{p.__name__}-{d[:24]!r}" for p, d, _, _ in OUT_OF_RANGE],
)
def test_a_number_no_kernel_writes_is_refused(
    parse: Callable[[bytes, str], object], data: bytes, line: int, said: str
) -> None:
    with pytest.raises(OutOfRangeError) as info:
        parse(data, "/cg/file")
    assert info.value.path == "/cg/file"
    assert info.value.line_number == line
    assert str(info.value).startswith(f"/cg/file:{line}: ")
    assert said in str(info.value)
    assert len(str(info.value)) < 300  # a 5,000-digit value is quoted short
    assert isinstance(info.value, MalformedFileError)  # callers that catch malformed still do


@pytest.mark.parametrize(
    ("parse", "data", "expected"),
    [
        (v2.parse_single_int, b"9223372036854775807\n", 2**63 - 1),
        (v2.parse_single_int, b"0\n", 0),
        (v2.parse_single_int, b" 12 \n", 12),
        (v2.parse_int_or_max, b"9223372036854775807\n", 2**63 - 1),
        (v2.parse_cpu_weight, b"0\n", 0),
        (v2.parse_cpu_weight, b"10000\n", 10000),
        (v2.parse_cpu_max, b"max 1000\n", v2.CpuMax(None, 1000)),
        (v2.parse_cpu_max, b"0 1000000\n", v2.CpuMax(0, 1000000)),
    ],
)
def test_the_bounds_of_each_range_are_accepted(
    parse: Callable[[bytes, str], object], data: bytes, expected: object
) -> None:
    assert parse(data, "f") == expected


@pytest.mark.parametrize("data", [b"+5\n", b"1_000\n", b"0x10\n", b"1e3\n", b"5.0\n"])
def test_a_number_not_in_the_kernels_syntax_is_malformed(data: bytes) -> None:
    with pytest.raises(MalformedFileError) as info:
        v2.parse_single_int(data, "memory.current")
    assert type(info.value) is MalformedFileError
    with pytest.raises(MalformedFileError) as keyed:
        v2.parse_memory_stat(b"anon 1\nfile " + data, "memory.stat")
    assert type(keyed.value) is MalformedFileError and keyed.value.line_number == 2


def test_the_fast_and_the_exact_path_agree_on_a_duplicate_key() -> None:
    assert v2.parse_flat_keyed(b"a 1\nb 2\na 3\n", "f") == {"a": 3, "b": 2}


# --- memory.stat ----------------------------------------------------------------------------------


def test_memory_stat_container() -> None:
    stat = v2.read_memory_stat(CONTAINER)
    assert stat.anon == 527106048
    assert stat.file == 183853056
    assert stat.kernel == 41369600
    assert stat.kernel_stack == 1933312
    assert stat.slab == 34627312
    assert stat.sock == 4096
    assert stat.shmem == 1359872
    assert stat.file_mapped == 64208896
    assert stat.file_dirty == 405504
    assert stat.file_writeback == 0
    assert stat.active_anon == 1249280
    assert stat.inactive_anon == 527212544
    assert stat.active_file == 68091904
    assert stat.inactive_file == 114401280
    assert stat.unevictable == 0
    assert stat.pgfault == 3319771
    assert stat.pgmajfault == 1270
    assert stat.workingset_refault_anon == 0
    assert stat.workingset_refault_file == 9021
    assert stat.anon_thp == 260046848
    assert stat.thp_collapse_alloc == 11
    assert len(stat.values) == 58
    # Keys without a typed field are still there.
    assert stat.values["sec_pagetables"] == 0
    assert stat.values["pgsteal_direct"] == 35871
    assert stat.values["thp_swpout_fallback"] == 0


def test_memory_stat_old_kernel_missing_keys_are_none() -> None:
    stat = v2.read_memory_stat(OLD_KERNEL)
    assert stat.anon == 8523776
    assert stat.kernel is None
    assert stat.workingset_refault_anon is None
    assert stat.workingset_refault_file is None
    assert stat.values["workingset_refault"] == 0
    assert stat.vmalloc is None


def test_memory_stat_typed_fields_match_values() -> None:
    stat = v2.read_memory_stat(CONTAINER)
    for name, value in stat.values.items():
        if hasattr(stat, name):
            assert getattr(stat, name) == value


# --- memory.events --------------------------------------------------------------------------------


def test_memory_events() -> None:
    events = v2.read_memory_events(CONTAINER)
    assert (events.low, events.high, events.max) == (0, 0, 1893)
    assert (events.oom, events.oom_kill, events.oom_group_kill) == (2, 2, 0)
    assert events.sock_throttled is None


def test_memory_events_old_kernel() -> None:
    events = v2.read_memory_events(OLD_KERNEL)
    assert events.oom_kill == 0
    assert events.oom_group_kill is None


# --- pressure -------------------------------------------------------------------------------------


def test_pressure_container() -> None:
    cpu = v2.read_cpu_pressure(CONTAINER)
    assert cpu.some == v2.PressureLine(1.52, 0.87, 0.31, 90417533)
    assert cpu.full == v2.PressureLine(1.10, 0.62, 0.22, 71102974)
    assert v2.read_memory_pressure(CONTAINER).full == v2.PressureLine(0.0, 0.07, 0.12, 2648851)
    assert v2.read_io_pressure(CONTAINER).some == v2.PressureLine(0.31, 0.19, 0.09, 5113260)


def test_pressure_host_root() -> None:
    assert v2.read_cpu_pressure(HOST_ROOT) == v2.Pressure(
        some=v2.PressureLine(0.21, 0.21, 0.22, 5007967),
        full=v2.PressureLine(0.0, 0.0, 0.0, 0),
    )


def test_cpu_pressure_without_full_line() -> None:
    pressure = v2.read_cpu_pressure(OLD_KERNEL)
    assert pressure.some == v2.PressureLine(0.0, 0.0, 0.0, 1419021)
    assert pressure.full is None


def test_pressure_tolerates_unknown_keys_and_lines() -> None:
    data = b"some avg10=0.50 avg60=0.25 avg300=0.10 total=10 avg1=9.99\nmore x=1\n"
    assert v2.parse_pressure(data, "p") == v2.Pressure(v2.PressureLine(0.5, 0.25, 0.1, 10))
    assert v2.parse_pressure(b"", "p") == v2.Pressure(None, None)
    assert v2.parse_pressure(b"some total=3\n", "p").some == v2.PressureLine(None, None, None, 3)


@pytest.mark.parametrize(
    ("data", "line"),
    [
        (b"some avg10=0.00 avg60 avg300=0.00 total=0\n", 1),
        (b"some avg10=0.00 avg60=0.00 avg300=0.00 total=0\nfull avg10=x\n", 2),
        (b"some total=1.5\n", 1),
    ],
)
def test_pressure_malformed(data: bytes, line: int) -> None:
    with pytest.raises(MalformedFileError) as info:
        v2.parse_pressure(data, "cpu.pressure")
    assert info.value.line_number == line


# --- io.stat --------------------------------------------------------------------------------------


def test_io_stat_documented_example() -> None:
    devices = v2.read_io_stat(CONTAINER)
    assert [(d.major, d.minor) for d in devices] == [(8, 16), (8, 0)]
    first, second = devices
    assert (first.rbytes, first.wbytes, first.rios, first.wios) == (1459200, 314773504, 192, 353)
    assert (first.dbytes, first.dios) == (0, 0)
    assert second.dbytes == 50331648
    assert second.dios == 3021
    assert dict(second.values) == {
        "rbytes": 90430464,
        "wbytes": 299008000,
        "rios": 8950,
        "wios": 1252,
        "dbytes": 50331648,
        "dios": 3021,
    }


def test_io_stat_controller_and_debug_keys() -> None:
    root, idle, ssd = v2.read_io_stat(FIXTURES / "iocost_root")
    assert (root.major, root.minor) == (259, 0)
    assert root.rbytes == 2048311296
    assert root.values["cost.vrate"] == 100.0
    assert isinstance(root.values["cost.vrate"], float)
    assert root.values["cost.usage"] == 31852131
    # A device with no I/O and no policy data: the kernel prints "253:0 " and nothing else.
    assert idle == v2.IoDeviceStat(253, 0, {})
    assert idle.rbytes is None
    assert ssd.values["depth"] == math.inf
    assert ssd.values["use_delay"] == 1
    assert ssd.values["delay_nsec"] == 2000000


def test_io_stat_older_kernel_without_discard() -> None:
    (dev,) = v2.parse_io_stat(b"8:0 rbytes=1 wbytes=2 rios=3 wios=4\n", "io.stat")
    assert (dev.rbytes, dev.wbytes, dev.rios, dev.wios) == (1, 2, 3, 4)
    assert dev.dbytes is None
    assert dev.dios is None


def test_io_stat_empty() -> None:
    assert v2.parse_io_stat(b"", "io.stat") == ()


@pytest.mark.parametrize(
    ("data", "line"),
    [
        (b"8:0 rbytes=1\nsda rbytes=1\n", 2),
        (b"8 rbytes=1\n", 1),
        (b"8:0 rbytes\n", 1),
        (b"8:0 rbytes=abc\n", 1),
        (b"8:0 rbytes=1.5\n", 1),
        (b"8:0 =5\n", 1),
        (b"8:0 x=nan\n", 1),
    ],
)
def test_io_stat_malformed(data: bytes, line: int) -> None:
    with pytest.raises(MalformedFileError) as info:
        v2.parse_io_stat(data, "io.stat")
    assert info.value.line_number == line


# --- cgroup.procs ---------------------------------------------------------------------------------


def test_cgroup_procs() -> None:
    assert v2.read_cgroup_procs(CONTAINER) == v2.CgroupProcs((1287, 1301, 1302, 1455))


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"", ()),
        (b"\n", ()),
        (b"42", (42,)),
        # A process outside the reader's pid namespace is printed as 0.
        (b"0\n0\n17\n", (0, 0, 17)),
        (b"4194303\n", (4194303,)),
    ],
)
def test_cgroup_procs_edge_cases(data: bytes, expected: tuple[int, ...]) -> None:
    assert v2.parse_cgroup_procs(data, "cgroup.procs") == v2.CgroupProcs(expected)


@pytest.mark.parametrize(
    ("data", "pids", "line", "kind"),
    [
        (b"1\n2 3\n", (1,), 2, MalformedFileError),
        (b"1\nabc\n7\n", (1, 7), 2, MalformedFileError),
        (b"1\n\n2\n", (1, 2), 2, MalformedFileError),
        (b" 5\n6\n", (6,), 1, MalformedFileError),
        (b"1\n2\n+\n", (1, 2), 3, MalformedFileError),
        (b"+9\n4\n", (4,), 1, MalformedFileError),
        (b"4\n1_0\n", (4,), 2, MalformedFileError),
        (b"-5\n", (), 1, OutOfRangeError),
        (b"8\n-1\n", (8,), 2, OutOfRangeError),
        (b"8\n4294967297\n9\n", (8, 9), 2, OutOfRangeError),
        (b"4194304\n", (), 1, OutOfRangeError),
        (b"1\n" + b"9" * 100_000 + b"\n", (1,), 2, OutOfRangeError),
    ],
)
def test_cgroup_procs_bad_line_is_skipped_and_the_rest_kept(
    data: bytes, pids: tuple[int, ...], line: int, kind: type[MalformedFileError]
) -> None:
    procs = v2.parse_cgroup_procs(data, "/cg/cgroup.procs")
    assert procs.pids == pids
    [skipped] = procs.skipped
    assert type(skipped.first) is kind
    assert skipped.count == 1
    assert skipped.first.path == "/cg/cgroup.procs"
    assert isinstance(skipped.first, MalformedFileError)
    assert skipped.first.line_number == line
    assert str(skipped.first).startswith(f"/cg/cgroup.procs:{line}: ")
    assert len(str(skipped.first)) < 300


def test_cgroup_procs_counts_bad_lines_by_kind_with_the_first_of_each() -> None:
    data = b"1\nabc\n-2\n\n3\n99999999999\nx\n4\n"
    procs = v2.parse_cgroup_procs(data, "cgroup.procs")
    assert procs.pids == (1, 3, 4)
    by_kind = {type(s.first): (s.first.line_number, s.count) for s in procs.skipped}  # type: ignore[attr-defined]
    assert by_kind == {MalformedFileError: (2, 3), OutOfRangeError: (3, 2)}


def test_cgroup_procs_of_garbage_only_keeps_a_bounded_summary() -> None:
    """A megabyte of empty lines is two numbers, not 500,000 errors."""
    procs = v2.parse_cgroup_procs(b"\n" * (1 << 20), "cgroup.procs")
    assert procs.pids == ()
    [skipped] = procs.skipped
    assert skipped.count == 1 << 20


# --- errors: vanished, denied, other --------------------------------------------------------------


def test_vanished_cgroup(tmp_path: Path) -> None:
    gone = tmp_path / "no-such-cgroup"
    with pytest.raises(VanishedError) as info:
        v2.read_cpu_stat(gone)
    assert info.value.path == f"{gone}/cpu.stat"
    assert info.value.errno == errno.ENOENT
    assert isinstance(info.value.__cause__, FileNotFoundError)


@pytest.mark.parametrize(
    "reader",
    [
        v2.read_cpu_stat,
        v2.read_cpu_max,
        v2.read_cpu_weight,
        v2.read_memory_current,
        v2.read_memory_max,
        v2.read_memory_stat,
        v2.read_memory_events,
        v2.read_cpu_pressure,
        v2.read_io_stat,
        v2.read_cgroup_procs,
        v2.read_pids_max,
    ],
)
def test_every_reader_reports_a_vanished_cgroup(
    reader: Callable[[Path], object], tmp_path: Path
) -> None:
    with pytest.raises(VanishedError):
        reader(tmp_path / "gone")


@pytest.mark.parametrize(
    ("code", "kind"),
    [
        (errno.ENOENT, VanishedError),
        (errno.ESRCH, VanishedError),
        (errno.ENODEV, VanishedError),
        (errno.EACCES, AccessDeniedError),
        (errno.EPERM, AccessDeniedError),
    ],
)
def test_oserror_mapping(code: int, kind: type[ReaderError]) -> None:
    err = reader_error_from_oserror(OSError(code, os.strerror(code)), "/x/cpu.stat")
    assert type(err) is kind
    assert err.path == "/x/cpu.stat"
    assert err.errno == code


def test_eopnotsupp_is_unsupported() -> None:
    err = reader_error_from_oserror(OSError(errno.EOPNOTSUPP, "not supported"), "/x/cpu.pressure")
    assert type(err) is UnsupportedError
    assert err.errno == errno.EOPNOTSUPP
    assert "/x/cpu.pressure" in str(err)


def test_other_oserror_is_a_plain_reader_error() -> None:
    err = reader_error_from_oserror(OSError(errno.EIO, "I/O error"), "/x/io.stat")
    assert type(err) is ReaderError
    assert err.errno == errno.EIO
    assert str(err) == "/x/io.stat: I/O error"


@pytest.mark.parametrize(
    ("code", "outcome"),
    [
        (errno.ENOENT, "vanished"),
        (errno.ENOTDIR, "vanished"),
        (errno.ESRCH, "vanished"),
        (errno.ENODEV, "vanished"),
        (errno.EACCES, "access_denied"),
        (errno.EPERM, "access_denied"),
        (errno.EOPNOTSUPP, "unsupported"),
        (errno.EIO, "other"),
        (errno.EINVAL, "other"),
    ],
)
def test_oserror_outcome(code: int, outcome: str) -> None:
    assert oserror_outcome(OSError(code, os.strerror(code))) == outcome


def test_oserror_outcome_of_real_directory_errors(tmp_path: Path) -> None:
    # What discovery and the hierarchy see: scandir and stat of a removed directory, and of a
    # path through a file.
    with pytest.raises(OSError) as gone:
        os.scandir(tmp_path / "removed")
    assert oserror_outcome(gone.value) == "vanished"
    (tmp_path / "file").write_text("")
    with pytest.raises(OSError) as through_file:
        os.stat(tmp_path / "file" / "child")
    assert oserror_outcome(through_file.value) == "vanished"
    assert oserror_outcome(OSError("no errno")) == "other"


def test_access_denied_by_file_mode(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        pytest.skip("running as root: file modes do not deny reads to root")
    locked = tmp_path / "cpu.stat"
    locked.write_bytes(b"usage_usec 1\n")
    locked.chmod(0)
    with pytest.raises(AccessDeniedError):
        v2.read_cpu_stat(tmp_path)


def test_access_denied_from_open(monkeypatch: pytest.MonkeyPatch) -> None:
    def deny(path: str, flags: int) -> int:
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), path)

    monkeypatch.setattr("observers.readers.errors.os.open", deny)
    with pytest.raises(AccessDeniedError) as info:
        v2.read_memory_stat("/sys/fs/cgroup/some.slice")
    assert info.value.path == "/sys/fs/cgroup/some.slice/memory.stat"
    assert info.value.errno == errno.EACCES


def test_removed_cgroup_kept_fd_reads_enodev(monkeypatch: pytest.MonkeyPatch) -> None:
    def gone(fd: int, size: int, offset: int) -> bytes:
        raise OSError(errno.ENODEV, os.strerror(errno.ENODEV))

    monkeypatch.setattr("observers.readers.errors.os.pread", gone)
    with pytest.raises(VanishedError):
        read_file_bytes("/sys/fs/cgroup/x/cpu.stat", fd=99)


def test_other_errno_from_a_real_write_only_file() -> None:
    path = Path("/sys/fs/cgroup/memory/memory.force_empty")
    if not path.exists():
        pytest.skip(f"{path} absent: no v1 memory hierarchy on this machine")
    with pytest.raises(ReaderError) as info:
        read_file_bytes(str(path))
    assert type(info.value) is ReaderError
    assert info.value.errno is not None


def test_kept_fd_reread_sees_new_content(tmp_path: Path) -> None:
    target = tmp_path / "cpu.stat"
    target.write_bytes(b"usage_usec 1\n")
    fd = os.open(target, os.O_RDONLY)
    try:
        first = v2.parse_cpu_stat(read_file_bytes(str(target), fd), str(target))
        target.write_bytes(b"usage_usec 22\nuser_usec 3\n")
        second = v2.parse_cpu_stat(read_file_bytes(str(target), fd), str(target))
    finally:
        os.close(fd)
    assert first.usage_usec == 1
    assert (second.usage_usec, second.user_usec) == (22, 3)


def test_read_file_bytes_reads_past_the_first_chunk(tmp_path: Path) -> None:
    big = tmp_path / "cgroup.procs"
    payload = b"".join(b"%d\n" % pid for pid in range(1, 20000))
    big.write_bytes(payload)
    assert read_file_bytes(str(big)) == payload
    fd = os.open(big, os.O_RDONLY)
    try:
        assert read_file_bytes(str(big), fd) == payload
    finally:
        os.close(fd)
    assert v2.read_cgroup_procs(tmp_path).pids == tuple(range(1, 20000))


# --- bytes read per file -------------------------------------------------------------------------


def test_a_file_longer_than_its_cap_is_refused_with_the_lines_within_it(tmp_path: Path) -> None:
    big = tmp_path / "memory.stat"
    big.write_bytes(MEMORY_STAT * (DEFAULT_MAX_BYTES // len(MEMORY_STAT) + 1))
    for fd in (None, os.open(big, os.O_RDONLY)):
        with pytest.raises(FileTooLargeError) as info:
            read_file_bytes(str(big), fd)
        if fd is not None:
            os.close(fd)
        assert info.value.max_bytes == DEFAULT_MAX_BYTES == max_bytes_for(str(big))
        assert info.value.path == str(big)
        head = info.value.head
        assert head.endswith(b"\n") and len(head) <= DEFAULT_MAX_BYTES
        assert big.read_bytes().startswith(head) and len(head) > DEFAULT_MAX_BYTES - 100
    with pytest.raises(FileTooLargeError):
        v2.read_memory_stat(tmp_path)


def test_a_file_of_exactly_its_cap_is_read_whole(tmp_path: Path) -> None:
    line = b"x 1\n"
    exact = tmp_path / "memory.stat"
    exact.write_bytes(line * (DEFAULT_MAX_BYTES // len(line)))
    assert len(exact.read_bytes()) == DEFAULT_MAX_BYTES
    assert read_file_bytes(str(exact)) == exact.read_bytes()


def test_a_huge_file_costs_no_memory_past_its_cap(tmp_path: Path) -> None:
    """A 256 MiB (sparse) memory.stat: read_file_bytes stops one byte past the 64 KiB cap."""
    import tracemalloc

    huge = tmp_path / "memory.stat"
    with huge.open("wb") as f:
        f.truncate(256 << 20)
    tracemalloc.start()
    try:
        with pytest.raises(FileTooLargeError):
            read_file_bytes(str(huge))
        _, peak_bytes = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak_bytes < 4 * DEFAULT_MAX_BYTES


def test_per_device_files_and_cgroup_procs_have_larger_caps() -> None:
    assert max_bytes_for("/cg/io.stat") == max_bytes_for("cgroup.procs") == 1 << 20
    assert max_bytes_for("/proc/1/smaps") == 16 << 20
    assert max_bytes_for("/cg/memory.current") == DEFAULT_MAX_BYTES


# --- this machine ---------------------------------------------------------------------------------


@needs_live_v2
def test_live_cpu_stat() -> None:
    assert LIVE_V2 is not None
    stat = v2.read_cpu_stat(LIVE_V2)
    assert stat.usage_usec is not None
    assert stat.user_usec is not None
    assert stat.system_usec is not None
    assert stat.usage_usec >= stat.user_usec


@needs_live_v2
def test_live_cgroup_procs() -> None:
    assert LIVE_V2 is not None
    procs = v2.read_cgroup_procs(LIVE_V2)
    assert procs.skipped == ()
    assert all(0 <= pid < 2**22 for pid in procs.pids)


@needs_live_v2
@pytest.mark.parametrize("name", ["cpu", "memory", "io"])
def test_live_pressure(name: str) -> None:
    assert LIVE_V2 is not None
    path = LIVE_V2 / f"{name}.pressure"
    if not path.exists():
        pytest.skip(f"{path} absent: kernel built without CONFIG_PSI")
    try:
        pressure = v2.parse_pressure(read_file_bytes(str(path)), str(path))
    except ReaderError as err:
        if err.errno == errno.EOPNOTSUPP:
            pytest.skip(f"{path}: PSI disabled on this kernel (psi=0)")
        raise
    assert pressure.some is not None
    assert pressure.some.total_usec is not None


@needs_live_v2
def test_live_memory_files_where_the_controller_is_enabled() -> None:
    assert LIVE_V2 is not None
    candidates = [p.parent for p in LIVE_V2.rglob("memory.stat")]
    if not candidates:
        pytest.skip("no cgroup2 directory with the memory controller on this machine")
    stat = v2.read_memory_stat(candidates[0])
    assert stat.anon is not None
    assert v2.read_memory_current(candidates[0]) >= 0
