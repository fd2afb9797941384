"""The viewer's reported-vs-observed panel and label filters on what a real ``finemon run
--intake-port`` recorded: a kubelet-shaped sandbox (``monitor.sandbox``) on this host's real
cgroups, and a zstd-compressed protobuf ``MetricPayload`` posted to the daemon's intake as the
Datadog Agent's forwarder posts it, about that container."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from monitor.sandbox import KubeletSandbox, sandbox_unavailable

pytest.importorskip("starlette", reason="starlette is not installed (pip install -e '.[view]')")
httpx = pytest.importorskip("httpx", reason="httpx is not installed")
zstandard = pytest.importorskip("zstandard", reason="the intake extra is not installed")
pytest.importorskip("google.protobuf", reason="the intake extra is not installed")

from starlette.testclient import TestClient  # noqa: E402

from analysis.query.explorer import Explorer  # noqa: E402
from analysis.view import create_app  # noqa: E402
from monitor.intake.payload import GAUGE, MetricPayload  # noqa: E402

pytestmark = pytest.mark.slow
SRC = Path(__file__).resolve().parents[2] / "src"
REPORTED_BYTES = 123_456_789.0
REPORTED_NANOCORES = 250e6


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _payload(container_id: str, at: int) -> bytes:
    """What the agent's forwarder posts: the container's memory and CPU as it sees them."""
    message: Any = MetricPayload()
    for metric, value in (("container.memory.usage", REPORTED_BYTES),
                          ("container.cpu.usage", REPORTED_NANOCORES)):  # fmt: skip
        series = message.series.add()
        series.metric = metric
        series.type = GAUGE
        series.tags.extend([f"container_id:{container_id}", "kube_namespace:datadog", "canary"])
        series.source_type_name = "containerd"
        series.interval = 15
        resource = series.resources.add()
        resource.type, resource.name = "host", "agent-host"
        point = series.points.add()
        point.timestamp, point.value = at, value
    data: bytes = zstandard.ZstdCompressor().compress(message.SerializeToString())
    return data


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    reason = sandbox_unavailable()
    if reason is not None:
        pytest.skip(f"cannot build real cgroups: {reason}")
    base = tmp_path_factory.mktemp("intake-view")
    out = base / "out"
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("POD_NAME", "NODE_NAME")}
    env["PYTHONPATH"] = str(SRC)
    with KubeletSandbox(log_root=base / "log") as box:
        agent = box.add_container(
            "agent-7d9f8c6b5-x2x9q", "agent", [("sleep", [])], namespace="datadog"
        )
        assert box.log_root is not None
        log = (base / "finemon.log").open("wb")
        proc = subprocess.Popen(
            [sys.executable, "-m", "finemon", "run", "--output-dir", str(out), "--interval",
             "0.5", "--window-seconds", "5", "--rotation-seconds", "10",
             "--log-root", str(box.log_root), "--node-name", "intake-node",
             "--identifier", "intake-node", "--intake-port", str(port)],
            stdout=subprocess.DEVNULL, stderr=log, env=env,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 30
            while not (out / ".finemon.sock").exists():
                assert proc.poll() is None and time.monotonic() < deadline, "finemon started"
                time.sleep(0.05)
            time.sleep(2.5)
            answer = httpx.post(
                f"http://127.0.0.1:{port}/api/v2/series",
                content=_payload(agent.container_id, int(time.time()) - 1),
                headers={
                    "Content-Type": "application/x-protobuf",
                    "Content-Encoding": "zstd",
                    "DD-API-KEY": "0" * 32,
                },
                timeout=30,
            )
            assert answer.status_code == 202, answer.text
            time.sleep(2.0)
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=60) == 0, (base / "finemon.log").read_text()
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            log.close()
    return out, agent.container_id


@pytest.mark.root
def test_the_agents_report_is_beside_the_kernels_figures(recorded: tuple[Path, str]) -> None:
    out, container_id = recorded
    explorer = Explorer(out)
    assert [p.reported for p in explorer.reported_pairs()[container_id]] == [
        "target.container.memory.usage",
        "target.container.cpu.usage",
    ]
    client = TestClient(create_app(explorer, out), base_url="http://127.0.0.1:8050")
    found = client.get("/api/reported", params={"container": container_id}).json()
    memory, cpu = found["comparisons"]
    # The agent's figure, held from its point on, beside the kernel's for the same cgroup.
    both = [p for p in memory["points"] if p[1] is not None and p[2] is not None]
    assert both, memory["points"]
    assert {p[1] for p in both} == {REPORTED_BYTES}
    assert all(usage > 0 for _, _, usage, _ in both)  # a sleeping process's pages, at least
    gaps = memory["difference"]["container.memory.usage_bytes"]
    assert gaps["mean"] == pytest.approx(sum(p[1] - p[2] for p in both) / len(both), rel=1e-9)
    assert {p[1] for p in cpu["points"] if p[1] is not None} == {REPORTED_NANOCORES * 1e-6}
    # The tags are label filters of the agent's series.
    canary = client.get("/api/series", params={
        "metric": "target.container.memory.usage", "container": container_id,
        "label": "tag.canary=true"}).json()["series"]  # fmt: skip
    assert [s["labels"]["source_type_name"] for s in canary] == ["containerd"]
    assert client.get("/api/series", params={
        "metric": "target.container.memory.usage", "container": container_id,
        "label": "kube_namespace=elsewhere"}).json()["series"] == []  # fmt: skip
