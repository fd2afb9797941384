"""A synthetic dataset with planted patterns whose answers the explorer tests know.

One run of :data:`TICKS` ticks at 1 Hz from :data:`START_MS` on node ``node-1``, written in the
exact schema and layout of ``finemon run`` (through :mod:`tests.analysis.synthetic`):

``wave``
    CPU ``container.cpu.usage_millicores`` = 500 + 200 sin(2 pi t / :data:`PERIOD_SECONDS`) plus
    noise; its ``container.cpu.usage_usec`` counter grows by the same amount; throttled in 3 of
    its 10 CFS periods each tick, 5 ms a tick.
``step``
    Working set 100 MiB, then 300 MiB from tick :data:`STEP_TICK` (plus noise).
``late``
    Exists only from tick :data:`LATE_TICK` (started mid-range; it runs to the end).
``oomy``
    Its ``container.memory.oom_kills`` counter goes from 0 to 2 at tick :data:`OOM_TICK`; two
    processes with their PSS.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from tests.analysis.synthetic import MIB, Container, _Rows, write_file, write_manifests

START_MS = 1_717_200_000_000  # 2024-06-01 00:00:00 UTC
TICKS = 1800
PERIOD_SECONDS = 120.0
STEP_TICK = 900
LATE_TICK = 600
OOM_TICK = 1200
RUN = "d4" * 16

WAVE = Container("1" * 64, "lab", "wave-0", "wave", qos_class="Burstable")
STEP = Container("2" * 64, "lab", "step-0", "step", qos_class="Guaranteed")
LATE = Container("3" * 64, "other", "late-0", "late", qos_class="BestEffort")
OOMY = Container("4" * 64, "lab", "oomy-0", "oomy", qos_class="Burstable")


def write_patterns(root: Path) -> Path:
    """Write the dataset (two files of 900 ticks) under ``root``; returns ``root``."""
    noise = np.random.default_rng(13).normal(0.0, 1.0, size=(4, TICKS))
    usage_usec = {c.container_id: 0 for c in (WAVE, STEP, LATE, OOMY)}
    for seq, first in enumerate(range(0, TICKS, 900), start=1):
        rows = _Rows()
        for tick in range(first, first + 900):
            at = START_MS + tick * 1000
            for index, container in enumerate((WAVE, STEP, LATE, OOMY)):
                if container is LATE and tick < LATE_TICK:
                    continue
                labels = container.columns()
                millicores = 100.0 + 5 * noise[index, tick]
                if container is WAVE:
                    millicores = (
                        500.0 + 200.0 * math.sin(2 * math.pi * tick / PERIOD_SECONDS)
                        + 10 * noise[index, tick]
                    )  # fmt: skip
                usage_usec[container.container_id] += int(millicores * 1000)
                wset = 50.0 * MIB + 0.5 * MIB * noise[index, tick]
                if container is STEP:
                    wset = (300.0 if tick >= STEP_TICK else 100.0) * MIB + MIB * noise[1, tick]
                rows.add(RUN, at, tick, "container.cpu.usage_usec",
                         usage_usec[container.container_id], labels)  # fmt: skip
                rows.add(RUN, at, tick, "container.cpu.usage_millicores", millicores, labels)
                rows.add(RUN, at, tick, "container.memory.working_set_bytes", wset, labels)
                rows.add(RUN, at, tick, "container.memory.limit_bytes", 512.0 * MIB, labels)
                oom = 2 if container is OOMY and tick >= OOM_TICK else 0
                rows.add(RUN, at, tick, "container.memory.oom_kills", oom, labels)
                if container is WAVE:
                    rows.add(RUN, at, tick, "container.cpu.periods", 10 * tick, labels)
                    rows.add(RUN, at, tick, "container.cpu.throttled_periods", 3 * tick, labels)
                    rows.add(RUN, at, tick, "container.cpu.throttled_usec", 5000 * tick, labels)
                if container is OOMY:
                    for pid, comm, pss in (("41", "<img src=x onerror=alert(1)>", 30.0),
                                           ("42", "helper", 10.0)):  # fmt: skip
                        extra = {"pid": pid, "comm": comm}
                        rows.add(RUN, at, tick, "process.memory.pss_bytes", pss * MIB, labels,
                                 extra)  # fmt: skip
            rows.add(RUN, at, tick, "finemon.containers", 4.0, {"node_name": "node-1"})
        write_file(root, rows.table(), RUN, seq)
    write_manifests(root, [RUN])
    return root
