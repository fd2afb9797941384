"""The facade: ``gauge()``, ``counter()``, ``describe()`` and the installed recorder.

The only global state of the library is the installed recorder (a :class:`PendingRecorder`
until one is installed), and the pending recorder's handles and descriptions.
"""

from __future__ import annotations

from collections.abc import Mapping

from capture.pending import PendingRecorder
from capture.recorder import Counter, Gauge, HandleTables, IndexedRecorder, Recorder

_pending = PendingRecorder()
_recorder: Recorder = _pending
# The installed recorder's known handles when it publishes them (IndexedRecorder), so that a
# known series costs no call into the recorder; empty tables otherwise.
_NO_HANDLES = HandleTables({}, {})
_gauges = _NO_HANDLES.gauges
_counters = _NO_HANDLES.counters


def gauge(name: str, labels: Mapping[str, str] | None = None) -> Gauge:
    """Return the handle of gauge ``name`` with ``labels`` (a mapping of str to str).

    The handle may be kept and reused; calling again with the same name and labels returns an
    equivalent handle. Bad names or labels raise TypeError/ValueError here, once per new series.
    """
    try:
        return _gauges[tuple(labels.items()) if labels else ()][name]
    except KeyError:  # not looked up under this name and label order before
        return _recorder.gauge(name, labels)
    except (TypeError, AttributeError):  # labels not a mapping of str: the recorder says why
        return _recorder.gauge(name, labels)


def counter(name: str, labels: Mapping[str, str] | None = None) -> Counter:
    """Return the handle of counter ``name`` with ``labels`` (see :func:`gauge`)."""
    try:
        return _counters[tuple(labels.items()) if labels else ()][name]
    except KeyError:  # not looked up under this name and label order before
        return _recorder.counter(name, labels)
    except (TypeError, AttributeError):  # labels not a mapping of str: the recorder says why
        return _recorder.counter(name, labels)


def describe(name: str, description: str, unit: str | None = None) -> None:
    """Say what metric ``name`` means: ``description`` (one line of text) and its ``unit``.

    ``unit`` is one word such as ``bytes``, ``seconds``, ``usec`` or ``percent`` (None: no
    unit). ``name`` may be a pattern where ``*`` stands for any text, describing a family
    (``"cgroup.memory.stat.*"``); an exact name wins over a pattern. Describing again replaces
    the description. Descriptions are kept for the whole process, whether a recorder is
    installed or not, and given to the installed recorder and to every one installed later;
    they cost nothing when recording. :class:`capture.CaptureRecorder` uses them for the HELP
    and UNIT lines of the Prometheus view and the ``capture.metrics`` metadata of its files.
    Raises TypeError/ValueError for a bad argument.
    """
    _pending.describe(name, description, unit)
    if _recorder is not _pending:
        target = getattr(_recorder, "describe", None)
        if target is not None:
            target(name, description, unit)


def set_recorder(recorder: Recorder | None) -> Recorder | None:
    """Install ``recorder`` for the whole process (None uninstalls); returns the previous one.

    Handles made before any recorder was installed start forwarding to the new recorder, and
    it is given every description (:func:`describe`) kept so far.
    """
    global _recorder, _gauges, _counters
    previous = None if _recorder is _pending else _recorder
    _recorder = _pending if recorder is None else recorder
    tables = recorder.handle_tables() if isinstance(recorder, IndexedRecorder) else _NO_HANDLES
    _gauges, _counters = tables.gauges, tables.counters
    _pending.bind_all(recorder)
    return previous


def get_recorder() -> Recorder | None:
    """Return the installed recorder, or None while none is installed."""
    return None if _recorder is _pending else _recorder


def pending_recorder() -> PendingRecorder:
    """The recorder that stands in while none is installed (to read its dropped-call count)."""
    return _pending
