"""The facts a native message really carries, as one-fact events over runs of nights.

A night holds three facts, each last-writer-wins on its own `changed_at` (contract v1.1, "one
fact at a time"): its price, its availability and its stay rule. Partner messages change one
or two of them at a time (a stop-sell, an inventory count, an iCal block carry no price), so an
adapter says exactly what an element sets (`Price`, `Availability`, `StayRule`) on which nights,
and `events` turns that into `price`, `availability` and `stay_rule` events: nothing is read
from the store and nothing the message did not say is written. Within one message the events
keep element order, and at equal `changed_at` the later arrival wins, so a later element
overrides an earlier one for the same fact and night, as the sender meant.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal

from staystream.events.types import AvailabilityEvent, PriceEvent, StayRuleEvent

MAX_NIGHTS_PER_EVENT = 550  # the contract's limit; longer runs are split
ONE_DAY = dt.timedelta(days=1)


@dataclass(frozen=True)
class Price:
    amount: Decimal
    currency: str


@dataclass(frozen=True)
class Availability:
    available: bool


@dataclass(frozen=True)
class StayRule:
    min_nights: int


Fact = Price | Availability | StayRule
FactEvent = PriceEvent | AvailabilityEvent | StayRuleEvent


def events(source: str, listing_id: str, nights: Iterable[dt.date], fact: Fact,
           changed_at: dt.datetime) -> list[FactEvent]:
    """One event per run of consecutive nights (at most 550 nights each) setting `fact`."""
    result: list[FactEvent] = []
    for start, end in runs(nights):
        if isinstance(fact, Price):
            result.append(PriceEvent(source, listing_id, start, end, fact.amount, fact.currency, changed_at))
        elif isinstance(fact, Availability):
            result.append(AvailabilityEvent(source, listing_id, start, end, fact.available, changed_at))
        else:
            result.append(StayRuleEvent(source, listing_id, start, end, fact.min_nights, changed_at))
    return result


def runs(nights: Iterable[dt.date]) -> list[tuple[dt.date, dt.date]]:
    """Consecutive nights as [start, end) ranges of at most `MAX_NIGHTS_PER_EVENT` nights."""
    result: list[tuple[dt.date, dt.date]] = []
    start: dt.date | None = None
    previous: dt.date | None = None
    for night in sorted(set(nights)):
        if (start is None or previous is None or night != previous + ONE_DAY
                or (night - start).days >= MAX_NIGHTS_PER_EVENT):
            if start is not None and previous is not None:
                result.append((start, previous + ONE_DAY))
            start = night
        previous = night
    if start is not None and previous is not None:
        result.append((start, previous + ONE_DAY))
    return result


def nights_between(first: dt.date, last: dt.date, weekdays: frozenset[int] | None = None) -> list[dt.date]:
    """The nights `first`..`last` inclusive, on the given weekdays (0 = Monday) if any."""
    count = (last - first).days + 1
    days = (first + dt.timedelta(days=i) for i in range(count))
    if weekdays is None or len(weekdays) == 7:
        return list(days)
    return [day for day in days if day.weekday() in weekdays]


def describe_nights(nights: list[dt.date]) -> str:
    """A short human form of a set of nights: `3 nights 2025-04-10..2025-04-12`."""
    if not nights:
        return "no nights"
    if len(nights) == 1:
        return f"night {nights[0]}"
    return f"{len(nights)} nights {min(nights)}..{max(nights)}"
