"""finemon's output contract: what a reader of ``--output-dir`` can rely on.

The one place that names finemon's columns, partitions and files. ``finemon run`` writes by it
(:mod:`monitor.daemon`, :mod:`monitor.layout`, :mod:`monitor.sizelimit`) and ``finemon query``,
``summary`` and ``report`` read by it (:mod:`analysis.dataset`); it imports nothing, so the
analysis commands pay nothing for it.

Rows (one per series per tick; the capture library's schema, ``capture.capture_schema``)::

    run_id, time, fetch_index, metric_name, metric_kind, value_int, value_float,
    cluster_name, node_name, namespace, pod_name, pod_uid, container_id, container_name,
    qos_class, labels

``cluster_name`` and ``node_name`` are the run's global labels, the same on every row
(``cluster_name`` null when no ``--cluster-name``/``$CLUSTER_NAME`` was given); the other label
columns are the container's (null where unknown or on node-wide rows); every other label is in
the ``labels`` map.

Directory::

    <output-dir>/
        _session.json                       manifest of the current (or last) run
        _sessions/<run_id>.json             manifest of every run, kept
        .finemon.sock                       the running daemon's control socket (finemon mark)
        .finemon.sock.path                  or, for a path too long for a socket, where it is
        dt=YYYY-MM-DD/identifier=<id>/
            finemon-20240131T235930Z-1a2b3c4d-00001.parquet
            .finemon-...parquet.partial     (the file being written; hidden)
            .finemon-...parquet.journal     (its journal; hidden)
            .finemon-...parquet.compacting  (a compacted file not yet published; hidden)
            .finemon-...parquet.intent      (what that compaction replaces; hidden)
            finemon-20240131T235930Z-compact-0a1b2c3d.parquet   (a compacted file)

Everything that is not data starts with ``_`` or ``.`` (the Hadoop convention), so dataset
readers skip it.
"""

from __future__ import annotations

from typing import Final

#: Columns every row has, in file order, before the label columns (capture's fixed columns).
FIXED_COLUMNS: Final = (
    "run_id",
    "time",
    "fetch_index",
    "metric_name",
    "metric_kind",
    "value_int",
    "value_float",
)
#: Label columns filled from the run's configuration, the same on every row of a run.
GLOBAL_LABEL_COLUMNS: Final = ("cluster_name", "node_name")
#: Label columns filled from the container a row belongs to.
CONTAINER_LABEL_COLUMNS: Final = (
    "namespace",
    "pod_name",
    "pod_uid",
    "container_id",
    "container_name",
    "qos_class",
)
#: Every label column of finemon's Parquet files, in file order (nullable strings).
LABEL_COLUMNS: Final = (*GLOBAL_LABEL_COLUMNS, *CONTAINER_LABEL_COLUMNS)
#: The map column holding every other label (``pid``, ``comm``, ``cgroup``, ``device``, ...).
LABELS_MAP_COLUMN: Final = "labels"

#: What names a container, first found first: ``container_key`` is its ``container_id``, else
#: its ``cgroup`` label (hosts that are not Kubernetes nodes), else its ``pod_uid``; null for
#: node-wide rows. A label column when it is one of :data:`LABEL_COLUMNS`, else a key of the
#: ``labels`` map. Capture groups each file's summary by it, analysis and compaction by it.
CONTAINER_KEY_LABELS: Final = ("container_id", "cgroup", "pod_uid")
#: Gauges whose files' summaries carry a quantile sketch: ``finemon summary``'s p95 columns.
SUMMARY_SKETCH_METRICS: Final = (
    "container.cpu.usage_millicores",
    "container.memory.working_set_bytes",
    "container.memory.pss_bytes",
)

#: The metrics whose files' summaries hold aggregates (the others: rows only): what
#: ``finemon summary`` shows, and the containers' CPU time.
SUMMARY_AGGREGATE_METRICS: Final = (
    *SUMMARY_SKETCH_METRICS,
    "container.cpu.usage_usec",
    "container.cpu.periods",
    "container.cpu.throttled_periods",
    "container.cpu.throttled_usec",
    "container.memory.oom_kills",
    "process.memory.pss_bytes",
)
#: Gauges whose files' summaries keep each series' aggregates (by its labels beyond the
#: container's): ``finemon summary``'s top processes by PSS.
SUMMARY_SERIES_METRICS: Final = ("process.memory.pss_bytes",)

#: Hive partition keys, outermost first: ``dt=<UTC date of the first tick>/identifier=<id>``.
PARTITION_KEYS: Final = ("dt", "identifier")
#: The current run's manifest, at the output root.
SESSION_MANIFEST: Final = "_session.json"
#: Folder of every run's manifest (``<run_id>.json``), at the output root.
SESSIONS_DIR: Final = "_sessions"
#: Data file names: ``finemon-<first tick, UTC>-<run id prefix>-<sequence>.parquet``.
FILE_PREFIX: Final = "finemon-"
FILE_SUFFIX: Final = ".parquet"
#: Suffixes of the hidden files beside a data file: the file being written, its journal, and a
#: journal that recovery could not read (kept for inspection). Written by the capture library.
HIDDEN_SUFFIXES: Final = (".partial", ".journal", ".journal.corrupt")
#: The control socket of the daemon recording into the output dir (``finemon mark``), at the
#: output root while it runs; hidden, so dataset readers skip it.
CONTROL_SOCKET: Final = ".finemon.sock"
#: When the output dir's path is too long for a socket address, the socket lives under a short
#: path and this file at the output root holds that path (one line).
CONTROL_SOCKET_POINTER: Final = ".finemon.sock.path"

#: Suffixes of compaction's hidden files (``finemon compact``, docs/compaction.md): the compacted
#: file before it is published, and the intent that lists the files it replaces.
COMPACTION_SUFFIXES: Final = (".compacting", ".intent", ".replacing")
#: Suffix of the hidden folder where a compaction spills rows while it sorts them.
COMPACTION_SCRATCH_SUFFIX: Final = ".scratch"
#: What marks a compacted file's name: ``finemon-<first tick, UTC>-compact-<digest>.parquet``,
#: the digest naming the files it replaced.
COMPACTED_MARKER: Final = "-compact-"
#: Footer key of every file's summary (JSON, written by the capture library: time range, rows,
#: containers, metrics and their aggregates; docs/output.md, "The footer").
SUMMARY_KEY: Final = "capture.summary"
#: The folder of the index beside the data: one file per partition caching its files' summaries
#: (docs/output.md, "The index").
INDEX_DIR: Final = "_index"
#: Footer key of a compacted file: the names of the files it replaced (JSON list; same folder).
COMPACTED_REPLACES_KEY: Final = "finemon.compacted.replaces"
#: Footer key of a compacted file: every run whose rows it holds (JSON list).
COMPACTED_RUN_IDS_KEY: Final = "finemon.compacted.run_ids"
#: The first bytes of a placeholder: while a compaction swaps files, each file it replaces holds
#: these bytes (and the name of the compacted file) under its own name, so that a reader listing
#: the partition then fails on it (not Parquet) instead of counting rows twice or not at all.
PLACEHOLDER_MAGIC: Final = b"FINEMON-COMPACTED\n"
