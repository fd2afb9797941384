"""Suite-wide rules (in CI, as root, a real-kernel test may not skip) and fixtures."""

from __future__ import annotations

import os
from collections.abc import Generator
from pathlib import Path

import pytest

from tests.small_disk import SmallDisk, mounted


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, None]:
    outcome = yield
    report = outcome.get_result()
    if (
        report.skipped
        and item.get_closest_marker("root") is not None
        and os.environ.get("CI") == "true"
        and os.geteuid() == 0
    ):
        report.outcome = "failed"
        report.longrepr = f"real-kernel test skipped in CI as root: {report.longrepr}"


@pytest.fixture
def small_disk(tmp_path: Path) -> Generator[SmallDisk, None, None]:
    """A real 8 MiB tmpfs mounted in the test's tmp dir, to fill up (tests/small_disk.py);
    skips without root (a test using it is marked ``root``: in CI it must run)."""
    with mounted(tmp_path / "disk") as disk:
        if isinstance(disk, str):
            pytest.skip(disk)
        yield disk
