"""``finemon run``: the daemon's entry from the command line.

The umbrella command (:mod:`finemon.cli`) parses ``finemon run``'s flags
(:func:`monitor.config.add_run_arguments`, described by :data:`RUN_DESCRIPTION`) and calls
:func:`run_command`, which builds the configuration, starts the uploader for ``--upload`` and
runs the daemon. Exit codes: 0 success (including a stop by SIGINT/SIGTERM), 1 finemon could not
start or failed while running, 2 bad command-line flags (:class:`UsageError`). Errors are one
line on stderr.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time

from common.exit_codes import EXIT_FAILURE
from common.objectstore import S3_INSTALL_HINT
from monitor.config import Config, ConfigError, Environment, build_config
from monitor.shipping.supervisor import UploaderSupervisor
from monitor.signals import SignalWatch

#: Seconds the compaction process gets to stop after the group it is merging.
COMPACTOR_STOP_SECONDS = 5.0


class UsageError(Exception):
    """A bad command line; the message is one line."""


def configure_logging(level: str) -> None:
    """Log to stderr as ``2024-01-31T23:59:30.125Z INFO finemon message`` (UTC)."""
    formatter = logging.Formatter(
        "%(asctime)s.%(msecs)03dZ %(levelname)s %(name)s %(message)s", "%Y-%m-%dT%H:%M:%S"
    )
    formatter.converter = time.gmtime
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)


def run_command(args: argparse.Namespace) -> int:
    """Run ``finemon run`` with its parsed flags; returns the exit code. Raises
    :class:`UsageError` for flags that make no valid configuration."""
    try:
        config = build_config(args, Environment.from_os())
    except ConfigError as exc:
        raise UsageError(str(exc)) from None
    # Signals are noted from here on, even while pyarrow is still being imported.
    signals = SignalWatch()
    signals.install()
    uploader = None
    compactor = None
    try:
        from monitor import memory_policy  # noqa: PLC0415

        configure_logging(config.log_level)
        if config.upload is not None:
            uploader = _start_uploader(config)
            if uploader is None:
                return EXIT_FAILURE
        if config.compact_older_than_seconds is not None:
            compactor = _start_compactor(config)
            if compactor is None:
                return EXIT_FAILURE
        memory_policy.before_imports()
        from monitor.daemon import StartupError, run  # noqa: PLC0415 - pulls in pyarrow

        try:
            code = run(config, signals=signals)
        except StartupError as exc:
            print(f"finemon: error: {exc}", file=sys.stderr)
            if uploader is not None:
                uploader.kill()
            return EXIT_FAILURE
        if compactor is not None:
            compactor.stop(COMPACTOR_STOP_SECONDS)  # a kill mid-merge is safe: see swap
        if uploader is not None and config.upload is not None:
            uploader.stop(config.upload.final_seconds)
        return code
    finally:
        for child in (compactor, uploader):
            if child is not None:
                child.kill()  # no-op after stop(); an exception must not leave it running
        signals.close()


def _start_uploader(config: Config) -> UploaderSupervisor | None:
    """Start ``python -m monitor.shipping`` for ``--upload`` (see
    :mod:`monitor.shipping.supervisor`); None, with the reason on stderr, when it cannot run
    here."""
    import importlib.util  # noqa: PLC0415

    from monitor.shipping.flags import uploader_command  # noqa: PLC0415

    assert config.upload is not None
    if importlib.util.find_spec("boto3") is None:
        print(
            f"finemon: error: --upload needs boto3, which is not installed ({S3_INSTALL_HINT})",
            file=sys.stderr,
        )
        return None
    command = uploader_command(config.upload, config.output_dir, os.getpid())
    supervisor = UploaderSupervisor(command)
    try:
        supervisor.start()
    except OSError as exc:
        print(f"finemon: error: cannot start the uploader: {exc}", file=sys.stderr)
        return None
    return supervisor


def _start_compactor(config: Config) -> UploaderSupervisor | None:
    """Start ``python -m monitor.compaction`` for ``--compact-older-than`` (see
    :mod:`monitor.compaction.process`); None, with the reason on stderr, when it cannot start."""
    from monitor.compaction.process import compactor_command  # noqa: PLC0415

    assert config.compact_older_than_seconds is not None
    command = compactor_command(
        config.output_dir, config.compact_older_than_seconds, os.getpid(), config.compression_level
    )
    supervisor = UploaderSupervisor(command, name="compaction")
    try:
        supervisor.start()
    except OSError as exc:
        print(f"finemon: error: cannot start the compaction process: {exc}", file=sys.stderr)
        return None
    return supervisor


RUN_DESCRIPTION = """\
Sample every container's cgroup and /proc metrics on a fixed tick grid and record them into
Parquet files under --output-dir (DIR/dt=YYYY-MM-DD/identifier=ID/*.parquet, readable by pandas,
pyarrow, DuckDB and Spark as a Hive-partitioned dataset), with a session manifest
DIR/_session.json and DIR/_sessions/RUN_ID.json.

SIGINT/SIGTERM stop cleanly (the last file is finalized, exit 0); a second signal cuts the drain
short and leaves the journal for the next start, which recovers it. Reaching --size-limit or a
full disk stops recording but keeps finemon up, idle, until it is signalled or space is freed
(then it records again as a new run). Env: POD_NAME, NODE_NAME and
CLUSTER_NAME (Kubernetes downward API) give the defaults of --identifier, --node-name and
--cluster-name; FINEMON_GIT_REV is recorded in the manifest.
"""
