"""Turning taken ticks into Arrow tables in the capture schema.

Rows of one table are sorted by series, then tick: runs of the same series compress far better
than ticks interleaving every series.
"""

from __future__ import annotations

from array import array
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import pyarrow as pa
import pyarrow.compute as pc

from capture.accumulator import TickFrame
from capture.keys import LabelTuple
from capture.schema import LABELS_TYPE, capture_write_schema


class SeriesMeta(Protocol):
    """What a row needs to know about its series."""

    @property
    def kind(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def labels(self) -> LabelTuple: ...


@dataclass(frozen=True, slots=True)
class RowLayout:
    """How series labels map to columns: fixed label columns, global labels, run and clock."""

    run_id: str
    tick_seconds: float
    first_tick: int
    label_columns: tuple[str, ...] = ()
    global_labels: LabelTuple = ()

    @property
    def schema(self) -> pa.Schema:
        """The schema tables are built in (dictionary-encoded strings)."""
        return capture_write_schema(self.label_columns)


def _int64(values: array[int]) -> pa.Array:
    return pa.Array.from_buffers(pa.int64(), len(values), [None, pa.py_buffer(values)])


def _float64(values: array[float]) -> pa.Array:
    return pa.Array.from_buffers(pa.float64(), len(values), [None, pa.py_buffer(values)])


@dataclass(slots=True)
class PointColumns:
    """Rows as columns before series attributes are attached (sid, tick, values)."""

    sid: pa.Array
    tick: pa.Array
    value_int: pa.Array
    value_float: pa.Array


def frames_to_points(frames: Sequence[TickFrame], series: Mapping[int, SeriesMeta]) -> PointColumns:
    """Concatenate the final values of ``frames`` (fixes applied) into point columns."""
    sids: list[pa.Array] = []
    ticks: list[pa.Array] = []
    vints: list[pa.Array] = []
    vfloats: list[pa.Array] = []

    def is_gauge(sid: int) -> bool:
        meta = series.get(sid)
        return meta is not None and meta.kind == "gauge"

    for frame in frames:
        g_sids, g_vals, c_sids, c_vals = frame.materialize(is_gauge)
        ng, nc = len(g_sids), len(c_sids)
        if ng:
            sids.append(_int64(g_sids))
            vfloats.append(_float64(g_vals))
            vints.append(pa.nulls(ng, pa.int64()))
        if nc:
            sids.append(_int64(c_sids))
            vints.append(_int64(c_vals))
            vfloats.append(pa.nulls(nc, pa.float64()))
        if ng + nc:
            ticks.append(pa.repeat(pa.scalar(frame.tick, pa.int64()), ng + nc))
    if not sids:
        empty = pa.array([], pa.int64())
        return PointColumns(empty, empty, empty, pa.array([], pa.float64()))
    return PointColumns(
        pa.concat_arrays(sids),
        pa.concat_arrays(ticks),
        pa.concat_arrays(vints),
        pa.concat_arrays(vfloats),
    )


def points_to_table(
    points: PointColumns, series: Mapping[int, SeriesMeta], layout: RowLayout
) -> pa.Table:
    """Attach series attributes to ``points`` and return a table in ``layout.schema``.

    Points whose series is unknown are dropped (cannot happen for a consistent recorder or
    journal; guarded so a damaged journal cannot fail recovery).
    """
    schema = layout.schema
    raw = pa.table(
        {
            "sid": points.sid,
            "tick": points.tick,
            "value_int": points.value_int,
            "value_float": points.value_float,
        }
    )
    if raw.num_rows == 0:
        return schema.empty_table()
    raw = raw.sort_by([("sid", "ascending"), ("tick", "ascending")])
    unique = pc.unique(raw["sid"]).to_pylist()
    known = [sid for sid in unique if sid in series]
    if len(known) != len(unique):
        raw = raw.filter(pc.is_in(raw["sid"], value_set=pa.array(known, pa.int64())))
    position = pc.index_in(raw["sid"], value_set=pa.array(known, pa.int64())).combine_chunks()

    label_columns = layout.label_columns
    global_labels = dict(layout.global_labels)
    names: list[str] = []
    kinds: list[str] = []
    column_values: list[list[str | None]] = [[] for _ in label_columns]
    maps: list[list[tuple[str, str]]] = []
    for sid in known:
        meta = series[sid]
        names.append(meta.name)
        kinds.append(meta.kind)
        labels = dict(global_labels)
        labels.update(meta.labels)
        for i, column in enumerate(label_columns):
            column_values[i].append(labels.pop(column, None))
        maps.append(sorted(labels.items()))

    n = raw.num_rows
    ticks = raw["tick"]
    ms_per_tick = layout.tick_seconds * 1000.0
    if ms_per_tick.is_integer():
        millis = pc.multiply(ticks, pa.scalar(int(ms_per_tick), pa.int64()))
    else:
        millis = pc.cast(
            pc.round(pc.multiply(pc.cast(ticks, pa.float64()), ms_per_tick)), pa.int64()
        )

    def per_series(values: Sequence[str | None]) -> pa.DictionaryArray:
        # Row i takes its series' value: each distinct string once in the dictionary, a null
        # as a null index (Parquet cannot write a null inside a dictionary).
        dictionary: dict[str, int] = {}
        codes = [None if v is None else dictionary.setdefault(v, len(dictionary)) for v in values]
        return pa.DictionaryArray.from_arrays(
            pa.array(codes, pa.int32()).take(position), pa.array(list(dictionary), pa.string())
        )

    columns: dict[str, pa.Array | pa.ChunkedArray] = {
        "run_id": pa.DictionaryArray.from_arrays(
            pa.repeat(pa.scalar(0, pa.int32()), n), pa.array([layout.run_id], pa.string())
        ),
        "time": pc.cast(millis, pa.timestamp("ms", tz="UTC")),
        "fetch_index": pc.subtract(ticks, pa.scalar(layout.first_tick, pa.int64())),
        "metric_name": per_series(names),
        "metric_kind": per_series(kinds),
        "value_int": raw["value_int"],
        "value_float": raw["value_float"],
    }
    for i, column in enumerate(label_columns):
        columns[column] = per_series(column_values[i])
    columns["labels"] = pa.array(maps, LABELS_TYPE).take(position)
    return pa.table(columns, schema=schema)


def frames_to_table(
    frames: Sequence[TickFrame], series: Mapping[int, SeriesMeta], layout: RowLayout
) -> pa.Table:
    """Rows of ``frames`` in the capture schema."""
    return points_to_table(frames_to_points(frames, series), series, layout)
