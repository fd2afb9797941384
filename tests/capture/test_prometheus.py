"""The live Prometheus view."""

from __future__ import annotations

import socket
import urllib.error
import urllib.request
from collections.abc import Mapping

from prometheus_client import CollectorRegistry, generate_latest

import capture
from capture.delayed import DROPPED_METRIC
from capture.prometheus import (
    MAX_POST_BYTES,
    CaptureCollector,
    sanitize_label_name,
    sanitize_metric_name,
)
from capture.recorder import CaptureRecorder


def test_names_are_sanitized() -> None:
    assert (
        sanitize_metric_name("container.cpu.usage_millicores") == "container_cpu_usage_millicores"
    )
    assert sanitize_metric_name("9lives-x") == "_9lives_x"
    assert sanitize_label_name("pod.name") == "pod_name"
    assert sanitize_label_name("__secret") == "x__secret"


def test_collector_exposes_live_values_and_counters_as_total() -> None:
    rec = CaptureRecorder(global_labels={"node_name": "n1"})
    rec.gauge("container.memory.usage_bytes", {"pod_name": "p1"}).set(1024)
    rec.gauge("container.memory.usage_bytes", {"pod_name": "p2", "extra.key": "e"}).set(2048)
    rec.counter("container.cpu.throttled_periods", {"pod_name": "p1"}).increment(7)
    rec.gauge("never.written")
    gone = rec.gauge("gone")
    gone.set(1)
    gone.remove()
    registry = CollectorRegistry()
    registry.register(CaptureCollector(rec))
    text = generate_latest(registry).decode()
    assert 'container_memory_usage_bytes{extra_key="",node_name="n1",pod_name="p1"} 1024.0' in text
    assert 'container_memory_usage_bytes{extra_key="e",node_name="n1",pod_name="p2"} 2048.0' in text
    assert 'container_cpu_throttled_periods_total{node_name="n1",pod_name="p1"} 7.0' in text
    assert "never_written" not in text
    assert "gone" not in text


def test_http_endpoint_serves_the_installed_recorder() -> None:
    rec = CaptureRecorder()
    capture.set_recorder(rec)
    capture.gauge("live.value", {"k": "v"}).set(42)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server, thread = capture.prometheus.start_http_endpoint(port, "127.0.0.1")
    try:
        body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
        assert 'live_value{k="v"} 42.0' in body
        capture.gauge("live.value", {"k": "v"}).set(43)
        body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
        assert 'live_value{k="v"} 43.0' in body
    finally:
        server.shutdown()
        thread.join(timeout=5)


def _scrape(port: int, openmetrics: bool = False) -> str:
    accept = "application/openmetrics-text; version=1.0.0" if openmetrics else "text/plain"
    request = urllib.request.Request(f"http://127.0.0.1:{port}/metrics", headers={"Accept": accept})
    with urllib.request.urlopen(request, timeout=5) as response:
        body: bytes = response.read()
    return body.decode()


def test_the_endpoint_serves_descriptions_as_help_and_units_in_openmetrics() -> None:
    # Described before the recorder exists, as a program describes its metrics at start.
    capture.describe("served.memory.usage_bytes", "Memory in use, page cache included", "bytes")
    capture.describe("served.cpu.usage_usec", "CPU time used", "usec")
    capture.describe("served.stat.*", "A key of the stat file, as printed", "count")
    capture.describe("served.pids.current", "Tasks in the group", "count")
    rec = CaptureRecorder()
    capture.set_recorder(rec)
    capture.gauge("served.memory.usage_bytes", {"pod_name": "p"}).set(1024)
    capture.counter("served.cpu.usage_usec").absolute(5)
    capture.counter("served.stat.nr_throttled").absolute(2)
    capture.gauge("served.pids.current").set(3)
    capture.gauge("served.undescribed").set(1)
    rec.counter(DROPPED_METRIC, {"reason": "future"}).increment()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server, thread = capture.prometheus.start_http_endpoint(port, "127.0.0.1")
    try:
        text = _scrape(port)
        metrics = _scrape(port, openmetrics=True)
    finally:
        server.shutdown()
        thread.join(timeout=5)
    help_lines = "\n".join(line for line in text.splitlines() if line.startswith("# HELP"))
    assert "# HELP served_memory_usage_bytes Memory in use, page cache included" in help_lines
    assert "# HELP served_cpu_usage_usec_total CPU time used" in help_lines
    assert "# HELP served_stat_nr_throttled_total A key of the stat file, as printed" in text
    assert "# HELP served_undescribed capture gauge served.undescribed" in text
    assert "# HELP capture_dropped_total Delayed (timestamped) writes rejected" in text
    assert "# UNIT" not in text  # the classic text format has no units
    assert 'served_memory_usage_bytes{pod_name="p"} 1024.0' in text
    # OpenMetrics: the unit where the name ends with it; never a renamed metric.
    units = sorted(line for line in metrics.splitlines() if line.startswith("# UNIT"))
    assert units == [
        "# UNIT served_cpu_usage_usec usec",
        "# UNIT served_memory_usage_bytes bytes",
    ]
    assert "# HELP served_memory_usage_bytes Memory in use, page cache included" in metrics
    assert "served_pids_current 3.0" in metrics
    # Counters as integers (prometheus_client writes 5.0: the same sample).
    assert "served_cpu_usage_usec_total 5\n" in metrics
    assert "served_stat_nr_throttled_total 2\n" in metrics
    assert "_count" not in metrics


def _post(url: str, body: bytes) -> tuple[int, str]:
    request = urllib.request.Request(url, data=body, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=5) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def test_http_endpoint_hands_posts_to_the_owners_handlers() -> None:
    seen: list[tuple[dict[str, list[str]], bytes]] = []

    def handler(query: Mapping[str, list[str]], body: bytes) -> tuple[int, str]:
        seen.append((dict(query), body))
        if body == b"boom":
            raise RuntimeError("a handler bug")
        return 202, f"took {len(body)} bytes"

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server, thread = capture.prometheus.start_http_endpoint(
        port, "127.0.0.1", CaptureRecorder(), post={"/mark": handler}
    )
    base = f"http://127.0.0.1:{port}"
    try:
        assert _post(f"{base}/mark?name=a&name=b", b"hello") == (202, "took 5 bytes\n")
        assert seen == [({"name": ["a", "b"]}, b"hello")]
        assert _post(f"{base}/mark", b"boom") == (500, "the handler failed\n")
        assert _post(f"{base}/metrics", b"")[0] == 404 and len(seen) == 2
        assert _post(f"{base}/mark", b"x" * (MAX_POST_BYTES + 1))[0] == 413 and len(seen) == 2
        # The server goes on serving.
        assert _post(f"{base}/mark", b"again") == (202, "took 5 bytes\n")
    finally:
        server.shutdown()
        thread.join(timeout=5)
