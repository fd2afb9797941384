"""The ``finemon`` daemon: configuration, scheduling, rotation, partitions, manifest, limits."""

from common.version import __version__

__all__ = ["__version__"]
