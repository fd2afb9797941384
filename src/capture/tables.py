"""Turning taken ticks into Arrow tables in the capture schema.

Rows of one table are sorted by series, then tick: runs of the same series compress far better
than ticks interleaving every series. A flush is cut into tables of at most about
:data:`ROW_GROUP_ROWS` rows, each holding a range of series ids (a series is never split between
two tables of one flush): each becomes one Parquet row group, so the memory a flush needs is
bounded by one such table, not by the node's size times the ticks flushed.
"""

from __future__ import annotations

from array import array
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from capture.accumulator import FrameValues, SeriesIds, TickFrame
from capture.keys import LabelTuple
from capture.schema import LABELS_TYPE, capture_write_schema
from capture.summary import SummaryBuilder

#: Rows per table (and Parquet row group) that a flush aims at.
ROW_GROUP_ROWS = 65_536

Int64s = npt.NDArray[np.int64]
Floats = npt.NDArray[np.float64]
Bools = npt.NDArray[np.bool_]

_TIME_TYPE = pa.timestamp("ms", tz="UTC")


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


def int64_array(values: array[int]) -> pa.Array:
    """An Arrow int64 array over the buffer of ``values`` (typecode ``q``), without a copy."""
    return pa.Array.from_buffers(pa.int64(), len(values), [None, pa.py_buffer(values)])


def float64_array(values: array[float]) -> pa.Array:
    """An Arrow float64 array over the buffer of ``values`` (typecode ``d``), without a copy."""
    return pa.Array.from_buffers(pa.float64(), len(values), [None, pa.py_buffer(values)])


@dataclass(slots=True)
class PointColumns:
    """Rows as columns before series attributes are attached (sid, tick, values)."""

    sid: pa.Array
    tick: pa.Array
    value_int: pa.Array
    value_float: pa.Array


@dataclass(slots=True)
class _Points:
    """Rows of one table before series attributes are attached, sorted by (sid, tick).

    A gauge's value is in ``value_float``, a counter's in ``value_int`` (``is_gauge`` says which;
    the other array holds 0 there).
    """

    sid: Int64s
    tick: Int64s
    value_int: Int64s
    value_float: Floats
    is_gauge: Bools

    def take(self, index: Int64s | Bools) -> _Points:
        return _Points(
            self.sid[index],
            self.tick[index],
            self.value_int[index],
            self.value_float[index],
            self.is_gauge[index],
        )


@dataclass(slots=True)
class SeriesColumns:
    """Per-series column values of one set of series (ascending ``sids``): each series' code in
    the metric name and kind dictionaries and the index of its label set; each label set's code
    in every label column's dictionary (-1: null) and its labels map. Built once and reused
    while a writer's flushes hold the same series (the common case: a node's containers do not
    change every ten seconds). About 17 bytes a series: the series of one container share a
    label set."""

    sids: Int64s
    name_codes: npt.NDArray[np.int32]
    kind_codes: npt.NDArray[np.int32]
    label_sets: npt.NDArray[np.int32]
    #: Code of each label set in each label column's dictionary.
    set_codes: dict[str, npt.NDArray[np.int32]]
    dictionaries: dict[str, list[str]]
    #: The labels map of each label set: its entries are ``map_keys``/``map_values`` from
    #: ``map_starts[i]``, ``map_lengths[i]`` of them.
    map_starts: Int64s
    map_lengths: npt.NDArray[np.int32]
    map_keys: npt.NDArray[np.object_]
    map_values: npt.NDArray[np.object_]

    @classmethod
    def build(
        cls, sids: Int64s, series: Mapping[int, SeriesMeta], layout: RowLayout
    ) -> SeriesColumns:
        label_columns = layout.label_columns
        global_labels = dict(layout.global_labels)
        names = ("metric_name", "metric_kind", *label_columns)
        dictionaries: dict[str, dict[str, int]] = {name: {} for name in names}
        name_codes, kind_codes, label_sets = array("i"), array("i"), array("i")
        set_codes: dict[str, list[int]] = {column: [] for column in label_columns}
        map_starts: list[int] = []
        map_lengths: list[int] = []
        map_keys: list[str] = []
        map_values: list[str] = []
        set_index: dict[LabelTuple, int] = {}
        name_dictionary = dictionaries["metric_name"]
        kind_dictionary = dictionaries["metric_kind"]
        for sid in _python_ids(sids):
            meta = series[sid]
            name_codes.append(name_dictionary.setdefault(meta.name, len(name_dictionary)))
            kind_codes.append(kind_dictionary.setdefault(meta.kind, len(kind_dictionary)))
            index = set_index.get(meta.labels)
            if index is None:
                index = set_index[meta.labels] = len(set_index)
                labels = dict(global_labels)
                labels.update(meta.labels)
                for column in label_columns:
                    value = labels.pop(column, None)
                    dictionary = dictionaries[column]
                    set_codes[column].append(
                        -1 if value is None else dictionary.setdefault(value, len(dictionary))
                    )
                entries = sorted(labels.items())
                map_starts.append(len(map_keys))
                map_lengths.append(len(entries))
                map_keys.extend(k for k, _ in entries)
                map_values.extend(v for _, v in entries)
            label_sets.append(index)
        return cls(
            sids,
            np.array(name_codes, np.int32),
            np.array(kind_codes, np.int32),
            np.array(label_sets, np.int32),
            {column: np.array(codes, np.int32) for column, codes in set_codes.items()},
            {name: list(d) for name, d in dictionaries.items()},
            np.array(map_starts, np.int64),
            np.array(map_lengths, np.int32),
            np.array(map_keys, np.object_),
            np.array(map_values, np.object_),
        )

    def _series_codes(self, name: str, series: Int64s) -> npt.NDArray[np.int32]:
        """The codes in column ``name``'s dictionary of the series at positions ``series``."""
        if name == "metric_name":
            return self.name_codes[series]
        if name == "metric_kind":
            return self.kind_codes[series]
        return self.set_codes[name][self.label_sets[series]]

    def _column(self, name: str, series: Int64s, row_series: Int64s) -> pa.DictionaryArray:
        """Column ``name`` of rows whose series are ``series[row_series]``, with a dictionary of
        only the values these rows use (the writer stores a row group's dictionary whole)."""
        series_codes = self._series_codes(name, series)
        used = np.unique(series_codes)
        if len(used) and used[0] < 0:
            used = used[1:]  # nulls are a null code (Parquet has no null in a dictionary)
        # One slot more than the dictionary, left at -1: code -1 (null) stays -1.
        dictionary = self.dictionaries[name]
        local = np.full(len(dictionary) + 1, -1, np.int32)
        local[used] = np.arange(len(used), dtype=np.int32)
        row_codes = local[series_codes][row_series]
        indices = pa.array(row_codes, mask=row_codes < 0)
        values = pa.array([dictionary[i] for i in used.tolist()], pa.string())
        return pa.DictionaryArray.from_arrays(indices, values)

    def _maps(self, position: Int64s) -> pa.MapArray:
        """The labels maps of rows whose series are at ``position`` (gathered with numpy: an
        Arrow ``take`` would load pyarrow.compute, and its memory, into every writing process)."""
        label_sets = self.label_sets[position]
        lengths = self.map_lengths[label_sets]
        offsets = np.zeros(len(position) + 1, np.int32)
        np.cumsum(lengths, out=offsets[1:])
        total = int(offsets[-1])
        if total:
            entries = np.repeat(self.map_starts[label_sets] - offsets[:-1], lengths)
            entries += np.arange(total)
            keys = pa.array(self.map_keys[entries], pa.string())
            items = pa.array(self.map_values[entries], pa.string())
        else:
            keys = items = pa.array([], pa.string())
        return pa.MapArray.from_arrays(pa.array(offsets), keys, items, type=LABELS_TYPE)

    def table(self, points: _Points, layout: RowLayout) -> pa.Table | None:
        """``points`` (sorted by series) as a table in ``layout.schema``; rows of series not held
        here are dropped (cannot happen for a consistent recorder or journal; guarded so a damaged
        journal cannot fail recovery). None when no row is left."""
        n_series = len(self.sids)
        if n_series == 0:
            return None
        position = np.searchsorted(self.sids, points.sid)
        np.minimum(position, n_series - 1, out=position)
        known = self.sids[position] == points.sid
        if not known.all():
            points, position = points.take(known), position[known]
        n = len(points.sid)
        if n == 0:
            return None
        # Rows come series by series: the distinct series, and each row's index among them.
        starts = np.flatnonzero(position[1:] != position[:-1]) + 1
        series = position[np.concatenate(([0], starts))]
        row_series = np.zeros(n, np.int64)
        row_series[starts] = 1
        np.cumsum(row_series, out=row_series)
        ticks = points.tick
        ms_per_tick = layout.tick_seconds * 1000.0
        if ms_per_tick.is_integer():
            millis = ticks * int(ms_per_tick)
        else:
            millis = np.rint(ticks * ms_per_tick).astype(np.int64)
        columns: dict[str, pa.Array] = {
            "run_id": pa.DictionaryArray.from_arrays(
                pa.array(np.zeros(n, np.int32)), pa.array([layout.run_id], pa.string())
            ),
            "time": pa.array(millis).view(_TIME_TYPE),
            "fetch_index": pa.array(ticks - layout.first_tick),
            "metric_name": self._column("metric_name", series, row_series),
            "metric_kind": self._column("metric_kind", series, row_series),
            "value_int": pa.array(points.value_int, mask=points.is_gauge),
            "value_float": pa.array(points.value_float, mask=~points.is_gauge),
        }
        for name in layout.label_columns:
            columns[name] = self._column(name, series, row_series)
        columns["labels"] = self._maps(position)
        return pa.table(columns, schema=layout.schema)


#: A series set's ids ascending, the positions that sort them (None: already ascending) and
#: the rank of each position among the ascending ids (None: the same).
_Ascending = tuple[Int64s, Int64s | None, Int64s | None]


class TableBuilder:
    """Builds the tables of one writer, reusing between flushes what the series decide: each
    series set's ids in ascending order, the ids a flush writes and their per-series columns.
    A node's series stay the same for minutes, so a flush usually computes none of them."""

    def __init__(self) -> None:
        self._cached: SeriesColumns | None = None
        #: By ``id()`` of a series set: the set (kept, so its id is not reused) and its order.
        self._orders: dict[int, tuple[SeriesIds, _Ascending]] = {}
        #: The id arrays the last flush's ids were computed from (kept), and those ids.
        self._sids_from: list[Int64s] = []
        self._sids: Int64s = np.empty(0, np.int64)

    def ascending(self, series_ids: SeriesIds) -> _Ascending:
        """The ascending order of ``series_ids``'s ids (computed once per set)."""
        hit = self._orders.get(id(series_ids))
        if hit is None or hit[0] is not series_ids:
            ids, order = _ascending(series_ids.sids)
            rank = None
            if order is not None:  # the rank of each position among the ascending ids
                rank = np.empty_like(order)
                rank[order] = np.arange(len(order))
            hit = self._orders[id(series_ids)] = (series_ids, (ids, order, rank))
        return hit[1]

    def forget_orders(self, keep: Sequence[SeriesIds]) -> None:
        """Drop the orders of series sets other than ``keep`` (the sets of the last flush)."""
        kept = {id(s) for s in keep}
        self._orders = {k: v for k, v in self._orders.items() if k in kept}

    def known_sids(self, id_arrays: list[Int64s], series: Mapping[int, SeriesMeta]) -> Int64s:
        """The ascending distinct ids of ``id_arrays`` that ``series`` knows; the last answer
        again when the arrays are the very ones it was computed from (series sets unchanged)."""
        previous = self._sids_from
        if len(previous) == len(id_arrays) and all(
            a is b for a, b in zip(previous, id_arrays, strict=True)
        ):
            return self._sids
        self._sids = _known_sids(np.concatenate(id_arrays), series)
        self._sids_from = list(id_arrays)
        return self._sids

    def series_columns(
        self, sids: Int64s, series: Mapping[int, SeriesMeta], layout: RowLayout
    ) -> SeriesColumns:
        """The per-series columns of ``sids`` (ascending), from the cache when it holds them."""
        cached = self._cached
        if cached is None or (cached.sids is not sids and not np.array_equal(cached.sids, sids)):
            cached = self._cached = SeriesColumns.build(sids, series, layout)
        return cached


#: Series ids turned into Python ints at a time (a list of 100,000 ints is 4 MB of a flush's peak).
_ID_CHUNK = 8192


def _python_ids(sids: Int64s) -> Iterator[int]:
    """``sids`` as Python ints, converted a chunk at a time."""
    for start in range(0, len(sids), _ID_CHUNK):
        yield from sids[start : start + _ID_CHUNK].tolist()


def _known_sids(candidates: Int64s, series: Mapping[int, SeriesMeta]) -> Int64s:
    """The ascending distinct ids of ``candidates`` that ``series`` knows."""
    unique = np.unique(candidates)
    known = np.fromiter(map(series.__contains__, _python_ids(unique)), np.bool_, len(unique))
    return unique if known.all() else unique[known]


@dataclass(slots=True)
class _FramePart:
    """One kind of one frame, with its series in ascending id order."""

    tick: int
    is_gauge: bool
    sids: Int64s  # ascending
    order: Int64s | None  # positions of ``sids`` in ``values`` (None: the same positions)
    values: Int64s | Floats

    def rows(self, lo: int, hi: int | None) -> tuple[Int64s, Int64s | Floats]:
        """(sids, values) of the series with ``lo <= sid < hi``."""
        a = int(np.searchsorted(self.sids, lo))
        b = len(self.sids) if hi is None else int(np.searchsorted(self.sids, hi))
        if self.order is None:
            return self.sids[a:b], self.values[a:b]
        return self.sids[a:b], self.values[self.order[a:b]]


def _ascending(sids: array[int]) -> tuple[Int64s, Int64s | None]:
    """``sids`` ascending, and the positions that sort them (None: already ascending)."""
    ids = np.frombuffer(sids, np.int64) if len(sids) else np.empty(0, np.int64)
    if len(ids) > 1 and not bool(np.all(ids[1:] > ids[:-1])):
        order = np.argsort(ids, kind="stable")
        return ids[order], order
    return ids, None


def _frame_parts(frames: Sequence[TickFrame], series: Mapping[int, SeriesMeta]) -> list[_FramePart]:
    def is_gauge(sid: int) -> bool:
        meta = series.get(sid)
        return meta is not None and meta.kind == "gauge"

    # Frames that hold the same series share one ids array: sort it once.
    sorted_by_array: dict[int, tuple[array[int], Int64s, Int64s | None]] = {}

    def ascending(sids: array[int]) -> tuple[Int64s, Int64s | None]:
        hit = sorted_by_array.get(id(sids))
        if hit is None:
            hit = sorted_by_array[id(sids)] = (sids, *_ascending(sids))  # keeps ``sids`` alive
        return hit[1], hit[2]

    parts: list[_FramePart] = []
    for frame in frames:
        # Dense from the frame before it (already dense): no chain of deltas is walked twice.
        frame.rebase()
        g_sids, g_vals, c_sids, c_vals = frame.materialize(is_gauge)
        for sids, values, gauge in ((g_sids, g_vals, True), (c_sids, c_vals, False)):
            if not len(sids):
                continue
            ids, order = ascending(sids)
            parts.append(_FramePart(frame.tick, gauge, ids, order, _numbers(values, gauge)))
    return parts


@dataclass(slots=True)
class _Run:
    """Consecutive frames of one kind over one series set, as handed over: the first frame's
    values whole, each later one only as the positions it changed. A range of series is
    expanded to all the run's ticks when its table is built, so a flush never holds every frame
    dense at once (ten frames of 100,000 series would be 9 MB more of peak)."""

    is_gauge: bool
    ticks: list[int]
    sids: Int64s  # ascending
    order: Int64s | None  # positions of ``sids`` in the value arrays (None: the same)
    first: Int64s | Floats  # the first frame's values, in position order
    #: Per later frame: the ranks (indices into ``sids``, ascending) it changed and their
    #: values; or None and every value, in position order, for a frame handed over dense.
    changes: list[tuple[Int64s | None, Int64s | Floats]]

    def _slice(self, dense: Int64s | Floats, a: int, b: int) -> Int64s | Floats:
        return dense[a:b] if self.order is None else dense[self.order[a:b]]

    def rows(self, a: int, b: int) -> tuple[Int64s, Int64s, Int64s | Floats]:
        """(sid, tick, value) of ``sids[a:b]`` in every tick of the run, by series then tick."""
        first = self._slice(self.first, a, b)
        values: npt.NDArray[Any] = np.empty((len(self.ticks), b - a), first.dtype)
        values[0] = first
        for j, (ranks, changed) in enumerate(self.changes, start=1):
            if ranks is None:
                values[j] = self._slice(changed, a, b)
                continue
            values[j] = values[j - 1]
            lo, hi = np.searchsorted(ranks, a), np.searchsorted(ranks, b)
            values[j][ranks[lo:hi] - a] = changed[lo:hi]
        n = len(self.ticks)
        return (
            np.repeat(self.sids[a:b], n),
            np.tile(np.array(self.ticks, np.int64), b - a),
            values.T.ravel(),
        )


def _numbers(values: array[Any], gauge: bool) -> Int64s | Floats:
    """A numpy view of a frame's values (typecode ``d`` for gauges, ``q`` for counters)."""
    if gauge:
        return np.frombuffer(values, np.float64) if len(values) else np.empty(0, np.float64)
    return np.frombuffer(values, np.int64) if len(values) else np.empty(0, np.int64)


def _runs(frames: Sequence[TickFrame], builder: TableBuilder) -> list[_Run]:
    """The runs of ``frames`` (ticks ascending, no fixes), gauges' then counters'."""
    runs: list[_Run] = []
    sets: dict[int, SeriesIds] = {}
    for gauge in (True, False):
        run: _Run | None = None
        previous: FrameValues | None = None
        for frame in frames:
            part = frame.g if gauge else frame.c
            values, _flags, positions, base = part.state
            if not len(part.series):
                run, previous = None, part
                continue
            # Series sets shared by frames (and flushes): their order is computed once.
            ids, order, rank = builder.ascending(part.series)
            sets[id(part.series)] = part.series
            if (
                run is not None
                and positions is None
                and previous is not None
                and (previous.series is part.series)
            ):
                run.ticks.append(frame.tick)  # dense, over the same series as the run
                run.changes.append((None, _numbers(values, gauge)))
            elif run is not None and positions is not None and base is previous:
                changed_at = np.frombuffer(positions, np.uint64).astype(np.int64)
                changed = _numbers(values, gauge)
                if rank is not None:
                    changed_at = rank[changed_at]
                    by_rank = np.argsort(changed_at, kind="stable")
                    changed_at, changed = changed_at[by_rank], changed[by_rank]
                run.ticks.append(frame.tick)
                run.changes.append((changed_at, changed))
            else:
                dense = values if positions is None else part.dense()[0]
                first = _numbers(dense, gauge)
                run = _Run(gauge, [frame.tick], ids, order, first, [])
                runs.append(run)
            previous = part
    builder.forget_orders(list(sets.values()))
    return runs


#: Rows of one kind for a range of series: (is_gauge, sid, tick, value), by series then tick.
_Piece = tuple[bool, Int64s, Int64s, Int64s | Floats]


def _merged_points(pieces: list[_Piece]) -> _Points:
    """Rows of ``pieces`` ((is_gauge, sid, tick, values), each by series then tick, pieces in
    tick order: those of one series never overlap in time) as points by series then tick."""
    if len(pieces) == 2 and pieces[0][0] != pieces[1][0]:
        # Gauges and counters (never the same series): each row's place is its index plus the
        # rows of the other kind with a smaller series id, without sorting or copying twice.
        gauges, counters = pieces if pieces[0][0] else pieces[::-1]
        (_, g_sid, g_tick, g_val), (_, c_sid, c_tick, c_val) = gauges, counters
        n = len(g_sid) + len(c_sid)
        at_g = np.arange(len(g_sid)) + np.searchsorted(c_sid, g_sid)
        at_c = np.arange(len(c_sid)) + np.searchsorted(g_sid, c_sid)
        sid, tick = np.empty(n, np.int64), np.empty(n, np.int64)
        sid[at_g], sid[at_c] = g_sid, c_sid
        tick[at_g], tick[at_c] = g_tick, c_tick
        value_float, value_int = np.zeros(n, np.float64), np.zeros(n, np.int64)
        value_float[at_g], value_int[at_c] = g_val, c_val
        is_gauge = np.zeros(n, np.bool_)
        is_gauge[at_g] = True
        return _Points(sid, tick, value_int, value_float, is_gauge)
    if len(pieces) == 1:
        gauge, sid, tick, values = pieces[0]
        n = len(sid)
        if gauge:
            return _Points(
                sid, tick, np.zeros(n, np.int64), values.astype(np.float64, copy=False),
                np.ones(n, np.bool_),
            )  # fmt: skip
        return _Points(
            sid, tick, values.astype(np.int64, copy=False), np.zeros(n, np.float64),
            np.zeros(n, np.bool_),
        )  # fmt: skip
    # Runs of one kind over changing series sets: a stable sort keeps each series' ticks in order.
    sid = np.concatenate([p[1] for p in pieces])
    tick = np.concatenate([p[2] for p in pieces])
    is_gauge = np.concatenate([np.full(len(p[1]), p[0], np.bool_) for p in pieces])
    value_int = np.concatenate(
        [np.zeros(len(p[1]), np.int64) if p[0] else p[3] for p in pieces]
    ).astype(np.int64, copy=False)
    value_float = np.concatenate(
        [p[3] if p[0] else np.zeros(len(p[1]), np.float64) for p in pieces]
    ).astype(np.float64, copy=False)
    return _Points(sid, tick, value_int, value_float, is_gauge).take(np.argsort(sid, kind="stable"))


def frames_to_tables(
    frames: Sequence[TickFrame],
    series: Mapping[int, SeriesMeta],
    layout: RowLayout,
    builder: TableBuilder | None = None,
    row_group_rows: int = ROW_GROUP_ROWS,
    summary: SummaryBuilder | None = None,
) -> Iterator[pa.Table]:
    """Rows of ``frames`` (ticks ascending, fixes applied) in the capture schema, as tables of
    about ``row_group_rows`` rows, each a range of series ids; ``builder`` reuses per-series
    columns between calls; ``summary``, when given, counts every row yielded."""
    builder = builder or TableBuilder()
    pieces_of: Callable[[int, int | None], list[_Piece]]
    if not any(frame.fixes for frame in frames):
        # The common case: the frames stay as handed over (deltas), each range of series is
        # expanded to its ticks only for its own table.
        runs = _runs(frames, builder)
        id_arrays = [run.sids for run in runs]

        def pieces_of(lo: int, hi: int | None) -> list[_Piece]:
            pieces: list[_Piece] = []
            for run in runs:
                a = int(np.searchsorted(run.sids, lo))
                b = len(run.sids) if hi is None else int(np.searchsorted(run.sids, hi))
                if b > a:
                    pieces.append((run.is_gauge, *run.rows(a, b)))
            return pieces

    else:
        # Delayed writes changed some values: the frames are made dense and the fixes applied.
        parts = _frame_parts(frames, series)
        id_arrays = [part.sids for part in parts]

        def pieces_of(lo: int, hi: int | None) -> list[_Piece]:
            pieces: list[_Piece] = []
            for part in parts:
                ids, values = part.rows(lo, hi)
                if len(ids):
                    ticks = np.full(len(ids), part.tick, np.int64)
                    pieces.append((part.is_gauge, ids, ticks, values))
            return pieces

    if not id_arrays:
        return
    distinct = list({id(ids): ids for ids in id_arrays}.values())
    sids = builder.known_sids(distinct, series)
    per_series = builder.series_columns(sids, series, layout)
    step = max(1, row_group_rows // max(1, len(frames)))
    for start in range(0, len(sids), step):
        lo = int(sids[start])
        hi = int(sids[start + step]) if start + step < len(sids) else None
        pieces = pieces_of(lo, hi)
        if pieces:
            points = _merged_points(pieces)
            pieces.clear()  # (the expanded ranges are not needed while the table is built)
            if summary is not None:
                _count(summary, points, series)
            table = per_series.table(points, layout)
            del points
            if table is not None:
                yield table
                del table  # not alive while the next one is built


def _count(summary: SummaryBuilder, points: _Points, series: Mapping[int, SeriesMeta]) -> None:
    """Count ``points`` (sorted by series, then tick) in ``summary``; unknown series are not."""
    summary.add(points.sid, points.tick, points.value_int, points.value_float, series)


def _numpy_int64(values: pa.Array) -> Int64s:
    return np.asarray(values.fill_null(0).to_numpy(zero_copy_only=False), np.int64)


def points_to_tables(
    points: PointColumns,
    series: Mapping[int, SeriesMeta],
    layout: RowLayout,
    row_group_rows: int = ROW_GROUP_ROWS,
    summary: SummaryBuilder | None = None,
) -> Iterator[pa.Table]:
    """Rows of ``points`` (any order) in the capture schema, as tables of at most
    ``row_group_rows`` rows sorted by series, then tick. Points of unknown series are dropped.
    ``summary``, when given, counts every row yielded."""
    if len(points.sid) == 0:
        return
    sid = _numpy_int64(points.sid)
    tick = _numpy_int64(points.tick)
    is_gauge = np.asarray(points.value_float.is_valid().to_numpy(zero_copy_only=False), np.bool_)
    value_float = np.asarray(
        points.value_float.fill_null(0.0).to_numpy(zero_copy_only=False), np.float64
    )
    everything = _Points(sid, tick, _numpy_int64(points.value_int), value_float, is_gauge)
    per_series = SeriesColumns.build(_known_sids(sid, series), series, layout)
    order = np.lexsort((tick, sid))
    for start in range(0, len(order), row_group_rows):
        part = everything.take(order[start : start + row_group_rows])
        if summary is not None:
            _count(summary, part, series)
        table = per_series.table(part, layout)
        if table is not None:
            yield table
