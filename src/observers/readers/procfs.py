"""Readers for per-process files under ``/proc/<pid>/``.

Formats follow the kernel's Documentation/filesystems/proc.rst and ``man 5 proc``. As in
:mod:`observers.readers.cgroup_v2`, each file has a pure ``parse_<thing>(data, path)`` and a
``read_<thing>(pid_dir)`` that reads ``<pid_dir>/<file>`` (``pid_dir`` is ``/proc/<pid>``,
``/proc/self`` or a fixture directory; :func:`proc_pid_dir` builds one).

A process can exit at any moment, so besides :class:`~.errors.MalformedFileError` (errors are
those of :mod:`observers.readers.errors`; a number outside its field's range, see
:mod:`observers.readers.numbers`, raises :class:`~.errors.OutOfRangeError`, one of them, and the
file is refused):

* ``read_*`` raise :class:`~.errors.FileTooLargeError` for a file longer than its cap
  (:mod:`observers.readers.limits`), :class:`~.errors.VanishedError` when the process is gone
  (ENOENT at open, ESRCH at read, including re-reads of a kept descriptor after the process was
  reaped), :class:`~.errors.AccessDeniedError` on EACCES/EPERM (another user's ``smaps``
  without ptrace rights) and :class:`~.errors.ReaderError` for other OS errors.
* Parsers raise :class:`~.errors.VanishedError` for empty input where a live or zombie process
  never produces it (``stat``, ``status``, ``comm``, ``smaps_rollup``): an empty read means the
  process went away.
* Zombies and kernel threads have no address space: their ``smaps_rollup`` read fails with ESRCH
  (so it, too, surfaces as :class:`~.errors.VanishedError`), their ``smaps`` and ``cmdline`` read
  empty (an empty mapping and an empty tuple), and their ``status`` lacks the ``Vm*``/``Rss*``
  lines (those fields stay None).

Units: sizes are converted from the kernel's kB to bytes; CPU times stay in clock ticks
(``os.sysconf("SC_CLK_TCK")``), as the field names say.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from operator import itemgetter

from observers.readers.errors import MalformedFileError, VanishedError, quote_line, read_file_bytes
from observers.readers.keyed import Key, KeyedFile
from observers.readers.numbers import (
    INT64_MAX,
    KIB,
    NICE,
    PID,
    PID_MAX_LIMIT,
    PRIORITY,
    U64,
    IntRange,
    all_digits,
    parse_int,
)

__all__ = [
    "ANON_REGION",
    "ProcStat",
    "ProcStatus",
    "SmapsRegion",
    "SmapsRollup",
    "parse_cmdline",
    "parse_comm",
    "parse_smaps",
    "parse_smaps_rollup",
    "parse_stat",
    "parse_status",
    "proc_pid_dir",
    "read_cmdline",
    "read_comm",
    "read_smaps",
    "read_smaps_rollup",
    "read_stat",
    "read_status",
]

StrPath = str | os.PathLike[str]


def proc_pid_dir(pid: int, proc_root: str = "/proc") -> str:
    """The ``/proc/<pid>`` directory of ``pid`` under ``proc_root``."""
    return f"{proc_root}/{pid}"


def _path(directory: StrPath, name: str) -> str:
    return f"{os.fspath(directory)}/{name}"


def _vanished_if_empty(data: bytes, path: str) -> None:
    if not data:
        raise VanishedError(path, f"{path}: read empty, the process is gone")


# --------------------------------------------------------------------------------------------
# stat
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ProcStat:
    """``/proc/<pid>/stat`` (field numbers from ``man 5 proc``).

    Times are clock ticks: ``utime_ticks`` (14), ``stime_ticks`` (15), ``cutime_ticks``/
    ``cstime_ticks`` (16/17, reaped children), ``starttime_ticks`` (22, since boot),
    ``delayacct_blkio_ticks`` (42). ``vsize_bytes`` (23) is bytes, ``rss_pages`` (24) is pages
    (``os.sysconf("SC_PAGE_SIZE")``). ``minflt``/``majflt`` (10/12) are fault counts,
    ``processor`` (39) the CPU last run on. A field the running kernel does not print stays None.
    """

    pid: int
    comm: str
    state: str
    ppid: int | None = None
    pgrp: int | None = None
    session: int | None = None
    minflt: int | None = None
    majflt: int | None = None
    utime_ticks: int | None = None
    stime_ticks: int | None = None
    cutime_ticks: int | None = None
    cstime_ticks: int | None = None
    priority: int | None = None
    nice: int | None = None
    num_threads: int | None = None
    starttime_ticks: int | None = None
    vsize_bytes: int | None = None
    rss_pages: int | None = None
    processor: int | None = None
    delayacct_blkio_ticks: int | None = None


# Index into the fields after "(comm)" (field 3, state, is index 0) of each typed field after
# ``state``, in ProcStat order, and the range of its values: ppid, pgrp and session are pids,
# priority (-100..39) and nice (-20..19) the only signed ones, the rest unsigned.
_STAT_FIELDS: tuple[tuple[int, IntRange], ...] = (
    *((index, PID) for index in (1, 2, 3)),
    *((index, U64) for index in (7, 9, 11, 12, 13, 14)),
    (15, PRIORITY),
    (16, NICE),
    *((index, U64) for index in (17, 19, 20, 21, 36, 39)),
)
_STAT_INDEXES = tuple(index for index, _ in _STAT_FIELDS)
_stat_numbers = itemgetter(*_STAT_INDEXES)


def parse_stat(data: bytes, path: str) -> ProcStat:
    """Parse ``/proc/<pid>/stat``.

    ``comm`` is taken between the first ``(`` and the *last* ``)``, since it may itself contain
    spaces and parentheses; it is decoded as UTF-8 with invalid bytes replaced.

    Every number is checked against its field's range (pids below ``PID_MAX_LIMIT``, priority
    -100..39, nice -20..19, the others 0..2**63-1).

    Raises:
        VanishedError: empty input (the process is gone).
        OutOfRangeError: a typed number outside its range.
        MalformedFileError: no ``(comm)``, a non-integer pid, or a non-integer numeric field.
    """
    _vanished_if_empty(data, path)
    open_paren = data.find(b"(")
    close_paren = data.rfind(b")")
    if open_paren < 0 or close_paren < open_paren:
        raise MalformedFileError(path, 1, f"expected 'pid (comm) state ...', got {_first(data)}")
    rest = data[close_paren + 1 :]
    fields = rest.split()
    pid = parse_int(data[:open_paren].rstrip(b" "), PID, path, 1)
    if pid is None or not fields:
        raise MalformedFileError(path, 1, f"expected 'pid (comm) state ...', got {_first(data)}")
    state = fields[0].decode(errors="replace")
    numbers: list[int | None] | None = None
    if len(fields) > _STAT_INDEXES[-1]:
        # Fast path, every typed field present (kernels >= 2.6.18): all plain digits (none
        # negative, so priority and nice are within 0..39 and 0..19 if at most their highs),
        # pids below the limit, the rest within int64.
        typed = _stat_numbers(fields)
        if all_digits(typed):
            try:
                values = list(map(int, typed))
            except ValueError:  # more digits than int() takes: the slow path says which
                values = [INT64_MAX + 1]
            if (
                max(values) <= INT64_MAX
                and max(values[:3]) < PID_MAX_LIMIT
                and values[9] <= PRIORITY.high
                and values[10] <= NICE.high
            ):
                numbers = list(values)
    if numbers is None:
        numbers = _stat_fields(fields, data, path)
    comm = data[open_paren + 1 : close_paren].decode(errors="replace")
    return ProcStat(pid, comm, state, *numbers)


def _stat_fields(fields: list[bytes], data: bytes, path: str) -> list[int | None]:
    numbers: list[int | None] = []
    count = len(fields)
    for index, kind in _STAT_FIELDS:
        if index >= count:
            numbers.append(None)
            continue
        value = parse_int(fields[index], kind, path, 1)
        if value is None:
            raise MalformedFileError(
                path, 1, f"expected 'pid (comm) state ...', got {_first(data)}"
            )
        numbers.append(value)
    return numbers


def _first(data: bytes) -> str:
    return quote_line(data.split(b"\n", 1)[0])


def read_stat(pid_dir: StrPath) -> ProcStat:
    """Read ``<pid_dir>/stat``; see :func:`parse_stat`."""
    path = _path(pid_dir, "stat")
    return parse_stat(read_file_bytes(path), path)


# --------------------------------------------------------------------------------------------
# status
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ProcStatus:
    """Selected lines of ``/proc/<pid>/status``; ``*_bytes`` are converted from the file's kB.

    ``name`` is the escaped command name as printed; ``state`` its one-letter code. ``vm_*``,
    ``rss_*`` and ``hugetlb_pages_bytes`` are absent (None) for zombies and kernel threads;
    ``rss_anon/file/shmem`` exist on kernels >= 4.5. Context switch fields are counts.
    """

    name: str | None = None
    state: str | None = None
    tgid: int | None = None
    pid: int | None = None
    ppid: int | None = None
    threads: int | None = None
    vm_peak_bytes: int | None = None
    vm_size_bytes: int | None = None
    vm_lck_bytes: int | None = None
    vm_hwm_bytes: int | None = None
    vm_rss_bytes: int | None = None
    rss_anon_bytes: int | None = None
    rss_file_bytes: int | None = None
    rss_shmem_bytes: int | None = None
    vm_data_bytes: int | None = None
    vm_stk_bytes: int | None = None
    vm_exe_bytes: int | None = None
    vm_lib_bytes: int | None = None
    vm_pte_bytes: int | None = None
    vm_swap_bytes: int | None = None
    hugetlb_pages_bytes: int | None = None
    voluntary_ctxt_switches: int | None = None
    nonvoluntary_ctxt_switches: int | None = None


# status key -> (position among ProcStatus's integer fields, value is in kB); the range of a kB
# value is KIB, of a count U64 (Tgid, Pid and PPid are pids).
_STATUS_PIDS = frozenset({b"Tgid", b"Pid", b"PPid"})
_STATUS_INT_KEYS: dict[bytes, tuple[int, bool]] = {
    key: (position, in_kb)
    for position, (key, in_kb) in enumerate(
        (
            (b"Tgid", False),
            (b"Pid", False),
            (b"PPid", False),
            (b"Threads", False),
            (b"VmPeak", True),
            (b"VmSize", True),
            (b"VmLck", True),
            (b"VmHWM", True),
            (b"VmRSS", True),
            (b"RssAnon", True),
            (b"RssFile", True),
            (b"RssShmem", True),
            (b"VmData", True),
            (b"VmStk", True),
            (b"VmExe", True),
            (b"VmLib", True),
            (b"VmPTE", True),
            (b"VmSwap", True),
            (b"HugetlbPages", True),
            (b"voluntary_ctxt_switches", False),
            (b"nonvoluntary_ctxt_switches", False),
        )
    )
}


def parse_status(data: bytes, path: str) -> ProcStatus:
    """Parse ``/proc/<pid>/status`` (``Key:<TAB>value`` lines); lines not typed are ignored.

    Raises:
        VanishedError: empty input (the process is gone).
        OutOfRangeError: a typed number outside its range (a pid below ``PID_MAX_LIMIT``, a
            size in kB whose bytes fit in int64, a count within 0..2**63-1).
        MalformedFileError: a non-blank line without ``:``, a typed integer line whose value is
            not an integer, or a size line whose unit is not ``kB``.
    """
    _vanished_if_empty(data, path)
    name = state = None
    numbers: list[int | None] = [None] * len(_STATUS_INT_KEYS)
    for number, line in enumerate(data.split(b"\n"), 1):
        key, sep, rest = line.partition(b":")
        if not sep:
            if line.strip():
                raise MalformedFileError(
                    path, number, f"expected 'Key: value', got {quote_line(line)}"
                )
            continue
        slot = _STATUS_INT_KEYS.get(key)
        if slot is not None:
            position, in_kb = slot
            parts = rest.split()
            value = None
            if in_kb:
                if len(parts) == 2 and parts[1] == b"kB":
                    value = parse_int(parts[0], KIB, path, number)
                    value = None if value is None else value << 10
            elif len(parts) == 1:
                value = parse_int(parts[0], PID if key in _STATUS_PIDS else U64, path, number)
            if value is None:
                raise MalformedFileError(
                    path, number, f"expected a number for {key!r}, got {quote_line(line)}"
                )
            numbers[position] = value
        elif key == b"Name":
            # The kernel escapes control characters; the name itself may contain spaces.
            raw_name = rest[1:] if rest.startswith(b"\t") else rest.strip()
            name = raw_name.decode(errors="replace")
        elif key == b"State":
            state = rest.strip()[:1].decode(errors="replace") or None
    return ProcStatus(name, state, *numbers)


def read_status(pid_dir: StrPath) -> ProcStatus:
    """Read ``<pid_dir>/status``; see :func:`parse_status`."""
    path = _path(pid_dir, "status")
    return parse_status(read_file_bytes(path), path)


# --------------------------------------------------------------------------------------------
# comm, cmdline
# --------------------------------------------------------------------------------------------


def parse_comm(data: bytes, path: str) -> str:
    """Parse ``/proc/<pid>/comm``: the command name (at most 15 bytes), without the newline.

    Decoded as UTF-8 with invalid bytes replaced.

    Raises:
        VanishedError: empty input (the process is gone).
    """
    _vanished_if_empty(data, path)
    if data.endswith(b"\n"):
        data = data[:-1]
    return data.decode(errors="replace")


def read_comm(pid_dir: StrPath) -> str:
    """Read ``<pid_dir>/comm``; see :func:`parse_comm`."""
    path = _path(pid_dir, "comm")
    return parse_comm(read_file_bytes(path), path)


def parse_cmdline(data: bytes, path: str) -> tuple[str, ...]:
    """Parse ``/proc/<pid>/cmdline``: NUL-separated arguments, decoded with invalid UTF-8 replaced.

    Empty input (kernel thread or zombie) gives an empty tuple. A process that rewrote its
    argument area (setproctitle) may print one space-separated string without a final NUL; it is
    returned as it is. Never raises.
    """
    if not data:
        return ()
    if data.endswith(b"\0"):
        data = data[:-1]
    return tuple(arg.decode(errors="replace") for arg in data.split(b"\0"))


def read_cmdline(pid_dir: StrPath) -> tuple[str, ...]:
    """Read ``<pid_dir>/cmdline``; see :func:`parse_cmdline`."""
    path = _path(pid_dir, "cmdline")
    return parse_cmdline(read_file_bytes(path), path)


# --------------------------------------------------------------------------------------------
# smaps_rollup
# --------------------------------------------------------------------------------------------


class SmapsRollup(KeyedFile):
    """``/proc/<pid>/smaps_rollup``: the process's memory summed over all mappings, bytes.

    ``values`` holds every line of the file by its kernel key (``Rss``, ``Pss_Anon`` ...),
    converted to bytes; a line without the ``kB`` unit (none today) would be kept as printed.
    ``pss_dirty`` appeared in 6.0, ``ksm`` in 6.7; others are older.
    """

    __slots__ = ()
    rss_bytes = Key("Rss")
    pss_bytes = Key("Pss")
    pss_dirty_bytes = Key("Pss_Dirty")
    pss_anon_bytes = Key("Pss_Anon")
    pss_file_bytes = Key("Pss_File")
    pss_shmem_bytes = Key("Pss_Shmem")
    shared_clean_bytes = Key("Shared_Clean")
    shared_dirty_bytes = Key("Shared_Dirty")
    private_clean_bytes = Key("Private_Clean")
    private_dirty_bytes = Key("Private_Dirty")
    referenced_bytes = Key("Referenced")
    anonymous_bytes = Key("Anonymous")
    ksm_bytes = Key("KSM")
    lazy_free_bytes = Key("LazyFree")
    anon_huge_pages_bytes = Key("AnonHugePages")
    shmem_pmd_mapped_bytes = Key("ShmemPmdMapped")
    file_pmd_mapped_bytes = Key("FilePmdMapped")
    shared_hugetlb_bytes = Key("Shared_Hugetlb")
    private_hugetlb_bytes = Key("Private_Hugetlb")
    swap_bytes = Key("Swap")
    swap_pss_bytes = Key("SwapPss")
    locked_bytes = Key("Locked")


def parse_smaps_rollup(data: bytes, path: str) -> SmapsRollup:
    """Parse ``/proc/<pid>/smaps_rollup``: a ``[rollup]`` header line, then ``Key: N kB`` lines.

    Sizes in kB must fit in int64 once in bytes; a line without a unit, 0..2**63-1.

    Raises:
        VanishedError: empty input (no address space left: the process is gone).
        OutOfRangeError: a size outside its range.
        MalformedFileError: the header is missing, or a line is not ``Key: number [kB]``.
    """
    _vanished_if_empty(data, path)
    lines = data.split(b"\n")
    if lines[-1] == b"":
        lines.pop()
    header = lines[0].split()
    if not header or header[0].endswith(b":"):
        raise MalformedFileError(
            path, 1, f"expected the '[rollup]' header line, got {quote_line(lines[0])}"
        )
    try:
        # Fast path: every line is exactly "Key: N kB", N plain digits, its bytes within int64
        # (a line short, or one N too large, and the exact scan says which line).
        values = {
            key[:-1].decode(): int(value) << 10
            for key, value, unit in map(bytes.split, lines[1:])
            if unit == b"kB" and key[-1:] == b":" and _isdigit(value)
        }
    except ValueError:
        values = {}
    if len(values) != len(lines) - 1 or (values and max(values.values()) > INT64_MAX):
        values = _parse_size_lines(lines, 2, path)
    return SmapsRollup(values)


_isdigit = bytes.isdigit


def _parse_size_lines(lines: list[bytes], first_number: int, path: str) -> dict[str, int]:
    values: dict[str, int] = {}
    for number, line in enumerate(lines[first_number - 1 :], first_number):
        parts = line.split()
        if not parts:
            continue
        if len(parts) in (2, 3) and parts[0].endswith(b":"):
            if len(parts) == 2:
                value = parse_int(parts[1], U64, path, number)
            elif parts[2] == b"kB":
                value = parse_int(parts[1], KIB, path, number)
                value = None if value is None else value << 10
            else:
                value = None
            if value is not None:
                try:
                    values[parts[0][:-1].decode()] = value
                    continue
                except UnicodeDecodeError:
                    pass
        raise MalformedFileError(path, number, f"expected 'Key: N kB', got {quote_line(line)}")
    return values


def read_smaps_rollup(pid_dir: StrPath) -> SmapsRollup:
    """Read ``<pid_dir>/smaps_rollup``; see :func:`parse_smaps_rollup`.

    Kernel threads and zombies fail this read with ESRCH, reported as ``VanishedError``.
    """
    path = _path(pid_dir, "smaps_rollup")
    return parse_smaps_rollup(read_file_bytes(path), path)


# --------------------------------------------------------------------------------------------
# smaps, aggregated per mapped path
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SmapsRegion:
    """The mappings of one path in ``/proc/<pid>/smaps``, summed; all sizes in bytes.

    ``path`` is the mapping's pathname (``/usr/lib/libc.so.6``, ``[heap]``, ``[stack]``,
    ``[vdso]``, ``[anon:<name>]`` ...), ``[anon]`` for anonymous mappings without a name.
    ``mappings`` is how many mappings were summed. A key no mapping reported stays None.
    """

    path: str
    mappings: int
    size_bytes: int | None = None
    rss_bytes: int | None = None
    pss_bytes: int | None = None
    shared_clean_bytes: int | None = None
    shared_dirty_bytes: int | None = None
    private_clean_bytes: int | None = None
    private_dirty_bytes: int | None = None
    anonymous_bytes: int | None = None
    swap_bytes: int | None = None
    swap_pss_bytes: int | None = None


# smaps key -> position among SmapsRegion's size fields
_SMAPS_KEYS: dict[bytes, int] = {
    key: position
    for position, key in enumerate(
        (
            b"Size:",
            b"Rss:",
            b"Pss:",
            b"Shared_Clean:",
            b"Shared_Dirty:",
            b"Private_Clean:",
            b"Private_Dirty:",
            b"Anonymous:",
            b"Swap:",
            b"SwapPss:",
        )
    )
}

# Region name for anonymous mappings that have no name (no path, no [heap]/[stack]/[anon:...]).
ANON_REGION = "[anon]"


def parse_smaps(data: bytes, path: str) -> Mapping[str, SmapsRegion]:
    """Parse ``/proc/<pid>/smaps`` and sum the sizes of the mappings of each path.

    Returns regions keyed by path, in order of first appearance. Lines other than the summed
    sizes (``KernelPageSize``, ``VmFlags``, ``THPeligible`` ...) are ignored. Empty input (kernel
    thread, zombie) gives an empty mapping. This file can be large (tens of lines per mapping)
    and costly for the kernel to produce; it is meant for an occasional per-region breakdown,
    not for every tick.

    Raises:
        OutOfRangeError: a summed size whose bytes do not fit in int64.
        MalformedFileError: a field line before the first mapping header, a malformed header, or
            a summed size that is not ``N kB``.
    """
    sums: dict[str, list[int | None]] = {}
    counts: dict[str, int] = {}
    current: list[int | None] | None = None
    for number, line in enumerate(data.split(b"\n"), 1):
        first, _, rest = line.partition(b" ")
        if first.endswith(b":"):
            position = _SMAPS_KEYS.get(first)
            if position is None:
                continue
            if current is None:
                raise MalformedFileError(
                    path, number, f"field before the first mapping: {quote_line(line)}"
                )
            parts = rest.split()
            kib = None
            if len(parts) == 2 and parts[1] == b"kB":
                kib = parse_int(parts[0], KIB, path, number)
            if kib is None:
                reason = f"expected 'Key: N kB', got {quote_line(line)}"
                raise MalformedFileError(path, number, reason)
            size = kib << 10
            previous = current[position]
            current[position] = size if previous is None else previous + size
        elif line:
            header = line.split(None, 5)
            if len(header) < 5 or b"-" not in header[0]:
                raise MalformedFileError(
                    path, number, f"expected a mapping header, got {quote_line(line)}"
                )
            region = header[5].decode(errors="replace") if len(header) == 6 else ANON_REGION
            current = sums.get(region)
            if current is None:
                current = sums[region] = [None] * len(_SMAPS_KEYS)
                counts[region] = 0
            counts[region] += 1
    return {region: SmapsRegion(region, counts[region], *sizes) for region, sizes in sums.items()}


def read_smaps(pid_dir: StrPath) -> Mapping[str, SmapsRegion]:
    """Read ``<pid_dir>/smaps``; see :func:`parse_smaps`."""
    path = _path(pid_dir, "smaps")
    return parse_smaps(read_file_bytes(path), path)
