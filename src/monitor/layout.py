"""Where finemon puts things in its output directory.

The output directory is a Hive-partitioned dataset that pandas, pyarrow, DuckDB and Spark read
with no options::

    <output-dir>/
        _session.json                       manifest of the current (or last) run
        _sessions/<run_id>.json             manifest of every run, kept
        dt=YYYY-MM-DD/identifier=<id>/
            finemon-20240131T235930Z-1a2b3c4d-00001.parquet
            .finemon-...parquet.partial     (the file being written; hidden)
            .finemon-...parquet.journal     (its journal; hidden)

``dt`` is the UTC date of the file's first tick, so a run that crosses midnight starts a new
partition at its first rotation after it. File names sort by time and stay unique across
restarts: the UTC time of the first tick, the first 8 characters of the run id, a sequence
number. Everything that is not data starts with ``_`` or ``.`` (the Hadoop convention).
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

#: The current run's manifest, at the output root.
SESSION_MANIFEST = "_session.json"
#: Folder of every run's manifest, at the output root.
SESSIONS_DIR = "_sessions"
#: Prefix of the partition folders.
PARTITION_PREFIX = "dt="
FILE_PREFIX = "finemon-"
FILE_SUFFIX = ".parquet"


class OutputLayout:
    """Paths of one run's files under ``root`` for ``identifier``."""

    def __init__(self, root: Path, identifier: str, run_id: str) -> None:
        self.root = root
        self.identifier = identifier
        self.run_id = run_id

    def partition_dir(self, first_tick_seconds: float) -> Path:
        """``root/dt=<UTC date>/identifier=<id>`` for a file whose first tick is at that time."""
        day = datetime.fromtimestamp(first_tick_seconds, UTC).strftime("%Y-%m-%d")
        return self.root / f"{PARTITION_PREFIX}{day}" / f"identifier={self.identifier}"

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
