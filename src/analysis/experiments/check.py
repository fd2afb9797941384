"""``finemon check``: bounds on a run's metrics that a CI job gates on.

The bounds file is a YAML list; each entry::

    - container: "datadog/datadog-agent/agent"   # namespace/workload/container; * and ? glob
      metric: process.memory.pss_bytes            # any metric of the files
      statistic: max                              # mean | p50 | p95 | p99 | max | increase
      max: 255MiB                                 # and/or min:, sizes as --size-limit takes them

A container is named as ``finemon compare`` names it (a host cgroup by its path); each
container the glob matches is checked on its own. The statistic is over the container's
per-tick values in the selected runs (:mod:`analysis.experiments.series`): a gauge summed over
its series of the tick (``process.*``: over the container's processes), a counter as its
per-second rate; ``increase`` is a counter's total increase (resets skipped), a gauge's last
value minus its first. ``min``/``max`` take a number or a size (``255MiB``, ``1.5G``).

A bound that matches no data fails, saying so: a typo never passes. A file that is not such a
list is an error naming its line.
"""

from __future__ import annotations

import fnmatch
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final
from xml.etree import ElementTree

from analysis.dataset import connect, sql_string
from analysis.errors import AnalysisError, one_line, require
from analysis.experiments.series import DELTA, RATE, VALUE, Reading, RunSeries, read_side
from analysis.experiments.statistics import statistic_of
from analysis.source import Source
from common.sizes import parse_size

if TYPE_CHECKING:
    import yaml

#: The statistics a bound may take.
CHECK_STATISTICS: Final = ("mean", "p50", "p95", "p99", "max", "increase")
_KEYS: Final = ("container", "metric", "statistic", "min", "max")


class BoundsError(AnalysisError):
    """A bounds file that is not a list of bounds; the message names the file and line."""


@dataclass(frozen=True, slots=True)
class Bound:
    """One entry of the bounds file (``line``: where it starts, 1-based)."""

    container: str
    metric: str
    statistic: str
    minimum: float | None
    maximum: float | None
    line: int

    def describe(self) -> str:
        """``statistic <= max`` and/or ``>= min``, as written."""
        limits = []
        if self.minimum is not None:
            limits.append(f">= {_number(self.minimum)}")
        if self.maximum is not None:
            limits.append(f"<= {_number(self.maximum)}")
        return f"{self.statistic} {' and '.join(limits)}"


@dataclass(frozen=True, slots=True)
class Result:
    """A bound checked on one container (``container`` None: it matched none): the value
    measured (None without data), whether it holds, and why not."""

    bound: Bound
    container: str | None
    value: float | None
    holds: bool
    detail: str

    @property
    def name(self) -> str:
        """The check's name: container, metric and bound."""
        who = self.container or self.bound.container
        return f"{who} {self.bound.metric} {self.bound.describe()}"


def _number(value: float) -> str:
    return f"{value:.0f}" if value == int(value) and abs(value) < 1e15 else f"{value:.6g}"


def _limit(node: yaml.Node, path: Path, key: str) -> float:
    text = str(node.value).strip() if hasattr(node, "value") else ""
    where = f"{path}:{node.start_mark.line + 1}"
    try:
        value = float(text)
    except ValueError:
        try:
            value = float(parse_size(text, minimum=0))
        except ValueError as exc:
            raise BoundsError(f"{where}: {key}: {exc}") from None
    if not math.isfinite(value):
        raise BoundsError(f"{where}: {key}: {text!r} is not a finite number")
    return value


def parse_bounds(text: str, path: Path) -> list[Bound]:
    """The bounds of the YAML ``text`` (read from ``path``, named in errors). Raises
    :class:`BoundsError` naming the line of the first problem."""
    yaml_module = require("yaml")
    try:
        root = yaml_module.compose(text, Loader=yaml_module.SafeLoader)
    except yaml_module.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise BoundsError(f"{path}{line}: not YAML: {one_line(str(problem))}") from None
    if root is None:
        raise BoundsError(f"{path}:1: no bounds (the file is empty)")
    if not isinstance(root, yaml_module.SequenceNode):
        raise BoundsError(f"{path}:{root.start_mark.line + 1}: expected a list of bounds")
    bounds = []
    for entry in root.value:
        line = entry.start_mark.line + 1
        where = f"{path}:{line}"
        if not isinstance(entry, yaml_module.MappingNode):
            raise BoundsError(f"{where}: a bound is a mapping (container:, metric:, ...)")
        fields: dict[str, Any] = {}
        for key_node, value_node in entry.value:
            key = str(key_node.value)
            if key not in _KEYS:
                raise BoundsError(
                    f"{path}:{key_node.start_mark.line + 1}: unknown key {key!r} "
                    f"(a bound has {', '.join(_KEYS)})"
                )
            if not isinstance(value_node, yaml_module.ScalarNode):
                raise BoundsError(
                    f"{path}:{value_node.start_mark.line + 1}: {key}: expected a single value"
                )
            fields[key] = value_node
        for key in ("container", "metric", "statistic"):
            if key not in fields or not str(fields[key].value).strip():
                raise BoundsError(f"{where}: missing {key}:")
        statistic = str(fields["statistic"].value).strip()
        if statistic not in CHECK_STATISTICS:
            raise BoundsError(
                f"{path}:{fields['statistic'].start_mark.line + 1}: statistic: {statistic!r} is "
                f"not one of {', '.join(CHECK_STATISTICS)}"
            )
        if "min" not in fields and "max" not in fields:
            raise BoundsError(f"{where}: give min:, max: or both")
        minimum = _limit(fields["min"], path, "min") if "min" in fields else None
        maximum = _limit(fields["max"], path, "max") if "max" in fields else None
        if minimum is not None and maximum is not None and minimum > maximum:
            raise BoundsError(f"{where}: min: is above max:")
        bounds.append(
            Bound(
                container=str(fields["container"].value).strip(),
                metric=str(fields["metric"].value).strip(),
                statistic=statistic,
                minimum=minimum,
                maximum=maximum,
                line=line,
            )
        )
    if not bounds:
        raise BoundsError(f"{path}:1: no bounds (an empty list)")
    return bounds


def read_bounds(path: Path) -> list[Bound]:
    """:func:`parse_bounds` of the file ``path``; raises :class:`BoundsError` when it cannot
    be read either."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise BoundsError(
            f"{path}: cannot read it: {getattr(exc, 'strerror', None) or exc}"
        ) from None
    return parse_bounds(text, path)


def _metric_kinds(directory: Path | Source, metrics: Sequence[str]) -> dict[str, str]:
    duckdb_module = require("duckdb")
    con = connect(directory)
    try:
        listed = ", ".join(sql_string(m) for m in metrics)
        rows = con.execute(
            f"SELECT metric_name, any_value(metric_kind) FROM metrics "
            f"WHERE metric_name IN ({listed}) GROUP BY 1"
        ).fetchall()
    except duckdb_module.Error as exc:
        raise AnalysisError(f"{directory}: {one_line(str(exc))}") from None
    finally:
        con.close()
    return {str(name): str(kind) for name, kind in rows}


def _measure(statistic: str, reading: Reading, runs: Sequence[RunSeries]) -> float:
    """``statistic`` of the runs' per-tick values (read as ``reading``)."""
    np = require("numpy")
    if statistic == "increase" and reading == DELTA:
        return math.fsum(float(np.sum(run.values)) for run in runs)
    if statistic == "increase":  # a gauge: its last value minus its first, in each run
        return math.fsum(float(run.values[-1] - run.values[0]) for run in runs)
    return statistic_of(np.concatenate([run.values for run in runs]), statistic)


def _readings(bounds: Sequence[Bound], kinds: dict[str, str]) -> list[tuple[str, Reading]]:
    wanted: dict[tuple[str, Reading], None] = {}
    for bound in bounds:
        kind = kinds.get(bound.metric)
        if kind == "counter":
            wanted[(bound.metric, DELTA if bound.statistic == "increase" else RATE)] = None
        elif kind is not None:
            wanted[(bound.metric, VALUE)] = None
    return list(wanted)


def check(
    directory: Path | Source, bounds: Sequence[Bound], run: str | None = None
) -> list[Result]:
    """Check ``bounds`` on the runs of ``directory`` that ``run`` selects (a selector as
    ``finemon compare`` takes, None: every run). One result per bound and matched container;
    a bound that matches nothing is one failed result. Raises :class:`AnalysisError` when the
    data cannot be read or the selector selects nothing."""
    metrics = sorted({bound.metric for bound in bounds})
    kinds = _metric_kinds(directory, metrics)
    side = read_side(directory, run, _readings(bounds, kinds))
    results: list[Result] = []
    for bound in bounds:
        kind = kinds.get(bound.metric)
        if kind is None:
            results.append(
                Result(bound, None, None, False, f"no data: no metric {bound.metric} recorded")
            )
            continue
        reading: Reading = VALUE
        if kind == "counter":
            reading = DELTA if bound.statistic == "increase" else RATE
        matched = [c for c in side.identities if fnmatch.fnmatchcase(c, bound.container)]
        measured = [c for c in matched if (c, bound.metric, reading) in side.series]
        if not measured:
            why = (
                f"no container matches {bound.container!r}"
                if not matched
                else f"{len(matched)} container(s) match {bound.container!r} but none has "
                f"{bound.metric}"
            )
            results.append(Result(bound, None, None, False, f"no data: {why}"))
            continue
        for container in measured:
            runs = side.series[(container, bound.metric, reading)]
            value = _measure(bound.statistic, reading, runs)
            failed = []
            if bound.minimum is not None and value < bound.minimum:
                failed.append(f"below min {_number(bound.minimum)}")
            if bound.maximum is not None and value > bound.maximum:
                failed.append(f"above max {_number(bound.maximum)}")
            detail = "holds" if not failed else " and ".join(failed)
            results.append(Result(bound, container, value, not failed, detail))
    return results


def format_results(results: Sequence[Result]) -> str:
    """One line per result (``ok`` or ``FAIL``, the check, the value measured, why), then a
    count."""
    lines = []
    for result in results:
        value = "-" if result.value is None else _number(result.value)
        status = "ok  " if result.holds else "FAIL"
        lines.append(f"{status}  {result.name}: measured {value}: {result.detail}")
    failed = sum(not r.holds for r in results)
    lines.append(f"{len(results)} checks: {len(results) - failed} hold, {failed} fail")
    return "\n".join(lines) + "\n"


def junit_xml(results: Sequence[Result], suite: str = "finemon check") -> bytes:
    """The results as JUnit XML: one ``testsuite`` in ``testsuites``, a ``testcase`` per
    result (classname ``finemon.check``), a ``failure`` element in each that fails."""
    failures = sum(not r.holds for r in results)
    counts = {"tests": str(len(results)), "failures": str(failures), "errors": "0"}
    root = ElementTree.Element("testsuites", {"name": suite, **counts})
    testsuite = ElementTree.SubElement(
        root, "testsuite", {"name": suite, **counts, "skipped": "0", "time": "0"}
    )
    for result in results:
        case = ElementTree.SubElement(
            testsuite, "testcase", {"classname": "finemon.check", "name": result.name, "time": "0"}
        )
        value = "no data" if result.value is None else _number(result.value)
        if not result.holds:
            failure = ElementTree.SubElement(
                case, "failure", {"message": result.detail, "type": "BoundFailed"}
            )
            failure.text = f"{result.name}: measured {value}: {result.detail}"
        else:
            ElementTree.SubElement(case, "system-out").text = f"measured {value}"
    ElementTree.indent(root)
    body: bytes = ElementTree.tostring(root, encoding="utf-8", xml_declaration=True)
    return body + b"\n"
