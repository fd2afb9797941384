"""Containers' display names (restarts told apart without their 64-hex ids) and legend labels
of host cgroup paths: short, distinct, and Kubernetes names left alone."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from analysis.query.names import ContainerLabels, ContainerName, container_names, short_labels


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


def _by_key(containers: list[ContainerLabels]) -> dict[str, ContainerName]:
    return {c.key: n for c, n in zip(containers, container_names(containers), strict=True)}


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
    names = _by_key([*lives, other])
    assert names == {
        "9a" * 32: ContainerName("api (since 23:58:00)", "shop/api-6c8/api", " (since 23:58:00)"),
        "9b" * 32: ContainerName("api (since 23:59:20)", "shop/api-6c8/api", " (since 23:59:20)"),
        "9c" * 32: ContainerName("api (since 00:00:40)", "shop/api-6c8/api", " (since 00:00:40)"),
        "1e" * 32: ContainerName("checkout", "shop/checkout-1/checkout", ""),
    }
    assert names["9b" * 32].long_name == "shop/api-6c8/api (since 23:59:20)"
    assert names["1e" * 32].long_name == "shop/checkout-1/checkout"
    # Another pod's "api": the pod tells the groups apart, the start time the lives.
    elsewhere = _k8s("5f" * 32, "2024-01-31 23:58:00", pod="api-77f")
    names = _by_key([*lives, elsewhere])
    assert names["9b" * 32].name == "api-6c8/api (since 23:59:20)"
    assert names["5f" * 32].name == "api-77f/api"


def test_restarts_days_apart_show_the_date_and_equal_times_a_short_id() -> None:
    names = _by_key(
        [_k8s("9a" * 32, "2024-01-30 08:00:00"), _k8s("9b" * 32, "2024-02-01 08:00:00")]
    )
    assert [n.name for n in names.values()] == [
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
    assert sorted(n.name for n in _by_key(same).values()) == [
        "api (since 08:00:00) #3f9a2c0",
        "api (since 08:00:00) #3f9a2c1",
        "api (since 08:00:00) #7777777",
        "api (since 09:30:00)",
    ]


def test_no_display_name_holds_a_whole_container_id() -> None:
    lives = [_k8s(f"{i:x}" * 64, "2024-02-01 08:00:00") for i in range(10)]
    nameless = ContainerLabels("ab" * 32, None, None, None, "ab" * 32, None, 0)
    names = _by_key([*lives, nameless])
    assert len({n.name for n in names.values()}) == 11
    assert names["ab" * 32] == ContainerName("abababababab", "abababababab", "")
    assert not any(re.search("[0-9a-f]{13,}", n.name) for n in names.values())
    assert not any(re.search("[0-9a-f]{13,}", n.long_name) for n in names.values())


def test_host_cgroups_keep_their_shortest_distinct_tails() -> None:
    def host(path: str) -> ContainerLabels:
        return ContainerLabels(path, None, None, None, None, path, 0)

    names = _by_key(
        [host("system.slice/nginx.service"), host("a.slice/x.scope"), host("b.slice/x.scope")]
    )
    assert {k: n.name for k, n in names.items()} == {
        "system.slice/nginx.service": "nginx.service",
        "a.slice/x.scope": "a.slice/x.scope",
        "b.slice/x.scope": "b.slice/x.scope",
    }


def test_a_host_container_is_named_by_its_short_id_and_a_cgroup_by_its_tail() -> None:
    docker = "system.slice/docker-" + "0123456789ab" + "c" * 52 + ".scope"
    session = "user.slice/session-" + "be129b4754b0a1f32f7b0d9f7a8a13b6" + ".scope"
    containers = [
        ContainerLabels("0123456789ab" + "c" * 52, None, None, None, "0123456789ab" + "c" * 52,
                        docker, 0),
        ContainerLabels(session, None, None, None, None, session, 0),
    ]  # fmt: skip
    assert [n.name for n in container_names(containers)] == [
        "0123456789ab",
        "session-be129b4754b0….scope",
    ]
