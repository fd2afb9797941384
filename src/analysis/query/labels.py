"""The one rule series are filtered by their labels (viewer, MCP, ...).

A label filter is ``key=value`` text, as the files' ``labels`` map holds them: a ``target.*``
series' tags (``source_type_name=System``, ``kube_namespace=shop``, a bare tag ``canary`` as
``tag.canary=true``, see docs/intake.md), a process's ``pid`` and ``comm``, a device. A series
is kept when, for every key filtered, its label is one of the values given for that key:
filters on one key are alternatives, filters on different keys must all hold. A series without
the label is not kept: :func:`label_filter_sql` is the rule, in SQL. Pure functions, no
duckdb.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from analysis.dataset import label_sql, sql_string
from analysis.errors import AnalysisError

#: Accepted values by label key.
LabelFilters = Mapping[str, frozenset[str]]
#: Most label keys, and values of one key, a listing returns.
MAX_LABEL_KEYS = 50
MAX_LABEL_VALUES = 100


def parse_label_filters(texts: Iterable[str]) -> dict[str, frozenset[str]]:
    """``key=value`` texts as :data:`LabelFilters` (the value may hold ``=``; empty texts are
    skipped). Raises :class:`AnalysisError` for a text without ``=`` or with an empty key."""
    found: dict[str, set[str]] = {}
    for text in texts:
        if not text:
            continue
        key, equals, value = text.partition("=")
        if not equals or not key.strip():
            raise AnalysisError(f"a label filter is key=value (e.g. tag.canary=true), got {text!r}")
        found.setdefault(key.strip(), set()).add(value)
    return {key: frozenset(values) for key, values in found.items()}


def label_filter_sql(filters: LabelFilters) -> str:
    """SQL true for the ``metrics`` rows whose ``labels`` pass ``filters``."""
    if not filters:
        return "true"
    return " AND ".join(
        f"{label_sql(key)} IN ({', '.join(sql_string(v) for v in sorted(values))})"
        for key, values in sorted(filters.items())
    )


def label_values_sql(where: str) -> str:
    """SQL of (key, the first :data:`MAX_LABEL_VALUES` values, sorted, and how many there
    are) of every label key of the ``metrics`` rows ``where`` selects (``cgroup``, a
    container's key rather than a series', left out)."""
    return f"""SELECT k, list(v ORDER BY v)[1:{MAX_LABEL_VALUES}], count(*) FROM (
            SELECT DISTINCT k, v FROM (
                SELECT unnest(map_keys(labels)) AS k, unnest(map_values(labels)) AS v
                FROM metrics WHERE {where})
            WHERE k <> 'cgroup')
        GROUP BY k ORDER BY k LIMIT {MAX_LABEL_KEYS}"""


@dataclass(frozen=True, slots=True)
class LabelValues:
    """A label key of a metric's series, its values (sorted, at most
    :data:`MAX_LABEL_VALUES`) and how many values it has in all."""

    key: str
    values: tuple[str, ...]
    count: int
