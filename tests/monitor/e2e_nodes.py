"""Helpers for the end-to-end tests of ``finemon run`` with the real observer.

:class:`RealFinemon` runs ``python -m finemon run`` as on a node, without the tests' hidden
``--observer`` flag, so ``observers.node.NodeObserver`` reads the cgroup, ``/proc`` and log roots
it is given. :func:`fixture_node` builds such roots from ``tests/observers/layouts.py`` (kubelet's
systemd layout with the kernel's real file formats); the dataset checks below are what every run
must leave behind, whatever it sampled.
"""

from __future__ import annotations

import itertools
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pyarrow.dataset as ds
import pyarrow.parquet as pq
from finemon_process import Finemon, finemon_env, parquet_files, read_all, wait_for

from common.contract import LABEL_COLUMNS

# layouts.py lives beside the observer tests, which are not a package: this is the one place
# that makes it importable from here.
OBSERVER_TESTS = Path(__file__).resolve().parents[1] / "observers"
if str(OBSERVER_TESTS) not in sys.path:
    sys.path.append(str(OBSERVER_TESTS))

from layouts import (  # noqa: E402
    Expected,
    Layout,
    install_kernel_files,
    systemd_v2,
    write_pod_logs,
)

#: --node-name and --identifier of every run here.
NODE = "test-node"
#: Files a finished run may leave: the manifests, published data files and the index of each
#: partition (nothing hidden).
_DOCUMENTED = re.compile(
    r"^(_session\.json|_sessions/[0-9a-f]{32}\.json"
    r"|_index/dt=\d{4}-\d{2}-\d{2}/identifier=[A-Za-z0-9._-]+/_files\.json"
    r"|dt=\d{4}-\d{2}-\d{2}/identifier=[A-Za-z0-9._-]+/finemon-\d{8}T\d{6}Z-[0-9a-f]{8}-\d{5}"
    r"\.parquet)$"
)


class RealFinemon(Finemon):
    """A running ``finemon run`` with the real observer; stderr goes to a file."""

    def __init__(self, output_dir: Path, *args: str, log_path: Path | None = None) -> None:
        # Finemon.__init__ always passes --observer; this builds the command a node runs.
        self.output_dir = output_dir
        self.log_path = log_path or output_dir.parent / f"finemon-{time.monotonic_ns()}.log"
        command = [
            sys.executable,
            "-m",
            "finemon",
            "run",
            "--output-dir",
            str(output_dir),
            "--node-name",
            NODE,
            "--identifier",
            NODE,
            *args,
        ]
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in wait()
        self.process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=self._log, env=finemon_env()
        )

    def wait_rotations(self, count: int, timeout: float = 15.0) -> None:
        """Wait until the log shows ``count`` rotations (fails if finemon ends first)."""
        wait_for(
            lambda: self.log.count(" rotated file=") >= count or not self.alive(),
            timeout,
            f"{count} rotations",
        )
        assert self.alive(), f"finemon exited ({self.process.returncode}):\n{self.log}"


def run_real(output_dir: Path, *args: str, timeout: float = 30.0) -> tuple[int, str]:
    """Run the real finemon to its end (give ``--duration``); returns (exit code, log)."""
    proc = RealFinemon(output_dir, *args)
    try:
        code = proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise
    return code, proc.log


# ------------------------------------------------------------------------------------------
# a node made of fixture files
# ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ContainerNames:
    """What kubelet's log files say about a container."""

    namespace: str
    pod_name: str
    container_name: str


@dataclass(frozen=True)
class FixtureNode:
    """A v2 cgroup root, a ``/proc`` root and a log root, and what finemon must find in them."""

    layout: Layout
    log_root: Path
    names: dict[str, ContainerNames]  # by container id

    @property
    def cgroup_root(self) -> Path:
        return self.layout.fixture.root

    @property
    def proc_root(self) -> Path:
        return self.layout.fixture.proc_root

    @property
    def containers(self) -> list[Expected]:
        return self.layout.expected


def fixture_node(base: Path) -> FixtureNode:
    """kubelet's systemd layout on cgroup v2 with real-format kernel files in every container
    and process, and kubelet's log files naming every container (``ns-N/pod-N/app-N``)."""
    layout = install_kernel_files(systemd_v2(base / "node"))
    log_root = base / "log"
    names = {}
    for index, container in enumerate(layout.expected):
        assert container.container_id is not None
        entry = ContainerNames(f"ns-{index}", f"pod-{index}", f"app-{index}")
        write_pod_logs(
            log_root,
            container,
            namespace=entry.namespace,
            pod_name=entry.pod_name,
            container_name=entry.container_name,
        )
        names[container.container_id] = entry
    return FixtureNode(layout, log_root, names)


# ------------------------------------------------------------------------------------------
# what every run leaves behind
# ------------------------------------------------------------------------------------------


def undocumented_files(output_dir: Path) -> list[str]:
    """Files under ``output_dir`` other than the manifests and published data files."""
    return sorted(
        rel
        for rel in (p.relative_to(output_dir).as_posix() for p in output_dir.rglob("*"))
        if (output_dir / rel).is_file() and not _DOCUMENTED.match(rel)
    )


def every_parquet_readable(output_dir: Path) -> int:
    """Open every ``*.parquet`` under ``output_dir`` (hidden or not); returns the row count."""
    return sum(pq.read_table(path).num_rows for path in output_dir.rglob("*.parquet"))


def snapshot(output_dir: Path) -> dict[Path, int]:
    """Rows of every published data file, by path."""
    return {path: pq.read_metadata(path).num_rows for path in parquet_files(output_dir)}


def read_with_every_reader(output_dir: Path) -> list[dict[str, Any]]:
    """The rows of the dataset, after checking that pyarrow (each file, and the directory as a
    Hive dataset), pandas and DuckDB all read the directory with the same rows and partition
    columns. Each row has ``file`` (its file's name) and ``dt``/``identifier`` (the partition)."""
    table = read_all(output_dir)
    dataset = ds.dataset(output_dir, format="parquet", partitioning="hive").to_table()
    assert dataset.num_rows == table.num_rows
    assert {"dt", "identifier"} <= set(dataset.column_names)
    frame = pd.read_parquet(output_dir)
    assert len(frame) == table.num_rows
    assert {"dt", "identifier"} <= set(frame.columns)
    found = (
        duckdb.connect()
        .execute(
            "SELECT count(*), list(DISTINCT identifier) "
            f"FROM read_parquet('{output_dir}/**/*.parquet', hive_partitioning=true)"
        )
        .fetchone()
    )
    assert found is not None
    count, identifiers = found
    assert count == table.num_rows
    assert identifiers == [NODE]
    rows: list[dict[str, Any]] = table.to_pylist()
    partition = {
        path.name: (path.parent.parent.name.removeprefix("dt="), path.parent.name)
        for path in parquet_files(output_dir)
    }
    for row in rows:
        row["dt"], identifier = partition[row["file"]]
        row["identifier"] = identifier.removeprefix("identifier=")
    return rows


SeriesKey = tuple[Any, ...]


def series_of(row: dict[str, Any]) -> SeriesKey:
    """(run_id, metric_name, every label column, the sorted extra labels) of a row."""
    return (
        row["run_id"],
        row["metric_name"],
        tuple(row[c] for c in LABEL_COLUMNS),
        tuple(sorted(row["labels"] or [])),
    )


#: capture's counter of ticks it could not take because the tick loop fell a window behind.
MISSED_TICKS = "capture.missed_ticks"


def check_complete_slices(
    rows: Iterable[dict[str, Any]], keep: Callable[[dict[str, Any]], bool] = lambda row: True
) -> dict[SeriesKey, list[int]]:
    """No (series, fetch_index) in two rows (of one file or two), and no fetch_index missing
    between a series' first and last, for the rows ``keep`` selects; returns each series'
    sorted ticks.

    One exception, counted: a sample that overruns by more than the accumulator window makes
    capture skip the ticks that fell out of it (``capture.missed_ticks``; the ones within the
    window repeat the last values). Such a tick is absent from the whole run, so a series may
    miss a tick only when no row of its run has it, and a run may miss exactly as many ticks
    as it counted.
    """
    rows = list(rows)
    run_ticks: dict[str, set[int]] = defaultdict(set)
    missed: dict[str, int] = defaultdict(int)
    for row in rows:
        run_ticks[row["run_id"]].add(row["fetch_index"])
        if row["metric_name"] == MISSED_TICKS:
            missed[row["run_id"]] = max(missed[row["run_id"]], row["value_int"])
    seen: dict[tuple[Any, ...], str] = {}
    ticks: dict[SeriesKey, list[int]] = defaultdict(list)
    for row in rows:
        if not keep(row):
            continue
        series = series_of(row)
        key = (*series, row["fetch_index"])
        assert key not in seen, f"{key} in {seen[key]} and {row['file']}"
        seen[key] = row["file"]
        ticks[series].append(row["fetch_index"])
    for series, series_ticks in ticks.items():
        series_ticks.sort()
        first, last = series_ticks[0], series_ticks[-1]
        missing = sorted(set(range(first, last + 1)) - set(series_ticks))
        held = sorted(set(missing) & run_ticks[series[0]])
        assert not held, f"{series}: ticks {held[:10]} missing"
    for run_id in {series[0] for series in ticks}:
        present = run_ticks[run_id]
        absent = set(range(min(present), max(present) + 1)) - present
        assert len(absent) == missed[run_id], (
            f"run {run_id}: ticks {sorted(absent)[:10]} missing, {missed[run_id]} counted"
        )
    return ticks


def check_files_follow_each_other(output_dir: Path, run_id: str) -> int:
    """The run's files hold consecutive, non-overlapping tick ranges; returns how many.

    A gap between two files is allowed only for ticks capture counted as missed (see
    :func:`check_complete_slices`).
    """
    spans = []
    missed = 0
    for path in parquet_files(output_dir):
        if f"-{run_id[:8]}-" not in path.name:
            continue
        table = pq.read_table(path, columns=["run_id", "fetch_index", "metric_name", "value_int"])
        assert set(table.column("run_id").to_pylist()) <= {run_id}, f"{path} mixes runs"
        if table.num_rows:
            ticks = table.column("fetch_index").to_pylist()
            spans.append((min(ticks), max(ticks), path.name))
        for name, value in zip(
            table.column("metric_name").to_pylist(),
            table.column("value_int").to_pylist(),
            strict=True,
        ):
            if name == MISSED_TICKS:
                missed = max(missed, value)
    spans.sort()
    gaps = 0
    for (_, end, name), (start, _, following) in itertools.pairwise(spans):
        assert start > end, f"{name} ends at {end}, {following} starts at {start}"
        gaps += start - end - 1
    assert gaps <= missed, f"{gaps} ticks missing between files, {missed} counted"
    return len(spans)


# ------------------------------------------------------------------------------------------
# Prometheus
# ------------------------------------------------------------------------------------------


def scrape(url: str) -> str:
    """The text at ``url``; empty when the endpoint does not answer."""
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return str(response.read().decode())
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return ""


def samples(text: str, name: str) -> list[tuple[dict[str, str], float]]:
    """(labels, value) of every sample of metric ``name`` in a Prometheus text exposition."""
    found = []
    for line in text.splitlines():
        if not line.startswith(f"{name}{{"):
            continue
        labels_text, _, value = line[len(name) + 1 :].rpartition("} ")
        labels = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', labels_text))
        found.append((labels, float(value)))
    return found
