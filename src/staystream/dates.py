"""Days and instants as the store holds them: days since 1970-01-01, microseconds since the epoch (UTC)."""

from __future__ import annotations

import datetime as dt

EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
EPOCH_ORDINAL = dt.date(1970, 1, 1).toordinal()
MICROSECOND = dt.timedelta(microseconds=1)


def epoch_day(day: dt.date) -> int:
    return day.toordinal() - EPOCH_ORDINAL


def day_from_epoch(days: int) -> dt.date:
    return dt.date.fromordinal(days + EPOCH_ORDINAL)


def micros(moment: dt.datetime) -> int:
    return (moment - EPOCH) // MICROSECOND


def from_micros(value: int) -> dt.datetime:
    return EPOCH + dt.timedelta(microseconds=value)


def format_changed_at(value: int) -> str:
    """RFC 3339 in UTC with milliseconds, or microseconds where the source sent them."""
    moment = from_micros(value)  # isoformat, not strftime: "%Y" drops the zeros of year 0001
    precision = "microseconds" if moment.microsecond % 1000 else "milliseconds"
    return moment.isoformat(timespec=precision).replace("+00:00", "Z")
