"""SIGINT/SIGTERM handling that never runs finemon's work inside a signal handler.

The handlers only note the signal; the C-level wakeup fd (a self-pipe) makes any
:meth:`SignalWatch.sleep_until` return at once. The daemon looks at :attr:`SignalWatch.count`
between steps: one signal stops sampling and drains, a second one hurries the drain.
"""

from __future__ import annotations

import os
import select
import signal
import time
from collections.abc import Callable, Sequence
from types import FrameType

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class SignalWatch:
    """Counts stop signals and wakes sleepers; :meth:`install` in the main thread."""

    def __init__(
        self,
        signals: Sequence[signal.Signals] = STOP_SIGNALS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.signals = tuple(signals)
        self.received: list[signal.Signals] = []
        self._clock = clock
        self._read_fd, self._write_fd = os.pipe()
        os.set_blocking(self._read_fd, False)
        os.set_blocking(self._write_fd, False)
        self._previous: dict[signal.Signals, object] = {}
        self._previous_wakeup_fd = -1

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.received.append(signal.Signals(signum))

    @property
    def installed(self) -> bool:
        """Whether the handlers are installed."""
        return bool(self._previous)

    def install(self) -> None:
        """Install the handlers and the wakeup fd (main thread only)."""
        if self.installed:
            return
        for sig in self.signals:
            self._previous[sig] = signal.signal(sig, self._handle)
        self._previous_wakeup_fd = signal.set_wakeup_fd(self._write_fd, warn_on_full_buffer=False)

    def restore(self) -> None:
        """Put back the previous handlers (the pipe stays usable for another install)."""
        if not self.installed:
            return
        signal.set_wakeup_fd(self._previous_wakeup_fd)
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)  # type: ignore[arg-type]
        self._previous.clear()

    def close(self) -> None:
        """Restore the handlers and close the pipe."""
        self.restore()
        os.close(self._read_fd)
        os.close(self._write_fd)

    @property
    def count(self) -> int:
        """How many stop signals arrived so far."""
        return len(self.received)

    @property
    def last_name(self) -> str | None:
        """Name of the latest signal (``SIGTERM``), or None."""
        return self.received[-1].name if self.received else None

    def sleep_until(self, deadline: float | None, *, seen: int | None = None) -> None:
        """Sleep until Unix time ``deadline`` (None: forever) or until a signal beyond ``seen``
        (default: the count now) arrives."""
        seen = self.count if seen is None else seen
        while self.count <= seen:
            timeout = None if deadline is None else deadline - self._clock()
            if timeout is not None and timeout <= 0:
                return
            # poll, not select: select() cannot watch a descriptor numbered 1024 or more, and
            # finemon keeps thousands of descriptors open.
            poller = select.poll()
            poller.register(self._read_fd, select.POLLIN)
            readable = poller.poll(None if timeout is None else timeout * 1000.0)
            if readable:
                try:
                    while os.read(self._read_fd, 512):
                        pass
                except BlockingIOError:
                    pass
