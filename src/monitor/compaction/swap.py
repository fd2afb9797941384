"""The swap: a compacted file takes the place of the files it replaces, with no reader ever
counting a row twice or missing one, and a crash at any point left for the next run to finish.

A reader lists the partition, then opens what it listed. Renames change one name at a time, so
no order of renames alone keeps every listing right: at some instant a listing would hold the
inputs and the compacted file (rows twice), or neither (rows missing). The swap therefore makes
every listing in between hold a file that fails to read: each input's name first gets a
*placeholder* (a few bytes that are not Parquet, :data:`common.contract.PLACEHOLDER_MAGIC`),
atomically, by rename over it. Step by step (``out`` the compacted file, hidden until step 4):

1. ``.out.compacting``: the merged rows, written and fsynced (:mod:`~monitor.compaction.merge`).
2. ``.out.intent``: the names of ``out`` and of its inputs, fsynced.
3. Each input, in turn, replaced by a placeholder (written as ``.in.replacing``, renamed over
   ``in``); then the folder is fsynced.
4. ``.out.compacting`` renamed to ``out`` (published); the folder fsynced.
5. Each placeholder deleted.
6. The intent deleted.

A listing before step 3 sees the inputs (right); one after step 5 sees ``out`` (right); any one
in between sees a placeholder, and the reader fails on it (DuckDB and pyarrow: not a Parquet
file; ``finemon`` commands: a one-line error saying a compaction is under way). A reader that
listed earlier and opens an input later finds a placeholder or nothing: an error too. A retry
once the swap is over gives the right count.

Crashes (:func:`finish_interrupted`, run on a partition before anything else): an intent means
step 1 was complete, so the swap is carried on from where it stopped (placeholders over the
inputs still there, publish, clean up). Without an intent nothing was replaced: the hidden
compacted file and scratch folder are deleted. Only placeholders are ever deleted in place of
an input, and a placeholder exists only while the intent's compacted file holds its rows.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path

from capture.files import fsync_dir
from common.contract import COMPACTION_SCRATCH_SUFFIX, COMPACTION_SUFFIXES, PLACEHOLDER_MAGIC

log = logging.getLogger("finemon.compact")

_COMPACTING, _INTENT, _REPLACING = COMPACTION_SUFFIXES
#: Suffix of a merge's scratch folder (spilled rows), beside the file it builds.
SCRATCH_SUFFIX = COMPACTION_SCRATCH_SUFFIX

#: For tests: called with the name of each step as it is reached (``written``, ``intent``,
#: ``placeholder`` after each input, ``published``, ``removed`` after each placeholder,
#: ``done``), so a test can kill the process at an exact point. None otherwise.
step_hook: Callable[[str], None] | None = None


def _step(name: str) -> None:
    if step_hook is not None:
        step_hook(name)


def compacting_path(final: Path) -> Path:
    """The hidden name of ``final`` until it is published: ``.<name>.compacting``."""
    return final.with_name(f".{final.name}{_COMPACTING}")


def intent_path(final: Path) -> Path:
    """The intent of the swap that publishes ``final``: ``.<name>.intent``."""
    return final.with_name(f".{final.name}{_INTENT}")


def scratch_path(final: Path) -> Path:
    """The merge's scratch folder for ``final``: ``.<name>.scratch``."""
    return final.with_name(f".{final.name}{SCRATCH_SUFFIX}")


def _replacing_path(path: Path) -> Path:
    return path.with_name(f".{path.name}{_REPLACING}")


def is_placeholder(path: Path) -> bool:
    """Whether ``path`` holds a placeholder (False for a file that is gone or unreadable)."""
    try:
        with open(path, "rb") as f:
            return f.read(len(PLACEHOLDER_MAGIC)) == PLACEHOLDER_MAGIC
    except OSError:
        return False


def _write_synced(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


def _place_placeholder(path: Path, final: Path) -> None:
    temp = _replacing_path(path)
    _write_synced(temp, PLACEHOLDER_MAGIC + f"replaced by {final.name}\n".encode())
    os.replace(temp, path)


def _remove_placeholder(path: Path) -> bool:
    if not is_placeholder(path):
        return False
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    return True


def swap(final: Path, inputs: Sequence[Path]) -> None:
    """Steps 2-6 (see the module): publish ``compacting_path(final)`` as ``final`` in place of
    ``inputs`` (all in ``final``'s folder). Raises OSError; what is left is finished by
    :func:`finish_interrupted`."""
    _step("written")
    folder = final.parent
    intent = {"output": final.name, "inputs": [p.name for p in inputs]}
    _write_synced(intent_path(final), json.dumps(intent).encode())
    fsync_dir(folder)
    _step("intent")
    _carry_on(final, inputs)


def _carry_on(final: Path, inputs: Sequence[Path]) -> None:
    """Steps 3-6 from wherever they stopped; ``compacting_path(final)`` or ``final`` exists."""
    folder = final.parent
    hidden = compacting_path(final)
    if hidden.exists():
        for path in inputs:
            if path.exists() and not is_placeholder(path):
                _place_placeholder(path, final)
            _step("placeholder")
        fsync_dir(folder)
        os.replace(hidden, final)
        fsync_dir(folder)
    _step("published")
    for path in inputs:
        _remove_placeholder(path)
        _step("removed")
    fsync_dir(folder)
    intent_path(final).unlink(missing_ok=True)
    _step("done")


def finish_interrupted(partition: Path) -> int:
    """Finish or undo what a killed compaction left in ``partition`` (see the module); returns
    how many swaps it finished. Raises OSError."""
    finished = 0
    for intent in sorted(partition.glob(f".*{_INTENT}")):
        final = partition / intent.name[1 : -len(_INTENT)]
        try:
            document = json.loads(intent.read_bytes())
            inputs = [partition / str(name) for name in document["inputs"]]
            if document["output"] != final.name:
                raise ValueError("output does not match the intent's name")
        except (ValueError, KeyError, TypeError) as exc:
            # Cut short while written, before any placeholder: nothing was replaced.
            log.warning("compaction: incomplete intent %s removed (%s)", intent, exc)
            compacting_path(final).unlink(missing_ok=True)
            intent.unlink()
            continue
        log.info("compaction: finishing the interrupted swap into %s", final)
        _carry_on(final, inputs)
        finished += 1
    for hidden in partition.glob(f".*{_COMPACTING}"):
        if not intent_path(hidden.with_name(hidden.name[1 : -len(_COMPACTING)])).exists():
            log.info("compaction: unfinished merge %s removed (its inputs are untouched)", hidden)
            hidden.unlink(missing_ok=True)
    for temp in partition.glob(f".*{_REPLACING}"):
        temp.unlink(missing_ok=True)
    for scratch in partition.glob(f".*{SCRATCH_SUFFIX}"):
        shutil.rmtree(scratch, ignore_errors=True)
    return finished
