"""``finemon query/summary/report/view s3://bucket/prefix``: the same answers as on the local
directory, read in place from a real S3 HTTP server (moto in server mode), only the byte ranges
a question needs (counted by a proxy in front of the server), and one-line errors when the
bucket, the credentials, the endpoint or an object fails."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from finemon.cli import main
from tests.s3_server import CountingProxy, MotoServer, free_port, running_server

URL = "s3://fleet/clusters/prod"
PREFIX = "clusters/prod"

SQL = (
    "SELECT dt, identifier, max(container_name) AS container, count(*) AS n, "
    "round(avg(per_second) / 1000) AS millicores FROM rate('container.cpu.usage_usec') "
    "GROUP BY ALL ORDER BY ALL"
)
COUNT = "SELECT count(*) AS n FROM metrics"


@pytest.fixture
def s3(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[MotoServer]:
    yield from running_server(tmp_path, monkeypatch)


def upload(directory: Path, s3: MotoServer, url: str = URL) -> None:
    """``directory`` shipped to ``url`` by the uploader, as finemon run --upload does."""
    from common.objectstore import ObjectStore, StoreSettings, parse_s3_url
    from monitor.shipping.ship import Uploader

    store = ObjectStore(parse_s3_url(url), StoreSettings(endpoint_url=s3.endpoint))
    assert Uploader(directory, store).run_pass()


@pytest.fixture
def uploaded(small_dir: Path, tmp_path: Path, s3: MotoServer) -> Path:
    """``small_dir`` shipped to ``URL``."""
    copy = tmp_path / "node"
    shutil.copytree(small_dir, copy)
    upload(copy, s3)
    return copy


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_query_summary_and_report_on_s3_equal_the_local_directory(
    uploaded: Path,
    s3: MotoServer,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    flags = ("--endpoint", s3.endpoint)
    code, local_out, _ = run(capsys, "query", str(uploaded), SQL)
    assert code == 0
    code, s3_out, err = run(capsys, "query", URL, SQL, *flags)
    assert code == 0, err
    assert s3_out == local_out
    assert "(0 rows)" not in s3_out
    assert err == ""

    code, local_summary, _ = run(capsys, "summary", str(uploaded))
    assert code == 0
    # --upload-endpoint is accepted too (the name finemon run uses).
    code, s3_summary, err = run(capsys, "summary", URL, "--upload-endpoint", s3.endpoint)
    assert code == 0, err
    assert s3_summary == local_summary

    report = tmp_path / "report.html"
    code, _, err = run(capsys, "report", URL, *flags, "-o", str(report))
    assert code == 0, err
    assert report.stat().st_size > 10_000
    assert "<html" in report.read_text()[:1000].lower()
    # Nothing was mirrored: no folder holds a copy of the bucket's files.
    assert not (tmp_path / "home").exists()


def test_cache_dir_is_accepted_and_ignored(
    uploaded: Path, s3: MotoServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cache = tmp_path / "cache"
    code, _, err = run(
        capsys, "query", URL, COUNT, "--endpoint", s3.endpoint, "--cache-dir", str(cache)
    )
    assert code == 0, err
    assert err.strip() == (
        "finemon: warning: --cache-dir is ignored: s3:// is read in place, nothing is mirrored"
    )
    assert not cache.exists()


# ------------------------------------------------------------------------------ bytes read
@pytest.fixture(scope="module")
def day_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A day of 10 s ticks for 50 containers, one file per hour (24 objects of about 1 MB)."""
    from tests.analysis.synthetic import write_large

    root = tmp_path_factory.mktemp("day") / "node"
    write_large(root, containers=50, ticks=8640, ticks_per_file=360)
    return root


def test_a_one_container_one_hour_query_fetches_a_small_fraction_of_the_bucket(
    day_dir: Path, s3: MotoServer, capsys: pytest.CaptureFixture[str]
) -> None:
    """Over the wire (a proxy counting every response's bytes): the footers of the objects
    (their tails), then only byte ranges of the object holding the hour; the answer is the
    local one."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    upload(day_dir, s3)
    files = sorted(day_dir.rglob("*.parquet"))
    bucket_bytes = sum(f.stat().st_size for f in files)
    # The hour the 6th file holds, and one container of it.
    hour = pq.read_table(files[5], columns=["time", "container_id"])
    start = pc.min(hour["time"]).as_py()
    container = hour["container_id"][0].as_py()
    sql = (
        "SELECT count(*) AS n, round(avg(value_float)) AS mean FROM metrics "
        f"WHERE container_id = '{container}' "
        "AND metric_name = 'container.memory.working_set_bytes' "
        f"AND time >= TIMESTAMPTZ '{start.isoformat()}' "
        f"AND time < TIMESTAMPTZ '{start.isoformat()}' + INTERVAL 1 HOUR"
    )
    code, local_out, _ = run(capsys, "query", str(day_dir), sql)
    assert code == 0
    assert local_out.splitlines()[2].split()[0] == "360"  # an hour of 10 s ticks

    proxy = CountingProxy(s3)
    try:
        code, s3_out, err = run(capsys, "query", URL, sql, "--endpoint", proxy.endpoint)
        gets = proxy.gets()
    finally:
        proxy.close()
    assert code == 0, err
    assert s3_out == local_out

    sizes = {
        f"/fleet/{PREFIX}/{f.relative_to(day_dir).as_posix()}": f.stat().st_size for f in files
    }
    fetched = sum(g.response_bytes for g in gets)
    assert fetched < 0.1 * bucket_bytes, f"{fetched} of {bucket_bytes} bytes fetched"
    assert {g.path for g in gets if g.path.endswith(".parquet")} == set(sizes)  # the footers
    assert all(g.range is not None for g in gets if g.path in sizes)  # never a whole object
    tail = {path: f"-{size - 1}" for path, size in sizes.items()}
    beyond_footer = {g.path for g in gets if g.path in sizes and not g.range.endswith(tail[g.path])}
    held = f"/fleet/{PREFIX}/{files[5].relative_to(day_dir).as_posix()}"
    assert beyond_footer == {held}


# ------------------------------------------------------------------------------ live view
def test_view_live_mode_follows_the_bucket(uploaded: Path, s3: MotoServer) -> None:
    """finemon view on s3://: while the page is live the bucket is listed again, and a file
    that lands in it afterwards shows up (a new version, a longer range)."""
    import time

    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    pytest.importorskip("starlette", reason="starlette is not installed (pip install -e '.[view]')")
    pytest.importorskip("httpx", reason="httpx (starlette's test client) is not installed")
    from starlette.testclient import TestClient

    from analysis.query.explorer import Explorer
    from analysis.source import bucket_source
    from analysis.view import create_app

    # The file holding the latest tick is held back from the bucket at first.
    files = sorted(uploaded.rglob("*.parquet"))
    latest = max(files, key=lambda f: pc.max(pq.read_table(f, columns=["time"])["time"]).value)
    key = f"{PREFIX}/{latest.relative_to(uploaded).as_posix()}"
    client = s3.client()
    client.delete_object(Bucket="fleet", Key=key)

    source = bucket_source(URL, endpoint=s3.endpoint)
    explorer = Explorer(source, relist_seconds=0.0)
    app = create_app(explorer, source)
    with TestClient(app, base_url="http://127.0.0.1:8050") as view:
        before = view.get("/api/status").json()
        client.upload_file(str(latest), "fleet", key)
        deadline = time.monotonic() + 30
        status = before
        while status["version"] == before["version"] and time.monotonic() < deadline:
            time.sleep(0.2)
            status = view.get("/api/status").json()
    assert status["version"] > before["version"], "the new file never showed up"
    assert status["range"][1] > before["range"][1]


# ------------------------------------------------------------------------------ bad input
def test_unreachable_store_missing_bucket_and_empty_prefix_are_one_line_errors(
    s3: MotoServer, capsys: pytest.CaptureFixture[str]
) -> None:
    down = f"http://127.0.0.1:{free_port()}"
    code, _, err = run(capsys, "summary", URL, "--endpoint", down)
    assert code == 1
    (line,) = err.splitlines()
    assert line.startswith("finemon summary: error: s3://fleet/clusters/prod: ")
    assert "Could not connect" in line or "NETWORK_CONNECTION" in line

    code, _, err = run(capsys, "query", "s3://no-such-bucket/x", COUNT, "--endpoint", s3.endpoint)
    assert code == 1
    (line,) = err.splitlines()
    assert line.startswith("finemon query: error: s3://no-such-bucket/x: ")
    assert "bucket does not exist" in line
    assert "Request ID" not in line

    code, _, err = run(capsys, "query", "s3://fleet/nothing-here", COUNT, "--endpoint", s3.endpoint)
    assert code == 1
    assert err.strip() == (
        "finemon query: error: s3://fleet/nothing-here: no finemon files under this prefix"
    )


def test_no_credentials_is_a_one_line_error(
    uploaded: Path,
    s3: MotoServer,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    code, _, err = run(capsys, "query", URL, COUNT, "--endpoint", s3.endpoint)
    assert code == 1
    (line,) = err.splitlines()
    assert line.startswith("finemon query: error: s3://fleet/clusters/prod: no AWS credentials")


def test_a_non_parquet_object_is_named_and_skipped(
    uploaded: Path, s3: MotoServer, capsys: pytest.CaptureFixture[str]
) -> None:
    code, local_out, _ = run(capsys, "query", str(uploaded), COUNT)
    assert code == 0
    partition = next(uploaded.glob("dt=*/identifier=*")).relative_to(uploaded).as_posix()
    s3.client().put_object(
        Bucket="fleet", Key=f"{PREFIX}/{partition}/stray.parquet", Body=b"not parquet at all"
    )
    code, out, err = run(capsys, "query", URL, COUNT, "--endpoint", s3.endpoint)
    assert code == 0, err
    assert out == local_out
    assert err.strip() == (
        "finemon query: warning: skipped 1 unreadable Parquet file in s3://fleet/clusters/prod: "
        f"{partition}/stray.parquet (not a Parquet file)"
    )


def test_an_object_gone_before_its_footer_is_read_asks_for_a_retry(
    uploaded: Path,
    s3: MotoServer,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A compaction swapping files in between the listing and the footers' reads: a clear
    error, and the retry (which lists the bucket as it is now) gives the right count."""
    import analysis.objects

    files = sorted(uploaded.rglob("*.parquet"))
    gone = f"{PREFIX}/{files[0].relative_to(uploaded).as_posix()}"
    real_listing = analysis.objects.list_objects

    def listing_then_swap(source: analysis.objects.Source) -> analysis.objects.Listing:
        found = real_listing(source)
        s3.client().delete_object(Bucket="fleet", Key=gone)
        return found

    monkeypatch.setattr(analysis.objects, "list_objects", listing_then_swap)
    code, _, err = run(capsys, "query", URL, COUNT, "--endpoint", s3.endpoint)
    assert code == 1
    assert err.strip() == (
        f"finemon query: error: s3://fleet/{gone}: replaced or removed while being read "
        "(a compaction is swapping files in); run the command again"
    )
    monkeypatch.setattr(analysis.objects, "list_objects", real_listing)
    files[0].unlink()
    code, local_out, _ = run(capsys, "query", str(uploaded), COUNT)
    code, out, err = run(capsys, "query", URL, COUNT, "--endpoint", s3.endpoint)
    assert code == 0, err
    assert out == local_out


# ------------------------------------------------------------------------------ mcp
def test_mcp_serves_the_bucket(uploaded: Path, s3: MotoServer) -> None:
    """``finemon mcp s3://...`` over stdio: every tool answers as on the local folder (the
    checks of the local dataset's test), compare_runs and check_bounds too."""
    import asyncio
    import os
    import sys

    pytest.importorskip("mcp", reason="the mcp extra is not installed")
    from mcp import Client
    from mcp.client.stdio import StdioServerParameters

    from tests.analysis import synthetic as syn
    from tests.analysis.test_mcp import _call, _exercise

    parameters = StdioServerParameters(
        command=sys.executable,
        args=["-m", "finemon", "mcp", URL, "--endpoint", s3.endpoint],
        env=dict(os.environ),  # the fake credentials and this worktree's PYTHONPATH
    )

    async def exercise() -> None:
        async with Client(parameters, read_timeout_seconds=60) as client:
            await _exercise(client)
            compared = await _call(client, "compare_runs", baseline=syn.RUN_A, comparison=syn.RUN_B)
            assert compared["baseline"]["run_ids"] == [syn.RUN_A]
            assert compared["comparison"]["run_ids"] == [syn.RUN_B]
            assert compared["baseline"]["directory"] == URL
            assert compared["rows"]
            bounds = "- {container: '*/*/*', metric: container.memory.oom_kills, " + (
                "statistic: increase, max: 0}"
            )
            checked = await _call(client, "check_bounds", bounds=bounds)
            assert checked["ok"] is False  # postgres was OOM-killed once

    asyncio.run(exercise())
