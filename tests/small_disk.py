"""A real small filesystem to fill up: a tmpfs mounted in a test's tmp dir (needs root).

``SmallDisk.fill()`` takes the free space with a filler file, the way another program filling
the node's disk would; ``SmallDisk.free()`` deletes it. The ``small_disk`` fixture of
tests/conftest.py mounts one per test and unmounts it in its teardown.
"""

from __future__ import annotations

import errno
import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

#: Size of the test filesystem: room for a few fast runs' files, quick to fill.
SIZE_BYTES = 8 * 1024 * 1024
_CHUNK_BYTES = 64 * 1024


class SmallDisk:
    """A mounted tmpfs at ``root``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.filler = root / "filler"

    def free_bytes(self) -> int:
        stat = os.statvfs(self.root)
        return stat.f_bavail * stat.f_frsize

    def fill(self, leave_bytes: int = 0) -> None:
        """Grow the filler file until at most ``leave_bytes`` are free (0: until not a byte
        more fits)."""
        fd = os.open(self.filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            size = _CHUNK_BYTES
            while size:
                if leave_bytes:
                    size = min(size, self.free_bytes() - leave_bytes)
                    if size <= 0:
                        return
                try:
                    os.write(fd, b"\xff" * size)
                except OSError as exc:
                    if exc.errno != errno.ENOSPC:
                        raise
                    size //= 2  # the last pages: smaller writes
        finally:
            os.close(fd)

    def free(self) -> None:
        """Delete the filler file: the space is back."""
        self.filler.unlink(missing_ok=True)


@contextmanager
def mounted(root: Path, size_bytes: int = SIZE_BYTES) -> Iterator[SmallDisk | str]:
    """Mount a tmpfs of ``size_bytes`` at ``root`` (created); yields it, or the reason it cannot
    be mounted here (not root, no mount permission). Unmounts it afterwards."""
    if os.geteuid() != 0:
        yield "mounting a tmpfs needs root"
        return
    root.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size_bytes}", "tmpfs", str(root)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        yield f"cannot mount a tmpfs: {done.stderr.strip()}"
        return
    try:
        yield SmallDisk(root)
    finally:
        # Lazily if a file is still open (a process the test failed to stop).
        if subprocess.run(["umount", str(root)], capture_output=True, check=False).returncode:
            subprocess.run(["umount", "-l", str(root)], capture_output=True, check=False)
