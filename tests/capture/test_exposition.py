"""The live endpoint's exposition: rendered at most once per tick, only what changed formatted
again, the same bytes to every scraper, and the same samples prometheus_client serves."""

from __future__ import annotations

import gzip
import http.client
import math
import random
import socket
import urllib.request
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as parse_openmetrics,
)
from prometheus_client.parser import text_string_to_metric_families as parse_text

import capture.exposition
from capture.exposition import Exposition
from capture.live import LIVE_LOG_GENERATIONS
from capture.prometheus import CaptureCollector, Endpoint, start_http_endpoint
from capture.recorder import CaptureRecorder
from tests.capture.conftest import FakeClock

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def samples(text: str, openmetrics: bool = False) -> Samples:
    """Every sample of an exposition, by name and labels (an empty label is no label)."""
    out: Samples = {}
    for family in (parse_openmetrics if openmetrics else parse_text)(text):
        for sample in family.samples:
            labels = tuple(sorted((k, v) for k, v in sample.labels.items() if v))
            key = (sample.name, labels)
            assert key not in out, key
            out[key] = sample.value
    return out


def same(a: Samples, b: Samples) -> bool:
    return a.keys() == b.keys() and all(
        a[k] == b[k] or (math.isnan(a[k]) and math.isnan(b[k])) for k in a
    )


@pytest.mark.parametrize("seed", range(2))
def test_the_exposition_serves_what_prometheus_client_serves_through_churn(
    seed: int, clock: FakeClock
) -> None:
    """Series come and go (more than the recorder's log of changes between two renders at
    times), values change or not; after each tick every form of the body holds exactly the
    samples prometheus_client renders from the same recorder."""
    rnd = random.Random(seed)
    rec = CaptureRecorder(global_labels={"node_name": "n1"}, clock=clock)
    exposition = Exposition(rec)
    reference = CollectorRegistry(auto_describe=False)
    reference.register(CaptureCollector(rec))
    live: dict[tuple[str, int], Any] = {}
    odd = ["plain", 'quote"', "back\\slash", "new\nline", "ünï"]
    renders = 0
    for step in range(80):
        for _ in range(rnd.randrange(30)):
            name = rnd.choice(["a.gauge", "b.gauge", "c.total", "d.count", "9.odd-name"])
            container = rnd.randrange(15)
            labels = {"container_id": str(container), "pod.name": rnd.choice(odd)}
            if name in ("c.total", "d.count"):
                handle: Any = rec.counter(name, labels)
                handle.increment(rnd.choice([0, 1, 5, 2**40]))
            else:
                handle = rec.gauge(name, labels)
                handle.set(rnd.choice([rnd.random(), 7, -0.5, 1e300, math.inf, -math.inf]))
            live[(name, container)] = handle
        for key in rnd.sample(sorted(live), min(len(live), rnd.randrange(6))):
            live.pop(key).remove()
        clock.now += rec.tick_seconds
        rec.take_tick()
        # Now and then many generations go by unseen: the exposition starts over from them.
        if rnd.random() < 0.05:
            for _ in range(LIVE_LOG_GENERATIONS + 1):
                rec.gauge("churn", {"n": str(rnd.random())}).set(1)
                clock.now += rec.tick_seconds
                rec.take_tick()
            for handle in [h for h in rec.live_handles() if h.name == "churn"]:
                handle.remove()
            clock.now += rec.tick_seconds
            rec.take_tick()
        if rnd.random() < 0.3:
            continue  # no scrape this tick
        expected = samples(generate_latest(reference).decode())
        plain = exposition.body()
        assert same(samples(plain.decode()), expected), step
        assert gzip.decompress(exposition.body(gzip=True)) == plain
        openmetrics = exposition.body(openmetrics=True)
        assert openmetrics.endswith(b"# EOF\n")
        assert gzip.decompress(exposition.body(openmetrics=True, gzip=True)) == openmetrics
        om_samples = samples(openmetrics.decode(), openmetrics=True)
        assert same(om_samples, expected), step
        renders += 1
    assert exposition.renders == renders


class Counting:
    """Counts the calls of a module function (the work a render does per series)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, name: str) -> None:
        self.calls = 0
        original = getattr(capture.exposition, name)

        def counted(*args: Any) -> Any:
            self.calls += 1
            return original(*args)

        monkeypatch.setattr(capture.exposition, name, counted)


def test_a_render_formats_only_the_values_that_changed(
    clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    escaped = Counting(monkeypatch, "escape_label_value")
    rec = CaptureRecorder(clock=clock)
    handles = [rec.gauge("g", {"container_id": str(i)}) for i in range(1000)]
    for handle in handles:
        handle.set(1.5)
    clock.now += 1
    rec.take_tick()
    exposition = Exposition(rec)
    exposition.body()
    assert exposition.formatted == 1000
    assert escaped.calls == 1000
    for handle in handles[:3]:
        handle.set(2.5)
    rec.gauge("g", {"container_id": "new"}).set(9)
    clock.now += 1
    rec.take_tick()
    body = exposition.body().decode()
    assert exposition.formatted == 1000 + 3 + 1
    assert escaped.calls == 1000 + 1  # a label set is escaped once, when its series appears
    assert body.count(" 2.5\n") == 3 and body.count(" 1.5\n") == 997
    assert 'g{container_id="new"} 9.0' in body


def test_values_are_written_as_the_formats_spell_them(clock: FakeClock) -> None:
    # A numpy scalar has a repr of its own ("np.float64(1.5)"); inf and NaN have fixed spellings.
    rec = CaptureRecorder(clock=clock)
    values = {"a": np.float64(1.5), "b": math.inf, "c": -math.inf, "d": math.nan, "e": 7}
    for key, value in values.items():
        rec.gauge("g", {"k": key}).set(value)  # type: ignore[arg-type]
    rec.counter("n", {"k": "a"}).increment(np.int64(3))  # type: ignore[arg-type]
    clock.now += 1
    rec.take_tick()
    body = Exposition(rec).body().decode()
    for line in ('g{k="a"} 1.5', 'g{k="b"} +Inf', 'g{k="c"} -Inf', 'g{k="d"} NaN', 'g{k="e"} 7.0'):
        assert f"{line}\n" in body
    assert 'n_total{k="a"} 3\n' in body
    assert same(samples(body), samples(Exposition(rec).body().decode()))


def test_exposed_labels_choose_what_a_series_is_served_with(clock: FakeClock) -> None:
    rec = CaptureRecorder(clock=clock, global_labels={"node_name": "n1"})
    rec.gauge("g", {"container_id": "c1", "pod_uid": "u1"}).set(1)
    rec.gauge("g", {"pod_uid": "u2"}).set(2)
    clock.now += 1
    rec.take_tick()
    asked: list[tuple[tuple[str, str], ...]] = []

    def without_uid(labels: tuple[tuple[str, str], ...]) -> tuple[tuple[str, str], ...]:
        asked.append(labels)
        return tuple((k, v) for k, v in labels if k != "pod_uid" or labels[0][0] != "container_id")

    exposition = Exposition(rec, exposed_labels=without_uid)
    got = samples(exposition.body().decode())
    assert got == {
        ("g", (("container_id", "c1"), ("node_name", "n1"))): 1.0,
        ("g", (("node_name", "n1"), ("pod_uid", "u2"))): 2.0,
    }
    clock.now += 1
    rec.take_tick()
    exposition.body()
    assert len(asked) == 2  # once per label set, not per render


def test_a_label_value_that_is_not_text_is_served_readable(clock: FakeClock) -> None:
    """A label read from undecodable bytes (a lone surrogate) becomes ``?``: prometheus_client
    itself cannot encode it."""
    rec = CaptureRecorder(clock=clock)
    rec.gauge("g", {"comm": "a\udcffb"}).set(1)
    clock.now += 1
    rec.take_tick()
    body = Exposition(rec).body().decode()
    assert samples(body) == {("g", (("comm", "a?b"),)): 1.0}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


@pytest.fixture
def served(clock: FakeClock) -> Iterator[tuple[CaptureRecorder, Endpoint, str]]:
    rec = CaptureRecorder(tick_seconds=1.0, clock=clock)
    port = free_port()
    server, thread = start_http_endpoint(port, "127.0.0.1", rec)
    try:
        yield rec, server, f"http://127.0.0.1:{port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def get(url: str, **headers: str) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def test_every_scraper_gets_the_same_bytes_until_the_next_tick(
    served: tuple[CaptureRecorder, Endpoint, str], clock: FakeClock
) -> None:
    rec, server, url = served
    gauge = rec.gauge("live.value", {"k": "v"})
    gauge.set(42)
    rec.counter("live.count").increment(5)
    clock.now += 1
    rec.take_tick()
    status, headers, first = get(f"{url}/metrics")
    assert status == 200
    assert headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    assert "Content-Encoding" not in headers
    assert samples(first.decode()) == {
        ("live_value", (("k", "v"),)): 42.0,
        ("live_count_total", ()): 5.0,
    }
    gauge.set(43)  # written for the next tick: not shown before it is taken
    assert get(f"{url}/metrics")[2] == first
    status, headers, zipped = get(f"{url}/metrics", **{"Accept-Encoding": "gzip"})
    assert headers["Content-Encoding"] == "gzip"
    assert gzip.decompress(zipped) == first
    assert get(f"{url}/metrics", **{"Accept-Encoding": "br, gzip;q=0.5"})[2] == zipped
    refused = get(f"{url}/metrics", **{"Accept-Encoding": "gzip;q=0"})
    assert "Content-Encoding" not in refused[1] and refused[2] == first
    assert server.exposition.renders == 1
    clock.now += 1
    rec.take_tick()
    after = get(f"{url}/metrics", **{"Accept-Encoding": "gzip"})[2]
    assert samples(gzip.decompress(after).decode())[("live_value", (("k", "v"),))] == 43.0
    assert server.exposition.renders == 2


def test_healthz_says_whether_ticks_are_being_taken_and_never_renders(
    served: tuple[CaptureRecorder, Endpoint, str], clock: FakeClock
) -> None:
    rec, server, url = served
    rec.gauge("g").set(1)
    status, _, body = get(f"{url}/healthz")
    assert (status, body) == (503, b"unhealthy: no tick taken yet\n")
    clock.now += 1
    rec.take_tick()
    status, headers, body = get(f"{url}/healthz")
    assert status == 200 and body.startswith(b"ok: last tick ")
    assert headers["Content-Type"] == "text/plain; charset=utf-8"
    clock.now += 2.9  # the last tick began 2.9 s ago: younger than 3 ticks
    assert get(f"{url}/healthz")[0] == 200
    clock.now += 0.2
    status, _, body = get(f"{url}/healthz")
    assert status == 503 and body.startswith(b"unhealthy: stale: last tick 3.1 s ago")
    assert server.exposition.renders == 0  # no probe rendered the metrics
    clock.now += 1
    rec.take_tick()
    assert get(f"{url}/healthz")[0] == 200
    assert get(f"{url}/nothing")[0] == 404


def test_a_kept_connection_serves_one_scrape_after_another(
    served: tuple[CaptureRecorder, Endpoint, str], clock: FakeClock
) -> None:
    """HTTP/1.1: a scraper that keeps its connection (Prometheus does) needs no new one, nor a
    new thread of the server, per scrape."""
    rec, _server, url = served
    rec.gauge("g").set(1)
    clock.now += 1
    rec.take_tick()
    connection = http.client.HTTPConnection(url.removeprefix("http://"), timeout=5)
    try:
        bodies = []
        for path in ("/metrics", "/healthz", "/metrics", "/nothing", "/metrics"):
            connection.request("GET", path, headers={"Accept-Encoding": "gzip"})
            response = connection.getresponse()
            bodies.append((response.status, response.read()))
            assert response.version == 11 and not response.will_close
        local = connection.sock.getsockname()  # still the first connection
        connection.request("HEAD", "/metrics")
        head = connection.getresponse()
        assert head.read() == b"" and int(head.headers["Content-Length"]) == len(
            Exposition(rec).body()
        )
        assert connection.sock.getsockname() == local
    finally:
        connection.close()
    assert [status for status, _ in bodies] == [200, 200, 200, 404, 200]
    assert bodies[0] == bodies[2] == bodies[4]
    assert gzip.decompress(bodies[0][1]) == b"# HELP g capture gauge g\n# TYPE g gauge\ng 1.0\n"
