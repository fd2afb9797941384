"""Two runs (or more) on one time axis: a metric's series of each run, in seconds since the
run's start or since a phase's mark, so the same moment of two experiments lines up.

The alignment is ``finemon compare``'s (its html overlay, :mod:`analysis.experiments.series`):
a run's origin is its first tick, or with a phase the mark of that phase in the run, the one
source of a phase's time (:func:`analysis.query.markers.phase_marks_sql`, the manifest's
``phases`` where the files lack the mark), and with a phase only what follows the mark is
drawn. Containers are matched across runs as ``finemon compare`` matches them
(:func:`analysis.experiments.workload.container_identity`: ``namespace/workload/container``, a
host cgroup by its path), since a pod's name and a container's id change from run to run.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from analysis.errors import AnalysisError
from analysis.experiments.workload import container_identity
from analysis.query.files import read_manifests
from analysis.query.index import ContainerInfo, RunInfo
from analysis.query.labels import LabelFilters
from analysis.query.markers import PhaseMark
from analysis.query.series import DEFAULT_MAX_POINTS, NODE_LABEL, SeriesData, series_label
from analysis.query.times import utc

if TYPE_CHECKING:
    from analysis.query.explorer import Explorer

#: Most runs one overlay draws.
MAX_OVERLAY_RUNS = 4


@dataclass(frozen=True, slots=True)
class OverlayRun:
    """A run one can overlay: its first and last tick (epoch seconds), its manifest's
    experiment and variant, and the phases marked in it (by time)."""

    run_id: str
    first_time: float
    last_time: float
    experiment: str | None
    variant: str | None
    phases: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Overlay:
    """A metric's series of each run, ``times`` in seconds since the run's ``origins`` (epoch
    seconds: its first tick, or the mark of ``phase``)."""

    metric: str
    phase: str | None
    origins: Mapping[str, float]
    series: list[SeriesData]


def identity(info: ContainerInfo) -> str:
    """What ``info`` is across runs (``finemon compare``'s rule)."""
    return container_identity(
        info.namespace, info.pod_name, info.container_name, info.cgroup, info.key
    )


def overlay_runs(runs: Sequence[RunInfo], marks: Sequence[PhaseMark],
                 manifests: Mapping[str, Mapping[str, object]]) -> list[OverlayRun]:  # fmt: skip
    """The runs with data, by start, with their phases and their manifests' labels."""
    found = []
    for run in runs:
        if run.first_time is None or run.last_time is None:
            continue
        manifest = manifests.get(run.run_id, {})
        labels = {k: v if isinstance(v := manifest.get(k), str) else None
                  for k in ("experiment", "variant")}  # fmt: skip
        found.append(
            OverlayRun(
                run.run_id,
                run.first_time.timestamp(),
                run.last_time.timestamp(),
                labels["experiment"],
                labels["variant"],
                tuple(dict.fromkeys(m.name for m in marks if m.run_id == run.run_id)),
            )
        )
    return found


def run_origins(
    runs: Sequence[OverlayRun], marks: Sequence[PhaseMark], run_ids: Sequence[str],
    phase: str | None,
) -> dict[str, float]:  # fmt: skip
    """Each of ``run_ids``' origin (epoch seconds): its first tick, or its mark of ``phase``.
    Raises :class:`AnalysisError` for an unknown run or one without the phase."""
    by_id = {run.run_id: run for run in runs}
    origins = {}
    for run_id in run_ids:
        run = by_id.get(run_id)
        if run is None:
            raise AnalysisError(f"no run {run_id!r} with data (runs: {', '.join(by_id) or 'none'})")
        if phase is None:
            origins[run_id] = run.first_time
            continue
        mark = next((m for m in marks if m.run_id == run_id and m.name == phase), None)
        if mark is None:
            raise AnalysisError(
                f"run {run_id[:8]} has no phase {phase!r} (its phases: "
                f"{', '.join(run.phases) or 'none'})"
            )
        origins[run_id] = mark.time
    return origins


def overlay(
    explorer: Explorer,
    metric: str,
    container_keys: Sequence[str],
    run_ids: Sequence[str],
    *,
    phase: str | None = None,
    max_points: int = DEFAULT_MAX_POINTS,
    labels: LabelFilters | None = None,
    node_wide: bool = False,
) -> Overlay:
    """``metric``'s series of the containers ``container_keys`` stand for (their
    :func:`identity`, in every run) in each of ``run_ids``, each run from its origin (its first
    tick, or its mark of ``phase``: only what follows it) to its last tick, at most
    ``max_points`` points each, times in seconds since the origin. Series are labelled
    ``identity (run 3f9a2c00)`` and keyed ``run|key``; ``labels`` and ``node_wide`` as for
    :meth:`Explorer.series`. Raises :class:`AnalysisError` for an unknown run, one without the
    phase, or more than :data:`MAX_OVERLAY_RUNS` runs."""
    run_ids = list(dict.fromkeys(run_ids))
    if not run_ids or len(run_ids) > MAX_OVERLAY_RUNS:
        raise AnalysisError(f"overlay 1 to {MAX_OVERLAY_RUNS} runs, got {len(run_ids)}")
    marks = explorer.phase_marks()
    runs = overlay_runs(explorer.runs(), marks, {})
    origins = run_origins(runs, marks, run_ids, phase)
    by_id = {run.run_id: run for run in runs}
    containers = explorer.containers()
    wanted = {identity(c) for c in containers if c.key in set(container_keys)}
    names = {c.key: identity(c) for c in containers}
    found: list[SeriesData] = []
    for run_id in run_ids:
        keys = [c.key for c in containers if run_id in c.runs and identity(c) in wanted]
        if not keys and not node_wide:
            continue
        origin = origins[run_id]
        for series in explorer.series(
            metric, keys, utc(origin * 1000), utc(by_id[run_id].last_time * 1000),
            max_points=max_points, labels=labels, node_wide=node_wide,
        ):  # fmt: skip
            name = names.get(series.container_key) or NODE_LABEL
            found.append(
                replace(
                    series,
                    key=f"{run_id}|{series.key}",
                    label=f"{series_label(name, series.labels)} (run {run_id[:8]})",
                    times=[t - origin for t in series.times],
                )
            )
    return Overlay(metric, phase, origins, found)


def list_runs(explorer: Explorer) -> list[OverlayRun]:
    """The runs of ``explorer``'s dataset one can overlay (:func:`overlay_runs`)."""
    return overlay_runs(explorer.runs(), explorer.phase_marks(), read_manifests(explorer.directory))
