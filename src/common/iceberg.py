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

pyiceberg (the ``iceberg`` extra) is imported only when a function here runs.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from common.contract import FILE_SUFFIX

if TYPE_CHECKING:
    from pyiceberg.catalog import Catalog
    from pyiceberg.table import Table

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


def open_catalog(uri: str, warehouse: str | None) -> Catalog:
    """The ``finemon`` catalog at ``uri``: a REST catalog for an http(s) URL, else a SQL
    catalog (a SQLAlchemy URL). Raises CatalogError when it cannot be opened."""
    try:
        if uri.startswith(("http://", "https://")):
            from pyiceberg.catalog.rest import RestCatalog  # noqa: PLC0415 - the iceberg extra

            properties = {"uri": uri, **({"warehouse": warehouse} if warehouse else {})}
            return RestCatalog(CATALOG_NAME, **properties)
        from pyiceberg.catalog.sql import SqlCatalog  # noqa: PLC0415 - the iceberg extra

        if warehouse is None:
            raise CatalogError("a SQL catalog needs --warehouse (where table metadata goes)")
        return SqlCatalog(CATALOG_NAME, uri=uri, warehouse=warehouse)
    except ImportError as exc:
        raise CatalogError(
            f"pyiceberg is not installed ({exc.name}): pip install 'finemon[iceberg]'"
        ) from exc
    except CatalogError:
        raise
    except Exception as exc:  # every driver and HTTP error: a one-line reason
        raise CatalogError(f"cannot open the catalog {uri}: {_one_line(exc)}") from exc


def register(
    directory: Path,
    catalog: Catalog,
    table_name: str = DEFAULT_TABLE,
) -> Registration:
    """Bring table ``table_name`` of ``catalog`` up to date with the data files of
    ``directory`` in one commit (created, with its partition spec, on first use); see the
    module's docstring. Raises CatalogError for a bad table name or a failed commit."""
    import pyarrow.parquet as pq  # noqa: PLC0415 - the table's schema, from a file's footer

    namespace, _, name = table_name.rpartition(".")
    if not namespace or not name:
        raise CatalogError(f"table {table_name!r} is not NAMESPACE.NAME")
    result = Registration(table=table_name)
    paths = [str(path.resolve()) for path in data_files(directory)]
    try:
        table = _existing_table(catalog, table_name)
        if table is None:
            if not paths:
                return result
            schema = pq.read_schema(paths[0])
            table = _create_table(catalog, namespace, table_name, schema)
        held = {task.file.file_path: task.file for task in table.scan().plan_files()}
    except CatalogError:
        raise
    except Exception as exc:  # the catalog's own errors: a one-line reason
        raise CatalogError(f"cannot read table {table_name}: {_one_line(exc)}") from exc
    present = set(paths)
    result.known = len(present & held.keys())
    new = [path for path in paths if path not in held]
    gone = [held[path] for path in held if path not in present]
    addable = _one_day_files(new, result)
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


def _one_day_files(paths: Sequence[str], result: Registration) -> list[str]:
    """The files of ``paths`` whose rows lie within one UTC day (the others go to skipped)."""
    import pyarrow.parquet as pq  # noqa: PLC0415

    kept: list[str] = []
    for path in paths:
        try:
            span = _time_span_days(pq.read_metadata(path))
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
