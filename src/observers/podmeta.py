"""Pod metadata (namespace, pod and container names) without asking the API server.

Kubelet writes two things on every node that name pods and containers:

- ``/var/log/containers/<pod>_<namespace>_<container>-<64-hex container id>.log``, one symlink
  per container (created when the container starts);
- ``/var/log/pods/<namespace>_<pod>_<pod uid>/<container>/``, one directory per pod.

Pod, namespace and container names are DNS labels or subdomains, so they never contain ``_``;
pod names may contain ``-`` and ``.``, hence the container id is taken as the 64 hex digits
after the last ``-``.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from observers.readers.errors import ACCESS_DENIED, VANISHED, oserror_outcome

__all__ = [
    "ContainerMeta",
    "PodMetadataCache",
    "parse_container_log_name",
    "parse_pod_log_dir",
]

_log = logging.getLogger(__name__)

_HEX64 = re.compile(r"[0-9a-f]{64}")
# A directory whose mtime is this recent may still change within the same timestamp tick
# (the kernel's coarse clock); it is listed again on the next refresh ("racy git").
_RACY_WINDOW_NS = 2_000_000_000


@dataclass(frozen=True, slots=True)
class ContainerMeta:
    """What kubelet's log files say about a container; ``None`` where they say nothing."""

    namespace: str | None = None
    pod_name: str | None = None
    container_name: str | None = None


_UNKNOWN = ContainerMeta()


def parse_container_log_name(name: str) -> tuple[str, ContainerMeta] | None:
    """Split ``<pod>_<namespace>_<container>-<id>.log`` into the id and the names.

    Returns ``None`` for a name not in that form.
    """
    if not name.endswith(".log"):
        return None
    stem = name[: -len(".log")]
    head, dash, container_id = stem.rpartition("-")
    if not dash or _HEX64.fullmatch(container_id) is None:
        return None
    parts = head.split("_")
    if len(parts) != 3 or not all(parts):
        return None
    pod_name, namespace, container_name = parts
    return container_id, ContainerMeta(namespace, pod_name, container_name)


def parse_pod_log_dir(name: str) -> tuple[str, ContainerMeta] | None:
    """Split ``<namespace>_<pod>_<uid>`` into the pod UID and the names (no container name).

    Returns ``None`` for a name not in that form.
    """
    parts = name.split("_")
    if len(parts) != 3 or not all(parts):
        return None
    namespace, pod_name, pod_uid = parts
    return pod_uid, ContainerMeta(namespace, pod_name, None)


# (st_dev, st_ino, st_mtime_ns) of a directory, or None when it does not exist.
_DirStamp = tuple[int, int, int] | None


def _stamp(path: Path) -> _DirStamp:
    try:
        st = os.stat(path)
    except OSError as e:
        if oserror_outcome(e) == VANISHED:
            return None
        raise
    return (st.st_dev, st.st_ino, st.st_mtime_ns)


def _names(path: Path) -> list[str]:
    """Entry names of a directory; empty when it is absent or unreadable (logged)."""
    try:
        return os.listdir(path)
    except OSError as e:
        outcome = oserror_outcome(e)
        if outcome == VANISHED:
            return []
        if outcome != ACCESS_DENIED:
            raise
        _log.warning("pod metadata unavailable: permission denied listing %s", path)
        return []


class PodMetadataCache:
    """Container id / pod UID -> names, from ``<log_root>/containers`` and ``<log_root>/pods``.

    :meth:`refresh` stats the two directories and lists one again only when its mtime (or
    identity) changed, so calling it every tick costs two ``stat`` calls. A missing directory
    is not an error: lookups just return ``None`` fields.
    """

    def __init__(self, log_root: str | os.PathLike[str] = "/var/log") -> None:
        root = Path(log_root)
        self._containers = _IndexedDir(root / "containers", parse_container_log_name)
        self._pods = _IndexedDir(root / "pods", parse_pod_log_dir)
        self._refreshed = False

    def refresh(self) -> bool:
        """Re-list whichever directory changed since the last call; True if any name changed."""
        self._refreshed = True
        now_ns = time.time_ns()
        containers_changed = self._containers.refresh(now_ns)
        pods_changed = self._pods.refresh(now_ns)
        return containers_changed or pods_changed

    def lookup(self, container_id: str | None, pod_uid: str | None) -> ContainerMeta:
        """Names for a container, from its log link, else its pod's names by ``pod_uid``.

        Does not touch the disk except for the first call, which refreshes.
        """
        if not self._refreshed:
            self.refresh()
        if container_id is not None:
            meta = self._containers.index.get(container_id)
            if meta is not None:
                return meta
        if pod_uid is not None:
            return self._pods.index.get(pod_uid, _UNKNOWN)
        return _UNKNOWN


class _IndexedDir:
    """One directory's entries parsed into key -> names, re-listed when its stamp changes."""

    def __init__(
        self, path: Path, parse: Callable[[str], tuple[str, ContainerMeta] | None]
    ) -> None:
        self.path = path
        self.parse = parse
        self.index: Mapping[str, ContainerMeta] = {}
        self.stamp: _DirStamp = None
        # Listed mtime too recent to be trusted (or never listed): list again next time.
        self.racy = True

    def refresh(self, now_ns: int) -> bool:
        stamp = _stamp(self.path)
        if stamp == self.stamp and not self.racy:
            return False
        self.stamp = stamp
        self.racy = stamp is not None and now_ns - stamp[2] < _RACY_WINDOW_NS
        index: dict[str, ContainerMeta] = {}
        if stamp is not None:
            for name in _names(self.path):
                parsed = self.parse(name)
                if parsed is not None:
                    index[parsed[0]] = parsed[1]
        changed = index != self.index
        self.index = index
        return changed
