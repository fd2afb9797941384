"""monitor.allocator: glibc's free pages really go back to the kernel."""

from __future__ import annotations

import os
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


ARROW_WRITES = """
import os, sys
from monitor import allocator
if sys.argv[1] == "helper":
    print(allocator.arrow_pool_from_c_library())
import pyarrow as pa
import pyarrow.ipc
# The journal's way of writing: an IPC stream with ZSTD, which allocates in Arrow's C++ code.
sink = pa.BufferOutputStream()
table = pa.table({"x": pa.array(range(200_000)), "s": pa.array(["a", "b"] * 100_000)})
with pa.ipc.new_stream(sink, table.schema, options=pa.ipc.IpcWriteOptions(compression="zstd")) as w:
    w.write_table(table)
print(pa.mimalloc_memory_pool().max_memory(), pa.system_memory_pool().max_memory())
"""


def arrow_pool_peaks(mode: str, pool: str | None) -> list[str]:
    env = {k: v for k, v in os.environ.items() if k != allocator.ARROW_POOL_VARIABLE}
    if pool is not None:
        env[allocator.ARROW_POOL_VARIABLE] = pool
    done = subprocess.run(
        [sys.executable, "-c", ARROW_WRITES, mode],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=True,
    )
    return done.stdout.split()


def test_arrow_cpp_code_allocates_from_the_c_library() -> None:
    # Without it, Arrow's C++ code allocates from mimalloc, which keeps freed pages.
    mimalloc_peak, _system_peak = arrow_pool_peaks("plain", None)
    assert int(mimalloc_peak) > 0
    chosen, mimalloc_peak, system_peak = arrow_pool_peaks("helper", None)
    assert chosen == "True"
    assert int(mimalloc_peak) == 0
    assert int(system_peak) > 0


def test_a_pool_chosen_by_the_user_stands() -> None:
    chosen, mimalloc_peak, _system_peak = arrow_pool_peaks("helper", "mimalloc")
    assert chosen == "False"
    assert int(mimalloc_peak) > 0
