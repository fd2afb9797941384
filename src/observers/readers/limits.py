"""What one kernel file may cost finemon: bytes read, and series made from its entries.

The one table of caps, by file name. Every cap is far above anything the kernel writes in that
file, so it only ever stops garbage (a fake or corrupted cgroup tree, a file that is not what its
name says), and what it stops is counted and logged, never silently cut:

* **Bytes.** :func:`~observers.readers.errors.read_file_bytes` and the samplers' kept
  descriptors never read more than ``max_bytes + 1`` bytes of a file; a longer file raises
  :class:`~observers.readers.errors.FileTooLargeError` (counted ``too_large``) and is not
  parsed, except ``cgroup.procs``, whose complete lines within the cap discovery keeps (each line
  is a pid by itself, so the pids kept are right; the processes past the cap are not sampled).
  Every other file is rejected whole: a keyed file cut short would lose keys that a later kernel
  may print last, and the per-device files (``io.stat``, blkio) are summed over their devices,
  so a cut one would give a wrong total.
* **Series.** A keyed or per-device file makes one series per entry (key, device and key,
  mapped path). The samplers make at most ``max_series`` series from one file of one container
  or process, counting from its first reading (new keys in later readings count too, a series
  ended gives its place back; :class:`observers.series.SeriesSet`); the values past the cap
  get no series and are counted ``too_many_series``, one per value per reading.

The readers themselves only apply the byte cap: a parse returns every entry of what was read.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["DEFAULT_LIMITS", "DEFAULT_MAX_BYTES", "FileLimits", "limits_for", "max_bytes_for"]

#: The cap of any file not listed below. The largest real ones (v1 ``memory.stat``,
#: ``/proc/<pid>/status``) are a few KiB. No cap is smaller: it is also the readers' read size.
DEFAULT_MAX_BYTES = 64 << 10


@dataclass(frozen=True, slots=True)
class FileLimits:
    """The caps of one file: ``max_bytes`` read, ``max_series`` made per container or process."""

    max_bytes: int
    max_series: int


#: A cgroup keyed file (``memory.stat`` has about 100 keys in kernel 6.x), a single-value file
#: (1 series), ``/proc/<pid>/stat`` or ``smaps_rollup`` (22 keys).
DEFAULT_LIMITS = FileLimits(DEFAULT_MAX_BYTES, 256)

_PER_DEVICE = FileLimits(1 << 20, 4096)

_LIMITS: Mapping[str, FileLimits] = {
    # A line per device the cgroup did I/O on, 100-300 bytes each (up to 20 keys with the I/O
    # controllers' stats): over 3,000 devices, about 400 at 10 keys before the series cap.
    "io.stat": _PER_DEVICE,
    # Six ~30-byte lines per device: over 5,000 devices; 680 at six series each.
    "blkio.throttle.io_service_bytes": _PER_DEVICE,
    "blkio.throttle.io_serviced": _PER_DEVICE,
    # At most 8 bytes per pid (PID_MAX_LIMIT is 2**22): 130,000 processes or more.
    "cgroup.procs": FileLimits(1 << 20, DEFAULT_LIMITS.max_series),
    # The Groups line alone may list 65,536 group ids.
    "status": FileLimits(1 << 20, DEFAULT_LIMITS.max_series),
    # The argument area: up to a quarter of the stack limit (2 MiB with the default 8 MiB).
    "cmdline": FileLimits(4 << 20, DEFAULT_LIMITS.max_series),
    # About 1 KiB per mapping: 15,000 mappings; two series (PSS, RSS) per mapped path.
    "smaps": FileLimits(16 << 20, 4096),
    # A line per mount, about 150 bytes: 100,000 mounts.
    "mountinfo": FileLimits(16 << 20, DEFAULT_LIMITS.max_series),
}


def limits_for(path_or_name: str) -> FileLimits:
    """The caps of a file, by its name (the last component of ``path_or_name``)."""
    return _LIMITS.get(path_or_name.rpartition("/")[2], DEFAULT_LIMITS)


def max_bytes_for(path_or_name: str) -> int:
    """The most bytes finemon reads of a file (see the module docstring)."""
    return limits_for(path_or_name).max_bytes
