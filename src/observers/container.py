"""Sampling one container's cgroup: read its files, derive the metrics users chart, emit.

Raw pass-through: every key of every file read is emitted as ``cgroup.<file>.<key>`` (single-value
files as ``cgroup.<file>``), a counter when the kernel counts events or time, else a gauge, so
nothing the kernel reports is thrown away. Derived, version-independent metrics are named
``container.*`` (see docs/metrics.md).

Each container has a plan: the files to read every tick and the settings files (limits) to read
every ``config_every`` ticks, each with the method that parses and emits it. A file the kernel
does not provide (its directory exists, the file does not) leaves the plan for good. A file
that fails to read or parse (a value out of its range, longer than its cap ...) is counted in
the sample's :class:`ReadErrors` by reason and skipped this tick; a file makes at most its cap
of series (:mod:`observers.readers.limits`), the values past it counted ``too_many_series``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from common.catalogue import IO_COUNTER_KEYS, is_memory_event_key
from common.catalogue.container import (
    CONTAINER_CPU_LIMIT_MILLICORES,
    CONTAINER_CPU_PERIODS,
    CONTAINER_CPU_SYSTEM_MILLICORES,
    CONTAINER_CPU_SYSTEM_PERCENT,
    CONTAINER_CPU_THROTTLED_PERIODS,
    CONTAINER_CPU_THROTTLED_USEC,
    CONTAINER_CPU_USAGE_MILLICORES,
    CONTAINER_CPU_USAGE_PERCENT,
    CONTAINER_CPU_USAGE_USEC,
    CONTAINER_CPU_USER_MILLICORES,
    CONTAINER_CPU_USER_PERCENT,
    CONTAINER_IO_READ_BYTES,
    CONTAINER_IO_READ_OPS,
    CONTAINER_IO_WRITE_BYTES,
    CONTAINER_IO_WRITE_OPS,
    CONTAINER_MEMORY_CACHE_BYTES,
    CONTAINER_MEMORY_LIMIT_BYTES,
    CONTAINER_MEMORY_OOM_EVENTS,
    CONTAINER_MEMORY_OOM_KILLS,
    CONTAINER_MEMORY_RSS_BYTES,
    CONTAINER_MEMORY_SWAP_BYTES,
    CONTAINER_MEMORY_USAGE_BYTES,
    CONTAINER_MEMORY_WORKING_SET_BYTES,
    CONTAINER_PIDS_CURRENT,
    container_psi_avg10_percent,
    container_psi_stall_usec,
)
from observers.derive import (
    ContainerReading,
    ContainerValues,
    PressureReading,
    capacity_millicores,
    derive_container,
)
from observers.file_descriptors import FdBudget, KeptFile
from observers.hierarchy import CgroupDirs
from observers.readers import cgroup_v1 as v1
from observers.readers import cgroup_v2 as v2
from observers.readers.errors import (
    REASONS_COUNTED,
    MalformedFileError,
    ReaderError,
    UnsupportedError,
    VanishedError,
)
from observers.series import SeriesSet

#: The fields of a pressure line, as the kernel names them (total is in microseconds).
_PSI_KEYS = ("avg10", "avg60", "avg300", "total")
_IO_COUNTER_KEYS = frozenset(IO_COUNTER_KEYS)
_CLK_TCK = os.sysconf("SC_CLK_TCK")

Handler = Callable[[bytes, str], None]


def _always(_key: str) -> bool:
    return True


def _hierarchical_else_local(total: int | None, local: int | None) -> int | None:
    """A v1 ``memory.stat`` amount: its hierarchical ``total_`` key when the kernel prints it,
    else the cgroup's own key."""
    return local if total is None else total


def log_key(error: ReaderError) -> str:
    """What an error is logged once per: its class and its file's name (``OutOfRangeError:``
    ``memory.current``), the same for every container and process."""
    return f"{type(error).__name__}:{error.path.rpartition('/')[2]}"


@dataclass(slots=True)
class ReadErrors:
    """Read failures and refused values of one sample, by reason.

    ``by_reason`` counts by :attr:`~observers.readers.errors.ReaderError.reason_counted` (every
    reason of :data:`~observers.readers.errors.REASONS_COUNTED`, 0 when none); ``first`` holds
    the first error of each :func:`log_key`, for the log (bounded by the kinds of error and
    file names, however many containers fail).
    """

    by_reason: dict[str, int] = field(default_factory=lambda: dict.fromkeys(REASONS_COUNTED, 0))
    first: dict[str, ReaderError] = field(default_factory=dict)

    def count(self, error: ReaderError, n: int = 1) -> None:
        """Count ``n`` failures (lines, values) described by ``error``."""
        self.first.setdefault(log_key(error), error)
        self.by_reason[error.reason_counted] += n

    def total(self) -> int:
        return sum(self.by_reason.values())


class ContainerSampler:
    """Reads one container's cgroup files each tick and emits its metrics.

    ``dirs`` says where each controller's files are (v2, or v1 controllers plus the unified
    directory for pressure on a hybrid host). Files are read through kept descriptors. Limits
    and other settings are re-read every ``config_every`` samples. A file that fails is counted
    in the sample's :class:`ReadErrors` (by reason) and skipped; a vanished cgroup ends the
    sample early and sets :attr:`gone`. Each file's values make at most its cap of series.
    """

    def __init__(
        self,
        dirs: CgroupDirs,
        series: SeriesSet,
        budget: FdBudget,
        node_millicores: float,
        config_every: int = 10,
    ) -> None:
        self.dirs = dirs
        self.series = series
        self._budget = budget
        self._node_millicores = node_millicores
        self._config_every = config_every
        self._samples = 0
        # The reading the last derivation started from, and its monotonic time.
        self._previous: ContainerReading | None = None
        self._previous_seconds = 0.0
        self._generation = series.generation
        self.limit_millicores: float | None = None
        self.memory_limit_bytes: int | None = None
        self.gone = False
        # The latest value of each input of the derived metrics. A file whose content did not
        # change since the last tick is not parsed again; its inputs stay as they were.
        self._now = 0.0
        self._usage_bytes: int | None = None
        self._rss_bytes: int | None = None
        self._cache_bytes: int | None = None
        self._inactive_file_bytes: int | None = None
        self._swap_bytes: int | None = None
        self._pids: int | None = None
        self._usage_usec: int | None = None
        self._user_usec: int | None = None
        self._system_usec: int | None = None
        self._throttling: tuple[int | None, int | None, int | None] = (None, None, None)
        self._oom_kills: int | None = None
        self._oom_events: int | None = None
        self._quota_usec: int | None = None
        self._io: tuple[int, int, int, int] | None = None
        self._blkio: dict[str, tuple[int, int]] = {}
        self._psi: dict[tuple[str, str], PressureReading] = {}
        self._changed = False
        self._rates_nonzero = False
        self._rates_known = False  # a rate has been emitted (from the second reading on)
        self._every: list[tuple[KeptFile, Handler]] = []
        self._config: list[tuple[KeptFile, Handler]] = []
        self._plan()

    # ------------------------------------------------------------------ plan
    def _plan(self) -> None:
        d = self.dirs
        every: list[tuple[object, str, Handler]]
        config: list[tuple[object, str, Handler]]
        if d.v2 is not None:
            unified = d.v2
            every = [
                (unified, "cpu.stat", self._v2_cpu_stat),
                (unified, "memory.current", self._v2_memory_current),
                (unified, "memory.stat", self._v2_memory_stat),
                (unified, "memory.events", self._v2_memory_events),
                (unified, "memory.swap.current", self._v2_swap_current),
                (unified, "memory.peak", self._raw_single("memory.peak")),
                (unified, "pids.current", self._pids_current),
                (unified, "io.stat", self._v2_io_stat),
            ]
            config = [
                (unified, "cpu.max", self._v2_cpu_max),
                (unified, "cpu.weight", self._raw_single("cpu.weight", parse=v2.parse_cpu_weight)),
                (unified, "memory.max", self._v2_memory_max),
            ]
            config += [
                (unified, name, self._raw_limit(name))
                for name in ("memory.high", "memory.low", "memory.min", "memory.swap.max")
            ]
            config.append((unified, "pids.max", self._raw_limit("pids.max")))
        else:
            every = [
                (d.cpuacct, "cpuacct.usage", self._v1_cpuacct_usage),
                (d.cpuacct, "cpuacct.stat", self._v1_cpuacct_stat),
                (d.cpu, "cpu.stat", self._v1_cpu_stat),
                (d.memory, "memory.usage_in_bytes", self._v1_memory_usage),
                (d.memory, "memory.stat", self._v1_memory_stat),
                (
                    d.memory,
                    "memory.max_usage_in_bytes",
                    self._raw_single("memory.max_usage_in_bytes"),
                ),
                (d.memory, "memory.failcnt", self._raw_single("memory.failcnt", counter=True)),
                (d.memory, "memory.oom_control", self._v1_oom_control),
                (d.pids, "pids.current", self._pids_current),
                (d.blkio, "blkio.throttle.io_service_bytes", self._v1_blkio),
                (d.blkio, "blkio.throttle.io_serviced", self._v1_blkio),
            ]
            config = [
                (d.cpu, "cpu.cfs_quota_us", self._v1_cfs_quota),
                (d.cpu, "cpu.cfs_period_us", self._v1_cfs_period),
                (d.cpu, "cpu.shares", self._raw_single("cpu.shares", parse=v1.parse_cpu_shares)),
                (d.memory, "memory.limit_in_bytes", self._v1_memory_limit),
                (d.pids, "pids.max", self._raw_limit("pids.max")),
            ]
        if d.pressure is not None:
            every += [
                (d.pressure, f"{r}.pressure", self._pressure(r)) for r in ("cpu", "memory", "io")
            ]
        # The kept files of one directory share its path string.
        paths = {id(directory): str(directory) for directory, _, _ in every + config}
        budget = self._budget
        self._every = [
            (KeptFile(paths[id(directory)], name, budget), h)
            for directory, name, h in every
            if directory is not None
        ]
        self._config = [
            (KeptFile(paths[id(directory)], name, budget), h)
            for directory, name, h in config
            if directory is not None
        ]

    @property
    def capacity_millicores(self) -> float:
        """What the container's (and its processes') CPU percentages are of: the CPU limit when
        one is set, else all the node's CPUs."""
        return capacity_millicores(self.limit_millicores, self._node_millicores)

    def close(self) -> None:
        """Close kept descriptors and end every series."""
        for kept, _ in self._every + self._config:
            kept.close()
        self._every, self._config = [], []
        self.series.remove()

    # ------------------------------------------------------------------ sampling
    def sample(self, now: float, errors: ReadErrors) -> None:
        """Read every file once and emit (``now``: monotonic seconds of the read)."""
        if self._generation != self.series.generation:
            # Every series was ended (relabel): emit everything again, not only what changed.
            self._generation = self.series.generation
            self._samples = 0  # the settings files are read again this tick
            for kept, _ in self._every + self._config:
                kept.last = None
        self.gone = False
        self._now = now
        if self._samples % self._config_every == 0:
            self._run(self._config, errors)
            if self.gone:
                return
        self._samples += 1
        self._changed = False
        self._run(self._every, errors)
        if self.gone:
            return
        if self._changed or self._rates_nonzero or not self._rates_known:
            self._derive()
        else:
            # Nothing changed since the last tick (an idle container): every derived value
            # holds, the CPU rates stay 0; the next rates start from now.
            self._previous_seconds = self._now

    def _run(self, plan: list[tuple[KeptFile, Handler]], errors: ReadErrors) -> None:
        dropped: list[KeptFile] = []
        series = self.series
        try:
            self._run_plan(plan, errors, dropped)
        finally:
            series.source = ""
        if dropped:
            plan[:] = [(k, h) for k, h in plan if k not in dropped]
            for kept in dropped:
                kept.close()

    def _run_plan(
        self, plan: list[tuple[KeptFile, Handler]], errors: ReadErrors, dropped: list[KeptFile]
    ) -> None:
        series = self.series
        for kept, handler in plan:
            try:
                data = kept.read()
            except VanishedError as exc:
                if os.path.isdir(os.path.dirname(kept.path)):
                    dropped.append(kept)  # this kernel does not provide the file
                    continue
                errors.count(exc)
                self.gone = True
                return
            except UnsupportedError:
                dropped.append(kept)  # e.g. pressure files with PSI disabled (psi=0)
                continue
            except ReaderError as exc:
                errors.count(exc)
                continue
            if data == kept.last:
                continue
            series.source = kept.name  # its new series count against the file's cap
            try:
                handler(data, kept.path)
            except ReaderError as exc:
                errors.count(exc)
                continue
            except (ValueError, OverflowError) as exc:  # a number a handler refused
                errors.count(MalformedFileError(kept.path, 1, str(exc)))
                continue
            finally:
                refused = series.take_refused(kept.path)
                if refused is not None:
                    errors.count(refused, refused.dropped)
            kept.last = data
            self._changed = True

    # ------------------------------------------------------------------ raw pass-through
    def _raw(self, prefix: str, values: Mapping[str, int], counter: Callable[[str], bool]) -> None:
        series = self.series
        gauges, counters = series.gauges, series.counters
        for key, value in values.items():
            name = prefix + key
            gauge = gauges.get(name)
            if gauge is not None:
                gauge.set(value)
                continue
            kept = counters.get(name)
            if kept is not None:
                kept.absolute(value)
            elif counter(key) and value >= 0:
                series.counter(name, value)
            else:
                series.gauge(name, value)

    def _raw_single(
        self,
        file: str,
        counter: bool = False,
        parse: Callable[[bytes, str], int] = v2.parse_single_int,
    ) -> Handler:
        name = f"cgroup.{file}"

        def handle(data: bytes, path: str) -> None:
            self._set(name, parse(data, path), counter)

        return handle

    def _raw_limit(self, file: str) -> Handler:
        name = f"cgroup.{file}"

        def handle(data: bytes, path: str) -> None:
            value = v2.parse_int_or_max(data, path)
            if value is None:
                self.series.drop(name)
            else:
                self.series.gauge(name, value)

        return handle

    # ------------------------------------------------------------------ v2
    def _v2_cpu_stat(self, data: bytes, path: str) -> None:
        stat = v2.parse_cpu_stat(data, path)
        self._raw("cgroup.cpu.stat.", stat.values, _always)
        self._usage_usec = stat.usage_usec
        self._user_usec = stat.user_usec
        self._system_usec = stat.system_usec
        self._throttling = (stat.nr_periods, stat.nr_throttled, stat.throttled_usec)

    def _v2_cpu_max(self, data: bytes, path: str) -> None:
        cpu_max = v2.parse_cpu_max(data, path)
        quota, period = cpu_max.quota_usec, cpu_max.period_usec
        s = self.series
        if quota is None or period <= 0:
            self.limit_millicores = None
            s.drop("cgroup.cpu.max.quota_usec")
        else:
            self.limit_millicores = quota / period * 1000.0
            s.gauge("cgroup.cpu.max.quota_usec", quota)
        s.gauge("cgroup.cpu.max.period_usec", period)

    def _v2_memory_max(self, data: bytes, path: str) -> None:
        self.memory_limit_bytes = v2.parse_int_or_max(data, path)
        if self.memory_limit_bytes is None:
            self.series.drop("cgroup.memory.max")
        else:
            self.series.gauge("cgroup.memory.max", self.memory_limit_bytes)

    def _v2_memory_current(self, data: bytes, path: str) -> None:
        self._usage_bytes = v2.parse_single_int(data, path)
        self.series.gauge("cgroup.memory.current", self._usage_bytes)

    def _v2_memory_stat(self, data: bytes, path: str) -> None:
        stat = v2.parse_memory_stat(data, path)
        self._raw("cgroup.memory.stat.", stat.values, is_memory_event_key)
        self._rss_bytes = stat.anon
        self._cache_bytes = stat.file
        self._inactive_file_bytes = stat.inactive_file

    def _v2_memory_events(self, data: bytes, path: str) -> None:
        events = v2.parse_memory_events(data, path)
        self._raw("cgroup.memory.events.", events.values, _always)
        self._oom_kills = events.oom_kill
        self._oom_events = events.oom

    def _v2_swap_current(self, data: bytes, path: str) -> None:
        self._swap_bytes = v2.parse_single_int(data, path)
        self.series.gauge("cgroup.memory.swap.current", self._swap_bytes)

    def _pids_current(self, data: bytes, path: str) -> None:
        self._pids = v2.parse_single_int(data, path)
        self.series.gauge("cgroup.pids.current", self._pids)

    def _v2_io_stat(self, data: bytes, path: str) -> None:
        s = self.series
        totals = [0, 0, 0, 0]
        index = {"rbytes": 0, "wbytes": 1, "rios": 2, "wios": 3}
        for device in v2.parse_io_stat(data, path):
            label = ("device", f"{device.major}:{device.minor}")
            for key, value in device.values.items():
                if key in _IO_COUNTER_KEYS and isinstance(value, int) and value >= 0:
                    s.counter(f"cgroup.io.stat.{key}", value, label)
                    if key in index:
                        totals[index[key]] += value
                elif math.isfinite(value):
                    s.gauge(f"cgroup.io.stat.{key}", value, label)
        self._io = (totals[0], totals[1], totals[2], totals[3])

    # ------------------------------------------------------------------ v1
    def _v1_cpuacct_usage(self, data: bytes, path: str) -> None:
        nsec = v2.parse_single_int(data, path)
        self.series.counter("cgroup.cpuacct.usage", nsec)
        self._usage_usec = nsec // 1000

    def _v1_cpuacct_stat(self, data: bytes, path: str) -> None:
        stat = v1.parse_cpuacct_stat(data, path)
        self._raw("cgroup.cpuacct.stat.", stat.values, _always)
        usec_per_tick = 1_000_000 // _CLK_TCK
        user, system = stat.user_ticks, stat.system_ticks
        self._user_usec = None if user is None else user * usec_per_tick
        self._system_usec = None if system is None else system * usec_per_tick

    def _v1_cpu_stat(self, data: bytes, path: str) -> None:
        stat = v1.parse_cpu_stat(data, path)
        self._raw("cgroup.cpu.stat.", stat.values, _always)
        throttled_ns = stat.throttled_time_nsec
        self._throttling = (
            stat.nr_periods,
            stat.nr_throttled,
            None if throttled_ns is None else throttled_ns // 1000,
        )

    def _v1_cfs_quota(self, data: bytes, path: str) -> None:
        self._quota_usec = v1.parse_cfs_quota_usec(data, path)
        quota = self._quota_usec
        self.series.gauge("cgroup.cpu.cfs_quota_us", -1 if quota is None else quota)

    def _v1_cfs_period(self, data: bytes, path: str) -> None:
        period = v1.parse_cfs_period_usec(data, path)
        self.series.gauge("cgroup.cpu.cfs_period_us", period)
        quota = self._quota_usec
        self.limit_millicores = None if quota is None or period <= 0 else quota / period * 1000.0

    def _v1_memory_limit(self, data: bytes, path: str) -> None:
        value = v2.parse_single_int(data, path)
        self.memory_limit_bytes = None if v1.is_unlimited_bytes(value) else value
        self.series.gauge("cgroup.memory.limit_in_bytes", value)

    def _v1_memory_usage(self, data: bytes, path: str) -> None:
        self._usage_bytes = v2.parse_single_int(data, path)
        self.series.gauge("cgroup.memory.usage_in_bytes", self._usage_bytes)

    def _v1_memory_stat(self, data: bytes, path: str) -> None:
        stat = v1.parse_memory_stat(data, path)
        self._raw("cgroup.memory.stat.", stat.values, is_memory_event_key)
        # The total_ keys include the descendants (a container with child cgroups, crun's).
        self._rss_bytes = _hierarchical_else_local(stat.total_rss, stat.rss)
        self._cache_bytes = _hierarchical_else_local(stat.total_cache, stat.cache)
        self._inactive_file_bytes = _hierarchical_else_local(
            stat.total_inactive_file, stat.inactive_file
        )
        self._swap_bytes = _hierarchical_else_local(stat.total_swap, stat.swap)

    def _v1_oom_control(self, data: bytes, path: str) -> None:
        for key, value in v1.parse_memory_oom_control(data, path).values.items():
            if key == "oom_kill":
                self.series.counter("cgroup.memory.oom_control.oom_kill", value)
                self._oom_kills = value
            else:
                self.series.gauge(f"cgroup.memory.oom_control.{key}", value)

    def _v1_blkio(self, data: bytes, path: str) -> None:
        file = path.rsplit("/", 1)[-1]
        reads = writes = 0
        for device in v1.parse_blkio_rwstat(data, path).devices:
            label = ("device", f"{device.major}:{device.minor}")
            for key, value in device.values.items():
                self.series.counter(f"cgroup.{file}.{key.lower()}", value, label)
            reads += device.values.get("Read", 0)
            writes += device.values.get("Write", 0)
        self._blkio[file] = (reads, writes)

    # ------------------------------------------------------------------ derived
    def _set(self, name: str, value: float, counter: bool = False) -> None:
        if counter:
            self.series.counter(name, int(value))
        else:
            self.series.gauge(name, value)

    def _reading(self) -> ContainerReading:
        """The latest value of each input of the derived metrics."""
        periods, throttled, throttled_usec = self._throttling
        blkio = self._blkio
        return ContainerReading(
            cpu_usage_usec=self._usage_usec,
            cpu_user_usec=self._user_usec,
            cpu_system_usec=self._system_usec,
            cpu_periods=periods,
            cpu_throttled_periods=throttled,
            cpu_throttled_usec=throttled_usec,
            cpu_limit_millicores=self.limit_millicores,
            memory_usage_bytes=self._usage_bytes,
            memory_rss_bytes=self._rss_bytes,
            memory_cache_bytes=self._cache_bytes,
            memory_inactive_file_bytes=self._inactive_file_bytes,
            memory_swap_bytes=self._swap_bytes,
            memory_limit_bytes=self.memory_limit_bytes,
            memory_oom_kills=self._oom_kills,
            memory_oom_events=self._oom_events,
            pids_current=self._pids,
            io=self._io,
            blkio_service_bytes=blkio.get("blkio.throttle.io_service_bytes"),
            blkio_serviced=blkio.get("blkio.throttle.io_serviced"),
            pressure=tuple(self._psi.values()),
        )

    def _derive(self) -> None:
        """Derive the version-independent metrics from the latest inputs, and emit them."""
        current = self._reading()
        now = self._now
        values = derive_container(
            self._previous, current, now - self._previous_seconds, self._node_millicores
        )
        self._previous, self._previous_seconds = current, now
        self._rates_nonzero = values.cpu_rates_nonzero
        self._rates_known |= values.cpu_usage_millicores is not None
        self._emit(values)

    def _emit(self, values: ContainerValues) -> None:
        s = self.series
        gauge, counter = s.gauge, s.counter
        for name, limit in (
            (CONTAINER_CPU_LIMIT_MILLICORES, values.cpu_limit_millicores),
            (CONTAINER_MEMORY_LIMIT_BYTES, values.memory_limit_bytes),
        ):
            if limit is None:
                s.drop(name)
            else:
                gauge(name, limit)
        if values.cpu_usage_usec is not None:
            counter(CONTAINER_CPU_USAGE_USEC, values.cpu_usage_usec)
        for name, rate in (
            (CONTAINER_CPU_USAGE_MILLICORES, values.cpu_usage_millicores),
            (CONTAINER_CPU_USAGE_PERCENT, values.cpu_usage_percent),
            (CONTAINER_CPU_USER_MILLICORES, values.cpu_user_millicores),
            (CONTAINER_CPU_USER_PERCENT, values.cpu_user_percent),
            (CONTAINER_CPU_SYSTEM_MILLICORES, values.cpu_system_millicores),
            (CONTAINER_CPU_SYSTEM_PERCENT, values.cpu_system_percent),
        ):
            if rate is not None:
                gauge(name, rate)
        for name, count in (
            (CONTAINER_CPU_PERIODS, values.cpu_periods),
            (CONTAINER_CPU_THROTTLED_PERIODS, values.cpu_throttled_periods),
            (CONTAINER_CPU_THROTTLED_USEC, values.cpu_throttled_usec),
            (CONTAINER_MEMORY_OOM_KILLS, values.memory_oom_kills),
            (CONTAINER_MEMORY_OOM_EVENTS, values.memory_oom_events),
        ):
            if count is not None:
                counter(name, count)
        for name, amount in (
            (CONTAINER_MEMORY_USAGE_BYTES, values.memory_usage_bytes),
            (CONTAINER_MEMORY_RSS_BYTES, values.memory_rss_bytes),
            (CONTAINER_MEMORY_CACHE_BYTES, values.memory_cache_bytes),
            (CONTAINER_MEMORY_SWAP_BYTES, values.memory_swap_bytes),
            (CONTAINER_PIDS_CURRENT, values.pids_current),
            (CONTAINER_MEMORY_WORKING_SET_BYTES, values.memory_working_set_bytes),
        ):
            if amount is not None:
                gauge(name, amount)
        if values.io is not None:
            read_bytes, write_bytes, read_ops, write_ops = values.io
            counter(CONTAINER_IO_READ_BYTES, read_bytes)
            counter(CONTAINER_IO_WRITE_BYTES, write_bytes)
            counter(CONTAINER_IO_READ_OPS, read_ops)
            counter(CONTAINER_IO_WRITE_OPS, write_ops)
        for pressure in values.pressure:
            if pressure.avg10_percent is not None:
                name = container_psi_avg10_percent(pressure.resource, pressure.line)
                gauge(name, pressure.avg10_percent)
            if pressure.total_usec is not None:
                name = container_psi_stall_usec(pressure.resource, pressure.line)
                counter(name, pressure.total_usec)

    def _pressure(self, resource: str) -> Handler:
        # The series names of each line, made once per container and file, not per tick.
        names = {
            kind: tuple(f"cgroup.{resource}.pressure.{kind}.{key}" for key in _PSI_KEYS)
            for kind in ("some", "full")
        }

        def handle(data: bytes, path: str) -> None:
            pressure = v2.parse_pressure(data, path)
            for kind, line in (("some", pressure.some), ("full", pressure.full)):
                if line is None:
                    continue
                avg10_name, avg60_name, avg300_name, total_name = names[kind]
                for name, value in (
                    (avg10_name, line.avg10),
                    (avg60_name, line.avg60),
                    (avg300_name, line.avg300),
                ):
                    if value is not None:
                        self.series.gauge(name, value)
                if line.total_usec is not None:
                    self.series.counter(total_name, line.total_usec)
                self._psi[(resource, kind)] = PressureReading(
                    resource, kind, line.avg10, line.total_usec
                )

        return handle
