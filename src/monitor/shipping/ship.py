"""The uploader: ``python -m monitor.shipping.ship`` ships finished files to object storage.

``finemon run --upload s3://bucket/prefix`` starts it as a child process
(:mod:`monitor.shipping.supervisor`); it can also be run on its own, e.g. once (``--once``) over
the output directory of a finemon that has stopped. It works from the output directory, the
source of truth:

- Every pass (each ``--interval`` seconds) lists the published data files
  (``dt=*/identifier=*/finemon-*.parquet``; never the hidden ``.partial`` and ``.journal`` files of
  the file being written) and the run manifests (``_sessions/<run_id>.json``), oldest first, and
  uploads each to the same relative key under the prefix: ``prefix/dt=.../identifier=.../x.parquet``
  and ``prefix/_sessions/<run_id>.json``. Files left by earlier runs and files that ``finemon run``
  recovered after a SIGKILL are published files like any other, so they go up too. A manifest is
  uploaded again whenever the daemon rewrote it (at each rotation and at the end of the run); the
  current run's ``_session.json`` is not uploaded (every node has one of that name).
- Keys are deterministic, and an object already in the store with the same size and MD5 is not
  uploaded again, so restarts never duplicate anything. The uploader asks the store what it holds
  (one LIST per local partition) when it starts and after every failure, so a store that lost
  objects gets them again; in between it remembers what it verified.
- Each upload is verified (see :mod:`common.objectstore`: Content-MD5 on every PUT, then a HEAD
  that checks size and MD5) before, with ``--delete``, the local file is removed; the file is
  removed only if it is still the very file that was hashed (same inode, size and mtime). Only
  data files are deleted; the small run manifests stay.
- When the store fails, files stay local and the pass is retried with exponential backoff and
  jitter (1 s doubling up to 60 s); the log gets one line when a failure streak starts and one
  when it ends, never a line per try.
- SIGTERM/SIGINT: one last pass, bounded by ``--final-seconds``, then exit 0 (what is left stays
  local for the next start). A second signal stops at once. The uploader also makes its last pass
  and exits when its parent (``--parent-pid``) is gone.

Counters (uploaded files and bytes, objects found already present, deleted files and bytes,
failures, pending files and bytes, the last error) are logged in a health line every minute and
kept in ``<output-dir>/_upload.json`` (a status file: its leading ``_`` makes dataset readers skip
it, and the size limit does not count it).
"""

from __future__ import annotations

import argparse
import logging
import os
import random
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

from common.contract import FILE_SUFFIX, SESSIONS_DIR
from common.objectstore import (
    DEFAULT_PART_SIZE_BYTES,
    MIN_PART_SIZE_BYTES,
    ObjectStore,
    RemoteObject,
    S3Location,
    StoreError,
    StoreSettings,
    digest_of,
    parse_s3_url,
)
from monitor.layout import PARTITION_PREFIX
from monitor.manifest import iso_utc, write_json_atomically
from monitor.selfstats import SelfUsage
from monitor.signals import SignalWatch

log = logging.getLogger("finemon.upload")

#: The uploader's status file at the output root.
STATUS_FILE = "_upload.json"
#: Seconds between passes by default.
DEFAULT_INTERVAL_SECONDS = 10.0
#: Time for the last pass at shutdown by default.
DEFAULT_FINAL_SECONDS = 10.0
#: Backoff after a failure: first delay, cap.
BACKOFF_BASE_SECONDS = 1.0
BACKOFF_MAX_SECONDS = 60.0
#: Seconds between health lines.
HEALTH_SECONDS = 60.0


# ---------------------------------------------------------------------- configuration
@dataclass(frozen=True, slots=True)
class UploadConfig:
    """``finemon run``'s upload settings (the ``--upload*`` flags)."""

    url: str
    endpoint_url: str | None = None
    region: str | None = None
    delete: bool = False
    interval_seconds: float = DEFAULT_INTERVAL_SECONDS
    final_seconds: float = DEFAULT_FINAL_SECONDS

    @property
    def location(self) -> S3Location:
        """The bucket and prefix of :attr:`url`."""
        return parse_s3_url(self.url)


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be greater than 0 seconds, got {text!r}")
    return value


def add_upload_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``finemon run``'s ``--upload*`` flags to ``parser``."""
    group = parser.add_argument_group("upload to object storage (needs the s3 extra)")
    group.add_argument(
        "--upload",
        metavar="URL",
        help="ship every published Parquet file and run manifest to s3://BUCKET/PREFIX, under "
        "the same layout (PREFIX/dt=.../identifier=.../FILE.parquet, PREFIX/_sessions/RUN_ID"
        ".json), from a separate uploader process; credentials from the standard AWS chain "
        "(env, shared files, web identity/IRSA, instance metadata) (default: off)",
    )
    group.add_argument(
        "--upload-endpoint",
        metavar="URL",
        help="endpoint of an S3-compatible store, e.g. http://minio:9000 (path-style "
        "addressing) (default: AWS S3)",
    )
    group.add_argument(
        "--upload-region",
        metavar="REGION",
        help="the bucket's region (default: the AWS chain's, e.g. $AWS_REGION)",
    )
    group.add_argument(
        "--upload-delete",
        action="store_true",
        help="delete each data file locally once the store holds it, verified (size and MD5); "
        "this frees space under --size-limit, and recording resumes when it does",
    )
    group.add_argument(
        "--upload-interval",
        type=_seconds,
        default=DEFAULT_INTERVAL_SECONDS,
        metavar="S",
        help="look for new files every S seconds (default: %(default)g)",
    )
    group.add_argument(
        "--upload-final-seconds",
        type=_seconds,
        default=DEFAULT_FINAL_SECONDS,
        metavar="S",
        help="at shutdown, time for a last pass after the last file is published; what is "
        "left is uploaded at the next start (default: %(default)g)",
    )


def upload_config(args: argparse.Namespace) -> UploadConfig | None:
    """The :class:`UploadConfig` of parsed flags, None without ``--upload``. Raises ValueError
    (one line) for a bad URL or an ``--upload-*`` flag without ``--upload``."""
    if args.upload is None:
        others = [
            flag
            for flag, value in (
                ("--upload-endpoint", args.upload_endpoint),
                ("--upload-region", args.upload_region),
                ("--upload-delete", args.upload_delete),
            )
            if value
        ]
        if others:
            raise ValueError(f"{', '.join(others)} needs --upload s3://BUCKET/PREFIX")
        return None
    parse_s3_url(args.upload)  # raises ValueError
    endpoint = args.upload_endpoint
    if endpoint is not None and not endpoint.startswith(("http://", "https://")):
        raise ValueError(f"--upload-endpoint {endpoint}: expected http://HOST[:PORT] or https://")
    return UploadConfig(
        url=args.upload.strip(),
        endpoint_url=endpoint,
        region=args.upload_region,
        delete=bool(args.upload_delete),
        interval_seconds=float(args.upload_interval),
        final_seconds=float(args.upload_final_seconds),
    )


def uploader_command(config: UploadConfig, output_dir: Path, parent_pid: int) -> list[str]:
    """The command line of the uploader process for ``finemon run``'s settings."""
    command = [
        sys.executable,
        "-m",
        "monitor.shipping.ship",
        "--output-dir",
        str(output_dir),
        "--to",
        config.url,
        "--interval",
        repr(config.interval_seconds),
        "--final-seconds",
        repr(config.final_seconds),
        "--parent-pid",
        str(parent_pid),
    ]
    if config.endpoint_url:
        command += ["--endpoint", config.endpoint_url]
    if config.region:
        command += ["--region", config.region]
    if config.delete:
        command.append("--delete")
    return command


# ---------------------------------------------------------------------- what to ship
@dataclass(frozen=True, slots=True)
class LocalFile:
    """A file to ship: its path and its key relative to the prefix."""

    path: Path
    relative: str
    is_data: bool


def shippable_files(output_dir: Path) -> list[LocalFile]:
    """Published data files (oldest partition and name first), then the run manifests.

    Hidden (``.``) and ``_`` names are skipped at every level except ``_sessions`` itself: the
    file being written, journals, set-aside journals, temporary manifests, status files.
    """
    data: list[LocalFile] = []
    manifests: list[LocalFile] = []
    try:
        entries = sorted(os.scandir(output_dir), key=lambda e: e.name)
    except OSError:
        return []
    for entry in entries:
        if not entry.is_dir(follow_symlinks=False):
            continue
        if entry.name.startswith(PARTITION_PREFIX):
            for dirpath, dirnames, filenames in os.walk(entry.path):
                dirnames[:] = sorted(d for d in dirnames if not d.startswith((".", "_")))
                for name in sorted(filenames):
                    if name.endswith(FILE_SUFFIX) and not name.startswith((".", "_")):
                        path = Path(dirpath, name)
                        relative = path.relative_to(output_dir).as_posix()
                        data.append(LocalFile(path, relative, is_data=True))
        elif entry.name == SESSIONS_DIR:
            for name in sorted(os.listdir(entry.path)):
                if name.endswith(".json") and not name.startswith((".", "_")):
                    path = Path(entry.path, name)
                    manifests.append(LocalFile(path, f"{SESSIONS_DIR}/{name}", is_data=False))
    return data + manifests


# ---------------------------------------------------------------------- shipping
@dataclass(slots=True)
class UploadCounters:
    """What the uploader did since it started (``pending_*``: at the end of the last pass)."""

    uploaded_files: int = 0
    uploaded_bytes: int = 0
    already_present: int = 0
    deleted_files: int = 0
    deleted_bytes: int = 0
    failures: int = 0
    pending_files: int = 0
    pending_bytes: int = 0


@dataclass(frozen=True, slots=True)
class _Verified:
    inode: int
    size: int
    mtime_ns: int


@dataclass(slots=True)
class Uploader:
    """Ships the files of ``output_dir`` to ``store``; :meth:`run_pass` does one pass."""

    output_dir: Path
    store: ObjectStore
    delete: bool = False
    counters: UploadCounters = field(default_factory=UploadCounters)
    #: Relative paths the store was seen to hold, with the local file's identity then.
    _verified: dict[str, _Verified] = field(default_factory=dict)
    #: Whether the next pass first asks the store what it holds.
    _reconcile: bool = True
    _bad_files: set[str] = field(default_factory=set)

    def run_pass(self, deadline: float | None = None) -> bool:
        """Ship every file not yet verified; True when nothing is left pending. ``deadline``
        (``time.monotonic()``) stops the pass early. Raises StoreError at the first store
        failure (what is not uploaded stays pending; the next pass asks the store again)."""
        files = shippable_files(self.output_dir)
        try:
            remote = self._listing(files) if self._reconcile else None
            self._reconcile = False
            for local in files:
                if deadline is not None and time.monotonic() > deadline:
                    break
                self._ship(local, remote)
        except StoreError:
            self._reconcile = True
            raise
        finally:
            self._count_pending(files)
        return self.counters.pending_files == 0

    def _listing(self, files: Sequence[LocalFile]) -> dict[str, RemoteObject]:
        """What the store holds under each folder that has local files (one LIST each)."""
        folders = sorted({local.relative.rsplit("/", 1)[0] for local in files})
        return {
            obj.key: obj
            for folder in folders
            for obj in self.store.list_objects(under=f"{folder}/")
        }

    def _is_verified(self, relative: str, st: os.stat_result) -> bool:
        known = self._verified.get(relative)
        return known is not None and known == _Verified(st.st_ino, st.st_size, st.st_mtime_ns)

    def _ship(self, local: LocalFile, remote: dict[str, RemoteObject] | None) -> None:
        try:
            if self._is_verified(local.relative, os.stat(local.path, follow_symlinks=False)):
                return  # the common case: a stat, no open
            f = open(local.path, "rb")  # noqa: SIM115 - closed below
        except FileNotFoundError:
            return  # deleted or replaced since the listing: the next pass sees it
        except OSError as exc:
            self._local_failure(local, exc)
            return
        with f:
            if self._is_verified(local.relative, os.fstat(f.fileno())):
                return
            try:
                digest = digest_of(f)
            except OSError as exc:
                self._local_failure(local, exc)
                return
            key = self.store.location.key(local.relative)
            listed = None if remote is None else remote.get(key)
            if listed is not None and self.store.matches(listed, digest):
                self.counters.already_present += 1
                log.debug("already present key=%s bytes=%d", key, digest.size)
            else:
                started = time.monotonic()
                self.store.put(f, key, digest)
                if not self.store.verify(key, digest):
                    raise StoreError(f"{key}: the stored object differs from the file after PUT")
                self.counters.uploaded_files += 1
                self.counters.uploaded_bytes += digest.size
                log.info(
                    "uploaded key=%s bytes=%d seconds=%.2f",
                    key,
                    digest.size,
                    time.monotonic() - started,
                )
            self._verified[local.relative] = _Verified(digest.inode, digest.size, digest.mtime_ns)
            self._bad_files.discard(local.relative)
        if self.delete and local.is_data:
            self._delete(local)

    def _delete(self, local: LocalFile) -> None:
        """Remove ``local`` if it is still the file that was verified."""
        try:
            st = os.stat(local.path, follow_symlinks=False)
        except FileNotFoundError:
            self._verified.pop(local.relative, None)
            return
        if not self._is_verified(local.relative, st):
            return  # replaced since: the next pass uploads the new one first
        try:
            local.path.unlink()
        except OSError as exc:
            self._local_failure(local, exc)
            return
        self._verified.pop(local.relative, None)
        self.counters.deleted_files += 1
        self.counters.deleted_bytes += st.st_size
        log.debug("deleted local file=%s bytes=%d", local.path, st.st_size)

    def _local_failure(self, local: LocalFile, exc: OSError) -> None:
        # Once per file: the others go on (this is not the store's fault).
        if local.relative not in self._bad_files:
            self._bad_files.add(local.relative)
            log.warning("cannot read or delete %s: %s", local.path, exc)

    def _count_pending(self, files: Sequence[LocalFile]) -> None:
        pending = pending_bytes = 0
        for local in files:
            try:
                st = os.stat(local.path, follow_symlinks=False)
            except OSError:
                continue
            if not self._is_verified(local.relative, st):
                pending += 1
                pending_bytes += st.st_size
        self.counters.pending_files = pending
        self.counters.pending_bytes = pending_bytes


# ---------------------------------------------------------------------- the process
class Backoff:
    """Exponential backoff with full jitter: the n-th delay is uniform in [d/2, d] where
    ``d = min(cap, base * 2**n)``, so many nodes that lost the store together do not come back
    in step."""

    def __init__(
        self,
        base_seconds: float = BACKOFF_BASE_SECONDS,
        cap_seconds: float = BACKOFF_MAX_SECONDS,
        rng: random.Random | None = None,
    ) -> None:
        self.base_seconds = base_seconds
        self.cap_seconds = cap_seconds
        self.failures = 0
        self._rng = rng or random.Random()

    def next_delay(self) -> float:
        """The delay after one more failure."""
        ceiling = min(self.cap_seconds, self.base_seconds * 2.0 ** min(self.failures, 30))
        self.failures += 1
        return self._rng.uniform(ceiling / 2.0, ceiling)

    def reset(self) -> None:
        """After a success."""
        self.failures = 0


class _HardStop(BaseException):
    """A second stop signal: leave at once, even from inside a request."""


class _UploaderSignals(SignalWatch):
    def _handle(self, signum: int, frame: FrameType | None) -> None:
        super()._handle(signum, frame)
        if self.count >= 2:
            raise _HardStop


@dataclass(frozen=True, slots=True)
class UploaderSettings:
    """The uploader process's flags."""

    output_dir: Path
    interval_seconds: float = DEFAULT_INTERVAL_SECONDS
    final_seconds: float = DEFAULT_FINAL_SECONDS
    parent_pid: int | None = None
    once: bool = False


class UploaderLoop:
    """Passes every ``interval_seconds`` with backoff after failures, a last pass at the end."""

    def __init__(
        self,
        uploader: Uploader,
        settings: UploaderSettings,
        signals: SignalWatch,
        *,
        backoff: Backoff | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.uploader = uploader
        self.settings = settings
        self.signals = signals
        self.backoff = backoff or Backoff()
        self._clock = clock
        self._usage = SelfUsage()
        self._started = clock()
        self._failing_since: float | None = None
        self._last_error: str | None = None
        self._status_written: dict[str, Any] | None = None
        self._next_health = 0.0

    def _stopping(self) -> bool:
        if self.signals.count:
            return True
        parent = self.settings.parent_pid
        return parent is not None and os.getppid() != parent

    def run(self) -> int:
        """Run until stopped; returns the exit code (0, or 1 if ``--once`` left files)."""
        deadline: float | None = None
        while True:
            final = self.settings.once or self._stopping()
            if final and deadline is None:
                deadline = time.monotonic() + self.settings.final_seconds
                if not self.settings.once:
                    log.info("last pass (up to %gs)", self.settings.final_seconds)
            try:
                done = self.uploader.run_pass(deadline)
            except StoreError as exc:
                self._failed(exc)
                delay = self.backoff.next_delay()
                if final:
                    assert deadline is not None
                    delay = min(delay, deadline - time.monotonic())
                    if delay <= 0:
                        break
                    time.sleep(delay)  # no second pass to wait for: only the deadline counts
                    continue
                self._write_status()
                self.signals.sleep_until(self._clock() + delay)
                continue
            self._succeeded()
            self._write_status()
            if final:
                if not done:
                    log.info("last pass stopped at its deadline")
                break
            self.signals.sleep_until(self._clock() + self.settings.interval_seconds)
            self._maybe_health()
        self._write_status()
        counters = self.uploader.counters
        if counters.pending_files:
            log.warning(
                "stopping with files_left=%d bytes_left=%d in %s: uploaded at the next start",
                counters.pending_files,
                counters.pending_bytes,
                self.settings.output_dir,
            )
        self._log_health()
        return 1 if self.settings.once and counters.pending_files else 0

    def _failed(self, exc: StoreError) -> None:
        self.uploader.counters.failures += 1
        self._last_error = str(exc)
        if self._failing_since is None:
            self._failing_since = self._clock()
            log.warning(
                "upload failing, files stay local and are retried with backoff (up to %gs): %s",
                self.backoff.cap_seconds,
                exc,
            )

    def _succeeded(self) -> None:
        if self._failing_since is not None:
            log.info(
                "upload recovered after %d failed tries over %.0fs",
                self.backoff.failures,
                self._clock() - self._failing_since,
            )
            self._failing_since = None
        self.backoff.reset()

    def _maybe_health(self) -> None:
        now = self._clock()
        if now >= self._next_health:
            if self._next_health:
                self._log_health()
            self._next_health = now + HEALTH_SECONDS

    def _log_health(self) -> None:
        c = self.uploader.counters
        log.info(
            "upload health uploaded_files=%d uploaded_bytes=%d already_present=%d "
            "deleted_files=%d deleted_bytes=%d failures=%d pending_files=%d pending_bytes=%d "
            "rss_bytes=%d",
            c.uploaded_files,
            c.uploaded_bytes,
            c.already_present,
            c.deleted_files,
            c.deleted_bytes,
            c.failures,
            c.pending_files,
            c.pending_bytes,
            self._usage.rss_bytes(),
        )

    def _write_status(self) -> None:
        status: dict[str, Any] = {
            "target": self.uploader.store.location.url,
            "pid": os.getpid(),
            "started_time": iso_utc(self._started),
            "counters": asdict(self.uploader.counters),
            "failing_since": None if self._failing_since is None else iso_utc(self._failing_since),
            "last_error": self._last_error,
        }
        if status == self._status_written:
            return  # unchanged: no write every interval
        try:
            write_json_atomically(
                self.settings.output_dir / STATUS_FILE,
                {**status, "updated_time": iso_utc(self._clock())},
            )
        except OSError as exc:
            log.debug("status not written: %s", exc)
            return
        self._status_written = status


def _configure_logging(level: str) -> None:
    """The same format as ``finemon run``'s log (``monitor.cli.configure_logging``), without
    importing the command's modules into this process."""
    formatter = logging.Formatter(
        "%(asctime)s.%(msecs)03dZ %(levelname)s %(name)s %(message)s", "%Y-%m-%dT%H:%M:%S"
    )
    formatter.converter = time.gmtime
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # The SDK's request-by-request lines are not finemon's (and would print signatures).
    for noisy in ("botocore", "boto3", "urllib3", "s3transfer"):
        logging.getLogger(noisy).setLevel(max(logging.INFO, root.level))


def build_parser() -> argparse.ArgumentParser:
    """Flags of ``python -m monitor.shipping.ship``."""
    parser = argparse.ArgumentParser(
        prog="python -m monitor.shipping.ship",
        description="Upload finemon's published Parquet files and run manifests from an output "
        "directory to s3://BUCKET/PREFIX under the same layout, verified; see finemon run "
        "--upload (which starts this process itself).",
    )
    parser.add_argument("--output-dir", required=True, metavar="DIR")
    parser.add_argument("--to", required=True, metavar="URL", help="s3://BUCKET[/PREFIX]")
    parser.add_argument("--endpoint", metavar="URL", help="an S3-compatible store's endpoint")
    parser.add_argument("--region", metavar="REGION")
    parser.add_argument("--delete", action="store_true", help="delete verified data files")
    parser.add_argument("--interval", type=_seconds, default=DEFAULT_INTERVAL_SECONDS)
    parser.add_argument("--final-seconds", type=_seconds, default=DEFAULT_FINAL_SECONDS)
    parser.add_argument(
        "--part-size",
        type=int,
        default=DEFAULT_PART_SIZE_BYTES,
        metavar="BYTES",
        help=f"files above this go up in parts of this size (at least {MIN_PART_SIZE_BYTES})",
    )
    parser.add_argument(
        "--parent-pid", type=int, metavar="PID", help="make a last pass and exit when it is gone"
    )
    parser.add_argument(
        "--once",
        action="store_true",
        help="one pass (with retries up to "
        "--final-seconds), then exit: 0 if nothing is left, else 1",
    )
    parser.add_argument("--log-level", default="INFO", metavar="LEVEL")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the uploader; returns the exit code (2 for bad flags, 1 when it cannot start)."""
    args = build_parser().parse_args(argv)
    _configure_logging(args.log_level.upper())
    signals = _UploaderSignals()
    signals.install()
    try:
        try:
            location = parse_s3_url(args.to)
            store = ObjectStore(
                location,
                StoreSettings(endpoint_url=args.endpoint, region=args.region),
                part_size_bytes=args.part_size,
            )
        except (ValueError, StoreError) as exc:
            print(f"finemon upload: error: {exc}", file=sys.stderr)
            return 1
        store.on_part = lambda number, count: log.debug("part %d/%d uploaded", number, count)
        settings = UploaderSettings(
            output_dir=Path(args.output_dir),
            interval_seconds=args.interval,
            final_seconds=args.final_seconds,
            parent_pid=args.parent_pid,
            once=args.once,
        )
        log.info(
            "uploader started to=%s dir=%s delete=%s interval=%gs",
            location.url,
            settings.output_dir,
            args.delete,
            settings.interval_seconds,
        )
        uploader = Uploader(settings.output_dir, store, delete=args.delete)
        return UploaderLoop(uploader, settings, signals).run()
    except _HardStop:
        log.warning("second signal: stopping at once (what is left is uploaded at next start)")
        return 1
    finally:
        signals.close()


if __name__ == "__main__":
    raise SystemExit(main())
