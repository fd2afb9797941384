"""The daemon's view of an observer: what it calls, and how it gets one.

The daemon drives any object shaped like :class:`NodeObserverLike` (the real one is
``observers.node.NodeObserver``, imported only when a run starts, so ``monitor`` imports without
loading the observers). Tests pass a fake through ``finemon run --observer MODULE:CALLABLE`` (a
hidden flag): the callable is called with the ``observers.node.ObserverConfig`` and returns the
observer.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Protocol, cast

from monitor.config import Config

if TYPE_CHECKING:
    from observers.node import ObserverConfig


class SampleReportLike(Protocol):
    """What one ``sample()`` did (``observers.node.SampleReport``)."""

    @property
    def containers(self) -> int: ...
    @property
    def skipped(self) -> Mapping[str, int]: ...
    @property
    def read_errors(self) -> int: ...
    @property
    def errors_by_reason(self) -> Mapping[str, int]: ...
    @property
    def duration_seconds(self) -> float: ...


class NodeObserverLike(Protocol):
    """An observer the daemon can drive (``observers.node.NodeObserver``).

    ``sample()`` reads everything once and emits through the capture facade; ``describe()``
    tells the manifest what it found (cgroup version, mounts, layout); ``close()`` releases it.
    """

    def sample(self) -> SampleReportLike: ...
    def describe(self) -> Mapping[str, object]: ...
    def close(self) -> None: ...


#: Builds the observer from its settings (``observers.node.NodeObserver`` is one).
ObserverFactory = Callable[["ObserverConfig"], NodeObserverLike]


class ObserverUnavailableError(ImportError):
    """The observer's code cannot be loaded; the message is one line."""


def observer_config(config: Config) -> ObserverConfig:
    """The observer settings of ``config``; raises ObserverUnavailableError without observers."""
    try:
        from observers.node import ObserverConfig  # noqa: PLC0415 - see the module docstring
    except ImportError as exc:
        raise ObserverUnavailableError(f"cannot load observers.node: {exc}") from exc
    return ObserverConfig(
        cgroup_root=config.cgroup_root,
        cgroup_subtree=config.cgroup_subtree,
        proc_root=config.proc_root,
        log_root=config.log_root,
        node_name=config.node_name,
        pss=config.pss,
        pss_interval_seconds=config.pss_interval_seconds,
        pss_budget_seconds=config.pss_budget_seconds,
        smaps=config.smaps,
        smaps_interval_seconds=config.smaps_interval_seconds,
    )


def default_observer_factory(config: ObserverConfig) -> NodeObserverLike:
    """Build the real ``observers.node.NodeObserver``.

    Raises ``observers.hierarchy.NoCgroupMountError`` when no cgroup hierarchy is mounted.
    """
    try:
        from observers.node import NodeObserver  # noqa: PLC0415 - see the module docstring
    except ImportError as exc:
        raise ObserverUnavailableError(f"cannot load observers.node: {exc}") from exc
    return NodeObserver(config)


def load_observer_factory(spec: str) -> ObserverFactory:
    """The callable named by ``MODULE:CALLABLE``; raises ObserverUnavailableError."""
    module_name, _, attribute = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
        factory = getattr(module, attribute)
    except (ImportError, AttributeError) as exc:
        raise ObserverUnavailableError(f"cannot load observer {spec!r}: {exc}") from exc
    if not callable(factory):
        raise ObserverUnavailableError(f"observer {spec!r} is not callable")
    return cast(ObserverFactory, factory)
