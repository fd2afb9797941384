"""Containers' display names (restarts told apart without their 64-hex ids) and legend labels
of host cgroup paths: short, distinct, and Kubernetes names left alone."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from analysis.names import ContainerLabels, container_names, short_labels
from analysis.report import legend_labels


def test_the_last_component_when_it_is_distinct() -> None:
    assert short_labels(
        [
            "system.slice/containerd.service",
            "user.slice/user-0.slice/session-1.scope",
            "system.slice/docker.service",
        ]
    ) == ["containerd.service", "session-1.scope", "docker.service"]


def test_colliding_tails_grow_until_they_differ() -> None:
    paths = [
        "/kubepods.slice/a.slice/app.scope",
        "/kubepods.slice/b.slice/app.scope",
        "/system.slice/cron.service",
        "/x/y/b.slice/app.scope",
    ]
    # a.slice/app.scope is already distinct; b.slice/app.scope collides once more.
    assert short_labels(paths) == [
        "a.slice/app.scope",
        "kubepods.slice/b.slice/app.scope",
        "cron.service",
        "y/b.slice/app.scope",
    ]
    labels = short_labels(paths)
    assert len(set(labels)) == len(paths)
    for path, label in zip(paths, labels, strict=True):
        assert path.endswith(label)


def test_long_hex_ids_are_cut_to_twelve_digits_unless_that_makes_a_clash() -> None:
    docker = "system.slice/docker-" + "0123456789ab" + "c" * 52 + ".scope"
    other = "system.slice/docker-" + "0123456789ab" + "d" * 52 + ".scope"
    assert short_labels([docker]) == ["docker-0123456789ab….scope"]
    # Same first 12 digits: written out whole rather than two equal labels.
    cut = len("system.slice/")
    assert short_labels([docker, other]) == [docker[cut:], other[cut:]]
    assert short_labels(["process_api/" + "be129b4754b0a1f32f7b0d9f7a8a13b6"]) == ["be129b4754b0…"]


def test_equal_paths_keep_equal_labels_and_odd_paths_survive() -> None:
    assert short_labels(["a/b", "a/b", "/", "c"]) == ["b", "b", "/", "c"]
    assert short_labels([]) == []


def test_kubernetes_names_are_left_alone() -> None:
    containers = [
        {"name": "shop/web-7d9/nginx", "cgroup": None},
        {"name": "system.slice/cron.service", "cgroup": "system.slice/cron.service"},
        {"name": "jobs/batch-x/job"},
        {"name": "user.slice/cron.service", "cgroup": "user.slice/cron.service"},
    ]
    assert legend_labels(containers) == [
        "shop/web-7d9/nginx",
        "system.slice/cron.service",
        "jobs/batch-x/job",
        "user.slice/cron.service",
    ]
    containers[3] = {"name": "user.slice/sshd.service", "cgroup": "user.slice/sshd.service"}
    assert legend_labels(containers)[1::2] == ["cron.service", "sshd.service"]


def _k8s(container_id: str, first: str, pod: str = "api-6c8", name: str = "api") -> ContainerLabels:
    first_ms = round(datetime.fromisoformat(first).replace(tzinfo=UTC).timestamp() * 1000)
    return ContainerLabels(container_id, "shop", pod, name, container_id, None, first_ms)


def test_a_restarted_container_is_told_apart_by_its_start_time() -> None:
    lives = [
        _k8s("9c" * 32, "2024-02-01 00:00:40"),
        _k8s("9a" * 32, "2024-01-31 23:58:00"),
        _k8s("9b" * 32, "2024-01-31 23:59:20"),
    ]
    other = _k8s("1e" * 32, "2024-01-31 23:58:00", pod="checkout-1", name="checkout")
    names = container_names([*lives, other])
    assert names == {
        "9a" * 32: ("api (since 23:58:00)", "shop/api-6c8/api"),
        "9b" * 32: ("api (since 23:59:20)", "shop/api-6c8/api"),
        "9c" * 32: ("api (since 00:00:40)", "shop/api-6c8/api"),
        "1e" * 32: ("checkout", "shop/checkout-1/checkout"),
    }
    # Another pod's "api": the pod tells the groups apart, the start time the lives.
    elsewhere = _k8s("5f" * 32, "2024-01-31 23:58:00", pod="api-77f")
    names = container_names([*lives, elsewhere])
    assert names["9b" * 32][0] == "api-6c8/api (since 23:59:20)"
    assert names["5f" * 32][0] == "api-77f/api"


def test_restarts_days_apart_show_the_date_and_equal_times_a_short_id() -> None:
    names = container_names(
        [_k8s("9a" * 32, "2024-01-30 08:00:00"), _k8s("9b" * 32, "2024-02-01 08:00:00")]
    )
    assert [n for n, _ in names.values()] == [
        "api (since 2024-01-30 08:00:00)",
        "api (since 2024-02-01 08:00:00)",
    ]
    # Recorded from the same tick (two clusters' db-0, or a restart within a second): the ids'
    # first six digits, more (as many for each) while two are the same.
    same = [
        _k8s("3f9a2c" + "0" * 58, "2024-02-01 08:00:00"),
        _k8s("3f9a2c" + "1" * 58, "2024-02-01 08:00:00"),
        _k8s("77" * 32, "2024-02-01 08:00:00"),
        _k8s("88" * 32, "2024-02-01 09:30:00"),
    ]
    assert sorted(n for n, _ in container_names(same).values()) == [
        "api (since 08:00:00) #3f9a2c0",
        "api (since 08:00:00) #3f9a2c1",
        "api (since 08:00:00) #7777777",
        "api (since 09:30:00)",
    ]


def test_no_display_name_holds_a_whole_container_id() -> None:
    lives = [_k8s(f"{i:x}" * 64, "2024-02-01 08:00:00") for i in range(10)]
    nameless = ContainerLabels("ab" * 32, None, None, None, "ab" * 32, None, 0)
    names = container_names([*lives, nameless])
    assert len({n for n, _ in names.values()}) == 11
    assert names["ab" * 32] == ("abababababab", "abababababab")
    assert not any(re.search("[0-9a-f]{13,}", n) for n, _ in names.values())


def test_host_cgroups_keep_their_shortest_distinct_tails() -> None:
    def host(path: str) -> ContainerLabels:
        return ContainerLabels(path, None, None, None, None, path, 0)

    names = container_names(
        [host("system.slice/nginx.service"), host("a.slice/x.scope"), host("b.slice/x.scope")]
    )
    assert {k: n for k, (n, _) in names.items()} == {
        "system.slice/nginx.service": "nginx.service",
        "a.slice/x.scope": "a.slice/x.scope",
        "b.slice/x.scope": "b.slice/x.scope",
    }
