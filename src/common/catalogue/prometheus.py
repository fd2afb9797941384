"""The series ``finemon run --prometheus-series default`` serves, and their docs list."""

from __future__ import annotations

from typing import Final

from capture.exposition import exposed_sample_name
from capture.keys import LabelTuple
from common.catalogue import container
from common.catalogue.health import CAPTURE_TABLE, DAEMON_TABLE
from common.catalogue.index import ENTRIES, entry_for

#: The entries ``finemon run --prometheus-series default`` serves (``all`` serves every metric):
#: per container the headline series a dashboard charts (CPU and throttling, memory with the
#: working set, RSS and PSS summed over its processes, OOM kills, PSI, IO, pids), at most 30;
#: never a process's series nor a raw ``cgroup.*``/``proc.*`` key.
PROMETHEUS_DEFAULT_ENTRIES = frozenset(
    {
        container.CONTAINER_CPU_USAGE_USEC,
        container.CONTAINER_CPU_USAGE_MILLICORES,
        container.CONTAINER_CPU_LIMIT_MILLICORES,
        container.CONTAINER_CPU_PERIODS,
        container.CONTAINER_CPU_THROTTLED_PERIODS,
        container.CONTAINER_CPU_THROTTLED_USEC,
        container.CONTAINER_MEMORY_USAGE_BYTES,
        container.CONTAINER_MEMORY_WORKING_SET_BYTES,
        container.CONTAINER_MEMORY_RSS_BYTES,
        container.CONTAINER_MEMORY_CACHE_BYTES,
        container.CONTAINER_MEMORY_SWAP_BYTES,
        container.CONTAINER_MEMORY_LIMIT_BYTES,
        container.CONTAINER_MEMORY_PSS_BYTES,
        container.CONTAINER_MEMORY_OOM_KILLS,
        container.CONTAINER_MEMORY_OOM_EVENTS,
        container.CONTAINER_IO_READ_BYTES,
        container.CONTAINER_IO_WRITE_BYTES,
        container.CONTAINER_IO_READ_OPS,
        container.CONTAINER_IO_WRITE_OPS,
        container.CONTAINER_PSI_STALL_USEC_FAMILY,
        container.CONTAINER_PIDS_CURRENT,
        container.CONTAINER_PROCESSES,
    }
)
#: The tables whose every entry is in the default set too: finemon's own health, per node.
PROMETHEUS_DEFAULT_TABLES = frozenset({"observer-health", DAEMON_TABLE, CAPTURE_TABLE})


#: Labels the default Prometheus set leaves out of a series that has a ``container_id`` (which
#: tells containers apart on its own): the pod's UID, as cAdvisor's container series do.
PROMETHEUS_DEFAULT_DROPPED_LABELS: Final = frozenset({"pod_uid"})


def prometheus_default_labels(labels: LabelTuple) -> LabelTuple:
    """The labels a series of ``labels`` has in ``--prometheus-series default``: all, but those of
    :data:`PROMETHEUS_DEFAULT_DROPPED_LABELS` when a ``container_id`` is among them."""
    if not any(key == "container_id" for key, _ in labels):
        return labels
    return tuple((k, v) for k, v in labels if k not in PROMETHEUS_DEFAULT_DROPPED_LABELS)


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
