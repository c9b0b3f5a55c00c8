"""Search: every unit in an area free for a whole stay, with its total, ranked, in pages.

A result is a searchable listing (described, not delisted) inside the area whose `max_guests`
fits, of one of the kinds asked, every night of the stay available and priced (its availability
and price facts known, the one true, the other a price) and a check-in night whose `min_nights`
allows the stay's length (a night without a stay rule allows any).

Money is exact. A stay's total in a currency T: the nights are summed per currency, each sum is
converted to T at the FX table's rates (divided by its rate, multiplied by T's, as
`Fx.convert_minor` does; a sum already in T is not converted), and the result is rounded once,
half-even, to T's minor unit. A stay priced in one currency thus shows
`Fx.convert_minor(sum of nights)`. The listing's own currency is its check-in night's; each night
of the breakdown is converted on its own, so nights may add up to a few minor units more or less
than the total.

Ranking is in the `currency` asked, else in the FX table's base currency (`ranked_in` says which;
`min_price`/`max_price` are in it too), on exact totals rounded to its minor unit:
`total` by (total, distance, row), `nightly` by (nightly average, total, distance, row) and
`distance` by (distance, total, row); the row (arrival order of the listing) only breaks exact
ties. For one stay `nightly` orders exactly as `total` does (every result has the same number
of nights); it names the order a client shows nightly prices in, and will differ once a search
compares stays of several lengths. Distances are from the circle's centre, or the box's.
A stay in a currency the FX table has no rate for cannot be compared: it comes last when
neither `currency` nor a price bound is given, and is left out otherwise.

Places (`group=place`, the default): the units that match (everything above but the price
bounds) are the offers; each place's result is its cheapest offer (by total, then source and
listing_id), with every offer listed, and the price bounds, `deals=only`, ranking and paging
apply to that cheapest offer (`group=listing`: one result per unit). Every result and offer
carries its `deal` (`deals.py`), computed for every result when deals filter or rank
(`deals=only`, `sort=deal`: by percent below descending, no deal last, then total, distance),
else only for what the page shows. `sort=deal` ranks the percent as shown (tenths).

Areas: a circle (`lat`, `lon`, `radius_km`) or a box (`bbox`; `min_lon` > `max_lon` crosses the
antimeridian, as in GeoJSON); both work across the antimeridian and around the poles. Past
`INDEX_MIN_ROWS` listings a worker keeps a spatial index (`PlaceIndex`) so an area reads only
its own cells.

Pages use a keyset cursor: the keys of the last result, bound to the query that issued it (a
cursor used with other parameters is refused; `limit` may change between pages).

Everything up to the page of results is numpy over the shared columns; only the page that is
returned touches Python objects and SQLite (names, URLs).
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import math
import re
import threading
import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_EVEN, Decimal
from typing import Any, Protocol

import msgspec
import numpy as np

from staystream.dates import day_from_epoch, epoch_day, format_changed_at
from staystream.durable import sqlite
from staystream.events.fx import Fx
from staystream.events.money import (
    AMOUNT_LIMIT,
    CURRENCIES,
    CURRENCY_INDEX,
    DECIMAL_TEXT,
    EXPONENT,
    MoneyError,
    format_minor,
    parse_decimal,
)
from staystream.events.types import KIND_INDEX, KINDS
from staystream.memory.calendar import PAGE, directory_and_base, page_nights
from staystream.memory.shm import Counter, SharedArrays
from staystream.search import ceilings, deals, fees, neighbours
from staystream.search.view import Store, describe

EARTH_RADIUS_KM = 6371.0088
MAX_STAY_NIGHTS = 90
MAX_LIMIT = 200
DEFAULT_LIMIT = 20
DEFAULT_RADIUS_KM = 10.0
SORTS = ("total", "nightly", "distance", "deal")
GROUPS = ("place", "listing")
DEALS = ("all", "only")
PARAMETERS = (
    "lat", "lon", "radius_km", "bbox", "checkin", "checkout", "guests", "kind", "min_price",
    "max_price", "currency", "sort", "limit", "cursor", "group", "deals",
)
REPEATABLE = frozenset({"kind"})
UNRANKED = np.int64(2**62)  # the price key of a stay the FX table cannot convert: last
CURSOR_VERSION = 1
_WHOLE = re.compile(r"[+-]?[0-9]{1,9}")  # ASCII digits only: '\d' also takes '٣'


class QueryError(ValueError):
    """A search parameter is wrong; the message names it, its value and what was expected."""


@dataclass(frozen=True)
class Area:
    """Latitude band, one or two longitude intervals (two across the antimeridian), a centre."""

    min_lat: float
    max_lat: float
    lon_ranges: tuple[tuple[float, float], ...]
    center: tuple[float, float]  # (lat, lon): distances are measured from here
    radius_km: float | None  # a circle inside the box, or None for the box itself


@dataclass(frozen=True)
class Query:
    area: Area
    checkin: int  # days since 1970-01-01
    nights: int
    guests: int
    kinds: tuple[int, ...]
    min_price: Decimal | None  # in the ranking currency: `currency`, else the FX table's base
    max_price: Decimal | None
    currency: int | None  # None: shown in each listing's own currency, ranked in the FX base
    sort: str
    limit: int
    after: tuple[list[int | float], int] | None  # keys and row of the previous page's last result
    fingerprint: str  # what a cursor is bound to: every parameter but `limit` and `cursor`
    by_place: bool = True  # `group=place`: one result per place, by its cheapest offer
    deals_only: bool = False


class MultiParams(Protocol):
    """What `parse_query` needs of Starlette's `QueryParams`."""

    def get(self, key: str) -> str | None: ...
    def getlist(self, key: str) -> list[str]: ...
    def multi_items(self) -> list[tuple[str, str]]: ...


def parse_query(params: MultiParams, horizon_days: int) -> Query:
    counts: dict[str, int] = {}
    for name, _ in params.multi_items():
        if name not in PARAMETERS:
            raise QueryError(f"{name}: unknown parameter; expected some of {', '.join(PARAMETERS)}")
        counts[name] = counts.get(name, 0) + 1
        if counts[name] > 1 and name not in REPEATABLE:
            raise QueryError(f"{name}: given {counts[name]} times; expected once")

    def optional(name: str) -> str | None:
        """An optional parameter: an empty value (a blank form field) is the same as none."""
        text = params.get(name)
        return None if text is None or not text.strip() else text.strip()

    area = _area(params.get, optional)
    checkin = parse_date("checkin", params.get("checkin"))
    checkout = parse_date("checkout", params.get("checkout"))
    nights = (checkout - checkin).days
    if not 1 <= nights <= MAX_STAY_NIGHTS:
        raise QueryError(
            f"checkout: '{checkout}' is {nights} nights after checkin '{checkin}'; "
            f"expected 1 to {MAX_STAY_NIGHTS}"
        )
    last = dt.date.today() + dt.timedelta(days=horizon_days + 1)
    if checkout > last:
        raise QueryError(
            f"checkout: '{checkout}' is past the horizon of {horizon_days} days; expected at most {last}"
        )
    guests = parse_whole("guests", optional("guests") or "1", 1, 500)
    kinds: list[int] = []
    for text in params.getlist("kind"):
        for kind in filter(None, (k.strip().lower() for k in text.split(","))):
            if kind not in KIND_INDEX:
                raise QueryError(f"kind: '{kind}' is not one of {', '.join(KINDS)}")
            kinds.append(KIND_INDEX[kind])
    currency = None
    code = optional("currency")
    if code is not None:
        if code.upper() not in CURRENCY_INDEX:
            raise QueryError(
                f"currency: '{code}' is not an ISO 4217 code of a currency prices are in; expected a code like EUR"
            )
        currency = CURRENCY_INDEX[code.upper()]
    sort = optional("sort") or "total"
    _choice("sort", sort, SORTS)
    limit = parse_whole("limit", optional("limit") or str(DEFAULT_LIMIT), 1, MAX_LIMIT)
    group = _choice("group", optional("group") or "place", GROUPS)
    deals = _choice("deals", optional("deals") or "all", DEALS)
    min_price = _price("min_price", optional("min_price"))
    max_price = _price("max_price", optional("max_price"))
    if min_price is not None and max_price is not None and min_price > max_price:
        raise QueryError(f"min_price: '{min_price}' is above max_price '{max_price}'")
    kinds_key = tuple(sorted(set(kinds)))
    fingerprint = hashlib.blake2b(
        repr((
            area, epoch_day(checkin), nights, guests, kinds_key,
            None if min_price is None else str(min_price.normalize()),
            None if max_price is None else str(max_price.normalize()), currency, sort, group, deals,
        )).encode(),
        digest_size=8,
    ).hexdigest()
    return Query(
        area, epoch_day(checkin), nights, guests, kinds_key, min_price, max_price, currency, sort,
        limit, _cursor(optional("cursor"), fingerprint, len(_SORT_KEYS[sort])), fingerprint,
        group == "place", deals == "only",
    )


def search(store: Store, query: Query) -> dict[str, object]:
    fx = store.fx
    ranking = ranking_currency(fx, query.currency)
    found = find_stays(store.shared, fx, query, ranking)
    place = places_of(store.shared, found.rows)
    deals = _Deals(store, query, ranking, found)
    units = cheapest_per_place(store, place, found.total, found.rows) if query.by_place else np.arange(len(found.rows))
    units = units[in_price_bounds(found.total[units], query, ranking)]
    if query.deals_only or query.sort == "deal":
        deals.compute(units)
        if query.deals_only:
            units = units[deals.kind[units] != 0]
    rows, total = found.rows[units], found.total[units]
    nightly = np.where(total == UNRANKED, UNRANKED, _half_even_div(total, query.nights))
    keys = {"total": total, "nightly": nightly, "distance": found.distance[units]}
    if query.sort == "deal":
        keys["deal"] = deals.sort_key(units)
    sort_keys = [keys[name] for name in _SORT_KEYS[query.sort]]

    matches = len(rows)
    if query.after is not None:
        later = _after(sort_keys, rows, *query.after)
        rows, units = rows[later], units[later]
        sort_keys = [key[later] for key in sort_keys]
    order = _top(sort_keys, rows, query.limit)
    page = units[order]
    offers = np.flatnonzero(np.isin(place, place[page])) if query.by_place else page
    deals.compute(np.concatenate([page, offers]))
    results = _results(store, query, found, page, place, offers, deals)
    next_cursor = None
    if len(rows) > len(order) and len(order):
        last = order[-1]
        next_cursor = _encode_cursor(query.fingerprint, [key[last].item() for key in sort_keys], int(rows[last]))
    return {
        "results": results,
        "next_cursor": next_cursor,
        "matches": matches,
        "stay": {
            "checkin": day_from_epoch(query.checkin).isoformat(),
            "checkout": day_from_epoch(query.checkin + query.nights).isoformat(),
            "nights": query.nights,
        },
        "group": "place" if query.by_place else "listing",
        "sort": query.sort,
        "currency": None if query.currency is None else CURRENCIES[query.currency],
        "ranked_in": CURRENCIES[ranking],
        "fx": fx.label,
    }


def ranking_currency(fx: Fx, currency: int | None) -> int:
    """The currency totals are compared in: the one asked (it needs a rate), else the FX base."""
    if currency is not None and currency not in fx.rates:
        raise QueryError(
            f"currency: '{CURRENCIES[currency]}' has no rate in the FX table "
            f"'{fx.table.name}' of {fx.table.date}; expected one of {', '.join(sorted(fx.table.rates))}"
        )
    return currency if currency is not None else CURRENCY_INDEX[fx.table.base]


@dataclass(frozen=True)
class Found:
    """Every unit that matches a search before its price bounds: an offer, by position."""

    rows: np.ndarray
    distance: np.ndarray  # km from the area's centre
    entries: np.ndarray  # nights x units
    total: np.ndarray  # in the ranking currency, minor units; `UNRANKED` if it cannot be converted


def find_stays(shared: SharedArrays, fx: Fx, query: Query, ranking: int) -> Found:
    """The units in the area that fit the guests and kinds and are open for the whole stay."""
    rows = candidates(shared, query.area, query.guests, query.kinds)
    distance = None
    if query.area.radius_km is not None:
        distance = distance_km(shared["lat"][rows], shared["lon"][rows], *query.area.center)
        near = distance <= query.area.radius_km
        rows, distance = rows[near], distance[near]
    rows, kept, entries = _open_stays(shared, rows, query.checkin, query.nights)
    distance = (
        distance[kept] if distance is not None
        else distance_km(shared["lat"][rows], shared["lon"][rows], *query.area.center)
    )
    price = _fresh(shared, "entry_price", entries)[entries]
    currency = _fresh(shared, "entry_currency", entries)[entries]
    # `_open_stays` kept only stays whose every night is bookable (available and priced).
    single = (currency == currency[0]).all(axis=0)

    charges = fees.stay_charges(shared, rows, np.full(len(rows), query.checkin), query.nights, query.guests)
    total = night_totals(fx, price, currency, single, charges, ranking)
    ranked = total != UNRANKED
    # a stay in several currencies (nights or fees) needs rates for any total
    keep = ranked | (single & ~charges.foreign(currency[0]))
    if query.currency is not None or query.min_price is not None or query.max_price is not None:
        keep &= ranked
    return Found(rows[keep], distance[keep], entries[:, keep], total[keep])


def places_of(shared: SharedArrays, rows: np.ndarray) -> np.ndarray:
    """The place (the row standing for it) of each row."""
    return np.asarray(_fresh(shared, "place", rows)[rows])


def in_price_bounds(total: np.ndarray, query: Query, ranking: int) -> np.ndarray:
    keep = np.ones(total.shape, dtype=bool)
    scale = Decimal(10) ** EXPONENT[ranking]
    if query.min_price is not None:
        keep &= total >= int((query.min_price * scale).to_integral_value(ROUND_CEILING))
    if query.max_price is not None:
        keep &= total <= int((query.max_price * scale).to_integral_value(ROUND_FLOOR))
    return keep


_SORT_KEYS = {
    "total": ("total", "distance"),
    "nightly": ("nightly", "total", "distance"),
    "distance": ("distance", "total"),
    "deal": ("deal", "total", "distance"),
}


# -- places and deals --------------------------------------------------------------------------


def cheapest_per_place(store: Store, place: np.ndarray, total: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """The position of each place's cheapest offer: by total, then source and listing_id (read
    from SQLite only for the places whose cheapest total is shared by several offers)."""
    if not len(rows):
        return np.zeros(0, dtype=np.int64)
    # One sort by place (not by place, total and row), then each place's least total by segments.
    by_place = np.argsort(place)
    ordered = place[by_place]
    first = np.r_[True, ordered[1:] != ordered[:-1]]
    segment = np.cumsum(first) - 1
    ordered_total = total[by_place]
    at_min = ordered_total == np.minimum.reduceat(ordered_total, np.flatnonzero(first))[segment]
    tied = np.flatnonzero(at_min & (np.bincount(segment, weights=at_min) > 1)[segment])
    if len(tied):  # several offers at a place's least total: by (source, listing_id), then row
        at_min[tied] = False
        tied_rows = rows[by_place[tied]]
        order = np.lexsort((tied_rows, key_ranks(store, tied_rows), segment[tied]))
        kept = tied[order]
        at_min[kept[np.r_[True, segment[kept][1:] != segment[kept][:-1]]]] = True
    return np.asarray(by_place[at_min])


def key_ranks(store: Store, rows: np.ndarray) -> np.ndarray:
    """The rows' order by (source, listing_id): ranks among these rows only."""
    keys = sqlite.keys(store.connection, rows.tolist())
    ranked = sorted(set(keys.values()))
    rank = {key: i for i, key in enumerate(ranked)}
    return np.array([rank.get(keys.get(row, ("", "")), -1) for row in rows.tolist()], dtype=np.int64)


class _Deals:
    """The deal of each offer of a search (`deals.choose`), computed for the offers asked,
    once: all of them when deals filter or rank, else only those shown."""

    def __init__(self, store: Store, query: Query, ranking: int, found: Found) -> None:
        self.store, self.query, self.ranking, self.found = store, query, ranking, found
        self.kind = np.zeros(len(found.rows), dtype=np.int64)
        self.reference = np.full(len(found.rows), deals.NONE, dtype=np.int64)
        self.done = np.zeros(len(found.rows), dtype=bool)

    def compute(self, positions: np.ndarray) -> None:
        todo = np.unique(positions[~self.done[positions]])
        self.done[todo] = True
        todo = todo[self.found.total[todo] != UNRANKED]  # no comparable total, no deal
        if not len(todo):
            return
        rows, total = self.found.rows[todo], self.found.total[todo]
        similar = _similar_references(self.store, self.query, self.ranking, rows, self.found)
        query = self.query
        usual = np.full(len(todo), deals.NONE, dtype=np.int64)
        maybe = np.flatnonzero(~self._above_usual_ceiling(rows, total))
        if len(maybe):
            open_, totals, _ = window_totals(
                self.store.shared, self.store.fx, rows[maybe], query.checkin - deals.USUAL_DAYS,
                2 * deals.USUAL_DAYS + 1, query.nights, query.guests, self.ranking)
            usual[maybe] = deals.usual_references(open_, totals, int(UNRANKED))
        self.kind[todo], self.reference[todo] = deals.choose(total, similar, usual)

    def _above_usual_ceiling(self, rows: np.ndarray, total: np.ndarray) -> np.ndarray:
        """Which units cannot be a `less_than_usual` deal: without fees, whose total is above
        3/4 of the stay's nights at their listing's highest bookable price (`ceilings.py`), an
        upper bound of every usual total (rounding and float error inside the margin)."""
        shared = self.store.shared
        price, currency = ceilings.ceilings(shared).of(shared, rows)
        factor = self.store.fx.minor_factors(self.ranking)[currency.astype(np.intp)]
        bound = self.query.nights * price * factor * (1 + 1e-9) + 1  # NaN without a rate: never above
        share, whole = deals.DEAL_SHARE
        return np.asarray((price != ceilings.NONE) & ~fees.has_fees(shared, rows) & (whole * total > share * bound))

    def sort_key(self, positions: np.ndarray) -> np.ndarray:
        """`sort=deal`'s first key: percent below descending (in tenths, as shown), no deal last."""
        tenths = deals.percent_tenths(self.found.total[positions], self.reference[positions])
        return np.where(self.kind[positions] != 0, -tenths, 1)

    def shown(self, position: int) -> dict[str, object] | None:
        kind = int(self.kind[position])
        if not kind:
            return None
        reference = int(self.reference[position])
        tenths = deals.percent_tenths_of(int(self.found.total[position]), reference)
        return {"kind": deals.KINDS[kind - 1], "percent_below": deals.percent_text(tenths),
                "reference_total": format_minor(reference, self.ranking)}


def _similar_references(store: Store, query: Query, ranking: int, rows: np.ndarray, found: Found) -> np.ndarray:
    """`deals.similar_references` of the rows: from this worker's kept index of neighbours
    (`neighbours.py`), else (while it is first built) from a pool of every searchable unit
    fitting the guests near them of their kinds and max_guests. The totals of those asked come
    from the search's own (`found`) where it has them, else from the calendar."""
    shared = store.shared
    lat, lon = shared["lat"][rows], shared["lon"][rows]
    group = neighbours.group_of(shared, rows)
    rows_in_use = min(int(shared.counters[Counter.ROWS]), len(shared["lat"]))
    index = neighbours.neighbours(shared, rows_in_use)
    if index is not None:
        changed = index.changed(shared)
        return deals.similar_references_near(
            places_of(shared, rows),
            lambda units, k: index.nearest(shared, rows[units], lat[units], lon[units], group[units], k, changed),
            lambda some: places_of(shared, some), lambda some: _stay_totals_of(store, query, ranking, some, found),
            lambda some: key_ranks(store, some))
    kind = shared["kind"][rows].astype(np.int64)
    area = _around(lat, lon, deals.SIMILAR_RADIUS_KM)
    pool = candidates(shared, area, query.guests, tuple(np.unique(kind).tolist()))
    pool_group = neighbours.group_of(shared, pool)
    keep = np.isin(pool_group, group)
    pool, pool_group = pool[keep], pool_group[keep]
    return deals.similar_references(
        lat, lon, group, places_of(shared, rows), shared["lat"][pool], shared["lon"][pool], pool_group,
        places_of(shared, pool), pool,
        lambda indices: _stay_totals_of(store, query, ranking, pool[indices], found),
        lambda some: key_ranks(store, some))


def _stay_totals_of(store: Store, query: Query, ranking: int, wanted: np.ndarray, found: Found) -> np.ndarray:
    """The totals of the query's stay at these rows (`deals.NONE` where not open): the search's
    own where it has them, else from the calendar."""
    shared = store.shared
    totals = np.full(len(wanted), deals.NONE, dtype=np.int64)
    # The search's rows come sorted (the index and the scans keep row order): no sort then.
    in_order = bool((found.rows[1:] > found.rows[:-1]).all())
    by_row = np.arange(len(found.rows)) if in_order else np.argsort(found.rows)
    searched = found.rows[by_row]
    at = np.searchsorted(searched, wanted).clip(0, max(len(searched) - 1, 0))
    hit = (searched[at] == wanted) if len(searched) else np.zeros(len(wanted), dtype=bool)
    totals[hit] = found.total[by_row[at[hit]]]
    rest = np.flatnonzero(~hit)
    _, kept, entries = _open_stays(shared, wanted[rest], query.checkin, query.nights)
    price = _fresh(shared, "entry_price", entries)[entries]
    currency = _fresh(shared, "entry_currency", entries)[entries]
    stays = wanted[rest[kept]]
    charges = fees.stay_charges(shared, stays, np.full(len(stays), query.checkin), query.nights, query.guests)
    totals[rest[kept]] = night_totals(store.fx, price, currency, (currency == currency[0]).all(axis=0), charges,
                                      ranking)
    return np.where(totals == UNRANKED, deals.NONE, totals)


def _around(lat: np.ndarray, lon: np.ndarray, km: float) -> Area:
    """A box holding every point within `km` of any of the points (a superset)."""
    angle = km / EARTH_RADIUS_KM
    margin = 1e-9
    min_lat = float(lat.min()) - math.degrees(angle) - margin
    max_lat = float(lat.max()) + math.degrees(angle) + margin
    if min_lat <= -90 or max_lat >= 90:
        return Area(max(min_lat, -90.0), min(max_lat, 90.0), ((-180.0, 180.0),), (0.0, 0.0), None)
    span = np.degrees(np.arcsin(np.minimum(1.0, math.sin(angle) / np.cos(np.radians(lat))))) + margin
    ranges = _lon_ranges(float((lon - span).min()), float((lon + span).max()))
    return Area(min_lat, max_lat, ranges, (0.0, 0.0), None)


# -- the area and the listing filters ----------------------------------------------------------


def candidates(shared: SharedArrays, area: Area, guests: int, kinds: tuple[int, ...]) -> np.ndarray:
    """Rows inside the area's box that are searchable, fit the guests and are of a kind asked."""
    names = ("lat", "lon", "searchable", "max_guests", "kind", "place")
    # A writer may grow the columns while we read: use only rows every mapping covers.
    rows_in_use = min(int(shared.counters[Counter.ROWS]), *(len(shared[name]) for name in names))
    index = _place_index(shared, rows_in_use, area)
    if index is None:
        lat = shared["lat"][:rows_in_use]
        rows = np.flatnonzero((lat >= area.min_lat) & (lat <= area.max_lat))
    else:
        rows = index.candidates(shared, area, rows_in_use)
        lat = shared["lat"][rows]
        rows = rows[(lat >= area.min_lat) & (lat <= area.max_lat)]
    if area.lon_ranges != ((-180.0, 180.0),):
        lon = shared["lon"][rows]
        inside = np.zeros(len(rows), dtype=bool)
        for low, high in area.lon_ranges:
            inside |= (lon >= low) & (lon <= high)
        rows = rows[inside]
    keep = (shared["searchable"][rows] == 1) & (shared["max_guests"][rows] >= guests)
    if kinds:
        keep &= np.isin(shared["kind"][rows], kinds)
    return rows[keep]  # type: ignore[no-any-return]  # numpy types this operation as Any


class PlaceIndex:
    """Listing rows sorted by (latitude cell, longitude), as of a build: an area reads the few
    slices its cells cover instead of every row (a coarse grid as one sorted array).

    The index is this process's own copy, so it must learn of changes: the writer appends every
    row whose coordinates it sets (a first description included) to the `moved` log
    (`Counter.MOVED`), and the rows logged since the build that lie in the area are added.
    Rows added since and never described are not searchable, so they need no reading. Every
    candidate is then checked against the current coordinates.
    """

    def __init__(self, shared: SharedArrays, rows_in_use: int) -> None:
        # The log position is read before the coordinates: a move during the build is re-read.
        self.moves = int(shared.counters[Counter.MOVED])
        self.rows = rows_in_use
        key = _place_key(shared["lat"][:rows_in_use], shared["lon"][:rows_in_use])
        order = np.argsort(key, kind="stable")
        self.keys = key[order]
        self.order = order.astype(np.int32)  # 12 bytes a row with the key

    def moved_since(self, shared: SharedArrays) -> int:
        return int(shared.counters[Counter.MOVED]) - self.moves

    def candidates(self, shared: SharedArrays, area: Area, rows_in_use: int) -> np.ndarray:
        """Sorted rows that may be inside the area (a superset: check their coordinates)."""
        cells = np.arange(_cell(area.min_lat), _cell(area.max_lat) + 1) * CELL_STRIDE  # type: ignore[call-overload]  # 0-d bounds
        starts, ends = [], []
        for low, high in area.lon_ranges:
            starts.append(np.searchsorted(self.keys, cells + (low + 180 - 1e-9), "left"))
            ends.append(np.searchsorted(self.keys, cells + (high + 180 + 1e-9), "right"))
        parts: list[np.ndarray] = [
            self.order[s:e]
            for s, e in zip(np.concatenate(starts).tolist(), np.concatenate(ends).tolist(), strict=True)
            if e > s
        ]
        moves = int(shared.counters[Counter.MOVED])
        if moves > self.moves:
            log = _fresh(shared, "moved", np.array([moves - 1]))[self.moves : moves].astype(np.int64)
            log = log[log < rows_in_use]
            lat, lon = shared["lat"][log], shared["lon"][log]
            near = (lat >= area.min_lat) & (lat <= area.max_lat)
            near &= np.logical_or.reduce([(lon >= low) & (lon <= high) for low, high in area.lon_ranges])
            parts.append(log[near])
        if not parts:
            return np.zeros(0, dtype=np.int64)
        rows = np.concatenate(parts).astype(np.int64)
        rows = np.unique(rows) if len(parts) > 1 else np.sort(rows)
        return rows[rows < rows_in_use] if self.rows > rows_in_use else rows


INDEX_MIN_ROWS = 200_000  # below this, one pass over the latitude column is as fast
INDEX_REBUILD_MOVES = 32_768  # rows moved since the build past which (and past 1/16) it is rebuilt
INDEX_MAX_CELLS = 400  # an area taller than 40 degrees of latitude scans instead
INDEX_IN_BACKGROUND = True  # build in a thread (argsort releases the GIL); searches scan meanwhile
CELL_DEGREES = 0.1  # latitude rows of the grid, ~11 km
CELL_STRIDE = 400.0  # a cell's keys: stride * cell + (lon + 180), lon + 180 < 400
_indexes: weakref.WeakKeyDictionary[SharedArrays, PlaceIndex] = weakref.WeakKeyDictionary()
_building: weakref.WeakSet[SharedArrays] = weakref.WeakSet()


def _cell(lat: float | np.ndarray) -> np.ndarray:
    return np.floor((np.asarray(lat, dtype=np.float64) + 90) / CELL_DEGREES)


def _place_key(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    return _cell(lat) * CELL_STRIDE + (lon + 180)  # type: ignore[no-any-return]  # numpy types this operation as Any


def _place_index(shared: SharedArrays, rows_in_use: int, area: Area) -> PlaceIndex | None:
    """This process's index of the listing rows, or None to scan the columns: below
    `INDEX_MIN_ROWS`, for very tall areas, before the first build is done, and when so many rows
    moved since the build that reading them would cost more than a scan (a rebuild is under way).
    """
    if rows_in_use < INDEX_MIN_ROWS or _cell(area.max_lat) - _cell(area.min_lat) >= INDEX_MAX_CELLS:
        return None
    index = _indexes.get(shared)
    moved = 0 if index is None else index.moved_since(shared)
    if (index is None or moved > max(INDEX_REBUILD_MOVES, len(index.keys) // 16)) and shared not in _building:
        _building.add(shared)
        if INDEX_IN_BACKGROUND:
            threading.Thread(target=_build_index, args=(shared, rows_in_use), name="place-index", daemon=True).start()
        else:
            _build_index(shared, rows_in_use)
        index = _indexes.get(shared)
        moved = 0 if index is None else index.moved_since(shared)
    if index is None or moved > len(index.keys) // 4:
        return None
    return index


def _build_index(shared: SharedArrays, rows_in_use: int) -> None:
    try:
        _indexes[shared] = PlaceIndex(shared, rows_in_use)
    finally:
        _building.discard(shared)


def _area(get: Callable[[str], str | None], optional: Callable[[str], str | None]) -> Area:
    point = [name for name in ("lat", "lon", "radius_km") if get(name) is not None]
    if get("bbox") is not None:
        if point:
            raise QueryError(f"bbox: given with {', '.join(point)}; expected either bbox or lat, lon and radius_km")
        return _bbox(get("bbox") or "")
    if not point:
        raise QueryError("area: missing; expected lat, lon and radius_km, or bbox=min_lon,min_lat,max_lon,max_lat")
    lat = _float("lat", get("lat"), -90, 90)
    lon = _float("lon", get("lon"), -180, 180)
    radius = _float("radius_km", optional("radius_km") or str(DEFAULT_RADIUS_KM), 0.01, 500)
    return circle_area(lat, lon, radius)


def circle_area(lat: float, lon: float, radius_km: float) -> Area:
    """The circle and the smallest lat/lon box around it (exact on a sphere, poles and
    antimeridian included: J. P. Matuschek, "Finding Points Within a Distance of a
    Latitude/Longitude Using Bounding Coordinates")."""
    angle = radius_km / EARTH_RADIUS_KM
    margin = 1e-9  # degrees: the box only pre-filters, the distance decides
    min_lat = lat - math.degrees(angle) - margin
    max_lat = lat + math.degrees(angle) + margin
    if min_lat <= -90 or max_lat >= 90:  # a pole inside: every longitude
        return Area(max(min_lat, -90.0), min(max_lat, 90.0), ((-180.0, 180.0),), (lat, lon), radius_km)
    span = math.degrees(math.asin(min(1.0, math.sin(angle) / math.cos(math.radians(lat))))) + margin
    return Area(min_lat, max_lat, _lon_ranges(lon - span, lon + span), (lat, lon), radius_km)


def _lon_ranges(west: float, east: float) -> tuple[tuple[float, float], ...]:
    """[west, east] going east, as one or two intervals inside [-180, 180]."""
    if east - west >= 360:
        return ((-180.0, 180.0),)
    if west < -180:
        return ((west + 360, 180.0), (-180.0, east))
    if east > 180:
        return ((west, 180.0), (-180.0, east - 360))
    return ((west, east),)


def _bbox(text: str) -> Area:
    parts = text.split(",")
    if len(parts) != 4:
        raise QueryError(f"bbox: '{text}' has {len(parts)} numbers; expected 4: min_lon,min_lat,max_lon,max_lat")
    min_lon = _float("bbox", parts[0], -180, 180, "min_lon")
    min_lat = _float("bbox", parts[1], -90, 90, "min_lat")
    max_lon = _float("bbox", parts[2], -180, 180, "max_lon")
    max_lat = _float("bbox", parts[3], -90, 90, "max_lat")
    if min_lat > max_lat:
        raise QueryError(f"bbox: '{text}' has min_lat {min_lat:g} above max_lat {max_lat:g}")
    center_lat = (min_lat + max_lat) / 2
    if min_lon <= max_lon:
        return Area(min_lat, max_lat, ((min_lon, max_lon),), (center_lat, (min_lon + max_lon) / 2), None)
    # min_lon east of max_lon: the box crosses the antimeridian (as in GeoJSON, RFC 7946 5.2).
    center_lon = (min_lon + max_lon + 360) / 2
    if center_lon >= 180:
        center_lon -= 360
    return Area(min_lat, max_lat, ((min_lon, 180.0), (-180.0, max_lon)), (center_lat, center_lon), None)


def distance_km(lat: np.ndarray, lon: np.ndarray, center_lat: float, center_lon: float) -> np.ndarray:
    """Great-circle distance (haversine, mean Earth radius)."""
    phi1, phi2 = np.radians(lat), math.radians(center_lat)
    dphi = phi2 - phi1
    dlambda = np.radians(center_lon - lon)
    a = np.sin(dphi / 2) ** 2 + np.cos(phi1) * math.cos(phi2) * np.sin(dlambda / 2) ** 2
    return 2 * EARTH_RADIUS_KM * np.arcsin(np.sqrt(np.clip(a, 0, 1)))  # type: ignore[no-any-return]  # numpy types this operation as Any


# -- the calendar ------------------------------------------------------------------------------


def _open_stays(
    shared: SharedArrays, rows: np.ndarray, checkin: int, nights: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The rows available every night whose check-in night allows the stay, which of the given
    rows they are, and their entries, nights x rows (night-major: the reductions over the nights
    of each row then run over contiguous memory, several times faster than along short rows).

    The check-in night is read first and the other nights a page (`PAGE` nights) at a time, dropping
    rows as soon as one night is closed, so a long stay costs little for most rows.
    """
    directory, base = directory_and_base(shared)
    first_page, last_page = checkin // PAGE - base, (checkin + nights - 1) // PAGE - base
    index = np.flatnonzero(rows < len(directory))
    if first_page < 0 or last_page >= directory.shape[1] or len(index) == 0:
        return rows[:0], index[:0], np.zeros((nights, 0), dtype=np.uint32)
    rows = rows[index]
    slot = directory[:, first_page][rows]  # a column, then a 1-D gather: faster than 2-D indexing
    pages = _fresh(shared, "pages", slot)
    first = page_nights(pages, slot, checkin % PAGE)
    min_nights = _fresh(shared, "entry_min_nights", first)
    open_ = _bookable(shared, first) & (min_nights[first] <= nights)
    rows, index, blocks = rows[open_], index[open_], [first[None, open_]]
    day = checkin + 1
    while day < checkin + nights and len(rows):
        end = min(checkin + nights, (day // PAGE + 1) * PAGE)
        slot = directory[:, day // PAGE - base][rows]
        pages = _fresh(shared, "pages", slot)
        # Slices of whole page rows, then transposed: faster than one 2-D fancy index.
        block = np.ascontiguousarray(page_nights(pages, slot, slice(day % PAGE, (end - 1) % PAGE + 1)).T)
        open_ = _bookable(shared, block).all(axis=0)
        rows, index = rows[open_], index[open_]
        blocks = [b[:, open_] for b in blocks] + [block[:, open_]]
        day = end
    if not len(rows):
        return rows, index, np.zeros((nights, 0), dtype=np.uint32)
    return rows, index, np.concatenate(blocks, axis=0)


def _bookable(shared: SharedArrays, entries: np.ndarray) -> np.ndarray:
    """Which nights (entry ids) a stay may include: `_bookable_values` of their facts."""
    return _bookable_values(_fresh(shared, "entry_available", entries)[entries],
                            _fresh(shared, "entry_price", entries)[entries])


def _bookable_values(available: np.ndarray, price: np.ndarray) -> np.ndarray:
    """A night a stay may include: available and priced."""
    return np.asarray((available == 1) & (price >= 0))


def window_totals(
    shared: SharedArrays, fx: Fx, rows: np.ndarray, first_checkin: int, checkins: int, nights: int, guests: int,
    target: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Stays of `nights` nights of each row, checking in on each of `checkins` days from
    `first_checkin`: whether each is open (every night bookable, the check-in night's
    min_nights allows it), its total (`stay_totals`; `UNRANKED` where closed) and whether its
    nights and fees are in one currency, rows x check-ins. One gather of the span's nights, then window
    sums of running sums: the cost grows with the span, not with check-ins x nights."""
    span = checkins + nights - 1
    entries = _span_entries(shared, rows, first_checkin, span)
    price = _fresh(shared, "entry_price", entries)[entries]
    bookable = _bookable_values(_fresh(shared, "entry_available", entries)[entries], price)
    price[~bookable] = 0
    currency = _fresh(shared, "entry_currency", entries)[entries]
    min_nights = _fresh(shared, "entry_min_nights", entries)[entries[:, :checkins]]
    # Running counts in 16 bits (a span is at most 91 + 90 - 1 nights): less memory traffic.
    closed = np.zeros((len(rows), span + 1), dtype=np.int16)
    np.cumsum(~bookable, axis=1, dtype=np.int16, out=closed[:, 1:])
    open_ = (closed[:, nights:] == closed[:, :checkins]) & (min_nights <= nights)
    running = np.zeros((len(rows), span + 1), dtype=np.int64)
    np.cumsum(price, axis=1, out=running[:, 1:])
    # changes[t]: how often the currency changes from night 0 to night t (rows whose currency
    # never changes in the span, nearly all, need no running count)
    differ = currency[:, 1:] != currency[:, :-1]
    single = np.ones((len(rows), checkins), dtype=bool)
    varied = np.flatnonzero(differ.any(axis=1))
    if len(varied):
        changes = np.zeros((len(varied), span), dtype=np.int16)
        np.cumsum(differ[varied], axis=1, dtype=np.int16, out=changes[:, 1:])
        single[varied] = changes[:, nights - 1 : nights - 1 + checkins] == changes[:, :checkins]
    sums = running[:, nights:] - running[:, :checkins]
    # Rows without fees whose every night is in `target` (nearly all): each open stay's total
    # is its sum, as `stay_totals` would say, with no per-stay arrays. The others below.
    charged_rows = fees.has_fees(shared, rows)
    plain = ~charged_rows & (currency[:, 0] == target)
    plain[varied] = False
    total = np.where(open_ & plain[:, None], sums, UNRANKED)
    other = np.flatnonzero(~plain)
    unit, day = np.nonzero(open_[other])  # the other rows' stays, in the order of their true values
    unit = other[unit]

    def nights_of(stays: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        where = (unit[stays][None, :], day[stays][None, :] + np.arange(nights)[:, None])
        return price[where], currency[where]

    # The fees of the stays of the rows that have any (one gather a row, not one a stay).
    charged = np.flatnonzero(charged_rows[unit])
    some = fees.stay_charges(shared, rows[unit[charged]], first_checkin + day[charged], nights, guests)
    percent = np.zeros(len(unit), dtype=np.int64)
    percent[charged] = some.percent
    charges = fees.Charges(charged[some.stay], some.amount, some.currency, percent)
    own = currency[unit, day]
    total[unit, day] = stay_totals(fx, sums[unit, day], own, single[unit, day], nights_of, charges, target)
    single[unit, day] &= ~charges.foreign(own)  # fees in another currency: not "one currency" either
    return open_, total, single


def _span_entries(shared: SharedArrays, rows: np.ndarray, first: int, span: int) -> np.ndarray:
    """Entry ids of `span` nights from `first` of each row, rows x nights (0: no value)."""
    directory, base = directory_and_base(shared)
    result = np.zeros((len(rows), span), dtype=np.uint32)
    known = np.flatnonzero(rows < len(directory))
    day = first
    while day < first + span and len(known):
        end = min(first + span, (day // PAGE + 1) * PAGE)
        page = day // PAGE - base
        if 0 <= page < directory.shape[1]:
            slot = directory[:, page][rows[known]]
            pages = _fresh(shared, "pages", slot)
            result[known, day - first : end - first] = page_nights(pages, slot, slice(day % PAGE, (end - 1) % PAGE + 1))
        day = end
    return result


def _fresh(shared: SharedArrays, name: str, index: np.ndarray) -> np.ndarray:
    """`shared[name]`, remapped if the writer grew it after this request mapped it (it grows an
    array before it writes references into it)."""
    array = shared[name]
    if index.size and int(index.max()) >= len(array):
        shared.refresh()
        array = shared[name]
    return array


# -- money -------------------------------------------------------------------------------------


def night_totals(fx: Fx, price: np.ndarray, currency: np.ndarray, single: np.ndarray, charges: fees.Charges,
            target: int) -> np.ndarray:
    """Each stay's (a column of nights x stays `price` and `currency`) total, by `stay_totals`."""
    return stay_totals(
        fx, price.sum(axis=0), currency[0], single, lambda stays: (price[:, stays], currency[:, stays]), charges,
        target)


NightsOf = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]


def stay_totals(
    fx: Fx, sums: np.ndarray, own: np.ndarray, single: np.ndarray, nights_of: NightsOf, charges: fees.Charges,
    target: int,
) -> np.ndarray:
    """The exact totals of many stays ((unit, check-in) pairs) in `target` minor units,
    `UNRANKED` where they cannot be converted: every total search ranks, filters or compares
    is made here, the nights and the mandatory fees (`fees.stay_charges`) together.

    `sums` are the nights' sums in `own`, the check-in night's currency, for the stays in one
    currency (`single`, nearly all: one factor each); `nights_of(stays)` gives the price and
    currency, nights x stays, of the others. A stay whose nights and fixed fees are all in
    `target` and that has no percent fee is summed in integers. Float factors give the answer
    for all others but the totals within rounding error of half a minor unit; those (exact ties
    like 6753.5 cents included) are recomputed exactly (`exact_stay_total`).
    """
    factors = fx.minor_factors(target)
    own = own.astype(np.intp)
    n = len(sums)
    fixed_in_target = np.zeros(n, dtype=np.int64)
    foreign_charges = np.zeros(n, dtype=np.int64)
    fixed = None
    if len(charges.stay):
        in_target = charges.currency == target
        # Integer sums where exact (amounts and their sum below 2^53), else exact int64 adds.
        if int(charges.amount.max()) * len(charges.amount) < 2**53:
            fixed_in_target = np.bincount(charges.stay[in_target], weights=charges.amount[in_target],
                                          minlength=n).astype(np.int64)
        else:
            np.add.at(fixed_in_target, charges.stay[in_target], charges.amount[in_target])
        foreign_charges = np.bincount(charges.stay[~in_target], minlength=n)
        fixed = np.bincount(charges.stay, weights=charges.amount * factors[charges.currency.astype(np.intp)],
                            minlength=n)
    # The common case first, in integers; the floats only for the others (a tenth, or fewer).
    same = single & (own == target) & (charges.percent == 0) & (foreign_charges == 0)
    total = np.where(same, sums + fixed_in_target, UNRANKED)
    other = np.flatnonzero(~same)
    if not len(other):
        return total
    value = np.where(single[other], sums[other] * factors[own[other]], np.nan)
    mixed = np.flatnonzero(~single[other])
    if len(mixed):
        price, currency = nights_of(other[mixed])
        value[mixed] = (price * factors[currency.astype(np.intp)]).sum(axis=0)
    if charges.percent.any():
        value = value * (1 + charges.percent[other] / fees.PERCENT_DENOMINATOR)
    if fixed is not None:
        value = value + fixed[other]
    known = ~np.isnan(value)
    other, value = other[known], value[known]
    if len(other):
        rounded = np.rint(value)
        doubtful = (np.abs(value - np.floor(value) - 0.5) < 1e-6 + 1e-12 * np.abs(value)) | (
            np.abs(value) > 2.0**52
        )
        total[other] = rounded.astype(np.int64)
        charges_of = charges.of(other[doubtful])
        for i in other[doubtful].tolist():
            if single[i]:
                prices, currencies = [int(sums[i])], [int(own[i])]
            else:
                price, currency = nights_of(np.array([i]))
                prices, currencies = price[:, 0].tolist(), currency[:, 0].tolist()
            total[i] = exact_stay_total(fx, prices, currencies, *charges_of[i], target)
    return total


def exact_stay_total(fx: Fx, prices: list[int], currencies: list[int], fixed: list[tuple[int, int]], percent: int,
                     target: int) -> int:
    """A stay's total in `target` minor units with its mandatory fees (`fees.exact_value`),
    rounded once, half-even; without fees, `exact_total`."""
    if not fixed and not percent:
        return exact_total(fx, prices, currencies, target)
    return fees.exact_minor(fx, zip(prices, currencies, strict=True), fixed, percent, target)


def exact_total(fx: Fx, prices: Iterable[int], currencies: Iterable[int], target: int) -> int:
    """The nights' total in `target` minor units, by the rule in this module's docstring."""
    sums: dict[int, int] = {}
    for price, currency in zip(prices, currencies, strict=True):
        sums[currency] = sums.get(currency, 0) + price
    if len(sums) == 1:
        ((currency, minor),) = sums.items()
        return fx.convert_minor(minor, currency, target)
    total = Decimal(0)
    for currency, minor in sums.items():
        amount = Decimal(minor).scaleb(-EXPONENT[currency])
        total += amount if currency == target else amount / fx.rates[currency] * fx.rates[target]
    return int(total.scaleb(EXPONENT[target]).quantize(Decimal(1), ROUND_HALF_EVEN))


def _half_even_div(total: np.ndarray, divisor: int) -> np.ndarray:
    quotient, remainder = np.divmod(total, divisor)
    up = (2 * remainder > divisor) | ((2 * remainder == divisor) & (quotient % 2 == 1))
    return quotient + up  # type: ignore[no-any-return]  # numpy types this operation as Any


# -- ranking and pages -------------------------------------------------------------------------


def _after(keys: list[np.ndarray], rows: np.ndarray, after_keys: list[int | float], after_row: int) -> np.ndarray:
    """Which (keys..., row) come strictly after the cursor's, lexicographically."""
    later = rows > after_row
    for key, value in reversed(list(zip(keys, after_keys, strict=False))):
        later = (key > value) | ((key == value) & later)
    return later


def _top(keys: list[np.ndarray], rows: np.ndarray, limit: int) -> np.ndarray:
    """Indices of the `limit` smallest (keys..., row), in order."""
    candidates = np.arange(len(rows))
    if len(rows) > 4 * limit:
        kth = np.partition(keys[0], limit - 1)[limit - 1]
        candidates = np.flatnonzero(keys[0] <= kth)
    order = np.lexsort([rows[candidates], *(key[candidates] for key in reversed(keys))])
    return candidates[order[:limit]]


def _results(store: Store, query: Query, found: Found, page: np.ndarray, place: np.ndarray, offers: np.ndarray,
             deals_of: _Deals) -> list[dict[str, object]]:
    """The page as the API shows it. Prices repeat across nights and results (a rate event sets
    many nights), so each (price, currency) is converted and formatted once a page."""
    shared, fx = store.shared, store.fx
    rows, entries, distance = found.rows[page], found.entries[:, page], found.distance[page]
    found_rows = sqlite.details(store.connection, np.concatenate([rows, found.rows[offers]]).tolist())
    fees_of = sqlite.fees_of(store.connection, list(found_rows))
    place_ids = store.place_ids(rows.tolist())
    days = [day_from_epoch(query.checkin + i).isoformat() for i in range(query.nights)]
    changed_at = shared["entry_changed_at"][entries].max(axis=0).tolist() if len(rows) else []
    codes: dict[int, str] = {}
    texts: dict[tuple[int, int], str] = {}
    shown_texts: dict[tuple[int, int, int], str] = {}

    def text(minor: int, currency: int) -> str:
        value = texts.get((minor, currency))
        if value is None:
            value = texts[minor, currency] = format_minor(minor, currency)
        return value

    def shown_text(minor: int, currency: int, shown: int) -> str:
        if currency == shown:
            return text(minor, currency)
        value = shown_texts.get((minor, currency, shown))
        if value is None:
            value = shown_texts[minor, currency, shown] = format_minor(fx.convert_minor(minor, currency, shown), shown)
        return value

    def with_fees(row: int, prices: list[int], currencies: list[int], shown: int) -> tuple[int, list[dict[str, Any]]]:
        """The stay's total in `shown` with its mandatory fees, and its `fees` as listed."""
        listed, fixed, percent = fees.breakdown(fx, fees_of.get(row, []), query.checkin, query.guests, prices,
                                                currencies, shown)
        return exact_stay_total(fx, prices, currencies, fixed, percent, shown), listed

    offers_of: dict[int, list[dict[str, object]]] = {}
    if query.by_place:
        for position in offers[np.lexsort((found.rows[offers], found.total[offers]))].tolist():
            row = int(found.rows[position])
            if row not in found_rows:
                continue
            prices = shared["entry_price"][found.entries[:, position]].tolist()
            currencies = shared["entry_currency"][found.entries[:, position]].tolist()
            shown = currencies[0] if query.currency is None else query.currency
            offers_of.setdefault(int(place[position]), []).append({
                "source": found_rows[row]["source"], "listing_id": found_rows[row]["listing_id"],
                "total": format_minor(with_fees(row, prices, currencies, shown)[0], shown),
                "currency": CURRENCIES[shown], "url": found_rows[row]["url"], "deal": deals_of.shown(position),
                "_rank": int(found.total[position]),
            })
        for listed in offers_of.values():  # by total, then source and listing_id
            listed.sort(key=lambda offer: (offer.pop("_rank"), offer["source"], offer["listing_id"]))

    results = []
    for position, row, prices, currencies, distance_km, changed in zip(
        page.tolist(), rows.tolist(), shared["entry_price"][entries].T.tolist(),
        shared["entry_currency"][entries].T.tolist(), distance.tolist(), changed_at, strict=False,
    ):
        if row not in found_rows:  # only if SQLite lost a row the shared columns still have
            continue
        own = currencies[0]
        shown = own if query.currency is None else query.currency
        total, fees_listed = with_fees(row, prices, currencies, shown)
        for currency in currencies:
            if currency not in codes:
                codes[currency] = CURRENCIES[currency]
        listing = describe(found_rows[row], True)
        listing.pop("searchable")
        result = {
            **listing,
            "total": format_minor(total, shown),
            "currency": CURRENCIES[shown],
            "nights_total": format_minor(exact_total(fx, prices, currencies, shown), shown),
            "fees": [{**fee, "amount": format_minor(fee["amount"], shown)} for fee in fees_listed],
            "nightly_average": format_minor(_half_even(total, query.nights), shown),
            "nights": [
                {"night": day, "price": shown_text(price, currency, shown), "listing_price": text(price, currency),
                 "listing_currency": codes[currency]}
                for day, price, currency in zip(days, prices, currencies, strict=True)
            ],
            "listing_currency": CURRENCIES[own],
            "listing_total": format_minor(total if shown == own else with_fees(row, prices, currencies, own)[0], own),
            "distance_km": round(distance_km, 3),
            "price_changed_at": format_changed_at(changed),
            "place_id": place_ids.get(row),
            "deal": deals_of.shown(position),
        }
        if query.by_place:
            result["offers"] = offers_of.get(int(place[position]), [])
        results.append(result)
    return results


def _half_even(value: int, divisor: int) -> int:
    quotient, remainder = divmod(value, divisor)
    return quotient + (2 * remainder > divisor or (2 * remainder == divisor and quotient % 2 == 1))


def _encode_cursor(fingerprint: str, keys: list[int | float], row: int) -> str:
    data = msgspec.json.encode([CURSOR_VERSION, fingerprint, keys, row])
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _cursor(text: str | None, fingerprint: str, key_count: int) -> tuple[list[int | float], int] | None:
    if text is None:
        return None
    try:
        version, issued_for, keys, row = msgspec.json.decode(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
        valid = (
            version == CURSOR_VERSION and isinstance(issued_for, str) and isinstance(row, int)
            and isinstance(keys, list) and len(keys) == key_count
            and all(isinstance(k, (int, float)) and not isinstance(k, bool) for k in keys)
        )
    except Exception:
        valid = False
    if not valid:
        raise QueryError(f"cursor: '{text[:60]}' is not a cursor this service issued; expected a next_cursor")
    if issued_for != fingerprint:
        raise QueryError(
            "cursor: it was issued for a search with other parameters; repeat the parameters of the "
            "search that returned it (only limit may change), or start again without a cursor"
        )
    return keys, row


# -- parameters --------------------------------------------------------------------------------


def _float(name: str, text: str | None, low: float, high: float, part: str | None = None) -> float:
    label = f"{name}: {part} '{text}'" if part else f"{name}: '{text}'"
    if text is None:
        raise QueryError(f"{name}: missing; expected a number from {low:g} to {high:g}")
    if not DECIMAL_TEXT.fullmatch(text.strip()):  # float() also reads '1_0' as 10, 'nan', '٣'
        raise QueryError(f"{label} is not a number; expected {low:g} to {high:g}")
    value = float(text)
    if not (math.isfinite(value) and low <= value <= high):
        raise QueryError(f"{label} is out of range; expected {low:g} to {high:g}")
    return value


def _choice(name: str, text: str, allowed: tuple[str, ...]) -> str:
    if text not in allowed:
        raise QueryError(f"{name}: '{text}' is not one of {', '.join(allowed)}")
    return text


def parse_whole(name: str, text: str, low: int, high: int) -> int:
    if not _WHOLE.fullmatch(text):
        raise QueryError(f"{name}: '{text}' is not a whole number; expected {low} to {high}")
    value = int(text)
    if not low <= value <= high:
        raise QueryError(f"{name}: '{text}' is out of range; expected {low} to {high}")
    return value


def parse_date(name: str, text: str | None) -> dt.date:
    if text is None or not text.strip():
        raise QueryError(f"{name}: missing; expected a date YYYY-MM-DD")
    try:
        return dt.date.fromisoformat(text.strip())
    except ValueError:
        raise QueryError(f"{name}: '{text}' is not a date; expected YYYY-MM-DD") from None


def _price(name: str, text: str | None) -> Decimal | None:
    if text is None:
        return None
    try:
        amount = parse_decimal(text)
    except MoneyError:
        raise QueryError(f"{name}: '{text}' is not a decimal amount; expected a number like 150 or 99.50") from None
    if amount < 0:
        raise QueryError(f"{name}: '{text}' is negative; expected an amount >= 0")
    if amount >= AMOUNT_LIMIT:
        raise QueryError(f"{name}: '{text}' is out of range; expected an amount below 10^15")
    return amount
