"""finemon's files as an Apache Iceberg table: ``finemon catalog`` registers them, in place.

:func:`register` lists the finished data files of an output directory and brings the Iceberg
table up to date with them in one commit: the files it does not hold yet are added (no data is
copied or rewritten: the table points at finemon's own files), and the files it holds that are
gone from the directory (merged by compaction, or removed by the size limit) are removed in the
same commit, so that a reader of the table sees the old snapshot or the new one, never a mix.
Run it again and it registers only what is new; with nothing new it commits nothing.

The catalog is named ``finemon``. Its URI is a SQLAlchemy URL of a SQL catalog (SQLite for one
machine, PostgreSQL for a team) or the http(s) URL of a REST catalog; the default table is
``finemon.metrics``. The table is partitioned on columns the files really hold: ``day(time)``,
``cluster_name`` and ``node_name`` (``identifier`` is only in the paths, see docs/tables.md).
A file whose rows span two UTC days (finemon before it rotated at midnight) cannot be given one
day partition: it is skipped, counted and named in the result.

The files may also be a bucket's objects (:func:`register_bucket`, ``finemon catalog
s3://BUCKET/PREFIX``): the table then points at ``s3://`` paths, and footers are read by byte
ranges through pyarrow's S3 filesystem (pyiceberg's own FileIO for what it reads itself). The
uploader registers what it uploads with :func:`register_changes`: the objects it added and the
objects a compacted one replaced, in one commit, skipping what the table already holds.

pyiceberg (the ``iceberg`` extra) is imported only when a function here runs.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from common.contract import FILE_SUFFIX, PLACEHOLDER_MAGIC
from common.objectstore import ObjectStore, S3Location, StoreSettings, is_dataset_key

if TYPE_CHECKING:
    from pyarrow.parquet import FileMetaData
    from pyiceberg.catalog import Catalog
    from pyiceberg.table import Table


@dataclass(frozen=True, slots=True)
class FileReader:
    """How to read the table's paths (local, or ``s3://``): ``footer`` the Parquet footer,
    ``head`` the first bytes. Both raise OSError (or pyarrow's errors, which are OSError and
    ValueError) for a file that cannot be read."""

    footer: Callable[[str], FileMetaData]
    head: Callable[[str, int], bytes]


def local_reader() -> FileReader:
    """A :class:`FileReader` of local paths."""
    import pyarrow.parquet as pq  # noqa: PLC0415 - footers

    def head(path: str, size: int) -> bytes:
        with open(path, "rb") as f:
            return f.read(size)

    return FileReader(footer=pq.read_metadata, head=head)


log = logging.getLogger("finemon.iceberg")

#: The catalog's name, and the table :func:`register` writes by default.
CATALOG_NAME: Final = "finemon"
DEFAULT_TABLE: Final = "finemon.metrics"
#: The partition fields: (source column, transform, field name).
PARTITION_FIELDS: Final = (
    ("time", "day", "time_day"),
    ("cluster_name", "identity", "cluster_name"),
    ("node_name", "identity", "node_name"),
)
#: Where table metadata goes by default: a folder of the output directory that dataset
#: readers skip (its name starts with ``_``).
DEFAULT_WAREHOUSE_DIR: Final = "_iceberg"


class CatalogError(Exception):
    """The catalog or the table cannot be used (a one-line reason)."""


@dataclass
class Registration:
    """What one :func:`register` did."""

    table: str
    #: Data files added to the table, and those removed from it (gone from the directory).
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    #: Files already in the table.
    known: int = 0
    #: Files left out, with the reason (spanning two days, unreadable).
    skipped: list[tuple[str, str]] = field(default_factory=list)
    #: The snapshot committed, None when nothing changed.
    snapshot_id: int | None = None


def data_files(directory: Path) -> list[Path]:
    """The finished data files under ``directory``, sorted: ``*.parquet`` in no folder and under
    no name that starts with ``_`` or ``.`` (manifests, partial files, the warehouse)."""
    found: list[Path] = []
    for path in directory.rglob(f"*{FILE_SUFFIX}"):
        parts = path.relative_to(directory).parts
        if not any(part.startswith(("_", ".")) for part in parts) and path.is_file():
            found.append(path)
    return sorted(found)


def io_properties(settings: StoreSettings | None) -> dict[str, str]:
    """pyiceberg's FileIO properties for a bucket reached with ``settings`` (endpoint, region);
    credentials stay the standard AWS chain's."""
    if settings is None:
        return {}
    properties: dict[str, str] = {}
    if settings.endpoint_url:
        properties["s3.endpoint"] = settings.endpoint_url
    if settings.region:
        properties["s3.region"] = settings.region
    return properties


def open_catalog(uri: str, warehouse: str | None, store: StoreSettings | None = None) -> Catalog:
    """The ``finemon`` catalog at ``uri``: a REST catalog for an http(s) URL, else a SQL
    catalog (a SQLAlchemy URL). ``store`` tells pyiceberg how to reach a bucket whose objects
    the table holds (:func:`io_properties`). Raises CatalogError when it cannot be opened."""
    extra = io_properties(store)
    try:
        if uri.startswith(("http://", "https://")):
            from pyiceberg.catalog.rest import RestCatalog  # noqa: PLC0415 - the iceberg extra

            properties = {"uri": uri, **({"warehouse": warehouse} if warehouse else {}), **extra}
            return RestCatalog(CATALOG_NAME, **properties)
        from pyiceberg.catalog.sql import SqlCatalog  # noqa: PLC0415 - the iceberg extra

        if warehouse is None:
            raise CatalogError("a SQL catalog needs --warehouse (where table metadata goes)")
        return SqlCatalog(CATALOG_NAME, uri=uri, warehouse=warehouse, **extra)
    except ImportError as exc:
        raise CatalogError(
            f"pyiceberg is not installed ({exc.name}): pip install 'finemon[iceberg]'"
        ) from exc
    except CatalogError:
        raise
    except Exception as exc:  # every driver and HTTP error: a one-line reason
        raise CatalogError(f"cannot open the catalog {uri}: {_one_line(exc)}") from exc


@dataclass(frozen=True, slots=True)
class ListedFile:
    """A data file as listed: its path in the table (absolute, or ``s3://bucket/key``) and its
    size in bytes."""

    path: str
    size_bytes: int


#: Objects this small are not data: a compaction's placeholder over a key being replaced.
_PLACEHOLDER_MAX_BYTES = 4096


def register(
    directory: Path,
    catalog: Catalog,
    table_name: str = DEFAULT_TABLE,
) -> Registration:
    """Bring table ``table_name`` of ``catalog`` up to date with the data files of
    ``directory`` in one commit (created, with its partition spec, on first use); see the
    module's docstring. Raises CatalogError for a bad table name or a failed commit."""
    listing = []
    for path in data_files(directory):
        try:
            listing.append(ListedFile(str(path.resolve()), path.stat().st_size))
        except FileNotFoundError:
            continue  # gone since the listing (compacted): as if never listed
    return register_listing(listing, catalog, table_name, local_reader())


def bucket_reader(location: S3Location, settings: StoreSettings) -> FileReader:
    """A :class:`FileReader` of ``s3://`` paths of ``location``'s bucket, through pyarrow's S3
    filesystem (a footer by byte ranges, not the whole object)."""
    import pyarrow.parquet as pq  # noqa: PLC0415
    from pyarrow import fs  # noqa: PLC0415

    options: dict[str, Any] = {}
    if settings.endpoint_url:
        scheme, _, host = settings.endpoint_url.partition("://")
        options.update(endpoint_override=host.rstrip("/"), scheme=scheme)
    if settings.region:
        options["region"] = settings.region
    filesystem = fs.S3FileSystem(
        connect_timeout=settings.connect_timeout_seconds,
        request_timeout=settings.read_timeout_seconds,
        **options,
    )

    def footer(path: str) -> FileMetaData:
        return pq.read_metadata(path.removeprefix("s3://"), filesystem=filesystem)

    def head(path: str, size: int) -> bytes:
        with filesystem.open_input_file(path.removeprefix("s3://")) as f:
            return bytes(f.read(size))

    return FileReader(footer=footer, head=head)


def s3_path(location: S3Location, key: str) -> str:
    """The path of the object ``key`` in the table: ``s3://bucket/key``."""
    return f"s3://{location.bucket}/{key}"


def register_bucket(
    location: S3Location,
    settings: StoreSettings,
    catalog: Catalog,
    table_name: str = DEFAULT_TABLE,
    *,
    store: ObjectStore | None = None,
) -> Registration:
    """:func:`register` for the objects of a bucket under ``location``'s prefix (the data files
    ``finemon run --upload`` ships: ``dt=*`` keys, no hidden or ``_`` name), as
    ``s3://bucket/key`` paths. Raises CatalogError, and StoreError when the bucket cannot be
    listed."""
    store = store or ObjectStore(location, settings)
    listing = [
        ListedFile(s3_path(location, obj.key), obj.size)
        for obj in store.list_objects()
        if obj.key.endswith(FILE_SUFFIX) and is_dataset_key(location.relative(obj.key))
    ]
    return register_listing(listing, catalog, table_name, bucket_reader(location, settings))


def register_listing(
    listing: Sequence[ListedFile],
    catalog: Catalog,
    table_name: str,
    reader: FileReader,
) -> Registration:
    """Bring the table up to date with ``listing`` (every data file there is) in one commit:
    files it does not hold are added; files it holds that are not listed, or listed with another
    size (an object written again), are removed, the rewritten ones added again. A listed file
    small enough to be a compaction's placeholder is neither added nor removed: its rows come
    back with the compacted file that replaces it. Raises CatalogError."""
    placeholders = {
        f.path
        for f in listing
        if f.size_bytes <= _PLACEHOLDER_MAX_BYTES and _is_placeholder(f.path, reader)
    }
    sizes = {f.path: f.size_bytes for f in listing if f.path not in placeholders}
    table, held, result = _open_table(catalog, table_name, sorted(sizes), reader)
    if table is None:
        return result
    stale = {
        path
        for path, data_file in held.items()
        if path in sizes and data_file.file_size_in_bytes != sizes[path]
    }
    result.known = len((sizes.keys() & held.keys()) - stale)
    new = sorted(path for path in sizes if path not in held or path in stale)
    gone = [
        held[path]
        for path in sorted(held)
        if path in stale or path not in sizes.keys() | placeholders
    ]
    return _commit_changes(table, table_name, catalog, new, gone, reader, result)


def register_changes(
    catalog: Catalog,
    table_name: str,
    added: Sequence[str],
    removed: Sequence[str],
    reader: FileReader,
) -> Registration:
    """Register what changed, without listing everything: ``added`` paths the table does not
    hold yet are added and ``removed`` paths it holds are removed, in one commit (an overwrite
    when both, as a compaction's swap). Idempotent: run again, it commits nothing. Raises
    CatalogError."""
    table, held, result = _open_table(catalog, table_name, list(added), reader)
    if table is None:
        return result
    result.known = len(set(added) & held.keys())
    new = sorted({path for path in added if path not in held})
    gone = [held[path] for path in sorted(set(removed)) if path in held]
    return _commit_changes(table, table_name, catalog, new, gone, reader, result)


def _is_placeholder(path: str, reader: FileReader) -> bool:
    try:
        return reader.head(path, len(PLACEHOLDER_MAGIC)) == PLACEHOLDER_MAGIC
    except (OSError, ValueError):
        return False  # gone or unreadable: not a placeholder (the footer's read says why)


def _open_table(
    catalog: Catalog, table_name: str, paths: Sequence[str], reader: FileReader
) -> tuple[Table | None, dict[str, Any], Registration]:
    """The table (created from the first of ``paths`` when missing; None when missing and
    there is nothing to add) and the data files it holds, by path."""
    namespace, _, name = table_name.rpartition(".")
    if not namespace or not name:
        raise CatalogError(f"table {table_name!r} is not NAMESPACE.NAME")
    result = Registration(table=table_name)
    try:
        table = _existing_table(catalog, table_name)
        if table is None:
            if not paths:
                return None, {}, result
            schema = reader.footer(paths[0]).schema.to_arrow_schema()
            table = _create_table(catalog, namespace, table_name, schema)
        held = {task.file.file_path: task.file for task in table.scan().plan_files()}
    except CatalogError:
        raise
    except Exception as exc:  # the catalog's own errors: a one-line reason
        raise CatalogError(f"cannot read table {table_name}: {_one_line(exc)}") from exc
    return table, held, result


def _commit_changes(
    table: Table,
    table_name: str,
    catalog: Catalog,
    new: Sequence[str],
    gone: Sequence[Any],
    reader: FileReader,
    result: Registration,
) -> Registration:
    addable = _one_day_files(new, result, reader)
    if not addable and not gone:
        return result
    try:
        _commit(table, addable, gone)
    except Exception as exc:  # a conflict or a catalog error: nothing changed
        raise CatalogError(f"cannot commit to {table_name}: {_one_line(exc)}") from exc
    result.added = addable
    result.removed = [data_file.file_path for data_file in gone]
    result.snapshot_id = _current_snapshot(catalog, table_name)
    return result


def _existing_table(catalog: Catalog, table_name: str) -> Table | None:
    from pyiceberg.exceptions import NoSuchTableError  # noqa: PLC0415

    try:
        return catalog.load_table(table_name)
    except NoSuchTableError:
        return None


def _create_table(catalog: Catalog, namespace: str, table_name: str, schema: Any) -> Table:
    """Create ``table_name`` with ``schema`` (a file's Arrow schema) and the partition spec."""
    from pyiceberg.transforms import DayTransform, IdentityTransform, Transform  # noqa: PLC0415

    catalog.create_namespace_if_not_exists(namespace)
    created = catalog.create_table(table_name, schema=schema)
    transforms: dict[str, Transform[Any, Any]] = {
        "day": DayTransform(),
        "identity": IdentityTransform(),
    }
    with created.update_spec() as update:
        for column, transform, field_name in PARTITION_FIELDS:
            update.add_field(column, transforms[transform], field_name)
    return catalog.load_table(table_name)


def _one_day_files(paths: Sequence[str], result: Registration, reader: FileReader) -> list[str]:
    """The files of ``paths`` whose rows lie within one UTC day (the others go to skipped)."""
    kept: list[str] = []
    for path in paths:
        try:
            span = _time_span_days(reader.footer(path))
        except (OSError, ValueError) as exc:
            result.skipped.append((path, f"unreadable: {_one_line(exc)}"))
            continue
        if span is None or span[0] != span[1]:
            reason = "its rows span two UTC days" if span else "no time statistics"
            result.skipped.append((path, reason))
            continue
        kept.append(path)
    for path, reason in result.skipped:
        log.warning("iceberg: %s left out: %s", path, reason)
    return kept


def _time_span_days(metadata: Any) -> tuple[int, int] | None:
    """The first and last UTC day (days since 1970) of a file's ``time`` column, from its
    row-group statistics; None without them."""
    column = metadata.schema.names.index("time")
    first: int | None = None
    last: int | None = None
    for i in range(metadata.num_row_groups):
        stats = metadata.row_group(i).column(column).statistics
        if stats is None or not stats.has_min_max:
            return None
        low, high = _epoch_ms(stats.min), _epoch_ms(stats.max)
        first = low if first is None else min(first, low)
        last = high if last is None else max(last, high)
    if first is None or last is None:
        return None
    day_ms = 86_400_000
    return first // day_ms, last // day_ms


def _epoch_ms(value: Any) -> int:
    """Milliseconds since 1970 of a ``time`` statistic (a datetime, or the raw integer)."""
    if isinstance(value, int):
        return value
    return int(value.timestamp() * 1000)


def _commit(table: Table, added: Sequence[str], gone: Sequence[Any]) -> None:
    """One commit: ``added`` paths appended, ``gone`` data files deleted (an overwrite
    snapshot when both, so that no snapshot holds both a compacted file and its inputs)."""
    if not gone:
        table.add_files(list(added))
        return
    from pyiceberg.io.pyarrow import parquet_file_to_data_file  # noqa: PLC0415

    with (
        table.transaction() as transaction,
        transaction.update_snapshot().overwrite() as overwrite,
    ):
        for data_file in gone:
            overwrite.delete_data_file(data_file)
        for path in added:
            overwrite.append_data_file(
                parquet_file_to_data_file(table.io, transaction.table_metadata, path)
            )


def _current_snapshot(catalog: Catalog, table_name: str) -> int | None:
    snapshot = catalog.load_table(table_name).current_snapshot()
    return None if snapshot is None else snapshot.snapshot_id


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
