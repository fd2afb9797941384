"""The configuration of ``finemon run``: one typed object built from the flags and the env.

Kubernetes passes the pod's identity through the downward API as the environment variables
``POD_NAME``, ``NODE_NAME`` and ``CLUSTER_NAME``; ``FINEMON_GIT_REV`` (set when the image is
built) names the source revision for the session manifest. This module is the only place in
finemon that reads ``os.environ``.

Every flag is checked here, so a bad value stops the command before anything starts, with a
one-line message and exit code 2. Rules that tie flags together:

- ``--rotation-seconds`` must exceed ``--window-seconds`` (counted in ticks of ``--interval``):
  the accumulator window flows into the next file at each rotation, so a shorter rotation would
  publish files that own no complete tick. finemon refuses such a configuration rather than
  silently changing either value.
- ``--identifier`` (default ``POD_NAME``, else ``NODE_NAME``, else the host name) names a
  directory, so it is sanitized: characters outside ``[A-Za-z0-9._-]`` become ``_`` and leading
  dots are dropped.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import socket
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal, get_args

from common import sizes
from monitor.intake.flags import (
    IntakeConfig,
    TargetMetricsConfig,
    add_intake_arguments,
    intake_config,
    target_metrics_config,
)
from monitor.shipping.flags import UploadConfig, add_upload_arguments, upload_config

#: Smallest ``--interval``: below 10 ms a Python sampler cannot keep the grid.
MIN_INTERVAL_SECONDS = 0.01
#: Largest ``--interval``.
MAX_INTERVAL_SECONDS = 3600.0
#: Longest identifier kept (a directory name component).
MAX_IDENTIFIER_LENGTH = 128

DEFAULT_OUTPUT_DIR = "./finemon-data"
DEFAULT_SIZE_LIMIT = "1GiB"

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
#: ``--prometheus-series``: the series the live endpoint serves.
PrometheusSeries = Literal["default", "all"]
PROMETHEUS_SERIES: tuple[str, ...] = get_args(PrometheusSeries)

_UNSAFE_IDENTIFIER = re.compile(r"[^A-Za-z0-9._-]")
# Float fuzz when turning seconds into ticks (0.3 / 0.1 is 2.9999999999999996).
_TICK_EPSILON = 1e-9


class ConfigError(ValueError):
    """A flag value or a combination of flags that finemon refuses; the message is one line."""


def parse_size(text: str) -> int:
    """Bytes in ``text`` (:func:`common.sizes.parse_size`: ``1GiB``, ``500MB``, ``2G``,
    ``123``); raises ConfigError for anything else or a size that is not positive."""
    try:
        return sizes.parse_size(text)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def sanitize_identifier(raw: str) -> str:
    """``raw`` made safe as a path component and a Hive partition value.

    Characters outside ``[A-Za-z0-9._-]`` become ``_``, leading dots are dropped (a hidden name
    would be skipped by dataset readers), the result is cut to 128 characters. Raises ConfigError
    when nothing is left.
    """
    clean = _UNSAFE_IDENTIFIER.sub("_", raw.strip()).lstrip(".")[:MAX_IDENTIFIER_LENGTH]
    if not clean.strip("_-"):
        raise ConfigError(f"invalid identifier {raw!r}: no usable characters [A-Za-z0-9._-]")
    return clean


def seconds_to_ticks(seconds: float, interval_seconds: float) -> int:
    """How many ticks of ``interval_seconds`` cover ``seconds`` (rounded up, at least 1)."""
    return max(1, math.ceil(seconds / interval_seconds - _TICK_EPSILON))


@dataclass(frozen=True, slots=True)
class Environment:
    """What finemon takes from its environment (the Kubernetes downward API and the build)."""

    pod_name: str | None
    node_name: str | None
    cluster_name: str | None
    git_revision: str | None
    hostname: str

    @classmethod
    def from_os(cls, environ: Mapping[str, str] | None = None) -> Environment:
        """Read POD_NAME, NODE_NAME, CLUSTER_NAME, FINEMON_GIT_REV and the host name."""
        env = os.environ if environ is None else environ

        def get(name: str) -> str | None:
            value = env.get(name, "").strip()
            return value or None

        return cls(
            pod_name=get("POD_NAME"),
            node_name=get("NODE_NAME"),
            cluster_name=get("CLUSTER_NAME"),
            git_revision=get("FINEMON_GIT_REV"),
            hostname=socket.gethostname() or "localhost",
        )


@dataclass(frozen=True, slots=True)
class Config:
    """Everything ``finemon run`` needs, validated. Durations in seconds, sizes in bytes."""

    output_dir: Path
    interval_seconds: float
    rotation_seconds: float
    flush_seconds: float
    compression_level: int
    size_limit_bytes: int
    identifier: str
    node_name: str
    cluster_name: str | None
    pod_name: str | None
    duration_seconds: float | None
    window_seconds: float
    prometheus_port: int | None
    prometheus_address: str
    cgroup_root: Path | None
    proc_root: Path
    log_root: Path
    pss: bool
    pss_interval_seconds: float
    pss_budget_seconds: float
    smaps: bool
    smaps_interval_seconds: float
    log_level: str
    git_revision: str | None
    #: Which series the Prometheus endpoint serves: ``default`` (the headline series of each
    #: container, see ``common.catalogue.PROMETHEUS_DEFAULT_ENTRIES``) or ``all``.
    prometheus_series: PrometheusSeries = "default"
    #: ``module:callable`` building the observer instead of the real one (tests only).
    observer: str | None = None
    #: ``--upload`` and its settings (None: the data stays local).
    upload: UploadConfig | None = None
    #: ``--experiment`` and ``--variant``: what the run is part of, for ``finemon compare``
    #: (recorded in the manifest; None: not given).
    experiment: str | None = None
    variant: str | None = None
    #: ``--compact-older-than``: compact files this old in a child process (None: off).
    compact_older_than_seconds: float | None = None
    #: Record only the cgroups below this path (relative to the hierarchy roots); empty: the
    #: whole tree. No flag sets it: ``finemon demo`` records its sandbox alone with it.
    cgroup_subtree: str = ""
    #: ``--intake-port`` and its settings (None: no intake).
    intake: IntakeConfig | None = None
    #: ``--target-metrics`` and its interval (None: no scrapes).
    target_metrics: TargetMetricsConfig | None = None

    @property
    def window_ticks(self) -> int:
        """The accumulator window in ticks."""
        return seconds_to_ticks(self.window_seconds, self.interval_seconds)

    @property
    def rotation_ticks(self) -> int:
        """The rotation period in ticks."""
        return seconds_to_ticks(self.rotation_seconds, self.interval_seconds)

    def to_json(self) -> dict[str, object]:
        """The configuration as JSON-ready values (paths as strings), for the manifest."""
        out: dict[str, object] = {}
        for key, value in asdict(self).items():
            out[key] = str(value) if isinstance(value, Path) else value
        out["window_ticks"] = self.window_ticks
        out["rotation_ticks"] = self.rotation_ticks
        return out


# ---------------------------------------------------------------------- argparse types
def _number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"not a finite number: {text!r}")
    return value


def positive_seconds(text: str) -> float:
    """argparse type: a finite number of seconds greater than zero."""
    value = _number(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be greater than 0 seconds, got {text!r}")
    return value


def interval_seconds(text: str) -> float:
    """argparse type: the tick interval, 0.01 to 3600 seconds (sub-second values welcome)."""
    value = _number(text)
    if not MIN_INTERVAL_SECONDS <= value <= MAX_INTERVAL_SECONDS:
        raise argparse.ArgumentTypeError(
            f"must be between {MIN_INTERVAL_SECONDS} and {MAX_INTERVAL_SECONDS:g} seconds, "
            f"got {text!r}"
        )
    return value


def compression_level(text: str) -> int:
    """argparse type: a ZSTD level, 1 to 22."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if not 1 <= value <= 22:
        raise argparse.ArgumentTypeError(f"must be 1..22, got {text!r}")
    return value


def port(text: str) -> int:
    """argparse type: a TCP port, 1 to 65535."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be 1..65535, got {text!r}")
    return value


def size(text: str) -> int:
    """argparse type: a size in bytes with an optional unit (see :func:`parse_size`)."""
    try:
        return parse_size(text)
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def nonempty(text: str) -> str:
    """argparse type: a string that is not blank."""
    if not text.strip():
        raise argparse.ArgumentTypeError("must not be empty")
    return text.strip()


def log_level(text: str) -> str:
    """argparse type: DEBUG, INFO, WARNING or ERROR (any case)."""
    level = text.strip().upper()
    if level not in LOG_LEVELS:
        raise argparse.ArgumentTypeError(f"must be one of {', '.join(LOG_LEVELS)}, got {text!r}")
    return level


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the flags of ``finemon run`` to ``parser``."""
    out = parser.add_argument_group("output")
    out.add_argument(
        "--output-dir",
        type=nonempty,
        default=DEFAULT_OUTPUT_DIR,
        metavar="DIR",
        help="dataset directory: DIR/dt=YYYY-MM-DD/identifier=ID/*.parquet, plus the session "
        "manifests _session.json and _sessions/RUN_ID.json (default: %(default)s)",
    )
    out.add_argument(
        "--identifier",
        type=nonempty,
        metavar="ID",
        help="the identifier= partition (default: $POD_NAME, else $NODE_NAME, else the host "
        "name); characters outside [A-Za-z0-9._-] become _",
    )
    out.add_argument(
        "--rotation-seconds",
        type=positive_seconds,
        default=90.0,
        metavar="S",
        help="start a new file every S seconds; must exceed --window-seconds, otherwise "
        "finemon refuses to start (default: %(default)g)",
    )
    out.add_argument(
        "--flush-seconds",
        type=positive_seconds,
        default=10.0,
        metavar="S",
        help="write a row group and fsync the journal every S seconds (default: %(default)g)",
    )
    out.add_argument(
        "--compression-level",
        type=compression_level,
        default=3,
        metavar="N",
        help="ZSTD level 1..22 (default: %(default)s)",
    )
    out.add_argument(
        "--size-limit",
        type=size,
        default=DEFAULT_SIZE_LIMIT,
        metavar="SIZE",
        help="stop recording once every file finemon wrote under --output-dir (Parquet files, "
        "journals, manifests, across restarts) adds up to SIZE, e.g. 1GiB, 500MB, 2G, 123456. "
        "The current file is finalized, the manifest records reason size_limit, and finemon "
        "stays up idle (serving --prometheus-port if given) until it is signalled or space is "
        "freed; a restart that finds the limit reached writes nothing and idles too, so a "
        "DaemonSet pod never crash-loops. A full disk idles the same way (default: %(default)s)",
    )

    timing = parser.add_argument_group("timing")
    timing.add_argument(
        "--interval",
        type=interval_seconds,
        default=1.0,
        metavar="S",
        help="sample every S seconds on the wall-clock grid; sub-second values such as 0.1 "
        "work (default: %(default)g)",
    )
    timing.add_argument(
        "--window-seconds",
        type=positive_seconds,
        default=60.0,
        metavar="S",
        help="accumulator window: how long a tick stays open for delayed writes before it is "
        "written out (default: %(default)g)",
    )
    timing.add_argument(
        "--duration",
        type=positive_seconds,
        metavar="S",
        help="stop cleanly after S seconds (default: run until SIGINT/SIGTERM)",
    )

    ident = parser.add_argument_group("identity")
    ident.add_argument(
        "--node-name",
        type=nonempty,
        metavar="NAME",
        help="the node_name column (default: $NODE_NAME, else the host name)",
    )
    ident.add_argument(
        "--cluster-name",
        type=nonempty,
        metavar="NAME",
        help="the cluster_name column of every row, also in the session manifest (default: "
        "$CLUSTER_NAME; without either the column is null)",
    )

    experiment = parser.add_argument_group("experiment")
    experiment.add_argument(
        "--experiment",
        type=nonempty,
        metavar="NAME",
        help="the experiment this run belongs to, recorded in the manifest (finemon compare "
        "and check select runs by it; see docs/experiments.md)",
    )
    experiment.add_argument(
        "--variant",
        type=nonempty,
        metavar="NAME",
        help="the variant of the experiment this run records, e.g. baseline or candidate "
        "(finemon compare --baseline variant=NAME)",
    )

    host = parser.add_argument_group("host")
    host.add_argument(
        "--cgroup-root",
        metavar="DIR",
        help="the host's cgroup mount (default: found from /proc/self/mountinfo)",
    )
    host.add_argument(
        "--proc-root",
        default="/proc",
        metavar="DIR",
        help="the host's /proc (default: %(default)s)",
    )
    host.add_argument(
        "--log-root",
        default="/var/log",
        metavar="DIR",
        help="the folder that holds containers/ and pods/ (default: %(default)s)",
    )
    host.add_argument(
        "--pss",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="per-process PSS from smaps_rollup (default: on)",
    )
    host.add_argument(
        "--pss-interval-seconds",
        type=positive_seconds,
        default=1.0,
        metavar="S",
        help="read PSS every S seconds (default: %(default)g)",
    )
    host.add_argument(
        "--pss-budget-seconds",
        type=positive_seconds,
        default=0.25,
        metavar="S",
        help="time budget per tick for smaps_rollup reads (default: %(default)g)",
    )
    host.add_argument(
        "--smaps",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="per-region smaps breakdown (default: off)",
    )
    host.add_argument(
        "--smaps-interval-seconds",
        type=positive_seconds,
        default=60.0,
        metavar="S",
        help="read the smaps breakdown every S seconds (default: %(default)g)",
    )

    ops = parser.add_argument_group("operation")
    ops.add_argument(
        "--prometheus-port",
        type=port,
        metavar="PORT",
        help="serve the live values at http://ADDRESS:PORT/metrics (default: off)",
    )
    ops.add_argument(
        "--prometheus-address",
        type=nonempty,
        default="0.0.0.0",
        metavar="ADDRESS",
        help="address the Prometheus endpoint binds (default: %(default)s)",
    )
    ops.add_argument(
        "--prometheus-series",
        choices=PROMETHEUS_SERIES,
        default="default",
        help="the series the endpoint serves: default, each container's headline series (at "
        "most 30, see docs/prometheus.md), or all, every series the files hold (default: "
        "%(default)s)",
    )
    ops.add_argument(
        "--log-level",
        type=log_level,
        default="INFO",
        metavar="LEVEL",
        help=f"{', '.join(LOG_LEVELS)} (default: %(default)s)",
    )
    # For tests: build the observer with module:callable (called with the ObserverConfig).
    ops.add_argument("--observer", metavar="MODULE:CALLABLE", help=argparse.SUPPRESS)

    add_upload_arguments(parser)
    add_intake_arguments(parser, port, size)
    compaction = parser.add_argument_group("compaction")
    compaction.add_argument(
        "--compact-older-than",
        type=duration,
        metavar="DURATION",
        help="merge each partition's files once this old (e.g. 0s, 30m, 1h) into files of "
        "128 MiB to 1 GiB, in a low-priority child process, as finemon compact does "
        "(docs/compaction.md) (default: off)",
    )


def duration(text: str) -> float:
    """argparse type: a duration such as ``0s``, ``15m``, ``1h`` in seconds."""
    from monitor.compaction.plan import parse_duration  # noqa: PLC0415

    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _directory(flag: str, text: str) -> Path:
    path = Path(text)
    if not path.is_dir():
        raise ConfigError(f"{flag} {text}: not a directory")
    return path


def build_config(args: argparse.Namespace, env: Environment) -> Config:
    """The validated :class:`Config` of parsed ``args`` and ``env``.

    Raises ConfigError (a one-line message) for a combination finemon refuses.
    """
    interval = float(args.interval)
    window_ticks = seconds_to_ticks(args.window_seconds, interval)
    rotation_ticks = seconds_to_ticks(args.rotation_seconds, interval)
    if rotation_ticks <= window_ticks:
        raise ConfigError(
            f"--rotation-seconds {args.rotation_seconds:g} must exceed --window-seconds "
            f"{args.window_seconds:g} (the window flows into the next file at each rotation); "
            "raise --rotation-seconds or lower --window-seconds"
        )
    if args.observer is not None and ":" not in args.observer:
        raise ConfigError(f"--observer {args.observer}: expected MODULE:CALLABLE")
    raw_identifier = args.identifier or env.pod_name or env.node_name or env.hostname
    cgroup_root = (
        None if args.cgroup_root is None else _directory("--cgroup-root", args.cgroup_root)
    )
    try:
        upload = upload_config(args)
        intake = intake_config(args)
        target_metrics = target_metrics_config(args)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    return Config(
        output_dir=Path(args.output_dir),
        interval_seconds=interval,
        rotation_seconds=float(args.rotation_seconds),
        flush_seconds=float(args.flush_seconds),
        compression_level=int(args.compression_level),
        size_limit_bytes=int(args.size_limit),
        identifier=sanitize_identifier(raw_identifier),
        node_name=args.node_name or env.node_name or env.hostname,
        cluster_name=args.cluster_name or env.cluster_name,
        pod_name=env.pod_name,
        duration_seconds=None if args.duration is None else float(args.duration),
        window_seconds=float(args.window_seconds),
        prometheus_port=args.prometheus_port,
        prometheus_address=args.prometheus_address,
        prometheus_series=args.prometheus_series,
        cgroup_root=cgroup_root,
        proc_root=_directory("--proc-root", args.proc_root),
        log_root=Path(args.log_root),
        pss=bool(args.pss),
        pss_interval_seconds=float(args.pss_interval_seconds),
        pss_budget_seconds=float(args.pss_budget_seconds),
        smaps=bool(args.smaps),
        smaps_interval_seconds=float(args.smaps_interval_seconds),
        log_level=args.log_level,
        git_revision=env.git_revision,
        observer=args.observer,
        upload=upload,
        intake=intake,
        target_metrics=target_metrics,
        experiment=args.experiment,
        variant=args.variant,
        compact_older_than_seconds=args.compact_older_than,
    )
