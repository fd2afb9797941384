"""The HTTP intake: what a Datadog Agent's forwarder sends, taken on uvicorn and starlette.

Paths (everything else is counted and answered 404):

- ``POST /api/v2/series``: a ``MetricPayload`` (``Content-Type: application/x-protobuf``, as
  the agent sends it) or v2 JSON (``application/json``, as Datadog's API clients send it);
- ``POST /api/v1/series``: v1 JSON;
- ``POST /api/beta/sketches``: a ``SketchPayload``; each point's count, sum, min and max;
- ``POST`` to any other ``/api/`` or ``/intake`` path (``/api/v1/check_run``, ``/intake/``,
  ``/api/v2/host_metadata``...): read (within the bound), counted, not stored;
- ``GET /api/v1/validate``: 200 ``{"valid": true}`` (the agent checks its API key with it).

Answers are the intake's: 202 with a JSON body (``{"errors": []}`` for v2, ``{"status":
"ok"}`` otherwise); 400 for a malformed body, 413 for one over ``max_bytes`` before or after
decompression, 503 while finemon is not recording (before the first file, while idle at the
size limit, during the final drain: the agent keeps the payload and retries). Every request is
counted in ``finemon.intake.requests{path}``, every refused one also in
``finemon.intake.bad_requests{reason}`` and logged at most once a minute per reason. The API
key (the ``DD-API-KEY`` header, or the ``api_key`` query parameter of old agents) is never
read, stored or logged: no access log is kept, and log lines name the path alone.

The Python work of a request (decoding, writing) waits while the tick loop samples
(:mod:`monitor.intake.quiet`). A point answered 202 is in the capture already (its write
happened before the answer), so a SIGTERM never loses it:
:meth:`IntakeServer.stop_recording` waits for a write in progress and refuses the next ones
before the daemon drains its window.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Final

import capture
from monitor.intake.decode import (
    BodyTooLargeError,
    MalformedBodyError,
    ReportedSeries,
    ReportedSketch,
    decode_sketches,
    decode_v1_json,
    decode_v2_json,
    decode_v2_protobuf,
    decompress,
)
from monitor.intake.flags import IntakeConfig
from monitor.intake.quiet import SampleWindow
from monitor.intake.record import IntakeWriter

log = logging.getLogger("finemon.intake")

REQUESTS: Final = "finemon.intake.requests"
BAD_REQUESTS: Final = "finemon.intake.bad_requests"
BYTES_RECEIVED: Final = "finemon.intake.bytes_received"
#: The ``path`` label of requests to paths that are not an intake's (bounded cardinality).
OTHER_PATH: Final = "other"
#: How many distinct paths get a label of their own; later ones are counted as ``other``.
MAX_PATH_LABELS: Final = 64
#: Bodies read and decoded at once (each at most ``max_bytes``, twice while decompressed).
CONCURRENT_BODIES: Final = 2
#: Seconds a stop waits for the requests in progress.
STOP_SECONDS: Final = 5.0
LOG_EVERY_SECONDS: Final = 60.0

_PROTOBUF_TYPES: Final = ("application/x-protobuf", "application/protobuf")


@dataclass(slots=True)
class IntakeStats:
    """The intake's counts since it started (the manifest's ``intake`` section)."""

    requests: dict[str, int] = field(default_factory=dict)
    bad_requests: dict[str, int] = field(default_factory=dict)
    bytes_received: int = 0


class _RefusedError(Exception):
    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.status, self.reason = status, reason


def _path_label(path: str, known: set[str]) -> str:
    if path in known:
        return path
    if len(known) < MAX_PATH_LABELS and len(path) <= 64 and path.startswith(("/api/", "/intake")):
        known.add(path)
        return path
    return OTHER_PATH


class IntakeServer:
    """The intake on ``config.address:config.port``, served by uvicorn in a thread of its own.

    :meth:`start` binds (raises OSError when it cannot) and serves; points are written
    (through ``writer``) only between :meth:`start_recording` and :meth:`stop_recording`, and
    answered 503 otherwise. :meth:`stop` ends the server.
    """

    def __init__(
        self,
        config: IntakeConfig,
        writer: IntakeWriter | None = None,
        window: SampleWindow | None = None,
    ) -> None:
        self.config = config
        self.window = window if window is not None else SampleWindow()
        self.writer = writer if writer is not None else IntakeWriter(config.max_series)
        self.stats = IntakeStats()
        # Held while points are written (and while recording is switched on or off).
        self._gate = threading.Lock()
        # Held while the request counts change (the manifest reads them from other threads).
        self._stats_lock = threading.Lock()
        self._recording = False
        self._paths: set[str] = set()
        self._logged_at: dict[str, float] = {}
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self._bodies: asyncio.Semaphore | None = None
        self.bound_port: int | None = None

    # ------------------------------------------------------------------ life cycle
    def start(self) -> None:
        """Bind and serve in a daemon thread; raises OSError when the address cannot be bound."""
        import uvicorn  # noqa: PLC0415 - the intake extra, only when asked for

        family = socket.AF_INET6 if ":" in self.config.address else socket.AF_INET
        sock = socket.create_server((self.config.address, self.config.port), family=family)
        self.bound_port = sock.getsockname()[1]
        for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
            logging.getLogger(name).setLevel(logging.WARNING)
        uv_config = uvicorn.Config(
            self._app(),
            log_config=None,
            access_log=False,
            lifespan="off",
            server_header=False,
            date_header=False,
            timeout_graceful_shutdown=int(STOP_SECONDS),
        )
        self._server = uvicorn.Server(uv_config)
        self._thread = threading.Thread(
            target=self._server.run,
            kwargs={"sockets": [sock]},
            name="finemon-intake",
            daemon=True,
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop recording, stop serving (the requests in progress get STOP_SECONDS)."""
        self.stop_recording()
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(STOP_SECONDS + 1.0)
        self._server = self._thread = None

    def start_recording(self) -> None:
        """From now on, write what arrives (the capture's recorder is installed)."""
        with self._gate:
            self._recording = True

    def stop_recording(self) -> None:
        """Wait for a write in progress, then answer 503 to what follows."""
        with self._gate:
            self._recording = False

    def summary(self) -> dict[str, object]:
        """The counts, for the session manifest (its ``config.intake`` has the settings);
        safe from any thread."""
        with self._gate, self._stats_lock:
            return {**asdict(self.stats), **asdict(self.writer.stats)}

    # ------------------------------------------------------------------ the app
    def _app(self) -> Callable[..., Any]:
        from starlette.applications import Starlette  # noqa: PLC0415
        from starlette.routing import Route  # noqa: PLC0415

        methods = ["GET", "POST", "PUT", "HEAD"]
        return Starlette(routes=[Route("/{path:path}", self._handle, methods=methods)])

    async def _handle(self, request: Any) -> Any:
        from starlette.responses import JSONResponse, Response  # noqa: PLC0415

        path = request.url.path
        label = _path_label(path, self._paths)
        with self._stats_lock:
            self.stats.requests[label] = self.stats.requests.get(label, 0) + 1
        capture.counter(REQUESTS, {"path": label}).increment()
        if path == "/api/v1/validate":
            return JSONResponse({"valid": True}, status_code=200)
        if request.method != "POST" or label == OTHER_PATH:
            return Response(status_code=404)
        if self._bodies is None:
            self._bodies = asyncio.Semaphore(CONCURRENT_BODIES)
        try:
            async with self._bodies:
                body = await self._read(request)
                self._take(path, request.headers, body)
        except _RefusedError as refused:
            self._refused(refused, path)
            return JSONResponse({"errors": [refused.reason]}, status_code=refused.status)
        if path == "/api/v2/series":
            return JSONResponse({"errors": []}, status_code=202)
        return JSONResponse({"status": "ok"}, status_code=202)

    async def _read(self, request: Any) -> bytes:
        limit = self.config.max_bytes
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise _RefusedError(413, "too_large", f"Content-Length {declared} over {limit} bytes")
        chunks: list[bytes] = []
        total = 0
        async for chunk in request.stream():
            total += len(chunk)
            if total > limit:
                raise _RefusedError(413, "too_large", f"body over {limit} bytes")
            chunks.append(chunk)
        self.stats.bytes_received += total
        capture.counter(BYTES_RECEIVED).increment(total)
        return b"".join(chunks)

    def _take(self, path: str, headers: Any, body: bytes) -> None:
        """Decode and write ``body`` (raises _RefusedError)."""
        if not self._recording:
            raise _RefusedError(503, "not_recording", "finemon is not recording")
        content_type = headers.get("content-type", "").split(";")[0].strip().lower()
        if path not in ("/api/v2/series", "/api/v1/series", "/api/beta/sketches"):
            return  # accepted, counted, not stored
        checkpoint = self.window.wait
        try:
            data = decompress(body, headers.get("content-encoding"), self.config.max_bytes)
            series: list[ReportedSeries] = []
            sketches: list[ReportedSketch] = []
            checkpoint()
            if path == "/api/beta/sketches":
                sketches = decode_sketches(data, checkpoint)
            elif path == "/api/v1/series":
                series = decode_v1_json(data, checkpoint)
            elif content_type in _PROTOBUF_TYPES:
                series = decode_v2_protobuf(data, checkpoint)
            else:
                series = decode_v2_json(data, checkpoint)
        except BodyTooLargeError as exc:
            raise _RefusedError(413, "too_large", str(exc)) from None
        except MalformedBodyError as exc:
            raise _RefusedError(400, "malformed", str(exc)) from None
        with self._gate:
            if not self._recording:
                raise _RefusedError(503, "not_recording", "finemon is not recording")
            checkpoint()
            self.writer.write(series, checkpoint)
            self.writer.write_sketches(sketches, checkpoint)

    def _refused(self, refused: _RefusedError, path: str) -> None:
        bad = self.stats.bad_requests
        with self._stats_lock:
            bad[refused.reason] = bad.get(refused.reason, 0) + 1
        capture.counter(BAD_REQUESTS, {"reason": refused.reason}).increment()
        now = time.monotonic()
        last = self._logged_at.get(refused.reason)
        if last is None or now - last >= LOG_EVERY_SECONDS:
            self._logged_at[refused.reason] = now
            log.warning(
                "intake: %d for POST %s reason=%s: %s; %d so far, logged at most once a minute",
                refused.status,
                path,
                refused.reason,
                str(refused)[:200],
                bad[refused.reason],
            )
