"""Request bodies of the Datadog intake to typed series: decompression, protobuf and JSON.

Pure functions of bytes, no I/O and nothing of capture. :func:`decompress` undoes a
``Content-Encoding`` within a bound; :func:`decode_v2_protobuf`, :func:`decode_v2_json` and
:func:`decode_v1_json` turn a body into :class:`ReportedSeries`. A body that breaks the bound
raises :class:`BodyTooLargeError`, one that is not a payload of its kind :class:`MalformedBodyError`
(both with a one-line reason, never the body's bytes): a request is taken whole or not at all.

The metric type numbers differ by encoding: protobuf ``MetricType`` is GAUGE 0, COUNT 1,
RATE 2; the v2 JSON that Datadog's API clients send is 0 unspecified (taken as a gauge),
1 count, 2 rate, 3 gauge; v1 JSON names them (``"gauge"``, ``"count"``, ``"rate"``; absent:
gauge).
"""

from __future__ import annotations

import json
import math
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal, NamedTuple

from monitor.intake import payload

#: How a reported series is recorded: a gauge, a counter increment, a gauge of the rate.
Kind = Literal["gauge", "count", "rate"]

#: Encodings :func:`decompress` undoes (lower case; ``identity`` and none mean plain).
ENCODINGS: Final = frozenset({"gzip", "x-gzip", "deflate", "zstd", "identity"})

_PROTOBUF_KINDS: Final[Mapping[int, Kind]] = {
    payload.GAUGE: "gauge",
    payload.COUNT: "count",
    payload.RATE: "rate",
}
_V2_JSON_KINDS: Final[Mapping[int, Kind]] = {0: "gauge", 1: "count", 2: "rate", 3: "gauge"}
_V1_JSON_KINDS: Final[Mapping[str, Kind]] = {"gauge": "gauge", "count": "count", "rate": "rate"}
_READ_CHUNK_BYTES: Final = 1 << 20
#: Series decoded between two calls of a decoder's ``checkpoint``.
CHECKPOINT_SERIES: Final = 256

#: Called by a decoder every CHECKPOINT_SERIES series (the server waits there while the tick
#: loop samples, so that a large body never holds the interpreter against the sampler).
Checkpoint = Callable[[], None]


def no_checkpoint() -> None:
    """The default :data:`Checkpoint`: go on at once."""


class MalformedBodyError(ValueError):
    """A body that is not a payload of its kind (400); the message says why, in one line."""


class BodyTooLargeError(ValueError):
    """A body over the size bound, before or after decompression (413)."""


class ReportedSeries(NamedTuple):
    """One series of a payload: ``points`` are (Unix seconds, value) pairs in payload order;
    ``tags`` as sent (``key:value`` or bare); ``host`` and the others empty when not sent;
    ``resources`` the v2 (type, name) pairs other than the host. (A named tuple: a payload
    holds thousands, and a tuple is made several times faster than a frozen dataclass.)"""

    metric: str
    kind: Kind
    points: tuple[tuple[float, float], ...]
    tags: tuple[str, ...] = ()
    host: str = ""
    source_type_name: str = ""
    unit: str = ""
    interval_seconds: int = 0
    resources: tuple[tuple[str, str], ...] = ()

    @property
    def point_count(self) -> int:
        """How many points the series carries."""
        return len(self.points)


# ---------------------------------------------------------------------- compression
def decompress(body: bytes, encoding: str | None, max_bytes: int) -> bytes:
    """``body`` with its ``Content-Encoding`` undone, at most ``max_bytes`` long.

    ``encoding`` is the header's value (None or ``identity``: plain; ``gzip``; ``deflate``,
    zlib-wrapped as the agent sends it, or raw; ``zstd``, one or more frames). Raises
    BodyTooLargeError when the result would exceed ``max_bytes`` (read no further than that: a
    zip bomb costs ``max_bytes`` of memory at most), MalformedBodyError for an unknown encoding or
    a stream that does not decode or ends early.
    """
    name = (encoding or "identity").strip().lower()
    if name not in ENCODINGS:
        raise MalformedBodyError(f"unsupported Content-Encoding {encoding!r}")
    if name == "identity":
        data = body
    elif name in ("gzip", "x-gzip"):
        data = _inflate(body, zlib.MAX_WBITS | 16, max_bytes, "gzip")
    elif name == "deflate":
        try:
            data = _inflate(body, zlib.MAX_WBITS, max_bytes, "deflate")
        except MalformedBodyError:
            data = _inflate(body, -zlib.MAX_WBITS, max_bytes, "deflate")
    else:
        data = _unzstd(body, max_bytes)
    if len(data) > max_bytes:
        raise BodyTooLargeError(f"body of {len(data)} bytes is over the bound of {max_bytes} bytes")
    return data


def _inflate(body: bytes, wbits: int, max_bytes: int, name: str) -> bytes:
    inflater = zlib.decompressobj(wbits)
    try:
        data = inflater.decompress(body, max_bytes + 1)
    except zlib.error as exc:
        raise MalformedBodyError(f"{name} stream does not decode: {exc}") from None
    if len(data) > max_bytes:
        raise BodyTooLargeError(f"{name} body inflates past the bound of {max_bytes} bytes")
    if not inflater.eof:
        raise MalformedBodyError(f"{name} stream ends early")
    return data


def _unzstd(body: bytes, max_bytes: int) -> bytes:
    import zstandard  # noqa: PLC0415 - only for zstd bodies

    reader = zstandard.ZstdDecompressor().stream_reader(body, read_across_frames=True)
    chunks: list[bytes] = []
    total = 0
    try:
        while True:
            chunk = reader.read(min(_READ_CHUNK_BYTES, max_bytes + 1 - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
            if total > max_bytes:
                raise BodyTooLargeError(f"zstd body inflates past the bound of {max_bytes} bytes")
    except zstandard.ZstdError as exc:
        raise MalformedBodyError(f"zstd stream does not decode: {exc}") from None
    if body and not total:
        raise MalformedBodyError("zstd stream holds no data")
    return b"".join(chunks)


# ---------------------------------------------------------------------- protobuf
def decode_v2_protobuf(data: bytes, checkpoint: Checkpoint = no_checkpoint) -> list[ReportedSeries]:
    """The series of a ``MetricPayload`` (``POST /api/v2/series`` as the agent sends it).

    Raises MalformedBodyError for bytes that are no MetricPayload, a series without a metric name
    or with a type number outside GAUGE 0, COUNT 1, RATE 2.
    """
    try:
        message: Any = payload.MetricPayload.FromString(data)
    except payload.DecodeError as exc:
        raise MalformedBodyError(f"not a MetricPayload: {exc}") from None
    out: list[ReportedSeries] = []
    append = out.append
    kinds = _PROTOBUF_KINDS
    for index, series in enumerate(message.series):
        if index % CHECKPOINT_SERIES == CHECKPOINT_SERIES - 1:
            checkpoint()
        kind = kinds.get(series.type)
        if kind is None:
            raise MalformedBodyError(f"series {series.metric!r}: unknown type {series.type}")
        metric = series.metric
        if not metric:
            raise MalformedBodyError("a series has no metric name")
        host = ""
        others: list[tuple[str, str]] = []
        for resource in series.resources:
            rtype = resource.type
            if rtype == "host":
                host = resource.name
            else:
                others.append((rtype, resource.name))
        raw = series.points
        if len(raw) == 1:  # (the common case: an agent sends a point a series)
            point = raw[0]
            points: tuple[tuple[float, float], ...] = ((float(point.timestamp), point.value),)
        else:
            points = tuple([(float(p.timestamp), p.value) for p in raw])
        append(
            ReportedSeries(
                metric,
                kind,
                points,
                tuple(series.tags),
                host,
                series.source_type_name,
                series.unit,
                series.interval,
                tuple(others),
            )
        )
    return out


@dataclass(frozen=True, slots=True)
class ReportedSketch:
    """One sketch of a ``SketchPayload``: per point (``ts`` seconds) its count, sum, min and
    max; the quantile bins are not kept."""

    metric: str
    host: str
    tags: tuple[str, ...]
    points: tuple[tuple[float, int, float, float, float], ...]  # (ts, count, sum, min, max)


def decode_sketches(data: bytes, checkpoint: Checkpoint = no_checkpoint) -> list[ReportedSketch]:
    """The sketches of a ``SketchPayload`` (``POST /api/beta/sketches``). Raises
    MalformedBodyError for bytes that are no SketchPayload or a sketch without a metric name."""
    try:
        message: Any = payload.SketchPayload.FromString(data)
    except payload.DecodeError as exc:
        raise MalformedBodyError(f"not a SketchPayload: {exc}") from None
    out: list[ReportedSketch] = []
    for index, sketch in enumerate(message.sketches):
        if index % CHECKPOINT_SERIES == CHECKPOINT_SERIES - 1:
            checkpoint()
        if not sketch.metric:
            raise MalformedBodyError("a sketch has no metric name")
        points = tuple(
            (float(d.ts), int(d.cnt), float(d.sum), float(d.min), float(d.max))
            for d in sketch.dogsketches
        )
        out.append(ReportedSketch(sketch.metric, sketch.host, tuple(sketch.tags), points))
    return out


# ---------------------------------------------------------------------- JSON
def _json(data: bytes) -> Mapping[str, Any]:
    try:
        document = json.loads(data)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise MalformedBodyError(f"not JSON: {exc}") from None
    if not isinstance(document, dict):
        raise MalformedBodyError("the body is not a JSON object")
    series = document.get("series")
    if not isinstance(series, list):
        raise MalformedBodyError('the body has no "series" list')
    return document


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _text(entry: Mapping[str, Any], key: str, where: str) -> str:
    value = entry.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise MalformedBodyError(f"{where}: {key!r} is not a string")
    return value


def _tags(entry: Mapping[str, Any], where: str) -> tuple[str, ...]:
    tags = entry.get("tags")
    if tags is None:
        return ()
    if not isinstance(tags, list) or not all(isinstance(tag, str) for tag in tags):
        raise MalformedBodyError(f"{where}: 'tags' is not a list of strings")
    return tuple(tags)


def _interval(entry: Mapping[str, Any], where: str) -> int:
    value = entry.get("interval")
    if value is None:
        return 0
    if not _is_number(value) or not math.isfinite(value):
        raise MalformedBodyError(f"{where}: 'interval' is not a number")
    return int(value)


def _metric(entry: object, index: int) -> tuple[Mapping[str, Any], str]:
    if not isinstance(entry, dict):
        raise MalformedBodyError(f"series {index} is not an object")
    metric = entry.get("metric")
    if not isinstance(metric, str) or not metric:
        raise MalformedBodyError(f"series {index} has no metric name")
    return entry, metric


def decode_v2_json(data: bytes, checkpoint: Checkpoint = no_checkpoint) -> list[ReportedSeries]:
    """The series of a v2 JSON body (``POST /api/v2/series`` from Datadog's API clients):
    ``{"series": [{"metric", "type", "points": [{"timestamp", "value"}], "resources":
    [{"type", "name"}], "tags", "unit", "source_type_name", "interval"}]}``.

    Raises MalformedBodyError for anything else (a wrong type anywhere, a type number outside
    0..3, a point without a numeric timestamp and value).
    """
    out: list[ReportedSeries] = []
    for index, raw in enumerate(_json(data)["series"]):
        if index % CHECKPOINT_SERIES == CHECKPOINT_SERIES - 1:
            checkpoint()
        entry, metric = _metric(raw, index)
        where = f"series {metric!r}"
        number = entry.get("type", 0)
        kind = _V2_JSON_KINDS.get(number) if _is_number(number) else None
        if kind is None:
            raise MalformedBodyError(f"{where}: unknown type {number!r}")
        points = entry.get("points")
        if not isinstance(points, list):
            raise MalformedBodyError(f"{where}: 'points' is not a list")
        pairs: list[tuple[float, float]] = []
        for point in points:
            if not isinstance(point, dict):
                raise MalformedBodyError(f"{where}: a point is not an object")
            timestamp, value = point.get("timestamp"), point.get("value")
            if not _is_number(timestamp) or not _is_number(value):
                raise MalformedBodyError(f"{where}: a point's timestamp or value is not a number")
            pairs.append((float(timestamp), float(value)))  # type: ignore[arg-type]
        host = ""
        others: list[tuple[str, str]] = []
        resources = entry.get("resources")
        for resource in resources if isinstance(resources, list) else ():
            if not isinstance(resource, dict):
                raise MalformedBodyError(f"{where}: a resource is not an object")
            rtype, rname = _text(resource, "type", where), _text(resource, "name", where)
            if rtype == "host":
                host = rname
            else:
                others.append((rtype, rname))
        if resources is not None and not isinstance(resources, list):
            raise MalformedBodyError(f"{where}: 'resources' is not a list")
        out.append(
            ReportedSeries(
                metric=metric,
                kind=kind,
                points=tuple(pairs),
                tags=_tags(entry, where),
                host=host,
                source_type_name=_text(entry, "source_type_name", where),
                unit=_text(entry, "unit", where),
                interval_seconds=_interval(entry, where),
                resources=tuple(others),
            )
        )
    return out


def _v1_points(points: object, where: str) -> tuple[tuple[float, float], ...]:
    if not isinstance(points, list):
        raise MalformedBodyError(f"{where}: 'points' is not a list")
    pairs: list[tuple[float, float]] = []
    for point in points:
        if (
            not isinstance(point, Sequence)
            or isinstance(point, str)
            or len(point) != 2
            or not _is_number(point[0])
            or not _is_number(point[1])
        ):
            raise MalformedBodyError(f"{where}: a point is not a numeric [timestamp, value]")
        pairs.append((float(point[0]), float(point[1])))
    return tuple(pairs)


def decode_v1_json(data: bytes, checkpoint: Checkpoint = no_checkpoint) -> list[ReportedSeries]:
    """The series of a v1 JSON body (``POST /api/v1/series``): ``{"series": [{"metric",
    "points": [[ts, value], ...], "tags", "host", "type", "interval"}]}`` (also
    ``source_type_name`` and ``device``, kept as the ``device`` resource).

    Raises MalformedBodyError for anything else (a wrong type anywhere, a type other than gauge,
    count and rate).
    """
    out: list[ReportedSeries] = []
    for index, raw in enumerate(_json(data)["series"]):
        if index % CHECKPOINT_SERIES == CHECKPOINT_SERIES - 1:
            checkpoint()
        entry, metric = _metric(raw, index)
        where = f"series {metric!r}"
        name = entry.get("type") or "gauge"
        kind = _V1_JSON_KINDS.get(name) if isinstance(name, str) else None
        if kind is None:
            raise MalformedBodyError(f"{where}: unknown type {name!r}")
        device = _text(entry, "device", where)
        out.append(
            ReportedSeries(
                metric=metric,
                kind=kind,
                points=_v1_points(entry.get("points"), where),
                tags=_tags(entry, where),
                host=_text(entry, "host", where),
                source_type_name=_text(entry, "source_type_name", where),
                interval_seconds=_interval(entry, where),
                resources=(("device", device),) if device else (),
            )
        )
    return out
