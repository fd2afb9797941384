"""Events to mark on a chart: OOM kills, container starts and stops, with their numbers.

A :class:`Marker` carries what it counts (``count`` OOM kills at a tick); its display text is
derived from its kind and count, never parsed back.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from analysis.query.index import ContainerIndex, Query, key_filter
from analysis.query.series import partition_sql
from common.catalogue.container import CONTAINER_MEMORY_OOM_KILLS as OOM_KILLS

#: The counter whose increases are OOM kills.
#: What a marker marks: OOM kills counted, a container's first tick of a run, its last.
MarkerKind = Literal["oom", "start", "stop"]
#: Markers at the same time are listed in this order.
_ORDER = {"start": 0, "oom": 1, "stop": 2}


def marker_text(kind: str, count: int = 1) -> str:
    """The display text of ``count`` events of ``kind``: ``OOM kill``, ``3 OOM kills``,
    ``started``, ``stopped``."""
    if kind == "oom":
        return "OOM kill" if count == 1 else f"{count} OOM kills"
    return {"start": "started", "stop": "stopped"}.get(kind, kind)


@dataclass(frozen=True, slots=True)
class Marker:
    """An event to mark on a chart at ``time`` (epoch seconds): ``oom`` (``count`` OOM kills
    counted at that tick), ``start`` or ``stop`` (a container's first or last tick of a run,
    when that is not the run's own first or last tick; ``count`` 1). ``text`` is the display
    text (:func:`marker_text`)."""

    time: float
    kind: MarkerKind
    container_key: str
    count: int = 1
    text: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "text", marker_text(self.kind, self.count))


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
    return sorted(found, key=lambda m: (m.time, _ORDER.get(m.kind, 3), m.container_key))
