"""The session manifest: what a run of finemon was, for people reading the data weeks later.

Written as ``_session.json`` at the output root (the current or last run) and as
``_sessions/<run_id>.json`` (kept for every run; a restart never overwrites an earlier run's).
Each is written atomically (a hidden temporary file in the same folder, fsynced, renamed), and
each on its own: when ``_sessions/`` cannot be written the run's manifest is still in
``_session.json`` (the daemon logs a warning saying so). On a full disk, where not even a
temporary file fits, an existing manifest is overwritten in place in the blocks it already has,
so that a run stopped by a full disk still records its end.

Which runs have one: every run that records. A run that never records (a restart that finds
the size limit reached or the disk full, and idles) writes none: ``_session.json`` keeps saying
why the last run stopped, and restarts while idle do not add manifests (nor bytes to the size
limit's total).

Fields: ``run_id`` (the same as the Parquet rows' ``run_id``), ``identifier``, ``node_name``,
``cluster_name``, ``pod_name``, ``start_time`` (ISO 8601 UTC), ``config`` (every setting),
``finemon_version``, ``git_revision`` (``$FINEMON_GIT_REV``, else ``git rev-parse HEAD`` of the
source tree, else null), ``host`` (kernel release, host name, CPU count, memory bytes, and what
the observer found: cgroup version, mounts, layout), ``recovered`` (files rebuilt at start),
``stats`` (ticks, skipped ticks, files, rows, bytes; updated at each rotation), ``updated_time``,
``experiment`` and ``variant`` (``--experiment``, ``--variant``; null without them), ``phases``
(``[{name, time}]``: each ``finemon mark`` received, in order, see :mod:`monitor.phases`),
and once recording stops ``end_time``, ``duration_seconds`` and ``reason``: ``duration``,
``signal`` (with ``signal`` naming it), ``size_limit``, ``disk_full`` or ``error`` (with
``error``); ``last_file: "journal kept for recovery"`` when the last file could not be finished
on a full disk. A process that stops at the size limit also records ``size_limit``
(``limit_bytes`` and the ``used_bytes`` it left; a restart reads them, see
:mod:`monitor.sizelimit`), one stopped by a full disk ``disk_full`` (``free_bytes`` then and the
``reserve_bytes`` it keeps, see :mod:`monitor.diskspace`); either stays up idle, adding
``exit_time`` and ``exit_reason`` (``signal``, ``duration``, or ``space_freed`` when it records
again as a new run) when it stops idling.
"""

from __future__ import annotations

import errno
import json
import os
import subprocess
import tempfile
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from monitor.layout import OutputLayout

#: Version of the manifest's shape.
MANIFEST_FORMAT = 1


def iso_utc(timestamp: float) -> str:
    """Unix time ``timestamp`` as ISO 8601 UTC with milliseconds: 2024-01-31T23:59:30.125Z."""
    moment = datetime.fromtimestamp(timestamp, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def git_revision(env_revision: str | None, source: Path | None = None) -> str | None:
    """The source revision: ``env_revision`` if set, else ``git rev-parse HEAD`` run in
    ``source`` (default: this package's folder) when it is a git checkout, else None."""
    if env_revision:
        return env_revision
    folder = source or Path(__file__).resolve().parent
    try:
        done = subprocess.run(
            ["git", "-C", str(folder), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    revision = done.stdout.strip()
    return revision if done.returncode == 0 and revision else None


def _memory_bytes() -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (OSError, ValueError):
        return None


def host_info(observer_description: Mapping[str, object]) -> dict[str, object]:
    """Kernel release, host name, CPU count, memory, and the observer's findings."""
    uname = os.uname()
    return {
        "kernel_release": uname.release,
        "kernel_version": uname.version,
        "machine": uname.machine,
        "hostname": uname.nodename,
        "cpu_count": os.cpu_count(),
        "memory_bytes": _memory_bytes(),
        "observer": dict(observer_description),
    }


def _json_bytes(document: Mapping[str, Any]) -> bytes:
    return (json.dumps(document, indent=2, sort_keys=True, default=str) + "\n").encode()


def write_json_atomically(path: Path, document: Mapping[str, Any]) -> None:
    """Write ``document`` to ``path`` through a hidden temporary file, fsync and rename.

    Raises OSError (the earlier content of ``path`` stays intact) when it cannot be written.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    data = _json_bytes(document)
    fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temp, path)
    except BaseException:
        try:
            os.unlink(temp)
        except OSError:
            pass
        raise


def overwrite_json_in_place(path: Path, document: Mapping[str, Any]) -> None:
    """Write ``document`` over the existing file ``path`` in the blocks it already has (on a
    full disk, where a new file cannot be made), padded with spaces (valid JSON) to the old
    length, and fsync.

    Not atomic: a crash during the write can leave the file torn. Raises OSError when the
    document does not fit the blocks of ``path`` (or ``path`` is missing, or the filesystem
    needs new blocks even to overwrite, as copy-on-write ones do).
    """
    data = _json_bytes(document)
    fd = os.open(path, os.O_WRONLY)
    try:
        stat = os.fstat(fd)
        if len(data) > stat.st_blocks * 512:
            raise OSError(errno.ENOSPC, f"{len(data)} bytes do not fit its blocks", str(path))
        view = memoryview(data.ljust(stat.st_size, b" "))
        offset = 0
        while offset < len(view):
            offset += os.pwrite(fd, view[offset:], offset)
        os.fsync(fd)
    finally:
        os.close(fd)


def write_json(path: Path, document: Mapping[str, Any]) -> None:
    """:func:`write_json_atomically`, or on a full disk (``ENOSPC``/``EDQUOT``) and when
    ``path`` exists, :func:`overwrite_json_in_place`: a manifest that can no longer be replaced
    still gets its end. Raises OSError (the first error) when neither works."""
    try:
        write_json_atomically(path, document)
    except OSError as exc:
        if exc.errno not in (errno.ENOSPC, errno.EDQUOT) or not path.is_file():
            raise
        try:
            overwrite_json_in_place(path, document)
        except OSError:
            raise exc from None


def read_manifest(path: Path) -> dict[str, Any] | None:
    """The manifest at ``path``, or None if it is missing or not a JSON object."""
    try:
        document = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return None
    return document if isinstance(document, dict) else None


class SessionManifest:
    """The manifest of one run; :meth:`write` publishes it under both names."""

    def __init__(self, layout: OutputLayout, document: Mapping[str, Any]) -> None:
        self.layout = layout
        self.document: dict[str, Any] = {"format": MANIFEST_FORMAT, **document}

    def update(self, **fields: Any) -> None:
        """Change top-level fields (written by the next :meth:`write`)."""
        self.document.update(fields)

    @property
    def paths(self) -> tuple[Path, Path]:
        """Where :meth:`write` writes, in its order: ``_sessions/<run_id>.json``,
        ``_session.json``."""
        return self.layout.run_manifest, self.layout.session_manifest

    def write(self, now: float) -> list[tuple[Path, OSError]]:
        """Write ``_sessions/<run_id>.json`` and then ``_session.json`` (:func:`write_json`),
        each whatever became of the other (an unwritable ``_sessions/`` leaves the run's
        manifest in ``_session.json`` alone). Returns the paths that could not be written, with
        their errors; never raises OSError."""
        self.document["updated_time"] = iso_utc(now)
        failed: list[tuple[Path, OSError]] = []
        for path in self.paths:
            try:
                write_json(path, self.document)
            except OSError as exc:
                failed.append((path, exc))
        return failed
