"""The metric names the catalogue gives the sampler and the analysis: each is one of its entries."""

from __future__ import annotations

import pytest

from common.catalogue import container, entry_for, process
from common.catalogue.container import (
    CONTAINER_PSI_AVG10_PERCENT_FAMILY,
    CONTAINER_PSI_STALL_USEC_FAMILY,
    PSI_LINES,
    PSI_RESOURCES,
    container_psi_avg10_percent,
    container_psi_stall_usec,
)


def _constants() -> list[str]:
    return [
        value
        for module in (container, process)
        for name, value in vars(module).items()
        if name.startswith(("CONTAINER_", "PROCESS_")) and not name.endswith("_FAMILY")
    ]


def test_there_is_a_name_for_every_exact_container_and_process_entry() -> None:
    exact = {
        entry.name
        for module in (container, process)
        for entry in module.ENTRIES
        if entry.exact and "{" not in entry.name
    }
    assert set(_constants()) == exact


@pytest.mark.parametrize("name", _constants())
def test_each_name_is_its_own_entry(name: str) -> None:
    entry = entry_for(name)
    assert entry is not None and entry.name == name


def test_the_pressure_names_are_the_members_of_their_families() -> None:
    for resource in PSI_RESOURCES:
        for line in PSI_LINES:
            stall = entry_for(container_psi_stall_usec(resource, line))
            avg10 = entry_for(container_psi_avg10_percent(resource, line))
            assert stall is not None and stall.name == CONTAINER_PSI_STALL_USEC_FAMILY
            assert avg10 is not None and avg10.name == CONTAINER_PSI_AVG10_PERCENT_FAMILY
    assert entry_for(container_psi_stall_usec("net", "some")) is None
