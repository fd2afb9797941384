"""Compaction: the finished files of each partition merged into few large ones.

``finemon compact DIR [--older-than DURATION]`` and ``finemon run --compact-older-than
DURATION`` merge the files of each ``dt=/identifier=`` partition, once older than the age, into
files of 128 MiB to 1 GiB whose rows are ordered by metric, container and time
(:mod:`~monitor.compaction.merge`), and swap them in so that no reader counts a row twice or
misses one, whatever crashes (:mod:`~monitor.compaction.swap`). docs/compaction.md says what it
does and why; the modules, by job: :mod:`~monitor.compaction.plan` (which files, in which
groups), :mod:`~monitor.compaction.merge` (the merged file),
:mod:`~monitor.compaction.swap` (publication and crash recovery) and
:mod:`~monitor.compaction.local` (a whole directory).
"""
