"""Short names for long ones: containers' display names and legend labels of host cgroup
paths. Pure functions, no duckdb."""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

_LONG_HEX = re.compile(r"[0-9a-f]{16,}")
#: Digits of a container id that tell restarts apart when their start times are the same.
SHORT_ID_DIGITS = 6
#: Restarts that all started within a day of each other are told apart by the time of day.
_DAY_MS = 86_400_000


@dataclass(frozen=True, slots=True)
class ContainerLabels:
    """What a container's display names are made of: its key, kubelet's names, its container
    id, its cgroup path (hosts without kubelet) and its first tick (epoch ms)."""

    key: str
    namespace: str | None
    pod_name: str | None
    container_name: str | None
    container_id: str | None
    cgroup: str | None
    first_ms: int


def container_labels(
    key: str,
    *,
    namespace: str | None,
    pod_name: str | None,
    container_name: str | None,
    container_id: str | None,
    pod_uid: str | None,
    first_ms: int,
) -> ContainerLabels:
    """The labels of the container ``key`` (its ``container_key``: the container id, else the
    cgroup path, else the pod uid): a key that is neither the container id nor the pod uid is
    the cgroup path of a container on a host without kubelet."""
    cgroup = key if container_id is None and key != pod_uid else None
    return ContainerLabels(
        key, namespace, pod_name, container_name, container_id, cgroup, int(first_ms)
    )


def full_name(container: ContainerLabels) -> str:
    """``namespace/pod/container`` (``pod/container`` without a namespace), else the container
    id's first 12 digits (what ``docker ps`` and ``crictl ps`` show), else the cgroup path,
    else the key (long hex ids in it cut to 12 digits)."""
    c = container
    if c.pod_name and c.container_name:
        return (
            f"{c.namespace}/{c.pod_name}/{c.container_name}"
            if c.namespace
            else f"{c.pod_name}/{c.container_name}"
        )
    if c.container_id:
        return c.container_id[:12]
    if c.cgroup:
        return c.cgroup
    return _abbreviate(c.key)


@dataclass(frozen=True, slots=True)
class ContainerName:
    """How a container is named on every page: ``name``, short and unique in the dataset (the
    legends, lists and series labels); ``full_name``, ``namespace/pod/container``, the same for
    every life of a restarted container; ``life``, what tells those lives apart (empty for a
    container that lives once, else `` (since 14:02:11)``, with a short id where that is the
    same too)."""

    name: str
    full_name: str
    life: str

    @property
    def long_name(self) -> str:
        """The full name and the life: unique, for tables and hovers that show full names."""
        return self.full_name + self.life


def _since(first_ms: Sequence[int]) -> list[str]:
    """`` (since 14:02:11)`` for each start time (UTC), with the date when they do not all
    fall within a day."""
    pattern = "%H:%M:%S" if max(first_ms) - min(first_ms) < _DAY_MS else "%Y-%m-%d %H:%M:%S"
    return [
        f" (since {datetime.fromtimestamp(ms / 1000, UTC).strftime(pattern)})" for ms in first_ms
    ]


def _short_ids(ids: Sequence[str]) -> list[str]:
    """`` #3f9a2c``: the ids' first :data:`SHORT_ID_DIGITS` characters, more (as many for
    each) while that leaves two the same."""
    digits = SHORT_ID_DIGITS
    while digits < max(len(i) for i in ids) and len({i[:digits] for i in ids}) < len(set(ids)):
        digits += 1
    return [f" #{i[:digits]}" for i in ids]


def _told_apart(members: Sequence[ContainerLabels]) -> list[str]:
    """What follows the shared name of containers that have the same full name (a container
    restarted): the start time of each, and a short id where that is the same too."""
    suffixes = _since([m.first_ms for m in members])
    clashing: dict[str, list[int]] = defaultdict(list)
    for i, suffix in enumerate(suffixes):
        clashing[suffix].append(i)
    for indices in clashing.values():
        if len(indices) > 1:
            ids = [members[i].container_id or members[i].key for i in indices]
            for i, short in zip(indices, _short_ids(ids), strict=True):
                suffixes[i] += short
    return suffixes


def container_names(containers: Sequence[ContainerLabels]) -> list[ContainerName]:
    """The :class:`ContainerName` of each container, in order: the rule every view of the
    dataset (viewer, MCP, report, summary, demo) names containers by.

    The full name is :func:`full_name`. The display name is the shortest of the container
    name, ``pod/container``, the cgroup path's :func:`short_labels` label and the full name
    that no other full name shares. Containers with the same full name (a container restarted
    on Kubernetes keeps namespace, pod and container name under a new container id) are told
    apart after it by their first tick, UTC: ``api (since 14:02:11)`` (with the date when
    they did not all start within a day), and where that is the same too, by the start of
    their container id: ``api (since 14:02:11) #3f9a2c``. A container id is never shown
    whole.
    """
    groups: dict[str, list[int]] = defaultdict(list)
    for index, c in enumerate(containers):
        groups[full_name(c)].append(index)
    paths = [name for name, members in groups.items() if name == containers[members[0]].cgroup]
    short_cgroups = dict(zip(paths, short_labels(paths), strict=True))
    candidates: dict[str, list[str]] = {}
    for name, members in groups.items():
        c = containers[members[0]]
        pod_and_name = (
            f"{c.pod_name}/{c.container_name}" if c.pod_name and c.container_name else None
        )
        options = [n for n in (c.container_name, pod_and_name) if n]
        candidates[name] = [*options, short_cgroups.get(name, name), name]
    names: list[ContainerName | None] = [None] * len(containers)
    for name, members in groups.items():
        options = candidates[name]
        chosen = next(
            (o for o in options if sum(o in other for other in candidates.values()) == 1), name
        )
        if len(members) == 1:
            names[members[0]] = ContainerName(chosen, name, "")
            continue
        ordered = sorted(members, key=lambda i: (containers[i].first_ms, containers[i].key))
        lives = _told_apart([containers[i] for i in ordered])
        for index, life in zip(ordered, lives, strict=True):
            names[index] = ContainerName(chosen + life, name, life)
    return [name for name in names if name is not None]


def _abbreviate(component: str) -> str:
    """A path component with each long hex id (container and session ids) cut to 12 digits."""
    return _LONG_HEX.sub(lambda match: match.group(0)[:12] + "…", component)


def short_labels(paths: Sequence[str]) -> list[str]:
    """Short, distinct legend labels for cgroup paths: the last component of each, with more
    components (from the end) for paths whose labels would be the same, and long hex ids cut
    to 12 digits unless that alone makes two the same. Paths equal as a whole keep equal
    labels. ``/system.slice/containerd.service`` gives ``containerd.service``;
    ``/a.slice/x.scope`` and ``/b.slice/x.scope`` give ``a.slice/x.scope`` and
    ``b.slice/x.scope``."""
    parts = [[part for part in path.split("/") if part] or [path] for path in paths]
    depth = [1] * len(parts)
    cut = [True] * len(parts)

    def label(i: int) -> str:
        tail = parts[i][-depth[i] :]
        return "/".join(_abbreviate(part) if cut[i] else part for part in tail)

    changed = True
    while changed:
        changed = False
        groups: dict[str, list[int]] = defaultdict(list)
        for i in range(len(parts)):
            groups[label(i)].append(i)
        for members in groups.values():
            if len({paths[i] for i in members}) == 1:
                continue
            whole = {"/".join(parts[i][-depth[i] :]) for i in members}
            if len(whole) == len({paths[i] for i in members}):
                # Only the cut ids clash: write them out whole at this depth.
                for i in members:
                    changed |= cut[i]
                    cut[i] = False
                continue
            for i in members:
                if depth[i] < len(parts[i]):
                    depth[i] += 1
                    changed = True
    return [label(i) for i in range(len(parts))]
