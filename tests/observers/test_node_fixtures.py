"""NodeObserver on fixture trees: exact values from the kernel-format fixture files.

Every tree is kubelet's systemd layout (``layouts.py``) under ``tmp_path`` with the files of
``fixtures/cgroup_v2/container`` or ``fixtures/cgroup_v1/container`` in each container and a
fake ``/proc`` whose processes have ``fixtures/proc/self``'s ``stat``, ``smaps_rollup`` and
``smaps``. Expected values are computed here from those files, never written down.

The observer keeps file descriptors open and re-reads them with ``pread``, so files are
rewritten in place (same inode) between samples, as the kernel's are regenerated.

Several tests here were first written against bugs found in src/observers (pressure totals that
are not finite, negative CPU time, series missing after a relabel, zombies, reused PIDs, a tiny
PSS budget, PSI disabled) and assert the fixed behaviour.
"""

from __future__ import annotations

import errno
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from layouts import (
    FIXTURES,
    PROC_FILES,
    Expected,
    Layout,
    cgroup_file,
    docker_host,
    install_kernel_files,
    systemd_v1,
    systemd_v2,
    write_pod_logs,
)

import capture
from capture.recorder import CaptureRecorder
from observers.hierarchy import NoCgroupMountError
from observers.node import NodeObserver, ObserverConfig, SampleReport

CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
NAMES = frozenset({"namespace", "pod_name", "container_name"})
IDS = frozenset({"container_id", "pod_uid", "qos_class"})


# ------------------------------------------------------------------------------------------
# the fixture files, parsed here independently of the readers
# ------------------------------------------------------------------------------------------


def flat(path: Path) -> dict[str, int]:
    return {
        key: int(value) for key, value in (line.split() for line in path.read_text().splitlines())
    }


def single(path: Path) -> int:
    return int(path.read_text())


def pressure(path: Path) -> dict[str, dict[str, float]]:
    out = {}
    for line in path.read_text().splitlines():
        kind, *fields = line.split()
        out[kind] = {k: float(v) for k, v in (f.split("=") for f in fields)}
    return out


def io_stat_totals(path: Path) -> dict[str, int]:
    totals = dict.fromkeys(("rbytes", "wbytes", "rios", "wios"), 0)
    for line in path.read_text().splitlines():
        for field in line.split()[1:]:
            key, value = field.split("=")
            if key in totals:
                totals[key] += int(value)
    return totals


def blkio_sums(path: Path) -> dict[str, int]:
    sums = {"Read": 0, "Write": 0}
    for line in path.read_text().splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[1] in sums:
            sums[parts[1]] += int(parts[2])
    return sums


def proc_stat(path: Path) -> dict[str, int]:
    fields = path.read_text().rsplit(")", 1)[1].split()  # fields[0] is field 3 (state)
    return {
        "utime": int(fields[11]),
        "stime": int(fields[12]),
        "threads": int(fields[17]),
        "starttime": int(fields[19]),
        "vsize": int(fields[20]),
        "rss_pages": int(fields[21]),
    }


def rollup_bytes(path: Path) -> dict[str, int]:
    lines = path.read_text().splitlines()[1:]
    return {line.split()[0].rstrip(":"): int(line.split()[1]) * 1024 for line in lines}


def smaps_regions(path: Path) -> dict[str, dict[str, int]]:
    regions: dict[str, dict[str, int]] = {}
    current: dict[str, int] = {}
    for line in path.read_bytes().split(b"\n"):
        first = line.split(b" ", 1)[0]
        if first in (b"Pss:", b"Rss:"):
            key = first.decode().rstrip(":")
            current[key] = current.get(key, 0) + int(line.split()[1]) * 1024
        elif line and not first.endswith(b":"):
            header = line.split(None, 5)
            name = header[5].decode(errors="replace") if len(header) == 6 else "[anon]"
            current = regions.setdefault(name, {})
    return regions


# ------------------------------------------------------------------------------------------
# trees, observer and recorder
# ------------------------------------------------------------------------------------------


def tree(base: Path, mode: str) -> Layout:
    """kubelet's systemd layout with the kernel files: containers[0] keeps the fixture's
    settings; containers[1] has no CPU, memory or pids limit on v2, and on v1 no CPU quota but
    a 512 MiB memory limit (the fixture has a quota and no memory limit)."""
    if mode == "v2":
        layout = install_kernel_files(systemd_v2(base))
        relpath = layout.expected[1].relpath
        cgroup_file(layout.fixture, relpath, "cpu.max").write_text("max 100000\n")
        cgroup_file(layout.fixture, relpath, "memory.max").write_text("max\n")
        cgroup_file(layout.fixture, relpath, "pids.max").write_text("max\n")
    else:
        layout = install_kernel_files(systemd_v1(base, mode=mode))  # type: ignore[arg-type]
        relpath = layout.expected[1].relpath
        cgroup_file(layout.fixture, relpath, "cpu.cfs_quota_us").write_text("-1\n")
        cgroup_file(layout.fixture, relpath, "memory.limit_in_bytes").write_text("536870912\n")
    return layout


def observer(layout: Layout, log_root: Path, **config: object) -> NodeObserver:
    fx = layout.fixture
    return NodeObserver(
        ObserverConfig(
            cgroup_root=fx.root,
            proc_root=fx.proc_root,
            log_root=log_root,
            node_name="n",
            **config,  # type: ignore[arg-type]
        )
    )


@pytest.fixture
def recorder() -> Iterator[CaptureRecorder]:
    installed = CaptureRecorder(global_labels={"node_name": "n"})
    capture.set_recorder(installed)
    yield installed
    capture.set_recorder(None)


def handles(recorder: CaptureRecorder, name: str | None = None, **match: str) -> list:
    """Live handles of ``name`` (any when None) whose labels include ``match``."""
    out = []
    for handle in recorder.live_handles():
        labels = dict(handle.labels)
        if (name is None or handle.name == name) and all(
            labels.get(k) == v for k, v in match.items()
        ):
            out.append(handle)
    return out


def value(recorder: CaptureRecorder, name: str, **match: str) -> float | int | None:
    """The value of the one live series ``name`` matching ``match``; None when there is none."""
    found = handles(recorder, name, **match)
    assert len(found) <= 1, found
    return found[0].value if found else None


def names_of(recorder: CaptureRecorder, **match: str) -> set[str]:
    return {h.name for h in handles(recorder, **match)}


def timed(obs: NodeObserver) -> tuple[SampleReport, float, float]:
    before = time.monotonic()
    report = obs.sample()
    return report, before, time.monotonic()


def clean(report: SampleReport) -> None:
    assert report.read_errors == 0, report.errors_by_reason


# ------------------------------------------------------------------------------------------
# derived memory, pids, throttling, OOM, PSI, IO: exact values from the fixture files
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["v2", "v1", "hybrid"])
def test_memory_from_the_fixture_files(
    tmp_path: Path, recorder: CaptureRecorder, mode: str
) -> None:
    layout = tree(tmp_path, mode)
    clean(observer(layout, tmp_path / "log").sample())
    fx = layout.fixture
    limited, unlimited = layout.expected[0], layout.expected[1]
    for container in layout.expected:
        cid = container.container_id
        assert cid is not None
        stat = flat(cgroup_file(fx, container.relpath, "memory.stat"))
        if mode == "v2":
            usage = single(cgroup_file(fx, container.relpath, "memory.current"))
            inactive_file, rss, cache = stat["inactive_file"], stat["anon"], stat["file"]
            swap = single(cgroup_file(fx, container.relpath, "memory.swap.current"))
        else:
            usage = single(cgroup_file(fx, container.relpath, "memory.usage_in_bytes"))
            inactive_file, rss = stat["total_inactive_file"], stat["total_rss"]
            cache, swap = stat["total_cache"], stat["total_swap"]
        assert value(recorder, "container.memory.usage_bytes", container_id=cid) == usage
        assert (
            value(recorder, "container.memory.working_set_bytes", container_id=cid)
            == usage - inactive_file
        )
        assert value(recorder, "container.memory.rss_bytes", container_id=cid) == rss
        assert value(recorder, "container.memory.cache_bytes", container_id=cid) == cache
        assert value(recorder, "container.memory.swap_bytes", container_id=cid) == swap
        assert (
            value(recorder, "cgroup.memory.stat.inactive_file", container_id=cid)
            == stat["inactive_file"]
        )
    limit = value(recorder, "container.memory.limit_bytes", container_id=limited.container_id)
    other = value(recorder, "container.memory.limit_bytes", container_id=unlimited.container_id)
    if mode == "v2":
        assert limit == single(cgroup_file(fx, limited.relpath, "memory.max"))
        assert other is None  # memory.max reads "max"
    else:
        # The fixture's memory.limit_in_bytes is the kernel's "unlimited" (>= 2**62).
        assert single(cgroup_file(fx, limited.relpath, "memory.limit_in_bytes")) >= 2**62
        assert limit is None
        assert other == single(cgroup_file(fx, unlimited.relpath, "memory.limit_in_bytes"))


@pytest.mark.parametrize("mode", ["v2", "v1", "hybrid"])
def test_throttling_oom_psi_io_and_pids_from_the_fixture_files(
    tmp_path: Path, recorder: CaptureRecorder, mode: str
) -> None:
    layout = tree(tmp_path, mode)
    clean(observer(layout, tmp_path / "log").sample())
    fx = layout.fixture
    container = layout.expected[0]
    cid = container.container_id
    assert cid is not None

    def get(name: str, **match: str) -> float | int | None:
        return value(recorder, name, container_id=cid, **match)

    def file(name: str) -> Path:
        return cgroup_file(fx, container.relpath, name)

    cpu = flat(file("cpu.stat"))
    assert get("container.cpu.periods") == cpu["nr_periods"]
    assert get("container.cpu.throttled_periods") == cpu["nr_throttled"]
    if mode == "v2":
        assert get("container.cpu.throttled_usec") == cpu["throttled_usec"]
        events = flat(file("memory.events"))
        assert get("container.memory.oom_kills") == events["oom_kill"]
        assert get("container.memory.oom_events") == events["oom"]
        totals = io_stat_totals(file("io.stat"))
        io = (totals["rbytes"], totals["wbytes"], totals["rios"], totals["wios"])
        for line in file("io.stat").read_text().splitlines():
            device, *fields = line.split()
            for key, raw in (f.split("=") for f in fields):
                assert get(f"cgroup.io.stat.{key}", device=device) == int(raw)
    else:
        assert get("container.cpu.throttled_usec") == cpu["throttled_time"] // 1000
        assert get("container.memory.oom_kills") == flat(file("memory.oom_control"))["oom_kill"]
        assert get("container.memory.oom_events") is None
        service = blkio_sums(file("blkio.throttle.io_service_bytes"))
        serviced = blkio_sums(file("blkio.throttle.io_serviced"))
        io = (service["Read"], service["Write"], serviced["Read"], serviced["Write"])
        assert get("cgroup.blkio.throttle.io_service_bytes.read", device="8:16") == 1459200
    for name, total in zip(("read_bytes", "write_bytes", "read_ops", "write_ops"), io, strict=True):
        assert get(f"container.io.{name}") == total, name
    assert get("container.pids.current") == single(file("pids.current"))
    for resource in ("cpu", "memory", "io"):
        for kind in ("some", "full"):
            avg10 = get(f"container.{resource}.psi.{kind}.avg10_percent")
            stall = get(f"container.{resource}.psi.{kind}.stall_usec")
            if mode == "v1":  # no unified hierarchy, no PSI
                assert avg10 is None and stall is None
                continue
            expected = pressure(file(f"{resource}.pressure"))[kind]
            assert avg10 == expected["avg10"]
            assert stall == int(expected["total"])
            for key in ("avg10", "avg60", "avg300"):
                assert get(f"cgroup.{resource}.pressure.{kind}.{key}") == expected[key]
            assert get(f"cgroup.{resource}.pressure.{kind}.total") == int(expected["total"])


# ------------------------------------------------------------------------------------------
# CPU rates
# ------------------------------------------------------------------------------------------

USER_TICKS, SYSTEM_TICKS = 30, 20
USEC_PER_TICK = 1_000_000 // CLK_TCK
USER_USEC, SYSTEM_USEC = USER_TICKS * USEC_PER_TICK, SYSTEM_TICKS * USEC_PER_TICK
DELTA_USEC = USER_USEC + SYSTEM_USEC


def write_flat(path: Path, values: dict[str, int]) -> None:
    path.write_text("".join(f"{key} {number}\n" for key, number in values.items()))


def add_cpu_time(layout: Layout, container: Expected, usage_usec: int, mode: str) -> None:
    """Advance the container's CPU counters as the kernel would: usage by ``usage_usec`` (user
    and system in proportion), and throttling by 10 periods, 3 throttled, 5000 usec."""
    fx, rel = layout.fixture, container.relpath
    user, system = usage_usec * 3 // 5, usage_usec * 2 // 5
    cpu = flat(cgroup_file(fx, rel, "cpu.stat"))
    cpu["nr_periods"] += 10
    cpu["nr_throttled"] += 3
    if mode == "v2":
        cpu["usage_usec"] += usage_usec
        cpu["user_usec"] += user
        cpu["system_usec"] += system
        cpu["throttled_usec"] += 5000
    else:
        cpu["throttled_time"] += 5000 * 1000
        usage = cgroup_file(fx, rel, "cpuacct.usage")
        usage.write_text(f"{single(usage) + usage_usec * 1000}\n")
        stat = flat(cgroup_file(fx, rel, "cpuacct.stat"))
        stat["user"] += user // USEC_PER_TICK
        stat["system"] += system // USEC_PER_TICK
        write_flat(cgroup_file(fx, rel, "cpuacct.stat"), stat)
    write_flat(cgroup_file(fx, rel, "cpu.stat"), cpu)


def bounds(delta_usec: int, first: tuple[float, float], second: tuple[float, float]) -> tuple:
    """Millicores of ``delta_usec`` used between two reads, each made within its window of
    monotonic seconds: the longest and shortest possible elapsed time."""
    (before1, after1), (before2, after2) = first, second
    return delta_usec / (after2 - before1) / 1000, delta_usec / (before2 - after1) / 1000


@pytest.mark.parametrize("mode", ["v2", "v1"])
def test_cpu_millicores_and_percent_from_two_samples(
    tmp_path: Path, recorder: CaptureRecorder, mode: str
) -> None:
    layout = tree(tmp_path, mode)
    obs = observer(layout, tmp_path / "log")
    limited, unlimited = layout.expected[0], layout.expected[1]
    report, *first = timed(obs)
    clean(report)
    time.sleep(0.1)
    for container in (limited, unlimited):
        add_cpu_time(layout, container, DELTA_USEC, mode)
    report, *second = timed(obs)
    clean(report)
    low, high = bounds(DELTA_USEC, tuple(first), tuple(second))  # type: ignore[arg-type]
    fx = layout.fixture
    if mode == "v2":
        quota, period = map(int, cgroup_file(fx, limited.relpath, "cpu.max").read_text().split())
    else:
        quota = single(cgroup_file(fx, limited.relpath, "cpu.cfs_quota_us"))
        period = single(cgroup_file(fx, limited.relpath, "cpu.cfs_period_us"))
    limit_millicores = quota / period * 1000
    for container, capacity in (
        (limited, limit_millicores),
        (unlimited, (os.cpu_count() or 1) * 1000),
    ):
        cid = container.container_id
        assert cid is not None
        millicores = value(recorder, "container.cpu.usage_millicores", container_id=cid)
        assert millicores is not None
        assert low * (1 - 1e-9) <= millicores <= high * (1 + 1e-9)
        percent = value(recorder, "container.cpu.usage_percent", container_id=cid)
        assert percent == pytest.approx(millicores / capacity * 100)
        user = value(recorder, "container.cpu.user_millicores", container_id=cid)
        system = value(recorder, "container.cpu.system_millicores", container_id=cid)
        assert user is not None and system is not None
        assert user + system == pytest.approx(millicores)
        assert user == pytest.approx(millicores * 3 / 5)
        user_percent = value(recorder, "container.cpu.user_percent", container_id=cid)
        system_percent = value(recorder, "container.cpu.system_percent", container_id=cid)
        assert user_percent == pytest.approx(user / capacity * 100)
        assert system_percent == pytest.approx(system / capacity * 100)
        assert user_percent + system_percent == pytest.approx(percent)
        cpu = flat(cgroup_file(fx, container.relpath, "cpu.stat"))
        assert value(recorder, "container.cpu.periods", container_id=cid) == cpu["nr_periods"]
        assert (
            value(recorder, "container.cpu.throttled_periods", container_id=cid)
            == cpu["nr_throttled"]
        )
        throttled = cpu["throttled_usec"] if mode == "v2" else cpu["throttled_time"] // 1000
        assert value(recorder, "container.cpu.throttled_usec", container_id=cid) == throttled
    assert value(
        recorder, "container.cpu.limit_millicores", container_id=limited.container_id
    ) == pytest.approx(limit_millicores)
    assert (
        value(recorder, "container.cpu.limit_millicores", container_id=unlimited.container_id)
        is None
    )
    # An idle container (files unchanged) has a rate of exactly 0.
    idle = layout.expected[2].container_id
    assert idle is not None
    assert value(recorder, "container.cpu.usage_millicores", container_id=idle) == 0


RATES = (
    "container.cpu.usage_millicores",
    "container.cpu.usage_percent",
    "container.cpu.user_millicores",
    "container.cpu.system_millicores",
    "container.cpu.user_percent",
    "container.cpu.system_percent",
    "process.cpu.usage_millicores",
    "process.cpu.usage_percent",
    "process.cpu.user_percent",
    "process.cpu.system_percent",
)


def test_a_cgroup_subtree_is_checked_at_start_and_named_in_the_manifest(
    tmp_path: Path, recorder: CaptureRecorder
) -> None:
    layout = systemd_v2(tmp_path / "tree")
    with pytest.raises(NoCgroupMountError, match=r"no cgroup missing\.slice under "):
        observer(layout, tmp_path / "logs", cgroup_subtree="missing.slice")
    node = observer(layout, tmp_path / "logs", cgroup_subtree="kubepods.slice/")
    try:
        described = node.describe()
        assert described["cgroup_subtree"] == "kubepods.slice"
        assert described["layout"] == "host"  # no kubepods directory below it
        assert node.sample().containers > 0
    finally:
        node.close()


def test_first_sample_is_only_a_baseline(tmp_path: Path, recorder: CaptureRecorder) -> None:
    layout = tree(tmp_path, "v2")
    obs = observer(layout, tmp_path / "log")
    clean(obs.sample())
    emitted = names_of(recorder)
    assert "container.cpu.usage_usec" in emitted and "process.cpu.time_usec" in emitted
    assert not emitted & set(RATES)
    time.sleep(0.02)
    clean(obs.sample())
    assert set(RATES) <= names_of(recorder)


def test_counter_reset_gives_no_negative_or_spiking_rate(
    tmp_path: Path, recorder: CaptureRecorder
) -> None:
    layout = tree(tmp_path, "v2")
    obs = observer(layout, tmp_path / "log")
    container = layout.expected[0]
    cid = container.container_id
    assert cid is not None
    path = cgroup_file(layout.fixture, container.relpath, "cpu.stat")
    clean(obs.sample())
    # The counter goes down (a restarted container reusing the cgroup): a new baseline.
    restarted = flat(path)
    for key in ("usage_usec", "user_usec", "system_usec"):
        restarted[key] = 1000
    write_flat(path, restarted)
    time.sleep(0.02)
    report, *second = timed(obs)
    clean(report)
    assert value(recorder, "container.cpu.usage_millicores", container_id=cid) is None
    assert value(recorder, "container.cpu.usage_usec", container_id=cid) == 1000
    time.sleep(0.05)
    add_cpu_time(layout, container, DELTA_USEC, "v2")
    report, *third = timed(obs)
    clean(report)
    low, high = bounds(DELTA_USEC, tuple(second), tuple(third))  # type: ignore[arg-type]
    millicores = value(recorder, "container.cpu.usage_millicores", container_id=cid)
    assert millicores is not None
    assert low * (1 - 1e-9) <= millicores <= high * (1 + 1e-9)
    for name in RATES:
        for handle in handles(recorder, name):
            assert handle.value >= 0, handle


# ------------------------------------------------------------------------------------------
# processes and PSS
# ------------------------------------------------------------------------------------------


def test_process_metrics_from_the_fixture_files(tmp_path: Path, recorder: CaptureRecorder) -> None:
    layout = tree(tmp_path, "v2")
    report = observer(layout, tmp_path / "log").sample()
    clean(report)
    stat = proc_stat(PROC_FILES / "stat")
    rollup = rollup_bytes(PROC_FILES / "smaps_rollup")
    assert report.processes == report.pss_reads == sum(len(c.pids) for c in layout.expected)
    assert report.pss_deferred == 0
    for container in layout.expected:
        cid = container.container_id
        assert cid is not None
        for pid in container.pids:

            def get(name: str, pid: int = pid, cid: str = cid) -> float | int | None:
                return value(recorder, name, container_id=cid, pid=str(pid), comm="python3")

            ticks = stat["utime"] + stat["stime"]
            assert get("process.cpu.time_usec") == ticks * 1_000_000 // CLK_TCK
            assert get("process.threads") == stat["threads"]
            assert get("process.memory.rss_bytes") == stat["rss_pages"] * PAGE_SIZE
            assert get("process.memory.virtual_bytes") == stat["vsize"]
            assert get("process.memory.pss_bytes") == rollup["Pss"]
            assert get("process.memory.pss_anon_bytes") == rollup["Pss_Anon"]
            assert get("process.memory.pss_file_bytes") == rollup["Pss_File"]
            assert get("process.memory.pss_shmem_bytes") == rollup["Pss_Shmem"]
            assert get("process.memory.swap_bytes") == rollup["Swap"]
            assert get("process.memory.swap_pss_bytes") == rollup["SwapPss"]
            for key, size in rollup.items():
                assert get(f"proc.smaps_rollup.{key.lower()}_bytes") == size
        assert value(recorder, "container.processes", container_id=cid) == len(container.pids)
        assert value(recorder, "container.memory.pss_bytes", container_id=cid) == rollup[
            "Pss"
        ] * len(container.pids)


def add_process_cpu(path: Path, user_ticks: int, system_ticks: int) -> None:
    """Advance utime (field 14) and stime (field 15) of a fixture ``/proc/<pid>/stat`` in place."""
    fields = path.read_text().split(" ")
    fields[13] = str(int(fields[13]) + user_ticks)
    fields[14] = str(int(fields[14]) + system_ticks)
    path.write_text(" ".join(fields))


@pytest.mark.parametrize("mode", ["v2", "v1"])
def test_process_cpu_percent_from_two_samples(
    tmp_path: Path, recorder: CaptureRecorder, mode: str
) -> None:
    layout = tree(tmp_path, mode)
    obs = observer(layout, tmp_path / "log")
    limited, unlimited = layout.expected[0], layout.expected[1]
    report, *first = timed(obs)
    clean(report)
    time.sleep(0.1)
    for container in (limited, unlimited):
        add_process_cpu(layout.fixture.proc_root / str(container.pids[0]) / "stat", 30, 20)
    report, *second = timed(obs)
    clean(report)
    fx = layout.fixture
    if mode == "v2":
        quota, period = map(int, cgroup_file(fx, limited.relpath, "cpu.max").read_text().split())
    else:
        quota = single(cgroup_file(fx, limited.relpath, "cpu.cfs_quota_us"))
        period = single(cgroup_file(fx, limited.relpath, "cpu.cfs_period_us"))
    usec = 1_000_000 // CLK_TCK
    low, high = bounds(50 * usec, tuple(first), tuple(second))  # type: ignore[arg-type]
    for container, capacity in (
        (limited, quota / period * 1000),
        (unlimited, (os.cpu_count() or 1) * 1000),
    ):
        busy = str(container.pids[0])

        def get(name: str, pid: str, cid: str = str(container.container_id)) -> float | None:
            return value(recorder, name, container_id=cid, pid=pid)

        millicores = get("process.cpu.usage_millicores", busy)
        assert millicores is not None
        assert low * (1 - 1e-9) <= millicores <= high * (1 + 1e-9)
        percent = get("process.cpu.usage_percent", busy)
        user_percent = get("process.cpu.user_percent", busy)
        system_percent = get("process.cpu.system_percent", busy)
        assert percent == pytest.approx(millicores / capacity * 100)
        assert user_percent == pytest.approx(percent * 30 / 50)
        assert system_percent == pytest.approx(percent * 20 / 50)
    # The limited container's other processes did not run.
    for pid in limited.pids[1:]:
        for name in RATES:
            if name.startswith("process."):
                assert value(recorder, name, pid=str(pid)) == 0
    # The next sample without CPU time: every rate of the busy process drops to exactly 0.
    time.sleep(0.02)
    clean(obs.sample())
    for name in RATES:
        if name.startswith("process."):
            assert value(recorder, name, pid=str(limited.pids[0])) == 0


def test_pss_has_its_own_cadence(tmp_path: Path, recorder: CaptureRecorder) -> None:
    layout = tree(tmp_path, "v2")
    processes = sum(len(c.pids) for c in layout.expected)
    obs = observer(layout, tmp_path / "log", pss_interval_seconds=0.5)
    assert obs.sample().pss_reads == processes
    second = obs.sample()  # not due yet: the values hold
    assert (second.pss_reads, second.pss_deferred) == (0, 0)
    assert len(handles(recorder, "process.memory.pss_bytes")) == processes
    time.sleep(0.5)
    assert obs.sample().pss_reads == processes
    assert value(recorder, "finemon.pss.reads") == 2 * processes


def test_zero_pss_budget_defers_and_counts(tmp_path: Path, recorder: CaptureRecorder) -> None:
    layout = tree(tmp_path, "v2")
    processes = sum(len(c.pids) for c in layout.expected)
    report = observer(layout, tmp_path / "log", pss_budget_seconds=0.0).sample()
    clean(report)
    assert report.pss_reads + report.pss_deferred == processes
    assert report.pss_deferred >= processes - 1
    assert value(recorder, "finemon.pss.deferred") == report.pss_deferred
    assert len(handles(recorder, "process.memory.pss_bytes")) == report.pss_reads


def test_a_tiny_pss_budget_still_reads_the_oldest_process_each_tick(
    tmp_path: Path, recorder: CaptureRecorder
) -> None:
    layout = tree(tmp_path, "v2")
    obs = observer(layout, tmp_path / "log", pss_budget_seconds=0.0, pss_interval_seconds=0.0)
    reads = [obs.sample().pss_reads for _ in range(3)]
    assert all(count >= 1 for count in reads), reads


def test_smaps_regions_are_opt_in(tmp_path: Path, recorder: CaptureRecorder) -> None:
    layout = tree(tmp_path, "v2")
    clean(observer(layout, tmp_path / "off").sample())
    assert not {n for n in names_of(recorder) if n.startswith("process.memory.region.")}
    capture.set_recorder(recorder := CaptureRecorder(global_labels={"node_name": "n"}))
    clean(observer(layout, tmp_path / "on", smaps=True).sample())
    regions = smaps_regions(PROC_FILES / "smaps")
    assert "[heap]" in regions and "[anon]" in regions and len(regions) > 10
    pid = str(layout.expected[0].pids[0])
    emitted = handles(recorder, "process.memory.region.pss_bytes", pid=pid)
    assert {dict(h.labels)["region"]: h.value for h in emitted} == {
        region: sizes["Pss"] for region, sizes in regions.items()
    }
    emitted = handles(recorder, "process.memory.region.rss_bytes", pid=pid)
    assert {dict(h.labels)["region"]: h.value for h in emitted} == {
        region: sizes["Rss"] for region, sizes in regions.items()
    }


# ------------------------------------------------------------------------------------------
# labels and pod metadata
# ------------------------------------------------------------------------------------------

POD_NAMES = {
    "web": ("team-a", "web-6d4cf56db6-x7k2p"),
    "batch": ("jobs", "batch-29"),
    "db": ("data", "db-0"),
}


def pod_names(layout: Layout) -> dict[str, tuple[str, str, str]]:
    """container id -> (namespace, pod name, container name) for every container of the
    standard pods (web: two containers, batch, db)."""
    out = {}
    labels = ("web", "web", "batch", "db")
    for index, (container, pod) in enumerate(zip(layout.expected, labels, strict=True)):
        assert container.container_id is not None
        namespace, pod_name = POD_NAMES[pod]
        out[container.container_id] = (namespace, pod_name, f"{pod}-{index}")
    return out


def log(log_root: Path, layout: Layout, container: Expected) -> None:
    assert container.container_id is not None
    namespace, pod_name, name = pod_names(layout)[container.container_id]
    write_pod_logs(log_root, container, namespace=namespace, pod_name=pod_name, container_name=name)


def container_series(recorder: CaptureRecorder, container: Expected) -> list:
    return [
        h
        for h in recorder.live_handles()
        if dict(h.labels).get("container_id") == container.container_id
    ]


@pytest.mark.parametrize("mode", ["v2", "v1", "hybrid"])
def test_standard_labels_on_every_series(
    tmp_path: Path, recorder: CaptureRecorder, mode: str
) -> None:
    layout = tree(tmp_path, mode)
    for container in layout.expected:
        log(tmp_path / "log", layout, container)
    clean(observer(layout, tmp_path / "log").sample())
    assert recorder.global_labels == (("node_name", "n"),)
    names = pod_names(layout)
    for handle in recorder.live_handles():
        labels = dict(handle.labels)
        if handle.name.startswith("finemon."):
            assert set(labels) <= {"reason"}, handle
            continue
        cid = labels["container_id"]
        container = next(c for c in layout.expected if c.container_id == cid)
        namespace, pod_name, name = names[cid]
        expected = {
            "container_id": cid,
            "pod_uid": container.pod_uid,
            "qos_class": container.qos_class,
            "namespace": namespace,
            "pod_name": pod_name,
            "container_name": name,
        }
        assert {k: labels[k] for k in expected} == expected, handle
        extra = set(labels) - set(expected)
        if handle.name.startswith(("process.", "proc.")):
            assert labels["comm"] == "python3" and int(labels["pid"]) in container.pids
            extra -= {"pid", "comm", "region"}
        assert extra <= {"device"}, handle
    assert {dict(h.labels)["qos_class"] for h in handles(recorder, "container.pids.current")} == {
        "Burstable",
        "BestEffort",
        "Guaranteed",
    }


def test_pod_directory_without_container_link_gives_pod_names(
    tmp_path: Path, recorder: CaptureRecorder
) -> None:
    layout = tree(tmp_path, "v2")
    container = layout.expected[2]  # the batch pod
    namespace, pod_name = POD_NAMES["batch"]
    (tmp_path / "log" / "pods" / f"{namespace}_{pod_name}_{container.pod_uid}").mkdir(parents=True)
    clean(observer(layout, tmp_path / "log").sample())
    (series,) = handles(recorder, "container.pids.current", pod_uid=str(container.pod_uid))
    labels = dict(series.labels)
    assert labels["namespace"] == namespace and labels["pod_name"] == pod_name
    assert "container_name" not in labels


def test_container_gains_names_when_its_log_entries_appear(
    tmp_path: Path, recorder: CaptureRecorder
) -> None:
    layout = tree(tmp_path, "v2")
    *others, late = layout.expected  # the db pod: no other container gives its pod's names
    for container in others:
        log(tmp_path / "log", layout, container)
    obs = observer(layout, tmp_path / "log")
    clean(obs.sample())
    before = container_series(recorder, late)
    assert before
    for handle in before:
        assert set(dict(handle.labels)) & (NAMES | IDS) == IDS, handle
    assert {h.name for h in before} >= {"container.memory.usage_bytes", "process.threads"}
    log(tmp_path / "log", layout, late)
    time.sleep(0.02)
    clean(obs.sample())
    after = container_series(recorder, late)
    namespace, pod_name, name = pod_names(layout)[str(late.container_id)]
    for handle in after:  # the nameless series ended; all that is live has the names
        labels = dict(handle.labels)
        assert (labels["namespace"], labels["pod_name"], labels["container_name"]) == (
            namespace,
            pod_name,
            name,
        ), handle
        assert {k: labels[k] for k in IDS} == {
            "container_id": late.container_id,
            "pod_uid": late.pod_uid,
            "qos_class": late.qos_class,
        }
    assert not set(map(id, before)) & set(map(id, after))
    every_tick = {
        "container.memory.usage_bytes",
        "container.memory.working_set_bytes",
        "container.cpu.usage_usec",
        "container.cpu.limit_millicores",
        "container.memory.limit_bytes",
        "cgroup.memory.stat.anon",
        "cgroup.cpu.stat.usage_usec",
        "process.threads",
        "process.cpu.time_usec",
    }
    assert every_tick <= {h.name for h in after}
    # Rates carry on across the switch: the second reading gives a rate under the new labels.
    assert "container.cpu.usage_millicores" in {h.name for h in after}


def test_every_series_continues_under_the_names_at_once(
    tmp_path: Path, recorder: CaptureRecorder
) -> None:
    layout = tree(tmp_path, "v2")
    late = layout.expected[0]
    obs = observer(layout, tmp_path / "log")
    clean(obs.sample())
    before = {h.name for h in container_series(recorder, late)}
    log(tmp_path / "log", layout, late)
    time.sleep(0.02)
    clean(obs.sample())
    after = {h.name for h in container_series(recorder, late)}
    assert before - after == set()


def test_labels_on_a_host_without_kubelet(tmp_path: Path, recorder: CaptureRecorder) -> None:
    layout = install_kernel_files(docker_host(tmp_path, "v2"))
    obs = observer(layout, tmp_path / "log")
    clean(obs.sample())
    assert obs.mode == "host"
    for container in layout.expected:
        series = handles(recorder, cgroup=container.relpath)
        assert series, container.relpath
        for handle in series:
            labels = dict(handle.labels)
            assert labels.get("container_id") == container.container_id
            assert not set(labels) & {"pod_uid", "qos_class", *NAMES}


# ------------------------------------------------------------------------------------------
# containers and processes that go away
# ------------------------------------------------------------------------------------------


def test_removed_container_has_its_series_ended(tmp_path: Path, recorder: CaptureRecorder) -> None:
    layout = tree(tmp_path, "v2")
    obs = observer(layout, tmp_path / "log")
    clean(obs.sample())
    gone, *kept = layout.expected
    assert container_series(recorder, gone)
    kept_before = {h.sid for c in kept for h in container_series(recorder, c)}
    for hierarchy in layout.fixture.hierarchies:
        shutil.rmtree(hierarchy / gone.relpath)
    report = obs.sample()
    clean(report)
    assert report.containers == len(kept)
    assert container_series(recorder, gone) == []
    for pid in gone.pids:
        assert handles(recorder, pid=str(pid)) == []
    assert kept_before <= {h.sid for c in kept for h in container_series(recorder, c)}


def test_vanished_processes_are_dropped_quietly(tmp_path: Path, recorder: CaptureRecorder) -> None:
    layout = tree(tmp_path, "v2")
    container = layout.expected[0]  # three processes
    cid = str(container.container_id)
    exits, reaped, stays = container.pids
    procs = cgroup_file(layout.fixture, container.relpath, "cgroup.procs")
    # A pid listed in cgroup.procs whose /proc entry is already gone.
    procs.write_text("".join(f"{pid}\n" for pid in (*container.pids, 99999)))
    obs = observer(layout, tmp_path / "log")
    report = obs.sample()
    clean(report)
    assert report.processes == sum(len(c.pids) for c in layout.expected)
    assert handles(recorder, pid="99999") == []
    assert value(recorder, "container.processes", container_id=cid) == 3
    # ``exits`` exits after cgroup.procs is read: its stat reads empty (the kernel's ESRCH
    # through the kept descriptor) and its directory is gone. ``reaped`` also left cgroup.procs.
    (layout.fixture.proc_root / str(exits) / "stat").write_bytes(b"")
    shutil.rmtree(layout.fixture.proc_root / str(exits))
    shutil.rmtree(layout.fixture.proc_root / str(reaped))
    procs.write_text(f"{exits}\n{stays}\n")
    report = obs.sample()
    clean(report)
    assert handles(recorder, pid=str(exits)) == [] and handles(recorder, pid=str(reaped)) == []
    assert handles(recorder, "process.threads", pid=str(stays))
    assert value(recorder, "container.processes", container_id=cid) == 1
    assert (
        value(recorder, "container.memory.pss_bytes", container_id=cid)
        == rollup_bytes(PROC_FILES / "smaps_rollup")["Pss"]
    )


def test_a_zombie_keeps_its_stat_series(tmp_path: Path, recorder: CaptureRecorder) -> None:
    layout = tree(tmp_path, "v2")
    container = layout.expected[0]
    zombie = container.pids[0]
    for name in ("stat", "status", "cmdline", "smaps"):
        data = (FIXTURES / "proc" / "zombie" / name).read_bytes()
        (layout.fixture.proc_root / str(zombie) / name).write_bytes(data)
    (layout.fixture.proc_root / str(zombie) / "smaps_rollup").unlink()
    obs = observer(layout, tmp_path / "log", pss_interval_seconds=0.0)
    for _ in range(2):
        report = obs.sample()
        clean(report)
        assert report.processes == sum(h.value for h in handles(recorder, "container.processes"))
        assert handles(recorder, "process.threads", pid=str(zombie))


def test_a_reused_pid_is_a_new_process(tmp_path: Path, recorder: CaptureRecorder) -> None:
    layout = tree(tmp_path, "v2")
    pid = layout.expected[0].pids[0]
    obs = observer(layout, tmp_path / "log")
    clean(obs.sample())
    # The process exits and another one gets its pid: a later start time, more CPU time.
    path = layout.fixture.proc_root / str(pid) / "stat"
    fields = path.read_text().split(" ")
    fields[21] = str(int(fields[21]) + 50_000)  # starttime (field 22)
    fields[13] = str(int(fields[13]) + 5_000)  # utime (field 14)
    path.write_text(" ".join(fields))
    time.sleep(0.02)
    clean(obs.sample())
    assert value(recorder, "process.cpu.usage_millicores", pid=str(pid)) is None


# ------------------------------------------------------------------------------------------
# bad files
# ------------------------------------------------------------------------------------------

BAD_FILES = [
    # (mode, file, content, a metric it feeds, a metric from another file of the container)
    (
        "v2",
        "memory.current",
        b"\x00\xffgarbage\n",
        "container.memory.usage_bytes",
        "cgroup.pids.current",
    ),
    (
        "v2",
        "memory.current",
        b"",
        "container.memory.working_set_bytes",
        "container.memory.rss_bytes",
    ),
    ("v2", "pids.current", b"", "container.pids.current", "container.memory.usage_bytes"),
    (
        "v2",
        "cpu.stat",
        b"usage_usec 1824307511\nuser_u",
        "container.cpu.usage_usec",
        "cgroup.pids.current",
    ),
    (
        "v2",
        "memory.stat",
        b"anon 527106048\nfile",
        "container.memory.rss_bytes",
        "container.memory.usage_bytes",
    ),
    ("v2", "memory.events", b"oom_kill two\n", "container.memory.oom_kills", "cgroup.pids.current"),
    ("v2", "io.stat", b"8:0 rbytes=abc\n", "container.io.read_bytes", "cgroup.pids.current"),
    (
        "v2",
        "cpu.pressure",
        b"some avg10=1.52 avg60\n",
        "container.cpu.psi.some.stall_usec",
        "container.memory.psi.some.stall_usec",
    ),
    (
        "v2",
        "cpu.max",
        b"garbage\n",
        "container.cpu.limit_millicores",
        "container.memory.limit_bytes",
    ),
    ("v1", "cpuacct.usage", b"12ab\n", "container.cpu.usage_usec", "container.memory.usage_bytes"),
    (
        "v1",
        "memory.usage_in_bytes",
        b"",
        "container.memory.usage_bytes",
        "container.memory.rss_bytes",
    ),
    (
        "hybrid",
        "memory.pressure",
        b"some avg10=x avg60=0 avg300=0 total=1\n",
        "container.memory.psi.some.avg10_percent",
        "container.cpu.psi.some.stall_usec",
    ),
]


@pytest.mark.parametrize(("mode", "file", "content", "lost", "kept"), BAD_FILES)
def test_bad_cgroup_file_is_a_counted_error_and_the_rest_is_sampled(
    tmp_path: Path,
    recorder: CaptureRecorder,
    mode: str,
    file: str,
    content: bytes,
    lost: str,
    kept: str,
) -> None:
    layout = tree(tmp_path, mode)
    bad, _unlimited, *good = layout.expected
    cgroup_file(layout.fixture, bad.relpath, file).write_bytes(content)
    report = observer(layout, tmp_path / "log").sample()
    assert report.read_errors == 1
    assert report.errors_by_reason == {
        "vanished": 0,
        "access_denied": 0,
        "malformed": 1,
        "out_of_range": 0,
        "too_large": 0,
        "too_many_series": 0,
        "other": 0,
    }
    assert report.containers == len(layout.expected)
    bad_names = names_of(recorder, container_id=str(bad.container_id))
    assert lost not in bad_names and kept in bad_names
    for container in good:
        assert {lost, kept} <= names_of(recorder, container_id=str(container.container_id))


def test_empty_keyed_file_is_no_keys(tmp_path: Path, recorder: CaptureRecorder) -> None:
    """An empty ``key value`` file parses as no keys (the readers' contract: a missing key is
    None), which is not a read error; the container's other files are sampled."""
    layout = tree(tmp_path, "v2")
    bad = layout.expected[0]
    cgroup_file(layout.fixture, bad.relpath, "cpu.stat").write_bytes(b"")
    clean(observer(layout, tmp_path / "log").sample())
    bad_names = names_of(recorder, container_id=str(bad.container_id))
    assert "container.cpu.usage_usec" not in bad_names
    assert "container.memory.working_set_bytes" in bad_names


def test_pressure_total_that_is_not_finite_is_a_counted_error(
    tmp_path: Path, recorder: CaptureRecorder
) -> None:
    layout = tree(tmp_path, "v2")
    bad = layout.expected[0]
    cgroup_file(layout.fixture, bad.relpath, "io.pressure").write_bytes(
        b"some avg10=0.00 avg60=0.00 avg300=0.00 total=inf\n"
    )
    report = observer(layout, tmp_path / "log").sample()
    assert report.read_errors == 1
    assert report.errors_by_reason["malformed"] == 1


def test_pressure_parsed_by_the_reader_unknown_keys_ignored(
    tmp_path: Path, recorder: CaptureRecorder
) -> None:
    # The sampler parses with observers.readers.cgroup_v2.parse_pressure: the four fields it
    # knows become series, a key a later kernel may add does not, and is no error.
    layout = tree(tmp_path, "v2")
    cid = str(layout.expected[0].container_id)
    cgroup_file(layout.fixture, layout.expected[0].relpath, "io.pressure").write_bytes(
        b"some avg10=1.50 avg60=0.50 avg300=0.25 total=10 future=3\n"
        b"full avg10=0.75 avg60=0.25 avg300=0.10 total=4\n"
    )
    clean(observer(layout, tmp_path / "log").sample())
    assert value(recorder, "cgroup.io.pressure.some.avg10", container_id=cid) == 1.5
    assert value(recorder, "cgroup.io.pressure.full.total", container_id=cid) == 4
    assert value(recorder, "container.io.psi.some.avg10_percent", container_id=cid) == 1.5
    assert value(recorder, "container.io.psi.full.stall_usec", container_id=cid) == 4
    assert not {n for n in names_of(recorder, container_id=cid) if "future" in n}


def test_negative_cpu_time_in_proc_stat_is_a_counted_error(
    tmp_path: Path, recorder: CaptureRecorder
) -> None:
    layout = tree(tmp_path, "v2")
    pid = layout.expected[0].pids[0]
    path = layout.fixture.proc_root / str(pid) / "stat"
    fields = path.read_text().split(" ")
    fields[13] = "-4"  # utime (field 14)
    path.write_text(" ".join(fields))
    report = observer(layout, tmp_path / "log").sample()
    assert report.read_errors == 1
    assert handles(recorder, "process.threads", pid=str(layout.expected[0].pids[1]))


def test_pressure_files_of_a_kernel_without_psi_are_not_an_error_every_tick(
    tmp_path: Path, recorder: CaptureRecorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_pread = os.pread

    def pread(fd: int, size: int, offset: int) -> bytes:
        if os.readlink(f"/proc/self/fd/{fd}").endswith(".pressure"):
            raise OSError(errno.EOPNOTSUPP, os.strerror(errno.EOPNOTSUPP))
        return real_pread(fd, size, offset)

    monkeypatch.setattr(os, "pread", pread)
    layout = tree(tmp_path, "v2")
    obs = observer(layout, tmp_path / "log")
    obs.sample()
    reports = [obs.sample() for _ in range(2)]
    assert [r.read_errors for r in reports] == [0, 0]
    assert not {n for n in names_of(recorder) if ".psi." in n}


def test_fixture_values_are_what_the_tests_assume() -> None:
    """The cases above rely on these properties of the fixture files."""
    v2, v1 = FIXTURES / "cgroup_v2" / "container", FIXTURES / "cgroup_v1" / "container"
    assert (v2 / "cpu.max").read_text().split()[0] != "max"  # containers[0] has a CPU limit
    assert single(v1 / "cpu.cfs_quota_us") > 0
    assert single(v2 / "memory.max") < 2**62
    assert flat(v2 / "memory.events")["oom_kill"] > 0  # not a trivial 0 == 0
    assert single(v2 / "memory.current") > flat(v2 / "memory.stat")["inactive_file"]
    assert flat(v1 / "memory.stat")["total_inactive_file"] > 0
    assert proc_stat(PROC_FILES / "stat")["utime"] > 0


# ------------------------------------------------------------------------------------------
# bad input: values no kernel writes, bad cgroup.procs lines, oversized files
# ------------------------------------------------------------------------------------------

V2_MEMORY_STAT = (FIXTURES / "cgroup_v2" / "container" / "memory.stat").read_bytes()

OUT_OF_RANGE = [
    # mode, file, content, the raw series it no longer makes, what the log line says
    ("v2", "memory.current", b"18446744073709551617\n", "cgroup.memory.current", "2**64-1"),
    ("v2", "memory.current", b"9223372036854775808\n", "cgroup.memory.current", "int64"),
    ("v2", "pids.current", b"-7\n", "cgroup.pids.current", "negative"),
    ("v2", "memory.max", b"-1\n", "cgroup.memory.max", "negative"),
    ("v2", "cpu.weight", b"20000\n", "cgroup.cpu.weight", "cpu.weight"),
    ("v2", "cpu.max", b"50000 0\n", "cgroup.cpu.max.period_usec", "CFS period"),
    (
        "v2",
        "memory.stat",
        V2_MEMORY_STAT.replace(b"anon 527106048\n", b"anon -527106048\n"),
        "cgroup.memory.stat.file",
        "negative",
    ),
    (
        "v2",
        "io.stat",
        b"8:0 rbytes=18446744073709551617 wbytes=0 rios=0 wios=0 dbytes=0 dios=0\n",
        "cgroup.io.stat.wbytes",
        "2**64-1",
    ),
    (
        "v2",
        "cpu.pressure",
        b"some avg10=101.00 avg60=0.00 avg300=0.00 total=1\n",
        "cgroup.cpu.pressure.some.total",
        "PSI average",
    ),
    ("v1", "memory.limit_in_bytes", b"-1\n", "cgroup.memory.limit_in_bytes", "negative"),
    ("v1", "cpu.cfs_period_us", b"0\n", "cgroup.cpu.cfs_period_us", "CFS period"),
    ("v1", "cpu.shares", b"1\n", "cgroup.cpu.shares", "cpu.shares"),
    ("v1", "cpuacct.usage", b"-3\n", "cgroup.cpuacct.usage", "negative"),
]


@pytest.mark.parametrize(
    ("mode", "file", "content", "lost", "said"),
    OUT_OF_RANGE,
    ids=[f"{mode}-{file}-{said}" for mode, file, _, _, said in OUT_OF_RANGE],
)
def test_a_value_no_kernel_writes_is_refused_counted_and_logged_once(
    tmp_path: Path,
    recorder: CaptureRecorder,
    caplog: pytest.LogCaptureFixture,
    mode: str,
    file: str,
    content: bytes,
    lost: str,
    said: str,
) -> None:
    layout = tree(tmp_path, mode)
    bad = [layout.expected[0], layout.expected[2]]  # two containers with the same bad file
    for container in bad:
        cgroup_file(layout.fixture, container.relpath, file).write_bytes(content)
    obs = observer(layout, tmp_path / "log")
    with caplog.at_level("WARNING", logger="finemon.observers"):
        # 11 samples: the settings files are read on the first and the 11th.
        reports = [obs.sample() for _ in range(11)]
    assert reports[0].errors_by_reason["out_of_range"] == 2, reports[0].errors_by_reason
    assert sum(r.errors_by_reason["out_of_range"] for r in reports) >= 4
    for report in reports:
        assert report.read_errors == report.errors_by_reason["out_of_range"] in (0, 2)
        assert report.containers == len(layout.expected)
    for container in bad:
        assert lost not in names_of(recorder, container_id=str(container.container_id))
    assert lost in names_of(recorder, container_id=str(layout.expected[3].container_id))
    logged = [r.getMessage() for r in caplog.records if file in r.getMessage()]
    assert len(logged) == 1, logged  # once for the file and reason, not per container or tick
    assert f"/{file}:1: " in logged[0] and said in logged[0]


def test_a_refused_value_is_written_again_once_the_kernel_file_is_good(
    tmp_path: Path, recorder: CaptureRecorder
) -> None:
    layout = tree(tmp_path, "v2")
    cid = str(layout.expected[0].container_id)
    path = cgroup_file(layout.fixture, layout.expected[0].relpath, "memory.current")
    good = path.read_bytes()
    path.write_bytes(b"-7\n")
    obs = observer(layout, tmp_path / "log")
    assert obs.sample().errors_by_reason["out_of_range"] == 1
    assert value(recorder, "cgroup.memory.current", container_id=cid) is None
    path.write_bytes(good)
    clean(obs.sample())
    assert value(recorder, "cgroup.memory.current", container_id=cid) == int(good)


@pytest.mark.parametrize(
    ("bad_line", "reason"),
    [
        (b"abc", "malformed"),
        (b"-1", "out_of_range"),
        (b"", "malformed"),
        (b"4294967297", "out_of_range"),
    ],
)
def test_a_bad_cgroup_procs_line_keeps_the_container_and_its_other_processes(
    tmp_path: Path,
    recorder: CaptureRecorder,
    caplog: pytest.LogCaptureFixture,
    bad_line: bytes,
    reason: str,
) -> None:
    layout = tree(tmp_path, "v2")
    target = layout.expected[0]
    assert len(target.pids) >= 2
    first, *rest = target.pids
    procs = layout.fixture.root / target.relpath / "cgroup.procs"
    procs.write_bytes(b"".join(b"%d\n" % pid for pid in [first]) + bad_line + b"\n")
    procs.write_bytes(procs.read_bytes() + b"".join(b"%d\n" % pid for pid in rest))
    obs = observer(layout, tmp_path / "log")
    with caplog.at_level("WARNING", logger="finemon.observers"):
        reports = [obs.sample() for _ in range(2)]
    cid = str(target.container_id)
    for report in reports:
        assert report.containers == len(layout.expected)
        assert report.skipped["unreadable"] == 0
        assert report.errors_by_reason[reason] == 1, report.errors_by_reason
        assert report.read_errors == 1
    assert value(recorder, "container.processes", container_id=cid) == len(target.pids)
    assert {
        dict(h.labels)["pid"] for h in handles(recorder, "process.threads", container_id=cid)
    } == {str(pid) for pid in target.pids}
    logged = [r.getMessage() for r in caplog.records if "cgroup.procs" in r.getMessage()]
    assert len(logged) == 1, logged
    assert f"{procs}:2: " in logged[0]


def test_an_oversized_cgroup_file_is_not_read_past_its_cap(
    tmp_path: Path, recorder: CaptureRecorder
) -> None:
    """A 10 MB memory.stat: refused as too large after reading 64 KiB of it, counted; the
    container's other files are sampled, and sampling takes no memory for the file's bulk."""
    import tracemalloc

    layout = tree(tmp_path, "v2")
    target = layout.expected[0]
    huge = V2_MEMORY_STAT + b"".join(b"key_%07d 1\n" % i for i in range(10_000_000 // 14))
    assert len(huge) > 10_000_000
    cgroup_file(layout.fixture, target.relpath, "memory.stat").write_bytes(huge)
    obs = observer(layout, tmp_path / "log")
    tracemalloc.start()
    try:
        report = obs.sample()
        _, peak_bytes = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert report.errors_by_reason["too_large"] == 1, report.errors_by_reason
    assert report.read_errors == 1
    assert peak_bytes < 4_000_000  # the file alone is 10 MB
    names = names_of(recorder, container_id=str(target.container_id))
    assert not {n for n in names if n.startswith("cgroup.memory.stat.")}
    assert "container.memory.usage_bytes" in names and "container.cpu.usage_usec" in names


def test_a_keyed_file_makes_at_most_its_cap_of_series(
    tmp_path: Path, recorder: CaptureRecorder, caplog: pytest.LogCaptureFixture
) -> None:
    """A memory.stat with 1,000 keys more than the kernel's (within the byte cap) makes 256
    series; the values past the cap are counted, each reading that has them."""
    layout = tree(tmp_path, "v2")
    target = layout.expected[0]
    cid = str(target.container_id)
    path = cgroup_file(layout.fixture, target.relpath, "memory.stat")
    extra = b"".join(b"future_%04d 1\n" % i for i in range(1000))
    path.write_bytes(V2_MEMORY_STAT + extra)
    keys = V2_MEMORY_STAT.count(b"\n") + 1000
    obs = observer(layout, tmp_path / "log")
    with caplog.at_level("WARNING", logger="finemon.observers"):
        first = obs.sample()
        unchanged = obs.sample()
        path.write_bytes(V2_MEMORY_STAT.replace(b"anon 527106048", b"anon 527106049") + extra)
        changed = obs.sample()
    made = {n for n in names_of(recorder, container_id=cid) if n.startswith("cgroup.memory.stat.")}
    assert len(made) == 256
    # The kernel's keys come first in the file, so they all have their series.
    assert {
        f"cgroup.memory.stat.{line.split()[0].decode()}" for line in V2_MEMORY_STAT.splitlines()
    } <= made
    assert first.errors_by_reason["too_many_series"] == keys - 256
    assert unchanged.read_errors == 0  # the same bytes are not parsed again
    assert changed.errors_by_reason["too_many_series"] == keys - 256
    assert value(recorder, "container.memory.rss_bytes", container_id=cid) == 527106049
    logged = [r.getMessage() for r in caplog.records if "memory.stat" in r.getMessage()]
    assert len(logged) == 1 and "past the cap of 256 series" in logged[0], logged


def test_a_process_file_makes_at_most_its_cap_of_series(
    tmp_path: Path, recorder: CaptureRecorder
) -> None:
    layout = tree(tmp_path, "v2")
    pid = layout.expected[0].pids[0]
    rollup = PROC_FILES / "smaps_rollup"
    extra = b"".join(b"Future%04d:   1 kB\n" % i for i in range(1000))
    (layout.fixture.proc_root / str(pid) / "smaps_rollup").write_bytes(rollup.read_bytes() + extra)
    regions = b"".join(
        b"7f%010x-7f%010x r--p 00000000 fe:00 1   /lib/mapped-%d.so\nRss:  4 kB\nPss:  4 kB\n"
        % (i * 2, i * 2 + 1, i)
        for i in range(3000)
    )
    (layout.fixture.proc_root / str(pid) / "smaps").write_bytes(regions)
    report = observer(layout, tmp_path / "log", smaps=True).sample()
    keys = len(rollup_bytes(rollup)) + 1000
    assert report.errors_by_reason["too_many_series"] == (keys - 256) + (6000 - 4096)
    assert report.read_errors == report.errors_by_reason["too_many_series"]
    made = {n for n in names_of(recorder, pid=str(pid)) if n.startswith("proc.smaps_rollup.")}
    assert len(made) == 256
    assert (
        len(handles(recorder, "process.memory.region.pss_bytes", pid=str(pid)))
        + len(handles(recorder, "process.memory.region.rss_bytes", pid=str(pid)))
        == 4096
    )
    assert value(recorder, "process.memory.pss_bytes", pid=str(pid), comm="python3") is not None
