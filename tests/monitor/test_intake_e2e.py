"""The real ``finemon run`` with ``--intake-port`` and ``--target-metrics``, fed by real
clients nobody here wrote: Datadog's ``datadog-api-client`` (v2 JSON), a protobuf payload built
with the protobuf runtime and zstd-compressed as the agent sends it, and a
``prometheus_client`` HTTP server as the scraped target."""

from __future__ import annotations

import json
import math
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from finemon_process import Finemon, free_port, manifest, read_all, wait_for
from intake_payloads import metric_payload, zstd, zstd_bomb
from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server

import capture
from monitor.intake.payload import COUNT, GAUGE

pytestmark = pytest.mark.slow

API_KEY = "fedcba9876543210fedcba9876543210"
PROTOBUF = {"Content-Type": "application/x-protobuf", "Content-Encoding": "zstd"}


def submit_with_datadog_client(port: int, now: int) -> Any:
    """What a program using Datadog's API client sends: points 55, 30 and 5 s old for the
    container cid-1 (fake_observer's), and one 90 s old."""
    from datadog_api_client import ApiClient, Configuration
    from datadog_api_client.v2.api.metrics_api import MetricsApi
    from datadog_api_client.v2.model.metric_intake_type import MetricIntakeType
    from datadog_api_client.v2.model.metric_payload import MetricPayload
    from datadog_api_client.v2.model.metric_point import MetricPoint
    from datadog_api_client.v2.model.metric_resource import MetricResource
    from datadog_api_client.v2.model.metric_series import MetricSeries

    configuration = Configuration(host=f"http://127.0.0.1:{port}")
    configuration.api_key["apiKeyAuth"] = API_KEY
    series = MetricSeries(
        metric="container.memory.usage",
        type=MetricIntakeType.GAUGE,
        points=[
            MetricPoint(timestamp=now - 55, value=100.0),
            MetricPoint(timestamp=now - 30, value=200.0),
            MetricPoint(timestamp=now - 5, value=300.0),
            MetricPoint(timestamp=now - 90, value=999.0),
        ],
        resources=[MetricResource(name="agent-host", type="host")],
        tags=["container_id:cid-1", "kube_namespace:default"],
    )
    with ApiClient(configuration) as client:
        return MetricsApi(client).submit_metrics(body=MetricPayload(series=[series]))


class _Expvar(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = json.dumps({"memstats": {"HeapAlloc": 12345, "PauseNs": [1, 2]}, "cmdline": ["x"]})
        self.send_response(200)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.end_headers()
        self.wfile.write(body.encode())

    def log_message(self, *args: object) -> None:
        pass


@dataclass
class Run:
    rows: list[dict[str, Any]]
    manifest: dict[str, Any]
    log: str
    code: int
    now: int
    answers: dict[str, int]
    prometheus_stopped: float
    interval: float


def _by_name(rows: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    return sorted((r for r in rows if r["metric_name"] == name), key=lambda r: r["time"])


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    tmp = tmp_path_factory.mktemp("intake")
    registry = CollectorRegistry()
    queue = Gauge("agent_queue_items", "items queued", ["queue"], registry=registry)
    queue.labels(queue="forwarder").set(7)
    Counter("agent_payloads", "payloads sent", registry=registry).inc(3)
    prom_port = free_port()
    prom_server, _thread = start_http_server(prom_port, "127.0.0.1", registry=registry)
    expvar = ThreadingHTTPServer(("127.0.0.1", 0), _Expvar)
    threading.Thread(target=expvar.serve_forever, daemon=True).start()
    dead = free_port()
    intake_port = free_port()
    proc = Finemon(
        tmp / "out",
        "--interval",
        "1",
        "--flush-seconds",
        "2",
        "--log-root",
        str(tmp),
        "--intake-port",
        str(intake_port),
        "--target-metrics",
        f"http://127.0.0.1:{prom_port}/metrics,"
        f"http://127.0.0.1:{expvar.server_address[1]}/debug/vars,"
        f"http://127.0.0.1:{dead}/metrics",
    )
    try:
        proc.wait_log("recording run_id", timeout=30)
        started = time.time()
        # The prometheus target goes away after a while: its series must stop.
        wait_for(lambda: time.time() > started + 15, 20, "15 s of scrapes", poll=0.5)
        prom_server.shutdown()
        prom_server.server_close()
        prometheus_stopped = time.time()
        # Points 55 s old must be inside the run (after its first tick).
        wait_for(lambda: time.time() > started + 58, 60, "58 s of recording", poll=0.5)
        now = int(time.time())
        answers: dict[str, int] = {}
        assert submit_with_datadog_client(intake_port, now).to_dict() == {"errors": []}
        with httpx.Client(base_url=f"http://127.0.0.1:{intake_port}", timeout=30) as client:
            counts = metric_payload(
                [("requests", COUNT, [(now - 20, 2.0), (now - 2, 3.0)], [], "h")]
            )
            answers["protobuf"] = client.post(
                "/api/v2/series", content=zstd(counts), headers=PROTOBUF
            ).status_code
            for name, body, headers in (
                ("garbage", b"\x00garbage", {"Content-Type": "application/x-protobuf"}),
                ("zip_bomb", zstd_bomb(64 << 20), PROTOBUF),
                (
                    "wrong_types",
                    b'{"series": [{"metric": 1}]}',
                    {"Content-Type": "application/json"},
                ),
            ):
                answers[name] = client.post(
                    "/api/v2/series", content=body, headers=headers
                ).status_code
            time.sleep(1.5)  # (the live counters of the refusals go into the next sample's tick)
            # The last points answered 202 right before the SIGTERM: a gauge and a count in the
            # tick in progress, and a count in the tick taken last; none of their series has a
            # later sample.
            stamp = time.time()
            last = {
                "series": [
                    {"metric": "last", "points": [[stamp, 42.0]]},
                    {"metric": "last_count", "type": "count", "points": [[stamp, 5]]},
                ]
            }
            answers["last"] = client.post("/api/v1/series", json=last).status_code
            taken = metric_payload([("last_count_pb", COUNT, [(int(stamp) - 1, 4.0)], [], "h")])
            answers["last_pb"] = client.post(
                "/api/v2/series", content=zstd(taken), headers=PROTOBUF
            ).status_code
        proc.signal(signal.SIGTERM)
        code = proc.wait(60)
        out = tmp / "out"
        yield Run(
            read_all(out).to_pylist(),
            manifest(out),
            proc.log,
            code,
            now,
            answers,
            prometheus_stopped,
            1.0,
        )
    finally:
        proc.kill()
        expvar.shutdown()
        prom_server.shutdown()


def test_finemon_stops_cleanly(run: Run) -> None:
    assert run.code == 0, run.log
    assert "Traceback" not in run.log


def test_each_point_of_the_datadog_client_lands_in_its_own_tick(run: Run) -> None:
    rows = _by_name(run.rows, "target.container.memory.usage")
    by_second = {int(r["time"].timestamp()): r["value_float"] for r in rows}
    now = run.now
    assert min(by_second) == now - 55
    assert [by_second[now - 55], by_second[now - 31], by_second[now - 30]] == [100.0, 100.0, 200.0]
    assert [by_second[now - 6], by_second[now - 5]] == [200.0, 300.0]
    assert 999.0 not in by_second.values()
    first = rows[0]
    assert first["container_id"] == "cid-1"
    assert dict(first["labels"]) == {"kube_namespace": "default", "host": "agent-host"}


def test_the_90_s_old_point_is_counted_as_late(run: Run) -> None:
    dropped = _by_name(run.rows, "capture.dropped")
    assert {dict(r["labels"])["reason"] for r in dropped} == {"too_old"}
    assert dropped[-1]["value_int"] == 1


def test_the_agents_rows_join_the_kernels_on_container_id(run: Run) -> None:
    kernel = {(r["container_id"], r["time"]) for r in _by_name(run.rows, "fake.cpu_millicores")}
    agent = {
        (r["container_id"], r["time"]) for r in _by_name(run.rows, "target.container.memory.usage")
    }
    assert agent and agent <= kernel


def test_a_zstd_protobuf_count_becomes_a_counter(run: Run) -> None:
    assert run.answers["protobuf"] == 202
    rows = _by_name(run.rows, "target.requests")
    assert {r["metric_kind"] for r in rows} == {"counter"}
    values = {int(r["time"].timestamp()): r["value_int"] for r in rows}
    assert (values[run.now - 20], values[run.now - 2]) == (2, 5)


def test_sigterm_loses_nothing_answered_202(run: Run) -> None:
    assert (run.answers["last"], run.answers["last_pb"]) == (202, 202)
    assert [r["value_float"] for r in _by_name(run.rows, "target.last")] == [42.0]
    # Counter increments of series with no later sample: in the files, in their own ticks.
    counted = _by_name(run.rows, "target.last_count")
    assert [(r["metric_kind"], r["value_int"]) for r in counted] == [("counter", 5)]
    taken = _by_name(run.rows, "target.last_count_pb")
    assert {r["value_int"] for r in taken} == {4}
    assert taken[0]["time"] < counted[0]["time"]  # its own, earlier, tick


def test_bad_bodies_are_refused_and_counted(run: Run) -> None:
    assert (run.answers["garbage"], run.answers["zip_bomb"], run.answers["wrong_types"]) == (
        400,
        413,
        400,
    )
    intake = run.manifest["intake"]
    assert intake["bad_requests"] == {"malformed": 2, "too_large": 1}
    assert intake["requests"] == {"/api/v2/series": 6, "/api/v1/series": 1}
    assert intake["points_dropped"] == {}
    assert intake["points_received"] == 9
    assert run.manifest["config"]["intake"]["max_series"] == 50_000
    bad = {
        dict(r["labels"])["reason"]: r["value_int"]
        for r in _by_name(run.rows, "finemon.intake.bad_requests")
    }
    assert bad == {"malformed": 2, "too_large": 1}


def test_the_api_key_is_in_no_file(run: Run, tmp_path_factory: pytest.TempPathFactory) -> None:
    assert API_KEY not in run.log
    assert API_KEY not in json.dumps(run.manifest)
    assert API_KEY not in repr(run.rows)


def test_prometheus_target_is_scraped_each_tick_and_its_series_stop(run: Run) -> None:
    rows = _by_name(run.rows, "target.agent_queue_items")
    assert rows
    labels = dict(rows[0]["labels"])
    assert labels["queue"] == "forwarder"
    assert labels["endpoint"].endswith("/metrics")
    assert {r["value_float"] for r in rows} == {7.0}
    seconds = sorted(int(r["time"].timestamp()) for r in rows)
    assert len(seconds) >= 10
    assert seconds == list(range(seconds[0], seconds[-1] + 1))  # one a tick, no gap
    assert seconds[-1] <= math.ceil(run.prometheus_stopped) + 1  # and then no more
    assert _by_name(run.rows, "target.agent_payloads_total")[0]["value_float"] == 3.0
    errors = {
        dict(r["labels"])["reason"] for r in _by_name(run.rows, "finemon.target_metrics.errors")
    }
    assert errors == {"unreachable"}


def test_expvar_leaves_become_dotted_names(run: Run) -> None:
    assert _by_name(run.rows, "target.memstats.HeapAlloc")[-1]["value_float"] == 12345.0
    assert _by_name(run.rows, "target.memstats.PauseNs.1")[-1]["value_float"] == 2.0
    assert not [r for r in run.rows if r["metric_name"].startswith("target.cmdline")]


def test_sigkill_loses_at_most_the_flush_interval(tmp_path: Path) -> None:
    port = free_port()
    out = tmp_path / "out"
    proc = Finemon(
        out,
        "--interval",
        "0.1",
        "--window-seconds",
        "5",  # (protobuf timestamps are whole seconds: up to 1 s old when sent)
        "--rotation-seconds",
        "30",
        "--flush-seconds",
        "1",
        "--log-root",
        str(tmp_path),
        "--intake-port",
        str(port),
    )
    accepted: list[tuple[int, float]] = []
    try:
        proc.wait_log("recording run_id", timeout=30)
        time.sleep(2.5)  # past the run's first tick (whole-second timestamps before it are late)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            for i in range(30):
                body = metric_payload(
                    [("beat", GAUGE, [(int(time.time()), float(i))], [f"i:{i}"], "h")]
                )
                answer = client.post("/api/v2/series", content=zstd(body), headers=PROTOBUF)
                assert answer.status_code == 202
                accepted.append((i, time.time()))
                time.sleep(0.1)
        proc.process.send_signal(signal.SIGKILL)
        killed = time.time()
        proc.wait(10)
    finally:
        proc.kill()
    capture.recover(out)
    found = {
        dict(r["labels"])["i"]
        for r in read_all(out).to_pylist()
        if r["metric_name"] == "target.beat"
    }
    due = {str(i) for i, at in accepted if at < killed - 1.0}
    assert due and due <= found, sorted(due - found)
