"""Tests for observers.readers.numbers: the one range check of every reader."""

from __future__ import annotations

import pytest

from observers.readers.errors import MalformedFileError, OutOfRangeError
from observers.readers.numbers import (
    CFS_QUOTA_USEC,
    INT64_MAX,
    PID,
    PSI_PERCENT,
    U64,
    U64_MAX,
    parse_decimal,
    parse_int,
)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [(b"0", 0), (b"42", 42), (b"007", 7), (b"9223372036854775807", INT64_MAX)],
)
def test_unsigned_values_within_int64_are_kept(raw: bytes, expected: int) -> None:
    assert parse_int(raw, U64, "f", 1) == expected


@pytest.mark.parametrize(
    "raw", [b"", b"-", b"+5", b" 5", b"5 ", b"1_000", b"0x1f", b"1e3", b"\xd9\xa3"]
)
def test_what_is_no_decimal_integer_is_none_for_the_caller_to_report(raw: bytes) -> None:
    assert parse_int(raw, U64, "f", 1) is None


@pytest.mark.parametrize(
    ("raw", "said"),
    [
        (b"-7", "is negative: expected an unsigned 64-bit value"),
        (b"-0", "is negative"),
        (b"9223372036854775808", "above 2**63-1: an unsigned 64-bit value, but more than"),
        (str(U64_MAX).encode(), "int64 columns"),
        (str(U64_MAX + 2).encode(), "is above 2**64-1: no kernel value"),
        (b"9" * 10_000, "is above 2**64-1"),
    ],
)
def test_out_of_range_says_which_range_and_why(raw: bytes, said: str) -> None:
    with pytest.raises(OutOfRangeError) as info:
        parse_int(raw, U64, "/cg/memory.current", 3)
    message = str(info.value)
    assert message.startswith("/cg/memory.current:3: ") and said in message
    assert len(message) < 300
    assert info.value.reason_counted == "out_of_range"
    assert isinstance(info.value, MalformedFileError)


def test_a_signed_range_takes_its_negative_values() -> None:
    assert parse_int(b"-1", CFS_QUOTA_USEC, "q", 1) == -1
    with pytest.raises(OutOfRangeError, match=r"outside a CFS quota"):
        parse_int(b"-2", CFS_QUOTA_USEC, "q", 1)


def test_a_narrow_range() -> None:
    assert parse_int(b"4194303", PID, "p", 1) == 4194303
    with pytest.raises(OutOfRangeError, match=r"outside a pid \(0\.\.4194303\)"):
        parse_int(b"4194304", PID, "p", 1)


@pytest.mark.parametrize(("raw", "expected"), [(b"0.00", 0.0), (b"12.05", 12.05), (b"100", 100.0)])
def test_decimals(raw: bytes, expected: float) -> None:
    assert parse_decimal(raw, PSI_PERCENT, "f", 1) == expected


@pytest.mark.parametrize("raw", [b"nan", b"inf", b"1e3", b".5", b"5.", b"+1.0", b""])
def test_what_is_no_decimal_is_none(raw: bytes) -> None:
    assert parse_decimal(raw, PSI_PERCENT, "f", 1) is None


@pytest.mark.parametrize("raw", [b"100.01", b"-0.01"])
def test_decimals_outside_their_range(raw: bytes) -> None:
    with pytest.raises(OutOfRangeError, match=r"outside a PSI average"):
        parse_decimal(raw, PSI_PERCENT, "f", 1)
