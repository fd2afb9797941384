"""monitor.allocator: glibc's free pages really go back to the kernel."""

from __future__ import annotations

import threading

import pytest

from monitor import allocator


def rss_bytes() -> int:
    with open("/proc/self/status", "rb") as f:
        for line in f:
            if line.startswith(b"VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


@pytest.mark.skipif(allocator._LIBC is None, reason="the C library is not glibc")
def test_freed_memory_of_a_thread_arena_is_returned() -> None:
    # Like finemon's writer: a thread allocates and frees a lot while one late allocation stays,
    # so the arena cannot shrink from its top and keeps the pages until malloc_trim.
    kept: list[bytes] = []

    def churn() -> None:
        blocks = [bytes(2000) for _ in range(40_000)]  # 80 MB, each above pymalloc's 512 B
        kept.append(bytes(2000))
        del blocks

    thread = threading.Thread(target=churn)
    thread.start()
    thread.join()
    before = rss_bytes()
    assert allocator.release_free_memory()
    after = rss_bytes()
    assert before - after > 40 * 1024 * 1024, (before, after)


@pytest.mark.skipif(allocator._LIBC is None, reason="the C library is not glibc")
def test_arena_limit_is_accepted() -> None:
    assert allocator.limit_arenas(8)
