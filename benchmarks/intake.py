"""What the intake (``finemon run --intake-port``) costs: decoding speed, then a busy node.

Two parts, printed side by side:

1. **Decode and record on one core**, in a fresh interpreter: a payload of 2,000 series of one
   point each, with the tags an agent puts on a container's series (``container_id``,
   ``kube_namespace``, ``pod_name``, ``kube_container_name``, ``env``, ``service``), as the agent
   sends it (protobuf, zstd) and as Datadog's API clients send it (v2 JSON, plain and gzip),
   and as v1 JSON: decompressed, decoded and written into a real :class:`capture.CaptureManager`
   (its recorder taking a tick a second). Points per second of the thread's CPU time. Beside
   them, in the same run, protobuf and v2 JSON written one ``capture.historical.gauge_set`` a
   point (the path before ``capture.historical.write_batch``), for the ratio.
2. **A 500-container node at 1 Hz** (the synthetic node of :mod:`benchmarks.node`: real cgroups
   in kubelet's layout, 3 real processes per container), the REAL ``finemon run`` three times:
   the intake off; on, fed what a Datadog Agent typically sends (a payload of 5,000 points
   every 15 s); on, offered 20,000 points a second (a 5,000-point payload every 0.25 s). The
   payloads are zstd protobuf, 10 metrics for each container tagged with its ``container_id``,
   from a separate sender process that behaves as a forwarder: one request at a time, a payload
   whose time comes while the previous one is still being answered is skipped (counted).
   Measured over the same window in each run: the points a second answered 202, finemon's CPU
   per tick (user+sys of the whole process), VmRSS and VmHWM, the ticks skipped
   (``finemon.ticks_skipped`` in its files) and the points the capture dropped.

``--before-src DIR`` adds a fourth run, the 20,000 points a second with finemon from another
``src`` tree (the code before a change). Run as root, under the machine-wide lock: ``flock
/tmp/finemon-bench.lock python -m benchmarks.intake`` (about 10 minutes; ``--quick`` about 6).
Without root or writable cgroups part 2 says why and is left out. Figures: docs/intake.md and
docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import gzip
import http.client
import json
import math
import multiprocessing
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.node import (
    MB,
    Finemon,
    SignalledError,
    SyntheticNode,
    free_port,
    in_child,
    install_signal_handlers,
    isolated_cgroup_root,
    machine,
    ms,
    percent,
    process_cpu_seconds,
    process_memory_bytes,
    read_own_rows,
    render,
    sleep_until,
    wait_for_first_file,
)
from monitor.sandbox import KubeletSandbox, sandbox_unavailable

INTERVAL_SECONDS = 1.0
DECODE_SERIES = 2_000
#: Seconds of timestamps the decoding bodies cycle through.
STAMPS = 30
#: The load of issue 21: 20,000 points a second (4 payloads a second of 5,000 points).
NODE_POINTS_PER_SECOND = 20_000
SERIES_PER_PAYLOAD = 5_000
#: A Datadog Agent typically sends a few thousand points every 15 s.
TYPICAL_PERIOD_SECONDS = 15.0
METRICS_PER_CONTAINER = 10
#: The name prefix of the decoding cases written one delayed write a point.
PER_POINT = "per point: "


def _tags(index: int, container_id: str) -> list[str]:
    return [
        f"container_id:{container_id}",
        "kube_namespace:bench",
        f"pod_name:bench-{index}",
        "kube_container_name:app",
        "env:bench",
        "service:app",
    ]


def _protobuf(series: Sequence[tuple[str, list[str]]], timestamp: int) -> Any:
    from monitor.intake.payload import GAUGE, MetricPayload

    message: Any = MetricPayload()
    for metric, tags in series:
        entry = message.series.add()
        entry.metric = metric
        entry.type = GAUGE
        entry.tags.extend(tags)
        entry.interval = 15
        resource = entry.resources.add()
        resource.type, resource.name = "host", "bench-node"
        point = entry.points.add()
        point.timestamp, point.value = timestamp, 1.0
    return message


def _v2_json(series: Sequence[tuple[str, list[str]]], timestamp: int) -> bytes:
    document = {
        "series": [
            {
                "metric": metric,
                "type": 3,
                "points": [{"timestamp": timestamp, "value": 1.0}],
                "resources": [{"type": "host", "name": "bench-node"}],
                "tags": tags,
            }
            for metric, tags in series
        ]
    }
    return json.dumps(document).encode()


def _v1_json(series: Sequence[tuple[str, list[str]]], timestamp: int) -> bytes:
    document = {
        "series": [
            {"metric": m, "points": [[timestamp, 1.0]], "host": "bench-node", "tags": t}
            for m, t in series
        ]
    }
    return json.dumps(document).encode()


# ---------------------------------------------------------------------- part 1
@dataclass(frozen=True, slots=True)
class DecodeResult:
    encoding: str
    body_bytes: int
    points: int
    decode_cpu_seconds: float  # decompress + decode
    write_cpu_seconds: float  # the writes into the capture

    @property
    def points_per_second(self) -> float:
        return self.points / (self.decode_cpu_seconds + self.write_cpu_seconds)

    @property
    def decode_share(self) -> float:
        return self.decode_cpu_seconds / (self.decode_cpu_seconds + self.write_cpu_seconds)


def measure_decoding(cpu_seconds_each: float) -> list[DecodeResult]:
    """Per encoding, points per CPU second of this thread through decompress, decode and the
    capture's writes (run it in a fresh interpreter: :func:`benchmarks.node.in_child`). The
    bodies are built first, one per second of the last STAMPS seconds (all in the window);
    the encodings then take turns until each had about ``cpu_seconds_each``."""
    import zstandard

    import capture
    from common.contract import LABEL_COLUMNS
    from monitor.intake.decode import (
        ReportedSeries,
        decode_v1_json,
        decode_v2_json,
        decode_v2_protobuf,
    )
    from monitor.intake.decode import decompress as undo
    from monitor.intake.record import TARGET_PREFIX, IntakeWriter, series_labels

    names = (
        "protobuf + zstd",
        "v2 JSON",
        "v2 JSON + gzip",
        "v1 JSON",
        PER_POINT + "protobuf + zstd",
        PER_POINT + "v2 JSON",
    )
    now = math.floor(time.time())
    # One body per second of the last STAMPS: a series gets about one point a tick, as from an
    # agent, rather than every point in the same tick.
    stamps = range(now - STAMPS + 1, now + 1)
    zstd = zstandard.ZstdCompressor()
    cases: list[tuple[str, str | None, Callable[[bytes], Any], list[bytes]]] = []
    for index, name in enumerate(names):
        # Each encoding its own series (names), so that none finds the others' in the window.
        series = [
            (f"case{index}.metric_{i % METRICS_PER_CONTAINER}", _tags(i // 10, f"{i // 10:064x}"))
            for i in range(DECODE_SERIES)
        ]
        if "protobuf" in name:
            bodies = [zstd.compress(_protobuf(series, t).SerializeToString()) for t in stamps]
            cases.append((name, "zstd", decode_v2_protobuf, bodies))
        elif name.endswith("v2 JSON"):
            cases.append((name, None, decode_v2_json, [_v2_json(series, t) for t in stamps]))
        elif name.startswith("v2"):
            bodies = [gzip.compress(_v2_json(series, t), 6) for t in stamps]
            cases.append((name, "gzip", decode_v2_json, bodies))
        else:
            cases.append((name, None, decode_v1_json, [_v1_json(series, t) for t in stamps]))
    work = Path(tempfile.mkdtemp(prefix="finemon-intake-bench-"))
    writers = [IntakeWriter() for _ in cases]
    labels_of: dict[tuple[str, ...], dict[str, str]] = {}

    def one_write_a_point(batch: list[ReportedSeries]) -> None:
        # The capture's cost as the intake paid it before write_batch: one call a point.
        for series in batch:
            labels = labels_of.get(series.tags)
            if labels is None:
                labels = labels_of[series.tags] = series_labels(
                    series.tags, series.host, series.source_type_name, series.resources
                )
            name = TARGET_PREFIX + series.metric
            for timestamp, value in series.points:
                capture.historical.gauge_set(name, labels, value, timestamp)

    decode_cpu = [0.0] * len(cases)
    write_cpu = [0.0] * len(cases)
    points = [0] * len(cases)
    try:
        manager = capture.CaptureManager(
            work / "decode.parquet", label_columns=LABEL_COLUMNS, auto_tick=False
        )
        manager.start(now - 59)
        manager.take_tick(now)
        last_tick = now
        passes = 0
        # The encodings in turns, one body each, so that drifts (the window filling, the
        # machine, a tick just taken) fall on all of them alike.
        while sum(decode_cpu) + sum(write_cpu) < cpu_seconds_each * len(cases):
            # (Starting with another one each round: none always follows the tick.)
            for turn in range(len(cases)):
                index = (passes + turn) % len(cases)
                _, encoding, decode, bodies = cases[index]
                tick = math.floor(time.time())
                if tick != last_tick:
                    manager.take_tick(tick)
                    last_tick = tick
                started = time.thread_time()
                batch = decode(undo(bodies[passes % len(bodies)], encoding, 16 << 20))
                decoded = time.thread_time()
                if cases[index][0].startswith(PER_POINT):
                    one_write_a_point(batch)
                else:
                    writers[index].write(batch)
                done = time.thread_time()
                decode_cpu[index] += decoded - started
                write_cpu[index] += done - decoded
                points[index] += DECODE_SERIES
            passes += 1
        manager.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    results: list[DecodeResult] = []
    for index, (name, _, _, bodies) in enumerate(cases):
        dropped = sum(writers[index].stats.points_dropped.values())
        if dropped:
            raise RuntimeError(f"{name}: {dropped} points dropped")
        results.append(
            DecodeResult(name, len(bodies[0]), points[index], decode_cpu[index], write_cpu[index])
        )
    return results


# ---------------------------------------------------------------------- part 2
@dataclass(slots=True)
class SenderCounts:
    #: (Unix seconds the answer came, HTTP status or 0 for a failed request), per payload.
    answers: list[tuple[float, int]] = field(default_factory=list)
    #: Payloads not sent because the previous one was still being answered at their time.
    skipped: int = 0
    cpu_seconds: float = 0.0
    error: str = ""

    def accepted_points(self, start: float, end: float) -> int:
        return SERIES_PER_PAYLOAD * sum(1 for t, s in self.answers if start <= t < end and s == 202)


def send_points(
    port: int, container_ids: Sequence[str], seconds: float, period_seconds: float, queue: Any
) -> None:  # runs in its own process
    """Post a zstd protobuf payload of SERIES_PER_PAYLOAD points (10 metrics for each
    container) every ``period_seconds`` for ``seconds``, as a forwarder does: one request at a
    time, a payload whose time comes while the previous is still being answered is skipped
    (counted). Puts a SenderCounts on ``queue``, whatever happens."""
    counts = SenderCounts()
    try:
        import zstandard

        series = [
            (f"container.metric_{j % METRICS_PER_CONTAINER}", _tags(j, cid))
            for j, cid in enumerate(
                container_ids[j // METRICS_PER_CONTAINER % len(container_ids)]
                for j in range(SERIES_PER_PAYLOAD)
            )
        ]
        message = _protobuf(series, math.floor(time.time()))
        compressor = zstandard.ZstdCompressor()
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        headers = {"Content-Type": "application/x-protobuf", "Content-Encoding": "zstd"}
        begun = time.time()
        slot = 0
        while begun + slot * period_seconds < begun + seconds:
            pause = begun + slot * period_seconds - time.time()
            if pause > 0:
                time.sleep(pause)
            stamp = math.floor(time.time())
            for entry in message.series:
                entry.points[0].timestamp = stamp
            body = compressor.compress(message.SerializeToString())
            try:
                connection.request("POST", "/api/v2/series", body=body, headers=headers)
                answer = connection.getresponse()
                answer.read()
                status = answer.status
            except OSError:
                connection.close()
                status = 0
            counts.answers.append((time.time(), status))
            following = math.floor((time.time() - begun) / period_seconds) + 1
            counts.skipped += max(0, following - slot - 1)
            slot = following
        connection.close()
    except Exception as exc:  # reported in the table, never a hung benchmark
        counts.error = f"{type(exc).__name__}: {exc}"
    counts.cpu_seconds = time.process_time()
    queue.put(counts)


@dataclass(slots=True)
class RunResult:
    #: Seconds between the sender's payloads; None: the intake off.
    period_seconds: float | None
    containers: int = 0
    ticks: int = 0
    cpu_seconds: float = 0.0
    skipped: int = 0
    rss_bytes: int = 0
    hwm_bytes: int = 0
    sender: SenderCounts | None = None
    manifest_intake: dict[str, Any] = field(default_factory=dict)
    dropped: int = 0
    start: float = 0.0
    end: float = 0.0
    #: The ``src`` finemon ran from, when not this tree's (``--before-src``).
    source: Path | None = None

    @property
    def cpu_per_tick(self) -> float:
        return self.cpu_seconds / max(1, self.ticks)

    @property
    def name(self) -> str:
        if self.period_seconds is None:
            return "intake off"
        offered = SERIES_PER_PAYLOAD / self.period_seconds
        before = ", before" if self.source is not None else ""
        return f"intake on, {offered:,.0f} points/s offered{before}"

    @property
    def accepted_per_second(self) -> float:
        if self.sender is None:
            return 0.0
        return self.sender.accepted_points(self.start, self.end) / (self.end - self.start)


def _count(output: Path, start: float, end: float) -> tuple[int, int, int]:
    """(ticks sampled, ticks skipped, containers) between ``start`` and ``end`` (Unix s)."""
    import statistics

    rows = read_own_rows(output)
    start_ms, end_ms = int(start * 1000), int(end * 1000)
    durations = rows.between("finemon.tick.duration_seconds", start_ms, end_ms)
    skipped = rows.between("finemon.ticks_skipped", start_ms, end_ms)
    before = rows.between("finemon.ticks_skipped", 0, start_ms)
    missed = int((max(skipped) if skipped else 0.0) - (before[-1] if before else 0.0))
    seen = rows.values.get("finemon.containers", [0.0])
    return max(0, len(durations) - missed), missed, round(statistics.median(seen))


def _dropped(output: Path) -> int:
    import pyarrow.compute as pc
    import pyarrow.dataset as ds

    table = ds.dataset(output, format="parquet", partitioning="hive").to_table(
        columns=["value_int"], filter=ds.field("metric_name") == "capture.dropped"
    )
    return int(pc.max(table["value_int"]).as_py() or 0) if table.num_rows else 0


def run_node(
    period_seconds: float | None,
    node: SyntheticNode,
    work: Path,
    cgroup_root: Path,
    warmup_seconds: float,
    measure_seconds: float,
    source: Path | None = None,
) -> RunResult:
    result = RunResult(period_seconds, source=source)
    intake = period_seconds is not None
    assert node.box.log_root is not None
    port = free_port()
    output = work / f"finemon-{period_seconds}-{'before' if source else 'now'}"
    extra = ("--intake-port", str(port)) if intake else ()
    saved = os.environ.get("PYTHONPATH")
    if source is not None:  # finemon from another tree (the one before a change)
        os.environ["PYTHONPATH"] = str(source)
    try:
        finemon = Finemon(
            output,
            node.box.log_root,
            INTERVAL_SECONDS,
            1.0,
            max_seconds=warmup_seconds + measure_seconds + 300,
            cgroup_root=cgroup_root,
            extra_args=extra,
        )
    finally:
        if saved is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = saved
    sender = None
    queue: Any = None
    try:
        wait_for_first_file(finemon)
        time.sleep(2 * INTERVAL_SECONDS)  # past the first tick: earlier points are too_old
        if intake:
            context = multiprocessing.get_context("spawn")
            queue = context.Queue()
            ids = [c.container_id for c in node.containers]
            sender = context.Process(
                target=send_points,
                args=(port, ids, warmup_seconds + measure_seconds + 2, period_seconds, queue),
            )
            sender.start()
        sleep_until(time.monotonic() + warmup_seconds)
        finemon.check_alive()
        cpu0, start = process_cpu_seconds(finemon.pid), time.time()
        sleep_until(time.monotonic() + measure_seconds)
        cpu1, end = process_cpu_seconds(finemon.pid), time.time()
        result.cpu_seconds = cpu1 - cpu0
        result.start, result.end = start, end
        result.rss_bytes, result.hwm_bytes = process_memory_bytes(finemon.pid)
        if sender is not None:
            result.sender = queue.get(timeout=warmup_seconds + measure_seconds + 120)
            sender.join(30)
        code = finemon.stop()
        if code != 0:
            raise RuntimeError(f"finemon exited with {code}: {finemon.log_tail()}")
    finally:
        if sender is not None and sender.is_alive():
            sender.kill()
        finemon.kill()
    result.ticks, result.skipped, result.containers = in_child(_count, output, start, end)
    result.dropped = in_child(_dropped, output)
    session = json.loads((output / "_session.json").read_text())
    result.manifest_intake = session.get("intake", {})
    return result


# ---------------------------------------------------------------------- the tables
def decode_table(results: Sequence[DecodeResult]) -> list[list[str]]:
    table = [["", *(r.encoding for r in results)]]
    table.append(["body, 2,000 points", *(f"{r.body_bytes / 1000:.0f} KB" for r in results)])
    table.append(["points/s on one core", *(f"{r.points_per_second:,.0f}" for r in results)])
    base = results[0].points_per_second
    table.append(["  ratio to protobuf", *(f"{r.points_per_second / base:.2f}x" for r in results)])
    table.append(["decompress + decode share", *(percent(r.decode_share) for r in results)])
    table.append(
        [
            "CPU per point: decode / write",
            *(
                f"{r.decode_cpu_seconds / r.points * 1e6:.1f} / "
                f"{r.write_cpu_seconds / r.points * 1e6:.1f} us"
                for r in results
            ),
        ]
    )
    return table


def node_table(runs: Sequence[RunResult]) -> list[list[str]]:
    off = runs[0]
    table = [["", *(r.name for r in runs)]]

    def row(name: str, cells: Sequence[str]) -> None:
        table.append([name, *cells])

    row("containers seen (x3 processes)", [str(r.containers) for r in runs])
    row("ticks measured", [str(r.ticks) for r in runs])
    row("points/s accepted (202)", ["-", *(f"{r.accepted_per_second:,.0f}" for r in runs[1:])])
    row("finemon CPU per tick", [ms(r.cpu_per_tick) for r in runs])
    row("  ratio to intake off", [f"{r.cpu_per_tick / off.cpu_per_tick:.2f}x" for r in runs])
    row("  % of one core", [percent(r.cpu_per_tick / INTERVAL_SECONDS) for r in runs])
    row(
        "VmRSS / VmHWM",
        [f"{r.rss_bytes / MB:.0f} / {r.hwm_bytes / MB:.0f} MB" for r in runs],
    )
    row("  RSS added", ["-", *(f"{(r.rss_bytes - off.rss_bytes) / MB:+.0f} MB" for r in runs[1:])])
    row("ticks skipped (target 0)", [str(r.skipped) for r in runs])
    senders = [r.sender for r in runs[1:]]
    row(
        "payloads answered 202 / skipped by the sender",
        [
            "-",
            *(
                f"{sum(1 for _, st in x.answers if st == 202)} / {x.skipped}" if x else "-"
                for x in senders
            ),
        ],
    )
    row(
        "points received / written (manifest)",
        [
            "-",
            *(
                f"{r.manifest_intake.get('points_received', 0):,} / "
                f"{r.manifest_intake.get('points_written', 0):,}"
                for r in runs[1:]
            ),
        ],
    )
    row("capture.dropped (too_old/future)", [str(r.dropped) for r in runs])
    return table


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.intake",
        description="What the intake costs: decoding speed, and a 500-container node.",
    )
    parser.add_argument("--quick", action="store_true", help="a short run (about 4 min)")
    parser.add_argument("--containers", type=int, default=500)
    parser.add_argument("--decode-seconds", type=float, default=None, metavar="S")
    parser.add_argument("--warmup-seconds", type=float, default=None, metavar="S")
    parser.add_argument("--measure-seconds", type=float, default=None, metavar="S")
    parser.add_argument("--no-node", action="store_true", help="part 1 only")
    parser.add_argument(
        "--before-src",
        type=Path,
        default=None,
        metavar="DIR",
        help="also run the 20,000 points/s case with finemon from this src directory",
    )
    args = parser.parse_args(argv)
    if args.decode_seconds is None:
        args.decode_seconds = 2.0 if args.quick else 5.0
    if args.warmup_seconds is None:
        args.warmup_seconds = 20.0 if args.quick else 40.0
    if args.measure_seconds is None:
        args.measure_seconds = 30.0 if args.quick else 60.0
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    install_signal_handlers()
    begun = time.monotonic()
    print(f"benchmarks.intake: {machine()}", flush=True)
    decoding = in_child(measure_decoding, args.decode_seconds)
    print()
    print(render(decode_table(decoding)), flush=True)
    if args.no_node:
        return 0
    reason = sandbox_unavailable()
    if reason is not None:
        print(f"\nbenchmarks.intake: the node part skipped, needs real cgroups: {reason}")
        return 0
    work = Path(tempfile.mkdtemp(prefix="finemon-bench-"))
    try:
        with KubeletSandbox(log_root=work / "logs") as box:
            node = SyntheticNode(box)
            node.resize(1)
            cgroup_root = isolated_cgroup_root(box, work / "cgroup-root")
            print(f"\n  building {args.containers} containers ...", flush=True)
            node.resize(args.containers)
            time.sleep(1.0)
            runs = []
            stress = SERIES_PER_PAYLOAD / NODE_POINTS_PER_SECOND
            cases: list[tuple[float | None, Path | None]] = [
                (None, None),
                (TYPICAL_PERIOD_SECONDS, None),
                (stress, None),
            ]
            if args.before_src is not None:
                cases.append((stress, args.before_src.resolve()))
            for period, source in cases:
                print(f"  finemon, {RunResult(period, source=source).name} ...", flush=True)
                runs.append(
                    run_node(
                        period,
                        node,
                        work,
                        cgroup_root,
                        args.warmup_seconds,
                        args.measure_seconds,
                        source,
                    )
                )
            node.resize(0)
    except SignalledError as exc:
        print(f"benchmarks.intake: interrupted by {exc}; the sandbox was torn down")
        return 130
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print()
    print(render(node_table(runs)))
    for run in runs[1:]:
        if run.sender is not None and run.sender.error:
            print(f"\n{run.name}: the sender failed: {run.sender.error}")
    print(f"wall time: {time.monotonic() - begun:.0f} s in all, pid {os.getpid()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
