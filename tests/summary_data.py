"""Output directories for the summary and index tests, recorded by the capture library itself.

:func:`record` runs a :class:`capture.CaptureManager` the way ``finemon run`` does (the label
columns, global labels, summary settings and layout of the daemon), ticks taken by hand, with
what a summary must get right: containers keyed by id and one by its cgroup only, a container
whose pod names appear late (its series renamed mid-run), a counter reset, processes (several
series per container and metric) and a node-wide series.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import capture
from common.contract import (
    CONTAINER_KEY_LABELS,
    LABEL_COLUMNS,
    SUMMARY_AGGREGATE_METRICS,
    SUMMARY_SERIES_METRICS,
    SUMMARY_SKETCH_METRICS,
)
from monitor.layout import OutputLayout

#: 2024-01-31 23:00:00 UTC: a run of two hours crosses midnight.
START_SECONDS = 1_706_742_000
CPU = "container.cpu.usage_millicores"
CPU_USEC = "container.cpu.usage_usec"
WORKING_SET = "container.memory.working_set_bytes"
OOM = "container.memory.oom_kills"
PSS = "process.memory.pss_bytes"


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
    """Record one run of ``ticks`` ticks of 1 s into ``root``, a file every ``ticks_per_file``;
    every published file's mtime is ``age_seconds`` in the past. Returns the run id."""
    run_id = run_id or uuid.uuid4().hex
    earlier = set(root.rglob("*.parquet"))
    layout = OutputLayout(root, identifier, run_id)
    manager = capture.CaptureManager(
        root,
        tick_seconds=1.0,
        window_ticks=2,
        flush_seconds=3600,
        row_group_rows=64,
        auto_tick=False,
        label_columns=LABEL_COLUMNS,
        global_labels={"node_name": identifier, "cluster_name": "c1"},
        run_id=run_id,
        summary_key_labels=CONTAINER_KEY_LABELS,
        summary_sketch_metrics=SUMMARY_SKETCH_METRICS,
        summary_series_metrics=SUMMARY_SERIES_METRICS,
        summary_aggregate_metrics=SUMMARY_AGGREGATE_METRICS,
        metadata={"finemon.identifier": identifier, "finemon.node_name": identifier},
    )
    seq = 1
    manager.start(start_seconds, layout.file_path(start_seconds, seq))
    late = f"{containers:064x}"  # its pod names appear at a third of the run
    try:
        for n in range(ticks):
            tick = start_seconds + n
            for i in range(containers + 1):
                labels = {"container_id": f"{i:064x}", "namespace": "ns", "pod_name": f"p{i}",
                          "container_name": f"c{i}"}  # fmt: skip
                if i == containers:
                    labels = {"container_id": late}
                    if n == ticks // 3:  # the names appear: the old series end, as finemon's
                        capture.gauge(CPU, labels).remove()
                        capture.gauge(WORKING_SET, labels).remove()
                        capture.counter(CPU_USEC, labels).remove()
                        capture.counter(OOM, labels).remove()
                    if n >= ticks // 3:
                        labels |= {"namespace": "ns", "pod_name": "late", "container_name": "l"}
                capture.gauge(CPU, labels).set(float((i + 1) * 100 + (n * 7919 % 97)))
                capture.gauge(WORKING_SET, labels).set(float(i * 1000 + n))
                # A reset at half the run in the first container.
                usec = (n if i or n < ticks // 2 else n - ticks // 2) * 1000 * (i + 1)
                capture.counter(CPU_USEC, labels).absolute(usec)
                capture.counter(OOM, labels).absolute(n // 50)
                for pid in range(2):
                    own = {"container_id": labels["container_id"], "pid": str(100 * i + pid),
                           "comm": f"w{pid}"}  # fmt: skip
                    capture.gauge(PSS, own).set(float(1e6 * (i + 1) + pid * 1e5 + n))
            host = {"cgroup": "system.slice/docker-abc.scope"}
            capture.gauge(CPU, host).set(float(n % 13))
            capture.gauge(WORKING_SET, host).set(float(1e7 + n))
            capture.counter(CPU_USEC, host).absolute(n * 10)
            capture.gauge("node.load1", None).set(float(n % 5))
            manager.take_tick(tick)
            if (n + 1) % ticks_per_file == 0 and n + 1 < ticks:
                seq += 1
                manager.rotate(lambda first, s=seq: layout.file_path(first, s))
    finally:
        manager.close()
        capture.set_recorder(None)
    past = os.stat(root).st_mtime - age_seconds
    for path in set(root.rglob("*.parquet")) - earlier:
        os.utime(path, (past, past))
    return run_id
