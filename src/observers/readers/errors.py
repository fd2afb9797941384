"""Errors raised by the kernel-file readers, what an errno means, and reading a kernel file.

Every cgroup or /proc access can race with the thing it describes: a container stops, a cgroup
is removed, a process exits between being listed and being read. Following psutil's discipline,
what an errno means is decided at exactly one place, :func:`oserror_outcome` (the table
``_OUTCOMES``), for file reads (:func:`reader_error_from_oserror`, used by
:func:`read_file_bytes` and the kept descriptors) and for the directory listings and ``stat``
calls of discovery and the hierarchy alike, so that callers handle "gone", "not allowed" and
"not offered" on purpose instead of catching everything.

Hierarchy::

    ReaderError                      base; .path is the file that failed
    ├── MalformedFileError (also ValueError)   content did not match the kernel format
    │   └── OutOfRangeError                    a number no kernel writes in that file
    ├── VanishedError                          the cgroup or process disappeared mid-read
    ├── AccessDeniedError                      EACCES / EPERM
    ├── UnsupportedError                       EOPNOTSUPP: this kernel does not offer the file
    ├── FileTooLargeError                      longer than its cap (observers.readers.limits)
    └── TooManySeriesError                     more entries than the samplers keep series for

Each class names the reason it is counted under (:attr:`ReaderError.reason_counted`:
``vanished``, ``access_denied``, ``malformed``, ``out_of_range``, ``too_large``,
``too_many_series``, ``other``): the samplers count by it and log the first error of each class
and file name once.

An ``OSError`` whose errno means none of those (``EIO``, ``EINVAL`` from a write-only file, ...)
becomes a plain :class:`ReaderError` carrying the errno, with the original ``OSError`` chained as
``__cause__``.
"""

from __future__ import annotations

import errno as _errno
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar, Literal

from observers.readers.limits import DEFAULT_MAX_BYTES, max_bytes_for

__all__ = [
    "ACCESS_DENIED",
    "OTHER",
    "REASONS_COUNTED",
    "UNSUPPORTED",
    "VANISHED",
    "AccessDeniedError",
    "FileTooLargeError",
    "MalformedFileError",
    "OutOfRangeError",
    "Outcome",
    "ReaderError",
    "Skipped",
    "TooManySeriesError",
    "UnsupportedError",
    "VanishedError",
    "oserror_outcome",
    "quote_line",
    "read_file_bytes",
    "read_rest",
    "reader_error_from_oserror",
]

# How much of an offending line a MalformedFileError message quotes; a 1 MB garbage line must not
# become a 1 MB log line.
_QUOTE_LIMIT = 80

# Read size: one read covers every cgroup file and /proc/PID file but smaps, which loops. It is
# also the smallest cap of observers.readers.limits, so a first read never overshoots a cap.
_READ_SIZE = DEFAULT_MAX_BYTES

#: The reasons read errors are counted under (:attr:`ReaderError.reason_counted` of each class),
#: the ``reason`` label of ``finemon.read_errors``.
REASONS_COUNTED = (
    "vanished",
    "access_denied",
    "malformed",
    "out_of_range",
    "too_large",
    "too_many_series",
    "other",
)

#: What an ``OSError`` means for the thing read: see :func:`oserror_outcome`.
Outcome = Literal["vanished", "access_denied", "unsupported", "other"]
VANISHED: Outcome = "vanished"
ACCESS_DENIED: Outcome = "access_denied"
UNSUPPORTED: Outcome = "unsupported"
OTHER: Outcome = "other"

# The one errno table. ENOENT: removed before the open (a cgroup directory, a /proc/PID entry);
# ENOTDIR: a path component is no longer a directory; ESRCH: the process exited after the open
# (a kept /proc descriptor, or a zombie's smaps_rollup); ENODEV: a kept descriptor of a removed
# cgroup. EOPNOTSUPP (== ENOTSUP on Linux): the kernel has the file but does not offer its
# content, e.g. the pressure files with PSI disabled (psi=0).
_OUTCOMES: Mapping[int, Outcome] = {
    _errno.ENOENT: VANISHED,
    _errno.ENOTDIR: VANISHED,
    _errno.ESRCH: VANISHED,
    _errno.ENODEV: VANISHED,
    _errno.EACCES: ACCESS_DENIED,
    _errno.EPERM: ACCESS_DENIED,
    _errno.EOPNOTSUPP: UNSUPPORTED,
    _errno.ENOTSUP: UNSUPPORTED,
}


class ReaderError(Exception):
    """A kernel file could not be read or understood.

    Attributes:
        path: the file that failed.
        errno: the OS errno when the failure came from a system call, else None.
        reason_counted: the reason the samplers count it under (``finemon.read_errors``).
    """

    reason_counted: ClassVar[str] = "other"

    def __init__(self, path: str, message: str, errno: int | None = None) -> None:
        super().__init__(message)
        self.path = path
        self.errno = errno


class MalformedFileError(ReaderError, ValueError):
    """The file's content does not match the kernel format the parser expects.

    The message reads ``"<path>:<line>: <reason>"``, e.g.
    ``"/sys/fs/cgroup/x/cpu.stat:3: expected 'key value', got b'garbage'"``.

    Attributes:
        line_number: 1-based line of the first offending line.
        reason: what was wrong, without the path and line prefix.
    """

    reason_counted: ClassVar[str] = "malformed"

    def __init__(self, path: str, line_number: int, reason: str) -> None:
        super().__init__(path, f"{path}:{line_number}: {reason}")
        self.line_number = line_number
        self.reason = reason


class OutOfRangeError(MalformedFileError):
    """A number in the kernel's syntax that no kernel writes in that file: negative where the
    kernel prints an unsigned value, above 2**64-1, above 2**63-1 (see
    :mod:`observers.readers.numbers`), or outside the file's documented range (a pid above
    ``PID_MAX_LIMIT``, a PSI average above 100 %). Raised or reported like any malformed line,
    counted apart as ``out_of_range``."""

    reason_counted: ClassVar[str] = "out_of_range"


class VanishedError(ReaderError):
    """The cgroup or process went away while it was being read.

    Raised for ENOENT, ENOTDIR, ESRCH and ENODEV (a removed cgroup's kept file descriptor reads
    ENODEV), and by the /proc parsers when a file that is never empty for a live process
    (``stat``, ``status``, ``comm``, ``smaps_rollup``) reads empty.
    """

    reason_counted: ClassVar[str] = "vanished"


class AccessDeniedError(ReaderError):
    """The file exists but this process may not read it (EACCES or EPERM)."""

    reason_counted: ClassVar[str] = "access_denied"


class UnsupportedError(ReaderError):
    """The running kernel does not offer this file's content (EOPNOTSUPP), e.g. the pressure
    files of a kernel booted with ``psi=0``; reading it again will not help."""


class FileTooLargeError(ReaderError):
    """The file is longer than its cap (:func:`observers.readers.limits.max_bytes_for`), far
    above anything the kernel writes in it; it was not read past the cap, and not parsed.

    Attributes:
        max_bytes: the cap.
        head: the file's first ``max_bytes`` bytes cut after their last newline (``b""`` when
            there is none): the complete lines within the cap, for a line-per-value file
            (``cgroup.procs``) whose caller chooses to keep what fitted.
    """

    reason_counted: ClassVar[str] = "too_large"

    def __init__(self, path: str, max_bytes: int, head: bytes) -> None:
        super().__init__(path, f"{path}: longer than {max_bytes} bytes, not read past them")
        self.max_bytes = max_bytes
        self.head = head


class TooManySeriesError(ReaderError):
    """A file held more entries (keys; devices times keys) than the samplers keep series for
    (``max_series`` of :func:`observers.readers.limits.limits_for`); the entries past the cap
    got no series.

    Attributes:
        dropped: how many values of this reading got no series.
        max_series: the cap.
    """

    reason_counted: ClassVar[str] = "too_many_series"

    def __init__(self, path: str, dropped: int, max_series: int) -> None:
        super().__init__(
            path, f"{path}: {dropped} values not written, past the cap of {max_series} series"
        )
        self.dropped = dropped
        self.max_series = max_series


@dataclass(frozen=True, slots=True)
class Skipped:
    """Lines of one file that a reader skipped for one reason, the rest of the file being kept.

    ``first`` is the error of the first such line (it names the file, the line and what was
    wrong); ``count`` how many lines had that kind of error.
    """

    first: ReaderError
    count: int


def oserror_outcome(err: OSError) -> Outcome:
    """What an ``OSError`` from a kernel file, cgroup directory or /proc entry means.

    ``"vanished"`` (ENOENT, ENOTDIR, ESRCH, ENODEV: the cgroup or process is gone),
    ``"access_denied"`` (EACCES, EPERM), ``"unsupported"`` (EOPNOTSUPP) or ``"other"``.
    """
    code = err.errno
    return OTHER if code is None else _OUTCOMES.get(code, OTHER)


def quote_line(line: bytes) -> str:
    """``repr`` of at most the first 80 bytes of ``line``, for error messages."""
    if len(line) > _QUOTE_LIMIT:
        return f"{line[:_QUOTE_LIMIT]!r}..."
    return repr(line)


def reader_error_from_oserror(err: OSError, path: str) -> ReaderError:
    """Map an ``OSError`` from opening or reading ``path`` to the matching :class:`ReaderError`.

    By :func:`oserror_outcome`: vanished -> :class:`VanishedError`, access denied ->
    :class:`AccessDeniedError`, unsupported -> :class:`UnsupportedError`, anything else -> a
    plain :class:`ReaderError`; ``.errno`` is set on each. The caller should raise the result
    ``from err`` to keep the original traceback.
    """
    code = err.errno
    reason = err.strerror or str(err)
    outcome = oserror_outcome(err)
    if outcome == VANISHED:
        return VanishedError(path, f"{path}: vanished ({reason})", code)
    if outcome == ACCESS_DENIED:
        return AccessDeniedError(path, f"{path}: access denied ({reason})", code)
    if outcome == UNSUPPORTED:
        return UnsupportedError(path, f"{path}: not supported by this kernel ({reason})", code)
    return ReaderError(path, f"{path}: {reason}", code)


def read_file_bytes(path: str, fd: int | None = None) -> bytes:
    """Read a whole kernel file as bytes, never more than one byte past its cap.

    With ``fd`` None, opens ``path`` read-only, reads to end of file and closes it. With a kept
    ``fd`` (opened earlier on ``path``), re-reads it from offset 0 with ``os.pread`` and leaves
    it open; ``path`` is then used only in error messages. seq_file-backed files may return
    short reads before the end, so both forms read until a read returns no bytes. The cap is
    that of the file's name (:func:`observers.readers.limits.max_bytes_for`), far above
    anything the kernel writes there: memory stays bounded however long the file is.

    Raises:
        FileTooLargeError: the file is longer than its cap (its ``head`` holds the complete
            lines within the cap).
        VanishedError: ENOENT, ENOTDIR, ESRCH or ENODEV (cgroup removed, process exited).
        AccessDeniedError: EACCES or EPERM.
        UnsupportedError: EOPNOTSUPP.
        ReaderError: any other ``OSError`` (its errno is kept in ``.errno``).
    """
    try:
        if fd is None:
            own = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            try:
                return read_rest(own, os.pread(own, _READ_SIZE, 0), path)
            finally:
                os.close(own)
        return read_rest(fd, os.pread(fd, _READ_SIZE, 0), path)
    except OSError as err:
        raise reader_error_from_oserror(err, path) from err


def read_rest(fd: int, first: bytes, path: str) -> bytes:
    """The whole file ``fd`` whose first bytes, ``first``, were read already from offset 0.

    Reads on with ``os.pread`` until a read returns nothing (an empty ``first`` is the whole
    file), never more than one byte past the cap of ``path``'s file name (looked up only once
    the file is longer than the smallest cap, :data:`~observers.readers.limits.DEFAULT_MAX_BYTES`).

    Raises:
        FileTooLargeError: the file is longer than its cap.
        OSError: as ``os.pread`` does (the callers map it with
            :func:`reader_error_from_oserror`).
    """
    if not first:
        return first
    chunks = [first]
    offset = len(first)
    cap = DEFAULT_MAX_BYTES  # the smallest cap; the file's own once past it
    looked_up = False
    while True:
        if offset > cap:
            if looked_up:
                break
            cap, looked_up = max_bytes_for(path), True
            if offset > cap:
                break
        chunk = os.pread(fd, min(_READ_SIZE, cap + 1 - offset), offset)
        if not chunk:
            break
        chunks.append(chunk)
        offset += len(chunk)
    data = first if len(chunks) == 1 else b"".join(chunks)
    if offset > cap:
        within = data[:cap]
        raise FileTooLargeError(path, cap, within[: within.rfind(b"\n") + 1])
    return data
