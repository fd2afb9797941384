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


def _uint64(values: array[int]) -> pa.Array:
    return pa.Array.from_buffers(pa.uint64(), len(values), [None, pa.py_buffer(values)])


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


@dataclass(slots=True)
class SeriesColumns:
    """Per-series column values of one set of series: for each series (in ``sids`` order) its
    code in each string column's dictionary, and its labels map. Built once and reused while a
    writer's flushes hold the same series (the common case: a node's containers do not change
    every ten seconds)."""

    sids: list[int]
    codes: dict[str, pa.Array]
    dictionaries: dict[str, pa.Array]
    maps: pa.Array

    @classmethod
    def build(
        cls, sids: list[int], series: Mapping[int, SeriesMeta], layout: RowLayout
    ) -> SeriesColumns:
        label_columns = layout.label_columns
        global_labels = dict(layout.global_labels)
        values: dict[str, list[str | None]] = {
            name: [] for name in ("metric_name", "metric_kind", *label_columns)
        }
        maps: list[list[tuple[str, str]]] = []
        for sid in sids:
            meta = series[sid]
            values["metric_name"].append(meta.name)
            values["metric_kind"].append(meta.kind)
            labels = dict(global_labels)
            labels.update(meta.labels)
            for column in label_columns:
                values[column].append(labels.pop(column, None))
            maps.append(sorted(labels.items()))
        codes: dict[str, pa.Array] = {}
        dictionaries: dict[str, pa.Array] = {}
        for name, column_values in values.items():
            # Each distinct string once in the dictionary; a null is a null code (Parquet
            # cannot write a null inside a dictionary).
            dictionary: dict[str, int] = {}
            codes[name] = pa.array(
                [
                    None if v is None else dictionary.setdefault(v, len(dictionary))
                    for v in column_values
                ],
                pa.int32(),
            )
            dictionaries[name] = pa.array(list(dictionary), pa.string())
        return cls(sids, codes, dictionaries, pa.array(maps, LABELS_TYPE))


class TableBuilder:
    """Builds the tables of one writer, reusing the per-series columns between flushes."""

    def __init__(self) -> None:
        self._cached: SeriesColumns | None = None

    def series_columns(
        self, sids: list[int], series: Mapping[int, SeriesMeta], layout: RowLayout
    ) -> SeriesColumns:
        cached = self._cached
        if cached is None or cached.sids != sids:
            cached = self._cached = SeriesColumns.build(sids, series, layout)
        return cached

    def table(
        self, points: PointColumns, series: Mapping[int, SeriesMeta], layout: RowLayout
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
        per_series = self.series_columns(known, series, layout)

        n = raw.num_rows
        ticks = raw["tick"]
        ms_per_tick = layout.tick_seconds * 1000.0
        if ms_per_tick.is_integer():
            millis = pc.multiply(ticks, pa.scalar(int(ms_per_tick), pa.int64()))
        else:
            millis = pc.cast(
                pc.round(pc.multiply(pc.cast(ticks, pa.float64()), ms_per_tick)), pa.int64()
            )

        def column(name: str) -> pa.DictionaryArray:
            # Row i takes its series' code.
            return pa.DictionaryArray.from_arrays(
                per_series.codes[name].take(position), per_series.dictionaries[name]
            )

        columns: dict[str, pa.Array | pa.ChunkedArray] = {
            "run_id": pa.DictionaryArray.from_arrays(
                pa.repeat(pa.scalar(0, pa.int32()), n), pa.array([layout.run_id], pa.string())
            ),
            "time": pc.cast(millis, pa.timestamp("ms", tz="UTC")),
            "fetch_index": pc.subtract(ticks, pa.scalar(layout.first_tick, pa.int64())),
            "metric_name": column("metric_name"),
            "metric_kind": column("metric_kind"),
            "value_int": raw["value_int"],
            "value_float": raw["value_float"],
        }
        for name in layout.label_columns:
            columns[name] = column(name)
        columns["labels"] = per_series.maps.take(position)
        return pa.table(columns, schema=schema)


def points_to_table(
    points: PointColumns, series: Mapping[int, SeriesMeta], layout: RowLayout
) -> pa.Table:
    """Rows of ``points`` in the capture schema (see :meth:`TableBuilder.table`)."""
    return TableBuilder().table(points, series, layout)


def frames_to_table(
    frames: Sequence[TickFrame],
    series: Mapping[int, SeriesMeta],
    layout: RowLayout,
    builder: TableBuilder | None = None,
) -> pa.Table:
    """Rows of ``frames`` in the capture schema (``builder`` reuses per-series columns)."""
    points = frames_to_points(frames, series)
    return (builder or TableBuilder()).table(points, series, layout)
