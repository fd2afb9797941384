"""The uploader and compaction: compacted files go up, the objects they replace go away in the
bucket too (moto's S3 server, the real uploader process)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.monitor.compaction_data import record
from tests.s3_server import MotoServer, running_server

from monitor.compaction import swap
from monitor.compaction.local import CompactionSettings, compact_directory

BUCKET = "fleet"
PREFIX = "nodes"
SRC = Path(__file__).resolve().parents[2] / "src"


@pytest.fixture
def s3(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[MotoServer]:
    yield from running_server(tmp_path, monkeypatch)


def upload_once(out: Path, s3: MotoServer) -> str:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "monitor.shipping",
            "--output-dir",
            str(out),
            "--to",
            f"s3://{BUCKET}/{PREFIX}",
            "--endpoint",
            s3.endpoint,
            "--once",
            "--log-level",
            "DEBUG",
        ],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "PYTHONPATH": str(SRC)},
    )
    assert done.returncode == 0, done.stderr
    return done.stderr


def local_objects(out: Path) -> dict[str, bytes]:
    return {
        f"{PREFIX}/{p.relative_to(out).as_posix()}": p.read_bytes()
        for p in sorted(out.rglob("*.parquet"))
    }


def test_compacted_files_replace_their_inputs_in_the_bucket(tmp_path: Path, s3: MotoServer) -> None:
    out = tmp_path / "out"
    record(out, ticks=300, ticks_per_file=60, containers=2)
    upload_once(out, s3)
    assert s3.objects(BUCKET) == local_objects(out)
    compact_directory(out, CompactionSettings(older_than_seconds=0))
    log = upload_once(out, s3)
    assert s3.objects(BUCKET) == local_objects(out)
    assert len(s3.objects(BUCKET)) == 1
    assert "deleted replaced object" in log


def test_a_restarted_uploader_deletes_what_an_earlier_one_left(
    tmp_path: Path, s3: MotoServer
) -> None:
    out = tmp_path / "out"
    record(out, ticks=300, ticks_per_file=60, containers=2)
    upload_once(out, s3)
    inputs = s3.objects(BUCKET)
    compact_directory(out, CompactionSettings(older_than_seconds=0))
    upload_once(out, s3)
    # As if the uploader had been killed after the compacted file went up, before the deletes.
    client = s3.client()
    for key, data in inputs.items():
        client.put_object(Bucket=BUCKET, Key=key, Body=data)
    upload_once(out, s3)
    assert s3.objects(BUCKET) == local_objects(out)


def test_placeholders_are_never_uploaded(tmp_path: Path, s3: MotoServer) -> None:
    out = tmp_path / "out"
    record(out, ticks=300, ticks_per_file=60, containers=2)
    victim = sorted(out.rglob("*.parquet"))[0]
    swap._place_placeholder(victim, victim.with_name("finemon-x-compact-0.parquet"))
    upload_once(out, s3)
    objects = s3.objects(BUCKET)
    assert f"{PREFIX}/{victim.relative_to(out).as_posix()}" not in objects
    assert len(objects) == len(list(out.rglob("*.parquet"))) - 1
