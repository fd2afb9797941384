"""Keeping finemon's resident memory to what it uses: the C allocator's free pages go back.

finemon's writer thread builds Arrow arrays and Parquet row groups every few seconds and frees
them again. With glibc, memory freed in a thread's arena is kept by that arena for reuse and
only the top of the main heap is ever returned by itself: under container churn (every tick a
different set of series) the arenas fragment and the process's RSS climbs by hundreds of MB
although the live data stays the same. :func:`limit_arenas` caps the number of arenas (fewer
places for free memory to hide) and :func:`release_free_memory` (``malloc_trim``) hands the free
pages of every arena back to the kernel; the daemon calls it after each rotation.

Both are no-ops, returning False, where the C library is not glibc.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

log = logging.getLogger("finemon")

#: mallopt parameter numbers from glibc's <malloc.h>.
_M_ARENA_MAX = -8
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
    """Cap glibc's malloc arenas (call before the threads start); True if applied."""
    if _LIBC is None:
        return False
    return bool(_LIBC.mallopt(_M_ARENA_MAX, ctypes.c_int(arenas)))


def release_free_memory() -> bool:
    """Return the free pages of every malloc arena to the kernel; True if any were."""
    if _LIBC is None:
        return False
    return bool(_LIBC.malloc_trim(ctypes.c_size_t(0)))
