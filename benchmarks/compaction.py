"""Compaction's throughput and peak memory on a synthetic node-day, in one run.

Writes one node-day (by default 8640 ticks of 10 s, 100 containers with 3 processes each, a
file every 90 s: 960 files) with the capture library's own writer and schema
(``capture.files.write_parquet_atomically``, row groups of 65,536 rows, the daemon's footer
metadata), then runs ``finemon compact --older-than 0s`` on it in a child process and prints,
side by side: files, bytes and rows before and after, seconds, throughput (MB of input per
second), peak RSS of the compaction process, and a one-container, one-metric DuckDB query on
the raw and the compacted files (seconds; with DuckDB installed).

Run under the machine-wide lock: ``flock /tmp/finemon-bench.lock python -m
benchmarks.compaction`` (``--quick``: a quarter of the day). Figures: docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa

from capture.files import write_parquet_atomically
from capture.schema import capture_schema
from common.contract import LABEL_COLUMNS

SCHEMA = capture_schema(LABEL_COLUMNS)
START_MS = 1_706_745_600_000  # 2024-02-01 00:00:00 UTC
RUN_ID = "c3" * 16
GAUGES = (
    "container.cpu.usage_millicores",
    "container.memory.usage_bytes",
    "container.memory.working_set_bytes",
    "container.memory.rss_bytes",
    "container.pids.current",
)
COUNTERS = (
    "container.cpu.usage_usec",
    "container.cpu.throttled_periods",
    "container.io.read_bytes",
    "container.memory.oom_kills",
)
PROCESS_GAUGES = ("process.memory.pss_bytes", "process.cpu.usage_millicores")
ROW_GROUP_ROWS = 65_536
SRC = Path(__file__).resolve().parents[1] / "src"


def _repeat(value: str, n: int) -> pa.Array:
    return pa.DictionaryArray.from_arrays(np.zeros(n, np.int32), [value]).cast(pa.string())


def _labels(n: int, pid: int | None) -> pa.Array:
    if pid is None:
        return pa.MapArray.from_arrays(
            pa.array(np.zeros(n + 1, np.int32)),
            pa.array([], pa.string()),
            pa.array([], pa.string()),
        )
    offsets = pa.array(np.arange(n + 1, dtype=np.int32) * 2)
    order = np.tile(np.arange(2, dtype=np.int32), n)
    keys = pa.DictionaryArray.from_arrays(order, ["pid", "comm"]).cast(pa.string())
    values = pa.DictionaryArray.from_arrays(order, [str(pid), f"worker{pid}"]).cast(pa.string())
    return pa.MapArray.from_arrays(offsets, keys, values)


def write_day(
    root: Path,
    *,
    containers: int,
    ticks: int,
    tick_seconds: float,
    file_seconds: float,
    node: str = "node-1",
    container_ids: Sequence[str] | None = None,
    run_id: str = RUN_ID,
    seed: int = 1,
    summaries: bool = False,
) -> tuple[int, int]:
    """Write the dataset of one node (``root/dt=2024-02-01/identifier=NODE``, rows from
    midnight on, ``node_name`` and the footer's node ``node``; container ids ``container_ids``,
    by default ``1..containers`` in hex); returns (files, rows). With ``summaries`` each footer
    also holds the file's summary (``capture.summary``) as ``finemon run`` writes it, computed
    from the written rows by analysis's own scan (needs duckdb), and the file written again."""
    rng = np.random.default_rng(seed)
    if container_ids is None:
        container_ids = [f"{i:064x}" for i in range(1, containers + 1)]
    ids = pa.array(list(container_ids))
    pods = pa.array([f"app-{i:03d}" for i in range(containers)])
    per_file = max(1, round(file_seconds / tick_seconds))
    tick_ms = int(tick_seconds * 1000)
    folder = root / "dt=2024-02-01" / f"identifier={node}"
    metadata = {
        "capture.run_id": run_id,
        "capture.tick_seconds": repr(tick_seconds),
        "capture.window_ticks": "6",
        "finemon.identifier": node,
        "finemon.node_name": node,
    }
    files = rows = 0
    for seq, first in enumerate(range(0, ticks, per_file), start=1):
        chunk = np.arange(first, min(ticks, first + per_file), dtype=np.int64)
        n = len(chunk) * containers
        c = np.repeat(np.arange(containers, dtype=np.int32), len(chunk))
        f = np.tile(chunk, containers)
        parts = []
        series = [(m, "gauge", None) for m in GAUGES] + [(m, "counter", None) for m in COUNTERS]
        series += [(m, "gauge", pid) for m in PROCESS_GAUGES for pid in (1, 2, 3)]
        for metric, kind, pid in series:
            noise = rng.normal(0, 1, n)
            if kind == "counter":
                value_int = pa.array(f * (1000 * (c % 7 + 1)) + (noise > 1.5).cumsum())
                value_float = pa.nulls(n, pa.float64())
            else:
                value_int = pa.nulls(n, pa.int64())
                value_float = pa.array(
                    np.round((c + 1) * 1e6 * (1 + 0.1 * np.sin(f / 300)) + noise * 1e4)
                )
            parts.append(
                pa.table(
                    {
                        "run_id": _repeat(run_id, n),
                        "time": pa.array(START_MS + f * tick_ms).cast(pa.timestamp("ms", "UTC")),
                        "fetch_index": pa.array(f),
                        "metric_name": _repeat(metric, n),
                        "metric_kind": _repeat(kind, n),
                        "value_int": value_int,
                        "value_float": value_float,
                        "cluster_name": _repeat("bench", n),
                        "node_name": _repeat(node, n),
                        "namespace": _repeat("load", n),
                        "pod_name": pa.DictionaryArray.from_arrays(c, pods).cast(pa.string()),
                        "pod_uid": pa.nulls(n, pa.string()),
                        "container_id": pa.DictionaryArray.from_arrays(c, ids).cast(pa.string()),
                        "container_name": _repeat("main", n),
                        "qos_class": _repeat("Burstable", n),
                        "labels": _labels(n, pid),
                    },
                    schema=SCHEMA,
                )
            )
        table = pa.concat_tables(parts)
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime((START_MS + first * tick_ms) / 1000))
        final = folder / f"finemon-{stamp}-{run_id[:8]}-{seq:05d}.parquet"
        groups = (table.slice(i, ROW_GROUP_ROWS) for i in range(0, table.num_rows, ROW_GROUP_ROWS))
        rows += write_parquet_atomically(final, SCHEMA, groups, 3, metadata)
        if summaries:
            from analysis.query.summaries import scan_summary
            from capture.summary import SUMMARY_METADATA_KEY, dumps

            found = scan_summary(final)
            if found is not None:
                groups = (
                    table.slice(i, ROW_GROUP_ROWS) for i in range(0, table.num_rows, ROW_GROUP_ROWS)
                )
                with_summary = {**metadata, SUMMARY_METADATA_KEY: dumps(found)}
                write_parquet_atomically(final, SCHEMA, groups, 3, with_summary)
        files += 1
    return files, rows


def _size(root: Path) -> tuple[int, int]:
    files = list(root.rglob("*.parquet"))
    return len(files), sum(p.stat().st_size for p in files)


def _query_seconds(root: Path) -> float | None:
    try:
        import duckdb
    except ImportError:
        return None
    sql = (
        f"SELECT count(*), avg(value_float) FROM read_parquet('{root}/**/*.parquet') "
        f"WHERE metric_name = 'container.memory.usage_bytes' AND container_id = '{7:064x}'"
    )
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        duckdb.sql(sql).fetchall()
        best = min(best, time.perf_counter() - started)
    return best


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--containers", type=int, default=100)
    parser.add_argument("--ticks", type=int, default=8640)
    parser.add_argument("--tick-seconds", type=float, default=10.0)
    parser.add_argument("--quick", action="store_true", help="a quarter of the day")
    parser.add_argument("--keep", metavar="DIR", help="write into DIR and keep it")
    args = parser.parse_args()
    ticks = args.ticks // 4 if args.quick else args.ticks
    root = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="finemon-compact-bench-"))
    try:
        started = time.perf_counter()
        _files, rows = write_day(
            root,
            containers=args.containers,
            ticks=ticks,
            tick_seconds=args.tick_seconds,
            file_seconds=90.0,
        )
        written = time.perf_counter() - started
        raw_files, raw_bytes = _size(root)
        raw_query = _query_seconds(root)
        started = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-m", "finemon", "compact", str(root), "--older-than", "0s"],
            env={"PYTHONPATH": str(SRC), "PATH": "/usr/bin:/bin"},
            capture_output=True,
            text=True,
            check=False,
        )
        seconds = time.perf_counter() - started
        if done.returncode != 0:
            print(done.stderr, file=sys.stderr)
            return 1
        peak_rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
        out_files, out_bytes = _size(root)
        compact_query = _query_seconds(root)
        result = {
            "containers": args.containers,
            "ticks": ticks,
            "rows": rows,
            "write_seconds": round(written, 1),
            "files": [raw_files, out_files],
            "bytes": [raw_bytes, out_bytes],
            "compaction_seconds": round(seconds, 1),
            "throughput_mb_per_s": round(raw_bytes / 1e6 / seconds, 2),
            "rows_per_s": round(rows / seconds),
            "peak_rss_mib": round(peak_rss / 2**20),
            "query_seconds": [raw_query, compact_query],
        }
        print(f"{'':28}{'raw':>14}{'compacted':>14}{'ratio':>8}")
        print(f"{'files':28}{raw_files:>14}{out_files:>14}{raw_files / out_files:>8.0f}")
        print(f"{'bytes':28}{raw_bytes:>14}{out_bytes:>14}{raw_bytes / out_bytes:>8.2f}")
        if raw_query is not None and compact_query is not None:
            ratio = raw_query / compact_query
            label = "1 container, 1 metric (s)"
            print(f"{label:28}{raw_query:>14.3f}{compact_query:>14.3f}{ratio:>8.1f}")
        print(
            f"\n{rows} rows ({args.containers} containers, {ticks} ticks) written in "
            f"{written:.0f} s; compacted in {seconds:.1f} s: "
            f"{result['throughput_mb_per_s']} MB/s of input, {result['rows_per_s']} rows/s, "
            f"peak RSS {result['peak_rss_mib']} MiB"
        )
        print(json.dumps(result))
        return 0
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
