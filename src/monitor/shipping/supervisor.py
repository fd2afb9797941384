"""``finemon run``'s side of the uploader: start it as a child process and keep it running.

Why a separate process (``python -m monitor.shipping``): the sampling process never blocks on
the network, never holds the AWS SDK's memory (boto3 and botocore: see docs/benchmarks.md), and
an uploader that crashes or hangs cannot stop the recording. This module imports nothing of boto3.

The supervisor is a thread of the daemon's process. The child runs in a session of its own, so a
Ctrl-C in a terminal reaches only finemon: the uploader's last pass must come after the daemon
has published its last file, which is when :meth:`UploaderSupervisor.stop` signals it. A child
that exits while it should be running is started again after a backoff (1 s doubling to 60 s,
back to 1 s after a minute of running); every restart is logged. If finemon itself dies without
stopping it, the uploader sees its parent gone, makes its last pass and exits.
"""

from __future__ import annotations

import logging
import signal
import subprocess
import threading
import time
from collections.abc import Sequence

log = logging.getLogger("finemon")

#: Restart backoff: first delay, cap, and the run time after which it starts over.
RESTART_BASE_SECONDS = 1.0
RESTART_MAX_SECONDS = 60.0
RESTART_RESET_SECONDS = 60.0
#: Time a stopped uploader gets beyond its own deadline before it is killed.
STOP_GRACE_SECONDS = 5.0


class UploaderSupervisor:
    """Runs ``command`` as a child and restarts it when it exits; :meth:`stop` ends it."""

    def __init__(
        self,
        command: Sequence[str],
        *,
        env: dict[str, str] | None = None,
        restart_base_seconds: float = RESTART_BASE_SECONDS,
        restart_max_seconds: float = RESTART_MAX_SECONDS,
        name: str = "uploader",
    ) -> None:
        self.command = list(command)
        #: What the child is, in log lines (the compaction process uses this class too).
        self.name = name
        self.env = env
        self.restart_base_seconds = restart_base_seconds
        self.restart_max_seconds = restart_max_seconds
        #: How many times the child was started.
        self.starts = 0
        self._process: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def pid(self) -> int | None:
        """The running child's process id."""
        process = self._process
        return None if process is None or process.poll() is not None else process.pid

    def start(self) -> None:
        """Start the child and the thread that watches it. Raises OSError if it cannot start."""
        self._spawn()
        self._thread = threading.Thread(target=self._watch, name="finemon-upload", daemon=True)
        self._thread.start()

    def _spawn(self) -> None:
        with self._lock:
            if self._stopping.is_set():
                return
            # stdout/stderr are finemon's: the uploader's lines land in the same log.
            self._process = subprocess.Popen(self.command, env=self.env, start_new_session=True)
            self.starts += 1
        log.info("%s started pid=%d", self.name, self._process.pid)

    def _watch(self) -> None:
        delay = self.restart_base_seconds
        while not self._stopping.is_set():
            process = self._process
            assert process is not None
            started = time.monotonic()
            while process.poll() is None and not self._stopping.is_set():
                self._stopping.wait(0.5)
            if self._stopping.is_set():
                return
            if time.monotonic() - started >= RESTART_RESET_SECONDS:
                delay = self.restart_base_seconds
            log.warning(
                "%s exited code=%s; restarting in %.0fs (files stay local meanwhile)",
                self.name,
                process.returncode,
                delay,
            )
            if self._stopping.wait(delay):
                return
            delay = min(self.restart_max_seconds, delay * 2)
            try:
                self._spawn()
            except OSError as exc:
                log.error("%s could not be restarted: %s", self.name, exc)
                if self._stopping.wait(delay):
                    return

    def stop(self, deadline_seconds: float) -> int | None:
        """Tell the child to make its last pass (SIGTERM) and wait for it, killing it if it
        takes longer than ``deadline_seconds`` plus a grace; returns its exit code."""
        with self._lock:
            self._stopping.set()
            process = self._process
        if self._thread is not None:
            self._thread.join()
        if process is None or process.poll() is not None:
            return None if process is None else process.returncode
        try:
            process.send_signal(signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            return process.wait(deadline_seconds + STOP_GRACE_SECONDS)
        except subprocess.TimeoutExpired:
            log.warning("%s did not stop in time: killed (files stay local)", self.name)
            process.kill()
            return process.wait()

    def kill(self) -> None:
        """Stop watching and kill the child at once (the daemon is failing)."""
        with self._lock:
            self._stopping.set()
            process = self._process
        if process is not None and process.poll() is None:
            process.kill()
            process.wait()
