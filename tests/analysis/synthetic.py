"""Synthetic finemon output directories in the exact schema and layout of ``finemon run``.

:func:`write_small` builds a small dataset whose every number is known (the tests assert them);
:func:`write_large` a day of data for many containers, generated column-wise with pyarrow.
Both lay files out as ``DIR/dt=YYYY-MM-DD/identifier=ID/finemon-...parquet`` and add the session
manifests (``_session.json``, ``_sessions/RUN.json``) that readers must skip.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from capture.schema import capture_schema
from monitor.contract import LABEL_COLUMNS

MIB = 1024 * 1024
SCHEMA = capture_schema(LABEL_COLUMNS)

#: 2024-01-31 23:58:00 UTC: run A crosses midnight, so it has two ``dt`` partitions.
RUN_A_START_MS = 1_706_745_480_000
RUN_A_TICKS = 240
RUN_A = "a1" * 16
#: Run B: finemon restarted on the same node at 00:05:00, one minute long.
RUN_B_START_MS = RUN_A_START_MS + 420_000
RUN_B_TICKS = 60
RUN_B = "b2" * 16
NODE = "node-1"

WEB_ID = "a" * 64
DB_ID = "b" * 64
BATCH_ID = "c" * 64
#: Tick of run A at which the db container's OOM kill is counted.
OOM_TICK = 200
#: Ticks of run A during which the batch container exists (started late, stopped early).
BATCH_TICKS = range(60, 180)
#: Tick of run A at which batch's CPU counter restarts from a lower value (a reset).
RESET_TICK = 120
#: Ticks of run A before kubelet's names of the db container are known.
DB_NAMELESS_TICKS = 10


@dataclass(frozen=True, slots=True)
class Container:
    """The standard labels of a synthetic container."""

    container_id: str
    namespace: str
    pod_name: str
    container_name: str
    qos_class: str = "Burstable"
    pod_uid: str = "00000000-0000-0000-0000-000000000000"

    def columns(self, named: bool = True) -> dict[str, str | None]:
        return {
            "node_name": NODE,
            "namespace": self.namespace if named else None,
            "pod_name": self.pod_name if named else None,
            "pod_uid": self.pod_uid,
            "container_id": self.container_id,
            "container_name": self.container_name if named else None,
            "qos_class": self.qos_class,
        }


WEB = Container(WEB_ID, "shop", "web-7d9", "nginx")
DB = Container(DB_ID, "shop", "db-0", "postgres", qos_class="Guaranteed")
BATCH = Container(BATCH_ID, "jobs", "batch-x", "job", qos_class="BestEffort")


#: With ``host=True`` the same containers as a host that is not a Kubernetes node records them:
#: no container_id nor kubelet names, the cgroup path (relative, as finemon writes it) in the
#: ``cgroup`` label.
HOST_CGROUPS = {
    WEB_ID: "system.slice/nginx.service",
    DB_ID: "system.slice/postgresql.service",
    BATCH_ID: "user.slice/user-0.slice/session-4.scope",
}


@dataclass
class _Rows:
    """Rows of one file, column by column."""

    columns: dict[str, list[object]] = field(
        default_factory=lambda: {name: [] for name in SCHEMA.names}
    )
    host: bool = False

    def add(
        self,
        run_id: str,
        time_ms: int,
        fetch_index: int,
        metric: str,
        value: float | int,
        labels: dict[str, str | None],
        extra: dict[str, str] | None = None,
    ) -> None:
        counter = isinstance(value, int)
        container_id = labels.get("container_id")
        if self.host and container_id:
            extra = {"cgroup": HOST_CGROUPS[container_id], **(extra or {})}
            labels = {"node_name": labels.get("node_name")}
        row: dict[str, object] = {
            "run_id": run_id,
            "time": time_ms,
            "fetch_index": fetch_index,
            "metric_name": metric,
            "metric_kind": "counter" if counter else "gauge",
            "value_int": value if counter else None,
            "value_float": None if counter else float(value),
            "labels": sorted((extra or {}).items()),
        }
        row.update({name: labels.get(name) for name in LABEL_COLUMNS})
        for name, values in self.columns.items():
            values.append(row[name])

    def table(self) -> pa.Table:
        return pa.table(
            {
                name: pa.array(values, SCHEMA.field(name).type)
                for name, values in self.columns.items()
            },
            schema=SCHEMA,
        )


def _file_name(first_ms: int, run_id: str, seq: int) -> str:
    stamp = datetime.fromtimestamp(first_ms / 1000, UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"finemon-{stamp}-{run_id[:8]}-{seq:05d}.parquet"


def write_file(
    root: Path,
    table: pa.Table,
    run_id: str,
    seq: int,
    identifier: str = NODE,
    tick_seconds: float = 1.0,
    compression: str = "zstd",
) -> Path:
    """Write ``table`` where ``finemon run`` would put it: partition of its first tick's date."""
    first_ms = int(pc.min(table["time"].cast(pa.int64())).as_py())
    day = datetime.fromtimestamp(first_ms / 1000, UTC).strftime("%Y-%m-%d")
    path = root / f"dt={day}" / f"identifier={identifier}" / _file_name(first_ms, run_id, seq)
    path.parent.mkdir(parents=True, exist_ok=True)
    metadata = {
        "capture.run_id": run_id,
        "capture.tick_seconds": repr(tick_seconds),
        "finemon.node_name": NODE,
    }
    pq.write_table(table.replace_schema_metadata(metadata), path, compression=compression)
    return path


def write_manifests(root: Path, runs: list[str]) -> None:
    """The session manifests finemon writes beside the data (readers must skip them)."""
    (root / "_sessions").mkdir(parents=True, exist_ok=True)
    for run_id in runs:
        manifest = json.dumps({"run_id": run_id, "node_name": NODE})
        (root / "_sessions" / f"{run_id}.json").write_text(manifest)
        (root / "_session.json").write_text(manifest)


def _container_rows(rows: _Rows, run_id: str, start_ms: int, tick: int, fetch_index: int) -> None:
    at = start_ms + fetch_index * 1000
    i = fetch_index  # ticks since the run's first tick
    web = WEB.columns()
    # web: 500 millicores, throttled in 2 of its 10 periods a tick for 20 ms, steady memory.
    rows.add(run_id, at, i, "container.cpu.usage_usec", 1_000_000 + 500_000 * i, web)
    if i > 0:
        rows.add(run_id, at, i, "container.cpu.usage_millicores", 500.0, web)
    rows.add(run_id, at, i, "container.cpu.limit_millicores", 1000.0, web)
    rows.add(run_id, at, i, "container.cpu.periods", 10 * i, web)
    rows.add(run_id, at, i, "container.cpu.throttled_periods", 2 * i, web)
    rows.add(run_id, at, i, "container.cpu.throttled_usec", 20_000 * i, web)
    rows.add(run_id, at, i, "container.memory.working_set_bytes", 100.0 * MIB, web)
    rows.add(run_id, at, i, "container.memory.usage_bytes", 120.0 * MIB, web)
    rows.add(run_id, at, i, "container.memory.limit_bytes", 256.0 * MIB, web)
    rows.add(run_id, at, i, "container.memory.pss_bytes", 90.0 * MIB, web)
    rows.add(run_id, at, i, "container.memory.oom_kills", 0, web)
    rows.add(run_id, at, i, "container.cpu.psi.some.avg10_percent", 5.0, web)
    rows.add(run_id, at, i, "container.memory.psi.some.avg10_percent", 0.0, web)
    rows.add(run_id, at, i, "container.io.psi.some.avg10_percent", 1.0, web)
    for pid, comm, pss in (("101", "nginx", 60.0), ("102", "worker", 30.0)):
        extra = {"pid": pid, "comm": comm}
        rows.add(run_id, at, i, "process.memory.pss_bytes", pss * MIB, web, extra)
        rows.add(run_id, at, i, "process.cpu.time_usec", 250_000 * i, web, extra)
    if run_id != RUN_A:
        return
    # db: names known from tick 10; memory grows 1 MiB a tick until the OOM kill at tick 200,
    # then restarts at 50 MiB; 100 millicores.
    db = DB.columns(named=tick >= DB_NAMELESS_TICKS)
    wset = 100 + tick if tick < OOM_TICK else 50 + (tick - OOM_TICK)
    rows.add(run_id, at, i, "container.cpu.usage_usec", 100_000 * i, db)
    if i > 0:
        rows.add(run_id, at, i, "container.cpu.usage_millicores", 100.0, db)
    rows.add(run_id, at, i, "container.memory.working_set_bytes", float(wset * MIB), db)
    rows.add(run_id, at, i, "container.memory.usage_bytes", float((wset + 10) * MIB), db)
    rows.add(run_id, at, i, "container.memory.limit_bytes", 300.0 * MIB, db)
    rows.add(run_id, at, i, "container.memory.pss_bytes", float(wset * MIB), db)
    rows.add(run_id, at, i, "container.memory.oom_kills", 1 if tick >= OOM_TICK else 0, db)
    rows.add(run_id, at, i, "container.memory.psi.some.avg10_percent", 20.0, db)
    rows.add(
        run_id, at, i, "process.memory.pss_bytes", float(wset * MIB), db,
        {"pid": "201", "comm": "postgres"},
    )  # fmt: skip
    # batch: lives for ticks 60-179, 1000 millicores, its CPU counter resets at tick 120.
    if tick in BATCH_TICKS:
        batch = BATCH.columns()
        usage = 1_000_000 * (tick - 60) if tick < RESET_TICK else 1_000_000 * (tick - RESET_TICK)
        rows.add(run_id, at, i, "container.cpu.usage_usec", usage, batch)
        if tick > BATCH_TICKS[0]:
            rows.add(run_id, at, i, "container.cpu.usage_millicores", 1000.0, batch)
        rows.add(run_id, at, i, "container.memory.working_set_bytes", 10.0 * MIB, batch)
        rows.add(run_id, at, i, "container.memory.oom_kills", 0, batch)
        rows.add(
            run_id, at, i, "process.memory.pss_bytes", 8.0 * MIB, batch,
            {"pid": "301", "comm": "job"},
        )  # fmt: skip


def _node_rows(rows: _Rows, run_id: str, start_ms: int, fetch_index: int) -> None:
    at = start_ms + fetch_index * 1000
    node = {"node_name": NODE}
    rows.add(run_id, at, fetch_index, "finemon.containers", 3.0, node)
    rows.add(run_id, at, fetch_index, "finemon.read_errors", 1, node, {"reason": "vanished"})


def write_small(root: Path, host: bool = False) -> Path:
    """The small dataset (see the module's constants); returns ``root``. With ``host`` its
    containers are labelled as on a host that is not a Kubernetes node (:data:`HOST_CGROUPS`).

    Run A (240 ticks from 2024-01-31 23:58:00 UTC, two files, two ``dt`` partitions): web,
    db (nameless for 10 ticks, OOM-killed at tick 200) and batch (ticks 60-179, counter reset at
    120). Run B (60 ticks from 00:05:00): web only.
    """
    for run_id, start_ms, ticks, per_file in (
        (RUN_A, RUN_A_START_MS, RUN_A_TICKS, 120),
        (RUN_B, RUN_B_START_MS, RUN_B_TICKS, 60),
    ):
        for seq, first in enumerate(range(0, ticks, per_file), start=1):
            rows = _Rows(host=host)
            for tick in range(first, min(ticks, first + per_file)):
                _container_rows(rows, run_id, start_ms, tick, tick)
                _node_rows(rows, run_id, start_ms, tick)
            write_file(root, rows.table(), run_id, seq)
    write_manifests(root, [RUN_A, RUN_B])
    return root


# ------------------------------------------------------------------------------------------
# A container restarted: the same namespace, pod and container name under new container ids.

#: The api container's three lives (two restarts, the first one an OOM kill), in ticks of one
#: run from :data:`RUN_A_START_MS`: each a new container id, the same shop/api-6c8/api.
API_LIVES = (
    Container("9a" * 32, "shop", "api-6c8", "api"),
    Container("9b" * 32, "shop", "api-6c8", "api"),
    Container("9c" * 32, "shop", "api-6c8", "api"),
)
API_LIFE_TICKS = (range(0, 80), range(80, 160), range(160, 240))
#: Containers that run beside it the whole time (six containers with the api's lives), each
#: called "server": their pods tell them apart (long names, as a Deployment's pods have).
RESTARTS_NEIGHBOURS = (
    Container("1e" * 32, "shop", "checkout-5d4f8b7c9-x2x7q", "server"),
    Container("2e" * 32, "shop", "frontend-7f9c6d5b8-kq2lp", "server"),
    Container("3e" * 32, "payments", "ledger-writer-6b7d9c4f5-p8m2z", "server"),
)
RESTARTS_RUN = "d5" * 16


def write_restarts(root: Path) -> Path:
    """One run of 240 ticks from :data:`RUN_A_START_MS`: the api container's three lives
    (:data:`API_LIVES`, :data:`API_LIFE_TICKS`; its working set grows 1 MiB a tick from 50 MiB
    in each life, an OOM kill ends the first) and three neighbours at a steady 10, 20 and
    30 MiB. Returns ``root``."""
    rows = _Rows()
    for tick in range(240):
        at = RUN_A_START_MS + tick * 1000
        for life, ticks in zip(API_LIVES, API_LIFE_TICKS, strict=True):
            if tick in ticks:
                wset = (50 + tick - ticks.start) * MIB
                rows.add(RESTARTS_RUN, at, tick, "container.memory.working_set_bytes",
                         float(wset), life.columns())  # fmt: skip
                oom = 1 if life is API_LIVES[0] and tick == ticks[-1] else 0
                rows.add(RESTARTS_RUN, at, tick, "container.memory.oom_kills", oom,
                         life.columns())  # fmt: skip
        for n, neighbour in enumerate(RESTARTS_NEIGHBOURS, start=1):
            rows.add(RESTARTS_RUN, at, tick, "container.memory.working_set_bytes",
                     10.0 * n * MIB, neighbour.columns())  # fmt: skip
            rows.add(RESTARTS_RUN, at, tick, "container.memory.oom_kills", 0,
                     neighbour.columns())  # fmt: skip
    write_file(root, rows.table(), RESTARTS_RUN, 1)
    write_manifests(root, [RESTARTS_RUN])
    return root


# ------------------------------------------------------------------------------------------
# The large dataset: column-wise, one file per hour of data.

#: The container gauges the report reads: metric -> (kind, base value, per-container step).
LARGE_GAUGES = {
    "container.cpu.usage_millicores": (150.0, 7.0),
    "container.memory.working_set_bytes": (200.0 * MIB, 3.0 * MIB),
    "container.memory.usage_bytes": (260.0 * MIB, 3.0 * MIB),
    "container.cpu.psi.some.avg10_percent": (2.0, 0.05),
    "container.memory.psi.some.avg10_percent": (1.0, 0.02),
}
LARGE_COUNTERS = ("container.cpu.throttled_usec", "container.memory.oom_kills")
LARGE_PROCESSES = (("1", "init"), ("7", "server"), ("9", "sidecar"))


def _chunks(ticks: int, per_file: int) -> Iterator[range]:
    for first in range(0, ticks, per_file):
        yield range(first, min(ticks, first + per_file))


def _large_values(
    metric: str, pid: str | None, c: np.ndarray, f: np.ndarray, ticks: int
) -> tuple[pa.Array, pa.Array]:
    """(value_int, value_float) of ``metric`` for containers ``c`` at fetch indexes ``f``."""
    n = len(c)
    wave = np.sin(f / 200.0)
    if metric.endswith("oom_kills"):
        ints = ((c == 0) & (f >= ticks // 2)).astype(np.int64)
        return pa.array(ints), pa.nulls(n, pa.float64())
    if metric in LARGE_COUNTERS:
        return pa.array(f * (1000 * (c % 5))), pa.nulls(n, pa.float64())
    if pid is not None:
        values = (20.0 + 5 * int(pid) + 0.5 * c) * MIB * (1 + 0.1 * wave)
    else:
        base, step = LARGE_GAUGES[metric]
        values = base + step * c + base * 0.2 * wave
    return pa.nulls(n, pa.int64()), pa.array(values)


def _repeat(value: str, n: int) -> pa.Array:
    return pa.DictionaryArray.from_arrays(np.zeros(n, np.int32), [value]).cast(pa.string())


def _labels(n: int, labels: dict[str, str]) -> pa.Array:
    """``n`` copies of the map ``labels``."""
    width = len(labels)
    offsets = pa.array(np.arange(n + 1, dtype=np.int32) * width)
    order = np.tile(np.arange(width, dtype=np.int32), n)
    keys = pa.DictionaryArray.from_arrays(order, list(labels)).cast(pa.string())
    items = pa.DictionaryArray.from_arrays(order, list(labels.values())).cast(pa.string())
    return pa.MapArray.from_arrays(offsets, keys, items)


def write_large(
    root: Path,
    *,
    containers: int = 100,
    ticks: int = 8640,
    tick_seconds: float = 10.0,
    start_ms: int = RUN_A_START_MS,
    ticks_per_file: int = 720,
) -> int:
    """A day (8640 ticks of 10 s by default) of the metrics the report reads for ``containers``
    containers with three processes each; container 0 is OOM-killed at mid-run. Returns the
    number of rows written."""
    run_id = "c3" * 16
    tick_ms = int(tick_seconds * 1000)
    ids = pa.array([f"{i:064x}" for i in range(1, containers + 1)])
    pods = pa.array([f"app-{i:03d}" for i in range(containers)])
    series: list[tuple[str, str, str | None, str | None]] = [
        (name, "gauge", None, None) for name in LARGE_GAUGES
    ]
    series += [(name, "counter", None, None) for name in LARGE_COUNTERS]
    series += [("process.memory.pss_bytes", "gauge", pid, comm) for pid, comm in LARGE_PROCESSES]
    rows = 0
    for seq, chunk in enumerate(_chunks(ticks, ticks_per_file), start=1):
        n = len(chunk) * containers
        c = np.repeat(np.arange(containers, dtype=np.int32), len(chunk))
        f = np.tile(np.arange(chunk.start, chunk.stop, dtype=np.int64), containers)
        parts = []
        for metric, kind, pid, comm in series:
            value_int, value_float = _large_values(metric, pid, c, f, ticks)
            labels = _labels(n, {"pid": pid, "comm": comm} if pid and comm else {})
            columns = {
                "run_id": _repeat(run_id, n),
                "time": pa.array(start_ms + f * tick_ms).cast(pa.timestamp("ms", "UTC")),
                "fetch_index": pa.array(f),
                "metric_name": _repeat(metric, n),
                "metric_kind": _repeat(kind, n),
                "value_int": value_int,
                "value_float": value_float,
                "cluster_name": pa.nulls(n, pa.string()),
                "node_name": _repeat(NODE, n),
                "namespace": _repeat("load", n),
                "pod_name": pa.DictionaryArray.from_arrays(c, pods).cast(pa.string()),
                "pod_uid": pa.nulls(n, pa.string()),
                "container_id": pa.DictionaryArray.from_arrays(c, ids).cast(pa.string()),
                "container_name": _repeat("main", n),
                "qos_class": _repeat("Burstable", n),
                "labels": labels,
            }
            parts.append(pa.table(columns, schema=SCHEMA))
            rows += n
        write_file(
            root, pa.concat_tables(parts), run_id, seq, tick_seconds=tick_seconds, compression="lz4"
        )
    write_manifests(root, [run_id])
    return rows
