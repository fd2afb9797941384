"""A live Prometheus view of a recorder's current values.

``CaptureCollector`` is a prometheus_client collector: each scrape reads the live value of every
series of the recorder (no copy is kept between scrapes, so series that come and go simply
appear and disappear). Names are sanitized to Prometheus rules (``container.cpu.usage_millicores``
becomes ``container_cpu_usage_millicores``); counters are exposed with the ``_total`` suffix.

A metric's HELP text is its description (:func:`capture.describe`), else a generic
``capture <kind> <name>``. Its unit is exposed as ``# UNIT`` in the OpenMetrics format (served
to scrapers that ask for it, as Prometheus does) when the metric's name ends with it
(``container_memory_usage_bytes``: ``bytes``), as OpenMetrics requires; the unit of a name
that does not end with it is only in the description and the files' metadata, so that no
metric is renamed.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from threading import Thread
from typing import Any

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from capture import facade
from capture.descriptions import Description
from capture.registry import CaptureRecorder, SeriesInfo

_INVALID_NAME = re.compile(r"[^a-zA-Z0-9_:]")
_INVALID_LABEL = re.compile(r"[^a-zA-Z0-9_]")


def sanitize_metric_name(name: str) -> str:
    """``name`` with every character outside ``[a-zA-Z0-9_:]`` replaced by ``_``."""
    clean = _INVALID_NAME.sub("_", name)
    return clean if not clean[:1].isdigit() else f"_{clean}"


def sanitize_label_name(name: str) -> str:
    """``name`` with every character outside ``[a-zA-Z0-9_]`` replaced by ``_``."""
    clean = _INVALID_LABEL.sub("_", name)
    if clean[:1].isdigit():
        clean = f"_{clean}"
    return f"x{clean}" if clean.startswith("__") else clean


def help_and_unit(kind: str, name: str, description: Description | None) -> tuple[str, str]:
    """The HELP text and the OpenMetrics unit ('' for none) of metric ``name`` of ``kind``."""
    if description is None:
        return f"capture {kind} {name}", ""
    unit = sanitize_label_name(description.unit) if description.unit else ""
    # prometheus_client appends a unit the name does not end with: that would rename the metric.
    if unit and not sanitize_metric_name(name).endswith(f"_{unit}"):
        unit = ""
    return description.description, unit


class CaptureCollector(Collector):
    """Exposes the live values of ``recorder`` (default: the installed one) on each scrape."""

    def __init__(self, recorder: CaptureRecorder | None = None) -> None:
        self._recorder = recorder

    def _current(self) -> CaptureRecorder | None:
        if self._recorder is not None:
            return self._recorder
        installed = facade.get_recorder()
        return installed if isinstance(installed, CaptureRecorder) else None

    def collect(self) -> Iterator[Metric]:
        recorder = self._current()
        if recorder is None:
            return
        global_labels = dict(recorder.global_labels)
        groups: dict[tuple[str, str], list[SeriesInfo]] = {}
        for handle in recorder.live_handles():
            groups.setdefault((handle.kind, handle.name), []).append(handle)
        for (kind, name), handles in sorted(groups.items()):
            keys: dict[str, None] = dict.fromkeys(sanitize_label_name(k) for k in global_labels)
            rows: list[tuple[dict[str, str], float]] = []
            for handle in handles:
                value = handle.value
                if value is None:
                    continue
                labels = {sanitize_label_name(k): v for k, v in global_labels.items()}
                labels.update((sanitize_label_name(k), v) for k, v in handle.labels)
                keys.update(dict.fromkeys(labels))
                rows.append((labels, float(value)))
            label_names = list(keys)
            family: GaugeMetricFamily | CounterMetricFamily
            metric = sanitize_metric_name(name)
            doc, unit = help_and_unit(kind, name, recorder.description(name))
            if kind == "gauge":
                family = GaugeMetricFamily(metric, doc, labels=label_names, unit=unit)
            else:
                family = CounterMetricFamily(metric, doc, labels=label_names, unit=unit)
            for labels, value in rows:
                family.add_metric([labels.get(k, "") for k in label_names], value)
            yield family


def start_http_endpoint(
    port: int, addr: str = "0.0.0.0", recorder: CaptureRecorder | None = None
) -> tuple[Any, Thread]:
    """Serve ``/metrics`` with the live values on ``addr:port``; returns (server, thread).

    Raises OSError when the port cannot be bound. Stop it with ``server.shutdown()``.
    """
    registry = CollectorRegistry(auto_describe=False)
    registry.register(CaptureCollector(recorder))
    server, thread = start_http_server(port, addr=addr, registry=registry)
    return server, thread
