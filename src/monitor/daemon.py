"""The ``finemon run`` loop: preflight, recovery, sampling on the tick grid, rotation, limits,
signals and the session manifest.

Life cycle:

1. Preflight, before anything starts: the output directory must be writable (a temporary file is
   created, written, fsynced and removed in it), the observer must come up (no cgroup mount is an
   error) and the Prometheus port, if asked for, must bind. A failure is one line on stderr and
   exit code 1.
2. ``capture.recover(output_dir)`` rebuilds what a killed predecessor left (journals of files it
   had not finished) and the result is logged.
3. If the size limit is already reached, finemon records nothing and idles (see
   :mod:`monitor.sizelimit`). Otherwise a :class:`capture.CaptureManager` is started on the first
   file, driven by this loop (``auto_tick=False``).
4. One priming sample, before the first tick is chosen, registers every series and opens every
   file (the costly first sample of a large node cannot make the first ticks late). Then every
   ``interval`` the loop wakes on the next whole multiple of the interval in Unix time,
   calls ``observer.sample()``, records finemon's own CPU, RSS, sample duration and container
   count, and takes the tick: the tick holds exactly the values sampled for it. A sample that
   overruns the next boundary makes the loop skip the ticks whose boundaries passed (counted in
   ``finemon.ticks_skipped``) and resume on the grid, which never drifts. In the files the
   skipped ticks repeat the last sampled values, up to one accumulator window of them; a stall
   longer than the window leaves the older ticks out, counted in ``capture.missed_ticks``.
5. Every ``--rotation-seconds`` (on a tick boundary) a new file is started, in a new ``dt=``
   partition after midnight, and the old one is published in a background thread while sampling
   goes on (:class:`monitor.rotation.FileCycle`); the log gets one line per rotation and a health
   line every minute, never a line per sample. A rotation that fails is logged and counted in
   ``finemon.write_errors`` and the current file goes on.
6. SIGINT/SIGTERM, ``--duration`` or the size limit stop sampling; the manager drains its window
   and publishes the file, the manifest gets the end time and reason, exit code 0. A second
   signal during the drain (or a drain longer than 45 s) cuts it short: the file's journal is
   left for the next start to recover, and no ``.parquet`` is ever left unreadable
   (:meth:`monitor.rotation.FileCycle.finish`).
"""

from __future__ import annotations

import gc
import logging
import math
import os
import sys
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, NoReturn

import pyarrow as pa

import capture
from monitor import __version__, allocator
from monitor.config import Config
from monitor.contract import GLOBAL_LABEL_COLUMNS, LABEL_COLUMNS
from monitor.layout import OutputLayout
from monitor.manifest import SessionManifest, git_revision, host_info, iso_utc, read_manifest
from monitor.observer import (
    NodeObserverLike,
    ObserverFactory,
    default_observer_factory,
    load_observer_factory,
    observer_config,
)
from monitor.rotation import FileCycle
from monitor.selfstats import SelfUsage, describe_daemon_metrics
from monitor.signals import SignalWatch
from monitor.sizelimit import SizeLimit

log = logging.getLogger("finemon")

#: Seconds between health lines in the log.
HEALTH_SECONDS = 60.0
#: Longest drain before finemon hurries it as if signalled twice (Kubernetes grants 60 s).
DRAIN_TIMEOUT_SECONDS = 45.0
#: Time allowed for opening the first file before the first tick is due.
STARTUP_SECONDS = 0.5
#: Bytes written to the output directory by the preflight check.
_PROBE_BYTES = 64 * 1024

# Reasons recorded in the manifest.
REASON_DURATION = "duration"
REASON_SIGNAL = "signal"
REASON_SIZE_LIMIT = "size_limit"
REASON_ERROR = "error"
#: ``exit_reason`` of a run that idled at the size limit until space was freed.
REASON_SPACE_FREED = "space_freed"
#: Seconds between rescans of the output directory while idling at the size limit.
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


def check_output_dir(output_dir: Path) -> None:
    """Create ``output_dir`` and prove it takes data (create, write, fsync, remove a hidden file).

    Raises StartupError with a one-line reason (unwritable, read-only, full disk, not a folder).
    """
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StartupError(f"cannot create output dir {output_dir}: {exc.strerror or exc}") from exc
    probe = output_dir / f".finemon-write-check-{os.getpid()}"
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, b"\0" * _PROBE_BYTES)
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as exc:
        raise StartupError(
            f"output dir {output_dir} is not writable: {exc.strerror or exc}"
        ) from exc
    finally:
        try:
            probe.unlink()
        except OSError:
            pass


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
        self._first_tick = 0
        self._containers = 0
        self._self = SelfUsage()
        self._metrics: OwnMetrics | None = None
        self._skipped_gauges: dict[str, capture.Gauge] = {}
        #: Set when the run stopped at the size limit and space was freed: record again.
        self.resume = False
        # The size-limit accounting and the manifest, shared with the rotation thread.
        self._state_lock = threading.Lock()
        #: Whether the library pages touched only while starting were handed back after the
        #: first rotation (monitor.allocator.release_idle_file_pages; once before the first tick
        #: too).
        self._idle_pages_released = False

    # ------------------------------------------------------------------ entry
    def run(self) -> int:
        """Preflight, record until told to stop, clean up; returns the exit code.

        Raises StartupError (nothing started, nothing written) when finemon cannot start.
        """
        self.start_time = time.time()
        # Arrow's default pool (mimalloc or jemalloc) keeps freed pages for reuse: at each flush
        # that is tens of MB of RSS that never goes back. The C library's allocator, with few
        # arenas and trimmed after each flush and rotation (monitor.allocator), returns them.
        # (This reaches pyarrow's functions; finemon run sets ARROW_DEFAULT_MEMORY_POOL before
        # pyarrow is imported, so that Arrow's C++ code uses it too.)
        pa.set_memory_pool(pa.system_memory_pool())
        allocator.limit_arenas()
        describe_daemon_metrics()
        if self.config.duration_seconds is not None:
            self.end_at = self.start_time + self.config.duration_seconds
        if self._own_signals:
            self.signals.install()
        try:
            check_output_dir(self.config.output_dir)
            self._observer = self._make_observer()
            try:
                config = self.config
                if config.prometheus_port is not None:
                    self._start_prometheus(config.prometheus_port, config.prometheus_address)
                return self._run_installed(self._describe())
            finally:
                self._shutdown()
        finally:
            if self._own_signals:
                self.signals.close()

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
        used = self.size_limit.rescan()
        if self.size_limit.reached(used) or self.size_limit.still_reached(previous, used):
            self._manifest.update(
                end_time=iso_utc(self.start_time), duration_seconds=0.0, reason=REASON_SIZE_LIMIT
            )
            return self._idle(used)
        self._start_recording()
        return self._record()

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

        try:
            self._server, _thread = start_http_endpoint(port, address)
        except OSError as exc:
            raise StartupError(
                f"cannot serve Prometheus on {address}:{port}: {exc.strerror or exc}"
            ) from exc
        log.info("prometheus serving http://%s:%d/metrics", address, port)

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
        }

    def _start_recording(self) -> None:
        config = self.config
        manager = capture.CaptureManager(
            config.output_dir,  # a placeholder: start() gets the first file's path
            tick_seconds=self.interval,
            window_ticks=config.window_ticks,
            flush_seconds=config.flush_seconds,
            compression_level=config.compression_level,
            global_labels=global_labels(config),
            label_columns=LABEL_COLUMNS,
            run_id=self.run_id,
            auto_tick=False,
            on_flush=allocator.release_free_memory,
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
        self._write_manifest()
        log.info(
            "recording run_id=%s file=%s interval=%gs rotation=%gs window=%gs",
            self.run_id,
            path,
            self.interval,
            config.rotation_seconds,
            config.window_seconds,
        )

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
        # The library pages touched only by the imports (Arrow's and numpy's initialisers, about
        # 20 MB) go back before it: the pages sampling uses come back during this untimed sample,
        # not during the first ticks; the writer's one-time pages go at the first rotation.
        allocator.release_idle_file_pages()
        capture.set_recorder(manager.recorder)
        started = time.monotonic()
        try:
            observer.sample()
        except Exception:  # the loop's samples count and log a failing observer
            log.debug("the priming sample raised", exc_info=True)
        log.debug("priming sample took %.3fs", time.monotonic() - started)
        gc.collect()
        gc.freeze()
        allocator.release_free_memory()

    # ------------------------------------------------------------------ the loop
    def _record(self) -> int:
        files, metrics = self._files, self._metrics
        assert files is not None and metrics is not None
        rotation_ticks = self.config.rotation_ticks
        health_every = max(1, round(HEALTH_SECONDS / self.interval))
        file_start = tick = self._first_tick
        next_health = tick + health_every
        health_cpu = SelfUsage()
        reason = REASON_SIGNAL
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
                self._sample(files.manager, tick)
                if self.signals.count:
                    break
                if tick + 1 - file_start >= rotation_ticks:
                    files.rotate()  # in the background
                    file_start = tick + 1  # after a failed rotation: retry a period later
                if self._size_limit_reached(files):
                    reason = REASON_SIZE_LIMIT
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
        if reason == REASON_SIZE_LIMIT and not self.signals.count:
            return self._idle(self.size_limit.rescan())
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
        manager.take_tick(tick)
        # Takes the ticks this sample overran into (they repeat its values).
        manager.take_tick()
        self.stats.ticks_sampled += 1

    def _after_rotation(self, files: FileCycle) -> None:
        with self._state_lock:
            self._write_manifest()
            self.size_limit.rescan(files.live_files())
        if not self._idle_pages_released:
            # Flushes, a rotation and a publication have run once too: what the first flush or
            # a recovery touched once can go as well.
            self._idle_pages_released = True
            advised = allocator.release_idle_file_pages()
            log.debug("idle library pages handed back: %d bytes of mappings advised", advised)

    def _published(self, published: capture.PublishedFile | None, what: str) -> None:
        if published is None:
            return
        self.stats.files += 1
        self.stats.rows += published.rows
        self.stats.bytes += published.bytes
        log.info(
            "%s file=%s rows=%d bytes=%d row_groups=%d",
            what,
            published.path,
            published.rows,
            published.bytes,
            published.row_groups,
        )

    def _write_error(self, message: str) -> None:
        self.stats.write_errors += 1
        if self._metrics is not None:
            self._metrics.write_errors.increment()
        log.error("write error: %s", message)

    def _size_limit_reached(self, files: FileCycle) -> bool:
        with self._state_lock:
            used = self.size_limit.used(files.live_files())
        if not self.size_limit.reached(used):
            return False
        log.warning(
            "size limit reached used_bytes=%d limit_bytes=%d: finalizing the current file",
            used,
            self.size_limit.limit_bytes,
        )
        return True

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
        self._files = None
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
        if finished.failure is not None:
            self._write_error(f"final file not published: {finished.failure}")
        self._published(finished.published, "closed")
        self._manifest.update(stats=asdict(self.stats), **fields)
        self._write_manifest()
        return finished.failure is None

    def _hard_exit(self, code: int) -> NoReturn:
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)

    def _idle(self, used: int) -> int:
        """Stay up without recording until a signal (or the end of ``--duration``), or until
        space is freed (then :attr:`resume` is set and :func:`run` records again); returns 0."""
        limit = self.size_limit.limit_bytes
        log.warning(
            "size limit reached used_bytes=%d limit_bytes=%d: not recording; staying up idle "
            "until SIGINT/SIGTERM or until space is freed under %s (a higher --size-limit needs a "
            "restart)",
            used,
            limit,
            self.config.output_dir,
        )
        status = capture.CaptureRecorder(global_labels=global_labels(self.config))
        status.gauge("finemon.size_limit.reached").set(1)
        status.gauge("finemon.size_limit.used_bytes").set(used)
        status.gauge("finemon.size_limit.limit_bytes").set(limit)
        capture.set_recorder(status)
        assert self._manifest is not None
        self._manifest.update(size_limit=self.size_limit.marker(used))
        self._write_manifest()
        try:
            self.resume = self._wait_for_space(used)
        finally:
            capture.set_recorder(None)
        assert self._manifest is not None
        if self.resume:
            exit_reason = REASON_SPACE_FREED
        else:
            exit_reason = REASON_SIGNAL if self.signals.count else REASON_DURATION
        self._manifest.update(exit_time=iso_utc(time.time()), exit_reason=exit_reason)
        if self.signals.count:
            self._manifest.update(signal=self.signals.last_name)
        self._write_manifest()
        if not self.resume:
            log.info("exiting after idling at the size limit")
        return 0

    # ---- size limit: resume when space is freed (e.g. by finemon run --upload-delete)
    def _wait_for_space(self, used: int) -> bool:
        """Idle until a signal or the end of ``--duration`` (False), or until space was freed
        under the output directory (True): a rescan every few seconds finds the total below
        both the limit and the ``used`` bytes that stopped the recording."""
        while True:
            wake = time.time() + RESUME_CHECK_SECONDS
            if self.end_at is not None:
                wake = min(wake, self.end_at)
            self.signals.sleep_until(wake, seen=0)
            if self.signals.count or (self.end_at is not None and time.time() >= self.end_at):
                return False
            now_used = self.size_limit.rescan()
            if now_used < used and not self.size_limit.reached(now_used):
                log.info(
                    "space freed used_bytes=%d limit_bytes=%d: recording again as a new run",
                    now_used,
                    self.size_limit.limit_bytes,
                )
                return True

    def _write_manifest(self) -> None:
        assert self._manifest is not None
        self._manifest.update(stats=asdict(self.stats))
        try:
            self._manifest.write(time.time())
        except OSError as exc:
            self._write_error(f"manifest not written: {exc}")


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
        # The finished run's objects (frozen after its priming sample) can go now.
        gc.unfreeze()
        gc.collect()
