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
    ├── VanishedError                          the cgroup or process disappeared mid-read
    ├── AccessDeniedError                      EACCES / EPERM
    └── UnsupportedError                       EOPNOTSUPP: this kernel does not offer the file

An ``OSError`` whose errno means none of those (``EIO``, ``EINVAL`` from a write-only file, ...)
becomes a plain :class:`ReaderError` carrying the errno, with the original ``OSError`` chained as
``__cause__``.
"""

from __future__ import annotations

import errno as _errno
import os
from collections.abc import Mapping
from typing import Literal

__all__ = [
    "ACCESS_DENIED",
    "OTHER",
    "UNSUPPORTED",
    "VANISHED",
    "AccessDeniedError",
    "MalformedFileError",
    "Outcome",
    "ReaderError",
    "UnsupportedError",
    "VanishedError",
    "oserror_outcome",
    "quote_line",
    "read_file_bytes",
    "reader_error_from_oserror",
]

# How much of an offending line a MalformedFileError message quotes; a 1 MB garbage line must not
# become a 1 MB log line.
_QUOTE_LIMIT = 80

# First read size. Every cgroup file and most /proc/PID files fit; larger ones (smaps) loop.
_READ_SIZE = 16384

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
    """

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

    def __init__(self, path: str, line_number: int, reason: str) -> None:
        super().__init__(path, f"{path}:{line_number}: {reason}")
        self.line_number = line_number
        self.reason = reason


class VanishedError(ReaderError):
    """The cgroup or process went away while it was being read.

    Raised for ENOENT, ENOTDIR, ESRCH and ENODEV (a removed cgroup's kept file descriptor reads
    ENODEV), and by the /proc parsers when a file that is never empty for a live process
    (``stat``, ``status``, ``comm``, ``smaps_rollup``) reads empty.
    """


class AccessDeniedError(ReaderError):
    """The file exists but this process may not read it (EACCES or EPERM)."""


class UnsupportedError(ReaderError):
    """The running kernel does not offer this file's content (EOPNOTSUPP), e.g. the pressure
    files of a kernel booted with ``psi=0``; reading it again will not help."""


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
    """Read a whole kernel file as bytes.

    With ``fd`` None, opens ``path`` read-only, reads to end of file and closes it. With a kept
    ``fd`` (opened earlier on ``path``), re-reads it from offset 0 with ``os.pread`` and leaves
    it open; ``path`` is then used only in error messages. seq_file-backed files may return
    short reads before the end, so both forms read until a read returns no bytes.

    Raises:
        VanishedError: ENOENT, ENOTDIR, ESRCH or ENODEV (cgroup removed, process exited).
        AccessDeniedError: EACCES or EPERM.
        UnsupportedError: EOPNOTSUPP.
        ReaderError: any other ``OSError`` (its errno is kept in ``.errno``).
    """
    try:
        if fd is None:
            own = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            try:
                chunk = os.read(own, _READ_SIZE)
                if not chunk:
                    return chunk
                chunks = [chunk]
                while chunk := os.read(own, _READ_SIZE):
                    chunks.append(chunk)
            finally:
                os.close(own)
        else:
            chunk = os.pread(fd, _READ_SIZE, 0)
            if not chunk:
                return chunk
            chunks = [chunk]
            offset = len(chunk)
            while chunk := os.pread(fd, _READ_SIZE, offset):
                chunks.append(chunk)
                offset += len(chunk)
    except OSError as err:
        raise reader_error_from_oserror(err, path) from err
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)
