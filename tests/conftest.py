"""Suite-wide rules: in CI, as root, a real-kernel test may not skip."""

from __future__ import annotations

import os
from collections.abc import Generator

import pytest


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
