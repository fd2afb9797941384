"""The container model (observers/derive.py): readings built directly, no files, no clock."""

from __future__ import annotations

import pytest

from observers.derive import (
    ContainerReading,
    PressureReading,
    capacity_millicores,
    derive_container,
    rate_per_second,
)

NODE_MILLICORES = 4000.0


def _cpu(usage: int, user: int, system: int, **other: object) -> ContainerReading:
    return ContainerReading(
        cpu_usage_usec=usage,
        cpu_user_usec=user,
        cpu_system_usec=system,
        **other,  # type: ignore[arg-type]
    )


def test_the_first_reading_is_a_baseline_for_the_rates_and_passes_the_rest_through() -> None:
    current = _cpu(
        1_000_000,
        600_000,
        400_000,
        cpu_periods=10,
        cpu_throttled_periods=2,
        cpu_throttled_usec=5_000,
        memory_usage_bytes=100,
        memory_rss_bytes=60,
        memory_cache_bytes=40,
        memory_swap_bytes=0,
        memory_oom_kills=1,
        memory_oom_events=3,
        pids_current=7,
    )
    values = derive_container(None, current, 1.0, NODE_MILLICORES)
    assert values.cpu_usage_usec == 1_000_000
    assert values.cpu_usage_millicores is None and values.cpu_usage_percent is None
    assert values.cpu_user_millicores is None and values.cpu_system_percent is None
    assert not values.cpu_rates_nonzero
    assert (values.cpu_periods, values.cpu_throttled_periods, values.cpu_throttled_usec) == (
        10,
        2,
        5_000,
    )
    assert (values.memory_usage_bytes, values.memory_rss_bytes, values.memory_cache_bytes) == (
        100,
        60,
        40,
    )
    assert (values.memory_swap_bytes, values.pids_current) == (0, 7)
    assert (values.memory_oom_kills, values.memory_oom_events) == (1, 3)


def test_cpu_rates_are_millicores_and_percent_of_the_node_without_a_limit() -> None:
    previous = _cpu(1_000_000, 600_000, 400_000)
    current = _cpu(1_500_000, 900_000, 600_000)
    values = derive_container(previous, current, 2.0, NODE_MILLICORES)
    # 500,000 usec over 2 s = 250,000 usec/s = 250 millicores, of 4000.
    assert values.cpu_usage_millicores == pytest.approx(250.0)
    assert values.cpu_usage_percent == pytest.approx(6.25)
    assert values.cpu_user_millicores == pytest.approx(150.0)
    assert values.cpu_user_percent == pytest.approx(3.75)
    assert values.cpu_system_millicores == pytest.approx(100.0)
    assert values.cpu_system_percent == pytest.approx(2.5)
    assert values.cpu_rates_nonzero


def test_cpu_percentages_are_of_the_limit_when_there_is_one() -> None:
    previous = _cpu(0, 0, 0, cpu_limit_millicores=500.0)
    current = _cpu(250_000, 200_000, 50_000, cpu_limit_millicores=500.0)
    values = derive_container(previous, current, 1.0, NODE_MILLICORES)
    assert values.cpu_limit_millicores == 500.0
    assert values.cpu_usage_millicores == pytest.approx(250.0)
    assert values.cpu_usage_percent == pytest.approx(50.0)
    assert values.cpu_user_percent == pytest.approx(40.0)
    assert values.cpu_system_percent == pytest.approx(10.0)


def test_a_zero_limit_counts_as_none() -> None:
    assert capacity_millicores(0.0, NODE_MILLICORES) == NODE_MILLICORES
    assert capacity_millicores(None, NODE_MILLICORES) == NODE_MILLICORES
    assert capacity_millicores(1500.0, NODE_MILLICORES) == 1500.0


def test_an_idle_container_has_zero_rates() -> None:
    reading = _cpu(1_000_000, 600_000, 400_000)
    values = derive_container(reading, reading, 0.1, NODE_MILLICORES)
    assert values.cpu_usage_millicores == 0.0 and values.cpu_usage_percent == 0.0
    assert not values.cpu_rates_nonzero


@pytest.mark.parametrize(
    ("previous", "current"),
    [
        (5_000_000, 1_000),  # a counter reset: a recreated cgroup starts again from 0
        (2**64 - 10, 5),  # a wrap looks the same: no rate, a new baseline
    ],
)
def test_a_counter_going_down_gives_no_rate(previous: int, current: int) -> None:
    values = derive_container(
        _cpu(previous, previous, previous), _cpu(current, current, current), 1.0, NODE_MILLICORES
    )
    assert values.cpu_usage_usec == current
    assert values.cpu_usage_millicores is None and values.cpu_usage_percent is None
    assert values.cpu_user_millicores is None and values.cpu_system_millicores is None
    assert not values.cpu_rates_nonzero


@pytest.mark.parametrize("elapsed_seconds", [0.0, -0.5])
def test_no_elapsed_time_gives_no_rate(elapsed_seconds: float) -> None:
    values = derive_container(
        _cpu(0, 0, 0), _cpu(1_000, 1_000, 0), elapsed_seconds, NODE_MILLICORES
    )
    assert values.cpu_usage_millicores is None and values.cpu_user_percent is None


def test_rate_per_second() -> None:
    assert rate_per_second(10, 30, 4.0) == 5.0
    assert rate_per_second(None, 30, 4.0) is None
    assert rate_per_second(10, None, 4.0) is None
    assert rate_per_second(30, 10, 4.0) is None
    assert rate_per_second(10, 30, 0.0) is None


def test_missing_inputs_give_no_value() -> None:
    empty = derive_container(None, ContainerReading(), 1.0, NODE_MILLICORES)
    assert all(getattr(empty, field) is None for field in empty._fields if field != "pressure")
    assert empty.pressure == ()
    # A CPU time missing from one of the two readings: no rate for it, the others go on.
    previous = ContainerReading(cpu_usage_usec=0, cpu_user_usec=None, cpu_system_usec=0)
    current = ContainerReading(cpu_usage_usec=100_000, cpu_user_usec=50_000, cpu_system_usec=0)
    values = derive_container(previous, current, 1.0, NODE_MILLICORES)
    assert values.cpu_usage_millicores == pytest.approx(100.0)
    assert values.cpu_user_millicores is None
    assert values.cpu_system_millicores == 0.0


def test_the_working_set_is_usage_less_inactive_file_at_least_0() -> None:
    def working_set(usage: int | None, inactive: int | None) -> int | None:
        reading = ContainerReading(memory_usage_bytes=usage, memory_inactive_file_bytes=inactive)
        return derive_container(None, reading, 1.0, NODE_MILLICORES).memory_working_set_bytes

    assert working_set(1000, 300) == 700
    assert working_set(300, 1000) == 0  # the two files are read at slightly different times
    assert working_set(1000, None) is None
    assert working_set(None, 300) is None


def test_io_totals_are_v2s_else_v1s_blkio_sums() -> None:
    def io(**reading: object) -> tuple[int, int, int, int] | None:
        current = ContainerReading(**reading)  # type: ignore[arg-type]
        return derive_container(None, current, 1.0, NODE_MILLICORES).io

    assert io() is None
    assert io(io=(1, 2, 3, 4)) == (1, 2, 3, 4)
    assert io(blkio_service_bytes=(10, 20), blkio_serviced=(1, 2)) == (10, 20, 1, 2)
    # One of the two blkio files missing: its half counts 0.
    assert io(blkio_service_bytes=(10, 20)) == (10, 20, 0, 0)
    assert io(blkio_serviced=(0, 0)) == (0, 0, 0, 0)
    # v2 wins on a hybrid reading.
    assert io(io=(1, 2, 3, 4), blkio_service_bytes=(10, 20)) == (1, 2, 3, 4)


def test_pressure_lines_pass_through() -> None:
    lines = (
        PressureReading("cpu", "some", 1.5, 10_000),
        PressureReading("memory", "full", None, 0),
    )
    values = derive_container(None, ContainerReading(pressure=lines), 1.0, NODE_MILLICORES)
    assert values.pressure == lines


def test_limits_pass_through_and_none_means_no_limit() -> None:
    limited = ContainerReading(cpu_limit_millicores=250.0, memory_limit_bytes=1 << 30)
    values = derive_container(None, limited, 1.0, NODE_MILLICORES)
    assert (values.cpu_limit_millicores, values.memory_limit_bytes) == (250.0, 1 << 30)
    values = derive_container(limited, ContainerReading(), 1.0, NODE_MILLICORES)
    assert (values.cpu_limit_millicores, values.memory_limit_bytes) == (None, None)
