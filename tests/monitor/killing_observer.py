"""The real observer (``observers.node.NodeObserver``) in a ``finemon run`` that SIGKILLs itself
right after a rotation has published its file (renamed it into its partition) and before the
daemon goes on (the index beside the data, the manifest, the log line): ``finemon run
--observer killing_observer:at_second_rotation`` (tests/monitor on PYTHONPATH)."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from typing import Any

import capture.manager
from monitor.observer import NodeObserverLike, default_observer_factory


def _kill_at_rotation(count: int) -> Callable[[str], None]:
    published = 0

    def hook(step: str) -> None:
        nonlocal published
        if step == "published":
            published += 1
            if published == count:
                os.kill(os.getpid(), signal.SIGKILL)

    return hook


def at_second_rotation(config: Any) -> NodeObserverLike:
    capture.manager.step_hook = _kill_at_rotation(2)
    return default_observer_factory(config)
