"""The derived, version-independent metrics of a container (``container.*``): CPU, memory, IO,
pressure and tasks, whichever cgroup arrangement the node has."""

# ruff: noqa: RUF001 - the typographic multiplication and minus signs of the docs are meant

from __future__ import annotations

from common.catalogue.entry import Entry

#: The names of its metrics.
CONTAINER_CPU_USAGE_USEC = "container.cpu.usage_usec"
CONTAINER_CPU_USAGE_MILLICORES = "container.cpu.usage_millicores"
CONTAINER_CPU_USAGE_PERCENT = "container.cpu.usage_percent"
CONTAINER_CPU_USER_MILLICORES = "container.cpu.user_millicores"
CONTAINER_CPU_SYSTEM_MILLICORES = "container.cpu.system_millicores"
CONTAINER_CPU_USER_PERCENT = "container.cpu.user_percent"
CONTAINER_CPU_SYSTEM_PERCENT = "container.cpu.system_percent"
CONTAINER_CPU_LIMIT_MILLICORES = "container.cpu.limit_millicores"
CONTAINER_CPU_PERIODS = "container.cpu.periods"
CONTAINER_CPU_THROTTLED_PERIODS = "container.cpu.throttled_periods"
CONTAINER_CPU_THROTTLED_USEC = "container.cpu.throttled_usec"
CONTAINER_MEMORY_USAGE_BYTES = "container.memory.usage_bytes"
CONTAINER_MEMORY_WORKING_SET_BYTES = "container.memory.working_set_bytes"
CONTAINER_MEMORY_RSS_BYTES = "container.memory.rss_bytes"
CONTAINER_MEMORY_CACHE_BYTES = "container.memory.cache_bytes"
CONTAINER_MEMORY_SWAP_BYTES = "container.memory.swap_bytes"
CONTAINER_MEMORY_LIMIT_BYTES = "container.memory.limit_bytes"
CONTAINER_MEMORY_OOM_KILLS = "container.memory.oom_kills"
CONTAINER_MEMORY_OOM_EVENTS = "container.memory.oom_events"
CONTAINER_MEMORY_PSS_BYTES = "container.memory.pss_bytes"
CONTAINER_IO_READ_BYTES = "container.io.read_bytes"
CONTAINER_IO_WRITE_BYTES = "container.io.write_bytes"
CONTAINER_IO_READ_OPS = "container.io.read_ops"
CONTAINER_IO_WRITE_OPS = "container.io.write_ops"
CONTAINER_PIDS_CURRENT = "container.pids.current"
CONTAINER_PROCESSES = "container.processes"
#: The pressure families (the names of their members: :func:`container_psi_stall_usec` and
#: :func:`container_psi_avg10_percent`).
CONTAINER_PSI_STALL_USEC_FAMILY = "container.{cpu,memory,io}.psi.{some,full}.stall_usec"
CONTAINER_PSI_AVG10_PERCENT_FAMILY = "container.{cpu,memory,io}.psi.{some,full}.avg10_percent"

#: The resources of the pressure files, and the lines of each (``full`` is absent for ``cpu``
#: before Linux 5.13).
PSI_RESOURCES = ("cpu", "memory", "io")
PSI_LINES = ("some", "full")


def container_psi_avg10_percent(resource: str, line: str) -> str:
    """The name of the container's 10-second pressure average (percent) of ``resource`` (one of
    :data:`PSI_RESOURCES`) and ``line`` (``some`` or ``full``)."""
    return f"container.{resource}.psi.{line}.avg10_percent"


def container_psi_stall_usec(resource: str, line: str) -> str:
    """The name of the container's total stall time (microseconds) of ``resource`` and
    ``line``."""
    return f"container.{resource}.psi.{line}.stall_usec"


#: In the order of the docs tables.
ENTRIES: tuple[Entry, ...] = (
    Entry(
        "container-cpu",
        CONTAINER_CPU_USAGE_USEC,
        "counter",
        "usec",
        standard=True,
        source="v2 `cpu.stat` `usage_usec`; v1 `cpuacct.usage`",
        cgroup="both",
        description="CPU time used by the container's tasks since its cgroup was created",
        derivation="v1: nanoseconds ÷ 1000",
    ),
    Entry(
        "container-cpu",
        CONTAINER_CPU_USAGE_MILLICORES,
        "gauge",
        "millicores",
        standard=True,
        source="as `container.cpu.usage_usec`",
        cgroup="both",
        description=(
            "CPU used by the container between two samples, in millicores (1000 = one CPU busy)"
        ),
        derivation=(
            "Usage now − usage at the previous sample, ÷ elapsed seconds ÷ 1000. Elapsed time is "
            "`time.monotonic()` taken just before the container's files are read. The first "
            "sample of a container is only a baseline (no value); a reading lower than the "
            "previous one is a counter reset and becomes the new baseline (no value that sample, "
            "the previous value stays)"
        ),
    ),
    Entry(
        "container-cpu",
        CONTAINER_CPU_USAGE_PERCENT,
        "gauge",
        "percent",
        standard=True,
        source="`container.cpu.usage_millicores` and the limit",
        cgroup="both",
        description=(
            "CPU used by the container, in percent of its CPU limit, or of all the node's CPUs "
            "when it has none"
        ),
        derivation=(
            "Millicores ÷ `container.cpu.limit_millicores` × 100 when the container has a CPU "
            "limit, else millicores ÷ (`os.cpu_count()` × 1000) × 100, i.e. of all the node's "
            "CPUs (never of finemon's own quota). Can exceed 100 briefly with a limit (bursts)"
        ),
    ),
    Entry(
        "container-cpu",
        CONTAINER_CPU_USER_MILLICORES,
        "gauge",
        "millicores",
        standard=True,
        source="v2 `cpu.stat` `user_usec`; v1 `cpuacct.stat` `user`",
        cgroup="both",
        description="CPU used by the container in user mode between two samples, in millicores",
        derivation="Rate as for usage; v1 ticks × (1 000 000 ÷ USER_HZ) first",
    ),
    Entry(
        "container-cpu",
        CONTAINER_CPU_SYSTEM_MILLICORES,
        "gauge",
        "millicores",
        standard=True,
        source="v2 `cpu.stat` `system_usec`; v1 `cpuacct.stat` `system`",
        cgroup="both",
        description="CPU used by the container in kernel mode between two samples, in millicores",
        derivation="Rate as for user",
    ),
    Entry(
        "container-cpu",
        CONTAINER_CPU_USER_PERCENT,
        "gauge",
        "percent",
        standard=True,
        source="as `container.cpu.user_millicores`",
        cgroup="both",
        description=(
            "CPU used by the container in user mode, in percent of the capacity "
            "container.cpu.usage_percent is of"
        ),
        derivation=(
            "`container.cpu.user_millicores` ÷ the capacity `container.cpu.usage_percent` is of "
            "(the CPU limit, else all the node's CPUs) × 100, so user + system ≈ usage percent. "
            "On v1 `cpuacct.stat` counts in USER_HZ ticks (10 ms), so over a short interval "
            "user + system match usage only to a tick"
        ),
    ),
    Entry(
        "container-cpu",
        CONTAINER_CPU_SYSTEM_PERCENT,
        "gauge",
        "percent",
        standard=True,
        source="as `container.cpu.system_millicores`",
        cgroup="both",
        description=(
            "CPU used by the container in kernel mode, in percent of the capacity "
            "container.cpu.usage_percent is of"
        ),
        derivation=(
            "As user: time in the kernel on the container's behalf (system calls, page faults)"
        ),
    ),
    Entry(
        "container-cpu",
        CONTAINER_CPU_LIMIT_MILLICORES,
        "gauge",
        "millicores",
        standard=True,
        source="v2 `cpu.max`; v1 `cpu.cfs_quota_us`, `cpu.cfs_period_us`",
        cgroup="both",
        description="CPU limit (CFS quota) of the container, in millicores",
        derivation=(
            "Quota ÷ period × 1000. Only when a quota is set (v2 `max`, v1 `-1` = none); the "
            "series ends when the quota is removed. Settings cadence (every 10th sample)"
        ),
    ),
    Entry(
        "container-cpu",
        CONTAINER_CPU_PERIODS,
        "counter",
        "count",
        standard=True,
        source="`cpu.stat` `nr_periods`",
        cgroup="both",
        description="CFS bandwidth periods elapsed (they count only while a CPU quota is set)",
    ),
    Entry(
        "container-cpu",
        CONTAINER_CPU_THROTTLED_PERIODS,
        "counter",
        "count",
        standard=True,
        source="`cpu.stat` `nr_throttled`",
        cgroup="both",
        description="CFS bandwidth periods in which the container was throttled",
    ),
    Entry(
        "container-cpu",
        CONTAINER_CPU_THROTTLED_USEC,
        "counter",
        "usec",
        standard=True,
        source="v2 `cpu.stat` `throttled_usec`; v1 `cpu.stat` `throttled_time`",
        cgroup="both",
        description="Time the container's tasks spent throttled by its CPU quota",
        derivation="v1: nanoseconds ÷ 1000",
    ),
    Entry(
        "container-memory",
        CONTAINER_MEMORY_USAGE_BYTES,
        "gauge",
        "bytes",
        standard=True,
        source="v2 `memory.current`; v1 `memory.usage_in_bytes`",
        cgroup="both",
        description="Memory charged to the container, page cache included",
    ),
    Entry(
        "container-memory",
        CONTAINER_MEMORY_WORKING_SET_BYTES,
        "gauge",
        "bytes",
        standard=True,
        source="usage and `memory.stat`",
        cgroup="both",
        description=(
            "Working set of the container: memory usage minus inactive file pages, what kubelet "
            "evicts on and kubectl top shows"
        ),
        derivation=(
            "Usage − inactive file pages (v2 `inactive_file`; v1 `total_inactive_file`, else "
            "`inactive_file`), at least 0. Needs both files read in the same sample"
        ),
    ),
    Entry(
        "container-memory",
        CONTAINER_MEMORY_RSS_BYTES,
        "gauge",
        "bytes",
        standard=True,
        source="`memory.stat`",
        cgroup="both",
        description="Anonymous memory (RSS) of the container",
        derivation="v2 `anon`; v1 `total_rss` (else `rss`: anonymous memory and swap cache)",
    ),
    Entry(
        "container-memory",
        CONTAINER_MEMORY_CACHE_BYTES,
        "gauge",
        "bytes",
        standard=True,
        source="`memory.stat`",
        cgroup="both",
        description="Page cache (file-backed memory) of the container",
        derivation="v2 `file`; v1 `total_cache` (else `cache`)",
    ),
    Entry(
        "container-memory",
        CONTAINER_MEMORY_SWAP_BYTES,
        "gauge",
        "bytes",
        standard=True,
        source="v2 `memory.swap.current`; v1 `memory.stat` `total_swap` (else `swap`)",
        cgroup="both",
        description="Swap used by the container",
        derivation="As read; v1 prints `swap` only with swap accounting enabled",
    ),
    Entry(
        "container-memory",
        CONTAINER_MEMORY_LIMIT_BYTES,
        "gauge",
        "bytes",
        standard=True,
        source="v2 `memory.max`; v1 `memory.limit_in_bytes`",
        cgroup="both",
        description="Memory limit of the container",
        derivation=(
            "Only when a limit is set: v2 `max`, and v1 values at or above 2^62 (the kernel's "
            '"unlimited", 9223372036854771712 with 4 KiB pages) mean none, and the series ends '
            "when the limit is removed. Settings cadence"
        ),
    ),
    Entry(
        "container-memory",
        CONTAINER_MEMORY_OOM_KILLS,
        "counter",
        "count",
        standard=True,
        source="v2 `memory.events` `oom_kill`; v1 `memory.oom_control` `oom_kill`",
        cgroup="both",
        description="Processes of the container killed by the OOM killer",
        derivation="v1 prints `oom_kill` since 4.13",
    ),
    Entry(
        "container-memory",
        CONTAINER_MEMORY_OOM_EVENTS,
        "counter",
        "count",
        standard=True,
        source="`memory.events` `oom`",
        cgroup="v2",
        description="Times the container hit its memory limit and the OOM killer was invoked",
    ),
    Entry(
        "container-memory",
        CONTAINER_MEMORY_PSS_BYTES,
        "gauge",
        "bytes",
        standard=True,
        source="`/proc/<pid>/smaps_rollup` of its processes",
        description="Proportional set size of the container: the sum of its processes' PSS",
        derivation=(
            "Sum of `process.memory.pss_bytes` over the container's current processes whose PSS "
            "has been read (each at its latest reading, see [process metrics](#process)); absent "
            "until one has been read"
        ),
    ),
    Entry(
        "container-io",
        CONTAINER_IO_READ_BYTES,
        "counter",
        "bytes",
        standard=True,
        source="v2 `io.stat` `rbytes`; v1 `blkio.throttle.io_service_bytes` `Read`",
        cgroup="both",
        description="Bytes the container read from block devices",
        derivation="Sum over the devices listed",
    ),
    Entry(
        "container-io",
        CONTAINER_IO_WRITE_BYTES,
        "counter",
        "bytes",
        standard=True,
        source="v2 `io.stat` `wbytes`; v1 `blkio.throttle.io_service_bytes` `Write`",
        cgroup="both",
        description="Bytes the container wrote to block devices",
        derivation=(
            "Sum over the devices. On v1 buffered writes are mostly charged to the root cgroup "
            "(writeback is cgroup-aware only on v2)"
        ),
    ),
    Entry(
        "container-io",
        CONTAINER_IO_READ_OPS,
        "counter",
        "count",
        standard=True,
        source="v2 `io.stat` `rios`; v1 `blkio.throttle.io_serviced` `Read`",
        cgroup="both",
        description="Read operations of the container on block devices",
        derivation="Sum over the devices",
    ),
    Entry(
        "container-io",
        CONTAINER_IO_WRITE_OPS,
        "counter",
        "count",
        standard=True,
        source="v2 `io.stat` `wios`; v1 `blkio.throttle.io_serviced` `Write`",
        cgroup="both",
        description="Write operations of the container on block devices",
        derivation="Sum over the devices",
    ),
    Entry(
        "container-psi",
        CONTAINER_PSI_STALL_USEC_FAMILY,
        "counter",
        "usec",
        standard=True,
        source="`{cpu,memory,io}.pressure` `total=`",
        cgroup="v2, hybrid",
        description=(
            "Time some (at least one) or all non-idle tasks of the container were stalled on the "
            "resource (PSI)"
        ),
    ),
    Entry(
        "container-psi",
        CONTAINER_PSI_AVG10_PERCENT_FAMILY,
        "gauge",
        "percent",
        standard=True,
        source="`{cpu,memory,io}.pressure` `avg10=`",
        cgroup="v2, hybrid",
        description=(
            "Share of time some or all non-idle tasks of the container were stalled on the "
            "resource, the kernel's 10-second average (PSI)"
        ),
        derivation="For the 60 and 300 s averages use the raw `cgroup.<resource>.pressure.*`",
    ),
    Entry(
        "container-pids",
        CONTAINER_PIDS_CURRENT,
        "gauge",
        "count",
        standard=True,
        source="`pids.current`",
        cgroup="both",
        description="Tasks (threads included) in the container's cgroup",
        derivation="v1 needs the pids controller",
    ),
    Entry(
        "container-pids",
        CONTAINER_PROCESSES,
        "gauge",
        "count",
        standard=True,
        source="`cgroup.procs`, `/proc/<pid>/stat`",
        description="Processes finemon tracks in the container",
        derivation=(
            "Listed in `cgroup.procs`, in finemon's PID namespace, and readable this sample"
        ),
    ),
)
