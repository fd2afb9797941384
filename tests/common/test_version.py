"""finemon's version is written once, in common.version, and the package metadata reads it."""

from __future__ import annotations

import tomllib
from pathlib import Path

import monitor
from common.version import __version__

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"


def test_pyproject_takes_the_version_from_common_version() -> None:
    config = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))
    assert "version" not in config["project"]
    assert "version" in config["project"]["dynamic"]
    assert config["tool"]["setuptools"]["dynamic"]["version"] == {
        "attr": "common.version.__version__"
    }


def test_the_daemon_reports_the_same_version() -> None:
    assert monitor.__version__ == __version__
    assert __version__.count(".") == 2
