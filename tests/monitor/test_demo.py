"""``finemon demo`` as a user runs it: real cgroups, real workloads, a summary, nothing left;
a second demo into the same directory summarizes only its own run; the pure parts (the starved
burner's warning, the query hint, the summary of one run among several) on fixed data."""

from __future__ import annotations

import json
import math
import os
import shlex
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest
from finemon_process import finemon_env, hidden_leftovers, parquet_files
from tests.analysis.synthetic import MIB as SYNTHETIC_MIB
from tests.analysis.synthetic import _Rows, write_file, write_restarts

from finemon.demo import burner_warning, print_summary, query_hint
from monitor.sandbox import KubeletSandbox, sandbox_unavailable
from observers.hierarchy import find_hierarchy

MIB = 1024 * 1024
#: The v1 controllers a demo's sandbox makes its cgroups in.
V1_CONTROLLERS = ("cpu", "cpuacct", "memory", "pids", "blkio")


def summary(stdout: str) -> dict[str, list[float]]:
    """The demo's table: container -> [cpu mean, cpu max, wset max, mem max, pss max]."""
    lines = stdout.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("container "))
    table = {}
    for line in lines[header + 2 :]:
        if not line.strip():
            break
        name, *numbers = line.split()
        table[name] = [float("nan") if n == "-" else float(n) for n in numbers]
    return table


def kernel_millicores(dataset_dir: Path, container_name: str) -> float:
    """Mean CPU use of a container over the recording, from its cgroup's cumulative usage."""
    table = ds.dataset(dataset_dir, format="parquet", partitioning="hive").to_table(
        columns=["time", "value_int", "value_float"],
        filter=(ds.field("metric_name") == "container.cpu.usage_usec")
        & (ds.field("container_name") == container_name),
    )
    points = sorted(
        (
            row["time"].timestamp(),
            row["value_int"] if row["value_int"] is not None else row["value_float"],
        )
        for row in table.to_pylist()
    )
    assert len(points) >= 2, f"{container_name}: {len(points)} samples"
    (first_time, first_usec), (last_time, last_usec) = points[0], points[-1]
    return float(last_usec - first_usec) / (last_time - first_time) / 1000.0


@pytest.mark.root
def test_demo_records_summarizes_and_cleans_up(tmp_path: Path) -> None:
    reason = sandbox_unavailable()
    if reason is not None:
        pytest.skip(f"cannot build real cgroups: {reason}")
    out = tmp_path / "out"
    demo = subprocess.Popen(
        [sys.executable, "-m", "finemon", "demo", "--seconds", "6", "--output-dir", str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=finemon_env(),
    )
    try:
        stdout, stderr = demo.communicate(timeout=120)
    finally:
        demo.kill()
    assert demo.returncode == 0, stdout + stderr
    assert "3 containers in real cgroups under finemon-sandbox-" in stdout, stdout

    table = summary(stdout)
    assert {"burner", "grower", "idle"} <= set(table), stdout
    burner_cpu_mean = table["burner"][0]
    # About 1000 on an idle machine. Other CPU burners (tests and benchmarks beside this one)
    # can leave it less than a core: then the mean must match the CPU time the kernel accounted
    # to its cgroup over the recording (the cumulative counter in the dataset).
    kernel = kernel_millicores(out, "burner")
    assert kernel > 300, "the burner did not burn"
    assert 0.8 * kernel <= burner_cpu_mean <= 1.2 * kernel, (kernel, stdout)
    assert 700 <= burner_cpu_mean <= 1300 or kernel < 900, (kernel, stdout)
    assert table["grower"][3] >= 16, stdout  # 8 MiB more every second
    # '-' (no rate) only if an overloaded machine sampled it once.
    assert math.isnan(table["idle"][0]) or table["idle"][0] < 100, stdout

    # The dataset is readable, each file and as a whole.
    files = parquet_files(out)
    assert files and not hidden_leftovers(out)
    rows = sum(pq.read_table(path).num_rows for path in files)
    dataset = ds.dataset(out, format="parquet", partitioning="hive")
    assert dataset.count_rows() == rows > 0
    names = set(dataset.to_table(columns=["container_name"]).column(0).to_pylist())
    assert {"burner", "grower", "idle"} <= names
    found = (
        duckdb.connect()
        .execute(f"SELECT count(*) FROM read_parquet('{out}/**/*.parquet', hive_partitioning=true)")
        .fetchone()
    )
    assert found == (rows,)
    assert f"{rows} rows in {out} (run " in stdout

    # Nothing left in any hierarchy. The prefix names the demo's pid; other finemon sandboxes
    # (tests and benchmarks running beside this one) are not the demo's to remove.
    hierarchy = find_hierarchy()
    roots = {hierarchy.unified, *hierarchy.v1.values()} - {None}
    assert roots
    left = [
        str(path)
        for root in roots
        for path in Path(str(root)).glob(f"finemon-sandbox-{demo.pid}-*")
    ]
    assert left == []


def run_demo(out: Path, seconds: str = "4") -> str:
    demo = subprocess.Popen(
        [sys.executable, "-m", "finemon", "demo", "--seconds", seconds, "--output-dir",
         str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=finemon_env(),
    )  # fmt: skip
    try:
        stdout, stderr = demo.communicate(timeout=120)
    finally:
        demo.kill()
    assert demo.returncode == 0, stdout + stderr
    return stdout


@pytest.mark.root
def test_a_second_demo_summarizes_only_its_own_run(tmp_path: Path) -> None:
    reason = sandbox_unavailable()
    if reason is not None:
        pytest.skip(f"cannot build real cgroups: {reason}")
    out = tmp_path / "out"
    run_demo(out)
    first_runs = {p.stem for p in (out / "_sessions").glob("*.json")}
    stdout = run_demo(out)
    (second_run,) = {p.stem for p in (out / "_sessions").glob("*.json")} - first_runs

    # One row per workload, no more (the first run's containers have other ids).
    table = summary(stdout)
    assert sorted(table) == ["burner", "grower", "idle"], stdout
    # The grower's memory is that of the second run alone.
    dataset = ds.dataset(out, format="parquet", partitioning="hive")
    grower = dataset.to_table(
        columns=["run_id", "value_float"],
        filter=(ds.field("metric_name") == "container.memory.usage_bytes")
        & (ds.field("container_name") == "grower"),
    ).to_pylist()
    assert {row["run_id"] for row in grower} == first_runs | {second_run}
    latest = max(row["value_float"] for row in grower if row["run_id"] == second_run)
    assert table["grower"][3] == round(latest / MIB), stdout
    rows = dataset.count_rows(filter=ds.field("run_id") == second_run)
    assert f"{rows} rows in {out} (run {second_run})" in stdout
    assert f"WHERE run_id = '{second_run}'" in stdout

    # The report holds the three containers of the second run.
    report = (out / "_report.html").read_text()
    data = json.loads(
        report.split('<script type="application/json" id="finemon-data">')[1].split("</script>")[0]
    )
    assert sorted(c["name"] for c in data["containers"]) == [
        "demo/demo-cpu/burner",
        "demo/demo-idle/idle",
        "demo/demo-mem/grower",
    ]
    runs = [e["text"] for e in data["events"] if e["kind"] == "run"]
    assert runs and all(second_run[:8] in text for text in runs), runs


@contextmanager
def bare_cgroup_with_a_process() -> Iterator[str]:
    """A real cgroup at the top of every hierarchy with a ``sleep`` in it; yields its name."""
    hierarchy = find_hierarchy()
    roots = list(dict.fromkeys(
        path for path in (hierarchy.unified, *(hierarchy.v1.get(c) for c in V1_CONTROLLERS))
        if path is not None
    ))  # fmt: skip
    name = f"finemon-extra-{os.getpid()}-{os.urandom(3).hex()}"
    made = []
    sleeper = None
    try:
        for root in roots:
            (root / name).mkdir()
            made.append(root / name)
        procs = [str(directory / "cgroup.procs") for directory in made]

        def enter() -> None:  # in the child, before exec
            for path in procs:
                with open(path, "w") as f:
                    f.write(str(os.getpid()))

        sleeper = subprocess.Popen(["sleep", "infinity"], preexec_fn=enter)  # noqa: PLW1509
        yield name
    finally:
        if sleeper is not None:
            sleeper.kill()
            sleeper.wait()
        for directory in made:
            directory.rmdir()


@pytest.mark.root
def test_the_demo_records_its_own_containers_only(tmp_path: Path) -> None:
    """Another kubelet-shaped sandbox with a running container and a bare cgroup with a
    process exist while the demo records: its dataset holds its three containers alone."""
    reason = sandbox_unavailable()
    if reason is not None:
        pytest.skip(f"cannot build real cgroups: {reason}")
    out = tmp_path / "out"
    with (
        KubeletSandbox(log_root=tmp_path / "other-logs") as other,
        bare_cgroup_with_a_process() as bare,
    ):
        intruder = other.add_container("someone-else", "intruder", [("sleep", [])])
        run_demo(out)
        assert intruder.processes[0].poll() is None  # it ran the whole time
    table = ds.dataset(out, format="parquet", partitioning="hive").to_table(
        columns=["container_id", "container_name", "labels"]
    )
    ids = set(table["container_id"].to_pylist()) - {None}
    names = set(table["container_name"].to_pylist()) - {None}
    cgroups = {dict(labels or []).get("cgroup") for labels in table["labels"].to_pylist()}
    assert intruder.container_id not in ids
    assert len(ids) == 3 and names == {"burner", "grower", "idle"}, (ids, names)
    assert not any(bare in (cgroup or "") for cgroup in cgroups)
    (manifest,) = (out / "_sessions").glob("*.json")
    observer = json.loads(manifest.read_text())["host"]["observer"]
    assert observer["layout"] == "kubernetes"
    assert observer["cgroup_subtree"].startswith("finemon-sandbox-")
    assert observer["kubepods"] == [f"{observer['cgroup_subtree']}/kubepods.slice"]


def write_two_demo_runs(root: Path) -> tuple[str, str]:
    """Two demo-like runs into one directory: the same three workload names, new container ids
    and other values in the second, and a container of someone else's beside them."""
    first, second = "1" * 32, "2" * 32
    for seq, (run_id, start_ms, burner_mc, grower_mib) in enumerate(
        ((first, 1_700_000_000_000, 1000.0, 300.0), (second, 1_700_000_600_000, 400.0, 40.0)),
        start=1,
    ):
        rows = _Rows()
        containers = {
            "burner": (burner_mc, 7.0),
            "grower": (5.0, grower_mib),
            "idle": (0.0, 0.5),
            "someone-else": (2000.0, 900.0),
        }
        for tick in range(10):
            at = start_ms + tick * 1000
            for name, (millicores, mib) in containers.items():
                labels = {
                    "node_name": "vm",
                    "namespace": "other" if name == "someone-else" else "demo",
                    "pod_name": f"pod-{name}",
                    "container_id": f"{seq}{name}".ljust(64, "0"),
                    "container_name": name,
                }
                rows.add(run_id, at, tick, "container.cpu.usage_millicores", millicores, labels)
                rows.add(
                    run_id, at, tick, "container.memory.usage_bytes", mib * SYNTHETIC_MIB, labels
                )
        write_file(root, rows.table(), run_id, 1)
    return first, second


def test_the_summary_of_one_run_among_two(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    first, second = write_two_demo_runs(tmp_path / "out")
    keys = [f"2{name}".ljust(64, "0") for name in ("burner", "grower", "idle")]
    print_summary(tmp_path / "out", run_id=second, container_keys=keys)
    out = capsys.readouterr().out
    table = summary(out)
    # cpu mean, cpu max, mem max; this dataset has no working set or PSS ('-').
    assert {name: [row[0], row[1], row[3]] for name, row in table.items()} == {
        "burner": [400.0, 400.0, 7.0],
        "grower": [5.0, 5.0, 40.0],
        "idle": [0.0, 0.0, 0.0],
    }, out
    assert f"80 rows in {tmp_path / 'out'} (run {second})" in out  # every row of the run
    assert "warning: the burner got 400 of the 1000 millicores" in out
    # Without a selection (the host's own cgroups) every container of the run is there.
    print_summary(tmp_path / "out", run_id=first)
    table = summary(capsys.readouterr().out)
    assert sorted(table) == ["burner", "grower", "idle", "someone-else"]
    assert table["burner"][0] == 1000.0 and table["grower"][3] == 300.0


def test_the_burner_warning_says_the_machine_is_busy() -> None:
    assert burner_warning(None, 2) is None
    assert burner_warning(1000.0, 2) is None
    assert burner_warning(800.0, 1) is None  # at the threshold: ordinary background
    warning = burner_warning(412.4, 2, 3.25)
    assert warning == (
        "warning: the burner got 412 of the 1000 millicores it asks for: this machine is busy "
        "or CPU-limited (load average 3.2 on 2 CPUs), so the numbers above reflect that "
        "(finemon measured what the kernel gave it); on an idle machine it uses a whole CPU"
    )
    assert "(load average 1.0 on 1 CPU)" in (burner_warning(799.0, 1, 1.0) or "")


def test_the_query_hint_works_with_what_is_installed(tmp_path: Path) -> None:
    installed = query_hint(tmp_path, "ab" * 16, duckdb_installed=True)
    assert installed[0] == "query them with SQL, for example CPU per container:"
    assert installed[1].startswith(f"  finemon query {tmp_path} ")
    assert f"WHERE run_id = '{'ab' * 16}'" in installed[1]
    missing = query_hint(tmp_path, None, duckdb_installed=False)
    assert "pip install 'finemon[analysis]'" in missing[0]
    assert "pip install '.[analysis]'" in missing[0]
    assert "WHERE" not in missing[1]


def test_the_printed_query_runs_and_answers(tmp_path: Path) -> None:
    """The command the demo prints, run as printed, gives CPU per container of its run."""
    _, second = write_two_demo_runs(tmp_path / "out")
    # The demo's CPU comes from the cumulative counter: add it as the daemon writes it.
    root = tmp_path / "out"
    rows = _Rows()
    for tick in range(10):
        labels = {
            "node_name": "vm",
            "namespace": "demo",
            "pod_name": "pod-burner",
            "container_id": "2burner".ljust(64, "0"),
            "container_name": "burner",
        }
        rows.add(second, 1_700_000_600_000 + tick * 1000, tick, "container.cpu.usage_usec",
                 400_000 * tick, labels)  # fmt: skip
    write_file(root, rows.table(), second, 2)
    (_, line) = query_hint(root, second, duckdb_installed=True)
    argv = shlex.split(line)
    assert argv[:3] == ["finemon", "query", str(root)]
    done = subprocess.run(
        [sys.executable, "-m", "finemon", *argv[1:]],
        capture_output=True, text=True, env=finemon_env(), check=False, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    # Named as the viewer names it: the burner of the second run is a second life.
    line = done.stdout.splitlines()[2]
    assert line.rsplit(None, 1) == ["burner (since 22:23:20)", "400"], done.stdout


def test_the_summary_names_containers_as_everywhere_else(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A restarted container's lives by their start times, in order, and the neighbours all
    called "server" by their pods: the names of the viewer and the report."""
    print_summary(write_restarts(tmp_path / "out"))
    out = capsys.readouterr().out
    lines = out.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("container "))
    names = [line.rsplit(maxsplit=5)[0] for line in lines[header + 2 : header + 8]]
    assert names == [
        "api (since 23:58:00)",
        "api (since 23:59:20)",
        "api (since 00:00:40)",
        "checkout-5d4f8b7c9-x2x7q/server",
        "frontend-7f9c6d5b8-kq2lp/server",
        "ledger-writer-6b7d9c4f5-p8m2z/server",
    ], out
    assert not lines[header + 8].strip(), out
