"""``finemon query``: SQL over an output directory, printed as a table or CSV."""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from pathlib import Path

from analysis.dataset import connect, name_containers, reads_containers
from analysis.errors import AnalysisError, one_line, require
from analysis.source import Source

#: Rows printed by default; the rest are counted as cut.
DEFAULT_MAX_ROWS = 1000


@dataclass(frozen=True, slots=True)
class QueryResult:
    """The columns and rows of a query; ``cut`` is true when rows beyond ``max_rows`` were left."""

    columns: tuple[str, ...]
    rows: list[tuple[object, ...]]
    cut: bool = False


def run_query(directory: str | Path | Source, sql: str, max_rows: int | None = None) -> QueryResult:
    """Run ``sql`` (one or more statements; the last one's rows are returned) over the
    ``metrics`` view of ``directory`` (a folder, or a bucket read in place), keeping at most
    ``max_rows`` rows. SQL that reads the ``containers`` view gets its container names
    (:func:`analysis.dataset.name_containers`).

    Raises :class:`AnalysisError` with DuckDB's message on one line for bad SQL.
    """
    duckdb = require("duckdb")
    con = connect(directory)
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
