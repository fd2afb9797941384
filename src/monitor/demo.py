"""``finemon demo``: record a small node for about a minute and summarize it.

Where it runs as root with a writable cgroup hierarchy, the demo builds a kubelet-shaped tree of
real cgroups (:mod:`monitor.sandbox`) with three small real workloads (one burning a CPU, one
growing its memory, one idle) and the log files kubelet would write for their pods, records
them with ``finemon run`` for ``--seconds``, prints a summary table per container (CPU, memory,
PSS) and removes everything it created. Where it cannot create cgroups it records the host's
own cgroups instead and says why.
"""

from __future__ import annotations

import argparse
import logging
import tempfile
from collections import defaultdict
from pathlib import Path

from monitor.config import Environment, add_run_arguments, build_config
from monitor.sandbox import KubeletSandbox, sandbox_unavailable

log = logging.getLogger("finemon.demo")

DEFAULT_SECONDS = 60.0
GROW_STEP_BYTES = 8 * 1024 * 1024
GROW_LIMIT_BYTES = 320 * 1024 * 1024


def add_demo_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of ``finemon demo``."""
    parser.add_argument(
        "--seconds",
        type=float,
        default=DEFAULT_SECONDS,
        metavar="S",
        help="how long to record (default: %(default)g)",
    )
    parser.add_argument(
        "--output-dir",
        default="./finemon-demo",
        metavar="DIR",
        help="where the demo's dataset goes (default: %(default)s)",
    )
    parser.add_argument(
        "--interval", default="1.0", metavar="S", help="sampling interval (default: 1.0)"
    )


def _run_config_argv(args: argparse.Namespace, log_root: Path | None) -> list[str]:
    window = max(1.0, min(60.0, args.seconds / 2))
    argv = [
        "--output-dir",
        str(args.output_dir),
        "--duration",
        f"{args.seconds:g}",
        "--interval",
        str(args.interval),
        "--window-seconds",
        f"{window:g}",
        "--rotation-seconds",
        f"{max(90.0, window * 1.5):g}",
        "--flush-seconds",
        "5",
        "--log-level",
        "WARNING",
    ]
    if log_root is not None:
        argv += ["--log-root", str(log_root)]
    return argv


def run_demo(args: argparse.Namespace) -> int:
    """Run the demo; returns the exit code."""
    from monitor import allocator  # noqa: PLC0415

    allocator.arrow_pool_from_c_library()  # as finemon run does, before pyarrow is imported
    from monitor.daemon import StartupError, run  # noqa: PLC0415 - pulls in pyarrow
    from monitor.signals import SignalWatch  # noqa: PLC0415

    reason = sandbox_unavailable()
    output = Path(args.output_dir)
    parser = argparse.ArgumentParser(prog="finemon run")
    add_run_arguments(parser)
    signals = SignalWatch()
    signals.install()
    try:
        if reason is None:
            with tempfile.TemporaryDirectory(prefix="finemon-demo-logs-") as logs:
                log_root = Path(logs)
                with KubeletSandbox(log_root=log_root) as box:
                    box.add_container("demo-cpu", "burner", [("burn", [])], namespace="demo")
                    box.add_container(
                        "demo-mem",
                        "grower",
                        [("grow", [str(GROW_STEP_BYTES), str(GROW_LIMIT_BYTES)])],
                        namespace="demo",
                        qos="besteffort",
                    )
                    box.add_container(
                        "demo-idle", "idle", [("sleep", [])], namespace="demo", qos="guaranteed"
                    )
                    print(
                        f"finemon demo: 3 containers in real cgroups under {box.prefix} "
                        f"(kubelet layout); recording for {args.seconds:g} s into {output} ..."
                    )
                    config = build_config(
                        parser.parse_args(_run_config_argv(args, log_root)), Environment.from_os()
                    )
                    code = run(config, signals=signals)
        else:
            print(
                f"finemon demo: cannot create cgroups here ({reason}); recording this host's "
                f"own cgroups for {args.seconds:g} s into {output} instead ..."
            )
            config = build_config(
                parser.parse_args(_run_config_argv(args, None)), Environment.from_os()
            )
            code = run(config, signals=signals)
    except StartupError as exc:
        print(f"finemon: error: {exc}")
        return 1
    finally:
        signals.close()
    print_summary(output)
    from analysis.cli import report_after_demo  # noqa: PLC0415 - duckdb and plotly, optional

    report_after_demo(output)
    return code


def print_summary(output: Path, namespace: str | None = None) -> None:
    """Print CPU, memory and PSS per container of the dataset at ``output`` (only those of
    ``namespace`` when given)."""
    import pyarrow.dataset as ds  # noqa: PLC0415 - the CLI starts without pyarrow

    try:
        dataset = ds.dataset(output, format="parquet", partitioning="hive")
        table = dataset.to_table(
            columns=["metric_name", "value_float", "container_name", "container_id", "labels"],
            filter=(ds.field("namespace") == namespace if namespace else ds.scalar(True))
            & ds.field("metric_name").isin(
                [
                    "container.cpu.usage_millicores",
                    "container.memory.working_set_bytes",
                    "container.memory.usage_bytes",
                    "container.memory.pss_bytes",
                ]
            ),
        )
    except (OSError, ValueError) as exc:
        print(f"no data to summarize in {output}: {exc}")
        return
    values: dict[tuple[str, str], list[float]] = defaultdict(list)
    for name, value, container, container_id, labels in zip(
        table["metric_name"].to_pylist(),
        table["value_float"].to_pylist(),
        table["container_name"].to_pylist(),
        table["container_id"].to_pylist(),
        table["labels"].to_pylist(),
        strict=True,
    ):
        key = container or dict(labels or []).get("cgroup") or (container_id or "?")[:12]
        if value is not None:
            values[(key, name)].append(value)
    containers = sorted({c for c, _ in values})
    if not containers:
        print(f"no container metrics in {output}")
        return
    header = (
        f"{'container':<28} {'cpu mean':>9} {'cpu max':>9} {'wset max':>10} "
        f"{'mem max':>10} {'pss max':>10}"
    )
    print(
        f"\n{header}\n{'':<28} {'(mcores)':>9} {'(mcores)':>9} {'(MiB)':>10} {'(MiB)':>10} "
        f"{'(MiB)':>10}"
    )
    mib = 1024 * 1024
    for container in containers:
        cpu = values.get((container, "container.cpu.usage_millicores"), [])
        wset = values.get((container, "container.memory.working_set_bytes"), [])
        mem = values.get((container, "container.memory.usage_bytes"), [])
        pss = values.get((container, "container.memory.pss_bytes"), [])

        def fmt(xs: list[float], scale: float = 1.0, agg: str = "max") -> str:
            if not xs:
                return "-"
            value = max(xs) if agg == "max" else sum(xs) / len(xs)
            return f"{value / scale:.0f}"

        print(
            f"{container[-28:]:<28} {fmt(cpu, agg='mean'):>9} {fmt(cpu):>9} "
            f"{fmt(wset, mib):>10} {fmt(mem, mib):>10} {fmt(pss, mib):>10}"
        )
    query = (
        "select metric_name, count(*) from "
        f"read_parquet('{output}/**/*.parquet', hive_partitioning=true) "
        "group by 1 order by 2 desc limit 10"
    )
    print(f"\n{dataset.count_rows()} rows in {output}; query them with DuckDB, for example:")
    print(f'  python -c "import duckdb; duckdb.sql(\\"{query}\\").show()"')
