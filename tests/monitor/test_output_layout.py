"""Output paths: Hive partitions by UTC date of the first tick, sortable unique file names."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from monitor.layout import OutputLayout


def ts(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


def test_file_path_shape() -> None:
    layout = OutputLayout(Path("/data"), "node-1", "0123456789abcdef")
    path = layout.file_path(ts("2024-03-05T07:08:09.5"), 7)
    assert path == Path(
        "/data/dt=2024-03-05/identifier=node-1/finemon-20240305T070809Z-01234567-00007.parquet"
    )
    assert layout.session_manifest == Path("/data/_session.json")
    assert layout.run_manifest == Path("/data/_sessions/0123456789abcdef.json")


def test_partition_is_the_utc_date_of_the_first_tick() -> None:
    layout = OutputLayout(Path("/d"), "x", "r" * 32)
    before = layout.file_path(ts("2024-12-31T23:59:59.9"), 1)
    after = layout.file_path(ts("2025-01-01T00:00:00"), 2)
    assert before.parts[2] == "dt=2024-12-31"
    assert after.parts[2] == "dt=2025-01-01"


def test_names_sort_by_time_across_restarts_and_stay_unique() -> None:
    first = OutputLayout(Path("/d"), "x", "ffffffff" + "0" * 24)
    second = OutputLayout(Path("/d"), "x", "00000000" + "0" * 24)
    names = [
        first.file_path(ts("2024-01-01T10:00:00"), 1).name,
        first.file_path(ts("2024-01-01T10:01:30"), 2).name,
        second.file_path(ts("2024-01-01T10:05:00"), 1).name,
        second.file_path(ts("2024-01-01T10:06:30"), 2).name,
    ]
    assert sorted(names) == names
    # The same second in two runs: the run id keeps them apart.
    same = {
        first.file_path(ts("2024-01-01T10:00:00"), 1),
        second.file_path(ts("2024-01-01T10:00:00"), 1),
    }
    assert len(same) == 2


def test_everything_not_data_is_hidden_from_dataset_readers() -> None:
    layout = OutputLayout(Path("/d"), "x", "r" * 32)
    assert layout.session_manifest.name.startswith("_")
    assert layout.run_manifest.parent.name.startswith("_")
