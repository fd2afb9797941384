"""Which container of one run is which of another: pod names change from run to run, so
containers are matched by namespace, workload and container name.

The workload is the pod name without what Kubernetes' controllers add to it:

- a Deployment's pod is ``<deployment>-<pod-template-hash>-<5 random characters>``
  (``web-7d9f8c6b5-x2x9q``), a ReplicaSet's, DaemonSet's or Job's ``<owner>-<5 random>``
  (``web-x2x9q``), a CronJob's Job ``<cronjob>-<scheduled minute>-<5 random>``
  (``backup-28391640-x7k2p``): each gives ``web`` or ``backup``;
- a StatefulSet's pod keeps its ordinal (``db-0``: the ordinal is which replica it is, and it
  is the same in every run).

Kubernetes draws the random suffix, and encodes the pod template's hash, from the alphabet
``bcdfghjklmnpqrstvwxz2456789`` (``k8s.io/apimachinery/pkg/util/rand``: no vowels, no 0, 1 or
3), so a name part that is a word (``redis``, ``api``) is never taken for one. Pure functions,
no duckdb.
"""

from __future__ import annotations

import re
from typing import Final

#: The characters of Kubernetes' random name suffixes and encoded hashes.
KUBE_ALPHABET: Final = "bcdfghjklmnpqrstvwxz2456789"
_SUFFIX = re.compile(f"^[{KUBE_ALPHABET}]{{5}}$")
# The pod-template-hash: a uint32's decimal digits, each mapped into the alphabet (1 to 10
# characters; under 6 is rare enough, and a 5-character one is a suffix's shape anyway).
_TEMPLATE_HASH = re.compile(f"^[{KUBE_ALPHABET}]{{6,10}}$")
# A CronJob's Job: the scheduled time in minutes since the epoch.
_SCHEDULED_MINUTE = re.compile(r"^[0-9]{8,}$")


def workload_name(pod_name: str) -> str:
    """The workload of pod ``pod_name``: the name without a controller's random suffix, and
    without the pod-template hash (Deployment) or scheduled minute (CronJob) before it; a
    StatefulSet's ``db-0`` and a pod named by hand stay as they are."""
    parts = pod_name.split("-")
    if len(parts) < 2 or not _SUFFIX.match(parts[-1]):
        return pod_name
    parts.pop()
    if len(parts) >= 2 and (_TEMPLATE_HASH.match(parts[-1]) or _SCHEDULED_MINUTE.match(parts[-1])):
        parts.pop()
    return "-".join(parts)


def container_identity(
    namespace: str | None,
    pod_name: str | None,
    container_name: str | None,
    cgroup: str | None,
    container_key: str,
) -> str:
    """What a container is across runs: ``namespace/workload/container`` for a Kubernetes
    container (``-`` for a missing namespace), the cgroup path for a host cgroup, else its key
    (a container whose names were never found: it matches only itself)."""
    if pod_name and container_name:
        return f"{namespace or '-'}/{workload_name(pod_name)}/{container_name}"
    if cgroup:
        return cgroup
    return container_key
