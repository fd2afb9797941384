from __future__ import annotations

from collections.abc import Iterator

import pytest

import capture


@pytest.fixture(autouse=True)
def no_recorder_left() -> Iterator[None]:
    """Every test starts and ends with no recorder installed."""
    capture.set_recorder(None)
    yield
    capture.set_recorder(None)


class FakeClock:
    """A settable clock for recorders (Unix seconds)."""

    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()
