"""Datasets shared by the analysis tests, built once per session."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.analysis.synthetic import write_large, write_small


@pytest.fixture(scope="session")
def small_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The small synthetic dataset (see :func:`tests.analysis.synthetic.write_small`)."""
    return write_small(tmp_path_factory.mktemp("small") / "finemon-out")


@pytest.fixture(scope="session")
def large_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A day of 10 s ticks for 100 containers (8.6 M rows)."""
    root = tmp_path_factory.mktemp("large") / "finemon-out"
    write_large(root)
    return root


@pytest.fixture(scope="session")
def patterns_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The dataset with planted patterns (see :mod:`tests.analysis.patterns`)."""
    from tests.analysis.patterns import write_patterns

    return write_patterns(tmp_path_factory.mktemp("patterns") / "finemon-out")
