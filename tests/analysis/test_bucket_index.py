"""The index beside a bucket's data (:mod:`analysis.bucket_index`), against moto's S3 server
counting what it serves: the first ``finemon query --from/--to/--container`` leaves the index
in the bucket, the next ones read it (one object per folder) and then only the objects of the
question; objects added or replaced later are picked up, a read-only bucket still answers."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from finemon.cli import main
from tests.s3_server import MISSING, CountingMotoServer, use_fake_aws
from tests.summary_data import START_SECONDS, record

pytestmark = pytest.mark.skipif(MISSING is not None, reason=MISSING or "")
pytest.importorskip("duckdb", reason="duckdb is not installed (pip install -e '.[query]')")

BUCKET = "fleet"
PREFIX = "prod"
URL = f"s3://{BUCKET}/{PREFIX}"
SQL = (
    "SELECT node_name, count(*) AS n, min(time) AS first, max(time) AS last FROM metrics "
    "GROUP BY ALL ORDER BY ALL"
)
#: 23:40 to 00:10 UTC: half an hour across midnight, in two files of each node.
FROM, TO = "2024-01-31T23:40:00Z", "2024-02-01T00:10:00Z"
START_23H = START_SECONDS  # 2024-01-31 23:00:00 UTC
HOUR = 3600


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two nodes, 2 h of 1 s ticks from 23:00 each, a file every 20 min: 12 files in 4
    folders (two days by two nodes)."""
    root = tmp_path_factory.mktemp("bucket") / "data"
    for node in ("node-a", "node-b"):
        record(root, ticks=2 * HOUR, ticks_per_file=1200, identifier=node, containers=2)
    return root


@pytest.fixture
def local(recorded: Path, tmp_path: Path) -> Path:
    """A copy of the recorded data without its local index (what the bucket gets)."""
    copy = tmp_path / "data"
    shutil.copytree(recorded, copy, ignore=shutil.ignore_patterns("_index"))
    return copy


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[CountingMotoServer]:
    use_fake_aws(monkeypatch)
    found = CountingMotoServer()
    found.start()
    found.client().create_bucket(Bucket=BUCKET)
    try:
        yield found
    finally:
        # moto's buckets live in this process, from one server to the next: emptied.
        found.read_only = False
        client = found.client()
        for listed in client.list_objects_v2(Bucket=BUCKET).get("Contents", []):
            client.delete_object(Bucket=BUCKET, Key=listed["Key"])
        client.delete_bucket(Bucket=BUCKET)
        found.stop()


def upload(root: Path, server: CountingMotoServer, only: set[str] | None = None) -> None:
    """``root``'s data files (or those of ``only``) and manifests, not its ``_index``, put
    under ``URL``."""
    client = server.client()
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(root).as_posix()
        if not path.is_file() or relative.startswith("_index/"):
            continue
        if only is None or relative in only or not relative.endswith(".parquet"):
            client.upload_file(str(path), BUCKET, f"{PREFIX}/{relative}")


def keys(server: CountingMotoServer, under: str = "") -> set[str]:
    listed = server.client().list_objects_v2(Bucket=BUCKET, Prefix=f"{PREFIX}/{under}")
    return {str(o["Key"])[len(PREFIX) + 1 :] for o in listed.get("Contents", [])}


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def query(server: CountingMotoServer, capsys: pytest.CaptureFixture[str], *flags: str) -> str:
    """The output of the bucket's ranged query; the server's counters hold its requests."""
    server.reset()
    code, out, err = run(
        capsys, "query", URL, SQL, "--from", FROM, "--to", TO, *flags,
        "--endpoint", server.endpoint,
    )  # fmt: skip
    assert code == 0, err
    assert err == ""
    return out


def data_fetched(server: CountingMotoServer) -> set[str]:
    """The data objects the last command fetched any byte of (relative to the prefix)."""
    start = f"/{BUCKET}/{PREFIX}/"
    return {p[len(start) :] for p in server.objects_fetched if p.endswith(".parquet")}


def overlapping(root: Path) -> set[str]:
    """The data files of ``root`` holding rows between FROM and TO, by their time range."""
    import pyarrow.compute as pc

    low, high = (START_23H + 40 * 60) * 1000, (START_23H + 70 * 60) * 1000
    found = set()
    for path in root.rglob("*.parquet"):
        times = pq.read_table(path, columns=["time"])["time"].cast("int64")
        if pc.min(times).as_py() <= high and pc.max(times).as_py() >= low:
            found.add(path.relative_to(root).as_posix())
    return found


INDEX_OBJECTS = {
    f"_index/dt={day}/identifier={node}/_files.json"
    for day in ("2024-01-31", "2024-02-01")
    for node in ("node-a", "node-b")
}


def test_the_first_query_leaves_the_index_and_the_next_fetch_only_the_hours_objects(
    local: Path, server: CountingMotoServer, capsys: pytest.CaptureFixture[str]
) -> None:
    upload(local, server)
    code, local_out, _ = run(capsys, "query", str(local), SQL, "--from", FROM, "--to", TO)
    assert code == 0
    all_objects = {p.relative_to(local).as_posix() for p in local.rglob("*.parquet")}
    wanted = overlapping(local)
    assert len(all_objects) == 12 and len(wanted) == 4

    assert query(server, capsys) == local_out
    assert keys(server, "_index/") == INDEX_OBJECTS  # one per folder, left by the first reader
    assert data_fetched(server) == all_objects  # every footer, once

    assert query(server, capsys) == local_out
    assert data_fetched(server) == wanted
    assert server.requests.get("PUT", 0) == 0  # nothing changed: nothing written
    index_gets = {p for p in server.objects_fetched if p.endswith("/_files.json")}
    assert len(index_gets) == len(INDEX_OBJECTS)

    # A container: the objects of that half-hour holding it, not the rest.
    container = ("--container", "0" * 64)
    _, local_out, _ = run(capsys, "query", str(local), SQL, "--from", FROM, "--to", TO,
                          *container)  # fmt: skip
    assert query(server, capsys, *container) == local_out
    assert data_fetched(server) == wanted


def test_an_object_added_after_the_index_is_picked_up_by_its_footer_alone(
    local: Path, server: CountingMotoServer, capsys: pytest.CaptureFixture[str]
) -> None:
    upload(local, server)
    query(server, capsys)
    before = {p.relative_to(local).as_posix() for p in local.rglob("*.parquet")}
    # node-a runs on: a later run of 20 min from 01:00 (in the dt=2024-02-01 folder).
    record(local, ticks=1200, ticks_per_file=1200, identifier="node-a",
           start_seconds=START_23H + 2 * HOUR, containers=2)  # fmt: skip
    added = {p.relative_to(local).as_posix() for p in local.rglob("*.parquet")} - before
    assert len(added) == 1
    upload(local, server, added)

    _, local_out, _ = run(capsys, "query", str(local), SQL, "--from", FROM, "--to", TO)
    assert query(server, capsys) == local_out
    (new,) = added
    assert data_fetched(server) == overlapping(local) | {new}
    new_gets = [p for p in server.objects_fetched if p.endswith(new)]
    assert len(new_gets) == 1
    assert server.requests.get("PUT", 0) == 1  # that folder's index, extended

    # Then it is known: only the half-hour's objects again.
    assert query(server, capsys) == local_out
    assert data_fetched(server) == overlapping(local)


def test_a_replaced_object_has_its_folder_rebuilt(
    local: Path, server: CountingMotoServer, capsys: pytest.CaptureFixture[str]
) -> None:
    upload(local, server)
    query(server, capsys)
    folder = local / "dt=2024-01-31" / "identifier=node-a"
    replaced = min(folder.glob("*.parquet"))
    # The same rows and metadata in another size (uncompressed): a changed signature.
    table = pq.read_table(replaced)
    pq.write_table(table.slice(0, table.num_rows // 2), replaced, compression="none")
    upload(local, server, {replaced.relative_to(local).as_posix()})

    _, local_out, _ = run(capsys, "query", str(local), SQL, "--from", FROM, "--to", TO)
    assert query(server, capsys) == local_out
    in_folder = {p.relative_to(local).as_posix() for p in folder.glob("*.parquet")}
    fetched = data_fetched(server)
    assert in_folder <= fetched  # that folder's footers read again
    others = overlapping(local) - in_folder
    assert fetched == in_folder | others  # the other folders: only the half-hour's objects
    assert server.requests.get("PUT", 0) == 1  # that folder's index, rebuilt


def test_a_read_only_bucket_answers_the_same_with_the_index_in_memory(
    local: Path,
    server: CountingMotoServer,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    upload(local, server)
    monkeypatch.setattr(server, "read_only", True)
    _, local_out, _ = run(capsys, "query", str(local), SQL, "--from", FROM, "--to", TO)
    assert query(server, capsys) == local_out  # no warning on stderr either
    assert keys(server, "_index/") == set()
    assert server.requests.get("PUT", 0) + server.requests.get("POST", 0) > 0  # it tried
    assert query(server, capsys) == local_out


def test_summary_on_the_bucket_reads_the_index_and_no_data_object(
    local: Path, server: CountingMotoServer, capsys: pytest.CaptureFixture[str]
) -> None:
    upload(local, server)
    code, local_out, _ = run(capsys, "summary", str(local))
    assert code == 0
    for _ in range(2):
        server.reset()
        code, out, err = run(capsys, "summary", URL, "--endpoint", server.endpoint)
        assert code == 0, err
        assert out == local_out
    assert data_fetched(server) == set()  # the second: the index objects and manifests only
    assert keys(server, "_index/") == INDEX_OBJECTS


def test_an_object_gone_while_the_index_reads_footers_asks_for_a_retry(
    local: Path,
    server: CountingMotoServer,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import analysis.objects

    upload(local, server)
    gone = f"{PREFIX}/{min(local.rglob('*.parquet')).relative_to(local).as_posix()}"
    real_listing = analysis.objects.list_objects

    def listing_then_delete(source: analysis.objects.Source) -> analysis.objects.Listing:
        found = real_listing(source)
        server.client().delete_object(Bucket=BUCKET, Key=gone)
        return found

    monkeypatch.setattr(analysis.objects, "list_objects", listing_then_delete)
    code, _, err = run(
        capsys, "query", URL, SQL, "--from", FROM, "--to", TO, "--endpoint", server.endpoint
    )
    assert code == 1
    assert err.strip() == (
        f"finemon query: error: s3://{BUCKET}/{gone}: replaced or removed while being read "
        "(a compaction is swapping files in); run the command again"
    )


def test_the_explorer_starts_from_the_bucket_index_and_reads_only_a_charts_objects(
    local: Path, server: CountingMotoServer
) -> None:
    """What ``view`` and ``mcp`` start on: the second explorer of the bucket answers its
    ranges, runs, containers and metrics from the index objects, without a data object; a
    chart of one container over the half-hour reads only the objects holding it."""
    from datetime import UTC, datetime

    from analysis.query.explorer import Explorer
    from analysis.source import bucket_source

    upload(local, server)
    source = bucket_source(URL, endpoint=server.endpoint)
    with Explorer(source):
        pass  # the first: it leaves the index
    start = datetime.fromtimestamp(START_23H + 40 * 60, UTC)
    end = datetime.fromtimestamp(START_23H + 70 * 60, UTC)
    metric = "container.memory.working_set_bytes"
    with Explorer(local) as here:
        expected = (here.time_range(), here.runs(), here.containers(), here.metrics())
        chart = here.series(metric, ["0" * 64], start, end)

    server.reset()
    with Explorer(source) as there:
        assert (there.time_range(), there.runs(), there.containers(), there.metrics()) == expected
        assert data_fetched(server) == set()
        assert there.series(metric, ["0" * 64], start, end) == chart
        assert data_fetched(server) == overlapping(local)
