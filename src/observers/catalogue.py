"""The catalogue of every metric finemon writes: name, kind, unit, labels, source, description.

One :class:`Entry` per metric, or per family of raw pass-through metrics whose names hold the
kernel's keys (``cgroup.memory.stat.<key>``). It is the single source of:

- the descriptions and units given to :func:`capture.describe` (the Prometheus HELP and UNIT
  lines, the ``capture.metrics`` metadata of every file): the node observer describes the
  observer's entries when it starts, ``finemon run`` its own (:mod:`monitor.selfstats`), and
  capture describes its own counters itself (their entries here take its text);
- the metric tables of ``docs/metrics.md``, between ``<!-- catalogue: TABLE -->`` and
  ``<!-- /catalogue -->`` markers, written by ``python -m observers.catalogue --write
  docs/metrics.md`` (``--check`` fails when the file is not up to date, ``--markdown`` prints
  the tables).

``tests/observers/test_catalogue.py`` checks that what the observer emits on fixture trees is
catalogued with its kind and labels, and that the document holds exactly these tables.

Name syntax: ``{a,b}`` stands for each of the listed names, ``<key>`` for any key the kernel
prints (dots included: ``core_sched.force_idle_usec``).
"""

# ruff: noqa: RUF001 - the typographic multiplication and minus signs of the docs are meant

from __future__ import annotations

import argparse
import itertools
import re
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import capture
from capture.exposition import exposed_sample_name
from capture.manager import WRITE_ERRORS_DESCRIPTION
from capture.registry import DROPPED_DESCRIPTION, MISSED_TICKS_DESCRIPTION

#: ``by key``: a family whose members are gauges or counters by the kernel key (see
#: :meth:`Entry.kind_of`).
Kind = Literal["gauge", "counter", "by key"]
#: The units of the catalogue; an entry's unit may otherwise be a phrase explaining a family's
#: mix of units (then it is given to no metric), or ``-`` for a number without unit.
UNITS = frozenset({"bytes", "usec", "ns", "ticks", "millicores", "percent", "seconds", "count"})
#: Labels every container and process series may carry (``node_name`` is a global label).
STANDARD_LABELS = frozenset(
    {"namespace", "pod_name", "pod_uid", "container_id", "container_name", "qos_class", "cgroup"}
)
#: ``memory.stat`` keys (also in their v1 ``total_`` form) that count events: counters.
MEMORY_EVENT_PREFIXES = ("pg", "workingset_", "thp_", "zswp", "pswp")
#: The tables, in the order of docs/metrics.md.
TABLES = (
    "container-cpu",
    "container-memory",
    "container-io",
    "container-psi",
    "container-pids",
    "process",
    "cgroup-v2",
    "cgroup-v1",
    "proc",
    "observer-health",
    "daemon",
    "capture",
)
#: The table of the metrics ``finemon run`` writes itself (described by :mod:`monitor.selfstats`).
DAEMON_TABLE = "daemon"
#: The table of capture's own counters (capture describes them itself).
CAPTURE_TABLE = "capture"
#: The tables of the metrics the node observer writes.
OBSERVER_TABLES = frozenset(TABLES) - {DAEMON_TABLE, CAPTURE_TABLE}

_PLACEHOLDER = re.compile(r"<([a-z_]+)>|\{([^}]+)\}")
_HEADER = (
    "| Name | Kind | Unit | Labels | Source | cgroup | Description |\n"
    "| --- | --- | --- | --- | --- | --- | --- |\n"
)
_MARKED = re.compile(r"(<!-- catalogue: ([a-z0-9-]+) -->\n)(.*?)(<!-- /catalogue -->)", re.DOTALL)
_LISTED = re.compile(
    r"(<!-- catalogue-list: ([a-z0-9-]+) -->\n)(.*?)(<!-- /catalogue-list -->)", re.DOTALL
)


@dataclass(frozen=True, slots=True)
class Entry:
    """One metric, or one family of metrics, of the catalogue.

    ``table`` is the docs table it is listed in; ``unit`` one of :data:`UNITS`, ``-`` or a
    phrase for a family of mixed units; ``labels`` its labels besides the standard ones, which
    it carries when ``standard``; ``source`` the kernel file(s) (markdown); ``cgroup`` which
    cgroup arrangement provides it (``v2``, ``v1``, ``both``, ``v2, hybrid`` or ``-``);
    ``description`` one line of plain text (the HELP text); ``derivation`` how it is derived
    (markdown, for the docs only).
    """

    table: str
    name: str
    kind: Kind
    unit: str
    labels: tuple[str, ...] = ()
    standard: bool = False
    source: str = "-"
    cgroup: str = "-"
    description: str = ""
    derivation: str = ""

    @property
    def exact(self) -> bool:
        """Whether the entry stands for known names only (no ``<key>``)."""
        return "<" not in self.name

    @property
    def capture_unit(self) -> str | None:
        """The unit given to :func:`capture.describe` (None for ``-`` or a mix of units)."""
        return self.unit if self.unit in UNITS else None

    def names(self) -> tuple[str, ...]:
        """The names the entry stands for, ``{a,b}`` expanded and ``<key>`` as ``*`` (a
        :func:`capture.describe` pattern)."""
        pieces: list[list[str]] = []
        position = 0
        for match in _PLACEHOLDER.finditer(self.name):
            pieces.append([self.name[position : match.start()]])
            pieces.append(["*"] if match.group(1) else match.group(2).split(","))
            position = match.end()
        pieces.append([self.name[position:]])
        return tuple("".join(parts) for parts in itertools.product(*pieces))

    def pattern(self) -> re.Pattern[str]:
        """A regular expression matching every name of the entry."""
        parts: list[str] = []
        position = 0
        for match in _PLACEHOLDER.finditer(self.name):
            parts.append(re.escape(self.name[position : match.start()]))
            if match.group(1) is not None:
                parts.append(r"[A-Za-z0-9_]+(?:\.[A-Za-z0-9_]+)*")
            else:
                parts.append("(?:" + "|".join(map(re.escape, match.group(2).split(","))) + ")")
            position = match.end()
        parts.append(re.escape(self.name[position:]))
        return re.compile("".join(parts))

    def kind_of(self, name: str) -> Literal["gauge", "counter"]:
        """The kind of metric ``name`` of this entry (by the kernel key for ``by key``)."""
        if self.kind != "by key":
            return self.kind
        key = name.rsplit(".", 1)[-1].removeprefix("total_")
        return "counter" if key.startswith(MEMORY_EVENT_PREFIXES) else "gauge"

    def markdown_row(self) -> str:
        """The entry's row of its docs table."""
        if self.standard:
            labels = ", ".join(["standard", *(f"`{label}`" for label in self.labels)])
        else:
            labels = ", ".join(f"`{label}`" for label in self.labels) or "-"
        text = self.description + ("" if self.description.endswith(".") else ".")
        if self.derivation:
            text = f"{text} {self.derivation}"
        cells = (f"`{self.name}`", self.kind, self.unit, labels, self.source, self.cgroup, text)
        return "| " + " | ".join(cells) + " |"


def _own(table: str, own: capture.Description, labels: tuple[str, ...] = ()) -> Entry:
    """The entry of one of capture's own counters, from capture's description of it."""
    assert own.unit is not None
    return Entry(table, own.name, "counter", own.unit, labels, description=own.description)


#: Every metric finemon writes, in the order of the docs tables.
ENTRIES: tuple[Entry, ...] = (
    Entry(
        "container-cpu",
        "container.cpu.usage_usec",
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
        "container.cpu.usage_millicores",
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
        "container.cpu.usage_percent",
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
        "container.cpu.user_millicores",
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
        "container.cpu.system_millicores",
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
        "container.cpu.user_percent",
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
        "container.cpu.system_percent",
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
        "container.cpu.limit_millicores",
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
        "container.cpu.periods",
        "counter",
        "count",
        standard=True,
        source="`cpu.stat` `nr_periods`",
        cgroup="both",
        description="CFS bandwidth periods elapsed (they count only while a CPU quota is set)",
    ),
    Entry(
        "container-cpu",
        "container.cpu.throttled_periods",
        "counter",
        "count",
        standard=True,
        source="`cpu.stat` `nr_throttled`",
        cgroup="both",
        description="CFS bandwidth periods in which the container was throttled",
    ),
    Entry(
        "container-cpu",
        "container.cpu.throttled_usec",
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
        "container.memory.usage_bytes",
        "gauge",
        "bytes",
        standard=True,
        source="v2 `memory.current`; v1 `memory.usage_in_bytes`",
        cgroup="both",
        description="Memory charged to the container, page cache included",
    ),
    Entry(
        "container-memory",
        "container.memory.working_set_bytes",
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
        "container.memory.rss_bytes",
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
        "container.memory.cache_bytes",
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
        "container.memory.swap_bytes",
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
        "container.memory.limit_bytes",
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
        "container.memory.oom_kills",
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
        "container.memory.oom_events",
        "counter",
        "count",
        standard=True,
        source="`memory.events` `oom`",
        cgroup="v2",
        description="Times the container hit its memory limit and the OOM killer was invoked",
    ),
    Entry(
        "container-memory",
        "container.memory.pss_bytes",
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
        "container.io.read_bytes",
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
        "container.io.write_bytes",
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
        "container.io.read_ops",
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
        "container.io.write_ops",
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
        "container.{cpu,memory,io}.psi.{some,full}.stall_usec",
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
        "container.{cpu,memory,io}.psi.{some,full}.avg10_percent",
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
        "container.pids.current",
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
        "container.processes",
        "gauge",
        "count",
        standard=True,
        source="`cgroup.procs`, `/proc/<pid>/stat`",
        description="Processes finemon tracks in the container",
        derivation=(
            "Listed in `cgroup.procs`, in finemon's PID namespace, and readable this sample"
        ),
    ),
    Entry(
        "process",
        "process.cpu.time_usec",
        "counter",
        "usec",
        labels=("pid", "comm"),
        standard=True,
        source="`/proc/<pid>/stat` `utime` + `stime`",
        description="CPU time (user + system) used by the process",
        derivation="Ticks × 1 000 000 ÷ USER_HZ",
    ),
    Entry(
        "process",
        "process.cpu.usage_millicores",
        "gauge",
        "millicores",
        labels=("pid", "comm"),
        standard=True,
        source="`/proc/<pid>/stat`",
        description="CPU used by the process between two samples, in millicores",
        derivation=(
            "Rate of `utime + stime`, as for containers (first sample a baseline, a drop is a "
            "reset)"
        ),
    ),
    Entry(
        "process",
        "process.cpu.usage_percent",
        "gauge",
        "percent",
        labels=("pid", "comm"),
        standard=True,
        source="`/proc/<pid>/stat` `utime` + `stime`",
        description=(
            "CPU used by the process, in percent of its container's capacity (CPU limit, else "
            "all the node's CPUs)"
        ),
        derivation=(
            "`process.cpu.usage_millicores` ÷ the container's capacity (as for "
            "`container.cpu.usage_percent`) × 100: the processes of a container add up to its "
            "`container.cpu.usage_percent` (less what processes finemon does not see used). "
            "`top`'s %CPU, of one CPU, is `usage_millicores` ÷ 10"
        ),
    ),
    Entry(
        "process",
        "process.cpu.user_percent",
        "gauge",
        "percent",
        labels=("pid", "comm"),
        standard=True,
        source="`/proc/<pid>/stat` `utime`",
        description="CPU used by the process in user mode, in percent of its container's capacity",
        derivation="Rate of `utime` (ticks ÷ USER_HZ, in millicores) ÷ the same capacity × 100",
    ),
    Entry(
        "process",
        "process.cpu.system_percent",
        "gauge",
        "percent",
        labels=("pid", "comm"),
        standard=True,
        source="`/proc/<pid>/stat` `stime`",
        description=(
            "CPU used by the process in kernel mode, in percent of its container's capacity"
        ),
        derivation="As user, of `stime`: time in the kernel on the process's behalf",
    ),
    Entry(
        "process",
        "process.threads",
        "gauge",
        "count",
        labels=("pid", "comm"),
        standard=True,
        source="`/proc/<pid>/stat` `num_threads`",
        description="Threads of the process",
    ),
    Entry(
        "process",
        "process.memory.rss_bytes",
        "gauge",
        "bytes",
        labels=("pid", "comm"),
        standard=True,
        source="`/proc/<pid>/stat` `rss`",
        description="Resident memory of the process",
        derivation="Resident pages × page size (every sample)",
    ),
    Entry(
        "process",
        "process.memory.virtual_bytes",
        "gauge",
        "bytes",
        labels=("pid", "comm"),
        standard=True,
        source="`/proc/<pid>/stat` `vsize`",
        description="Virtual address space size of the process (VmSize)",
        derivation=(
            "As read, every sample (the `VmSize` of `/proc/<pid>/status`). Everything mapped "
            "counts, reserved and never touched included: a size, not a use (0 for a zombie)"
        ),
    ),
    Entry(
        "process",
        "process.memory.pss_bytes",
        "gauge",
        "bytes",
        labels=("pid", "comm"),
        standard=True,
        source="`/proc/<pid>/smaps_rollup` `Pss`",
        description=(
            "Proportional set size of the process: private pages plus each shared page divided "
            "by its sharers"
        ),
        derivation="PSS cadence",
    ),
    Entry(
        "process",
        "process.memory.pss_anon_bytes",
        "gauge",
        "bytes",
        labels=("pid", "comm"),
        standard=True,
        source="`/proc/<pid>/smaps_rollup` `Pss_Anon`",
        description="Anonymous part of the process's PSS",
        derivation="Only when the kernel prints the key",
    ),
    Entry(
        "process",
        "process.memory.pss_file_bytes",
        "gauge",
        "bytes",
        labels=("pid", "comm"),
        standard=True,
        source="`/proc/<pid>/smaps_rollup` `Pss_File`",
        description="File-backed part of the process's PSS",
        derivation="Only when the kernel prints the key",
    ),
    Entry(
        "process",
        "process.memory.pss_shmem_bytes",
        "gauge",
        "bytes",
        labels=("pid", "comm"),
        standard=True,
        source="`/proc/<pid>/smaps_rollup` `Pss_Shmem`",
        description="Shared-memory part of the process's PSS",
        derivation="Only when the kernel prints the key",
    ),
    Entry(
        "process",
        "process.memory.swap_bytes",
        "gauge",
        "bytes",
        labels=("pid", "comm"),
        standard=True,
        source="`/proc/<pid>/smaps_rollup` `Swap`",
        description="Swapped-out memory of the process",
        derivation="PSS cadence",
    ),
    Entry(
        "process",
        "process.memory.swap_pss_bytes",
        "gauge",
        "bytes",
        labels=("pid", "comm"),
        standard=True,
        source="`/proc/<pid>/smaps_rollup` `SwapPss`",
        description="Proportional share of swap of the process",
        derivation="PSS cadence",
    ),
    Entry(
        "process",
        "process.memory.region.pss_bytes",
        "gauge",
        "bytes",
        labels=("pid", "comm", "region"),
        standard=True,
        source="`/proc/<pid>/smaps` `Pss`",
        description="PSS of the process's mappings of one path (the region label)",
        derivation="Only with `--smaps`: summed over the mappings of each path",
    ),
    Entry(
        "process",
        "process.memory.region.rss_bytes",
        "gauge",
        "bytes",
        labels=("pid", "comm", "region"),
        standard=True,
        source="`/proc/<pid>/smaps` `Rss`",
        description="Resident memory of the process's mappings of one path (the region label)",
        derivation="Only with `--smaps`: summed over the mappings of each path",
    ),
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
        "cgroup.io.stat.{rbytes,wbytes,rios,wios,dbytes,dios}",
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
    Entry(
        "cgroup-v1",
        "cgroup.cpuacct.usage",
        "counter",
        "ns",
        standard=True,
        source="`cpuacct.usage`",
        cgroup="v1",
        description="CPU time used by the cgroup's tasks, in nanoseconds",
    ),
    Entry(
        "cgroup-v1",
        "cgroup.cpuacct.stat.{user,system}",
        "counter",
        "ticks",
        standard=True,
        source="`cpuacct.stat`",
        cgroup="v1",
        description="CPU time the cgroup's tasks used in user or kernel mode, in USER_HZ ticks",
    ),
    Entry(
        "cgroup-v1",
        "cgroup.cpu.cfs_quota_us",
        "gauge",
        "usec",
        standard=True,
        source="`cpu.cfs_quota_us`",
        cgroup="v1",
        description="CPU quota per period of the cgroup, in microseconds",
        derivation="`-1` = no limit",
    ),
    Entry(
        "cgroup-v1",
        "cgroup.cpu.cfs_period_us",
        "gauge",
        "usec",
        standard=True,
        source="`cpu.cfs_period_us`",
        cgroup="v1",
        description="CPU bandwidth period of the cgroup, in microseconds",
    ),
    Entry(
        "cgroup-v1",
        "cgroup.cpu.shares",
        "gauge",
        "-",
        standard=True,
        source="`cpu.shares`",
        cgroup="v1",
        description="CPU shares of the cgroup (default 1024)",
    ),
    Entry(
        "cgroup-v1",
        "cgroup.memory.usage_in_bytes",
        "gauge",
        "bytes",
        standard=True,
        source="`memory.usage_in_bytes`",
        cgroup="v1",
        description="Memory charged to the cgroup, in bytes",
    ),
    Entry(
        "cgroup-v1",
        "cgroup.memory.limit_in_bytes",
        "gauge",
        "bytes",
        standard=True,
        source="`memory.limit_in_bytes`",
        cgroup="v1",
        description="Memory limit of the cgroup, in bytes",
        derivation="As read, also when unlimited",
    ),
    Entry(
        "cgroup-v1",
        "cgroup.memory.max_usage_in_bytes",
        "gauge",
        "bytes",
        standard=True,
        source="`memory.max_usage_in_bytes`",
        cgroup="v1",
        description="Highest memory usage of the cgroup, in bytes",
    ),
    Entry(
        "cgroup-v1",
        "cgroup.memory.failcnt",
        "counter",
        "count",
        standard=True,
        source="`memory.failcnt`",
        cgroup="v1",
        description="Times the cgroup's memory usage hit its limit",
    ),
    Entry(
        "cgroup-v1",
        "cgroup.memory.oom_control.oom_kill",
        "counter",
        "count",
        standard=True,
        source="`memory.oom_control`",
        cgroup="v1",
        description="Processes of the cgroup killed by the OOM killer",
    ),
    Entry(
        "cgroup-v1",
        "cgroup.memory.oom_control.{oom_kill_disable,under_oom}",
        "gauge",
        "-",
        standard=True,
        source="`memory.oom_control`",
        cgroup="v1",
        description=(
            "Whether the OOM killer is disabled (oom_kill_disable) or the cgroup is under OOM "
            "(under_oom): 0 or 1"
        ),
    ),
    Entry(
        "cgroup-v1",
        "cgroup.blkio.throttle.io_service_bytes.{read,write,sync,async,discard,total}",
        "counter",
        "bytes",
        labels=("device",),
        standard=True,
        source="`blkio.throttle.io_service_bytes`",
        cgroup="v1",
        description="Bytes transferred on one device, by operation (blkio accounting)",
        derivation="Per device",
    ),
    Entry(
        "cgroup-v1",
        "cgroup.blkio.throttle.io_serviced.{read,write,sync,async,discard,total}",
        "counter",
        "count",
        labels=("device",),
        standard=True,
        source="`blkio.throttle.io_serviced`",
        cgroup="v1",
        description="Operations on one device, by operation (blkio accounting)",
        derivation="Per device",
    ),
    Entry(
        "proc",
        "proc.smaps_rollup.<key>_bytes",
        "gauge",
        "bytes",
        labels=("pid", "comm"),
        standard=True,
        source="`/proc/<pid>/smaps_rollup`",
        description="A line of the process's smaps_rollup, in bytes",
        derivation=(
            "Every line (`rss`, `pss`, `pss_dirty`, `pss_anon`, `pss_file`, `pss_shmem`, "
            "`shared_clean`, `shared_dirty`, `private_clean`, `private_dirty`, `referenced`, "
            "`anonymous`, `ksm`, `lazyfree`, `anonhugepages`, `shmempmdmapped`, `filepmdmapped`, "
            "`shared_hugetlb`, `private_hugetlb`, `swap`, `swappss`, `locked`, as the kernel "
            "prints them), PSS cadence"
        ),
    ),
    Entry(
        "observer-health",
        "finemon.processes",
        "gauge",
        "count",
        source="`/proc/<pid>/stat`",
        description="Processes whose stat finemon read this tick, all containers",
    ),
    Entry(
        "observer-health",
        "finemon.observer.duration_seconds",
        "gauge",
        "seconds",
        description="Wall time of the observer's whole sample (discovery, reads, emission)",
    ),
    Entry(
        "observer-health",
        "finemon.discovery.duration_seconds",
        "gauge",
        "seconds",
        description="Wall time of the cgroup tree scan",
    ),
    Entry(
        "observer-health",
        "finemon.pss.reads",
        "counter",
        "count",
        source="`/proc/<pid>/smaps_rollup`",
        description="PSS readings (smaps_rollup) done",
        derivation="Appears with the first",
    ),
    Entry(
        "observer-health",
        "finemon.pss.deferred",
        "counter",
        "count",
        description="PSS readings that were due but did not fit in the tick's budget",
        derivation="Appears with the first",
    ),
    Entry(
        "daemon",
        "finemon.containers",
        "gauge",
        "count",
        source="discovery",
        description="Containers sampled this tick",
    ),
    Entry(
        "daemon",
        "finemon.containers_skipped",
        "gauge",
        "count",
        labels=("reason",),
        source="discovery",
        description="Cgroups left out this tick, by reason",
        derivation=(
            "Reasons: `empty` (no processes), `pause` (pod sandbox), `conmon` (CRI-O/Podman "
            "monitor), "
            "`not_container` (an unexpected directory where a pod or container was expected), "
            "`vanished` (removed during the scan), `access_denied`, `unreadable` (its "
            "`cgroup.procs` fails with another errno). A `cgroup.procs` line that is no pid is "
            "skipped, the cgroup kept with its other pids, and counted in `finemon.read_errors`"
        ),
    ),
    Entry(
        "daemon",
        "finemon.read_errors",
        "counter",
        "count",
        labels=("reason",),
        source="every file read",
        description="Failed reads and refused values since finemon started, by reason",
        derivation=(
            "Reasons: `vanished`, `access_denied`, `malformed` (content not in the kernel's "
            "format), `out_of_range` (a number no kernel writes in that file: negative where it "
            "prints an unsigned value, above 2^63-1, outside the file's range), `too_large` (a "
            "file longer than its cap of bytes, not parsed), `too_many_series` (values past a "
            "file's cap of series, not written), "
            "`other` (any other errno, or a failed discovery). A bad file counts 1 per reading, "
            "a bad `cgroup.procs` line 1 per line, a value past the series cap 1 per value. A "
            "series appears with its first error; the first error of each reason and file name "
            "is also logged once. See [Bad input](#bad-input)"
        ),
    ),
    Entry(
        "daemon",
        "finemon.self.cpu_millicores",
        "gauge",
        "millicores",
        source="finemon's own CPU time",
        description="CPU used by finemon itself since the previous tick, in millicores",
    ),
    Entry(
        "daemon",
        "finemon.self.rss_bytes",
        "gauge",
        "bytes",
        source="`/proc/self/statm`",
        description="Resident memory of finemon itself",
    ),
    Entry(
        "daemon",
        "finemon.tick.duration_seconds",
        "gauge",
        "seconds",
        description="Time the observer's sample took this tick",
        derivation="Monotonic time of `observer.sample()`",
    ),
    Entry(
        "daemon",
        "finemon.ticks_skipped",
        "counter",
        "count",
        description="Ticks not sampled because a sample overran their boundary",
        derivation="The files repeat the last values for them",
    ),
    Entry(
        "daemon",
        "finemon.write_errors",
        "counter",
        "count",
        description="Failed rotations or publications of finemon's files",
        derivation="The current file goes on",
    ),
    Entry(
        "daemon",
        "finemon.phase",
        "gauge",
        "seconds",
        labels=("phase",),
        source="`finemon mark`",
        description="A phase of the run began: the Unix time of its mark, in seconds",
        derivation=(
            "One series per phase name (the label), from the first tick taken after the mark "
            "on; see docs/experiments.md"
        ),
    ),
    Entry(
        "daemon",
        "finemon.sample_errors",
        "counter",
        "count",
        description="Samples that raised an exception",
        derivation="An observer bug; the recording goes on",
    ),
    Entry(
        "daemon",
        "finemon.size_limit.reached",
        "gauge",
        "-",
        source="output directory size",
        description="1 while finemon idles because its output directory reached the size limit",
        derivation="Only then, in the live view: nothing is recorded while idle",
    ),
    Entry(
        "daemon",
        "finemon.size_limit.used_bytes",
        "gauge",
        "bytes",
        source="output directory size",
        description="Bytes used in the output directory when the size limit was found reached",
        derivation="Idle only",
    ),
    Entry(
        "daemon",
        "finemon.size_limit.limit_bytes",
        "gauge",
        "bytes",
        source="`--size-limit`",
        description="The output directory's size limit (--size-limit)",
        derivation="Idle only",
    ),
    Entry(
        "daemon",
        "finemon.disk_full.reached",
        "gauge",
        "-",
        source="`statvfs` of the output directory",
        description="1 while finemon idles because its output directory's filesystem is full",
        derivation="Only then, in the live view: nothing is recorded while idle",
    ),
    Entry(
        "daemon",
        "finemon.disk_full.free_bytes",
        "gauge",
        "bytes",
        source="`statvfs` of the output directory",
        description="Bytes free on the output directory's filesystem when it was found full",
        derivation="Idle only; -1 when statvfs cannot read it",
    ),
    _own("capture", DROPPED_DESCRIPTION, ("reason",)),
    _own("capture", MISSED_TICKS_DESCRIPTION),
    _own("capture", WRITE_ERRORS_DESCRIPTION, ("stage",)),
)


def entry_for(name: str, entries: Iterable[Entry] = ENTRIES) -> Entry | None:
    """The most specific entry of metric ``name``: an exact one, else the family with the
    longest literal text; None when it is not catalogued."""
    matches = [entry for entry in entries if entry.pattern().fullmatch(name)]
    if not matches:
        return None
    return max(matches, key=lambda e: (e.exact, len(_PLACEHOLDER.sub("", e.name))))


def describe(entries: Iterable[Entry]) -> None:
    """Give the description and unit of each of ``entries`` to :func:`capture.describe` (a
    family as a ``*`` pattern)."""
    for entry in entries:
        for name in entry.names():
            capture.describe(name, entry.description, entry.capture_unit)


def describe_observer_metrics() -> None:
    """Describe the metrics the node observer writes (the tables of :data:`OBSERVER_TABLES`)."""
    describe(entry for entry in ENTRIES if entry.table in OBSERVER_TABLES)


#: The entries ``finemon run --prometheus-series default`` serves (``all`` serves every metric):
#: per container the headline series a dashboard charts (CPU and throttling, memory with the
#: working set, RSS and PSS summed over its processes, OOM kills, PSI, IO, pids), at most 30;
#: never a process's series nor a raw ``cgroup.*``/``proc.*`` key.
PROMETHEUS_DEFAULT_ENTRIES = frozenset(
    {
        "container.cpu.usage_usec",
        "container.cpu.usage_millicores",
        "container.cpu.limit_millicores",
        "container.cpu.periods",
        "container.cpu.throttled_periods",
        "container.cpu.throttled_usec",
        "container.memory.usage_bytes",
        "container.memory.working_set_bytes",
        "container.memory.rss_bytes",
        "container.memory.cache_bytes",
        "container.memory.swap_bytes",
        "container.memory.limit_bytes",
        "container.memory.pss_bytes",
        "container.memory.oom_kills",
        "container.memory.oom_events",
        "container.io.read_bytes",
        "container.io.write_bytes",
        "container.io.read_ops",
        "container.io.write_ops",
        "container.{cpu,memory,io}.psi.{some,full}.stall_usec",
        "container.pids.current",
        "container.processes",
    }
)
#: The tables whose every entry is in the default set too: finemon's own health, per node.
PROMETHEUS_DEFAULT_TABLES = frozenset({"observer-health", DAEMON_TABLE, CAPTURE_TABLE})


def in_prometheus_default(name: str) -> bool:
    """Whether metric ``name`` is in ``--prometheus-series default`` (an uncatalogued name is
    not)."""
    entry = entry_for(name)
    return entry is not None and (
        entry.name in PROMETHEUS_DEFAULT_ENTRIES or entry.table in PROMETHEUS_DEFAULT_TABLES
    )


def prometheus_default_markdown() -> str:
    """The docs list of the default series set: each name as Prometheus sees it and as stored."""
    rows = [
        "| Prometheus name | Kind | Unit | Name in the files |\n",
        "| --- | --- | --- | --- |\n",
    ]
    per_container = 0
    for entry in ENTRIES:
        if entry.name not in PROMETHEUS_DEFAULT_ENTRIES:
            continue
        for name in entry.names():
            per_container += 1
            exposed = exposed_sample_name(entry.kind_of(name), name)
            rows.append(f"| `{exposed}` | {entry.kind} | {entry.unit} | `{name}` |\n")
    rows.append(
        f"\n{per_container} series per container and, once per node, finemon's own health: "
        "every metric of the tables [finemon health "
        "(observer)](metrics.md#finemon-health-observer), [finemon daemon]"
        "(metrics.md#finemon-daemon) and [capture](metrics.md#capture).\n"
    )
    return "".join(rows)


#: Generated lists besides the tables, by marker name (``<!-- catalogue-list: NAME -->``, in
#: any docs page).
LISTS = {"prometheus-default": prometheus_default_markdown}


def render_lists(text: str) -> str:
    """``text`` with each marked list replaced by the catalogue's; ValueError for an unknown
    list."""
    unknown = sorted({m.group(2) for m in _LISTED.finditer(text)} - set(LISTS))
    if unknown:
        raise ValueError(f"unknown lists: {unknown}")
    return _LISTED.sub(lambda m: m.group(1) + LISTS[m.group(2)]() + m.group(4), text)


def markdown_table(table: str) -> str:
    """The docs table ``table`` (header and one row per entry, each line ending in a newline).

    Raises ValueError for a table that is not in :data:`TABLES`.
    """
    if table not in TABLES:
        raise ValueError(f"no catalogue table {table!r}")
    rows = [entry.markdown_row() for entry in ENTRIES if entry.table == table]
    return _HEADER + "".join(f"{row}\n" for row in rows)


def render_markdown(text: str) -> str:
    """``text`` (docs/metrics.md) with each marked table replaced by the catalogue's.

    Raises ValueError when a table of :data:`TABLES` is not marked exactly once, or a marker
    names an unknown table.
    """
    found = [match.group(2) for match in _MARKED.finditer(text)]
    missing = [table for table in TABLES if found.count(table) != 1]
    unknown = sorted(set(found) - set(TABLES))
    if missing or unknown:
        raise ValueError(f"tables not marked exactly once: {missing}; unknown tables: {unknown}")
    return render_lists(
        _MARKED.sub(
            lambda m: m.group(1) + markdown_table(m.group(2)) + m.group(4),
            text,
        )
    )


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m observers.catalogue``: print the tables, or write or check the docs."""
    parser = argparse.ArgumentParser(
        prog="python -m observers.catalogue",
        description="The catalogue of finemon's metrics as markdown tables.",
    )
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--markdown", action="store_true", help="print every table")
    group.add_argument(
        "--write", type=Path, metavar="FILE", help="rewrite the marked tables of FILE"
    )
    group.add_argument(
        "--check", type=Path, metavar="FILE", help="exit 1 if the tables of FILE are not current"
    )
    args = parser.parse_args(argv)
    if args.markdown:
        for table in TABLES:
            sys.stdout.write(f"<!-- catalogue: {table} -->\n{markdown_table(table)}")
            sys.stdout.write("<!-- /catalogue -->\n\n")
        return 0
    path: Path = args.write or args.check
    try:
        text = path.read_text(encoding="utf-8")
        # A page without tables (docs/prometheus.md) may hold lists.
        rendered = render_markdown(text) if _MARKED.search(text) else render_lists(text)
    except (OSError, ValueError) as exc:
        print(f"{path}: {exc}", file=sys.stderr)
        return 2
    if args.check:
        if rendered != text:
            print(
                f"{path}: the metric tables differ from the catalogue; run "
                f"python -m observers.catalogue --write {path}",
                file=sys.stderr,
            )
            return 1
        return 0
    if rendered != text:
        path.write_text(rendered, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
