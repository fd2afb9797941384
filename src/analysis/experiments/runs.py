"""The runs of a dataset as their manifests describe them (``_sessions/<run_id>.json``):
experiment, variant, node and times. A manifest that cannot be read is left out: the runs
it described are still in the files, only their experiment and variant are unknown."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from common.contract import SESSION_MANIFEST, SESSIONS_DIR


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
        document = json.loads(path.read_bytes())
    except (OSError, ValueError):
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


def read_run_manifests(directory: Path) -> dict[str, RunManifest]:
    """The manifests of the runs of ``directory`` (an output dir, or its mirror), by run id:
    ``_sessions/*.json`` and ``_session.json``. Empty for a single Parquet file or a folder
    without manifests; unreadable manifests are skipped."""
    if not directory.is_dir():
        return {}
    found: dict[str, RunManifest] = {}
    paths = [*sorted((directory / SESSIONS_DIR).glob("*.json")), directory / SESSION_MANIFEST]
    for path in paths:
        manifest = _manifest(path)
        if manifest is not None:
            found.setdefault(manifest.run_id, manifest)
    return found
