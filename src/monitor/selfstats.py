"""finemon's own CPU and memory, recorded as metrics every tick, and the descriptions of the
daemon's own metrics."""

from __future__ import annotations

import os
import resource
import time
from collections.abc import Callable
from pathlib import Path

from common.catalogue import DAEMON_TABLE, ENTRIES, describe

_STATM = Path("/proc/self/statm")


class SelfUsage:
    """CPU used by this process between calls (millicores) and its resident memory (bytes)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._page_bytes = os.sysconf("SC_PAGE_SIZE")
        self._last_wall = clock()
        self._last_cpu = self._cpu_seconds()

    @staticmethod
    def _cpu_seconds() -> float:
        times = os.times()
        return times.user + times.system

    def cpu_millicores(self) -> float:
        """CPU time used since the previous call per wall second, in millicores (1000 = a core)."""
        wall, cpu = self._clock(), self._cpu_seconds()
        elapsed = wall - self._last_wall
        used = cpu - self._last_cpu
        self._last_wall, self._last_cpu = wall, cpu
        return 1000.0 * used / elapsed if elapsed > 0 else 0.0

    def rss_bytes(self) -> int:
        """Current resident set size from ``/proc/self/statm`` (peak RSS if that is unreadable)."""
        try:
            return int(_STATM.read_bytes().split()[1]) * self._page_bytes
        except (OSError, IndexError, ValueError):
            return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def describe_daemon_metrics() -> None:
    """Describe the metrics ``finemon run`` writes itself (its own CPU, RSS, tick duration,
    errors, size limit; the daemon table of :mod:`common.catalogue`) to
    :func:`capture.describe`."""
    describe(entry for entry in ENTRIES if entry.table == DAEMON_TABLE)
