"""Rate events as columns: the bulk body an importer sends to `POST /v1/bulk/rates`.

A `rate` event as an NDJSON line costs its sender an object and a JSON encode, and the service
a JSON decode and a few Python list items, per event; a city's import is ~100,000 of them. As
columns (one little-endian array per field, each text once per distinct value: listings,
currencies, prices) a body of 10,000 events is one msgpack decode into a dozen arrays, checked
with whole-array comparisons. Only the events a check refuses are rebuilt as events and run
through the NDJSON path's own checks (`Validator.rate_row`), so each is accepted or rejected
exactly as the same event sent as JSON would be, with the same message.

    columns = RateColumnsBuilder()
    columns.add("airbnb", "48213", dt.date(2026, 12, 1), dt.date(2026, 12, 8), "EUR",
                changed_at, "129.00", True, 2)
    body = columns.encode()        # application/vnd.staystream.rates+msgpack
    parsed = validate(validator, decode(body, max_events=50_000))
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from types import SimpleNamespace

import msgspec
import numpy as np

from staystream.dates import EPOCH, EPOCH_ORDINAL, MICROSECOND, epoch_day
from staystream.events import bounds
from staystream.events.bounds import Rejected
from staystream.events.ingest import (
    INVALID,
    MAX_MIN_NIGHTS,
    MAX_NIGHTS_PER_EVENT,
    SOURCE_PATTERN,
    BodyError,
    Parsed,
    TooManyEvents,
    Validator,
    WireRate,
)
from staystream.events.money import CURRENCY_INDEX
from staystream.events.types import NO_PRICE, listing_key

__all__ = ["MEDIA_TYPE", "RateColumns", "RateColumnsBuilder", "decode", "validate"]
MEDIA_TYPE = "application/vnd.staystream.rates+msgpack"
NO_PRICE_INDEX = -1  # in `price`: the event has no price (allowed only where available is false)


class RateColumns(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    """N rate events: the tables of distinct texts, then one array of N values per field."""

    listings: list[tuple[str, str]]  # distinct (source, listing_id)
    currencies: list[str]  # distinct ISO 4217 codes as sent
    prices: list[str]  # distinct decimal texts as sent, like "129.00"
    listing: bytes  # <i4: index into `listings`
    start: bytes  # <i4: the first night, days since 1970-01-01
    end: bytes  # <i4: the night after the last, days since 1970-01-01
    currency: bytes  # <i4: index into `currencies`
    price: bytes  # <i4: index into `prices`, or -1: no price
    available: bytes  # u1: 0 or 1
    min_nights: bytes  # <i4
    changed_at: bytes  # <i8: microseconds since 1970-01-01T00:00:00Z


# (field, dtype, the table its values index): an index must name an entry (or be -1: no price)
_ARRAYS = (("listing", "<i4", "listings"), ("start", "<i4", None), ("end", "<i4", None),
           ("currency", "<i4", "currencies"), ("price", "<i4", "prices"), ("available", "u1", None),
           ("min_nights", "<i4", None), ("changed_at", "<i8", None))
_decoder = msgspec.msgpack.Decoder(RateColumns)
_encoder = msgspec.msgpack.Encoder()


class RateColumnsBuilder:
    """Collects rate events one at a time as columns, each text kept once; `encode` is the body."""

    def __init__(self) -> None:
        self.listings: dict[tuple[str, str], int] = {}
        self.currencies: dict[str, int] = {}
        self.prices: dict[str, int] = {}
        self.moments: dict[dt.datetime, int] = {}  # changed_at: a scrape has one per listing
        self.columns: tuple[list[int], ...] = tuple([] for _ in _ARRAYS)

    def __len__(self) -> int:
        return len(self.columns[0])

    def add(self, source: str, listing_id: str, start: dt.date, end: dt.date, currency: str,
            changed_at: dt.datetime, price: str | None, available: bool, min_nights: int) -> None:
        listing = self.listings.setdefault((source, listing_id), len(self.listings))
        micros = self.moments.get(changed_at)
        if micros is None:
            micros = self.moments[changed_at] = (changed_at - EPOCH) // MICROSECOND
        listings, starts, ends, currencies, prices, availables, min_nights_, moments = self.columns
        listings.append(listing)
        starts.append(start.toordinal() - EPOCH_ORDINAL)
        ends.append(end.toordinal() - EPOCH_ORDINAL)
        currencies.append(self.currencies.setdefault(currency, len(self.currencies)))
        prices.append(NO_PRICE_INDEX if price is None else self.prices.setdefault(price, len(self.prices)))
        availables.append(available)
        min_nights_.append(min_nights)
        moments.append(micros)

    def extend(self, source: str, listing_ids: Sequence[str], listing: np.ndarray, start: np.ndarray,
               end: np.ndarray, currency: str, changed_at: np.ndarray, prices: Sequence[str], price: np.ndarray,
               available: np.ndarray, min_nights: np.ndarray) -> None:
        """Many events at once, as arrays: `listing` and `price` index the tables given (a price
        of -1: none), days count from 1970-01-01, `changed_at` is in microseconds."""
        listings, starts, ends, currencies, prices_, availables, min_nights_, moments = self.columns
        distinct, inverse = np.unique(listing, return_inverse=True)
        mine = [self.listings.setdefault((source, listing_ids[i]), len(self.listings)) for i in distinct.tolist()]
        listings += np.array(mine, np.int64)[inverse.reshape(-1)].tolist()
        distinct, inverse = np.unique(price, return_inverse=True)
        mine = [NO_PRICE_INDEX if i < 0 else self.prices.setdefault(prices[i], len(self.prices))
                for i in distinct.tolist()]
        prices_ += np.array(mine, np.int64)[inverse.reshape(-1)].tolist()
        starts += start.tolist()
        ends += end.tolist()
        currencies += [self.currencies.setdefault(currency, len(self.currencies))] * len(listing)
        availables += available.tolist()
        min_nights_ += min_nights.tolist()
        moments += changed_at.tolist()

    def split(self, at: int) -> tuple[RateColumnsBuilder, RateColumnsBuilder]:
        """The events before `at` and from `at` on (a body the service found too large, halved)."""
        halves = RateColumnsBuilder(), RateColumnsBuilder()
        for half, part in zip(halves, (slice(None, at), slice(at, None)), strict=True):
            half.listings, half.currencies, half.prices = self.listings, self.currencies, self.prices
            half.columns = tuple(column[part] for column in self.columns)
        return halves

    def events(self) -> list[WireRate]:
        """The events one by one, as NDJSON carries them (for a service without the bulk route)."""
        listings, currencies, prices = list(self.listings), list(self.currencies), list(self.prices)
        return [
            WireRate(source=listings[listing][0], listing_id=listings[listing][1],
                     start=dt.date.fromordinal(start + EPOCH_ORDINAL), end=dt.date.fromordinal(end + EPOCH_ORDINAL),
                     currency=currencies[currency], changed_at=EPOCH + dt.timedelta(microseconds=moment),
                     price=None if price == NO_PRICE_INDEX else prices[price], available=bool(available),
                     min_nights=min_nights)
            for listing, start, end, currency, price, available, min_nights, moment in zip(*self.columns, strict=True)
        ]

    def encode(self) -> bytes:
        arrays = {name: np.array(column, dtype).tobytes()
                  for (name, dtype, _), column in zip(_ARRAYS, self.columns, strict=True)}
        return _encoder.encode(RateColumns(list(self.listings), list(self.currencies), list(self.prices),
                                           **arrays))


def decode(body: bytes, max_events: int) -> tuple[RateColumns, dict[str, np.ndarray]]:
    """The body's tables and arrays; `BodyError` naming the field when it is not a columns body,
    `TooManyEvents` past `max_events`."""
    try:
        columns = _decoder.decode(body)
    except msgspec.DecodeError as exc:
        raise BodyError(f"body is not rate columns ({MEDIA_TYPE}): {exc}") from None
    arrays: dict[str, np.ndarray] = {}
    count = None
    for name, dtype, table in _ARRAYS:
        data: bytes = getattr(columns, name)
        size = np.dtype(dtype).itemsize
        if len(data) % size:
            raise BodyError(f"{name}: {len(data)} bytes is not a whole number of {size}-byte values")
        values = np.frombuffer(data, dtype)
        if count is None:
            count = len(values)
            if count > max_events:
                raise TooManyEvents(f"body has {count} events; the limit is {max_events} a request")
        elif len(values) != count:
            raise BodyError(f"{name}: {len(values)} values; expected {count}, one per event as in 'listing'")
        if name == "available" or table is not None:
            smallest = NO_PRICE_INDEX if name == "price" else 0
            largest = 1 if table is None else len(getattr(columns, table)) - 1
            wrong = (values < smallest) | (values > largest)
            if wrong.any():
                at = int(np.flatnonzero(wrong)[0])
                raise BodyError(f"{name}: {int(values[at])} at event {at} is out of range; "
                                f"expected {smallest} to {largest}")
        arrays[name] = values
    return columns, arrays


def validate(validator: Validator, columns: RateColumns, arrays: dict[str, np.ndarray]) -> Parsed:
    """The events as the writer wants them, with their rejections: the checks of the NDJSON
    path (`Validator._rates`), a column at a time."""
    today = epoch_day(dt.date.today())
    now = dt.datetime.now(dt.UTC)
    parsed = Parsed()
    keys_of = [_plain_key(source, listing_id) for source, listing_id in columns.listings]
    keys: list[str | None] = [keys_of[i] for i in arrays["listing"].tolist()]
    start = arrays["start"].astype(np.int64)
    nights = arrays["end"].astype(np.int64) - start
    currency_of = np.array([CURRENCY_INDEX.get(code, -1) for code in columns.currencies] or [-1], np.int64)
    currency = currency_of[arrays["currency"]]
    price = _prices(validator, columns, arrays["price"], arrays["currency"], currency_of)
    available = arrays["available"].astype(bool)
    price[(arrays["price"] == NO_PRICE_INDEX) & available] = INVALID
    min_nights = arrays["min_nights"].astype(np.int64)
    changed_at = arrays["changed_at"].copy()
    earliest, latest = bounds.changed_at_window(now)
    bad = (
        (nights <= 0) | (nights > MAX_NIGHTS_PER_EVENT) | (start < validator.earliest_day)
        | (start + nights > today + validator.horizon_days + 1) | (currency < 0) | (price == INVALID)
        | (min_nights < 1) | (min_nights > MAX_MIN_NIGHTS) | (changed_at < earliest) | (changed_at > latest)
        | np.array([key is None for key in keys_of], bool)[arrays["listing"]]
    )
    good = np.flatnonzero(~bad)
    for i in np.flatnonzero(bad).tolist():
        try:
            event = _event(columns, arrays, i)
        except Rejected as exc:
            source = columns.listings[int(arrays["listing"][i])][0]
            parsed.reject(i, SimpleNamespace(source=source), exc)  # the source labels its metric
            continue
        try:
            key, row = validator.rate_row(event, today, now)
        except Rejected as exc:
            parsed.reject(i, event, exc)
            continue
        keys[i], start[i], nights[i], changed_at[i], price[i], currency[i], min_nights[i] = (key, *row[:6])
        good = np.append(good, i)
    good.sort()
    parsed.take_rates(good, keys, start, nights, changed_at, price, currency, min_nights, available[good])
    parsed.rejected.sort(key=lambda rejection: rejection["index"])  # type: ignore[arg-type,return-value]  # index is an int
    return parsed


def _prices(validator: Validator, columns: RateColumns, price: np.ndarray, currency: np.ndarray,
            currency_of: np.ndarray) -> np.ndarray:
    """Minor units per event (NO_PRICE, or INVALID where the text or its currency is refused),
    each distinct (price text, currency) checked once."""
    pairs, inverse = np.unique(price.astype(np.int64) * (len(columns.currencies) + 1) + currency,
                               return_inverse=True)
    minor = np.empty(len(pairs), np.int64)
    for j, pair in enumerate(pairs.tolist()):
        text_index, sent_currency = divmod(pair, len(columns.currencies) + 1)
        if text_index == NO_PRICE_INDEX:
            minor[j] = NO_PRICE
            continue
        index = int(currency_of[sent_currency])
        try:
            minor[j] = INVALID if index < 0 else validator.price_minor(columns.prices[text_index], index)
        except Rejected:
            minor[j] = INVALID
    return minor[inverse.reshape(-1)]


def _plain_key(source: str, listing_id: str) -> str | None:
    """The key of a pair that needs no normalizing, else None (the event's own checks then
    normalize it or say why not, as for NDJSON)."""
    if SOURCE_PATTERN.fullmatch(source) and 1 <= len(listing_id) <= 128 and listing_id.isprintable() \
            and listing_id.isascii() and listing_id == listing_id.strip():
        return listing_key(source, listing_id)
    return None


def _event(columns: RateColumns, arrays: dict[str, np.ndarray], i: int) -> WireRate:
    """Event `i` as the NDJSON path decodes it, for its own checks and their messages."""
    source, listing_id = columns.listings[int(arrays["listing"][i])]
    price_index = int(arrays["price"][i])
    return WireRate(
        source=source, listing_id=listing_id,
        start=_day("start", int(arrays["start"][i])), end=_day("end", int(arrays["end"][i])),
        currency=columns.currencies[int(arrays["currency"][i])],
        changed_at=_moment(int(arrays["changed_at"][i])),
        price=None if price_index == NO_PRICE_INDEX else columns.prices[price_index],
        available=bool(arrays["available"][i]), min_nights=int(arrays["min_nights"][i]),
    )


def _day(name: str, day: int) -> dt.date:
    try:
        return dt.date.fromordinal(day + EPOCH_ORDINAL)
    except (ValueError, OverflowError):
        raise Rejected(f"{name}: day {day} since 1970-01-01 is not a date from 0001 to 9999") from None


def _moment(micros: int) -> dt.datetime:
    try:
        return EPOCH + dt.timedelta(microseconds=micros)
    except OverflowError:
        raise Rejected(f"changed_at: {micros} microseconds since 1970 is not a time from 0001 to 9999") from None
