"""Times of the query layer: UTC datetimes and epoch milliseconds, one way each."""

from __future__ import annotations

from datetime import UTC, datetime


def utc(epoch_ms: float) -> datetime:
    """The UTC datetime of ``epoch_ms`` (milliseconds since the epoch)."""
    return datetime.fromtimestamp(epoch_ms / 1000, UTC)


def as_utc(value: datetime) -> datetime:
    """``value`` in UTC; a naive datetime is taken to be UTC already."""
    return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)


def to_epoch_ms(value: datetime) -> int:
    """``value`` (naive: UTC) as epoch milliseconds."""
    return round(as_utc(value).timestamp() * 1000)


def epoch_ms(value: object) -> int | None:
    """A Parquet statistic (a datetime or epoch ms) as epoch ms; None for anything else."""
    if isinstance(value, datetime):
        return to_epoch_ms(value)
    if isinstance(value, int):
        return value
    return None


def parse_iso(text: object) -> datetime | None:
    """An ISO 8601 text (a manifest's time, ``Z`` allowed) in UTC; None when it is not one."""
    if not isinstance(text, str):
        return None
    try:
        return as_utc(datetime.fromisoformat(text.replace("Z", "+00:00")))
    except ValueError:
        return None
