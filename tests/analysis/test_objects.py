"""A bucket read in place (:mod:`analysis.objects`, :func:`analysis.dataset.connect` on a
:class:`analysis.source.Source`): the same answers as DuckDB's reader on the local folder, the
footers read once by ranged GETs of the objects' tails (counted by a proxy in front of a real
S3 server, moto's), one-line errors."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.s3_server import CountingProxy, MotoServer, running_server

URL = "s3://fleet/clusters/prod"
PREFIX = "clusters/prod"
QUERIES = (
    "SELECT dt, identifier, container_key, count(*), sum(value_int), sum(value_float) "
    "FROM metrics GROUP BY ALL ORDER BY ALL",
    "SELECT run_id, container_key, increase FROM increase('container.cpu.usage_usec') ORDER BY ALL",
    "SELECT count(*) FROM metrics WHERE metric_name = 'container.memory.working_set_bytes' "
    "AND time >= TIMESTAMPTZ '2024-02-01 00:00:30'",
)


@pytest.fixture
def s3(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[MotoServer]:
    yield from running_server(tmp_path, monkeypatch)


@pytest.fixture
def uploaded(small_dir: Path, tmp_path: Path, s3: MotoServer) -> Path:
    """``small_dir`` shipped to ``URL`` by the uploader, as finemon run --upload does."""
    from common.objectstore import ObjectStore, StoreSettings, parse_s3_url
    from monitor.shipping.ship import Uploader

    copy = tmp_path / "node"
    shutil.copytree(small_dir, copy)
    store = ObjectStore(parse_s3_url(URL), StoreSettings(endpoint_url=s3.endpoint))
    assert Uploader(copy, store).run_pass()
    return copy


def test_the_bucket_read_in_place_answers_as_the_local_folder(
    uploaded: Path, s3: MotoServer
) -> None:
    from analysis.dataset import connect
    from analysis.source import bucket_source

    local = connect(uploaded)
    remote = connect(bucket_source(URL, endpoint=s3.endpoint))
    for sql in QUERIES:
        expected = local.execute(sql).fetchall()
        assert expected
        assert remote.execute(sql).fetchall() == expected, sql


def test_footers_are_read_once_by_ranged_gets_and_a_query_reads_only_what_it_needs(
    uploaded: Path, s3: MotoServer
) -> None:
    """connect: one LIST, one ranged GET per object (its tail: these objects are smaller than
    pyarrow's 64 KiB footer read, so the whole object); a query then fetches only column
    chunks, never a footer again, and none of an object outside its time range."""
    from analysis.dataset import connect
    from analysis.source import bucket_source

    files = {f"/fleet/{PREFIX}/{f.relative_to(uploaded).as_posix()}": f.stat().st_size
             for f in uploaded.rglob("*.parquet")}  # fmt: skip
    proxy = CountingProxy(s3)
    try:
        con = connect(bucket_source(URL, endpoint=proxy.endpoint))
        lists = [r for r in proxy.requests if "list-type" in r.query]
        assert len(lists) == 1
        opened = proxy.gets()
        assert sorted(g.path for g in opened) == sorted(files)
        assert all(g.range and g.range.endswith(f"-{files[g.path] - 1}") for g in opened)
        proxy.clear()
        (count,) = con.execute(QUERIES[2]).fetchone() or (0,)
        scanned = proxy.gets()
    finally:
        proxy.close()
    assert count > 0
    # Rows from 00:00:30 on are in the second file of run a (00:00 to 00:01:59) and in run
    # b's (from 00:05); the first file (23:58 to 23:59:59) is left alone.
    first = min(files)
    assert scanned and first not in {g.path for g in scanned}
    assert all(g.range is not None for g in scanned)
    assert sum(g.response_bytes for g in scanned) < sum(files.values()) / 2


def test_an_object_gone_before_its_rows_are_read_is_a_one_line_error(
    uploaded: Path, s3: MotoServer
) -> None:
    """The footers read, then the object removed before a query reads its rows: one line
    asking for a retry, never a count without its rows."""
    from analysis.dataset import connect
    from analysis.errors import one_line
    from analysis.source import bucket_source

    duckdb = pytest.importorskip("duckdb")
    con = connect(bucket_source(URL, endpoint=s3.endpoint))
    first = sorted(uploaded.rglob("*.parquet"))[0]
    s3.client().delete_object(
        Bucket="fleet", Key=f"{PREFIX}/{first.relative_to(uploaded).as_posix()}"
    )
    with pytest.raises(duckdb.Error) as raised:
        con.execute(QUERIES[0]).fetchall()
    message = one_line(str(raised.value))
    assert message.startswith("reading the bucket failed (")
    assert message.endswith(
        "if a compaction replaced or removed an object since the listing, run the command again"
    )


def test_a_compaction_placeholder_asks_for_a_retry_never_a_short_count(
    uploaded: Path, s3: MotoServer
) -> None:
    """An object that a bucket compaction has overwritten with its placeholder (its compacted
    object not yet published) is not skipped as 'not a Parquet file', which would count the
    dataset without its rows: the read asks for a retry."""
    from analysis.dataset import connect
    from analysis.errors import AnalysisError
    from analysis.source import bucket_source
    from common.contract import PLACEHOLDER_MAGIC

    first = sorted(uploaded.rglob("*.parquet"))[0]
    key = f"{PREFIX}/{first.relative_to(uploaded).as_posix()}"
    s3.client().put_object(Bucket="fleet", Key=key, Body=PLACEHOLDER_MAGIC + b"replaced by x\n")
    with pytest.raises(AnalysisError, match="run the command again"):
        connect(bucket_source(URL, endpoint=s3.endpoint)).execute(QUERIES[0]).fetchall()
