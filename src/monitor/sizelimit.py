"""The ``--size-limit``: how many bytes finemon has written into its output directory.

What counts: every file finemon writes there, across restarts and identifiers: published
``*.parquet`` files under the ``dt=`` partitions (compacted ones included; the files a
compaction replaced stop counting once they are gone), the hidden ``.partial`` and ``.journal``
files of the file being written (and journals set aside as ``.corrupt``), compaction's hidden
files (the compacted file before it is published, its intent, and its scratch folder of spilled
rows, about the inputs' size while it sorts), the session manifests (``_session.json``,
``_sessions/*.json``) and the index beside the data (every file under ``_index/``, which the
daemon and the readers write). Other files in the directory are not finemon's and are ignored.

How the limit holds: the daemon scans the directory when it starts and after each rotation,
and at every tick adds the current sizes of the file being written (its partial and its journal,
two ``stat`` calls). When the total reaches the limit it finalizes the current file (the total
then shrinks: the journal is deleted), records reason ``size_limit`` in the manifest with
``size_limit: {limit_bytes, used_bytes}`` and stops recording. The total therefore never exceeds
the limit by more than one rotation's file and the index written after it.

What the log says: at the stop, what was counted (``size limit reached: finished files N bytes
+ the file being written M bytes (its Parquet part and journal) >= limit L bytes``), then, going
idle, the total once that file is finished (smaller: its journal is deleted).

Why it does not exit: in a DaemonSet an exiting container is restarted at once, and a restarted
finemon that exited again on finding the limit reached would crash-loop. So both the process that
reaches the limit and a restarted process that finds it reached stay up idle: no sampling,
nothing written (a restart writes no manifest either: restarts never creep past the limit), the
Prometheus endpoint still served if enabled (with ``finemon.size_limit.*`` gauges), one log line
and a health line a minute, until SIGINT/SIGTERM (or the end of ``--duration``) makes them exit
0. A full disk idles the same way (:mod:`monitor.diskspace`).

When a restart counts as "reached": the total is at the limit, or the previous run stopped at the
limit (its ``_session.json`` says ``reason: size_limit``) and since then neither was space freed
(the total is still at least the ``used_bytes`` it left) nor was ``--size-limit`` raised. Without
that memory, every restart would record a little more, because finalizing a file shrinks the
total below the limit.

Recording again: an idle finemon rescans the output directory every few seconds, and once space
was freed (the total is below both the limit and the bytes it stopped at: ``finemon run
--upload-delete`` deleting uploaded files, or files moved away) it records again as a new run
(``monitor.daemon.run``), the idle run's manifest saying ``exit_reason: space_freed``. Raising
``--size-limit`` takes a restart.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from common.contract import (
    COMPACTION_SCRATCH_SUFFIX,
    COMPACTION_SUFFIXES,
    FILE_SUFFIX,
    HIDDEN_SUFFIXES,
    INDEX_DIR,
    SESSION_MANIFEST,
    SESSIONS_DIR,
)
from monitor.layout import PARTITION_PREFIX

_DATA_SUFFIXES = (
    FILE_SUFFIX,
    *(FILE_SUFFIX + suffix for suffix in (*HIDDEN_SUFFIXES, *COMPACTION_SUFFIXES)),
)


def _file_size(path: str | Path) -> int:
    try:
        return os.stat(path, follow_symlinks=False).st_size
    except OSError:  # gone between listing and stat (a rename or a recovery)
        return 0


def _walk_partitions(directory: Path) -> Iterable[Path]:
    for dirpath, _dirnames, filenames in os.walk(directory):
        scratch = dirpath.endswith(COMPACTION_SCRATCH_SUFFIX)
        for name in filenames:
            if scratch or name.endswith(_DATA_SUFFIXES):
                yield Path(dirpath, name)


def finemon_files(output_dir: Path) -> list[Path]:
    """Every file under ``output_dir`` that finemon writes (see the module docstring)."""
    found: list[Path] = []
    try:
        entries = list(os.scandir(output_dir))
    except OSError:
        return found
    for entry in entries:
        name = entry.name
        if entry.is_dir(follow_symlinks=False):
            if name.startswith(PARTITION_PREFIX):
                found.extend(_walk_partitions(Path(entry.path)))
            elif name == INDEX_DIR:
                found.extend(
                    Path(dirpath, f) for dirpath, _, files in os.walk(entry.path) for f in files
                )
            elif name == SESSIONS_DIR:
                found.extend(
                    Path(e.path)
                    for e in os.scandir(entry.path)
                    if e.name.endswith(".json") and e.is_file(follow_symlinks=False)
                )
        elif name == SESSION_MANIFEST:
            found.append(Path(entry.path))
    return found


def used_bytes(output_dir: Path, exclude: Iterable[Path] = ()) -> int:
    """Total size of :func:`finemon_files` of ``output_dir``, leaving out ``exclude``."""
    skip = {Path(p) for p in exclude}
    return sum(_file_size(p) for p in finemon_files(output_dir) if p not in skip)


class SizeLimit:
    """Tracks bytes used under ``output_dir`` against ``limit_bytes``.

    ``rescan(live)`` walks the directory (at start and after each rotation) and remembers the
    total of everything except the ``live`` files, which are still growing; ``used(live)`` adds
    their current sizes to that, with a couple of ``stat`` calls.
    """

    def __init__(self, output_dir: Path, limit_bytes: int) -> None:
        self.output_dir = output_dir
        self.limit_bytes = limit_bytes
        self._settled_bytes = 0

    def rescan(self, live: Iterable[Path] = ()) -> int:
        """Walk the directory; returns the bytes used, ``live`` files included."""
        live = list(live)
        self._settled_bytes = used_bytes(self.output_dir, exclude=live)
        return self.used(live)

    def used(self, live: Iterable[Path] = ()) -> int:
        """Bytes used: the last scan's settled files plus the current size of ``live`` files."""
        return self._settled_bytes + self.live_bytes(live)

    @property
    def settled_bytes(self) -> int:
        """The last scan's total of the files that were not growing (finished files,
        manifests, earlier runs' leftovers)."""
        return self._settled_bytes

    @staticmethod
    def live_bytes(live: Iterable[Path]) -> int:
        """The current size of the ``live`` files (a ``stat`` each; 0 for one that is gone)."""
        return sum(_file_size(p) for p in live)

    def reached(self, used_bytes: int) -> bool:
        """Whether ``used_bytes`` reaches the limit."""
        return used_bytes >= self.limit_bytes

    def marker(self, used_bytes: int) -> dict[str, int]:
        """What the manifest records when recording stops at the limit."""
        return {"limit_bytes": self.limit_bytes, "used_bytes": used_bytes}

    def still_reached(self, previous: Mapping[str, Any] | None, used_bytes: int) -> bool:
        """Whether the run that wrote manifest ``previous`` stopped at the limit and nothing has
        changed since: no space freed (``used_bytes`` at least what it left) and no higher limit.
        """
        stopped = _stopped_at(previous)
        if stopped is None:
            return False
        limit, left = stopped
        return self.limit_bytes <= limit and used_bytes >= left

    @staticmethod
    def left_bytes(previous: Mapping[str, Any] | None) -> int | None:
        """The bytes used that the run of manifest ``previous`` left when it stopped at the
        limit (None: it did not stop there)."""
        stopped = _stopped_at(previous)
        return None if stopped is None else stopped[1]


def _stopped_at(previous: Mapping[str, Any] | None) -> tuple[int, int] | None:
    """``(limit_bytes, used_bytes)`` of manifest ``previous`` if its run stopped at the limit."""
    if previous is None or previous.get("reason") != "size_limit":
        return None
    marker = previous.get("size_limit")
    if not isinstance(marker, Mapping):
        return None
    limit, left = marker.get("limit_bytes"), marker.get("used_bytes")
    if not isinstance(limit, int) or not isinstance(left, int):
        return None
    return limit, left
