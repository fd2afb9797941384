"""finemon's memory policy: its resident memory stays what it uses.

The policy is applied in named phases, each called once at its point of the process's life:

- :func:`before_imports` (``finemon run`` and ``finemon demo``, before pyarrow is imported):
  Arrow's C++ code allocates from the C library too, and, for ``finemon run``, pandas is kept
  out of the process;
- :class:`DaemonMemory`, one per run of the daemon: :meth:`~DaemonMemory.at_start` (Arrow's
  Python-side pool, the arena limit), :meth:`~DaemonMemory.before_priming_sample` and
  :meth:`~DaemonMemory.after_priming_sample` (idle library pages handed back; the startup
  objects frozen out of the garbage collector's sight; a trim), :meth:`~DaemonMemory.after_flush`
  and :meth:`~DaemonMemory.after_rotation` (a trim; after the first rotation the idle library
  pages again) and :meth:`~DaemonMemory.after_run` (the frozen objects released before the next
  run).

The mechanisms the phases use follow.

finemon's writer thread builds Arrow arrays and Parquet row groups every few seconds and frees
them again. With glibc, memory freed in a thread's arena is kept by that arena for reuse and
only the top of the main heap is ever returned by itself: under container churn (every tick a
different set of series) the arenas fragment and the process's RSS keeps climbing although the
live data stays the same. :func:`limit_arenas` caps the number of arenas (fewer
places for free memory to hide) and :func:`release_free_memory` (``malloc_trim``) hands the free
pages of every arena back to the kernel; the daemon calls it after each flush and rotation.

Both are no-ops, returning False, where the C library is not glibc.

:func:`release_idle_file_pages` asks the kernel to drop the resident pages of the read-only
file mappings (the shared libraries' code and constants): pyarrow loads every Arrow library
(compute, dataset, acero, substrait) and each runs its initialisers, numpy too, so library pages
are touched once at import and never again (docs/benchmarks.md has what this saves). The
daemon calls it before its first tick (after a priming sample) and after its first rotation,
when every path it keeps using has run: the pages it does use come back at their next use and
stay; the others stop counting in its RSS and in its container's memory.

:func:`arrow_pool_from_c_library` makes the C library's allocator Arrow's default memory pool in
C++ too (before pyarrow is imported): ``pyarrow.set_memory_pool`` reaches only the pool pyarrow's
Python functions use, and Arrow's own C++ code (the journal's IPC writer, parts of the Parquet
writer) would otherwise allocate from mimalloc, which keeps the pages it frees for reuse.

:func:`keep_pandas_out` keeps pandas out of the daemon: pyarrow imports it, when installed, on
its first conversion of a Python value (``pa.scalar``, ``pa.array``), only to look for pandas
types; pandas and what it imports are resident memory the daemon never uses (docs/benchmarks.md
has the figure).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import gc
import importlib.abc
import logging
import os
import sys

log = logging.getLogger("finemon")

#: mallopt parameter numbers from glibc's <malloc.h>.
_M_ARENA_MAX = -8
_M_MMAP_THRESHOLD = -3
#: Allocations from this size on get their own mapping, unmapped when freed: a flush's arrays.
MMAP_THRESHOLD_BYTES = 256 * 1024
#: Arenas finemon allows: the main one and one for its threads.
ARENAS = 2


def _glibc() -> ctypes.CDLL | None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    except OSError:
        return None
    if not hasattr(libc, "malloc_trim") or not hasattr(libc, "mallopt"):
        return None  # not glibc (musl has neither)
    return libc


_LIBC = _glibc()


def limit_arenas(arenas: int = ARENAS) -> bool:
    """Cap glibc's malloc arenas and fix its mmap threshold (call before the threads start).

    glibc raises the threshold each time a mapped block is freed, so after the first flush the
    next flushes' arrays come from the heap, whose free pages stay resident until trimmed; a
    fixed threshold gives each large buffer its own mapping, returned to the kernel on free.
    True if both were applied.
    """
    if _LIBC is None:
        return False
    capped = bool(_LIBC.mallopt(_M_ARENA_MAX, ctypes.c_int(arenas)))
    fixed = bool(_LIBC.mallopt(_M_MMAP_THRESHOLD, ctypes.c_int(MMAP_THRESHOLD_BYTES)))
    return capped and fixed


#: The environment variable Arrow reads, once, to choose its C++ default memory pool.
ARROW_POOL_VARIABLE = "ARROW_DEFAULT_MEMORY_POOL"


def arrow_pool_from_c_library() -> bool:
    """Make the C library's allocator ("system") Arrow's default memory pool, for its C++ code
    as well as pyarrow's functions; call before pyarrow is imported. A pool the user chose with
    ``ARROW_DEFAULT_MEMORY_POOL`` stands. True when the system pool is the one in effect."""
    chosen = os.environ.setdefault(ARROW_POOL_VARIABLE, "system")
    if "pyarrow" in sys.modules:
        log.debug("pyarrow already imported: %s=%s may come too late", ARROW_POOL_VARIABLE, chosen)
    return chosen == "system"


def release_free_memory() -> bool:
    """Return the free pages of every malloc arena to the kernel; True if any were."""
    if _LIBC is None:
        return False
    return bool(_LIBC.malloc_trim(ctypes.c_size_t(0)))


#: madvise() advice from <linux/mman.h> (Linux 5.4 on): reclaim these pages now.
_MADV_PAGEOUT = 21
#: The permissions of the mappings advised: private, read-only (code and constants). Writable
#: mappings hold data, and pages of these that were written (relocations) are anonymous:
#: without swap the kernel keeps them.
_IDLE_PERMISSIONS = frozenset({"r-xp", "r--p"})


def read_only_file_mappings(maps: str) -> list[tuple[int, int]]:
    """The (start, end) address ranges of the private read-only file mappings listed in
    ``maps`` (the text of ``/proc/PID/maps``: ``start-end perms offset dev inode path``)."""
    ranges: list[tuple[int, int]] = []
    for line in maps.splitlines():
        fields = line.split(maxsplit=5)
        if len(fields) < 6 or fields[1] not in _IDLE_PERMISSIONS or fields[4] == "0":
            continue  # anonymous, [heap], [stack], [vdso]... have inode 0
        if not fields[5].startswith("/"):
            continue
        start, _, end = fields[0].partition("-")
        try:
            ranges.append((int(start, 16), int(end, 16)))
        except ValueError:
            continue
    return ranges


def release_idle_file_pages(maps_path: str = "/proc/self/maps") -> int:
    """Have the kernel reclaim now the resident pages of this process's read-only file
    mappings (``madvise(MADV_PAGEOUT)``; pages also mapped by another process stay). Returns the
    bytes of mappings advised: 0 where the kernel (before 5.4) or the C library refuses."""
    if _LIBC is None:
        return 0
    try:
        with open(maps_path, encoding="utf-8", errors="replace") as f:
            ranges = read_only_file_mappings(f.read())
    except OSError:
        return 0
    madvise = _LIBC.madvise
    madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    advised = 0
    for start, end in ranges:
        if madvise(ctypes.c_void_p(start), ctypes.c_size_t(end - start), _MADV_PAGEOUT) == 0:
            advised += end - start
        elif ctypes.get_errno() == errno.EINVAL and not advised:
            return 0  # no MADV_PAGEOUT in this kernel
    return advised


class _RefusePandas(importlib.abc.MetaPathFinder):
    """Makes ``import pandas`` (and its submodules) fail as if pandas were not installed."""

    def find_spec(self, fullname: str, path: object = None, target: object = None) -> None:
        if fullname == "pandas" or fullname.startswith("pandas."):
            raise ModuleNotFoundError(f"No module named {fullname!r} (kept out of finemon run)")


def keep_pandas_out() -> None:
    """From now on, for the rest of the process, ``import pandas`` fails as if pandas were not
    installed; pyarrow then skips its pandas checks. For the daemon's process only (``finemon
    run``). Nothing is done when pandas is already imported, or kept out already."""
    if "pandas" in sys.modules or any(isinstance(f, _RefusePandas) for f in sys.meta_path):
        return
    sys.meta_path.insert(0, _RefusePandas())


# ---------------------------------------------------------------------- the phases
def before_imports(*, allow_pandas: bool = False) -> None:
    """The process's first phase, before pyarrow is imported: Arrow's C++ code allocates from
    the C library's allocator (unless ``ARROW_DEFAULT_MEMORY_POOL`` chose another) and, unless
    ``allow_pandas``, pandas is kept out of the process (:func:`keep_pandas_out`). ``finemon
    run`` keeps it out; ``finemon demo``, which goes on to the analysis, allows it."""
    arrow_pool_from_c_library()
    if not allow_pandas:
        keep_pandas_out()


class DaemonMemory:
    """The memory policy's phases within one run of the daemon (one instance per run).

    The C library's allocator (with few arenas, trimmed after each flush and rotation) returns
    the pages a flush frees; Arrow's default pool (mimalloc or jemalloc) would keep them, tens
    of MB of RSS at each flush that never go back.
    """

    def __init__(self) -> None:
        #: Whether the library pages touched only while starting were handed back after the
        #: first rotation (once before the priming sample too).
        self._idle_pages_released = False

    def at_start(self) -> None:
        """When the run starts, before its threads: pyarrow's functions allocate from the C
        library (:func:`before_imports` covers Arrow's C++ code), with few arenas."""
        import pyarrow as pa  # noqa: PLC0415 - the daemon has imported it already

        pa.set_memory_pool(pa.system_memory_pool())
        limit_arenas()

    def before_priming_sample(self) -> None:
        """Before the sample that precedes the first tick: the library pages touched only by
        the imports (Arrow's and numpy's initialisers) go back, so that the pages sampling uses
        come back during that untimed sample, not during the first ticks."""
        release_idle_file_pages()

    def after_priming_sample(self) -> None:
        """After the priming sample: the objects made so far (nearly all live for the whole
        run) are moved out of the garbage collector's sight (``gc.freeze``), so that full
        collections do not walk them, and the free pages go back."""
        gc.collect()
        gc.freeze()
        release_free_memory()

    def after_flush(self) -> None:
        """After each flush (in the writer thread): the flush's freed buffers go back."""
        release_free_memory()

    def after_rotation(self) -> None:
        """After each rotation (in the rotation thread). After the first, when flushes, a
        rotation and a publication have each run once, the library pages only they touched
        go back too; after every one, the old file's buffers."""
        if not self._idle_pages_released:
            self._idle_pages_released = True
            advised = release_idle_file_pages()
            log.debug("idle library pages handed back: %d bytes of mappings advised", advised)
        release_free_memory()

    def after_run(self) -> None:
        """After a run, before the next one in the same process: the finished run's objects,
        frozen after its priming sample, can be collected."""
        gc.unfreeze()
        gc.collect()
