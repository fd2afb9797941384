"""The raw pass-through of ``/proc/<pid>/smaps_rollup`` (``proc.smaps_rollup.<key>_bytes``)."""

from __future__ import annotations

from common.catalogue.entry import Entry

#: In the order of the docs tables.
ENTRIES: tuple[Entry, ...] = (
    Entry(
        "proc",
        "proc.smaps_rollup.<key>_bytes",
        "gauge",
        "bytes",
        labels=("pid", "comm"),
        standard=True,
        source="`/proc/<pid>/smaps_rollup`",
        description="A line of the process's smaps_rollup, in bytes",
        derivation=(
            "Every line (`rss`, `pss`, `pss_dirty`, `pss_anon`, `pss_file`, `pss_shmem`, "
            "`shared_clean`, `shared_dirty`, `private_clean`, `private_dirty`, `referenced`, "
            "`anonymous`, `ksm`, `lazyfree`, `anonhugepages`, `shmempmdmapped`, `filepmdmapped`, "
            "`shared_hugetlb`, `private_hugetlb`, `swap`, `swappss`, `locked`, as the kernel "
            "prints them), PSS cadence"
        ),
    ),
)
