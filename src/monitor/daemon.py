"""The ``finemon run`` loop: preflight, recovery, sampling on the tick grid, rotation, limits,
signals and the session manifest.

Life cycle:

1. Preflight, before anything starts: the output directory must be a directory and writable (a
   temporary file is created, written, fsynced and removed in it; a full disk is not an error,
   see 3), the observer must come up (no cgroup mount is an error) and the Prometheus port, if
   asked for, must bind. A failure is one line on stderr and exit code 1, and the folders the
   preflight created for the output directory are removed again while they are empty.
2. ``capture.recover(output_dir)`` rebuilds what a killed predecessor left (journals of files it
   had not finished) and the result is logged.
3. If the size limit is already reached (:mod:`monitor.sizelimit`) or the disk is full
   (:mod:`monitor.diskspace`), finemon records nothing and idles (:meth:`Daemon._idle`), writing
   no manifest. Otherwise a :class:`capture.CaptureManager` is started on the first file, driven
   by this loop (``auto_tick=False``), and the run's manifest is written.
4. One priming sample, before the first tick is chosen, registers every series and opens every
   file (the costly first sample of a large node cannot make the first ticks late). Then every
   ``interval`` the loop wakes on the next whole multiple of the interval in Unix time,
   calls ``observer.sample()``, records finemon's own CPU, RSS, sample duration and container
   count, and takes the tick: the tick holds exactly the values sampled for it. A sample that
   overruns the next boundary makes the loop skip the ticks whose boundaries passed (counted in
   ``finemon.ticks_skipped``) and resume on the grid, which never drifts. In the files the
   skipped ticks repeat the last sampled values, up to one accumulator window of them; a stall
   longer than the window leaves the older ticks out, counted in ``capture.missed_ticks``.
5. Every ``--rotation-seconds`` (on a tick boundary), and at each UTC midnight, a new file is
   started (from midnight on in the next day's ``dt=`` partition: no file holds two days), and
   the old one is published in a background thread while sampling
   goes on (:class:`monitor.rotation.FileCycle`); the log gets one line per rotation and a health
   line every minute, never a line per sample. A rotation that fails is logged and counted in
   ``finemon.write_errors`` and the current file goes on.
6. SIGINT/SIGTERM, ``--duration``, the size limit or a full disk (both checked every tick) stop
   sampling; the manager drains its window and publishes the file, the manifest gets the end
   time and reason, exit code 0. A file that cannot be finished on a full disk keeps its journal
   for the next run to recover (still exit code 0). A second signal during the drain (or a drain
   longer than 45 s) cuts it short: the file's journal is left for the next start to recover,
   and no ``.parquet`` is ever left unreadable (:meth:`monitor.rotation.FileCycle.finish`).
7. After the size limit or a full disk, finemon stays up idle (one log line, then a health line
   a minute, the Prometheus endpoint still served) until a signal, or until space is freed: it
   looks every few seconds, and then :func:`run` records again as a new run.
"""

from __future__ import annotations

import json
import logging
import math
import os
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import capture
from common.contract import (
    CONTAINER_KEY_LABELS,
    GLOBAL_LABEL_COLUMNS,
    LABEL_COLUMNS,
    SUMMARY_AGGREGATE_METRICS,
    SUMMARY_SERIES_METRICS,
    SUMMARY_SKETCH_METRICS,
)
from common.dataset_index import update_partition
from common.version import __version__
from monitor import diskspace, memory_policy
from monitor.config import Config
from monitor.intake.quiet import SampleWindow
from monitor.layout import OutputLayout
from monitor.manifest import SessionManifest, git_revision, host_info, iso_utc, read_manifest
from monitor.observer import (
    NodeObserverLike,
    ObserverFactory,
    default_observer_factory,
    load_observer_factory,
    observer_config,
)
from monitor.phases import PHASE_LABEL, PHASE_METRIC, ControlServer, Mark, MarkError, answer_mark
from monitor.rotation import FileCycle, midnight_rotation_tick
from monitor.selfstats import SelfUsage, describe_daemon_metrics
from monitor.signals import SignalWatch
from monitor.sizelimit import SizeLimit

if TYPE_CHECKING:
    from capture.prometheus import Health
    from monitor.intake.flags import IntakeConfig
    from monitor.intake.scrape import TargetScraper
    from monitor.intake.server import IntakeServer

log = logging.getLogger("finemon")

#: A partition's index that needs a rebuild (files removed by the size limit or an upload, an
#: index missing or damaged) is rebuilt after a rotation when it has at most this many files:
#: a rebuild reads every footer there (about 9 ms each), left to the readers beyond that.
INDEX_REBUILD_AT_MOST_FILES = 16
#: Seconds between health lines in the log.
HEALTH_SECONDS = 60.0
#: Longest drain before finemon hurries it as if signalled twice (Kubernetes grants 60 s).
DRAIN_TIMEOUT_SECONDS = 45.0
#: Time allowed for opening the first file before the first tick is due.
STARTUP_SECONDS = 0.5

# Reasons recorded in the manifest.
REASON_DURATION = "duration"
REASON_SIGNAL = "signal"
REASON_SIZE_LIMIT = "size_limit"
#: The output directory's filesystem is full (see monitor.diskspace).
REASON_DISK_FULL = "disk_full"
REASON_ERROR = "error"
#: ``exit_reason`` of a run that idled (size limit, full disk) until space was freed.
REASON_SPACE_FREED = "space_freed"
#: Seconds between looks at the output directory (its size, its free space) while idling.
RESUME_CHECK_SECONDS = 2.0


class StartupError(Exception):
    """finemon cannot start; the message is one line for stderr."""


@dataclass(slots=True)
class RunStats:
    """Counts for the manifest and the health line."""

    ticks_sampled: int = 0
    ticks_skipped: int = 0
    files: int = 0
    rows: int = 0
    bytes: int = 0
    write_errors: int = 0
    sample_errors: int = 0
    #: Published files the index beside the data could not be updated for (a read-only or full
    #: disk, a partition that needs a rebuild left to the readers: docs/output.md, "The index").
    index_skips: int = 0


@dataclass(frozen=True, slots=True)
class OwnMetrics:
    """finemon's own series, recorded every tick like the containers'."""

    cpu_millicores: capture.Gauge
    rss_bytes: capture.Gauge
    tick_duration_seconds: capture.Gauge
    containers: capture.Gauge
    ticks_skipped: capture.Counter
    write_errors: capture.Counter
    sample_errors: capture.Counter

    @classmethod
    def register(cls) -> OwnMetrics:
        """Register the series with the installed recorder; counters start at 0."""
        metrics = cls(
            cpu_millicores=capture.gauge("finemon.self.cpu_millicores"),
            rss_bytes=capture.gauge("finemon.self.rss_bytes"),
            tick_duration_seconds=capture.gauge("finemon.tick.duration_seconds"),
            containers=capture.gauge("finemon.containers"),
            ticks_skipped=capture.counter("finemon.ticks_skipped"),
            write_errors=capture.counter("finemon.write_errors"),
            sample_errors=capture.counter("finemon.sample_errors"),
        )
        for counter in (
            metrics.ticks_skipped,
            metrics.write_errors,
            metrics.sample_errors,
        ):
            counter.absolute(0)
        return metrics


def global_labels(config: Config) -> dict[str, str]:
    """The labels of every row of the run: the contract's global label columns that are
    configured (one left out, ``cluster_name`` without ``--cluster-name``, is a null column)."""
    configured = {"cluster_name": config.cluster_name, "node_name": config.node_name}
    return {name: value for name in GLOBAL_LABEL_COLUMNS if (value := configured[name])}


def prepare_output_dir(output_dir: Path) -> list[Path]:
    """Create ``output_dir`` and its missing parents; returns the folders it created, deepest
    first (:func:`remove_created` takes them away again after a failed start).

    Raises StartupError with a one-line reason (not a directory, cannot be created).
    """
    created: list[Path] = []
    folder = output_dir
    while not os.path.lexists(folder) and folder != folder.parent:
        created.append(folder)
        folder = folder.parent
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
    except FileExistsError:  # a file, or a link to nothing
        raise StartupError(f"output dir {output_dir} is not a directory") from None
    except OSError as exc:
        raise StartupError(f"cannot create output dir {output_dir}: {exc.strerror or exc}") from exc
    if not output_dir.is_dir():
        raise StartupError(f"output dir {output_dir} is not a directory")
    return created


def remove_created(folders: Iterable[Path]) -> None:
    """Remove ``folders`` (deepest first) while they are empty: what a failed start made."""
    for folder in folders:
        try:
            folder.rmdir()
        except OSError:  # not empty (or gone): leave it and its parents
            return


@dataclass(frozen=True, slots=True)
class Blocked:
    """Why finemon does not record: ``reason`` (the manifest's, :data:`REASON_SIZE_LIMIT` or
    :data:`REASON_DISK_FULL`), what was counted (``counted``, for the log) and what the manifest
    records under the reason's name (``marker``)."""

    reason: str
    counted: str
    marker: Mapping[str, int]


class Daemon:
    """One run of ``finemon run``; :meth:`run` returns the process exit code.

    ``observer_factory`` builds the observer from its settings (default: the config's
    ``--observer`` callable, else ``observers.node.NodeObserver``).
    """

    def __init__(
        self,
        config: Config,
        *,
        observer_factory: ObserverFactory | None = None,
        signals: SignalWatch | None = None,
    ) -> None:
        self.config = config
        self._factory = observer_factory
        self.interval = config.interval_seconds
        self.run_id = uuid.uuid4().hex
        self.layout = OutputLayout(config.output_dir, config.identifier, self.run_id)
        self._own_signals = signals is None
        self.signals = SignalWatch() if signals is None else signals
        self.stats = RunStats()
        self.size_limit = SizeLimit(config.output_dir, config.size_limit_bytes)
        self.start_time = time.time()
        self.end_at = (
            None if config.duration_seconds is None else self.start_time + config.duration_seconds
        )
        self._observer: NodeObserverLike | None = None
        self._files: FileCycle | None = None
        self._manifest: SessionManifest | None = None
        self._server: Any = None
        self._intake: IntakeServer | None = None
        #: When the loop samples: the intake and the scrapes wait meanwhile.
        self._window = SampleWindow()
        self._scraper: TargetScraper | None = None
        self._first_tick = 0
        self._containers = 0
        self._self = SelfUsage()
        self._metrics: OwnMetrics | None = None
        self._skipped_gauges: dict[str, capture.Gauge] = {}
        #: Set when the run idled (size limit, full disk) and space was freed: record again.
        self.resume = False
        #: Why the run idles now (None: it does not), for /healthz.
        self._idle_reason: str | None = None
        #: The full disk's error of the preflight probe (None: the output dir took data).
        self._probe_error: OSError | None = None
        #: Whether the run recorded, and so has a manifest (a run that only idles has none).
        self._has_manifest = False
        #: The manifest files that could not be written (each is warned about once).
        self._manifest_failed: set[Path] = set()
        # The size-limit accounting and the manifest, shared with the rotation thread.
        self._state_lock = threading.Lock()
        #: The memory policy's phases in this run.
        self.memory = memory_policy.DaemonMemory()
        #: The control socket ``finemon mark`` talks to, while recording.
        self._control: ControlServer | None = None
        #: The run's phase marks, as the manifest lists them.
        self._phases: list[dict[str, str]] = []
        #: Marks received since the last tick, for the ``finemon.phase`` gauges (under the lock).
        self._pending_marks: list[Mark] = []

    # ------------------------------------------------------------------ entry
    def run(self) -> int:
        """Preflight, record until told to stop, clean up; returns the exit code.

        Raises StartupError (nothing started, nothing written) when finemon cannot start.
        """
        self.start_time = time.time()
        self.memory.at_start()
        describe_daemon_metrics()
        if self.config.duration_seconds is not None:
            self.end_at = self.start_time + self.config.duration_seconds
        if self._own_signals:
            self.signals.install()
        created: list[Path] = []
        try:
            created = prepare_output_dir(self.config.output_dir)
            self._probe_error = self._probe_output_dir()
            self._observer = self._make_observer()
            try:
                config = self.config
                if config.prometheus_port is not None:
                    self._start_prometheus(config.prometheus_port, config.prometheus_address)
                if config.intake is not None:
                    self._start_intake(config.intake)
                return self._run_installed(self._describe())
            finally:
                self._shutdown()
        except StartupError:
            remove_created(created)
            raise
        finally:
            if self._own_signals:
                self.signals.close()

    def _probe_output_dir(self) -> OSError | None:
        """Whether the output dir takes data: None, or the full disk's error (it then idles).

        Raises StartupError when it cannot be written for another reason (read-only...).
        """
        error = diskspace.probe(self.config.output_dir)
        if error is not None and not diskspace.is_disk_full(error):
            raise StartupError(
                f"output dir {self.config.output_dir} is not writable: {error.strerror or error}"
            )
        return error

    def _make_observer(self) -> NodeObserverLike:
        try:
            factory = self._factory
            if factory is None:
                spec = self.config.observer
                factory = default_observer_factory if spec is None else load_observer_factory(spec)
            return factory(observer_config(self.config))
        except (OSError, ImportError, ValueError, RuntimeError) as exc:
            # observers.hierarchy.NoCgroupMountError lands here (no cgroup mount).
            log.debug("observer failed to start", exc_info=True)
            raise StartupError(f"cannot start the observer: {exc}") from exc

    def _describe(self) -> Mapping[str, object]:
        assert self._observer is not None
        try:
            return self._observer.describe()
        except (OSError, ValueError) as exc:
            return {"error": str(exc)}

    def _shutdown(self) -> None:
        if self._intake is not None:
            self._intake.stop()
            self._intake = None
        self._stop_control()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._observer is not None:
            self._observer.close()
            self._observer = None

    def _run_installed(self, description: Mapping[str, object]) -> int:
        config = self.config
        report = capture.recover(config.output_dir)
        self._log_recovery(report)
        if self.signals.count:
            log.info("stopping before recording started: %s", self.signals.last_name)
            return 0
        previous = read_manifest(self.layout.session_manifest)
        self._manifest = SessionManifest(self.layout, self._manifest_document(description, report))
        blocked = self._blocked_at_start(previous, lambda: self._probe_error)
        if blocked is None:
            blocked = self._start_recording()
        if blocked is not None:
            return self._idle(blocked)
        return self._record()

    def _blocked_at_start(
        self, previous: Mapping[str, Any] | None, probe: Callable[[], OSError | None]
    ) -> Blocked | None:
        """What keeps a run from recording now (None: nothing): the size limit reached, or
        still reached since the run of manifest ``previous`` stopped at it, or a full disk
        (under ``diskspace.START_FREE_BYTES`` free, or the error ``probe`` returns)."""
        limit = self.size_limit
        output_dir = self.config.output_dir
        used = limit.rescan()
        if limit.reached(used):
            return Blocked(
                REASON_SIZE_LIMIT,
                f"finemon's files under {output_dir} total {used} bytes, at or over the size "
                f"limit of {limit.limit_bytes} bytes",
                limit.marker(used),
            )
        if limit.still_reached(previous, used):
            return Blocked(
                REASON_SIZE_LIMIT,
                f"the last run stopped at the size limit of {limit.limit_bytes} bytes and no "
                f"space was freed since: finemon's files under {output_dir} total {used} bytes, "
                f"at least the {limit.left_bytes(previous)} bytes it left",
                limit.marker(used),
            )
        free = diskspace.free_bytes(output_dir)
        needed = diskspace.START_FREE_BYTES
        if free is not None and free < needed:
            return Blocked(
                REASON_DISK_FULL,
                f"the filesystem of {output_dir} has {free} bytes free, under the {needed} "
                "bytes needed to start recording",
                {"free_bytes": free, "needed_bytes": needed},
            )
        error = probe()
        if error is not None:
            return Blocked(
                REASON_DISK_FULL,
                f"{output_dir} takes no data: {error.strerror or error}",
                {"free_bytes": -1 if free is None else free, "needed_bytes": needed},
            )
        return None

    # ------------------------------------------------------------------ start
    def _log_recovery(self, report: capture.RecoveryReport) -> None:
        for recovered in report.recovered:
            log.info(
                "recovered file=%s rows=%d ticks=%d%s",
                recovered.path,
                recovered.rows,
                recovered.ticks,
                "" if recovered.complete else " (journal tail truncated)",
            )
        for path, reason in report.failed:
            log.error("recovery failed journal=%s reason=%s", path, reason)
        if report.recovered or report.removed or report.failed:
            log.info(
                "recovery recovered=%d removed=%d failed=%d dir=%s",
                len(report.recovered),
                len(report.removed),
                len(report.failed),
                self.config.output_dir,
            )
        else:
            log.info("recovery nothing to recover dir=%s", self.config.output_dir)

    def _start_prometheus(self, port: int, address: str) -> None:
        from capture.prometheus import start_http_endpoint  # noqa: PLC0415 - only when asked

        include: Callable[[str], bool] | None = None
        exposed_labels: (
            Callable[[tuple[tuple[str, str], ...]], tuple[tuple[str, str], ...]] | None
        ) = None
        if self.config.prometheus_series == "default":
            from common.catalogue import (  # noqa: PLC0415
                in_prometheus_default,
                prometheus_default_labels,
            )

            include, exposed_labels = in_prometheus_default, prometheus_default_labels
        try:
            self._server, _thread = start_http_endpoint(
                port,
                address,
                include=include,
                exposed_labels=exposed_labels,
                health=self._health,
                post={"/mark": self._post_mark},
            )
        except OSError as exc:
            raise StartupError(
                f"cannot serve Prometheus on {address}:{port}: {exc.strerror or exc}"
            ) from exc
        log.info(
            "prometheus serving http://%s:%d/metrics series=%s, health at /healthz, "
            "marks at POST /mark",
            address,
            port,
            self.config.prometheus_series,
        )

    def _start_intake(self, intake: IntakeConfig) -> None:
        """Bind and serve the intake (it answers 503 until recording starts)."""
        try:
            from monitor.intake.server import IntakeServer  # noqa: PLC0415 - only when asked

            server = IntakeServer(intake, window=self._window)
            server.start()
        except ImportError as exc:
            raise StartupError(
                f"--intake-port needs the intake extra (pip install 'finemon[intake]'): {exc}"
            ) from exc
        except OSError as exc:
            raise StartupError(
                f"cannot serve the intake on {intake.address}:{intake.port}: {exc.strerror or exc}"
            ) from exc
        self._intake = server
        log.info(
            "intake serving http://%s:%d/api/v2/series max_series=%d max_bytes=%d",
            intake.address,
            server.bound_port,
            intake.max_series,
            intake.max_bytes,
        )

    def _start_reports(self, first_tick: int) -> None:
        """Let the intake write, and start the scrapes of ``--target-metrics`` (the first at
        ``first_tick``)."""
        if self._intake is not None:
            self._intake.start_recording()
        targets = self.config.target_metrics
        if targets is not None:
            from monitor.intake.scrape import TargetScraper  # noqa: PLC0415 - only when asked

            self._scraper = TargetScraper(
                targets, self.interval, first_tick * self.interval, self._window
            )
            self._scraper.start()

    def _stop_reports(self, manager: capture.CaptureManager) -> None:
        """Write no more reported points, before the drain. A point answered 202 that fell in
        the tick in progress (after the last sample) would be lost with it: that tick is then
        taken too (the kernel's series repeat their last sample in it, as in a skipped tick)."""
        if self._scraper is not None:
            self._scraper.stop()
            self._scraper = None
        if self._intake is None:
            return
        self._intake.stop_recording()
        latest = self._intake.writer.stats.latest_timestamp
        recorder = manager.recorder
        if latest is not None and recorder.last_taken is not None:
            tick = recorder.tick_of(latest)
            if tick > recorder.last_taken:
                manager.take_tick(tick)

    def _health(self) -> Health:
        """What ``/healthz`` answers (from the endpoint's thread): healthy while ticks are taken
        (the last one began under 3 intervals ago), and while idle on purpose (size limit, full
        disk: restarting would not help, and a DaemonSet pod must not crash-loop over it)."""
        from capture.prometheus import Health, tick_health  # noqa: PLC0415 - as above

        idle = self._idle_reason
        if idle is not None:
            return Health(True, f"idle reason={idle}: not recording on purpose")
        recorder = capture.get_recorder()
        return tick_health(recorder if isinstance(recorder, capture.CaptureRecorder) else None)

    # ------------------------------------------------------------------ phase marks
    def _on_mark(self, name: str) -> Mark:
        """Record that phase ``name`` starts now (from the control socket's or the HTTP
        server's thread): in the manifest at once, as the ``finemon.phase`` gauge from the next
        tick on. Raises MarkError when the run is not recording."""
        mark = Mark(name, time.time())
        with self._state_lock:
            if self._files is None or self._manifest is None:
                idle = f" (idle: {self._idle_reason})" if self._idle_reason else ""
                raise MarkError(f"finemon is not recording into {self.config.output_dir}{idle}")
            self._phases.append({"name": name, "time": iso_utc(mark.time_seconds)})
            self._manifest.update(phases=list(self._phases))
            self._write_manifest()
            self._pending_marks.append(mark)
        log.info("phase name=%s", name)
        return mark

    def _post_mark(self, query: Mapping[str, list[str]], body: bytes) -> tuple[int, str]:
        """``POST /mark?name=NAME`` (or the JSON body ``{"name": "NAME"}``): one JSON line, as
        the control socket answers; 400 for a bad request, 409 when not recording."""
        names = query.get("name", [])
        if not names and body.strip():
            try:
                document = json.loads(body)
            except ValueError:
                document = None
            if isinstance(document, dict) and isinstance(document.get("name"), str):
                names = [document["name"]]
        if len(names) != 1:
            error = 'give the phase as ?name=NAME or the JSON body {"name": "NAME"}'
            return 400, json.dumps({"ok": False, "error": error})
        answer = answer_mark(self._on_mark, names[0], self.run_id)
        if answer["ok"]:
            return 200, json.dumps(answer)
        bad_name = str(answer["error"]).startswith("invalid phase name")
        return (400 if bad_name else 409), json.dumps(answer)

    def _take_marks(self) -> None:
        """Set the ``finemon.phase`` gauge of each mark received since the last tick."""
        if not self._pending_marks:
            return
        with self._state_lock:
            marks, self._pending_marks = self._pending_marks, []
        for mark in marks:
            capture.gauge(PHASE_METRIC, {PHASE_LABEL: mark.name}).set(mark.time_seconds)

    def _start_control(self) -> None:
        """Serve the control socket for ``finemon mark``; a run without it still records
        (the reason is logged)."""
        control = ControlServer(
            self.config.output_dir, lambda name: answer_mark(self._on_mark, name, self.run_id)
        )
        try:
            control.start()
        except OSError as exc:
            log.warning("marks: no control socket (finemon mark cannot reach this run): %s", exc)
            return
        self._control = control

    def _stop_control(self) -> None:
        if self._control is not None:
            self._control.close()
            self._control = None

    def _manifest_document(
        self, description: Mapping[str, object], report: capture.RecoveryReport
    ) -> dict[str, Any]:
        config = self.config
        return {
            "run_id": self.run_id,
            "identifier": config.identifier,
            "node_name": config.node_name,
            "cluster_name": config.cluster_name,
            "pod_name": config.pod_name,
            "start_time": iso_utc(self.start_time),
            "end_time": None,
            "duration_seconds": None,
            "reason": None,
            "config": config.to_json(),
            "finemon_version": __version__,
            "git_revision": git_revision(config.git_revision),
            "host": host_info(description),
            "recovered": [
                {"path": str(r.path), "rows": r.rows, "ticks": r.ticks, "complete": r.complete}
                for r in report.recovered
            ],
            "recovery_failed": [{"path": str(p), "reason": why} for p, why in report.failed],
            "stats": asdict(self.stats),
            "experiment": config.experiment,
            "variant": config.variant,
            "phases": [],
        }

    def _start_recording(self) -> Blocked | None:
        """Start the manager on the run's first file and write the run's first manifest;
        returns why not (the disk filled since the preflight) instead, or raises StartupError.
        """
        config = self.config
        manager = capture.CaptureManager(
            config.output_dir,  # a placeholder: start() gets the first file's path
            tick_seconds=self.interval,
            window_ticks=config.window_ticks,
            flush_seconds=config.flush_seconds,
            compression_level=config.compression_level,
            global_labels=global_labels(config),
            label_columns=LABEL_COLUMNS,
            summary_key_labels=CONTAINER_KEY_LABELS,
            summary_sketch_metrics=SUMMARY_SKETCH_METRICS,
            summary_series_metrics=SUMMARY_SERIES_METRICS,
            summary_aggregate_metrics=SUMMARY_AGGREGATE_METRICS,
            run_id=self.run_id,
            auto_tick=False,
            on_flush=self.memory.after_flush,
            metadata={
                "finemon.version": __version__,
                "finemon.identifier": config.identifier,
                "finemon.node_name": config.node_name,
                "finemon.cluster_name": config.cluster_name or "",
            },
        )
        self._prime(manager)
        # Leave time for the start below, so the first tick is sampled on its boundary.
        first_tick = math.floor((time.time() + STARTUP_SECONDS) / self.interval) + 1
        path = self.layout.file_path(first_tick * self.interval, 1)
        try:
            manager.start(first_tick, path)
        except OSError as exc:
            capture.set_recorder(None)
            if diskspace.is_disk_full(exc):
                free = diskspace.free_bytes(config.output_dir)
                return Blocked(
                    REASON_DISK_FULL,
                    f"the first file {path} cannot be created: {exc.strerror or exc}",
                    {"free_bytes": -1 if free is None else free},
                )
            raise StartupError(f"cannot start recording into {path}: {exc}") from exc
        self._files = FileCycle(
            manager,
            self.layout,
            self.interval,
            on_published=self._published,
            on_write_error=self._write_error,
            after_rotation=self._after_rotation,
        )
        self._first_tick = first_tick
        self._metrics = OwnMetrics.register()
        assert self._manifest is not None
        self._manifest.update(first_file=str(path))
        self._has_manifest = True
        self._write_manifest()
        self._start_reports(first_tick)
        self._start_control()
        log.info(
            "recording run_id=%s file=%s interval=%gs rotation=%gs window=%gs",
            self.run_id,
            path,
            self.interval,
            config.rotation_seconds,
            config.window_seconds,
        )
        return None

    def _prime(self, manager: capture.CaptureManager) -> None:
        """Sample once before the tick grid starts, into the recorder that will record.

        The first sample of a node is its most expensive by far: it registers every series,
        opens every kept file and reads every rate's baseline (500 containers: 100,000 series,
        over a second). Done before the first tick is chosen, it cannot make the first ticks
        late, and the first tick already has rates. Its values land in the first tick only
        where that tick's own sample does not write again (files unchanged since). Afterwards
        the objects made so far (nearly all live for the whole run) are moved out of the
        garbage collector's sight (``gc.freeze``), so full collections do not walk them.
        """
        observer = self._observer
        assert observer is not None
        self.memory.before_priming_sample()
        capture.set_recorder(manager.recorder)
        started = time.monotonic()
        try:
            observer.sample()
        except Exception:  # the loop's samples count and log a failing observer
            log.debug("the priming sample raised", exc_info=True)
        log.debug("priming sample took %.3fs", time.monotonic() - started)
        self.memory.after_priming_sample()

    # ------------------------------------------------------------------ the loop
    def _record(self) -> int:
        files, metrics = self._files, self._metrics
        assert files is not None and metrics is not None
        rotation_ticks, window_ticks = self.config.rotation_ticks, self.config.window_ticks
        health_every = max(1, round(HEALTH_SECONDS / self.interval))
        file_start = tick = self._first_tick
        midnight = midnight_rotation_tick(tick, window_ticks, self.interval)
        next_health = tick + health_every
        health_cpu = SelfUsage()
        reason = REASON_SIGNAL
        blocked: Blocked | None = None
        skipped = 0
        try:
            while True:
                if self.end_at is not None and tick * self.interval > self.end_at:
                    reason = REASON_DURATION
                    break
                if not self._wait_for(tick):
                    break  # signalled while waiting
                if skipped:
                    # Counted in the tick sampled after them, so the files and the manifest
                    # agree (ticks skipped after the last sampled one are past the run's end).
                    self.stats.ticks_skipped += skipped
                    metrics.ticks_skipped.increment(skipped)
                with self._window.sampling():
                    self._sample(files.manager, tick)
                if self.signals.count:
                    break
                if tick + 1 - file_start >= rotation_ticks or tick >= midnight:
                    files.rotate()  # in the background
                    file_start = tick + 1  # after a failed rotation: retry a period later
                    if tick >= midnight:  # a UTC day starts a file (its rows one day's)
                        midnight = midnight_rotation_tick(tick + 1, window_ticks, self.interval)
                blocked = self._blocked_while_recording(files)
                if blocked is not None:
                    log.warning("%s: finishing the current file, then idling", blocked.counted)
                    reason = blocked.reason
                    break
                if tick >= next_health:
                    next_health = tick + health_every
                    self._log_health(health_cpu.cpu_millicores())
                following = max(tick + 1, math.floor(time.time() / self.interval) + 1)
                skipped = following - tick - 1
                tick = following
        except Exception as exc:
            log.exception("recording failed")
            self._finish(REASON_ERROR, error=f"{type(exc).__name__}: {exc}")
            return 1
        ok = self._finish(reason)
        if blocked is not None and not self.signals.count:
            return self._idle(self._blocked_after_stop(blocked))
        return 0 if ok else 1

    def _wait_for(self, tick: int) -> bool:
        """Sleep until ``tick`` begins; False if a signal arrived first."""
        self.signals.sleep_until(tick * self.interval, seen=0)
        return not self.signals.count

    def _sample(self, manager: capture.CaptureManager, tick: int) -> None:
        observer = self._observer
        assert observer is not None
        metrics = self._metrics
        assert metrics is not None
        started = time.monotonic()
        try:
            report = observer.sample()
        except Exception:  # an observer bug must not stop the recording
            self.stats.sample_errors += 1
            metrics.sample_errors.increment()
            if self.stats.sample_errors == 1:
                log.exception("sample failed (further failures are only counted)")
        else:
            self._containers = report.containers
            metrics.containers.set(report.containers)
            for why, count in report.errors_by_reason.items():
                if count:
                    capture.counter("finemon.read_errors", {"reason": why}).increment(count)
            for why, count in report.skipped.items():
                gauge = self._skipped_gauges.get(why)
                if gauge is None:
                    gauge = capture.gauge("finemon.containers_skipped", {"reason": why})
                    self._skipped_gauges[why] = gauge
                gauge.set(count)
        metrics.tick_duration_seconds.set(time.monotonic() - started)
        metrics.cpu_millicores.set(self._self.cpu_millicores())
        metrics.rss_bytes.set(self._self.rss_bytes())
        self._take_marks()
        manager.take_tick(tick)
        # Takes the ticks this sample overran into (they repeat its values).
        manager.take_tick()
        self.stats.ticks_sampled += 1

    def _after_rotation(self, files: FileCycle) -> None:
        with self._state_lock:
            self._write_manifest()
            self.size_limit.rescan(files.live_files())
        self.memory.after_rotation()

    def _published(self, published: capture.PublishedFile | None, what: str) -> None:
        if published is None:
            return
        self.stats.files += 1
        self.stats.rows += published.rows
        self.stats.bytes += published.bytes
        index, index_seconds = self._index(published.path)
        log.info(
            "%s file=%s rows=%d bytes=%d row_groups=%d index=%s index_ms=%.1f",
            what,
            published.path,
            published.rows,
            published.bytes,
            published.row_groups,
            index,
            index_seconds * 1000,
        )

    def _index(self, path: Path) -> tuple[str, float]:
        """Add the file just published at ``path`` (and any file of its partition published
        since the index was written: one a kill left out, one recovered from its journal) to
        its partition's index, so that readers start without reading footers. Returns what was
        done (``added``, else why not) and the seconds it took. A failure is counted in
        ``index_skips`` and never touches the data file."""
        started = time.monotonic()
        try:
            folder = path.parent.relative_to(self.config.output_dir).as_posix()
            stats = update_partition(
                self.config.output_dir, folder, rebuild_at_most=INDEX_REBUILD_AT_MOST_FILES
            )
        except Exception as exc:  # a bug in the index must not stop the recording
            log.exception("index: not updated for %s", path)
            outcome = f"failed({type(exc).__name__})"
        else:
            if stats.written:
                outcome = "added"
            elif stats.write_failed:
                outcome = "not_written"
            elif stats.not_rebuilt:
                outcome = "left_to_readers"
            elif stats.kept or stats.extended:
                outcome = "unchanged"
            else:
                outcome = "unreadable"
        if outcome not in ("added", "unchanged"):
            self.stats.index_skips += 1
        return outcome, time.monotonic() - started

    def _write_error(self, message: str) -> None:
        self._count_write_error()
        log.error("write error: %s", message)

    def _count_write_error(self) -> None:
        self.stats.write_errors += 1
        if self._metrics is not None:
            self._metrics.write_errors.increment()

    def _blocked_while_recording(self, files: FileCycle) -> Blocked | None:
        """Whether recording must stop at this tick: the size limit reached, or too little free
        space left to finish the file being written (or a rotation failed on a full disk)."""
        live = files.live_files()
        live_bytes = self.size_limit.live_bytes(live)
        with self._state_lock:
            settled = self.size_limit.settled_bytes
        limit = self.size_limit.limit_bytes
        if self.size_limit.reached(settled + live_bytes):
            return Blocked(
                REASON_SIZE_LIMIT,
                f"size limit reached: finished files {settled} bytes + the file being written "
                f"{live_bytes} bytes (its Parquet part and journal) >= limit {limit} bytes",
                self.size_limit.marker(settled + live_bytes),
            )
        output_dir = self.config.output_dir
        free = diskspace.free_bytes(output_dir)
        reserve = diskspace.reserve_bytes(live_bytes)
        if free is not None and free < reserve:
            return Blocked(
                REASON_DISK_FULL,
                f"disk full: the filesystem of {output_dir} has {free} bytes free, under the "
                f"{reserve} bytes kept to finish the file being written",
                {"free_bytes": free, "reserve_bytes": reserve},
            )
        if files.disk_full is not None:
            return Blocked(
                REASON_DISK_FULL,
                f"disk full: a rotation failed: {files.disk_full.strerror or files.disk_full}",
                {"free_bytes": -1 if free is None else free, "reserve_bytes": reserve},
            )
        return None

    def _blocked_after_stop(self, stopped: Blocked) -> Blocked:
        """What the idle after a stop waits on: at the size limit, the total with the last file
        finished (its journal deleted); on a full disk, the free space now."""
        output_dir = self.config.output_dir
        if stopped.reason == REASON_SIZE_LIMIT:
            used = self.size_limit.rescan()
            return Blocked(
                REASON_SIZE_LIMIT,
                f"stopped at the size limit of {self.size_limit.limit_bytes} bytes; with the "
                f"last file finished (its journal deleted) finemon's files under {output_dir} "
                f"total {used} bytes",
                self.size_limit.marker(used),
            )
        free = diskspace.free_bytes(output_dir)
        return Blocked(
            REASON_DISK_FULL,
            f"stopped on a full disk: the filesystem of {output_dir} has "
            f"{'?' if free is None else free} bytes free (recording again needs "
            f"{diskspace.START_FREE_BYTES})",
            stopped.marker,
        )

    def _log_health(self, cpu_millicores: float) -> None:
        stats = self.stats
        log.info(
            "health ticks=%d skipped=%d containers=%d rss_bytes=%d cpu_millicores=%.1f "
            "files=%d write_errors=%d sample_errors=%d",
            stats.ticks_sampled,
            stats.ticks_skipped,
            self._containers,
            self._self.rss_bytes(),
            cpu_millicores,
            stats.files,
            stats.write_errors,
            stats.sample_errors,
        )

    # ------------------------------------------------------------------ stop
    def _finish(self, reason: str, error: str | None = None) -> bool:
        """Drain and publish the current file, record the end in the manifest.

        Returns False when the file could not be published (its journal is kept for recovery).
        A drain cut short (a further signal, or longer than ``DRAIN_TIMEOUT_SECONDS``) ends the
        process here, with exit code 0, once the manifest says so.
        """
        files = self._files
        assert files is not None and self._manifest is not None
        self._stop_reports(files.manager)
        with self._state_lock:  # marks are refused from here on
            self._files = None
        self._stop_control()
        end = time.time()
        fields: dict[str, Any] = {
            "end_time": iso_utc(end),
            "duration_seconds": round(end - self.start_time, 3),
            "reason": reason,
        }
        if reason == REASON_SIGNAL:
            fields["signal"] = self.signals.last_name
        if error is not None:
            fields["error"] = error
        log.info("stopping reason=%s", reason)
        finished = files.finish(self.signals, DRAIN_TIMEOUT_SECONDS)
        fields["drain"] = finished.drain
        if finished.drain == "skipped":
            log.warning("second signal: journal left for recovery at the next start")
        elif finished.drain == "interrupted":  # the drain thread may still be writing
            self._manifest.update(stats=asdict(self.stats), **fields)
            self._write_manifest()
            log.warning("drain cut short: journal left for recovery at the next start")
            self._hard_exit(0)
        kept = finished.failure is not None and self._disk_is_full(finished.failure)
        if kept:
            # Not a failure of finemon's: the journal holds the file, the next run recovers it.
            self._count_write_error()
            log.warning(
                "the last file could not be finished on the full disk (%s): its journal is "
                "kept, and the next run recovers it",
                finished.failure,
            )
            fields["last_file"] = "journal kept for recovery"
        elif finished.failure is not None:
            self._write_error(f"final file not published: {finished.failure}")
        self._published(finished.published, "closed")
        self._manifest.update(stats=asdict(self.stats), **fields)
        self._write_manifest()
        return finished.failure is None or kept

    def _disk_is_full(self, error: OSError) -> bool:
        """Whether ``error`` came from a full disk (or the disk is full now)."""
        if diskspace.is_disk_full(error):
            return True
        free = diskspace.free_bytes(self.config.output_dir)
        return free is not None and free < diskspace.MIN_FREE_BYTES

    def _hard_exit(self, code: int) -> NoReturn:
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)

    def _idle(self, blocked: Blocked) -> int:
        """Stay up without recording, for the reason ``blocked`` gives, until a signal (or the
        end of ``--duration``), or until space is freed (then :attr:`resume` is set and
        :func:`run` records again as a new run); returns 0.

        A run that recorded adds the reason's marker to its manifest, and ``exit_time`` and
        ``exit_reason`` when it stops idling; a run that never recorded writes no manifest.
        """
        log.warning(
            "idle reason=%s: %s; not recording, staying up until SIGINT/SIGTERM or until %s",
            blocked.reason,
            blocked.counted,
            self._resume_condition(blocked),
        )
        status = capture.CaptureRecorder(global_labels=global_labels(self.config))
        self._show_idle(status, blocked)
        capture.set_recorder(status)
        self._idle_reason = blocked.reason
        assert self._manifest is not None
        if self._has_manifest:
            self._manifest.update(**{blocked.reason: dict(blocked.marker)})
            self._write_manifest()
        try:
            self.resume = self._wait_for_space(blocked, status)
        finally:
            self._idle_reason = None
            capture.set_recorder(None)
        if self.resume:
            exit_reason = REASON_SPACE_FREED
        else:
            exit_reason = REASON_SIGNAL if self.signals.count else REASON_DURATION
        if self._has_manifest:
            self._manifest.update(exit_time=iso_utc(time.time()), exit_reason=exit_reason)
            if self.signals.count:
                self._manifest.update(signal=self.signals.last_name)
            self._write_manifest()
        if not self.resume:
            log.info("exiting after idling reason=%s", blocked.reason)
        return 0

    def _resume_condition(self, blocked: Blocked) -> str:
        output_dir = self.config.output_dir
        if blocked.reason == REASON_SIZE_LIMIT:
            return (
                f"space is freed under {output_dir} (its total below "
                f"{blocked.marker['used_bytes']} bytes and the limit; a higher --size-limit "
                "needs a restart)"
            )
        return f"the filesystem of {output_dir} has {diskspace.START_FREE_BYTES} bytes free again"

    @staticmethod
    def _show_idle(status: capture.CaptureRecorder, blocked: Blocked) -> None:
        """The live view's gauges of why finemon idles (only while idle)."""
        marker = blocked.marker
        if blocked.reason == REASON_SIZE_LIMIT:
            status.gauge("finemon.size_limit.reached").set(1)
            status.gauge("finemon.size_limit.used_bytes").set(marker["used_bytes"])
            status.gauge("finemon.size_limit.limit_bytes").set(marker["limit_bytes"])
        else:
            status.gauge("finemon.disk_full.reached").set(1)
            status.gauge("finemon.disk_full.free_bytes").set(marker.get("free_bytes", -1))

    # ---- idle: record again when space is freed (e.g. by finemon run --upload-delete)
    def _wait_for_space(self, blocked: Blocked, status: capture.CaptureRecorder) -> bool:
        """Idle until a signal or the end of ``--duration`` (False), or until nothing blocks
        recording any more (True). Every few seconds it looks again (:meth:`_blocked_at_start`:
        at the size limit, the total must also be below the bytes it stopped at), and logs a
        health line every minute and a line when the reason changes."""
        stopped = {"reason": blocked.reason, blocked.reason: dict(blocked.marker)}
        output_dir = self.config.output_dir
        next_health = time.monotonic() + HEALTH_SECONDS
        while True:
            wake = time.time() + RESUME_CHECK_SECONDS
            if self.end_at is not None:
                wake = min(wake, self.end_at)
            self.signals.sleep_until(wake, seen=0)
            if self.signals.count or (self.end_at is not None and time.time() >= self.end_at):
                return False
            now = self._blocked_at_start(stopped, lambda: diskspace.probe(output_dir))
            if now is None:
                log.info(
                    "space freed: finemon's files under %s total %d bytes (limit %d bytes), "
                    "%s bytes free on its filesystem: recording again as a new run",
                    output_dir,
                    self.size_limit.rescan(),
                    self.size_limit.limit_bytes,
                    diskspace.free_bytes(output_dir),
                )
                return True
            if now.reason != blocked.reason:
                log.warning("still idle, now reason=%s: %s", now.reason, now.counted)
                blocked = now
                self._show_idle(status, blocked)
            if time.monotonic() >= next_health:
                next_health = time.monotonic() + HEALTH_SECONDS
                log.info("health idle reason=%s: %s", now.reason, now.counted)

    def _write_manifest(self) -> None:
        """Write the run's manifest; a file that cannot be written is counted as a write error
        and logged the first time (saying where the manifest is then)."""
        manifest = self._manifest
        assert manifest is not None
        manifest.update(stats=asdict(self.stats))
        if self._intake is not None:
            manifest.update(intake=self._intake.summary())
        failed = manifest.write(time.time())
        written = [path for path in manifest.paths if path not in dict(failed)]
        for path, exc in failed:
            self._count_write_error()
            if path in self._manifest_failed:
                continue
            self._manifest_failed.add(path)
            where = (
                f"the run's manifest is in {written[0]} only"
                if written
                else "the run has no manifest on disk"
            )
            log.warning(
                "manifest not written to %s: %s; %s (further failures are only counted)",
                path,
                exc.strerror or exc,
                where,
            )


def run(
    config: Config,
    *,
    observer_factory: ObserverFactory | None = None,
    signals: SignalWatch | None = None,
) -> int:
    """Run ``finemon run`` with ``config``; returns the exit code (raises StartupError).

    A run that stopped at the size limit and idled until space was freed is followed, in the
    same process, by a new run (a new run id and manifest).

    ``signals``: an installed :class:`SignalWatch` to use (default: one installed for the run).
    """
    while True:
        daemon = Daemon(config, observer_factory=observer_factory, signals=signals)
        code = daemon.run()
        if not daemon.resume:
            return code
        daemon.memory.after_run()
