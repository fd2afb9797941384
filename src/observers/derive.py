"""The container model: two readings of a container's cgroup and the time between them become
the version-independent ``container.*`` values (rates, percentages, the working set, IO totals).

Pure: :func:`derive_container` reads no file and keeps no state; the sampler
(:mod:`observers.container`) fills a :class:`ContainerReading` from whichever files the node's
cgroup arrangement has (v2, v1, hybrid) and emits the :class:`ContainerValues` under the
catalogue's names (:mod:`common.catalogue.container`).
"""

from __future__ import annotations

from typing import NamedTuple


class PressureReading(NamedTuple):
    """One line (``some`` or ``full``) of a pressure file: the 10-second average (percent) and
    the total stall time (microseconds), each None when the line lacks it."""

    resource: str
    line: str
    avg10_percent: float | None
    total_usec: int | None


class ContainerReading(NamedTuple):
    """What the container's files said at one sample: the latest value of each input (a file
    unchanged or failing since keeps its earlier value), None when the kernel has not provided
    it. The CPU times are microseconds since the cgroup was created (v1 converted from
    nanoseconds and USER_HZ ticks); ``io`` holds the v2 ``io.stat`` sums over the devices (read
    bytes, written bytes, read and write operations), ``blkio_service_bytes`` and
    ``blkio_serviced`` the v1 (read, write) sums of the blkio throttle files."""

    cpu_usage_usec: int | None = None
    cpu_user_usec: int | None = None
    cpu_system_usec: int | None = None
    cpu_periods: int | None = None
    cpu_throttled_periods: int | None = None
    cpu_throttled_usec: int | None = None
    cpu_limit_millicores: float | None = None
    memory_usage_bytes: int | None = None
    memory_rss_bytes: int | None = None
    memory_cache_bytes: int | None = None
    memory_inactive_file_bytes: int | None = None
    memory_swap_bytes: int | None = None
    memory_limit_bytes: int | None = None
    memory_oom_kills: int | None = None
    memory_oom_events: int | None = None
    pids_current: int | None = None
    io: tuple[int, int, int, int] | None = None
    blkio_service_bytes: tuple[int, int] | None = None
    blkio_serviced: tuple[int, int] | None = None
    pressure: tuple[PressureReading, ...] = ()


class ContainerValues(NamedTuple):
    """The ``container.*`` values of one sample, each None when it cannot be had this sample
    (its input is missing, or a rate has no earlier reading to go from). Counters are ``int``,
    gauges ``float`` or ``int``. A None limit means the container has none (its series ends)."""

    cpu_usage_usec: int | None
    cpu_usage_millicores: float | None
    cpu_usage_percent: float | None
    cpu_user_millicores: float | None
    cpu_user_percent: float | None
    cpu_system_millicores: float | None
    cpu_system_percent: float | None
    cpu_limit_millicores: float | None
    cpu_periods: int | None
    cpu_throttled_periods: int | None
    cpu_throttled_usec: int | None
    memory_usage_bytes: int | None
    memory_working_set_bytes: int | None
    memory_rss_bytes: int | None
    memory_cache_bytes: int | None
    memory_swap_bytes: int | None
    memory_limit_bytes: int | None
    memory_oom_kills: int | None
    memory_oom_events: int | None
    pids_current: int | None
    #: Read bytes, written bytes, read operations, write operations (counters).
    io: tuple[int, int, int, int] | None
    pressure: tuple[PressureReading, ...]

    @property
    def cpu_rates_nonzero(self) -> bool:
        """Whether a CPU rate is known and above 0 (the container used CPU since the previous
        reading)."""
        return any(
            (self.cpu_usage_millicores, self.cpu_user_millicores, self.cpu_system_millicores)
        )


def rate_per_second(
    previous: int | None, current: int | None, elapsed_seconds: float
) -> float | None:
    """Units per second of a cumulative counter between two readings ``elapsed_seconds``
    apart. None for the first reading (no ``previous``), a missing one, a counter reset (a
    ``current`` below ``previous``: a restarted cgroup, the new baseline) and no elapsed
    time."""
    if previous is None or current is None or current < previous or elapsed_seconds <= 0:
        return None
    return (current - previous) / elapsed_seconds


def capacity_millicores(limit_millicores: float | None, node_millicores: float) -> float:
    """What a container's (and its processes') CPU percentages are of: its CPU limit when one
    is set, else all the node's CPUs (``node_millicores``)."""
    return limit_millicores or node_millicores


def derive_container(
    previous: ContainerReading | None,
    current: ContainerReading,
    elapsed_seconds: float,
    node_millicores: float,
) -> ContainerValues:
    """The container's values from its ``previous`` reading (None for its first) and the
    ``current`` one, taken ``elapsed_seconds`` later (monotonic time of the reads).

    CPU millicores are the rate of the CPU time (microseconds per second ÷ 1000); percentages
    are of :func:`capacity_millicores`. The working set is usage minus inactive file pages, at
    least 0, when both are known. IO totals are v2's, else v1's blkio sums (a missing one of
    the two files counting 0).
    """
    capacity = capacity_millicores(current.cpu_limit_millicores, node_millicores)
    usage = user = system = None
    if previous is not None:
        usage = rate_per_second(previous.cpu_usage_usec, current.cpu_usage_usec, elapsed_seconds)
        user = rate_per_second(previous.cpu_user_usec, current.cpu_user_usec, elapsed_seconds)
        system = rate_per_second(previous.cpu_system_usec, current.cpu_system_usec, elapsed_seconds)
    # Microseconds of CPU per second / 1000 = millicores.
    usage = None if usage is None else usage / 1000.0
    user = None if user is None else user / 1000.0
    system = None if system is None else system / 1000.0
    memory, inactive = current.memory_usage_bytes, current.memory_inactive_file_bytes
    io = current.io
    if io is None and (current.blkio_service_bytes or current.blkio_serviced):
        service = current.blkio_service_bytes or (0, 0)
        serviced = current.blkio_serviced or (0, 0)
        io = (service[0], service[1], serviced[0], serviced[1])
    return ContainerValues(
        current.cpu_usage_usec,
        usage,
        None if usage is None else usage / capacity * 100.0,
        user,
        None if user is None else user / capacity * 100.0,
        system,
        None if system is None else system / capacity * 100.0,
        current.cpu_limit_millicores,
        current.cpu_periods,
        current.cpu_throttled_periods,
        current.cpu_throttled_usec,
        memory,
        None if memory is None or inactive is None else max(0, memory - inactive),
        current.memory_rss_bytes,
        current.memory_cache_bytes,
        current.memory_swap_bytes,
        current.memory_limit_bytes,
        current.memory_oom_kills,
        current.memory_oom_events,
        current.pids_current,
        io,
        current.pressure,
    )
