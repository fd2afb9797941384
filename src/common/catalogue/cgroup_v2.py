"""The raw pass-through of the cgroup v2 files (``cgroup.<file>.<key>``), also the keys v1 shares
with them (``cpu.stat``, ``memory.stat``, ``pids.*``)."""

from __future__ import annotations

from common.catalogue.entry import IO_COUNTER_KEYS, Entry

#: In the order of the docs tables.
ENTRIES: tuple[Entry, ...] = (
    Entry(
        "cgroup-v2",
        "cgroup.cpu.stat.<key>",
        "counter",
        "usec for `*_usec` (v1 `*_time`: ns), else count",
        standard=True,
        source="`cpu.stat`",
        cgroup="both",
        description="A key of cpu.stat, as the kernel prints it",
        derivation=(
            "Every key: v2 `usage_usec`, `user_usec`, `system_usec`, `nice_usec`, "
            "`core_sched.force_idle_usec`, `nr_periods`, `nr_throttled`, `throttled_usec`, "
            "`nr_bursts`, `burst_usec`; v1 `nr_periods`, `nr_throttled`, `throttled_time`, "
            "`nr_bursts`, `burst_time`"
        ),
    ),
    Entry(
        "cgroup-v2",
        "cgroup.cpu.max.quota_usec",
        "gauge",
        "usec",
        standard=True,
        source="`cpu.max`",
        cgroup="v2",
        description="CPU quota per period of the cgroup, from cpu.max",
        derivation="Only when a quota is set",
    ),
    Entry(
        "cgroup-v2",
        "cgroup.cpu.max.period_usec",
        "gauge",
        "usec",
        standard=True,
        source="`cpu.max`",
        cgroup="v2",
        description="CPU bandwidth period of the cgroup, from cpu.max",
    ),
    Entry(
        "cgroup-v2",
        "cgroup.cpu.weight",
        "gauge",
        "-",
        standard=True,
        source="`cpu.weight`",
        cgroup="v2",
        description="CPU weight of the cgroup (1-10000, default 100)",
    ),
    Entry(
        "cgroup-v2",
        "cgroup.memory.current",
        "gauge",
        "bytes",
        standard=True,
        source="`memory.current`",
        cgroup="v2",
        description="Memory charged to the cgroup, in bytes",
    ),
    Entry(
        "cgroup-v2",
        "cgroup.memory.peak",
        "gauge",
        "bytes",
        standard=True,
        source="`memory.peak`",
        cgroup="v2",
        description="Highest memory usage of the cgroup, in bytes",
        derivation="Since Linux 5.19",
    ),
    Entry(
        "cgroup-v2",
        "cgroup.memory.{max,high,low,min}",
        "gauge",
        "bytes",
        standard=True,
        source="`memory.max`, `memory.high`, `memory.low`, `memory.min`",
        cgroup="v2",
        description="Memory limit, throttling threshold or protection of the cgroup, in bytes",
        derivation="Only when not `max`",
    ),
    Entry(
        "cgroup-v2",
        "cgroup.memory.swap.current",
        "gauge",
        "bytes",
        standard=True,
        source="`memory.swap.current`",
        cgroup="v2",
        description="Swap used by the cgroup, in bytes",
    ),
    Entry(
        "cgroup-v2",
        "cgroup.memory.swap.max",
        "gauge",
        "bytes",
        standard=True,
        source="`memory.swap.max`",
        cgroup="v2",
        description="Swap limit of the cgroup, in bytes",
        derivation="Only when not `max`",
    ),
    Entry(
        "cgroup-v2",
        "cgroup.memory.stat.<key>",
        "by key",
        "bytes (gauges), count (counters)",
        standard=True,
        source="`memory.stat`",
        cgroup="both",
        description="A key of memory.stat, as the kernel prints it: bytes, or a count of events",
        derivation=(
            "Every key, kind by the rule above (v2 prints about 60 keys on 6.x; v1 its own set "
            "plus the `total_` hierarchical ones)"
        ),
    ),
    Entry(
        "cgroup-v2",
        "cgroup.memory.events.<key>",
        "counter",
        "count",
        standard=True,
        source="`memory.events`",
        cgroup="v2",
        description=(
            "A key of memory.events: times the cgroup hit a memory boundary or the OOM killer acted"
        ),
        derivation="`low`, `high`, `max`, `oom`, `oom_kill`, `oom_group_kill` ...",
    ),
    Entry(
        "cgroup-v2",
        "cgroup.pids.current",
        "gauge",
        "count",
        standard=True,
        source="`pids.current`",
        cgroup="both",
        description="Tasks in the cgroup",
    ),
    Entry(
        "cgroup-v2",
        "cgroup.pids.max",
        "gauge",
        "count",
        standard=True,
        source="`pids.max`",
        cgroup="both",
        description="Task limit of the cgroup",
        derivation="Only when not `max`",
    ),
    Entry(
        "cgroup-v2",
        "cgroup.io.stat.{" + ",".join(IO_COUNTER_KEYS) + "}",
        "counter",
        "bytes (`*bytes`), count (`*ios`)",
        labels=("device",),
        standard=True,
        source="`io.stat`",
        cgroup="v2",
        description="Bytes and operations read, written and discarded on one device",
        derivation="Per device",
    ),
    Entry(
        "cgroup-v2",
        "cgroup.io.stat.<key>",
        "gauge",
        "as printed",
        labels=("device",),
        standard=True,
        source="`io.stat`",
        cgroup="v2",
        description="Another key of an io.stat device line (an I/O controller's statistics)",
        derivation="The iocost `cost.*` and iolatency debug keys",
    ),
    Entry(
        "cgroup-v2",
        "cgroup.{cpu,memory,io}.pressure.{some,full}.{avg10,avg60,avg300}",
        "gauge",
        "percent",
        standard=True,
        source="`{cpu,memory,io}.pressure`",
        cgroup="v2, hybrid",
        description=(
            "Share of time some or all non-idle tasks of the cgroup were stalled on the "
            "resource, the kernel's 10, 60 or 300-second average (PSI), in percent"
        ),
    ),
    Entry(
        "cgroup-v2",
        "cgroup.{cpu,memory,io}.pressure.{some,full}.total",
        "counter",
        "usec",
        standard=True,
        source="`{cpu,memory,io}.pressure`",
        cgroup="v2, hybrid",
        description=(
            "Time some or all non-idle tasks of the cgroup were stalled on the resource (PSI), "
            "in microseconds"
        ),
    ),
)
