"""The runs of a dataset as their manifests describe them (``_sessions/<run_id>.json``):
experiment, variant, node and times. A manifest that cannot be read is left out: the runs
it described are still in the files, only their experiment and variant are unknown."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from analysis.source import Source
from common.contract import SESSION_MANIFEST, SESSIONS_DIR

if TYPE_CHECKING:
    from analysis.objects import DataObjects


@dataclass(frozen=True, slots=True)
class RunManifest:
    """What a run's manifest says about it (None where it says nothing)."""

    run_id: str
    experiment: str | None
    variant: str | None
    node_name: str | None
    start_time: datetime | None
    end_time: datetime | None


def _text(document: Mapping[str, object], key: str) -> str | None:
    value = document.get(key)
    return value if isinstance(value, str) and value else None


def _time(document: Mapping[str, object], key: str) -> datetime | None:
    text = _text(document, key)
    if text is None:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


def _manifest(path: Path) -> RunManifest | None:
    try:
        content = path.read_bytes()
    except OSError:
        return None
    return _parsed(content)


def _parsed(content: bytes) -> RunManifest | None:
    try:
        document = json.loads(content)
    except ValueError:
        return None
    if not isinstance(document, dict) or not isinstance(document.get("run_id"), str):
        return None
    return RunManifest(
        run_id=document["run_id"],
        experiment=_text(document, "experiment"),
        variant=_text(document, "variant"),
        node_name=_text(document, "node_name"),
        start_time=_time(document, "start_time"),
        end_time=_time(document, "end_time"),
    )


def read_run_manifests(
    directory: Path | Source, objects: DataObjects | None = None
) -> dict[str, RunManifest]:
    """The manifests of the runs of ``directory`` (an output dir, or a bucket's source and its
    ``objects`` when already listed), by run id: ``_sessions/*.json`` and ``_session.json``.
    Empty for a single Parquet file or a folder without manifests; unreadable manifests are
    skipped. Raises :class:`analysis.errors.AnalysisError` when a bucket cannot be listed."""
    found: dict[str, RunManifest] = {}
    if isinstance(directory, Source):
        if directory.local is None:
            if objects is None:
                from analysis.objects import DataObjects  # noqa: PLC0415 - s3:// only

                objects = DataObjects(directory)
            if not objects.has_listing:
                objects.refresh()
            for _, content in objects.manifests():
                manifest = _parsed(content)
                if manifest is not None:
                    found.setdefault(manifest.run_id, manifest)
            return found
        directory = directory.local
    if not directory.is_dir():
        return {}
    paths = [*sorted((directory / SESSIONS_DIR).glob("*.json")), directory / SESSION_MANIFEST]
    for path in paths:
        manifest = _manifest(path)
        if manifest is not None:
            found.setdefault(manifest.run_id, manifest)
    return found
