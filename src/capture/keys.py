"""Validation and canonical form of series keys (metric name plus labels).

Run once per new series, never on the hot path of a kept handle.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Final, Literal

#: A series' labels in canonical form: (key, value) pairs sorted by key.
LabelTuple = tuple[tuple[str, str], ...]
#: The two kinds of series.
Kind = Literal["gauge", "counter"]
#: What identifies a series: its kind, metric name and canonical labels.
SeriesKey = tuple[Kind, str, LabelTuple]

#: The columns of every capture file that are not label columns (see
#: :func:`capture.capture_schema`): a label key or a label column may not take one of these names.
RESERVED_COLUMNS: Final = frozenset(
    {
        "run_id",
        "time",
        "fetch_index",
        "metric_name",
        "metric_kind",
        "value_int",
        "value_float",
        "labels",
    }
)


def _in_canonical_order(pairs: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """The canonical order of a series' labels: by key (keys are unique)."""
    return sorted(pairs)


def ordered_labels(labels: Mapping[str, str]) -> dict[str, str]:
    """``labels`` as a dict in the order capture keeps labels in (sorted by key).

    A series is filed under its labels in this order, so a mapping built once in it and passed
    on every call is found without an alias (:mod:`capture.handle_index`). Nothing is
    validated here; that happens when a series is registered.
    """
    return dict(_in_canonical_order(labels.items()))


def check_name(name: object) -> str:
    """Return ``name`` if it is a non-empty str, else raise TypeError/ValueError."""
    if not isinstance(name, str):
        raise TypeError(f"metric name must be a str, got {type(name).__name__}")
    if not name:
        raise ValueError("metric name must not be empty")
    return name


def canonical_labels(labels: object, reserved: frozenset[str] = RESERVED_COLUMNS) -> LabelTuple:
    """Validate ``labels`` and return them as a tuple of (key, value) pairs sorted by key.

    Raises TypeError for a non-mapping, a non-str key or value; ValueError for an empty key or
    a key in ``reserved`` (the fixed columns and the global labels).
    """
    if labels is None:
        return ()
    if not isinstance(labels, Mapping):
        raise TypeError(f"labels must be a mapping of str to str, got {type(labels).__name__}")
    pairs: list[tuple[str, str]] = []
    for key, value in labels.items():
        if not isinstance(key, str):
            raise TypeError(f"label key must be a str, got {type(key).__name__}: {key!r}")
        if not key:
            raise ValueError("label key must not be empty")
        if not isinstance(value, str):
            raise TypeError(f"label {key!r}: value must be a str, got {type(value).__name__}")
        if key in reserved:
            raise ValueError(f"label key {key!r} collides with a fixed column or a global label")
        pairs.append((key, value))
    return tuple(_in_canonical_order(pairs))
