"""The index beside the data: its format and the rules that keep it in step with the files.

``OUTPUT/_index/<folder>/_files.json`` (``_index/_files.json`` for files at the top) holds, for
the data files of one folder (a ``dt=.../identifier=...`` partition), each file's signature
(size and mtime in ns; an object store's size and ETag), rows, time range, runs, node, tick,
container keys and metrics, and the merged summary of them all (:mod:`capture.summary`). The
name starts with ``_``, so every dataset reader skips it.

:func:`reconcile_folder` brings a folder's index in step with the files there now: a folder whose
files are unchanged is taken as it is; files added after the others are merged in (their footers
read); a file removed or changed (the size limit, a compaction, an upload's delete) or added
before another has the folder rebuilt from its files' footers. A missing, truncated, garbage or
foreign index is rebuilt, counted and logged, never trusted. A file whose footer has no summary
(written before summaries existed) gets one from a scan of its rows, once: it is kept in the
index. The index is replaced atomically (a hidden temporary file renamed over it), so a reader
never sees a torn one.

Who writes it: ``finemon run`` after each file it publishes (:func:`update_partition`; a
rebuild of a folder of many files reads every footer there, and is left to the readers),
``finemon compact`` after each swap, and every reader on open (``analysis.query.dataset_index``).
Here sits what they share, importable without the analysis (no pandas, no DuckDB): the daemon
loads only what writing Parquet loads.

The storage is behind :class:`IndexStore`, five calls over paths relative to the dataset's
root: the local one here (:class:`LocalIndexFiles`, :class:`PartitionStore`), the readers'
(``analysis.query.dataset_index.LocalStore``), an object store's the same way.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Protocol

# The reader class itself, not ``pyarrow.parquet``: that module imports ``pyarrow.fs`` with the
# S3, GCS and Azure filesystems and OpenSSL, which the daemon never loads.
from pyarrow._parquet import ParquetReader

from capture.summary import dumps, loads, merge_summaries
from common.contract import (
    CONTAINER_KEY_LABELS,
    FILE_SUFFIX,
    INDEX_DIR,
    SUMMARY_AGGREGATE_METRICS,
    SUMMARY_KEY,
    SUMMARY_SERIES_METRICS,
    SUMMARY_SKETCH_METRICS,
)

log = logging.getLogger("finemon.index")

INDEX_VERSION = 1
INDEX_FILE = "_files.json"
#: A signature: size in bytes and modification time in ns (an object's ETag as a string).
Signature = tuple[int, int | str]


@dataclass(frozen=True, slots=True)
class Footer:
    """What a file's footer says: rows, the ``capture.*``/``finemon.*`` metadata, the summary
    (None when the footer has none) and the metric descriptions (JSON ``{name: {...}}``)."""

    rows: int
    run_id: str | None
    node_name: str | None
    tick_seconds: float | None
    descriptions: dict[str, Any]
    summary: dict[str, Any] | None


#: What a summary must be made of for the analysis to use it: finemon's container key and
#: the aggregates, sketches and per-series breakdowns its commands read.
EXPECTED_SETTINGS: dict[str, Any] = {
    "aggregated": sorted(SUMMARY_AGGREGATE_METRICS),
    "sketched": sorted(SUMMARY_SKETCH_METRICS),
    "per_series": sorted(SUMMARY_SERIES_METRICS),
}


def _trusted(summary: dict[str, Any] | None) -> dict[str, Any] | None:
    """``summary`` when it is grouped and aggregated as the analysis reads it (else None: a
    file of another capture program, whose summary is computed from its rows instead)."""
    if summary is None:
        return None
    if summary.get("key_labels") != list(CONTAINER_KEY_LABELS):
        return None
    return summary if summary.get("settings") == EXPECTED_SETTINGS else None


def footer_from_metadata(rows: int, metadata: Mapping[str, str]) -> Footer:
    """The :class:`Footer` of a file of ``rows`` rows whose key-value metadata is ``metadata``
    (decoded); a malformed value reads as absent."""
    try:
        described = json.loads(metadata.get("capture.metrics", "{}"))
    except ValueError:
        described = {}
    try:
        given = metadata.get("capture.tick_seconds")
        tick = None if given is None else float(given)
    except ValueError:
        tick = None
    return Footer(
        rows=rows,
        run_id=metadata.get("capture.run_id"),
        node_name=metadata.get("finemon.node_name"),
        tick_seconds=tick,
        descriptions=described if isinstance(described, dict) else {},
        summary=_trusted(loads(metadata.get(SUMMARY_KEY))),
    )


def read_footer(path: Path) -> Footer:
    """The footer of ``path``. Raises OSError or ValueError (pyarrow's ArrowInvalid is one)
    when it is not a readable Parquet file."""
    reader = ParquetReader()
    reader.open(str(path))
    try:
        meta = reader.metadata
        kv = {k.decode(): v.decode(errors="replace") for k, v in (meta.metadata or {}).items()}
        return footer_from_metadata(meta.num_rows, kv)
    finally:
        reader.close()


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


class LocalIndexFiles:
    """The index files of a local output directory ``root``: read, and replaced atomically."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def read_index(self, path: str) -> bytes | None:
        try:
            return (self.root / path).read_bytes()
        except OSError:
            return None

    def write_index(self, path: str, data: bytes) -> bool:
        """Write ``data`` to a hidden temporary file and rename it over ``path``: a reader sees
        the old index or the new one, never a torn one. False (logged, nothing left behind) when
        it cannot be written: a read-only or full disk."""
        target = self.root / path
        temporary = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            temporary.write_bytes(data)
            os.replace(temporary, target)
        except OSError as exc:
            log.info("index: cannot write %s (%s)", target, exc)
            try:
                temporary.unlink(missing_ok=True)
            except OSError:
                pass
            return False
        return True


class PartitionStore(LocalIndexFiles):
    """An :class:`IndexStore` over the data files of one folder of a local output directory
    (what ``finemon run`` and ``finemon compact`` keep the index of). It cannot scan a file's
    rows (that needs the analysis): a file without a summary in its footer is left out of the
    index, for a reader to add."""

    def __init__(self, root: Path, folder: str) -> None:
        super().__init__(root)
        self.folder = folder

    def list_files(self) -> dict[str, Signature]:
        found: dict[str, Signature] = {}
        prefix = f"{self.folder}/" if self.folder else ""
        with os.scandir(self.root / self.folder) as entries:
            for entry in entries:
                name = entry.name
                if name.startswith((".", "_")) or not name.endswith(FILE_SUFFIX):
                    continue
                try:
                    if not entry.is_file():
                        continue
                    stat = entry.stat()
                except OSError:
                    continue  # gone since the listing
                found[prefix + name] = (stat.st_size, stat.st_mtime_ns)
        return found

    def read_footer(self, path: str) -> Footer:
        return read_footer(self.root / path)

    def scan_summary(self, path: str) -> dict[str, Any] | None:
        raise ValueError("no summary in its footer; a reader scans it")


@dataclass(slots=True)
class IndexStats:
    """What a reconcile did: folders taken as they were, extended, rebuilt (and why), left as
    they were because a rebuild was not allowed (and why), footers read, files scanned, index
    files written, and written not (a read-only or full disk)."""

    kept: int = 0
    extended: int = 0
    rebuilt: dict[str, str] = field(default_factory=dict)
    not_rebuilt: dict[str, str] = field(default_factory=dict)
    footers_read: int = 0
    scanned: int = 0
    written: int = 0
    write_failed: int = 0
    unreadable: list[tuple[str, str]] = field(default_factory=list)


def folder_of(path: str) -> str:
    """The folder of data file ``path`` (``""`` at the top)."""
    parent = PurePosixPath(path).parent.as_posix()
    return "" if parent == "." else parent


def index_path(folder: str) -> str:
    """The index file of the data files in ``folder`` (relative to the root)."""
    return f"{INDEX_DIR}/{folder}/{INDEX_FILE}" if folder else f"{INDEX_DIR}/{INDEX_FILE}"


@dataclass(slots=True)
class FolderIndex:
    """One folder's index: its files' entries by name, their merged summary, the metrics'
    descriptions, and the summaries made from scans (by file name)."""

    files: dict[str, dict[str, Any]]
    summary: dict[str, Any] | None
    descriptions: dict[str, Any]
    scanned: dict[str, dict[str, Any]]


def _parse(data: bytes | None, folder: str) -> tuple[FolderIndex | None, str]:
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
    return FolderIndex(entries, summary, dict(doc.get("descriptions") or {}), scanned), ""


def _serialize(folder: str, state: FolderIndex) -> bytes:
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
    store: IndexStore, path: str, signature: Signature, state: FolderIndex, stats: IndexStats
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


def _later_than_all(state: FolderIndex, summaries: Iterable[dict[str, Any]]) -> bool:
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


def _write(store: IndexStore, folder: str, state: FolderIndex, stats: IndexStats) -> None:
    if store.write_index(index_path(folder), _serialize(folder, state)):
        stats.written += 1
    else:
        stats.write_failed += 1


def reconcile_folder(
    store: IndexStore,
    folder: str,
    current: Mapping[str, Signature],
    stats: IndexStats,
    *,
    rebuild_at_most: int | None = None,
) -> FolderIndex | None:
    """The index of ``folder`` brought in step with its data files ``current`` (path ->
    signature; see the module), and written back when it changed. A folder that needs
    rebuilding from more than ``rebuild_at_most`` files (None: no bound) is left as it is
    (``stats.not_rebuilt`` says why) and None is returned: the cost is then bounded by one
    index read, the footers of the files added and one write."""
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
                if new:
                    _write(store, folder, state, stats)
                return state
            why = "files added before others"
    if rebuild_at_most is not None and len(names) > rebuild_at_most:
        stats.not_rebuilt[folder] = why
        return None
    state = (
        FolderIndex({}, None, {}, {})
        if state is None
        else FolderIndex({}, None, state.descriptions, state.scanned)
    )
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
    _write(store, folder, state, stats)
    return state


def update_partition(root: Path, folder: str, *, rebuild_at_most: int | None) -> IndexStats:
    """Bring the index of the data files in ``folder`` (relative to the local output directory
    ``root``) in step with them (:func:`reconcile_folder`): what ``finemon run`` does after
    publishing a file there (a rebuild bounded, so that a rotation reads the footers of the
    files added since the index was written and not a day of them) and ``finemon compact``
    after a swap. Never raises for the index: a folder it cannot list, a file it cannot read,
    an index it cannot write are in the stats (``unreadable``, ``write_failed``)."""
    stats = IndexStats()
    store = PartitionStore(root, folder)
    try:
        current = store.list_files()
    except OSError as exc:
        stats.unreadable.append((folder, str(exc)))
        return stats
    reconcile_folder(store, folder, current, stats, rebuild_at_most=rebuild_at_most)
    return stats
