"""Tests for observers.podmeta: names from kubelet's /var/log/containers and /var/log/pods."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from layouts import container_id, pod_uid

from observers import podmeta
from observers.podmeta import (
    ContainerMeta,
    PodMetadataCache,
    parse_container_log_name,
    parse_pod_log_dir,
)

COREDNS_ID = container_id("coredns")
COREDNS_UID = pod_uid("coredns")
APP_ID = container_id("app")
APP_UID = pod_uid("app")
# An hour ago: well outside the window in which a directory mtime is not trusted.
OLD_NS = (int(time.time()) - 3600) * 1_000_000_000


def _link(log_root: Path, pod: str, namespace: str, container: str, cid: str, uid: str) -> None:
    """What kubelet does when a container starts: the pod log dir and the container link."""
    container_dir = log_root / "pods" / f"{namespace}_{pod}_{uid}" / container
    container_dir.mkdir(parents=True, exist_ok=True)
    (container_dir / "0.log").write_text("")
    link = log_root / "containers" / f"{pod}_{namespace}_{container}-{cid}.log"
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(container_dir / "0.log")


def _age(log_root: Path) -> None:
    for name in ("containers", "pods"):
        directory = log_root / name
        if directory.exists():
            os.utime(directory, ns=(OLD_NS, OLD_NS))


@pytest.fixture
def log_root(tmp_path: Path) -> Path:
    root = tmp_path / "var" / "log"
    _link(root, "coredns-5d78c9869d-x2x7k", "kube-system", "coredns", COREDNS_ID, COREDNS_UID)
    _link(root, "web.v2-7f9c-abcde", "team-a", "app", APP_ID, APP_UID)
    # A pod whose container has no log link yet.
    (root / "pods" / f"team-a_late-pod-0_{pod_uid('late')}" / "app").mkdir(parents=True)
    _age(root)
    return root


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        (
            f"coredns-5d78c9869d-x2x7k_kube-system_coredns-{COREDNS_ID}.log",
            (COREDNS_ID, ContainerMeta("kube-system", "coredns-5d78c9869d-x2x7k", "coredns")),
        ),
        (
            f"web.v2-7f9c-abcde_team-a_istio-proxy-{APP_ID}.log",
            (APP_ID, ContainerMeta("team-a", "web.v2-7f9c-abcde", "istio-proxy")),
        ),
        (f"a_b_c-{APP_ID[:-1]}.log", None),  # id too short
        (f"a_b_c-{APP_ID}", None),  # no .log
        (f"a_b-{APP_ID}.log", None),  # two fields
        (f"a_b_c_d-{APP_ID}.log", None),  # four fields
        (f"a__c-{APP_ID}.log", None),  # empty namespace
        ("kube-apiserver.log", None),
    ],
)
def test_parse_container_log_name(name: str, expected: tuple[str, ContainerMeta] | None) -> None:
    assert parse_container_log_name(name) == expected


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        (
            f"kube-system_coredns-5d78c9869d-x2x7k_{COREDNS_UID}",
            (COREDNS_UID, ContainerMeta("kube-system", "coredns-5d78c9869d-x2x7k", None)),
        ),
        (
            "kube-system_kube-apiserver-node.example.com_5c0d3e6fc9ae77b0ff1b7a8bb4e1ad0f",
            (
                "5c0d3e6fc9ae77b0ff1b7a8bb4e1ad0f",
                ContainerMeta("kube-system", "kube-apiserver-node.example.com", None),
            ),
        ),
        ("only_two", None),
        ("a_b_c_d", None),
    ],
)
def test_parse_pod_log_dir(name: str, expected: tuple[str, ContainerMeta] | None) -> None:
    assert parse_pod_log_dir(name) == expected


def test_lookup_by_container_id(log_root: Path) -> None:
    cache = PodMetadataCache(log_root)
    assert cache.lookup(COREDNS_ID, COREDNS_UID) == ContainerMeta(
        "kube-system", "coredns-5d78c9869d-x2x7k", "coredns"
    )
    assert cache.lookup(APP_ID, None) == ContainerMeta("team-a", "web.v2-7f9c-abcde", "app")


def test_container_without_log_link_gets_pod_names(log_root: Path) -> None:
    cache = PodMetadataCache(log_root)
    meta = cache.lookup(container_id("not-started"), pod_uid("late"))
    assert meta == ContainerMeta("team-a", "late-pod-0", None)


def test_unknown_container_and_pod(log_root: Path) -> None:
    cache = PodMetadataCache(log_root)
    assert cache.lookup(container_id("nope"), pod_uid("nope")) == ContainerMeta()
    assert cache.lookup(None, None) == ContainerMeta()


def test_missing_log_directories(tmp_path: Path) -> None:
    cache = PodMetadataCache(tmp_path / "nothing-here")
    assert cache.lookup(COREDNS_ID, COREDNS_UID) == ContainerMeta(None, None, None)
    assert cache.refresh() is False


def test_refresh_lists_only_when_mtime_changes(
    log_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    listed: list[str] = []
    real_listdir = os.listdir

    def counting_listdir(path: Path) -> list[str]:
        listed.append(Path(path).name)
        return real_listdir(path)

    monkeypatch.setattr(podmeta.os, "listdir", counting_listdir)
    cache = PodMetadataCache(log_root)
    assert cache.refresh() is True
    assert sorted(listed) == ["containers", "pods"]
    listed.clear()
    assert cache.refresh() is False
    assert listed == []

    new_id, new_uid = container_id("new"), pod_uid("new")
    _link(log_root, "new-pod", "team-b", "worker", new_id, new_uid)
    _age(log_root)
    os.utime(log_root / "containers", ns=(OLD_NS + 10**9, OLD_NS + 10**9))
    assert cache.refresh() is True
    assert listed == ["containers"]  # pods/ kept its (aged) mtime
    assert cache.lookup(new_id, new_uid) == ContainerMeta("team-b", "new-pod", "worker")


def test_recent_mtime_is_listed_again(log_root: Path) -> None:
    # A directory changed within the same timestamp tick as the listing keeps its mtime, so a
    # fresh mtime is not trusted: the directory is listed again until the mtime is old enough.
    containers = log_root / "containers"
    os.utime(containers)  # now
    listed_mtime_ns = os.stat(containers).st_mtime_ns
    cache = PodMetadataCache(log_root)
    cache.refresh()
    late_id = container_id("late")
    (containers / f"late-pod-0_team-a_app-{late_id}.log").symlink_to(log_root / "pods")
    os.utime(containers, ns=(listed_mtime_ns, listed_mtime_ns))  # same tick: same mtime
    assert cache.refresh() is True
    assert cache.lookup(late_id, None).container_name == "app"


def test_removed_container_disappears(log_root: Path) -> None:
    cache = PodMetadataCache(log_root)
    assert cache.lookup(APP_ID, None).container_name == "app"
    (log_root / "containers" / f"web.v2-7f9c-abcde_team-a_app-{APP_ID}.log").unlink()
    os.utime(log_root / "containers", ns=(OLD_NS + 10**9, OLD_NS + 10**9))
    cache.refresh()
    assert cache.lookup(APP_ID, APP_UID) == ContainerMeta("team-a", "web.v2-7f9c-abcde", None)


def test_log_root_appearing_later(tmp_path: Path) -> None:
    root = tmp_path / "log"
    cache = PodMetadataCache(root)
    assert cache.lookup(APP_ID, APP_UID) == ContainerMeta()
    _link(root, "web", "default", "app", APP_ID, APP_UID)
    assert cache.refresh() is True
    assert cache.lookup(APP_ID, APP_UID) == ContainerMeta("default", "web", "app")
