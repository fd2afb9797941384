"""Matching containers across runs: the workload of a pod name, a container's identity."""

from __future__ import annotations

import random

import pytest

from analysis.experiments.workload import KUBE_ALPHABET, container_identity, workload_name


@pytest.mark.parametrize(
    ("pod", "workload"),
    [
        ("web-7d9f8c6b5-x2x9q", "web"),  # Deployment: template hash and suffix
        ("web-x2x9q", "web"),  # DaemonSet, ReplicaSet, Job: the suffix
        ("datadog-agent-bz9fq", "datadog-agent"),
        ("cluster-agent-5f6d7c8b9d-4kq2w", "cluster-agent"),
        ("backup-28391640-x7k2p", "backup"),  # CronJob: scheduled minute and suffix
        ("db-0", "db-0"),  # StatefulSet: the ordinal stays
        ("kafka-broker-12", "kafka-broker-12"),
        ("redis", "redis"),  # a pod named by hand
        ("my-redis", "my-redis"),  # a word has vowels: never a suffix
        ("api-cache", "api-cache"),
        ("web-13579", "web-13579"),  # 1 and 3 are not in the alphabet
        ("x2x9q", "x2x9q"),  # nothing is left of a name that is only a suffix
        ("web-7d9f-x2x9q", "web-7d9f"),  # 4 characters are not a template hash
    ],
)
def test_workload_drops_what_controllers_add(pod: str, workload: str) -> None:
    assert workload_name(pod) == workload


def test_every_generated_deployment_pod_name_gives_its_deployment() -> None:
    # Names as kube-controller-manager makes them: the hash of a uint32 (its decimal digits
    # mapped into the alphabet) and 5 random characters of the alphabet.
    rng = random.Random(7)
    for _ in range(500):
        digits = str(rng.randrange(100_000, 2**32))
        template_hash = "".join(KUBE_ALPHABET[ord(d) % len(KUBE_ALPHABET)] for d in digits)
        suffix = "".join(rng.choice(KUBE_ALPHABET) for _ in range(5))
        assert workload_name(f"front-end-{template_hash}-{suffix}") == "front-end"
        assert workload_name(f"node-exporter-{suffix}") == "node-exporter"


def test_identity_is_namespace_workload_container_or_the_cgroup_path() -> None:
    assert (
        container_identity("shop", "web-7d9f8c6b5-x2x9q", "nginx", None, "id-1") == "shop/web/nginx"
    )
    assert container_identity("shop", "web-7d9f8c6b5-bq2cd", "nginx", None, "id-2") == (
        "shop/web/nginx"
    )
    assert container_identity("shop", "db-0", "postgres", None, "id-3") == "shop/db-0/postgres"
    assert container_identity(None, "web-x2x9q", "nginx", None, "id-4") == "-/web/nginx"
    host = "/system.slice/containerd.service"
    assert container_identity(None, None, None, host, host) == host
    assert container_identity(None, None, None, None, "abc123") == "abc123"
