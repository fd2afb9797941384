"""A DuckDB connection over a finemon output directory: the ``metrics`` view and its macros.

:func:`connect` opens an in-memory DuckDB database (time zone UTC, no extension downloads) with

``metrics`` (view)
    Every row of every Parquet file under the directory (Hive partitions ``dt`` as DATE and any
    other ``key=value`` folder as VARCHAR), with the standard columns always present (null where
    a file lacks one), plus

    * ``container_key``: ``container_id``, else the ``cgroup`` label (hosts that are not
      Kubernetes nodes), else ``pod_uid``; null for node-wide rows (``finemon.*``,
      ``capture.*``). It stays the same when a container's names appear late.
    * ``series``: a 64-bit hash naming one series of one run: ``run_id``, ``metric_name``,
      ``container_key``, the ``labels`` map and any label column beyond the standard ones. The
      name columns are left out on purpose, so a container's series goes on unbroken when
      kubelet's names appear late (see docs/metrics.md, "When pod names appear late").

``rate(name)`` (table macro)
    The rows of counter ``name`` with three more columns computed within each ``series`` in
    time order: ``delta`` (``value_int`` minus the previous row's), ``seconds`` (time since the
    previous row) and ``per_second`` (``delta / seconds``). They are null on a series' first row
    and where the counter went down (a reset: the kernel's counter restarted). A ``name`` that is
    no counter of the dataset is an error naming it: a gauge (rate makes no sense of it), or a
    name not recorded, with the counters of nearest spelling. ``_rate(name)`` and
    ``_increase(name)`` are the same without that check (empty for a missing name), for the
    summary and report, which ask for counters some hosts lack.

``increase(name)`` (table macro)
    One row per series of counter ``name``: ``first_time``, ``last_time``, ``increase`` (the sum
    of ``delta``, resets skipped) and ``per_second`` (``increase`` over the seconds covered).

``containers`` (view)
    One row per run and container: ``run_id``, ``container_key``, the standard label columns (the
    most complete value seen), ``cgroup``, ``name`` and ``full_name`` and ``first_time``/
    ``last_time``, the first and last tick with a ``container.*`` row. ``name`` is the
    container's name as every view of the dataset shows it, short and unique (``nginx``,
    ``web-7d9/nginx``, ``api (since 14:02:11)`` for one life of a restarted container);
    ``full_name`` is ``namespace/pod/container`` (else the short container id, else the cgroup
    path), the same for every life: :func:`analysis.query.names.container_names`, computed in
    Python by :func:`name_containers`. Until that is called (``finemon query`` and
    ``finemon mcp`` call it for SQL that reads ``containers``) both are null.
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from analysis.errors import (
    OBJECTS_TABLE,
    AnalysisError,
    UnreadableFilesWarning,
    one_line,
    require,
)
from analysis.query.names import ContainerName, container_labels, container_names
from analysis.source import as_source

# The columns as ``finemon run`` writes them: its output contract.
from common.contract import CONTAINER_KEY_LABELS, FIXED_COLUMNS, PLACEHOLDER_MAGIC
from common.contract import LABEL_COLUMNS as STANDARD_LABEL_COLUMNS

if TYPE_CHECKING:
    import duckdb

    from analysis.objects import DataObjects
    from analysis.source import Source

_HIVE_SEGMENT = re.compile(r"^([^=]+)=(.*)$")
#: The view of one row per run and container the ``containers`` view adds names to.
CONTAINER_ROWS = "_container_rows"
#: The names of the containers (:func:`name_containers` fills it).
_NAMES_TABLE = "_container_names"
#: Every Parquet file starts and ends with these bytes; the 4 bytes before the last ones are
#: the length of the footer (the file's metadata).
_PARQUET_MAGIC = b"PAR1"
#: What :func:`parquet_problem` says of a file that a compaction replaced since the listing.
COMPACTING = "replaced by a compaction"
#: Unreadable files named in the warning; the rest are counted.
_NAMED_AT_MOST = 3


def sql_string(value: str) -> str:
    """``value`` as a SQL string literal."""
    return "'" + value.replace("'", "''") + "'"


def label_sql(key: str, labels: str = "labels") -> str:
    """SQL for the value of label ``key`` in the ``labels`` map column (null when absent).

    Spelled ``element_at(...)[1]``, which every DuckDB version reads the same way (before 1.3
    ``labels['key']`` gave a list).
    """
    return f"element_at({labels}, {sql_string(key)})[1]"


def _key_part(label: str) -> str:
    return label if label in STANDARD_LABEL_COLUMNS else label_sql(label)


#: ``container_key`` in SQL, by the contract's rule (:data:`common.contract.CONTAINER_KEY_LABELS`).
CONTAINER_KEY_SQL = f"coalesce({', '.join(_key_part(label) for label in CONTAINER_KEY_LABELS)})"


def parquet_files(directory: Path) -> list[Path]:
    """The data files under ``directory``, sorted: ``*.parquet``, skipping every file or folder
    whose name starts with ``.`` or ``_`` (files being written, journals, manifests), as pyarrow
    and Spark do. ``directory`` may also be a single Parquet file (a dataset of one file).

    Raises :class:`AnalysisError` when the path does not exist, is a file that is not Parquet,
    or is a directory without Parquet files.
    """
    if directory.is_file():
        problem = parquet_problem(directory)
        if problem is not None:
            raise AnalysisError(
                f"{directory}: {problem}; give a finemon --output-dir or one of its .parquet files"
            )
        return [directory]
    if not directory.exists():
        raise AnalysisError(f"{directory}: no such file or directory")
    if not directory.is_dir():
        raise AnalysisError(f"{directory}: not a directory nor a Parquet file")
    # As strings, sorted part by part (as paths sort): a day of a fleet is thousands of files.
    found: list[tuple[tuple[str, ...], str]] = []
    for root, dirs, files in os.walk(directory):
        dirs[:] = sorted(d for d in dirs if not d.startswith((".", "_")))
        parts = tuple(Path(root).parts)
        found += [
            ((*parts, name), os.path.join(root, name))
            for name in files
            if name.endswith(".parquet") and not name.startswith((".", "_"))
        ]
    if not found:
        raise AnalysisError(f"{directory}: no Parquet files (is it a finemon --output-dir?)")
    return [Path(path) for _, path in sorted(found)]


def parquet_problem(path: Path) -> str | None:
    """Why ``path`` cannot be read as Parquet (``empty``, ``truncated``, ``not a Parquet
    file``, an OS error), or None when its envelope is sound: the magic bytes at both ends and
    a footer length that fits in the file. Two small reads per file, so a day of files is
    checked in milliseconds; it catches what a crash, a full disk or a stray copy leaves."""
    try:
        with path.open("rb") as file:
            size = os.fstat(file.fileno()).st_size
            if size == 0:
                return "empty"
            head = file.read(len(PLACEHOLDER_MAGIC))
            if head == PLACEHOLDER_MAGIC:
                return COMPACTING
            if head[:4] != _PARQUET_MAGIC:
                return "not a Parquet file"
            if size < 12:
                return "truncated"
            file.seek(-8, os.SEEK_END)
            tail = file.read(8)
    except FileNotFoundError:
        return COMPACTING
    except OSError as exc:
        return exc.strerror or str(exc)
    if tail[4:] != _PARQUET_MAGIC or int.from_bytes(tail[:4], "little") + 12 > size:
        return "truncated"
    return None


def readable_parquet_files(directory: Path) -> tuple[list[Path], list[tuple[Path, str]]]:
    """The data files of ``directory`` (:func:`parquet_files`) split into those that look
    readable and ``(path, problem)`` for the others. Raises :class:`AnalysisError` when a file
    was replaced or removed since the listing (a compaction swapping files: docs/compaction.md):
    leaving it out would count its rows zero times or twice, and a retry gives the answer."""
    readable: list[Path] = []
    unreadable: list[tuple[Path, str]] = []
    for path in parquet_files(directory):
        problem = parquet_problem(path)
        if problem == COMPACTING:
            raise AnalysisError(
                f"{path}: replaced or removed while being read (a compaction is swapping files "
                "in); run the command again"
            )
        if problem is None:
            readable.append(path)
        else:
            unreadable.append((path, problem))
    return readable, unreadable


def describe_unreadable(
    directory: Path, unreadable: Sequence[tuple[Path, str]], name: str | None = None
) -> str:
    """One line naming the first unreadable files (relative to ``directory``) and counting all;
    ``name`` is what the line calls ``directory`` (a bucket's URL)."""
    count = len(unreadable)
    named = []
    for path, problem in unreadable[:_NAMED_AT_MOST]:
        try:
            shown = path.relative_to(directory)
        except ValueError:
            shown = path
        named.append(f"{shown} ({problem})")
    more = f" and {count - _NAMED_AT_MOST} more" if count > _NAMED_AT_MOST else ""
    files = "file" if count == 1 else "files"
    where = name or directory
    return f"skipped {count} unreadable Parquet {files} in {where}: {', '.join(named)}{more}"


def _partition_keys(files: Sequence[Path]) -> list[str]:
    keys: list[str] = []
    for part in files[0].parts[:-1]:
        match = _HIVE_SEGMENT.match(part)
        if match and match.group(1) not in keys:
            keys.append(match.group(1))
    return keys


def _source_sql(files: Sequence[Path]) -> str:
    listed = ", ".join(sql_string(str(path)) for path in files)
    return (
        f"read_parquet([{listed}], hive_partitioning = true, hive_types_autocast = false, "
        "union_by_name = true)"
    )


def _selection_sql(
    run_id: str | None,
    container_ids: Sequence[str] | None,
    time_range_ms: tuple[int, int] | None = None,
) -> str:
    """The WHERE clause keeping one run's rows, some containers' and a time range's (empty for
    all rows)."""
    conditions = []
    if time_range_ms is not None:
        low, high = time_range_ms
        low_us, high_us = int(low) * 1000, int(high) * 1000
        conditions.append(f"time >= make_timestamp({low_us}) AND time <= make_timestamp({high_us})")
    if run_id is not None:
        conditions.append(f"run_id = {sql_string(run_id)}")
    if container_ids is not None:
        listed = ", ".join(sql_string(key) for key in container_ids) or "NULL"
        conditions.append(f"{CONTAINER_KEY_SQL} IN ({listed})")
    return f" WHERE {' AND '.join(conditions)}" if conditions else ""


# The check of ``rate()``/``increase()``: true when ``name`` is a counter of the dataset, else
# DuckDB's ``error()`` with a message naming it. The EXISTS stops at the first row found, so a
# good name costs little; the scan for near names runs only on the way to the error (a CASE
# evaluates its branches lazily).
def _counter_check_sql(macro: str) -> str:
    return f"""CASE
    WHEN EXISTS (SELECT 1 FROM metrics WHERE metric_name = name AND metric_kind = 'counter')
        THEN true
    ELSE error(_counter_problem('{macro}', name)) END"""


_COUNTER_PROBLEM_SQL = """CREATE OR REPLACE MACRO _counter_problem(macro, name) AS (
    WITH kinds AS (
        SELECT metric_name, any_value(metric_kind) AS kind FROM metrics GROUP BY metric_name
    ), near AS (
        SELECT metric_name, jaro_winkler_similarity(metric_name, name) AS similarity
        FROM kinds
        WHERE kind = 'counter' AND metric_name <> name
            AND jaro_winkler_similarity(metric_name, name) >= 0.85
        ORDER BY similarity DESC, metric_name LIMIT 3
    )
    SELECT CASE
        WHEN EXISTS (SELECT 1 FROM kinds WHERE metric_name = name) THEN printf(
            '%s(''%s''): %s is a %s, not a counter: rate() and increase() take a cumulative '
            || 'counter (value_int); use a gauge''s value_float as it is',
            macro, name, name, (SELECT any_value(kind) FROM kinds WHERE metric_name = name))
        ELSE printf('%s(''%s''): no counter named %s in this dataset%s', macro, name, name,
            coalesce('; did you mean ' || (
                SELECT string_agg(metric_name, ', ' ORDER BY similarity DESC, metric_name)
                FROM near) || '?', ''))
        END)"""


def _identifier(name: str) -> str:
    """``name`` as a quoted SQL identifier."""
    return '"' + name.replace('"', '""') + '"'


def _no_rows_sql(columns: dict[str, str]) -> str:
    """A relation of no rows with ``columns`` (name: DuckDB type)."""
    listed = ", ".join(f"NULL::{kind} AS {_identifier(name)}" for name, kind in columns.items())
    return f"(SELECT {listed} WHERE false)"


def _extra_labels(columns: dict[str, str], partitions: Sequence[str]) -> list[str]:
    """The files' string columns that are labels but not the standard ones (a capture program's
    own label columns)."""
    return [
        name
        for name, kind in columns.items()
        if kind == "VARCHAR"
        and name not in FIXED_COLUMNS
        and name not in STANDARD_LABEL_COLUMNS
        and name not in partitions
    ]


def _metrics_view_sql(
    source: str, columns: dict[str, str], partitions: Sequence[str], selection: str = ""
) -> str:
    """The statement creating the ``metrics`` view over ``source`` (the files, or a relation of
    no rows of their columns); ``selection``, a WHERE clause over the files' rows, keeps only
    the rows it matches."""
    replace = ["TRY_CAST(dt AS DATE) AS dt"] if "dt" in partitions else []
    missing = [f"NULL::VARCHAR AS {name}" for name in STANDARD_LABEL_COLUMNS if name not in columns]
    if "labels" not in columns:
        missing.append("NULL::MAP(VARCHAR, VARCHAR) AS labels")
    for name, kind in (("value_int", "BIGINT"), ("value_float", "DOUBLE")):
        if name not in columns:
            missing.append(f"NULL::{kind} AS {name}")
    star = "*" + (f" REPLACE ({', '.join(replace)})" if replace else "")
    raw = ", ".join([star, *missing])
    series = ", ".join(
        ["run_id", "metric_name", CONTAINER_KEY_SQL, "labels", *_extra_labels(columns, partitions)]
    )
    return f"""CREATE OR REPLACE VIEW metrics AS
        WITH raw AS (SELECT {raw} FROM {source}{selection})
        SELECT *, {CONTAINER_KEY_SQL} AS container_key, hash({series}) AS series FROM raw"""


def _derived_sql(columns: dict[str, str], partitions: Sequence[str]) -> list[str]:
    """The statements creating the macros (``rate``, ``increase``) and the views (``containers``)
    over the ``metrics`` view."""
    extra_labels = _extra_labels(columns, partitions)
    per_series_labels = ", ".join(
        f"max({name}) AS {name}" for name in (*STANDARD_LABEL_COLUMNS, *extra_labels)
    )
    most_complete = ", ".join(f"max({name}) AS {name}" for name in STANDARD_LABEL_COLUMNS)
    return [
        _COUNTER_PROBLEM_SQL,
        """CREATE OR REPLACE MACRO _rate(name) AS TABLE
        SELECT * EXCLUDE (previous_value, previous_ms),
            CASE WHEN value_int >= previous_value THEN value_int - previous_value END AS delta,
            (epoch_ms(time) - previous_ms) / 1000.0 AS seconds,
            CASE WHEN value_int >= previous_value AND epoch_ms(time) > previous_ms
                THEN (value_int - previous_value) * 1000.0 / (epoch_ms(time) - previous_ms)
            END AS per_second
        FROM (
            SELECT *, lag(value_int) OVER w AS previous_value,
                lag(epoch_ms(time)) OVER w AS previous_ms
            FROM metrics
            WHERE metric_name = name AND value_int IS NOT NULL
            WINDOW w AS (PARTITION BY series ORDER BY time)
        )""",
        f"""CREATE OR REPLACE MACRO rate(name) AS TABLE
        SELECT r.* FROM (SELECT {_counter_check_sql("rate")} AS ok) AS checked
        JOIN _rate(name) AS r ON checked.ok""",
        f"""CREATE OR REPLACE MACRO _increase(name) AS TABLE
        SELECT run_id, series, any_value(metric_name) AS metric_name,
            any_value(container_key) AS container_key,
            {per_series_labels},
            any_value(labels) AS labels,
            min(time) AS first_time, max(time) AS last_time,
            coalesce(sum(delta), 0)::BIGINT AS increase,
            coalesce(sum(delta), 0) / nullif(sum(seconds) FILTER (WHERE delta IS NOT NULL), 0)
                AS per_second
        FROM _rate(name)
        GROUP BY run_id, series""",
        f"""CREATE OR REPLACE MACRO increase(name) AS TABLE
        SELECT i.* FROM (SELECT {_counter_check_sql("increase")} AS ok) AS checked
        JOIN _increase(name) AS i ON checked.ok""",
        f"""CREATE OR REPLACE VIEW {CONTAINER_ROWS} AS
        SELECT run_id, container_key, {most_complete},
            max({label_sql("cgroup")}) AS cgroup,
            min(time) AS first_time, max(time) AS last_time
        FROM metrics
        WHERE container_key IS NOT NULL AND starts_with(metric_name, 'container.')
        GROUP BY run_id, container_key""",
        f"""CREATE OR REPLACE TABLE {_NAMES_TABLE} (
            container_key VARCHAR PRIMARY KEY, name VARCHAR, full_name VARCHAR)""",
        f"""CREATE OR REPLACE VIEW containers AS
        SELECT r.run_id, r.container_key, {", ".join(f"r.{n}" for n in STANDARD_LABEL_COLUMNS)},
            r.cgroup, n.name, n.full_name, r.first_time, r.last_time
        FROM {CONTAINER_ROWS} AS r LEFT JOIN {_NAMES_TABLE} AS n USING (container_key)""",
    ]


def container_names_of(
    con: duckdb.DuckDBPyConnection, rows: str = CONTAINER_ROWS
) -> dict[str, ContainerName]:
    """The name of every container of ``rows`` (the per-run container rows of the
    ``containers`` view, or a table of them) by container key, by the one rule
    (:func:`analysis.query.names.container_names`) over its most complete labels and first
    tick."""
    found = con.execute(
        f"""SELECT container_key, max(namespace), max(pod_name), max(container_name),
            max(container_id), max(pod_uid), min(epoch_ms(first_time))
        FROM {rows} GROUP BY container_key ORDER BY container_key"""
    ).fetchall()
    labels = [
        container_labels(
            key, namespace=namespace, pod_name=pod, container_name=container,
            container_id=container_id, pod_uid=pod_uid, first_ms=first_ms,
        )
        for key, namespace, pod, container, container_id, pod_uid, first_ms in found
    ]  # fmt: skip
    return dict(zip((c.key for c in labels), container_names(labels), strict=True))


def name_containers(
    con: duckdb.DuckDBPyConnection, names: Iterable[tuple[str, str, str]] | None = None
) -> None:
    """Fill the ``name`` and ``full_name`` columns of the ``containers`` view of ``con``:
    with ``names`` (container key, name, full name) when given, else by
    :func:`container_names_of` (a scan of every ``container.*`` row: docs/benchmarks.md has
    its cost). The names already there are replaced."""
    if names is None:
        names = [(k, n.name, n.full_name) for k, n in container_names_of(con).items()]
    rows = ", ".join(
        f"({sql_string(key)}, {sql_string(name)}, {sql_string(full)})" for key, name, full in names
    )
    con.execute(f"DELETE FROM {_NAMES_TABLE}")
    if rows:
        con.execute(f"INSERT INTO {_NAMES_TABLE} VALUES {rows}")


def reads_containers(sql: str) -> bool:
    """Whether ``sql`` names the ``containers`` view: an identifier ``containers`` (any case,
    quoted or not) outside strings and comments, by DuckDB's own tokenizer. A CTE of that
    name counts too (naming the containers then is only wasted)."""
    duckdb_module = require("duckdb")
    text = sql.encode()  # the tokenizer's positions are offsets in UTF-8
    try:
        tokens = duckdb_module.tokenize(sql)
    except duckdb_module.Error:
        return False
    identifier = duckdb_module.token_type.identifier
    ends = [position for position, _ in tokens[1:]] + [len(text)]
    return any(
        kind == identifier and text[position:end].strip().strip(b'"').lower() == b"containers"
        for (position, kind), end in zip(tokens, ends, strict=True)
    )


def connect(
    directory: str | Path | Source,
    *,
    run_id: str | None = None,
    container_keys: Sequence[str] | None = None,
    objects: DataObjects | None = None,
    files: Sequence[Path] | None = None,
    time_range_ms: tuple[int, int] | None = None,
) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection with ``metrics``, ``containers``, ``rate`` and ``increase``
    over the finemon output ``directory`` (see the module's documentation). Times are in UTC;
    no extension is downloaded and no progress bar drawn.

    ``directory`` may be a single ``.parquet`` file, or a bucket (``s3://bucket/prefix`` or its
    :class:`analysis.source.Source`), read in place: only the footers, then the column chunks
    and row groups each query needs (:mod:`analysis.objects`); ``objects`` are its objects
    already listed (an explorer keeps them, so footers are read once). ``run_id`` keeps only
    that run's rows, ``container_keys`` only those containers' (by ``container_key``: their
    ``container_id``, else their ``cgroup`` label; node-wide rows are left out then).
    ``files``, when given for a folder, are the only files read (those an index picked:
    :mod:`analysis.query.dataset_index`); ``time_range_ms`` (epoch ms, both ends included)
    keeps only the rows of those ticks.

    Files that cannot be read (empty, truncated, not Parquet) are left out with an
    :class:`UnreadableFilesWarning` naming them. Raises :class:`MissingExtraError` without
    duckdb, :class:`AnalysisError` when the path holds no readable Parquet file, is not finemon
    data, DuckDB cannot read it or the store fails.
    """
    duckdb_module = require("duckdb")
    source = as_source(directory)
    arrow: object = None
    if source.local is not None:
        path = source.local
        if files is None:
            files, unreadable = readable_parquet_files(path)
        else:
            files, unreadable = list(files), []
        if unreadable:
            if not files:
                raise AnalysisError(
                    f"{path}: no readable Parquet file ({describe_unreadable(path, unreadable)})"
                )
            warnings.warn(
                describe_unreadable(path, unreadable), UnreadableFilesWarning, stacklevel=2
            )
        table = _source_sql(files)
        partitions = _partition_keys(files)
    else:
        if objects is None:
            from analysis.objects import DataObjects  # noqa: PLC0415 - it imports this module

            objects = DataObjects(source)
        if not objects.listed:
            objects.refresh()
        if objects.unreadable:
            shown = describe_unreadable(Path(source.root), objects.unreadable, name=source.url)
            if not objects.footers:
                raise AnalysisError(f"{source.url}: no readable Parquet file ({shown})")
            warnings.warn(shown, UnreadableFilesWarning, stacklevel=2)
        arrow = objects.dataset()
        table = OBJECTS_TABLE
        partitions = objects.partition_keys
    con: duckdb.DuckDBPyConnection = duckdb_module.connect()
    try:
        # Offline and unambiguous: times print in UTC, and no query downloads an extension.
        con.execute("SET TimeZone = 'UTC'")
        con.execute("SET autoinstall_known_extensions = false")
        # DuckDB draws a progress bar on the terminal for long queries; ours print results.
        con.execute("SET enable_progress_bar = false")
        # A query binds the files' scan (reading each file's footer for its schema) and then
        # scans them (reading the footers again): kept in memory, each footer is read once.
        con.execute("SET parquet_metadata_cache = true")
        if arrow is not None:
            con.register(OBJECTS_TABLE, arrow)
        described = con.execute(f"DESCRIBE SELECT * FROM {table}").fetchall()
        columns = {str(row[0]): str(row[1]) for row in described}
        missing = [name for name in ("time", "metric_name", "run_id") if name not in columns]
        if missing:
            raise AnalysisError(f"{source}: not finemon data (no column {', '.join(missing)})")
        selection = _selection_sql(run_id, container_keys, time_range_ms)
        # DuckDB binds a view or macro when it is created, and binding the files' scan reads
        # every file's schema again (union_by_name). So the views and macros over ``metrics``
        # are created over an empty relation of the same columns, and ``metrics`` is then
        # pointed at the files: one bind of them here, one per query.
        statements = [
            _metrics_view_sql(_no_rows_sql(columns), columns, partitions),
            *_derived_sql(columns, partitions),
            _metrics_view_sql(table, columns, partitions, selection),
        ]
        for statement in statements:
            con.execute(statement)
    except duckdb_module.Error as exc:
        con.close()
        raise AnalysisError(f"{source}: {one_line(str(exc))}") from None
    except AnalysisError:
        con.close()
        raise
    return con
