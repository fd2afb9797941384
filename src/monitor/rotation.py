"""The life of ``finemon run``'s files: rotation in the background, and the final drain.

:class:`FileCycle` owns the recording :class:`capture.CaptureManager` once it is started:

- :meth:`FileCycle.rotate` starts a new file and publishes the old one in a thread of its own
  while sampling goes on (one rotation at a time). Publishing (the last row groups, the Parquet
  footer, fsync, carrying the window into the new journal) takes a large node's main loop
  hundreds of milliseconds; in its own thread it no longer delays the ticks after it. A rotation
  that fails is reported and the current file goes on (a failed publish leaves the old file's
  journal for recovery).
- :meth:`FileCycle.finish` ends the recording: after a second signal it writes nothing more
  (the journal is left for the next start to recover); otherwise it drains the window and
  publishes the file in a thread, and gives up waiting (the drain is *interrupted*) when
  another signal arrives or the drain outlasts its timeout. No ``.parquet`` is ever left
  unreadable either way.

What the daemon does with the outcomes (statistics, the manifest, the log, the size limit) it
passes in as callbacks, called in the rotation or drain thread.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import capture
from monitor import diskspace
from monitor.layout import OutputLayout
from monitor.signals import SignalWatch

log = logging.getLogger("finemon")

#: Seconds in a UTC day.
DAY_SECONDS = 86_400


def midnight_rotation_tick(tick: int, window_ticks: int, interval_seconds: float) -> int:
    """The tick after which to rotate so that the next UTC midnight after ``tick``'s window
    starts a file: no file then holds rows of two days (its ``dt`` partition is the date of
    every row, and a table can partition it by ``day(time)``).

    A rotation hands the new file every tick still in the window (the ``window_ticks`` last
    taken), so rotating after tick ``M + window_ticks - 1``, M the first tick of the day, leaves
    the ticks before M to the old file and M on to the new one. (Ticks are ``interval_seconds``
    apart from 1970.)
    """
    oldest = tick - window_ticks + 1
    midnight_seconds = (math.floor(oldest * interval_seconds / DAY_SECONDS) + 1) * DAY_SECONDS
    first_of_day = math.ceil(midnight_seconds / interval_seconds - 1e-9)
    return first_of_day + window_ticks - 1


#: How a recording ended: the file published (``complete``, even if publishing failed),
#: left to recovery after a second signal (``skipped``), or a drain cut short (``interrupted``).
DrainState = Literal["complete", "skipped", "interrupted"]


@dataclass(frozen=True, slots=True)
class Finished:
    """The outcome of :meth:`FileCycle.finish`.

    ``published`` is the last file (None when nothing was published); ``failure`` the error
    that kept it from being published (its journal is kept for recovery). After
    ``interrupted`` the drain thread may still be writing: the process should exit at once.
    """

    drain: DrainState
    published: capture.PublishedFile | None = None
    failure: OSError | None = None


class FileCycle:
    """Rotates the files of a started ``manager`` and finally drains it.

    Files are named by ``layout`` from their first tick (``interval_seconds`` apart), numbered
    from ``seq`` + 1 (``seq``: the number of the file being written). Callbacks, all called in
    the rotation thread (``on_published`` also in the drain thread):

    - ``on_published(file, what)``: a file was published (``what``: ``rotated``);
    - ``on_write_error(message)``: a rotation failed (one line);
    - ``after_rotation(cycle)``: a rotation ended, whatever its outcome (the daemon writes the
      manifest and rescans the size limit there).
    """

    def __init__(
        self,
        manager: capture.CaptureManager,
        layout: OutputLayout,
        interval_seconds: float,
        *,
        on_published: Callable[[capture.PublishedFile, str], None],
        on_write_error: Callable[[str], None],
        after_rotation: Callable[[FileCycle], None],
        seq: int = 1,
    ) -> None:
        self.manager = manager
        self.layout = layout
        self.interval_seconds = interval_seconds
        self.seq = seq
        self._on_published = on_published
        self._on_write_error = on_write_error
        self._after_rotation = after_rotation
        self._rotation: threading.Thread | None = None
        #: The error of the last rotation that failed on a full disk (``ENOSPC``, ``EDQUOT``).
        self.disk_full: OSError | None = None

    def live_files(self) -> list[Path]:
        """The files still growing (the current file's hidden Parquet file and journal)."""
        return self.manager.live_files()

    # ------------------------------------------------------------------ rotation
    def rotate(self) -> None:
        """Start the next file now and publish the current one in the background.

        Waits for the rotation before it, if that one is still publishing.
        """
        self.wait()
        thread = threading.Thread(
            target=self._rotate_now, args=(self.seq + 1,), name="finemon-rotate", daemon=True
        )
        self._rotation = thread
        thread.start()

    def wait(self) -> None:
        """Wait for the rotation in progress, if any."""
        thread, self._rotation = self._rotation, None
        if thread is not None:
            thread.join()

    def _rotate_now(self, seq: int) -> None:
        manager = self.manager
        paths: list[Path] = []

        def path_for(first_tick: int) -> Path:
            paths.append(self.layout.file_path(first_tick * self.interval_seconds, seq))
            return paths[-1]

        try:
            published = manager.rotate(path_for)
        except capture.CaptureWriteError as exc:
            self.seq = seq  # the new file is open; the old one waits for recovery
            self._note_disk_full(exc)
            self._on_write_error(f"rotation could not publish the previous file: {exc}")
        except OSError as exc:
            target = paths[-1] if paths else "a new file"
            self._note_disk_full(exc)
            self._on_write_error(
                f"rotation to {target} failed, still writing {manager.current_path}: {exc}"
            )
        except Exception as exc:  # a bug here must not kill the recording thread silently
            log.exception("rotation failed")
            self._on_write_error(f"rotation failed: {type(exc).__name__}: {exc}")
        else:
            self.seq = seq
            if published is not None:  # None: the old file held no row, nothing was published
                self._on_published(published, "rotated")
        self._after_rotation(self)

    def _note_disk_full(self, exc: OSError) -> None:
        if diskspace.is_disk_full(exc):
            self.disk_full = exc

    # ------------------------------------------------------------------ the end
    def finish(self, signals: SignalWatch, timeout_seconds: float) -> Finished:
        """End the recording: drain and publish the current file, unless hurried.

        With two signals received already nothing more is written (``skipped``). Otherwise the
        drain runs in a thread; a further signal, or ``timeout_seconds`` passing, stops the wait
        (``interrupted``: the journal is left for recovery at the next start).
        """
        manager = self.manager
        if signals.count >= 2:
            manager.close(drain=False)  # waits for a rotation in progress to switch files
            self.wait()
            return Finished("skipped")
        result: list[Finished] = []

        def close() -> None:
            try:
                self.wait()
                result.append(Finished("complete", manager.close(drain=True)))
            except OSError as exc:
                result.append(Finished("complete", failure=exc))

        seen = signals.count
        thread = threading.Thread(target=close, name="finemon-drain", daemon=True)
        thread.start()
        deadline = time.monotonic() + timeout_seconds
        while thread.is_alive():
            thread.join(0.05)
            hurried = signals.count > seen or time.monotonic() > deadline
            if hurried and thread.is_alive():
                return Finished("interrupted")
        return result[0] if result else Finished("complete")
