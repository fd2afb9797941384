"""Sampling one container's cgroup: read its files, derive the metrics users chart, emit.

Raw pass-through: every key of every file read is emitted as ``cgroup.<file>.<key>`` (single-value
files as ``cgroup.<file>``), a counter when the kernel counts events or time, else a gauge, so
nothing the kernel reports is thrown away. Derived, version-independent metrics are named
``container.*`` (see docs/metrics.md).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from observers.cgroup_v1 import parse_blkio_rwstat, parse_cfs_quota_usec
from observers.cgroup_v2 import parse_flat_keyed, parse_int_or_max, parse_io_stat, parse_single_int
from observers.errors import (
    AccessDeniedError,
    MalformedFileError,
    ReaderError,
    VanishedError,
)
from observers.hierarchy import CgroupDirs
from observers.kept import FdBudget, KeptFile
from observers.rates import RateTracker
from observers.series import SeriesSet

#: memory.stat keys (v1 and v2) that count events rather than hold bytes.
_MEMORY_EVENT_PREFIXES = ("pg", "workingset_", "thp_", "zswp", "pswp")
_IO_COUNTER_KEYS = frozenset({"rbytes", "wbytes", "rios", "wios", "dbytes", "dios"})
_V1_UNLIMITED_BYTES = 2**62


def _pressure_lines(data: bytes, path: str) -> dict[str, dict[str, float]]:
    """``some``/``full`` lines of a PSI file as {"some": {"avg10": .., "total": ..}, ...}."""
    out: dict[str, dict[str, float]] = {}
    for number, line in enumerate(data.splitlines(), 1):
        fields = line.split()
        if not fields:
            continue
        kind = fields[0].decode("ascii", "replace")
        values: dict[str, float] = {}
        for field in fields[1:]:
            key, sep, value = field.partition(b"=")
            if not sep:
                raise MalformedFileError(path, number, f"expected key=value, got {field!r}")
            try:
                values[key.decode("ascii", "replace")] = float(value)
            except ValueError:
                raise MalformedFileError(path, number, f"not a number: {value!r}") from None
        out[kind] = values
    return out


@dataclass(slots=True)
class ReadErrors:
    """Read failures of one sample, by reason (vanished, access_denied, malformed, other)."""

    vanished: int = 0
    access_denied: int = 0
    malformed: int = 0
    other: int = 0

    def count(self, error: ReaderError) -> None:
        if isinstance(error, VanishedError):
            self.vanished += 1
        elif isinstance(error, AccessDeniedError):
            self.access_denied += 1
        elif isinstance(error, MalformedFileError):
            self.malformed += 1
        else:
            self.other += 1

    def total(self) -> int:
        return self.vanished + self.access_denied + self.malformed + self.other


class ContainerSampler:
    """Reads one container's cgroup files each tick and emits its metrics.

    ``dirs`` says where each controller's files are (v2, or v1 controllers plus the unified
    directory for pressure on a hybrid host). Files are read through kept descriptors. Limits
    and other settings are re-read every ``config_every`` samples. A file that fails is counted
    in ``errors`` (by reason) and skipped; a vanished cgroup ends the sample early.
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
        self._files: dict[str, KeptFile] = {}
        self._node_millicores = node_millicores
        self._config_every = config_every
        self._samples = 0
        self._cpu_usage = RateTracker()
        self._cpu_user = RateTracker()
        self._cpu_system = RateTracker()
        self.limit_millicores: float | None = None
        self.memory_limit_bytes: int | None = None
        self.gone = False

    def close(self) -> None:
        """Close kept descriptors and end every series."""
        for kept in self._files.values():
            kept.close()
        self._files.clear()
        self.series.remove()

    def _read(self, directory: object, name: str) -> bytes:
        path = f"{directory}/{name}"
        kept = self._files.get(path)
        if kept is None:
            kept = self._files[path] = KeptFile(path, self._budget)
        return kept.read()

    def _try(
        self, errors: ReadErrors, directory: object, name: str, handle: Callable[[bytes, str], None]
    ) -> bool:
        """Read and handle one file; False (and counted) when it failed."""
        if directory is None:
            return False
        try:
            handle(self._read(directory, name), f"{directory}/{name}")
        except VanishedError as exc:
            errors.count(exc)
            if not (directory and _exists(str(directory))):
                self.gone = True
            return False
        except ReaderError as exc:
            errors.count(exc)
            return False
        except ValueError as exc:  # a number the parsers let through but a handler refused
            errors.count(MalformedFileError(f"{directory}/{name}", 1, str(exc)))
            return False
        return True

    # ------------------------------------------------------------------ raw pass-through
    def _flat(self, file: str, values: Mapping[str, int], counter: Callable[[str], bool]) -> None:
        series = self.series
        prefix = f"cgroup.{file}."
        for key, value in values.items():
            if counter(key) and value >= 0:
                series.counter(prefix + key, value)
            else:
                series.gauge(prefix + key, value)

    def sample(self, now: float, errors: ReadErrors) -> None:
        """Read every file once and emit (``now``: monotonic seconds of the read)."""
        self.gone = False
        config = self._samples % self._config_every == 0
        self._samples += 1
        d = self.dirs
        if d.v2 is not None:
            self._sample_v2(d.v2, now, errors, config)
        else:
            self._sample_v1(d, now, errors, config)
        if self.gone:
            return
        if d.pressure is not None:
            for resource in ("cpu", "memory", "io"):
                self._try(errors, d.pressure, f"{resource}.pressure", self._pressure(resource))

    # ------------------------------------------------------------------ v2
    def _sample_v2(self, directory: object, now: float, errors: ReadErrors, config: bool) -> None:
        s = self.series

        def cpu_stat(data: bytes, path: str) -> None:
            values = parse_flat_keyed(data, path)
            self._flat("cpu.stat", values, _always)
            usage = values.get("usage_usec")
            if usage is not None:
                s.counter("container.cpu.usage_usec", usage)
                self._cpu_rates(usage, values.get("user_usec"), values.get("system_usec"), now)
            self._throttling(values.get("nr_periods"), values.get("nr_throttled"),
                             values.get("throttled_usec"))

        if not self._try(errors, directory, "cpu.stat", cpu_stat) and self.gone:
            return
        if config:
            def cpu_max(data: bytes, path: str) -> None:
                fields = data.split()
                if len(fields) != 2:
                    raise MalformedFileError(path, 1, f"expected '$MAX $PERIOD', got {data!r}")
                period = int(fields[1])
                if fields[0] == b"max" or period <= 0:
                    self.limit_millicores = None
                else:
                    self.limit_millicores = int(fields[0]) / period * 1000.0
                    s.gauge("cgroup.cpu.max.quota_usec", int(fields[0]))
                s.gauge("cgroup.cpu.max.period_usec", period)

            def cpu_weight(data: bytes, path: str) -> None:
                s.gauge("cgroup.cpu.weight", parse_single_int(data, path))

            self._try(errors, directory, "cpu.max", _guard(cpu_max))
            self._try(errors, directory, "cpu.weight", cpu_weight)
            for name in ("memory.max", "memory.high", "memory.low", "memory.min",
                         "memory.swap.max", "pids.max"):
                self._try(errors, directory, name, self._limit(name))
        if self.limit_millicores is not None:
            s.gauge("container.cpu.limit_millicores", self.limit_millicores)
        else:
            s.drop("container.cpu.limit_millicores")

        usage_box: list[int] = []

        def memory_current(data: bytes, path: str) -> None:
            usage = parse_single_int(data, path)
            usage_box.append(usage)
            s.gauge("cgroup.memory.current", usage)
            s.gauge("container.memory.usage_bytes", usage)

        def memory_stat(data: bytes, path: str) -> None:
            values = parse_flat_keyed(data, path)
            self._flat("memory.stat", values, _memory_event)
            anon, file = values.get("anon"), values.get("file")
            inactive_file = values.get("inactive_file")
            if anon is not None:
                s.gauge("container.memory.rss_bytes", anon)
            if file is not None:
                s.gauge("container.memory.cache_bytes", file)
            if usage_box and inactive_file is not None:
                s.gauge("container.memory.working_set_bytes", max(0, usage_box[0] - inactive_file))

        def memory_events(data: bytes, path: str) -> None:
            values = parse_flat_keyed(data, path)
            self._flat("memory.events", values, _always)
            if "oom_kill" in values:
                s.counter("container.memory.oom_kills", values["oom_kill"])
            if "oom" in values:
                s.counter("container.memory.oom_events", values["oom"])

        def swap_current(data: bytes, path: str) -> None:
            value = parse_single_int(data, path)
            s.gauge("cgroup.memory.swap.current", value)
            s.gauge("container.memory.swap_bytes", value)

        def memory_peak(data: bytes, path: str) -> None:
            s.gauge("cgroup.memory.peak", parse_single_int(data, path))

        def pids_current(data: bytes, path: str) -> None:
            value = parse_single_int(data, path)
            s.gauge("cgroup.pids.current", value)
            s.gauge("container.pids.current", value)

        def io_stat(data: bytes, path: str) -> None:
            totals = dict.fromkeys(("rbytes", "wbytes", "rios", "wios"), 0)
            for device in parse_io_stat(data, path):
                label = ("device", f"{device.major}:{device.minor}")
                for key, value in device.values.items():
                    if key in _IO_COUNTER_KEYS and isinstance(value, int) and value >= 0:
                        s.counter(f"cgroup.io.stat.{key}", value, label)
                        if key in totals:
                            totals[key] += value
                    elif math.isfinite(value):
                        s.gauge(f"cgroup.io.stat.{key}", value, label)
            self._io(totals["rbytes"], totals["wbytes"], totals["rios"], totals["wios"])

        for name, handler in (
            ("memory.current", memory_current),
            ("memory.stat", memory_stat),
            ("memory.events", memory_events),
            ("memory.swap.current", swap_current),
            ("memory.peak", memory_peak),
            ("pids.current", pids_current),
            ("io.stat", io_stat),
        ):
            if not self._try(errors, directory, name, handler) and self.gone:
                return
        if self.memory_limit_bytes is not None:
            s.gauge("container.memory.limit_bytes", self.memory_limit_bytes)
        else:
            s.drop("container.memory.limit_bytes")

    def _limit(self, name: str) -> Callable[[bytes, str], None]:
        s = self.series

        def handle(data: bytes, path: str) -> None:
            value = parse_int_or_max(data, path)
            if name == "memory.max":
                self.memory_limit_bytes = value
            if value is None:
                s.drop(f"cgroup.{name}")
            else:
                s.gauge(f"cgroup.{name}", value)

        return handle

    # ------------------------------------------------------------------ v1
    def _sample_v1(self, d: CgroupDirs, now: float, errors: ReadErrors, config: bool) -> None:
        s = self.series
        usage_box: list[int] = []

        def cpuacct_usage(data: bytes, path: str) -> None:
            nsec = parse_single_int(data, path)
            s.counter("cgroup.cpuacct.usage", nsec)
            s.counter("container.cpu.usage_usec", nsec // 1000)
            usage_box.append(nsec // 1000)

        def cpuacct_stat(data: bytes, path: str) -> None:
            values = parse_flat_keyed(data, path)
            self._flat("cpuacct.stat", values, _always)
            usec_per_tick = 1e6 / _CLK_TCK
            user, system = values.get("user"), values.get("system")
            self._cpu_rates(
                usage_box[0] if usage_box else None,
                None if user is None else int(user * usec_per_tick),
                None if system is None else int(system * usec_per_tick),
                now,
            )

        def cpu_stat(data: bytes, path: str) -> None:
            values = parse_flat_keyed(data, path)
            self._flat("cpu.stat", values, _always)
            throttled_ns = values.get("throttled_time")
            self._throttling(values.get("nr_periods"), values.get("nr_throttled"),
                             None if throttled_ns is None else throttled_ns // 1000)

        if not self._try(errors, d.cpuacct, "cpuacct.usage", cpuacct_usage) and self.gone:
            return
        self._try(errors, d.cpuacct, "cpuacct.stat", cpuacct_stat)
        self._try(errors, d.cpu, "cpu.stat", cpu_stat)
        if config:
            quota: list[int | None] = []

            def cfs_quota(data: bytes, path: str) -> None:
                value = parse_cfs_quota_usec(data, path)
                quota.append(value)
                s.gauge("cgroup.cpu.cfs_quota_us", -1 if value is None else value)

            def cfs_period(data: bytes, path: str) -> None:
                period = parse_single_int(data, path)
                s.gauge("cgroup.cpu.cfs_period_us", period)
                q = quota[0] if quota else None
                self.limit_millicores = None if q is None or period <= 0 else q / period * 1000.0

            def shares(data: bytes, path: str) -> None:
                s.gauge("cgroup.cpu.shares", parse_single_int(data, path))

            def memory_limit(data: bytes, path: str) -> None:
                value = parse_single_int(data, path)
                self.memory_limit_bytes = None if value >= _V1_UNLIMITED_BYTES else value
                s.gauge("cgroup.memory.limit_in_bytes", value)

            def pids_max(data: bytes, path: str) -> None:
                value = parse_int_or_max(data, path)
                if value is not None:
                    s.gauge("cgroup.pids.max", value)

            self._try(errors, d.cpu, "cpu.cfs_quota_us", cfs_quota)
            self._try(errors, d.cpu, "cpu.cfs_period_us", cfs_period)
            self._try(errors, d.cpu, "cpu.shares", shares)
            self._try(errors, d.memory, "memory.limit_in_bytes", memory_limit)
            self._try(errors, d.pids, "pids.max", pids_max)
        if self.limit_millicores is not None:
            s.gauge("container.cpu.limit_millicores", self.limit_millicores)
        else:
            s.drop("container.cpu.limit_millicores")

        mem_usage: list[int] = []

        def memory_usage(data: bytes, path: str) -> None:
            value = parse_single_int(data, path)
            mem_usage.append(value)
            s.gauge("cgroup.memory.usage_in_bytes", value)
            s.gauge("container.memory.usage_bytes", value)

        def memory_stat(data: bytes, path: str) -> None:
            values = parse_flat_keyed(data, path)
            self._flat("memory.stat", values, _memory_event)
            rss = values.get("total_rss", values.get("rss"))
            cache = values.get("total_cache", values.get("cache"))
            swap = values.get("total_swap", values.get("swap"))
            inactive_file = values.get("total_inactive_file", values.get("inactive_file"))
            if rss is not None:
                s.gauge("container.memory.rss_bytes", rss)
            if cache is not None:
                s.gauge("container.memory.cache_bytes", cache)
            if swap is not None:
                s.gauge("container.memory.swap_bytes", swap)
            if mem_usage and inactive_file is not None:
                s.gauge("container.memory.working_set_bytes", max(0, mem_usage[0] - inactive_file))

        def max_usage(data: bytes, path: str) -> None:
            s.gauge("cgroup.memory.max_usage_in_bytes", parse_single_int(data, path))

        def failcnt(data: bytes, path: str) -> None:
            s.counter("cgroup.memory.failcnt", parse_single_int(data, path))

        def oom_control(data: bytes, path: str) -> None:
            values = parse_flat_keyed(data, path)
            for key, value in values.items():
                if key == "oom_kill":
                    s.counter("cgroup.memory.oom_control.oom_kill", value)
                    s.counter("container.memory.oom_kills", value)
                else:
                    s.gauge(f"cgroup.memory.oom_control.{key}", value)

        def pids_current(data: bytes, path: str) -> None:
            value = parse_single_int(data, path)
            s.gauge("cgroup.pids.current", value)
            s.gauge("container.pids.current", value)

        io_totals = {"read_bytes": 0, "write_bytes": 0, "read_ops": 0, "write_ops": 0}

        def blkio(file: str, read_key: str, write_key: str) -> Callable[[bytes, str], None]:
            def handle(data: bytes, path: str) -> None:
                stat = parse_blkio_rwstat(data, path)
                for device in stat.devices:
                    label = ("device", f"{device.major}:{device.minor}")
                    for key, value in device.values.items():
                        s.counter(f"cgroup.{file}.{key.lower()}", value, label)
                    io_totals[read_key] += device.values.get("Read", 0)
                    io_totals[write_key] += device.values.get("Write", 0)

            return handle

        for directory, name, handler in (
            (d.memory, "memory.usage_in_bytes", memory_usage),
            (d.memory, "memory.stat", memory_stat),
            (d.memory, "memory.max_usage_in_bytes", max_usage),
            (d.memory, "memory.failcnt", failcnt),
            (d.memory, "memory.oom_control", oom_control),
            (d.pids, "pids.current", pids_current),
            (d.blkio, "blkio.throttle.io_service_bytes",
             blkio("blkio.throttle.io_service_bytes", "read_bytes", "write_bytes")),
            (d.blkio, "blkio.throttle.io_serviced",
             blkio("blkio.throttle.io_serviced", "read_ops", "write_ops")),
        ):
            if not self._try(errors, directory, name, handler) and self.gone:
                return
        if d.blkio is not None:
            self._io(io_totals["read_bytes"], io_totals["write_bytes"],
                     io_totals["read_ops"], io_totals["write_ops"])
        if self.memory_limit_bytes is not None:
            s.gauge("container.memory.limit_bytes", self.memory_limit_bytes)
        else:
            s.drop("container.memory.limit_bytes")

    # ------------------------------------------------------------------ derived
    def _cpu_rates(
        self, usage_usec: int | None, user_usec: int | None, system_usec: int | None, now: float
    ) -> None:
        s = self.series
        if usage_usec is not None:
            rate = self._cpu_usage.update(usage_usec, now)
            if rate is not None:
                millicores = rate / 1000.0
                s.gauge("container.cpu.usage_millicores", millicores)
                capacity = self.limit_millicores or self._node_millicores
                s.gauge("container.cpu.usage_percent", millicores / capacity * 100.0)
        if user_usec is not None:
            rate = self._cpu_user.update(user_usec, now)
            if rate is not None:
                s.gauge("container.cpu.user_millicores", rate / 1000.0)
        if system_usec is not None:
            rate = self._cpu_system.update(system_usec, now)
            if rate is not None:
                s.gauge("container.cpu.system_millicores", rate / 1000.0)

    def _throttling(
        self, periods: int | None, throttled: int | None, throttled_usec: int | None
    ) -> None:
        s = self.series
        if periods is not None:
            s.counter("container.cpu.periods", periods)
        if throttled is not None:
            s.counter("container.cpu.throttled_periods", throttled)
        if throttled_usec is not None:
            s.counter("container.cpu.throttled_usec", throttled_usec)

    def _io(self, read_bytes: int, write_bytes: int, read_ops: int, write_ops: int) -> None:
        s = self.series
        s.counter("container.io.read_bytes", read_bytes)
        s.counter("container.io.write_bytes", write_bytes)
        s.counter("container.io.read_ops", read_ops)
        s.counter("container.io.write_ops", write_ops)

    def _pressure(self, resource: str) -> Callable[[bytes, str], None]:
        s = self.series

        def handle(data: bytes, path: str) -> None:
            for kind, values in _pressure_lines(data, path).items():
                for key, value in values.items():
                    name = f"cgroup.{resource}.pressure.{kind}.{key}"
                    if key == "total":
                        s.counter(name, int(value))
                        s.counter(f"container.{resource}.psi.{kind}.stall_usec", int(value))
                    else:
                        s.gauge(name, value)
                        if key == "avg10":
                            s.gauge(f"container.{resource}.psi.{kind}.avg10_percent", value)

        return handle


def _always(_key: str) -> bool:
    return True


def _memory_event(key: str) -> bool:
    return key.startswith(_MEMORY_EVENT_PREFIXES) or key.startswith(
        tuple(f"total_{p}" for p in _MEMORY_EVENT_PREFIXES)
    )


def _guard(handler: Callable[[bytes, str], None]) -> Callable[[bytes, str], None]:
    """Turn a ValueError from int() inside ``handler`` into a MalformedFileError."""

    def guarded(data: bytes, path: str) -> None:
        try:
            handler(data, path)
        except MalformedFileError:
            raise
        except ValueError as exc:
            raise MalformedFileError(path, 1, str(exc)) from None

    return guarded


def _exists(directory: str) -> bool:
    return os.path.isdir(directory)


_CLK_TCK = os.sysconf("SC_CLK_TCK")
