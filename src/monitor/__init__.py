"""The ``finemon`` daemon: configuration, scheduling, rotation, partitions, manifest, limits."""

__version__ = "0.1.0"
