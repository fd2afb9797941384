"""A file's summary, kept in its footer: what a reader needs to know of a file without its rows.

:class:`SummaryBuilder` sees every row a file receives (as the sorted points of each table) and
gives, when the file is finished, a JSON document stored under :data:`SUMMARY_METADATA_KEY` in
the Parquet footer's key-value metadata. It is generic over capture's columns: rows are grouped
by a *key*, the first of ``key_labels`` a series has (finemon gives ``container_id``, ``cgroup``,
``pod_uid``: its ``container_key``), and by metric. The document (``version`` 1)::

    {"version": 1, "rows": N, "first_ms": T0, "last_ms": T1,
     "key_labels": [...], "settings": {"aggregated": [...] | null, "sketched": [...],
                                       "per_series": [...]},
     "metrics": {"name": "gauge" | "counter", ...},
     "runs": [{"run_id": R, "rows": N, "first_ms": T0, "last_ms": T1,
               "labels": {global label: value},
               "groups": [{"key": K | null, "labels": {label column: value},
                           "rows": N, "first_ms": T0, "last_ms": T1,
                           "cells": {"metric": CELL, ...}}, ...]}, ...]}

(In the footer the metrics are a list and cells refer to them by position: :func:`dumps`.)
Times are epoch milliseconds of the first and last tick. A metric not in ``aggregated`` (when
that is not null) has the cell ``[series, rows]``. A group's ``labels`` are the label
columns' most complete values among its series (the greatest, as analysis's ``max()`` keeps).
A gauge's CELL is ``[series, rows, sum, min, max]``, plus a sketch (:func:`sketch_quantile`)
for the metrics named in ``sketch_metrics`` (``{}`` for the others when a breakdown follows)
and, for those named in ``series_metrics``, a breakdown by the series' other labels
(``{"[[label, value], ...]": [rows, sum, min, max]}``: a container's processes); a counter's
is ``[series, rows, first, last, increase]``: its first and last value and its increase
within the file, a drop (a reset) skipped. Series of one cell that follow one another in time
(a container's series renamed when its pod names appear) are chained as one, the step between
them counted when the counter did not go down; when they overlap in time (processes, devices)
``first`` and ``last`` are null.

A capture file holds one run; :func:`merge_summaries` merges summaries (a compaction's inputs,
an index's files) into one of the same form, every aggregate merged exactly: counts and sums
added, minimum and maximum kept, counters chained in time order, sketches added.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import zlib
from collections.abc import Iterable, Mapping, Sequence
from itertools import pairwise
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

#: Footer key of the summary (JSON, compressed: :func:`dumps`).
SUMMARY_METADATA_KEY = "capture.summary"
SUMMARY_VERSION = 1
#: How the footer's value starts: the JSON follows zlib-compressed and base64-encoded (a
#: summary's JSON repeats label names and values, and compresses about 5x).
SUMMARY_ENCODING = "zlib+base64:"
#: A summary that would inflate beyond this is refused (a hostile or broken footer).
MAX_SUMMARY_JSON_BYTES = 64 * 1024 * 1024
#: A sketch's quantiles are within this relative error of a value of the data at that rank.
SKETCH_RELATIVE_ACCURACY = 0.01
_GAMMA = (1 + SKETCH_RELATIVE_ACCURACY) / (1 - SKETCH_RELATIVE_ACCURACY)
_LOG_GAMMA = math.log(_GAMMA)

Int64s = npt.NDArray[np.int64]
Floats = npt.NDArray[np.float64]
Bools = npt.NDArray[np.bool_]


class SeriesMeta(Protocol):
    """What the summary needs to know of a series."""

    @property
    def kind(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def labels(self) -> tuple[tuple[str, str], ...]: ...


class _Stats:
    """Per-series aggregates, one entry per series id, ascending."""

    __slots__ = ("first", "fmax", "fmin", "fsum", "ifirst", "iinc", "ilast", "last", "rows", "sid")

    def __init__(
        self, sid: Int64s, rows: Int64s, first: Int64s, last: Int64s, fsum: Floats,
        fmin: Floats, fmax: Floats, ifirst: Int64s, ilast: Int64s, iinc: Int64s,
    ) -> None:  # fmt: skip
        self.sid, self.rows, self.first, self.last = sid, rows, first, last
        self.fsum, self.fmin, self.fmax = fsum, fmin, fmax
        self.ifirst, self.ilast, self.iinc = ifirst, ilast, iinc

    @classmethod
    def empty(cls) -> _Stats:
        i, f = np.empty(0, np.int64), np.empty(0, np.float64)
        return cls(i, i, i, i, f, f, f, i, i, i)

    def merged(self, other: _Stats) -> _Stats:
        """Both sets of aggregates, those of one series combined (``other`` later in time)."""
        if not len(self.sid):
            return other
        cat = [np.concatenate((getattr(self, n), getattr(other, n))) for n in _FIELDS]
        s = dict(zip(_FIELDS, cat, strict=True))
        order = np.lexsort((s["first"], s["sid"]))
        s = {n: v[order] for n, v in s.items()}
        sid = s["sid"]
        starts = np.flatnonzero(np.concatenate(([True], sid[1:] != sid[:-1])))
        ends = np.concatenate((starts[1:], [len(sid)])) - 1
        # The step between two pieces of one series counts when the counter did not go down.
        step = s["ifirst"][1:] - s["ilast"][:-1]
        step = np.where((sid[1:] == sid[:-1]) & (step >= 0), step, 0)
        inc = s["iinc"] + np.concatenate(([0], step))
        return _Stats(
            sid[starts],
            np.add.reduceat(s["rows"], starts),
            s["first"][starts],
            s["last"][ends],
            np.add.reduceat(s["fsum"], starts),
            np.minimum.reduceat(s["fmin"], starts),
            np.maximum.reduceat(s["fmax"], starts),
            s["ifirst"][starts],
            s["ilast"][ends],
            np.add.reduceat(inc, starts),
        )


_FIELDS = ("sid", "rows", "first", "last", "fsum", "fmin", "fmax", "ifirst", "ilast", "iinc")


def sketch_key(value: float) -> str:
    """The sketch bucket of ``value``: ``z`` for 0, ``i`` for a positive value in
    (gamma^(i-1), gamma^i], ``n<i>`` for the negative value of that magnitude."""
    if value == 0 or not math.isfinite(value):
        return "z"
    index = math.ceil(math.log(abs(value)) / _LOG_GAMMA)
    return str(index) if value > 0 else f"n{index}"


def _sketch_keys(values: Floats) -> list[str]:
    magnitude = np.abs(values)
    ok = np.isfinite(values) & (magnitude > 0)
    index = np.zeros(len(values), np.int64)
    index[ok] = np.ceil(np.log(magnitude[ok]) / _LOG_GAMMA).astype(np.int64)
    return [
        ("z" if not good else (str(i) if v > 0 else f"n{i}"))
        for v, i, good in zip(values.tolist(), index.tolist(), ok.tolist(), strict=True)
    ]


def _bucket_value(key: str) -> float:
    if key == "z":
        return 0.0
    negative = key.startswith("n")
    index = int(key[1:] if negative else key)
    value = 2 * _GAMMA**index / (_GAMMA + 1)
    return -value if negative else value


def _bucket_order(key: str) -> float:
    return _bucket_value(key)


def sketch_quantile(
    sketch: Mapping[str, int],
    q: float,
    low: float = -math.inf,
    high: float = math.inf,
) -> float | None:
    """The ``q`` quantile of the values counted in ``sketch``, interpolated between ranks as
    DuckDB's ``quantile_cont`` does; each value is known within
    :data:`SKETCH_RELATIVE_ACCURACY` (relative) and kept within the values' minimum ``low`` and
    maximum ``high`` when given (so a constant series gives its value). None for an empty
    sketch."""
    items = sorted(
        ((k, int(c)) for k, c in sketch.items() if int(c) > 0), key=lambda kc: _bucket_order(kc[0])
    )
    total = sum(c for _, c in items)
    if not total:
        return None
    position = (total - 1) * q
    low_rank, high_rank = math.floor(position), math.ceil(position)

    def at(rank: int) -> float:
        seen = 0
        for key, count in items:
            seen += count
            if rank < seen:
                return _bucket_value(key)
        return _bucket_value(items[-1][0])

    below, above = at(low_rank), at(high_rank)
    found = below + (above - below) * (position - low_rank)
    return min(max(found, low), high)


class SummaryBuilder:
    """Accumulates the summary of one file from the rows it receives (see the module).

    ``add`` takes the rows of one table, sorted by series id then tick, and the series' metadata;
    series keep their identity across tables by id. Memory: about 90 bytes per series, plus the
    sketches' buckets. ``tick_seconds`` turns ticks into milliseconds as the rows' ``time``.
    """

    def __init__(
        self,
        run_id: str,
        tick_seconds: float,
        *,
        global_labels: Iterable[tuple[str, str]] = (),
        label_columns: Sequence[str] = (),
        key_labels: Sequence[str] = (),
        sketch_metrics: Iterable[str] = (),
        series_metrics: Iterable[str] = (),
        aggregate_metrics: Iterable[str] | None = None,
    ) -> None:
        self.run_id = run_id
        #: The metrics whose cells hold aggregates (None: all); the others' hold
        #: ``[series, rows]``.
        self.aggregate_metrics = None if aggregate_metrics is None else frozenset(aggregate_metrics)
        self.tick_seconds = float(tick_seconds)
        self.global_labels = dict(global_labels)
        self.label_columns = tuple(label_columns)
        self.key_labels = tuple(key_labels)
        self.sketch_metrics = frozenset(sketch_metrics)
        self.series_metrics = frozenset(series_metrics)
        #: Per series id of a ``series_metrics`` gauge: its other labels (JSON of the pairs).
        self._series_labels: dict[int, str] = {}
        self._stats = _Stats.empty()
        #: Per series id: metric name, kind, key, label column values.
        self._meta: dict[int, tuple[str, str, str | None, tuple[str | None, ...]]] = {}
        self._known = np.empty(0, np.int64)
        self._sketched = np.empty(0, np.int64)
        self._sketches: dict[int, dict[str, int]] = {}

    def _learn(self, sids: Int64s, series: Mapping[int, SeriesMeta]) -> None:
        new = sids[~np.isin(sids, self._known)]
        if not len(new):
            return
        sketched = []
        for sid in new.tolist():
            meta = series.get(sid)
            if meta is None:
                continue
            # As the rows have them: the global labels, then the series' own.
            labels = dict(self.global_labels)
            labels.update(meta.labels)
            key = next((labels[k] for k in self.key_labels if labels.get(k)), None)
            columns = tuple(labels.get(c) for c in self.label_columns)
            self._meta[sid] = (meta.name, meta.kind, key, columns)
            if meta.kind == "gauge" and meta.name in self.sketch_metrics:
                sketched.append(sid)
            if meta.kind == "gauge" and meta.name in self.series_metrics:
                own = set(self.label_columns) | set(self.key_labels)
                self._series_labels[sid] = json.dumps(
                    sorted([k, v] for k, v in labels.items() if k not in own),
                    separators=(",", ":"),
                )
        self._known = np.union1d(self._known, new)
        if sketched:
            self._sketched = np.union1d(self._sketched, np.array(sketched, np.int64))

    def add(
        self,
        sid: Int64s,
        tick: Int64s,
        value_int: Int64s,
        value_float: Floats,
        series: Mapping[int, SeriesMeta],
    ) -> None:
        """Count rows ``(sid, tick, value)``, sorted by ``sid`` then ``tick`` (a gauge's value in
        ``value_float``, a counter's in ``value_int``; the other array is ignored)."""
        n = len(sid)
        if not n:
            return
        starts = np.flatnonzero(np.concatenate(([True], sid[1:] != sid[:-1])))
        ends = np.concatenate((starts[1:], [n])) - 1
        ids = sid[starts]
        self._learn(ids, series)
        step = value_int[1:] - value_int[:-1]
        step = np.concatenate(([0], np.where((sid[1:] == sid[:-1]) & (step >= 0), step, 0)))
        floats = np.asarray(value_float, np.float64)
        part = _Stats(
            ids,
            np.diff(np.concatenate((starts, [n]))).astype(np.int64),
            tick[starts],
            tick[ends],
            np.add.reduceat(floats, starts),
            np.minimum.reduceat(floats, starts),
            np.maximum.reduceat(floats, starts),
            value_int[starts],
            value_int[ends],
            np.add.reduceat(step, starts),
        )
        self._stats = self._stats.merged(part)
        if len(self._sketched):
            rows = np.isin(sid, self._sketched)
            if rows.any():
                self._add_sketches(sid[rows], floats[rows])

    def _add_sketches(self, sid: Int64s, values: Floats) -> None:
        keys = _sketch_keys(values)
        pairs: dict[tuple[int, str], int] = {}
        for s, k in zip(sid.tolist(), keys, strict=True):
            pairs[(s, k)] = pairs.get((s, k), 0) + 1
        for (s, k), count in pairs.items():
            sketch = self._sketches.setdefault(s, {})
            sketch[k] = sketch.get(k, 0) + count

    def _ms(self, tick: int) -> int:
        ms = self.tick_seconds * 1000.0
        return tick * int(ms) if ms.is_integer() else round(tick * ms)

    def summary(self) -> dict[str, Any] | None:
        """The summary of the rows added so far (None when none was)."""
        stats = self._stats
        if not len(stats.sid):
            return None
        groups: dict[str | None, dict[str, Any]] = {}
        # Per key and metric: the series, to chain those that follow each other in time.
        per_cell: dict[str | None, dict[str, list[int]]] = {}
        metrics: dict[str, str] = {}
        for i, sid in enumerate(stats.sid.tolist()):
            meta = self._meta.get(sid)
            if meta is None:
                continue
            name, kind, key, columns = meta
            metrics.setdefault(name, kind)
            group = groups.get(key)
            if group is None:
                group = groups[key] = {"labels": {}, "rows": 0, "first": None, "last": None}
            labels = group["labels"]
            for column, value in zip(self.label_columns, columns, strict=True):
                if value is not None and (labels.get(column) is None or value > labels[column]):
                    labels[column] = value
            per_cell.setdefault(key, {}).setdefault(name, []).append(i)
        run_groups = []
        total_rows, first_tick, last_tick = 0, None, None
        for key, group in groups.items():
            cells: dict[str, list[Any]] = {}
            rows, first, last = 0, None, None
            for name, members in per_cell[key].items():
                cell, c_rows, c_first, c_last = self._cell(name, members)
                cells[name] = cell
                rows += c_rows
                first = c_first if first is None else min(first, c_first)
                last = c_last if last is None else max(last, c_last)
            assert first is not None and last is not None
            total_rows += rows
            first_tick = first if first_tick is None else min(first_tick, first)
            last_tick = last if last_tick is None else max(last_tick, last)
            run_groups.append(
                {
                    "key": key,
                    "labels": {k: v for k, v in sorted(group["labels"].items())},
                    "rows": rows,
                    "first_ms": self._ms(first),
                    "last_ms": self._ms(last),
                    "cells": dict(sorted(cells.items())),
                }
            )
        if first_tick is None or last_tick is None:
            return None
        run_groups.sort(key=lambda g: (g["key"] is not None, g["key"] or ""))
        first_ms, last_ms = self._ms(first_tick), self._ms(last_tick)
        return {
            "version": SUMMARY_VERSION,
            "rows": total_rows,
            "first_ms": first_ms,
            "last_ms": last_ms,
            "key_labels": list(self.key_labels),
            "settings": self.settings(),
            "metrics": dict(sorted(metrics.items())),
            "runs": [
                {
                    "run_id": self.run_id,
                    "rows": total_rows,
                    "first_ms": first_ms,
                    "last_ms": last_ms,
                    "labels": dict(sorted(self.global_labels.items())),
                    "groups": run_groups,
                }
            ],
        }

    def settings(self) -> dict[str, Any]:
        """What the cells hold: ``aggregated`` (None: every metric), ``sketched``,
        ``per_series`` metric names. Summaries merge only when their settings are the same."""
        return {
            "aggregated": None
            if self.aggregate_metrics is None
            else sorted(self.aggregate_metrics),
            "sketched": sorted(self.sketch_metrics),
            "per_series": sorted(self.series_metrics),
        }

    def _cell(self, name: str, members: list[int]) -> tuple[list[Any], int, int, int]:
        s = self._stats
        kind = self._meta[int(s.sid[members[0]])][1]
        members = sorted(members, key=lambda i: (int(s.first[i]), int(s.last[i])))
        rows = int(sum(int(s.rows[i]) for i in members))
        first = min(int(s.first[i]) for i in members)
        last = max(int(s.last[i]) for i in members)
        # Series that follow one another in time are one series renamed (chained).
        chained = all(int(s.first[b]) > int(s.last[a]) for a, b in pairwise(members))
        series = 1 if chained else len(members)
        if self.aggregate_metrics is not None and name not in self.aggregate_metrics:
            return [series, rows], rows, first, last
        if kind == "counter":
            increase = sum(int(s.iinc[i]) for i in members)
            if chained:
                for a, b in pairwise(members):
                    step = int(s.ifirst[b]) - int(s.ilast[a])
                    if step >= 0:
                        increase += step
                cell: list[Any] = [series, rows, int(s.ifirst[members[0]]),
                                   int(s.ilast[members[-1]]), increase]  # fmt: skip
            else:
                cell = [series, rows, None, None, increase]
        else:
            cell = [
                series,
                rows,
                float(sum(float(s.fsum[i]) for i in members)),
                float(min(float(s.fmin[i]) for i in members)),
                float(max(float(s.fmax[i]) for i in members)),
            ]
            if name in self.sketch_metrics:
                sketch: dict[str, int] = {}
                for i in members:
                    for k, c in self._sketches.get(int(s.sid[i]), {}).items():
                        sketch[k] = sketch.get(k, 0) + c
                cell.append(dict(sorted(sketch.items())))
            if name in self.series_metrics:
                if len(cell) == 5:
                    cell.append({})
                cell.append(self._breakdown(members))
        return cell, rows, first, last

    def _breakdown(self, members: list[int]) -> dict[str, list[Any]]:
        """Per distinct other labels: ``[rows, sum, min, max]``."""
        s = self._stats
        found: dict[str, list[Any]] = {}
        for i in members:
            labels = self._series_labels.get(int(s.sid[i]), "[]")
            entry = [int(s.rows[i]), float(s.fsum[i]), float(s.fmin[i]), float(s.fmax[i])]
            known = found.get(labels)
            found[labels] = entry if known is None else _merge_breakdown(known, entry)
        return dict(sorted(found.items()))

    def metadata(self) -> dict[str, str]:
        """The footer entry: ``{SUMMARY_METADATA_KEY: JSON}`` (empty without rows)."""
        found = self.summary()
        return {} if found is None else {SUMMARY_METADATA_KEY: dumps(found)}


def dumps(summary: Mapping[str, Any]) -> str:
    """``summary`` as the footer holds it: compact JSON (the metrics a list of
    ``[name, kind]`` and each group's cells a list of ``[metric index, *cell]``: a metric's
    name is not repeated per container), zlib-compressed and base64-encoded after
    :data:`SUMMARY_ENCODING`; :func:`loads` reads it back."""
    names = list(summary.get("metrics", {}))
    position = {name: i for i, name in enumerate(names)}
    compact = dict(summary)
    compact["metrics"] = [[name, summary["metrics"][name]] for name in names]
    compact["runs"] = [
        {
            **run,
            "groups": [
                {**group, "cells": [[position[m], *c] for m, c in group["cells"].items()]}
                for group in run["groups"]
            ],
        }
        for run in summary.get("runs", [])
    ]
    plain = json.dumps(compact, separators=(",", ":"), allow_nan=True).encode()
    return SUMMARY_ENCODING + base64.b64encode(zlib.compress(plain, 6)).decode("ascii")


def _plain_json(text: str | bytes) -> bytes | None:
    """The JSON of a footer value: decoded and inflated (at most
    :data:`MAX_SUMMARY_JSON_BYTES`) when it has :data:`SUMMARY_ENCODING`, else as it is."""
    data = text.encode() if isinstance(text, str) else text
    prefix = SUMMARY_ENCODING.encode()
    if not data.startswith(prefix):
        return data
    try:
        packed = base64.b64decode(data[len(prefix) :], validate=True)
        inflater = zlib.decompressobj()
        plain = inflater.decompress(packed, MAX_SUMMARY_JSON_BYTES)
    except (binascii.Error, zlib.error, ValueError):
        return None
    if inflater.unconsumed_tail or not inflater.eof:
        return None  # larger than the bound, or truncated
    return plain


def loads(text: str | bytes | None) -> dict[str, Any] | None:
    """The summary in ``text`` (what :func:`dumps` wrote, or its plain JSON), None when it is
    missing, not a summary, too large or of a version this code does not read."""
    if not text:
        return None
    plain = _plain_json(text)
    if plain is None:
        return None
    try:
        found = json.loads(plain)
        if not isinstance(found, dict) or found.get("version") != SUMMARY_VERSION:
            return None
        names = [str(name) for name, _ in found["metrics"]]
        found["metrics"] = {str(name): str(kind) for name, kind in found["metrics"]}
        for run in found["runs"]:
            for group in run["groups"]:
                group["cells"] = {names[cell[0]]: list(cell[1:]) for cell in group["cells"]}
    except (ValueError, TypeError, KeyError, IndexError):
        return None
    return found


# ---------------------------------------------------------------------------------- merging
def _most_complete(into: dict[str, Any], labels: Mapping[str, Any]) -> None:
    for column, value in labels.items():
        if value is not None and (into.get(column) is None or value > into[column]):
            into[column] = value


def _merge_breakdown(a: list[Any], b: list[Any]) -> list[Any]:
    return [a[0] + b[0], a[1] + b[1], min(a[2], b[2]), max(a[3], b[3])]


def _merge_cell(kind: str, a: list[Any], b: list[Any]) -> list[Any]:
    """Cell ``a`` then cell ``b`` (later in time) of one (run, key, metric)."""
    series, rows = max(a[0], b[0]), a[1] + b[1]
    if len(a) == 2 or len(b) == 2:
        return [series, rows]  # a metric without aggregates
    if kind == "counter":
        if a[2] is None or a[3] is None or b[2] is None or b[3] is None:
            return [series, rows, None, None, a[4] + b[4]]
        step = b[2] - a[3]
        return [series, rows, a[2], b[3], a[4] + b[4] + (step if step >= 0 else 0)]
    merged = [series, rows, a[2] + b[2], min(a[3], b[3]), max(a[4], b[4])]
    if len(a) > 5 or len(b) > 5:
        sketch = dict(a[5]) if len(a) > 5 else {}
        for k, c in (b[5] if len(b) > 5 else {}).items():
            sketch[k] = sketch.get(k, 0) + c
        merged.append(sketch)
    if len(a) > 6 or len(b) > 6:
        breakdown = {k: list(v) for k, v in (a[6] if len(a) > 6 else {}).items()}
        for k, v in (b[6] if len(b) > 6 else {}).items():
            known = breakdown.get(k)
            breakdown[k] = list(v) if known is None else _merge_breakdown(known, v)
        merged.append(breakdown)
    return merged


def merge_summaries(summaries: Iterable[Mapping[str, Any]]) -> dict[str, Any] | None:
    """One summary of the rows of every one of ``summaries`` (see the module); None when none
    holds a run. The parts of one run are merged in time order (their ``first_ms``)."""
    parts: dict[str, list[Mapping[str, Any]]] = {}
    metrics: dict[str, str] = {}
    key_labels: list[str] | None = None
    settings: dict[str, Any] | None = None
    for summary in summaries:
        for name, kind in summary.get("metrics", {}).items():
            metrics.setdefault(name, kind)
        if key_labels is None:
            key_labels, settings = list(summary.get("key_labels", [])), summary.get("settings")
        elif key_labels != list(summary.get("key_labels", [])) or settings != summary.get(
            "settings"
        ):
            return None  # grouped or aggregated otherwise: they do not add up
        for run in summary.get("runs", []):
            parts.setdefault(str(run["run_id"]), []).append(run)
    if not parts:
        return None
    runs = []
    for run_id, pieces in parts.items():
        pieces.sort(key=lambda p: (p["first_ms"], p["last_ms"]))
        labels: dict[str, Any] = {}
        groups: dict[Any, dict[str, Any]] = {}
        for piece in pieces:
            _most_complete(labels, piece.get("labels", {}))
            for group in piece["groups"]:
                into = groups.get(group["key"])
                if into is None:
                    groups[group["key"]] = {
                        "key": group["key"],
                        "labels": dict(group["labels"]),
                        "rows": group["rows"],
                        "first_ms": group["first_ms"],
                        "last_ms": group["last_ms"],
                        "cells": {m: list(c) for m, c in group["cells"].items()},
                    }
                    continue
                _most_complete(into["labels"], group["labels"])
                into["rows"] += group["rows"]
                into["first_ms"] = min(into["first_ms"], group["first_ms"])
                into["last_ms"] = max(into["last_ms"], group["last_ms"])
                cells = into["cells"]
                for metric, cell in group["cells"].items():
                    known = cells.get(metric)
                    kind = metrics.get(metric, "gauge")
                    cells[metric] = list(cell) if known is None else _merge_cell(kind, known, cell)
        merged_groups = sorted(
            groups.values(), key=lambda g: (g["key"] is not None, g["key"] or "")
        )
        for group in merged_groups:
            group["labels"] = dict(sorted(group["labels"].items()))
            group["cells"] = dict(sorted(group["cells"].items()))
        runs.append(
            {
                "run_id": run_id,
                "rows": sum(p["rows"] for p in pieces),
                "first_ms": min(p["first_ms"] for p in pieces),
                "last_ms": max(p["last_ms"] for p in pieces),
                "labels": dict(sorted(labels.items())),
                "groups": merged_groups,
            }
        )
    runs.sort(key=lambda r: (r["first_ms"], r["run_id"]))
    return {
        "version": SUMMARY_VERSION,
        "rows": sum(r["rows"] for r in runs),
        "first_ms": min(r["first_ms"] for r in runs),
        "last_ms": max(r["last_ms"] for r in runs),
        "key_labels": key_labels,
        "settings": settings,
        "metrics": dict(sorted(metrics.items())),
        "runs": runs,
    }
