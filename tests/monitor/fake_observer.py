"""A stand-in for ``observers.node.NodeObserver`` that the real ``finemon`` process loads with
``finemon run --observer fake_observer:make`` (tests/monitor on PYTHONPATH).

Each ``sample()`` emits, through the capture facade, one gauge and one counter for each of three
fake containers, with the label columns finemon's files have.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import capture

CONTAINERS = 3
MANY = 10000


@dataclass(frozen=True, slots=True)
class FakeReport:
    containers: int
    skipped: Mapping[str, int] = field(default_factory=dict)
    read_errors: int = 0
    errors_by_reason: Mapping[str, int] = field(default_factory=dict)
    duration_seconds: float = 0.0


class FakeObserver:
    """Emits ``fake.cpu_millicores`` (gauge) and ``fake.samples`` (counter) per container."""

    def __init__(self, config: Any, delay_every: int = 0, delay_seconds: float = 0.0) -> None:
        self.config = config
        self.samples = 0
        self.delay_every = delay_every
        self.delay_seconds = delay_seconds
        self.closed = False

    def sample(self) -> FakeReport:
        started = time.monotonic()
        self.samples += 1
        for i in range(CONTAINERS):
            labels = {
                "namespace": "default",
                "pod_name": f"pod-{i}",
                "pod_uid": f"uid-{i}",
                "container_name": "app",
                "container_id": f"cid-{i}",
                "qos_class": "burstable",
                "cgroup": f"/kubepods/pod-{i}",
            }
            capture.gauge("fake.cpu_millicores", labels).set(100.0 * i + self.samples % 7)
            capture.counter("fake.samples", labels).increment()
        if self.delay_every and self.samples % self.delay_every == 0:
            time.sleep(self.delay_seconds)
        return FakeReport(
            containers=CONTAINERS,
            skipped={"no_cgroup": 1},
            duration_seconds=time.monotonic() - started,
        )

    def describe(self) -> dict[str, object]:
        return {"cgroup_version": "fake", "mode": "fake", "node_name": self.config.node_name}

    def close(self) -> None:
        self.closed = True


def make(config: Any) -> FakeObserver:
    return FakeObserver(config)


def make_slow(config: Any) -> FakeObserver:
    """Every 5th sample overruns by 2.5 ticks of a 0.1 s interval."""
    return FakeObserver(config, delay_every=5, delay_seconds=0.25)


def make_no_cgroup(config: Any) -> FakeObserver:
    from observers.hierarchy import NoCgroupMountError

    raise NoCgroupMountError("no cgroup mount found in /proc/self/mountinfo")


def make_broken(config: Any) -> FakeObserver:
    """An observer whose sample() raises: finemon must keep recording and count it."""

    class Broken(FakeObserver):
        def sample(self) -> FakeReport:
            raise RuntimeError("observer bug")

    return Broken(config)


class ManyObserver(FakeObserver):
    """Thousands of series, so that draining the window takes a while."""

    def sample(self) -> FakeReport:
        self.samples += 1
        for i in range(MANY):
            capture.gauge("fake.many", {"pod_name": f"pod-{i}"}).set(float(self.samples + i))
        return FakeReport(containers=MANY)


def make_many(config: Any) -> FakeObserver:
    return ManyObserver(config)


class StallingObserver(FakeObserver):
    """Hangs in ``sample()`` while the file ``stall`` exists in the log root (a stuck sampler:
    no tick is taken, the endpoint's thread still answers)."""

    def sample(self) -> FakeReport:
        stall = self.config.log_root / "stall"
        while stall.exists():
            time.sleep(0.01)
        return super().sample()


def make_stalling(config: Any) -> FakeObserver:
    return StallingObserver(config)
