"""analysis: answers and pictures from a finemon output directory (DuckDB and plotly).

The commands ``finemon query``, ``finemon summary`` and ``finemon report`` are built on::

    import analysis

    con = analysis.connect("finemon-out")          # DuckDB: the `metrics` view, rate(), ...
    con.sql("select * from increase('container.memory.oom_kills') where increase > 0").show()
    print(analysis.format_summary(analysis.summarize("finemon-out")))
    analysis.write_report("finemon-out", "report.html")

duckdb and plotly come with the optional ``analysis`` extra (``pip install 'finemon[analysis]'``)
and are imported only when a function needs them: without them, those functions raise
:class:`MissingExtraError`, whose message says how to install them. Importing this package is
cheap and needs neither.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from analysis.errors import AnalysisError, MissingExtraError

if TYPE_CHECKING:
    from analysis.dataset import connect, parquet_files
    from analysis.query_cli import QueryResult, format_csv, format_table, run_query
    from analysis.report import ReportResult, build_report_data, write_report
    from analysis.summary import ContainerSummary, RunSummary, format_summary, summarize

# Where each public name lives; imported on first use, so `finemon run`, whose parser imports
# analysis.cli, pays nothing for the rest.
_LAZY = {
    "connect": "analysis.dataset",
    "parquet_files": "analysis.dataset",
    "QueryResult": "analysis.query_cli",
    "format_csv": "analysis.query_cli",
    "format_table": "analysis.query_cli",
    "run_query": "analysis.query_cli",
    "ReportResult": "analysis.report",
    "build_report_data": "analysis.report",
    "write_report": "analysis.report",
    "ContainerSummary": "analysis.summary",
    "RunSummary": "analysis.summary",
    "format_summary": "analysis.summary",
    "summarize": "analysis.summary",
}

__all__ = [
    "AnalysisError",
    "ContainerSummary",
    "MissingExtraError",
    "QueryResult",
    "ReportResult",
    "RunSummary",
    "build_report_data",
    "connect",
    "format_csv",
    "format_summary",
    "format_table",
    "parquet_files",
    "run_query",
    "summarize",
    "write_report",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'analysis' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
