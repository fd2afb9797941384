"""monitor.memory_policy: its phases, and glibc's free pages really going back to the kernel."""

from __future__ import annotations

import gc
import logging
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from monitor import memory_policy


def rss_bytes() -> int:
    with open("/proc/self/status", "rb") as f:
        for line in f:
            if line.startswith(b"VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


@pytest.mark.skipif(memory_policy._LIBC is None, reason="the C library is not glibc")
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
    assert memory_policy.release_free_memory()
    after = rss_bytes()
    assert before - after > 40 * 1024 * 1024, (before, after)


@pytest.mark.skipif(memory_policy._LIBC is None, reason="the C library is not glibc")
def test_arena_limit_is_accepted() -> None:
    assert memory_policy.limit_arenas(8)


PHASE_BEFORE_IMPORTS = """
import os, sys
from monitor import memory_policy
memory_policy.before_imports(allow_pandas=sys.argv[1] == "allow")
memory_policy.before_imports(allow_pandas=sys.argv[1] == "allow")  # twice: no second hook
import pyarrow as pa
pa.array([1, 2])  # pyarrow's one look for pandas happens here
print(os.environ["ARROW_DEFAULT_MEMORY_POOL"], pa.default_memory_pool().backend_name)
try:
    import pandas
except ModuleNotFoundError:
    print("refused")
print("loaded" if "pandas" in sys.modules else "absent")
print(sum(type(f).__name__ == "_RefusePandas" for f in sys.meta_path), "hooks")
"""


def run_before_imports(mode: str) -> list[str]:
    env = {k: v for k, v in os.environ.items() if k != memory_policy.ARROW_POOL_VARIABLE}
    done = subprocess.run(
        [sys.executable, "-c", PHASE_BEFORE_IMPORTS, mode],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=True,
    )
    return done.stdout.split()


def test_before_imports_puts_arrow_on_the_c_library_and_keeps_pandas_out() -> None:
    pytest.importorskip("pandas", reason="pandas is not installed: nothing to keep out")
    assert run_before_imports("run") == [
        "system",
        "system",
        "refused",
        "absent",
        "1",
        "hooks",
    ]


def test_before_imports_for_the_demo_lets_pandas_in() -> None:
    pytest.importorskip("pandas", reason="pandas is not installed: nothing to let in")
    assert run_before_imports("allow") == ["system", "system", "loaded", "0", "hooks"]


def test_the_priming_sample_freezes_the_startup_objects_until_the_run_ends() -> None:
    gc.unfreeze()  # a daemon run in this process before (an in-process test) froze its objects
    assert gc.get_freeze_count() == 0
    memory = memory_policy.DaemonMemory()
    try:
        memory.after_priming_sample()
        assert gc.get_freeze_count() > 0
        memory.after_run()
        assert gc.get_freeze_count() == 0
    finally:
        gc.unfreeze()


def test_idle_library_pages_go_back_after_the_first_rotation_only(
    caplog: pytest.LogCaptureFixture,
) -> None:
    memory = memory_policy.DaemonMemory()
    with caplog.at_level(logging.DEBUG, logger="finemon"):
        for _ in range(3):
            memory.after_rotation()
    handed_back = [r for r in caplog.records if "idle library pages" in r.getMessage()]
    assert len(handed_back) == 1


ARROW_WRITES = """
import os, sys
from monitor import memory_policy
if sys.argv[1] == "helper":
    print(memory_policy.arrow_pool_from_c_library())
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
    env = {k: v for k, v in os.environ.items() if k != memory_policy.ARROW_POOL_VARIABLE}
    if pool is not None:
        env[memory_policy.ARROW_POOL_VARIABLE] = pool
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


# /proc/PID/maps lines in the kernel's format (the example of proc(5)), plus a shared mapping
# and a deleted file.
MAPS = """\
00400000-00452000 r-xp 00000000 08:02 173521      /usr/bin/dbus-daemon
00651000-00652000 r--p 00051000 08:02 173521      /usr/bin/dbus-daemon
00652000-00655000 rw-p 00052000 08:02 173521      /usr/bin/dbus-daemon
00e03000-00e24000 rw-p 00000000 00:00 0           [heap]
00e24000-011f7000 rw-p 00000000 00:00 0           [heap]
35b1800000-35b1820000 r-xp 00000000 08:02 135522  /usr/lib64/ld-2.15.so
35b1a1f000-35b1a20000 r--p 0001f000 08:02 135522  /usr/lib64/ld-2.15.so
35b1a20000-35b1a21000 rw-p 00020000 08:02 135522  /usr/lib64/ld-2.15.so
7f2c6ff8c000-7f2c7078c000 rw-p 00000000 00:00 0    [stack:986]
7f2c7078c000-7f2c7088c000 r--s 00000000 00:05 4242  /dev/shm/shared
7f2c7088c000-7f2c7098c000 r--p 00000000 08:02 99    /tmp/gone file (deleted)
7fffb2c0d000-7fffb2c2e000 rw-p 00000000 00:00 0    [stack]
7fffb2d48000-7fffb2d49000 r-xp 00000000 00:00 0    [vdso]
garbage line
"""


def test_only_private_read_only_file_mappings_are_chosen() -> None:
    assert memory_policy.read_only_file_mappings(MAPS) == [
        (0x00400000, 0x00452000),
        (0x00651000, 0x00652000),
        (0x35B1800000, 0x35B1820000),
        (0x35B1A1F000, 0x35B1A20000),
        (0x7F2C7088C000, 0x7F2C7098C000),
    ]


def test_idle_pages_of_read_only_file_mappings_go_back_and_come_back_on_use(
    tmp_path: Path,
) -> None:
    # A fresh interpreter maps a 32 MiB file read-only (as the loader maps a library's code),
    # reads every page, hands the idle pages back, then reads the file again. numpy and pyarrow
    # are imported first and used after: their pages that this test's own process maps too stay
    # (the kernel leaves pages another process maps), the rest go, and writing Parquet still
    # works.
    data = tmp_path / "library.bin"
    data.write_bytes(os.urandom(32 * 1024 * 1024))
    script = """
import mmap, os, sys
import numpy as np
import pyarrow as pa
from monitor import memory_policy

def rss_file():
    for line in open("/proc/self/status"):
        if line.startswith("RssFile:"):
            return int(line.split()[1]) * 1024

with open(sys.argv[1], "rb") as f:
    os.fsync(f.fileno())
    mapped = mmap.mmap(f.fileno(), 0, flags=mmap.MAP_PRIVATE, prot=mmap.PROT_READ)
total = sum(mapped[i] for i in range(0, len(mapped), 4096))
before = rss_file()
advised = memory_policy.release_idle_file_pages()
after = rss_file()
total_again = sum(mapped[i] for i in range(0, len(mapped), 4096))
again = rss_file()
assert total == total_again
table = pa.table({"x": np.arange(1000)})
from pyarrow._parquet import ParquetWriter
writer = ParquetWriter(sys.argv[2], table.schema, writer_engine_version="V2")
writer.write_table(table)
writer.close()
import pyarrow.parquet as pq
assert pq.read_table(sys.argv[2]).equals(table)
print(advised, before, after, again)
"""
    result = subprocess.run(
        [sys.executable, "-c", script, str(data), str(tmp_path / "t.parquet")],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    advised, before, after, again = map(int, result.stdout.split())
    if advised == 0:
        pytest.skip("the kernel refuses madvise(MADV_PAGEOUT) (before Linux 5.4)")
    mb = 1024 * 1024
    assert advised >= 32 * mb
    assert before - after >= 30 * mb, (before, after)  # the file's pages went
    assert again - after >= 30 * mb, (after, again)  # and came back when read
