"""The live Prometheus view."""

from __future__ import annotations

import socket
import urllib.request

from prometheus_client import CollectorRegistry, generate_latest

import capture
from capture.prometheus import CaptureCollector, sanitize_label_name, sanitize_metric_name
from capture.registry import CaptureRecorder


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
