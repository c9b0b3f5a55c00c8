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
from staystream.adapters.runs import RateRuns
from staystream.dates import day_from_epoch, epoch_day, micros
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
    line: whole blocks of events as `RateRuns`), else row by row with the csv module. Both give
    the same events, with the same lines and notes (`_columnar`)."""
    yielded = 0
    if stream.seekable():
        try:
            for item in _columnar(stream, _Calendar(name, options, scraped)):
                yield item
                yielded += len(item.event) if isinstance(item.event, RateRuns) else 1
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


_FIRST_DAY = epoch_day(dt.date.min)
# Rows are converted a block at a time: memory holds a block, not a file (the importer peaked at
# ~160 MB with 1 MB blocks whatever the file's size, ~40 MB of it pyarrow's libraries; 8 MB: ~230
# MB). 2 MB blocks read a city's calendar in about half the time 1 MB blocks take.
_BLOCK_BYTES = 2 << 20


def _columnar(stream: BinaryIO, calendar: _Calendar) -> Iterator[Item]:
    """The calendar read by pyarrow a block at a time, each block's runs found for whole columns
    at once (`_Calendar.block`). Raises `_NotPlain` where line numbers would not be row numbers.

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
            # nights as dates (only YYYY-MM-DD: any other form stops the reading); the other
            # columns as text, as the csv module gives it, each block's distinct texts once
            convert_options=pa_csv.ConvertOptions(include_columns=list(CALENDAR_COLUMNS), column_types={
                **dict.fromkeys(CALENDAR_COLUMNS, pa.dictionary(pa.int32(), pa.string())), "date": pa.date32()}),
        )
    except (pa.ArrowInvalid, KeyError, UnicodeDecodeError):
        raise _NotPlain from None
    line = 2  # of the block's first row; the header is line 1
    while True:
        try:
            block = batches.read_next_batch()
        except StopIteration:
            break
        except (pa.ArrowInvalid, UnicodeDecodeError):
            raise _NotPlain from None
        if block.num_rows == 0:
            continue
        if block.column("date").null_count:
            raise _NotPlain  # a blank line reads as a row of empty fields here; the csv module skips it
        yield from calendar.block(block, line)
        line += block.num_rows
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


class _Unusual(Exception):
    """A row of the block is rejected, or written in a way only `_Calendar.row` reads right."""


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
        # what `RateRuns` index, numbered as first seen: listing ids, price texts, scrape moments
        self.listing_ids: list[str] = []
        self.listing_index: dict[str, int] = {}
        self.prices: list[str] = []
        self.price_index: dict[str, int] = {}
        self.moments: list[dt.datetime] = []
        self.moment_index: dict[dt.datetime, int] = {}
        self.fallbacks: list[tuple[str, str]] = []  # a listing's (price, minimum stay) in the listings file
        self.fallback_index: dict[tuple[str, str], int] = {}
        self.value_index: dict[tuple[Decimal | None, bool, int, bool], int] = {}

    def row(self, first: int, last: int, listing_id: str, date: str, available: str, price: str,
            min_text: str) -> Iterator[Item]:
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
            values = self._cached(available, price, min_text, self.fallback_price, self.fallback_min)
            if isinstance(values, str):
                raise Rejected(values)
        except Rejected as exc:
            yield Item(Rejected(f"listing {listing_id.strip()!r}: {exc}"), self.name, first, last)
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

    def _cached(self, available: str, price: str, min_text: str, fallback_price: str,
                fallback_min: str) -> tuple[Decimal | None, bool, int, bool] | str:
        key = (available, price, min_text, fallback_price, fallback_min)
        values = self.values.get(key)
        if values is None:
            if len(self.values) > 100_000:
                self.values.clear()
            values = self.values[key] = self._values(*key)
        return values

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

    def block(self, block: pa.RecordBatch, line: int) -> Iterator[Item]:
        """The runs a block of rows (lines from `line` on) completes, as one `RateRuns`; its last
        run stays open (the next block may lengthen it). Row by row if any row is unusual."""
        try:
            listing, day, value, combination, moment, combinations = self._columns(block)
        except _Unusual:
            fields = [block.column(name).to_pylist() for name in CALENDAR_COLUMNS]
            fields[1] = [night.isoformat() for night in fields[1]]
            for offset, values in enumerate(zip(*fields, strict=True)):
                yield from self.row(line + offset, line + offset, *values)
            return
        count = len(listing)
        # a row starts a run unless it is the next night of the row before, with equal values
        starts = np.ones(count, dtype=bool)
        starts[1:] = (listing[1:] != listing[:-1]) | (day[1:] != day[:-1] + 1) | (value[1:] != value[:-1])
        run = self.run
        goes_on = run is not None and run.listing_id == self.listing_ids[listing[0]] and run.extends(
            day_from_epoch(int(day[0])), *combinations[combination[0]])
        starts[0] = not goes_on
        # a run ends at `MAX_NIGHTS_PER_EVENT` nights: the next night starts one of the same values
        index = np.arange(count)
        position = index - np.maximum.accumulate(np.where(starts, index, 0))
        if run is not None and goes_on:
            position[: int(np.argmax(starts)) if starts.any() else count] += run.rows
        heads = np.flatnonzero(position % MAX_NIGHTS_PER_EVENT == 0)
        if run is not None:
            if goes_on:
                lengthened = int(heads[0]) if len(heads) else count
                run.rows += lengthened
                run.last = line + lengthened - 1
            if not len(heads):
                return
            yield run.item(self.options, self.currency, self.name)
        done, last = heads[:-1], int(heads[-1])
        if len(done):
            yield self._runs(listing[done], day[done], np.diff(heads), combination[done], combinations,
                             moment[done], line + done)
        amount, available, min_nights, blocked = combinations[combination[last]]
        self.run = _Run(self.listing_ids[listing[last]], day_from_epoch(int(day[last])), amount, available,
                        min_nights, blocked, line + last, line + count - 1, self.moments[moment[last]])
        self.run.rows = count - last
        self.listing_id, self.changed_at = self.run.listing_id, self.run.changed_at
        _, self.fallback_price, self.fallback_min = self.scraped.by_listing.get(self.listing_id, (None, "", ""))

    def _columns(self, block: pa.RecordBatch) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray,
                                                        list[tuple[Decimal | None, bool, int, bool]]]:
        """Per row: its listing (an index into `listing_ids`), its night (days since 1970), its
        values' identity (equal prices written differently are equal), its values as written (an
        index into the list returned last), its `changed_at` (an index into `moments`).
        `_Unusual` if a row is rejected, or written in a form only `row` reads right."""
        import pyarrow as pa

        column = {name: block.column(name) for name in CALENDAR_COLUMNS}
        day = column["date"].cast(pa.int32()).to_numpy().astype(np.int64)
        if day.min() < _FIRST_DAY:
            raise _NotPlain  # year 0: pyarrow takes it, `dt.date` (and the csv module path) refuses it
        if self.scraped.latest is None:  # no listings file: a calendar starts on its scrape date
            self.scraped.latest = _midnight(day_from_epoch(int(day[0])))
        ids = column["listing_id"]
        listing_of, fallback_of, moment_of = [], [], []
        for text in ids.dictionary.to_pylist():
            listing_id = text.strip()
            if not listing_id:
                raise _Unusual  # rejected
            scraped_at, fallback_price, fallback_min = self.scraped.by_listing.get(listing_id, (None, "", ""))
            listing_of.append(_numbered(self.listing_index, self.listing_ids, listing_id))
            moment_of.append(_numbered(self.moment_index, self.moments, scraped_at or self.scraped.latest))
            fallback_of.append(_numbered(self.fallback_index, self.fallbacks, (fallback_price, fallback_min)))
        local = ids.indices.to_numpy()
        # the few distinct (available, price, minimum stay, listing's fallbacks) of the block, read
        # once; the fallbacks only where the calendar leaves the price or the minimum stay empty
        texts = [column[name].dictionary.to_pylist() for name in ("minimum_nights", "price", "available")]
        indices = [column[name].indices.to_numpy() for name in ("minimum_nights", "price", "available")]
        empty = [np.array([not text.strip() for text in table], bool) for table in texts[:2]]
        code = np.where(empty[0][indices[0]] | empty[1][indices[1]], np.array(fallback_of, np.int64)[local], 0)
        for table, index in zip(texts, indices, strict=True):
            code = code * len(table) + index
        distinct, combination = np.unique(code, return_inverse=True)
        combinations, value = [], []
        for number in distinct.tolist():
            number, available = divmod(number, len(texts[2]))
            number, price = divmod(number, len(texts[1]))
            fallback, min_text = divmod(number, len(texts[0]))
            values = self._cached(texts[2][available], texts[1][price], texts[0][min_text], *self.fallbacks[fallback])
            if isinstance(values, str):
                raise _Unusual  # rejected
            combinations.append(values)
            value.append(self.value_index.setdefault(values, len(self.value_index)))  # Decimal equality
        combination = combination.reshape(-1)
        return (np.array(listing_of, np.int64)[local], day, np.array(value, np.int64)[combination], combination,
                np.array(moment_of, np.int64)[local], combinations)

    def _runs(self, listing: np.ndarray, start: np.ndarray, nights: np.ndarray, combination: np.ndarray,
              combinations: list[tuple[Decimal | None, bool, int, bool]], moment: np.ndarray,
              line: np.ndarray) -> Item:
        """Complete runs of a block as one item: their first rows' columns and lengths."""
        price = np.array([-1 if amount is None else _numbered(self.price_index, self.prices, str(amount))
                          for amount, *_ in combinations], np.int64)
        available, min_nights, blocked = (np.array([values[i] for values in combinations], dtype)
                                          for i, dtype in ((1, bool), (2, np.int64), (3, bool)))
        micros_of = np.array([micros(moment) for moment in self.moments], np.int64)
        notes = {int(i): _placeholder_note(combinations[c][0], self.currency, self.options.placeholder_price, rows)
                 for i, c, rows in zip(np.flatnonzero(blocked[combination]).tolist(),
                                       combination[blocked[combination]].tolist(),
                                       nights[blocked[combination]].tolist(), strict=True)}
        runs = RateRuns(self.options.source, self.currency, self.listing_ids, self.prices, listing=listing,
                        start=start, nights=nights, price=price[combination], available=available[combination],
                        min_nights=min_nights[combination], changed_at=micros_of[moment], line=line,
                        last_line=line + nights - 1, notes=notes)
        return Item(runs, self.name, int(line[0]), int(line[-1] + nights[-1] - 1), int(nights.sum()))

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
        note = _placeholder_note(self.price, currency, options.placeholder_price, self.rows) if self.blocked else None
        return Item(event, name, self.first, self.last, self.rows, note)


def _placeholder_note(price: Decimal | None, currency: str, placeholder: Decimal | None, rows: int) -> str:
    return (f"price {price} {currency} is at or above the placeholder price {placeholder}: "
            f"{rows} nights kept as unavailable")


def _numbered(index: dict[Any, int], table: list[Any], key: Any) -> int:
    """`key`'s place in `table`, appended when new (`index` finds it)."""
    number = index.get(key)
    if number is None:
        number = index[key] = len(table)
        table.append(key)
    return number


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
