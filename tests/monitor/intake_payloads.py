"""Payloads for the intake's tests, built the way their senders build them: protobuf messages
with the protobuf runtime from the project's definitions, compressed as the agent sends them."""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Sequence
from typing import Any

import zstandard

from monitor.intake.payload import MetricPayload

#: (metric, protobuf type number, [(timestamp, value)], tags, host)
Series = tuple[str, int, Sequence[tuple[int, float]], Sequence[str], str]


def metric_payload(series: Iterable[Series]) -> bytes:
    """A serialized ``MetricPayload`` of ``series``."""
    message: Any = MetricPayload()
    for metric, kind, points, tags, host in series:
        entry = message.series.add()
        entry.metric = metric
        entry.type = kind
        entry.tags.extend(tags)
        entry.source_type_name = "System"
        entry.interval = 15
        entry.unit = "byte"
        for timestamp, value in points:
            point = entry.points.add()
            point.timestamp = timestamp
            point.value = value
        if host:
            resource = entry.resources.add()
            resource.type = "host"
            resource.name = host
    return bytes(message.SerializeToString())


def zstd(data: bytes) -> bytes:
    return zstandard.ZstdCompressor().compress(data)


def zlib_bomb(size_bytes: int) -> bytes:
    """A deflate (zlib-wrapped) stream of ``size_bytes`` zeros, built without holding them."""
    compressor = zlib.compressobj(9)
    chunk = bytes(1 << 20)
    parts = [compressor.compress(chunk) for _ in range(size_bytes >> 20)]
    return b"".join([*parts, compressor.flush()])


def zstd_bomb(size_bytes: int) -> bytes:
    """A zstd frame of ``size_bytes`` zeros (no content size in its header), built in chunks."""
    compressor = zstandard.ZstdCompressor(level=3).compressobj()
    chunk = bytes(1 << 20)
    parts = [compressor.compress(chunk) for _ in range(size_bytes >> 20)]
    return b"".join([*parts, compressor.flush()])
