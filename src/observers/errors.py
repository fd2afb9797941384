"""Errors raised by the kernel-file readers, and the one place that reads a kernel file.

Every cgroup or /proc file read can race with the thing it describes: a container stops, a cgroup
is removed, a process exits between being listed and being read. Following psutil's discipline,
each of those outcomes becomes a distinct exception type, decided at exactly one place
(:func:`reader_error_from_oserror`, called only by :func:`read_file_bytes`), so that callers can
handle "gone" and "not allowed" on purpose instead of catching everything.

Hierarchy::

    ReaderError                      base; .path is the file that failed
    ├── MalformedFileError (also ValueError)   content did not match the kernel format
    ├── VanishedError                          the cgroup or process disappeared mid-read
    └── AccessDeniedError                      EACCES / EPERM

An ``OSError`` whose errno means neither "gone" nor "denied" (``EOPNOTSUPP`` from a pressure file
when PSI is disabled, ``EIO``, ...) becomes a plain :class:`ReaderError` carrying the errno, with
the original ``OSError`` chained as ``__cause__``.
"""

from __future__ import annotations

import errno as _errno
import os

__all__ = [
    "AccessDeniedError",
    "MalformedFileError",
    "ReaderError",
    "VanishedError",
    "quote_line",
    "read_file_bytes",
    "reader_error_from_oserror",
]

# How much of an offending line a MalformedFileError message quotes; a 1 MB garbage line must not
# become a 1 MB log line.
_QUOTE_LIMIT = 80

# First read size. Every cgroup file and most /proc/PID files fit; larger ones (smaps) loop.
_READ_SIZE = 16384

_VANISHED_ERRNOS = frozenset({_errno.ENOENT, _errno.ESRCH, _errno.ENODEV})
_DENIED_ERRNOS = frozenset({_errno.EACCES, _errno.EPERM})


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

    Raised for ENOENT, ESRCH and ENODEV (a removed cgroup's kept file descriptor reads ENODEV),
    and by the /proc parsers when a file that is never empty for a live process (``stat``,
    ``status``, ``comm``, ``smaps_rollup``) reads empty.
    """


class AccessDeniedError(ReaderError):
    """The file exists but this process may not read it (EACCES or EPERM)."""


def quote_line(line: bytes) -> str:
    """``repr`` of at most the first 80 bytes of ``line``, for error messages."""
    if len(line) > _QUOTE_LIMIT:
        return f"{line[:_QUOTE_LIMIT]!r}..."
    return repr(line)


def reader_error_from_oserror(err: OSError, path: str) -> ReaderError:
    """Map an ``OSError`` from opening or reading ``path`` to the matching :class:`ReaderError`.

    ENOENT/ESRCH/ENODEV -> :class:`VanishedError`; EACCES/EPERM -> :class:`AccessDeniedError`;
    anything else -> a plain :class:`ReaderError` with ``.errno`` set. The caller should raise the
    result ``from err`` to keep the original traceback.
    """
    code = err.errno
    reason = err.strerror or str(err)
    if code in _VANISHED_ERRNOS:
        return VanishedError(path, f"{path}: vanished ({reason})", code)
    if code in _DENIED_ERRNOS:
        return AccessDeniedError(path, f"{path}: access denied ({reason})", code)
    return ReaderError(path, f"{path}: {reason}", code)


def read_file_bytes(path: str, fd: int | None = None) -> bytes:
    """Read a whole kernel file as bytes.

    With ``fd`` None, opens ``path`` read-only, reads to end of file and closes it. With a kept
    ``fd`` (opened earlier on ``path``), re-reads it from offset 0 with ``os.pread`` and leaves
    it open; ``path`` is then used only in error messages. seq_file-backed files may return
    short reads before the end, so both forms read until a read returns no bytes.

    Raises:
        VanishedError: ENOENT, ESRCH or ENODEV (cgroup removed, process exited).
        AccessDeniedError: EACCES or EPERM.
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
