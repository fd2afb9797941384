"""What the size limit counts, and when a restart must not record."""

from __future__ import annotations

from pathlib import Path

from monitor.sizelimit import SizeLimit, finemon_files, used_bytes


def write(path: Path, size: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x" * size)
    return path


def test_counts_every_file_finemon_writes_and_nothing_else(tmp_path: Path) -> None:
    part = tmp_path / "dt=2024-01-01" / "identifier=n"
    mine = [
        write(part / "finemon-a.parquet", 100),
        write(part / ".finemon-b.parquet.partial", 10),
        write(part / ".finemon-b.parquet.journal", 20),
        write(part / ".finemon-c.parquet.journal.corrupt", 5),
        write(tmp_path / "dt=2024-01-02" / "identifier=m" / "finemon-d.parquet", 7),
        write(tmp_path / "_session.json", 3),
        write(tmp_path / "_sessions" / "r1.json", 4),
        write(tmp_path / "_sessions" / "r2.json", 6),
    ]
    write(tmp_path / "notes.txt", 1000)
    write(tmp_path / "other" / "x.parquet", 1000)
    write(part / "README", 1000)
    write(tmp_path / "_sessions" / "notes.txt", 1000)
    assert sorted(finemon_files(tmp_path)) == sorted(mine)
    assert used_bytes(tmp_path) == 155
    assert used_bytes(tmp_path, exclude=[mine[0]]) == 55
    assert used_bytes(tmp_path / "missing") == 0


def test_live_files_are_added_to_the_last_scan(tmp_path: Path) -> None:
    part = tmp_path / "dt=2024-01-01" / "identifier=n"
    write(part / "finemon-a.parquet", 100)
    journal = write(part / ".finemon-b.parquet.journal", 10)
    partial = part / ".finemon-b.parquet.partial"  # not created yet
    limit = SizeLimit(tmp_path, 200)
    assert limit.rescan([journal, partial]) == 110
    write(journal, 60)
    write(partial, 40)
    assert limit.used([journal, partial]) == 200
    assert limit.reached(limit.used([journal, partial]))
    assert not limit.reached(199)


def test_a_restart_after_a_limit_stop_stays_stopped_until_space_is_freed(tmp_path: Path) -> None:
    limit = SizeLimit(tmp_path, 1000)
    previous = {"reason": "size_limit", "size_limit": limit.marker(800)}
    assert limit.still_reached(previous, 800)
    assert limit.still_reached(previous, 805)  # a manifest more
    assert not limit.still_reached(previous, 500)  # files were moved away
    assert not SizeLimit(tmp_path, 2000).still_reached(previous, 800)  # limit raised
    assert SizeLimit(tmp_path, 900).still_reached(previous, 800)  # limit lowered
    assert not limit.still_reached({"reason": "signal"}, 800)
    assert not limit.still_reached(None, 800)
    assert not limit.still_reached({"reason": "size_limit", "size_limit": "junk"}, 800)
