"""The uploader's Iceberg registration: ``finemon run --upload ... --upload-catalog-uri URI``.

After each pass that uploaded data objects (or found them already stored), the uploader calls a
:class:`TableRegistrar` with their ``s3://`` paths and the paths of the objects compacted ones
replaced; it registers them in one commit (:func:`common.iceberg.register_changes`: what the
table holds already is skipped, so a restarted uploader registering again commits nothing).
pyiceberg is imported on the first registration, in the uploader's process only.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from common.objectstore import S3Location, StoreError, StoreSettings

log = logging.getLogger("finemon.upload")

#: The default warehouse of a SQL catalog: beside the data, under a name readers skip.
WAREHOUSE_DIR = "_iceberg"


class CatalogUnavailableError(StoreError):
    """The catalog could not be opened or refused the commit (a one-line reason); the uploader
    retries with its backoff, as for a store failure."""


@dataclass
class TableRegistrar:
    """Registers uploaded objects of ``location`` in ``table`` of the catalog at ``uri``."""

    location: S3Location
    settings: StoreSettings
    uri: str
    table: str
    warehouse: str | None = None
    _catalog: Any = field(default=None, repr=False)
    _reader: Any = field(default=None, repr=False)

    def path(self, key: str) -> str:
        """The table's path of the object ``key``."""
        return f"s3://{self.location.bucket}/{key}"

    def __call__(self, added: Sequence[str], removed: Sequence[str]) -> None:
        """Register the objects at ``added`` keys and unregister those at ``removed`` keys, in
        one commit. Raises :class:`CatalogUnavailableError`."""
        from common.iceberg import (  # noqa: PLC0415 - pyiceberg, only with a catalog
            CatalogError,
            bucket_reader,
            open_catalog,
            register_changes,
        )

        try:
            if self._catalog is None:
                rest = self.uri.startswith(("http://", "https://"))
                warehouse = self.warehouse
                if warehouse is None and not rest:
                    warehouse = f"{self.location.url}/{WAREHOUSE_DIR}"
                self._catalog = open_catalog(self.uri, warehouse, self.settings)
                self._reader = bucket_reader(self.location, self.settings)
            result = register_changes(
                self._catalog,
                self.table,
                [self.path(k) for k in added],
                [self.path(k) for k in removed],
                self._reader,
            )
        except CatalogError as exc:
            raise CatalogUnavailableError(f"catalog {self.table}: {exc}") from None
        for path, reason in result.skipped:
            log.warning("not registered path=%s reason=%s", path, reason)
        if result.snapshot_id is not None:
            log.info(
                "registered table=%s added=%d removed=%d snapshot=%d",
                self.table,
                len(result.added),
                len(result.removed),
                result.snapshot_id,
            )
