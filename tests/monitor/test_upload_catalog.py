"""``finemon run --upload ... --upload-catalog-uri URI``: the uploader registers what it ships in
an Iceberg table (s3:// paths, in place), a compacted object's swap as one commit; moto's S3
server, a SQLite catalog, pyiceberg reading the objects back."""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.monitor.compaction_data import record
from tests.s3_server import MotoServer, running_server

from common.iceberg import open_catalog
from common.objectstore import ObjectStore, StoreError, StoreSettings, parse_s3_url
from monitor.compaction.local import CompactionSettings, compact_directory
from monitor.shipping.catalog import TableRegistrar
from monitor.shipping.flags import add_upload_arguments, upload_config, uploader_command
from monitor.shipping.ship import Uploader

pytest.importorskip("pyiceberg", reason="pyiceberg is in the dev extra (iceberg)")

URL = "s3://fleet/nodes"
SRC = Path(__file__).resolve().parents[2] / "src"


@pytest.fixture
def s3(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[MotoServer]:
    yield from running_server(tmp_path, monkeypatch)


def warehouse(tmp_path: Path) -> str:
    # Local: pyarrow's S3 writer cannot complete a multipart upload on moto (see
    # tests/tables/test_iceberg_s3.py), and pyiceberg writes table metadata with it.
    return (tmp_path / "warehouse").as_uri()


def uploader(out: Path, s3: MotoServer, uri: str, tmp_path: Path, delete: bool) -> Uploader:
    settings = StoreSettings(endpoint_url=s3.endpoint)
    location = parse_s3_url(URL)
    registrar = TableRegistrar(location, settings, uri, "finemon.metrics", warehouse(tmp_path))
    return Uploader(out, ObjectStore(location, settings), delete=delete, registrar=registrar)


def table(uri: str, s3: MotoServer, tmp_path: Path):  # type: ignore[no-untyped-def]
    settings = StoreSettings(endpoint_url=s3.endpoint)
    return open_catalog(uri, warehouse(tmp_path), settings).load_table("finemon.metrics")


def test_uploaded_objects_are_registered_once_then_deleted_locally(
    tmp_path: Path, s3: MotoServer
) -> None:
    out = tmp_path / "out"
    record(out, ticks=120, ticks_per_file=60, containers=2)
    files = sorted(out.rglob("*.parquet"))
    uri = f"sqlite:///{tmp_path}/catalog.db"
    first = uploader(out, s3, uri, tmp_path, delete=True)
    assert first.run_pass()
    assert first.counters.registered_objects == 2
    held = table(uri, s3, tmp_path)
    assert sorted(r["file_path"] for r in held.inspect.files().to_pylist()) == [
        f"{URL}/{p.relative_to(out).as_posix()}" for p in files
    ]
    assert held.scan().to_arrow().num_rows > 0
    assert not any(p.exists() for p in files)  # deleted once stored and registered
    # A new uploader (a restart) on a new file: only it is added, in one more snapshot.
    record(out, ticks=60, ticks_per_file=60, containers=2, start_seconds=1_706_745_600 - 3600)
    second = uploader(out, s3, uri, tmp_path, delete=False)
    assert second.run_pass()
    held = table(uri, s3, tmp_path)
    assert len(held.inspect.files()) == 3 and len(held.snapshots()) == 2
    # Again, with nothing new: no commit.
    third = uploader(out, s3, uri, tmp_path, delete=False)
    assert third.run_pass() and len(table(uri, s3, tmp_path).snapshots()) == 2


def test_a_failed_registration_keeps_the_files_until_it_succeeds(
    tmp_path: Path, s3: MotoServer
) -> None:
    out = tmp_path / "out"
    record(out, ticks=120, ticks_per_file=60, containers=2)
    files = sorted(out.rglob("*.parquet"))
    broken = uploader(out, s3, "nosuchdriver://x", tmp_path, delete=True)
    with pytest.raises(StoreError, match=r"catalog finemon\.metrics"):
        broken.run_pass()
    assert all(p.exists() for p in files)  # stored, not registered: kept
    assert broken.counters.pending_files == 2
    uri = f"sqlite:///{tmp_path}/catalog.db"
    assert broken.registrar is not None
    broken.registrar = uploader(out, s3, uri, tmp_path, delete=True).registrar  # the catalog back
    assert broken.run_pass()
    assert len(table(uri, s3, tmp_path).inspect.files()) == 2
    assert not any(p.exists() for p in files)


def test_a_compacted_object_swaps_its_inputs_in_one_commit(tmp_path: Path, s3: MotoServer) -> None:
    out = tmp_path / "out"
    record(out, ticks=300, ticks_per_file=60, containers=2)
    uri = f"sqlite:///{tmp_path}/catalog.db"
    flags = ["--catalog-uri", uri, "--catalog-warehouse", warehouse(tmp_path)]

    def upload_once() -> str:
        done = subprocess.run(
            [sys.executable, "-m", "monitor.shipping", "--output-dir", str(out), "--to", URL,
             "--endpoint", s3.endpoint, "--once", *flags],
            capture_output=True, text=True, check=False,
            env={**os.environ, "PYTHONPATH": str(SRC)},
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        return done.stderr

    upload_once()
    before = table(uri, s3, tmp_path)
    rows = before.scan().to_arrow().num_rows
    assert len(before.inspect.files()) == 5
    compact_directory(out, CompactionSettings(older_than_seconds=0))
    log = upload_once()
    assert "registered table=finemon.metrics added=1 removed=5" in log
    after = table(uri, s3, tmp_path)
    assert [r["file_path"].rsplit("/", 1)[1] for r in after.inspect.files().to_pylist()] == [
        p.name for p in out.rglob("*.parquet")
    ]
    snapshots = after.snapshots()
    assert len(snapshots) == 2 and snapshots[-1].summary is not None
    assert snapshots[-1].summary.operation.value == "overwrite"
    assert after.scan().to_arrow().num_rows == rows  # nothing lost, nothing twice


def test_finemon_run_passes_the_catalog_to_the_uploader(tmp_path: Path) -> None:
    parser = argparse.ArgumentParser()
    add_upload_arguments(parser)
    args = parser.parse_args(
        ["--upload", URL, "--upload-catalog-uri", "sqlite:///c.db", "--upload-catalog-table",
         "fleet.metrics"]
    )  # fmt: skip
    config = upload_config(args)
    assert config is not None
    command = uploader_command(config, tmp_path, 1)
    assert command[command.index("--catalog-uri") + 1] == "sqlite:///c.db"
    assert command[command.index("--catalog-table") + 1] == "fleet.metrics"
    for bad, message in (
        (["--upload-catalog-uri", "sqlite:///c.db"], "needs --upload"),
        (["--upload", URL, "--upload-catalog-table", "metrics"], "NAMESPACE.NAME"),
        (["--upload", URL, "--upload-catalog-warehouse", "/w"], "needs --upload-catalog-uri"),
    ):
        with pytest.raises(ValueError, match=re.escape(message)):
            upload_config(parser.parse_args(bad))


def test_objects_compacted_before_they_were_registered_are_not_added(
    tmp_path: Path, s3: MotoServer
) -> None:
    out = tmp_path / "out"
    record(out, ticks=300, ticks_per_file=60, containers=2)
    rows = sum(1 for _ in out.rglob("*.parquet"))
    broken = uploader(out, s3, "nosuchdriver://x", tmp_path, delete=False)
    with pytest.raises(StoreError):
        broken.run_pass()  # the five inputs stored, not registered
    compact_directory(out, CompactionSettings(older_than_seconds=0))
    uri = f"sqlite:///{tmp_path}/catalog.db"
    broken.registrar = uploader(out, s3, uri, tmp_path, delete=False).registrar
    assert broken.run_pass()
    held = table(uri, s3, tmp_path)
    files = [r["file_path"].rsplit("/", 1)[1] for r in held.inspect.files().to_pylist()]
    assert files == [p.name for p in out.rglob("*.parquet")] and rows == 5
    assert len(held.snapshots()) == 1
