"""The catalogue of every metric finemon writes: name, kind, unit, labels, source, description.

One :class:`Entry` per metric, or per family of raw pass-through metrics whose names hold the
kernel's keys (``cgroup.memory.stat.<key>``), in one module per docs table or group of tables:
:mod:`~common.catalogue.container` (the derived ``container.*``), ``process``, ``cgroup_v2``,
``cgroup_v1``, ``proc`` and ``health`` (finemon's own). It is the single source of:

- each metric's kind, unit and description, and the kind rule of the raw keys
  (:func:`is_memory_event_key`), read by the sampler, the daemon and the analysis;
- the descriptions and units given to :func:`capture.describe` (the Prometheus HELP and UNIT
  lines, the ``capture.metrics`` metadata of every file): the node observer describes the
  observer's entries when it starts, ``finemon run`` its own (:mod:`monitor.selfstats`), and
  capture describes its own counters itself (their entries here take its text);
- the series of ``--prometheus-series default`` (:mod:`~common.catalogue.prometheus`);
- the metric tables of ``docs/metrics.md`` (:mod:`~common.catalogue.docs`, ``python -m
  common.catalogue --write docs/metrics.md``).

``tests/observers/test_catalogue.py`` checks that what the observer emits on fixture trees is
catalogued with its kind and labels, and that the document holds exactly these tables.

Name syntax: ``{a,b}`` stands for each of the listed names, ``<key>`` for any key the kernel
prints (dots included: ``core_sched.force_idle_usec``).

It sits in ``common`` so that the observers, the daemon and the analysis all read it; it takes
capture's descriptions of capture's own counters, as capture imports nothing of ours.
"""

from common.catalogue.entry import (
    IO_COUNTER_KEYS,
    MEMORY_EVENT_PREFIXES,
    STANDARD_LABELS,
    UNITS,
    Entry,
    Kind,
    is_memory_event_key,
)
from common.catalogue.health import CAPTURE_TABLE, DAEMON_TABLE
from common.catalogue.index import (
    ENTRIES,
    OBSERVER_TABLES,
    TABLES,
    describe,
    describe_observer_metrics,
    entry_for,
)
from common.catalogue.prometheus import (
    PROMETHEUS_DEFAULT_ENTRIES,
    PROMETHEUS_DEFAULT_TABLES,
    in_prometheus_default,
    prometheus_default_labels,
)

__all__ = [
    "CAPTURE_TABLE",
    "DAEMON_TABLE",
    "ENTRIES",
    "IO_COUNTER_KEYS",
    "MEMORY_EVENT_PREFIXES",
    "OBSERVER_TABLES",
    "PROMETHEUS_DEFAULT_ENTRIES",
    "PROMETHEUS_DEFAULT_TABLES",
    "STANDARD_LABELS",
    "TABLES",
    "UNITS",
    "Entry",
    "Kind",
    "describe",
    "describe_observer_metrics",
    "entry_for",
    "in_prometheus_default",
    "prometheus_default_labels",
    "is_memory_event_key",
]
