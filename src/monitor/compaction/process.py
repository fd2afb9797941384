"""``finemon run --compact-older-than``: compaction as a child process of the daemon.

``python -m monitor.compaction`` compacts the output directory every ``--interval`` seconds
(:func:`~monitor.compaction.local.compact_directory`), at the lowest CPU and IO priority
(``nice`` 19, the idle IO class), so the sampling process never waits for it: ticks keep their
schedule, and the merge's memory (bounded by its sort budget, see
:mod:`~monitor.compaction.merge`) is not the daemon's. In a partition whose day is not over it
waits for 128 MiB of new files before it rewrites a compacted file. ``finemon run`` starts it
with :func:`compactor_command` and keeps it running with the uploader's supervisor
(:class:`~monitor.shipping.supervisor.UploaderSupervisor`): a child that dies is restarted.
A stop signal ends it after the group being merged (a kill at any point is safe: the next pass
finishes the swap); so does its parent's exit.

Counters (passes, files written and replaced, rows, bytes in and out, failures, the last error)
are logged after each pass that did something, and kept in ``<output-dir>/_compaction.json``.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from monitor.compaction import plan

log = logging.getLogger("finemon.compact")

#: Seconds between passes by default.
DEFAULT_INTERVAL_SECONDS = 300.0
#: The status file at the output root (``_``: readers and the size limit skip it).
STATUS_FILE = "_compaction.json"


@dataclass(slots=True)
class CompactorCounters:
    """What the compaction process did since it started."""

    passes: int = 0
    files_written: int = 0
    files_replaced: int = 0
    rows: int = 0
    input_bytes: int = 0
    output_bytes: int = 0
    failures: int = 0
    last_error: str | None = None


def compactor_command(
    output_dir: Path, older_than_seconds: float, parent_pid: int, compression_level: int
) -> list[str]:
    """The command line of the compaction process for ``finemon run``."""
    return [
        sys.executable,
        "-m",
        "monitor.compaction",
        "--output-dir",
        str(output_dir),
        "--older-than",
        f"{older_than_seconds!r}s",
        "--interval",
        repr(min(DEFAULT_INTERVAL_SECONDS, max(older_than_seconds, 10.0))),
        "--parent-pid",
        str(parent_pid),
        "--compression-level",
        str(compression_level),
    ]


def use_memory_policy() -> None:
    """Before pyarrow is imported: Arrow allocates from the C library with few arenas, and
    pages freed go back to the system (:mod:`monitor.memory_policy`), so that the process's RSS
    follows what the merge holds, not its peak."""
    from monitor import memory_policy  # noqa: PLC0415

    memory_policy.before_imports()
    import pyarrow as pa  # noqa: PLC0415

    pa.set_memory_pool(pa.system_memory_pool())
    memory_policy.limit_arenas()


def _lower_priority() -> None:
    try:
        os.nice(19)
    except OSError:
        pass
    try:
        # The idle IO class: ioprio_set(IOPRIO_WHO_PROCESS, 0, IOPRIO_CLASS_IDLE << 13).
        import ctypes  # noqa: PLC0415

        libc = ctypes.CDLL(None, use_errno=True)
        libc.syscall(251 if os.uname().machine == "x86_64" else 30, 1, 0, 3 << 13)
    except (OSError, AttributeError):
        pass


def main(argv: Sequence[str] | None = None) -> int:
    """Run the compaction process; returns the exit code (2 for bad flags)."""
    from monitor.cli import configure_logging  # noqa: PLC0415
    from monitor.compaction.cli import older_than  # noqa: PLC0415
    from monitor.manifest import iso_utc, write_json_atomically  # noqa: PLC0415
    from monitor.signals import SignalWatch  # noqa: PLC0415

    parser = argparse.ArgumentParser(prog="python -m monitor.compaction")
    parser.add_argument("--output-dir", required=True, type=Path)
    parser.add_argument("--older-than", type=older_than, default=plan.DEFAULT_OLDER_THAN_SECONDS)
    parser.add_argument("--interval", type=float, default=DEFAULT_INTERVAL_SECONDS)
    parser.add_argument("--parent-pid", type=int)
    parser.add_argument("--compression-level", type=int, default=3)
    parser.add_argument("--once", action="store_true")
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    configure_logging(args.log_level.upper())
    _lower_priority()
    use_memory_policy()
    from monitor.compaction.local import (  # noqa: PLC0415 - after the memory policy
        CompactionBusyError,
        CompactionSettings,
        compact_directory,
    )

    signals = SignalWatch()
    signals.install()
    settings = CompactionSettings(
        older_than_seconds=args.older_than,
        min_new_bytes=plan.MIN_FILE_BYTES,
        compression_level=args.compression_level,
    )
    counters = CompactorCounters()

    def stopping() -> bool:
        return bool(signals.count) or (
            args.parent_pid is not None and os.getppid() != args.parent_pid
        )

    log.info(
        "compaction started dir=%s older_than=%gs interval=%gs",
        args.output_dir,
        args.older_than,
        args.interval,
    )
    started = time.time()
    try:
        while not stopping():
            try:
                report = compact_directory(args.output_dir, settings, stop=stopping)
            except (CompactionBusyError, OSError) as exc:
                counters.failures += 1
                counters.last_error = str(exc)
                log.warning("compaction pass failed: %s", exc)
            else:
                counters.passes += 1
                counters.files_written += report.files_written
                counters.files_replaced += report.files_replaced
                counters.rows += report.rows
                counters.input_bytes += report.input_bytes
                counters.output_bytes += report.output_bytes
                counters.failures += len(report.failed)
                if report.failed:
                    counters.last_error = report.failed[-1][1]
                if report.files_written or report.failed:
                    log.info(
                        "compaction health %s",
                        " ".join(
                            f"{k}={v}" for k, v in asdict(counters).items() if k != "last_error"
                        ),
                    )
            try:
                write_json_atomically(
                    args.output_dir / STATUS_FILE,
                    {
                        "pid": os.getpid(),
                        "started_time": iso_utc(started),
                        "updated_time": iso_utc(time.time()),
                        "counters": asdict(counters),
                    },
                )
            except OSError as exc:
                log.debug("status not written: %s", exc)
            if args.once:
                break
            deadline = time.time() + args.interval
            while not stopping() and time.time() < deadline:
                signals.sleep_until(min(deadline, time.time() + 1.0))
    finally:
        signals.close()
    return 0
