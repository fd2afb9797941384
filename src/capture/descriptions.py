"""What a metric means: descriptions and units given with :func:`capture.describe`.

A description is kept apart from the series (it costs nothing when recording) and used where
a metric is presented: the HELP and UNIT lines of the Prometheus view and the ``capture.metrics``
key-value metadata of each Parquet file. A name may be a pattern in which ``*`` stands for any
text (dots included), describing a family whose names are only known at run time
(``cgroup.memory.stat.*``); an exact name wins over a pattern, and of two patterns the one
with more literal text wins.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from capture.keys import check_name

if TYPE_CHECKING:
    from capture.keys import Kind

_UNIT = re.compile(r"[A-Za-z0-9_]+")


@dataclass(frozen=True, slots=True)
class Description:
    """The description of metric ``name`` (or of every name a ``*`` pattern matches).

    ``unit`` is one word (``bytes``, ``seconds``, ``usec``, ``percent`` ...) or None.
    """

    name: str
    description: str
    unit: str | None = None

    @property
    def is_pattern(self) -> bool:
        """Whether ``name`` stands for a family of names (it holds a ``*``)."""
        return "*" in self.name


def make_description(name: str, description: str, unit: str | None = None) -> Description:
    """A checked :class:`Description`; raises TypeError/ValueError for a bad argument."""
    check_name(name)
    if not isinstance(description, str):
        raise TypeError(f"description must be a str, got {type(description).__name__}")
    if not description.strip():
        raise ValueError(f"metric {name!r}: the description must not be empty")
    if unit is not None and not (isinstance(unit, str) and _UNIT.fullmatch(unit)):
        raise ValueError(f"metric {name!r}: unit must be one word of [A-Za-z0-9_], got {unit!r}")
    return Description(name, " ".join(description.split()), unit)


def _pattern(name: str) -> re.Pattern[str]:
    return re.compile(".*".join(re.escape(part) for part in name.split("*")))


class DescriptionTable:
    """Descriptions by name, with the ``*`` patterns; thread-safe.

    Describing a name again replaces its description (the last one wins).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._exact: dict[str, Description] = {}
        self._patterns: list[tuple[int, re.Pattern[str], Description]] = []
        # Lookups already resolved (a scrape asks for the same few hundred names every time).
        self._resolved: dict[str, Description | None] = {}

    def add(self, description: Description) -> None:
        """Keep ``description`` (replacing one of the same name)."""
        with self._lock:
            if description.is_pattern:
                literal = len(description.name.replace("*", ""))
                kept = [p for p in self._patterns if p[2].name != description.name]
                kept.append((literal, _pattern(description.name), description))
                # Most literal text first: the first match is the most specific.
                kept.sort(key=lambda p: -p[0])
                self._patterns = kept
            else:
                self._exact[description.name] = description
            self._resolved = {}

    def get(self, name: str) -> Description | None:
        """The description of metric ``name``: its own, else the most specific pattern's."""
        with self._lock:
            try:
                return self._resolved[name]
            except KeyError:
                pass
            found = self._exact.get(name)
            if found is None:
                found = next((d for _, p, d in self._patterns if p.fullmatch(name)), None)
            self._resolved[name] = found
            return found

    def __iter__(self) -> Iterator[Description]:
        with self._lock:
            kept = [*self._exact.values(), *(d for _, _, d in self._patterns)]
        return iter(sorted(kept, key=lambda d: d.name))

    def __len__(self) -> int:
        with self._lock:
            return len(self._exact) + len(self._patterns)

    def metadata_json(
        self, kind_of: Callable[[str], Kind | None], names: Collection[str] | None = None
    ) -> str:
        """The descriptions as JSON ``{name: {"kind", "unit", "description"}}`` (``kind`` where
        ``kind_of`` knows the name, ``unit`` where one was given), names sorted. With ``names``
        (the metrics a file holds), only the descriptions of these: an exact name among them,
        a pattern that matches one of them."""
        out: dict[str, dict[str, str]] = {}
        for description in self:
            if names is not None and not (
                any(_pattern(description.name).fullmatch(n) for n in names)
                if description.is_pattern
                else description.name in names
            ):
                continue
            entry: dict[str, str] = {}
            kind = None if description.is_pattern else kind_of(description.name)
            if kind is not None:
                entry["kind"] = kind
            if description.unit is not None:
                entry["unit"] = description.unit
            entry["description"] = description.description
            out[description.name] = entry
        return json.dumps(out, ensure_ascii=False, separators=(",", ":"))
