"""Sampling one process: CPU, threads, RSS and virtual size from ``stat`` every tick, memory
from ``smaps_rollup`` at its own cadence, and the optional per-region breakdown from ``smaps``."""

from __future__ import annotations

import os

from common.catalogue.process import (
    PROCESS_CPU_SYSTEM_PERCENT,
    PROCESS_CPU_TIME_USEC,
    PROCESS_CPU_USAGE_MILLICORES,
    PROCESS_CPU_USAGE_PERCENT,
    PROCESS_CPU_USER_PERCENT,
    PROCESS_MEMORY_PSS_ANON_BYTES,
    PROCESS_MEMORY_PSS_BYTES,
    PROCESS_MEMORY_PSS_FILE_BYTES,
    PROCESS_MEMORY_PSS_SHMEM_BYTES,
    PROCESS_MEMORY_REGION_PSS_BYTES,
    PROCESS_MEMORY_REGION_RSS_BYTES,
    PROCESS_MEMORY_RSS_BYTES,
    PROCESS_MEMORY_SWAP_BYTES,
    PROCESS_MEMORY_SWAP_PSS_BYTES,
    PROCESS_MEMORY_VIRTUAL_BYTES,
    PROCESS_THREADS,
)
from observers.file_descriptors import FdBudget, KeptFile
from observers.readers.errors import (
    ReaderError,
    TooManySeriesError,
    VanishedError,
    read_file_bytes,
)
from observers.readers.procfs import ProcStat, parse_smaps, parse_smaps_rollup, parse_stat
from observers.series import SeriesSet

CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
#: The CPU rates, set to 0 together when the process stops running.
_CPU_RATES = (
    PROCESS_CPU_USAGE_MILLICORES,
    PROCESS_CPU_USAGE_PERCENT,
    PROCESS_CPU_USER_PERCENT,
    PROCESS_CPU_SYSTEM_PERCENT,
)


class ProcessSampler:
    """One process of a container, known by (pid, start time) so a reused PID is a new process.

    ``read_stat`` every tick (CPU millicores and percentages from two readings, threads, RSS,
    virtual size); ``read_pss`` when the node's PSS schedule says so (it walks the page tables,
    so its cost grows with the process). Errors propagate as ReaderError subclasses;
    VanishedError means the process is gone.
    """

    __slots__ = (
        "_generation",
        "_rate_nonzero",
        "_rollup",
        "_smaps",
        "_stat",
        "_ticks",
        "_ticks_time",
        "comm",
        "next_pss_due",
        "next_smaps_due",
        "pid",
        "pss_bytes",
        "series",
        "start_ticks",
    )

    def __init__(self, proc_root: str, pid: int, series: SeriesSet, budget: FdBudget) -> None:
        self.pid = pid
        self.series = series
        directory = f"{proc_root}/{pid}"
        self._stat = KeptFile(directory, "stat", budget)
        self._rollup = KeptFile(directory, "smaps_rollup", budget)
        self._smaps = f"{proc_root}/{pid}/smaps"
        self.comm = ""
        self.start_ticks: int | None = None
        self.pss_bytes: int | None = None
        self.next_pss_due = 0.0
        self.next_smaps_due = 0.0
        self._generation = series.generation
        # (utime, stime) of the last reading and the monotonic time it still held: the baseline
        # of the CPU rates (one clock for the three, moved on alone by an idle tick).
        self._ticks: tuple[int, int] | None = None
        self._ticks_time = 0.0
        self._rate_nonzero = False

    def _set(self, name: str, value: float) -> None:
        if self._generation != self.series.generation:
            self._generation = self.series.generation
            self._stat.last = self._rollup.last = None
        self.series.gauge(name, value)

    def read_stat(self) -> ProcStat | None:
        """Read ``/proc/PID/stat``; None when it is byte-for-byte the last reading (an idle
        process), in which case :meth:`idle` must be called instead of :meth:`emit_stat`."""
        data = self._stat.read()
        if data == self._stat.last and self._generation == self.series.generation:
            return None
        stat = parse_stat(data, self._stat.path)
        self._stat.last = data
        return stat

    def idle(self, now: float) -> None:
        """The process did not run since the last tick: its CPU rates are zero."""
        if self._ticks is not None:
            self._ticks_time = now
            if self._rate_nonzero:
                for name in _CPU_RATES:
                    self._set(name, 0.0)
                self._rate_nonzero = False

    def emit_stat(self, stat: ProcStat, now: float, capacity_millicores: float) -> None:
        """Emit CPU, threads, RSS and virtual size from a ``stat`` reading taken at ``now``
        (monotonic). The CPU percentages are of ``capacity_millicores``, the container's (its
        CPU limit, else the node's CPUs), so a container's processes add up to its own.

        Raises ValueError for values a counter refuses (negative CPU time).
        """
        utime, stime = stat.utime_ticks, stat.stime_ticks
        if utime is not None and stime is not None:
            last, last_time = self._ticks, self._ticks_time
            self._ticks, self._ticks_time = (utime, stime), now
            self.series.counter(PROCESS_CPU_TIME_USEC, (utime + stime) * 1_000_000 // CLK_TCK)
            # The first reading is only a baseline; a lower one is a reset (a new baseline), as
            # in observers.derive.rate_per_second; ticks per second -> millicores -> percent
            # of the capacity.
            if last is not None and now > last_time and utime >= last[0] and stime >= last[1]:
                elapsed = now - last_time
                rate = (utime + stime - last[0] - last[1]) / elapsed
                millicores = rate / CLK_TCK * 1000.0
                self._set(PROCESS_CPU_USAGE_MILLICORES, millicores)
                self._set(PROCESS_CPU_USAGE_PERCENT, millicores / capacity_millicores * 100.0)
                self._rate_nonzero = rate != 0
                for name, delta in (
                    (PROCESS_CPU_USER_PERCENT, utime - last[0]),
                    (PROCESS_CPU_SYSTEM_PERCENT, stime - last[1]),
                ):
                    self._set(
                        name, delta / elapsed / CLK_TCK * 1000.0 / capacity_millicores * 100.0
                    )
        if stat.num_threads is not None:
            self._set(PROCESS_THREADS, stat.num_threads)
        if stat.rss_pages is not None:
            self._set(PROCESS_MEMORY_RSS_BYTES, stat.rss_pages * PAGE_SIZE)
        if stat.vsize_bytes is not None:
            self._set(PROCESS_MEMORY_VIRTUAL_BYTES, stat.vsize_bytes)

    def read_pss(self) -> TooManySeriesError | None:
        """Read ``smaps_rollup`` and emit PSS (total, anon, file, shmem), swap and every field.

        An unchanged file (an idle process) is not parsed again: its gauges hold their values.
        Returns the values of the file's keys that got no series, past its cap
        (:mod:`observers.readers.limits`), as an error to count; None when there were none.
        """
        data = self._rollup.read()
        if data == self._rollup.last and self._generation == self.series.generation:
            return None
        path = self._rollup.path
        rollup = parse_smaps_rollup(data, path)
        self.pss_bytes = rollup.pss_bytes
        series = self.series
        series.source = "smaps_rollup"
        try:
            for key, value in rollup.values.items():
                self._set(f"proc.smaps_rollup.{key.lower()}_bytes", value)
            refused = series.take_refused(path)
        finally:
            series.source = ""
        derived: tuple[tuple[str, int | None], ...] = (
            (PROCESS_MEMORY_PSS_BYTES, rollup.pss_bytes),
            (PROCESS_MEMORY_PSS_ANON_BYTES, rollup.pss_anon_bytes),
            (PROCESS_MEMORY_PSS_FILE_BYTES, rollup.pss_file_bytes),
            (PROCESS_MEMORY_PSS_SHMEM_BYTES, rollup.pss_shmem_bytes),
            (PROCESS_MEMORY_SWAP_BYTES, rollup.swap_bytes),
            (PROCESS_MEMORY_SWAP_PSS_BYTES, rollup.swap_pss_bytes),
        )
        for name, maybe in derived:
            if maybe is not None:
                self._set(name, maybe)
        self._rollup.last = data
        return refused

    def read_smaps(self) -> TooManySeriesError | None:
        """Read ``smaps`` and emit PSS and RSS per mapping path (two series per path, at most
        the file's cap of series in all: :mod:`observers.readers.limits`). Returns the values
        that got no series past the cap, as an error to count; None when there were none."""
        data = read_file_bytes(self._smaps)
        if not data:
            raise VanishedError(self._smaps, f"{self._smaps}: empty (exited, or a kernel thread)")
        regions = parse_smaps(data, self._smaps)
        s = self.series
        s.source = "smaps"
        try:
            for region_path, region in regions.items():
                label = ("region", region_path)
                if region.pss_bytes is not None:
                    s.gauge(PROCESS_MEMORY_REGION_PSS_BYTES, region.pss_bytes, label)
                if region.rss_bytes is not None:
                    s.gauge(PROCESS_MEMORY_REGION_RSS_BYTES, region.rss_bytes, label)
            return s.take_refused(self._smaps)
        finally:
            s.source = ""

    def close(self) -> None:
        """Close kept descriptors and end every series of the process."""
        self._stat.close()
        self._rollup.close()
        self.series.remove()


__all__ = ["CLK_TCK", "PAGE_SIZE", "ProcessSampler", "ReaderError"]
