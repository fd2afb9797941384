"""A dataset read in place through a pyarrow filesystem: its objects, their footers, and the
Arrow dataset DuckDB scans (``s3://``; any pyarrow filesystem works, a local one in tests).

:class:`DataObjects` lists the source (one recursive LIST of the prefix), keeps the visible
``*.parquet`` objects (names starting with ``_`` or ``.`` are not data, as in a folder), picks
those to read (:func:`select_objects`) and reads each one's footer once: a ranged GET of the
object's tail (pyarrow reads the last 64 KiB, and more only for a larger footer), kept while
the object's size and modification time stay the same. The footers give the files' summaries
(:class:`analysis.query.files.FileFooter`) and stay inside the Arrow fragments, so a scan reads
no footer again: DuckDB scans the Arrow dataset with its projection and filters pushed down,
and pyarrow fetches only the column chunks of the row groups whose statistics may match. An
object outside a question's time range costs nothing beyond its footer.

Failures: an object gone between the listing and the read of its footer is an
:class:`AnalysisError` saying to run the command again (a compaction swapping files in: the
retry lists the new files), as the folder readers do; one that is not Parquet is left out and
named (:meth:`DataObjects.unreadable`); the store failing is a one-line :class:`AnalysisError`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from analysis.errors import AnalysisError
from analysis.query.files import FileFooter, Signature, footer_of
from analysis.source import Source
from common.contract import FILE_SUFFIX, PLACEHOLDER_MAGIC, SESSION_MANIFEST, SESSIONS_DIR

#: Footers (and manifests) read at once: each is one GET whose time is mostly the store's
#: latency.
READERS = 16
#: What a gone object's error says; the folder readers say the same.
REPLACED = "replaced or removed while being read (a compaction is swapping files in)"
_HIVE_SEGMENT = re.compile(r"^([^=]+)=(.*)$")
_REQUEST_ID = re.compile(r"\s*\(Request ID: [^)]*\)")


@dataclass(frozen=True, slots=True)
class StoredFile:
    """One object of a source: its path in the source's filesystem, size and modification
    time (ns; S3 gives whole seconds)."""

    path: str
    size_bytes: int
    mtime_ns: int

    @property
    def signature(self) -> Signature:
        """Size and modification time: an object whose signature is unchanged is not read
        again."""
        return self.size_bytes, self.mtime_ns


@dataclass(frozen=True, slots=True)
class Listing:
    """What one LIST of a source found: its data objects and run manifests, by path."""

    data: tuple[StoredFile, ...]
    manifests: tuple[StoredFile, ...]


def store_problem(exc: BaseException) -> str:
    """A store error's message on one line, without the request id AWS appends."""
    return _REQUEST_ID.sub("", " ".join(str(exc).split())) or type(exc).__name__


def _visible(parts: Sequence[str]) -> bool:
    return not any(part.startswith((".", "_")) for part in parts)


def list_objects(source: Source) -> Listing:
    """The data objects (visible ``*.parquet``) and run manifests (``_sessions/*.json``,
    ``_session.json``) under ``source``'s root, sorted by path.

    Raises :class:`AnalysisError` (one line) when the store cannot be listed.
    """
    import pyarrow.fs  # noqa: PLC0415 - a core dependency, only needed here

    # Not allow_not_found: that would say nothing of a missing bucket either.
    selector = pyarrow.fs.FileSelector(source.root, recursive=True)
    try:
        infos = source.filesystem.get_file_info(selector)
    except FileNotFoundError:  # nothing under the prefix
        infos = []
    except OSError as exc:
        raise AnalysisError(f"{source.url}: {store_problem(exc)}") from None
    data: list[StoredFile] = []
    manifests: list[StoredFile] = []
    for info in infos:
        if info.type != pyarrow.fs.FileType.File:
            continue
        stored = StoredFile(info.path, int(info.size or 0), int(info.mtime_ns or 0))
        parts = source.relative(info.path).split("/")
        if parts[-1].endswith(FILE_SUFFIX) and _visible(parts):
            data.append(stored)
        elif parts == [SESSION_MANIFEST] or (
            len(parts) == 2
            and parts[0] == SESSIONS_DIR
            and parts[1].endswith(".json")
            and _visible(parts[1:])
        ):
            manifests.append(stored)
    return Listing(
        tuple(sorted(data, key=lambda f: f.path)), tuple(sorted(manifests, key=lambda f: f.path))
    )


def select_objects(listing: Listing) -> list[StoredFile]:
    """The data objects of ``listing`` a reader reads: every one. (The place to pick objects
    by a summary kept beside the data, by time range and container.)"""
    return list(listing.data)


def hive_partitions(relative: str) -> dict[str, str]:
    """The ``key=value`` folders of ``relative`` (a path under the root), in order; values as
    they are written (finemon's are never escaped), as DuckDB reads them."""
    found: dict[str, str] = {}
    for part in PurePosixPath(relative).parts[:-1]:
        match = _HIVE_SEGMENT.match(part)
        if match and match.group(1) not in found:
            found[match.group(1)] = match.group(2)
    return found


@dataclass(frozen=True, slots=True)
class _Read:
    """An object whose footer was read: its fragment (holding the footer), or why not."""

    stored: StoredFile
    fragment: Any
    footer: FileFooter | None
    problem: str | None


@dataclass(frozen=True, slots=True)
class _State:
    """What one :meth:`DataObjects.refresh` found, swapped in whole (readers on other threads
    see the last state or the next, never a mix)."""

    listing: Listing
    reads: dict[str, _Read]
    generation: int
    dataset: list[Any]  # the Arrow dataset, built on first use (a list of at most one)


class DataObjects:
    """The data objects of a bucket ``source`` (see the module's documentation). Call
    :meth:`refresh` to list; then :attr:`footers`, :attr:`unreadable` and :meth:`dataset`
    describe what it found. One thread may refresh while others read: a refresh swaps its
    findings in at once."""

    def __init__(self, source: Source) -> None:
        if source.filesystem is None:
            raise ValueError(f"{source.url}: not a source read through a pyarrow filesystem")
        self.source = source
        self._state = _State(Listing((), ()), {}, 0, [])
        self._manifests: dict[str, tuple[Signature, bytes]] = {}

    @property
    def listed(self) -> bool:
        """Whether the source was listed yet."""
        return self._state.generation > 0

    @property
    def generation(self) -> int:
        """How many times the data objects were found changed (0: never listed)."""
        return self._state.generation

    @property
    def listing(self) -> Listing:
        """The last listing."""
        return self._state.listing

    # -------------------------------------------------------------- listing and footers
    def refresh(self) -> bool:
        """List the source again and read the footers of the objects new or changed since;
        True when the data objects changed (always, the first time).

        Raises :class:`AnalysisError` when the store fails, when a listed object is gone
        before its footer is read (run the command again), or when the source holds no data
        object; what was found before stays then.
        """
        state = self._state
        listing = list_objects(self.source)
        selected = select_objects(listing)
        if not selected:
            raise AnalysisError(f"{self.source.url}: no finemon files under this prefix")
        known = {path: read.stored for path, read in state.reads.items()}
        if state.generation and known == {s.path: s for s in selected}:
            self._state = _State(listing, state.reads, state.generation, state.dataset)
            return False
        kept = {s.path: state.reads[s.path] for s in selected if known.get(s.path) == s}
        new = [s for s in selected if s.path not in kept]
        with ThreadPoolExecutor(max_workers=max(1, min(READERS, len(new)))) as pool:
            fresh = {read.stored.path: read for read in pool.map(self._read, new)}
        reads = {s.path: kept.get(s.path) or fresh[s.path] for s in selected}
        self._state = _State(listing, reads, state.generation + 1, [])
        return True

    def _read(self, stored: StoredFile) -> _Read:
        """Read the footer of ``stored`` into a fragment of its own."""
        import pyarrow  # noqa: PLC0415
        import pyarrow.compute as pc  # noqa: PLC0415
        import pyarrow.dataset as ds  # noqa: PLC0415

        partitions = hive_partitions(self.source.relative(stored.path))
        expression = None
        for key, value in partitions.items():
            term = pc.field(key) == value
            expression = term if expression is None else expression & term
        if stored.size_bytes == 0:
            return _Read(stored, None, None, "empty")
        fragment = ds.ParquetFileFormat().make_fragment(
            stored.path,
            self.source.filesystem,
            partition_expression=expression,
            file_size=stored.size_bytes,
        )
        try:
            fragment.ensure_complete_metadata()
        except pyarrow.ArrowInvalid as exc:
            if self._is_placeholder(stored):
                # A bucket compaction is between its placeholders and the compacted object:
                # skipping the object would miss its rows, so the reader is asked to retry.
                shown = f"{self.source.url}/{self.source.relative(stored.path)}"
                raise AnalysisError(f"{shown}: {REPLACED}; run the command again") from None
            magic = "magic bytes" in str(exc)
            return _Read(stored, None, None, "not a Parquet file" if magic else "corrupt footer")
        except OSError as exc:
            self._raise_unless_there(stored, exc)
        path = Path(stored.path)
        footer = footer_of(path, stored.signature, fragment.metadata)
        return _Read(stored, fragment, footer, None)

    def _is_placeholder(self, stored: StoredFile) -> bool:
        """Whether ``stored`` is a compaction's placeholder (:data:`PLACEHOLDER_MAGIC`): a few
        bytes written over an input's key while its compacted object is being published."""
        if stored.size_bytes > len(PLACEHOLDER_MAGIC) + 4096:
            return False
        try:
            with self.source.filesystem.open_input_file(stored.path) as file:
                return bytes(file.read(len(PLACEHOLDER_MAGIC))) == PLACEHOLDER_MAGIC
        except OSError:
            return False

    def _raise_unless_there(self, stored: StoredFile, exc: OSError) -> None:
        """Raise the :class:`AnalysisError` for the failed read of ``stored``: gone since the
        listing (a swap: run again), else the store's own error."""
        import pyarrow.fs  # noqa: PLC0415

        shown = f"{self.source.url}/{self.source.relative(stored.path)}"
        try:
            gone = self.source.filesystem.get_file_info(stored.path).type in (
                pyarrow.fs.FileType.NotFound,
            )
        except OSError:
            gone = False
        if gone:
            raise AnalysisError(f"{shown}: {REPLACED}; run the command again") from None
        raise AnalysisError(f"{shown}: {store_problem(exc)}") from None

    @property
    def footers(self) -> dict[Path, FileFooter]:
        """The footer of every readable data object, by its path in the filesystem."""
        return {
            Path(read.stored.path): read.footer
            for read in self._state.reads.values()
            if read.footer is not None
        }

    @property
    def unreadable(self) -> list[tuple[Path, str]]:
        """``(path, problem)`` of the data objects that are not readable Parquet."""
        reads = self._state.reads.values()
        return [(Path(r.stored.path), r.problem) for r in reads if r.problem is not None]

    @property
    def partition_keys(self) -> list[str]:
        """The ``key=value`` folder names of the data objects, in their order."""
        return self._partition_keys(self._state.reads)

    def _partition_keys(self, paths: Iterable[str]) -> list[str]:
        keys: list[str] = []
        for path in paths:
            for key in hive_partitions(self.source.relative(path)):
                if key not in keys:
                    keys.append(key)
        return keys

    # -------------------------------------------------------------- what DuckDB scans
    def dataset(self) -> Any:
        """The Arrow dataset of the readable objects: one schema for all (columns a file
        lacks are null, dictionary-encoded strings read as strings), the ``key=value``
        folders as string columns. Raises :class:`AnalysisError` when the objects disagree on
        a column's type, or none is readable."""
        state = self._state
        if state.dataset:
            return state.dataset[0]
        import pyarrow  # noqa: PLC0415
        import pyarrow.dataset as ds  # noqa: PLC0415

        fragments = [r.fragment for r in state.reads.values() if r.fragment is not None]
        if not fragments:
            raise AnalysisError(f"{self.source.url}: no readable Parquet file")
        try:
            schema = pyarrow.unify_schemas(
                [_plain(f.physical_schema) for f in fragments], promote_options="permissive"
            )
        except (pyarrow.ArrowInvalid, pyarrow.ArrowTypeError) as exc:
            raise AnalysisError(f"{self.source.url}: the files disagree: {exc}") from None
        for key in self._partition_keys(state.reads):
            if key not in schema.names:
                schema = schema.append(pyarrow.field(key, pyarrow.string()))
        dataset = ds.FileSystemDataset(
            fragments, schema.remove_metadata(), ds.ParquetFileFormat(), self.source.filesystem
        )
        state.dataset.append(dataset)
        return dataset

    # -------------------------------------------------------------- manifests
    def manifests(self) -> list[tuple[str, bytes]]:
        """The run manifests of the last listing: ``(path relative to the root, bytes)``,
        ``_sessions/*.json`` first; one that cannot be read is left out (its runs' data is
        still there)."""
        wanted = {m.path: m for m in self.listing.manifests}
        missing = [m for m in wanted.values() if self._manifests.get(m.path, ((), b""))[0]
                   != m.signature]  # fmt: skip
        with ThreadPoolExecutor(max_workers=max(1, min(READERS, len(missing)))) as pool:
            for stored, content in zip(missing, pool.map(self._get, missing), strict=True):
                if content is not None:
                    self._manifests[stored.path] = (stored.signature, content)
        for path in set(self._manifests) - set(wanted):
            del self._manifests[path]
        relative = [(self.source.relative(p), c) for p, (_, c) in sorted(self._manifests.items())]
        return sorted(relative, key=lambda item: (item[0] == SESSION_MANIFEST, item[0]))

    def _get(self, stored: StoredFile) -> bytes | None:
        try:
            with self.source.filesystem.open_input_stream(stored.path) as stream:
                content: bytes = stream.read()
                return content
        except OSError:
            return None


def _plain(schema: Any) -> Any:
    """``schema`` with dictionary-encoded fields as their value type, every field nullable (a
    file may lack a column the others have) and no metadata."""
    import pyarrow  # noqa: PLC0415

    fields: Iterable[Any] = (
        pyarrow.field(f.name, f.type.value_type if pyarrow.types.is_dictionary(f.type) else f.type)
        for f in schema
    )
    return pyarrow.schema(list(fields))


def listed_objects(where: Path | Source) -> DataObjects | None:
    """For a bucket's source, its objects listed (to share between the readers of one
    command, so each footer is read once); None for a local path. Raises as
    :meth:`DataObjects.refresh`."""
    if not isinstance(where, Source) or where.filesystem is None:
        return None
    objects = DataObjects(where)
    objects.refresh()
    return objects
