"""The core types: events as they arrive, the columns they become, and the writer's frames.

Other modules compose around these. Events are msgspec structs (decoded in C); a request's
valid calendar events (`rate`, `price`, `availability`, `stay_rule`) travel as one packed numpy
array (`RATE_DTYPE`), never as Python objects.

A night holds three facts, each last-writer-wins on its own `changed_at` (contract v1.1, "one
fact at a time"): the price (price + currency, or "no price"), the availability and the stay
rule. A row's `facts` bitmask says which of them the event sets: a `rate` sets all three.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import msgspec
import numpy as np

KINDS: tuple[str, ...] = (
    "hotel_room", "apartment", "house", "private_room", "shared_room", "hostel_bed", "other",
)
KIND_INDEX = {kind: i for i, kind in enumerate(KINDS)}


# gc=False: events hold only scalars, so they can be in no reference cycle; untracked, the
# 100,000 events of a large body are not walked by every garbage collection while it is parsed.
class ListingEvent(msgspec.Struct, tag="listing", tag_field="type", gc=False):
    source: str
    listing_id: str | int
    name: str
    kind: str
    lat: float
    lon: float
    max_guests: int
    changed_at: dt.datetime
    property_id: str | int | None = None
    city: str | None = None
    country: str | None = None
    bedrooms: int | None = None
    url: str | None = None
    address: str | None = None


class RateEvent(msgspec.Struct, tag="rate", tag_field="type", gc=False):
    source: str
    listing_id: str | int
    start: dt.date
    end: dt.date
    currency: str
    changed_at: dt.datetime
    price: Decimal | None = None
    available: bool = True
    min_nights: int = 1


class PriceEvent(msgspec.Struct, tag="price", tag_field="type", gc=False):
    """Sets the price fact only; the night's availability and stay rule stay as they are."""

    source: str
    listing_id: str | int
    start: dt.date
    end: dt.date
    price: Decimal
    currency: str
    changed_at: dt.datetime


class AvailabilityEvent(msgspec.Struct, tag="availability", tag_field="type", gc=False):
    """Sets the availability fact only (a stop-sell, an iCal block, an inventory count)."""

    source: str
    listing_id: str | int
    start: dt.date
    end: dt.date
    available: bool
    changed_at: dt.datetime


class StayRuleEvent(msgspec.Struct, tag="stay_rule", tag_field="type", gc=False):
    """Sets the stay-rule fact only: the minimum stay of a check-in on these nights."""

    source: str
    listing_id: str | int
    start: dt.date
    end: dt.date
    min_nights: int
    changed_at: dt.datetime


CalendarEvent = RateEvent | PriceEvent | AvailabilityEvent | StayRuleEvent


class FeeEvent(msgspec.Struct, tag="fee", tag_field="type", gc=False):
    """One charge of a listing beyond its nights (contract v1.1, "Fees and taxes"); `amount`
    null with no `percent` removes it."""

    source: str
    listing_id: str | int
    fee_id: str | int
    changed_at: dt.datetime
    basis: str | None = None
    label: str | None = None
    amount: Decimal | None = None
    percent: Decimal | None = None
    currency: str | None = None
    mandatory: bool = True
    start: dt.date | None = None
    end: dt.date | None = None


class DelistEvent(msgspec.Struct, tag="delist", tag_field="type", gc=False):
    source: str
    listing_id: str | int
    changed_at: dt.datetime


class LinkEvent(msgspec.Struct, tag="link", tag_field="type", gc=False):
    """An operator's decision that two listings are (or are not) one place."""

    source: str
    listing_id: str | int
    other_source: str
    other_listing_id: str | int
    same: bool
    changed_at: dt.datetime


Event = (ListingEvent | RateEvent | PriceEvent | AvailabilityEvent | StayRuleEvent | DelistEvent | FeeEvent
         | LinkEvent)


class Listing(msgspec.Struct, array_like=True):
    """A validated, normalized listing description, as stored."""

    key: str
    name: str
    kind: int
    lat: float
    lon: float
    max_guests: int
    changed_at: int
    property_id: str | None
    city: str | None
    country: str | None
    bedrooms: int | None
    url: str | None
    address: str | None = None  # last: frames and stream messages from before addresses decode


class Delist(msgspec.Struct, array_like=True):
    key: str
    changed_at: int


FEE_BASES: tuple[str, ...] = ("per_stay", "per_night", "per_guest_per_night", "percent")
FEE_BASIS_INDEX = {basis: i for i, basis in enumerate(FEE_BASES)}
PERCENT_SCALE = 10**6  # `Fee.amount` of a percent fee: the percent in millionths (12.5% = 12_500_000)
ALWAYS_FROM, ALWAYS_UNTIL = -(2**31), 2**31 - 1  # the check-in window of a fee without start/end


class Fee(msgspec.Struct, array_like=True):
    """A validated, normalized fee as stored: last-writer-wins per (key, fee_id) on changed_at.

    `removed` is a tombstone that keeps its changed_at, so an older version arriving later stays
    removed. `amount` is in minor units of `currency`, or for `percent` the percent in
    millionths (`PERCENT_SCALE`, currency 0). `start`/`end` are check-in days since the epoch.
    """

    key: str
    fee_id: str
    label: str
    basis: int  # index in FEE_BASES
    amount: int
    currency: int
    mandatory: bool
    start: int
    end: int
    changed_at: int
    removed: bool


class Link(msgspec.Struct, array_like=True):
    """A validated `link` event: the pair by store key, `key` < `other_key`."""

    key: str
    other_key: str
    same: bool
    changed_at: int


# One calendar event as a row: `key` indexes `WriteRequest.keys` on the wire and is the
# listing's row number once the writer resolved it. Nights are days since 1970-01-01;
# `changed_at` is microseconds since the epoch (UTC); `price` is in minor units of `currency`,
# -1 for "no price". `facts` is the bitmask of the facts the event sets (FACT_*); the columns
# of a fact it does not set are 0 (price -1) and mean nothing.
RATE_DTYPE = np.dtype(
    [
        ("key", "<i4"),
        ("start", "<i4"),
        ("nights", "<i2"),
        ("changed_at", "<i8"),
        ("price", "<i8"),
        ("currency", "<u2"),
        ("min_nights", "<u2"),
        ("available", "u1"),
        ("facts", "u1"),
    ]
)
# The rows of format 1 (before facts): every row a `rate`, all three facts. Logs, snapshots
# and streams written by it are read through `upgrade_rates`.
RATE_DTYPE_V1 = np.dtype(
    [
        ("key", "<i4"),
        ("start", "<i4"),
        ("nights", "<i2"),
        ("changed_at", "<i8"),
        ("price", "<i8"),
        ("currency", "<u2"),
        ("min_nights", "<u2"),
        ("available", "u1"),
    ]
)
RATE_FORMAT = 2  # the format of `RATE_DTYPE` rows; 1 is `RATE_DTYPE_V1`
FACT_PRICE = 1
FACT_AVAILABILITY = 2
FACT_STAY_RULE = 4
ALL_FACTS = FACT_PRICE | FACT_AVAILABILITY | FACT_STAY_RULE
FACTS_OF_TYPE = {"rate": ALL_FACTS, "price": FACT_PRICE, "availability": FACT_AVAILABILITY,
                 "stay_rule": FACT_STAY_RULE}
NO_PRICE = -1


def upgrade_rates(packed: bytes, rate_format: int) -> np.ndarray:
    """Rows as `RATE_DTYPE` from bytes of either format (a v1 row sets all three facts)."""
    if rate_format == RATE_FORMAT:
        return np.frombuffer(packed, RATE_DTYPE)
    if rate_format != 1:
        raise ValueError(f"rate rows of format {rate_format}; this version reads formats 1 and {RATE_FORMAT}")
    old = np.frombuffer(packed, RATE_DTYPE_V1)
    rows = np.empty(len(old), RATE_DTYPE)
    for name in ("key", "start", "nights", "changed_at", "price", "currency", "min_nights", "available"):
        rows[name] = old[name]
    rows["facts"] = ALL_FACTS
    return rows


class WriteRequest(msgspec.Struct, array_like=True):
    """One HTTP request's valid events, handed from a worker to the writer."""

    id: int
    keys: list[str]
    rates: bytes
    listings: list[Listing]
    delists: list[Delist]
    newest: dict[str, int]  # per source, the greatest changed_at among the events
    fx: bytes | None = None  # a replacement FX table (admin), stored with the group
    bulk: bool = False  # from a bulk import: yields to live traffic in the writer
    rate_format: int = RATE_FORMAT  # of `rates`; `scaled.stream.decode` sets 1 for messages from before facts
    fees: list[Fee] = []
    links: list[Link] = msgspec.field(default_factory=list)
    place: str | None = None  # not a write: asks the writer for `GET /v1/places/{place}` (no events)

    def rate_rows(self) -> np.ndarray:
        """`rates` as `RATE_DTYPE` rows, whichever format the frame was written in."""
        return upgrade_rates(self.rates, self.rate_format)


class Commit(msgspec.Struct):
    """What one group commit makes durable, whatever the backend."""

    new_keys: list[tuple[int, str, str]]  # (row, source, listing_id) of listings first seen
    listings: list[tuple[int, Listing]]  # by row
    delists: list[tuple[int, Delist]]  # by row
    seq: int  # the sequence of `rate_events`
    rate_events: bytes | None  # packed RATE_DTYPE, key = row
    settings: dict[str, bytes]
    fees: list[tuple[int, Fee]] = []  # by row
    links: list[Link] = msgspec.field(default_factory=list)  # kept by key: they may name unknown listings

    @property
    def describes(self) -> bool:
        """Whether anything beside rate events changes: listings, keys, fees, links or settings."""
        return bool(self.new_keys or self.listings or self.delists or self.settings or self.fees or self.links)

    def without_rates(self) -> Commit:
        return Commit(self.new_keys, self.listings, self.delists, 0, None, self.settings, self.fees, self.links)


class WriteReply(msgspec.Struct, array_like=True):
    id: int
    seq: int
    error: str | None = None
    body: bytes | None = None  # the answer to a query (`WriteRequest.place`): JSON, or None for not found


def listing_key(source: str, listing_id: str) -> str:
    """The store's key of a unit: source and id joined by a byte neither may contain."""
    return f"{source}\x00{listing_id}"


def split_key(key: str) -> tuple[str, str]:
    source, _, listing_id = key.partition("\x00")
    return source, listing_id
