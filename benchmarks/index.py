"""Starting from the index, and reading only what a question needs: a week of 100 containers.

Writes one node-week (by default 7 days of 10 s ticks, 100 containers with 3 processes each, a
file every 90 s: 6720 files) with the capture library's own table builder, summary and writer
(``capture.tables.points_to_tables``, ``capture.summary.SummaryBuilder``,
``capture.files.write_parquet_atomically``, finemon's summary settings), then prints side by
side, with the index and with a scan of the rows (``use_index=False``, what finemon did before):

- the daemon's cost of keeping the index (``--index daemon``, the default): after each file,
  what ``finemon run`` does after each rotation (:func:`common.dataset_index.update_partition`),
  timed: its milliseconds at the day's first and last files;
- ``view``/``mcp`` and ``summary`` on the index as the daemon leaves it, cold (the dataset's
  files and index evicted from the page cache, no reader has opened it) and warm;
- the readers' own build of the index (every footer read: what the first reader of a day paid
  before the daemon kept it) and a warm open;
- ``finemon view``/``mcp`` start: an :class:`~analysis.query.explorer.Explorer` opened and its
  range, runs, containers and metrics listed;
- ``finemon summary``;
- a one-container, one-hour series: files opened, bytes read (DuckDB's profiler), seconds.

10 s ticks keep the week's size small (133 M rows); the summary's size per file does not depend
on the tick (one cell per container and metric). Run under the machine-wide lock:
``flock /tmp/finemon-bench.lock python -m benchmarks.index`` (``--days 1`` for a quick run;
``--keep DIR`` to reuse a dataset; ``--index readers`` to write the files without the index, as
before). Figures: docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from capture.files import write_parquet_atomically
from capture.summary import SummaryBuilder
from capture.tables import PointColumns, RowLayout, points_to_tables
from common.contract import (
    CONTAINER_KEY_LABELS,
    LABEL_COLUMNS,
    SUMMARY_AGGREGATE_METRICS,
    SUMMARY_SERIES_METRICS,
    SUMMARY_SKETCH_METRICS,
)
from common.dataset_index import update_partition
from monitor.daemon import INDEX_REBUILD_AT_MOST_FILES

START_MS = 1_706_745_600_000  # 2024-02-01 00:00:00 UTC
RUN_ID = "b7" * 16
GAUGES = (
    *SUMMARY_SKETCH_METRICS,
    "container.memory.usage_bytes",
    "container.memory.rss_bytes",
    "container.pids.current",
    "container.memory.psi.some.avg10_percent",
    "container.cpu.limit_millicores",
)
COUNTERS = (
    "container.cpu.usage_usec",
    "container.cpu.periods",
    "container.cpu.throttled_periods",
    "container.cpu.throttled_usec",
    "container.memory.oom_kills",
    "container.io.read_bytes",
    "container.io.write_bytes",
    "container.network.rx_bytes",
)
PROCESS_GAUGES = ("process.memory.pss_bytes", "process.cpu.usage_millicores")


@dataclass(frozen=True, slots=True)
class _Series:
    kind: str
    name: str
    labels: tuple[tuple[str, str], ...]


def _series(containers: int) -> dict[int, _Series]:
    found: dict[int, _Series] = {}
    for c in range(containers):
        own = (
            ("container_id", f"{c + 1:064x}"),
            ("container_name", "main"),
            ("namespace", "load"),
            ("pod_name", f"app-{c:03d}"),
            ("qos_class", "Burstable"),
        )
        for name in GAUGES:
            found[len(found)] = _Series("gauge", name, own)
        for name in COUNTERS:
            found[len(found)] = _Series("counter", name, own)
        for p in range(3):
            process = (own[0], ("comm", f"worker{p}"), ("pid", str(100 * c + p)))
            for name in PROCESS_GAUGES:
                found[len(found)] = _Series("gauge", name, process)
    return found


def write_week(root: Path, *, days: float, containers: int, tick_seconds: float,
               file_seconds: float, index: bool = True,
               ) -> tuple[int, int, list[tuple[int, float]]]:  # fmt: skip
    """Write the dataset; returns (files, rows, and with ``index`` the daemon's index update
    after each file: (the file's number in its day, seconds))."""
    updates: list[tuple[int, float]] = []
    in_day: dict[str, int] = {}
    series = _series(containers)
    n_series = len(series)
    gauge = np.array([series[i].kind == "gauge" for i in range(n_series)])
    scale = np.array([(i // (n_series // containers) + 1) * 1e5 for i in range(n_series)])
    ticks = int(days * 86400 / tick_seconds)
    per_file = max(1, round(file_seconds / tick_seconds))
    first_tick = START_MS // int(tick_seconds * 1000)
    layout = RowLayout(RUN_ID, tick_seconds, first_tick, LABEL_COLUMNS,
                       (("cluster_name", "bench"), ("node_name", "node-1")))  # fmt: skip
    rng = np.random.default_rng(7)
    metadata = {
        "capture.run_id": RUN_ID,
        "capture.tick_seconds": repr(tick_seconds),
        "finemon.identifier": "node-1",
        "finemon.node_name": "node-1",
    }
    files = rows = 0
    for seq, start in enumerate(range(0, ticks, per_file), start=1):
        chunk = np.arange(start, min(ticks, start + per_file), dtype=np.int64) + first_tick
        sid = np.repeat(np.arange(n_series, dtype=np.int64), len(chunk))
        tick = np.tile(chunk, n_series)
        is_gauge = gauge[sid]
        wave = 1 + 0.2 * np.sin((tick - first_tick) / 360)
        value_float = np.round(scale[sid] * wave + rng.normal(0, 1e3, len(sid)))
        value_int = (tick - first_tick) * (sid % 7 + 1) * 1000
        points = PointColumns(
            pa.array(sid),
            pa.array(tick),
            pa.array(value_int, mask=is_gauge),
            pa.array(value_float, mask=~is_gauge),
        )
        summary = SummaryBuilder(
            RUN_ID, tick_seconds, global_labels=layout.global_labels,
            label_columns=LABEL_COLUMNS, key_labels=CONTAINER_KEY_LABELS,
            sketch_metrics=SUMMARY_SKETCH_METRICS, series_metrics=SUMMARY_SERIES_METRICS,
            aggregate_metrics=SUMMARY_AGGREGATE_METRICS,
        )  # fmt: skip
        seconds = int(chunk[0] * tick_seconds)
        day = time.strftime("%Y-%m-%d", time.gmtime(seconds))
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(seconds))
        final = (
            root / f"dt={day}" / "identifier=node-1" / f"finemon-{stamp}-b7b7b7b7-{seq:05d}.parquet"
        )
        tables = points_to_tables(points, series, layout, summary=summary)
        rows += write_parquet_atomically(final, layout.schema, tables, 3, metadata, summary)
        files += 1
        if index:
            folder = final.parent.relative_to(root).as_posix()
            started = time.perf_counter()
            stats = update_partition(root, folder, rebuild_at_most=INDEX_REBUILD_AT_MOST_FILES)
            assert stats.written == 1, stats
            in_day[day] = in_day.get(day, 0) + 1
            updates.append((in_day[day], time.perf_counter() - started))
    return files, rows, updates


def _timed(what: str, fn):  # type: ignore[no-untyped-def]
    started = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - started


def _evict(root: Path) -> None:
    """Drop the dataset's files (data and index) from the page cache: a cold start."""
    for path in root.rglob("*"):
        if path.is_file():
            fd = os.open(path, os.O_RDONLY)
            try:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)


def _command(root: Path, *args: str) -> float:
    """Seconds of ``finemon ARGS ROOT`` as a user runs it (the interpreter's start included)."""
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "finemon", *args, str(root)],
        check=True,
        stdout=subprocess.DEVNULL,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    return time.perf_counter() - started


def _footers_read(root: Path) -> int:
    from analysis.query.dataset_index import open_local_index

    return open_local_index(root).stats.footers_read


def _start(root: Path, use_index: bool) -> float:
    from analysis.query.explorer import Explorer

    started = time.perf_counter()
    with Explorer(root, use_index=use_index) as explorer:
        explorer.time_range()
        explorer.runs()
        explorer.containers()
        explorer.metrics()
    return time.perf_counter() - started


def _summary(root: Path, use_index: bool) -> float:
    from analysis.summary import format_summary, summarize

    started = time.perf_counter()
    format_summary(summarize(root, use_index=use_index))
    return time.perf_counter() - started


def _one_hour(root: Path, use_index: bool) -> tuple[float, int, int]:
    from analysis.query.explorer import Explorer

    with Explorer(root, use_index=use_index) as explorer:
        listed = explorer.containers()
        info = listed[min(17, len(listed) - 1)]
        # An hour at 40 % of the range.
        start = info.first_time + (info.last_time - info.first_time) * 0.4
        started = time.perf_counter()
        if use_index:
            explorer.series(
                SUMMARY_SKETCH_METRICS[0], [info.key], start, start + timedelta(hours=1)
            )
            seconds = time.perf_counter() - started
            return seconds, *explorer.last_read
        con = explorer._con
        assert con is not None
        con.execute("PRAGMA enable_profiling = 'no_output'")
        explorer.series(SUMMARY_SKETCH_METRICS[0], [info.key], start, start + timedelta(hours=1))
        seconds = time.perf_counter() - started
        import json

        profile = json.loads(con.get_profiling_information(format="json"))
        return seconds, len(list(root.rglob("*.parquet"))), int(profile["io"]["total_bytes_read"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=float, default=7.0)
    parser.add_argument("--containers", type=int, default=100)
    parser.add_argument("--tick-seconds", type=float, default=10.0)
    parser.add_argument("--file-seconds", type=float, default=90.0)
    parser.add_argument("--keep", type=Path, help="write (or reuse) the dataset here")
    parser.add_argument("--no-scan", action="store_true", help="skip the without-index column")
    parser.add_argument(
        "--index",
        choices=("daemon", "readers"),
        default="daemon",
        help="who builds the index of a new dataset: the daemon's update after each file "
        "(what finemon run does), or the first reader",
    )
    args = parser.parse_args()
    root = args.keep or Path(tempfile.mkdtemp(prefix="finemon-index-bench-")) / "out"
    try:
        daemon = args.index == "daemon"
        if not any(root.rglob("*.parquet")):
            (files, rows, updates), seconds = _timed("write", lambda: write_week(
                root, days=args.days, containers=args.containers,
                tick_seconds=args.tick_seconds, file_seconds=args.file_seconds,
                index=daemon))  # fmt: skip
            print(f"wrote {files} files, {rows:,} rows in {seconds:.0f} s")
            if updates:
                ms = sorted(1000 * t for _, t in updates)
                first = [1000 * t for n, t in updates if n <= 10]
                last_n = max(n for n, _ in updates)
                last = [1000 * t for n, t in updates if n > last_n - 10]
                print(
                    f"the daemon's index update after each file ({len(ms)}): median "
                    f"{statistics.median(ms):.1f} ms, p95 {ms[int(0.95 * len(ms))]:.1f} ms, "
                    f"max {ms[-1]:.1f} ms; a day's first 10 files {statistics.mean(first):.1f} "
                    f"ms, its last 10 (files {last_n - 9}-{last_n}) {statistics.mean(last):.1f} ms"
                )
        elif not daemon:
            shutil.rmtree(root / "_index", ignore_errors=True)
        if daemon:
            from analysis.query.explorer import Explorer  # noqa: F401 - imports out of the timing
            from analysis.summary import summarize  # noqa: F401

            index_bytes = sum(p.stat().st_size for p in (root / "_index").rglob("*.json"))
            print(f"the index as the daemon leaves it: {index_bytes / 1e3:.0f} KB")
            print("on the index as the daemon leaves it (cold: files evicted from the page cache)")
            _evict(root)
            cold_start = _start(root, True)
            warm_start = _start(root, True)
            _evict(root)
            cold_summary = _summary(root, True)
            warm_summary = _summary(root, True)
            _evict(root)
            cold_command = _command(root, "summary")
            warm_command = _command(root, "summary")
            print(f"  footers read by a reader's open: {_footers_read(root)}")
            print(f"  view/mcp start: cold {cold_start:.2f} s, warm {warm_start:.2f} s")
            print(f"  summary:        cold {cold_summary:.2f} s, warm {warm_summary:.2f} s")
            print(
                f"  the command `finemon summary DIR` (the interpreter's start included): "
                f"cold {cold_command:.2f} s, warm {warm_command:.2f} s"
            )
        shutil.rmtree(root / "_index", ignore_errors=True)
        paths = sorted(root.rglob("*.parquet"))
        data_bytes = sum(p.stat().st_size for p in paths)
        footer_bytes = sum(pq.read_metadata(p).serialized_size for p in paths[:200])
        print(f"dataset: {len(paths)} files, {data_bytes / 1e6:.0f} MB; "
              f"footer {footer_bytes / min(200, len(paths)) / 1e3:.1f} KB per file")  # fmt: skip

        from analysis.query.dataset_index import open_local_index

        _, cold = _timed("index", lambda: open_local_index(root))
        _, warm = _timed("index", lambda: open_local_index(root))
        index_bytes = sum(p.stat().st_size for p in (root / "_index").rglob("*.json"))
        print(f"index: first open {cold:.1f} s (every footer read), warm open {warm:.2f} s, "
              f"{index_bytes / 1e3:.0f} KB")  # fmt: skip
        rows_out = [("", "with the index", "scanning the rows", "ratio")]

        def row(what: str, indexed: float, scanned: float | None, unit: str = "s") -> None:
            ratio = f"{scanned / indexed:.0f}x" if scanned and indexed else "-"
            other = "-" if scanned is None else f"{scanned:.2f} {unit}"
            rows_out.append((what, f"{indexed:.2f} {unit}", other, ratio))

        scan = not args.no_scan
        row("view/mcp start (range, runs, containers, metrics)", _start(root, True),
            _start(root, False) if scan else None)  # fmt: skip
        row("summary", _summary(root, True), _summary(root, False) if scan else None)
        s_i, files_i, bytes_i = _one_hour(root, True)
        s_s, files_s, bytes_s = _one_hour(root, False) if scan else (None, None, None)
        row("one container, one hour: seconds", s_i, s_s)
        opened = "-" if files_s is None else f"{files_s}"
        rows_out.append(("  files opened", f"{files_i} of {len(paths)}", opened, "-"))
        read_i = f"{bytes_i / 1e6:.2f} MB ({100 * bytes_i / data_bytes:.3f} %)"
        read_s = "-" if bytes_s is None else f"{bytes_s / 1e6:.1f} MB"
        if bytes_s is not None:
            read_s += f" ({100 * bytes_s / data_bytes:.1f} %)"
        rows_out.append(("  bytes read", read_i, read_s, "-"))
        widths = [max(len(r[i]) for r in rows_out) for i in range(4)]
        for r in rows_out:
            print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
    finally:
        if args.keep is None:
            shutil.rmtree(root.parent, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
