"""One shipping pass: the published files of an output directory, uploaded and verified.

:class:`Uploader` lists what to ship (:func:`shippable_files`), skips what the store already
holds, uploads the rest, verifies each object (size and MD5) and, with ``delete``, removes each
verified data file if it is still the file that was hashed. A store failure ends the pass with
:class:`~common.objectstore.StoreError`; local file problems are logged once per file and the
pass goes on.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from common.contract import (
    COMPACTED_MARKER,
    COMPACTED_REPLACES_KEY,
    FILE_SUFFIX,
    PLACEHOLDER_MAGIC,
    SESSIONS_DIR,
)
from common.objectstore import ObjectStore, RemoteObject, StoreError, digest_of
from monitor.layout import PARTITION_PREFIX

log = logging.getLogger("finemon.upload")


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


def _is_placeholder(path: Path, st: os.stat_result) -> bool:
    """Whether ``path`` is a compaction's placeholder (a few bytes, never uploaded)."""
    if st.st_size > 4096:
        return False
    try:
        with open(path, "rb") as f:
            return f.read(len(PLACEHOLDER_MAGIC)) == PLACEHOLDER_MAGIC
    except OSError:
        return False


#: Registers uploaded objects in a table: the keys added, the keys they replaced (one commit).
#: Raises StoreError when it cannot (:mod:`monitor.shipping.catalog`).
Registrar = Callable[[Sequence[str], Sequence[str]], None]


@dataclass(slots=True)
class UploadCounters:
    """What the uploader did since it started (``pending_*``: at the end of the last pass)."""

    uploaded_files: int = 0
    uploaded_bytes: int = 0
    already_present: int = 0
    deleted_files: int = 0
    deleted_bytes: int = 0
    #: Objects deleted in the store because a compacted file that replaces them went up.
    replaced_objects_deleted: int = 0
    #: Data objects registered in the Iceberg table (``--upload-catalog-uri``), with those
    #: already there.
    registered_objects: int = 0
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
    #: With a registrar, each stored data object is registered at the end of the pass, and a
    #: file is deleted locally (``delete``) only once registered: a crash in between leaves it
    #: local, and the next uploader registers it (the table skips what it holds).
    registrar: Registrar | None = None
    counters: UploadCounters = field(default_factory=UploadCounters)
    #: Keys stored but not registered yet, with the keys each replaces; the files to delete
    #: once they are.
    _unregistered: dict[str, list[str]] = field(default_factory=dict)
    _delete_after_registration: list[LocalFile] = field(default_factory=list)
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
            self._register()
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
                if f.read(len(PLACEHOLDER_MAGIC)) == PLACEHOLDER_MAGIC:
                    return  # a compaction is replacing it: its compacted file goes up instead
                digest = digest_of(f)
                replaced = self._replaced_keys(local)
            except OSError as exc:
                self._local_failure(local, exc)
                return
            key = self.store.location.key(local.relative)
            listed = None if remote is None else remote.get(key)
            if listed is not None and self.store.matches(listed, digest):
                self.counters.already_present += 1
                log.debug("already present key=%s bytes=%d", key, digest.size)
                # Deleted by an earlier uploader that stopped before it was done.
                self._delete_replaced([k for k in replaced if remote and k in remote])
            else:
                started = time.monotonic()
                self._hold_replaced(replaced, remote)
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
                self._delete_replaced(replaced)
            self._verified[local.relative] = _Verified(digest.inode, digest.size, digest.mtime_ns)
            self._bad_files.discard(local.relative)
        if self.registrar is not None and local.is_data:
            self._unregistered[key] = replaced
            if self.delete:
                self._delete_after_registration.append(local)
            return
        if self.delete and local.is_data:
            self._delete(local)

    def _register(self) -> None:
        """Register the objects stored this pass (and any a failed registration left), then
        delete their local files (``delete``). Raises StoreError; what is left waits for the
        next pass."""
        if self.registrar is None or not self._unregistered:
            return
        replaced = {k for keys in self._unregistered.values() for k in keys}
        # An object replaced before it was registered (its compacted one came in the meantime)
        # is not added: only removed, should the table hold it.
        added = sorted(set(self._unregistered) - replaced)
        self.registrar(added, sorted(replaced))
        self.counters.registered_objects += len(added)
        self._unregistered.clear()
        to_delete, self._delete_after_registration = self._delete_after_registration, []
        for local in to_delete:
            self._delete(local)

    def _replaced_keys(self, local: LocalFile) -> list[str]:
        """The keys of the objects a compacted file replaces (from its footer; [] for any
        other file). Raises OSError when the footer cannot be read."""
        if not local.is_data or COMPACTED_MARKER not in local.path.name:
            return []
        import pyarrow as pa  # noqa: PLC0415 - only for compacted files
        import pyarrow.parquet as pq  # noqa: PLC0415

        try:
            metadata = pq.read_metadata(local.path).metadata or {}
            names = json.loads(metadata.get(COMPACTED_REPLACES_KEY.encode(), b"[]"))
        except (pa.ArrowException, ValueError) as exc:
            raise OSError(f"{local.path}: footer unreadable: {exc}") from exc
        folder = local.relative.rsplit("/", 1)[0]
        return [self.store.location.key(f"{folder}/{name}") for name in names]

    def _hold_replaced(self, keys: Sequence[str], remote: dict[str, RemoteObject] | None) -> None:
        """Before a compacted file goes up: overwrite each object it replaces with a
        placeholder, so that a reader listing the bucket meanwhile fails on it rather than count
        rows twice (the same swap as on disk: docs/compaction.md)."""
        for key in keys:
            present = key in remote if remote is not None else self.store.head(key) is not None
            if present:
                self.store.put_bytes(key, PLACEHOLDER_MAGIC + b"replaced by a compacted file\n")

    def _delete_replaced(self, keys: Sequence[str]) -> None:
        for key in keys:
            self.store.delete(key)
            self.counters.replaced_objects_deleted += 1
            log.debug("deleted replaced object key=%s", key)

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
            unregistered = self.store.location.key(local.relative) in self._unregistered
            verified = self._is_verified(local.relative, st) and not unregistered
            if not verified and not _is_placeholder(local.path, st):
                pending += 1
                pending_bytes += st.st_size
        self.counters.pending_files = pending
        self.counters.pending_bytes = pending_bytes
