"""Helpers for the end-to-end tests: run the real ``finemon`` process and read what it wrote."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

HERE = Path(__file__).resolve().parent
SRC = HERE.parents[1] / "src"

#: Fast settings: 10 ticks a second, a 1 s window, a new file every 2 s.
FAST = ("--interval", "0.1", "--window-seconds", "1", "--rotation-seconds", "2")


def finemon_env() -> dict[str, str]:
    """The environment of a test finemon: src and this folder importable, no k8s identity."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("POD_NAME", "NODE_NAME", "CLUSTER_NAME", "FINEMON_GIT_REV")
    }
    env["PYTHONPATH"] = os.pathsep.join([str(SRC), str(HERE)])
    return env


class Finemon:
    """A running ``python -m finemon run ...`` whose stderr goes to a file."""

    def __init__(
        self,
        output_dir: Path,
        *args: str,
        observer: str = "fake_observer:make",
        log_path: Path | None = None,
    ) -> None:
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
            "test-node",
            "--identifier",
            "test-node",
            "--observer",
            observer,
            *args,
        ]
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in wait()
        self.process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=self._log, env=finemon_env()
        )

    @property
    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_log(self, text: str, timeout: float = 10.0, poll: float = 0.02) -> None:
        """Wait until ``text`` appears in the log (fails if the process ends first)."""
        wait_for(
            lambda: text in self.log or self.process.poll() is not None,
            timeout,
            f"{text!r} in the log",
            poll,
        )
        assert text in self.log, f"finemon exited ({self.process.returncode}):\n{self.log}"

    def signal(self, sig: signal.Signals) -> None:
        self.process.send_signal(sig)

    def alive(self) -> bool:
        return self.process.poll() is None

    def wait(self, timeout: float = 20.0) -> int:
        try:
            return self.process.wait(timeout)
        finally:
            self._log.close()

    def kill(self) -> None:
        if self.alive():
            self.process.kill()
        self.wait()


def run_finemon(output_dir: Path, *args: str, timeout: float = 20.0, **kw: Any) -> tuple[int, str]:
    """Run finemon to its end; returns (exit code, log)."""
    proc = Finemon(output_dir, *args, **kw)
    try:
        code = proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise
    return code, proc.log


def run_cli(*args: str, timeout: float = 20.0) -> subprocess.CompletedProcess[str]:
    """``python -m finemon ARGS`` with captured output."""
    return subprocess.run(
        [sys.executable, "-m", "finemon", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=finemon_env(),
        check=False,
    )


def wait_for(predicate: Callable[[], bool], timeout: float, what: str, poll: float = 0.02) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(poll)


def parquet_files(output_dir: Path) -> list[Path]:
    """Every published data file (not hidden) under ``output_dir``."""
    return sorted(p for p in output_dir.rglob("*.parquet") if not p.name.startswith((".", "_")))


def index_bytes(output_dir: Path) -> int:
    """The size of the index beside the data (``_index/``, written after each published file:
    the size limit counts it, and it may go past the limit by it as by the last file)."""
    return sum(p.stat().st_size for p in (output_dir / "_index").rglob("*") if p.is_file())


def hidden_leftovers(output_dir: Path) -> list[Path]:
    """Journals and partial files under ``output_dir``."""
    return sorted(
        p
        for p in output_dir.rglob(".*")
        if p.is_file() and p.name.endswith((".journal", ".partial"))
    )


def read_all(output_dir: Path) -> pa.Table:
    """Every data file, each opened on its own (proves each is readable), concatenated."""
    tables = []
    for path in parquet_files(output_dir):
        table = pq.read_table(path)
        tables.append(table.append_column("file", pa.array([path.name] * table.num_rows)))
    return pa.concat_tables(tables, promote_options="default")


def manifest(output_dir: Path, run_id: str | None = None) -> dict[str, Any]:
    path = (
        output_dir / "_session.json"
        if run_id is None
        else output_dir / "_sessions" / f"{run_id}.json"
    )
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def series_key(row: dict[str, Any], label_columns: Sequence[str]) -> tuple[Any, ...]:
    labels = row["labels"] or []
    return (
        row["run_id"],
        row["metric_name"],
        tuple(row[c] for c in label_columns),
        tuple(sorted(labels)),
    )
