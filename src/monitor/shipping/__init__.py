"""Shipping finished files to object storage: the uploader, ``python -m monitor.shipping``.

``finemon run --upload s3://bucket/prefix`` starts it as a child process
(:mod:`monitor.shipping.supervisor`); it can also be run on its own, e.g. once (``--once``) over
the output directory of a finemon that has stopped. It works from the output directory, the
source of truth:

- Every pass (each ``--interval`` seconds) lists the published data files
  (``dt=*/identifier=*/finemon-*.parquet``; never the hidden ``.partial`` and ``.journal`` files of
  the file being written) and the run manifests (``_sessions/<run_id>.json``), oldest first, and
  uploads each to the same relative key under the prefix: ``prefix/dt=.../identifier=.../x.parquet``
  and ``prefix/_sessions/<run_id>.json``. Files left by earlier runs and files that ``finemon run``
  recovered after a SIGKILL are published files like any other, so they go up too. A manifest is
  uploaded again whenever the daemon rewrote it (at each rotation and at the end of the run); the
  current run's ``_session.json`` is not uploaded (every node has one of that name).
- Keys are deterministic, and an object already in the store with the same size and MD5 is not
  uploaded again, so restarts never duplicate anything. The uploader asks the store what it holds
  (one LIST per local partition) when it starts and after every failure, so a store that lost
  objects gets them again; in between it remembers what it verified.
- Each upload is verified (see :mod:`common.objectstore`: Content-MD5 on every PUT, then a HEAD
  that checks size and MD5) before, with ``--delete``, the local file is removed; the file is
  removed only if it is still the very file that was hashed (same inode, size and mtime). Only
  data files are deleted; the small run manifests stay.
- When the store fails, files stay local and the pass is retried with exponential backoff and
  jitter (1 s doubling up to 60 s); the log gets one line when a failure streak starts and one
  when it ends, never a line per try.
- SIGTERM/SIGINT: one last pass, bounded by ``--final-seconds``, then exit 0 (what is left stays
  local for the next start). A second signal stops at once. The uploader also makes its last pass
  and exits when its parent (``--parent-pid``) is gone.

Counters (uploaded files and bytes, objects found already present, deleted files and bytes,
failures, pending files and bytes, the last error) are logged in a health line every minute and
kept in ``<output-dir>/_upload.json`` (a status file: its leading ``_`` makes dataset readers skip
it, and the size limit does not count it).

The modules, by job: :mod:`~monitor.shipping.flags` (``finemon run``'s ``--upload*`` flags and
the uploader's command line), :mod:`~monitor.shipping.ship` (one shipping pass),
:mod:`~monitor.shipping.loop` (passes over time: backoff, signals, health, the status file),
:mod:`~monitor.shipping.cli` (the uploader process's own flags and entry) and
:mod:`~monitor.shipping.supervisor` (``finemon run``'s side: start the uploader and keep it
running). The store itself is :mod:`common.objectstore`.
"""
