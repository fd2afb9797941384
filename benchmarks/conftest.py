from __future__ import annotations

from collections.abc import Iterator

import pytest

import capture


@pytest.fixture(autouse=True)
def no_recorder_left() -> Iterator[None]:
    capture.set_recorder(None)
    yield
    capture.set_recorder(None)
