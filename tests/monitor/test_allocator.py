"""monitor.allocator: glibc's free pages really go back to the kernel."""

from __future__ import annotations

import subprocess
import sys
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


def test_pandas_is_kept_out_within_the_block_only() -> None:
    pytest.importorskip("pandas", reason="pandas is not installed: nothing to keep out")
    script = """
import sys
import pyarrow as pa
from monitor.allocator import pandas_kept_out
with pandas_kept_out():
    pa.array([1, 2])  # pyarrow's one look for pandas happens here
    try:
        import pandas
    except ModuleNotFoundError:
        print("refused")
    print("loaded" if "pandas" in sys.modules else "absent")
pa.array([3])
print("loaded" if "pandas" in sys.modules else "absent")
import pandas
print(type(pa.table({"a": [1]}).to_pandas()).__name__)
"""
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.split() == ["refused", "absent", "absent", "DataFrame"], done.stderr
