"""``finemon compare`` and ``finemon check`` on real runs of the real daemon over real cgroups.

Two runs of ``finemon run`` (40 s each, 4 ticks a second) record a kubelet-shaped sandbox
(``monitor.sandbox``) in namespace ``exp``: a holder (a Deployment's pod) holding 100 MiB in the
``baseline`` run and 140 MiB in the ``candidate`` run, each plus the same 4-second cycle of 0 to
8 MiB more, an idle container and a CPU burner (DaemonSet-style pods). Every pod is new in the
second run (other pod names), so the containers match by workload only. Each run is marked
``load_started`` 8 s in.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from xml.etree import ElementTree

import pytest

from analysis.experiments.compare import Comparison, Row, compare
from analysis.experiments.statistics import NO_CHANGE, REGRESSION
from analysis.experiments.workload import KUBE_ALPHABET
from monitor.sandbox import KubeletSandbox, SandboxContainer, sandbox_unavailable

SRC = Path(__file__).resolve().parents[2] / "src"
MIB = 1024 * 1024
RUN_SECONDS = 40.0
MARK_AFTER_SECONDS = 8.0
NAMESPACE = "exp"
HOLDER = f"{NAMESPACE}/holder/holder"
#: Holds argv[1] bytes, plus a cycle of 0..8 MiB in 2 MiB steps, 0.5 s each (4 s a cycle).
NOISY_HOLDER = """\
import mmap, sys, time
MIB = 1024 * 1024
base = bytearray(int(sys.argv[1]))
for i in range(0, len(base), 4096):
    base[i] = 1
while True:
    for mib in (0, 2, 4, 6, 8, 6, 4, 2):
        # A private anonymous mapping (anon memory, like the heap; a shared one is page
        # cache), unmapped again: malloc would keep freed memory resident.
        flags = mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS
        extra = mmap.mmap(-1, mib * MIB, flags=flags) if mib else None
        for i in range(0, mib * MIB, 4096):
            extra[i] = 1
        time.sleep(0.5)
        if extra is not None:
            extra.close()
"""


def env() -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if k not in ("POD_NAME", "NODE_NAME")}
    clean["PYTHONPATH"] = str(SRC)
    return clean


def finemon(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "finemon", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env(),
        check=False,
    )


def suffix(rng: random.Random, length: int = 5) -> str:
    return "".join(rng.choice(KUBE_ALPHABET) for _ in range(length))


def start_in(box: KubeletSandbox, container: SandboxContainer, argv: list[str]) -> None:
    """Start ``argv`` inside ``container``'s cgroups (as the sandbox starts its workloads)."""
    procs = [str(root / container.relpath / "cgroup.procs") for root in box.roots]

    def enter() -> None:
        for path in procs:
            with open(path, "w") as f:
                f.write(str(os.getpid()))

    container.processes.append(
        subprocess.Popen(
            argv,
            preexec_fn=enter,  # noqa: PLW1509 - single-threaded at this point
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
    )


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


@dataclass(frozen=True)
class Recorded:
    output_dir: Path
    baseline_run: str
    candidate_run: str
    #: (first tick, last tick) of each run, UTC.
    spans: dict[str, tuple[datetime, datetime]]


def record(box: KubeletSandbox, out: Path, variant: str, held_bytes: int, seed: int) -> str:
    rng = random.Random(seed)
    holder = box.add_container(f"holder-7d9f8c6b5-{suffix(rng)}", "holder", [], namespace=NAMESPACE)
    start_in(box, holder, [sys.executable, "-c", NOISY_HOLDER, str(held_bytes)])
    box.add_container(f"idle-{suffix(rng)}", "idle", [("sleep", [])], namespace=NAMESPACE)
    burner = box.add_container(
        f"burner-{suffix(rng)}", "burner", [("burn", [])], namespace=NAMESPACE
    )
    # A quota of a quarter CPU: the burner's CPU is its quota's, not what the other work on
    # the machine leaves it.
    for root in box.roots:
        folder = root / burner.relpath
        if (folder / "cpu.max").exists():
            (folder / "cpu.max").write_text("25000 100000")
        elif (folder / "cpu.cfs_quota_us").exists():
            (folder / "cpu.cfs_quota_us").write_text("25000")
    deadline = time.monotonic() + 30
    while rss_bytes(holder.pids[0]) < held_bytes:
        assert time.monotonic() < deadline, "the holder's pages"
        time.sleep(0.1)
    assert box.log_root is not None
    log_path = out.parent / f"finemon-{variant}.log"
    log = log_path.open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "finemon", "run", "--output-dir", str(out), "--interval", "0.25",
         "--window-seconds", "1", "--rotation-seconds", "5", "--duration", str(RUN_SECONDS),
         "--log-root", str(box.log_root), "--experiment", "holder-size", "--variant", variant,
         "--node-name", "exp-node", "--identifier", "exp-node"],
        stdout=subprocess.DEVNULL,
        stderr=log,
        env=env(),
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while not (out / ".finemon.sock").exists():
            assert proc.poll() is None and time.monotonic() < deadline, "finemon started"
            time.sleep(0.05)
        time.sleep(MARK_AFTER_SECONDS)
        marked = finemon("mark", "--output-dir", str(out), "load_started")
        assert marked.returncode == 0, marked.stderr
        assert proc.wait(timeout=RUN_SECONDS + 30) == 0, log_path.read_text()
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        log.close()
    for container in list(box.containers):
        box.stop_container(container)
    run_id = json.loads((out / "_session.json").read_text())["run_id"]
    assert isinstance(run_id, str)
    return run_id


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Recorded]:
    reason = sandbox_unavailable()
    if reason is not None:
        pytest.skip(f"cannot build real cgroups: {reason}")
    base = tmp_path_factory.mktemp("experiments")
    out = base / "out"
    with KubeletSandbox(log_root=base / "log") as box:
        baseline = record(box, out, "baseline", 100 * MIB, seed=1)
        candidate = record(box, out, "candidate", 140 * MIB, seed=2)
    import duckdb

    spans = {
        str(run): (first, last)
        for run, first, last in duckdb.sql(
            f"SELECT run_id, min(time), max(time) FROM read_parquet('{out}/**/*.parquet') "
            "GROUP BY 1"
        ).fetchall()
    }
    yield Recorded(out, baseline, candidate, spans)


def rows_of(result: Comparison, container: str, metric: str) -> dict[str, Row]:
    return {
        row.statistic: row
        for row in result.rows
        if (row.container, row.metric) == (container, metric)
    }


@pytest.mark.root
def test_forty_mib_more_is_a_regression_of_about_forty_mib(recorded: Recorded) -> None:
    result = compare(
        recorded.output_dir, "variant=baseline", recorded.output_dir, "variant=candidate"
    )
    assert result.baseline.run_ids == (recorded.baseline_run,)
    assert result.comparison.run_ids == (recorded.candidate_run,)
    assert result.baseline.variants == ("baseline",)
    assert result.baseline.experiments == ("holder-size",)
    # Every pod is new in the candidate run: matched by namespace/workload/container.
    containers = {row.container for row in result.rows}
    assert {HOLDER, "exp/idle/idle", "exp/burner/burner"} <= containers
    assert not {u.container for u in result.unmatched} & containers

    truth = 40 * MIB
    for metric in ("container.memory.rss_bytes", "process.memory.pss_bytes"):
        mean = rows_of(result, HOLDER, metric)["mean"]
        assert mean.verdict == REGRESSION, mean
        assert abs(mean.change - truth) < 2 * MIB, (metric, mean.change / MIB)
        low, high = mean.ci90
        assert low <= truth <= high, (metric, low / MIB, high / MIB)
        assert high - low > 0.1 * MIB, "the noise gives the interval a width"
        assert 25 < mean.change_percent < 45
    usage = rows_of(result, HOLDER, "container.memory.usage_bytes")["mean"]
    assert usage.verdict == REGRESSION and abs(usage.change - truth) < 4 * MIB

    # The same comparison, from the mark on: aligned there, still +40 MiB.
    phased = compare(
        recorded.output_dir,
        recorded.baseline_run[:8],
        recorded.output_dir,
        recorded.candidate_run[:8],
        phase="load_started",
    )
    mean = rows_of(phased, HOLDER, "container.memory.rss_bytes")["mean"]
    assert mean.verdict == REGRESSION and mean.ci90[0] <= truth <= mean.ci90[1]
    base_runs, _ = phased.series[(HOLDER, "container.memory.rss_bytes")]
    [run] = base_runs
    first_tick = recorded.spans[recorded.baseline_run][0]
    assert run.origin_ms / 1000 > first_tick.timestamp() + MARK_AFTER_SECONDS - 2
    assert run.times_ms[0] >= run.origin_ms


@pytest.mark.root
def test_the_outputs_and_the_command_line(recorded: Recorded, tmp_path: Path) -> None:
    out = str(recorded.output_dir)
    done = finemon("compare", out, "--baseline", "variant=baseline", "--comparison",
                   "variant=candidate", "--format", "json")  # fmt: skip
    assert done.returncode == 0, done.stderr
    document = json.loads(done.stdout)
    assert set(document) >= {"baseline", "comparison", "rows", "unmatched"}
    row = next(
        r
        for r in document["rows"]
        if r["container"] == HOLDER
        and r["metric"] == "container.memory.rss_bytes"
        and r["statistic"] == "mean"
    )
    assert set(row) == {"container", "metric", "statistic", "baseline", "comparison", "change",
                        "change_percent", "ci90", "verdict"}  # fmt: skip
    assert row["verdict"] == "regression" and len(row["ci90"]) == 2
    statistics = {r["statistic"] for r in document["rows"] if r["container"] == HOLDER}
    assert statistics == {"mean", "p50", "p95", "max"}

    text = finemon("compare", out, "--baseline", "variant=baseline", "--comparison",
                   "variant=candidate")  # fmt: skip
    assert text.returncode == 0, text.stderr
    lines = text.stdout.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("container "))
    # Sorted by effect size: the holder's memory (+35 %) above the idle container's (0 %).
    table = lines[header + 1 :]
    holder_line = next(i for i, line in enumerate(table) if line.startswith(HOLDER))
    idle_lines = [
        i for i, line in enumerate(table) if "exp/idle/idle" in line and "no change" in line
    ]
    assert idle_lines and holder_line < max(idle_lines)

    markdown = finemon("compare", out, "--baseline", "variant=baseline", "--comparison",
                       "variant=candidate", "--format", "markdown")  # fmt: skip
    assert markdown.stdout.startswith("### finemon compare") and "| regression |" in markdown.stdout

    page = tmp_path / "compare.html"
    drawn = finemon("compare", out, "--baseline", "variant=baseline", "--comparison",
                    "variant=candidate", "--format", "html", "-o", str(page))  # fmt: skip
    assert drawn.returncode == 0, drawn.stderr
    content = page.read_text()
    assert "Plotly.newPlot" in content and "<script src=" not in content  # plotly.js inlined
    assert f"{HOLDER}: container.memory.rss_bytes" in content

    missing = finemon(
        "compare", out, "--baseline", "variant=nope", "--comparison", "variant=candidate"
    )
    assert missing.returncode == 1
    assert "no run of variant 'nope'" in missing.stderr and "baseline" in missing.stderr
    nophase = finemon("compare", out, "--baseline", "variant=baseline", "--comparison",
                      "variant=candidate", "--phase", "never_marked")  # fmt: skip
    assert nophase.returncode == 1 and "never_marked" in nophase.stderr

    summary = finemon("summary", out)
    assert "(experiment holder-size, variant candidate)" in summary.stdout


@pytest.mark.root
def test_same_workload_windows_rarely_differ(recorded: Recorded) -> None:
    """20 comparisons of the idle and burner containers with themselves: windows of 5 s (20
    ticks) of the two runs (from 3 s in, 6 per run), compared window i of one run with window
    i of the other (6), each window with the next in the same run (10) and window i of the
    baseline run with window i + 1 of the candidate run (4). Selected as FROM..TO ranges."""

    def window(run: str, index: int) -> str:
        start = recorded.spans[run][0] + timedelta(seconds=3 + 5 * index)
        end = start + timedelta(seconds=5)
        return f"{start.astimezone(UTC).isoformat()}..{end.astimezone(UTC).isoformat()}"

    base, cand = recorded.baseline_run, recorded.candidate_run
    pairs = [(window(base, i), window(cand, i)) for i in range(6)]
    pairs += [(window(run, i), window(run, i + 1)) for run in (base, cand) for i in range(5)]
    pairs += [(window(base, i), window(cand, i + 1)) for i in range(4)]
    assert len(pairs) == 20
    verdicts = []
    for baseline, comparison in pairs:
        result = compare(recorded.output_dir, baseline, recorded.output_dir, comparison)
        ours = [r for r in result.rows if r.container in ("exp/idle/idle", "exp/burner/burner")]
        assert {r.container for r in ours} == {"exp/idle/idle", "exp/burner/burner"}
        verdicts += [(r.container, r.metric, r.statistic, r.verdict) for r in ours]
    flagged = [v for v in verdicts if v[3] != NO_CHANGE]
    print(f"{len(flagged)} of {len(verdicts)} verdicts flagged:", *flagged, sep="\n  ")
    assert len(flagged) <= 0.10 * len(verdicts)


BOUNDS_HOLD = """\
- container: "exp/holder/holder"
  metric: container.memory.rss_bytes
  statistic: max
  max: 200MiB
  min: 100MiB
- container: "exp/idle/*"          # a glob
  metric: process.memory.pss_bytes
  statistic: p95
  max: 50MiB
- container: "*/burner/*"
  metric: container.cpu.usage_usec   # a counter: per-second rate, in usec/s
  statistic: mean
  min: 200000
- container: "exp/*/*"
  metric: container.memory.oom_kills
  statistic: increase
  max: 0
"""

BOUNDS_FAIL = (
    BOUNDS_HOLD
    + """\
- container: "exp/holder/holder"
  metric: container.memory.rss_bytes
  statistic: mean
  max: 120MiB
- container: "nowhere/*/*"
  metric: container.memory.rss_bytes
  statistic: max
  max: 1GiB
"""
)


@pytest.mark.root
def test_bounds_hold_or_fail_with_exit_codes_and_junit(recorded: Recorded, tmp_path: Path) -> None:
    out = str(recorded.output_dir)
    holds, fails = tmp_path / "holds.yaml", tmp_path / "fails.yaml"
    holds.write_text(BOUNDS_HOLD)
    fails.write_text(BOUNDS_FAIL)
    junit = tmp_path / "junit.xml"

    ok = finemon("check", out, "--bounds", str(holds), "--run", "variant=candidate",
                 "--junit", str(junit))  # fmt: skip
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "FAIL" not in ok.stdout and ok.stdout.count("\nok  ") + ok.stdout.startswith("ok") >= 6
    suite = ElementTree.parse(junit).getroot()
    assert suite.tag == "testsuites" and suite.get("failures") == "0"
    [testsuite] = suite.findall("testsuite")
    cases = testsuite.findall("testcase")
    assert int(testsuite.get("tests", "-1")) == len(cases) >= 6
    assert not testsuite.findall("testcase/failure")

    bad = finemon("check", out, "--bounds", str(fails), "--run", recorded.candidate_run,
                  "--junit", str(junit))  # fmt: skip
    assert bad.returncode == 1, bad.stdout + bad.stderr
    failed = [line for line in bad.stdout.splitlines() if line.startswith("FAIL")]
    assert len(failed) == 2, bad.stdout
    assert any("exp/holder/holder container.memory.rss_bytes mean <= 125829120" in line
               and "above max" in line for line in failed)  # fmt: skip
    assert any("no data: no container matches 'nowhere/*/*'" in line for line in failed)
    suite = ElementTree.parse(junit).getroot()
    [testsuite] = suite.findall("testsuite")
    failures = testsuite.findall("testcase/failure")
    assert len(failures) == 2 == int(testsuite.get("failures", "-1"))
    assert all(f.get("message") and f.get("type") for f in failures)

    # The baseline's holder has 100 MiB: the 120 MiB bound holds there.
    baseline = finemon("check", out, "--bounds", str(fails), "--run", "variant=baseline")
    assert [line for line in baseline.stdout.splitlines() if line.startswith("FAIL")] == [
        line for line in baseline.stdout.splitlines() if "nowhere" in line
    ]


def test_a_bad_bounds_file_exits_2_naming_its_line(tmp_path: Path) -> None:
    bounds = tmp_path / "bounds.yaml"
    cases = {
        "- container: a/b/c\n  metric: m\n  statistic: p90\n  max: 1\n": ":3: statistic: 'p90'",
        "- container: a/b/c\n  metric: m\n  statistic: max\n": ":1: give min:, max: or both",
        "- container: a/b/c\n  metric: m\n  statistic: max\n  max: 12 parsecs\n": ":4: max:",
        "- container: a/b/c\n  metrc: m\n": ":2: unknown key 'metrc'",
        "container: a\n": ":1: expected a list of bounds",
        "- [unclosed\n": ": not YAML",
    }
    for text, expected in cases.items():
        bounds.write_text(text)
        done = finemon("check", str(tmp_path), "--bounds", str(bounds))
        assert done.returncode == 2, (text, done.stderr)
        assert expected in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr


@pytest.mark.root
def test_the_mcp_tools_compare_runs_and_check_bounds(recorded: Recorded) -> None:
    pytest.importorskip("mcp", reason="the mcp extra is not installed")
    import asyncio

    from mcp import Client

    from analysis.mcp_server import build_server
    from analysis.query.explorer import Explorer

    async def run() -> None:
        explorer = Explorer(recorded.output_dir)
        try:
            async with Client(build_server(explorer)) as client:
                compared = await client.call_tool(
                    "compare_runs",
                    {"baseline": "variant=baseline", "comparison": "variant=candidate"},
                )
                assert not compared.is_error, compared.content
                document = compared.structured_content
                assert document is not None
                row = next(
                    r
                    for r in document["rows"]
                    if (r["container"], r["metric"], r["statistic"])
                    == (HOLDER, "container.memory.rss_bytes", "mean")
                )
                assert row["verdict"] == "regression"
                assert row["ci90"][0] <= 40 * MIB <= row["ci90"][1]

                checked = await client.call_tool(
                    "check_bounds", {"bounds": BOUNDS_FAIL, "run": "variant=candidate"}
                )
                assert not checked.is_error, checked.content
                result = checked.structured_content
                assert result is not None and result["ok"] is False
                assert sum(not r["holds"] for r in result["results"]) == 2

                bad = await client.call_tool("check_bounds", {"bounds": "- container: x\n"})
                assert bad.is_error
                nothing = await client.call_tool(
                    "compare_runs", {"baseline": "variant=nope", "comparison": "variant=candidate"}
                )
                assert nothing.is_error
        finally:
            explorer.close()

    asyncio.run(run())
