"""NodeObserver: everything finemon samples on a node, once per tick.

Each :meth:`NodeObserver.sample` discovers the containers (cgroup filesystem only), reads every
container's cgroup files and every process's ``/proc`` files, and emits the metrics through the
capture facade. Containers and processes that are gone have their series ended. One slow or
failing container never stops the others: read errors are counted by reason (and the first of each
kind and file name logged once), and the PSS reads
(``smaps_rollup``, whose cost grows with process size) run at their own cadence within a per-tick
time budget, oldest reading first, so a tick that runs out of budget defers the rest to the next.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import capture
from common.catalogue import describe_observer_metrics
from common.catalogue.container import CONTAINER_MEMORY_PSS_BYTES, CONTAINER_PROCESSES
from observers.container import ContainerSampler, ReadErrors, log_key
from observers.discovery import ContainerCgroup, Discovery, discover
from observers.file_descriptors import FdBudget
from observers.hierarchy import (
    CgroupHierarchy,
    NoCgroupMountError,
    find_hierarchy,
    hierarchy_from_root,
)
from observers.podmeta import ContainerMeta, PodMetadataCache
from observers.process import ProcessSampler
from observers.readers.errors import (
    AccessDeniedError,
    MalformedFileError,
    ReaderError,
    VanishedError,
)
from observers.series import SeriesSet

log = logging.getLogger("finemon.observers")


@dataclass(frozen=True, slots=True)
class ObserverConfig:
    """Where to read and what to sample.

    ``cgroup_root`` None means found from ``/proc/self/mountinfo``; ``cgroup_subtree``, a cgroup
    path relative to the hierarchy roots, limits what is found to the cgroups below it (the
    demo's sandbox; empty: the whole tree). PSS (``smaps_rollup``) is read
    every ``pss_interval_seconds`` within ``pss_budget_seconds`` per tick; the per-region
    ``smaps`` breakdown is opt-in (``smaps``) every ``smaps_interval_seconds``.
    """

    cgroup_root: Path | None = None
    cgroup_subtree: str = ""
    proc_root: Path = Path("/proc")
    log_root: Path = Path("/var/log")
    node_name: str = ""
    pss: bool = True
    pss_interval_seconds: float = 1.0
    pss_budget_seconds: float = 0.25
    smaps: bool = False
    smaps_interval_seconds: float = 60.0


@dataclass(frozen=True, slots=True)
class SampleReport:
    """What one sample did: containers sampled, skipped by reason, read errors, its duration."""

    containers: int
    skipped: Mapping[str, int]
    read_errors: int
    duration_seconds: float
    processes: int = 0
    pss_reads: int = 0
    pss_deferred: int = 0
    errors_by_reason: Mapping[str, int] = field(default_factory=dict)


class _Container:
    __slots__ = ("cgroup", "labels", "processes", "sampler")

    def __init__(self, cgroup: ContainerCgroup, sampler: ContainerSampler, labels: dict[str, str]):
        self.cgroup = cgroup
        self.sampler = sampler
        self.labels = labels
        self.processes: dict[int, ProcessSampler] = {}


class NodeObserver:
    """Samples every container of the node and its processes; see the module docstring.

    Raises :class:`~observers.hierarchy.NoCgroupMountError` at construction when no cgroup
    hierarchy can be found. :meth:`sample` never raises for bad or vanishing kernel files.
    """

    def __init__(self, config: ObserverConfig) -> None:
        self.config = config
        self.hierarchy: CgroupHierarchy = (
            hierarchy_from_root(config.cgroup_root)
            if config.cgroup_root is not None
            else find_hierarchy(f"{config.proc_root}/self/mountinfo")
            if config.proc_root != Path("/proc")
            else find_hierarchy()
        )
        scan_root = self.hierarchy.scan_root  # raises NoCgroupMountError now, not mid-run
        self._subtree = config.cgroup_subtree.strip("/")
        if self._subtree and not (scan_root / self._subtree).is_dir():
            raise NoCgroupMountError(f"no cgroup {self._subtree} under {scan_root}")
        self._proc_root = str(config.proc_root)
        self._podmeta = PodMetadataCache(config.log_root)
        self._budget = FdBudget()
        self._node_millicores = float(os.cpu_count() or 1) * 1000.0
        self._containers: dict[str, _Container] = {}
        self._previous: Discovery | None = None
        self.mode = "unknown"
        self._errors_total = ReadErrors()
        # What each metric means, for the live view's HELP and the files' metadata.
        describe_observer_metrics()
        self._health_processes = capture.gauge("finemon.processes")
        self._health_duration = capture.gauge("finemon.observer.duration_seconds")
        self._health_discovery = capture.gauge("finemon.discovery.duration_seconds")
        self._health_deferred = capture.counter("finemon.pss.deferred")
        self._health_pss_reads = capture.counter("finemon.pss.reads")
        self._logged_errors: set[str] = set()
        # Scan once now, so that describe() names the layout found before the first sample.
        try:
            self._previous = discover(
                self.hierarchy, proc_root=self._proc_root, subtree=self._subtree
            )
            self.mode = self._previous.mode
        except OSError as exc:
            log.warning("first discovery failed: %s", exc)

    # ------------------------------------------------------------------ labels
    def _labels(self, cgroup: ContainerCgroup, meta: ContainerMeta) -> dict[str, str]:
        labels: dict[str, str] = {}
        if self.mode == "host":
            labels["cgroup"] = cgroup.relpath
        for key, value in (
            ("container_id", cgroup.container_id),
            ("pod_uid", cgroup.pod_uid),
            ("qos_class", cgroup.qos_class),
            ("namespace", meta.namespace),
            ("pod_name", meta.pod_name),
            ("container_name", meta.container_name),
        ):
            if value:
                labels[key] = value
        return labels

    # ------------------------------------------------------------------ sampling
    def sample(self) -> SampleReport:
        """Discover, read and emit once; returns what happened."""
        started = time.perf_counter()
        errors = ReadErrors()
        try:
            discovery = discover(
                self.hierarchy,
                proc_root=self._proc_root,
                previous=self._previous,
                subtree=self._subtree,
            )
        except (NoCgroupMountError, OSError) as exc:
            log.error("discovery failed: %s", exc)
            errors.by_reason["other"] += 1
            return self._report(started, errors, {}, 0, 0, 0)
        self._previous = discovery
        self.mode = discovery.mode
        for skipped in discovery.procs_skipped:  # bad cgroup.procs lines; the cgroups were kept
            errors.count(skipped.first, skipped.count)
        discovered = time.perf_counter()
        self._health_discovery.set(discovered - started)
        if discovery.mode == "kubernetes":
            try:
                self._podmeta.refresh()
            except OSError as exc:
                log.warning("pod metadata refresh failed: %s", exc)
        current: set[str] = set()
        processes = 0
        for cgroup in discovery.containers:
            current.add(cgroup.relpath)
            state = self._container(cgroup)
            now = time.monotonic()
            state.sampler.sample(now, errors)
            if state.sampler.gone:
                self._close(cgroup.relpath)
                current.discard(cgroup.relpath)
                continue
            processes += self._sample_processes(state, cgroup.pids, errors)
        for relpath in [r for r in self._containers if r not in current]:
            self._close(relpath)
        pss_reads = pss_deferred = 0
        if self.config.pss:
            pss_reads, pss_deferred = self._sample_pss(errors)
        if self.config.smaps:
            self._sample_smaps(errors)
        for key, first in errors.first.items():
            self._log_once(first, key)
        for state in self._containers.values():
            known = [p.pss_bytes for p in state.processes.values() if p.pss_bytes is not None]
            if known:
                state.sampler.series.gauge(CONTAINER_MEMORY_PSS_BYTES, sum(known))
            state.sampler.series.gauge(CONTAINER_PROCESSES, len(state.processes))
        self._health_processes.set(processes)
        return self._report(started, errors, discovery.skipped, processes, pss_reads, pss_deferred)

    def _report(
        self,
        started: float,
        errors: ReadErrors,
        skipped: Mapping[str, int],
        processes: int,
        pss_reads: int,
        pss_deferred: int,
    ) -> SampleReport:
        by_reason = dict(errors.by_reason)
        if pss_deferred:
            self._health_deferred.increment(pss_deferred)
        if pss_reads:
            self._health_pss_reads.increment(pss_reads)
        duration = time.perf_counter() - started
        self._health_duration.set(duration)
        return SampleReport(
            containers=len(self._containers),
            skipped=dict(skipped),
            read_errors=errors.total(),
            duration_seconds=duration,
            processes=processes,
            pss_reads=pss_reads,
            pss_deferred=pss_deferred,
            errors_by_reason=by_reason,
        )

    def _container(self, cgroup: ContainerCgroup) -> _Container:
        meta = (
            self._podmeta.lookup(cgroup.container_id or "", cgroup.pod_uid or "")
            if self.mode == "kubernetes" and (cgroup.container_id or cgroup.pod_uid)
            else ContainerMeta()
        )
        labels = self._labels(cgroup, meta)
        state = self._containers.get(cgroup.relpath)
        if state is None:
            sampler = ContainerSampler(
                cgroup.dirs, SeriesSet(labels), self._budget, self._node_millicores
            )
            state = self._containers[cgroup.relpath] = _Container(cgroup, sampler, labels)
        elif labels != state.labels:
            # Names appeared (or changed): the container's series continue under the new labels.
            state.labels = labels
            state.sampler.series.relabel(labels)
            for process in state.processes.values():
                process.series.relabel({**labels, "pid": str(process.pid), "comm": process.comm})
                process.next_pss_due = process.next_smaps_due = 0.0  # re-emit under new labels
        state.cgroup = cgroup
        return state

    def _sample_processes(
        self, state: _Container, pids: tuple[int, ...], errors: ReadErrors
    ) -> int:
        live = set()
        for pid in pids:
            if pid <= 0:  # outside our PID namespace
                continue
            process = state.processes.get(pid)
            if process is None:
                process = ProcessSampler(self._proc_root, pid, SeriesSet({}), self._budget)
                state.processes[pid] = process
            try:
                stat = process.read_stat()
            except VanishedError:
                self._close_process(state, pid)
                continue
            except ReaderError as exc:
                errors.count(exc)
                continue
            if stat is None:  # unchanged since the last tick
                process.idle(time.monotonic())
                live.add(pid)
                continue
            if process.start_ticks is not None and stat.starttime_ticks != process.start_ticks:
                # The PID was reused by a new process: end the old one's series.
                self._close_process(state, pid)
                process = ProcessSampler(self._proc_root, pid, SeriesSet({}), self._budget)
                state.processes[pid] = process
            if process.start_ticks is None or stat.comm != process.comm:
                process.start_ticks = stat.starttime_ticks
                process.comm = stat.comm
                process.series.relabel({**state.labels, "pid": str(pid), "comm": stat.comm})
                process.next_pss_due = process.next_smaps_due = 0.0
            try:
                process.emit_stat(stat, time.monotonic(), state.sampler.capacity_millicores)
            except ValueError as exc:  # a value capture refuses (e.g. negative)
                errors.count(MalformedFileError(f"{self._proc_root}/{pid}/stat", 1, str(exc)))
            live.add(pid)
        for pid in [p for p in state.processes if p not in live]:
            self._close_process(state, pid)
        return len(live)

    def _sample_pss(self, errors: ReadErrors) -> tuple[int, int]:
        now = time.monotonic()
        due = [
            (process.next_pss_due, process)
            for state in self._containers.values()
            for process in state.processes.values()
            if process.next_pss_due <= now
        ]
        due.sort(key=lambda item: item[0])
        deadline = time.perf_counter() + self.config.pss_budget_seconds
        interval = self.config.pss_interval_seconds
        reads = deferred = 0
        for index, (_, process) in enumerate(due):
            # The oldest due reading always happens, so a tiny budget slows PSS, never stops it.
            if index and time.perf_counter() > deadline:
                deferred = len(due) - index
                break
            try:
                refused = process.read_pss()
                if refused is not None:
                    errors.count(refused, refused.dropped)
                reads += 1
                # A little early, so that an interval equal to the tick reads every tick.
                process.next_pss_due = now + interval * 0.9
            except VanishedError:
                # Gone, or a zombie (stat still reads, smaps_rollup does not): the stat read
                # decides whether the process is gone; a zombie simply has no PSS.
                process.pss_bytes = None
                process.next_pss_due = now + interval
            except AccessDeniedError as exc:
                errors.count(exc)
                process.next_pss_due = now + max(interval, 1.0) * 10
            except ReaderError as exc:
                errors.count(exc)
                process.next_pss_due = now + interval
        return reads, deferred

    def _sample_smaps(self, errors: ReadErrors) -> None:
        now = time.monotonic()
        for state in list(self._containers.values()):
            for process in list(state.processes.values()):
                if process.next_smaps_due > now:
                    continue
                process.next_smaps_due = now + self.config.smaps_interval_seconds
                try:
                    refused = process.read_smaps()
                    if refused is not None:
                        errors.count(refused, refused.dropped)
                except VanishedError:
                    self._close_process(state, process.pid)
                except ReaderError as exc:
                    errors.count(exc)

    def _log_once(self, exc: ReaderError, key: str | None = None) -> None:
        kind = log_key(exc) if key is None else key
        if kind not in self._logged_errors:
            self._logged_errors.add(kind)
            log.warning("read error (logged once per kind and file): %s", exc)

    def _close_process(self, state: _Container, pid: int) -> None:
        process = state.processes.pop(pid, None)
        if process is not None:
            process.close()

    def _close(self, relpath: str) -> None:
        state = self._containers.pop(relpath, None)
        if state is None:
            return
        for pid in list(state.processes):
            self._close_process(state, pid)
        state.sampler.close()

    def describe(self) -> dict[str, object]:
        """The hierarchy and layout found, for the session manifest."""
        h = self.hierarchy
        return {
            "cgroup_mode": h.mode,
            "cgroup_unified_mount": None if h.unified is None else str(h.unified),
            "cgroup_v1_mounts": {k: str(v) for k, v in sorted(h.v1.items())},
            "layout": self.mode,
            "cgroup_subtree": self._subtree or None,
            "kubepods": list(self._previous.kubepods_relpaths) if self._previous else [],
        }

    def close(self) -> None:
        """End every series and close every kept descriptor."""
        for relpath in list(self._containers):
            self._close(relpath)
