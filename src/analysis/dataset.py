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
    and where the counter went down (a reset: the kernel's counter restarted).

``increase(name)`` (table macro)
    One row per series of counter ``name``: ``first_time``, ``last_time``, ``increase`` (the sum
    of ``delta``, resets skipped) and ``per_second`` (``increase`` over the seconds covered).

``containers`` (view)
    One row per run and container: ``run_id``, ``container_key``, the standard label columns (the
    most complete value seen), ``cgroup``, a display ``name`` (``namespace/pod/container``, else
    the cgroup path, else the short container id) and ``first_time``/``last_time``, the first and
    last tick with a ``container.*`` row.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from analysis.errors import AnalysisError, one_line, require

# The columns as ``finemon run`` writes them: its output contract.
from monitor.contract import FIXED_COLUMNS
from monitor.contract import LABEL_COLUMNS as STANDARD_LABEL_COLUMNS

if TYPE_CHECKING:
    import duckdb

_HIVE_SEGMENT = re.compile(r"^([^=]+)=(.*)$")


def sql_string(value: str) -> str:
    """``value`` as a SQL string literal."""
    return "'" + value.replace("'", "''") + "'"


def label_sql(key: str, labels: str = "labels") -> str:
    """SQL for the value of label ``key`` in the ``labels`` map column (null when absent).

    Spelled ``element_at(...)[1]``, which every DuckDB version reads the same way (before 1.3
    ``labels['key']`` gave a list).
    """
    return f"element_at({labels}, {sql_string(key)})[1]"


CONTAINER_KEY_SQL = f"coalesce(container_id, {label_sql('cgroup')}, pod_uid)"


def parquet_files(directory: Path) -> list[Path]:
    """The data files under ``directory``, sorted: ``*.parquet``, skipping every file or folder
    whose name starts with ``.`` or ``_`` (files being written, journals, manifests), as pyarrow
    and Spark do. ``directory`` may also be a single Parquet file."""
    if directory.is_file():
        return [directory]
    if not directory.is_dir():
        raise AnalysisError(f"{directory}: no such directory")
    found: list[Path] = []
    for root, dirs, files in os.walk(directory):
        dirs[:] = sorted(d for d in dirs if not d.startswith((".", "_")))
        found += [
            Path(root) / name
            for name in files
            if name.endswith(".parquet") and not name.startswith((".", "_"))
        ]
    if not found:
        raise AnalysisError(f"{directory}: no Parquet files (is it a finemon --output-dir?)")
    return sorted(found)


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


def _view_sql(source: str, columns: dict[str, str], partitions: Sequence[str]) -> list[str]:
    """The statements creating ``metrics``, ``containers`` and the macros."""
    replace = ["TRY_CAST(dt AS DATE) AS dt"] if "dt" in partitions else []
    missing = [f"NULL::VARCHAR AS {name}" for name in STANDARD_LABEL_COLUMNS if name not in columns]
    if "labels" not in columns:
        missing.append("NULL::MAP(VARCHAR, VARCHAR) AS labels")
    for name, kind in (("value_int", "BIGINT"), ("value_float", "DOUBLE")):
        if name not in columns:
            missing.append(f"NULL::{kind} AS {name}")
    extra_labels = [
        name
        for name, kind in columns.items()
        if kind == "VARCHAR"
        and name not in FIXED_COLUMNS
        and name not in STANDARD_LABEL_COLUMNS
        and name not in partitions
    ]
    star = "*" + (f" REPLACE ({', '.join(replace)})" if replace else "")
    raw = ", ".join([star, *missing])
    series = ", ".join(["run_id", "metric_name", CONTAINER_KEY_SQL, "labels", *extra_labels])
    per_series_labels = ", ".join(
        f"max({name}) AS {name}" for name in (*STANDARD_LABEL_COLUMNS, *extra_labels)
    )
    most_complete = ", ".join(f"max({name}) AS {name}" for name in STANDARD_LABEL_COLUMNS)
    return [
        f"""CREATE OR REPLACE VIEW metrics AS
        WITH raw AS (SELECT {raw} FROM {source})
        SELECT *, {CONTAINER_KEY_SQL} AS container_key, hash({series}) AS series FROM raw""",
        """CREATE OR REPLACE MACRO rate(name) AS TABLE
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
        f"""CREATE OR REPLACE MACRO increase(name) AS TABLE
        SELECT run_id, series, any_value(metric_name) AS metric_name,
            any_value(container_key) AS container_key,
            {per_series_labels},
            any_value(labels) AS labels,
            min(time) AS first_time, max(time) AS last_time,
            coalesce(sum(delta), 0)::BIGINT AS increase,
            coalesce(sum(delta), 0) / nullif(sum(seconds) FILTER (WHERE delta IS NOT NULL), 0)
                AS per_second
        FROM rate(name)
        GROUP BY run_id, series""",
        f"""CREATE OR REPLACE VIEW containers AS
        SELECT run_id, container_key, {most_complete},
            max({label_sql("cgroup")}) AS cgroup,
            coalesce(
                max(namespace) || '/' || max(pod_name) || '/' || max(container_name),
                max({label_sql("cgroup")}),
                max(pod_name) || '/' || left(max(container_id), 12),
                left(max(container_id), 12),
                max(pod_uid)
            ) AS name,
            min(time) AS first_time, max(time) AS last_time
        FROM metrics
        WHERE container_key IS NOT NULL AND starts_with(metric_name, 'container.')
        GROUP BY run_id, container_key""",
    ]


def connect(directory: str | Path) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection with ``metrics``, ``containers``, ``rate`` and ``increase``
    over the finemon output ``directory`` (see the module's documentation). Times are in UTC;
    no extension is downloaded and no progress bar drawn.

    Raises :class:`MissingExtraError` without duckdb, :class:`AnalysisError` when the directory
    holds no Parquet file or DuckDB cannot read them.
    """
    duckdb_module = require("duckdb")
    files = parquet_files(Path(directory))
    con: duckdb.DuckDBPyConnection = duckdb_module.connect()
    try:
        # Offline and unambiguous: times print in UTC, and no query downloads an extension.
        con.execute("SET TimeZone = 'UTC'")
        con.execute("SET autoinstall_known_extensions = false")
        # DuckDB draws a progress bar on the terminal for long queries; ours print results.
        con.execute("SET enable_progress_bar = false")
        source = _source_sql(files)
        described = con.execute(f"DESCRIBE SELECT * FROM {source}").fetchall()
        columns = {str(row[0]): str(row[1]) for row in described}
        missing = [name for name in ("time", "metric_name", "run_id") if name not in columns]
        if missing:
            raise AnalysisError(f"{directory}: not finemon data (no column {', '.join(missing)})")
        for statement in _view_sql(source, columns, _partition_keys(files)):
            con.execute(statement)
    except duckdb_module.Error as exc:
        con.close()
        raise AnalysisError(f"{directory}: {one_line(str(exc))}") from None
    except AnalysisError:
        con.close()
        raise
    return con
