"""Sampling one process: CPU and threads from ``stat`` every tick, memory from ``smaps_rollup``
at its own cadence, and the optional per-region breakdown from ``smaps``."""

from __future__ import annotations

import os

from observers.kept import FdBudget, KeptFile
from observers.rates import RateTracker
from observers.readers.errors import ReaderError, VanishedError, read_file_bytes
from observers.readers.procfs import ProcStat, parse_smaps, parse_smaps_rollup, parse_stat
from observers.series import SeriesSet

CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


class ProcessSampler:
    """One process of a container, known by (pid, start time) so a reused PID is a new process.

    ``read_stat`` every tick (CPU millicores from two readings, threads, RSS); ``read_pss`` when
    the node's PSS schedule says so (it walks the page tables, so its cost grows with the
    process). Errors propagate as ReaderError subclasses; VanishedError means the process is gone.
    """

    __slots__ = (
        "_cpu",
        "_generation",
        "_rate_nonzero",
        "_rollup",
        "_smaps",
        "_stat",
        "_ticks",
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
        self._cpu = RateTracker()
        self.comm = ""
        self.start_ticks: int | None = None
        self.pss_bytes: int | None = None
        self.next_pss_due = 0.0
        self.next_smaps_due = 0.0
        self._generation = series.generation
        self._ticks: int | None = None
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
        """The process did not run since the last tick: its CPU rate is zero."""
        if self._ticks is not None:
            self._cpu.update(self._ticks, now)
            if self._rate_nonzero:
                self._set("process.cpu.usage_millicores", 0.0)
                self._rate_nonzero = False

    def emit_stat(self, stat: ProcStat, now: float) -> None:
        """Emit CPU, threads and RSS from a ``stat`` reading taken at ``now`` (monotonic).

        Raises ValueError for values a counter refuses (negative CPU time).
        """
        if stat.utime_ticks is not None and stat.stime_ticks is not None:
            ticks = self._ticks = stat.utime_ticks + stat.stime_ticks
            self.series.counter("process.cpu.time_usec", ticks * 1_000_000 // CLK_TCK)
            rate = self._cpu.update(ticks, now)
            if rate is not None:
                self._set("process.cpu.usage_millicores", rate / CLK_TCK * 1000.0)
                self._rate_nonzero = rate != 0
        if stat.num_threads is not None:
            self._set("process.threads", stat.num_threads)
        if stat.rss_pages is not None:
            self._set("process.memory.rss_bytes", stat.rss_pages * PAGE_SIZE)

    def read_pss(self) -> None:
        """Read ``smaps_rollup`` and emit PSS (total, anon, file, shmem), swap and every field.

        An unchanged file (an idle process) is not parsed again: its gauges hold their values.
        """
        data = self._rollup.read()
        if data == self._rollup.last and self._generation == self.series.generation:
            return
        rollup = parse_smaps_rollup(data, self._rollup.path)
        self.pss_bytes = rollup.pss_bytes
        for key, value in rollup.values.items():
            self._set(f"proc.smaps_rollup.{key.lower()}_bytes", value)
        derived: tuple[tuple[str, int | None], ...] = (
            ("process.memory.pss_bytes", rollup.pss_bytes),
            ("process.memory.pss_anon_bytes", rollup.pss_anon_bytes),
            ("process.memory.pss_file_bytes", rollup.pss_file_bytes),
            ("process.memory.pss_shmem_bytes", rollup.pss_shmem_bytes),
            ("process.memory.swap_bytes", rollup.swap_bytes),
            ("process.memory.swap_pss_bytes", rollup.swap_pss_bytes),
        )
        for name, maybe in derived:
            if maybe is not None:
                self._set(name, maybe)
        self._rollup.last = data

    def read_smaps(self) -> int:
        """Read ``smaps`` and emit PSS and RSS per mapping path; returns the regions seen."""
        data = read_file_bytes(self._smaps)
        if not data:
            raise VanishedError(self._smaps, f"{self._smaps}: empty (exited, or a kernel thread)")
        regions = parse_smaps(data, self._smaps)
        s = self.series
        for region_path, region in regions.items():
            label = ("region", region_path)
            if region.pss_bytes is not None:
                s.gauge("process.memory.region.pss_bytes", region.pss_bytes, label)
            if region.rss_bytes is not None:
                s.gauge("process.memory.region.rss_bytes", region.rss_bytes, label)
        return len(regions)

    def close(self) -> None:
        """Close kept descriptors and end every series of the process."""
        self._stat.close()
        self._rollup.close()
        self.series.remove()


__all__ = ["CLK_TCK", "PAGE_SIZE", "ProcessSampler", "ReaderError"]
