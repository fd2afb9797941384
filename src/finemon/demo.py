"""``finemon demo``: record a small node for about a minute and summarize it.

Where it runs as root with a writable cgroup hierarchy, the demo builds a kubelet-shaped tree of
real cgroups (:mod:`monitor.sandbox`) with three small real workloads (one burning a CPU, one
growing its memory, one idle) and the log files kubelet would write for their pods, records
them (and nothing else on the host: ``finemon run`` limited to the sandbox's cgroup subtree)
for ``--seconds``, prints a summary table per container (CPU, memory, PSS) and removes
everything it created. Where it cannot create cgroups it records the host's own cgroups
instead and says why.

The summary and the report cover only the run the demo just made (its ``run_id``, from the
manifest it left in ``_sessions/``) and, with the sandbox, only its three containers: a second
demo into the same directory, or a node with other containers (a Kubernetes node, tests
building their own sandboxes), changes nothing in them.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import os
import tempfile
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from analysis.query.names import ContainerLabels, container_labels, container_names
from common.catalogue.container import (
    CONTAINER_CPU_USAGE_MILLICORES,
    CONTAINER_MEMORY_PSS_BYTES,
    CONTAINER_MEMORY_USAGE_BYTES,
    CONTAINER_MEMORY_WORKING_SET_BYTES,
)
from monitor.config import Environment, add_run_arguments, build_config
from monitor.sandbox import KubeletSandbox, sandbox_unavailable

if TYPE_CHECKING:
    import pyarrow as pa

log = logging.getLogger("finemon.demo")

#: The columns that name a container (:mod:`analysis.query.names`), besides the labels' cgroup.
_NAME_COLUMNS = ("namespace", "pod_name", "container_name", "container_id", "pod_uid")

DEFAULT_SECONDS = 60.0
GROW_STEP_BYTES = 8 * 1024 * 1024
GROW_LIMIT_BYTES = 320 * 1024 * 1024
#: What the burner asks for: one CPU, busy-looping.
BURNER_MILLICORES = 1000.0
#: Below this share of a CPU the burner was starved. On an idle machine it measures 990-1000;
#: finemon itself, the grower and ordinary background take a few percent at most, even on one
#: CPU. Below 80 % something else held a fifth of the CPU for the whole minute (or a CPU limit
#: caps the demo), which a reader comparing with the README's table would take for a wrong
#: measurement.
BURNER_STARVED_SHARE = 0.8


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


def _session_ids(output: Path) -> set[str]:
    """The run ids of the manifests kept under ``output/_sessions``."""
    try:
        return {path.stem for path in (output / "_sessions").glob("*.json")}
    except OSError:
        return set()


def _demo_run_id(output: Path, before: set[str]) -> str | None:
    """The run id of the run the demo just made: the manifest that appeared in ``_sessions``
    (else the one ``_session.json`` names: the directory's last run)."""
    new = _session_ids(output) - before
    if len(new) == 1:
        return new.pop()
    try:
        manifest = json.loads((output / "_session.json").read_text())
    except (OSError, ValueError):
        return None
    run_id = manifest.get("run_id") if isinstance(manifest, dict) else None
    return run_id if isinstance(run_id, str) else None


def run_demo(args: argparse.Namespace) -> int:
    """Run the demo; returns the exit code."""
    from monitor import memory_policy  # noqa: PLC0415

    memory_policy.before_imports(allow_pandas=True)  # the analysis may want pandas afterwards
    from monitor.daemon import StartupError, run  # noqa: PLC0415 - pulls in pyarrow
    from monitor.signals import SignalWatch  # noqa: PLC0415

    reason = sandbox_unavailable()
    output = Path(args.output_dir)
    parser = argparse.ArgumentParser(prog="finemon run")
    add_run_arguments(parser)
    signals = SignalWatch()
    signals.install()
    before = _session_ids(output)
    # The sandbox's containers (by container_id); None: every container of the run (the host's).
    container_keys: list[str] | None = None
    try:
        if reason is None:
            with tempfile.TemporaryDirectory(prefix="finemon-demo-logs-") as logs:
                log_root = Path(logs)
                with KubeletSandbox(log_root=log_root) as box:
                    containers = [
                        box.add_container("demo-cpu", "burner", [("burn", [])], namespace="demo"),
                        box.add_container(
                            "demo-mem",
                            "grower",
                            [("grow", [str(GROW_STEP_BYTES), str(GROW_LIMIT_BYTES)])],
                            namespace="demo",
                            qos="besteffort",
                        ),
                        box.add_container(
                            "demo-idle",
                            "idle",
                            [("sleep", [])],
                            namespace="demo",
                            qos="guaranteed",
                        ),
                    ]
                    container_keys = [c.container_id for c in containers]
                    print(
                        f"finemon demo: 3 containers in real cgroups under {box.prefix} "
                        f"(kubelet layout); recording for {args.seconds:g} s into {output} ..."
                    )
                    config = build_config(
                        parser.parse_args(_run_config_argv(args, log_root)), Environment.from_os()
                    )
                    # Its own containers only, whatever else runs on the host.
                    config = replace(config, cgroup_subtree=box.prefix)
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
    run_id = _demo_run_id(output, before)
    print_summary(output, run_id=run_id, container_keys=container_keys)
    from analysis.cli import report_after_demo  # noqa: PLC0415 - duckdb and plotly, optional

    report_after_demo(output, run_id=run_id, container_keys=container_keys)
    return code


def burner_warning(
    mean_millicores: float | None, cpu_count: int, load_average: float | None = None
) -> str | None:
    """The warning to print when the burner, which asks for a whole CPU, got less than
    ``BURNER_STARVED_SHARE`` of it on average (None when it got enough, or was not measured):
    the machine is busy or the demo is CPU-limited, and every number shows it."""
    if mean_millicores is None or mean_millicores >= BURNER_STARVED_SHARE * BURNER_MILLICORES:
        return None
    load = (
        f" (load average {load_average:.1f} on {cpu_count} CPU{'s' if cpu_count != 1 else ''})"
        if load_average is not None
        else ""
    )
    return (
        f"warning: the burner got {mean_millicores:.0f} of the {BURNER_MILLICORES:.0f} "
        f"millicores it asks for: this machine is busy or CPU-limited{load}, so the numbers "
        "above reflect that (finemon measured what the kernel gave it); on an idle machine "
        "it uses a whole CPU"
    )


def query_hint(output: Path, run_id: str | None, duckdb_installed: bool) -> list[str]:
    """The lines telling how to query the demo's data with what is installed: ``finemon
    query`` needs the analysis extra (duckdb), which ``pip install .`` leaves out."""
    where = f" WHERE run_id = '{run_id}'" if run_id else ""
    # The CPU of each container from its cumulative counter: what rate() is for.
    command = (
        f'finemon query {output} "SELECT name, round(avg(per_second) / 1000) AS millicores '
        "FROM rate('container.cpu.usage_usec') JOIN containers USING (run_id, container_key)"
        f'{where} GROUP BY name ORDER BY millicores DESC"'
    )
    if duckdb_installed:
        return ["query them with SQL, for example CPU per container:", f"  {command}"]
    from analysis.errors import INSTALL_HINT  # noqa: PLC0415 - cheap: no duckdb

    return [
        f"to query them with SQL, install the analysis extra ({INSTALL_HINT}; from a "
        "source checkout: pip install '.[analysis]'), then for example CPU per container:",
        f"  {command}",
    ]


def _container_labels(table: pa.Table) -> tuple[list[ContainerLabels], dict[int, str]]:
    """The containers of ``table`` (rows of the dataset), each with its most complete names
    and first tick (:func:`analysis.query.names.container_labels`), and the container key of
    each row (keyed as analysis.dataset keys them: the container id, else the cgroup label,
    else the pod uid)."""
    names: dict[str, dict[str, str | None]] = {}
    first: dict[str, datetime] = {}
    row_keys: dict[int, str] = {}
    for index, row in enumerate(table.select(["time", *_NAME_COLUMNS, "labels"]).to_pylist()):
        cgroup = dict(row["labels"] or []).get("cgroup")
        key = row["container_id"] or cgroup or row["pod_uid"]
        if key is None:
            continue
        row_keys[index] = key
        first[key] = min(first.get(key, row["time"]), row["time"])
        known = names.setdefault(key, {})
        for column in _NAME_COLUMNS:
            if known.get(column) is None:  # kubelet's names may appear after the first tick
                known[column] = row[column]
    containers = [
        container_labels(
            key,
            namespace=known["namespace"],
            pod_name=known["pod_name"],
            container_name=known["container_name"],
            container_id=known["container_id"],
            pod_uid=known["pod_uid"],
            first_ms=round(first[key].timestamp() * 1000),
        )
        for key, known in sorted(names.items())
    ]
    return containers, row_keys


def print_summary(
    output: Path,
    namespace: str | None = None,
    *,
    run_id: str | None = None,
    container_keys: Sequence[str] | None = None,
) -> None:
    """Print CPU, memory and PSS per container of the dataset at ``output``: only those of
    ``namespace``, of run ``run_id`` and with ``container_id`` in ``container_keys`` when given.
    Containers are named as everywhere else (:func:`analysis.query.names.container_names`). Reads
    with pyarrow alone (the base install has no duckdb)."""
    import pyarrow.dataset as ds  # noqa: PLC0415 - the CLI starts without pyarrow

    selection = ds.scalar(True)
    if namespace:
        selection &= ds.field("namespace") == namespace
    if run_id:
        selection &= ds.field("run_id") == run_id
    if container_keys is not None:
        selection &= ds.field("container_id").isin(list(container_keys))
    try:
        dataset = ds.dataset(output, format="parquet", partitioning="hive")
        table = dataset.to_table(
            columns=["time", "metric_name", "value_float", *_NAME_COLUMNS, "labels"],
            filter=selection
            & ds.field("metric_name").isin(
                [
                    CONTAINER_CPU_USAGE_MILLICORES,
                    CONTAINER_MEMORY_WORKING_SET_BYTES,
                    CONTAINER_MEMORY_USAGE_BYTES,
                    CONTAINER_MEMORY_PSS_BYTES,
                ]
            ),
        )
        rows = dataset.count_rows(
            filter=ds.field("run_id") == run_id if run_id else ds.scalar(True)
        )
    except (OSError, ValueError) as exc:
        print(f"no data to summarize in {output}: {exc}")
        return
    containers, row_keys = _container_labels(table)
    values: dict[tuple[str, str], list[float]] = defaultdict(list)
    for index, (metric, value) in enumerate(
        zip(table["metric_name"].to_pylist(), table["value_float"].to_pylist(), strict=True)
    ):
        if index in row_keys and value is not None:
            values[(row_keys[index], metric)].append(value)
    containers = [c for c in containers if any(k == c.key for k, _ in values)]
    if not containers:
        print(f"no container metrics in {output}")
        return
    named = dict(zip((c.key for c in containers), container_names(containers), strict=True))
    names = {key: n.name for key, n in named.items()}
    # By name, a restarted container's lives in the order they started.
    containers.sort(
        key=lambda c: (named[c.key].name.removesuffix(named[c.key].life), c.first_ms, c.key)
    )
    width = max(28, *(len(name) for name in names.values()))
    header = (
        f"{'container':<{width}} {'cpu mean':>9} {'cpu max':>9} {'wset max':>10} "
        f"{'mem max':>10} {'pss max':>10}"
    )
    print(
        f"\n{header}\n{'':<{width}} {'(mcores)':>9} {'(mcores)':>9} {'(MiB)':>10} "
        f"{'(MiB)':>10} {'(MiB)':>10}"
    )
    mib = 1024 * 1024

    def fmt(xs: list[float], scale: float = 1.0, agg: str = "max") -> str:
        if not xs:
            return "-"
        value = max(xs) if agg == "max" else sum(xs) / len(xs)
        return f"{value / scale:.0f}"

    for container in containers:
        key = container.key
        cpu = values.get((key, CONTAINER_CPU_USAGE_MILLICORES), [])
        wset = values.get((key, CONTAINER_MEMORY_WORKING_SET_BYTES), [])
        mem = values.get((key, CONTAINER_MEMORY_USAGE_BYTES), [])
        pss = values.get((key, CONTAINER_MEMORY_PSS_BYTES), [])
        print(
            f"{names[key]:<{width}} {fmt(cpu, agg='mean'):>9} {fmt(cpu):>9} "
            f"{fmt(wset, mib):>10} {fmt(mem, mib):>10} {fmt(pss, mib):>10}"
        )
    if container_keys is not None:  # the sandbox: the burner is there
        burner = next(
            (
                values.get((c.key, CONTAINER_CPU_USAGE_MILLICORES))
                for c in containers
                if c.container_name == "burner"
            ),
            None,
        )
        warning = burner_warning(
            sum(burner) / len(burner) if burner else None,
            os.cpu_count() or 1,
            os.getloadavg()[0],
        )
        if warning:
            print(f"\n{warning}")
    run = f" (run {run_id})" if run_id else ""
    print(f"\n{rows} rows in {output}{run}; ", end="")
    duckdb_installed = importlib.util.find_spec("duckdb") is not None
    print("\n".join(query_hint(output, run_id, duckdb_installed)))
