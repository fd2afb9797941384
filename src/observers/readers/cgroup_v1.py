"""Readers for cgroup v1 (legacy, one hierarchy per controller) interface files.

Formats follow the kernel's Documentation/admin-guide/cgroup-v1/ (``cpuacct.rst``,
``memory.rst``, ``blkio-controller.rst``, ``pids.rst``), ``Documentation/scheduler/sched-bwc.rst``
for the CFS bandwidth files, and ``block/blk-cgroup-rwstat.c`` for the blkio statistics.

Each function takes the cgroup's directory *in the hierarchy of the controller that owns the
file*: ``read_cpuacct_stat("/sys/fs/cgroup/cpuacct/<path>")``,
``read_memory_stat("/sys/fs/cgroup/memory/<path>")`` and so on (where ``cpu`` and ``cpuacct``
are co-mounted, the same directory serves both).

The parse/read split, the optional typed fields, ``values`` and the failure behaviour are those of
:mod:`observers.readers.cgroup_v2`: ``parse_*`` raise :class:`~.errors.MalformedFileError`
(:class:`~.errors.OutOfRangeError` for a number outside its file's range, see
:mod:`observers.readers.numbers`); ``read_*`` also raise :class:`~.errors.FileTooLargeError`,
:class:`~.errors.VanishedError`, :class:`~.errors.AccessDeniedError` or
:class:`~.errors.ReaderError` for OS errors. Empty input gives all-None values for keyed files and
``MalformedFileError`` for single-value files.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from observers.readers.cgroup_v2 import (
    CgroupProcs,
    parse_cgroup_procs,
    parse_device,
    parse_flat_keyed,
    parse_int_or_max,
    parse_single_int,
    parse_single_value,
)
from observers.readers.errors import MalformedFileError, quote_line, read_file_bytes
from observers.readers.keyed import Key, KeyedFile
from observers.readers.numbers import (
    CFS_PERIOD_USEC,
    CFS_QUOTA_USEC,
    CPU_SHARES,
    U64,
    parse_int,
)

__all__ = [
    "UNLIMITED_THRESHOLD_BYTES",
    "BlkioDeviceStat",
    "BlkioStat",
    "CgroupProcs",
    "CpuStat",
    "CpuacctStat",
    "MemoryStat",
    "OomControl",
    "is_unlimited_bytes",
    "parse_blkio_rwstat",
    "parse_cfs_period_usec",
    "parse_cfs_quota_usec",
    "parse_cgroup_procs",
    "parse_cpu_shares",
    "parse_cpu_stat",
    "parse_cpuacct_stat",
    "parse_memory_oom_control",
    "parse_memory_stat",
    "read_blkio_throttle_io_service_bytes",
    "read_blkio_throttle_io_serviced",
    "read_cgroup_procs",
    "read_cpu_cfs_period_usec",
    "read_cpu_cfs_quota_usec",
    "read_cpu_shares",
    "read_cpu_stat",
    "read_cpuacct_stat",
    "read_cpuacct_usage_nsec",
    "read_memory_failcnt",
    "read_memory_limit_in_bytes",
    "read_memory_max_usage_in_bytes",
    "read_memory_oom_control",
    "read_memory_stat",
    "read_memory_usage_in_bytes",
    "read_pids_current",
    "read_pids_max",
]

StrPath = str | os.PathLike[str]

# v1 has no "max": an unset memory limit reads as PAGE_COUNTER_MAX pages in bytes, i.e.
# LONG_MAX rounded down to the page size (9223372036854771712 with 4 KiB pages, less with 64
# KiB pages). Nothing real comes near 2**62 bytes (4 EiB), so anything at or above it is "no
# limit".
UNLIMITED_THRESHOLD_BYTES = 2**62


def is_unlimited_bytes(limit_bytes: int) -> bool:
    """True if a v1 byte limit (``memory.limit_in_bytes``, ``hierarchical_memory_limit``,
    ``memory.memsw.limit_in_bytes`` ...) means "no limit", i.e. is >= 2**62."""
    return limit_bytes >= UNLIMITED_THRESHOLD_BYTES


def _path(cgroup_dir: StrPath, name: str) -> str:
    return f"{os.fspath(cgroup_dir)}/{name}"


def _read_int(cgroup_dir: StrPath, name: str) -> int:
    path = _path(cgroup_dir, name)
    return parse_single_int(read_file_bytes(path), path)


# --------------------------------------------------------------------------------------------
# cpuacct
# --------------------------------------------------------------------------------------------


def read_cpuacct_usage_nsec(cgroup_dir: StrPath) -> int:
    """Read ``cpuacct.usage``: CPU time used by the cgroup's tasks, nanoseconds."""
    return _read_int(cgroup_dir, "cpuacct.usage")


class CpuacctStat(KeyedFile):
    """``cpuacct.stat``: user and system CPU time in USER_HZ ticks (``os.sysconf("SC_CLK_TCK")``,
    100 per second on every mainstream architecture). ``values`` keys are ``user``/``system``."""

    __slots__ = ()
    user_ticks = Key("user")
    system_ticks = Key("system")


def parse_cpuacct_stat(data: bytes, path: str) -> CpuacctStat:
    """Parse ``cpuacct.stat`` (flat keyed, USER_HZ ticks). Empty input -> all None."""
    values = parse_flat_keyed(data, path)
    return CpuacctStat(values)


def read_cpuacct_stat(cgroup_dir: StrPath) -> CpuacctStat:
    """Read ``<cgroup_dir>/cpuacct.stat``; see :func:`parse_cpuacct_stat`."""
    path = _path(cgroup_dir, "cpuacct.stat")
    return parse_cpuacct_stat(read_file_bytes(path), path)


# --------------------------------------------------------------------------------------------
# cpu (CFS bandwidth and shares)
# --------------------------------------------------------------------------------------------


class CpuStat(KeyedFile):
    """``cpu.stat`` (v1): CFS bandwidth statistics since cgroup creation.

    ``throttled_time_nsec`` and ``burst_time_nsec`` are nanoseconds (file keys ``throttled_time``
    and ``burst_time``); ``nr_bursts``/``burst_time`` exist on kernels >= 5.14.
    """

    __slots__ = ()
    nr_periods = Key()
    nr_throttled = Key()
    throttled_time_nsec = Key("throttled_time")
    nr_bursts = Key()
    burst_time_nsec = Key("burst_time")


def parse_cpu_stat(data: bytes, path: str) -> CpuStat:
    """Parse v1 ``cpu.stat`` (flat keyed; counts and nanoseconds). Empty input -> all None."""
    values = parse_flat_keyed(data, path)
    return CpuStat(values)


def read_cpu_stat(cgroup_dir: StrPath) -> CpuStat:
    """Read ``<cgroup_dir>/cpu.stat`` in the cpu hierarchy; see :func:`parse_cpu_stat`."""
    path = _path(cgroup_dir, "cpu.stat")
    return parse_cpu_stat(read_file_bytes(path), path)


def parse_cfs_quota_usec(data: bytes, path: str) -> int | None:
    """Parse ``cpu.cfs_quota_us``: microseconds per period, None for ``-1`` (no limit).

    Raises:
        OutOfRangeError: negative other than -1, or above 2**63-1.
        MalformedFileError: not a single integer.
    """
    quota = parse_single_value(data, path, CFS_QUOTA_USEC, "a quota or -1")
    return None if quota == -1 else quota


def parse_cfs_period_usec(data: bytes, path: str) -> int:
    """Parse ``cpu.cfs_period_us``: the CFS period, 1000..1000000 microseconds.

    Raises:
        OutOfRangeError: outside 1000..1000000 (the kernel refuses such a period).
        MalformedFileError: not a single integer.
    """
    return parse_single_value(data, path, CFS_PERIOD_USEC, "a period")


def parse_cpu_shares(data: bytes, path: str) -> int:
    """Parse ``cpu.shares``: the relative weight, 2..262144 (the kernel clamps to that).

    Raises:
        OutOfRangeError: outside 2..262144.
        MalformedFileError: not a single integer.
    """
    return parse_single_value(data, path, CPU_SHARES, "a weight")


def read_cpu_cfs_quota_usec(cgroup_dir: StrPath) -> int | None:
    """Read ``cpu.cfs_quota_us``: CPU time allowed per period, microseconds; None = unlimited."""
    path = _path(cgroup_dir, "cpu.cfs_quota_us")
    return parse_cfs_quota_usec(read_file_bytes(path), path)


def read_cpu_cfs_period_usec(cgroup_dir: StrPath) -> int:
    """Read ``cpu.cfs_period_us``: the CFS bandwidth period, microseconds; see
    :func:`parse_cfs_period_usec`."""
    path = _path(cgroup_dir, "cpu.cfs_period_us")
    return parse_cfs_period_usec(read_file_bytes(path), path)


def read_cpu_shares(cgroup_dir: StrPath) -> int:
    """Read ``cpu.shares``: the relative CPU weight (default 1024); see :func:`parse_cpu_shares`."""
    path = _path(cgroup_dir, "cpu.shares")
    return parse_cpu_shares(read_file_bytes(path), path)


# --------------------------------------------------------------------------------------------
# memory
# --------------------------------------------------------------------------------------------


def read_memory_usage_in_bytes(cgroup_dir: StrPath) -> int:
    """Read ``memory.usage_in_bytes``: current usage, bytes (page cache included; the kernel
    may report it slightly fuzzy for speed, see cgroup-v1/memory.rst section 5.5)."""
    return _read_int(cgroup_dir, "memory.usage_in_bytes")


def read_memory_limit_in_bytes(cgroup_dir: StrPath) -> int:
    """Read ``memory.limit_in_bytes``: the limit, bytes, kept as the kernel prints it.

    An unset limit reads as a huge number (9223372036854771712 with 4 KiB pages); test it with
    :func:`is_unlimited_bytes`.
    """
    return _read_int(cgroup_dir, "memory.limit_in_bytes")


def read_memory_max_usage_in_bytes(cgroup_dir: StrPath) -> int:
    """Read ``memory.max_usage_in_bytes``: highest usage recorded, bytes."""
    return _read_int(cgroup_dir, "memory.max_usage_in_bytes")


def read_memory_failcnt(cgroup_dir: StrPath) -> int:
    """Read ``memory.failcnt``: how many times usage hit the limit (a count)."""
    return _read_int(cgroup_dir, "memory.failcnt")


class MemoryStat(KeyedFile):
    """``memory.stat`` (v1). Field names are the kernel's keys.

    Amounts are bytes (``cache`` ... ``unevictable``, ``hierarchical_*_limit``, ``total_*``
    amounts); ``pgpgin``/``pgpgout``/``pgfault``/``pgmajfault`` (and their ``total_``
    forms) are event counts. Keys without ``total_`` cover this cgroup only, ``total_*`` include
    descendants. ``swap`` exists only with swap accounting, ``hierarchical_memsw_limit`` likewise.
    ``hierarchical_*_limit`` use the same huge "unlimited" value as ``memory.limit_in_bytes``.
    """

    __slots__ = ()
    cache = Key()
    rss = Key()
    rss_huge = Key()
    shmem = Key()
    mapped_file = Key()
    dirty = Key()
    writeback = Key()
    swap = Key()
    pgpgin = Key()
    pgpgout = Key()
    pgfault = Key()
    pgmajfault = Key()
    inactive_anon = Key()
    active_anon = Key()
    inactive_file = Key()
    active_file = Key()
    unevictable = Key()
    hierarchical_memory_limit = Key()
    hierarchical_memsw_limit = Key()
    total_cache = Key()
    total_rss = Key()
    total_rss_huge = Key()
    total_shmem = Key()
    total_mapped_file = Key()
    total_dirty = Key()
    total_writeback = Key()
    total_swap = Key()
    total_pgpgin = Key()
    total_pgpgout = Key()
    total_pgfault = Key()
    total_pgmajfault = Key()
    total_inactive_anon = Key()
    total_active_anon = Key()
    total_inactive_file = Key()
    total_active_file = Key()
    total_unevictable = Key()


def parse_memory_stat(data: bytes, path: str) -> MemoryStat:
    """Parse v1 ``memory.stat`` (flat keyed; bytes and counts). Empty input -> all None."""
    values = parse_flat_keyed(data, path)
    return MemoryStat(values)


def read_memory_stat(cgroup_dir: StrPath) -> MemoryStat:
    """Read ``<cgroup_dir>/memory.stat`` in the memory hierarchy; see :func:`parse_memory_stat`."""
    path = _path(cgroup_dir, "memory.stat")
    return parse_memory_stat(read_file_bytes(path), path)


@dataclass(frozen=True, slots=True)
class OomControl:
    """``memory.oom_control``.

    ``oom_kill_disable``: the OOM killer is disabled for this cgroup; ``under_oom``: the cgroup
    is out of memory right now (tasks are stalled when the killer is disabled); ``oom_kill``:
    processes killed by the OOM killer in this cgroup (kernels >= 4.13).
    """

    values: Mapping[str, int] = field(hash=False)
    oom_kill_disable: bool | None = None
    under_oom: bool | None = None
    oom_kill: int | None = None


def parse_memory_oom_control(data: bytes, path: str) -> OomControl:
    """Parse ``memory.oom_control`` (flat keyed). Empty input -> all None."""
    values = parse_flat_keyed(data, path)
    disable = values.get("oom_kill_disable")
    under = values.get("under_oom")
    return OomControl(
        values,
        None if disable is None else disable != 0,
        None if under is None else under != 0,
        values.get("oom_kill"),
    )


def read_memory_oom_control(cgroup_dir: StrPath) -> OomControl:
    """Read ``<cgroup_dir>/memory.oom_control``; see :func:`parse_memory_oom_control`."""
    path = _path(cgroup_dir, "memory.oom_control")
    return parse_memory_oom_control(read_file_bytes(path), path)


# --------------------------------------------------------------------------------------------
# blkio
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BlkioDeviceStat:
    """One device of a blkio rwstat file (``8:0 Read 1234`` ... ``8:0 Total 1234``).

    The unit is the file's: bytes for ``*io_service_bytes``, I/O counts for ``*io_serviced``.
    ``sync``/``async_`` split the same I/O a second way; ``total`` is read + write + discard.
    ``discard`` exists on kernels >= 4.19. ``values`` keys are the kernel's (``Read``, ``Write``,
    ``Sync``, ``Async``, ``Discard``, ``Total``).
    """

    major: int
    minor: int
    values: Mapping[str, int] = field(hash=False)
    read: int | None = None
    write: int | None = None
    sync: int | None = None
    async_: int | None = None
    discard: int | None = None
    total: int | None = None


_BLKIO_KEYS = ("Read", "Write", "Sync", "Async", "Discard", "Total")


@dataclass(frozen=True, slots=True)
class BlkioStat:
    """A whole blkio rwstat file: the per-device entries, in file order, and the final
    ``Total`` line (sum over devices; None if the file had none)."""

    devices: tuple[BlkioDeviceStat, ...] = ()
    total: int | None = None


def parse_blkio_rwstat(data: bytes, path: str) -> BlkioStat:
    """Parse a blkio rwstat file such as ``blkio.throttle.io_service_bytes``.

    Lines are ``MAJ:MIN Op value`` per device and operation, then one ``Total value``. Empty
    input -> ``BlkioStat((), None)``; a cgroup that has done no I/O reads just ``Total 0``.

    Values are within 0..2**63-1, device numbers within 0..2**32-1.

    Raises:
        OutOfRangeError: a value or device number outside those ranges.
        MalformedFileError: a line that is neither ``MAJ:MIN Op value`` nor ``Total value``, or a
            value or device number that is not an integer.
    """
    devices: dict[bytes, tuple[int, int, dict[str, int]]] = {}
    total = None
    for number, line in enumerate(data.split(b"\n"), 1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) == 3:
            device, op, raw = parts
            value = parse_int(raw, U64, path, number)
            entry = devices.get(device)
            if entry is None and value is not None:
                pair = parse_device(device, path, number)
                if pair is not None:
                    entry = devices[device] = (*pair, {})
            if entry is not None and value is not None:
                try:
                    entry[2][op.decode()] = value
                    continue
                except UnicodeDecodeError:
                    pass
        elif len(parts) == 2 and parts[0] == b"Total":
            total = parse_int(parts[1], U64, path, number)
            if total is not None:
                continue
        raise MalformedFileError(
            path, number, f"expected 'MAJ:MIN Op value' or 'Total value', got {quote_line(line)}"
        )
    entries = tuple(
        BlkioDeviceStat(major, minor, ops, *map(ops.get, _BLKIO_KEYS))
        for major, minor, ops in devices.values()
    )
    return BlkioStat(entries, total)


def read_blkio_throttle_io_service_bytes(cgroup_dir: StrPath) -> BlkioStat:
    """Read ``blkio.throttle.io_service_bytes``: bytes transferred per device and operation.

    This file counts I/O of this cgroup only; the ``_recursive`` variant includes descendants.
    """
    path = _path(cgroup_dir, "blkio.throttle.io_service_bytes")
    return parse_blkio_rwstat(read_file_bytes(path), path)


def read_blkio_throttle_io_serviced(cgroup_dir: StrPath) -> BlkioStat:
    """Read ``blkio.throttle.io_serviced``: I/O operations per device and operation."""
    path = _path(cgroup_dir, "blkio.throttle.io_serviced")
    return parse_blkio_rwstat(read_file_bytes(path), path)


# --------------------------------------------------------------------------------------------
# pids, cgroup.procs
# --------------------------------------------------------------------------------------------


def read_pids_current(cgroup_dir: StrPath) -> int:
    """Read ``pids.current`` in the pids hierarchy: tasks (threads) in the cgroup and below."""
    return _read_int(cgroup_dir, "pids.current")


def read_pids_max(cgroup_dir: StrPath) -> int | None:
    """Read ``pids.max`` in the pids hierarchy: the task limit, None for ``max``."""
    path = _path(cgroup_dir, "pids.max")
    return parse_int_or_max(read_file_bytes(path), path)


def read_cgroup_procs(cgroup_dir: StrPath) -> CgroupProcs:
    """Read ``<cgroup_dir>/cgroup.procs`` (any v1 hierarchy); see
    :func:`observers.readers.cgroup_v2.parse_cgroup_procs`."""
    path = _path(cgroup_dir, "cgroup.procs")
    return parse_cgroup_procs(read_file_bytes(path), path)
