"""The intake's HTTP server in this process, driven by a real HTTP client (httpx): answers,
counts, bounds, and the API key never kept."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
from finemon_process import free_port
from intake_payloads import metric_payload, zstd, zstd_bomb

import capture
from monitor.intake.flags import IntakeConfig
from monitor.intake.payload import COUNT, GAUGE
from monitor.intake.server import IntakeServer

MiB = 1 << 20
SECRET = "0123456789abcdef0123456789abcdef"


@dataclass
class Running:
    server: IntakeServer
    client: httpx.Client
    recorder: capture.CaptureRecorder


@pytest.fixture
def intake() -> Iterator[Running]:
    recorder = capture.CaptureRecorder(window_ticks=60)
    capture.set_recorder(recorder)
    recorder.begin(recorder.tick_of(time.time()) - 59)
    recorder.take_tick()
    server = IntakeServer(IntakeConfig(port=free_port(), max_bytes=2 * MiB))
    server.start()
    client = httpx.Client(base_url=f"http://127.0.0.1:{server.bound_port}", timeout=30)
    deadline = time.monotonic() + 10
    while True:
        try:
            client.get("/api/v1/validate")
            break
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    server.start_recording()
    try:
        yield Running(server, client, recorder)
    finally:
        client.close()
        server.stop()
        capture.set_recorder(None)


def values(
    recorder: capture.CaptureRecorder, name: str
) -> dict[tuple[tuple[str, str], ...], float]:
    return {h.labels: h.current for h in recorder.live_handles() if h.name == name}


def test_validate_answers_200(intake: Running) -> None:
    answer = intake.client.get("/api/v1/validate", headers={"DD-API-KEY": SECRET})
    assert (answer.status_code, answer.json()) == (200, {"valid": True})


def test_series_are_answered_202_as_the_intake_does(intake: Running) -> None:
    now = int(time.time())
    v1 = {"series": [{"metric": "a", "points": [[now - 2, 4]], "host": "h", "tags": ["k:v"]}]}
    answer = intake.client.post("/api/v1/series", json=v1)
    assert (answer.status_code, answer.json()) == (202, {"status": "ok"})
    v2 = {"series": [{"metric": "b", "type": 1, "points": [{"timestamp": now - 2, "value": 3}]}]}
    answer = intake.client.post("/api/v2/series", json=v2)
    assert (answer.status_code, answer.json()) == (202, {"errors": []})
    body = zstd(metric_payload([("c", GAUGE, [(now - 1, 7.5)], ["x:y"], "h2")]))
    answer = intake.client.post(
        "/api/v2/series",
        content=body,
        headers={"Content-Type": "application/x-protobuf", "Content-Encoding": "zstd"},
    )
    assert (answer.status_code, answer.json()) == (202, {"errors": []})
    recorder = intake.recorder
    assert values(recorder, "target.a") == {(("host", "h"), ("k", "v")): 4.0}
    assert values(recorder, "target.b") == {(): 3}
    assert values(recorder, "target.c") == {
        (("host", "h2"), ("source_type_name", "System"), ("x", "y")): 7.5
    }
    assert intake.server.stats.requests == {
        "/api/v1/validate": 1,
        "/api/v1/series": 1,
        "/api/v2/series": 2,
    }


def test_other_intake_paths_are_accepted_and_counted_per_path(intake: Running) -> None:
    for path in ("/api/v1/check_run", "/intake/", "/api/v1/check_run"):
        assert intake.client.post(path, content=b'{"x": 1}').status_code == 202
    assert intake.client.get("/favicon.ico").status_code == 404
    requests = intake.server.stats.requests
    assert (requests["/api/v1/check_run"], requests["/intake/"], requests["other"]) == (2, 1, 1)
    counted = values(intake.recorder, "finemon.intake.requests")
    assert counted[(("path", "/api/v1/check_run"),)] == 2
    assert not any(
        k.startswith("target.") for k in {h.name for h in intake.recorder.live_handles()}
    )


def test_nothing_is_written_while_not_recording(intake: Running) -> None:
    intake.server.stop_recording()
    now = int(time.time())
    v1 = {"series": [{"metric": "late", "points": [[now, 1]]}]}
    assert intake.client.post("/api/v1/series", json=v1).status_code == 503
    assert values(intake.recorder, "target.late") == {}
    assert intake.server.stats.bad_requests == {"not_recording": 1}


@pytest.mark.parametrize(
    ("body", "headers", "status", "reason"),
    [
        (b"garbage", {"Content-Type": "application/x-protobuf"}, 400, "malformed"),
        (b"{not json", {"Content-Type": "application/json"}, 400, "malformed"),
        (b'{"series": [{"metric": "m", "type": "x", "points": []}]}', {}, 400, "malformed"),
        (b"\x28\xb5\x2f\xfd garbage", {"Content-Encoding": "zstd"}, 400, "malformed"),
        (b"x", {"Content-Encoding": "br"}, 400, "malformed"),
        (bytes(3 * MiB), {}, 413, "too_large"),
        (zstd_bomb(64 * MiB), {"Content-Encoding": "zstd"}, 413, "too_large"),
    ],
    ids=["protobuf", "json", "wrong-type", "zstd", "encoding", "over-bound", "zip-bomb"],
)
def test_bad_bodies_get_400_or_413_are_counted_and_the_server_goes_on(
    intake: Running, body: bytes, headers: dict[str, str], status: int, reason: str
) -> None:
    answer = intake.client.post("/api/v2/series", content=body, headers=headers)
    assert answer.status_code == status
    assert intake.server.stats.bad_requests == {reason: 1}
    assert values(intake.recorder, "finemon.intake.bad_requests") == {(("reason", reason),): 1}
    now = int(time.time())
    good = {"series": [{"metric": "after", "type": 3, "points": [{"timestamp": now, "value": 1}]}]}
    assert intake.client.post("/api/v2/series", json=good).status_code == 202


def test_a_chunked_body_over_the_bound_is_cut_off(intake: Running) -> None:
    def chunks() -> Iterator[bytes]:
        for _ in range(4):
            yield bytes(MiB)

    answer = intake.client.post("/api/v1/series", content=chunks())
    assert answer.status_code == 413
    assert intake.server.stats.bytes_received == 0


def test_bad_requests_are_logged_once_a_minute(
    intake: Running, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    for _ in range(5):
        intake.client.post("/api/v2/series", content=b"garbage")
    lines = [r for r in caplog.records if "reason=malformed" in r.getMessage()]
    assert len(lines) == 1
    assert intake.server.stats.bad_requests == {"malformed": 5}


def test_the_api_key_is_never_logged_nor_kept(
    intake: Running, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    headers = {"DD-API-KEY": SECRET, "Content-Type": "application/x-protobuf"}
    intake.client.post(f"/api/v2/series?api_key={SECRET}", content=b"garbage", headers=headers)
    intake.client.post(f"/api/v1/series?api_key={SECRET}", content=b"{", headers=headers)
    intake.client.post("/api/v1/check_run", content=b"[]", headers=headers)
    body = metric_payload([("k", COUNT, [(int(time.time()), 1.0)], [], "h")])
    assert intake.client.post("/api/v2/series", content=body, headers=headers).status_code == 202
    # (The client's own loggers, httpx and httpcore, print the URL: not the server's.)
    served = [r for r in caplog.records if r.name.startswith(("finemon", "uvicorn", "starlette"))]
    assert served
    assert not [r for r in served if SECRET in r.getMessage()]
    assert SECRET not in json.dumps(intake.server.summary())
    kept = [(h.name, h.labels) for h in intake.recorder.live_handles()]
    assert SECRET not in repr(kept)


def test_a_request_waits_while_the_tick_loop_samples(intake: Running) -> None:
    import threading

    now = int(time.time())
    answers: list[int] = []
    body = {"series": [{"metric": "w", "type": 3, "points": [{"timestamp": now, "value": 1}]}]}

    def post() -> None:
        answers.append(intake.client.post("/api/v2/series", json=body).status_code)

    with intake.server.window.sampling():
        sender = threading.Thread(target=post)
        sender.start()
        sender.join(1.0)
        assert answers == []  # held at its first checkpoint while the sample runs
        assert values(intake.recorder, "target.w") == {}
    sender.join(10)
    assert answers == [202]
    assert values(intake.recorder, "target.w") == {(): 1.0}


def test_decoders_and_writer_reach_a_checkpoint_every_256_series() -> None:
    from monitor.intake.decode import decode_v2_json
    from monitor.intake.record import IntakeWriter

    calls: list[int] = []
    series = [{"metric": f"m{i}", "type": 3, "points": []} for i in range(1000)]
    batch = decode_v2_json(json.dumps({"series": series}).encode(), lambda: calls.append(1))
    assert len(calls) == 3
    IntakeWriter().write(batch, lambda: calls.append(2))
    assert calls == [1, 1, 1, 2, 2, 2]
