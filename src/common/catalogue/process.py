"""The metrics of each process of a container (``process.*``), from ``/proc/<pid>``."""

# ruff: noqa: RUF001 - the typographic multiplication and minus signs of the docs are meant

from __future__ import annotations

from common.catalogue.entry import Entry

#: The names of its metrics.
PROCESS_CPU_TIME_USEC = "process.cpu.time_usec"
PROCESS_CPU_USAGE_MILLICORES = "process.cpu.usage_millicores"
PROCESS_CPU_USAGE_PERCENT = "process.cpu.usage_percent"
PROCESS_CPU_USER_PERCENT = "process.cpu.user_percent"
PROCESS_CPU_SYSTEM_PERCENT = "process.cpu.system_percent"
PROCESS_THREADS = "process.threads"
PROCESS_MEMORY_RSS_BYTES = "process.memory.rss_bytes"
PROCESS_MEMORY_VIRTUAL_BYTES = "process.memory.virtual_bytes"
PROCESS_MEMORY_PSS_BYTES = "process.memory.pss_bytes"
PROCESS_MEMORY_PSS_ANON_BYTES = "process.memory.pss_anon_bytes"
PROCESS_MEMORY_PSS_FILE_BYTES = "process.memory.pss_file_bytes"
PROCESS_MEMORY_PSS_SHMEM_BYTES = "process.memory.pss_shmem_bytes"
PROCESS_MEMORY_SWAP_BYTES = "process.memory.swap_bytes"
PROCESS_MEMORY_SWAP_PSS_BYTES = "process.memory.swap_pss_bytes"
PROCESS_MEMORY_REGION_PSS_BYTES = "process.memory.region.pss_bytes"
PROCESS_MEMORY_REGION_RSS_BYTES = "process.memory.region.rss_bytes"

#: In the order of the docs tables.
ENTRIES: tuple[Entry, ...] = (
    Entry(
        "process",
        PROCESS_CPU_TIME_USEC,
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
        PROCESS_CPU_USAGE_MILLICORES,
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
        PROCESS_CPU_USAGE_PERCENT,
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
        PROCESS_CPU_USER_PERCENT,
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
        PROCESS_CPU_SYSTEM_PERCENT,
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
        PROCESS_THREADS,
        "gauge",
        "count",
        labels=("pid", "comm"),
        standard=True,
        source="`/proc/<pid>/stat` `num_threads`",
        description="Threads of the process",
    ),
    Entry(
        "process",
        PROCESS_MEMORY_RSS_BYTES,
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
        PROCESS_MEMORY_VIRTUAL_BYTES,
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
        PROCESS_MEMORY_PSS_BYTES,
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
        PROCESS_MEMORY_PSS_ANON_BYTES,
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
        PROCESS_MEMORY_PSS_FILE_BYTES,
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
        PROCESS_MEMORY_PSS_SHMEM_BYTES,
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
        PROCESS_MEMORY_SWAP_BYTES,
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
        PROCESS_MEMORY_SWAP_PSS_BYTES,
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
        PROCESS_MEMORY_REGION_PSS_BYTES,
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
        PROCESS_MEMORY_REGION_RSS_BYTES,
        "gauge",
        "bytes",
        labels=("pid", "comm", "region"),
        standard=True,
        source="`/proc/<pid>/smaps` `Rss`",
        description="Resident memory of the process's mappings of one path (the region label)",
        derivation="Only with `--smaps`: summed over the mappings of each path",
    ),
)
