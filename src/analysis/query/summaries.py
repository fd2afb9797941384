"""A data file's summary from its rows, for a file whose footer has none.

``finemon run`` (the capture library) writes every file's summary into its footer
(:mod:`capture.summary`: time range, rows, containers, metrics and their aggregates; read by
:func:`common.dataset_index.read_footer`) and a compaction merges its inputs'. A file written
before summaries existed gets its summary from one scan of its rows here, by the same builder,
so both are alike; :mod:`.dataset_index` keeps it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from analysis.dataset import sql_string
from analysis.errors import require
from capture.summary import SummaryBuilder, merge_summaries
from common.contract import (
    CONTAINER_KEY_LABELS,
    GLOBAL_LABEL_COLUMNS,
    LABEL_COLUMNS,
    SUMMARY_AGGREGATE_METRICS,
    SUMMARY_SERIES_METRICS,
    SUMMARY_SKETCH_METRICS,
)


@dataclass(frozen=True, slots=True)
class _Series:
    kind: str
    name: str
    labels: tuple[tuple[str, str], ...]


def scan_summary(path: Path) -> dict[str, Any] | None:
    """The summary of ``path`` computed from its rows (one DuckDB scan), as the capture
    library would have written it; None for a file without rows. Raises
    :class:`MissingExtraError` without duckdb and ``duckdb.Error`` for a file it cannot read."""
    duckdb = require("duckdb")
    con = duckdb.connect()
    try:
        source = f"read_parquet({sql_string(str(path))}, hive_partitioning = false)"
        columns = {str(r[0]) for r in con.execute(f"DESCRIBE SELECT * FROM {source}").fetchall()}
        present = [c for c in LABEL_COLUMNS if c in columns]
        labels = "labels" if "labels" in columns else "NULL::MAP(VARCHAR, VARCHAR)"
        identity = ", ".join(["metric_name", "metric_kind", f"{labels}::VARCHAR", *present])
        con.execute(
            f"""CREATE TEMP TABLE rows AS SELECT run_id, metric_name, metric_kind,
                {labels} AS labels, {", ".join(present) or "NULL AS _none"},
                dense_rank() OVER (PARTITION BY run_id ORDER BY {identity}) AS sid,
                epoch_ms(time) AS ms, coalesce(value_int, 0) AS value_int,
                coalesce(value_float, 0) AS value_float
            FROM {source}"""
        )
        series_rows = con.execute(
            f"""SELECT run_id, sid, any_value(metric_name), any_value(metric_kind),
                any_value(labels), {", ".join(f"any_value({c})" for c in present) or "NULL"}
            FROM rows GROUP BY run_id, sid"""
        ).fetchall()
        summaries = []
        for (run_id,) in con.execute("SELECT DISTINCT run_id FROM rows ORDER BY 1").fetchall():
            run_series = [r for r in series_rows if r[0] == run_id]
            metas: dict[int, _Series] = {}
            global_labels: dict[str, str] = {}
            for _, sid, name, kind, label_map, *values in run_series:
                pairs = dict(label_map or {})
                for column, value in zip(present, values, strict=True):
                    if value is None:
                        continue
                    if column in GLOBAL_LABEL_COLUMNS:
                        global_labels.setdefault(column, value)
                    else:
                        pairs[column] = value
                metas[int(sid)] = _Series(str(kind), str(name), tuple(sorted(pairs.items())))
            builder = SummaryBuilder(
                str(run_id),
                0.001,  # ticks are milliseconds here
                global_labels=sorted(global_labels.items()),
                label_columns=LABEL_COLUMNS,
                key_labels=CONTAINER_KEY_LABELS,
                sketch_metrics=SUMMARY_SKETCH_METRICS,
                series_metrics=SUMMARY_SERIES_METRICS,
                aggregate_metrics=SUMMARY_AGGREGATE_METRICS,
            )
            points = con.execute(
                """SELECT sid, ms, value_int, value_float FROM rows WHERE run_id = $r
                ORDER BY sid, ms""",
                {"r": run_id},
            ).fetchnumpy()
            builder.add(
                np.asarray(points["sid"], np.int64),
                np.asarray(points["ms"], np.int64),
                np.asarray(points["value_int"], np.int64),
                np.asarray(points["value_float"], np.float64),
                metas,
            )
            found = builder.summary()
            if found is not None:
                summaries.append(found)
        return merge_summaries(summaries)
    finally:
        con.close()
