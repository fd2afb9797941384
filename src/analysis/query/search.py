"""The one search rule of every view of the dataset (viewer, MCP, ...).

A search text is cut into words at white space; a container or metric matches when each word,
in any case, is found somewhere in its searched texts (not necessarily in the same one, nor in
order): ``shop ngin`` finds the nginx container of namespace shop. Label filters keep the
containers whose label is one of the values given.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from analysis.query.index import ContainerInfo, MetricInfo

_WORD = re.compile(r"\S+")
#: The ContainerInfo fields a container search looks in.
CONTAINER_SEARCH_FIELDS = (
    "name", "full_name", "namespace", "pod_name", "container_name", "container_id", "cgroup",
    "node_name", "pod_uid", "qos_class", "key",
)  # fmt: skip
#: The label filters of a container search and the ContainerInfo field each one compares.
CONTAINER_FILTERS = {
    "namespace": "namespace",
    "pod": "pod_name",
    "qos": "qos_class",
    "node": "node_name",
}

#: A filter's accepted values: one value, several, or None (any value).
Choice = str | Sequence[str] | None


def search_words(search: str) -> list[str]:
    """The words of ``search``, in lower case."""
    return [word.lower() for word in _WORD.findall(search)]


def matches(words: Sequence[str], texts: Iterable[str | None]) -> bool:
    """Whether every one of ``words`` (lower case) is in one of ``texts`` (any case)."""
    haystack = "\n".join(text.lower() for text in texts if text)
    return all(word in haystack for word in words)


def _choices(value: Choice) -> frozenset[str] | None:
    if value is None:
        return None
    return frozenset([value] if isinstance(value, str) else value)


def search_containers(
    containers: Iterable[ContainerInfo],
    search: str = "",
    *,
    namespace: Choice = None,
    pod: Choice = None,
    qos: Choice = None,
    node: Choice = None,
) -> list[ContainerInfo]:
    """The ``containers`` matching every word of ``search`` in their
    :data:`CONTAINER_SEARCH_FIELDS`, restricted to the given label values (each a value or a
    list of accepted values), by full name, then start."""
    words = search_words(search)
    filters = [
        (_choices(choice), CONTAINER_FILTERS[name])
        for name, choice in (("namespace", namespace), ("pod", pod), ("qos", qos), ("node", node))
    ]
    found = [
        info
        for info in containers
        if not any(ok is not None and getattr(info, field) not in ok for ok, field in filters)
        and matches(words, (getattr(info, field) for field in CONTAINER_SEARCH_FIELDS))
    ]
    return sorted(found, key=lambda c: (c.full_name, c.first_time, c.key))


def search_metrics(metrics: Iterable[MetricInfo], search: str = "") -> list[MetricInfo]:
    """The ``metrics`` whose name or description holds every word of ``search``, in order."""
    words = search_words(search)
    return [m for m in metrics if matches(words, (m.name, m.description))]
