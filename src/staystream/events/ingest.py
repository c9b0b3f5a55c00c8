"""Decode, validate and normalize a `POST /v1/events` body into columns for the writer.

The happy path decodes the whole body in one msgspec call; only a body with a bad event falls
back to decoding event by event, so one bad event costs its own rejection and nothing else.
Every rejection names the field, the value and what was expected.
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation

import msgspec
import numpy as np

from staystream.dates import EPOCH, EPOCH_ORDINAL, MICROSECOND, day_from_epoch, epoch_day
from staystream.events import bounds
from staystream.events.bounds import Rejected
from staystream.events.fx import Fx
from staystream.events.money import AMOUNT_LIMIT, COUNTRIES, CURRENCIES, CURRENCY_INDEX, EXPONENT
from staystream.events.types import (
    ALL_FACTS,
    ALWAYS_FROM,
    ALWAYS_UNTIL,
    FACT_AVAILABILITY,
    FACT_PRICE,
    FACT_STAY_RULE,
    FACTS_OF_TYPE,
    FEE_BASES,
    FEE_BASIS_INDEX,
    KIND_INDEX,
    KINDS,
    NO_PRICE,
    PERCENT_SCALE,
    RATE_DTYPE,
    AvailabilityEvent,
    Delist,
    DelistEvent,
    Event,
    Fee,
    FeeEvent,
    Link,
    LinkEvent,
    Listing,
    ListingEvent,
    PriceEvent,
    RateEvent,
    StayRuleEvent,
    listing_key,
)

MAX_NIGHTS_PER_EVENT = 550
MAX_MIN_NIGHTS = 1125  # Airbnb's own upper bound for a minimum stay
MAX_GUESTS = 500  # a whole hostel or villa compound, not a typo of 50000
SOURCE_PATTERN = re.compile(r"[a-z0-9_-]{1,32}")
DECODE_PART = 1000  # events decoded in one go: ~3 ms
INVALID = -2  # a column value that failed its check (prices are >= 0, NO_PRICE is -1)
MAX_TEXT = {"name": 500, "city": 200, "url": 2048, "property_id": 128, "address": 512, "label": 200}
MAX_PERCENT = Decimal(100)  # of the nights' sum: a fee above the nights themselves is a typo
EVENT_TYPES = ("listing", "rate", "price", "availability", "stay_rule", "delist", "fee", "link")
FactEvent = PriceEvent | AvailabilityEvent | StayRuleEvent



class WireRate(msgspec.Struct, tag="rate", tag_field="type", gc=False):
    """A `rate` event as a request body is decoded: `RateEvent` with its price still as sent.

    A `Decimal` costs ~1 us to build and as much again to hash (the price cache's key), for
    every event; a price's text is one string, and the same few texts repeat all day. A price
    that is a JSON number with a fraction does not decode as this: its part is decoded as
    `RateEvent`s (exact `Decimal`s) instead."""

    source: str
    listing_id: str | int
    start: dt.date
    end: dt.date
    currency: str
    changed_at: dt.datetime
    price: str | int | None = None
    available: bool = True
    min_nights: int = 1


WireEvent = (ListingEvent | WireRate | PriceEvent | AvailabilityEvent | StayRuleEvent | DelistEvent | FeeEvent
             | LinkEvent)
AnyRate = RateEvent | WireRate
_wire_events = msgspec.json.Decoder(list[WireEvent])
_wire_event = msgspec.json.Decoder(WireEvent)
_events = msgspec.json.Decoder(list[Event])
_event = msgspec.json.Decoder(Event)
_raw_list = msgspec.json.Decoder(list[msgspec.Raw])
_any = msgspec.json.Decoder()


class BodyError(ValueError):
    """The body as a whole cannot be parsed (`400`)."""


class TooManyEvents(BodyError):
    """More events than one request may carry (`413`)."""


@dataclass
class Parsed:
    """A body's valid events as the writer wants them, plus its rejections."""

    keys: list[str] = field(default_factory=list)
    rates: np.ndarray = field(default_factory=lambda: np.empty(0, RATE_DTYPE))
    listings: list[Listing] = field(default_factory=list)
    delists: list[Delist] = field(default_factory=list)
    fees: list[Fee] = field(default_factory=list)
    links: list[Link] = field(default_factory=list)
    rejected: list[dict[str, object]] = field(default_factory=list)
    newest_changed_at: dict[str, int] = field(default_factory=dict)
    accepted_by_source: dict[tuple[str, str], int] = field(default_factory=dict)
    rejected_by_source: dict[tuple[str, str], int] = field(default_factory=dict)  # (source, field)
    rejection_examples: dict[tuple[str, str], str] = field(default_factory=dict)  # the first of each label
    rate_positions: list[int] = field(default_factory=list)  # of `rates`, among the rate events

    def reject(self, index: int, event: object, error: Rejected) -> None:
        self.rejected.append({"index": index, "error": str(error)})
        reason = str(error).split(":", 1)[0]
        reason = reason if reason.isidentifier() and len(reason) <= 20 else "other"
        label = (_source_label(event), reason)
        self.rejected_by_source[label] = self.rejected_by_source.get(label, 0) + 1
        self.rejection_examples.setdefault(label, f"index {index}: {error}")

    def count(self, source: str, kind: str, newest: int, events: int) -> None:
        if newest > self.newest_changed_at.get(source, -1):
            self.newest_changed_at[source] = newest
        self.accepted_by_source[source, kind] = self.accepted_by_source.get((source, kind), 0) + events

    def take_rates(self, good: np.ndarray, keys: list[str | None], start: np.ndarray, nights: np.ndarray,
                   changed_at: np.ndarray, price: np.ndarray, currency: np.ndarray, min_nights: np.ndarray,
                   available: np.ndarray) -> None:
        """The accepted rate events (positions `good`, sorted; `available` already theirs) as
        `RATE_DTYPE` rows, their keys numbered in order of first use, counted per source: the
        NDJSON and the columns paths end alike."""
        self.rate_positions = good.tolist()
        key_index: dict[str, int] = {}
        slots = [key_index.setdefault(keys[i], len(key_index)) for i in self.rate_positions]  # type: ignore[arg-type]  # str keys at good rows
        self.keys = list(key_index)
        rates = np.empty(len(good), RATE_DTYPE)
        rates["key"] = slots
        rates["start"] = start[good]
        rates["nights"] = nights[good]
        rates["changed_at"] = changed_at[good]
        rates["price"] = price[good]
        rates["currency"] = currency[good]
        rates["min_nights"] = min_nights[good]
        rates["available"] = available
        rates["facts"] = ALL_FACTS
        self.rates = rates
        named = {key.partition("\x00")[0] for key in self.keys}
        if len(named) == 1:  # a feed's slice: one source, counted without a column of names
            self.count(named.pop(), "rate", int(rates["changed_at"].max()), len(rates))
        elif named:
            sources = np.array([key.partition("\x00")[0] for key in self.keys])[rates["key"]]
            for source in np.unique(sources).tolist():
                mine = sources == source
                self.count(source, "rate", int(rates["changed_at"][mine].max()), int(mine.sum()))

    def extend(self, later: Parsed) -> None:
        """Append the result of validating the next slice of the same request."""
        if len(later.rates):
            slots = {key: i for i, key in enumerate(self.keys)}
            remap = np.array([slots.setdefault(key, len(slots)) for key in later.keys], dtype=np.int32)
            self.keys = list(slots)
            rates = later.rates.copy()
            rates["key"] = remap[rates["key"]]
            self.rates = np.concatenate([self.rates, rates])
        self.listings += later.listings
        self.delists += later.delists
        self.fees += later.fees
        self.links += later.links
        self.rejected += later.rejected
        for source, newest in later.newest_changed_at.items():
            self.newest_changed_at[source] = max(newest, self.newest_changed_at.get(source, -1))
        for label, count in later.accepted_by_source.items():
            self.accepted_by_source[label] = self.accepted_by_source.get(label, 0) + count
        for label, count in later.rejected_by_source.items():
            self.rejected_by_source[label] = self.rejected_by_source.get(label, 0) + count
        for label, example in later.rejection_examples.items():
            self.rejection_examples.setdefault(label, example)

    @property
    def accepted(self) -> int:
        return len(self.rates) + len(self.listings) + len(self.delists) + len(self.fees) + len(self.links)

    def rate_columns(self) -> np.ndarray:
        return self.rates


def _windows(body: bytes, size: int = 1 << 20) -> Iterator[bytes]:
    """`body` in pieces of about `size` bytes, each cut after a newline (one line may be longer)."""
    start = 0
    while start < len(body):
        cut = body.find(b"\n", start + size)
        end = len(body) if cut < 0 else cut + 1
        yield body[start:end]
        start = end


class Validator:
    """Validates events against the configured horizon, ceilings and the FX table."""

    def __init__(self, fx: Fx, earliest_night: dt.date, horizon_days: int, max_night_price_eur: int):
        self.earliest_day = epoch_day(earliest_night)
        self.horizon_days = horizon_days
        self._prices: dict[tuple[str, int], int] = {}  # prices repeat: skip the Decimal work
        self.set_fx(fx, max_night_price_eur)

    def set_fx(self, fx: Fx, max_night_price_eur: int) -> None:
        """Ceilings follow the FX table: 100,000 EUR is a different number of yen or dong."""
        self._prices = {}
        eur = CURRENCY_INDEX["EUR"]
        self.ceiling_minor = [
            fx.convert_minor(max_night_price_eur * 100, eur, index) if index in fx.rates
            else AMOUNT_LIMIT  # no rate to judge by: only guard the storage
            for index in range(len(CURRENCIES))
        ]

    def parse(self, body: bytes, ndjson: bool, max_events: int) -> Parsed:
        """All events of a body, validated. Raises `BodyError` when the body cannot be read."""
        return self.validate(self.decode(body, ndjson, max_events))

    def decode(self, body: bytes, ndjson: bool, max_events: int) -> list[object]:
        """A body's events, each a typed struct or the `Rejected` saying why it is not one."""
        return [event for part in self.decode_parts(body, ndjson, max_events) for event in part]

    def decode_parts(self, body: bytes, ndjson: bool, max_events: int) -> Iterator[list[object]]:
        """`decode`, `DECODE_PART` events at a time, so that a caller can let other requests run
        between parts (a 16 MB body is ~0.4 s of decoding); parts may be empty. Splitting the
        body into events is one C pass (an array) or a split a megabyte at a time (NDJSON); the
        count is checked before any event is decoded, so a body of millions of `{}` is refused
        at once. A part decodes in one msgspec call; only a part with a bad event falls back to
        decoding its events one by one."""
        if ndjson:
            lines: list[bytes] = []
            windows = _windows(body)
            for window in windows:
                lines += filter(bytes.strip, window.split(b"\n"))
                if len(lines) > max_events:
                    count = len(lines) + sum(len(list(filter(bytes.strip, rest.split(b"\n")))) for rest in windows)
                    raise TooManyEvents(f"body has {count} events; the limit is {max_events} a request")
                yield []  # a point where the caller may let other work run
        else:
            lines = _array_items(body, max_events)
        for first in range(0, len(lines), DECODE_PART):
            part = lines[first:first + DECODE_PART]
            joined = b"[" + b",".join(part) + b"]"
            try:
                yield list(_wire_events.decode(joined))
                continue
            except (msgspec.ValidationError, msgspec.DecodeError, RecursionError):
                pass
            try:  # prices that are JSON numbers with a fraction: exact as `Decimal`s only
                yield list(_events.decode(joined))
            except (msgspec.ValidationError, msgspec.DecodeError, RecursionError):
                yield [_decode_line(line) for line in part]

    def validate(self, events: Sequence[object], first_index: int = 0) -> Parsed:
        """Events decoded from any source (or the `Rejected` of one that did not decode);
        `first_index` is the index of `events[0]` in its request, for rejections."""
        today = epoch_day(dt.date.today())
        now = dt.datetime.now(dt.UTC)
        parsed = Parsed()
        rate_positions = [i for i, event in enumerate(events, first_index) if type(event) in _RATE_TYPES]
        if rate_positions:
            rate_events = [events[i - first_index] for i in rate_positions]
            self._rates(parsed, rate_events, rate_positions, today, now)  # type: ignore[arg-type]  # all RateEvent, by rate_positions
        if len(rate_positions) < len(events):
            rates = set(rate_positions)
            facts: list[tuple[int, str, tuple[int, ...]]] = []
            for index, event in enumerate(events, first_index):
                if index in rates:
                    continue
                if isinstance(event, FactEvent):
                    try:
                        facts.append((index, _key(event), self._fact(event, today, now)))
                    except Rejected as exc:
                        parsed.reject(index, event, exc)
                else:
                    self._other(parsed, index, event, now)
            if facts:
                self._add_facts(parsed, facts, rate_positions)
            parsed.rejected.sort(key=lambda rejection: rejection["index"])  # type: ignore[arg-type,return-value]  # index is an int
        return parsed

    def _add_facts(self, parsed: Parsed, facts: list[tuple[int, str, tuple[int, ...]]],
                   rate_positions: list[int]) -> None:
        """One-fact events as rows beside the request's rates, all in request order: at equal
        changed_at the later event of a request wins, whatever its type."""
        slots = {key: i for i, key in enumerate(parsed.keys)}
        rows = np.empty(len(facts), RATE_DTYPE)
        for i, (_, key, values) in enumerate(facts):
            rows[i] = (slots.setdefault(key, len(slots)), *values)
        parsed.keys = list(slots)
        positions = np.array([rate_positions[i] for i in parsed.rate_positions] + [f[0] for f in facts])
        combined = np.concatenate([parsed.rates, rows])
        parsed.rates = combined[np.argsort(positions, kind="stable")]
        sources = np.array([key.partition("\x00")[0] for key in parsed.keys])[rows["key"]]
        for source, kind in set(zip(sources.tolist(), (_FACT_KIND[int(f)] for f in rows["facts"]), strict=True)):
            mine = (sources == source) & (rows["facts"] == FACTS_OF_TYPE[kind])
            parsed.count(source, kind, int(rows["changed_at"][mine].max()), int(mine.sum()))

    def rate_row(self, event: AnyRate, today: int, now: dt.datetime) -> tuple[str, tuple[int, ...]]:
        """One rate event's key and row (start, nights, changed_at, price, currency, min_nights,
        available), or the `Rejected` saying why: what whole-column checks fall back to for the
        events they refuse (`_rates`, `columns.validate`), so both say the same."""
        return _key(event), self._rate(event, today, now)

    def price_minor(self, price: str, currency: int) -> int:
        """Minor units of a price text in a currency (cached), or `Rejected` saying why."""
        return self._price(price, currency)

    def _fact(self, event: FactEvent, today: int, now: dt.datetime) -> tuple[int, ...]:
        """A one-fact event as the row columns after `key`: start, nights, changed_at, price,
        currency, min_nights, available, facts (the columns of facts it does not set: 0, price -1)."""
        start, nights = self._span(event.start, event.end, today)
        price, currency, min_nights, available = NO_PRICE, 0, 0, 0
        if isinstance(event, PriceEvent):
            currency = self._currency(event.currency)
            price = self._price(event.price, currency)
            facts = FACT_PRICE
        elif isinstance(event, AvailabilityEvent):
            available, facts = int(event.available), FACT_AVAILABILITY
        else:
            min_nights, facts = self._min_nights(event.min_nights), FACT_STAY_RULE
        changed_at = _changed_at(event.changed_at, now)
        return (start, nights, changed_at, price, currency, min_nights, available, facts)

    def _rates(self, parsed: Parsed, events: list[AnyRate], positions: list[int], today: int,
               now: dt.datetime) -> None:
        """Rate events column by column: the Python work per event is a few list items.

        Any event that fails a check is run again through `_rate` alone, which says why."""
        n = len(events)
        earliest, latest = bounds.changed_at_window(now)
        keys = _keys_or_none(events)
        start = np.fromiter([e.start.toordinal() for e in events], np.int64, n) - EPOCH_ORDINAL
        nights = np.fromiter([e.end.toordinal() for e in events], np.int64, n) - EPOCH_ORDINAL - start
        currency = np.fromiter([CURRENCY_INDEX.get(e.currency, -1) for e in events], np.int64, n)
        price = np.fromiter(
            [self._minor_or_invalid(e.price, e.available, c) for e, c in zip(events, currency.tolist(), strict=True)],
            np.int64,
            n,
        )
        # Out-of-range values (even beyond int64) become 0: flagged bad, `_rate` says why.
        min_nights = np.fromiter(
            [m if 0 < m <= MAX_MIN_NIGHTS else 0 for m in (e.min_nights for e in events)], np.int64, n)
        changed_at = np.fromiter([_micros_or_invalid(e.changed_at) for e in events], np.int64, n)
        bad = (
            (nights <= 0) | (nights > MAX_NIGHTS_PER_EVENT) | (start < self.earliest_day)
            | (start + nights > today + self.horizon_days + 1) | (currency < 0) | (price == INVALID)
            | (min_nights < 1) | (min_nights > MAX_MIN_NIGHTS) | (changed_at == INVALID)
            | (changed_at < earliest) | (changed_at > latest) | np.fromiter([k is None for k in keys], bool, n)
        )
        good = np.flatnonzero(~bad)
        for i in np.flatnonzero(bad).tolist():
            event = events[i]
            try:
                key = _key(event)
                row = self._rate(event, today, now)
            except Rejected as exc:
                parsed.reject(positions[i], event, exc)
                continue
            # Normalizable (e.g. ' eur ' or an upper-case source): accepted after all.
            keys[i], start[i], nights[i], changed_at[i], price[i], currency[i], min_nights[i] = (key, *row[:6])
            good = np.append(good, i)
        good.sort()
        available = np.fromiter([events[i].available for i in good.tolist()], bool, len(good))
        parsed.take_rates(good, keys, start, nights, changed_at, price, currency, min_nights, available)

    def _other(self, parsed: Parsed, index: int, event: object, now: dt.datetime) -> None:
        try:
            if isinstance(event, Rejected):
                raise event
            if isinstance(event, ListingEvent):
                listing = self._listing(event, now)
                parsed.listings.append(listing)
                key, changed_at, kind = listing.key, listing.changed_at, "listing"
            elif isinstance(event, FeeEvent):
                fee = self._fee(event, now)
                parsed.fees.append(fee)
                key, changed_at, kind = fee.key, fee.changed_at, "fee"
            elif isinstance(event, LinkEvent):
                link = _link(event, now)
                parsed.links.append(link)
                key, changed_at, kind = _key(event), link.changed_at, "link"
            else:
                assert isinstance(event, DelistEvent)
                delist = Delist(_key(event), _changed_at(event.changed_at, now))
                parsed.delists.append(delist)
                key, changed_at, kind = delist.key, delist.changed_at, "delist"
        except Rejected as exc:
            parsed.reject(index, event, exc)
            return
        parsed.count(key.partition("\x00")[0], kind, changed_at, 1)

    def _fee(self, event: FeeEvent, now: dt.datetime) -> Fee:
        """A fee, or its removal (`amount` null and no `percent`): a tombstone that keeps its
        changed_at, so an older version of the fee arriving later stays removed."""
        key = _key(event)
        fee_id = unicodedata.normalize("NFC", str(event.fee_id).strip())
        if not 1 <= len(fee_id) <= 128 or not fee_id.isprintable():
            raise Rejected(f"fee_id: {str(event.fee_id)[:140]!r} is invalid; expected 1 to 128 printable characters")
        changed_at = _changed_at(event.changed_at, now)
        if event.amount is None and event.percent is None:
            return Fee(key, fee_id, "", 0, 0, 0, False, ALWAYS_FROM, ALWAYS_UNTIL, changed_at, True)
        basis = FEE_BASIS_INDEX.get((event.basis or "").strip().lower(), -1)
        if basis < 0:
            shown = "missing" if event.basis is None else repr(event.basis)
            raise Rejected(f"basis: {shown}; expected one of {', '.join(FEE_BASES)}")
        label = _text("label", event.label)
        if not label:
            raise Rejected("label: missing; expected the fee's name as the traveler sees it (like 'Cleaning fee')")
        if FEE_BASES[basis] == "percent":
            if event.amount is not None:
                raise Rejected(f"amount: '{event.amount}' given with basis 'percent'; expected percent alone")
            if event.percent is None:
                raise Rejected("percent: missing; expected a decimal string like '12.5' for basis 'percent'")
            amount, currency = self._percent(event.percent), 0
        else:
            if event.percent is not None:
                raise Rejected(
                    f"percent: '{event.percent}' given with basis '{FEE_BASES[basis]}'; "
                    "expected amount and currency (or basis 'percent')")
            if event.amount is None:
                raise Rejected(f"amount: missing; expected an amount >= 0 for basis '{FEE_BASES[basis]}'")
            if event.currency is None:
                raise Rejected("currency: missing; expected the ISO 4217 code of the amount")
            currency = self._currency(event.currency)
            amount = self._checked_price(event.amount, currency, "amount")
        start = ALWAYS_FROM if event.start is None else event.start.toordinal() - EPOCH_ORDINAL
        end = ALWAYS_UNTIL if event.end is None else event.end.toordinal() - EPOCH_ORDINAL
        if end <= start:
            raise Rejected(f"end: '{event.end}' is not after start '{event.start}'; expected end > start")
        return Fee(key, fee_id, label, basis, amount, currency, event.mandatory, start, end, changed_at, False)

    @staticmethod
    def _percent(percent: Decimal) -> int:
        if not percent.is_finite() or not 0 <= percent <= MAX_PERCENT:
            raise Rejected(f"percent: '{percent}' is out of range; expected a decimal from 0 to {MAX_PERCENT}")
        millionths = percent * PERCENT_SCALE
        if millionths != millionths.to_integral_value():
            raise Rejected(f"percent: '{percent}' has more than 6 decimals; expected at most 6")
        return int(millionths)

    def _minor_or_invalid(self, price: Decimal | str | int | None, available: bool, currency: int) -> int:
        if price is None:
            return INVALID if available else NO_PRICE
        if currency < 0:
            return INVALID
        try:
            return self._price(price, currency)
        except Rejected:
            return INVALID

    def _rate(self, event: AnyRate, today: int, now: dt.datetime) -> tuple[int, int, int, int, int, int, int]:
        start, nights = self._span(event.start, event.end, today)
        currency = self._currency(event.currency)
        if event.price is None:
            if event.available:
                raise Rejected("price: missing; expected a price >= 0 unless available is false")
            price = NO_PRICE
        else:
            price = self._price(event.price, currency)
        min_nights = self._min_nights(event.min_nights)
        changed_at = _changed_at(event.changed_at, now)
        return (start, nights, changed_at, price, currency, min_nights, event.available)

    def _span(self, first: dt.date, after: dt.date, today: int) -> tuple[int, int]:
        """(start day, nights) of `start` <= night < `end`, within the kept nights and horizon."""
        start = first.toordinal() - EPOCH_ORDINAL
        end = after.toordinal() - EPOCH_ORDINAL
        nights = end - start
        if nights <= 0:
            raise Rejected(f"end: '{after}' is not after start '{first}'; expected end > start")
        if nights > MAX_NIGHTS_PER_EVENT:
            raise Rejected(
                f"end: '{after}' is {nights} nights after start '{first}'; "
                f"expected at most {MAX_NIGHTS_PER_EVENT}"
            )
        if start < self.earliest_day:
            raise Rejected(
                f"start: '{first}' is before the earliest night kept "
                f"({day_from_epoch(self.earliest_day)})"
            )
        if end > today + self.horizon_days + 1:
            raise Rejected(
                f"end: '{after}' is past the horizon of {self.horizon_days} days ahead "
                f"(last night {day_from_epoch(today + self.horizon_days)})"
            )
        return start, nights

    @staticmethod
    def _currency(code: str) -> int:
        currency = CURRENCY_INDEX.get(code, -1)
        if currency < 0:
            currency = CURRENCY_INDEX.get(code.strip().upper(), -1)
        if currency < 0:
            raise Rejected(f"currency: '{code}' is not an ISO 4217 currency code")
        return currency

    @staticmethod
    def _min_nights(value: int) -> int:
        if not 1 <= value <= MAX_MIN_NIGHTS:
            raise Rejected(f"min_nights: {value} is out of range; expected 1 to {MAX_MIN_NIGHTS}")
        return value

    def _price(self, price: Decimal | str | int, currency: int) -> int:
        """Minor units of a price; cached by its text (a `Decimal`'s hash costs ~1 us, the
        `str` of it a tenth of that, and the texts of a feed's prices repeat)."""
        text = price if type(price) is str else str(price)
        cached = self._prices.get((text, currency))
        if cached is not None:
            return cached
        value = self._checked_price(_decimal(price), currency)
        if len(self._prices) > 100_000:
            self._prices.clear()
        self._prices[text, currency] = value
        return value

    def _checked_price(self, price: Decimal, currency: int, name: str = "price") -> int:
        if not price.is_finite():
            raise Rejected(f"{name}: '{price}' is not a finite number")
        if price < 0:
            expected = "a price" if name == "price" else "an amount"
            raise Rejected(f"{name}: '{price}' is negative; expected {expected} >= 0")
        exponent = EXPONENT[currency]
        if price and price.adjusted() > 15:  # above every ceiling; int() would take minutes
            raise Rejected(
                f"{name}: '{price}' {CURRENCIES[currency]} is above the ceiling of "
                f"{Decimal(self.ceiling_minor[currency]).scaleb(-exponent)} a night"
            )
        # quantize cannot fail at <= 20 digits; scaleb alone rounds past 28 digits or underflows
        quantized = price.quantize(Decimal(1).scaleb(-exponent))
        if quantized != price:
            raise Rejected(
                f"{name}: '{price}' has more decimals than {CURRENCIES[currency]} allows "
                f"({exponent})"
            )
        value = int(quantized.scaleb(exponent))
        if value > self.ceiling_minor[currency]:
            raise Rejected(
                f"{name}: '{price}' {CURRENCIES[currency]} is above the ceiling of "
                f"{Decimal(self.ceiling_minor[currency]).scaleb(-exponent)} a night"
            )
        return value

    def _listing(self, event: ListingEvent, now: dt.datetime) -> Listing:
        kind = KIND_INDEX.get(event.kind.strip().lower(), -1)
        if kind < 0:
            raise Rejected(f"kind: '{event.kind}' is not one of {', '.join(KINDS)}")
        bounds.coordinate("lat", event.lat, bounds.LAT)
        bounds.coordinate("lon", event.lon, bounds.LON)
        if not 1 <= event.max_guests <= MAX_GUESTS:
            raise Rejected(f"max_guests: {event.max_guests} is out of range; expected 1 to {MAX_GUESTS}")
        if event.bedrooms is not None and not 0 <= event.bedrooms <= 100:
            raise Rejected(f"bedrooms: {event.bedrooms} is out of range; expected 0 to 100")
        country = None
        if event.country is not None:
            country = event.country.strip().upper()
            if country not in COUNTRIES:
                raise Rejected(f"country: '{event.country}' is not an ISO 3166-1 alpha-2 code")
        url = _text("url", event.url)
        if url is not None and not url.startswith(("https://", "http://")):
            raise Rejected(f"url: '{url[:100]}' is not an http(s) URL")
        name = _text("name", event.name)
        if not name:
            raise Rejected("name: '' is empty; expected a name")
        property_id = event.property_id
        return Listing(
            key=_key(event),
            name=name,
            kind=kind,
            lat=event.lat,
            lon=event.lon,
            max_guests=event.max_guests,
            changed_at=_changed_at(event.changed_at, now),
            property_id=_text("property_id", None if property_id is None else str(property_id)),
            city=_text("city", event.city),
            country=country,
            bedrooms=event.bedrooms,
            url=url,
            address=_text("address", event.address),
        )


def _link(event: LinkEvent, now: dt.datetime) -> Link:
    """The pair in key order (a link is symmetric); never a listing with itself."""
    key = _key(event)
    try:
        other = _normalized_key(_Other(event.other_source, event.other_listing_id))
    except Rejected as exc:
        raise Rejected(f"other_{exc}") from None
    if other == key:
        raise Rejected(
            f"other_listing_id: {str(event.other_listing_id)!r} of source '{event.other_source}' is the "
            "listing itself; expected another listing"
        )
    changed_at = _changed_at(event.changed_at, now)
    first, second = (key, other) if key < other else (other, key)
    return Link(first, second, event.same, changed_at)


class _Other(msgspec.Struct):
    """The other listing of a link, shaped like an event for `_normalized_key`."""

    source: str
    listing_id: str | int


def _array_items(body: bytes, max_events: int) -> list[bytes]:
    """The items of a JSON array body, undecoded (`BodyError` if it is not an array)."""
    try:
        raws = _raw_list.decode(body)
        if len(raws) > max_events:
            raise TooManyEvents(f"body has {len(raws)} events; the limit is {max_events} a request")
        return [bytes(raw) for raw in raws]
    except msgspec.ValidationError:
        raise BodyError("body is not a JSON array of event objects") from None
    except msgspec.DecodeError as exc:
        raise BodyError(f"body is not a JSON array of event objects: {exc}") from None
    except RecursionError:
        raise BodyError("body nests arrays or objects too deeply; expected a JSON array of flat event "
                        "objects") from None


def _decode_event(line: bytes) -> object:
    """One event, or the `Rejected` that says what is wrong with it."""
    try:
        return _event.decode(line)
    except msgspec.ValidationError as exc:  # a subclass of DecodeError: catch it first
        return Rejected(_explain(exc, line))
    except msgspec.DecodeError as exc:
        return Rejected(f"event is not valid JSON: {exc}")
    except RecursionError:
        return Rejected("event: nests arrays or objects too deeply; expected a flat JSON object with a 'type'")


def _decode_line(line: bytes) -> object:
    """One event of a part that did not decode as a whole, decoded as the whole parts are."""
    try:
        return _wire_event.decode(line)
    except (msgspec.ValidationError, msgspec.DecodeError, RecursionError):
        return _decode_event(line)


def _decimal(price: Decimal | str | int) -> Decimal:
    """A price as sent, exact. `Decimal` alone would take digit group underscores and any
    script's digits ('1_0', '١٢'): a price is a JSON number or a decimal string, so not those."""
    if type(price) is not str:
        return Decimal(price)
    if not price.isascii() or "_" in price:
        raise Rejected(f"price: {price!r} is not a decimal number; expected ASCII digits with an optional '.', "
                       "like '129.00'")
    try:
        return Decimal(price)
    except InvalidOperation:
        raise Rejected(f"price: {price!r} is not a decimal number; expected one like '129.00'") from None


def _explain(exc: msgspec.ValidationError, line: bytes) -> str:
    """msgspec's message with the field named first and the offending value added."""
    message = str(exc)
    missing = re.search(r"missing required field `(\w+)`", message)
    if missing:
        return f"{missing.group(1)}: missing; expected a value (required field)"
    match = re.search(r" - at `\$(?:\.(\w+))?", message)
    if not match:
        return f"event: {message[0].lower()}{message[1:]}; expected a JSON object with a 'type'"
    what = message[: match.start()]
    name = match.group(1)
    if name is None:
        return f"event: {what}; expected a JSON object with a 'type'"
    try:
        document = _any.decode(line)
        value = document.get(name) if isinstance(document, dict) else None
    except (msgspec.DecodeError, RecursionError):
        value = None
    if name == "type":
        return f"type: {value!r} is not one of {', '.join(repr(name) for name in EVENT_TYPES)}"
    shown = "missing" if value is None and "required" in what.lower() else f"{value!r}"
    return f"{name}: {shown}; {what[0].lower()}{what[1:]}"


_FACT_KIND = {fact: kind for kind, fact in FACTS_OF_TYPE.items() if kind != "rate"}
_RATE_TYPES = (RateEvent, WireRate)
_keys: dict[tuple[str, str | int], str] = {}


def _key(event: AnyRate | FactEvent | ListingEvent | DelistEvent | FeeEvent | LinkEvent) -> str:
    """The normalized key; feeds repeat the same listings, so normalization is cached."""
    raw = (event.source, event.listing_id)
    key = _keys.get(raw)
    if key is None:
        key = _normalized_key(event)
        if len(_keys) > 1_000_000:
            _keys.clear()
        _keys[raw] = key
    return key


_plain_ids: dict[str, dict[str | int, str]] = {}  # source -> listing_id -> key, pairs that need no normalizing
MAX_CACHED_IDS = 1_000_000  # a source's cache is emptied past this (like `_keys`)...
MAX_CACHED_SOURCES = 10_000  # ...and all of them past this many sources


def _keys_or_none(events: list[AnyRate]) -> list[str | None]:
    """Each event's key when its pair needs no normalizing, else None (its own checks then
    normalize it or say why not). A slice usually holds one source's events: then one dict
    lookup of the id an event (a (source, id) tuple cost twice as much: 12% of a worker)."""
    sources = {event.source for event in events}
    if len(sources) == 1:
        known = _plain_ids.get(next(iter(sources)), {}).get
        keys: list[str | None] = [known(event.listing_id) for event in events]
    else:
        keys = [_plain_ids.get(event.source, {}).get(event.listing_id) for event in events]
    if None in keys:
        for i, key in enumerate(keys):
            if key is None:
                keys[i] = _plain_key(events[i].source, events[i].listing_id)
    return keys


def _plain_key(source: str, listing_id: str | int) -> str | None:
    if SOURCE_PATTERN.fullmatch(source) and isinstance(listing_id, str) and 1 <= len(listing_id) <= 128 \
            and listing_id.isprintable() and listing_id.isascii() and listing_id == listing_id.strip():
        if source not in _plain_ids and len(_plain_ids) >= MAX_CACHED_SOURCES:
            _plain_ids.clear()
        ids = _plain_ids.setdefault(source, {})
        if len(ids) >= MAX_CACHED_IDS:
            ids.clear()
        key = ids[listing_id] = listing_key(source, listing_id)
        return key
    return None


def _micros_or_invalid(moment: dt.datetime) -> int:
    if moment.tzinfo is None:
        return INVALID
    return (moment - EPOCH) // MICROSECOND


def _normalized_key(event: AnyRate | FactEvent | ListingEvent | DelistEvent | FeeEvent | LinkEvent | _Other) -> str:
    source = event.source.strip().lower()
    if not SOURCE_PATTERN.fullmatch(source):
        raise Rejected(f"source: '{event.source}' is invalid; expected [a-z0-9_-]{{1,32}}")
    listing_id = unicodedata.normalize("NFC", str(event.listing_id).strip())
    if not 1 <= len(listing_id) <= 128 or not listing_id.isprintable():
        raise Rejected(
            f"listing_id: {str(event.listing_id)[:140]!r} is invalid; expected 1 to 128 "
            "printable characters"
        )
    return listing_key(source, listing_id)


def _source_label(event: object) -> str:
    """A rejected event's source for metrics: only a valid one, so labels stay few."""
    source = getattr(event, "source", None)
    if isinstance(source, str) and SOURCE_PATTERN.fullmatch(source.strip().lower()):
        return source.strip().lower()
    return "invalid"


def _changed_at(moment: dt.datetime, now: dt.datetime) -> int:
    return bounds.changed_at(moment, now)


def _text(name: str, value: str | None) -> str | None:
    if value is None:
        return None
    text = unicodedata.normalize("NFC", value.strip())
    if len(text) > MAX_TEXT[name]:
        raise Rejected(f"{name}: '{text[:40]}...' is {len(text)} characters; expected at most {MAX_TEXT[name]}")
    return text or None
