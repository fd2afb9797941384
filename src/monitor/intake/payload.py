"""The Datadog Agent's metric payloads as protobuf messages, defined here from their field numbers.

The definitions follow ``DataDog/agent-payload``'s ``proto/metrics/agent_payload.proto``
(package ``datadog.agentpayload``), so a real agent's ``POST /api/v2/series`` body and
``POST /api/beta/sketches`` body decode with them. They are built at import time as a
``FileDescriptorProto`` in a descriptor pool of their own (no generated code, no codegen step,
no clash with a program that imports Datadog's generated modules) and turned into message
classes by the ``protobuf`` runtime, which does all the wire-format parsing.

``MetricPayload``::

    series = 1                 repeated MetricSeries
    MetricSeries:
        resources = 1          repeated Resource {type = 1: string, name = 2: string}
        metric = 2             string
        tags = 3               repeated string ("key:value" or a bare tag)
        points = 4             repeated MetricPoint {value = 1: double, timestamp = 2: int64 s}
        type = 5               MetricType: GAUGE 0, COUNT 1, RATE 2
        unit = 6               string
        source_type_name = 7   string
        interval = 8           int64 seconds

``SketchPayload`` (only what finemon reads of it: each sketch's metric, host, tags and its
``dogsketches`` with ``ts = 1``, ``cnt = 2``, ``min = 3``, ``max = 4``, ``avg = 5``,
``sum = 6``; the bins, ``k = 7`` and ``n = 8``, are declared so they decode, and ignored).
"""

from __future__ import annotations

from typing import Final

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.message import DecodeError, Message

__all__ = [
    "COUNT",
    "GAUGE",
    "RATE",
    "DecodeError",
    "Message",
    "MetricPayload",
    "PACKAGE",
    "SketchPayload",
]

#: The protobuf package of the agent's payloads (as upstream, so type names match).
PACKAGE: Final = "datadog.agentpayload"
#: ``MetricPayload.MetricType`` values (protobuf encoding; the v2 JSON numbers differ).
GAUGE: Final = 0
COUNT: Final = 1
RATE: Final = 2

_F = descriptor_pb2.FieldDescriptorProto
_OPTIONAL = _F.LABEL_OPTIONAL
_REPEATED = _F.LABEL_REPEATED


def _field(
    message: descriptor_pb2.DescriptorProto,
    name: str,
    number: int,
    kind: int,
    label: int = _OPTIONAL,
    type_name: str | None = None,
) -> None:
    field = message.field.add()
    field.name = name
    field.number = number
    field.type = kind  # type: ignore[assignment]
    field.label = label  # type: ignore[assignment]
    if type_name is not None:
        field.type_name = type_name


def _metric_payload(file: descriptor_pb2.FileDescriptorProto) -> None:
    payload = file.message_type.add()
    payload.name = "MetricPayload"
    scope = f".{PACKAGE}.MetricPayload"

    metric_type = payload.enum_type.add()
    metric_type.name = "MetricType"
    for name, number in (("GAUGE", GAUGE), ("COUNT", COUNT), ("RATE", RATE)):
        value = metric_type.value.add()
        value.name = name
        value.number = number

    point = payload.nested_type.add()
    point.name = "MetricPoint"
    _field(point, "value", 1, _F.TYPE_DOUBLE)
    _field(point, "timestamp", 2, _F.TYPE_INT64)

    resource = payload.nested_type.add()
    resource.name = "Resource"
    _field(resource, "type", 1, _F.TYPE_STRING)
    _field(resource, "name", 2, _F.TYPE_STRING)

    series = payload.nested_type.add()
    series.name = "MetricSeries"
    _field(series, "resources", 1, _F.TYPE_MESSAGE, _REPEATED, f"{scope}.Resource")
    _field(series, "metric", 2, _F.TYPE_STRING)
    _field(series, "tags", 3, _F.TYPE_STRING, _REPEATED)
    _field(series, "points", 4, _F.TYPE_MESSAGE, _REPEATED, f"{scope}.MetricPoint")
    _field(series, "type", 5, _F.TYPE_ENUM, type_name=f"{scope}.MetricType")
    _field(series, "unit", 6, _F.TYPE_STRING)
    _field(series, "source_type_name", 7, _F.TYPE_STRING)
    _field(series, "interval", 8, _F.TYPE_INT64)
    reserved = series.reserved_range.add()
    reserved.start, reserved.end = 9, 10

    _field(payload, "series", 1, _F.TYPE_MESSAGE, _REPEATED, f"{scope}.MetricSeries")


def _sketch_payload(file: descriptor_pb2.FileDescriptorProto) -> None:
    payload = file.message_type.add()
    payload.name = "SketchPayload"
    scope = f".{PACKAGE}.SketchPayload"

    sketch = payload.nested_type.add()
    sketch.name = "Sketch"
    dogsketch = sketch.nested_type.add()
    dogsketch.name = "Dogsketch"
    _field(dogsketch, "ts", 1, _F.TYPE_INT64)
    _field(dogsketch, "cnt", 2, _F.TYPE_INT64)
    _field(dogsketch, "min", 3, _F.TYPE_DOUBLE)
    _field(dogsketch, "max", 4, _F.TYPE_DOUBLE)
    _field(dogsketch, "avg", 5, _F.TYPE_DOUBLE)
    _field(dogsketch, "sum", 6, _F.TYPE_DOUBLE)
    _field(dogsketch, "k", 7, _F.TYPE_SINT32, _REPEATED)
    _field(dogsketch, "n", 8, _F.TYPE_UINT32, _REPEATED)
    _field(sketch, "metric", 1, _F.TYPE_STRING)
    _field(sketch, "host", 2, _F.TYPE_STRING)
    _field(sketch, "tags", 4, _F.TYPE_STRING, _REPEATED)
    _field(sketch, "dogsketches", 7, _F.TYPE_MESSAGE, _REPEATED, f"{scope}.Sketch.Dogsketch")

    _field(payload, "sketches", 1, _F.TYPE_MESSAGE, _REPEATED, f"{scope}.Sketch")


def _file() -> descriptor_pb2.FileDescriptorProto:
    file = descriptor_pb2.FileDescriptorProto()
    file.name = "finemon/intake/agent_payload.proto"
    file.package = PACKAGE
    file.syntax = "proto3"
    _metric_payload(file)
    _sketch_payload(file)
    return file


_POOL = descriptor_pool.DescriptorPool()
_POOL.Add(_file())

#: The message class of ``POST /api/v2/series`` bodies (instances: ``MetricPayload()``,
#: ``.FromString(body)``; raises :class:`DecodeError` for bytes that are no such message).
MetricPayload: type[Message] = message_factory.GetMessageClass(
    _POOL.FindMessageTypeByName(f"{PACKAGE}.MetricPayload")
)
#: The message class of ``POST /api/beta/sketches`` bodies.
SketchPayload: type[Message] = message_factory.GetMessageClass(
    _POOL.FindMessageTypeByName(f"{PACKAGE}.SketchPayload")
)
