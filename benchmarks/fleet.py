"""A synthetic fleet: compaction, starting the viewer and summary, a narrow query, locally, from S3
and through an Iceberg scan plan, raw against compacted, in one run.

The fleet (by default 20 nodes x 1 day x 100 containers with 3 processes each, a file every 90 s:
19,200 files) is written by the capture library's own writer (:func:`benchmarks.compaction.
write_day`: capture's schema and writer options, the daemon's footer metadata with each file's
summary) once into
``--data`` and reused by later runs. Ticks are 10 s rather than 1 s: the number of files, which
is what the readers' start pays for, is the daemon's; the rows are a tenth of a 1 Hz fleet's.
It then measures, printed side by side:

* compaction (``finemon compact --older-than 0s`` in a child process, on a hard-linked copy of
  the raw files): seconds, MB of input per second, the child's peak RSS (kept in
  ``DATA/compaction.json`` and reused unless ``--recompact``);
* ``finemon view``: from the process's start to the first chart's data through its HTTP API
  (status, range, containers, metrics, then one metric of one node's containers at 1200 points),
  target under 2 s; ``finemon summary``, the whole command, target under 1 s;
* ``finemon query`` of one container over one hour: the command's time and the bytes it read
  (``rchar`` of ``/proc/self/io`` around the command, its imports done before), target under 1 %
  of the dataset's bytes;
* the same query on ``s3://`` from moto's S3 server in this process: requests, objects fetched
  and bytes served, counted by the server;
* the Iceberg scan plan of that query (pyiceberg, a SQLite catalog filled by ``finemon
  catalog``): files planned out of all.

Run under the machine-wide lock: ``flock /tmp/finemon-bench.lock python -m benchmarks.fleet``
(``--quick``: 2 nodes x 2 hours x 20 containers, a smoke run). The commands run as child
processes of this tree's ``src``, so the same script measures again after the code changes;
``--fresh`` writes the fleet again (for a change in what the writer puts in the files).
Figures: docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from benchmarks.compaction import START_MS, write_day

SRC = Path(__file__).resolve().parents[1] / "src"
ROOT = SRC.parent
#: What the first chart shows: one metric over one node's containers.
CHART_METRIC = "container.memory.working_set_bytes"
CHART_POINTS = 1200
#: The narrow query's container: the 8th of the first node.
QUERY_NODE, QUERY_CONTAINER = 0, 7
QUERY_METRIC = "container.memory.usage_bytes"
TARGETS = {"view": 2.0, "summary": 1.0, "query_fraction": 0.01}
#: Bumped when the generated files change, so that an older fleet is not measured as this one.
GENERATOR = 1
BUCKET = "fleet"


@dataclass(frozen=True, slots=True)
class Scale:
    """The fleet's size."""

    nodes: int
    hours: int
    containers: int
    tick_seconds: float

    @property
    def ticks(self) -> int:
        return round(self.hours * 3600 / self.tick_seconds)


def node_name(index: int) -> str:
    return f"node-{index + 1:02d}"


def container_id(node: int, index: int) -> str:
    """A container id as the runtime makes them: 64 hex digits, unrelated across nodes."""
    import hashlib

    return hashlib.sha256(f"{node}/{index}".encode()).hexdigest()


def _write_node(root: Path, scale: Scale, node: int) -> tuple[int, int]:
    return write_day(
        root,
        containers=scale.containers,
        ticks=scale.ticks,
        tick_seconds=scale.tick_seconds,
        file_seconds=90.0,
        node=node_name(node),
        container_ids=[container_id(node, i) for i in range(scale.containers)],
        run_id=f"{node + 1:08x}" * 4,
        seed=node + 1,
        summaries=True,
    )


def dataset_size(root: Path) -> tuple[int, int]:
    """(files, bytes) of the visible Parquet files under ``root``."""
    files = [p for p in root.rglob("*.parquet") if not p.name.startswith(".")]
    return len(files), sum(p.stat().st_size for p in files)


def ensure_fleet(data: Path, scale: Scale, fresh: bool) -> dict[str, Any]:
    """The raw fleet in ``data/raw``, written unless an earlier run left this very one."""
    stamp = data / "fleet.json"
    wanted = {"generator": GENERATOR, **asdict(scale)}
    if not fresh and stamp.exists():
        known = json.loads(stamp.read_text())
        if {k: known.get(k) for k in wanted} == wanted:
            return dict(known)
        raise SystemExit(f"{data} holds another fleet ({known}): --fresh, or another --data")
    shutil.rmtree(data, ignore_errors=True)
    raw = data / "raw"
    raw.mkdir(parents=True)
    started = time.perf_counter()
    with ProcessPoolExecutor(max_workers=2) as pool:
        done = list(pool.map(_write_node, [raw] * scale.nodes, [scale] * scale.nodes,
                             range(scale.nodes)))  # fmt: skip
    files, rows = sum(f for f, _ in done), sum(r for _, r in done)
    _, size = dataset_size(raw)
    written = {
        **wanted,
        "files": files,
        "rows": rows,
        "bytes": size,
        "write_seconds": round(time.perf_counter() - started, 1),
    }
    stamp.write_text(json.dumps(written))
    return written


def _env() -> dict[str, str]:
    from tests.s3_server import AWS_ENV

    return {"PYTHONPATH": f"{SRC}{os.pathsep}{ROOT}", "PATH": "/usr/bin:/bin", **AWS_ENV}


def _finemon(*argv: str) -> list[str]:
    return [sys.executable, "-m", "finemon", *argv]


def ensure_compacted(data: Path, recompact: bool) -> dict[str, Any]:
    """``data/compacted``: a hard-linked copy of the raw files, compacted by ``finemon compact``
    in a child process (the swap renames over names, so the raw files stay as they are)."""
    stamp = data / "compaction.json"
    compacted = data / "compacted"
    if not recompact and stamp.exists() and compacted.is_dir():
        return dict(json.loads(stamp.read_text()))
    shutil.rmtree(compacted, ignore_errors=True)
    subprocess.run(["cp", "-al", str(data / "raw"), str(compacted)], check=True)
    _, input_bytes = dataset_size(compacted)
    started = time.perf_counter()
    child = subprocess.Popen(
        _finemon("compact", str(compacted), "--older-than", "0s", "--log-level", "WARNING"),
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    _, status, usage = os.wait4(child.pid, 0)
    seconds = time.perf_counter() - started
    output, errors = child.stdout.read(), child.stderr.read()  # type: ignore[union-attr]
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"finemon compact failed: {errors.decode()}")
    files, output_bytes = dataset_size(compacted)
    result = {
        "seconds": round(seconds, 1),
        "input_bytes": input_bytes,
        "output_bytes": output_bytes,
        "files": files,
        "mb_per_second": round(input_bytes / 1e6 / seconds, 2),
        "peak_rss_mib": round(usage.ru_maxrss / 1024),
        "said": output.decode().strip(),
        "measured": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    stamp.write_text(json.dumps(result))
    return result


def _free_port() -> int:
    from tests.s3_server import free_port

    return free_port()


def _get(base: str, path: str, params: Sequence[tuple[str, str]] = ()) -> Any:
    url = base + path + ("?" + urllib.parse.urlencode(list(params)) if params else "")
    with urllib.request.urlopen(url, timeout=1800) as response:
        return json.loads(response.read())


def first_chart_seconds(directory: Path, scale: Scale) -> dict[str, float]:
    """``finemon view DIR``: seconds from its start to its first answer, and to the first
    chart's data (the calls the page makes before it draws)."""
    port = _free_port()
    base = f"http://127.0.0.1:{port}/"
    started = time.perf_counter()
    view = subprocess.Popen(
        _finemon("view", str(directory), "--port", str(port)),
        env=_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        while True:
            try:
                _get(base, "api/status")
                break
            except (urllib.error.URLError, ConnectionError):
                if view.poll() is not None:
                    _, errors = view.communicate()
                    raise SystemExit(f"finemon view exited: {errors.decode()}") from None
                time.sleep(0.02)
        answering = time.perf_counter() - started
        _get(base, "api/range")
        containers = _get(base, "api/containers")["containers"]
        _get(base, "api/metrics")
        node = node_name(0)
        keys = [c["key"] for c in containers if c.get("node_name", node) == node]
        keys = keys[: scale.containers]
        body = _get(
            base,
            "api/series",
            [("metric", CHART_METRIC), *(("container", k) for k in keys),
             ("max_points", str(CHART_POINTS))],
        )  # fmt: skip
        chart = time.perf_counter() - started
    finally:
        view.terminate()
        view.wait(timeout=30)
    if len(body["series"]) != len(keys) or not keys:
        raise SystemExit(f"the first chart has {len(body['series'])} of {len(keys)} series")
    return {"answering": answering, "first_chart": chart}


def summary_seconds(directory: Path) -> float:
    """``finemon summary DIR``: the whole command's seconds."""
    started = time.perf_counter()
    done = subprocess.run(
        _finemon("summary", str(directory)), env=_env(), capture_output=True, check=False
    )
    if done.returncode != 0:
        raise SystemExit(f"finemon summary failed: {done.stderr.decode()}")
    return time.perf_counter() - started


def query_sql(scale: Scale) -> str:
    """One container's memory over one hour (the middle one of the day)."""
    start = datetime.fromtimestamp(START_MS / 1000, UTC) + timedelta(hours=scale.hours // 2)
    end = start + timedelta(hours=1)
    return (
        "SELECT count(*) AS n, avg(value_float) AS mean, max(value_float) AS peak FROM metrics "
        f"WHERE metric_name = '{QUERY_METRIC}' "
        f"AND container_id = '{container_id(QUERY_NODE, QUERY_CONTAINER)}' "
        f"AND time >= TIMESTAMPTZ '{start.isoformat()}' AND time < TIMESTAMPTZ '{end.isoformat()}'"
    )


def query_flags(scale: Scale) -> list[str]:
    """The narrow query's hour and container as ``finemon query`` flags, so that only the
    files whose summaries overlap them are opened."""
    start = datetime.fromtimestamp(START_MS / 1000, UTC) + timedelta(hours=scale.hours // 2)
    end = start + timedelta(hours=1)
    return ["--from", start.isoformat(), "--to", end.isoformat(),
            "--container", container_id(QUERY_NODE, QUERY_CONTAINER)]  # fmt: skip


#: Runs ``finemon`` in a child with its imports done first (those the command makes as it goes
#: too: their .pyc files are no data read), and writes the bytes its command read (``rchar``:
#: every read() and pread(), from the page cache or not) and its seconds.
_MEASURED = """\
import json, sys, time
import duckdb, pyarrow.parquet
import analysis.cli, analysis.dataset, analysis.query_cli, analysis.source, finemon.cli
import analysis.experiments.compare, analysis.experiments.render, analysis.experiments.workload
import analysis.objects, analysis.query.explorer
def rchar():
    with open("/proc/self/io") as f:
        return int(next(line for line in f if line.startswith("rchar")).split()[1])
before, started = rchar(), time.perf_counter()
code = finemon.cli.main(sys.argv[2:])
seconds, read = time.perf_counter() - started, rchar() - before
with open(sys.argv[1], "w") as f:
    json.dump({"code": code, "seconds": seconds, "read_bytes": read}, f)
"""


def measured_query(source: str, sql: str, *flags: str) -> dict[str, Any]:
    """``finemon query SOURCE SQL``: the process's seconds, the command's own seconds and the
    bytes it read, and its output."""
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        started = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-c", _MEASURED, out.name, "query", source, sql, *flags],
            env=_env(),
            capture_output=True,
            text=True,
            check=False,
        )
        seconds = time.perf_counter() - started
        result = json.loads(Path(out.name).read_text() or "{}")
    if done.returncode != 0 or result.get("code") != 0:
        raise SystemExit(f"finemon query {source} failed: {done.stderr}")
    return {**result, "process_seconds": seconds, "output": done.stdout.strip()}


def _takes_flag(command: str, flag: str) -> bool:
    done = subprocess.run(
        _finemon(command, "--help"), env=_env(), capture_output=True, text=True, check=False
    )
    return flag in done.stdout


def upload(server: Any, directory: Path, prefix: str) -> int:
    """Every visible file under ``directory`` to ``s3://fleet/PREFIX/...``; returns objects."""
    client = server.client()
    files = [p for p in directory.rglob("*") if p.is_file() and not p.name.startswith(".")]
    files = [p for p in files if not any(part.startswith(".") for part in p.parts)]

    def put(path: Path) -> None:
        key = f"{prefix}/{path.relative_to(directory).as_posix()}"
        client.upload_file(str(path), BUCKET, key)

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(put, files))
    return len(files)


def s3_query(server: Any, prefix: str, sql: str, cache_flag: bool) -> dict[str, Any]:
    """The query on ``s3://fleet/PREFIX``, as the server saw it (a cold cache, if the command
    keeps one)."""
    with tempfile.TemporaryDirectory(prefix="finemon-fleet-cache-") as cache:
        flags = ["--endpoint", server.endpoint]
        if cache_flag:
            flags += ["--cache-dir", cache]
        server.reset()
        result = measured_query(f"s3://{BUCKET}/{prefix}", sql, *flags)
        return {
            **result,
            "requests": dict(server.requests),
            "object_gets": server.object_gets,
            "ranged_gets": server.ranged_gets,
            "objects_fetched": len(server.objects_fetched),
            "response_bytes": server.response_bytes,
        }


def iceberg_plan(data: Path, which: str, scale: Scale) -> dict[str, Any]:
    """``finemon catalog`` of ``data/WHICH`` into a SQLite catalog, then the scan plan of the
    narrow query: files planned out of the table's files."""
    from pyiceberg.catalog.sql import SqlCatalog
    from pyiceberg.expressions import And, EqualTo, GreaterThanOrEqual, LessThan

    work = data / f"iceberg-{which}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    uri, warehouse = f"sqlite:///{work}/catalog.db", (work / "warehouse").as_uri()
    started = time.perf_counter()
    done = subprocess.run(
        _finemon("catalog", str(data / which), "--uri", uri, "--warehouse", warehouse),
        env=_env(),
        capture_output=True,
        text=True,
        check=False,
    )
    registered = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"finemon catalog failed: {done.stderr}")
    table = SqlCatalog("finemon", uri=uri, warehouse=warehouse).load_table("finemon.metrics")
    start = datetime.fromtimestamp(START_MS / 1000, UTC) + timedelta(hours=scale.hours // 2)
    end = start + timedelta(hours=1)
    row_filter = And(
        EqualTo("metric_name", QUERY_METRIC),
        EqualTo("container_id", container_id(QUERY_NODE, QUERY_CONTAINER)),
        GreaterThanOrEqual("time", start.isoformat()),
        LessThan("time", end.isoformat()),
    )
    started = time.perf_counter()
    planned = list(table.scan(row_filter=row_filter).plan_files())
    planning = time.perf_counter() - started
    files = table.inspect.files()
    return {
        "register_seconds": registered,
        "files": files.num_rows,
        "bytes": sum(files.column("file_size_in_bytes").to_pylist()),
        "planned": len(planned),
        "planned_bytes": sum(task.file.file_size_in_bytes for task in planned),
        "plan_seconds": planning,
    }


def _fmt_seconds(value: float, target: float | None = None) -> str:
    text = f"{value:.2f} s"
    if target is not None:
        text += " met" if value < target else " NOT met"
    return text


def _fmt_bytes(value: float) -> str:
    return f"{value / 1e6:,.1f} MB"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--nodes", type=int, default=20)
    parser.add_argument("--hours", type=int, default=24, help="1 to 24 (one UTC day)")
    parser.add_argument("--containers", type=int, default=100, help="per node")
    parser.add_argument("--tick-seconds", type=float, default=10.0)
    parser.add_argument("--quick", action="store_true", help="2 nodes x 2 h x 20 containers")
    parser.add_argument("--data", metavar="DIR", help="where the fleet is kept between runs "
                        "(default: /tmp/finemon-fleet/SCALE)")  # fmt: skip
    parser.add_argument("--fresh", action="store_true", help="write the fleet again")
    parser.add_argument("--recompact", action="store_true", help="compact it again")
    parser.add_argument("--no-s3", action="store_true", help="skip the S3 measures")
    parser.add_argument("--no-iceberg", action="store_true", help="skip the Iceberg plan")
    args = parser.parse_args(argv)
    if args.quick:
        scale = Scale(nodes=2, hours=2, containers=20, tick_seconds=args.tick_seconds)
    else:
        scale = Scale(args.nodes, args.hours, args.containers, args.tick_seconds)
    if not 1 <= scale.hours <= 24:
        parser.error("--hours: 1 to 24")
    name = f"{scale.nodes}n-{scale.hours}h-{scale.containers}c-{scale.tick_seconds:g}s"
    data = Path(args.data) if args.data else Path("/tmp/finemon-fleet") / name
    commit = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
        capture_output=True, text=True, check=False,
    ).stdout.strip() or "unknown (not a git checkout)"  # fmt: skip

    fleet = ensure_fleet(data, scale, args.fresh)
    print(
        f"fleet {name}: {fleet['files']:,} files, {fleet['rows']:,} rows, "
        f"{_fmt_bytes(fleet['bytes'])} (written in {fleet['write_seconds']} s) in {data}; "
        f"code at {commit}",
        flush=True,
    )
    compaction = ensure_compacted(data, args.recompact)
    print(f"compaction: {compaction}", flush=True)
    sql = query_sql(scale)
    results: dict[str, dict[str, Any]] = {}
    for which in ("raw", "compacted"):
        directory = data / which
        files, size = dataset_size(directory)
        # The index beside the data (``_index/``) is built by the first reader: measured
        # once without it (cold), then as every later start finds it (warm).
        shutil.rmtree(directory / "_index", ignore_errors=True)
        cold = first_chart_seconds(directory, scale)
        chart = first_chart_seconds(directory, scale)
        query = measured_query(str(directory), sql)
        results[which] = {
            "files": files,
            "bytes": size,
            "view_cold_first_chart": cold["first_chart"],
            **{f"view_{k}": v for k, v in chart.items()},
            "summary": summary_seconds(directory),
            "query": query,
            "query_selected": measured_query(str(directory), sql, *query_flags(scale)),
        }
        print(f"{which}: {results[which]}", flush=True)
    if results["raw"]["query"]["output"] != results["compacted"]["query"]["output"]:
        raise SystemExit("the query's answers differ between raw and compacted")
    if not args.no_s3:
        from tests.s3_server import CountingMotoServer

        server = CountingMotoServer()
        server.start()
        try:
            server.client().create_bucket(Bucket=BUCKET)
            cache_flag = _takes_flag("query", "--cache-dir")
            for which in ("raw", "compacted"):
                objects = upload(server, data / which, which)
                answer = s3_query(server, which, sql, cache_flag)
                if answer["output"] != results[which]["query"]["output"]:
                    raise SystemExit(f"the s3 answer differs: {answer['output']}")
                results[which]["s3"] = {"objects": objects, **answer}
                print(f"{which} s3: {results[which]['s3']}", flush=True)
        finally:
            server.stop()
    if not args.no_iceberg:
        for which in ("raw", "compacted"):
            results[which]["iceberg"] = iceberg_plan(data, which, scale)
            print(f"{which} iceberg: {results[which]['iceberg']}", flush=True)
    print_table(scale, fleet, compaction, results, commit)
    print(json.dumps({"scale": asdict(scale), "commit": commit, "fleet": fleet,
                      "compaction": compaction, "results": results}, default=str))  # fmt: skip
    return 0


def print_table(
    scale: Scale,
    fleet: dict[str, Any],
    compaction: dict[str, Any],
    results: dict[str, dict[str, Any]],
    commit: str,
) -> None:
    raw, compacted = results["raw"], results["compacted"]
    rows: list[tuple[str, str, str, str]] = []

    def row(label: str, pick: Any, target: str = "") -> None:
        rows.append((label, pick(raw), pick(compacted), target))

    row("files", lambda r: f"{r['files']:,}")
    row("bytes", lambda r: _fmt_bytes(r["bytes"]))
    row("view: first chart, no index yet", lambda r: _fmt_seconds(r["view_cold_first_chart"]))
    row("view: first answer", lambda r: _fmt_seconds(r["view_answering"]))
    row("view: first chart's data", lambda r: _fmt_seconds(r["view_first_chart"], 2.0), "< 2 s")
    row("summary", lambda r: _fmt_seconds(r["summary"], 1.0), "< 1 s")
    row("query: command (process)", lambda r: (
        f"{r['query']['seconds']:.2f} s ({r['query']['process_seconds']:.2f} s)"))  # fmt: skip

    def read(r: dict[str, Any]) -> str:
        fraction = r["query"]["read_bytes"] / r["bytes"]
        verdict = "met" if fraction < TARGETS["query_fraction"] else "NOT met"
        return f"{_fmt_bytes(r['query']['read_bytes'])} ({fraction:.2%}) {verdict}"

    row("query: bytes read (of the data)", read, "< 1 %")
    row("query --from/--to/--container", lambda r: (
        f"{r['query_selected']['seconds']:.2f} s"))  # fmt: skip

    def read_selected(r: dict[str, Any]) -> str:
        fraction = r["query_selected"]["read_bytes"] / r["bytes"]
        verdict = "met" if fraction < TARGETS["query_fraction"] else "NOT met"
        return f"{_fmt_bytes(r['query_selected']['read_bytes'])} ({fraction:.2%}) {verdict}"

    row("  its bytes read (of the data)", read_selected, "< 1 %")
    if "s3" in raw:
        row("s3 query: command", lambda r: _fmt_seconds(r["s3"]["seconds"]))
        row("s3 query: requests", lambda r: ", ".join(
            f"{k} {v:,}" for k, v in sorted(r["s3"]["requests"].items())))  # fmt: skip
        row("s3 query: objects fetched", lambda r: (
            f"{r['s3']['objects_fetched']:,} of {r['s3']['objects']:,} "
            f"({r['s3']['ranged_gets']:,} ranged GETs)"))  # fmt: skip
        row("s3 query: bytes served", lambda r: (
            f"{_fmt_bytes(r['s3']['response_bytes'])} "
            f"({r['s3']['response_bytes'] / r['bytes']:.2%})"))  # fmt: skip
    if "iceberg" in raw:
        row("iceberg: finemon catalog", lambda r: _fmt_seconds(r["iceberg"]["register_seconds"]))
        row("iceberg: files planned", lambda r: (
            f"{r['iceberg']['planned']:,} of {r['iceberg']['files']:,} "
            f"({r['iceberg']['planned_bytes'] / r['iceberg']['bytes']:.2%} of bytes)"))  # fmt: skip
        row("iceberg: planning", lambda r: _fmt_seconds(r["iceberg"]["plan_seconds"]))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    widths = [max(w, len(h)) for w, h in zip(widths, ("", "raw", "compacted", "target"),
                                             strict=True)]  # fmt: skip
    print(
        f"\nfleet: {scale.nodes} nodes x {scale.hours} h x {scale.containers} containers, "
        f"{scale.tick_seconds:g} s ticks, {fleet['rows']:,} rows; code at {commit}"
    )
    print(
        f"compaction: {compaction['seconds']} s, {compaction['mb_per_second']} MB/s of input, "
        f"peak RSS {compaction['peak_rss_mib']} MiB ({compaction['said']})\n"
    )
    header = ("", "raw", "compacted", "target")
    print("  ".join(h.ljust(w) if i == 0 else h.rjust(w)
                    for i, (h, w) in enumerate(zip(header, widths, strict=True))))  # fmt: skip
    print("  ".join("-" * w for w in widths))
    for r in rows:
        print("  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                        for i, (c, w) in enumerate(zip(r, widths, strict=True))))  # fmt: skip


if __name__ == "__main__":
    raise SystemExit(main())
