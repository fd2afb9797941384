"""Robustness of every kernel-file parser against truncated, empty, garbage and huge input.

The parsers are those of :mod:`observers.readers`, the only ones production uses (checked by
``test_production_parses_only_with_fuzzed_parsers``). The contract: a parser returns a value or
raises MalformedFileError, nothing else. The only
exception is empty input to the /proc parsers of files a live (or zombie) process never leaves
empty (stat, status, comm, smaps_rollup): that means the process is gone, and they raise
VanishedError. The empty-input outcome of every parser is pinned down in EMPTY_OUTCOMES.
"""

from __future__ import annotations

import ast
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from observers.readers import cgroup_v1 as v1
from observers.readers import cgroup_v2 as v2
from observers.readers import mountinfo, numbers, procfs
from observers.readers.errors import MalformedFileError, OutOfRangeError, VanishedError
from observers.readers.numbers import IntRange

FIXTURES = Path(__file__).parent / "fixtures"
SRC = Path(__file__).resolve().parents[2] / "src" / "observers"

Parser = Callable[[bytes, str], object]


@dataclass(frozen=True)
class Case:
    name: str
    parse: Parser
    sample: Path
    vanishes_when_empty: bool = False


CASES = [
    Case("v2.flat_keyed", v2.parse_flat_keyed, FIXTURES / "cgroup_v2/host_root/cgroup.stat"),
    Case("v2.single_int", v2.parse_single_int, FIXTURES / "cgroup_v2/container/memory.current"),
    Case("v2.int_or_max", v2.parse_int_or_max, FIXTURES / "cgroup_v2/container/memory.high"),
    Case("v2.cgroup_procs", v2.parse_cgroup_procs, FIXTURES / "cgroup_v2/container/cgroup.procs"),
    Case("v2.cpu_stat", v2.parse_cpu_stat, FIXTURES / "cgroup_v2/container/cpu.stat"),
    Case("v2.cpu_max", v2.parse_cpu_max, FIXTURES / "cgroup_v2/container/cpu.max"),
    Case("v2.cpu_weight", v2.parse_cpu_weight, FIXTURES / "cgroup_v2/container/cpu.weight"),
    Case("v2.memory_stat", v2.parse_memory_stat, FIXTURES / "cgroup_v2/container/memory.stat"),
    Case(
        "v2.memory_events", v2.parse_memory_events, FIXTURES / "cgroup_v2/container/memory.events"
    ),
    Case("v2.pressure", v2.parse_pressure, FIXTURES / "cgroup_v2/container/io.pressure"),
    Case("v2.io_stat", v2.parse_io_stat, FIXTURES / "cgroup_v2/iocost_root/io.stat"),
    Case("v1.cpuacct_stat", v1.parse_cpuacct_stat, FIXTURES / "cgroup_v1/container/cpuacct.stat"),
    Case("v1.cpu_stat", v1.parse_cpu_stat, FIXTURES / "cgroup_v1/container/cpu.stat"),
    Case(
        "v1.cfs_quota", v1.parse_cfs_quota_usec, FIXTURES / "cgroup_v1/container/cpu.cfs_quota_us"
    ),
    Case(
        "v1.cfs_period",
        v1.parse_cfs_period_usec,
        FIXTURES / "cgroup_v1/container/cpu.cfs_period_us",
    ),
    Case("v1.cpu_shares", v1.parse_cpu_shares, FIXTURES / "cgroup_v1/container/cpu.shares"),
    Case("v1.memory_stat", v1.parse_memory_stat, FIXTURES / "cgroup_v1/container/memory.stat"),
    Case(
        "v1.oom_control",
        v1.parse_memory_oom_control,
        FIXTURES / "cgroup_v1/container/memory.oom_control",
    ),
    Case(
        "v1.blkio_rwstat",
        v1.parse_blkio_rwstat,
        FIXTURES / "cgroup_v1/container/blkio.throttle.io_service_bytes",
    ),
    Case("proc.stat", procfs.parse_stat, FIXTURES / "proc/weird/stat", vanishes_when_empty=True),
    Case(
        "proc.status", procfs.parse_status, FIXTURES / "proc/self/status", vanishes_when_empty=True
    ),
    Case("proc.comm", procfs.parse_comm, FIXTURES / "proc/weird/comm", vanishes_when_empty=True),
    Case("proc.cmdline", procfs.parse_cmdline, FIXTURES / "proc/weird/cmdline"),
    Case(
        "proc.smaps_rollup",
        procfs.parse_smaps_rollup,
        FIXTURES / "proc/self/smaps_rollup",
        vanishes_when_empty=True,
    ),
    Case("proc.smaps", procfs.parse_smaps, FIXTURES / "proc/self/smaps"),
    Case(
        "proc.mountinfo",
        lambda data, path: mountinfo.parse_mountinfo(data, source=path),
        FIXTURES / "proc/self/mountinfo",
    ),
]
IDS = [case.name for case in CASES]

# What each parser makes of b"" (None: raises MalformedFileError; VanishedError: the process is
# gone). Keyed files read empty are valid "nothing reported" values.
EMPTY_OUTCOMES: dict[str, object] = {
    "v2.flat_keyed": {},
    "v2.single_int": None,
    "v2.int_or_max": None,
    "v2.cgroup_procs": v2.CgroupProcs(()),
    "v2.cpu_stat": v2.CpuStat({}),
    "v2.cpu_max": None,
    "v2.cpu_weight": None,
    "v2.memory_stat": v2.MemoryStat({}),
    "v2.memory_events": v2.MemoryEvents({}),
    "v2.pressure": v2.Pressure(None, None),
    "v2.io_stat": (),
    "v1.cpuacct_stat": v1.CpuacctStat({}),
    "v1.cpu_stat": v1.CpuStat({}),
    "v1.cfs_quota": None,
    "v1.cfs_period": None,
    "v1.cpu_shares": None,
    "v1.memory_stat": v1.MemoryStat({}),
    "v1.oom_control": v1.OomControl({}),
    "v1.blkio_rwstat": v1.BlkioStat((), None),
    "proc.stat": VanishedError,
    "proc.status": VanishedError,
    "proc.comm": VanishedError,
    "proc.cmdline": (),
    "proc.smaps_rollup": VanishedError,
    "proc.smaps": {},
    "proc.mountinfo": (),
}

PATH = "/fuzz/file"


def parse_or_malformed(case: Case, data: bytes) -> None:
    """Run the parser; only MalformedFileError (or VanishedError on empty input) may escape."""
    try:
        case.parse(data, PATH)
    except MalformedFileError as err:
        assert err.path == PATH
        assert str(err).startswith(f"{PATH}:{err.line_number}: ")
        assert 1 <= err.line_number <= data.count(b"\n") + 1
    except VanishedError:
        assert case.vanishes_when_empty
        assert data == b""


def test_every_case_has_an_empty_outcome() -> None:
    assert set(EMPTY_OUTCOMES) == set(IDS)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_empty_input(case: Case) -> None:
    expected = EMPTY_OUTCOMES[case.name]
    if expected is None:
        with pytest.raises(MalformedFileError, match=rf"^{PATH}:1: "):
            case.parse(b"", PATH)
    elif expected is VanishedError:
        with pytest.raises(VanishedError):
            case.parse(b"", PATH)
    else:
        assert case.parse(b"", PATH) == expected


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_sample_parses(case: Case) -> None:
    case.parse(case.sample.read_bytes(), str(case.sample))


# Bytes that matter to the formats, so random input reaches past the first check.
FORMAT_ALPHABET = st.sampled_from(
    [
        *(b" ", b"\n", b"\t", b":", b"=", b"(", b")", b"-", b".", b"\0", b"\xff", b"0", b"1", b"9"),
        *(b"max", b"kB", b"Total", b"some ", b"full ", b"avg10=", b"total=", b"8:0 ", b"Rss:"),
        *(b"usage_usec ", b"Name:\t", b"00400000-00452000 r-xp 00000000 08:02 1 "),
        # Numbers no kernel writes: above 2**64-1, above 2**63-1, negative, above a pid.
        *(b"18446744073709551617", b"9223372036854775808", b"-7", b"4294967297"),
    ]
)
format_soup = st.lists(FORMAT_ALPHABET, max_size=60).map(b"".join)

FUZZ = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@pytest.mark.parametrize("case", CASES, ids=IDS)
@FUZZ
@given(data=st.binary(max_size=512))
@example(data=b"")
@example(data=b"\n")
@example(data=b"\0" * 64)
@example(data=b"\xff\xfe\xfd")
def test_garbage(case: Case, data: bytes) -> None:
    parse_or_malformed(case, data)


@pytest.mark.parametrize("case", CASES, ids=IDS)
@FUZZ
@given(data=format_soup)
def test_format_soup(case: Case, data: bytes) -> None:
    parse_or_malformed(case, data)


def numbers_in(value: object) -> list[int | float]:
    """Every number in a parsed value (dataclass fields, keyed values, tuples, dicts)."""
    if value is None or isinstance(value, bool | str | bytes | BaseException):
        return []  # an error: cgroup.procs reports its skipped lines
    if isinstance(value, int | float):
        return [value]
    if isinstance(value, dict):
        return [n for v in value.values() for n in numbers_in(v)]
    if isinstance(value, tuple | list):
        return [n for v in value for n in numbers_in(v)]
    fields = getattr(value, "__dataclass_fields__", None)
    if fields is not None:
        return [n for name in fields for n in numbers_in(getattr(value, name))]
    raise AssertionError(f"unexpected value in a parse result: {value!r}")


@pytest.mark.parametrize("case", CASES, ids=IDS)
@FUZZ
@given(data=format_soup)
def test_every_number_a_parser_returns_is_one_the_kernel_writes(case: Case, data: bytes) -> None:
    """Whatever the input, a parser returns only numbers that fit finemon's int64 columns and
    are not negative, but for the few signed fields (priority down to -100, a -1 quota is
    None): garbage is refused, never passed on."""
    try:
        parsed = case.parse(data, PATH)
    except (MalformedFileError, VanishedError):
        return
    for number in numbers_in(parsed):
        assert number >= -100, (number, data)
        assert isinstance(number, float) or number <= numbers.INT64_MAX, (number, data)


# One number of each file, put where the kernel prints it: (name, parser, content with the
# number at "{}", its range, how to find it in the result).
MEMORY_STAT = (FIXTURES / "cgroup_v2/container/memory.stat").read_bytes()
V1_MEMORY_STAT = (FIXTURES / "cgroup_v1/container/memory.stat").read_bytes()
PROC_STAT = (FIXTURES / "proc/self/stat").read_bytes()
_head, _rest = PROC_STAT.rsplit(b")", 1)


def _proc_stat_with(field: int) -> bytes:
    fields = _rest.split(b" ")  # fields[1] is field 3
    fields[field - 2] = b"{}"
    return _head + b")" + b" ".join(fields)


PLACED: list[tuple[str, Parser, bytes, IntRange, Callable[[object], object]]] = [
    ("memory.current", v2.parse_single_int, b"{}\n", numbers.U64, lambda r: r),
    ("memory.max", v2.parse_int_or_max, b"{}\n", numbers.U64, lambda r: r),
    ("cpu.weight", v2.parse_cpu_weight, b"{}\n", numbers.CPU_WEIGHT, lambda r: r),
    ("cpu.max quota", v2.parse_cpu_max, b"{} 100000\n", numbers.U64, lambda r: r.quota_usec),  # type: ignore[attr-defined]
    (
        "cpu.max period",
        v2.parse_cpu_max,
        b"max {}\n",
        numbers.CFS_PERIOD_USEC,
        lambda r: r.period_usec,
    ),  # type: ignore[attr-defined]
    (
        "cpu.stat",
        v2.parse_cpu_stat,
        b"usage_usec 5\nuser_usec {}\n",
        numbers.U64,
        lambda r: r.user_usec,
    ),  # type: ignore[attr-defined]
    (
        "memory.stat",
        v2.parse_memory_stat,
        MEMORY_STAT.replace(b"\nfile 183853056\n", b"\nfile {}\n"),
        numbers.U64,
        lambda r: r.file,  # type: ignore[attr-defined]
    ),
    (
        "io.stat",
        v2.parse_io_stat,
        b"8:0 rbytes=1 wbytes=2\n8:16 rbytes={} wbytes=0\n",
        numbers.U64,
        lambda r: r[1].rbytes,  # type: ignore[index]
    ),
    (
        "pressure total",
        v2.parse_pressure,
        b"some avg10=0.00 avg60=0.00 avg300=0.00 total=1\n"
        b"full avg10=0.00 avg60=0.00 avg300=0.00 total={}\n",
        numbers.U64,
        lambda r: r.full.total_usec,  # type: ignore[attr-defined]
    ),
    (
        "cfs_quota_us",
        v1.parse_cfs_quota_usec,
        b"{}\n",
        numbers.CFS_QUOTA_USEC,
        lambda r: -1 if r is None else r,
    ),
    ("cfs_period_us", v1.parse_cfs_period_usec, b"{}\n", numbers.CFS_PERIOD_USEC, lambda r: r),
    ("cpu.shares", v1.parse_cpu_shares, b"{}\n", numbers.CPU_SHARES, lambda r: r),
    (
        "v1 memory.stat",
        v1.parse_memory_stat,
        V1_MEMORY_STAT.replace(b"\nrss 1945600\n", b"\nrss {}\n"),
        numbers.U64,
        lambda r: r.rss,  # type: ignore[attr-defined]
    ),
    (
        "blkio",
        v1.parse_blkio_rwstat,
        b"8:0 Read 1\n8:0 Write {}\nTotal 1\n",
        numbers.U64,
        lambda r: r.devices[0].values["Write"],  # type: ignore[attr-defined]
    ),
    ("stat utime", procfs.parse_stat, _proc_stat_with(14), numbers.U64, lambda r: r.utime_ticks),  # type: ignore[attr-defined]
    ("stat ppid", procfs.parse_stat, _proc_stat_with(4), numbers.PID, lambda r: r.ppid),  # type: ignore[attr-defined]
    (
        "stat priority",
        procfs.parse_stat,
        _proc_stat_with(18),
        numbers.PRIORITY,
        lambda r: r.priority,
    ),  # type: ignore[attr-defined]
    ("stat nice", procfs.parse_stat, _proc_stat_with(19), numbers.NICE, lambda r: r.nice),  # type: ignore[attr-defined]
    (
        "status VmRSS",
        procfs.parse_status,
        b"Name:\tx\nPid:\t5\nVmRSS:\t  {} kB\n",
        numbers.KIB,
        lambda r: r.vm_rss_bytes // 1024,  # type: ignore[attr-defined]
    ),
    (
        "smaps_rollup",
        procfs.parse_smaps_rollup,
        b"00400000-7ff000000000 ---p 00000000 00:00 0  [rollup]\nRss:  4 kB\nPss:  {} kB\n",
        numbers.KIB,
        lambda r: r.values["Pss"] // 1024,  # type: ignore[attr-defined]
    ),
]

#: Each range's edges and the numbers the issue found written through.
EDGES = [-(2**64), -101, -21, -7, -2, -1, 0, 1, 999, 1000, 10_000, 262_144, 1_000_000]
EDGES += [2**22 - 1, 2**22, 2**32, 2**53, 2**63 - 1, 2**63, 2**64 - 1, 2**64 + 1, 10**30]
any_number = st.one_of(st.sampled_from(EDGES), st.integers(min_value=-(2**70), max_value=2**70))


@pytest.mark.parametrize(
    ("parse", "template", "kind", "found"),
    [entry[1:] for entry in PLACED],
    ids=[entry[0] for entry in PLACED],
)
@FUZZ
@given(number=any_number)
def test_a_number_is_kept_within_its_range_and_refused_outside_it(
    parse: Parser,
    template: bytes,
    kind: IntRange,
    found: Callable[[object], object],
    number: int,
) -> None:
    data = template.replace(b"{}", b"%d" % number)
    line = template[: template.index(b"{}")].count(b"\n") + 1
    if kind.low <= number <= kind.high:
        assert found(parse(data, PATH)) == number
    else:
        with pytest.raises(OutOfRangeError) as info:
            parse(data, PATH)
        assert info.value.line_number == line and info.value.path == PATH


@FUZZ
@given(
    lines=st.lists(
        st.one_of(
            st.integers(min_value=0, max_value=2**22 - 1).map(lambda n: b"%d" % n),
            st.sampled_from([b"", b"abc", b"-1", b"4294967297", b"+5", b" 7", b"1_0", b"\xff"]),
            st.binary(max_size=6),
        ),
        max_size=40,
    )
)
def test_cgroup_procs_keeps_every_pid_and_skips_every_other_line(lines: list[bytes]) -> None:
    data = b"".join(line + b"\n" for line in lines if b"\n" not in line)
    kept = [line for line in lines if b"\n" not in line]
    pids = [int(line) for line in kept if line.isdigit() and int(line) < 2**22]
    procs = v2.parse_cgroup_procs(data, PATH)
    assert list(procs.pids) == pids
    bad = len(kept) - len(pids) if data != b"\n" else 0
    assert sum(s.count for s in procs.skipped) == bad
    assert len(procs.skipped) <= 2  # one summary per kind of error, not one per line


@pytest.mark.parametrize("case", CASES, ids=IDS)
@FUZZ
@given(cut=st.floats(min_value=0.0, max_value=1.0))
def test_truncated(case: Case, cut: float) -> None:
    sample = case.sample.read_bytes()
    parse_or_malformed(case, sample[: int(len(sample) * cut)])


@pytest.mark.parametrize("case", CASES, ids=IDS)
@FUZZ
@given(
    position=st.floats(min_value=0.0, max_value=1.0),
    replacement=st.binary(min_size=1, max_size=8),
    drop=st.integers(min_value=0, max_value=8),
)
def test_corrupted(case: Case, position: float, replacement: bytes, drop: int) -> None:
    sample = case.sample.read_bytes()
    at = int(len(sample) * position)
    parse_or_malformed(case, sample[:at] + replacement + sample[at + drop :])


def huge_inputs(case: Case) -> list[bytes]:
    megabyte = 1 << 20
    sample = case.sample.read_bytes() or b"x\n"
    return [
        random.Random(0).randbytes(megabyte),
        b"7" * megabyte,
        b"usage_usec " + b"9" * megabyte + b"\n",
        (sample * (megabyte // len(sample) + 1))[:megabyte],
        b"a 1\n" * (megabyte // 4),
    ]


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_huge_input(case: Case) -> None:
    for data in huge_inputs(case):
        started = time.perf_counter()
        parse_or_malformed(case, data)
        # Linear work only: a megabyte must not take more than a fraction of a second.
        assert time.perf_counter() - started < 2.0, f"{case.name} too slow on {len(data)} bytes"


# ------------------------------------------------------------------------------------------
# production uses these parsers, and no other
# ------------------------------------------------------------------------------------------

READER_MODULES = {"cgroup_v1": v1, "cgroup_v2": v2, "procfs": procfs, "mountinfo": mountinfo}
#: Parsers reached through a wrapper or an alias rather than called by name.
FUZZED_BY_NAME = {
    "cgroup_v2.parse_flat_keyed",  # inside parse_cpu_stat, parse_memory_stat ... (fuzzed too)
    "mountinfo.parse_mountinfo",
}


def _parsers_used_by(path: Path) -> set[str]:
    """``module.parse_x`` for every reader parse (or read) function ``path`` refers to."""
    tree = ast.parse(path.read_text())
    aliases: dict[str, str] = {}
    used: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            for alias in node.names:
                name = alias.asname or alias.name
                if node.module == "observers.readers" and alias.name in READER_MODULES:
                    aliases[name] = alias.name
                module = node.module.removeprefix("observers.readers.")
                if module in READER_MODULES and alias.name.startswith(("parse_", "read_")):
                    used.add(f"{module}.{alias.name}")
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id in aliases
            and node.attr.startswith(("parse_", "read_"))
        ):
            used.add(f"{aliases[node.value.id]}.{node.attr}")
    # A read_x wrapper parses with parse_x.
    return {name.replace(".read_", ".parse_", 1) for name in used}


def test_production_parses_only_with_fuzzed_parsers() -> None:
    fuzzed = {
        f"{module_name}.{function.__name__}"
        for case in CASES
        for module_name, module in READER_MODULES.items()
        for function in [case.parse]
        if getattr(module, function.__name__, None) is function
    } | FUZZED_BY_NAME
    used: dict[str, set[str]] = {}
    for path in sorted(SRC.glob("*.py")):
        for name in _parsers_used_by(path):
            used.setdefault(name, set()).add(path.name)
    # The samplers, discovery and the hierarchy all parse through the readers.
    assert {"container.py", "process.py", "discovery.py", "hierarchy.py"} <= {
        file for files in used.values() for file in files
    }, used
    assert "cgroup_v2.parse_pressure" in used and "cgroup_v2.parse_cpu_max" in used
    unfuzzed = sorted(name for name in used if name not in fuzzed)
    assert not unfuzzed, f"parsers production uses without a fuzz case: {unfuzzed}"


def test_no_kernel_file_parser_outside_the_readers() -> None:
    """No module outside observers/readers defines a parse function (podmeta's parse log file
    names, which are no kernel file)."""
    for path in sorted(SRC.glob("*.py")):
        if path.name == "podmeta.py":
            continue
        tree = ast.parse(path.read_text())
        defined = [
            node.name
            for node in ast.walk(tree)
            if isinstance(node, ast.FunctionDef) and node.name.lstrip("_").startswith("parse")
        ]
        assert not defined, f"{path.name} parses by itself: {defined}"
