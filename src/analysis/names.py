"""Short names for long ones: legend labels of host cgroup paths. Pure functions, no duckdb."""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Sequence

_LONG_HEX = re.compile(r"[0-9a-f]{16,}")


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
