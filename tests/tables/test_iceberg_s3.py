"""``finemon catalog s3://BUCKET/PREFIX``: a bucket's objects registered in an Iceberg table in
place (``s3://`` paths), on a real S3 HTTP server (moto) and a SQLite catalog, read back through
pyiceberg's own S3 FileIO."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from common.contract import PLACEHOLDER_MAGIC
from common.iceberg import open_catalog
from common.objectstore import StoreSettings
from finemon.cli import main
from tests.s3_server import MotoServer, running_server
from tests.tables.recorded import DAY_START, record, write_file

pytest.importorskip("pyiceberg", reason="pyiceberg is in the dev extra (iceberg)")

PREFIX = "clusters/prod"
URL = f"s3://fleet/{PREFIX}"


@pytest.fixture
def s3(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[MotoServer]:
    yield from running_server(tmp_path, monkeypatch)


def put(s3: MotoServer, root: Path, path: Path) -> str:
    key = f"{PREFIX}/{path.relative_to(root).as_posix()}"
    s3.client().put_object(Bucket="fleet", Key=key, Body=path.read_bytes())
    return key


def warehouse(tmp_path: Path) -> str:
    """The table's metadata, kept locally: pyarrow's S3 writer (which pyiceberg writes metadata
    with) cannot complete a multipart upload on moto ("error embedded in a 200 OK response"),
    so the default warehouse in the bucket, ``URL/_iceberg``, is not used here."""
    return (tmp_path / "warehouse").as_uri()


def catalog(tmp_path: Path, s3: MotoServer) -> tuple[int, str]:
    """``finemon catalog URL`` into ``tmp_path/catalog.db``; returns the exit code and the
    catalog's URI."""
    uri = f"sqlite:///{tmp_path}/catalog.db"
    flags = ["--uri", uri, "--endpoint", s3.endpoint, "--warehouse", warehouse(tmp_path)]
    return main(["catalog", URL, *flags]), uri


def table_of(uri: str, s3: MotoServer, tmp_path: Path):  # type: ignore[no-untyped-def]
    settings = StoreSettings(endpoint_url=s3.endpoint)
    return open_catalog(uri, warehouse(tmp_path), settings).load_table("finemon.metrics")


def test_a_bucket_is_registered_in_place_and_read_back(
    tmp_path: Path, s3: MotoServer, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "data"
    record(data)
    for path in sorted(data.rglob("*.parquet")):
        put(s3, data, path)
    code, uri = catalog(tmp_path, s3)
    out = capsys.readouterr().out
    assert code == 0, out
    assert out.startswith("finemon.metrics: 2 files added, 0 removed, 0 already registered")
    table = table_of(uri, s3, tmp_path)
    paths = sorted(row["file_path"] for row in table.inspect.files().to_pylist())
    assert paths == [
        f"{URL}/dt=2026-12-07/identifier=node-1/f0.parquet",
        f"{URL}/dt=2026-12-07/identifier=node-2/f1.parquet",
    ]
    # pyiceberg reads the objects themselves, through its S3 FileIO.
    assert table.scan().to_arrow().num_rows == 40
    node2 = table.scan(row_filter="node_name = 'node-2'")
    assert len(list(node2.plan_files())) == 1 and node2.to_arrow().num_rows == 20

    # Again: nothing new, nothing committed.
    code, _ = catalog(tmp_path, s3)
    out = capsys.readouterr().out
    assert code == 0 and "0 files added, 0 removed, 2 already registered" in out
    assert len(table_of(uri, s3, tmp_path).snapshots()) == 1

    # A new object: only it is added.
    new = write_file(data / "dt=2026-12-07" / "identifier=node-1" / "f2.parquet",
                     DAY_START + 500, 5, "c9")  # fmt: skip
    put(s3, data, new)
    code, _ = catalog(tmp_path, s3)
    assert code == 0 and "1 files added, 0 removed, 2 already registered" in capsys.readouterr().out
    assert table_of(uri, s3, tmp_path).scan().to_arrow().num_rows == 50


def test_a_compaction_in_the_bucket_is_one_swap(
    tmp_path: Path, s3: MotoServer, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "data"
    folder = data / "dt=2026-12-07" / "identifier=node-1"
    inputs = [write_file(folder / f"in{n}.parquet", DAY_START + 20 * n, 10, f"c{n}")
              for n in range(3)]  # fmt: skip
    keys = [put(s3, data, p) for p in inputs]
    code, uri = catalog(tmp_path, s3)
    assert code == 0
    # As the uploader swaps a compacted object in: placeholders over the inputs first. The table
    # keeps the inputs meanwhile (a reader fails on a placeholder rather than miss rows).
    for key in keys:
        s3.client().put_object(Bucket="fleet", Key=key, Body=PLACEHOLDER_MAGIC + b"replaced\n")
    code, _ = catalog(tmp_path, s3)
    out = capsys.readouterr().out
    assert code == 0 and "0 files added, 0 removed" in out, out
    assert len(table_of(uri, s3, tmp_path).snapshots()) == 1
    # Then the compacted object, then the inputs deleted: one overwrite commit.
    merged = pa.concat_tables([pq.ParquetFile(p).read() for p in inputs])
    pq.write_table(merged, folder / "merged.parquet")
    put(s3, data, folder / "merged.parquet")
    for key in keys:
        s3.client().delete_object(Bucket="fleet", Key=key)
    code, _ = catalog(tmp_path, s3)
    out = capsys.readouterr().out
    assert code == 0 and "1 files added, 3 removed, 0 already registered" in out, out
    table = table_of(uri, s3, tmp_path)
    snapshots = table.snapshots()
    assert len(snapshots) == 2 and snapshots[-1].summary is not None
    assert snapshots[-1].summary.operation.value == "overwrite"
    assert table.scan().to_arrow().num_rows == 60  # 3 x 10 ticks x 2 series, once
    assert [Path(r["file_path"]).name for r in table.inspect.files().to_pylist()] == [
        "merged.parquet"
    ]


def test_an_object_written_again_is_replaced_in_the_table(
    tmp_path: Path, s3: MotoServer, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "data"
    path = write_file(data / "dt=2026-12-07" / "identifier=node-1" / "f.parquet",
                      DAY_START, 10, "c0")  # fmt: skip
    put(s3, data, path)
    code, uri = catalog(tmp_path, s3)
    assert code == 0
    write_file(path, DAY_START, 12, "c0")  # the same key, other bytes: 12 ticks
    put(s3, data, path)
    code, _ = catalog(tmp_path, s3)
    out = capsys.readouterr().out
    assert code == 0 and "1 files added, 1 removed, 0 already registered" in out, out
    assert table_of(uri, s3, tmp_path).scan().to_arrow().num_rows == 24


def test_a_bucket_that_cannot_be_read_gets_one_line(
    tmp_path: Path, s3: MotoServer, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["catalog", "s3://no-such-bucket/x", "--uri", f"sqlite:///{tmp_path}/c.db",
                 "--endpoint", s3.endpoint])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 1 and err.startswith("finemon catalog: error: LIST") and err.count("\n") == 1
    assert main(["catalog", "s3://Bad_Bucket", "--uri", "sqlite:///x.db"]) == 2
