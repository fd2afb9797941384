"""Read-only SQL over the dataset, in a sandbox: one ``SELECT``, bounded rows, time and bytes.

:class:`SqlSandbox` runs user SQL (an agent's, through ``finemon mcp``) on a connection of its
own with the ``metrics`` and ``containers`` views and the ``rate``/``increase`` macros, bounded
in memory, threads and spill, without file access beyond the dataset's folder and with its
configuration locked so a query cannot undo any of that.
"""

from __future__ import annotations

import json
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from analysis.dataset import connect, name_containers, reads_containers, sql_string
from analysis.errors import AnalysisError, one_line, require

if TYPE_CHECKING:
    import duckdb

    from analysis.objects import DataObjects
    from analysis.source import Source

#: Row limit and timeout of :meth:`SqlSandbox.run` by default, and their ceilings.
DEFAULT_SQL_LIMIT = 1000
MAX_SQL_LIMIT = 100_000
DEFAULT_SQL_TIMEOUT_SECONDS = 10.0
#: What one :meth:`SqlSandbox.run` result may weigh by default: its rows as compact JSON.
DEFAULT_SQL_RESULT_BYTES = 1024 * 1024
#: Bounds of the connection :meth:`SqlSandbox.run` runs on: DuckDB's memory (its buffer
#: manager: sorts, hash tables, aggregates, cached file data), its threads, and what it may
#: spill to disk, in a private temporary folder removed with the sandbox.
SQL_MEMORY_LIMIT_BYTES = 512 * 1024 * 1024
SQL_THREADS = 2
SQL_SPILL_LIMIT_BYTES = 1024 * 1024 * 1024
#: How often a query past its timeout is interrupted again, until it stops.
_INTERRUPT_EVERY_SECONDS = 0.05
#: What the check of :meth:`SqlSandbox.run` raises for a value too large for any result.
_VALUE_TOO_LARGE = "finemon: a value is larger than the result may be"


@dataclass(frozen=True, slots=True)
class QueryResult:
    """Rows of a read-only query: at most ``limit`` rows; ``truncated`` when there were more."""

    columns: tuple[str, ...]
    types: tuple[str, ...]
    rows: list[tuple[object, ...]]
    truncated: bool
    seconds: float


class RefusedQueryError(AnalysisError):
    """SQL that :meth:`SqlSandbox.run` does not run (not a single read-only SELECT)."""


class SqlSandbox:
    """User SQL over the dataset of ``directory`` (see the module's documentation): a local
    folder, or a bucket's source and its ``objects`` (the explorer's, listed already).

    The connection is opened at the first query and again after :meth:`reset` (new files).
    ``names`` gives the containers' (key, name, full name) for the ``containers`` view, asked
    for at the first query that reads it (the explorer's, so SQL names containers as the
    viewer does). Not thread-safe: the explorer calls it holding its lock. Raises
    :class:`MissingExtraError` without duckdb.
    """

    def __init__(
        self,
        directory: Path | Source,
        names: Callable[[], Iterable[tuple[str, str, str]]],
        objects: DataObjects | None = None,
    ) -> None:
        self.directory = directory
        self._objects = objects
        self._duckdb = require("duckdb")
        self._names = names
        self._con: duckdb.DuckDBPyConnection | None = None
        self._named = False
        self._spill: tempfile.TemporaryDirectory[str] | None = None

    def reset(self) -> None:
        """Close the connection: the next query opens one over the files there are then."""
        if self._con is not None:
            self._con.close()
            self._con = None
        self._named = False

    def close(self) -> None:
        """Close the connection and remove the spill folder."""
        self.reset()
        if self._spill is not None:
            self._spill.cleanup()
            self._spill = None

    def _connection(self) -> duckdb.DuckDBPyConnection:
        """A connection for user SQL: the dataset's views, bounded in memory, threads and
        spill (see ``SQL_*``), no file access beyond the dataset's folder, and its
        configuration locked so a query cannot undo any of that."""
        if self._con is None:
            if self._spill is None:
                self._spill = tempfile.TemporaryDirectory(prefix="finemon-sql-")
            con = connect(self.directory, objects=self._objects)
            # A bucket's objects are scanned through pyarrow: no local folder is read.
            dataset = self.directory.resolve() if isinstance(self.directory, Path) else None
            try:
                for setting in _sql_settings(dataset, Path(self._spill.name)):
                    con.execute(setting)
            except BaseException:
                con.close()
                raise
            self._con = con
        return self._con

    def run(
        self,
        query: str,
        *,
        limit: int = DEFAULT_SQL_LIMIT,
        timeout_seconds: float = DEFAULT_SQL_TIMEOUT_SECONDS,
        max_bytes: int = DEFAULT_SQL_RESULT_BYTES,
    ) -> QueryResult:
        """Run one read-only ``SELECT`` (or ``WITH ... SELECT``, ``VALUES``, ``FROM ...``)
        over the ``metrics`` and ``containers`` views and the ``rate``/``increase`` macros.

        Anything else (several statements, ``INSERT``, ``COPY``, ``ATTACH``, ``SET``,
        ``PRAGMA``, ``INSTALL``/``LOAD`` ...) raises :class:`RefusedQueryError`; the connection
        cannot read files outside the dataset's folder, nor change its settings. Comments
        (a final ``-- ...`` too) and a final ``;`` are fine.

        Bounds, each a one-line :class:`AnalysisError` when hit: at most ``limit`` rows are
        returned (``truncated`` tells whether there were more); a query running longer than
        ``timeout_seconds``, fetching included, is interrupted; the rows may weigh
        ``max_bytes`` as compact JSON: the result is streamed one row at a time and stops
        there, and a single value larger than that stops the query before it reaches
        Python; DuckDB may use ``SQL_MEMORY_LIMIT_BYTES`` of memory, ``SQL_THREADS`` threads
        and spill ``SQL_SPILL_LIMIT_BYTES`` to disk.
        """
        limit = max(0, min(int(limit), MAX_SQL_LIMIT))
        wrapped = self._wrapped_statement(query, limit + 1, max_bytes)
        con = self._connection()
        if not self._named and reads_containers(query):
            name_containers(con, self._names())
            self._named = True
        began = time.monotonic()
        stop = threading.Event()
        interrupter = threading.Thread(
            target=_interrupt_from,
            args=(con, timeout_seconds, stop),
            name="finemon-sql-timeout",
            daemon=True,
        )
        interrupter.start()
        try:
            con.execute(wrapped)
            description = con.description or []
            rows, truncated = _bounded_rows(con, limit, max_bytes, began + timeout_seconds)
        except (self._duckdb.InterruptException, _PastDeadlineError):
            raise _timeout_error(timeout_seconds) from None
        except self._duckdb.OutOfMemoryException:
            raise AnalysisError(
                f"the query needs more memory than it may use "
                f"({_mib(SQL_MEMORY_LIMIT_BYTES)}, and {_mib(SQL_SPILL_LIMIT_BYTES)} "
                "spilled to disk): filter or aggregate more, or select fewer columns"
            ) from None
        except self._duckdb.Error as exc:
            if _VALUE_TOO_LARGE in str(exc):
                raise _too_large_error(max_bytes, "a single value is") from None
            raise AnalysisError(one_line(str(exc))) from None
        finally:
            # No interrupt may outlive this query (it would stop the next one).
            stop.set()
            interrupter.join()
            _drop_result(con)
        seconds = time.monotonic() - began
        return QueryResult(
            columns=tuple(str(d[0]) for d in description),
            types=tuple(str(d[1]) for d in description),
            rows=rows,
            truncated=truncated,
            seconds=seconds,
        )

    def _wrapped_statement(self, query: str, rows: int, max_value_bytes: int) -> str:
        """``query`` checked to be one read-only statement, limited to ``rows`` rows, and
        failing with ``_VALUE_TOO_LARGE`` on a value longer than ``max_value_bytes`` as text."""
        statement = _without_trailer(self._one_select(query), self._duckdb)
        # On lines of its own: a comment on its last line cannot swallow the wrapper. The check
        # sits above the limit, so it reads only the rows returned; COLUMNS(*) makes it one
        # check per column (a VARCHAR is measured without a copy).
        wrapped = (
            f"SELECT * FROM (SELECT * FROM (\n{statement}\n) AS q LIMIT {rows}) AS q\n"
            f"WHERE CASE WHEN strlen(CAST(COLUMNS(*) AS VARCHAR)) > {max_value_bytes}\n"
            f"THEN error({sql_string(_VALUE_TOO_LARGE)}) ELSE true END"
        )
        self._one_select(wrapped)
        return wrapped

    def _one_select(self, query: str) -> str:
        """The text of the one ``SELECT`` in ``query``, else :class:`RefusedQueryError`."""
        try:
            statements = self._duckdb.extract_statements(query)
        except self._duckdb.Error as exc:
            raise AnalysisError(one_line(str(exc))) from None
        if not statements:
            raise RefusedQueryError("no SQL statement in the query (only comments or ';')")
        if len(statements) != 1:
            raise RefusedQueryError(f"one SELECT statement only, got {len(statements)} statements")
        statement = statements[0]
        if statement.type != self._duckdb.StatementType.SELECT:
            kind = str(statement.type).rsplit(".", 1)[-1]
            raise RefusedQueryError(f"read-only: only SELECT queries run here, not {kind}")
        return str(statement.query)


def _sql_settings(dataset: Path | None, spill: Path) -> list[str]:
    """The statements that bound and lock the user-SQL connection, the lock last; files may
    be read under ``dataset`` only (none when None)."""
    allowed = sql_string(str(dataset)) if dataset is not None else ""
    return [
        f"SET memory_limit = '{SQL_MEMORY_LIMIT_BYTES}B'",
        f"SET threads = {SQL_THREADS}",
        f"SET temp_directory = {sql_string(str(spill))}",
        f"SET max_temp_directory_size = '{SQL_SPILL_LIMIT_BYTES}B'",
        f"SET allowed_directories = [{allowed}]",
        "SET enable_external_access = false",
        "SET lock_configuration = true",
    ]


def _without_trailer(statement: str, duckdb_module: Any) -> str:
    """``statement`` without the comments and ``;`` that end it (by DuckDB's own tokenizer,
    so a ``;`` or ``--`` inside a string, a quoted name or a comment stays)."""
    comment = duckdb_module.token_type.comment
    operator = duckdb_module.token_type.operator
    text = statement.encode()  # the tokenizer's positions are offsets in UTF-8
    cut = len(text)
    for position, kind in reversed(duckdb_module.tokenize(statement)):
        if kind == comment or (kind == operator and text.startswith(b";", position)):
            cut = position
        else:
            break
    return text[:cut].decode().rstrip()


class _PastDeadlineError(Exception):
    """Rows were still being fetched when the query's time was up."""


def _interrupt_from(con: duckdb.DuckDBPyConnection, seconds: float, stop: threading.Event) -> None:
    """After ``seconds``, interrupt ``con`` again and again until ``stop`` is set: DuckDB looks
    for an interrupt between tasks and chunks, so one call that lands in between (while Python
    converts a row) must not be all there is."""
    if stop.wait(seconds):
        return
    while not stop.is_set():
        con.interrupt()
        stop.wait(_INTERRUPT_EVERY_SECONDS)


def _drop_result(con: duckdb.DuckDBPyConnection) -> None:
    """Let go of what is left of the result pending on ``con`` (and of the memory it holds):
    duckdb 2 has ``abort()`` for it (an unread result blocks the connection there); before,
    the next statement replaces it."""
    abort = getattr(con, "abort", None)
    if abort is not None:
        abort()
    else:
        con.execute("SELECT NULL")


def _bounded_rows(
    con: duckdb.DuckDBPyConnection, limit: int, max_bytes: int, deadline: float
) -> tuple[list[tuple[object, ...]], bool]:
    """Up to ``limit`` rows of the result pending on ``con`` and whether there are more.

    Fetched one at a time (a row costs microseconds), so no more is ever converted to Python
    than ``max_bytes`` and one row. Raises :class:`AnalysisError` when the rows weigh more
    than ``max_bytes`` as a compact JSON array, :class:`_PastDeadlineError` past
    ``deadline`` (a ``time.monotonic()`` value).
    """
    rows: list[tuple[object, ...]] = []
    total_bytes = 2  # the brackets of the JSON array
    while True:
        fetched = con.fetchmany(1)
        if time.monotonic() > deadline:
            raise _PastDeadlineError
        if not fetched:
            return rows, False
        if len(rows) == limit:
            return rows, True
        row = tuple(fetched[0])
        total_bytes += _json_bytes(row) + (1 if rows else 0)
        if total_bytes > max_bytes:
            raise _too_large_error(max_bytes, f"after {len(rows)} rows")
        rows.append(row)


def _json_bytes(row: tuple[object, ...]) -> int:
    """The size of ``row`` as compact JSON, in bytes (what JSON cannot hold counts as text)."""
    text = json.dumps(row, ensure_ascii=False, separators=(",", ":"), default=str, skipkeys=True)
    return len(text.encode())


def _mib(size_bytes: int) -> str:
    mib = size_bytes / (1024 * 1024)
    return f"{mib:g} MiB" if mib >= 1 else f"{size_bytes} bytes"


def _too_large_error(max_bytes: int, where: str) -> AnalysisError:
    return AnalysisError(
        f"the result is larger than {_mib(max_bytes)} of JSON ({where}): select fewer rows "
        "or columns, shorten long values, or aggregate"
    )


def _timeout_error(timeout_seconds: float) -> AnalysisError:
    return AnalysisError(f"the query ran longer than {timeout_seconds:g} s and was stopped")
