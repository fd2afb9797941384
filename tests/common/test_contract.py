"""The output contract is the one description of finemon's files: the writer and readers agree."""

from __future__ import annotations

from pathlib import Path

import capture
from analysis import dataset
from capture import files
from common import contract
from monitor.config import Config
from monitor.daemon import global_labels
from monitor.layout import OutputLayout


def test_the_columns_are_capture_schema_with_finemons_label_columns() -> None:
    schema = capture.capture_schema(contract.LABEL_COLUMNS)
    assert schema.names == [
        *contract.FIXED_COLUMNS,
        *contract.LABEL_COLUMNS,
        contract.LABELS_MAP_COLUMN,
    ]
    assert contract.LABEL_COLUMNS[:2] == ("cluster_name", "node_name")


def test_the_readers_use_the_contract_not_a_copy() -> None:
    assert dataset.STANDARD_LABEL_COLUMNS is contract.LABEL_COLUMNS
    assert dataset.FIXED_COLUMNS is contract.FIXED_COLUMNS


def test_hidden_file_names_are_the_ones_capture_writes(tmp_path: Path) -> None:
    final = tmp_path / f"{contract.FILE_PREFIX}x{contract.FILE_SUFFIX}"
    partial, journal = files.partial_path(final), files.journal_path(final)
    partial_suffix, journal_suffix, corrupt_suffix = contract.HIDDEN_SUFFIXES
    assert partial.name == f".{final.name}{partial_suffix}"
    assert journal.name == f".{final.name}{journal_suffix}"
    assert corrupt_suffix == files.CORRUPT_JOURNAL_SUFFIX
    # Every hidden name starts with ".", every other non-data name with "_": dataset readers
    # skip them.
    assert partial.name.startswith(".") and journal.name.startswith(".")
    assert contract.SESSION_MANIFEST.startswith("_") and contract.SESSIONS_DIR.startswith("_")


def test_the_layout_spells_the_partition_keys_of_the_contract() -> None:
    layout = OutputLayout(Path("/out"), "node-1", "0" * 32)
    path = layout.file_path(0.0, 1)
    keys = tuple(part.split("=", 1)[0] for part in path.parts if "=" in part)
    assert keys == contract.PARTITION_KEYS
    assert layout.session_manifest.name == contract.SESSION_MANIFEST
    assert layout.run_manifest.parent.name == contract.SESSIONS_DIR


def config(cluster_name: str | None) -> Config:
    return Config(
        output_dir=Path("/out"),
        interval_seconds=1.0,
        rotation_seconds=90.0,
        flush_seconds=10.0,
        compression_level=3,
        size_limit_bytes=1 << 30,
        identifier="node-1",
        node_name="node-1",
        cluster_name=cluster_name,
        pod_name=None,
        duration_seconds=None,
        window_seconds=60.0,
        prometheus_port=None,
        prometheus_address="0.0.0.0",
        cgroup_root=None,
        proc_root=Path("/proc"),
        log_root=Path("/var/log"),
        pss=True,
        pss_interval_seconds=1.0,
        pss_budget_seconds=0.25,
        smaps=False,
        smaps_interval_seconds=60.0,
        log_level="INFO",
        git_revision=None,
    )


def test_global_labels_are_the_configured_global_label_columns() -> None:
    assert global_labels(config("prod-eu")) == {"cluster_name": "prod-eu", "node_name": "node-1"}
    # Unknown: left out of the labels, so the column stays null (never an empty string).
    assert global_labels(config(None)) == {"node_name": "node-1"}
    assert set(global_labels(config("c"))) == set(contract.GLOBAL_LABEL_COLUMNS)
