"""``finemon run`` flags: parsing, env defaults, validation and one-line errors."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from finemon_process import run_cli

from common.version import __version__
from finemon.cli import build_parser
from monitor.config import (
    Config,
    ConfigError,
    Environment,
    build_config,
    parse_size,
    sanitize_identifier,
)

BARE = Environment(
    pod_name=None, node_name=None, cluster_name=None, git_revision=None, hostname="host-1"
)


def config_of(*argv: str, env: Environment = BARE) -> Config:
    args = build_parser().parse_args(["run", *argv])
    return build_config(args, env)


def test_defaults() -> None:
    config = config_of()
    assert config.output_dir == Path("./finemon-data")
    assert config.interval_seconds == 1.0
    assert config.rotation_seconds == 90.0
    assert config.flush_seconds == 10.0
    assert config.compression_level == 3
    assert config.size_limit_bytes == 1024**3
    assert config.identifier == "host-1"
    assert config.node_name == "host-1"
    assert config.cluster_name is None
    assert config.pod_name is None
    assert config.duration_seconds is None
    assert config.window_seconds == 60.0
    assert config.window_ticks == 60
    assert config.rotation_ticks == 90
    assert config.prometheus_port is None
    assert config.prometheus_address == "0.0.0.0"
    assert config.prometheus_series == "default"
    assert config.cgroup_root is None
    assert config.proc_root == Path("/proc")
    assert config.log_root == Path("/var/log")
    assert config.pss is True
    assert config.pss_interval_seconds == 1.0
    assert config.pss_budget_seconds == 0.25
    assert config.smaps is False
    assert config.smaps_interval_seconds == 60.0
    assert config.log_level == "INFO"
    assert config.git_revision is None
    assert config.observer is None


def test_every_flag_is_parsed(tmp_path: Path) -> None:
    cgroup = tmp_path / "cgroup"
    cgroup.mkdir()
    logs = tmp_path / "logs"
    config = config_of(
        "--output-dir",
        str(tmp_path / "out"),
        "--interval",
        "0.1",
        "--rotation-seconds",
        "30",
        "--flush-seconds",
        "2.5",
        "--compression-level",
        "9",
        "--size-limit",
        "500MB",
        "--identifier",
        "my-pod",
        "--node-name",
        "node-a",
        "--cluster-name",
        "prod",
        "--duration",
        "12.5",
        "--window-seconds",
        "20",
        "--prometheus-port",
        "9100",
        "--prometheus-address",
        "127.0.0.1",
        "--prometheus-series",
        "all",
        "--cgroup-root",
        str(cgroup),
        "--proc-root",
        str(tmp_path),
        "--log-root",
        str(logs),
        "--no-pss",
        "--pss-interval-seconds",
        "2",
        "--pss-budget-seconds",
        "0.1",
        "--smaps",
        "--smaps-interval-seconds",
        "30",
        "--log-level",
        "debug",
        "--observer",
        "fake_observer:make",
    )
    assert config == Config(
        output_dir=tmp_path / "out",
        interval_seconds=0.1,
        rotation_seconds=30.0,
        flush_seconds=2.5,
        compression_level=9,
        size_limit_bytes=500_000_000,
        identifier="my-pod",
        node_name="node-a",
        cluster_name="prod",
        pod_name=None,
        duration_seconds=12.5,
        window_seconds=20.0,
        prometheus_port=9100,
        prometheus_address="127.0.0.1",
        prometheus_series="all",
        cgroup_root=cgroup,
        proc_root=tmp_path,
        log_root=logs,
        pss=False,
        pss_interval_seconds=2.0,
        pss_budget_seconds=0.1,
        smaps=True,
        smaps_interval_seconds=30.0,
        log_level="DEBUG",
        git_revision=None,
        observer="fake_observer:make",
    )
    assert config.window_ticks == 200
    assert config.rotation_ticks == 300
    as_json = config.to_json()
    assert as_json["output_dir"] == str(tmp_path / "out")
    assert as_json["size_limit_bytes"] == 500_000_000


def test_environment_gives_identity_defaults() -> None:
    env = Environment.from_os(
        {
            "POD_NAME": "finemon-x7k2p",
            "NODE_NAME": "node-7",
            "CLUSTER_NAME": "eu-1",
            "FINEMON_GIT_REV": "abc123",
        }
    )
    config = config_of(env=env)
    assert config.identifier == "finemon-x7k2p"
    assert config.pod_name == "finemon-x7k2p"
    assert config.node_name == "node-7"
    assert config.cluster_name == "eu-1"
    assert config.git_revision == "abc123"
    # Flags win over the environment.
    flagged = config_of("--identifier", "mine", "--node-name", "n", "--cluster-name", "c", env=env)
    assert (flagged.identifier, flagged.node_name, flagged.cluster_name) == ("mine", "n", "c")


def test_identifier_falls_back_to_node_then_hostname() -> None:
    env = Environment.from_os({"NODE_NAME": "node-7", "POD_NAME": "  "})
    assert config_of(env=env).identifier == "node-7"
    env = Environment.from_os({})
    assert config_of(env=env).identifier == sanitize_identifier(env.hostname)


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("finemon-abc12", "finemon-abc12"),
        ("my pod/1", "my_pod_1"),
        ("../../etc", "_.._etc"),
        (".hidden", "hidden"),
        ("a=b", "a_b"),
        ("x" * 300, "x" * 128),
    ],
)
def test_identifier_is_sanitized(raw: str, clean: str) -> None:
    assert sanitize_identifier(raw) == clean
    assert "/" not in sanitize_identifier(raw)


@pytest.mark.parametrize("raw", ["", "...", "///", "   "])
def test_identifier_without_usable_characters_is_refused(raw: str) -> None:
    with pytest.raises(ConfigError):
        sanitize_identifier(raw)


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("1GiB", 1024**3),
        ("500MB", 500 * 1000**2),
        ("2G", 2 * 1000**3),
        ("2Gi", 2 * 1024**3),
        ("123456", 123456),
        ("10B", 10),
        ("1.5KiB", 1536),
        ("64 kib", 64 * 1024),
        ("1tb", 1000**4),
        ("3M", 3_000_000),
    ],
)
def test_size_units(text: str, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "GiB", "12XB", "-1GiB", "0", "0.1", "1.2.3G", "1 G B", "nan"])
def test_bad_sizes_are_refused(text: str) -> None:
    with pytest.raises(ConfigError):
        parse_size(text)


@pytest.mark.parametrize("interval", ["0.1", "0.05", "0.01", "0.25", "2", "3600"])
def test_sub_second_intervals_are_accepted(interval: str) -> None:
    config = config_of(
        "--interval", interval, "--window-seconds", "3600", "--rotation-seconds", "7200"
    )
    assert config.interval_seconds == float(interval)


def test_ticks_are_counted_without_float_fuzz() -> None:
    config = config_of("--interval", "0.1", "--window-seconds", "0.3", "--rotation-seconds", "0.4")
    assert (config.window_ticks, config.rotation_ticks) == (3, 4)
    assert config_of("--interval", "0.3", "--window-seconds", "1").window_ticks == math.ceil(
        1 / 0.3
    )


@pytest.mark.parametrize(
    ("rotation", "window", "interval"),
    [("60", "60", "1"), ("30", "60", "1"), ("1", "1", "0.1"), ("1.05", "1.1", "0.1")],
)
def test_rotation_not_exceeding_the_window_is_refused(
    rotation: str, window: str, interval: str
) -> None:
    with pytest.raises(ConfigError, match=r"--rotation-seconds .* must exceed --window-seconds"):
        config_of(
            "--rotation-seconds", rotation, "--window-seconds", window, "--interval", interval
        )


def test_rotation_just_above_the_window_is_accepted() -> None:
    config = config_of("--interval", "0.1", "--window-seconds", "1", "--rotation-seconds", "1.1")
    assert config.rotation_ticks == config.window_ticks + 1


def test_missing_proc_root_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--proc-root"):
        config_of("--proc-root", str(tmp_path / "nope"))
    with pytest.raises(ConfigError, match="--cgroup-root"):
        config_of("--cgroup-root", str(tmp_path / "nope"))


@pytest.mark.parametrize(
    ("argv", "mentions"),
    [
        (["--interval", "0"], "--interval"),
        (["--interval", "abc"], "--interval"),
        (["--interval", "0.001"], "--interval"),
        (["--size-limit", "12XB"], "--size-limit"),
        (["--size-limit", "0"], "--size-limit"),
        (["--rotation-seconds", "30"], "--rotation-seconds"),
        (["--compression-level", "30"], "--compression-level"),
        (["--prometheus-port", "70000"], "--prometheus-port"),
        (["--prometheus-series", "most"], "--prometheus-series"),
        (["--flush-seconds", "-1"], "--flush-seconds"),
        (["--duration", "inf"], "--duration"),
        (["--log-level", "loud"], "--log-level"),
        (["--identifier", "///"], "identifier"),
        (["--no-such-flag"], "--no-such-flag"),
    ],
)
def test_bad_values_exit_2_with_one_line(argv: list[str], mentions: str, tmp_path: Path) -> None:
    done = run_cli("run", "--output-dir", str(tmp_path / "out"), *argv)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "error" in lines[0] and mentions in lines[0]
    assert not (tmp_path / "out").exists()


def test_version() -> None:
    for argv in (["--version"], ["version"]):
        done = run_cli(*argv)
        assert done.returncode == 0
        assert done.stdout.strip() == f"finemon {__version__}"


def test_help_documents_every_flag_and_the_size_limit() -> None:
    done = run_cli("run", "--help")
    assert done.returncode == 0
    text = " ".join(done.stdout.split())
    for flag in (
        "--output-dir",
        "--interval",
        "--rotation-seconds",
        "--flush-seconds",
        "--compression-level",
        "--size-limit",
        "--identifier",
        "--node-name",
        "--cluster-name",
        "--duration",
        "--window-seconds",
        "--prometheus-port",
        "--prometheus-series",
        "--cgroup-root",
        "--proc-root",
        "--log-root",
        "--pss",
        "--smaps",
        "--log-level",
    ):
        assert flag in text
    assert "--observer" not in text  # a test hook, hidden
    assert "stays up idle" in text
    assert "POD_NAME" in text
