"""Partial changes merged into whole night values: how native messages become rate events.

A canonical rate event sets a night's whole value (price, currency, available, min_nights),
but native messages change one fact at a time: an OTA AvailNotif closes nights without naming
a price, an iCal feed opens and blocks nights and knows no prices at all. Such a change is
merged with what the store holds for the night now (*carry forward*) and written as a whole
value stamped with the message's time:

- a field the message sets wins; every other field is the night's current one;
- a night with no current value starts from: no price, available, min_nights 1;
- a night that would end up available without a price cannot be stored (the contract needs a
  price unless the night is unavailable): it is skipped and reported, never invented;
- a night needs a currency even when closed without price: the night's own, else the one the
  listing's other nights use; with none known the night is skipped and reported.

Within one message the merge is sequential: a later element sees what earlier ones set (Sabre
sends min stay and stop-sell for the same nights in separate elements), so the last event for a
night carries every change. Across messages it is read-modify-write against the store; see
`docs/adapters.md` ("carry forward") for the race and why it is acceptable.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Protocol

from staystream.events.types import RateEvent

MAX_NIGHTS_PER_EVENT = 550  # the contract's limit; longer runs are split
ONE_DAY = dt.timedelta(days=1)


@dataclass(frozen=True)
class Night:
    """One night's whole value, as the store holds it."""

    price: Decimal | None
    currency: str
    available: bool
    min_nights: int


@dataclass(frozen=True)
class Change:
    """What one source element says about some nights; `None` means "not said, keep".

    `price=None` with `remove_price=True` removes the price (OTA `NotifType="Remove"`), which
    also makes the nights unavailable. `currency` goes with `price`; in a change without a
    price it is only the fallback for nights whose listing has no currency yet.
    """

    price: Decimal | None = None
    currency: str | None = None
    available: bool | None = None
    min_nights: int | None = None
    remove_price: bool = False

    @property
    def empty(self) -> bool:
        return (self.price is None and self.available is None and self.min_nights is None
                and not self.remove_price)


class Known(Protocol):
    """What the store knows of one source, as adapters need it (see `sources.StoreKnown`)."""

    def listing_ids(self, prefix: str) -> list[str]:
        """Listing ids of the source that start with `prefix`, sorted."""
        ...

    def nights(self, listing_id: str) -> dict[dt.date, Night]:
        """Every night of the listing that holds a value."""
        ...


class MemoryKnown:
    """A `Known` over plain dicts: for tests, and for imports that run without a store."""

    def __init__(self, nights: dict[str, dict[dt.date, Night]] | None = None) -> None:
        self.calendars = nights or {}

    def listing_ids(self, prefix: str) -> list[str]:
        return sorted(key for key in self.calendars if key.startswith(prefix))

    def nights(self, listing_id: str) -> dict[dt.date, Night]:
        return dict(self.calendars.get(listing_id, {}))


NOTHING_KNOWN = MemoryKnown()


@dataclass
class Skipped:
    """Nights a change could not be stored for, and why (one reason per instance)."""

    listing_id: str
    nights: list[dt.date]
    reason: str

    def __str__(self) -> str:
        return f"{self.listing_id}: {describe_nights(self.nights)} {self.reason}"


class Merger:
    """Merges a message's changes over the store's nights, in message order."""

    def __init__(self, source: str, known: Known, changed_at: dt.datetime) -> None:
        self.source, self.known, self.changed_at = source, known, changed_at
        self._calendars: dict[str, dict[dt.date, Night]] = {}
        self._currencies: dict[str, str | None] = {}

    def calendar(self, listing_id: str) -> dict[dt.date, Night]:
        """The listing's nights as this message has left them so far."""
        calendar = self._calendars.get(listing_id)
        if calendar is None:
            calendar = self._calendars[listing_id] = self.known.nights(listing_id)
            latest = max(calendar) if calendar else None
            self._currencies[listing_id] = calendar[latest].currency if latest else None
        return calendar

    def currency(self, listing_id: str) -> str | None:
        """The currency the listing's nights use (its latest night's), None if it has none."""
        self.calendar(listing_id)
        return self._currencies[listing_id]

    def apply(
        self, listing_id: str, nights: Iterable[dt.date], change: Change, only_differences: bool = False
    ) -> tuple[list[RateEvent], list[Skipped]]:
        """Rate events that store `change` on `nights`, and the nights that could not be.

        With `only_differences`, nights whose merged value equals the current one are left
        alone (polled snapshots such as iCal feeds repeat themselves every fetch).
        """
        calendar = self.calendar(listing_id)
        listing_currency = self._currencies[listing_id]
        values: list[tuple[dt.date, Night]] = []
        no_price: list[dt.date] = []
        no_currency: list[dt.date] = []
        for night in sorted(set(nights)):
            current = calendar.get(night)
            merged = _merge(current, change, listing_currency)
            if isinstance(merged, str):
                (no_price if merged == "price" else no_currency).append(night)
                continue
            if only_differences and merged == current:
                continue
            calendar[night] = merged
            values.append((night, merged))
        if change.currency and listing_currency is None:
            self._currencies[listing_id] = change.currency
        skipped = []
        if no_price:
            skipped.append(Skipped(listing_id, no_price,
                                   "cannot become available: no price is known for them yet"))
        if no_currency:
            skipped.append(Skipped(listing_id, no_currency,
                                   "cannot be stored: no currency is known for the listing yet"))
        return self._events(listing_id, values), skipped

    def _events(self, listing_id: str, values: list[tuple[dt.date, Night]]) -> list[RateEvent]:
        """Runs of consecutive nights with one value, as few events as the contract allows."""
        events: list[RateEvent] = []
        run_start: dt.date | None = None
        previous: tuple[dt.date, Night] | None = None
        for night, value in values:
            if (previous is None or night != previous[0] + ONE_DAY or value != previous[1]
                    or run_start is None or (night - run_start).days >= MAX_NIGHTS_PER_EVENT):
                if previous is not None and run_start is not None:
                    events.append(self._event(listing_id, run_start, previous[0] + ONE_DAY, previous[1]))
                run_start = night
            previous = (night, value)
        if previous is not None and run_start is not None:
            events.append(self._event(listing_id, run_start, previous[0] + ONE_DAY, previous[1]))
        return events

    def _event(self, listing_id: str, start: dt.date, end: dt.date, value: Night) -> RateEvent:
        return RateEvent(
            source=self.source, listing_id=listing_id, start=start, end=end,
            currency=value.currency, changed_at=self.changed_at, price=value.price,
            available=value.available, min_nights=value.min_nights,
        )


def _merge(current: Night | None, change: Change, listing_currency: str | None) -> Night | str:
    """The night after `change`, or the name of what it lacks ("price", "currency")."""
    if change.remove_price:
        price = None
    elif change.price is not None:
        price = change.price
    else:
        price = current.price if current is not None else None
    if change.remove_price:
        available = False
    elif change.available is not None:
        available = change.available
    else:
        available = current.available if current is not None else True
    if available and price is None:
        return "price"
    if change.price is not None and change.currency:
        currency: str | None = change.currency
    elif current is not None:
        currency = current.currency
    else:
        currency = listing_currency or change.currency  # without a price: only a fallback
    if currency is None:
        return "currency"
    if change.min_nights is not None:
        min_nights = change.min_nights
    else:
        min_nights = current.min_nights if current is not None else 1
    return Night(price, currency, available, min_nights)


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
