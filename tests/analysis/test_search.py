"""One search rule: the viewer's API and the MCP tools find the same containers and metrics.

Every word of a search must be found, in any case, in one of a container's names, labels, id
or cgroup (:mod:`analysis.query.search`), whoever asks.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from analysis.query.explorer import Explorer
from tests.analysis.synthetic import BATCH_ID, DB_ID, WEB_ID

#: (search, the containers found, by key, in the order listed).
CONTAINER_SEARCHES = [
    ("shop ngin", [WEB_ID]),
    ("NGINX shop", [WEB_ID]),
    ("shop", [DB_ID, WEB_ID]),
    ("db-0 postgres", [DB_ID]),
    ("guaranteed", [DB_ID]),
    ("node-1 job", [BATCH_ID]),
    ("shop job", []),
]
#: (search, the metrics found).
METRIC_SEARCHES = [
    ("memory oom", ["container.memory.oom_kills"]),
    ("OOM_KILLS", ["container.memory.oom_kills"]),
    ("oom cpu", []),
]


def _viewer(small_dir: Path) -> Any:
    pytest.importorskip("starlette", reason="starlette is not installed (pip install -e '.[view]')")
    pytest.importorskip("httpx", reason="httpx (starlette's test client) is not installed")
    from starlette.testclient import TestClient

    from analysis.view import create_app

    return TestClient(create_app(Explorer(small_dir), small_dir), base_url="http://127.0.0.1:8050")


def _mcp_tool(small_dir: Path, tool: str, **arguments: Any) -> dict[str, Any]:
    pytest.importorskip("mcp", reason="the mcp extra is not installed")
    from mcp import Client

    from analysis.mcp_server import build_server

    async def call() -> dict[str, Any]:
        async with Client(build_server(Explorer(small_dir))) as client:
            result = await client.call_tool(tool, arguments)
            assert not result.is_error, result.content
            assert result.structured_content is not None
            return result.structured_content

    return asyncio.run(call())


@pytest.mark.parametrize(("search", "expected"), CONTAINER_SEARCHES)
def test_the_explorer_finds_containers_by_every_word(
    small_dir: Path, search: str, expected: list[str]
) -> None:
    assert [c.key for c in Explorer(small_dir).containers(search)] == expected


@pytest.mark.parametrize(("search", "expected"), CONTAINER_SEARCHES)
def test_the_viewer_finds_containers_by_the_same_rule(
    small_dir: Path, search: str, expected: list[str]
) -> None:
    with _viewer(small_dir) as client:
        body = client.get("/api/containers", params={"search": search}).json()
    assert [c["key"] for c in body["containers"]] == expected


@pytest.mark.parametrize(("search", "expected"), CONTAINER_SEARCHES)
def test_mcp_finds_containers_by_the_same_rule(
    small_dir: Path, search: str, expected: list[str]
) -> None:
    found = _mcp_tool(small_dir, "list_containers", search=search)
    assert [c["key"] for c in found["containers"]] == expected


@pytest.mark.parametrize(("search", "expected"), METRIC_SEARCHES)
def test_the_viewer_and_mcp_find_metrics_by_the_same_rule(
    small_dir: Path, search: str, expected: list[str]
) -> None:
    with _viewer(small_dir) as client:
        body = client.get("/api/metrics", params={"search": search}).json()
    assert [m["name"] for m in body["metrics"]] == expected
    found = _mcp_tool(small_dir, "list_metrics", search=search)
    assert [m["name"] for m in found["metrics"]] == expected
