"""The uploader over time: a pass every interval, backoff after failures, a last pass at the end.

:class:`UploaderLoop` runs :class:`~monitor.shipping.ship.Uploader` passes until a stop signal
or the parent's exit, with exponential backoff and jitter while the store fails (one log line
when a failure streak starts, one when it ends), a health line every minute and the status file
``<output-dir>/_upload.json``. A second stop signal raises :class:`HardStop` wherever the
process is, even inside a request.
"""

from __future__ import annotations

import logging
import os
import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from types import FrameType
from typing import Any

from common.objectstore import StoreError
from monitor.manifest import iso_utc, write_json_atomically
from monitor.selfstats import SelfUsage
from monitor.shipping.flags import DEFAULT_FINAL_SECONDS, DEFAULT_INTERVAL_SECONDS
from monitor.shipping.ship import Uploader
from monitor.signals import SignalWatch

log = logging.getLogger("finemon.upload")

#: The uploader's status file at the output root.
STATUS_FILE = "_upload.json"
#: Backoff after a failure: first delay, cap.
BACKOFF_BASE_SECONDS = 1.0
BACKOFF_MAX_SECONDS = 60.0
#: Seconds between health lines.
HEALTH_SECONDS = 60.0


class Backoff:
    """Exponential backoff with full jitter: the n-th delay is uniform in [d/2, d] where
    ``d = min(cap, base * 2**n)``, so many nodes that lost the store together do not come back
    in step."""

    def __init__(
        self,
        base_seconds: float = BACKOFF_BASE_SECONDS,
        cap_seconds: float = BACKOFF_MAX_SECONDS,
        rng: random.Random | None = None,
    ) -> None:
        self.base_seconds = base_seconds
        self.cap_seconds = cap_seconds
        self.failures = 0
        self._rng = rng or random.Random()

    def next_delay(self) -> float:
        """The delay after one more failure."""
        ceiling = min(self.cap_seconds, self.base_seconds * 2.0 ** min(self.failures, 30))
        self.failures += 1
        return self._rng.uniform(ceiling / 2.0, ceiling)

    def reset(self) -> None:
        """After a success."""
        self.failures = 0


class HardStop(BaseException):
    """A second stop signal: leave at once, even from inside a request."""


class UploaderSignals(SignalWatch):
    """A :class:`SignalWatch` whose second stop signal raises :class:`HardStop`."""

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        super()._handle(signum, frame)
        if self.count >= 2:
            raise HardStop


@dataclass(frozen=True, slots=True)
class UploaderSettings:
    """The uploader process's flags."""

    output_dir: Path
    interval_seconds: float = DEFAULT_INTERVAL_SECONDS
    final_seconds: float = DEFAULT_FINAL_SECONDS
    parent_pid: int | None = None
    once: bool = False


class UploaderLoop:
    """Passes every ``interval_seconds`` with backoff after failures, a last pass at the end."""

    def __init__(
        self,
        uploader: Uploader,
        settings: UploaderSettings,
        signals: SignalWatch,
        *,
        backoff: Backoff | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.uploader = uploader
        self.settings = settings
        self.signals = signals
        self.backoff = backoff or Backoff()
        self._clock = clock
        self._usage = SelfUsage()
        self._started = clock()
        self._failing_since: float | None = None
        self._last_error: str | None = None
        self._status_written: dict[str, Any] | None = None
        self._next_health = 0.0

    def _stopping(self) -> bool:
        if self.signals.count:
            return True
        parent = self.settings.parent_pid
        return parent is not None and os.getppid() != parent

    def run(self) -> int:
        """Run until stopped; returns the exit code (0, or 1 if ``--once`` left files)."""
        deadline: float | None = None
        while True:
            final = self.settings.once or self._stopping()
            if final and deadline is None:
                deadline = time.monotonic() + self.settings.final_seconds
                if not self.settings.once:
                    log.info("last pass (up to %gs)", self.settings.final_seconds)
            try:
                done = self.uploader.run_pass(deadline)
            except StoreError as exc:
                self._failed(exc)
                delay = self.backoff.next_delay()
                if final:
                    assert deadline is not None
                    delay = min(delay, deadline - time.monotonic())
                    if delay <= 0:
                        break
                    time.sleep(delay)  # no second pass to wait for: only the deadline counts
                    continue
                self._write_status()
                self.signals.sleep_until(self._clock() + delay)
                continue
            self._succeeded()
            self._write_status()
            if final:
                if not done:
                    log.info("last pass stopped at its deadline")
                break
            self.signals.sleep_until(self._clock() + self.settings.interval_seconds)
            self._maybe_health()
        self._write_status()
        counters = self.uploader.counters
        if counters.pending_files:
            log.warning(
                "stopping with files_left=%d bytes_left=%d in %s: uploaded at the next start",
                counters.pending_files,
                counters.pending_bytes,
                self.settings.output_dir,
            )
        self._log_health()
        return 1 if self.settings.once and counters.pending_files else 0

    def _failed(self, exc: StoreError) -> None:
        self.uploader.counters.failures += 1
        self._last_error = str(exc)
        if self._failing_since is None:
            self._failing_since = self._clock()
            log.warning(
                "upload failing, files stay local and are retried with backoff (up to %gs): %s",
                self.backoff.cap_seconds,
                exc,
            )

    def _succeeded(self) -> None:
        if self._failing_since is not None:
            log.info(
                "upload recovered after %d failed tries over %.0fs",
                self.backoff.failures,
                self._clock() - self._failing_since,
            )
            self._failing_since = None
        self.backoff.reset()

    def _maybe_health(self) -> None:
        now = self._clock()
        if now >= self._next_health:
            if self._next_health:
                self._log_health()
            self._next_health = now + HEALTH_SECONDS

    def _log_health(self) -> None:
        c = self.uploader.counters
        log.info(
            "upload health uploaded_files=%d uploaded_bytes=%d already_present=%d "
            "deleted_files=%d deleted_bytes=%d replaced_objects_deleted=%d "
            "registered_objects=%d failures=%d pending_files=%d pending_bytes=%d rss_bytes=%d",
            c.uploaded_files,
            c.uploaded_bytes,
            c.already_present,
            c.deleted_files,
            c.deleted_bytes,
            c.replaced_objects_deleted,
            c.registered_objects,
            c.failures,
            c.pending_files,
            c.pending_bytes,
            self._usage.rss_bytes(),
        )

    def _write_status(self) -> None:
        status: dict[str, Any] = {
            "target": self.uploader.store.location.url,
            "pid": os.getpid(),
            "started_time": iso_utc(self._started),
            "counters": asdict(self.uploader.counters),
            "failing_since": None if self._failing_since is None else iso_utc(self._failing_since),
            "last_error": self._last_error,
        }
        if status == self._status_written:
            return  # unchanged: no write every interval
        try:
            write_json_atomically(
                self.settings.output_dir / STATUS_FILE,
                {**status, "updated_time": iso_utc(self._clock())},
            )
        except OSError as exc:
            log.debug("status not written: %s", exc)
            return
        self._status_written = status
