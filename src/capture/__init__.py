"""capture: an embeddable, high-resolution metrics recorder that writes Parquet.

Record with the facade, anywhere in a program::

    import capture

    requests = capture.counter("http.requests", {"route": "/"})   # keep the handle
    requests.increment()
    capture.gauge("queue.depth_items", {"queue": "in"}).set(12)

and let a :class:`CaptureManager` turn the values into one Parquet row per series per tick::

    with capture.CaptureManager("metrics.parquet", label_columns=("route",)):
        run_the_program()

Before a recorder is installed, calls are cheap no-ops (counted, reported once in the log);
handles made then start recording as soon as one is installed.

The handles are typed by two protocols, :class:`Gauge` and :class:`Counter`, whatever the
recorder behind them; the rest of the public face is what ``__all__`` lists.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from capture import historical
from capture.descriptions import Description
from capture.facade import counter, describe, gauge, get_recorder, set_recorder
from capture.keys import ordered_labels
from capture.manager import CaptureManager, CaptureWriteError, PublishedFile
from capture.recorder import CaptureRecorder, Counter, Gauge, Recorder
from capture.recover import RecoveryReport, recover
from capture.schema import capture_schema

if TYPE_CHECKING:
    from capture import prometheus

__all__ = [
    "CaptureManager",
    "CaptureRecorder",
    "CaptureWriteError",
    "Counter",
    "Description",
    "Gauge",
    "PublishedFile",
    "Recorder",
    "RecoveryReport",
    "capture_schema",
    "counter",
    "describe",
    "gauge",
    "get_recorder",
    "historical",
    "ordered_labels",
    "prometheus",
    "recover",
    "set_recorder",
]


def __getattr__(name: str) -> Any:
    # prometheus_client is imported only by those who use the live view.
    if name == "prometheus":
        import capture.prometheus as module  # noqa: PLC0415

        return module
    raise AttributeError(f"module 'capture' has no attribute {name!r}")
