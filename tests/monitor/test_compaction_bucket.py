"""``finemon compact s3://BUCKET/PREFIX``: a bucket's partitions compacted in place on moto's S3
server: every row kept once, a reader looping over the bucket never counts a duplicate or a
missing row, a SIGKILL at any step finished by the next run, idempotent."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pyarrow.dataset as ds
import pytest
from tests.monitor.compaction_data import record
from tests.s3_server import MotoServer, running_server

from common.contract import PLACEHOLDER_MAGIC
from common.objectstore import ObjectStore, StoreSettings, parse_s3_url
from finemon.cli import main
from monitor.compaction import bucket
from monitor.compaction.local import CompactionSettings, compact_directory
from monitor.compaction.merge import REPLACES_KEY

SRC = Path(__file__).resolve().parents[2] / "src"
PREFIX = "nodes"
URL = f"s3://fleet/{PREFIX}"
ALL = CompactionSettings(older_than_seconds=0)


@pytest.fixture
def s3(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[MotoServer]:
    yield from running_server(tmp_path, monkeypatch)


def store_of(s3: MotoServer) -> ObjectStore:
    return ObjectStore(parse_s3_url(URL), StoreSettings(endpoint_url=s3.endpoint))


def uploaded(tmp_path: Path, s3: MotoServer, nodes: int = 1) -> Path:
    """Files of ``nodes`` nodes recorded locally and put in the bucket as the uploader lays
    them out; returns the local copy."""
    out = tmp_path / "out"
    for node in range(nodes):
        record(out, ticks=300, ticks_per_file=60, containers=2, identifier=f"node-{node}")
    client = s3.client()
    for path in sorted(out.rglob("*.parquet")):
        key = f"{PREFIX}/{path.relative_to(out).as_posix()}"
        client.put_object(Bucket="fleet", Key=key, Body=path.read_bytes())
    return out


def download(s3: MotoServer, into: Path) -> Path:
    """The bucket's objects under the prefix, into a folder (hidden ones too)."""
    for key, data in s3.objects("fleet").items():
        path = into / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return into / PREFIX


def rows(root: Path) -> list[tuple[object, ...]]:
    table = ds.dataset(root, format="parquet", partitioning="hive").to_table()
    out = []
    for row in table.to_pylist():
        row["labels"] = sorted(row["labels"] or [])
        out.append(tuple(json.dumps(v, default=str) for v in row.values()))
    return sorted(out)


def test_a_bucket_is_compacted_in_place_as_a_directory_is(tmp_path: Path, s3: MotoServer) -> None:
    out = uploaded(tmp_path, s3, nodes=2)
    report = bucket.compact_bucket(store_of(s3), ALL, work_dir=tmp_path)
    assert (report.partitions, report.files_written, report.files_replaced) == (2, 2, 10)
    keys = sorted(s3.objects("fleet"))
    assert len(keys) == 2 and all("-compact-" in key for key in keys)
    assert not any(key.rsplit("/", 1)[1].startswith(".") for key in keys)
    in_bucket = download(s3, tmp_path / "bucket")
    assert rows(in_bucket) == rows(out)
    # The same file as compacting the directory itself: the same name, replaces, rows.
    compact_directory(out, ALL)
    local = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.parquet"))
    assert [key.removeprefix(f"{PREFIX}/") for key in keys] == local
    footer = ds.dataset(in_bucket / local[0]).schema.metadata
    assert len(json.loads(footer[REPLACES_KEY.encode()])) == 5
    # Again: nothing to do, and the temporary folder is gone.
    again = bucket.compact_bucket(store_of(s3), ALL, work_dir=tmp_path)
    assert again.files_written == 0 and sorted(s3.objects("fleet")) == keys
    assert not list(tmp_path.glob("finemon-compact-*"))


def test_only_objects_older_than_the_age(tmp_path: Path, s3: MotoServer) -> None:
    uploaded(tmp_path, s3)
    before = s3.objects("fleet")
    report = bucket.compact_bucket(store_of(s3), CompactionSettings(older_than_seconds=3600))
    assert report.files_written == 0 and s3.objects("fleet") == before


READER = textwrap.dedent(
    """
    import json, sys, time
    from pathlib import Path
    import pyarrow.dataset as ds
    from pyarrow import fs
    endpoint, stop, out = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
    s3 = fs.S3FileSystem(endpoint_override=endpoint.split("://")[1], scheme="http")
    counts, errors = [], []
    while not stop.exists():
        try:
            dataset = ds.dataset("fleet/nodes", filesystem=s3, format="parquet",
                                 partitioning="hive")
            counts.append(dataset.count_rows())
        except Exception as exc:
            errors.append(str(exc))
    out.write_text(json.dumps({"counts": counts, "errors": errors}))
    """
)


def test_a_reader_of_the_bucket_never_counts_a_duplicate_or_a_missing_row(
    tmp_path: Path, s3: MotoServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    uploaded(tmp_path, s3, nodes=3)
    expected = len(rows(download(s3, tmp_path / "before")))
    stop, out = tmp_path / "stop", tmp_path / "seen.json"
    reader = subprocess.Popen(
        [sys.executable, "-c", READER, s3.endpoint, str(stop), str(out)],
        env={**os.environ, "PYTHONPATH": str(SRC)},
    )
    try:
        # Each step held open a little, so that listings fall between every pair of steps.
        monkeypatch.setattr(bucket, "step_hook", lambda name: __import__("time").sleep(0.2))
        report = bucket.compact_bucket(store_of(s3), ALL, work_dir=tmp_path)
    finally:
        stop.touch()
        assert reader.wait(120) == 0
    assert report.files_written == 3
    seen = json.loads(out.read_text())
    assert len(seen["counts"]) >= 5, seen
    assert set(seen["counts"]) == {expected}, seen
    # Listings within a swap fail (a placeholder is not Parquet; an object read while it is
    # replaced or deleted fails to download): an error, and a retry gets the right count.
    assert seen["errors"], "no listing fell within a swap: the test proves nothing"


KILLER = textwrap.dedent(
    """
    import os, signal, sys
    from pathlib import Path
    from common.objectstore import ObjectStore, StoreSettings, parse_s3_url
    from monitor.compaction import bucket
    from monitor.compaction.local import CompactionSettings
    url, endpoint, at, occurrence = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    seen = []
    def hook(name):
        seen.append(name)
        if seen.count(at) == occurrence:
            os.kill(os.getpid(), signal.SIGKILL)
    bucket.step_hook = hook
    store = ObjectStore(parse_s3_url(url), StoreSettings(endpoint_url=endpoint))
    bucket.compact_bucket(store, CompactionSettings(older_than_seconds=0))
    """
)


@pytest.mark.parametrize(
    ("step", "occurrence"),
    [
        ("written", 1),
        ("intent", 1),
        ("placeholder", 1),
        ("placeholder", 3),
        ("published", 1),
        ("removed", 2),
        ("done", 1),
    ],
)
def test_a_sigkill_at_any_step_is_finished_by_the_next_run(
    tmp_path: Path, s3: MotoServer, step: str, occurrence: int
) -> None:
    out = uploaded(tmp_path, s3)
    killed = subprocess.run(
        [sys.executable, "-c", KILLER, URL, s3.endpoint, step, str(occurrence)],
        env={**os.environ, "PYTHONPATH": str(SRC)},
        check=False,
    )
    assert killed.returncode == -9
    left = s3.objects("fleet")
    hidden = [k for k in left if k.rsplit("/", 1)[1].startswith(".")]
    placeholders = [k for k, v in left.items() if v.startswith(PLACEHOLDER_MAGIC)]
    assert hidden or step == "done"
    if step in ("placeholder", "published"):
        assert placeholders  # a listing now fails, rather than count wrong
    report = bucket.compact_bucket(store_of(s3), ALL, work_dir=tmp_path)
    keys = sorted(s3.objects("fleet"))
    assert len(keys) == 1 and "-compact-" in keys[0], keys
    assert rows(download(s3, tmp_path / "after")) == rows(out)
    assert report.interrupted_finished == (1 if step not in ("written", "done") else 0)
    assert report.files_written == (1 if step == "written" else 0)


def test_finemon_compact_on_a_bucket(
    tmp_path: Path, s3: MotoServer, capsys: pytest.CaptureFixture[str]
) -> None:
    uploaded(tmp_path, s3)
    flags = ["--endpoint", s3.endpoint, "--work-dir", str(tmp_path)]
    assert main(["compact", URL, "--older-than", "0s", *flags]) == 0
    out = capsys.readouterr().out
    assert out.startswith("compacted 5 files into 1 in 1 partitions: ")
    assert len(s3.objects("fleet")) == 1
    assert main(["compact", "s3://no-such-bucket/x", "--endpoint", s3.endpoint]) == 1
    err = capsys.readouterr().err
    assert err.startswith("finemon compact: error: LIST") and err.count("\n") == 1
