"""Legend labels of host cgroup paths: short, distinct, and Kubernetes names left alone."""

from __future__ import annotations

from analysis.names import short_labels
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
