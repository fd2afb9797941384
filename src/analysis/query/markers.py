"""Events to mark on a chart: OOM kills, container starts and stops, with their numbers, and
the phases of a run (``finemon mark``).

A :class:`Marker` carries what it counts (``count`` OOM kills at a tick) or names (a phase); its
display text is derived from its kind, count and phase, never parsed back.

A phase's time is one fact with one source, :func:`phase_marks_sql`: the value of its
``finemon.phase{phase=NAME}`` series (the mark's Unix time, which the daemon writes from the
mark's tick on), the smallest one of each run. ``finemon compare --phase`` cuts its runs there
and ``finemon view`` aligns two runs there. A run's manifest (``phases: [{name, time}]``) gives
the phases its files do not hold (a mark in the run's last moments, a file lost).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from analysis.dataset import label_sql
from analysis.query.index import ContainerIndex, Query, key_filter
from analysis.query.series import partition_sql
from analysis.query.times import parse_iso
from common.catalogue.container import CONTAINER_MEMORY_OOM_KILLS as OOM_KILLS

#: The gauge ``finemon mark`` writes (the catalogue's ``finemon.phase``), one series per
#: ``phase`` label, valued with the mark's Unix time.
PHASE_METRIC: Final = "finemon.phase"
PHASE_LABEL: Final = "phase"
#: What a marker marks: OOM kills counted, a container's first tick of a run, its last, the
#: start of a phase of a run.
MarkerKind = Literal["oom", "start", "stop", "phase"]
#: Markers at the same time are listed in this order.
_ORDER = {"phase": 0, "start": 1, "oom": 2, "stop": 3}


def marker_text(kind: str, count: int = 1, phase: str = "") -> str:
    """The display text of ``count`` events of ``kind``: ``OOM kill``, ``3 OOM kills``,
    ``started``, ``stopped``, ``phase load_started``."""
    if kind == "oom":
        return "OOM kill" if count == 1 else f"{count} OOM kills"
    if kind == "phase":
        return f"phase {phase}"
    return {"start": "started", "stop": "stopped"}.get(kind, kind)


@dataclass(frozen=True, slots=True)
class Marker:
    """An event to mark on a chart at ``time`` (epoch seconds): ``oom`` (``count`` OOM kills
    counted at that tick), ``start`` or ``stop`` (a container's first or last tick of a run,
    when that is not the run's own first or last tick; ``count`` 1), ``phase`` (the mark of
    phase ``phase`` in run ``run_id``: the node's, so ``container_key`` is empty). ``text`` is
    the display text (:func:`marker_text`)."""

    time: float
    kind: MarkerKind
    container_key: str
    count: int = 1
    phase: str = ""
    run_id: str = ""
    text: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "text", marker_text(self.kind, self.count, self.phase))


@dataclass(frozen=True, slots=True)
class PhaseMark:
    """Phase ``name`` of run ``run_id`` began at ``time`` (epoch seconds); ``source`` says
    where that was read: ``files`` (its ``finemon.phase`` series) or ``manifest``."""

    run_id: str
    name: str
    time: float
    source: Literal["files", "manifest"]


def phase_marks_sql(where: str = "true") -> str:
    """SQL of (``run_id``, ``phase``, ``mark_seconds``): the mark of each phase of each run
    among the ``metrics`` rows ``where`` selects, the smallest value of its
    ``finemon.phase{phase=NAME}`` series (the mark's Unix time, epoch seconds)."""
    return f"""SELECT run_id, {label_sql(PHASE_LABEL)} AS phase,
            min(value_float) AS mark_seconds
        FROM metrics
        WHERE metric_name = '{PHASE_METRIC}' AND value_float IS NOT NULL AND ({where})
        GROUP BY run_id, phase"""


def _manifest_phases(run_id: str, manifest: Mapping[str, Any]) -> Iterable[PhaseMark]:
    phases = manifest.get("phases")
    for entry in phases if isinstance(phases, list) else ():
        if not isinstance(entry, Mapping) or not isinstance(entry.get("name"), str):
            continue
        moment = parse_iso(entry.get("time"))
        if moment is not None and entry["name"]:
            yield PhaseMark(run_id, entry["name"], moment.timestamp(), "manifest")


def find_phase_marks(query: Query, manifests: Mapping[str, Mapping[str, Any]]) -> list[PhaseMark]:
    """Every phase mark of the dataset, by time: from the files (:func:`phase_marks_sql`),
    and from the runs' ``manifests`` (``phases: [{name, time}]``, by run id) those the files
    do not hold. A manifest entry without a name or an ISO 8601 time is left out."""
    found = {
        (str(run_id), str(name)): PhaseMark(str(run_id), str(name), float(seconds), "files")
        for run_id, name, seconds in query(phase_marks_sql(), None)
        if name is not None and seconds is not None
    }
    for run_id, manifest in manifests.items():
        for mark in _manifest_phases(run_id, manifest):
            found.setdefault((mark.run_id, mark.name), mark)
    return sorted(found.values(), key=lambda m: (m.time, m.run_id, m.name))


def phase_markers(marks: Iterable[PhaseMark], first_ms: int, last_ms: int) -> list[Marker]:
    """The :class:`Marker` (kind ``phase``) of each of ``marks`` from ``first_ms`` to
    ``last_ms`` (epoch ms)."""
    return [
        Marker(mark.time, "phase", "", phase=mark.name, run_id=mark.run_id)
        for mark in marks
        if first_ms <= mark.time * 1000 <= last_ms
    ]


def find_markers(
    query: Query,
    index: ContainerIndex,
    keys: Sequence[str],
    first_ms: int,
    last_ms: int,
    *,
    run_ranges: Mapping[str, tuple[int, int]],
    tick_seconds: float,
) -> list[Marker]:
    """The markers of containers ``keys`` from ``first_ms`` to ``last_ms`` (epoch ms), by time:
    the ticks where the ``container.memory.oom_kills`` counter went up, and the containers'
    first and last ticks of a run more than 1.5 ticks from the run's own (``run_ranges``)."""
    tolerance_ms = 1.5 * tick_seconds * 1000
    # The counter's rows are read twice: first to find the containers whose counter moved at
    # all (rarely any), then, for those alone, the ticks where it went up.
    where = f"""metric_name = $m AND {key_filter(index.containers, keys)}
        AND time <= make_timestamp($hi * 1000)"""
    moved = [
        str(row[0])
        for row in query(
            f"""SELECT container_key FROM metrics WHERE {where}
            GROUP BY run_id, container_key HAVING min(value_int) < max(value_int)""",
            {"m": OOM_KILLS, "hi": last_ms},
        )
    ]
    rows = []
    if moved:
        rows = query(
            f"""SELECT container_key, ms, delta FROM (
                SELECT container_key, epoch_ms(time) AS ms,
                    value_int - lag(value_int) OVER (
                        PARTITION BY {partition_sql(OOM_KILLS)} ORDER BY time) AS delta
                FROM metrics
                WHERE metric_name = $m AND {key_filter(index.containers, moved)}
                    AND time <= make_timestamp($hi * 1000))
            WHERE delta > 0 AND ms >= $lo ORDER BY ms""",
            {"m": OOM_KILLS, "lo": first_ms, "hi": last_ms},
        )
    found = [Marker(ms / 1000, "oom", str(key), int(kills)) for key, ms, kills in rows]
    wanted = set(keys)
    for life in index.runs:
        if life.container_key not in wanted:
            continue
        first, last = life.first_ms, life.last_ms
        run_first, run_last = run_ranges.get(life.run_id, (first, last))
        if first - run_first > tolerance_ms and first_ms <= first <= last_ms:
            found.append(Marker(first / 1000, "start", life.container_key))
        if run_last - last > tolerance_ms and first_ms <= last <= last_ms:
            found.append(Marker(last / 1000, "stop", life.container_key))
    return sorted(found, key=marker_order)


def marker_order(marker: Marker) -> tuple[float, int, str]:
    """The order markers are listed in: by time, then phase, start, OOM kill, stop."""
    return marker.time, _ORDER.get(marker.kind, 4), marker.container_key
