"""One entry of the catalogue, and the kind rule of the kernel keys finemon passes through."""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from typing import Literal

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
#: The beginnings of the ``memory.stat`` keys that count events (pages or occurrences since the
#: cgroup was created): counters. Every other key is an amount of bytes: a gauge. From the keys
#: Documentation/admin-guide/cgroup-v2.rst lists: ``pg*`` (faults, scans, steals, demotions,
#: promotions), ``workingset_*``, ``thp_*`` (the ``*_thp`` amounts end, not begin, with it),
#: ``zswpin``/``zswpout``/``zswpwb`` (not the ``zswap``/``zswapped`` amounts nor the
#: ``zswap_incomp`` page count), ``pswpin``/``pswpout``, ``swpin_zero``/``swpout_zero`` and
#: ``numa_pages_migrated``/``numa_pte_updates``/``numa_hint_faults`` (NUMA balancing;
#: memory.stat has no ``numa_`` amount). On v1 the same keys also come in their hierarchical
#: ``total_`` form.
MEMORY_EVENT_PREFIXES = ("pg", "workingset_", "thp_", "zswp", "pswp", "swpin", "swpout", "numa_")
#: The ``io.stat`` keys that count bytes and operations (counters, in this order); every other
#: key of a device line is an I/O controller's statistic (a gauge).
IO_COUNTER_KEYS = ("rbytes", "wbytes", "rios", "wios", "dbytes", "dios")

_MEMORY_EVENT_PREFIXES_V1_TOTAL = tuple(f"total_{p}" for p in MEMORY_EVENT_PREFIXES)
_PLACEHOLDER = re.compile(r"<([a-z_]+)>|\{([^}]+)\}")


def is_memory_event_key(key: str) -> bool:
    """Whether ``memory.stat`` key ``key`` (v2, v1 or v1 ``total_``) counts events: a counter."""
    return key.startswith(MEMORY_EVENT_PREFIXES) or key.startswith(_MEMORY_EVENT_PREFIXES_V1_TOTAL)


def literal_text_length(name: str) -> int:
    """How many characters of an entry name are literal (not ``{a,b}`` nor ``<key>``)."""
    return len(_PLACEHOLDER.sub("", name))


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
        return "counter" if is_memory_event_key(name.rsplit(".", 1)[-1]) else "gauge"

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
