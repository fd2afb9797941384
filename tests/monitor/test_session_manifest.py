"""The session manifest: atomic writes, both names, git revision."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from tests.small_disk import SmallDisk

from monitor.layout import OutputLayout
from monitor.manifest import (
    SessionManifest,
    git_revision,
    iso_utc,
    read_manifest,
    write_json_atomically,
)


def test_written_under_both_names(tmp_path: Path) -> None:
    layout = OutputLayout(tmp_path, "n", "run1")
    manifest = SessionManifest(layout, {"run_id": "run1", "end_time": None})
    manifest.write(0.0)
    manifest.update(end_time="later", reason="signal")
    manifest.write(1.5)
    for path in (tmp_path / "_session.json", tmp_path / "_sessions" / "run1.json"):
        document = json.loads(path.read_text())
        assert document["run_id"] == "run1"
        assert document["reason"] == "signal"
        assert document["updated_time"] == "1970-01-01T00:00:01.500Z"
        assert document["format"] == 1
    assert read_manifest(tmp_path / "_session.json") == document
    # Leftover temporaries would be hidden, but there are none.
    assert sorted(p.name for p in tmp_path.rglob("*")) == [
        "_session.json",
        "_sessions",
        "run1.json",
    ]


def test_a_new_run_keeps_the_previous_runs_manifest(tmp_path: Path) -> None:
    for run_id in ("a", "b"):
        SessionManifest(OutputLayout(tmp_path, "n", run_id), {"run_id": run_id}).write(0.0)
    assert sorted(p.name for p in (tmp_path / "_sessions").iterdir()) == ["a.json", "b.json"]
    assert json.loads((tmp_path / "_session.json").read_text())["run_id"] == "b"


def test_failed_write_keeps_the_old_content(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "_session.json"
    write_json_atomically(path, {"v": 1})

    def broken_replace(src: str, dst: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="No space"):
        write_json_atomically(path, {"v": 2})
    assert json.loads(path.read_text()) == {"v": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["_session.json"]


def test_read_manifest_tolerates_junk(tmp_path: Path) -> None:
    assert read_manifest(tmp_path / "missing.json") is None
    (tmp_path / "bad.json").write_text("{not json")
    assert read_manifest(tmp_path / "bad.json") is None
    (tmp_path / "list.json").write_text("[1]")
    assert read_manifest(tmp_path / "list.json") is None


def test_git_revision(tmp_path: Path) -> None:
    assert git_revision("deadbeef") == "deadbeef"
    assert git_revision(None, source=tmp_path) is None  # not a checkout
    found = git_revision(None)
    assert found is None or len(found) == 40


def test_iso_utc() -> None:
    assert iso_utc(1_700_000_000.1234) == "2023-11-14T22:13:20.123Z"


def test_an_unwritable_runs_folder_leaves_the_manifest_in_session_json(tmp_path: Path) -> None:
    (tmp_path / "_sessions").write_text("a file where the folder should be")
    manifest = SessionManifest(OutputLayout(tmp_path, "n", "run1"), {"run_id": "run1"})
    failed = manifest.write(0.0)
    assert [path for path, _ in failed] == [tmp_path / "_sessions" / "run1.json"]
    assert json.loads((tmp_path / "_session.json").read_text())["run_id"] == "run1"


@pytest.mark.root
def test_on_a_full_disk_a_manifest_is_overwritten_in_place(small_disk: SmallDisk) -> None:
    layout = OutputLayout(small_disk.root, "n", "run1")
    manifest = SessionManifest(layout, {"run_id": "run1", "end_time": None, "reason": None})
    assert manifest.write(0.0) == []
    small_disk.fill()
    with pytest.raises(OSError, match="No space"):
        write_json_atomically(small_disk.root / "probe.json", {"a": 1})
    manifest.update(end_time="2024-01-31T23:59:30.125Z", reason="disk_full")
    assert manifest.write(1.0) == []
    for path in manifest.paths:
        document = json.loads(path.read_text())  # valid JSON (padded with spaces at most)
        assert document["end_time"] == "2024-01-31T23:59:30.125Z"
        assert document["reason"] == "disk_full"
    assert sorted(p.name for p in small_disk.root.rglob("*")) == [
        "_session.json",
        "_sessions",
        "filler",
        "run1.json",
    ]
    # A shorter document is padded to the old length: no stale tail of the longer one.
    manifest.document.pop("end_time")
    assert manifest.write(2.0) == []
    assert "end_time" not in json.loads(layout.session_manifest.read_text())
    # A new run's manifest has no blocks to be written in: reported, not raised.
    other = SessionManifest(OutputLayout(small_disk.root, "n", "run2"), {"run_id": "run2"})
    failed = other.write(3.0)
    assert [path for path, _ in failed] == [layout.root / "_sessions" / "run2.json"]
    assert json.loads(layout.session_manifest.read_text())["run_id"] == "run2"
