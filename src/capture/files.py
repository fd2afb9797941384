"""Crash-safe file plumbing: temporary names, atomic publication, fsync."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pyarrow as pa

# The writer class itself, not ``pyarrow.parquet``: that module imports ``pyarrow.fs`` and with it
# the S3, GCS and Azure filesystems and OpenSSL, memory a writing process would never use.
from pyarrow._parquet import ParquetWriter

from capture.summary import SummaryBuilder

#: Suffix of a Parquet file still being written (never ``.parquet``: globs must not see it).
PARTIAL_SUFFIX = ".partial"
#: Suffix of a journal file.
JOURNAL_SUFFIX = ".journal"
#: Suffix of a journal that recovery could not read, renamed and kept for inspection.
CORRUPT_JOURNAL_SUFFIX = JOURNAL_SUFFIX + ".corrupt"

_STRING_COLUMNS_ALWAYS = ("run_id", "metric_name", "metric_kind")


def partial_path(final: Path) -> Path:
    """Hidden temporary name of ``final`` while it is written: ``.<name>.partial``."""
    return final.with_name(f".{final.name}{PARTIAL_SUFFIX}")


def journal_path(final: Path) -> Path:
    """Hidden journal name of ``final``: ``.<name>.journal``."""
    return final.with_name(f".{final.name}{JOURNAL_SUFFIX}")


def final_from_journal(journal: Path) -> Path:
    """Inverse of :func:`journal_path`."""
    name = journal.name
    assert name.startswith(".") and name.endswith(JOURNAL_SUFFIX)
    return journal.with_name(name[1 : -len(JOURNAL_SUFFIX)])


def fsync_dir(directory: Path) -> None:
    """fsync a directory so a rename in it survives a power loss (best effort)."""
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def statistics_columns(schema: pa.Schema) -> list[str]:
    """The columns given min/max statistics: every column but the label maps (whose keys and
    values no reader prunes by).

    Readers filter on all of them, and some trust their absence: deltalake's pyarrow path turns
    a column without statistics into a filter that skips every file (``metric_name = '...'``
    returned no row). A row group holds a range of series sorted by name, so ``metric_name``'s
    range also prunes. What they cost: docs/benchmarks.md (Parquet statistics).
    """
    return [f.name for f in schema if not pa.types.is_map(f.type)]


def parquet_options(schema: pa.Schema, compression_level: int) -> dict[str, Any]:
    """Writer options: ZSTD, dictionaries for strings, delta encoding for integer sequences."""
    strings = [
        f.name for f in schema if pa.types.is_string(f.type) or pa.types.is_dictionary(f.type)
    ]
    strings += [f"{f.name}.key_value.key" for f in schema if pa.types.is_map(f.type)]
    strings += [f"{f.name}.key_value.value" for f in schema if pa.types.is_map(f.type)]
    return {
        "compression": "zstd",
        "compression_level": compression_level,
        "use_dictionary": strings,
        "column_encoding": {
            "time": "DELTA_BINARY_PACKED",
            "fetch_index": "DELTA_BINARY_PACKED",
            "value_int": "DELTA_BINARY_PACKED",
            "value_float": "BYTE_STREAM_SPLIT",
        },
        "write_statistics": statistics_columns(schema),
        # Readers take the column types from the Parquet logical types: dictionary-encoded
        # strings read back as plain strings, timestamps as timestamp[ms, UTC].
        "store_schema": False,
    }


class ParquetFile:
    """A Parquet file written under a hidden temporary name and published by rename.

    Nothing is ever visible under ``final`` until :meth:`finalize` has written the footer and
    synced the data. Construction raises OSError when the directory is not writable or the disk
    is full, and then leaves no temporary file behind.
    """

    def __init__(
        self,
        final: Path,
        schema: pa.Schema,
        compression_level: int = 3,
        metadata: dict[str, str] | None = None,
        summary: SummaryBuilder | None = None,
    ) -> None:
        self.final = final
        #: Counts the rows written (the tables' builders feed it); its summary goes into the
        #: footer at :meth:`finalize` (:mod:`capture.summary`).
        self.summary = summary
        self.partial = partial_path(final)
        final.parent.mkdir(parents=True, exist_ok=True)
        self.schema = schema
        self.rows = 0
        self.row_groups = 0
        #: The metric names of the rows written (a table's ``metric_name`` dictionary holds the
        #: names its rows use).
        self.metric_names: set[str] = set()
        #: Set when a write failed: the file is then rebuilt from its journal.
        self.failed = False
        try:
            self._writer: ParquetWriter | None = ParquetWriter(
                str(self.partial),
                schema,
                # What pyarrow.parquet.ParquetWriter passes by default.
                version="2.6",
                data_page_version="1.0",
                writer_engine_version="V2",
                **parquet_options(schema, compression_level),
            )
        except BaseException:
            # Created, but its first bytes could not be written (a full disk): not left behind.
            self.partial.unlink(missing_ok=True)
            raise
        if metadata:
            self._writer.add_key_value_metadata(metadata)

    def write(self, table: pa.Table) -> None:
        """Append ``table`` as one row group. Raises OSError (e.g. disk full)."""
        if table.num_rows == 0:
            return
        assert self._writer is not None, "file already finalized"
        if not table.schema.equals(self.schema):
            table = table.cast(self.schema)  # (loads pyarrow.compute: the builders avoid it)
        self._writer.write_table(table, row_group_size=table.num_rows)
        self.rows += table.num_rows
        self.row_groups += 1
        if "metric_name" in table.column_names:
            # Dictionary-encoded in the capture schema (the table was cast to it above), with a
            # dictionary of only the names its rows use; a schema without one names nothing,
            # and the file then keeps every description.
            for chunk in table["metric_name"].chunks:
                if pa.types.is_dictionary(chunk.type):
                    self.metric_names.update(chunk.dictionary.to_pylist())

    def set_metadata(self, metadata: dict[str, str]) -> None:
        """Replace these key-value metadata entries (written in the footer by :meth:`finalize`)."""
        assert self._writer is not None, "file already finalized"
        self._writer.add_key_value_metadata(metadata)

    def finalize(self) -> Path:
        """Write the footer, fsync, and rename to the final name; returns the final path."""
        writer, self._writer = self._writer, None
        if writer is None:
            return self.final
        if self.summary is not None:
            found = self.summary.metadata()
            if found:
                writer.add_key_value_metadata(found)
        writer.close()
        fd = os.open(self.partial, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(self.partial, self.final)
        fsync_dir(self.final.parent)
        return self.final

    def abandon(self) -> None:
        """Close and delete the temporary file (the journal keeps the data)."""
        writer, self._writer = self._writer, None
        if writer is not None:
            try:
                writer.close()
            except OSError:
                pass
        try:
            self.partial.unlink()
        except FileNotFoundError:
            pass


def write_parquet_atomically(
    final: Path,
    schema: pa.Schema,
    tables: Iterable[pa.Table],
    compression_level: int,
    metadata: dict[str, str] | None = None,
    summary: SummaryBuilder | None = None,
) -> int:
    """Write ``tables`` (a row group each) to ``final`` through a temporary name; returns the
    rows written. Tables without a row publish nothing (0 is returned): a file of no rows would
    only clutter the dataset. ``summary`` (fed by whoever makes ``tables``) goes into the
    footer."""
    out = ParquetFile(final, schema, compression_level, metadata, summary)
    try:
        for table in tables:
            out.write(table)
        if out.rows:
            out.finalize()
        else:
            out.abandon()
        return out.rows
    except BaseException:
        out.abandon()
        raise
