"""Merge finished Parquet files into one, rows ordered by metric, container and time.

:func:`merge_files` streams: it never holds a whole partition. A first pass reads the inputs one
row group at a time and spills each metric's rows to its own LZ4-compressed Arrow IPC file in a
scratch folder; a second pass takes the metrics in name order, sorts each one's rows by
container and time in memory (at most ``sort_budget_rows`` rows at once: a larger metric is
split by ranges of containers first, one more pass over its spill) and writes them to the output
in row groups of ``row_group_rows`` rows. Memory is therefore bounded by the sort budget, the
spill buffers (``spill_buffer_rows``) and one input row group, whatever the partition's size;
the scratch folder needs about the inputs' size again on disk, and is removed at the end.

The output is written with capture's own writer options (:func:`capture.files.parquet_options`:
ZSTD, dictionaries, delta encodings, min/max statistics on every column but the label map) plus
the page index, so that a reader prunes row groups and pages by ``metric_name``, the container
columns and ``time``.

The footer's key-value metadata is merged from the inputs' (:func:`merged_metadata`).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from pyarrow._parquet import ParquetWriter

from capture.files import parquet_options
from capture.summary import dumps as summary_json
from capture.summary import loads as summary_of
from capture.summary import merge_summaries
from common.contract import (
    COMPACTED_REPLACES_KEY,
    COMPACTED_RUN_IDS_KEY,
    CONTAINER_KEY_LABELS,
    LABEL_COLUMNS,
    SUMMARY_KEY,
)

#: Rows sorted in memory at once (a metric with more is split by containers first).
SORT_BUDGET_ROWS = 262_144
#: Rows of an output row group: about a metric's slice of a few containers, so that a
#: question about one metric and one container reads few row groups.
ROW_GROUP_ROWS = 262_144
#: Rows buffered across metrics in the first pass before they are spilled.
SPILL_BUFFER_ROWS = 262_144

REPLACES_KEY = COMPACTED_REPLACES_KEY
RUN_IDS_KEY = COMPACTED_RUN_IDS_KEY
#: Keys merged rather than kept only when every input agrees.
RUN_ID_KEY = "capture.run_id"
METRICS_KEY = "capture.metrics"

#: The sort column: the container a row belongs to (``container_id``, else the ``cgroup``
#: label, else ``pod_uid``), as ``finemon query`` defines ``container_key``. Spill only.
_CONTAINER = "__container"


class MergeError(Exception):
    """An input could not be read (gone, damaged): nothing was published."""


@dataclass(frozen=True, slots=True)
class MergeResult:
    """What :func:`merge_files` wrote: rows, row groups, the output's size and the inputs'."""

    rows: int
    row_groups: int
    output_bytes: int
    input_bytes: int


def read_footer_metadata(path: Path) -> dict[str, str]:
    """The key-value metadata of the Parquet footer of ``path`` (decoded). Raises OSError or
    pyarrow.ArrowException for a file that cannot be read."""
    meta = pq.read_metadata(path)
    return {k.decode(): v.decode(errors="replace") for k, v in (meta.metadata or {}).items()}


def _json_list(text: str | None) -> list[str]:
    if not text:
        return []
    try:
        value = json.loads(text)
    except ValueError:
        return []
    return [str(v) for v in value] if isinstance(value, list) else []


def merged_metadata(inputs: Sequence[tuple[str, Mapping[str, str]]]) -> dict[str, str]:
    """The footer metadata of a file made of ``inputs`` (``(file name, its metadata)``).

    - ``capture.metrics``: the union of the inputs' descriptions.
    - ``capture.run_id``: kept when every input holds the same one run; otherwise left out, and
      readers take the runs from the rows (the analysis's explorer does so for a file without
      it). ``finemon.compacted.run_ids`` always lists every run the file holds.
    - ``finemon.compacted.replaces``: the names of the inputs, which the file replaces (the
      uploader deletes their objects in the bucket).
    - ``capture.summary``: the inputs' summaries merged (:func:`capture.summary.merge_summaries`:
      every run's containers, metrics and aggregates, counters chained in time order); left out
      when an input has none (an older file), so that no reader trusts a summary of part of
      the rows: the index then computes it from the rows.
    - Every other key: kept when every input has the same value, left out otherwise.
    """
    summaries = [summary_of(meta.get(SUMMARY_KEY)) for _name, meta in inputs]
    run_ids: set[str] = set()
    metrics: dict[str, Any] = {}
    common: dict[str, str] | None = None
    for _name, meta in inputs:
        listed = _json_list(meta.get(RUN_IDS_KEY))
        run_ids.update(listed or ([meta[RUN_ID_KEY]] if meta.get(RUN_ID_KEY) else []))
        try:
            described = json.loads(meta.get(METRICS_KEY, "{}"))
        except ValueError:
            described = {}
        if isinstance(described, dict):
            for metric, description in described.items():
                metrics.setdefault(str(metric), description)
        plain = {k: v for k, v in meta.items() if k not in (METRICS_KEY, REPLACES_KEY, SUMMARY_KEY)}
        common = (
            dict(plain)
            if common is None
            else {k: v for k, v in common.items() if plain.get(k) == v}
        )
    out = dict(common or {})
    out.pop(RUN_IDS_KEY, None)
    if len(run_ids) != 1:
        out.pop(RUN_ID_KEY, None)
    if metrics:
        out[METRICS_KEY] = json.dumps(metrics, sort_keys=True, separators=(",", ":"))
    if summaries and all(found is not None for found in summaries):
        merged = merge_summaries(found for found in summaries if found is not None)
        if merged is not None:
            out[SUMMARY_KEY] = summary_json(merged)
    out[RUN_IDS_KEY] = json.dumps(sorted(run_ids))
    out[REPLACES_KEY] = json.dumps(sorted(name for name, _ in inputs))
    return out


def _container_key(table: pa.Table) -> pa.Array:
    candidates: list[Any] = []
    names = table.column_names
    has_map = "labels" in names and pa.types.is_map(table.schema.field("labels").type)
    for label in CONTAINER_KEY_LABELS:
        if label in LABEL_COLUMNS:
            if label in names:
                candidates.append(table[label])
        elif has_map:
            candidates.append(pc.map_lookup(table["labels"], label, "first"))
    if not candidates:
        return pa.nulls(table.num_rows, pa.string())
    key = pc.coalesce(*candidates) if len(candidates) > 1 else candidates[0]
    return key.combine_chunks() if isinstance(key, pa.ChunkedArray) else key


def _sort(table: pa.Table) -> pa.Table:
    # One metric at a time: its rows by container, then time.
    return table.sort_by([(_CONTAINER, "ascending"), ("time", "ascending")])


class _Spill:
    """One metric's rows, appended to an LZ4-compressed Arrow IPC stream."""

    def __init__(self, path: Path, schema: pa.Schema) -> None:
        self.path = path
        self.schema = schema
        self.rows = 0
        self._file: IO[bytes] = open(path, "wb")  # noqa: SIM115 - closed in close()
        self._writer = pa.ipc.new_stream(
            self._file, schema, options=pa.ipc.IpcWriteOptions(compression="lz4")
        )

    def write(self, table: pa.Table) -> None:
        self._writer.write_table(table)
        self.rows += table.num_rows

    def close(self) -> None:
        self._writer.close()
        self._file.close()

    def batches(self) -> Iterator[pa.RecordBatch]:
        with pa.OSFile(str(self.path)) as source:
            yield from pa.ipc.open_stream(source)


class _Output:
    """The output file: sorted tables in, row groups of exactly ``row_group_rows`` out."""

    def __init__(
        self, path: Path, schema: pa.Schema, compression_level: int, row_group_rows: int
    ) -> None:
        self.schema = schema
        self.row_group_rows = row_group_rows
        self.rows = 0
        self.row_groups = 0
        self._pending: list[pa.Table] = []
        self._pending_rows = 0
        self._writer = ParquetWriter(
            str(path),
            schema,
            version="2.6",
            data_page_version="1.0",
            writer_engine_version="V2",
            write_page_index=True,
            **parquet_options(schema, compression_level),
        )

    def add(self, table: pa.Table) -> None:
        self._pending.append(table.drop_columns([_CONTAINER]))
        self._pending_rows += table.num_rows
        while self._pending_rows >= self.row_group_rows:
            self._write(self.row_group_rows)

    def _write(self, rows: int) -> None:
        whole = pa.concat_tables(self._pending)
        group, rest = whole.slice(0, rows), whole.slice(rows)
        self._writer.write_table(group, row_group_size=group.num_rows)
        self.rows += group.num_rows
        self.row_groups += 1
        self._pending = [rest] if rest.num_rows else []
        self._pending_rows = rest.num_rows

    def close(self, metadata: Mapping[str, str]) -> None:
        if self._pending_rows:
            self._write(self._pending_rows)
        self._writer.add_key_value_metadata(dict(metadata))
        self._writer.close()

    def abandon(self) -> None:
        try:
            self._writer.close()
        except (OSError, pa.ArrowException):
            pass


def _input_tables(
    paths: Sequence[Path], schema: pa.Schema, spill_schema: pa.Schema
) -> Iterator[pa.Table]:
    """Every row group of every input (of ``schema``), in order, with the container key."""
    for path in paths:
        try:
            # Strings stay dictionary-encoded in memory, as in the file: a row group's
            # container ids and names are held once each.
            parquet = pq.ParquetFile(path, read_dictionary=_string_columns(schema))
            if not pa.schema(
                [
                    f.with_type(pa.string()) if pa.types.is_dictionary(f.type) else f
                    for f in parquet.schema_arrow
                ]
            ).equals(schema):
                raise MergeError(f"{path}: its columns differ from the other files'")
            for index in range(parquet.num_row_groups):
                table = parquet.read_row_group(index)
                table = table.append_column(_CONTAINER, _container_key(table))
                yield table.cast(spill_schema)
        except (OSError, pa.ArrowException) as exc:
            raise MergeError(f"{path}: {exc}") from exc


def _string_columns(schema: pa.Schema) -> list[str]:
    return [f.name for f in schema if pa.types.is_string(f.type)]


def _by_metric(table: pa.Table) -> Iterator[tuple[str, pa.Table]]:
    """``table``'s rows split by metric name (input order kept within each)."""
    encoded = pc.dictionary_encode(table["metric_name"]).combine_chunks()
    codes = encoded.indices.to_numpy(zero_copy_only=False)
    names = encoded.dictionary.to_pylist()
    if len(codes) < 2 or bool(np.all(codes[1:] >= codes[:-1])):
        # Capture writes a row group's rows by series, so each metric's rows are already
        # together (dictionary codes follow first appearance): slices, no copy.
        sorted_codes, taken = codes, table
    else:
        order = np.argsort(codes, kind="stable")
        sorted_codes, taken = codes[order], table.take(pa.array(order))
    starts = np.flatnonzero(np.r_[True, sorted_codes[1:] != sorted_codes[:-1]])
    ends = np.r_[starts[1:], len(sorted_codes)]
    for start, end in zip(starts.tolist(), ends.tolist(), strict=True):
        yield str(names[int(sorted_codes[start])]), taken.slice(start, end - start)


class _SpillSet:
    """The first pass's spills, one per metric, buffered up to ``buffer_rows`` in all."""

    def __init__(self, folder: Path, schema: pa.Schema, buffer_rows: int) -> None:
        self.folder = folder
        self.schema = schema
        self.buffer_rows = buffer_rows
        self.spills: dict[str, _Spill] = {}
        self._buffered: dict[str, list[pa.Table]] = {}
        self._buffered_rows = 0

    def add(self, metric: str, table: pa.Table) -> None:
        self._buffered.setdefault(metric, []).append(table)
        self._buffered_rows += table.num_rows
        if self._buffered_rows >= self.buffer_rows:
            self.flush()

    def flush(self) -> None:
        for metric, tables in self._buffered.items():
            spill = self.spills.get(metric)
            if spill is None:
                spill = _Spill(self.folder / f"{len(self.spills):05d}.arrows", self.schema)
                self.spills[metric] = spill
            spill.write(pa.concat_tables(tables))
        self._buffered.clear()
        self._buffered_rows = 0

    def close(self) -> None:
        self.flush()
        for spill in self.spills.values():
            spill.close()


def _container_ranges(spill: _Spill, budget_rows: int) -> list[list[str | None]]:
    """Consecutive ranges of ``spill``'s containers (in sort order, null last) of at most
    ``budget_rows`` rows each (a container with more is a range of its own)."""
    counts: dict[str | None, int] = {}
    for batch in spill.batches():
        for pair in pc.value_counts(batch.column(_CONTAINER)).to_pylist():
            key, count = pair["values"], int(pair["counts"])
            counts[key] = counts.get(key, 0) + count
    keys = sorted(counts, key=lambda k: (k is None, k or ""))
    ranges: list[list[str | None]] = []
    current: list[str | None] = []
    current_rows = 0
    for key in keys:
        rows = counts[key]
        if current and current_rows + rows > budget_rows:
            ranges.append(current)
            current, current_rows = [], 0
        current.append(key)
        current_rows += rows
    if current:
        ranges.append(current)
    return ranges


def _emit_metric(spill: _Spill, out: _Output, budget_rows: int, scratch: Path) -> None:
    if spill.rows <= budget_rows:
        out.add(_sort(pa.Table.from_batches(list(spill.batches()), spill.schema)))
        return
    # Too many rows to sort at once: split by ranges of containers (one pass), then sort each
    # range; a single container with more rows is sorted by the budget's worth, in input order
    # (files in time order, so nearly sorted by time).
    ranges = _container_ranges(spill, budget_rows)
    parts = [
        _Spill(scratch / f"{spill.path.stem}-{i:05d}.arrows", spill.schema)
        for i in range(len(ranges))
    ]
    where = {key: i for i, keys in enumerate(ranges) for key in keys}
    null_part = where.get(None)
    value_sets = [pa.array([k for k in keys if k is not None], pa.string()) for keys in ranges]
    for batch in spill.batches():
        table = pa.Table.from_batches([batch])
        column = table[_CONTAINER]
        for i, values in enumerate(value_sets):
            mask = pc.is_in(column, value_set=values)
            if i == null_part:
                mask = pc.or_kleene(mask, pc.is_null(column))
            part = table.filter(mask)
            if part.num_rows:
                parts[i].write(part)
    for part in parts:
        part.close()
        pending: list[pa.RecordBatch] = []
        pending_rows = 0
        for batch in part.batches():
            pending.append(batch)
            pending_rows += batch.num_rows
            if pending_rows >= budget_rows:
                out.add(_sort(pa.Table.from_batches(pending, part.schema)))
                pending, pending_rows = [], 0
        if pending:
            out.add(_sort(pa.Table.from_batches(pending, part.schema)))
        part.path.unlink()


def merge_files(
    inputs: Sequence[Path],
    output: Path,
    *,
    metadata: Mapping[str, str],
    compression_level: int = 3,
    scratch: Path,
    sort_budget_rows: int = SORT_BUDGET_ROWS,
    row_group_rows: int = ROW_GROUP_ROWS,
    spill_buffer_rows: int = SPILL_BUFFER_ROWS,
) -> MergeResult:
    """Write every row of ``inputs`` (Parquet files of one schema) to ``output``, ordered by
    ``metric_name``, container and ``time``, with ``metadata`` in the footer; fsynced. The
    ``scratch`` folder is created and removed. Raises :class:`MergeError` when an input cannot
    be read or their schemas differ, OSError when the output cannot be written; ``output`` may
    then be left behind, for the caller to remove."""
    if not inputs:
        raise ValueError("nothing to merge")
    try:
        schema = pq.read_schema(inputs[0])
    except (OSError, pa.ArrowException) as exc:
        raise MergeError(f"{inputs[0]}: {exc}") from exc
    input_bytes = 0
    for path in inputs:
        try:
            input_bytes += path.stat().st_size
        except OSError as exc:
            raise MergeError(f"{path}: {exc}") from exc
    dictionary = pa.dictionary(pa.int32(), pa.string())
    spill_schema = pa.schema(
        [
            pa.field(f.name, dictionary, f.nullable) if pa.types.is_string(f.type) else f
            for f in schema
        ]
    ).append(pa.field(_CONTAINER, pa.string()))
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    try:
        spills = _SpillSet(scratch, spill_schema, spill_buffer_rows)
        try:
            for table in _input_tables(inputs, schema, spill_schema):
                for metric, part in _by_metric(table):
                    spills.add(metric, part)
        finally:
            spills.close()
        # Written from the dictionary-encoded spills as they are (the file's types are the
        # same: strings), as capture writes its own files.
        out = _Output(
            output, spill_schema.remove(len(spill_schema) - 1), compression_level, row_group_rows
        )
        try:
            for metric in sorted(spills.spills):
                spill = spills.spills[metric]
                _emit_metric(spill, out, sort_budget_rows, scratch)
                spill.path.unlink()
            out.close(metadata)
        except BaseException:
            out.abandon()
            raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    fd = os.open(output, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    return MergeResult(out.rows, out.row_groups, output.stat().st_size, input_bytes)
