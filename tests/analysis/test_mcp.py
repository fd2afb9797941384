"""``finemon mcp``: the tools, through the MCP SDK's own client (in-process, stdio, HTTP)."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("mcp", reason="the mcp extra is not installed")

from mcp import Client
from mcp.client.stdio import StdioServerParameters

from analysis.mcp_server import build_server
from analysis.query.explorer import Explorer
from tests.analysis import patterns as pat
from tests.analysis import synthetic as syn

TOOLS = {
    "compare_runs",
    "check_bounds",
    "list_nodes",
    "list_runs",
    "list_containers",
    "list_metrics",
    "get_series",
    "list_labels",
    "analyze_container",
    "compare_reported",
    "run_sql",
}


async def _call(client: Client, name: str, **arguments: Any) -> dict[str, Any]:
    result = await client.call_tool(name, arguments)
    assert not result.is_error, result.content
    assert result.structured_content is not None
    return result.structured_content


async def _error(client: Client, name: str, **arguments: Any) -> str:
    result = await client.call_tool(name, arguments)
    assert result.is_error
    return " ".join(getattr(block, "text", "") for block in result.content)


async def _exercise(client: Client) -> None:
    """The same checks over any transport, on the small synthetic dataset."""
    tools = await client.list_tools()
    assert {tool.name for tool in tools.tools} == TOOLS
    assert all(tool.annotations and tool.annotations.read_only_hint for tool in tools.tools)

    nodes = await _call(client, "list_nodes")
    assert [n["node_name"] for n in nodes["nodes"]] == [syn.NODE]
    runs = await _call(client, "list_runs")
    assert [r["run_id"] for r in runs["runs"]] == [syn.RUN_A, syn.RUN_B]
    assert runs["runs"][0]["first_time"] == "2024-01-31T23:58:00+00:00"

    shop = await _call(client, "list_containers", namespace="shop")
    assert {c["name"] for c in shop["containers"]} == {"nginx", "postgres"}
    assert shop["total"] == 2 and not shop["truncated"]
    one = await _call(client, "list_containers", search="batch", limit=1)
    assert [c["key"] for c in one["containers"]] == [syn.BATCH_ID]

    metrics = await _call(client, "list_metrics", search="oom")
    assert [m["name"] for m in metrics["metrics"]] == ["container.memory.oom_kills"]
    assert metrics["metrics"][0]["kind"] == "counter"

    # By name: the tools resolve it to the container's key.
    series = await _call(
        client, "get_series", metric="container.cpu.usage_usec", containers=["nginx"],
        start="2024-01-31T23:59:00Z", end="2024-01-31T23:59:09Z",
    )  # fmt: skip
    [web] = series["series"]
    assert web["container_key"] == syn.WEB_ID and web["unit"] == "usec/s"
    assert len(web["points"]) == 10
    assert web["points"][0] == [(syn.RUN_A_START_MS + 60_000) / 1000, 500_000.0, 500_000.0,
                                500_000.0]  # fmt: skip
    coarse = await _call(
        client, "get_series", metric="container.memory.working_set_bytes",
        containers=["postgres", "job"], max_points=20,
    )  # fmt: skip
    assert [len(s["points"]) <= 20 for s in coarse["series"]] == [True, True]

    analysis = await _call(client, "analyze_container", container="postgres")
    assert analysis["oom_kills"] == 1
    assert analysis["container"]["key"] == syn.DB_ID
    assert analysis["markers"][0]["kind"] == "oom"

    rows = await _call(
        client, "run_sql",
        query="select container_name, count(*) n from metrics where container_name is not null "
        "group by 1 order by 1",
    )  # fmt: skip
    assert rows["columns"] == ["container_name", "n"]
    assert [row[0] for row in rows["rows"]] == ["job", "nginx", "postgres"]
    limited = await _call(client, "run_sql", query="select * from range(50)", limit=5)
    assert len(limited["rows"]) == 5 and limited["truncated"]
    noted = await _call(client, "run_sql", query="select 42 as answer -- the answer")
    assert noted["rows"] == [[42]]

    for query in (
        "insert into metrics values (1)",
        "copy (select 1) to '/tmp/finemon-mcp-copy.csv'",
        "attach '/tmp/finemon-mcp.db' as x",
        "select * from read_csv('/etc/passwd')",
    ):
        message = await _error(client, "run_sql", query=query)
        assert "root:" not in message
    assert not Path("/tmp/finemon-mcp-copy.csv").exists()
    assert "no container" in await _error(client, "analyze_container", container="nope")
    assert "ISO 8601" in await _error(
        client, "get_series", metric="x", containers=["nginx"], start="yesterday"
    )


def test_tools_in_process(small_dir: Path) -> None:
    server = build_server(Explorer(small_dir))
    asyncio.run(_run_in_process(server))


async def _run_in_process(server: Any) -> None:
    async with Client(server) as client:
        await _exercise(client)


def test_analyze_finds_planted_patterns(patterns_dir: Path) -> None:
    async def run() -> None:
        async with Client(build_server(Explorer(patterns_dir))) as client:
            wave = await _call(client, "analyze_container", container="wave")
            period = wave["cpu"]["periodicity"]["period_seconds"]
            assert period == pytest.approx(pat.PERIOD_SECONDS, rel=0.03)
            step = await _call(client, "analyze_container", container="step")
            [change] = step["memory"]["changepoints"]
            assert change["after_mean"] > 2.5 * change["before_mean"]
            oomy = await _call(client, "analyze_container", container="oomy")
            assert oomy["oom_kills"] == 2
            procs = await _call(
                client, "get_series", metric="process.memory.pss_bytes",
                containers=["oomy"], process=True, max_points=10,
            )  # fmt: skip
            # Raw text: escaping is for whoever renders it.
            labels = sorted(s["label"] for s in procs["series"])
            assert labels == ["<img src=x onerror=alert(1)> (41)", "helper (42)"]

    asyncio.run(run())


def test_a_restarted_containers_lives_are_named_and_resolved_apart(tmp_path: Path) -> None:
    """Three lives of shop/api-6c8/api: listed by their start times (the viewer's names),
    each one reachable by its name, the shared full name refused as ambiguous."""

    async def run() -> None:
        explorer = Explorer(syn.write_restarts(tmp_path / "out"))
        async with Client(build_server(explorer)) as client:
            listed = await _call(client, "list_containers", search="api")
            assert [(c["name"], c["full_name"]) for c in listed["containers"]] == [
                ("api (since 23:58:00)", "shop/api-6c8/api"),
                ("api (since 23:59:20)", "shop/api-6c8/api"),
                ("api (since 00:00:40)", "shop/api-6c8/api"),
            ]
            first = await _call(client, "analyze_container", container="api (since 23:58:00)")
            assert first["container"]["key"] == syn.API_LIVES[0].container_id
            assert first["oom_kills"] == 1
            message = await _error(client, "analyze_container", container="shop/api-6c8/api")
            assert "matches 3 containers: api (since 23:58:00), api (since 23:59:20)" in message
            series = await _call(
                client, "get_series", metric="container.memory.working_set_bytes",
                containers=["api (since 00:00:40)"], max_points=10,
            )  # fmt: skip
            assert [s["container_key"] for s in series["series"]] == [syn.API_LIVES[2].container_id]

    asyncio.run(run())


def _environment() -> dict[str, str]:
    # The spawned server must import this worktree's code: PYTHONPATH passes through.
    return dict(os.environ)


def test_stdio_server_subprocess(small_dir: Path) -> None:
    parameters = StdioServerParameters(
        command=sys.executable,
        args=["-m", "finemon", "mcp", str(small_dir)],
        env=_environment(),
    )

    async def run() -> None:
        async with Client(parameters, read_timeout_seconds=60) as client:
            await _exercise(client)

    asyncio.run(run())


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def _http_server_process(directory: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """``finemon mcp DIR --transport http`` running: its URL and its process."""
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "finemon", "mcp", str(directory), "--transport", "http",
         "--port", str(port)],
        env=_environment(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )  # fmt: skip
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"finemon mcp exited: {process.communicate()[1].decode()}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.1)
    else:
        process.kill()
        raise AssertionError("finemon mcp --transport http did not listen within 30 s")
    try:
        yield f"http://127.0.0.1:{port}/mcp", process
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture
def http_server(small_dir: Path) -> Iterator[str]:
    with _http_server_process(small_dir) as (url, _process):
        yield url


def test_http_server_subprocess(http_server: str) -> None:
    async def run() -> None:
        async with Client(http_server, read_timeout_seconds=60) as client:
            await _exercise(client)

    asyncio.run(run())


def _outward_address() -> str | None:
    """This host's address on its default route (a UDP connect sends nothing)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            sock.connect(("192.0.2.1", 9))  # TEST-NET-1: only the route is looked up
        except OSError:
            return None
        address = str(sock.getsockname()[0])
    return None if address.startswith("127.") else address


def test_http_server_binds_loopback_only(http_server: str) -> None:
    address = _outward_address()
    if address is None:
        pytest.skip("this host has no address besides loopback to try")
    port = int(http_server.rsplit(":", 1)[1].split("/", maxsplit=1)[0])
    with pytest.raises(OSError):
        socket.create_connection((address, port), timeout=1).close()


def test_http_server_rejects_a_foreign_host_header(http_server: str) -> None:
    """DNS rebinding: a page on another origin cannot drive the server through the browser."""
    import urllib.error
    import urllib.request

    request = urllib.request.Request(
        http_server,
        data=b'{"jsonrpc": "2.0", "id": 1, "method": "ping"}',
        headers={"Host": "evil.example:80", "Content-Type": "application/json",
                 "Accept": "application/json, text/event-stream"},
    )  # fmt: skip
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request, timeout=10)
    assert caught.value.code in (403, 421)


#: Queries that once took the server to gigabytes (a 200 MB result; string and list
#: aggregations to 8 GB), and the start of what each says now.
SQL_BOMBS = {
    "SELECT repeat('x', 1000000) FROM range(200)": "the result is larger than 1 MiB",
    "SELECT string_agg(repeat('x', 1000), '') FROM range(1000000)": "the query needs more memory",
    "SELECT list(range) FROM range(100000000)": "the query needs more memory",
    "SELECT list(range) FROM range(1000000)": "the result is larger than 1 MiB",
}
#: What the server process may reach at its peak (VmHWM), bombs included.
SERVER_PEAK_BYTES = 1024 * 1024 * 1024


def _peak_rss_bytes(pid: int) -> int:
    """The process's peak resident set (VmHWM in /proc/PID/status)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmHWM in /proc/{pid}/status")


def test_run_sql_bombs_fail_fast_in_bounded_memory(small_dir: Path) -> None:
    """Each bomb fails well within its timeout with its own message, not a timeout, and the
    server's peak RSS stays under 1 GiB; a query past its timeout is stopped near it."""
    timeout_seconds = 5.0

    async def run(url: str) -> None:
        async with Client(url, read_timeout_seconds=120) as client:
            for query, message in SQL_BOMBS.items():
                said = await _error(
                    client, "run_sql", query=query, limit=10_000, timeout_seconds=timeout_seconds
                )
                assert message in said, (query, said)
            began = time.monotonic()
            said = await _error(
                client, "run_sql", query="select count(*) from range(1000000000000)",
                timeout_seconds=timeout_seconds,
            )  # fmt: skip
            assert "longer than 5 s" in said
            assert time.monotonic() - began < 3 * timeout_seconds
            rows = await _call(client, "run_sql", query="select 42 -- still answers")
            assert rows["rows"] == [[42]]

    with _http_server_process(small_dir) as (url, process):
        asyncio.run(run(url))
        peak_bytes = _peak_rss_bytes(process.pid)
    assert peak_bytes < SERVER_PEAK_BYTES, f"peak RSS {peak_bytes / 2**20:.0f} MiB"


def _reported_dataset(root: Path) -> Path:
    """A container's kernel memory every second for 40 s and the agent's report of it every
    15 s, written as finemon writes them (the report as delayed writes at its timestamps)."""
    import capture
    from common.contract import LABEL_COLUMNS

    start = 1_706_745_600  # 2024-02-01T00:00:00Z
    folder = root / "dt=2024-02-01" / "identifier=node-1"
    folder.mkdir(parents=True)
    manager = capture.CaptureManager(
        folder / "finemon-20240201T000000Z-aaaaaaaa-00001.parquet",
        label_columns=LABEL_COLUMNS,
        global_labels={"node_name": "node-1"},
        auto_tick=False,
    )
    manager.start(start)
    kernel = {
        "container_id": "c" * 64,
        "namespace": "shop",
        "pod_name": "p",
        "container_name": "app",
    }
    agent = {"container_id": "c" * 64, "host": "node-1"}
    try:
        for second in range(40):
            capture.gauge("container.memory.usage_bytes", kernel).set(200.0 + second)
            capture.gauge("container.memory.working_set_bytes", kernel).set(150.0 + second)
            manager.take_tick(start + second)
            if second % 15 == 0:
                capture.historical.gauge_set(
                    "target.container.memory.usage", agent, 180.0 + second, start + second
                )
    finally:
        manager.close()
    return root


def test_compare_reported_puts_the_agents_report_beside_the_kernels(tmp_path: Path) -> None:
    explorer = Explorer(_reported_dataset(tmp_path / "out"))

    async def run() -> None:
        async with Client(build_server(explorer)) as client:
            found = await _call(client, "compare_reported", container="shop/p/app", max_points=40)
            assert found["bucket_seconds"] == 1.0
            points = found["points"]
            assert len(points) == 40
            assert points[0][1:] == [180.0, 200.0, 150.0]
            assert points[14][1:] == [180.0, 214.0, 164.0]  # the report holds, the kernel climbs
            assert points[15][1:] == [195.0, 215.0, 165.0]
            gaps = found["difference"]["container.memory.working_set_bytes"]
            assert gaps["max_abs"] == 30.0
            assert gaps["mean"] == pytest.approx(sum(30 - (s % 15) for s in range(40)) / 40)
            coarse = await _call(client, "compare_reported", container="shop/p/app", max_points=4)
            assert coarse["bucket_seconds"] == 10.0 and len(coarse["points"]) == 4
            said = await _error(
                client, "compare_reported", container="shop/p/app", reported="container.x"
            )
            assert "target.*" in said

    asyncio.run(run())
