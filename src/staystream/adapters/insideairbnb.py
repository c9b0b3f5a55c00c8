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
- Scrapes that have a `cleaning_fee` column (those before 2021 do) give each listing a mandatory
  `per_stay` fee `cleaning_fee` ("Cleaning fee"); an empty or zero one removes it, so a newer
  scrape without a fee wins over an older one with it. `security_deposit` is refundable (no
  fee); `extra_people` over `guests_included` has no basis of its own in the contract (a
  per-guest fee counts every guest) and is not imported.
- `room_type` -> kind: `Entire home/apt` is a house or an apartment by `property_type` (boats,
  tents and the like are `other`), `Private room` -> `private_room`, `Shared room` ->
  `shared_room` (`hostel_bed` when the property is a hostel), `Hotel room` -> `hotel_room`.
"""

from __future__ import annotations

import csv
import datetime as dt
import importlib
import io
import re
import sys
from collections.abc import Iterator, Sequence
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any, BinaryIO

import numpy as np

from staystream.adapters import Input, InputError, Item, Options, open_text
from staystream.events.bounds import Rejected
from staystream.events.ingest import MAX_NIGHTS_PER_EVENT
from staystream.events.types import FeeEvent, ListingEvent, RateEvent

if TYPE_CHECKING:
    import pyarrow as pa  # type: ignore[import-untyped]  # pyarrow ships no type information

__all__ = ["kind_of", "parse_amount", "read", "warm_up"]
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
    streams = {kind: item.stream for (kind, *_), item in zip(opened, inputs, strict=True)}
    scraped = Scraped()
    if "listings" in by_kind:
        yield from _listings(*by_kind["listings"], options, scraped)
    if "calendar" in by_kind:
        yield from _calendar(*by_kind["calendar"], options, scraped, streams["calendar"])


def warm_up() -> None:
    """Import what reading a calendar needs (pyarrow: ~0.2 s), ahead of it: the importer calls
    this on a thread while its server starts. Never in the server (see `_columnar`)."""
    for module in ("pyarrow.compute", "pyarrow.csv"):
        importlib.import_module(module)


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
                                                "calendar_last_scraped", "price", "minimum_nights",
                                                "cleaning_fee")}

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
            fee = _cleaning_fee(options, listing_id, optional(row, "cleaning_fee"), changed_at) \
                if get_optional["cleaning_fee"] is not None else None
        except Rejected as exc:
            yield Item(Rejected(f"listing {row[columns['id']].strip()!r}: {exc}"), name, first, last)
            continue
        yield Item(event, name, first, last)
        if fee is not None:
            yield Item(fee, name, first, last, rows=0)  # the listing's row, counted once


def _cleaning_fee(options: Options, listing_id: str, text: str, changed_at: dt.datetime) -> FeeEvent:
    """The `cleaning_fee` column as a fee event: its removal when empty or zero."""
    amount = parse_amount(text, "cleaning_fee") if text else None
    if not amount:
        return FeeEvent(source=options.source, listing_id=listing_id, fee_id="cleaning_fee", changed_at=changed_at)
    return FeeEvent(source=options.source, listing_id=listing_id, fee_id="cleaning_fee", changed_at=changed_at,
                    basis="per_stay", label="Cleaning fee", amount=amount, currency=options.currency)


def _calendar(name: str, reader: Any, columns: dict[str, int], options: Options,
              scraped: Scraped, stream: BinaryIO) -> Iterator[Item]:
    """Rate events, one per run of equal nights: columnar when the file is plain CSV (a row a
    line), else row by row with the csv module. Both give the same items (`_columnar`)."""
    yielded = 0
    if stream.seekable():
        try:
            for item in _columnar(stream, _Calendar(name, options, scraped)):
                yield item
                yielded += 1
            return
        except _NotPlain:
            # read it again row by row (a broken row may be deep in the file), past what went out
            stream.seek(0)
            _, _, reader, columns = _open(Input(name, stream))
    for skipped, item in enumerate(_rows(name, reader, columns, _Calendar(name, options, scraped))):
        if skipped >= yielded:
            yield item


class _NotPlain(Exception):
    """The calendar is not one record a line (a blank line, a broken or multi-line row, bad UTF-8)."""


# Rows are converted a block at a time: memory holds a block, not a file (the importer peaks at
# ~160 MB whatever the file's size, ~40 MB of it pyarrow's libraries; 8 MB blocks: ~230 MB).
_BLOCK_BYTES = 1 << 20


def _columnar(stream: BinaryIO, calendar: _Calendar) -> Iterator[Item]:
    """The calendar read by pyarrow a block at a time. A row that repeats the one before it (same
    listing, availability, price and minimum stay as text, the next night) only lengthens the
    run: that is found for whole columns at once, and Python sees only the other rows (about
    one in ten in a real city). Raises `_NotPlain` where line numbers would not be row numbers.

    pyarrow is imported here, not with the module: the server imports every adapter, and
    pyarrow's thread pools started before the supervisor forks hung its shutdown."""
    import pyarrow as pa
    import pyarrow.csv as pa_csv  # type: ignore[import-untyped]

    stream.seek(0)
    gzipped = stream.read(2) == b"\x1f\x8b"
    stream.seek(0)
    source: Any = pa.PythonFile(_Borrowed(stream), mode="r")
    if gzipped:
        source = pa.CompressedInputStream(source, "gzip")
    try:
        batches = pa_csv.open_csv(
            source,
            # one thread: the import shares its cores with the server it feeds
            read_options=pa_csv.ReadOptions(block_size=_BLOCK_BYTES, use_threads=False),
            parse_options=pa_csv.ParseOptions(ignore_empty_lines=False, newlines_in_values=False),
            # every column as text, as the csv module gives it: `_Calendar.row` parses them
            convert_options=pa_csv.ConvertOptions(include_columns=list(CALENDAR_COLUMNS),
                                                  column_types=dict.fromkeys(CALENDAR_COLUMNS, pa.string())),
        )
    except (pa.ArrowInvalid, KeyError, UnicodeDecodeError):
        raise _NotPlain from None
    line = 2  # of the block's first row; the header is line 1
    previous: pa.RecordBatch | None = None  # the last row of the block before
    while True:
        try:
            block = batches.read_next_batch()
        except StopIteration:
            break
        except (pa.ArrowInvalid, UnicodeDecodeError):
            raise _NotPlain from None
        if block.num_rows == 0:
            continue
        yield from _block(block, previous, line, calendar)
        line += block.num_rows
        previous = block.slice(block.num_rows - 1)
    yield from calendar.finish()


class _Borrowed(io.RawIOBase):
    """The input as pyarrow reads it: pyarrow closes what it reads, the input must stay open."""

    def __init__(self, stream: BinaryIO) -> None:
        self.stream = stream

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self.stream.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


def _block(block: pa.RecordBatch, previous: pa.RecordBatch | None, line: int, calendar: _Calendar) -> Iterator[Item]:
    """The items a block of rows completes; rows that repeat the row before go by count."""
    import pyarrow as pa
    import pyarrow.compute as pc  # type: ignore[import-untyped]

    rows = block.num_rows
    if pc.any(pc.equal(block.column("listing_id"), "")).as_py():
        raise _NotPlain  # a blank line reads as a row of empty fields here; the csv module skips it
    both = block if previous is None else pa.Table.from_batches([previous, block]).combine_chunks().to_batches()[0]
    column = {name: both.column(name) for name in CALENDAR_COLUMNS}
    same = np.ones(both.num_rows - 1, dtype=bool)
    for name in ("listing_id", "available", "price", "minimum_nights"):
        values = column[name]
        same &= pc.equal(values.slice(1), values.slice(0, len(values) - 1)).to_numpy(zero_copy_only=False)
    # the next night, written as `date.isoformat()` writes it (as the row-by-row reader compares)
    dates = column["date"]
    days = pc.cast(pc.strptime(dates, format="%Y-%m-%d", unit="s", error_is_null=True), pa.date32())
    days = pc.fill_null(pc.cast(days, pa.int32()), -(2**31)).to_numpy()
    canonical = pc.match_substring_regex(dates, r"^\d{4}-\d{2}-\d{2}$").to_numpy(zero_copy_only=False)
    same &= (days[1:] == days[:-1] + 1) & canonical[1:]
    # row i of the block against the row before it; the first against `previous`, if any
    repeats = np.concatenate(([False], same)) if previous is None else same
    heads = np.flatnonzero(~repeats)
    # rows after each head that repeat it (up to the next head, or the block's end)
    counts = np.diff(np.append(heads, rows)) - 1
    first_repeats = rows if len(heads) == 0 else int(heads[0])
    if first_repeats:
        yield from _repeats(block, 0, first_repeats, line, calendar)
    if len(heads) == 0:
        return
    taken = block.take(pa.array(heads))
    fields = [taken.column(name).to_pylist() for name in CALENDAR_COLUMNS]
    for head, count, values in zip(heads.tolist(), counts.tolist(), zip(*fields, strict=True), strict=True):
        at = line + head
        yield from calendar.row(at, at, *values)
        if count:
            yield from _repeats(block, head + 1, count, line, calendar)


def _repeats(block: pa.RecordBatch, first: int, count: int, line: int, calendar: _Calendar) -> Iterator[Item]:
    """Rows [first, first + count) of a block, each repeating the row before it."""
    if not calendar.rejected:
        yield from calendar.repeat(count, line + first + count - 1)
        return
    # a rejected row's repeats are rejected too, each on its own line (rare: read them one by one)
    rows = block.slice(first, count)
    fields = [rows.column(name).to_pylist() for name in CALENDAR_COLUMNS]
    for offset, values in enumerate(zip(*fields, strict=True)):
        yield from calendar.row(line + first + offset, line + first + offset, *values)


def _rows(name: str, reader: Any, columns: dict[str, int], calendar: _Calendar) -> Iterator[Item]:
    """The calendar row by row with the csv module: any CSV, broken rows reported by line."""
    width = len(columns)
    i_id, i_date, i_available, i_price, i_min = (columns[c] for c in CALENDAR_COLUMNS)
    previous = reader.line_num
    while True:
        try:
            for row in reader:
                first, previous = previous + 1, reader.line_num
                if len(row) != width:
                    if row:  # else a blank line
                        yield Item(Rejected(_misshapen(row, width, first, previous)), name, first, previous)
                    continue
                yield from calendar.row(first, previous, row[i_id], row[i_date], row[i_available], row[i_price],
                                        row[i_min])
            break
        except csv.Error as exc:
            yield Item(Rejected(f"row is not valid CSV: {exc}"), name, previous + 1, reader.line_num)
            previous = reader.line_num
    yield from calendar.finish()


class _Calendar:
    """Rows of a calendar in order become rate events: the listing being read and its run."""

    def __init__(self, name: str, options: Options, scraped: Scraped) -> None:
        assert options.currency is not None
        self.name, self.options, self.scraped, self.currency = name, options, scraped, options.currency
        # the few distinct (available, price, minimum stay, fallbacks) texts of a file, read once
        self.values: dict[tuple[str, ...], tuple[Decimal | None, bool, int, bool] | str] = {}
        self.run: _Run | None = None
        self.listing_id = ""
        self.changed_at: dt.datetime | None = None
        self.fallback_price, self.fallback_min = "", ""
        self.rejected = False  # whether the last row read was rejected

    def row(self, first: int, last: int, listing_id: str, date: str, available: str, price: str,
            min_text: str) -> Iterator[Item]:
        self.rejected = False
        options = self.options
        try:
            this_id = listing_id.strip()
            if not this_id:
                raise Rejected("listing_id: missing; expected the listing's id")
            if this_id != self.listing_id:
                if self.run is not None:
                    yield self.run.item(options, self.currency, self.name)
                    self.run = None
                self.listing_id = this_id
                changed_at, self.fallback_price, self.fallback_min = self.scraped.by_listing.get(
                    this_id, (None, "", ""))
                self.changed_at = changed_at or self.scraped.latest
            night = _date(date)
            if self.changed_at is None:  # no listings file: a calendar starts on its scrape date
                self.changed_at = self.scraped.latest = _midnight(night)
            key = (available, price, min_text, self.fallback_price, self.fallback_min)
            values = self.values.get(key)
            if values is None:
                if len(self.values) > 100_000:
                    self.values.clear()
                values = self.values[key] = self._values(*key)
            if isinstance(values, str):
                raise Rejected(values)
        except Rejected as exc:
            yield Item(Rejected(f"listing {listing_id.strip()!r}: {exc}"), self.name, first, last)
            self.rejected = True
            return
        amount, is_available, min_nights, blocked = values
        if self.run is not None and self.run.extends(night, amount, is_available, min_nights, blocked):
            self.run.rows += 1
            self.run.last = last
        else:
            if self.run is not None:
                yield self.run.item(options, self.currency, self.name)
            assert self.changed_at is not None
            self.run = _Run(self.listing_id, night, amount, is_available, min_nights, blocked, first, last,
                            self.changed_at)

    def _values(self, available: str, price: str, min_text: str, fallback_price: str,
                fallback_min: str) -> tuple[Decimal | None, bool, int, bool] | str:
        """(price, available, minimum stay, blocked) of a row's text, or why it is rejected."""
        try:
            is_available = _BOOLEANS.get(available.strip().lower())
            if is_available is None:
                raise Rejected(f"available: {available!r} is not a boolean; expected t or f")
            text_price = price.strip() or fallback_price
            amount = parse_amount(text_price) if text_price else None
            if amount is None and is_available:
                raise Rejected("price: empty, and the listing has no price in the listings file; "
                               "expected a nightly price for an available night")
            text_min = min_text.strip() or fallback_min
            min_nights = _whole("minimum_nights", text_min) if text_min else 1
        except Rejected as exc:
            return str(exc)
        placeholder = self.options.placeholder_price
        blocked = placeholder is not None and amount is not None and amount >= placeholder and is_available
        return amount, is_available and not blocked, min_nights, blocked

    def repeat(self, rows: int, last: int) -> Iterator[Item]:
        """`rows` more rows (lines up to `last`) that repeat the last row read, each the next night:
        they lengthen its run (a new run of the same values past `MAX_NIGHTS_PER_EVENT`)."""
        run = self.run
        assert run is not None
        line = last - rows
        while rows:
            if run.rows == MAX_NIGHTS_PER_EVENT:
                yield run.item(self.options, self.currency, self.name)
                start = run.start + dt.timedelta(days=run.rows)
                run = self.run = _Run(run.listing_id, start, run.price, run.available, run.min_nights, run.blocked,
                                      line + 1, line + 1, run.changed_at)
                taken = 1
            else:
                taken = min(rows, MAX_NIGHTS_PER_EVENT - run.rows)
                run.rows += taken
            line += taken
            run.last = line
            rows -= taken

    def finish(self) -> Iterator[Item]:
        if self.run is not None:
            yield self.run.item(self.options, self.currency, self.name)
            self.run = None


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


def parse_amount(text: str, column: str = "price") -> Decimal:
    """An exact amount from Inside Airbnb's text: `'$1,234.00'` -> `Decimal('1234.00')`."""
    match = _AMOUNT.fullmatch(text)
    if match is None:
        raise Rejected(f"{column}: {text!r} is not an amount; expected one like $1,234.00")
    try:
        return Decimal(match.group(1).replace(",", "") + (match.group(2) or ""))
    except InvalidOperation:  # the pattern admits only digits: unreachable, kept as a guard
        raise Rejected(f"{column}: {text!r} is not an amount; expected one like $1,234.00") from None


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
