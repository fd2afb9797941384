"""The index beside the data: every file's summary, cached, kept up to date on open.

``OUTPUT/_index/<folder>/_files.json`` (``_index/_files.json`` for files at the top) holds, for
the data files of one folder (a ``dt=.../identifier=...`` partition), each file's signature
(size and mtime in ns; an object store's size and ETag), rows, time range, runs, node, tick,
container keys and metrics, and the merged summary of them all (:mod:`capture.summary`). The
name starts with ``_``, so every dataset reader skips it.

:func:`open_index` reconciles it with the files there now: a folder whose files are unchanged is
taken as it is; files added after the others are merged in (their footers read); a file removed
or changed (the size limit, a compaction, an upload's delete) or added before another has the
folder rebuilt from its files' footers. A missing, truncated, garbage or foreign index is
rebuilt, counted and logged, never trusted. A file whose footer has no summary (written before
summaries existed) gets one from a scan of its rows, once: it is kept in the index. The index
is written back when the folder can be written (else it is kept in memory for this open only).

The storage is behind :class:`IndexStore`, four calls over paths relative to the dataset's
root: the local :class:`LocalStore` here, an object store's (pyarrow filesystem) the same way.
"""

from __future__ import annotations

import json
import logging
import os
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Protocol

from analysis.dataset import COMPACTING, describe_unreadable, parquet_files, parquet_problem
from analysis.errors import AnalysisError, UnreadableFilesWarning
from analysis.query.summaries import Footer, read_footer, scan_summary
from capture.summary import dumps, loads, merge_summaries
from common.contract import INDEX_DIR

log = logging.getLogger("analysis.index")

INDEX_VERSION = 1
INDEX_FILE = "_files.json"
#: A signature: size in bytes and modification time in ns (an object's ETag as a string).
Signature = tuple[int, int | str]


class IndexStore(Protocol):
    """Where the data files and the index live; paths are relative, ``/``-separated."""

    def list_files(self) -> dict[str, Signature]:
        """Every data file now and its signature."""
        ...

    def read_footer(self, path: str) -> Footer:
        """The footer of data file ``path``; raises OSError or ValueError."""
        ...

    def scan_summary(self, path: str) -> dict[str, Any] | None:
        """The summary of data file ``path`` from its rows (an older file without one)."""
        ...

    def read_index(self, path: str) -> bytes | None:
        """The bytes of index file ``path``, None when there is none."""
        ...

    def write_index(self, path: str, data: bytes) -> bool:
        """Replace index file ``path`` atomically; False when it cannot be written."""
        ...


class LocalStore:
    """An :class:`IndexStore` over a local output directory."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def list_files(self) -> dict[str, Signature]:
        found: dict[str, Signature] = {}
        for path in parquet_files(self.root):
            try:
                stat = path.stat()
            except OSError:
                continue  # gone since the listing
            found[path.relative_to(self.root).as_posix()] = (stat.st_size, stat.st_mtime_ns)
        return found

    def read_footer(self, path: str) -> Footer:
        full = self.root / path
        problem = parquet_problem(full)
        if problem is not None:
            raise ValueError(problem)
        return read_footer(full)

    def scan_summary(self, path: str) -> dict[str, Any] | None:
        return scan_summary(self.root / path)

    def read_index(self, path: str) -> bytes | None:
        try:
            return (self.root / path).read_bytes()
        except OSError:
            return None

    def write_index(self, path: str, data: bytes) -> bool:
        target = self.root / path
        temporary = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            temporary.write_bytes(data)
            os.replace(temporary, target)
        except OSError as exc:
            log.info("index: cannot write %s (%s); kept in memory", target, exc)
            try:
                temporary.unlink(missing_ok=True)
            except OSError:
                pass
            return False
        return True


@dataclass(frozen=True, slots=True)
class IndexedFile:
    """One data file as the index knows it (``path`` relative to the root)."""

    path: str
    signature: Signature
    rows: int
    first_ms: int | None
    last_ms: int | None
    run_ids: tuple[str, ...]
    node_name: str | None
    tick_seconds: float | None
    keys: frozenset[str | None]
    metrics: frozenset[str]
    #: True when the file's summary came from a scan of its rows (its footer has none).
    scanned: bool


@dataclass(slots=True)
class IndexStats:
    """What an open did: folders taken as they were, extended, rebuilt (and why), footers read,
    files scanned, index files written."""

    kept: int = 0
    extended: int = 0
    rebuilt: dict[str, str] = field(default_factory=dict)
    footers_read: int = 0
    scanned: int = 0
    written: int = 0
    unreadable: list[tuple[str, str]] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class DatasetIndex:
    """Every data file's summary, per file and merged (None without a readable file)."""

    files: Mapping[str, IndexedFile]
    summary: dict[str, Any] | None
    descriptions: Mapping[str, Any]
    stats: IndexStats


def _folder(path: str) -> str:
    parent = PurePosixPath(path).parent.as_posix()
    return "" if parent == "." else parent


def index_path(folder: str) -> str:
    """The index file of the data files in ``folder`` (relative to the root)."""
    return f"{INDEX_DIR}/{folder}/{INDEX_FILE}" if folder else f"{INDEX_DIR}/{INDEX_FILE}"


@dataclass(slots=True)
class _Folder:
    files: dict[str, dict[str, Any]]
    summary: dict[str, Any] | None
    descriptions: dict[str, Any]
    scanned: dict[str, dict[str, Any]]


def _parse(data: bytes | None, folder: str) -> tuple[_Folder | None, str]:
    """The folder's index, or None and why it cannot be trusted."""
    if data is None:
        return None, "no index"
    try:
        doc = json.loads(data)
    except ValueError:
        return None, "not JSON (truncated or garbage)"
    if not isinstance(doc, dict) or doc.get("version") != INDEX_VERSION:
        return None, "not an index of this version"
    if doc.get("folder") != folder:
        return None, "the index of another folder"
    files, keysets, metricsets = doc.get("files"), doc.get("keysets"), doc.get("metricsets")
    if not isinstance(files, dict) or not isinstance(keysets, list):
        return None, "malformed"
    if not isinstance(metricsets, list):
        return None, "malformed"
    try:
        entries = {}
        for name, stored in files.items():
            entry = dict(stored)
            entry["keys"] = keysets[entry["keys"]]
            entry["metrics"] = metricsets[entry["metrics"]]
            entry["signature"] = (int(entry["size"]), entry["mtime"])
            entries[str(name)] = entry
    except (KeyError, IndexError, TypeError, ValueError):
        return None, "malformed"
    summary = loads(doc.get("summary"))
    if entries and summary is None:
        return None, "malformed"
    scanned = {}
    for name, stored in dict(doc.get("scanned") or {}).items():
        found = loads(stored.get("summary")) if isinstance(stored, dict) else None
        if found is not None:
            scanned[str(name)] = {"signature": stored.get("signature"), "summary": found}
    return _Folder(entries, summary, dict(doc.get("descriptions") or {}), scanned), ""


def _serialize(folder: str, state: _Folder) -> bytes:
    keysets: dict[str, int] = {}
    metricsets: dict[str, int] = {}
    files = {}
    for name, entry in sorted(state.files.items()):
        keys = json.dumps(sorted(entry["keys"], key=lambda k: (k is not None, k or "")))
        metrics = json.dumps(sorted(entry["metrics"]))
        out = {k: v for k, v in entry.items() if k not in ("keys", "metrics", "signature")}
        out["keys"] = keysets.setdefault(keys, len(keysets))
        out["metrics"] = metricsets.setdefault(metrics, len(metricsets))
        files[name] = out
    doc = {
        "version": INDEX_VERSION,
        "folder": folder,
        "files": files,
        "keysets": [json.loads(k) for k in keysets],
        "metricsets": [json.loads(m) for m in metricsets],
        "descriptions": state.descriptions,
        "summary": None if state.summary is None else dumps(state.summary),
        "scanned": {
            name: {"signature": s["signature"], "summary": dumps(s["summary"])}
            for name, s in state.scanned.items()
        },
    }
    return json.dumps(doc, separators=(",", ":")).encode()


def _entry(path: str, signature: Signature, footer: Footer, summary: dict[str, Any] | None,
           scanned: bool) -> dict[str, Any]:  # fmt: skip
    runs = summary.get("runs", []) if summary else []
    keys = sorted(
        {g["key"] for r in runs for g in r["groups"]}, key=lambda k: (k is not None, k or "")
    )
    return {
        "signature": signature,
        "size": signature[0],
        "mtime": signature[1],
        "rows": footer.rows,
        "first_ms": summary.get("first_ms") if summary else None,
        "last_ms": summary.get("last_ms") if summary else None,
        "runs": [str(r["run_id"]) for r in runs] or ([footer.run_id] if footer.run_id else []),
        "node_name": footer.node_name,
        "tick_seconds": footer.tick_seconds,
        "keys": keys,
        "metrics": sorted(summary.get("metrics", {})) if summary else [],
        "scanned": scanned,
    }


def _summarize(
    store: IndexStore, path: str, signature: Signature, state: _Folder, stats: IndexStats
) -> tuple[dict[str, Any], dict[str, Any] | None] | None:
    """The entry and summary of one file (its footer read; scanned when it has no summary)."""
    name = PurePosixPath(path).name
    try:
        footer = store.read_footer(path)
    except (OSError, ValueError) as exc:
        stats.unreadable.append((path, str(exc)))
        return None
    stats.footers_read += 1
    for metric, description in footer.descriptions.items():
        state.descriptions.setdefault(metric, description)
    summary, scanned = footer.summary, False
    if summary is None and footer.rows:
        cached = state.scanned.get(name)
        if cached is not None and tuple(cached.get("signature", ())) == tuple(signature):
            summary = cached["summary"]
        else:
            try:
                summary = store.scan_summary(path)
            except Exception as exc:
                stats.unreadable.append((path, str(exc).splitlines()[0]))
                return None
            stats.scanned += 1
        scanned = True
        if summary is not None:
            state.scanned[name] = {"signature": list(signature), "summary": summary}
    return _entry(path, signature, footer, summary, scanned), summary


def _later_than_all(state: _Folder, summaries: Iterable[dict[str, Any]]) -> bool:
    """Whether every run of ``summaries`` starts after that run's last tick in the folder (so
    its counters chain onto the folder's in time order)."""
    last: dict[str, int] = {}
    for run in (state.summary or {}).get("runs", []):
        last[str(run["run_id"])] = int(run["last_ms"])
    return all(
        int(run["first_ms"]) > last.get(str(run["run_id"]), -(2**62))
        for summary in summaries
        for run in summary.get("runs", [])
    )


def _reconcile(store: IndexStore, folder: str, current: dict[str, Signature],
               stats: IndexStats) -> _Folder:  # fmt: skip
    where = index_path(folder)
    state, why = _parse(store.read_index(where), folder)
    names = {PurePosixPath(p).name: (p, s) for p, s in current.items()}
    if state is not None:
        known = {
            n: e
            for n, e in state.files.items()
            if n in names and tuple(e["signature"]) == tuple(names[n][1])
        }
        if len(known) < len(state.files):
            why = "files removed or changed"
            state = _Folder({}, None, state.descriptions, state.scanned)
        else:
            added = {n: ps for n, ps in names.items() if n not in known}
            if not added:
                stats.kept += 1
                return state
            new: list[tuple[str, dict[str, Any], dict[str, Any] | None]] = []
            for name, (path, signature) in sorted(added.items()):
                found = _summarize(store, path, signature, state, stats)
                if found is not None:
                    new.append((name, *found))
            summaries = [s for _, _, s in new if s is not None]
            if _later_than_all(state, summaries):
                for name, entry, _ in new:
                    state.files[name] = entry
                merged = merge_summaries([*([state.summary] if state.summary else []), *summaries])
                state.summary = merged
                stats.extended += 1
                if store.write_index(where, _serialize(folder, state)):
                    _written(stats)
                return state
            why = "files added before others"
            state = _Folder({}, None, state.descriptions, state.scanned)
    else:
        state = _Folder({}, None, {}, {})
    stats.rebuilt[folder] = why
    if why != "no index":
        log.info("index: rebuilding %s: %s", where, why)
    summaries = []
    for name, (path, signature) in sorted(names.items()):
        found = _summarize(store, path, signature, state, stats)
        if found is None:
            continue
        state.files[name] = found[0]
        if found[1] is not None:
            summaries.append(found[1])
    state.scanned = {n: s for n, s in state.scanned.items() if n in state.files}
    state.summary = merge_summaries(summaries)
    if store.write_index(where, _serialize(folder, state)):
        _written(stats)
    return state


def _written(stats: IndexStats) -> None:
    stats.written += 1


def open_index(store: IndexStore) -> DatasetIndex:
    """The index of every data file of ``store``, reconciled with the files there now (see the
    module). Raises :class:`AnalysisError` when the dataset holds no data file (the listing's
    error)."""
    current = store.list_files()
    by_folder: dict[str, dict[str, Signature]] = {}
    for path, signature in current.items():
        by_folder.setdefault(_folder(path), {})[path] = signature
    stats = IndexStats()
    files: dict[str, IndexedFile] = {}
    summaries = []
    descriptions: dict[str, Any] = {}
    for folder, listed in sorted(by_folder.items()):
        state = _reconcile(store, folder, listed, stats)
        for name, entry in state.files.items():
            path = f"{folder}/{name}" if folder else name
            files[path] = IndexedFile(
                path=path,
                signature=tuple(entry["signature"]),
                rows=int(entry["rows"]),
                first_ms=entry.get("first_ms"),
                last_ms=entry.get("last_ms"),
                run_ids=tuple(entry.get("runs") or ()),
                node_name=entry.get("node_name"),
                tick_seconds=entry.get("tick_seconds"),
                keys=frozenset(entry["keys"]),
                metrics=frozenset(entry["metrics"]),
                scanned=bool(entry.get("scanned")),
            )
        if state.summary is not None:
            summaries.append(state.summary)
        for metric, description in state.descriptions.items():
            descriptions.setdefault(metric, description)
    if stats.rebuilt:
        reasons = sorted({why for why in stats.rebuilt.values() if why != "no index"})
        log.info(
            "index: %d folders rebuilt%s, %d footers read, %d files scanned",
            len(stats.rebuilt),
            f" ({', '.join(reasons)})" if reasons else "",
            stats.footers_read,
            stats.scanned,
        )
    return DatasetIndex(files, merge_summaries(summaries), descriptions, stats)


def report_unreadable(directory: Path, unreadable: Sequence[tuple[str, str]]) -> None:
    """Say what :func:`analysis.dataset.connect` says of the files an index left out: an
    :class:`AnalysisError` for a file replaced by a compaction since the listing (a retry gives
    the answer), else an :class:`UnreadableFilesWarning` naming them."""
    if not unreadable:
        return
    for path, problem in unreadable:
        if problem == COMPACTING:
            raise AnalysisError(
                f"{directory / path}: replaced or removed while being read (a compaction is "
                "swapping files in); run the command again"
            )
    found = [(directory / path, problem) for path, problem in unreadable]
    warnings.warn(describe_unreadable(directory, found), UnreadableFilesWarning, stacklevel=3)


def open_local_index(directory: Path) -> DatasetIndex:
    """:func:`open_index` over a local output directory (raises :class:`AnalysisError` when it
    holds no data file)."""
    if not directory.is_dir():
        raise AnalysisError(f"{directory}: not a directory")
    return open_index(LocalStore(directory))
