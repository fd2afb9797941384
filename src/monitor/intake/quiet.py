"""The moments between the tick loop's samples, when the intake and the scrapes do their work.

Decoding and writing reported points is pure Python: a thread doing it holds the interpreter,
and the sampler, which gives it up at every file it reads, then waits for it again at each
read (thousands a tick on a large node) and overruns its tick. So the tick loop marks its
samples (:meth:`SampleWindow.sampling`), and the intake and the scrapes wait at their
checkpoints (:meth:`SampleWindow.wait`, every few hundred series) while one runs: a sample
shares the interpreter with at most one checkpoint's worth of their work.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Final

#: Longest a checkpoint waits for a sample to end (a sample that hangs does not stop the
#: intake for good).
MAX_WAIT_SECONDS: Final = 2.0


class SampleWindow:
    """Whether the tick loop is sampling now; thread-safe."""

    def __init__(self) -> None:
        self._idle = threading.Event()
        self._idle.set()

    @contextmanager
    def sampling(self) -> Iterator[None]:
        """Mark a sample (the tick loop, around each one)."""
        self._idle.clear()
        try:
            yield
        finally:
            self._idle.set()

    def wait(self) -> None:
        """Return once no sample runs (at most MAX_WAIT_SECONDS later)."""
        self._idle.wait(MAX_WAIT_SECONDS)
