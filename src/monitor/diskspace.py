"""A full disk: when finemon stops recording because its output directory's filesystem is
(nearly) full, and when it records again. The idle in between is the size limit's
(:mod:`monitor.sizelimit`, :class:`monitor.daemon.Blocked`), with reason ``disk_full``.

What counts as free: ``statvfs`` of the output directory, the blocks an unprivileged writer may
still use (``f_bavail``): finemon, though root in its DaemonSet, leaves the blocks a filesystem
keeps for root to the node.

When recording stops: at every tick, when the free space is below what finishing the file
being written may take (:func:`reserve_bytes`: the size of that file and its journal so far,
at least :data:`MIN_FREE_BYTES`), or when a rotation failed with ``ENOSPC``/``EDQUOT`` (a quota
``statvfs`` does not show). finemon then finishes the current file while there is room for it,
as at the size limit. When another program took the last bytes first, finishing fails: the
file's journal is kept (no ``.parquet`` is left unreadable) and the next run recovers it.

When recording starts (at start, or again after an idle): once :data:`START_FREE_BYTES` are free
and a probe (64 KiB written, fsynced and removed) succeeds. The gap between the two thresholds
keeps finemon from starting a run that would stop a moment later.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Final

#: Free bytes finemon keeps, at least, to finish the file being written (its last row groups,
#: its footer) and to write the manifests.
MIN_FREE_BYTES: Final = 1024 * 1024
#: Free bytes needed to start recording.
START_FREE_BYTES: Final = 2 * MIN_FREE_BYTES
#: Bytes the probe writes.
PROBE_BYTES: Final = 64 * 1024

_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})


def free_bytes(directory: Path) -> int | None:
    """Bytes an unprivileged writer may still use on the filesystem of ``directory``; None when
    ``statvfs`` cannot read it (then only failed writes tell)."""
    try:
        stat = os.statvfs(directory)
    except OSError:
        return None
    return stat.f_bavail * stat.f_frsize


def reserve_bytes(live_bytes: int) -> int:
    """Free bytes needed to go on recording when the file being written and its journal take
    ``live_bytes``: finishing it may rebuild it from its journal."""
    return max(MIN_FREE_BYTES, live_bytes)


def is_disk_full(exc: BaseException | None) -> bool:
    """Whether ``exc``, or an error that caused it, is ``ENOSPC`` or ``EDQUOT``."""
    seen = 0
    while exc is not None and seen < 8:
        if isinstance(exc, OSError) and exc.errno in _FULL_ERRNOS:
            return True
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return False


def probe(directory: Path) -> OSError | None:
    """Create, write (:data:`PROBE_BYTES`), fsync and remove a hidden file in ``directory``;
    the error when it cannot (None: the directory takes data)."""
    path = directory / f".finemon-write-check-{os.getpid()}"
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            data = memoryview(b"\0" * PROBE_BYTES)
            while data:  # a write cut short by a full disk fails at the next one
                data = data[os.write(fd, data) :]
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as exc:
        return exc
    finally:
        try:
            path.unlink()
        except OSError:
            pass
    return None
