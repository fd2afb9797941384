"""The live view over HTTP: ``/metrics`` (the Prometheus exposition) and ``/healthz``.

:func:`start_http_endpoint` serves, from a small threaded server of the standard library:

- ``GET /metrics``: the live values of the recorder (default: the installed one), rendered by
  :class:`capture.exposition.Exposition` at most once per tick and the same bytes for every
  request until the next: the Prometheus text format, or OpenMetrics 1.0 when the ``Accept``
  header asks for ``application/openmetrics-text`` (as Prometheus does), gzip-compressed when
  ``Accept-Encoding`` allows it. ``include`` chooses the metrics exposed (by name).
- ``GET /healthz``: 200 while ticks are being taken, 503 otherwise, with one line of text that
  says why; it never renders metrics (a probe costs nothing). Default: the last tick of the
  installed recorder is younger than 3 ticks (:func:`tick_health`); the owner may pass its own.

- ``POST`` to a path the owner serves (``post``: path -> :data:`PostHandler`): the handler gets
  the query's parameters and the body (at most 64 KiB, else 413) and answers a status and one
  line of text (``finemon run`` serves ``POST /mark`` this way).

Connections are HTTP/1.1 and kept open between requests (``Connection: close`` closes one).
``HEAD`` answers as ``GET`` without the body; any other path is 404 and any other method 501.
A request the server cannot parse (a request line or a header over 64 KiB, more than 100
headers) gets the standard library's 4xx answer; a client that sends nothing for 10 s (an idle
kept connection too) is dropped; beyond 16 connections at once a new one is closed at once.
None of these, nor a client that goes away mid-answer, stops the server.

:class:`CaptureCollector` exposes a recorder through prometheus_client instead (for a program
that already serves a prometheus_client registry; it needs prometheus_client installed).
"""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import parse_qs, urlsplit

from capture import facade
from capture.exposition import (
    OPENMETRICS_CONTENT_TYPE,
    TEXT_CONTENT_TYPE,
    Exposition,
    help_and_unit,
    sanitize_label_name,
    sanitize_metric_name,
)
from capture.handles import SeriesInfo
from capture.keys import LabelTuple
from capture.recorder import CaptureRecorder

if TYPE_CHECKING:
    from prometheus_client.core import Metric

log = logging.getLogger("capture")

__all__ = [
    "CaptureCollector",
    "Endpoint",
    "Health",
    "PostHandler",
    "help_and_unit",
    "sanitize_label_name",
    "sanitize_metric_name",
    "start_http_endpoint",
    "tick_health",
]

#: Ticks after which the live values count as stale (``/healthz`` answers 503).
HEALTHY_TICKS: Final = 3.0
#: Connections served at once; more are closed as they come.
MAX_CONNECTIONS: Final = 16
#: Seconds a client may stay silent before its connection is dropped.
CLIENT_TIMEOUT_SECONDS: Final = 10.0
#: Largest body a ``POST`` may send.
MAX_POST_BYTES: Final = 64 * 1024

#: What answers a ``POST`` to one path: called with the query's parameters (name -> values)
#: and the body; returns the HTTP status and one line of text. It runs in the request's thread.
PostHandler = Callable[[Mapping[str, list[str]], bytes], tuple[int, str]]


@dataclass(frozen=True, slots=True)
class Health:
    """What ``/healthz`` answers: ``ok`` (200, else 503) and one line saying why."""

    ok: bool
    detail: str


def tick_health(recorder: CaptureRecorder | None, max_ticks: float = HEALTHY_TICKS) -> Health:
    """Healthy while ``recorder``'s last tick began less than ``max_ticks`` ticks ago."""
    if recorder is None:
        return Health(False, "no recorder installed")
    age = recorder.seconds_since_last_tick()
    if age is None:
        return Health(False, "no tick taken yet")
    limit = max_ticks * recorder.tick_seconds
    if age < limit:
        return Health(True, f"last tick {age:.3g} s ago")
    return Health(False, f"stale: last tick {age:.3g} s ago (limit {limit:.3g} s)")


def _installed() -> CaptureRecorder | None:
    installed = facade.get_recorder()
    return installed if isinstance(installed, CaptureRecorder) else None


def wants_openmetrics(accept: str) -> bool:
    """Whether an ``Accept`` header asks for OpenMetrics (any range of that type, q > 0)."""
    for media_range in accept.split(","):
        kind, *params = (part.strip() for part in media_range.split(";"))
        if kind.lower() == "application/openmetrics-text" and not _refused(params):
            return True
    return False


def accepts_gzip(accept_encoding: str) -> bool:
    """Whether an ``Accept-Encoding`` header allows gzip (``gzip`` or ``*``, q > 0)."""
    for coding in accept_encoding.split(","):
        name, *params = (part.strip() for part in coding.split(";"))
        if name.lower() in ("gzip", "x-gzip", "*") and not _refused(params):
            return True
    return False


def _refused(params: list[str]) -> bool:
    """Whether media or coding parameters hold ``q=0``."""
    for param in params:
        key, _, value = param.partition("=")
        if key.strip().lower() == "q":
            try:
                return float(value) <= 0
            except ValueError:
                return False
    return False


class _Handler(BaseHTTPRequestHandler):
    server: Endpoint
    # Persistent connections, as Prometheus keeps them: a scrape needs no new connection (nor
    # thread) while the scraper comes back within the timeout.
    protocol_version = "HTTP/1.1"
    # The headers and the body are two writes: without this the body of a kept connection
    # waits for the client's delayed ACK of the headers (40 ms on Linux).
    disable_nagle_algorithm = True
    timeout = CLIENT_TIMEOUT_SECONDS
    server_version = "capture"
    sys_version = ""

    def do_GET(self) -> None:
        self._answer(send_body=True)

    def do_HEAD(self) -> None:
        self._answer(send_body=False)

    def do_POST(self) -> None:
        parts = urlsplit(self.path)
        handler = self.server.post.get(parts.path)
        if handler is None:
            self._send_text(HTTPStatus.NOT_FOUND, "not found: nothing takes a POST here")
            return
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if not 0 <= length <= MAX_POST_BYTES:
            self.close_connection = True  # the body, if any, is not read
            self._send_text(
                HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"the body must be 0..{MAX_POST_BYTES} bytes"
            )
            return
        body = self.rfile.read(length) if length else b""
        try:
            status, text = handler(parse_qs(parts.query), body)
        except Exception:  # a handler bug must not take the server down
            log.exception("capture: the POST handler of %s failed", parts.path)
            status, text = HTTPStatus.INTERNAL_SERVER_ERROR, "the handler failed"
        self._send_text(status, text)

    def _send_text(self, status: int, text: str) -> None:
        body = f"{text}\n".encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def _answer(self, send_body: bool) -> None:
        path = urlsplit(self.path).path
        headers: dict[str, str] = {}
        if path == "/metrics":
            openmetrics = wants_openmetrics(self.headers.get("Accept", ""))
            compressed = accepts_gzip(self.headers.get("Accept-Encoding", ""))
            try:
                body = self.server.exposition.body(openmetrics, compressed)
            except Exception:  # a render bug must not take the server down
                self.server.render_failed()
                status, body = HTTPStatus.INTERNAL_SERVER_ERROR, b"render failed\n"
                headers["Content-Type"] = "text/plain; charset=utf-8"
            else:
                status = HTTPStatus.OK
                headers["Content-Type"] = (
                    OPENMETRICS_CONTENT_TYPE if openmetrics else TEXT_CONTENT_TYPE
                )
                if compressed:
                    headers["Content-Encoding"] = "gzip"
                headers["Vary"] = "Accept, Accept-Encoding"
        elif path == "/healthz":
            health = self.server.health()
            status = HTTPStatus.OK if health.ok else HTTPStatus.SERVICE_UNAVAILABLE
            body = f"{'ok' if health.ok else 'unhealthy'}: {health.detail}\n".encode()
            headers["Content-Type"] = "text/plain; charset=utf-8"
        else:
            status, body = HTTPStatus.NOT_FOUND, b"not found: try /metrics or /healthz\n"
            headers["Content-Type"] = "text/plain; charset=utf-8"
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        if send_body:
            self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("http %s: " + format, self.address_string(), *args)


class Endpoint(ThreadingHTTPServer):
    """The server :func:`start_http_endpoint` runs; stop it with ``shutdown()`` then
    ``server_close()``."""

    daemon_threads = True
    block_on_close = False

    def __init__(
        self,
        address: tuple[str, int],
        exposition: Exposition,
        health: Callable[[], Health],
        family: socket.AddressFamily,
        post: Mapping[str, PostHandler] | None = None,
    ) -> None:
        self.address_family = family
        self.exposition = exposition
        self.health = health
        self.post: Mapping[str, PostHandler] = dict(post or {})
        self._slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
        self._failures = 0
        #: Connections closed unanswered because MAX_CONNECTIONS were being served.
        self.refused_connections = 0
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            self.refused_connections += 1
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client gone mid-answer (broken pipe, reset) or a protocol error: the next
        # request is served as usual.
        log.debug("http %s: request failed", client_address, exc_info=True)

    def render_failed(self) -> None:
        self._failures += 1
        if self._failures == 1:
            log.exception("capture: rendering /metrics failed (further failures are not logged)")


def start_http_endpoint(
    port: int,
    addr: str = "0.0.0.0",
    recorder: CaptureRecorder | None = None,
    *,
    include: Callable[[str], bool] | None = None,
    exposed_labels: Callable[[LabelTuple], LabelTuple] | None = None,
    health: Callable[[], Health] | None = None,
    post: Mapping[str, PostHandler] | None = None,
) -> tuple[Endpoint, threading.Thread]:
    """Serve ``/metrics`` and ``/healthz`` on ``addr:port`` in a daemon thread; returns
    (server, thread).

    ``recorder``: the one to expose (default: the one installed at each request);
    ``include(name)``: whether metric ``name`` is exposed (default: every one);
    ``exposed_labels(labels)``: the labels a series is exposed with (default: all its labels, see
    :class:`~capture.exposition.Exposition`); ``health``: what ``/healthz`` answers (default:
    :func:`tick_health` of the recorder); ``post``: the paths that take a ``POST`` and what
    answers each (default: none). Raises OSError when
    the address cannot be bound. Stop it with ``server.shutdown()`` and ``server.server_close()``.
    """
    family = socket.getaddrinfo(addr, port, type=socket.SOCK_STREAM)[0][0]
    if health is None:

        def health() -> Health:
            return tick_health(recorder if recorder is not None else _installed())

    server = Endpoint(
        (addr, port), Exposition(recorder, include, exposed_labels), health, family, post
    )
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.5}, daemon=True
    )
    thread.name = f"capture-http-{port}"
    thread.start()
    return server, thread


class CaptureCollector:
    """A prometheus_client collector of the live values of ``recorder`` (default: the installed
    one), read at each collection: for a program that serves its own prometheus_client
    registry (``registry.register(CaptureCollector())``). It renders through prometheus_client,
    series by series, at every scrape: :func:`start_http_endpoint` is far cheaper."""

    def __init__(self, recorder: CaptureRecorder | None = None) -> None:
        self._recorder = recorder

    def collect(self) -> Iterator[Metric]:
        from prometheus_client.core import (  # noqa: PLC0415 - an optional dependency
            CounterMetricFamily,
            GaugeMetricFamily,
        )

        recorder = self._recorder if self._recorder is not None else _installed()
        if recorder is None:
            return
        global_labels = dict(recorder.global_labels)
        groups: dict[tuple[str, str], list[SeriesInfo]] = {}
        for handle in recorder.live_handles():
            groups.setdefault((handle.kind, handle.name), []).append(handle)
        for (kind, name), handles in sorted(groups.items()):
            keys: dict[str, None] = dict.fromkeys(sanitize_label_name(k) for k in global_labels)
            rows: list[tuple[dict[str, str], float]] = []
            for handle in handles:
                value = handle.value
                if value is None:
                    continue
                labels = {sanitize_label_name(k): v for k, v in global_labels.items()}
                labels.update((sanitize_label_name(k), v) for k, v in handle.labels)
                keys.update(dict.fromkeys(labels))
                rows.append((labels, float(value)))
            label_names = list(keys)
            family: GaugeMetricFamily | CounterMetricFamily
            metric = sanitize_metric_name(name)
            doc, unit = help_and_unit(kind, name, recorder.description(name))
            if kind == "gauge":
                family = GaugeMetricFamily(metric, doc, labels=label_names, unit=unit)
            else:
                family = CounterMetricFamily(metric, doc, labels=label_names, unit=unit)
            for labels, value in rows:
                family.add_metric([labels.get(k, "") for k in label_names], value)
            yield family
