"""Small datasets written by the capture library exactly as finemon writes its files."""

from __future__ import annotations

from pathlib import Path

import capture
from common.contract import LABEL_COLUMNS

CPU = "container.cpu.usage_usec"
MEMORY = "container.memory.usage_bytes"
#: 2026-12-07T00:00:00Z, in seconds.
DAY_START = 1_796_601_600


def write_file(
    path: Path, first_tick: int, ticks: int, container: str, node: str = "node-1", step: int = 1000
) -> Path:
    """One file at ``path``: a gauge (1.5e6 + seconds since :data:`DAY_START`) and a counter
    (``step`` a tick) of ``container`` for ``ticks`` ticks from ``first_tick`` (seconds since
    1970), with ``node`` as the node_name."""
    manager = capture.CaptureManager(
        path, auto_tick=False, label_columns=LABEL_COLUMNS, global_labels={"node_name": node}
    )
    manager.start(first_tick=first_tick)
    for tick in range(first_tick, first_tick + ticks):
        labels = {"container_id": container}
        capture.gauge(MEMORY, labels).set(1.5e6 + tick - DAY_START)
        capture.counter(CPU, labels).increment(step)
        manager.take_tick(tick)
    manager.close()
    return path


def record(root: Path) -> None:
    """Two files in finemon's partitions and columns: a gauge and a counter of one container
    over ten ticks each, c0 on node-1 and c1 on node-2 (the counter steps 1000 and 2000)."""
    for n, node in enumerate(("node-1", "node-2")):
        path = root / "dt=2026-12-07" / f"identifier={node}" / f"f{n}.parquet"
        write_file(path, DAY_START + 100 * n, 10, f"c{n}", node, step=1000 * (n + 1))
