"""``finemon query/summary/report s3://bucket/prefix``: the same answers as on the local directory,
read from a real S3 HTTP server (moto in server mode) through a local mirror."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from finemon.cli import main
from tests.s3_server import MotoServer, free_port, running_server

URL = "s3://fleet/clusters/prod"

SQL = (
    "SELECT dt, identifier, max(container_name) AS container, count(*) AS n, "
    "round(avg(per_second) / 1000) AS millicores FROM rate('container.cpu.usage_usec') "
    "GROUP BY ALL ORDER BY ALL"
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


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_query_and_summary_on_s3_equal_the_local_directory(
    uploaded: Path, s3: MotoServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cache = tmp_path / "cache"
    flags = ("--endpoint", s3.endpoint, "--cache-dir", str(cache))
    code, local_out, _ = run(capsys, "query", str(uploaded), SQL)
    assert code == 0
    code, s3_out, err = run(capsys, "query", URL, SQL, *flags)
    assert code == 0, err
    assert s3_out == local_out
    assert "(0 rows)" not in s3_out
    parquet = sorted(p.relative_to(uploaded) for p in uploaded.rglob("*.parquet"))
    assert sorted(p.relative_to(cache) for p in cache.rglob("*.parquet")) == parquet
    manifests = list(uploaded.glob("_sessions/*.json"))
    assert (
        f"{len(parquet) + len(manifests)} files, {len(parquet) + len(manifests)} downloaded" in err
    )

    code, local_summary, _ = run(capsys, "summary", str(uploaded))
    assert code == 0
    # --upload-endpoint is accepted too (the name finemon run uses).
    code, s3_summary, err = run(
        capsys, "summary", URL, "--upload-endpoint", s3.endpoint, "--cache-dir", str(cache)
    )
    assert code == 0, err
    assert s3_summary == local_summary
    assert ", 0 downloaded" in err  # the mirror was up to date

    report = tmp_path / "report.html"
    code, _, err = run(capsys, "report", URL, *flags, "-o", str(report))
    assert code == 0, err
    assert report.stat().st_size > 10_000
    assert "<html" in report.read_text()[:1000].lower()


def test_the_mirror_follows_the_bucket(
    uploaded: Path, s3: MotoServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cache = tmp_path / "cache"
    flags = ("--endpoint", s3.endpoint, "--cache-dir", str(cache))
    count = (
        "SELECT count(DISTINCT filename) AS files "
        "FROM read_parquet('{}/**/*.parquet', filename=true)"
    )
    assert run(capsys, "query", URL, "SELECT 1", *flags)[0] == 0
    files = sorted(cache.rglob("*.parquet"))
    client = s3.client()
    gone = files[0].relative_to(cache).as_posix()
    client.delete_object(Bucket="fleet", Key=f"clusters/prod/{gone}")
    code, out, err = run(capsys, "query", URL, count.format(cache), *flags)
    assert code == 0, err
    assert ", 1 removed" in err
    assert not (cache / gone).exists()
    assert out.splitlines()[2].strip() == str(len(files) - 1)


def test_unreachable_store_and_empty_prefix_are_one_line_errors(
    s3: MotoServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cache = ("--cache-dir", str(tmp_path / "cache"))
    down = f"http://127.0.0.1:{free_port()}"
    code, _, err = run(capsys, "summary", URL, "--endpoint", down, *cache)
    assert code == 1
    (line,) = err.splitlines()
    assert line.startswith("finemon summary: error: s3://fleet/clusters/prod: ")
    code, _, err = run(
        capsys, "query", "s3://fleet/nothing-here", "SELECT 1", "--endpoint", s3.endpoint, *cache
    )
    assert code == 1
    assert err.strip() == (
        "finemon query: error: s3://fleet/nothing-here: no finemon files under this prefix"
    )


def test_view_live_mode_follows_the_bucket(uploaded: Path, s3: MotoServer, tmp_path: Path) -> None:
    """finemon view on s3://: while the page is live, the mirror is brought up to date again
    and a file that lands in the bucket afterwards shows up (a new version, a longer range)."""
    import argparse
    import time

    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    pytest.importorskip("starlette", reason="starlette is not installed (pip install -e '.[view]')")
    pytest.importorskip("httpx", reason="httpx (starlette's test client) is not installed")
    from starlette.testclient import TestClient

    from analysis.query.explorer import Explorer
    from analysis.source import mirror_sync
    from analysis.view import create_app

    # The file holding the latest tick is held back from the bucket at first.
    files = sorted(uploaded.rglob("*.parquet"))
    latest = max(files, key=lambda f: pc.max(pq.read_table(f, columns=["time"])["time"]).value)
    key = f"clusters/prod/{latest.relative_to(uploaded).as_posix()}"
    client = s3.client()
    client.delete_object(Bucket="fleet", Key=key)

    args = argparse.Namespace(endpoint=s3.endpoint, region=None, cache_dir=str(tmp_path / "cache"))
    sync = mirror_sync(URL, args)
    assert sync is not None and mirror_sync(str(uploaded), args) is None
    directory, line = sync()
    manifests = len(list(uploaded.glob("_sessions/*.json")))
    assert f"{len(files) - 1 + manifests} downloaded" in line
    app = create_app(Explorer(directory), directory, resync=sync, resync_interval_seconds=0.0)
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
    assert (directory / latest.relative_to(uploaded)).exists()
