"""Every entry of the catalogue, in the order of the docs tables, and the lookups by name."""

from __future__ import annotations

from collections.abc import Iterable

import capture
from common.catalogue import cgroup_v1, cgroup_v2, container, health, proc, process
from common.catalogue.entry import Entry, literal_text_length
from common.catalogue.health import CAPTURE_TABLE, DAEMON_TABLE

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
    DAEMON_TABLE,
    CAPTURE_TABLE,
)
#: The tables of the metrics the node observer writes.
OBSERVER_TABLES = frozenset(TABLES) - {DAEMON_TABLE, CAPTURE_TABLE}

#: Every metric finemon writes, in the order of the docs tables.
ENTRIES: tuple[Entry, ...] = (
    *container.ENTRIES,
    *process.ENTRIES,
    *cgroup_v2.ENTRIES,
    *cgroup_v1.ENTRIES,
    *proc.ENTRIES,
    *health.ENTRIES,
)


def entry_for(name: str, entries: Iterable[Entry] = ENTRIES) -> Entry | None:
    """The most specific entry of metric ``name``: an exact one, else the family with the
    longest literal text; None when it is not catalogued."""
    matches = [entry for entry in entries if entry.pattern().fullmatch(name)]
    if not matches:
        return None
    return max(matches, key=lambda e: (e.exact, literal_text_length(e.name)))


def describe(entries: Iterable[Entry]) -> None:
    """Give the description and unit of each of ``entries`` to :func:`capture.describe` (a
    family as a ``*`` pattern)."""
    for entry in entries:
        for name in entry.names():
            capture.describe(name, entry.description, entry.capture_unit)


def describe_observer_metrics() -> None:
    """Describe the metrics the node observer writes (the tables of :data:`OBSERVER_TABLES`)."""
    describe(entry for entry in ENTRIES if entry.table in OBSERVER_TABLES)
