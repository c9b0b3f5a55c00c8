"""Rate events as columns, as an adapter yields a whole block of a big file at once.

A city's calendar is ~100,000 runs of equal nights; a `RateEvent` and an `Item` for each cost
the importer's reading thread more than reading the file. An adapter that finds its runs with
whole-array operations yields them as one `RateRuns` a block instead: the importer copies the
arrays into its request bodies (`events/columns.py`) without an object per run. `items()` gives
the same runs one event at a time, for whoever wants them so.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal

import numpy as np

from staystream.dates import day_from_epoch, from_micros
from staystream.events.types import RateEvent

__all__ = ["RateRuns"]


@dataclass(frozen=True, eq=False)
class RateRuns:
    """N rate events of one source and currency, each from consecutive lines of one file.

    `listing_ids` and `prices` are tables the arrays index (an adapter may share one growing
    table between its blocks); a price index of -1 is no price. `notes` says, by event index,
    what the adapter changed on purpose (as `Item.note` does for one event).
    """

    source: str
    currency: str
    listing_ids: list[str]
    prices: list[str]
    listing: np.ndarray  # int: index into `listing_ids`
    start: np.ndarray  # int: the first night, days since 1970-01-01
    nights: np.ndarray  # int: nights of the event (one source row each)
    price: np.ndarray  # int: index into `prices`, or -1
    available: np.ndarray  # bool
    min_nights: np.ndarray  # int
    changed_at: np.ndarray  # int64: microseconds since 1970-01-01T00:00:00Z
    line: np.ndarray  # int: the event's first line in its file
    last_line: np.ndarray  # int: its last line
    notes: dict[int, str] = dataclasses.field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.listing)

    def part(self, first: int, end: int) -> RateRuns:
        """Events [first, end) as runs of their own."""
        cut = slice(first, end)
        return dataclasses.replace(
            self, listing=self.listing[cut], start=self.start[cut], nights=self.nights[cut], price=self.price[cut],
            available=self.available[cut], min_nights=self.min_nights[cut], changed_at=self.changed_at[cut],
            line=self.line[cut], last_line=self.last_line[cut],
            notes={i - first: note for i, note in self.notes.items() if first <= i < end})

    def events(self) -> Iterator[RateEvent]:
        """The events one by one."""
        for listing, start, nights, price, available, min_nights, changed_at in zip(
                self.listing.tolist(), self.start.tolist(), self.nights.tolist(), self.price.tolist(),
                self.available.tolist(), self.min_nights.tolist(), self.changed_at.tolist(), strict=True):
            first = day_from_epoch(start)
            yield RateEvent(source=self.source, listing_id=self.listing_ids[listing], start=first,
                            end=day_from_epoch(start + nights), currency=self.currency,
                            changed_at=from_micros(changed_at),
                            price=None if price < 0 else Decimal(self.prices[price]), available=available,
                            min_nights=min_nights)
