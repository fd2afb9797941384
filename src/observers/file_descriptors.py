"""Kernel files kept open between ticks (:class:`KeptFile`) and the budget of descriptors they
may hold (:class:`FdBudget`): a file is re-read with one ``pread`` instead of open/read/close.

cgroup files and ``/proc/PID/{stat,smaps_rollup}`` are regenerated on every read from offset 0,
so a descriptor kept across ticks returns fresh values and saves the open and close (most of
the kernel time of a sample). A descriptor of a removed cgroup or an exited process fails with
ENODEV/ESRCH, which maps to :class:`~observers.readers.errors.VanishedError`; a reused PID never
reads through an old descriptor. How many descriptors are kept is bounded by :class:`FdBudget`,
and how much of a file is read by its cap (:mod:`observers.readers.limits`).
"""

from __future__ import annotations

import os
import resource

from observers.readers.errors import FileTooLargeError, read_rest, reader_error_from_oserror
from observers.readers.limits import DEFAULT_MAX_BYTES

#: One read covers every file finemon keeps (the largest, memory.stat, is a few KiB); it is the
#: smallest cap, so a longer file is checked against its own cap only past it.
_READ_SIZE = DEFAULT_MAX_BYTES


class FdBudget:
    """How many descriptors may be kept open; raises the soft RLIMIT_NOFILE to the hard one."""

    def __init__(self, reserve: int = 256) -> None:
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        target = hard if hard != resource.RLIM_INFINITY else 1 << 20
        if soft != resource.RLIM_INFINITY and soft < target:
            try:
                resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
                soft = target
            except (ValueError, OSError):
                pass
        limit = soft if soft != resource.RLIM_INFINITY else 1 << 20
        self.available = max(0, min(limit, 1 << 20) - reserve)

    def take(self) -> bool:
        """Reserve one kept descriptor; False when none is left (read without keeping)."""
        if self.available > 0:
            self.available -= 1
            return True
        return False

    def give_back(self) -> None:
        self.available += 1


class KeptFile:
    """A kernel file read repeatedly through one kept descriptor.

    :meth:`read` raises FileTooLargeError (past the file's cap), VanishedError,
    AccessDeniedError or ReaderError like :func:`observers.readers.errors.read_file_bytes`.
    """

    __slots__ = ("_budget", "directory", "fd", "last", "name")

    def __init__(self, directory: str, name: str, budget: FdBudget) -> None:
        # The path in two parts: the files of one cgroup or process share their directory's
        # string (a node keeps about 20,000 files).
        self.directory = directory
        self.name = name
        self.fd = -1
        self._budget = budget
        #: The content of the previous successful read, for callers that skip unchanged files.
        self.last: bytes | None = None

    @property
    def path(self) -> str:
        """The file's path."""
        return f"{self.directory}/{self.name}"

    def read(self) -> bytes:
        """The whole current content of the file."""
        fd = self.fd
        opened_here = fd < 0
        too_large: FileTooLargeError | None = None
        try:
            if opened_here:
                fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
            data = os.pread(fd, _READ_SIZE, 0)
            if len(data) == _READ_SIZE:  # larger than expected: the rest, up to the cap
                try:
                    data = read_rest(fd, data, self.path)
                except FileTooLargeError as exc:  # the descriptor is fine: kept as usual
                    too_large = exc
        except OSError as err:
            if not opened_here:
                self.close()
            elif fd >= 0:
                os.close(fd)
            raise reader_error_from_oserror(err, self.path) from err
        if opened_here:
            if self._budget.take():
                self.fd = fd
            else:
                os.close(fd)
        if too_large is not None:
            raise too_large
        return data

    def close(self) -> None:
        """Close the kept descriptor (if any)."""
        if self.fd >= 0:
            try:
                os.close(self.fd)
            except OSError:
                pass
            self.fd = -1
            self._budget.give_back()
