"""Request bodies to typed series: the agent's protobuf, the API clients' JSON, compression."""

from __future__ import annotations

import gzip
import json
import zlib
from typing import Any

import pytest
from google.protobuf.descriptor import FieldDescriptor
from intake_payloads import metric_payload, zlib_bomb, zstd, zstd_bomb

from monitor.intake import payload
from monitor.intake.decode import (
    BodyTooLargeError,
    MalformedBodyError,
    ReportedSeries,
    decode_sketches,
    decode_v1_json,
    decode_v2_json,
    decode_v2_protobuf,
    decompress,
)

MiB = 1 << 20


def test_the_definitions_carry_the_documented_field_numbers() -> None:
    # DataDog/agent-payload proto/metrics/agent_payload.proto, as issue 21 spells it out.
    described: Any = payload.MetricPayload.DESCRIPTOR
    assert described.full_name == "datadog.agentpayload.MetricPayload"
    assert {f.name: f.number for f in described.fields} == {"series": 1}
    series = described.nested_types_by_name["MetricSeries"]
    assert {f.name: f.number for f in series.fields} == {
        "resources": 1,
        "metric": 2,
        "tags": 3,
        "points": 4,
        "type": 5,
        "unit": 6,
        "source_type_name": 7,
        "interval": 8,
    }
    point = described.nested_types_by_name["MetricPoint"]
    assert {(f.name, f.number, f.type) for f in point.fields} == {
        ("value", 1, FieldDescriptor.TYPE_DOUBLE),
        ("timestamp", 2, FieldDescriptor.TYPE_INT64),
    }
    resource = described.nested_types_by_name["Resource"]
    assert {f.name: f.number for f in resource.fields} == {"type": 1, "name": 2}
    kinds = described.enum_types_by_name["MetricType"]
    assert {v.name: v.number for v in kinds.values} == {"GAUGE": 0, "COUNT": 1, "RATE": 2}


def test_protobuf_payload_decodes_every_field() -> None:
    body = metric_payload(
        [
            ("mem.usage", payload.GAUGE, [(100, 1.5), (115, 2.5)], ["a:b", "bare"], "node-1"),
            ("reqs", payload.COUNT, [(100, 3.0)], [], ""),
            ("rate", payload.RATE, [(100, 0.25)], [], "node-1"),
        ]
    )
    got = decode_v2_protobuf(body)
    assert got == [
        ReportedSeries(
            "mem.usage",
            "gauge",
            ((100.0, 1.5), (115.0, 2.5)),
            ("a:b", "bare"),
            "node-1",
            "System",
            "byte",
            15,
        ),
        ReportedSeries("reqs", "count", ((100.0, 3.0),), (), "", "System", "byte", 15),
        ReportedSeries("rate", "rate", ((100.0, 0.25),), (), "node-1", "System", "byte", 15),
    ]


@pytest.mark.parametrize(
    "body",
    [
        b"garbage",
        metric_payload([("m", 7, [(1, 1.0)], [], "")]),
        metric_payload([("", 0, [], [], "")]),
    ],
    ids=["not protobuf", "unknown type", "no metric name"],
)
def test_protobuf_that_is_no_metric_payload_is_malformed(body: bytes) -> None:
    with pytest.raises(MalformedBodyError):
        decode_v2_protobuf(body)


def _v2(kind: object) -> bytes:
    return json.dumps(
        {"series": [{"metric": "m", "type": kind, "points": [{"timestamp": 5, "value": 2}]}]}
    ).encode()


@pytest.mark.parametrize(
    ("number", "kind"), [(0, "gauge"), (1, "count"), (2, "rate"), (3, "gauge")]
)
def test_v2_json_type_numbers_are_the_api_clients(number: int, kind: str) -> None:
    assert decode_v2_json(_v2(number))[0].kind == kind


def test_v2_json_resources_give_the_host_and_the_rest_are_kept() -> None:
    body = json.dumps(
        {
            "series": [
                {
                    "metric": "m",
                    "type": 3,
                    "points": [{"timestamp": 5, "value": 2.5}],
                    "resources": [{"type": "host", "name": "h"}, {"type": "device", "name": "sda"}],
                    "tags": ["x:y"],
                    "unit": "byte",
                }
            ]
        }
    ).encode()
    (series,) = decode_v2_json(body)
    assert (series.host, series.resources, series.tags, series.points) == (
        "h",
        (("device", "sda"),),
        ("x:y",),
        ((5.0, 2.5),),
    )


@pytest.mark.parametrize(
    "document",
    [
        [],
        {"series": {}},
        {"series": [{"metric": "m", "type": 4, "points": []}]},
        {"series": [{"metric": "m", "type": "gauge", "points": []}]},
        {"series": [{"metric": "m", "points": [{"timestamp": "now", "value": 1}]}]},
        {"series": [{"metric": "m", "points": [{"timestamp": 1, "value": True}]}]},
        {"series": [{"metric": "m", "points": [], "tags": "a:b"}]},
        {"series": [{"metric": 5, "points": []}]},
    ],
)
def test_v2_json_with_wrong_types_is_malformed(document: object) -> None:
    with pytest.raises(MalformedBodyError):
        decode_v2_json(json.dumps(document).encode())


def test_v1_json_series() -> None:
    body = json.dumps(
        {
            "series": [
                {"metric": "a", "points": [[10, 1], [11.5, 2]], "host": "h", "tags": ["k:v"]},
                {"metric": "b", "points": [[10, 3]], "type": "count", "interval": 10},
                {"metric": "c", "points": [[10, 3]], "type": "rate", "device": "sda"},
            ]
        }
    ).encode()
    got = decode_v1_json(body)
    assert [(s.metric, s.kind, s.points, s.host) for s in got] == [
        ("a", "gauge", ((10.0, 1.0), (11.5, 2.0)), "h"),
        ("b", "count", ((10.0, 3.0),), ""),
        ("c", "rate", ((10.0, 3.0),), ""),
    ]
    assert got[1].interval_seconds == 10
    assert got[2].resources == (("device", "sda"),)


@pytest.mark.parametrize(
    "document",
    [
        {"series": [{"metric": "a", "points": [[10]]}]},
        {"series": [{"metric": "a", "points": [[10, "1"]]}]},
        {"series": [{"metric": "a", "points": [[10, 1]], "type": "histogram"}]},
        {"series": [{"metric": "a", "points": [[10, 1]], "host": 3}]},
    ],
)
def test_v1_json_with_wrong_types_is_malformed(document: object) -> None:
    with pytest.raises(MalformedBodyError):
        decode_v1_json(json.dumps(document).encode())


@pytest.mark.parametrize("body", [b"\xff\xfe", b"not json", b"{" * 100_000])
def test_bodies_that_are_no_json_are_malformed(body: bytes) -> None:
    with pytest.raises(MalformedBodyError):
        decode_v1_json(body)


def test_sketches_keep_count_sum_min_max() -> None:
    message: Any = payload.SketchPayload()
    sketch = message.sketches.add()
    sketch.metric, sketch.host = "latency", "h"
    sketch.tags.append("a:b")
    point = sketch.dogsketches.add()
    point.ts, point.cnt, point.min, point.max, point.avg, point.sum = 50, 4, 0.5, 9.0, 3.0, 12.0
    point.k.extend([1, 2])
    point.n.extend([3, 1])
    (got,) = decode_sketches(message.SerializeToString())
    assert (got.metric, got.host, got.tags, got.points) == (
        "latency",
        "h",
        ("a:b",),
        ((50.0, 4, 12.0, 0.5, 9.0),),
    )


def _raw_deflate(data: bytes) -> bytes:
    compressor = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
    return compressor.compress(data) + compressor.flush()


DATA = b'{"series": []}' * 100


@pytest.mark.parametrize(
    ("encoding", "body"),
    [
        (None, DATA),
        ("identity", DATA),
        ("gzip", gzip.compress(DATA)),
        ("deflate", zlib.compress(DATA)),
        ("deflate", _raw_deflate(DATA)),
        ("zstd", zstd(DATA)),
        ("ZSTD", zstd(DATA[:700]) + zstd(DATA[700:])),
    ],
    ids=["none", "identity", "gzip", "deflate-zlib", "deflate-raw", "zstd", "zstd-frames"],
)
def test_decompress_undoes_each_encoding(encoding: str | None, body: bytes) -> None:
    assert decompress(body, encoding, len(DATA)) == DATA


@pytest.mark.parametrize(
    ("encoding", "body"),
    [
        (None, DATA),
        ("gzip", gzip.compress(DATA)),
        ("deflate", zlib.compress(DATA)),
        ("zstd", zstd(DATA)),
    ],
)
def test_a_body_one_byte_over_the_bound_is_too_large(encoding: str | None, body: bytes) -> None:
    with pytest.raises(BodyTooLargeError):
        decompress(body, encoding, len(DATA) - 1)


@pytest.mark.parametrize(
    ("encoding", "bomb"),
    [("deflate", zlib_bomb(256 * MiB)), ("zstd", zstd_bomb(256 * MiB))],
    ids=["deflate", "zstd"],
)
def test_a_zip_bomb_is_refused_without_inflating_it(encoding: str, bomb: bytes) -> None:
    assert len(bomb) < MiB  # 256 MiB of zeros in a few hundred KiB
    with pytest.raises(BodyTooLargeError):
        decompress(bomb, encoding, 16 * MiB)


@pytest.mark.parametrize(
    ("encoding", "body"),
    [
        ("br", DATA),
        ("gzip", gzip.compress(DATA)[:-10]),
        ("gzip", b"not gzip"),
        ("deflate", b"not deflate at all"),
        ("zstd", zstd(DATA)[:-5]),
        ("zstd", b"not zstd"),
    ],
    ids=[
        "unknown",
        "gzip-truncated",
        "gzip-garbage",
        "deflate-garbage",
        "zstd-truncated",
        "zstd-garbage",
    ],
)
def test_a_stream_that_does_not_decode_is_malformed(encoding: str, body: bytes) -> None:
    with pytest.raises(MalformedBodyError):
        decompress(body, encoding, 16 * MiB)
