"""``finemon view``: a local web viewer over a finemon dataset (starlette + uvicorn).

The page (``analysis/view_static``: one HTML, one script, one style sheet and the vendored uPlot)
is served as it is; it asks a read-only JSON API for everything it draws. Every answer comes from
one :class:`analysis.query.explorer.Explorer`; its DuckDB work runs in the thread pool, one call at
a time (one lock), so the event loop keeps answering while a query runs.

The API (GET only; times are epoch seconds; ``container`` may repeat)::

    /api/range                      the recorded range and the dataset's folder
    /api/status                     a version that changes when new files land (live mode)
    /api/containers?search&namespace&pod&qos&node
                                    containers matching every word of the search, every
                                    label value to filter on, and the agent metrics
                                    reported about each container (``reported``)
    /api/metrics?search             metrics whose name or description holds every word
    /api/series?metric&container&start&end&max_points&envelope&label&node_wide
                                    downsampled series (mean, min, max per time bucket;
                                    envelope=0: the means only; label=key=value, may
                                    repeat: only the series whose labels pass; node_wide=1:
                                    also the series of no container, by default only for a
                                    metric that has no container's series)
    /api/labels?metric&container&node_wide
                                    a metric's label keys and their values
    /api/reported?container&reported&start&end&max_points
                                    what the agent reported about the container beside
                                    finemon's figures, and their difference, per pair
    /api/runs                       the runs: first and last tick, experiment, variant, phases
    /api/overlay?metric&container&run&phase&max_points&label&node_wide
                                    a metric's series of each run (run repeats), times in
                                    seconds since its first tick or its phase's mark
    /api/processes?container&start&end&max_points
                                    per-process PSS of one container
    /api/markers?container&start&end
                                    OOM kills, container starts and stops
    /api/studies?metric&container&start&end&series&node_wide
                                    periodicity and changepoints of one container's series
                                    (of a series of no container without one)

Errors are JSON ``{"error": "one line"}`` with status 400 (a bad request or dataset), 404 (no
such path), 405 (not GET) or 500. Bound to the loopback address, the server also refuses
requests whose Host header names another host (a web page elsewhere cannot reach it through DNS
rebinding).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import socket
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from analysis.errors import AnalysisError, require
from analysis.query.labels import parse_label_filters
from analysis.query.search import CONTAINER_FILTERS, search_containers, search_metrics
from analysis.query.series import DEFAULT_MAX_POINTS

if TYPE_CHECKING:
    from starlette.applications import Starlette
    from starlette.middleware.base import RequestResponseEndpoint
    from starlette.requests import Request

    from analysis.query.explorer import Explorer
    from analysis.query.index import ContainerInfo, MetricInfo
    from analysis.query.reported import ReportedComparison, ReportedPair

#: How to get the web server's dependencies.
VIEW_INSTALL_HINT = "pip install 'finemon[view]'"
#: The page and its assets, shipped as package data.
STATIC_DIR = Path(__file__).with_name("view_static")
#: Addresses that only this machine reaches.
LOOPBACK_ADDRESSES = frozenset({"127.0.0.1", "localhost", "::1"})
#: The Host header values a server bound to a loopback address accepts (its port aside).
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1")
#: Bounds of ``max_points``: a chart is at most a few thousand pixels wide.
MAX_POINTS_LIMIT = 10_000
#: The live page polls /api/status every 2 s; the dataset is looked at no more often than this.
REFRESH_INTERVAL_SECONDS = 1.0
#: How often live mode brings an s3:// source's mirror up to date (a LIST of the prefix, then
#: only the new files downloaded).
RESYNC_INTERVAL_SECONDS = 15.0
#: Points of a series the studies run on.
STUDY_POINTS = 2000
#: The page may load its own files only: no script, style or image from elsewhere.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data: blob:; connect-src 'self'; object-src 'none'; base-uri 'none'; "
    "frame-ancestors 'none'"
)

log = logging.getLogger(__name__)
T = TypeVar("T")


class BadRequestError(AnalysisError):
    """A request the API cannot answer as asked (a missing or malformed parameter)."""


def jsonable(value: Any) -> Any:
    """``value`` (dataclasses, datetimes, lists...) as JSON-ready data: datetimes as epoch
    seconds, NaN and infinities as null, enums by value, dataclasses as dicts of their fields.

    Written by hand rather than with :func:`dataclasses.asdict`, which deep-copies every list
    of a series first."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, datetime):
        return value.timestamp()
    if isinstance(value, Enum):
        return jsonable(value.value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [jsonable(item) for item in value]
    if isinstance(value, Path):
        return str(value)
    tolist = getattr(value, "tolist", None)  # numpy arrays and scalars
    if callable(tolist):
        return jsonable(tolist())
    return str(value)


# ------------------------------------------------------------------------------ parameters
def _text(request: Request, name: str, *, required: bool = False) -> str | None:
    value = request.query_params.get(name)
    if value is None or value == "":
        if required:
            raise BadRequestError(f"missing parameter {name!r}")
        return None
    return value


def _time(request: Request, name: str) -> datetime | None:
    text = _text(request, name)
    if text is None:
        return None
    try:
        seconds = float(text)
    except ValueError:
        raise BadRequestError(f"{name}: not epoch seconds: {text!r}") from None
    if not math.isfinite(seconds):
        raise BadRequestError(f"{name}: not epoch seconds: {text!r}")
    try:
        return datetime.fromtimestamp(seconds, UTC)
    except (OverflowError, OSError, ValueError):
        raise BadRequestError(f"{name}: out of range: {text!r}") from None


def _range(request: Request) -> tuple[datetime | None, datetime | None]:
    start, end = _time(request, "start"), _time(request, "end")
    if start is not None and end is not None and end <= start:
        raise BadRequestError("end must be after start")
    return start, end


def _max_points(request: Request) -> int:
    text = _text(request, "max_points")
    if text is None:
        return DEFAULT_MAX_POINTS
    try:
        value = int(text)
    except ValueError:
        raise BadRequestError(f"max_points: not an integer: {text!r}") from None
    if not 2 <= value <= MAX_POINTS_LIMIT:
        raise BadRequestError(f"max_points: must be from 2 to {MAX_POINTS_LIMIT}, got {value}")
    return value


def _labels(request: Request) -> dict[str, frozenset[str]]:
    """The ``label=key=value`` filters (:mod:`analysis.query.labels`)."""
    return parse_label_filters(request.query_params.getlist("label"))


def _containers(request: Request, *, required: bool = False) -> list[str]:
    keys = [key for key in request.query_params.getlist("container") if key]
    if required and not keys:
        raise BadRequestError("missing parameter 'container'")
    return keys


def reported_series(found: ReportedComparison) -> list[dict[str, Any]]:
    """A comparison's columns as series a chart draws (``key``, ``label``, ``unit``, ``times``,
    ``values``): the reported figure, each observed one, then each difference (reported minus
    observed)."""
    times = [p[0] for p in found.points]

    def column(index: int) -> list[float | None]:
        return [p[index] for p in found.points]

    def gap(index: int) -> list[float | None]:
        return [None if r is None or o is None else r - o
                for r, o in zip(column(1), column(index), strict=True)]  # fmt: skip

    short = found.reported.removeprefix("target.")
    series = [{"key": found.reported, "label": f"reported: {short}", "role": "reported",
               "values": column(1)}]  # fmt: skip
    for index, name in enumerate(found.observed, start=2):
        series.append({"key": name, "label": f"observed: {name}", "role": "observed",
                       "values": column(index)})  # fmt: skip
    for index, name in enumerate(found.observed, start=2):
        series.append({"key": f"difference|{name}", "label": f"reported - {name}",
                       "role": "difference", "values": gap(index)})  # fmt: skip
    return [{**s, "unit": found.unit, "times": times, "container_key": found.container_key}
            for s in series]  # fmt: skip


# ------------------------------------------------------------------------------ the service
class ViewService:
    """The API's answers, each one plain JSON-ready data, from one :class:`Explorer`.

    Calls are serialized by a lock: a DuckDB connection serves one query at a time, and
    ``refresh`` must not swap the dataset's file list under a running query.
    """

    def __init__(
        self,
        explorer: Explorer,
        directory: Path,
        *,
        resync: Callable[[], object] | None = None,
        resync_interval_seconds: float = RESYNC_INTERVAL_SECONDS,
    ) -> None:
        self.explorer = explorer
        self.directory = directory
        self.version = 1
        self._lock = threading.Lock()
        self._refreshed = time.monotonic()
        # An s3:// source: its mirror is brought up to date again, in the background, while
        # the page is live (status is polled) and at most once an interval.
        self._resync = resync
        self._resync_interval = resync_interval_seconds
        self._resynced = time.monotonic()
        self._resyncing = threading.Event()
        self._metrics: tuple[int, list[MetricInfo]] | None = None
        self._containers: tuple[int, list[ContainerInfo]] | None = None
        self._reported: tuple[int, dict[str, list[ReportedPair]]] | None = None

    def locked(self, work: Callable[[], T]) -> T:
        """Run ``work`` holding the Explorer's lock."""
        with self._lock:
            return work()

    def status(self) -> dict[str, Any]:
        """The version (bumped when a refresh finds new files) and the recorded range."""
        self._start_resync()
        with self._lock:
            now = time.monotonic()
            if now - self._refreshed >= REFRESH_INTERVAL_SECONDS:
                self._refreshed = now
                if self.explorer.refresh():
                    self.version += 1
                    log.info("new files: version %d", self.version)
            span = self.explorer.time_range()
        return {"version": self.version, "range": jsonable(span)}

    def _start_resync(self) -> None:
        due = time.monotonic() - self._resynced >= self._resync_interval
        if self._resync is None or not due or self._resyncing.is_set():
            return
        self._resyncing.set()
        threading.Thread(target=self._run_resync, name="finemon-view-resync", daemon=True).start()

    def _run_resync(self) -> None:
        assert self._resync is not None
        try:
            log.info("%s", self._resync())
        except AnalysisError as exc:  # the store is down: keep showing what the mirror holds
            log.warning("finemon view: live: %s", exc)
        finally:
            self._resynced = time.monotonic()
            self._refreshed = -math.inf  # the next status call looks at the mirror's files
            self._resyncing.clear()

    def range(self) -> dict[str, Any]:
        with self._lock:
            span = self.explorer.time_range()
        return {"directory": str(self.directory), "version": self.version, "range": jsonable(span)}

    def all_metrics(self) -> list[MetricInfo]:
        """Every metric of the dataset, kept until new files land: listing them scans every
        file, and the page asks at every search."""
        with self._lock:
            if self._metrics is None or self._metrics[0] != self.version:
                self._metrics = (self.version, list(self.explorer.metrics()))
            return self._metrics[1]

    def all_containers(self) -> list[ContainerInfo]:
        """Every container of the dataset, kept until new files land (a scan of every file)."""
        with self._lock:
            if self._containers is None or self._containers[0] != self.version:
                self._containers = (self.version, list(self.explorer.containers()))
            return self._containers[1]

    def containers(self, request: Request) -> dict[str, Any]:
        """Containers matching every word of ``search`` with the label filters applied (the
        one rule of :func:`analysis.query.search.search_containers`); searched here, on the
        kept list, as the user types."""
        every = self.all_containers()
        found = search_containers(
            every,
            _text(request, "search") or "",
            **{name: _text(request, name) for name in CONTAINER_FILTERS},
        )
        facets = {
            name: sorted({v for c in every if (v := getattr(c, attribute, None))})
            for name, attribute in CONTAINER_FILTERS.items()
        }
        reported = {key: [p.reported for p in pairs] for key, pairs in self.reported().items()}
        return {"containers": jsonable(found), "facets": facets, "total": len(every),
                "reported": reported}  # fmt: skip

    def reported(self) -> dict[str, list[ReportedPair]]:
        """The reported-vs-observed pairs of each container the agent reported on, kept until
        new files land."""
        every = self.all_metrics()  # (listing them is what tells whether to look)
        with self._lock:
            if self._reported is None or self._reported[0] != self.version:
                pairs = self.explorer.reported_pairs() if every else {}
                self._reported = (self.version, pairs)
            return self._reported[1]

    def reported_vs_observed(self, request: Request) -> dict[str, Any]:
        """Each pair of :data:`analysis.query.reported.PAIRS` the agent reported for the
        container, compared (:meth:`Explorer.reported_vs_observed`), with the series a panel
        draws: the reported figure, each observed one, and each difference."""
        (key,) = _containers(request, required=True)[:1]
        start, end = _range(request)
        max_points = _max_points(request)
        wanted = _text(request, "reported")
        pairs = [p for p in self.reported().get(key, []) if wanted in (None, p.reported)]
        comparisons = []
        with self._lock:
            for pair in pairs:
                try:
                    found = self.explorer.reported_vs_observed(
                        key, pair.reported, None, start, end, max_points
                    )
                except AnalysisError:  # nothing reported in this range
                    continue
                comparisons.append({**jsonable(found), "series": reported_series(found)})
        return {"container_key": key, "comparisons": comparisons}

    def metrics(self, request: Request) -> dict[str, Any]:
        """The dataset's metrics whose name or description holds every word of ``search``
        (:func:`analysis.query.search.search_metrics`)."""
        return {
            "metrics": jsonable(search_metrics(self.all_metrics(), _text(request, "search") or ""))
        }

    def series(self, request: Request) -> dict[str, Any]:
        metric = _text(request, "metric", required=True)
        assert metric is not None
        keys = _containers(request)
        start, end = _range(request)
        max_points = _max_points(request)
        labels = _labels(request)
        node_wide = self._node_wide(request, metric)
        with self._lock:
            found = self.explorer.series(
                metric, keys, start, end, max_points=max_points, labels=labels,
                node_wide=node_wide,
            )  # fmt: skip
        series = jsonable(found)
        if _text(request, "envelope") == "0":  # the overview strip: means only, half the bytes
            for item in series:
                del item["mins"], item["maxs"]
        return {"metric": metric, "series": series}

    def _node_wide(self, request: Request, metric: str) -> bool:
        """Whether to draw ``metric``'s series of no container: ``node_wide=1`` or ``0`` as
        asked, else when the metric has no container's series at all (an agent's own
        ``target.*`` metric, finemon's): those are drawn whatever the containers picked."""
        asked = _text(request, "node_wide")
        if asked is not None:
            return asked == "1"
        info = next((m for m in self.all_metrics() if m.name == metric), None)
        return info is not None and info.containers == 0

    def labels(self, request: Request) -> dict[str, Any]:
        """The label keys of a metric's series (of the containers, and of none with
        ``node_wide=1``) and their values: what ``label=key=value`` filters take."""
        metric = _text(request, "metric", required=True)
        assert metric is not None
        keys = _containers(request)
        node_wide = self._node_wide(request, metric)
        with self._lock:
            found = self.explorer.label_values(metric, keys, node_wide=node_wide)
        return {"metric": metric, "labels": jsonable(found)}

    def runs(self) -> dict[str, Any]:
        """The runs one can overlay: first and last tick, experiment, variant, phases."""
        from analysis.query.overlay import list_runs  # noqa: PLC0415

        with self._lock:
            return {"runs": jsonable(list_runs(self.explorer))}

    def overlay(self, request: Request) -> dict[str, Any]:
        """A metric's series of each ``run`` (two or more), in seconds since the run's start
        or its ``phase`` mark (:func:`analysis.query.overlay.overlay`)."""
        from analysis.query.overlay import overlay  # noqa: PLC0415

        metric = _text(request, "metric", required=True)
        assert metric is not None
        runs = [run for run in request.query_params.getlist("run") if run]
        if not runs:
            raise BadRequestError("missing parameter 'run'")
        keys = _containers(request)
        labels = _labels(request)
        node_wide = self._node_wide(request, metric)
        max_points = _max_points(request)
        with self._lock:
            found = overlay(
                self.explorer, metric, keys, runs, phase=_text(request, "phase"),
                max_points=max_points, labels=labels, node_wide=node_wide,
            )  # fmt: skip
        return jsonable(found)  # type: ignore[no-any-return]

    def processes(self, request: Request) -> dict[str, Any]:
        (key,) = _containers(request, required=True)[:1]
        start, end = _range(request)
        max_points = _max_points(request)
        with self._lock:
            found = self.explorer.processes(key, start, end, max_points=max_points)
        return {"container": key, "series": jsonable(found)}

    def markers(self, request: Request) -> dict[str, Any]:
        keys = _containers(request)
        start, end = _range(request)
        with self._lock:
            found = self.explorer.markers(keys, start, end)
        return {"markers": jsonable(found)}

    def studies(self, request: Request) -> dict[str, Any]:
        from analysis.query import studies  # noqa: PLC0415 - numpy; with the rest of the layer

        metric = _text(request, "metric", required=True)
        assert metric is not None
        # No container: a series of none (an agent's own metric), when the metric has such.
        node_wide = self._node_wide(request, metric)
        keys = _containers(request, required=not node_wide)[:1]
        key = keys[0] if keys else ""
        start, end = _range(request)
        process = _text(request, "process") == "1"
        with self._lock:
            found = self.explorer.series(
                metric, keys, start, end, max_points=STUDY_POINTS, process=process,
                node_wide=node_wide and not keys,
            )  # fmt: skip
        wanted = _text(request, "series")
        if wanted is not None:
            found = [s for s in found if s.key == wanted]
        if not found:
            return {"metric": metric, "container": key, "series": None,
                    "periodicity": None, "changepoints": []}  # fmt: skip
        chosen = found[0]
        # Empty buckets (gaps) are left out: the studies take the points that exist.
        pairs = [(float(t), float(v)) for t, v in zip(chosen.times, chosen.values, strict=False)
                 if v is not None and math.isfinite(v)]  # fmt: skip
        times, values = [t for t, _ in pairs], [v for _, v in pairs]
        return {
            "metric": metric,
            "container": key,
            "series": chosen.key,
            "label": chosen.label,
            "periodicity": jsonable(studies.periodicity(times, values)),
            "changepoints": jsonable(studies.changepoints(times, values)),
        }


# ------------------------------------------------------------------------------ the app
def create_app(
    explorer: Explorer,
    directory: Path,
    *,
    allowed_hosts: Sequence[str] | None = LOOPBACK_NAMES,
    resync: Callable[[], object] | None = None,
    resync_interval_seconds: float = RESYNC_INTERVAL_SECONDS,
) -> Starlette:
    """The ASGI application: the page at ``/``, its assets under ``/static``, the API under
    ``/api``. ``allowed_hosts`` are the Host header values accepted (None: any). ``resync``
    brings the folder up to date with its source (an s3:// mirror), called in the background
    while the page is live."""
    require_view()
    from starlette.applications import Starlette  # noqa: PLC0415
    from starlette.concurrency import run_in_threadpool  # noqa: PLC0415
    from starlette.exceptions import HTTPException  # noqa: PLC0415
    from starlette.middleware import Middleware  # noqa: PLC0415
    from starlette.middleware.base import BaseHTTPMiddleware  # noqa: PLC0415
    from starlette.responses import FileResponse, JSONResponse, Response  # noqa: PLC0415
    from starlette.routing import Mount, Route  # noqa: PLC0415
    from starlette.staticfiles import StaticFiles  # noqa: PLC0415

    service = ViewService(
        explorer, directory, resync=resync, resync_interval_seconds=resync_interval_seconds
    )

    def error(status: int, message: str) -> JSONResponse:
        return JSONResponse({"error": message}, status_code=status)

    def endpoint(answer: Callable[[Request], dict[str, Any]]) -> Callable[..., Any]:
        async def handle(request: Request) -> Response:
            try:
                body = await run_in_threadpool(answer, request)
            except AnalysisError as exc:
                return error(400, str(exc))
            except Exception as exc:
                log.exception("%s failed", request.url.path)
                return error(500, f"{type(exc).__name__}: {exc}")
            return JSONResponse(body, headers={"Cache-Control": "no-store"})

        return handle

    async def page(request: Request) -> Response:
        return FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-store"})

    async def no_icon(request: Request) -> Response:
        return Response(status_code=204)  # browsers ask; the page has none

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        return error(exc.status_code, f"{request.method} {request.url.path}: {exc.detail}")

    routes = [
        Route("/", page, methods=["GET"]),
        Route("/favicon.ico", no_icon, methods=["GET"]),
        Route("/api/status", endpoint(lambda r: service.status()), methods=["GET"]),
        Route("/api/range", endpoint(lambda r: service.range()), methods=["GET"]),
        Route("/api/containers", endpoint(service.containers), methods=["GET"]),
        Route("/api/metrics", endpoint(service.metrics), methods=["GET"]),
        Route("/api/series", endpoint(service.series), methods=["GET"]),
        Route("/api/labels", endpoint(service.labels), methods=["GET"]),
        Route("/api/reported", endpoint(service.reported_vs_observed), methods=["GET"]),
        Route("/api/runs", endpoint(lambda r: service.runs()), methods=["GET"]),
        Route("/api/overlay", endpoint(service.overlay), methods=["GET"]),
        Route("/api/processes", endpoint(service.processes), methods=["GET"]),
        Route("/api/markers", endpoint(service.markers), methods=["GET"]),
        Route("/api/studies", endpoint(service.studies), methods=["GET"]),
        Mount("/static", StaticFiles(directory=STATIC_DIR), name="static"),
    ]
    hosts = None if allowed_hosts is None else frozenset(allowed_hosts)

    async def guard(request: Request, call_next: RequestResponseEndpoint) -> Response:
        if hosts is not None and host_name(request.headers.get("host", "")) not in hosts:
            return error(400, "invalid Host header (finemon view answers on its own address)")
        response = await call_next(request)
        response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "no-referrer"
        return response

    app = Starlette(
        routes=routes,
        middleware=[Middleware(BaseHTTPMiddleware, dispatch=guard)],
        exception_handlers={HTTPException: http_error},
    )
    app.state.service = service
    return app


def require_view() -> None:
    """Raise :class:`MissingExtraError` unless starlette and uvicorn are installed."""
    for module in ("starlette", "uvicorn"):
        try:
            require(module)
        except AnalysisError:
            from analysis.errors import MissingExtraError  # noqa: PLC0415

            raise MissingExtraError(
                f"{module} is not installed (it comes with the view extra: {VIEW_INSTALL_HINT})"
            ) from None


def host_name(header: str) -> str:
    """The host of a Host header, without its port or an IPv6 address's brackets."""
    if header.startswith("["):
        return header[1:].split("]", 1)[0]
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


def is_loopback(address: str) -> bool:
    """Whether ``address`` is reachable from this machine only."""
    return address in LOOPBACK_ADDRESSES or address.startswith("127.")


def open_app(
    directory: Path,
    *,
    allowed_hosts: Sequence[str] | None = LOOPBACK_NAMES,
    resync: Callable[[], object] | None = None,
) -> Starlette:
    """The app over ``directory``, its dataset opened and its metrics listed (the page's first
    look is at them, and listing them scans every file).

    Raises :class:`AnalysisError` when the dataset cannot be opened or a dependency is missing.
    """
    require_view()
    from analysis.query.explorer import Explorer  # noqa: PLC0415

    app = create_app(Explorer(directory), directory, allowed_hosts=allowed_hosts, resync=resync)
    app.state.service.all_containers()
    app.state.service.all_metrics()
    return app


def serve(
    directory: Path,
    *,
    port: int = 8050,
    address: str = "127.0.0.1",
    resync: Callable[[], object] | None = None,
) -> None:
    """Serve the viewer of ``directory`` on ``address:port`` (0: any free port) until
    interrupted; prints the page's URL once listening. ``resync``: see :func:`create_app`.

    Raises :class:`AnalysisError` when the dataset cannot be opened or a dependency is missing,
    :class:`OSError` when the address cannot be listened on.
    """
    require_view()
    import uvicorn  # noqa: PLC0415

    app = open_app(
        directory,
        allowed_hosts=LOOPBACK_NAMES if is_loopback(address) else None,
        resync=resync,
    )
    # The socket is bound here, so a taken port is an OSError for the caller (uvicorn would
    # exit the process) and port 0 gives a port we can print.
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    listener = socket.create_server((address, port), family=family)
    shown = f"[{address}]" if family == socket.AF_INET6 else address
    print(f"finemon view: {directory} on http://{shown}:{listener.getsockname()[1]}/ "
          "(Ctrl-C to stop)", flush=True)  # fmt: skip
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")
    try:
        uvicorn.Server(config).run(sockets=[listener])
    finally:
        listener.close()
