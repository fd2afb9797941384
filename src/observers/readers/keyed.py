"""Parsed keyed files whose typed fields cost nothing until they are read.

A keyed file (``memory.stat``: about 60 keys, ``smaps_rollup``, ``cpu.stat`` ...) is parsed into
one dict, ``values``, every key the kernel printed. Its typed value (``MemoryStat``, ...) is a
:class:`KeyedFile` holding only that dict; each typed field is a :class:`Key` that looks its key
up when read, ``None`` when the running kernel does not print it. The samplers parse such a file
every tick and read two or three fields of it: filling 40-odd frozen fields instead would cost
more than the parse itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import overload

__all__ = ["Key", "KeyedFile"]


@dataclass(frozen=True)
class KeyedFile:
    """A parsed keyed file: ``values`` holds every key it had (including keys newer than the
    reader); subclasses add typed :class:`Key` fields and ``__slots__ = ()``.

    Frozen, compared by type and ``values``, and hashable by them.
    """

    # Slots declared by hand: dataclass(slots=True) re-creates the class, and on Python 3.11
    # the frozen __setattr__ of such a class raises TypeError instead of FrozenInstanceError.
    __slots__ = ("values",)
    values: Mapping[str, int]

    def __hash__(self) -> int:
        return hash((type(self), frozenset(self.values.items())))


class Key:
    """A typed optional field: ``values[key]``, or None when the kernel does not print the key.

    ``Key()`` reads the key named like the attribute; ``Key("throttled_time")`` another one
    (for an attribute whose name carries the unit, ``throttled_time_nsec``).
    """

    __slots__ = ("key",)

    def __init__(self, key: str = "") -> None:
        self.key = key

    def __set_name__(self, owner: type[object], name: str) -> None:
        if not self.key:
            self.key = name

    @overload
    def __get__(self, instance: None, owner: type[object]) -> Key: ...

    @overload
    def __get__(self, instance: KeyedFile, owner: type[object]) -> int | None: ...

    def __get__(self, instance: KeyedFile | None, owner: type[object]) -> Key | int | None:
        if instance is None:
            return self
        return instance.values.get(self.key)
