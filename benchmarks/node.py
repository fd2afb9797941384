"""What ``finemon run`` costs on a busy node, measured against the floor, in one run.

Builds a synthetic node of real cgroups in kubelet's layout (``monitor.sandbox.KubeletSandbox``,
root only) with N containers x 3 real processes (mostly idle ``sleep``, 1 in 20 holding 16 MiB,
at most 2 CPU burners throttled to a low duty cycle by a CFS quota), runs the REAL ``finemon run``
as a subprocess against it and prints one table with, side by side:

* finemon's CPU time per tick (user+sys from ``/proc/PID/stat`` over a measured window after a
  warm-up), wall time per tick (``finemon.tick.duration_seconds``), VmRSS/VmHWM, bytes on disk
  per row and per container-hour, missed ticks (``finemon.ticks_skipped``);
* the floor measured by this process in the same run on the same node: the files finemon reads
  per tick (listed from a :class:`observers.node.NodeObserver`) read with open/read/close and no
  parsing, and the same files on kept descriptors with ``os.pread`` from offset 0; one pass per
  interval, as finemon reads them (the ratios' denominators), and back to back with hot caches
  (shown beside them: a lower bound no once-per-interval sampler reaches);
* churn: containers created and destroyed continuously, finemon's RSS and live series (scraped
  from its Prometheus endpoint) first vs last, and whether every container that lived at least
  one tick appears in the output.

Run as root: ``python -m benchmarks.node`` (about 10 minutes) or ``python -m benchmarks.node
--quick`` (about 2 minutes). Without root or writable cgroups it says why and exits 0. See
docs/benchmarks.md for the columns and the figures measured.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import ctypes
import multiprocessing
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, TypeVar

from monitor.sandbox import KubeletSandbox, SandboxContainer, sandbox_unavailable

if TYPE_CHECKING:
    from observers.node import NodeObserver

CLK_TCK = os.sysconf("SC_CLK_TCK")
MB = 1_000_000
READ_SIZE = 65536
PROCESSES_PER_CONTAINER = 3
HOLD_BYTES = 16 * 1024 * 1024
#: At most this many CPU burners on the whole node (this kind of machine has 2 cores).
MAX_BURNERS = 2
#: The share of one core a burner may use (CFS quota over period).
BURNER_DUTY = 0.2
CFS_PERIOD_USEC = 100_000
#: Seconds between churn samples of finemon's RSS and live series.
CHURN_SAMPLE_SECONDS = 10.0
#: Samples at each end of the steady churn whose medians give the growth.
ENDS = 3

# The targets finemon is held to, printed as met / NOT met beside each figure.
TARGET_FLOOR_RATIO = 1.5
TARGET_KEPT_RATIO = 1.0
TARGET_RSS_BYTES = 150 * MB
TARGET_BYTES_PER_ROW = 0.5
#: Growth under churn (median of the last ENDS samples vs of the first) that still counts as flat.
FLAT_GROWTH = 0.10


class SignalledError(Exception):
    """SIGINT or SIGTERM arrived: unwind through every finally block."""


# ---------------------------------------------------------------------------------- timing


def self_cpu_seconds() -> float:
    """User+system CPU seconds of this process (nanosecond clock, not 10 ms ticks)."""
    return time.process_time()


def process_cpu_seconds(pid: int) -> float:
    """User+system CPU seconds of process ``pid`` (all its threads) from /proc/PID/stat."""
    with open(f"/proc/{pid}/stat", "rb") as f:
        data = f.read()
    fields = data[data.rindex(b")") + 2 :].split()
    # utime and stime are fields 14 and 15; fields[0] here is field 3 (state).
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def status_kilobytes(pid: int, *fields: str) -> list[int]:
    """The ``kB`` fields of /proc/PID/status named ``fields`` (``VmRSS``...), in bytes (0 when
    absent)."""
    values = dict.fromkeys(fields, 0)
    with open(f"/proc/{pid}/status", "rb") as f:
        for line in f:
            key, _, rest = line.partition(b":")
            name = key.decode()
            if name in values:
                values[name] = int(rest.split()[0]) * 1024
    return [values[name] for name in fields]


def process_memory_bytes(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) of process ``pid`` in bytes, from /proc/PID/status."""
    rss, hwm = status_kilobytes(pid, "VmRSS", "VmHWM")
    return rss, hwm


def resident_split_bytes(pid: int) -> tuple[int, int]:
    """(RssAnon, RssFile) of process ``pid`` in bytes: its own memory, and the pages of the
    files it maps (libraries' code, shared and dropped by the kernel under pressure)."""
    anon, file = status_kilobytes(pid, "RssAnon", "RssFile")
    return anon, file


def reset_peak_memory(pid: int) -> bool:
    """Reset process ``pid``'s VmHWM to its VmRSS now (``5`` to /proc/PID/clear_refs, Linux 4.0
    on), so that VmHWM read later is the peak since this call; False where that is refused."""
    try:
        with open(f"/proc/{pid}/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        return False
    return True


def node_busy_seconds() -> float:
    """CPU seconds all cores of the node spent busy (not idle, not iowait), from /proc/stat."""
    with open("/proc/stat", "rb") as f:
        ticks = [int(x) for x in f.readline().split()[1:]]
    return (sum(ticks) - ticks[3] - ticks[4]) / CLK_TCK


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q`` quantile (0..1) of ``values``, nearest rank; NaN when empty."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(q * (len(ordered) - 1))))
    return ordered[rank]


def cpu_per_pass(read_pass: Callable[[], None], passes: int, rounds: int = 5) -> float:
    """Median over ``rounds`` of the CPU seconds of one call of ``read_pass``."""
    results = []
    for _ in range(rounds):
        start = self_cpu_seconds()
        for _ in range(passes):
            read_pass()
        results.append((self_cpu_seconds() - start) / passes)
    return statistics.median(results)


def sleep_until(deadline: float) -> None:
    """Sleep until ``time.monotonic()`` reaches ``deadline`` (signals interrupt it)."""
    while (left := deadline - time.monotonic()) > 0:
        time.sleep(min(left, 1.0))


# ---------------------------------------------------------------------------------- the floor


@dataclass(frozen=True, slots=True)
class TickFiles:
    """The files finemon reads in a tick: every tick, and smaps_rollup at the PSS cadence."""

    every_tick: list[str]
    pss: list[str]

    def __len__(self) -> int:
        return len(self.every_tick) + len(self.pss)


def files_read_by(observer: NodeObserver) -> TickFiles:
    """Every file ``observer`` reads per tick: its containers' plans, cgroup.procs, process
    stat (every tick) and smaps_rollup (at the PSS cadence)."""
    every: list[str] = []
    pss: list[str] = []
    for state in observer._containers.values():
        every += [kept.path for kept, _ in state.sampler._every]
        every.append(f"{observer.hierarchy.scan_root}/{state.cgroup.relpath}/cgroup.procs")
        for pid in state.processes:
            every.append(f"/proc/{pid}/stat")
            pss.append(f"/proc/{pid}/smaps_rollup")
    return TickFiles(every, pss)


_Result = TypeVar("_Result")


def in_child(function: Callable[..., _Result], *args: object) -> _Result:
    """``function(*args)`` run in a fresh interpreter (spawned), its result sent back.

    What uses pyarrow, numpy or the observers runs there, so this process never maps those
    libraries: the kernel hands back no page another process maps, and finemon's release of the
    library pages it touched only while starting (monitor.memory_policy) would not show in its RSS
    while the benchmark maps the same files.
    """
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(1, mp_context=context) as pool:
        return pool.submit(function, *args).result()


def list_tick_files(log_root: Path, cgroup_root: Path | None) -> tuple[TickFiles, int]:
    """The files finemon would read on this node now, and how many containers it sees (run it
    :func:`in_child`: it imports capture and the observers)."""
    # Imported here, kept out of the benchmark's own process.
    import capture
    from capture.recorder import CaptureRecorder
    from observers.node import NodeObserver, ObserverConfig

    recorder = CaptureRecorder()
    capture.set_recorder(recorder)
    observer = NodeObserver(ObserverConfig(cgroup_root=cgroup_root, log_root=log_root))
    try:
        for _ in range(2):  # the second sample drops files this kernel lacks
            observer.sample()
            recorder.take_tick(recorder.current_tick())
            recorder.pop_ready()
        return files_read_by(observer), len(observer._containers)
    finally:
        observer.close()
        capture.set_recorder(None)


def read_open_close(files: Sequence[str]) -> None:
    """Read every file with open/read/close, no parsing (gone files are skipped)."""
    for path in files:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            continue
        try:
            os.read(fd, READ_SIZE)
        except OSError:
            pass
        os.close(fd)


def read_kept(fds: Sequence[int]) -> None:
    """Re-read every kept descriptor with one pread from offset 0."""
    for fd in fds:
        try:
            os.pread(fd, READ_SIZE, 0)
        except OSError:
            pass


@contextmanager
def kept_descriptors(files: Sequence[str]) -> Iterator[list[int]]:
    """Descriptors of ``files`` (those that open), closed afterwards."""
    fds: list[int] = []
    try:
        for path in files:
            try:
                fds.append(os.open(path, os.O_RDONLY | os.O_CLOEXEC))
            except OSError:
                pass
        yield fds
    finally:
        for fd in fds:
            os.close(fd)


@dataclass(frozen=True, slots=True)
class Floors:
    """CPU seconds per tick of reading finemon's inputs with no parsing.

    ``open_read_close`` and ``kept`` are read the way finemon reads: one pass per interval,
    paced like ticks (the caches of the CPU and the kernel cool between passes, as they do
    between finemon's samples). ``*_loop`` are the same passes back to back, caches hot: a lower
    bound no process that samples once per interval gets.
    """

    open_read_close: float
    kept: float
    open_read_close_loop: float = float("nan")
    kept_loop: float = float("nan")


def paced_floors(files: TickFiles, interval: float, pss_every: int, seconds: float) -> Floors:
    """Mean CPU per pass over ``seconds`` of passes paced at ``interval``: open/read/close at
    each tick's start, the kept descriptors half an interval later; smaps_rollup every
    ``pss_every``-th pass (finemon's PSS cadence)."""
    passes = max(5, round(seconds / interval))
    with kept_descriptors(files.every_tick) as every_fds, kept_descriptors(files.pss) as pss_fds:
        read_kept(every_fds + pss_fds)  # first read after open is not representative
        spent_open = spent_kept = 0.0
        start = time.monotonic()
        for n in range(passes):
            with_pss = n % pss_every == 0
            sleep_until(start + n * interval)
            begin = self_cpu_seconds()
            read_open_close(files.every_tick)
            if with_pss:
                read_open_close(files.pss)
            spent_open += self_cpu_seconds() - begin
            sleep_until(start + (n + 0.5) * interval)
            begin = self_cpu_seconds()
            read_kept(every_fds)
            if with_pss:
                read_kept(pss_fds)
            spent_kept += self_cpu_seconds() - begin
    return Floors(spent_open / passes, spent_kept / passes)


def measure_floors(
    files: TickFiles, interval: float, pss_interval: float, paced_seconds: float
) -> Floors:
    """The floors per tick, paced (see :class:`Floors`) and back to back (every-tick files
    plus smaps_rollup weighted by the share of ticks that read PSS)."""
    pss_every = max(1, round(pss_interval / interval))
    paced = paced_floors(files, interval, pss_every, paced_seconds)
    # About 0.5 s of CPU per round at every size.
    passes = max(3, min(200, 20_000 // max(1, len(files))))
    every = cpu_per_pass(lambda: read_open_close(files.every_tick), passes)
    pss = cpu_per_pass(lambda: read_open_close(files.pss), passes)
    with kept_descriptors(files.every_tick) as every_fds, kept_descriptors(files.pss) as pss_fds:
        read_kept(every_fds + pss_fds)
        kept_every = cpu_per_pass(lambda: read_kept(every_fds), passes)
        kept_pss = cpu_per_pass(lambda: read_kept(pss_fds), passes)
    return Floors(
        paced.open_read_close,
        paced.kept,
        every + pss / pss_every,
        kept_every + kept_pss / pss_every,
    )


# ---------------------------------------------------------------------------------- the node


def _write_cgroup_file(path: Path, value: str) -> bool:
    try:
        path.write_text(value)
    except OSError:
        return False
    return True


def throttle(box: KubeletSandbox, container: SandboxContainer, duty: float) -> bool:
    """Limit ``container`` to ``duty`` of one core with a CFS quota (v1 cpu or v2 cpu.max)."""
    quota = int(CFS_PERIOD_USEC * duty)
    cpu_v1 = box.hierarchy.v1.get("cpu")
    if cpu_v1 is not None:
        directory = cpu_v1 / container.relpath
        return _write_cgroup_file(
            directory / "cpu.cfs_period_us", str(CFS_PERIOD_USEC)
        ) and _write_cgroup_file(directory / "cpu.cfs_quota_us", str(quota))
    if box.hierarchy.unified is not None:
        cpu_max = box.hierarchy.unified / container.relpath / "cpu.max"
        return _write_cgroup_file(cpu_max, f"{quota} {CFS_PERIOD_USEC}")
    return False


def remove_container(box: KubeletSandbox, container: SandboxContainer) -> None:
    """Stop ``container`` and, as kubelet does, remove its pod's cgroup and log files too (the
    sandbox leaves them, and a churned node would otherwise pile up empty pod cgroups)."""
    box.stop_container(container)
    pod_relpath = container.relpath.rsplit("/", 1)[0]
    for root in box.roots:
        try:
            (root / pod_relpath).rmdir()
        except OSError:
            pass  # already gone, or shared; close() removes what is left
    if box.log_root is not None:
        link = (
            box.log_root
            / "containers"
            / f"{container.pod}_{container.namespace}_{container.name}-{container.container_id}.log"
        )
        link.unlink(missing_ok=True)
        shutil.rmtree(
            box.log_root / "pods" / f"{container.namespace}_{container.pod}_{container.pod_uid}",
            ignore_errors=True,
        )


def isolated_cgroup_root(box: KubeletSandbox, directory: Path) -> Path:
    """A cgroup root laid out like /sys/fs/cgroup whose hierarchies are symlinks to the
    sandbox's own subtree, so finemon (``--cgroup-root``) sees this node and nobody else's."""
    if not directory.exists():
        directory.mkdir(parents=True)
        for root in box.roots:
            name = "unified" if root == box.hierarchy.unified else root.name
            (directory / name).symlink_to(root / box.prefix, target_is_directory=True)
    return directory


class SyntheticNode:
    """N containers x 3 processes: idle ``sleep`` mostly, 1 in 20 with a 16 MiB ``hold``, and
    1 in 20 (at most :data:`MAX_BURNERS`) with a throttled ``burn``; grows and shrinks."""

    def __init__(self, box: KubeletSandbox) -> None:
        self.box = box
        self.containers: list[SandboxContainer] = []
        self.burners = 0
        self.holders = 0
        self._serial = 0

    def _workloads(self, index: int) -> list[tuple[str, Sequence[str]]]:
        idle: list[tuple[str, Sequence[str]]] = [("sleep", [])] * PROCESSES_PER_CONTAINER
        if index % 20 == 3 and self.burners < MAX_BURNERS:
            return [("burn", []), *idle[1:]]
        if index % 20 == 11:
            return [("hold", [str(HOLD_BYTES)]), *idle[1:]]
        return idle

    def add(self) -> SandboxContainer:
        index = len(self.containers)
        self._serial += 1
        workloads = self._workloads(index)
        container = self.box.add_container(
            f"bench-{self._serial}",
            "app",
            workloads,
            namespace="bench",
            qos=("burstable", "besteffort", "guaranteed")[index % 3],
        )
        if workloads[0][0] == "burn":
            if throttle(self.box, container, BURNER_DUTY):
                self.burners += 1
            else:  # an unthrottled burner would take a whole core: drop it
                remove_container(self.box, container)
                self.burners = MAX_BURNERS
                return self.add()
        elif workloads[0][0] == "hold":
            self.holders += 1
        self.containers.append(container)
        return container

    def resize(self, count: int) -> None:
        while len(self.containers) < count:
            self.add()
        while len(self.containers) > count:
            remove_container(self.box, self.containers.pop())


# ---------------------------------------------------------------------------------- finemon


def _die_with_parent() -> None:  # runs in the child, before exec
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Finemon:
    """The real ``finemon run`` as a subprocess; :meth:`stop` drains it, :meth:`kill` ends it."""

    def __init__(
        self,
        output_dir: Path,
        log_root: Path,
        interval_seconds: float,
        pss_interval_seconds: float,
        max_seconds: float,
        cgroup_root: Path | None,
        prometheus_port: int | None = None,
        extra_args: Sequence[str] = (),
    ) -> None:
        self.output_dir = output_dir
        self.log_path = output_dir.parent / f"{output_dir.name}.log"
        argv = [
            sys.executable,
            "-m",
            "finemon",
            "run",
            "--output-dir",
            str(output_dir),
            "--identifier",
            "bench",
            "--node-name",
            "bench-node",
            "--log-root",
            str(log_root),
            "--interval",
            f"{interval_seconds:g}",
            "--pss",
            "--pss-interval-seconds",
            f"{pss_interval_seconds:g}",
            "--duration",
            f"{max_seconds:g}",  # a safety net: the benchmark stops it long before
            "--log-level",
            "WARNING",
        ]
        if cgroup_root is not None:
            argv += ["--cgroup-root", str(cgroup_root)]
        if prometheus_port is not None:
            argv += ["--prometheus-port", str(prometheus_port)]
            argv += ["--prometheus-address", "127.0.0.1"]
        argv += extra_args
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,  # a Ctrl-C reaches the benchmark, which stops it
                preexec_fn=_die_with_parent,  # noqa: PLW1509 - no threads in the benchmark
            )

    @property
    def pid(self) -> int:
        return self.process.pid

    def check_alive(self) -> None:
        if self.process.poll() is not None:
            raise RuntimeError(f"finemon exited with {self.process.returncode}: {self.log_tail()}")

    def log_tail(self, lines: int = 5) -> str:
        try:
            text = self.log_path.read_text(errors="replace").strip().splitlines()
        except OSError:
            return "(no log)"
        return " | ".join(text[-lines:]) or "(empty log)"

    def stop(self, timeout_seconds: float = 120.0) -> int:
        """SIGTERM (finemon drains its window and publishes its file); its exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=timeout_seconds)
        except subprocess.TimeoutExpired:
            self.kill()
            raise RuntimeError(f"finemon did not stop within {timeout_seconds:g} s") from None

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


# ---------------------------------------------------------------------------------- --upload


class UploadTarget:
    """A local S3 server (moto in server mode) for ``--upload``: finemon ships its files there
    with ``--upload s3://bench/<phase>``, as a DaemonSet would to its bucket. (Without
    ``--upload-delete``: the benchmark reads the files afterwards; deleting does not change
    what the uploader holds in memory.)"""

    def __init__(self, work: Path) -> None:
        import boto3

        self.port = free_port()
        self.log_path = work / "moto.log"
        # Fake credentials for the benchmark's finemon (and its uploader), which inherit them.
        for name, value in (
            ("AWS_ACCESS_KEY_ID", "bench"),
            ("AWS_SECRET_ACCESS_KEY", "bench"),
            ("AWS_DEFAULT_REGION", "us-east-1"),
            ("AWS_EC2_METADATA_DISABLED", "true"),
        ):
            os.environ[name] = value
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
                stdout=log,
                stderr=log,
                start_new_session=True,
                preexec_fn=_die_with_parent,  # noqa: PLW1509 - no threads in the benchmark
            )
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    raise RuntimeError("the moto server did not start") from None
                time.sleep(0.1)
        self.client = boto3.client("s3", endpoint_url=self.endpoint)
        self.client.create_bucket(Bucket="bench")

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def flags(self, containers: int) -> list[str]:
        return [
            "--upload",
            f"s3://bench/c{containers}",
            "--upload-endpoint",
            self.endpoint,
        ]

    def parquet_files(self, containers: int) -> int:
        """Parquet objects the store holds for the phase of ``containers``."""
        reply = self.client.list_objects_v2(Bucket="bench", Prefix=f"c{containers}/")
        return sum(item["Key"].endswith(".parquet") for item in reply.get("Contents", ()))

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def uploader_pid(finemon_pid: int, timeout_seconds: float = 10.0) -> int:
    """The pid of finemon's uploader child (``python -m monitor.shipping``)."""
    deadline = time.monotonic() + timeout_seconds
    while time.monotonic() < deadline:
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
                cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            if ppid == finemon_pid and b"monitor.shipping" in cmdline:
                return int(entry)
        time.sleep(0.2)
    raise RuntimeError("finemon's uploader process was not found")


def wait_for_upload(store: UploadTarget, containers: int, timeout_seconds: float) -> int:
    """Wait until the store holds a Parquet file of this phase (the run manifest goes up
    first, at once); returns how many it holds."""
    deadline = time.monotonic() + timeout_seconds
    count = 0
    while time.monotonic() < deadline:
        count = store.parquet_files(containers)
        if count:
            return count
        time.sleep(1.0)
    return count


def wait_for_first_file(finemon: Finemon, timeout_seconds: float = 30.0) -> None:
    """Wait until finemon is recording (its current file exists)."""
    deadline = time.monotonic() + timeout_seconds
    while time.monotonic() < deadline:
        finemon.check_alive()
        if any(finemon.output_dir.glob("dt=*/identifier=*/.*.journal")):
            return
        time.sleep(0.2)
    raise RuntimeError(f"finemon did not start recording: {finemon.log_tail()}")


# ---------------------------------------------------------------------------------- output


@dataclass(frozen=True, slots=True)
class OwnRows:
    """finemon's own metrics in its output: tick times (Unix ms) and values per metric."""

    times_ms: dict[str, list[int]]
    values: dict[str, list[float]]

    def between(self, name: str, start_ms: int, end_ms: int) -> list[float]:
        return [
            v
            for t, v in zip(self.times_ms.get(name, []), self.values.get(name, []), strict=True)
            if start_ms <= t < end_ms
        ]


OWN_METRICS = (
    "finemon.tick.duration_seconds",
    "finemon.ticks_skipped",
    "finemon.containers",
    "finemon.self.rss_bytes",
)


def read_own_rows(output_dir: Path) -> OwnRows:
    """finemon's own metrics from the Parquet files under ``output_dir``."""
    import pyarrow as pa
    import pyarrow.dataset as ds

    dataset = ds.dataset(output_dir, format="parquet", partitioning="hive")
    table = dataset.to_table(
        columns=["time", "metric_name", "value_int", "value_float"],
        filter=ds.field("metric_name").isin(list(OWN_METRICS)),
    )
    times = table["time"].cast(pa.int64()).to_pylist()
    times_ms: dict[str, list[int]] = {}
    values: dict[str, list[float]] = {}
    for t, name, vi, vf in zip(
        times,
        table["metric_name"].to_pylist(),
        table["value_int"].to_pylist(),
        table["value_float"].to_pylist(),
        strict=True,
    ):
        value = vf if vf is not None else vi
        if value is None:
            continue
        times_ms.setdefault(name, []).append(t)
        values.setdefault(name, []).append(float(value))
    for name, name_times in times_ms.items():
        order = sorted(range(len(name_times)), key=name_times.__getitem__)
        times_ms[name] = [name_times[i] for i in order]
        values[name] = [values[name][i] for i in order]
    return OwnRows(times_ms, values)


def disk_usage(output_dir: Path) -> tuple[int, int]:
    """(bytes, rows) of every published Parquet file under ``output_dir``."""
    import pyarrow.parquet as pq

    size = rows = 0
    for path in output_dir.glob("dt=*/identifier=*/*.parquet"):
        size += path.stat().st_size
        rows += pq.read_metadata(path).num_rows
    return size, rows


def container_ids_in(output_dir: Path) -> set[str]:
    """Every distinct container_id in the output."""
    import pyarrow.compute as pc
    import pyarrow.dataset as ds

    dataset = ds.dataset(output_dir, format="parquet", partitioning="hive")
    column = dataset.to_table(columns=["container_id"])["container_id"]
    return {v for v in pc.unique(column).to_pylist() if v}


def count_live_series(port: int) -> int:
    """Sample lines on finemon's Prometheus endpoint (one per live series)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        body: bytes = response.read()
    return sum(1 for line in body.splitlines() if line and not line.startswith(b"#"))


# ---------------------------------------------------------------------------------- phases


@dataclass(frozen=True, slots=True)
class PhaseConfig:
    """One steady-node measurement: N containers at an interval."""

    containers: int
    interval_seconds: float
    pss_interval_seconds: float

    @property
    def label(self) -> str:
        return f"{self.containers} @ {1 / self.interval_seconds:g} Hz"


@dataclass(slots=True)
class PhaseResult:
    config: PhaseConfig
    seen_containers: int = 0
    files_per_tick: int = 0
    floors: Floors = field(default_factory=lambda: Floors(0.0, 0.0))
    ticks_sampled: int = 0
    cpu_per_tick: float = float("nan")
    wall_median: float = float("nan")
    wall_p95: float = float("nan")
    rss_bytes: int = 0
    hwm_bytes: int = 0
    #: VmHWM reset at the start of the window: the peak within it, between two ticks' readings
    #: too (0: the kernel refused the reset).
    window_hwm_bytes: int = 0
    #: RssAnon and RssFile at the end of the window (VmRSS is their sum, with RssShmem).
    anon_bytes: int = 0
    file_bytes: int = 0
    #: Median and maximum of finemon's own RSS over the window (finemon.self.rss_bytes, every
    #: tick): a single reading at the end lands anywhere in a flush's cycle of +-20 MB.
    rss_median_bytes: float = float("nan")
    rss_max_bytes: float = float("nan")
    bytes_per_row: float = float("nan")
    bytes_per_container_hour: float = float("nan")
    skipped_final: int = 0
    skipped_in_window: int = 0
    #: Cores the rest of the node kept busy during the window (workloads, other users).
    others_busy_cores: float = float("nan")
    #: With --upload: the uploader process (a child of finemon), measured after its first upload.
    uploader_rss_bytes: int = 0
    uploader_hwm_bytes: int = 0
    uploader_cpu_per_tick: float = float("nan")
    uploaded_files: int = 0
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def core_share(self) -> float:
        return self.cpu_per_tick / self.config.interval_seconds


def run_phase(
    config: PhaseConfig,
    node: SyntheticNode,
    work: Path,
    warmup: float,
    window: float,
    cgroup_root: Path | None,
    floor_seconds: float = 10.0,
    store: UploadTarget | None = None,
) -> PhaseResult:
    """Grow/shrink the node, measure the floors, then run finemon and measure it."""
    result = PhaseResult(config)
    started = time.monotonic()
    node.resize(config.containers)
    time.sleep(1.0)  # let the new processes settle (exec, first page faults)
    result.seconds["build"] = time.monotonic() - started

    started = time.monotonic()
    assert node.box.log_root is not None
    files, result.seen_containers = in_child(list_tick_files, node.box.log_root, cgroup_root)
    result.files_per_tick = len(files)
    result.floors = measure_floors(
        files, config.interval_seconds, config.pss_interval_seconds, floor_seconds
    )
    result.seconds["floor"] = time.monotonic() - started

    started = time.monotonic()
    output = work / f"finemon-{config.containers}-{config.interval_seconds:g}s"
    finemon = Finemon(
        output,
        node.box.log_root,
        config.interval_seconds,
        config.pss_interval_seconds,
        max_seconds=warmup + window + 300,
        cgroup_root=cgroup_root,
        extra_args=() if store is None else store.flags(config.containers),
    )
    try:
        wait_for_first_file(finemon)
        sleep_until(time.monotonic() + warmup)
        finemon.check_alive()
        uploader = None if store is None else uploader_pid(finemon.pid)
        up0 = 0.0 if uploader is None else process_cpu_seconds(uploader)
        # VmHWM since the start includes the priming sample's registration of every series;
        # the window's own peak is read apart.
        _, hwm_before = process_memory_bytes(finemon.pid)
        peak_reset = reset_peak_memory(finemon.pid)
        cpu0, busy0, t0 = process_cpu_seconds(finemon.pid), node_busy_seconds(), time.time()
        sleep_until(time.monotonic() + window)
        finemon.check_alive()
        cpu1, busy1, t1 = process_cpu_seconds(finemon.pid), node_busy_seconds(), time.time()
        result.others_busy_cores = (busy1 - busy0 - (cpu1 - cpu0)) / (t1 - t0)
        result.rss_bytes, window_hwm = process_memory_bytes(finemon.pid)
        result.anon_bytes, result.file_bytes = resident_split_bytes(finemon.pid)
        result.window_hwm_bytes = window_hwm if peak_reset else 0
        result.hwm_bytes = max(window_hwm, hwm_before)
        if store is not None and uploader is not None:
            up1 = process_cpu_seconds(uploader)
            result.uploader_cpu_per_tick = (up1 - up0) / ((t1 - t0) / config.interval_seconds)
            # Its memory once it has uploaded a file (the first rotation may come after the
            # window): VmHWM then includes an upload's peak.
            result.uploaded_files = wait_for_upload(store, config.containers, 150.0)
            result.uploader_rss_bytes, result.uploader_hwm_bytes = process_memory_bytes(uploader)
        code = finemon.stop()
        if code != 0:
            raise RuntimeError(f"finemon exited with {code}: {finemon.log_tail()}")
    finally:
        finemon.kill()
    result.seconds["finemon"] = time.monotonic() - started

    rows = in_child(read_own_rows, output)
    start_ms, end_ms = int(t0 * 1000), int(t1 * 1000)
    durations = rows.between("finemon.tick.duration_seconds", start_ms, end_ms)
    skipped = rows.values.get("finemon.ticks_skipped", [0.0])
    skipped_window = rows.between("finemon.ticks_skipped", start_ms, end_ms) or [0.0]
    before = rows.between("finemon.ticks_skipped", 0, start_ms)
    result.skipped_final = int(max(skipped))
    result.skipped_in_window = int(max(skipped_window) - (before[-1] if before else 0.0))
    result.ticks_sampled = max(1, len(durations) - result.skipped_in_window)
    result.cpu_per_tick = (cpu1 - cpu0) / result.ticks_sampled
    result.wall_median = percentile(durations, 0.5)
    own_rss = rows.between("finemon.self.rss_bytes", start_ms, end_ms)
    if own_rss:
        result.rss_median_bytes = statistics.median(own_rss)
        result.rss_max_bytes = max(own_rss)
    result.wall_p95 = percentile(durations, 0.95)
    seen = rows.between("finemon.containers", start_ms, end_ms)
    if seen:
        result.seen_containers = round(statistics.median(seen))
    size, row_count = in_child(disk_usage, output)
    all_times = rows.times_ms.get("finemon.tick.duration_seconds", [])
    if row_count and all_times:
        hours = ((all_times[-1] - all_times[0]) / 1000 + config.interval_seconds) / 3600
        result.bytes_per_row = size / row_count
        result.bytes_per_container_hour = size / (max(1, result.seen_containers) * hours)
    return result


@dataclass(slots=True)
class ChurnResult:
    seconds: float = 0.0
    created: int = 0
    destroyed: int = 0
    live_mean: float = 0.0
    #: (seconds since start, VmRSS bytes, live series, live containers) every 10 s.
    samples: list[tuple[float, int, int, int]] = field(default_factory=list)
    expected: int = 0
    found: int = 0
    missing_lifetimes: list[float] = field(default_factory=list)
    short_lived: int = 0
    short_found: int = 0
    skipped_final: int = 0
    timings: dict[str, float] = field(default_factory=dict)

    def steady_samples(self) -> list[tuple[float, int, int, int]]:
        """Samples once finemon is in its steady state: its accumulator window (60 s) full and
        its first file rotated (90 s), so from 100 s on (from half the run when it is shorter
        than 150 s, so that a few samples remain)."""
        ramp = 100.0 if self.seconds >= 150 else self.seconds / 2
        steady = [s for s in self.samples if s[0] >= ramp]
        return steady if len(steady) >= 2 else self.samples

    def _growth(self, values: Sequence[float]) -> tuple[float, float, float]:
        # The median of the first and of the last ENDS samples: a sample is a single reading
        # every 10 s, and one taken in the middle of a flush or a rotation must not decide.
        if not values:
            return float("nan"), float("nan"), float("nan")
        ends = min(ENDS, max(1, len(values) // 2))
        first, last = statistics.median(values[:ends]), statistics.median(values[-ends:])
        return first, last, (last - first) / first if first else float("nan")

    def growth(self, index: int) -> tuple[float, float, float]:
        """(start, end, relative growth) of sample field ``index`` over the steady part."""
        return self._growth([float(s[index]) for s in self.steady_samples()])

    def series_per_container(self) -> tuple[float, float, float]:
        """(start, end, relative growth) of live series per live container, steady part."""
        return self._growth([s[2] / max(1, s[3]) for s in self.steady_samples()])


def run_churn(
    box: KubeletSandbox,
    work: Path,
    seconds: float,
    every_seconds: float,
    live_target: int,
    seed: int,
    cgroup_root: Path | None,
) -> ChurnResult:
    """Create a container every ``every_seconds`` with a random lifetime averaging
    ``live_target * every_seconds`` while finemon records at 1 Hz; check its output."""
    assert box.log_root is not None
    result = ChurnResult(seconds=seconds)
    rng = random.Random(seed)
    mean_life = live_target * every_seconds
    port = free_port()
    output = work / "finemon-churn"
    started = time.monotonic()
    finemon = Finemon(
        output,
        box.log_root,
        1.0,
        1.0,
        seconds + 300,
        cgroup_root,
        prometheus_port=port,
        extra_args=("--prometheus-series", "all"),  # every series, as the files hold them
    )
    #: container, monotonic time it was up, monotonic time it is due to go.
    live: list[tuple[SandboxContainer, float, float]] = []
    lifetimes: dict[str, float] = {}
    live_counts: list[int] = []
    try:
        wait_for_first_file(finemon)
        result.timings["start"] = time.monotonic() - started
        begin = time.monotonic()
        next_step, next_sample = begin, begin + CHURN_SAMPLE_SECONDS
        serial = 0
        while (now := time.monotonic()) < begin + seconds:
            for entry in [e for e in live if e[2] <= now]:
                live.remove(entry)
                lifetimes[entry[0].container_id] = time.monotonic() - entry[1]
                remove_container(box, entry[0])
                result.destroyed += 1
            serial += 1
            container = box.add_container(
                f"churn-{serial}", "app", [("sleep", [])] * PROCESSES_PER_CONTAINER
            )
            up = time.monotonic()
            live.append((container, up, up + rng.uniform(0.02, 2 * mean_life - 0.02)))
            result.created += 1
            live_counts.append(len(live))
            if now >= next_sample:
                finemon.check_alive()
                rss, _ = process_memory_bytes(finemon.pid)
                result.samples.append((now - begin, rss, count_live_series(port), len(live)))
                next_sample += CHURN_SAMPLE_SECONDS
            next_step += every_seconds
            sleep_until(next_step)
        churn_end = time.monotonic()
        result.timings["churn"] = churn_end - begin
        for container, up, _ in live:
            lifetimes[container.container_id] = time.monotonic() - up
            remove_container(box, container)
            result.destroyed += 1
        live.clear()
        time.sleep(2.0)  # let finemon see the last removals
        code = finemon.stop()
        if code != 0:
            raise RuntimeError(f"finemon exited with {code}: {finemon.log_tail()}")
        result.timings["stop"] = time.monotonic() - churn_end
    finally:
        finemon.kill()
        for container, _, _ in live:
            remove_container(box, container)
    result.live_mean = statistics.fmean(live_counts) if live_counts else 0.0
    found = in_child(container_ids_in, output)
    for container_id, lifetime in lifetimes.items():
        if lifetime >= 1.0:
            result.expected += 1
            if container_id in found:
                result.found += 1
            else:
                result.missing_lifetimes.append(lifetime)
        else:
            result.short_lived += 1
            result.short_found += container_id in found
    skipped = in_child(read_own_rows, output).values.get("finemon.ticks_skipped", [0.0])
    result.skipped_final = int(max(skipped))
    return result


# ---------------------------------------------------------------------------------- report


def verdict(ok: bool) -> str:
    return "met" if ok else "NOT met"


def ms(seconds: float) -> str:
    return f"{seconds * 1e3:.2f} ms"


def percent(share: float) -> str:
    return f"{share * 100:.2f} %"


def render(rows: Sequence[Sequence[str]]) -> str:
    """A plain-text table; the first row is the header."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for n, row in enumerate(rows):
        cells = [
            cell.ljust(w) if i == 0 else cell.rjust(w)
            for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append("  ".join(cells).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def is_target_size(result: PhaseResult) -> bool:
    """Where the floor-ratio target applies: 100 and 500 containers at 1 Hz."""
    return result.config.containers >= 100 and result.config.interval_seconds == 1.0


def build_table(results: Sequence[PhaseResult], churn: ChurnResult | None) -> list[list[str]]:
    """Rows of the one table: a column per phase, then churn, then the target."""
    header = ["", *(r.config.label for r in results), "churn @ 1 Hz", "target"]
    table: list[list[str]] = [header]

    def row(name: str, cells: Sequence[str], churn_cell: str = "-", target: str = "") -> None:
        table.append([name, *cells, churn_cell, target])

    def marked(value: str, applies: bool, ok: bool) -> str:
        return f"{value} {verdict(ok)}" if applies else value

    row(
        "containers seen (x3 processes)",
        [str(r.seen_containers) for r in results],
        f"{churn.live_mean:.0f} live" if churn else "-",
    )
    row("files read per tick", [str(r.files_per_tick) for r in results])
    row("rest of node busy (cores)", [f"{r.others_busy_cores:.2f}" for r in results])
    row("ticks sampled in window", [str(r.ticks_sampled) for r in results])
    row("finemon CPU per tick", [ms(r.cpu_per_tick) for r in results])
    row("finemon % of one core", [percent(r.core_share) for r in results])
    row(
        "floor open/read/close per tick",
        [ms(r.floors.open_read_close) for r in results],
        target="paced: one pass per interval, as finemon reads",
    )
    row(
        "floor open/read/close % core",
        [percent(r.floors.open_read_close / r.config.interval_seconds) for r in results],
    )
    row("floor kept fd + pread per tick", [ms(r.floors.kept) for r in results])
    row(
        "floor kept fd % core",
        [percent(r.floors.kept / r.config.interval_seconds) for r in results],
    )
    row(
        "  same, back to back (hot caches)",
        [f"{ms(r.floors.open_read_close_loop)} / {ms(r.floors.kept_loop)}" for r in results],
        target="open/read/close / kept fd",
    )
    row(
        "finemon / open-read-close floor",
        [
            marked(
                f"{r.cpu_per_tick / r.floors.open_read_close:.2f}x",
                is_target_size(r),
                r.cpu_per_tick / r.floors.open_read_close <= TARGET_FLOOR_RATIO,
            )
            for r in results
        ],
        target=f"<= {TARGET_FLOOR_RATIO}x at 100, 500 @ 1 Hz",
    )
    row(
        "finemon / kept-fd floor",
        [
            marked(
                f"{r.cpu_per_tick / r.floors.kept:.2f}x",
                is_target_size(r),
                r.cpu_per_tick / r.floors.kept <= TARGET_KEPT_RATIO,
            )
            for r in results
        ],
        target="aim: <= 1.0x (the kept floor)",
    )
    row(
        "  same, back-to-back floors",
        [
            f"{r.cpu_per_tick / r.floors.open_read_close_loop:.2f}x / "
            f"{r.cpu_per_tick / r.floors.kept_loop:.2f}x"
            for r in results
        ],
        target="open/read/close / kept fd",
    )
    row("tick wall time median", [ms(r.wall_median) for r in results])
    row("tick wall time p95", [ms(r.wall_p95) for r in results])
    rss_cell = "-"
    if churn is not None and churn.samples:
        first, last, growth = churn.growth(1)
        rss_cell = marked(
            f"{first / MB:.0f}->{last / MB:.0f} MB ({growth:+.0%})", True, growth <= FLAT_GROWTH
        )
    # One reading at the end can land on a flush (a second or two, 20-50 MB more at 500
    # containers): the target is read on the median of the every-tick readings, and the
    # window's maximum is marked apart, so a peak is shown, not averaged away.
    row("VmRSS at end", [f"{r.rss_bytes / MB:.0f} MB" for r in results])
    row(
        "  of which anon / file pages",
        [f"{r.anon_bytes / MB:.0f} / {r.file_bytes / MB:.0f} MB" for r in results],
        target="file: the libraries' code pages (shared; the kernel can drop them)",
    )

    def median_and_max(r: PhaseResult) -> str:
        big = r.config.containers >= 500
        median = marked(
            f"{r.rss_median_bytes / MB:.0f}", big, r.rss_median_bytes < TARGET_RSS_BYTES
        )
        most = marked(f"{r.rss_max_bytes / MB:.0f} MB", big, r.rss_max_bytes < TARGET_RSS_BYTES)
        return f"{median} / {most}"

    row(
        "VmRSS median / max in window",
        [median_and_max(r) for r in results],
        rss_cell,
        f"< {TARGET_RSS_BYTES // MB} MB at 500 (finemon.self.rss_bytes, every tick); flat "
        f"(<= {FLAT_GROWTH:.0%}) under churn",
    )
    row(
        "VmHWM in window",
        [
            marked(
                f"{r.window_hwm_bytes / MB:.0f} MB",
                r.config.containers >= 500,
                r.window_hwm_bytes < TARGET_RSS_BYTES,
            )
            if r.window_hwm_bytes
            else "-"
            for r in results
        ],
        target="peak between the window's ticks too (VmHWM reset at its start)",
    )
    row(
        "VmHWM (peak since start)",
        [
            marked(
                f"{r.hwm_bytes / MB:.0f} MB",
                r.config.containers >= 500,
                r.hwm_bytes < TARGET_RSS_BYTES,
            )
            for r in results
        ],
    )
    if any(r.uploader_rss_bytes for r in results):
        # The uploader is a process of its own (python -m monitor.shipping): its memory is not
        # finemon's sampler's, and is shown apart, measured after its first upload.
        row(
            "uploader VmRSS / VmHWM",
            [
                f"{r.uploader_rss_bytes / MB:.0f} / {r.uploader_hwm_bytes / MB:.0f} MB"
                for r in results
            ],
            target="separate process (--upload)",
        )
        row("uploader CPU per tick", [ms(r.uploader_cpu_per_tick) for r in results])
        row("Parquet files uploaded when measured", [str(r.uploaded_files) for r in results])
    if churn is not None and churn.samples:
        first, last, growth = churn.growth(2)
        row(
            "live series (Prometheus)",
            ["-"] * len(results),
            f"{first:.0f}->{last:.0f} ({growth:+.0%})",
        )
        first, last, growth = churn.series_per_container()
        row(
            "live series per live container",
            ["-"] * len(results),
            marked(f"{first:.1f}->{last:.1f} ({growth:+.0%})", True, abs(growth) <= FLAT_GROWTH),
            f"flat (<= {FLAT_GROWTH:.0%})",
        )
    row(
        "bytes per row on disk",
        [
            marked(f"{r.bytes_per_row:.2f}", True, r.bytes_per_row < TARGET_BYTES_PER_ROW)
            for r in results
        ],
        target=f"< {TARGET_BYTES_PER_ROW}",
    )
    row("KB per container-hour", [f"{r.bytes_per_container_hour / 1000:.0f}" for r in results])
    row(
        "missed ticks: final (in window)",
        [
            marked(
                f"{r.skipped_final} ({r.skipped_in_window})",
                r.config.containers >= 500 or r.config.interval_seconds < 1.0,
                r.skipped_final == 0,
            )
            for r in results
        ],
        str(churn.skipped_final) if churn else "-",
        "0 at 500 @ 1 Hz and 100 @ 10 Hz",
    )
    if churn is not None:
        row(
            "churn: created / destroyed",
            ["-"] * len(results),
            f"{churn.created} / {churn.destroyed} ({churn.created / churn.seconds * 60:.0f}/min)",
        )
        row(
            "churn: lived >= 1 tick, found",
            ["-"] * len(results),
            marked(f"{churn.found}/{churn.expected}", True, churn.found == churn.expected),
            "all",
        )
        row(
            "churn: lived < 1 s, found anyway",
            ["-"] * len(results),
            f"{churn.short_found}/{churn.short_lived}",
        )
    return table


# ---------------------------------------------------------------------------------- main


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.node",
        description="End-to-end cost of finemon run on a synthetic node, against the floor.",
    )
    parser.add_argument("--quick", action="store_true", help="a short smoke run (about 2 min)")
    parser.add_argument(
        "--sizes", default=None, help="containers at 1 Hz, comma-separated (default: 10,100,500)"
    )
    parser.add_argument(
        "--fast-containers", type=int, default=100, help="containers at 10 Hz (0: skip)"
    )
    parser.add_argument("--fast-interval", type=float, default=0.1, metavar="S")
    parser.add_argument(
        "--warmup-seconds",
        type=float,
        default=None,
        metavar="S",
        help="finemon runs this long before the measured window (default 100, 5 with --quick)",
    )
    parser.add_argument(
        "--window-seconds",
        type=float,
        default=None,
        metavar="S",
        help="the measured window (default 60, 20 with --quick)",
    )
    parser.add_argument(
        "--floor-seconds",
        type=float,
        default=None,
        metavar="S",
        help="how long the paced floors read, one pass per interval (default 10, 5 with --quick)",
    )
    parser.add_argument(
        "--churn-seconds", type=float, default=None, metavar="S", help="0: no churn"
    )
    parser.add_argument("--churn-every-seconds", type=float, default=0.2, metavar="S")
    parser.add_argument("--churn-live", type=int, default=50, help="average live containers")
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument(
        "--scan",
        choices=("sandbox", "host"),
        default="sandbox",
        help="sandbox (default): finemon's --cgroup-root holds only this benchmark's cgroups, so "
        "other users' cgroups on a shared machine do not count; host: finemon scans the whole "
        "host as deployed",
    )
    parser.add_argument(
        "--keep", metavar="DIR", default=None, help="keep finemon's output and logs under DIR"
    )
    parser.add_argument(
        "--upload",
        action="store_true",
        help="run finemon with --upload to a local S3 server (moto, needs "
        "moto[server] and boto3) and report its uploader process's RSS and CPU apart from "
        "finemon's own",
    )
    args = parser.parse_args(argv)
    quick = args.quick
    if args.sizes is None:
        args.sizes = "10,100" if quick else "10,100,500"
    args.sizes = [int(s) for s in str(args.sizes).split(",") if s]
    if args.warmup_seconds is None:
        # Past the first fill of finemon's 60-tick window, its first flushes (nothing is
        # written before a tick leaves the window) and its first rotation at 90 s (after which
        # it hands back the library pages it touched only while starting): the measured window
        # is the steady state, the writer's CPU and memory included.
        args.warmup_seconds = 5.0 if quick else 100.0
    if args.window_seconds is None:
        args.window_seconds = 20.0 if quick else 60.0
    if args.churn_seconds is None:
        args.churn_seconds = 30.0 if quick else 300.0
    if args.floor_seconds is None:
        args.floor_seconds = 5.0 if quick else 10.0
    return args


def phases(args: argparse.Namespace) -> list[PhaseConfig]:
    """The steady-node phases, smallest node first so the node only grows."""
    configs = [PhaseConfig(n, 1.0, 1.0) for n in args.sizes]
    if args.fast_containers:
        configs.append(PhaseConfig(args.fast_containers, args.fast_interval, 1.0))
    return sorted(configs, key=lambda c: (c.containers, -c.interval_seconds))


def install_signal_handlers() -> None:
    """SIGINT/SIGTERM raise :class:`SignalledError` once, so every finally block tears down; a
    second signal during the teardown is ignored."""

    def handler(signum: int, frame: FrameType | None) -> None:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        raise SignalledError(signal.Signals(signum).name)

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)


def machine() -> str:
    memory_kib = 0
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                memory_kib = int(line.split()[1])
    return (
        f"{os.cpu_count()} cores, {memory_kib / 1024**2:.0f} GiB, Python "
        f"{sys.version.split()[0]}, kernel {os.uname().release}"
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    reason = sandbox_unavailable()
    if reason is not None:
        print(f"benchmarks.node: skipped, needs real cgroups: {reason}")
        return 0
    install_signal_handlers()
    results: list[PhaseResult] = []
    churn: ChurnResult | None = None
    timings: list[tuple[str, float]] = []
    cgroup_root: Path | None = None
    begun = time.monotonic()
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="finemon-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    store: UploadTarget | None = None
    try:
        if args.upload:
            store = UploadTarget(work)
        with KubeletSandbox(log_root=work / "logs") as box:
            print(
                f"benchmarks.node: {machine()}; cgroups {box.hierarchy.mode} under {box.prefix}; "
                f"finemon scans the {args.scan}"
            )
            node = SyntheticNode(box)
            if args.scan == "sandbox":
                node.resize(1)  # the sandbox's subtree exists from its first container
                cgroup_root = isolated_cgroup_root(box, work / "cgroup-root")
            for config in phases(args):
                print(f"  {config.label}: building, floor, finemon ...", flush=True)
                result = run_phase(
                    config,
                    node,
                    work,
                    args.warmup_seconds,
                    args.window_seconds,
                    cgroup_root,
                    args.floor_seconds,
                    store,
                )
                results.append(result)
                timings += [(f"{config.label} {k}", v) for k, v in result.seconds.items()]
            print(
                f"  node had {node.burners} throttled burners ({BURNER_DUTY:.0%} of a core each) "
                f"and {node.holders} 16 MiB holders",
                flush=True,
            )
            started = time.monotonic()
            node.resize(0)
            timings.append(("teardown of the steady node", time.monotonic() - started))
            if args.churn_seconds > 0:
                print(f"  churn for {args.churn_seconds:g} s ...", flush=True)
                started = time.monotonic()
                churn = run_churn(
                    box,
                    work,
                    args.churn_seconds,
                    args.churn_every_seconds,
                    args.churn_live,
                    args.seed,
                    cgroup_root,
                )
                timings.append(("churn total", time.monotonic() - started))
    except SignalledError as exc:
        print(f"benchmarks.node: interrupted by {exc}; the sandbox was torn down")
        return 130
    finally:
        if store is not None:
            store.close()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    print()
    print(render(build_table(results, churn)))
    if churn is not None and churn.samples:
        print(
            "\nchurn samples (s: VmRSS MB / live series / live containers): "
            + ", ".join(f"{t:.0f}: {r / MB:.0f}/{n}/{c}" for t, r, n, c in churn.samples)
        )
    if churn is not None and churn.missing_lifetimes:
        lifetimes = ", ".join(f"{s:.2f}" for s in sorted(churn.missing_lifetimes)[:10])
        print(f"\nmissing churned containers lived (s): {lifetimes}")
    print(f"\nwall time: {time.monotonic() - begun:.0f} s in all")
    for name, seconds in timings:
        print(f"  {name}: {seconds:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
