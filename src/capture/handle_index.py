"""The handle index: kept handles of one kind by the label items a caller gives, then by name.

A caller's labels are a mapping in whatever order it was built. The index is keyed by
``tuple(labels.items())`` so that finding a known series costs one tuple and two dict lookups,
no sorting and no validation. A series is filed under its canonical labels (sorted by key, see
:func:`capture.keys.canonical_labels`) and under every other order of the same labels it was
looked up by (an alias), and taken out of all of them when it ends.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Generic, TypeVar

from capture.handles import Series
from capture.keys import LabelTuple

H = TypeVar("H", bound=Series)


class HandleIndex(Generic[H]):
    """Handles by label items (canonical order or an alias), then by metric name.

    :attr:`table` is the lookup itself, read without a lock: a dict read sees either the old or
    the new entry while the registry changes it under its own lock.
    """

    __slots__ = ("_aliases", "table")

    def __init__(self) -> None:
        #: ``table[tuple(labels.items())][name]`` is the handle of ``name`` with ``labels``.
        self.table: dict[LabelTuple, dict[str, H]] = {}
        # The other label orders each series was filed under, by series id.
        self._aliases: dict[int, list[LabelTuple]] = {}

    def get(self, name: str, labels: LabelTuple) -> H | None:
        """The handle filed under ``name`` and ``labels`` (canonical or an alias), or None."""
        by_name = self.table.get(labels)
        return None if by_name is None else by_name.get(name)

    def add(self, handle: H) -> None:
        """File a new series' handle under its canonical labels."""
        self.table.setdefault(handle.labels, {})[handle.name] = handle

    def add_alias(self, handle: H, labels: Mapping[str, str]) -> None:
        """File ``handle`` under the order of ``labels`` too (the same labels as its own, in
        another order; a no-op for the canonical order or an alias already filed)."""
        alias = tuple(labels.items())
        if alias == handle.labels:
            return
        aliases = self._aliases.setdefault(handle.sid, [])
        if alias not in aliases:
            aliases.append(alias)
            self.table.setdefault(alias, {})[handle.name] = handle

    def remove(self, handle: H) -> None:
        """Take ``handle`` out under every label order it was filed under; a label order whose
        last series it was leaves no entry behind."""
        for labels in (handle.labels, *self._aliases.pop(handle.sid, ())):
            by_name = self.table.get(labels)
            if by_name is not None and by_name.get(handle.name) is handle:
                del by_name[handle.name]
                if not by_name:
                    del self.table[labels]
