"""Compacting a bucket in place: ``finemon compact s3://BUCKET/PREFIX [--older-than DURATION]``.

The bucket's layout is the output directory's (``PREFIX/dt=DAY/identifier=ID/*.parquet``, as
``finemon run --upload`` ships it), and so is the plan (:func:`~monitor.compaction.plan.
plan_groups` over each partition's objects, their age from the store's ``LastModified``). Each
group is downloaded to a temporary folder one object at a time, merged there by the same
streaming merge as on disk (:mod:`~monitor.compaction.merge`), and swapped in by the local swap's
steps (:mod:`~monitor.compaction.swap`), with objects for files. A store has no rename, so the
compacted object is stored under a hidden key first and copied (server-side) to its name:

1. ``.out.compacting``: the merged file, uploaded and verified (size and MD5).
2. ``.out.intent``: the names of ``out`` and of its inputs, with the compacted object's MD5.
3. Each input's key, in turn, overwritten by a *placeholder* (a few bytes that are not Parquet).
4. ``.out.compacting`` copied to ``out`` (published), verified.
5. ``.out.compacting`` deleted; each placeholder deleted.
6. The intent deleted.

A reader listing the prefix before step 3 sees the inputs, one after step 5 sees ``out``, and
any one in between meets a placeholder and fails (DuckDB, pyarrow: not a Parquet file; finemon's
commands: a compaction is swapping files in): it never counts a row twice or misses one.

Crashes: an intent means the compacted object was stored whole before any input was touched,
so the next run carries the swap on from where it stopped (placeholders over the inputs still
there, publish, clean up) before it plans anything. A hidden ``.compacting`` object without an
intent is an unfinished upload: deleted, its inputs untouched. Only placeholders are ever
deleted in place of an input.

Memory does not grow with the partition (downloads and multipart uploads stream, the merge
spills); the temporary folder holds a group's inputs, the merge's scratch and the compacted file
(about three times the group, at most 1 GiB of inputs). One compaction of a prefix at a time:
the store has no lock. A node whose uploader re-uploads local files the bucket no longer holds
(``finemon run --upload`` without ``--upload-delete``, after a restart) would bring the
replaced objects back: compact such a bucket through the nodes instead (docs/compaction.md).
"""

from __future__ import annotations

import json
import logging
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa

from common.contract import COMPACTION_SUFFIXES, FILE_SUFFIX, PARTITION_KEYS, PLACEHOLDER_MAGIC
from common.objectstore import ObjectStore, RemoteObject, StoreError, digest_of
from monitor.compaction import plan
from monitor.compaction.local import CompactionReport, CompactionSettings
from monitor.compaction.merge import MergeError, merge_files, merged_metadata, read_footer_metadata

log = logging.getLogger("finemon.compact")

_COMPACTING, _INTENT, _ = COMPACTION_SUFFIXES
#: Objects this small may be placeholders (a real data file's footer alone is larger).
_PLACEHOLDER_MAX_BYTES = 4096

#: For tests: called with the name of each step as it is reached (``written``, ``intent``,
#: ``placeholder`` after each input, ``published``, ``removed`` after each placeholder,
#: ``done``), as :data:`monitor.compaction.swap.step_hook`. None otherwise.
step_hook: Callable[[str], None] | None = None


def _step(name: str) -> None:
    if step_hook is not None:
        step_hook(name)


class _IntentError(Exception):
    """An intent whose compacted object is missing or differs: its swap cannot go on."""


def _hidden(folder: str, final: str, suffix: str) -> str:
    return f"{folder}/.{final}{suffix}"


def _partition_of(relative: str) -> str | None:
    """``dt=DAY/identifier=ID`` of a key relative to the prefix, None for any other key."""
    parts = relative.split("/")
    date_key, identifier_key = PARTITION_KEYS
    if (
        len(parts) == 3
        and parts[0].startswith(f"{date_key}=")
        and parts[1].startswith(f"{identifier_key}=")
    ):
        return f"{parts[0]}/{parts[1]}"
    return None


def _is_placeholder(store: ObjectStore, obj: RemoteObject | None) -> bool:
    if obj is None or obj.size > _PLACEHOLDER_MAX_BYTES:
        return False
    data = store.get_bytes(obj.key)
    return data is not None and data.startswith(PLACEHOLDER_MAGIC)


def compact_bucket(
    store: ObjectStore,
    settings: CompactionSettings | None = None,
    *,
    now_seconds: float | None = None,
    work_dir: Path | None = None,
    stop: Callable[[], bool] = lambda: False,
) -> CompactionReport:
    """Compact every partition under ``store``'s prefix (see the module), in a temporary folder
    under ``work_dir`` (default: the system's). ``stop`` is asked between groups. Raises
    StoreError when the store fails (what is left is finished by the next run), OSError when
    the temporary folder cannot be written."""
    settings = settings or CompactionSettings()
    started = time.monotonic()
    now = time.time() if now_seconds is None else now_seconds
    report = CompactionReport()
    folders = sorted(
        {
            folder
            for obj in store.list_objects()
            if (folder := _partition_of(store.location.relative(obj.key))) is not None
        }
    )
    for folder in folders:
        if stop():
            break
        report.partitions += 1
        compact_bucket_partition(store, folder, settings, report, now, work_dir, stop)
    report.seconds = time.monotonic() - started
    return report


def compact_bucket_partition(
    store: ObjectStore,
    folder: str,
    settings: CompactionSettings,
    report: CompactionReport,
    now_seconds: float,
    work_dir: Path | None = None,
    stop: Callable[[], bool] = lambda: False,
) -> None:
    """Finish interrupted swaps in the partition ``folder`` (``dt=DAY/identifier=ID``), then
    merge and swap every planned group (adding to ``report``)."""
    report.interrupted_finished += finish_interrupted(store, folder, report)
    candidates: list[plan.Candidate] = []
    objects: dict[str, RemoteObject] = {}
    for obj in store.list_objects(under=f"{folder}/"):
        name = obj.key.rsplit("/", 1)[-1]
        if name.startswith((".", "_")) or not name.endswith(FILE_SUFFIX):
            continue
        if obj.size <= _PLACEHOLDER_MAX_BYTES or obj.last_modified_seconds is None:
            continue  # a placeholder (or not data): being replaced, not compacted
        if now_seconds - obj.last_modified_seconds >= settings.older_than_seconds:
            objects[name] = obj
            candidates.append(plan.Candidate(Path(name), obj.size, obj.last_modified_seconds))
    groups = plan.plan_groups(
        sorted(candidates, key=lambda c: c.path.name),
        target_bytes=settings.target_bytes,
        min_bytes=settings.min_bytes,
        max_bytes=settings.max_bytes,
        min_new_bytes=settings.min_new_bytes,
        day_over=plan.partition_day_over(Path(folder), now_seconds),
    )
    for group in groups:
        if stop():
            return
        _compact_group(store, folder, [objects[c.path.name] for c in group], settings, report,
                       work_dir)  # fmt: skip


def _compact_group(
    store: ObjectStore,
    folder: str,
    inputs: Sequence[RemoteObject],
    settings: CompactionSettings,
    report: CompactionReport,
    work_dir: Path | None,
) -> None:
    started = time.monotonic()
    where = Path(store.location.url, folder)
    with tempfile.TemporaryDirectory(prefix="finemon-compact-", dir=work_dir) as temp:
        scratch = Path(temp)
        local: list[Path] = []
        footers: dict[str, dict[str, str]] = {}
        kept: list[RemoteObject] = []
        for obj in inputs:
            name = obj.key.rsplit("/", 1)[-1]
            path = scratch / name
            store.download(obj.key, path)
            try:
                footers[name] = read_footer_metadata(path)
            except (OSError, pa.ArrowException) as exc:
                reason = f"{name}: not compacted: {' '.join(str(exc).split())}"
                log.warning("compaction: %s/%s", where, reason)
                report.failed.append((where, reason))
                path.unlink()
                continue
            local.append(path)
            kept.append(obj)
        if len(local) < 2:
            return
        final = plan.compacted_name(local)
        output = scratch / final
        try:
            result = merge_files(
                local,
                output,
                metadata=merged_metadata([(p.name, footers[p.name]) for p in local]),
                compression_level=settings.compression_level,
                scratch=scratch / ".scratch",
            )
        except (MergeError, OSError, pa.ArrowException) as exc:
            reason = " ".join(str(exc).split())
            log.warning("compaction: %s skipped: %s", where, reason)
            report.failed.append((where, reason))
            return
        for path in local:
            path.unlink()  # the disk back before the upload
        publish(store, folder, final, output, kept)
    report.files_written += 1
    report.files_replaced += len(kept)
    report.rows += result.rows
    report.input_bytes += result.input_bytes
    report.output_bytes += result.output_bytes
    log.info(
        "compacted object=%s objects=%d rows=%d row_groups=%d input_bytes=%d output_bytes=%d "
        "seconds=%.1f",
        store.location.key(f"{folder}/{final}"),
        len(kept),
        result.rows,
        result.row_groups,
        result.input_bytes,
        result.output_bytes,
        time.monotonic() - started,
    )


def publish(
    store: ObjectStore, folder: str, final: str, output: Path, inputs: Sequence[RemoteObject]
) -> None:
    """Steps 1-6 (see the module): the local compacted file ``output`` published as
    ``folder/final`` in place of ``inputs``. Raises StoreError; what is left is finished by
    :func:`finish_interrupted`."""
    hidden = store.location.key(_hidden(folder, final, _COMPACTING))
    with open(output, "rb") as f:
        digest = digest_of(f)
        store.put(f, hidden, digest)
    if not store.verify(hidden, digest):
        raise StoreError(f"{hidden}: the stored object differs from the file after PUT")
    _step("written")
    intent = {
        "output": final,
        "md5": digest.md5_hex,
        "size": digest.size,
        "inputs": [obj.key.rsplit("/", 1)[-1] for obj in inputs],
    }
    store.put_bytes(
        store.location.key(_hidden(folder, final, _INTENT)), json.dumps(intent).encode()
    )
    _step("intent")
    _carry_on(store, folder, intent)


def _carry_on(store: ObjectStore, folder: str, intent: dict[str, Any]) -> None:
    """Steps 3-6 from wherever they stopped. Raises :class:`_IntentError` when neither the
    compacted object nor its hidden copy holds the intent's bytes, StoreError."""
    final = str(intent["output"])
    final_key = store.location.key(f"{folder}/{final}")
    hidden_key = store.location.key(_hidden(folder, final, _COMPACTING))
    inputs = [store.location.key(f"{folder}/{name}") for name in intent["inputs"]]
    published = store.head(final_key)
    if published is None or published.md5 != intent["md5"]:
        staged = store.head(hidden_key)
        if staged is None or staged.md5 != intent["md5"] or staged.size != intent["size"]:
            raise _IntentError(f"{hidden_key}: missing or not the intent's object")
        for key in inputs:
            current = store.head(key)
            if current is not None and not _is_placeholder(store, current):
                store.put_bytes(key, PLACEHOLDER_MAGIC + f"replaced by {final}\n".encode())
            _step("placeholder")
        store.copy(hidden_key, final_key)
        copied = store.head(final_key)
        if copied is None or copied.md5 != intent["md5"] or copied.size != intent["size"]:
            raise StoreError(f"{final_key}: the copy differs from {hidden_key}")
    _step("published")
    store.delete(hidden_key)
    for key in inputs:
        if _is_placeholder(store, store.head(key)):
            store.delete(key)
        _step("removed")
    store.delete(store.location.key(_hidden(folder, final, _INTENT)))
    _step("done")


def finish_interrupted(store: ObjectStore, folder: str, report: CompactionReport) -> int:
    """Finish or undo what a killed compaction left in the partition ``folder`` (see the
    module); returns how many swaps it finished. Raises StoreError."""
    finished = 0
    hidden = [
        obj.key
        for obj in store.list_objects(under=f"{folder}/.")
        if obj.key.rsplit("/", 1)[-1].startswith(".")
    ]
    intents = sorted(key for key in hidden if key.endswith(_INTENT))
    for key in intents:
        name = key.rsplit("/", 1)[-1]
        final = name[1 : -len(_INTENT)]
        data = store.get_bytes(key)
        try:
            intent = json.loads(data or b"")
            if intent["output"] != final or not isinstance(intent["inputs"], list):
                raise ValueError("not this swap's intent")
        except (ValueError, KeyError, TypeError) as exc:
            # A PUT is whole or absent: an unreadable intent is not ours. Nothing was replaced
            # on its account, so it goes, with its hidden object.
            log.warning("compaction: unreadable intent %s removed (%s)", key, exc)
            store.delete(store.location.key(_hidden(folder, final, _COMPACTING)))
            store.delete(key)
            continue
        log.info("compaction: finishing the interrupted swap into %s/%s", folder, final)
        try:
            _carry_on(store, folder, intent)
        except _IntentError as exc:
            reason = f"{final}: interrupted swap cannot go on: {exc}; left for a person to look at"
            log.error("compaction: %s", reason)
            report.failed.append((Path(store.location.url, folder), reason))
            continue
        finished += 1
    intended = {key[: -len(_INTENT)] for key in intents}
    for key in hidden:
        if key.endswith(_COMPACTING) and key[: -len(_COMPACTING)] not in intended:
            log.info("compaction: unfinished upload %s removed (its inputs are untouched)", key)
            store.delete(key)
    return finished
