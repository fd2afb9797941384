"""What the live endpoint costs: ``finemon run --prometheus-port`` scraped on a 500-container node.

Builds the synthetic node of :mod:`benchmarks.node` (real cgroups in kubelet's layout, N
containers x 3 real processes), runs the REAL ``finemon run`` with its endpoint on, once per
``--prometheus-series`` mode (``default``, ``all``), and measures in one run, side by side:

* one scrape as Prometheus makes it (its ``Accept`` header, so OpenMetrics, and gzip): the CPU
  time of the server thread that answers it (``/proc/PID/task/TID/schedstat``, nanoseconds: the
  connection is kept, so the thread is still there to read once the answer is in), its wall
  time, the body's size gzip-compressed and plain (a second request on the same connection,
  answered from the same render);
* its effect on the ticks: finemon's CPU per tick (user+sys of the whole process over a block)
  in blocks without scrapes and in blocks with a scrape every 10 s, alternated so that drifts
  (flushes, rotations) fall on both, and the ticks skipped in each.

Every scrape is the first after its tick, so each one renders: the worst case (a second scraper
of the same tick gets the kept bytes). Scrapes are sent half an interval after a tick starts,
when the sampler has usually finished it.

Run as root, under the machine-wide benchmark lock: ``flock /tmp/finemon-bench.lock python -m
benchmarks.prometheus`` (about 12 minutes; ``--quick`` about 4). Without root or writable cgroups
it says why and exits 0. See docs/prometheus.md for the figures.
"""

from __future__ import annotations

import argparse
import gzip
import http.client
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

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
    verdict,
    wait_for_first_file,
)
from monitor.sandbox import KubeletSandbox, sandbox_unavailable

MODES = ("default", "all")
INTERVAL_SECONDS = 1.0
#: What Prometheus (2.x and 3.x) sends: OpenMetrics first, the text format as a fallback.
PROMETHEUS_ACCEPT = (
    "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;"
    "q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
)
#: Target of issue 19: one default scrape under this share of a tick's CPU.
TARGET_SCRAPE_SHARE = 0.05
KB = 1000


def thread_cpu_seconds(pid: int, tid: int) -> float:
    """CPU seconds thread ``tid`` of ``pid`` has run (schedstat: nanoseconds on a CPU)."""
    with open(f"/proc/{pid}/task/{tid}/schedstat", "rb") as f:
        return int(f.read().split()[0]) / 1e9


def threads(pid: int) -> set[int]:
    return {int(tid) for tid in os.listdir(f"/proc/{pid}/task")}


@dataclass(frozen=True, slots=True)
class Scrape:
    """One scrape: the answering thread's CPU and the wall time, the body's sizes, its series."""

    cpu_seconds: float
    wall_seconds: float
    gzip_bytes: int
    plain_bytes: int
    series: int
    #: CPU of the second request on the connection (the plain text, from the same render).
    again_cpu_seconds: float


def scrape(pid: int, port: int) -> Scrape:
    """Scrape ``/metrics`` as Prometheus does, on a new kept connection, and once more plain."""
    before = threads(pid)
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        connection.connect()
        deadline = time.monotonic() + 5
        while not (new := threads(pid) - before):
            if time.monotonic() > deadline:
                raise RuntimeError("no server thread took the connection")
            time.sleep(0.001)
        # A thread of finemon's own (a rotation's) may have started too: the server's is the
        # one that runs while the request is answered; all new ones are counted (rare, small).
        cpu0 = {tid: thread_cpu_seconds(pid, tid) for tid in new}
        started = time.monotonic()
        connection.request(
            "GET", "/metrics", headers={"Accept": PROMETHEUS_ACCEPT, "Accept-Encoding": "gzip"}
        )
        response = connection.getresponse()
        zipped = response.read()
        wall = time.monotonic() - started
        cpu1 = {tid: thread_cpu_seconds(pid, tid) for tid in new if tid in threads(pid)}
        if response.status != 200 or response.headers.get("Content-Encoding") != "gzip":
            raise RuntimeError(f"scrape answered {response.status} {dict(response.headers)}")
        connection.request("GET", "/metrics", headers={"Accept": PROMETHEUS_ACCEPT})
        response = connection.getresponse()
        plain = response.read()
        cpu2 = {tid: thread_cpu_seconds(pid, tid) for tid in cpu1 if tid in threads(pid)}
    finally:
        connection.close()
    # (The two answers differ when a tick was taken between them: each is then its own render.
    # gzip checks the CRC and length of what it decompresses.)
    series = sum(
        1 for line in gzip.decompress(zipped).splitlines() if line and not line.startswith(b"#")
    )
    return Scrape(
        sum(cpu1[t] - cpu0[t] for t in cpu1),
        wall,
        len(zipped),
        len(plain),
        series,
        sum(cpu2[t] - cpu1[t] for t in cpu2),
    )


@dataclass(slots=True)
class Block:
    """A stretch of finemon's run: its CPU, wall clock and whether it was scraped."""

    scraped: bool
    start: float
    end: float
    cpu_seconds: float
    ticks: int = 0
    skipped: int = 0

    @property
    def cpu_per_tick(self) -> float:
        return self.cpu_seconds / max(1, self.ticks)


@dataclass(slots=True)
class ModeResult:
    mode: str
    containers: int = 0
    first: Scrape | None = None
    #: finemon's VmRSS before the first scrape and after the last block.
    rss_before_bytes: int = 0
    rss_after_bytes: int = 0
    scrapes: list[Scrape] = field(default_factory=list)
    blocks: list[Block] = field(default_factory=list)

    def cpu_per_tick(self, scraped: bool) -> float:
        chosen = [b for b in self.blocks if b.scraped == scraped]
        ticks = sum(b.ticks for b in chosen)
        return sum(b.cpu_seconds for b in chosen) / max(1, ticks)

    def skipped(self, scraped: bool) -> int:
        return sum(b.skipped for b in self.blocks if b.scraped == scraped)

    def median(self, attribute: str) -> float:
        return float(statistics.median(getattr(s, attribute) for s in self.scrapes))

    def highest(self, attribute: str) -> float:
        return float(max(getattr(s, attribute) for s in self.scrapes))


def count_ticks(output: Path, blocks: Sequence[Block]) -> int:
    """Each block's ticks sampled and skipped, from finemon's files; the containers it saw."""
    rows = in_child(read_own_rows, output)
    for block in blocks:
        start_ms, end_ms = int(block.start * 1000), int(block.end * 1000)
        durations = rows.between("finemon.tick.duration_seconds", start_ms, end_ms)
        skipped = rows.between("finemon.ticks_skipped", start_ms, end_ms)
        before = rows.between("finemon.ticks_skipped", 0, start_ms)
        block.skipped = int((max(skipped) if skipped else 0.0) - (before[-1] if before else 0.0))
        block.ticks = max(0, len(durations) - block.skipped)
    seen = rows.values.get("finemon.containers", [0.0])
    return round(statistics.median(seen))


def run_mode(
    mode: str,
    node: SyntheticNode,
    work: Path,
    cgroup_root: Path,
    warmup_seconds: float,
    block_seconds: float,
    blocks: int,
    scrape_every_seconds: float,
) -> ModeResult:
    """finemon with ``--prometheus-series mode``: warm up, then quiet and scraped blocks."""
    result = ModeResult(mode)
    assert node.box.log_root is not None
    port = free_port()
    output = work / f"finemon-{mode}"
    finemon = Finemon(
        output,
        node.box.log_root,
        INTERVAL_SECONDS,
        1.0,
        max_seconds=warmup_seconds + 2 * blocks * block_seconds + 300,
        cgroup_root=cgroup_root,
        prometheus_port=port,
        extra_args=("--prometheus-series", mode),
    )
    try:
        wait_for_first_file(finemon)
        sleep_until(time.monotonic() + warmup_seconds)
        # The first render lays out every series (once per run, and for each series that
        # comes later): measured apart, before the blocks.
        result.rss_before_bytes = process_memory_bytes(finemon.pid)[0]
        result.first = scrape(finemon.pid, port)
        time.sleep(2 * INTERVAL_SECONDS)
        for n in range(2 * blocks):
            scraped = n % 2 == 1
            finemon.check_alive()
            cpu0, start = process_cpu_seconds(finemon.pid), time.time()
            end_at = time.monotonic() + block_seconds
            if scraped:
                while True:
                    # Half an interval into a tick: its sample is usually done by then.
                    now = time.time()
                    wake = (now // INTERVAL_SECONDS + 1.5) * INTERVAL_SECONDS
                    if time.monotonic() + (wake - now) >= end_at:
                        break
                    time.sleep(wake - now)
                    result.scrapes.append(scrape(finemon.pid, port))
                    pause = scrape_every_seconds - INTERVAL_SECONDS
                    time.sleep(max(0.0, min(pause, end_at - time.monotonic())))
            sleep_until(end_at)
            cpu1, end = process_cpu_seconds(finemon.pid), time.time()
            result.blocks.append(Block(scraped, start, end, cpu1 - cpu0))
        result.rss_after_bytes = process_memory_bytes(finemon.pid)[0]
        code = finemon.stop()
        if code != 0:
            raise RuntimeError(f"finemon exited with {code}: {finemon.log_tail()}")
    finally:
        finemon.kill()
    result.containers = count_ticks(output, result.blocks)
    return result


def build_table(results: Sequence[ModeResult]) -> list[list[str]]:
    header = ["", *(f"--prometheus-series {r.mode}" for r in results), "target (issue 19)"]
    table = [header]

    def row(name: str, cells: Sequence[str], target: str = "") -> None:
        table.append([name, *cells, target])

    row("containers seen (x3 processes)", [str(r.containers) for r in results])
    row("scrapes", [str(len(r.scrapes)) for r in results])
    row("series served", [f"{r.median('series'):.0f}" for r in results])
    row(
        "  per container",
        [f"{r.median('series') / max(1, r.containers):.1f}" for r in results],
        "<= 30 with default (finemon's own series included here)",
    )
    row(
        "body, gzip / plain",
        [
            f"{r.median('gzip_bytes') / KB:.0f} / {r.median('plain_bytes') / KB:.0f} KB"
            for r in results
        ],
        "OpenMetrics, as Prometheus asks",
    )
    row(
        "scrape CPU median / max",
        [f"{ms(r.median('cpu_seconds'))} / {ms(r.highest('cpu_seconds'))}" for r in results],
        "the answering thread: render + gzip + send",
    )
    row(
        "  a second request, same tick",
        [ms(r.median("again_cpu_seconds")) for r in results],
        "plain, from the kept render",
    )
    row("scrape wall time median", [ms(r.median("wall_seconds")) for r in results])
    row(
        "first scrape after start: CPU / wall",
        [
            f"{ms(r.first.cpu_seconds)} / {ms(r.first.wall_seconds)}" if r.first else "-"
            for r in results
        ],
        "lays out every series (once)",
    )
    quiet = [r.cpu_per_tick(False) for r in results]
    scraped = [r.cpu_per_tick(True) for r in results]
    row("tick CPU, no scrapes", [ms(q) for q in quiet])
    row("tick CPU, a scrape every 10 s", [ms(s) for s in scraped])
    row(
        "  ratio scraped / not",
        [f"{s / q:.3f}x" for s, q in zip(scraped, quiet, strict=True)],
        "whole process, per tick",
    )
    shares = []
    for r, q in zip(results, quiet, strict=True):
        share = r.median("cpu_seconds") / q
        met = f" {verdict(share < TARGET_SCRAPE_SHARE)}" if r.mode == "default" else ""
        shares.append(f"{percent(share)}{met}")
    row("scrape CPU / tick CPU", shares, f"< {TARGET_SCRAPE_SHARE:.0%} with default")
    row("finemon % of one core, no scrapes", [percent(q / INTERVAL_SECONDS) for q in quiet])
    row(
        "VmRSS before the first scrape / at the end",
        [f"{r.rss_before_bytes / MB:.0f} / {r.rss_after_bytes / MB:.0f} MB" for r in results],
        "the kept render's memory",
    )
    row(
        "ticks skipped: no scrapes / scraped",
        [f"{r.skipped(False)} / {r.skipped(True)}" for r in results],
        "0",
    )
    return table


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.prometheus",
        description="What finemon's live endpoint costs when scraped, per series mode.",
    )
    parser.add_argument("--quick", action="store_true", help="a short run (about 4 min)")
    parser.add_argument("--containers", type=int, default=500)
    parser.add_argument("--modes", default=",".join(MODES), help="default,all")
    parser.add_argument("--warmup-seconds", type=float, default=None, metavar="S")
    parser.add_argument(
        "--block-seconds", type=float, default=None, metavar="S", help="each quiet/scraped block"
    )
    parser.add_argument("--blocks", type=int, default=None, help="pairs of quiet/scraped blocks")
    parser.add_argument("--scrape-every-seconds", type=float, default=10.0, metavar="S")
    parser.add_argument("--keep", metavar="DIR", default=None, help="keep finemon's output here")
    args = parser.parse_args(argv)
    args.modes = [m for m in str(args.modes).split(",") if m]
    if any(m not in MODES for m in args.modes):
        parser.error(f"--modes: each one of {', '.join(MODES)}")
    if args.warmup_seconds is None:
        # Past finemon's first fill of its 60-tick window and its first rotation (90 s).
        args.warmup_seconds = 20.0 if args.quick else 100.0
    if args.block_seconds is None:
        args.block_seconds = 30.0 if args.quick else 45.0
    if args.blocks is None:
        args.blocks = 1 if args.quick else 2
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    reason = sandbox_unavailable()
    if reason is not None:
        print(f"benchmarks.prometheus: skipped, needs real cgroups: {reason}")
        return 0
    install_signal_handlers()
    begun = time.monotonic()
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="finemon-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    results: list[ModeResult] = []
    try:
        with KubeletSandbox(log_root=work / "logs") as box:
            print(f"benchmarks.prometheus: {machine()}; cgroups {box.hierarchy.mode}")
            node = SyntheticNode(box)
            node.resize(1)
            cgroup_root = isolated_cgroup_root(box, work / "cgroup-root")
            print(f"  building {args.containers} containers ...", flush=True)
            node.resize(args.containers)
            time.sleep(1.0)
            for mode in args.modes:
                print(f"  --prometheus-series {mode} ...", flush=True)
                results.append(
                    run_mode(
                        mode,
                        node,
                        work,
                        cgroup_root,
                        args.warmup_seconds,
                        args.block_seconds,
                        args.blocks,
                        args.scrape_every_seconds,
                    )
                )
            node.resize(0)
    except SignalledError as exc:
        print(f"benchmarks.prometheus: interrupted by {exc}; the sandbox was torn down")
        return 130
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    print()
    print(render(build_table(results)))
    for result in results:
        cpu = ", ".join(f"{s.cpu_seconds * 1e3:.1f}" for s in result.scrapes)
        print(f"\n{result.mode}: scrape CPU ms, in order: {cpu}")
        blocks = ", ".join(
            f"{'S' if b.scraped else 'Q'} {b.cpu_per_tick * 1e3:.1f}/{b.ticks}"
            for b in result.blocks
        )
        print(f"{result.mode}: blocks (Q quiet, S scraped: tick CPU ms / ticks): {blocks}")
    print(f"\nwall time: {time.monotonic() - begun:.0f} s in all")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
