"""The Parquet schema of capture files: one row per series per tick."""

from __future__ import annotations

from collections.abc import Sequence

import pyarrow as pa

#: Map type of the ``labels`` column.
LABELS_TYPE = pa.map_(pa.string(), pa.string())


def capture_schema(label_columns: Sequence[str] = ()) -> pa.Schema:
    """The schema of a capture file with one nullable string column per ``label_columns`` name.

    No unsigned types and timestamps in UTC, so Spark, DuckDB, pandas and pyarrow all read it.
    """
    fields = [
        pa.field("run_id", pa.string(), nullable=False),
        pa.field("time", pa.timestamp("ms", tz="UTC"), nullable=False),
        pa.field("fetch_index", pa.int64(), nullable=False),
        pa.field("metric_name", pa.string(), nullable=False),
        pa.field("metric_kind", pa.string(), nullable=False),
        pa.field("value_int", pa.int64()),
        pa.field("value_float", pa.float64()),
    ]
    fields += [pa.field(name, pa.string()) for name in label_columns]
    fields.append(pa.field("labels", LABELS_TYPE))
    return pa.schema(fields)


#: How string columns are written: dictionary encoded in memory as on disk, so a flush of a
#: million rows holds each distinct string once. Files are written without the Arrow schema, so
#: every reader sees plain strings (:func:`capture_schema`).
WRITE_STRING = pa.dictionary(pa.int32(), pa.string())


def capture_write_schema(label_columns: Sequence[str] = ()) -> pa.Schema:
    """The in-memory schema of a flush: :func:`capture_schema` with dictionary strings."""
    return pa.schema(
        [
            pa.field(f.name, WRITE_STRING, nullable=f.nullable) if pa.types.is_string(f.type) else f
            for f in capture_schema(label_columns)
        ]
    )
