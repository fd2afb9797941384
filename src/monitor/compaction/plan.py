"""What a compaction merges: the finished files of each partition, grouped by size.

Pure choices over a listing: :func:`finished_files` lists a partition's published files old
enough, :func:`plan_groups` groups them into future files of about ``target_bytes`` (never above
``max_bytes``), and :func:`compacted_name` names the file a group becomes.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from common.contract import COMPACTED_MARKER, FILE_PREFIX, FILE_SUFFIX, PARTITION_KEYS

MIB = 1024 * 1024
#: A file at least this large is left alone: it is big enough already.
MIN_FILE_BYTES = 128 * MIB
#: A group closes once its inputs reach this size (the compacted file is about as large, usually
#: a little smaller: sorted rows compress better).
TARGET_FILE_BYTES = 512 * MIB
#: No group of inputs above this size.
MAX_FILE_BYTES = 1024 * MIB
#: ``--older-than`` by default: files published at least an hour ago.
DEFAULT_OLDER_THAN_SECONDS = 3600.0

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d)?\s*$")
_UNIT_SECONDS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}
_STAMP = re.compile(r"^\d{8}T\d{6}Z$")


def parse_duration(text: str) -> float:
    """Seconds of a duration such as ``0s``, ``90``, ``15m``, ``1h`` or ``2d`` (no unit:
    seconds). Raises ValueError (one line) otherwise."""
    match = _DURATION.match(text)
    if match is None:
        raise ValueError(f"invalid duration {text!r}: expected e.g. 0s, 90s, 15m, 1h or 2d")
    return float(match.group(1)) * _UNIT_SECONDS[match.group(2)]


@dataclass(frozen=True, slots=True)
class Candidate:
    """A published data file: its path, size and modification time (when it was published)."""

    path: Path
    size_bytes: int
    mtime_seconds: float

    @property
    def compacted(self) -> bool:
        """Whether it is itself a compacted file."""
        return COMPACTED_MARKER in self.path.name


def partitions(root: Path) -> list[Path]:
    """The ``dt=*/identifier=*`` folders under ``root``, sorted."""
    date_key, identifier_key = PARTITION_KEYS
    return sorted(
        p
        for p in root.glob(f"{date_key}=*/{identifier_key}=*")
        if p.is_dir() and not p.is_symlink()
    )


def partition_day_over(partition: Path, now_seconds: float) -> bool:
    """Whether the UTC day of ``partition`` (its ``dt=``) has ended: no file will join it."""
    day = partition.parent.name.partition("=")[2]
    try:
        start = datetime.strptime(day, "%Y-%m-%d").replace(tzinfo=UTC)
    except ValueError:
        return False
    return now_seconds >= start.timestamp() + 86400


def finished_files(
    partition: Path, older_than_seconds: float, now_seconds: float
) -> list[Candidate]:
    """The published data files of ``partition`` published at least ``older_than_seconds``
    before ``now_seconds``, by name (so by first tick). Hidden files (the file being written,
    journals, compaction's own) are never listed; neither are symlinks."""
    found: list[Candidate] = []
    try:
        entries = list(os.scandir(partition))
    except OSError:
        return found
    for entry in entries:
        name = entry.name
        if name.startswith((".", "_")) or not name.endswith(FILE_SUFFIX):
            continue
        try:
            if not entry.is_file(follow_symlinks=False):
                continue
            st = entry.stat(follow_symlinks=False)
        except OSError:
            continue
        if now_seconds - st.st_mtime >= older_than_seconds:
            found.append(Candidate(Path(entry.path), st.st_size, st.st_mtime))
    return sorted(found, key=lambda c: c.path.name)


def plan_groups(
    candidates: Sequence[Candidate],
    *,
    target_bytes: int = TARGET_FILE_BYTES,
    min_bytes: int = MIN_FILE_BYTES,
    max_bytes: int = MAX_FILE_BYTES,
    min_new_bytes: int = 0,
    day_over: bool = True,
) -> list[list[Candidate]]:
    """Groups of two or more of ``candidates`` to merge, each into one file.

    Files of at least ``min_bytes`` stay as they are. The others are taken in name order and
    grouped until a group reaches ``target_bytes`` (never above ``max_bytes``). The last group,
    smaller, is merged too (a small partition becomes one file) unless the partition's day is
    not over (``day_over`` False) and the files in it that are not compacted already total less
    than ``min_new_bytes``: the daemon waits for that much new data rather than rewrite the
    same compacted file at every pass. Running it again on its own output plans nothing.
    """
    groups: list[list[Candidate]] = []
    current: list[Candidate] = []
    total = 0
    for candidate in candidates:
        if candidate.size_bytes >= min_bytes:
            continue
        if current and total + candidate.size_bytes > max_bytes:
            groups.append(current)
            current, total = [], 0
        current.append(candidate)
        total += candidate.size_bytes
        if total >= target_bytes:
            groups.append(current)
            current, total = [], 0
    if current:
        new_bytes = sum(c.size_bytes for c in current if not c.compacted)
        if day_over or new_bytes >= min_new_bytes:
            groups.append(current)
    return [group for group in groups if len(group) >= 2]


def compacted_name(inputs: Sequence[Path]) -> str:
    """``finemon-<first tick, UTC>-compact-<digest>.parquet``: the first tick from the first
    input's name (inputs in name order), the digest of every input's name, so the same inputs
    always give the same name."""
    import hashlib  # noqa: PLC0415 - loads OpenSSL (3 MB): never in finemon run's own process

    first = inputs[0].name
    stamp = first[len(FILE_PREFIX) :].split("-", 1)[0]
    if not _STAMP.match(stamp):
        stamp = datetime.fromtimestamp(inputs[0].stat().st_mtime, UTC).strftime("%Y%m%dT%H%M%SZ")
    digest = hashlib.sha256("\n".join(sorted(p.name for p in inputs)).encode()).hexdigest()[:8]
    return f"{FILE_PREFIX}{stamp}{COMPACTED_MARKER}{digest}{FILE_SUFFIX}"
