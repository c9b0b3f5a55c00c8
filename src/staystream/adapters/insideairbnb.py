"""Inside Airbnb scrapes: the detailed `listings.csv(.gz)` and `calendar.csv(.gz)` of one city.

A listings row becomes a `listing` event; a run of consecutive calendar nights of one listing
with the same (price, available, min_nights) becomes one `rate` event. Both files stream, in
whichever order they are given (each is recognized by its header); the listings file is read
first because calendar rows borrow from it (the scrape date, a price where the calendar has
none). Memory holds a few values per listing, never a file.

Decisions (docs/adapters.md says why):

- `changed_at` is the scrape date at 00:00 UTC (`last_scraped` for listings,
  `calendar_last_scraped` for nights): importing the same scrape twice changes nothing, a newer
  scrape wins over an older one whatever the order of import.
- Prices are exact `Decimal`s parsed from `$1,234.00`; the currency comes from `Options`.
- A nightly price >= `Options.placeholder_price` (a host's way to block nights, e.g. 10,000 or
  109,999 SGD for a room otherwise at 150) is kept, marked unavailable, and reported as a note.
- An empty calendar price or minimum stay falls back to the listing's `price` /
  `minimum_nights`; with none, an available night is rejected (an unavailable one keeps no price).
- `room_type` -> kind: `Entire home/apt` is a house or an apartment by `property_type` (boats,
  tents and the like are `other`), `Private room` -> `private_room`, `Shared room` ->
  `shared_room` (`hostel_bed` when the property is a hostel), `Hotel room` -> `hotel_room`.
"""

from __future__ import annotations

import csv
import datetime as dt
import re
import sys
from collections.abc import Iterator, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any

from staystream.adapters import Input, InputError, Item, Options, open_text
from staystream.events.bounds import Rejected
from staystream.events.ingest import MAX_NIGHTS_PER_EVENT
from staystream.events.types import ListingEvent, RateEvent

__all__ = ["kind_of", "parse_amount", "read"]
LISTING_COLUMNS = ("id", "name", "latitude", "longitude", "room_type", "property_type", "accommodates")
CALENDAR_COLUMNS = ("listing_id", "date", "available", "price", "minimum_nights")
# An amount as Inside Airbnb writes it: an optional currency sign, comma thousands, a point.
_AMOUNT = re.compile(r"\s*[^\d\s.,+-]{0,3}\s*(\d{1,3}(?:,\d{3})+|\d+)(\.\d+)?\s*")
_BOOLEANS = {"t": True, "f": False, "true": True, "false": False}
# Whole words of `property_type` (so "serviced apartment" is no "rv" and "houseboat" no house).
_OTHER = re.compile(r"\b(boat|houseboat|campsite|camper|rv|tent|yurt|tipi|treehouse|bus|cave|island|"
                    r"lighthouse|train|windmill|shipping container|religious building)\b")
_HOUSE = re.compile(r"\b(house|home|villa|cottage|bungalow|cabin|chalet|townhouse|farm stay|guesthouse|"
                    r"barn|castle|dome|hut|casa particular)\b")
_ROOM_KINDS = {"private room": "private_room", "shared room": "shared_room", "hotel room": "hotel_room"}
# A listing's description field may hold a whole essay; the csv module's default limit is 128 KB.
csv.field_size_limit(min(sys.maxsize, 2**31 - 1))


def read(inputs: Sequence[Input], options: Options) -> Iterator[Item]:
    """Listing events from a listings file, then rate events from a calendar file (either optional)."""
    if not options.currency:
        raise InputError("currency: missing; Inside Airbnb files write prices as '$150.00' in the "
                         "city's own currency: give it, e.g. --currency SGD")
    if not 1 <= len(inputs) <= 2:
        raise InputError(f"expected a listings file and/or a calendar file, got {len(inputs)} inputs")
    opened = [_open(item) for item in inputs]
    kinds = [kind for kind, *_ in opened]
    if len(set(kinds)) != len(kinds):
        raise InputError(f"two {kinds[0]} files given ({inputs[0].name}, {inputs[1].name}); "
                         "expected one listings file and one calendar file")
    by_kind = {kind: (name, reader, columns) for kind, name, reader, columns in opened}
    scraped = Scraped()
    if "listings" in by_kind:
        yield from _listings(*by_kind["listings"], options, scraped)
    if "calendar" in by_kind:
        yield from _calendar(*by_kind["calendar"], options, scraped)


class Scraped:
    """What calendar rows borrow from their listing: the scrape date, a price, a minimum stay."""

    def __init__(self) -> None:
        self.by_listing: dict[str, tuple[dt.datetime | None, str, str]] = {}
        self.latest: dt.datetime | None = None

    def add(self, listing_id: str, calendar_scraped: dt.datetime | None, price: str, min_nights: str) -> None:
        self.by_listing[listing_id] = (calendar_scraped, price, min_nights)
        if calendar_scraped is not None and (self.latest is None or calendar_scraped > self.latest):
            self.latest = calendar_scraped


def _open(item: Input) -> tuple[str, str, Any, dict[str, int]]:
    """(kind, name, csv reader past the header, column index by name) of one input."""
    reader = csv.reader(open_text(item.stream))
    try:
        header = [name.strip() for name in next(reader)]
    except StopIteration:
        raise InputError(f"{item.name}: the file is empty; expected a CSV header line") from None
    except csv.Error as exc:
        raise InputError(f"{item.name}: line 1 is not CSV: {exc}") from None
    columns = {name: i for i, name in enumerate(header)}
    required: tuple[str, ...]
    if "listing_id" in columns and "date" in columns:
        kind, required = "calendar", CALENDAR_COLUMNS
    elif "id" in columns and "latitude" in columns:
        kind, required = "listings", LISTING_COLUMNS
    else:
        raise InputError(f"{item.name}: header {','.join(header)[:200]!r} is neither an Inside Airbnb "
                         "listings file (id, latitude, ...) nor a calendar file (listing_id, date, ...)")
    missing = [name for name in required if name not in columns]
    if missing:
        hint = (" (the summary listings.csv lacks them: use the detailed listings.csv.gz)"
                if kind == "listings" else "")
        raise InputError(f"{item.name}: column {', '.join(repr(m) for m in missing)} missing from the "
                         f"{kind} header{hint}")
    return kind, item.name, reader, columns


def _records(reader: Any, columns: dict[str, int]) -> Iterator[tuple[int, int, list[str] | str]]:
    """(first line, last line, fields) per record; fields is an error message for a broken one."""
    width = len(columns)
    previous = reader.line_num
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield previous + 1, reader.line_num, f"row is not valid CSV: {exc}"
            previous = reader.line_num
            continue
        first, previous = previous + 1, reader.line_num
        if not row:
            continue  # a blank line
        if len(row) != width:
            yield first, previous, _misshapen(row, width, first, previous)
            continue
        yield first, previous, row


def _listings(name: str, reader: Any, columns: dict[str, int], options: Options,
              scraped: Scraped) -> Iterator[Item]:
    get_optional = {c: columns.get(c) for c in ("bedrooms", "listing_url", "last_scraped",
                                                "calendar_last_scraped", "price", "minimum_nights")}

    def optional(row: list[str], column: str) -> str:
        index = get_optional[column]
        return "" if index is None else row[index].strip()

    for first, last, row in _records(reader, columns):
        if isinstance(row, str):
            yield Item(Rejected(row), name, first, last)
            continue
        try:
            listing_id = _required(row, columns, "id")
            last_scraped = _scrape_date("last_scraped", optional(row, "last_scraped"))
            calendar_scraped = _scrape_date("calendar_last_scraped", optional(row, "calendar_last_scraped"))
            scraped.add(listing_id, calendar_scraped or last_scraped, optional(row, "price"),
                        optional(row, "minimum_nights"))
            changed_at = last_scraped or calendar_scraped
            if changed_at is None:
                raise Rejected("last_scraped: missing; expected the scrape date YYYY-MM-DD")
            bedrooms = optional(row, "bedrooms")
            event = ListingEvent(
                source=options.source,
                listing_id=listing_id,
                name=_required(row, columns, "name"),
                kind=kind_of(row[columns["room_type"]], row[columns["property_type"]]),
                lat=_number(row, columns, "latitude"),
                lon=_number(row, columns, "longitude"),
                max_guests=_whole("accommodates", _required(row, columns, "accommodates")),
                changed_at=changed_at,
                city=options.city,
                country=options.country,
                bedrooms=_whole("bedrooms", bedrooms) if bedrooms else None,
                url=optional(row, "listing_url") or None,
            )
        except Rejected as exc:
            yield Item(Rejected(f"listing {row[columns['id']].strip()!r}: {exc}"), name, first, last)
            continue
        yield Item(event, name, first, last)


def _calendar(name: str, reader: Any, columns: dict[str, int], options: Options,
              scraped: Scraped) -> Iterator[Item]:
    """Rate events, one per run of equal nights; the hot loop of an import (a row a night)."""
    currency = options.currency
    assert currency is not None
    placeholder = options.placeholder_price
    width = len(columns)
    i_id, i_date, i_available, i_price, i_min = (columns[c] for c in CALENDAR_COLUMNS)
    prices: dict[str, Decimal] = {}  # the few distinct price strings of a file, parsed once
    following: dict[str, str] = {}  # "2023-09-23" -> "2023-09-24", computed once per date
    run: _Run | None = None
    listing_id = ""
    changed_at: dt.datetime | None = None
    fallback_price, fallback_min = "", ""
    same: tuple[str, ...] = ()  # the run's last row as text: an identical next night extends it
    next_night = ""
    previous = reader.line_num
    while True:
        try:
            for row in reader:
                first, previous = previous + 1, reader.line_num
                if (row[i_date] == next_night if len(row) == width else False) and (
                        row[i_id], row[i_available], row[i_price], row[i_min]) == same and (
                        run is not None and run.rows < MAX_NIGHTS_PER_EVENT):
                    run.rows += 1  # the fast path: most rows repeat the night before
                    run.last = previous
                    next_night = following.get(next_night) or _following(following, next_night)
                    continue
                if len(row) != width:
                    if row:  # else a blank line
                        yield Item(Rejected(_misshapen(row, width, first, previous)), name, first, previous)
                    continue
                try:
                    this_id = row[i_id].strip()
                    if not this_id:
                        raise Rejected("listing_id: missing; expected the listing's id")
                    if this_id != listing_id:
                        if run is not None:
                            yield run.item(options, currency, name)
                            run = None
                        listing_id = this_id
                        changed_at, fallback_price, fallback_min = scraped.by_listing.get(this_id, (None, "", ""))
                        changed_at = changed_at or scraped.latest
                    night = _date(row[i_date])
                    if changed_at is None:  # no listings file: a calendar starts on its scrape date
                        changed_at = scraped.latest = _midnight(night)
                    available = _BOOLEANS.get(row[i_available].strip().lower())
                    if available is None:
                        raise Rejected(f"available: {row[i_available]!r} is not a boolean; expected t or f")
                    text_price = row[i_price].strip() or fallback_price
                    price = prices.get(text_price)
                    if price is None and text_price:
                        if len(prices) > 100_000:
                            prices.clear()
                        price = prices[text_price] = parse_amount(text_price)
                    if price is None and available:
                        raise Rejected("price: empty, and the listing has no price in the listings file; "
                                       "expected a nightly price for an available night")
                    text_min = row[i_min].strip() or fallback_min
                    min_nights = _whole("minimum_nights", text_min) if text_min else 1
                except Rejected as exc:
                    yield Item(Rejected(f"listing {row[i_id].strip()!r}: {exc}"), name, first, previous)
                    same, next_night = (), ""
                    continue
                blocked = placeholder is not None and price is not None and price >= placeholder and available
                if blocked:
                    available = False
                if run is not None and run.extends(night, price, available, min_nights, blocked):
                    run.rows += 1
                    run.last = previous
                else:
                    if run is not None:
                        yield run.item(options, currency, name)
                    assert changed_at is not None
                    run = _Run(listing_id, night, price, available, min_nights, blocked, first, previous,
                               changed_at)
                same = (row[i_id], row[i_available], row[i_price], row[i_min])
                next_night = (night + _DAY).isoformat()
            break
        except csv.Error as exc:
            yield Item(Rejected(f"row is not valid CSV: {exc}"), name, previous + 1, reader.line_num)
            previous = reader.line_num
            same, next_night = (), ""
    if run is not None:
        yield run.item(options, currency, name)


def _following(cache: dict[str, str], night: str) -> str:
    following = cache[night] = (dt.date.fromisoformat(night) + _DAY).isoformat()
    return following


def _misshapen(row: list[str], width: int, first: int, last: int) -> str:
    hint = " (an unterminated quote?)" if last - first > 50 else ""
    return f"row has {len(row)} fields; the header has {width}{hint}"


class _Run:
    """Consecutive nights of one listing with the same values: one rate event."""

    __slots__ = ("listing_id", "start", "price", "available", "min_nights", "blocked",
                 "first", "last", "rows", "changed_at")

    def __init__(self, listing_id: str, night: dt.date, price: Decimal | None, available: bool,
                 min_nights: int, blocked: bool, first: int, last: int, changed_at: dt.datetime) -> None:
        self.listing_id, self.start = listing_id, night
        self.price, self.available, self.min_nights, self.blocked = price, available, min_nights, blocked
        self.first, self.last, self.rows, self.changed_at = first, last, 1, changed_at

    def extends(self, night: dt.date, price: Decimal | None, available: bool, min_nights: int,
                blocked: bool) -> bool:
        return ((night - self.start).days == self.rows and price == self.price
                and available == self.available and min_nights == self.min_nights
                and blocked == self.blocked and self.rows < MAX_NIGHTS_PER_EVENT)

    def item(self, options: Options, currency: str, name: str) -> Item:
        event = RateEvent(
            source=options.source, listing_id=self.listing_id, start=self.start,
            end=self.start + dt.timedelta(days=self.rows), currency=currency,
            changed_at=self.changed_at, price=self.price, available=self.available,
            min_nights=self.min_nights,
        )
        note = None
        if self.blocked:
            note = (f"price {self.price} {currency} is at or above the placeholder price "
                    f"{options.placeholder_price}: {self.rows} nights kept as unavailable")
        return Item(event, name, self.first, self.last, self.rows, note)


_DAY = dt.timedelta(days=1)


def parse_amount(text: str) -> Decimal:
    """An exact amount from Inside Airbnb's text: `'$1,234.00'` -> `Decimal('1234.00')`."""
    match = _AMOUNT.fullmatch(text)
    if match is None:
        raise Rejected(f"price: {text!r} is not an amount; expected one like $1,234.00")
    try:
        return Decimal(match.group(1).replace(",", "") + (match.group(2) or ""))
    except InvalidOperation:  # the pattern admits only digits: unreachable, kept as a guard
        raise Rejected(f"price: {text!r} is not an amount; expected one like $1,234.00") from None


def kind_of(room_type: str, property_type: str) -> str:
    """The canonical kind of a listing from Inside Airbnb's `room_type` and `property_type`."""
    room = room_type.strip().lower()
    what = property_type.strip().lower()
    if room == "entire home/apt":
        if _OTHER.search(what):
            return "other"
        return "house" if _HOUSE.search(what) else "apartment"
    kind = _ROOM_KINDS.get(room)
    if kind is None:
        raise Rejected(f"room_type: {room_type!r} is not one of Entire home/apt, Private room, "
                       "Shared room, Hotel room")
    if kind == "shared_room" and "hostel" in what:
        return "hostel_bed"
    return kind


def _required(row: list[str], columns: dict[str, int], column: str) -> str:
    value = row[columns[column]].strip()
    if not value:
        raise Rejected(f"{column}: missing; expected a value")
    return value


def _number(row: list[str], columns: dict[str, int], column: str) -> float:
    text = _required(row, columns, column)
    try:
        return float(text)
    except ValueError:
        raise Rejected(f"{column}: {text!r} is not a number") from None


def _whole(column: str, text: str) -> int:
    """A count; `'2.0'` (pandas-written files) is 2, `'2.5'` is rejected."""
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise Rejected(f"{column}: {text!r} is not a whole number") from None
    if not value.is_finite() or value != value.to_integral_value():
        raise Rejected(f"{column}: {text!r} is not a whole number")
    return int(value)


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text.strip())
    except ValueError:
        raise Rejected(f"date: {text!r} is not a date; expected YYYY-MM-DD") from None


def _scrape_date(column: str, text: str) -> dt.datetime | None:
    if not text:
        return None
    try:
        return _midnight(dt.date.fromisoformat(text))
    except ValueError:
        raise Rejected(f"{column}: {text!r} is not a date; expected YYYY-MM-DD") from None


def _midnight(day: dt.date) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC)
