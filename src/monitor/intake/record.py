"""Reported series into the capture: every point at its own timestamp, as ``target.<metric>``.

The mapping (one place for it):

- the name is ``target.<metric>``;
- the labels come from the tags, ``key:value`` as ``key=value`` and a bare tag as
  ``tag.<tag>=true`` (a key given twice keeps its values, sorted and joined by ``,``), plus
  ``host`` and ``source_type_name`` when sent, and ``device`` (the v1 field, or the v2
  resource) or ``resource.<type>`` for the other v2 resources. A tag key that is a column of
  the files other than a container's (``run_id``, ``time``, ``metric_name``, ..., the run's
  ``node_name`` and ``cluster_name``) becomes ``tag.<key>``. A ``container_id`` tag fills the
  ``container_id`` column, the column the node observer fills from the container's cgroup
  (the runtime's full id; a ``<runtime>://`` prefix is dropped), so the agent's rows and the
  kernel's join on it; so do ``pod_name`` and ``namespace`` tags;
- GAUGE becomes a gauge ``set``, COUNT a counter increment (the capture's counters count
  whole units: a fractional count carries its remainder to the series' next point, so the
  total stays within 1 of the reported sum), RATE a gauge ``set`` of the rate;
- each point goes through :func:`capture.historical.write_batch` at its own timestamp (a
  request's points in a few batches): it lands in the tick that holds it, and a point older
  than the window or in the future is dropped and counted by the capture under its own
  reasons (``capture.dropped{reason=too_old|future}``).

What the writer drops itself is counted in ``finemon.intake.points_dropped{reason}``:
``too_many_series`` (a new series past ``max_series``), ``negative_count`` (a COUNT point
below 0), ``non_finite`` (NaN or infinite), ``rejected`` (the capture refused the write, e.g.
a metric name reported as a gauge and then as a count).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

import capture
from capture.historical import BatchOutcome, DelayedPoint
from common.contract import FIXED_COLUMNS, GLOBAL_LABEL_COLUMNS, LABELS_MAP_COLUMN
from monitor.intake.decode import (
    CHECKPOINT_SERIES,
    Checkpoint,
    ReportedSeries,
    ReportedSketch,
    no_checkpoint,
)

log = logging.getLogger("finemon.intake")

#: Prefix of every metric the intake and the target scrapes write.
TARGET_PREFIX: Final = "target."
#: Label keys a tag cannot take (they name a column that is not a container's).
RESERVED_KEYS: Final = frozenset({*FIXED_COLUMNS, LABELS_MAP_COLUMN, *GLOBAL_LABEL_COLUMNS})
#: The default of ``--intake-max-series``.
DEFAULT_MAX_SERIES: Final = 50_000
#: Points handed to the capture in one batch (whole series: a request's last batch, or one
#: long series, may hold more); a checkpoint comes between two.
BATCH_POINTS: Final = 2048
#: Seconds between two log lines about dropped points.
LOG_EVERY_SECONDS: Final = 60.0

POINTS_DROPPED: Final = "finemon.intake.points_dropped"
POINTS_RECEIVED: Final = "finemon.intake.points_received"
SERIES: Final = "finemon.intake.series"

Labels = tuple[tuple[str, str], ...]


def _container_id(value: str) -> str:
    return value.rpartition("://")[2]


def series_labels(
    tags: Iterable[str],
    host: str = "",
    source_type_name: str = "",
    resources: Iterable[tuple[str, str]] = (),
) -> dict[str, str]:
    """The labels of a reported series (see the module's docstring for the rules)."""
    values: dict[str, set[str]] = {}
    for tag in tags:
        key, colon, value = tag.partition(":")
        if not colon or not key:
            key, value = f"tag.{tag}", "true"
        elif key in RESERVED_KEYS:
            key = f"tag.{key}"
        elif key == "container_id":
            value = _container_id(value)
        values.setdefault(key, set()).add(value)
    labels = {key: ",".join(sorted(found)) for key, found in values.items()}
    for rtype, rname in resources:
        if rtype and rname:
            labels["device" if rtype == "device" else f"resource.{rtype}"] = rname
    if host:
        labels["host"] = host
    if source_type_name:
        labels["source_type_name"] = source_type_name
    return labels


@dataclass(slots=True)
class WriterStats:
    """What the writer did since it started (for the manifest and the log)."""

    points_received: int = 0
    points_written: int = 0
    points_dropped: dict[str, int] = field(default_factory=dict)
    series: int = 0
    #: The latest timestamp (Unix seconds) handed to the capture, None before the first.
    latest_timestamp: float | None = None


class IntakeWriter:
    """Writes reported series through :func:`capture.historical.write_batch`, a request's points
    in batches of about BATCH_POINTS (thread-safe as the capture is; one writer per process).
    ``max_series`` bounds the distinct series (name and labels) it writes: points of a series
    past it are dropped and counted."""

    def __init__(self, max_series: int = DEFAULT_MAX_SERIES) -> None:
        if max_series < 1:
            raise ValueError(f"max_series must be at least 1, got {max_series}")
        self.max_series = max_series
        self.stats = WriterStats()
        self._series: set[tuple[str, Labels]] = set()
        # Labels by what they are made from: an agent sends the same tags every interval.
        self._labels: dict[tuple[object, ...], dict[str, str]] = {}
        # The items of each labels mapping made here, by its id (the mappings live in _labels):
        # a series' key without a tuple of its labels a point.
        self._label_items: dict[int, Labels] = {}
        # Fractional remainders of COUNT points, by series.
        self._carry: dict[tuple[str, Labels], float] = {}
        self._logged_at: dict[str, float] = {}

    # ------------------------------------------------------------------ public
    def write(self, batch: Iterable[ReportedSeries], checkpoint: Checkpoint = no_checkpoint) -> int:
        """Write every point of ``batch``; returns how many were handed to the capture (the
        capture may still drop some as too old or in the future). ``checkpoint`` is called
        every CHECKPOINT_SERIES series and between the capture batches (see
        :data:`monitor.intake.decode.Checkpoint`)."""
        points = _Points(self, checkpoint)
        for index, series in enumerate(batch):
            if index % CHECKPOINT_SERIES == CHECKPOINT_SERIES - 1:
                checkpoint()
            points.received += len(series.points)
            labels = self._labels_of(
                series.tags, series.host, series.source_type_name, series.resources
            )
            name = TARGET_PREFIX + series.metric
            kind = series.kind
            for timestamp, value in series.points:
                self._add(points, kind, name, labels, timestamp, value)
            points.series_done()
        return points.finish()

    def write_sketches(
        self, batch: Iterable[ReportedSketch], checkpoint: Checkpoint = no_checkpoint
    ) -> int:
        """Write each sketch point's count (``target.<metric>.count``, a counter increment)
        and its sum, min and max (gauges ``.sum``, ``.min``, ``.max``); returns the points
        handed to the capture (four per sketch point)."""
        points = _Points(self, checkpoint)
        for index, sketch in enumerate(batch):
            if index % CHECKPOINT_SERIES == CHECKPOINT_SERIES - 1:
                checkpoint()
            labels = self._labels_of(sketch.tags, sketch.host, "", ())
            base = f"{TARGET_PREFIX}{sketch.metric}"
            for ts, count, total, low, high in sketch.points:
                points.received += 4
                self._add(points, "count", f"{base}.count", labels, ts, float(count))
                self._add(points, "gauge", f"{base}.sum", labels, ts, total)
                self._add(points, "gauge", f"{base}.min", labels, ts, low)
                self._add(points, "gauge", f"{base}.max", labels, ts, high)
            points.series_done()
        return points.finish()

    # ------------------------------------------------------------------ one series
    def _labels_of(
        self,
        tags: tuple[str, ...],
        host: str,
        source_type_name: str,
        resources: tuple[tuple[str, str], ...],
    ) -> dict[str, str]:
        key = (tags, host, source_type_name, resources)
        labels = self._labels.get(key)
        if labels is None:
            if len(self._labels) >= self.max_series:
                self._labels.clear()
                self._label_items.clear()
            labels = self._labels[key] = series_labels(tags, host, source_type_name, resources)
            self._label_items[id(labels)] = tuple(labels.items())
        return labels

    def _add(
        self,
        points: _Points,
        kind: str,
        name: str,
        labels: Mapping[str, str],
        timestamp: float,
        value: float,
    ) -> None:
        """Add one point to ``points``, or drop it (counted)."""
        if not (math.isfinite(value) and math.isfinite(timestamp)):
            self._drop("non_finite", name)
            return
        items = self._label_items.get(id(labels))
        key = (name, tuple(labels.items()) if items is None else items)
        if key not in self._series:
            if len(self._series) >= self.max_series:
                self._drop("too_many_series", name)
                return
            self._series.add(key)
            self.stats.series = len(self._series)
            capture.gauge(SERIES).set(len(self._series))
        if kind == "count":
            if value < 0:
                self._drop("negative_count", name)
                return
            total = self._carry.get(key, 0.0) + value
            whole = math.floor(total)
            self._carry[key] = total - whole
            points.add(("counter", "increment", name, labels, whole, timestamp))
        else:
            points.add(("gauge", "set", name, labels, value, timestamp))

    def _written(self, points: Sequence[DelayedPoint], outcome: BatchOutcome) -> int:
        """Count what the capture made of ``points``; returns the points it took (not
        rejected)."""
        for index, why in outcome.rejected:
            self._drop("rejected", f"{points[index][2]}: {why}")
        rejected = {index for index, _ in outcome.rejected}
        stats = self.stats
        latest = stats.latest_timestamp
        for index, point in enumerate(points):
            timestamp = point[5]
            if (latest is None or timestamp > latest) and index not in rejected:
                latest = timestamp
        stats.latest_timestamp = latest
        written = len(points) - len(rejected)
        stats.points_written += written
        return written

    # ------------------------------------------------------------------ counts
    def _received(self, count: int) -> None:
        if count:
            self.stats.points_received += count
            capture.counter(POINTS_RECEIVED).increment(count)

    def _drop(self, reason: str, what: str) -> int:
        dropped = self.stats.points_dropped
        dropped[reason] = dropped.get(reason, 0) + 1
        capture.counter(POINTS_DROPPED, {"reason": reason}).increment()
        now = time.monotonic()
        last = self._logged_at.get(reason)
        if last is None or now - last >= LOG_EVERY_SECONDS:
            self._logged_at[reason] = now
            log.warning(
                "intake: point dropped reason=%s (%s); %d so far, logged at most once a minute",
                reason,
                what,
                dropped[reason],
            )
        return 0


class _Points:
    """The points of one request on their way to the capture, in batches of about
    BATCH_POINTS (whole series), a checkpoint between two."""

    __slots__ = ("_checkpoint", "_pending", "_writer", "received", "written")

    def __init__(self, writer: IntakeWriter, checkpoint: Checkpoint) -> None:
        self._writer = writer
        self._checkpoint = checkpoint
        self._pending: list[DelayedPoint] = []
        self.received = 0
        self.written = 0

    def add(self, point: DelayedPoint) -> None:
        self._pending.append(point)

    def series_done(self) -> None:
        """A series ended: send the batch if it is full (a series is never split)."""
        if len(self._pending) >= BATCH_POINTS:
            self._send()
            self._checkpoint()

    def _send(self) -> None:
        pending, self._pending = self._pending, []
        if pending:
            self.written += self._writer._written(pending, capture.historical.write_batch(pending))

    def finish(self) -> int:
        """Send what is left, count what was received; returns the points written."""
        self._send()
        self._writer._received(self.received)
        return self.written
