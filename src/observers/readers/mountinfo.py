"""Reader for ``/proc/<pid>/mountinfo``: where each filesystem (the cgroup hierarchies among
them) is mounted.

The format is in ``man 5 proc``: ``id parent MAJ:MIN root mount-point options [optional...] -
fstype source super-options``, with space, tab, newline and backslash in paths written as octal
escapes (``\\040``).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from observers.readers.errors import MalformedFileError, read_file_bytes

__all__ = ["Mount", "MountinfoParseError", "parse_mountinfo", "read_mountinfo"]

_OCTAL_ESCAPE = re.compile(r"\\([0-7]{3})")
# How much of an offending line an error quotes.
_QUOTE_LIMIT = 80


class MountinfoParseError(MalformedFileError):
    """A mountinfo line does not have the fields ``man 5 proc`` describes.

    The message reads ``"<source>:<line>: malformed mountinfo line: '<line>'"``.
    """

    def __init__(self, source: str, line_number: int, line: str) -> None:
        quoted = repr(line) if len(line) <= _QUOTE_LIMIT else f"{line[:_QUOTE_LIMIT]!r}..."
        super().__init__(source, line_number, f"malformed mountinfo line: {quoted}")
        self.source = source
        self.line = line


@dataclass(frozen=True, slots=True)
class Mount:
    """One line of ``/proc/PID/mountinfo``; paths have their octal escapes decoded."""

    mount_id: int
    parent_id: int
    major: int
    minor: int
    root: str
    mount_point: Path
    mount_options: tuple[str, ...]
    optional_fields: tuple[str, ...]
    fs_type: str
    source: str
    super_options: tuple[str, ...]


def _unescape(field: str) -> str:
    """Decode the kernel's octal escapes (space, tab, newline, backslash) in a path field."""
    if "\\" not in field:
        return field
    return _OCTAL_ESCAPE.sub(lambda m: chr(int(m.group(1), 8)), field)


def _parse_mount_line(line: str) -> Mount | None:
    fields = line.split(" ")
    try:
        separator = fields.index("-", 6)
    except ValueError:
        return None
    if len(fields) < separator + 4:
        return None
    major, colon, minor = fields[2].partition(":")
    if not colon:
        return None
    try:
        return Mount(
            mount_id=int(fields[0]),
            parent_id=int(fields[1]),
            major=int(major),
            minor=int(minor),
            root=_unescape(fields[3]),
            mount_point=Path(_unescape(fields[4])),
            mount_options=tuple(fields[5].split(",")),
            optional_fields=tuple(fields[6:separator]),
            fs_type=fields[separator + 1],
            source=_unescape(fields[separator + 2]),
            super_options=tuple(fields[separator + 3].split(",")),
        )
    except ValueError:
        return None


def parse_mountinfo(data: str | bytes, *, source: str = "mountinfo") -> tuple[Mount, ...]:
    """Parse the content of ``/proc/PID/mountinfo``; ``source`` names it in errors.

    Bytes are decoded as UTF-8 with undecodable bytes kept as surrogates (a path is any bytes).

    Raises :class:`MountinfoParseError`, naming ``source`` and the line, for a malformed line.
    """
    text = data.decode("utf-8", "surrogateescape") if isinstance(data, bytes) else data
    mounts: list[Mount] = []
    # Lines end in "\n" only (a newline in a path is escaped); str.splitlines would also split
    # at the other line boundaries Unicode knows, and miscount the lines.
    for number, line in enumerate(text.split("\n"), start=1):
        if not line:
            continue
        mount = _parse_mount_line(line)
        if mount is None:
            raise MountinfoParseError(source, number, line)
        mounts.append(mount)
    return tuple(mounts)


def read_mountinfo(path: str | os.PathLike[str] = "/proc/self/mountinfo") -> tuple[Mount, ...]:
    """Read and parse a mountinfo file; see :func:`parse_mountinfo`.

    Raises the :func:`~observers.readers.errors.read_file_bytes` errors when it cannot be read.
    """
    where = os.fspath(path)
    return parse_mountinfo(read_file_bytes(where), source=where)
