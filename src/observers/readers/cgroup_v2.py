"""Readers for cgroup v2 (unified hierarchy) interface files.

Formats follow the kernel's Documentation/admin-guide/cgroup-v2.rst and, for the details the
documentation leaves out, the kernel source that prints them (``block/blk-cgroup.c`` for
``io.stat``, ``kernel/sched/psi.c`` for the pressure files).

Every file has two functions:

* ``parse_<thing>(data, path)`` turns the raw bytes into a typed value; ``path`` only names the
  file in error messages. The sampler calls this on bytes it re-read with ``os.pread`` from a
  kept file descriptor.
* ``read_<thing>(cgroup_dir)`` opens, reads and closes ``<cgroup_dir>/<file>`` and parses it.

Parsed values are frozen slots dataclasses whose typed fields are all optional: a key the
running kernel does not print stays ``None``, a key it adds is ignored by them. Keyed files also
carry ``values``, every key the file had (including keys newer than this module), so nothing the
kernel reports is thrown away; their typed fields are looked up in ``values`` when read
(:class:`~observers.readers.keyed.Key`), so a parse costs no more than the dict.

Failure behaviour, common to every function here (errors of :mod:`observers.readers.errors`):

* :class:`~.errors.MalformedFileError` (a ``ValueError``) when the content does not match the
  format; the message names the file and the 1-based line. Every number is checked against its
  file's range (:mod:`observers.readers.numbers`: unsigned 64-bit values that fit int64 unless
  a reader says otherwise); one outside it raises :class:`~.errors.OutOfRangeError`, a
  ``MalformedFileError``, and the whole file is refused, as for any malformed line. Only
  ``cgroup.procs`` skips its bad lines and keeps the rest (:class:`CgroupProcs`).
* ``read_*`` only: :class:`~.errors.FileTooLargeError` when the file is longer than its cap
  (:mod:`observers.readers.limits`), :class:`~.errors.VanishedError` when the cgroup was removed
  (ENOENT, ENODEV), :class:`~.errors.AccessDeniedError` on EACCES/EPERM,
  :class:`~.errors.UnsupportedError` on EOPNOTSUPP (a pressure file when the kernel runs with
  PSI disabled), and a plain :class:`~.errors.ReaderError` for any other OS error.

Empty input: the flat keyed and nested keyed parsers return an all-``None`` value (``io.stat`` an
empty tuple, ``cgroup.procs`` no pids); the single-value parsers raise ``MalformedFileError``
because those files always hold a value.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from observers.readers.errors import (
    MalformedFileError,
    OutOfRangeError,
    ReaderError,
    Skipped,
    quote_line,
    read_file_bytes,
)
from observers.readers.keyed import Key, KeyedFile
from observers.readers.numbers import (
    CFS_PERIOD_USEC,
    CPU_WEIGHT,
    DEVICE_NUMBER,
    NON_NEGATIVE,
    PID,
    PID_MAX_LIMIT,
    PSI_PERCENT,
    U64,
    IntRange,
    all_digits,
    parse_decimal,
    parse_int,
)

__all__ = [
    "CgroupProcs",
    "CpuMax",
    "CpuStat",
    "IoDeviceStat",
    "MemoryEvents",
    "MemoryStat",
    "Pressure",
    "PressureLine",
    "parse_cgroup_procs",
    "parse_cpu_max",
    "parse_cpu_stat",
    "parse_cpu_weight",
    "parse_device",
    "parse_flat_keyed",
    "parse_int_or_max",
    "parse_io_stat",
    "parse_memory_events",
    "parse_memory_stat",
    "parse_pressure",
    "parse_single_int",
    "parse_single_value",
    "read_cgroup_procs",
    "read_cpu_max",
    "read_cpu_pressure",
    "read_cpu_stat",
    "read_cpu_weight",
    "read_io_pressure",
    "read_io_stat",
    "read_memory_current",
    "read_memory_events",
    "read_memory_high",
    "read_memory_low",
    "read_memory_max",
    "read_memory_min",
    "read_memory_peak",
    "read_memory_pressure",
    "read_memory_stat",
    "read_memory_swap_current",
    "read_memory_swap_max",
    "read_pids_current",
    "read_pids_max",
]

StrPath = str | os.PathLike[str]


def _path(cgroup_dir: StrPath, name: str) -> str:
    return f"{os.fspath(cgroup_dir)}/{name}"


# --------------------------------------------------------------------------------------------
# Shared parsers (also used by cgroup_v1)
# --------------------------------------------------------------------------------------------


_isdigit = bytes.isdigit


def parse_flat_keyed(data: bytes, path: str) -> dict[str, int]:
    """Parse a flat keyed file (``key value`` per line, unsigned integer values) into a dict.

    Keys are decoded as UTF-8; values are ints within :data:`~observers.readers.numbers.U64`
    (0..2**63-1). Blank lines are skipped; a later duplicate key wins. Empty input gives an
    empty dict.

    Raises:
        OutOfRangeError: a value outside 0..2**63-1 (negative, or more than int64 holds).
        MalformedFileError: a line that is not exactly two fields, or whose value is not a
            decimal integer, naming ``path`` and the line.
    """
    if not data:
        return {}
    lines = data.split(b"\n")
    if lines[-1] == b"":
        lines.pop()
    try:
        # Fast path: one comprehension, no per-line branches. Anything odd (a blank line, three
        # fields, a value that is not plain digits, a duplicate key: one entry short) falls
        # through to the slow, exact scan, as does a value above the range.
        values = {
            key.decode(): int(value) for key, value in map(bytes.split, lines) if _isdigit(value)
        }
    except ValueError:
        return _parse_flat_keyed_slow(data, path)
    if len(values) == len(lines) and (not values or max(values.values()) <= U64.high):
        return values
    return _parse_flat_keyed_slow(data, path)


def _parse_flat_keyed_slow(data: bytes, path: str) -> dict[str, int]:
    values: dict[str, int] = {}
    for number, line in enumerate(data.split(b"\n"), 1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 2:
            raise MalformedFileError(path, number, f"expected 'key value', got {quote_line(line)}")
        key, raw = parts
        try:
            name = key.decode()
        except UnicodeDecodeError:
            reason = f"key is not UTF-8: {quote_line(line)}"
            raise MalformedFileError(path, number, reason) from None
        value = parse_int(raw, U64, path, number)
        if value is None:
            raise MalformedFileError(path, number, f"value is not an integer: {quote_line(line)}")
        values[name] = value
    return values


def parse_single_int(data: bytes, path: str) -> int:
    """Parse a single-value file holding one unsigned integer (e.g. ``memory.current``).

    Surrounding whitespace and the trailing newline are ignored. The value is within
    :data:`~observers.readers.numbers.U64` (0..2**63-1).

    Raises:
        OutOfRangeError: negative, or above 2**63-1.
        MalformedFileError: empty input, a non-integer, or more than one line.
    """
    raw = data[:-1] if data[-1:] == b"\n" else data
    # Up to 18 digits is within 0..2**63-1 whatever they are: the common case, cheaply.
    if _isdigit(raw) and len(raw) <= 18:
        return int(raw)
    return parse_single_value(data, path, U64)


def parse_cpu_weight(data: bytes, path: str) -> int:
    """Parse ``cpu.weight``: 1..10000 (0 for a cgroup with ``cpu.idle`` set).

    Raises:
        OutOfRangeError: outside 0..10000.
        MalformedFileError: as :func:`parse_single_int`.
    """
    return parse_single_value(data, path, CPU_WEIGHT)


def parse_single_value(data: bytes, path: str, kind: IntRange, expected: str = "an integer") -> int:
    """Parse a single-value file holding one integer within ``kind`` (the readers of such
    files pass their file's range; surrounding whitespace is ignored).

    Raises:
        OutOfRangeError: an integer outside ``kind``.
        MalformedFileError: empty input, more than one line, or not an integer (the message
            says ``expected <expected>``).
    """
    raw = data[:-1] if data[-1:] == b"\n" else data
    value = parse_int(raw, kind, path, 1)
    if value is None:
        value = parse_int(data.strip(), kind, path, 1)
        if value is None:
            raise _single_value_error(data, path, expected)
    return value


def _single_value_error(data: bytes, path: str, expected: str) -> MalformedFileError:
    lines = data.split(b"\n")
    for number, line in enumerate(lines[1:], 2):
        if line.strip():
            return MalformedFileError(path, number, f"unexpected extra line {quote_line(line)}")
    return MalformedFileError(path, 1, f"expected {expected}, got {quote_line(lines[0])}")


def parse_int_or_max(data: bytes, path: str) -> int | None:
    """Parse a single-value file holding an integer or ``max`` (e.g. ``memory.max``, ``pids.max``).

    Returns None for ``max`` (no limit), else the integer, within 0..2**63-1 (``-1`` is no
    limit the kernel prints: it prints ``max``).

    Raises:
        OutOfRangeError: negative, or above 2**63-1.
        MalformedFileError: empty input, neither an integer nor ``max``, or more than one line.
    """
    raw = data[:-1] if data[-1:] == b"\n" else data
    if _isdigit(raw) and len(raw) <= 18:
        return int(raw)
    if raw == b"max" or data.strip() == b"max":
        return None
    return parse_single_value(data, path, U64, "an integer or 'max'")


@dataclass(frozen=True, slots=True)
class CgroupProcs:
    """``cgroup.procs`` (or ``tasks``): the pids of the cgroup's processes, in file order.

    ``skipped``: the lines that were no pid (not a decimal integer, an empty line, a number
    outside 0..``PID_MAX_LIMIT``-1), one :class:`~observers.readers.errors.Skipped` per kind of
    error (:class:`~observers.readers.errors.MalformedFileError`, or
    :class:`~observers.readers.errors.OutOfRangeError`), its first line's error and how many
    lines had it. Compared by both.
    """

    pids: tuple[int, ...]
    skipped: tuple[Skipped, ...] = ()


_NO_PROCS = CgroupProcs(())


def parse_cgroup_procs(data: bytes, path: str) -> CgroupProcs:
    """Parse ``cgroup.procs`` (or ``tasks``): one pid per line.

    Empty input (no processes) gives no pids. Pids are as seen from the reader's pid namespace:
    the kernel prints 0 for a process outside it, and such zeros are kept. A line that is no
    pid is skipped and reported in :attr:`CgroupProcs.skipped`, the others kept: one bad line
    must not hide the container's processes. Never raises.
    """
    if data in (b"", b"\n"):
        return _NO_PROCS
    lines = data.split(b"\n")
    if lines[-1] == b"":
        lines.pop()
    try:
        pids = tuple(map(int, lines))
    except ValueError:
        return _parse_cgroup_procs_slow(lines, path)
    if all_digits(lines) and max(pids) < PID_MAX_LIMIT:
        return CgroupProcs(pids)
    return _parse_cgroup_procs_slow(lines, path)


def _parse_cgroup_procs_slow(lines: list[bytes], path: str) -> CgroupProcs:
    pids: list[int] = []
    first: dict[type[ReaderError], ReaderError] = {}
    counts: dict[type[ReaderError], int] = {}
    for number, line in enumerate(lines, 1):
        error: ReaderError
        try:
            pid = parse_int(line, PID, path, number)
        except OutOfRangeError as exc:
            error = exc
        else:
            if pid is not None:
                pids.append(pid)
                continue
            error = MalformedFileError(path, number, f"expected a pid, got {quote_line(line)}")
        kind = type(error)
        if kind in counts:
            counts[kind] += 1
        else:
            first[kind], counts[kind] = error, 1
    skipped = tuple(Skipped(error, counts[kind]) for kind, error in first.items())
    return CgroupProcs(tuple(pids), skipped)


def read_cgroup_procs(cgroup_dir: StrPath) -> CgroupProcs:
    """Read ``<cgroup_dir>/cgroup.procs``: the pids of the processes in the cgroup.

    See :func:`parse_cgroup_procs`; raises the ``read_*`` errors described in the module doc
    (a file longer than its cap raises FileTooLargeError; discovery keeps the pids within it).
    """
    path = _path(cgroup_dir, "cgroup.procs")
    return parse_cgroup_procs(read_file_bytes(path), path)


# --------------------------------------------------------------------------------------------
# cpu
# --------------------------------------------------------------------------------------------


class CpuStat(KeyedFile):
    """``cpu.stat``. Times are microseconds, counts are event counts since cgroup creation.

    ``usage_usec``, ``user_usec`` and ``system_usec`` are always present; the throttling keys
    (``nr_periods`` ... ``burst_usec``) only when the cpu controller is enabled for the cgroup,
    and ``nr_bursts``/``burst_usec`` only on kernels >= 5.14.
    """

    __slots__ = ()
    usage_usec = Key()
    user_usec = Key()
    system_usec = Key()
    nr_periods = Key()
    nr_throttled = Key()
    throttled_usec = Key()
    nr_bursts = Key()
    burst_usec = Key()


def parse_cpu_stat(data: bytes, path: str) -> CpuStat:
    """Parse ``cpu.stat`` (flat keyed, microseconds and counts). Empty input -> all None."""
    values = parse_flat_keyed(data, path)
    return CpuStat(values)


def read_cpu_stat(cgroup_dir: StrPath) -> CpuStat:
    """Read ``<cgroup_dir>/cpu.stat``; see :func:`parse_cpu_stat`."""
    path = _path(cgroup_dir, "cpu.stat")
    return parse_cpu_stat(read_file_bytes(path), path)


@dataclass(frozen=True, slots=True)
class CpuMax:
    """``cpu.max``: the CFS bandwidth limit, ``quota_usec`` of CPU time per ``period_usec``.

    ``quota_usec`` is None when the file says ``max`` (no limit).
    """

    quota_usec: int | None
    period_usec: int


def parse_cpu_max(data: bytes, path: str) -> CpuMax:
    """Parse ``cpu.max`` (``"max 100000"`` or ``"50000 100000"``, microseconds).

    The quota is ``max`` or within 0..2**63-1, the period within 1000..1000000 (the kernel
    refuses a period outside 1 ms..1 s).

    Raises:
        OutOfRangeError: a quota or period outside those ranges.
        MalformedFileError: not exactly two fields, or a field that is not an integer (the first
            may also be ``max``). Empty input is malformed.
    """
    parts = data.split()
    if len(parts) == 2:
        raw_quota, raw_period = parts
        quota = None if raw_quota == b"max" else parse_int(raw_quota, U64, path, 1)
        period = parse_int(raw_period, CFS_PERIOD_USEC, path, 1)
        if period is not None and (quota is not None or raw_quota == b"max"):
            return CpuMax(quota, period)
    first = data.split(b"\n", 1)[0]
    raise MalformedFileError(path, 1, f"expected '$MAX $PERIOD', got {quote_line(first)}")


def read_cpu_max(cgroup_dir: StrPath) -> CpuMax:
    """Read ``<cgroup_dir>/cpu.max``; see :func:`parse_cpu_max`. Absent on the root cgroup."""
    path = _path(cgroup_dir, "cpu.max")
    return parse_cpu_max(read_file_bytes(path), path)


def read_cpu_weight(cgroup_dir: StrPath) -> int:
    """Read ``<cgroup_dir>/cpu.weight``: the relative weight, 1..10000 (0 if cpu.idle is set).

    Absent on the root cgroup and when the cpu controller is not enabled. See
    :func:`parse_cpu_weight`.
    """
    path = _path(cgroup_dir, "cpu.weight")
    return parse_cpu_weight(read_file_bytes(path), path)


# --------------------------------------------------------------------------------------------
# memory and pids single-value files
# --------------------------------------------------------------------------------------------


def _read_int(cgroup_dir: StrPath, name: str) -> int:
    path = _path(cgroup_dir, name)
    return parse_single_int(read_file_bytes(path), path)


def _read_int_or_max(cgroup_dir: StrPath, name: str) -> int | None:
    path = _path(cgroup_dir, name)
    return parse_int_or_max(read_file_bytes(path), path)


def read_memory_current(cgroup_dir: StrPath) -> int:
    """Read ``memory.current``: bytes of memory charged to the cgroup and its descendants."""
    return _read_int(cgroup_dir, "memory.current")


def read_memory_peak(cgroup_dir: StrPath) -> int:
    """Read ``memory.peak``: highest ``memory.current`` seen, bytes (kernels >= 5.19)."""
    return _read_int(cgroup_dir, "memory.peak")


def read_memory_max(cgroup_dir: StrPath) -> int | None:
    """Read ``memory.max``: the hard limit in bytes, None for ``max`` (unlimited)."""
    return _read_int_or_max(cgroup_dir, "memory.max")


def read_memory_high(cgroup_dir: StrPath) -> int | None:
    """Read ``memory.high``: the throttling limit in bytes, None for ``max`` (unlimited)."""
    return _read_int_or_max(cgroup_dir, "memory.high")


def read_memory_low(cgroup_dir: StrPath) -> int | None:
    """Read ``memory.low``: best-effort protection in bytes, None for ``max``."""
    return _read_int_or_max(cgroup_dir, "memory.low")


def read_memory_min(cgroup_dir: StrPath) -> int | None:
    """Read ``memory.min``: hard protection in bytes, None for ``max``."""
    return _read_int_or_max(cgroup_dir, "memory.min")


def read_memory_swap_current(cgroup_dir: StrPath) -> int:
    """Read ``memory.swap.current``: bytes of swap used by the cgroup and its descendants."""
    return _read_int(cgroup_dir, "memory.swap.current")


def read_memory_swap_max(cgroup_dir: StrPath) -> int | None:
    """Read ``memory.swap.max``: the swap limit in bytes, None for ``max`` (unlimited)."""
    return _read_int_or_max(cgroup_dir, "memory.swap.max")


def read_pids_current(cgroup_dir: StrPath) -> int:
    """Read ``pids.current``: number of tasks (threads) in the cgroup and its descendants."""
    return _read_int(cgroup_dir, "pids.current")


def read_pids_max(cgroup_dir: StrPath) -> int | None:
    """Read ``pids.max``: the task limit, None for ``max`` (unlimited)."""
    return _read_int_or_max(cgroup_dir, "pids.max")


# --------------------------------------------------------------------------------------------
# memory.stat, memory.events
# --------------------------------------------------------------------------------------------


class MemoryStat(KeyedFile):
    """``memory.stat`` (v2). Field names are the kernel's keys.

    Amounts (``anon`` ... ``slab``, ``zswap``, ``zswapped``) are bytes; ``workingset_*``,
    ``pg*``, ``pswp*``, ``thp_*``, ``numa_*`` ... are event counts (pages or occurrences) since
    cgroup creation (the whole rule: ``common.catalogue.MEMORY_EVENT_PREFIXES``). ``kernel``
    appeared in 5.18, ``workingset_refault_anon/file`` in 5.9 (before that a single
    ``workingset_refault``, kept in ``values``).
    """

    __slots__ = ()
    anon = Key()
    file = Key()
    kernel = Key()
    kernel_stack = Key()
    pagetables = Key()
    percpu = Key()
    sock = Key()
    vmalloc = Key()
    shmem = Key()
    zswap = Key()
    zswapped = Key()
    file_mapped = Key()
    file_dirty = Key()
    file_writeback = Key()
    swapcached = Key()
    anon_thp = Key()
    file_thp = Key()
    shmem_thp = Key()
    inactive_anon = Key()
    active_anon = Key()
    inactive_file = Key()
    active_file = Key()
    unevictable = Key()
    slab_reclaimable = Key()
    slab_unreclaimable = Key()
    slab = Key()
    workingset_refault_anon = Key()
    workingset_refault_file = Key()
    workingset_activate_anon = Key()
    workingset_activate_file = Key()
    workingset_restore_anon = Key()
    workingset_restore_file = Key()
    workingset_nodereclaim = Key()
    pswpin = Key()
    pswpout = Key()
    pgscan = Key()
    pgsteal = Key()
    pgfault = Key()
    pgmajfault = Key()
    pgrefill = Key()
    pgactivate = Key()
    pgdeactivate = Key()
    pglazyfree = Key()
    pglazyfreed = Key()
    thp_fault_alloc = Key()
    thp_collapse_alloc = Key()


def parse_memory_stat(data: bytes, path: str) -> MemoryStat:
    """Parse ``memory.stat`` (flat keyed; bytes and counts). Empty input -> all None."""
    values = parse_flat_keyed(data, path)
    return MemoryStat(values)


def read_memory_stat(cgroup_dir: StrPath) -> MemoryStat:
    """Read ``<cgroup_dir>/memory.stat``; see :func:`parse_memory_stat`. Absent on the root."""
    path = _path(cgroup_dir, "memory.stat")
    return parse_memory_stat(read_file_bytes(path), path)


class MemoryEvents(KeyedFile):
    """``memory.events``: hierarchical event counts since cgroup creation.

    ``oom_group_kill`` appeared in 5.17, ``sock_throttled`` in 6.14.
    """

    __slots__ = ()
    low = Key()
    high = Key()
    max = Key()
    oom = Key()
    oom_kill = Key()
    oom_group_kill = Key()
    sock_throttled = Key()


def parse_memory_events(data: bytes, path: str) -> MemoryEvents:
    """Parse ``memory.events`` (or ``memory.events.local``; flat keyed counts)."""
    values = parse_flat_keyed(data, path)
    return MemoryEvents(values)


def read_memory_events(cgroup_dir: StrPath) -> MemoryEvents:
    """Read ``<cgroup_dir>/memory.events``; see :func:`parse_memory_events`."""
    path = _path(cgroup_dir, "memory.events")
    return parse_memory_events(read_file_bytes(path), path)


# --------------------------------------------------------------------------------------------
# Pressure stall information
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PressureLine:
    """One line of a pressure file.

    ``avg10``/``avg60``/``avg300`` are the share of wall time stalled over the last 10/60/300
    seconds, in percent (0.0-100.0); ``total_usec`` is the cumulative stall time, microseconds.
    """

    avg10: float | None = None
    avg60: float | None = None
    avg300: float | None = None
    total_usec: int | None = None


@dataclass(frozen=True, slots=True)
class Pressure:
    """A ``cpu.pressure``, ``memory.pressure`` or ``io.pressure`` file.

    ``some``: time at least one task was stalled; ``full``: time all non-idle tasks were stalled
    at once. ``full`` is absent from ``cpu.pressure`` before kernel 5.13 (and reads all zeros at
    the system level after it).
    """

    some: PressureLine | None = None
    full: PressureLine | None = None


def _parse_pressure_line(line: bytes, number: int, path: str) -> PressureLine:
    avg10 = avg60 = avg300 = None
    total = None
    for token in line.split()[1:]:
        key, sep, raw = token.partition(b"=")
        if not sep:
            raise MalformedFileError(
                path, number, f"expected 'key=value' fields, got {quote_line(line)}"
            )
        # The kernel prints the averages as "%lu.%02lu" (never nan or inf) and total as %llu.
        value: float | None
        if key == b"avg10":
            value = avg10 = parse_decimal(raw, PSI_PERCENT, path, number)
        elif key == b"avg60":
            value = avg60 = parse_decimal(raw, PSI_PERCENT, path, number)
        elif key == b"avg300":
            value = avg300 = parse_decimal(raw, PSI_PERCENT, path, number)
        elif key == b"total":
            value = total = parse_int(raw, U64, path, number)
        else:
            continue
        if value is None:
            raise MalformedFileError(path, number, f"{key!r} is not a number: {quote_line(line)}")
    return PressureLine(avg10, avg60, avg300, total)


def parse_pressure(data: bytes, path: str) -> Pressure:
    """Parse a PSI file: ``some avg10=0.00 avg60=0.00 avg300=0.00 total=0`` and ``full ...``.

    Lines other than ``some``/``full`` and unknown keys are ignored; a missing line or key stays
    None (empty input -> ``Pressure(None, None)``).

    Raises:
        OutOfRangeError: an average outside 0..100 or a total outside 0..2**63-1.
        MalformedFileError: a field that is not ``key=value``, or a known key whose value is not
            a number as the kernel prints it (``nan``, ``inf``, ``1e3`` are not).
    """
    some = full = None
    for number, line in enumerate(data.split(b"\n"), 1):
        kind = line[:5]
        if kind == b"some ":
            some = _parse_pressure_line(line, number, path)
        elif kind == b"full ":
            full = _parse_pressure_line(line, number, path)
    return Pressure(some, full)


def read_cpu_pressure(cgroup_dir: StrPath) -> Pressure:
    """Read ``<cgroup_dir>/cpu.pressure``; see :func:`parse_pressure`.

    With PSI disabled (``psi=0``) the kernel fails the read with EOPNOTSUPP, which surfaces as
    :class:`~observers.readers.errors.UnsupportedError`.
    """
    path = _path(cgroup_dir, "cpu.pressure")
    return parse_pressure(read_file_bytes(path), path)


def read_memory_pressure(cgroup_dir: StrPath) -> Pressure:
    """Read ``<cgroup_dir>/memory.pressure``; see :func:`read_cpu_pressure`."""
    path = _path(cgroup_dir, "memory.pressure")
    return parse_pressure(read_file_bytes(path), path)


def read_io_pressure(cgroup_dir: StrPath) -> Pressure:
    """Read ``<cgroup_dir>/io.pressure``; see :func:`read_cpu_pressure`."""
    path = _path(cgroup_dir, "io.pressure")
    return parse_pressure(read_file_bytes(path), path)


# --------------------------------------------------------------------------------------------
# io.stat
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class IoDeviceStat:
    """One device line of ``io.stat``.

    ``rbytes``/``wbytes``/``dbytes`` are bytes read/written/discarded, ``rios``/``wios``/``dios``
    the matching I/O counts, all since cgroup creation. ``values`` holds every ``key=value`` of
    the line, including those of the I/O controllers: ``cost.usage`` (iocost, microseconds),
    ``cost.vrate`` (a percentage with two decimals, kept as a float) and the debug-only
    ``use_delay``, ``delay_nsec``, ``depth``, ``avg_lat``, ``win``, ``missed``, ``total`` ...;
    ``depth=max`` is kept as ``math.inf``.
    """

    major: int
    minor: int
    values: Mapping[str, int | float] = field(hash=False)
    rbytes: int | None = None
    wbytes: int | None = None
    rios: int | None = None
    wios: int | None = None
    dbytes: int | None = None
    dios: int | None = None


_IO_STAT_KEYS = ("rbytes", "wbytes", "rios", "wios", "dbytes", "dios")


def _io_number(raw: bytes, path: str, number: int) -> int | float | None:
    # Only reached for values that are not plain short digits: a long or negative integer
    # (checked against U64), iocost's "cost.vrate=100.00" and iolatency's "depth=max" (debug
    # stats). None for anything else (malformed).
    value = parse_int(raw, U64, path, number)
    if value is not None:
        return value
    if raw == b"max":
        return math.inf
    return parse_decimal(raw, NON_NEGATIVE, path, number)


def parse_device(device: bytes, path: str, number: int) -> tuple[int, int] | None:
    """``MAJ:MIN`` as (major, minor), each within 0..2**32-1; None when it is no such pair.

    Raises:
        OutOfRangeError: a major or minor number outside 0..2**32-1.
    """
    major_raw, sep, minor_raw = device.partition(b":")
    if not sep:
        return None
    major = parse_int(major_raw, DEVICE_NUMBER, path, number)
    minor = parse_int(minor_raw, DEVICE_NUMBER, path, number)
    return None if major is None or minor is None else (major, minor)


def _parse_io_line(line: bytes, number: int, path: str) -> IoDeviceStat:
    tokens = line.split()
    device = parse_device(tokens[0], path, number)
    if device is None:
        raise MalformedFileError(path, number, f"expected a MAJ:MIN device, got {quote_line(line)}")
    major, minor = device
    values: dict[str, int | float] = {}
    for token in tokens[1:]:
        key, sep, raw = token.partition(b"=")
        value: int | float | None = None
        if sep and key:
            # Up to 18 digits is within 0..2**63-1 whatever they are: the common case, cheaply.
            value = int(raw) if raw.isdigit() and len(raw) <= 18 else _io_number(raw, path, number)
        if value is None:
            raise MalformedFileError(
                path, number, f"expected 'key=number' fields, got {quote_line(line)}"
            )
        try:
            values[key.decode()] = value
        except UnicodeDecodeError:
            raise MalformedFileError(
                path, number, f"expected 'key=number' fields, got {quote_line(line)}"
            ) from None
    typed: list[int | None] = []
    for typed_key in _IO_STAT_KEYS:
        value = values.get(typed_key)
        if value is not None and not isinstance(value, int):
            reason = f"{typed_key} is not an integer: {quote_line(line)}"
            raise MalformedFileError(path, number, reason)
        typed.append(value)
    return IoDeviceStat(major, minor, values, *typed)


def parse_io_stat(data: bytes, path: str) -> tuple[IoDeviceStat, ...]:
    """Parse ``io.stat``: one ``MAJ:MIN key=value ...`` line per device, in file order.

    A device line may legitimately carry no fields at all (the kernel prints the device and
    nothing else when it has no I/O and no controller stats); it gives an all-None entry.
    Empty input (no device seen I/O) -> empty tuple.

    Integers are within 0..2**63-1, decimals non-negative, device numbers within 0..2**32-1.

    Raises:
        OutOfRangeError: a number outside those ranges.
        MalformedFileError: a bad device number, a field that is not ``key=number``, or one of the
            six byte/count keys with a non-integer value.
    """
    return tuple(
        _parse_io_line(line, number, path)
        for number, line in enumerate(data.split(b"\n"), 1)
        if line.strip()
    )


def read_io_stat(cgroup_dir: StrPath) -> tuple[IoDeviceStat, ...]:
    """Read ``<cgroup_dir>/io.stat``; see :func:`parse_io_stat`."""
    path = _path(cgroup_dir, "io.stat")
    return parse_io_stat(read_file_bytes(path), path)
