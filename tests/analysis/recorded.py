"""Two runs of one node written as ``finemon run`` writes them, through the capture library: the
kernel's figures of a Deployment's container, the phase marks (``finemon.phase``, from the
mark's tick on, and the manifest's ``phases``), and what the watched agent reported through the
intake (``target.*`` delayed writes at their own timestamps, labelled as the intake labels them).

Run A (60 ticks from :data:`RUN_A_START`): container ``shop/web-7d9f8c6b5-x2x9q/app``, id
``a`` * 64, working set 100 MiB, 150 MiB from the tick after its ``load_started`` mark (10.5 s
in). Run B (60 ticks from :data:`RUN_B_START`, an hour later): the same workload under another
pod name and id (``b`` * 64), 140 MiB, 190 MiB after its mark (20.5 s in). Run A's manifest
also names a phase its files do not hold (``manifest_only``).

In run A the agent reports, every 15 s: the container's memory usage (the kernel's usage plus
10 MiB) and CPU (nanocores: the kernel's millicores x 1e6, plus 50 millicores' worth), tagged
``kube_namespace:shop`` and ``canary``; and a node-wide gauge of its own,
``target.agent.queue.items``, one series per ``queue`` tag (forwarder 7, dogstatsd 3).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Final

import capture
from common.contract import LABEL_COLUMNS

MIB: Final = 1024 * 1024
NODE: Final = "node-1"
RUN_A: Final = "3f9a2c" + "0" * 26
RUN_B: Final = "8b1e07" + "0" * 26
RUN_A_START: Final = 1_706_745_600  # 2024-02-01T00:00:00Z
RUN_B_START: Final = RUN_A_START + 3600
TICKS: Final = 60
PHASE: Final = "load_started"
#: The phase's mark, seconds after each run's first tick.
MARK_AFTER: Final = {RUN_A: 10.5, RUN_B: 20.5}
HELD_MIB: Final = {RUN_A: 100, RUN_B: 140}
#: What the load adds from the mark's tick on.
LOAD_MIB: Final = 50
CONTAINER_IDS: Final = {RUN_A: "a" * 64, RUN_B: "b" * 64}
PODS: Final = {RUN_A: "web-7d9f8c6b5-x2x9q", RUN_B: "web-7d9f8c6b5-k8mzp"}
REPORT_EVERY: Final = 15
#: What the agent's memory figure adds to the kernel's usage, and its CPU to the millicores.
REPORTED_EXTRA_BYTES: Final = 10 * MIB
REPORTED_EXTRA_MILLICORES: Final = 50.0
QUEUES: Final = {"forwarder": 7.0, "dogstatsd": 3.0}
USAGE_EXTRA_BYTES: Final = 20 * MIB
MILLICORES: Final = 250.0


def working_set_bytes(run_id: str, tick: int) -> float:
    """The container's working set at ``tick`` of ``run_id``."""
    loaded = tick >= mark_tick(run_id)
    return float((HELD_MIB[run_id] + (LOAD_MIB if loaded else 0)) * MIB)


def mark_tick(run_id: str) -> int:
    """The first tick taken after the mark: the one the ``finemon.phase`` series starts at."""
    return int(MARK_AFTER[run_id]) + 1


def mark_seconds(run_id: str) -> float:
    """The mark's Unix time."""
    start = RUN_A_START if run_id == RUN_A else RUN_B_START
    return start + MARK_AFTER[run_id]


def _record(root: Path, run_id: str, start: int) -> None:
    folder = root / "dt=2024-02-01" / f"identifier={NODE}"
    folder.mkdir(parents=True, exist_ok=True)
    manager = capture.CaptureManager(
        folder / f"finemon-{run_id[:8]}-00001.parquet",
        label_columns=LABEL_COLUMNS,
        global_labels={"node_name": NODE},
        run_id=run_id,
        auto_tick=False,
    )
    manager.start(start)
    kernel = {
        "container_id": CONTAINER_IDS[run_id],
        "namespace": "shop",
        "pod_name": PODS[run_id],
        "container_name": "app",
    }
    try:
        for tick in range(TICKS):
            working_set = working_set_bytes(run_id, tick)
            capture.gauge("container.memory.working_set_bytes", kernel).set(working_set)
            capture.gauge("container.memory.usage_bytes", kernel).set(
                working_set + USAGE_EXTRA_BYTES
            )
            capture.gauge("container.cpu.usage_millicores", kernel).set(MILLICORES)
            if tick >= mark_tick(run_id):
                capture.gauge("finemon.phase", {"phase": PHASE}).set(mark_seconds(run_id))
            manager.take_tick(start + tick)
            if run_id == RUN_A and tick % REPORT_EVERY == 0:
                _report(start + tick, working_set + USAGE_EXTRA_BYTES)
    finally:
        manager.close()


def _report(at: int, usage_bytes: float) -> None:
    """What the intake writes for one payload of the agent (labels as monitor.intake.record
    makes them: tags ``key=value``, a bare tag ``tag.<tag>=true``, ``host``)."""
    container = {
        "container_id": CONTAINER_IDS[RUN_A],
        "kube_namespace": "shop",
        "tag.canary": "true",
        "host": NODE,
    }
    capture.historical.gauge_set(
        "target.container.memory.usage", container, usage_bytes + REPORTED_EXTRA_BYTES, at
    )
    nanocores = (MILLICORES + REPORTED_EXTRA_MILLICORES) * 1e6
    capture.historical.gauge_set("target.container.cpu.usage", container, nanocores, at)
    for queue, items in QUEUES.items():
        capture.historical.gauge_set(
            "target.agent.queue.items", {"queue": queue, "host": NODE}, items, at
        )


def _manifest(root: Path, run_id: str, start: int, phases: list[dict[str, str]]) -> None:
    folder = root / "_sessions"
    folder.mkdir(parents=True, exist_ok=True)
    iso = _iso(start)
    document = {"run_id": run_id, "start_time": iso, "node_name": NODE, "variant": run_id[:6],
                "phases": phases}  # fmt: skip
    (folder / f"{run_id}.json").write_text(json.dumps(document))


def _iso(seconds: float) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(seconds, UTC).isoformat().replace("+00:00", "Z")


def write_two_runs(root: Path) -> Path:
    """Write the dataset (see the module's documentation) under ``root``; returns ``root``."""
    for run_id, start in ((RUN_A, RUN_A_START), (RUN_B, RUN_B_START)):
        _record(root, run_id, start)
        phases = [{"name": PHASE, "time": _iso(mark_seconds(run_id))}]
        if run_id == RUN_A:
            phases.append({"name": "manifest_only", "time": _iso(start + 40.25)})
        _manifest(root, run_id, start, phases)
    return root
