"""Where one run of finemon puts its files in the output directory.

The names themselves (partitions, manifests, file names) are the output contract, in
:mod:`common.contract`. ``dt`` is the UTC date of the file's first tick; the daemon rotates at each
UTC midnight, so it is the date of every row of the file. File names sort by time and stay
unique across restarts: the UTC time of the first tick, the first 8 characters of the run id, a
sequence number.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Final

from common.contract import (
    FILE_PREFIX,
    FILE_SUFFIX,
    PARTITION_KEYS,
    SESSION_MANIFEST,
    SESSIONS_DIR,
)

_DATE_KEY, _IDENTIFIER_KEY = PARTITION_KEYS
#: Prefix of the partition folders at the output root (``dt=``).
PARTITION_PREFIX: Final = f"{_DATE_KEY}="


class OutputLayout:
    """Paths of one run's files under ``root`` for ``identifier``."""

    def __init__(self, root: Path, identifier: str, run_id: str) -> None:
        self.root = root
        self.identifier = identifier
        self.run_id = run_id

    def partition_dir(self, first_tick_seconds: float) -> Path:
        """``root/dt=<UTC date>/identifier=<id>`` for a file whose first tick is at that time."""
        day = datetime.fromtimestamp(first_tick_seconds, UTC).strftime("%Y-%m-%d")
        return self.root / f"{PARTITION_PREFIX}{day}" / f"{_IDENTIFIER_KEY}={self.identifier}"

    def file_path(self, first_tick_seconds: float, seq: int) -> Path:
        """The path of the run's ``seq``-th file, whose first tick is at ``first_tick_seconds``."""
        stamp = datetime.fromtimestamp(first_tick_seconds, UTC).strftime("%Y%m%dT%H%M%SZ")
        name = f"{FILE_PREFIX}{stamp}-{self.run_id[:8]}-{seq:05d}{FILE_SUFFIX}"
        return self.partition_dir(first_tick_seconds) / name

    @property
    def session_manifest(self) -> Path:
        """``root/_session.json``."""
        return self.root / SESSION_MANIFEST

    @property
    def run_manifest(self) -> Path:
        """``root/_sessions/<run_id>.json``."""
        return self.root / SESSIONS_DIR / f"{self.run_id}.json"
