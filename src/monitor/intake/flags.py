"""``finemon run``'s ``--intake-*`` and ``--target-metrics*`` flags and their settings."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final
from urllib.parse import urlsplit

#: ``--intake-address`` by default: only programs on this host (the agent of a DaemonSet's
#: node reaches it through the hostPort, see k8s/components/intake).
DEFAULT_ADDRESS: Final = "127.0.0.1"
#: ``--intake-max-series`` by default.
DEFAULT_MAX_SERIES: Final = 50_000
#: ``--intake-max-bytes`` by default: 16 MiB, before and after decompression.
DEFAULT_MAX_BYTES: Final = 16 * 1024 * 1024
#: Longest a scrape of ``--target-metrics`` may take, as a share of its interval.
SCRAPE_TIMEOUT_SHARE: Final = 0.8


@dataclass(frozen=True, slots=True)
class IntakeConfig:
    """The Datadog intake stand-in (``--intake-port`` and its settings)."""

    port: int
    address: str = DEFAULT_ADDRESS
    max_series: int = DEFAULT_MAX_SERIES
    max_bytes: int = DEFAULT_MAX_BYTES


@dataclass(frozen=True, slots=True)
class TargetMetricsConfig:
    """The target's own endpoints (``--target-metrics``) and how often to scrape them
    (``interval_seconds``: None, each tick)."""

    urls: tuple[str, ...]
    interval_seconds: float | None = None


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {text!r}")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be greater than 0 seconds, got {text!r}")
    return value


def _urls(text: str) -> tuple[str, ...]:
    urls = tuple(part.strip() for part in text.split(",") if part.strip())
    if not urls:
        raise argparse.ArgumentTypeError("expected URL[,URL...]")
    for url in urls:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise argparse.ArgumentTypeError(f"not an http:// or https:// URL: {url!r}")
    return urls


def add_intake_arguments(
    parser: argparse.ArgumentParser, port: Callable[[str], int], size: Callable[[str], int]
) -> None:
    """Add the ``--intake-*`` and ``--target-metrics*`` flags to ``parser`` (``port`` and
    ``size`` are the argparse types of :mod:`monitor.config`)."""
    group = parser.add_argument_group(
        "the watched agent's own report (needs the intake extra; docs/intake.md)"
    )
    group.add_argument(
        "--intake-port",
        type=port,
        metavar="PORT",
        help="serve a Datadog intake stand-in on PORT: an agent whose dd_url or "
        "additional_endpoints point here has every point it sends written as target.<metric> "
        "at its own timestamp (default: off)",
    )
    group.add_argument(
        "--intake-address",
        default=DEFAULT_ADDRESS,
        metavar="ADDR",
        help="address the intake binds (default: %(default)s)",
    )
    group.add_argument(
        "--intake-max-series",
        type=_positive_int,
        default=DEFAULT_MAX_SERIES,
        metavar="N",
        help="at most N distinct reported series; points of further series are dropped and "
        "counted (default: %(default)s)",
    )
    group.add_argument(
        "--intake-max-bytes",
        type=size,
        default=DEFAULT_MAX_BYTES,
        metavar="SIZE",
        help="largest request body, before and after decompression; larger ones get 413 "
        "(default: 16MiB)",
    )
    group.add_argument(
        "--target-metrics",
        type=_urls,
        metavar="URL[,URL]",
        help="scrape these endpoints of the watched process (Prometheus/OpenMetrics text, or "
        "Go expvar JSON such as /debug/vars) and write their values as target.* (default: off)",
    )
    group.add_argument(
        "--target-metrics-interval",
        type=_seconds,
        metavar="S",
        help="scrape --target-metrics every S seconds (default: each tick)",
    )


def intake_config(args: argparse.Namespace) -> IntakeConfig | None:
    """The :class:`IntakeConfig` of parsed flags, None without ``--intake-port``. Raises
    ValueError (one line) for an ``--intake-*`` flag given without ``--intake-port``."""
    if args.intake_port is None:
        given = [
            flag
            for flag, value, default in (
                ("--intake-address", args.intake_address, DEFAULT_ADDRESS),
                ("--intake-max-series", args.intake_max_series, DEFAULT_MAX_SERIES),
                ("--intake-max-bytes", args.intake_max_bytes, DEFAULT_MAX_BYTES),
            )
            if value != default
        ]
        if given:
            raise ValueError(f"{', '.join(given)} needs --intake-port PORT")
        return None
    address = args.intake_address.strip()
    if not address:
        raise ValueError("--intake-address must not be empty")
    return IntakeConfig(
        port=int(args.intake_port),
        address=address,
        max_series=int(args.intake_max_series),
        max_bytes=int(args.intake_max_bytes),
    )


def target_metrics_config(args: argparse.Namespace) -> TargetMetricsConfig | None:
    """The :class:`TargetMetricsConfig` of parsed flags, None without ``--target-metrics``.
    Raises ValueError for ``--target-metrics-interval`` without ``--target-metrics``."""
    if args.target_metrics is None:
        if args.target_metrics_interval is not None:
            raise ValueError("--target-metrics-interval needs --target-metrics URL[,URL]")
        return None
    return TargetMetricsConfig(tuple(args.target_metrics), args.target_metrics_interval)
