"""A dataset read in place through a pyarrow filesystem: its objects, their footers, and the
Arrow dataset DuckDB scans (``s3://``; any pyarrow filesystem works, a local one in tests).

:class:`DataObjects` lists the source (one recursive LIST of the prefix), keeps the visible
``*.parquet`` objects (names starting with ``_`` or ``.`` are not data, as in a folder), picks
those to read (:func:`select_objects`: for a question with a time range or containers, those
the index beside the data says may hold its rows, :mod:`analysis.bucket_index`) and reads each
one's footer once: a ranged GET of the object's tail (pyarrow reads the last 64 KiB, and more
only for a larger footer), kept while the object's size and modification time stay the same.
The footers give the files' summaries (:class:`analysis.query.files.FileFooter`) and stay
inside the Arrow fragments, so a scan reads no footer again: DuckDB scans the Arrow dataset
with its projection and filters pushed down, and pyarrow fetches only the column chunks of the
row groups whose statistics may match. An object outside a question's time range costs nothing
beyond its footer.

Failures: an object gone between the listing and the read of its footer is an
:class:`AnalysisError` saying to run the command again (a compaction swapping files in: the
retry lists the new files), as the folder readers do; one that is not Parquet is left out and
named (:meth:`DataObjects.unreadable`); the store failing is a one-line :class:`AnalysisError`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from analysis.errors import AnalysisError
from analysis.query.files import FileFooter, Signature, footer_of
from analysis.source import Source
from common.contract import FILE_SUFFIX, PLACEHOLDER_MAGIC, SESSION_MANIFEST, SESSIONS_DIR

if TYPE_CHECKING:
    from analysis.bucket_index import BucketStore
    from analysis.query.dataset_index import DatasetIndex

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


def is_placeholder(source: Source, path: str, size_bytes: int) -> bool:
    """Whether object ``path`` is a compaction's placeholder (:data:`PLACEHOLDER_MAGIC`): a few
    bytes written over an input's key while its compacted object is being published."""
    if size_bytes > len(PLACEHOLDER_MAGIC) + 4096:
        return False
    try:
        with source.filesystem.open_input_file(path) as file:
            return bytes(file.read(len(PLACEHOLDER_MAGIC))) == PLACEHOLDER_MAGIC
    except OSError:
        return False


def placeholder_or_gone(source: Source, path: str, size_bytes: int, exc: OSError | None) -> None:
    """Raise the :class:`AnalysisError` asking to run the command again when the footer of
    object ``path`` could not be read because a compaction is swapping it: it is a placeholder
    (skipping it would miss its rows), or, after the store's error ``exc``, it is gone since
    the listing (the retry lists the new objects). Return otherwise."""
    import pyarrow.fs  # noqa: PLC0415

    shown = f"{source.url}/{source.relative(path)}"
    if is_placeholder(source, path, size_bytes):
        raise AnalysisError(f"{shown}: {REPLACED}; run the command again")
    if exc is None:
        return
    try:
        gone = source.filesystem.get_file_info(path).type == pyarrow.fs.FileType.NotFound
    except OSError:
        gone = False
    if gone:
        raise AnalysisError(f"{shown}: {REPLACED}; run the command again")


def select_objects(
    listing: Listing,
    index: DatasetIndex | None = None,
    relative: Callable[[str], str] = str,
    time_range_ms: tuple[int, int] | None = None,
    container_keys: Sequence[str] | None = None,
) -> list[StoredFile]:
    """The data objects of ``listing`` a reader reads: without an ``index``, every one; with
    one, those whose entry (by ``relative`` path) may hold rows of ``container_keys`` in
    ``time_range_ms`` (epoch ms, both ends included; None: any), and those it does not know
    (not Parquet, or without a summary: read as before, by their footers)."""
    if index is None:
        return list(listing.data)
    low, high = time_range_ms or (-(2**62), 2**62)
    wanted = None if container_keys is None else set(container_keys)
    selected = []
    for stored in listing.data:
        entry = index.files.get(relative(stored.path))
        if entry is not None and (
            not entry.rows
            or (wanted is not None and not wanted & entry.keys)
            or (entry.first_ms is not None and entry.first_ms > high)
            or (entry.last_ms is not None and entry.last_ms < low)
        ):
            continue
        selected.append(stored)
    return selected


def hive_partitions(relative: str) -> dict[str, str]:
    """The ``key=value`` folders of ``relative`` (a path under the root), in order; values as
    they are written (finemon's are never escaped), as DuckDB reads them."""
    found: dict[str, str] = {}
    for part in PurePosixPath(relative).parts[:-1]:
        match = _HIVE_SEGMENT.match(part)
        if match and match.group(1) not in found:
            found[match.group(1)] = match.group(2)
    return found


def make_fragment(source: Source, path: str, size_bytes: int | None) -> Any:
    """The Arrow fragment of data object ``path`` (its footer not read yet), its ``key=value``
    folders as its partition expression."""
    import pyarrow.compute as pc  # noqa: PLC0415
    import pyarrow.dataset as ds  # noqa: PLC0415

    expression = None
    for key, value in hive_partitions(source.relative(path)).items():
        term = pc.field(key) == value
        expression = term if expression is None else expression & term
    return ds.ParquetFileFormat().make_fragment(
        path, source.filesystem, partition_expression=expression, file_size=size_bytes
    )


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

    def __init__(
        self,
        source: Source,
        *,
        time_range_ms: tuple[int, int] | None = None,
        container_keys: Sequence[str] | None = None,
    ) -> None:
        if source.filesystem is None:
            raise ValueError(f"{source.url}: not a source read through a pyarrow filesystem")
        self.source = source
        #: The question's ticks (epoch ms, both ends included) and containers: with either,
        #: only the objects the index says may hold such rows are read.
        self.time_range_ms = time_range_ms
        self.container_keys = None if container_keys is None else tuple(container_keys)
        self._state = _State(Listing((), ()), {}, 0, [])
        self._manifests: dict[str, tuple[Signature, bytes]] = {}
        self._store: BucketStore | None = None
        #: The index of the last :meth:`open_index` (or of a refresh that selected by it).
        self.index: DatasetIndex | None = None
        self._has_listing = False

    @property
    def listed(self) -> bool:
        """Whether the source was listed and the selected objects' footers read yet."""
        return self._state.generation > 0

    @property
    def has_listing(self) -> bool:
        """Whether the source was listed yet (by :meth:`refresh` or :meth:`open_index`)."""
        return self._has_listing

    def open_index(self) -> DatasetIndex:
        """List the source and bring the index beside its data in step with the objects
        (:mod:`analysis.bucket_index`: one small GET per folder once it is there); no footer
        read but those of objects the index lacks. Raises :class:`AnalysisError` as
        :meth:`refresh`."""
        listing = list_objects(self.source)
        if not listing.data:
            raise AnalysisError(f"{self.source.url}: no finemon files under this prefix")
        return self._index_of(listing)

    def _index_of(self, listing: Listing) -> DatasetIndex:
        from analysis.bucket_index import BucketStore, open_bucket_index  # noqa: PLC0415

        if self._store is None:
            self._store = BucketStore(self.source, listing)
        self._store.listing = listing
        self.index = open_bucket_index(self._store)
        state = self._state
        self._state = _State(listing, state.reads, state.generation, state.dataset)
        self._has_listing = True
        return self.index

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
        if not listing.data:
            raise AnalysisError(f"{self.source.url}: no finemon files under this prefix")
        index = None
        if self.time_range_ms is not None or self.container_keys is not None:
            index = self._index_of(listing)
        selected = select_objects(
            listing, index, self.source.relative, self.time_range_ms, self.container_keys
        )
        if not selected:
            raise AnalysisError(
                f"{self.source.url}: no file holds rows of that range and those containers"
            )
        self._has_listing = True
        known = {path: read.stored for path, read in state.reads.items()}
        if state.generation and known == {s.path: s for s in selected}:
            self._state = _State(listing, state.reads, state.generation, state.dataset)
            return False
        kept = {s.path: state.reads[s.path] for s in selected if known.get(s.path) == s}
        self._state = _State(listing, state.reads, state.generation, state.dataset)
        self._read_footers(selected, kept)
        return True

    def _read_footers(self, selected: Sequence[StoredFile], kept: dict[str, _Read]) -> None:
        """Read the footers of ``selected`` but ``kept``'s and swap the new state in."""
        state = self._state
        new = [s for s in selected if s.path not in kept]
        # The footers the index just read, in their fragments: not read again.
        read_by_index = {} if self._store is None else self._store.fragments
        fresh = {}
        for stored in new:
            signature, fragment = read_by_index.get(stored.path, (None, None))
            if signature == stored.signature:
                fresh[stored.path] = _Read(stored, fragment, self._footer(stored, fragment), None)
        unread = [s for s in new if s.path not in fresh]
        with ThreadPoolExecutor(max_workers=max(1, min(READERS, len(unread)))) as pool:
            fresh.update({read.stored.path: read for read in pool.map(self._read, unread)})
        reads = {s.path: kept.get(s.path) or fresh[s.path] for s in selected}
        self._state = _State(state.listing, reads, state.generation + 1, [])

    def _read(self, stored: StoredFile) -> _Read:
        """Read the footer of ``stored`` into a fragment of its own."""
        import pyarrow  # noqa: PLC0415

        if stored.size_bytes == 0:
            return _Read(stored, None, None, "empty")
        fragment = make_fragment(self.source, stored.path, stored.size_bytes)
        try:
            fragment.ensure_complete_metadata()
        except pyarrow.ArrowInvalid as exc:
            placeholder_or_gone(self.source, stored.path, stored.size_bytes, None)
            magic = "magic bytes" in str(exc)
            return _Read(stored, None, None, "not a Parquet file" if magic else "corrupt footer")
        except OSError as exc:
            placeholder_or_gone(self.source, stored.path, stored.size_bytes, exc)
            shown = f"{self.source.url}/{self.source.relative(stored.path)}"
            raise AnalysisError(f"{shown}: {store_problem(exc)}") from None
        return _Read(stored, fragment, self._footer(stored, fragment), None)

    def subset(self, paths: Iterable[str]) -> DataObjects:
        """The objects ``paths`` (in the filesystem) of the last listing, their footers read
        (those the index read are not read again), as objects of their own to scan: what a
        question the index narrowed down reads. Raises as :meth:`refresh`."""
        wanted = set(paths)
        chosen = [s for s in self.listing.data if s.path in wanted]
        found = DataObjects(self.source)
        found._store = self._store
        found._manifests = self._manifests
        found._has_listing = True
        found._state = _State(Listing(tuple(chosen), self.listing.manifests), {}, 0, [])
        found._read_footers(chosen, {})
        return found

    @staticmethod
    def _footer(stored: StoredFile, fragment: Any) -> FileFooter:
        return footer_of(Path(stored.path), stored.signature, fragment.metadata)

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
