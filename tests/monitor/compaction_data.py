"""Output directories for the compaction tests, recorded by the capture library itself.

:func:`record` runs a :class:`capture.CaptureManager` the way ``finemon run`` does (the same
label columns, global labels, footer metadata and layout: ``dt=/identifier=`` partitions, files
named by their first tick), taking ticks by hand so that a run of hours takes a second.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import capture
from common.contract import LABEL_COLUMNS
from monitor.layout import OutputLayout

#: 2024-01-31 22:00:00 UTC: a run of three hours crosses midnight.
START_SECONDS = 1_706_738_400


def record(
    root: Path,
    *,
    ticks: int,
    ticks_per_file: int,
    containers: int = 3,
    start_seconds: int = START_SECONDS,
    identifier: str = "node-a",
    run_id: str | None = None,
    age_seconds: float = 86400.0,
) -> str:
    """Record one run of ``ticks`` one-second ticks into ``root``, a file every
    ``ticks_per_file``; every published file's mtime is set ``age_seconds`` in the past.
    Returns the run id."""
    run_id = run_id or str(uuid.uuid4())
    earlier = set(root.rglob("*.parquet"))
    layout = OutputLayout(root, identifier, run_id)
    manager = capture.CaptureManager(
        root,
        tick_seconds=1.0,
        window_ticks=2,
        flush_seconds=3600,
        auto_tick=False,
        label_columns=LABEL_COLUMNS,
        global_labels={"node_name": identifier, "cluster_name": "c1"},
        run_id=run_id,
        metadata={"finemon.identifier": identifier, "finemon.node_name": identifier},
    )
    capture.describe("container.memory.usage_bytes", "memory in use", "bytes")
    seq = 1
    manager.start(start_seconds, layout.file_path(start_seconds, seq))
    try:
        cpu = [
            capture.counter(
                "container.cpu.usage_usec",
                {"container_id": f"{i:064x}", "container_name": f"c{i}", "namespace": "ns"},
            )
            for i in range(containers)
        ]
        memory = [
            capture.gauge(
                "container.memory.usage_bytes",
                {"container_id": f"{i:064x}", "container_name": f"c{i}", "namespace": "ns"},
            )
            for i in range(containers)
        ]
        procs = [
            capture.gauge("process.rss_bytes", {"container_id": f"{i:064x}", "pid": str(p)})
            for i in range(containers)
            for p in range(2)
        ]
        host = capture.gauge("node.load1", None)
        for n in range(ticks):
            tick = start_seconds + n
            for i, c in enumerate(cpu):
                c.increment(1000 * (i + 1))
            for i, g in enumerate(memory):
                g.set(float(i * 1000 + n))
            for p, g in enumerate(procs):
                g.set(float(p + n))
            host.set(n / 10)
            manager.take_tick(tick)
            if n and n % ticks_per_file == 0:
                seq += 1
                manager.rotate(lambda first, s=seq: layout.file_path(first, s))
        manager.take_tick(start_seconds + ticks)
        manager.close()
    finally:
        capture.set_recorder(None)
    old = os.path.getmtime(root) - age_seconds
    for path in set(root.rglob("*.parquet")) - earlier:
        os.utime(path, (old, old))
    return run_id
