"""Which numbers a kernel file may hold: the one check every reader applies to every value.

The kernel prints its counters and gauges as unsigned 64-bit decimals (``%llu``, ``%lu``), limits
as such a number or ``max``, a few values signed (v1 ``cpu.cfs_quota_us``, ``-1`` for no limit;
``/proc/<pid>/stat``'s priority and nice), PSI averages as ``%lu.%02lu`` percentages. Each
reader takes the range of its file's values from here (:class:`IntRange`, :class:`DecimalRange`)
and parses every value with :func:`parse_int` or :func:`parse_decimal` (or, on a fast path, checks
a whole file's values at once, e.g. with :func:`all_digits`, falling back to the per-value check
when that fails, so both paths accept the same files). A value is:

* **malformed** when it is not a number in the kernel's syntax: decimal digits, a ``-`` in front,
  a ``.`` and more digits for a decimal (``int()`` would also take ``+5``, `` 5`` or ``1_000``,
  which no kernel prints). The reader says what it expected (:class:`MalformedFileError`).
* **out of range** when it is such a number outside its file's range: negative where the kernel
  prints an unsigned value (``pids.current`` of ``-7``, ``memory.max`` of ``-1``), above
  ``2**64-1`` (no unsigned 64-bit value; ``memory.current`` of ``2**64+1``), above ``2**63-1``,
  or outside a narrower documented range (a pid, ``cpu.weight``, a CFS period, a PSI average).
  :class:`~observers.readers.errors.OutOfRangeError`, a ``MalformedFileError`` counted apart.

**Why 2**63-1.** finemon stores integers in int64 columns (the counters' ``value_int``), so every
integer a reader returns fits in int64. A u64 between ``2**63`` and ``2**64-1`` is one the kernel
could print, but no real counter gets there (``2**63`` nanoseconds are 292 years, bytes 8 EiB;
v1's "unlimited" memory limit, ``LONG_MAX`` rounded down to a page, is below it), and written as a
float it would be a silently rounded number: it is refused as out of range, like a value above
``2**64-1``, with a message that says which.

A value refused is never replaced by a guess: the file (or, in ``cgroup.procs``, the line) is
refused, named with its line in the error, counted by the samplers under ``malformed`` or
``out_of_range`` and logged once per kind of error and file name.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from observers.readers.errors import OutOfRangeError, quote_line

__all__ = [
    "CFS_PERIOD_USEC",
    "CFS_QUOTA_USEC",
    "CPU_SHARES",
    "CPU_WEIGHT",
    "DEVICE_NUMBER",
    "INT64_MAX",
    "KIB",
    "NICE",
    "NON_NEGATIVE",
    "PID",
    "PID_MAX_LIMIT",
    "PRIORITY",
    "PSI_PERCENT",
    "U64",
    "U64_MAX",
    "DecimalRange",
    "IntRange",
    "all_digits",
    "parse_decimal",
    "parse_int",
]

U64_MAX = 2**64 - 1
#: The largest integer finemon stores (int64 columns); every integer a reader returns fits.
INT64_MAX = 2**63 - 1
#: The kernel's highest possible ``pid_max`` on 64-bit (``include/linux/threads.h``): every pid
#: is below it.
PID_MAX_LIMIT = 1 << 22
# More digits than any u64 (20): refused before int(), which is slow on long strings and
# refuses more than sys.get_int_max_str_digits() of them.
_MAX_DIGITS = 20


@dataclass(frozen=True, slots=True)
class IntRange:
    """The integers a file's value may take, ``low``..``high`` inclusive; ``what`` names them
    in error messages."""

    low: int
    high: int
    what: str


@dataclass(frozen=True, slots=True)
class DecimalRange:
    """The decimals (``%lu.%02lu``) a file's value may take, ``low``..``high`` inclusive."""

    low: float
    high: float
    what: str


#: A kernel counter or gauge printed unsigned (bytes, microseconds, events, pages ...): every
#: value of every keyed, per-device and single-value file unless its reader says otherwise.
U64 = IntRange(0, INT64_MAX, "an unsigned 64-bit value")
#: A pid as printed in ``cgroup.procs`` or ``/proc/<pid>/stat`` (0: outside our pid namespace).
PID = IntRange(0, PID_MAX_LIMIT - 1, "a pid")
#: ``cpu.weight`` (``CGROUP_WEIGHT_MIN``..``MAX``; 0 for a cgroup with ``cpu.idle`` set).
CPU_WEIGHT = IntRange(0, 10_000, "a cpu.weight")
#: v1 ``cpu.shares`` (``MIN_SHARES``..``MAX_SHARES``: the kernel clamps what is written).
CPU_SHARES = IntRange(2, 1 << 18, "a cpu.shares value")
#: The CFS bandwidth period, microseconds (``cpu.max``'s second field, v1 ``cpu.cfs_period_us``):
#: the kernel refuses a period outside 1 ms..1 s.
CFS_PERIOD_USEC = IntRange(1_000, 1_000_000, "a CFS period in microseconds")
#: v1 ``cpu.cfs_quota_us``: microseconds per period, or -1 for no limit.
CFS_QUOTA_USEC = IntRange(-1, INT64_MAX, "a CFS quota in microseconds or -1")
#: A size in kB (``/proc/<pid>/status``, ``smaps_rollup``, ``smaps``): the readers return it
#: in bytes, so 1024 times it must fit in int64.
KIB = IntRange(0, INT64_MAX >> 10, "a size in kB")
#: ``/proc/<pid>/stat`` field 18: -100..-2 for real-time tasks, 0..39 otherwise.
PRIORITY = IntRange(-100, 39, "a scheduling priority")
#: ``/proc/<pid>/stat`` field 19.
NICE = IntRange(-20, 19, "a nice value")
#: A device's major or minor number (``MAJ:MIN`` in io.stat and the blkio files).
DEVICE_NUMBER = IntRange(0, 2**32 - 1, "a device number")
#: A PSI average (``avg10`` ...): the share of time stalled, percent.
PSI_PERCENT = DecimalRange(0.0, 100.0, "a PSI average in percent")
#: io.stat's decimal keys (iocost's ``cost.vrate``, a percentage that may exceed 100).
NON_NEGATIVE = DecimalRange(0.0, math.inf, "a non-negative decimal")


def parse_int(raw: bytes, kind: IntRange, path: str, line_number: int) -> int | None:
    """The integer ``raw`` spells, checked against ``kind``; None when ``raw`` is not a decimal
    integer as the kernel prints one (the caller then raises its own MalformedFileError).

    Raises:
        OutOfRangeError: a decimal integer outside ``kind`` (naming ``path`` and the line).
    """
    if raw.isdigit() and len(raw) <= 18:  # the common case: no sign, within int64
        value = int(raw)
        if kind.low <= value <= kind.high:
            return value
        raise _out_of_range(raw, value, kind, path, line_number)
    digits = raw[1:] if raw[:1] == b"-" else raw
    if not digits.isdigit():
        return None
    if len(digits) > _MAX_DIGITS:
        raise _out_of_range(raw, None, kind, path, line_number)
    value = int(raw)
    # "-0" is no unsigned value either: the kernel prints a sign only in a signed field.
    if kind.low <= value <= kind.high and (kind.low < 0 or raw[:1] != b"-"):
        return value
    raise _out_of_range(raw, value, kind, path, line_number)


def parse_decimal(raw: bytes, kind: DecimalRange, path: str, line_number: int) -> float | None:
    """The decimal ``raw`` spells (``12``, ``12.05``, a ``-`` in front), checked against
    ``kind``; None when ``raw`` is not one (``nan``, ``inf``, ``1e5`` are not).

    Raises:
        OutOfRangeError: a decimal outside ``kind``.
    """
    whole, dot, fraction = (raw[1:] if raw[:1] == b"-" else raw).partition(b".")
    if not whole.isdigit() or (dot and not fraction.isdigit()):
        return None
    value = float(raw)
    if kind.low <= value <= kind.high:
        return value
    reason = f"{quote_line(raw)} is outside {kind.what} ({kind.low:g}..{kind.high:g})"
    raise OutOfRangeError(path, line_number, reason)


def all_digits(tokens: Iterable[bytes]) -> bool:
    """Whether the tokens (from ``bytes.split``, so none is empty) are all decimal digits, i.e.
    unsigned values as the kernel prints them: one pass over them all, for a fast path. False
    when there are no tokens."""
    return b"".join(tokens).isdigit()


def _out_of_range(
    raw: bytes, value: int | None, kind: IntRange, path: str, line_number: int
) -> OutOfRangeError:
    shown = quote_line(raw)
    if raw[:1] == b"-" and kind.low >= 0:
        reason = f"{shown} is negative: expected {kind.what} ({kind.low}..{kind.high})"
    elif value is None or value > U64_MAX:
        reason = f"{shown} is above 2**64-1: no kernel value, expected {kind.what}"
    elif value > INT64_MAX and kind.high == INT64_MAX:
        reason = (
            f"{shown} is above 2**63-1: an unsigned 64-bit value, but more than finemon's "
            "int64 columns hold"
        )
    else:
        reason = f"{shown} is outside {kind.what} ({kind.low}..{kind.high})"
    return OutOfRangeError(path, line_number, reason)
