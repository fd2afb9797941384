"""``finemon query``: SQL over an output directory, printed as a table or CSV."""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING

from analysis.dataset import connect, name_containers, reads_containers
from analysis.errors import AnalysisError, one_line, require
from analysis.query.dataset_index import open_local_index, report_unreadable
from analysis.query.times import to_epoch_ms
from analysis.source import Source, as_source

if TYPE_CHECKING:
    import duckdb

#: Rows printed by default; the rest are counted as cut.
DEFAULT_MAX_ROWS = 1000


@dataclass(frozen=True, slots=True)
class QueryResult:
    """The columns and rows of a query; ``cut`` is true when rows beyond ``max_rows`` were left."""

    columns: tuple[str, ...]
    rows: list[tuple[object, ...]]
    cut: bool = False


def run_query(
    directory: str | Path | Source,
    sql: str,
    max_rows: int | None = None,
    *,
    start: datetime | None = None,
    end: datetime | None = None,
    container_keys: Sequence[str] | None = None,
) -> QueryResult:
    """Run ``sql`` (one or more statements; the last one's rows are returned) over the
    ``metrics`` view of ``directory`` (a folder, or a bucket read in place), keeping at most
    ``max_rows`` rows. SQL that reads the ``containers`` view gets its container names
    (:func:`analysis.dataset.name_containers`).

    With ``start``/``end`` (UTC; either may be left open) or ``container_keys``, the view holds
    only those ticks' and containers' rows, and only the files whose summaries (the index
    beside the data: :mod:`analysis.query.dataset_index`, in a bucket
    :mod:`analysis.bucket_index`) overlap them are read, then only their row groups that may
    hold such rows.

    Raises :class:`AnalysisError` with DuckDB's message on one line for bad SQL, and when no
    file holds rows of that range and those containers.
    """
    duckdb = require("duckdb")
    if start is None and end is None and container_keys is None:
        con = connect(directory)
    else:
        con = _selected(as_source(directory), start, end, container_keys)
    try:
        if reads_containers(sql):
            name_containers(con)
        cursor = con.execute(sql)
        if cursor.description is None:
            return QueryResult(columns=(), rows=[])
        columns = tuple(str(column[0]) for column in cursor.description)
        if max_rows is None:
            return QueryResult(columns, cursor.fetchall())
        rows = cursor.fetchmany(max_rows + 1)
        return QueryResult(columns, rows[:max_rows], cut=len(rows) > max_rows)
    except duckdb.Error as exc:
        raise AnalysisError(one_line(str(exc))) from None
    finally:
        con.close()


def _selected(
    source: Source,
    start: datetime | None,
    end: datetime | None,
    container_keys: Sequence[str] | None,
) -> duckdb.DuckDBPyConnection:
    """A connection over the files that may hold rows of ``container_keys`` between ``start``
    and ``end``, its ``metrics`` view holding those rows only."""
    low = -(2**62) if start is None else to_epoch_ms(start)
    high = 2**62 if end is None else to_epoch_ms(end)
    if high < low:
        raise AnalysisError(f"the range ends before it starts: {start} to {end}")
    directory = source.local
    if directory is None and source.filesystem is not None:  # a bucket: its index picks
        from analysis.objects import DataObjects  # noqa: PLC0415 - s3:// only

        objects = DataObjects(source, time_range_ms=(low, high), container_keys=container_keys)
        return connect(
            source, objects=objects, container_keys=container_keys, time_range_ms=(low, high)
        )
    if directory is None or not directory.is_dir():  # a single file: no index
        return connect(source, container_keys=container_keys, time_range_ms=(low, high))
    index = open_local_index(directory)
    report_unreadable(directory, index.stats.unreadable)
    wanted = None if container_keys is None else set(container_keys)
    files = sorted(
        directory / f.path
        for f in index.files.values()
        if f.rows
        and (wanted is None or wanted & f.keys)
        and (f.first_ms is None or f.first_ms <= high)
        and (f.last_ms is None or f.last_ms >= low)
    )
    if not files:
        raise AnalysisError(f"{directory}: no file holds rows of that range and those containers")
    return connect(directory, files=files, container_keys=container_keys, time_range_ms=(low, high))


def format_value(value: object) -> str:
    """One cell as text: NULL, UTC times as ``2024-01-31 23:59:30.250+00:00``, maps as
    ``{k=v, ...}``, floats with 10 significant digits."""
    if value is None:
        return "NULL"
    if isinstance(value, datetime):
        return value.isoformat(sep=" ", timespec="milliseconds" if value.microsecond else "seconds")
    if isinstance(value, float):
        return f"{value:.10g}"
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{k}={format_value(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(format_value(v) for v in value) + "]"
    return str(value).replace("\n", "\\n")


def _is_number(value: object) -> bool:
    return isinstance(value, int | float | Decimal) and not isinstance(value, bool)


def format_table(result: QueryResult) -> str:
    """``result`` as an aligned text table (numbers right-aligned) with a row count."""
    if not result.columns:
        return "OK"
    cells = [[format_value(value) for value in row] for row in result.rows]
    widths = [len(name) for name in result.columns]
    for row in cells:
        widths = [max(w, len(cell)) for w, cell in zip(widths, row, strict=True)]
    numeric = [
        bool(result.rows) and all(_is_number(row[i]) or row[i] is None for row in result.rows)
        for i in range(len(result.columns))
    ]

    def line(values: Sequence[str]) -> str:
        return "  ".join(
            value.rjust(width) if right else value.ljust(width)
            for value, width, right in zip(values, widths, numeric, strict=True)
        ).rstrip()

    out = [line(result.columns), line(["-" * w for w in widths])]
    out += [line(row) for row in cells]
    count = len(result.rows)
    if result.cut:
        out.append(f"(first {count} rows; more were cut, see --max-rows)")
    else:
        out.append(f"({count} row{'' if count == 1 else 's'})")
    return "\n".join(out)


def format_csv(result: QueryResult) -> str:
    """``result`` as CSV with a header line; NULL is an empty field."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(result.columns)
    for row in result.rows:
        writer.writerow(["" if value is None else format_value(value) for value in row])
    return buffer.getvalue()
