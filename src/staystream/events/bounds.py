"""Sane bounds of every value the service accepts, in one place for every entry point.

Whatever validation accepts is stored, then read back by every read (ISO formatting, date
arithmetic), every store (SQLite, PostgreSQL, the stream) and every format. A value that passes
validation but that one of those cannot represent poisons every read that touches it, after a
restart too (a `changed_at` of `0001-01-01T00:00:00+23:59` is year 0 in UTC). So bounds are
not per format: `POST /v1/events`, the native adapters (through `Validator.validate`) and
`staystream import` (which posts to `/v1/events`) all meet the same checks, defined here.

For a new event type (`price`, `availability`, `stay_rule`, ...): take its timestamp through
`changed_at` (or compare packed columns against `changed_at_window` when validating columns),
its nights through the validator's horizon, and raise `Rejected` with a message that names the
field, the value and what was expected.

>>> now = dt.datetime(2026, 12, 4, tzinfo=dt.UTC)
>>> changed_at(dt.datetime(2026, 12, 1, tzinfo=dt.UTC), now)
1796083200000000
>>> changed_at(dt.datetime.fromisoformat("0001-01-01T00:00:00+23:59"), now)
Traceback (most recent call last):
...
staystream.events.bounds.Rejected: changed_at: '0001-01-01T00:00:00+23:59' is before 1970-01-01T00:00:00Z; \
expected a moment from 1970-01-01T00:00:00Z to 1:00:00 past the server clock (2026-12-04T01:00:00Z)
"""

from __future__ import annotations

import datetime as dt

from staystream.dates import EPOCH, micros

EARLIEST_CHANGE = EPOCH  # nothing a marketplace sends happened before 1970; the columns are epoch-based
MAX_CLOCK_SKEW = dt.timedelta(hours=1)  # how far a sender's clock may run ahead of ours
# Dates in queries (calendar, iCal horizon): far enough for any stay, far enough from year 9999
# that date arithmetic on them (a horizon of nights, a stay, a zone shift) cannot overflow.
EARLIEST_DATE = dt.date(1970, 1, 1)
LATEST_DATE = dt.date(2999, 12, 31)
LAT = 90.0
LON = 180.0


class Rejected(ValueError):
    """One value (so one event) is invalid; the message names field, value and expectation."""


def _rfc3339(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def changed_at_window(now: dt.datetime | None = None) -> tuple[int, int]:
    """The accepted `changed_at` range in microseconds since the epoch, both ends included."""
    now = now or dt.datetime.now(dt.UTC)
    return micros(EARLIEST_CHANGE), micros(now + MAX_CLOCK_SKEW)


def changed_at(moment: dt.datetime, now: dt.datetime | None = None, name: str = "changed_at") -> int:
    """A source's timestamp as microseconds since the epoch, or `Rejected` saying why not."""
    if moment.tzinfo is None:
        raise Rejected(f"{name}: '{moment.isoformat()}' has no time zone; expected RFC 3339 with a "
                       "zone, like 2026-11-26T08:00:00Z")
    now = now or dt.datetime.now(dt.UTC)
    earliest, latest = changed_at_window(now)
    value = micros(moment)
    if earliest <= value <= latest:
        return value
    where = f"before {_rfc3339(EARLIEST_CHANGE)}" if value < earliest else "in the future"
    raise Rejected(f"{name}: '{moment.isoformat()}' is {where}; expected a moment from "
                   f"{_rfc3339(EARLIEST_CHANGE)} to {MAX_CLOCK_SKEW} past the server clock "
                   f"({_rfc3339(now + MAX_CLOCK_SKEW)})")


def query_date(name: str, text: str) -> dt.date:
    """A `YYYY-MM-DD` query parameter within [EARLIEST_DATE, LATEST_DATE], else `Rejected`."""
    try:
        if not (text.isascii() and len(text) == 10):
            raise ValueError(text)
        day = dt.date.fromisoformat(text)
    except ValueError:
        raise Rejected(f"{name}: '{text[:40]}' is not a date; expected YYYY-MM-DD") from None
    if not EARLIEST_DATE <= day <= LATEST_DATE:
        raise Rejected(f"{name}: '{text}' is out of range; expected a date from {EARLIEST_DATE} to {LATEST_DATE}")
    return day


def coordinate(name: str, value: float, limit: float) -> float:
    """A latitude (limit 90) or longitude (limit 180): finite and within [-limit, limit]."""
    if not -limit <= value <= limit:  # NaN fails every comparison; infinities are out of range
        raise Rejected(f"{name}: {value} is out of range; expected -{limit:g} to {limit:g}")
    return value
