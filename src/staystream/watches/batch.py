"""Evaluating many (watch, changed row) pairs at once, in numpy: the watcher's hot path.

A write group touches a few rows of many watches; evaluating watch by watch (`evaluate.py`, used
for whole areas) would cost a Python call per watch per poll. Here every pair is filtered in one
pass by the rules of `search.engine` (searchable, guests, kinds, circle distance, every night
available, the check-in night's `min_nights`, a price on every night, totals by
`engine.night_totals` with mandatory fees, the price bound in the ranking currency) with each
watch's own stay, so a pair matches exactly when search would list the row for the watch's query. `WatchTable` holds the
watches' parameters as columns.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_FLOOR, Decimal

import numpy as np

from staystream.events.fx import Fx
from staystream.events.money import CURRENCY_INDEX, EXPONENT
from staystream.memory.calendar import PAGE, directory_and_base, night_entries
from staystream.memory.shm import SharedArrays
from staystream.search import fees
from staystream.search.engine import EARTH_RADIUS_KM, UNRANKED, Query, exact_stay_total, night_totals

NO_BOUND = np.iinfo(np.int64).max
FLOOR_NIGHTS = 62  # longest span of changed nights `price_floors` reads (a longer one gets no floor)


class WatchTable:
    """The parameters of every indexed watch, by watch number (its `seq`)."""

    def __init__(self) -> None:
        self.size = 0
        self.queries: dict[int, Query] = {}
        self._grow(1024)

    def _grow(self, size: int) -> None:
        def grown(name: str, dtype: str, fill: float) -> np.ndarray:
            array = np.full(size, fill, dtype)
            if self.size:
                array[: self.size] = getattr(self, name)
            return array

        self.center_lat = grown("center_lat", "f8", 0)
        self.center_lon = grown("center_lon", "f8", 0)
        self.radius = grown("radius", "f8", np.nan)  # nan: a box
        self.guests = grown("guests", "i4", 1)
        self.kinds = grown("kinds", "i4", 0)  # bit mask of the kinds asked; 0: any
        self.checkin = grown("checkin", "i8", 0)
        self.nights = grown("nights", "i8", 1)
        self.currency = grown("currency", "i4", -1)  # -1: shown in each listing's own
        self.ranking = grown("ranking", "i4", 0)
        self.bound = grown("bound", "i8", NO_BOUND)  # max_price in ranking minor units
        self.bound_base = grown("bound_base", "f8", np.inf)  # max_price in the FX base, a little over
        self.size = size

    def add(self, seq: int, query: Query, fx: Fx) -> None:
        if seq >= self.size:
            self._grow(max(seq + 1, 2 * self.size))
        self.queries[seq] = query
        self.center_lat[seq], self.center_lon[seq] = query.area.center
        self.radius[seq] = np.nan if query.area.radius_km is None else query.area.radius_km
        self.guests[seq] = query.guests
        self.kinds[seq] = sum(1 << kind for kind in query.kinds)
        self.checkin[seq], self.nights[seq] = query.checkin, query.nights
        self.currency[seq] = -1 if query.currency is None else query.currency
        self.price_bounds(fx, [seq])

    def remove(self, seq: int) -> None:
        self.queries.pop(seq, None)

    def price_bounds(self, fx: Fx, seqs: list[int]) -> None:
        """(Re)compute the ranking currency and price bound (they follow the FX table's base)."""
        base = CURRENCY_INDEX[fx.table.base]
        for seq in seqs:
            query = self.queries[seq]
            ranking = base if query.currency is None else query.currency
            self.ranking[seq] = ranking
            self.bound[seq] = NO_BOUND if query.max_price is None else int(
                (query.max_price * Decimal(10) ** EXPONENT[ranking]).to_integral_value(ROUND_FLOOR))
            # In base units with a minor unit and a millionth of slack over float error: only
            # `could_match` reads it, and it must never refuse a pair the exact total admits.
            in_base = (float(self.bound[seq]) + 1) / (fx.minor_scale[ranking] * fx.per_base[ranking]) * (1 + 1e-6)
            self.bound_base[seq] = in_base if self.bound[seq] != NO_BOUND and np.isfinite(in_base) else np.inf


@dataclass(frozen=True)
class Matches:
    """The pairs that match: watch, row, total in the ranking currency, total and currency shown."""

    watch: np.ndarray
    row: np.ndarray
    ranked: np.ndarray
    total: np.ndarray
    currency: np.ndarray


def evaluate(shared: SharedArrays, fx: Fx, table: WatchTable, watch: np.ndarray, row: np.ndarray) -> Matches:
    keep = (shared["searchable"][row] == 1) & (shared["max_guests"][row] >= table.guests[watch])
    kinds = table.kinds[watch]
    keep &= (kinds == 0) | ((kinds >> shared["kind"][row].astype(np.int32)) & 1 == 1)
    keep &= fx_known(fx, table.currency[watch])
    watch, row = watch[keep], row[keep]
    circle = ~np.isnan(table.radius[watch])
    distance = _distance_km(shared["lat"][row], shared["lon"][row], table.center_lat[watch], table.center_lon[watch])
    near = ~circle | (distance <= np.where(circle, table.radius[watch], 0))
    watch, row = watch[near], row[near]
    parts = []
    for nights in np.unique(table.nights[watch]).tolist():
        same = table.nights[watch] == nights
        parts.append(_stays(shared, fx, table, watch[same], row[same], nights))
    if not parts:
        empty = np.zeros(0, np.int64)
        return Matches(empty, empty, empty, empty, empty)
    fields = ("watch", "row", "ranked", "total", "currency")
    return Matches(*(np.concatenate([getattr(p, name) for p in parts]) for name in fields))


def fx_known(fx: Fx, currency: np.ndarray) -> np.ndarray:
    """Search refuses a query in a currency the FX table lacks; such a watch matches nothing."""
    known = np.zeros(max(len(CURRENCY_INDEX), 1) + 1, bool)
    known[list(fx.rates)] = True
    usable: np.ndarray = (currency < 0) | known[np.maximum(currency, 0)]
    return usable


def _stays(shared: SharedArrays, fx: Fx, table: WatchTable, watch: np.ndarray, row: np.ndarray, nights: int) -> Matches:
    """The pairs (all with stays of `nights`) open for their watch's stay and within its price bound."""
    directory, base = directory_and_base(shared)
    days = table.checkin[watch][None, :] + np.arange(nights)[:, None]  # nights x pairs
    page = days // PAGE - base
    inside = (page >= 0) & (page < directory.shape[1]) & (row < len(directory))[None, :]
    slot = np.where(inside, directory[np.where(inside, row[None, :], 0), np.where(inside, page, 0)], 0)
    pages = shared["pages"]
    if int(slot.max(initial=0)) >= len(pages):
        shared.refresh()
        pages = shared["pages"]
    entries = night_entries(pages, slot, days % PAGE)
    if int(entries.max(initial=0)) >= len(shared["entry_available"]):
        shared.refresh()
    open_ = inside.all(axis=0) & (shared["entry_available"][entries] == 1).all(axis=0)
    open_ &= shared["entry_min_nights"][entries[0]] <= nights
    watch, row, entries = watch[open_], row[open_], entries[:, open_]
    price = shared["entry_price"][entries]
    currency = shared["entry_currency"][entries]
    priced = price.min(axis=0, initial=0) >= 0 if len(row) else np.zeros(0, bool)
    single = (currency == currency[0]).all(axis=0) if len(row) else np.zeros(0, bool)
    ranked = np.full(len(row), UNRANKED, np.int64)
    foreign = np.zeros(len(row), bool)  # a fee in another currency than the stay's nights
    charged = np.zeros(len(row), bool)  # any mandatory fee: the total in its own currency needs them
    groups: list[tuple[np.ndarray, fees.Charges]] = []  # (pairs, their fees) per ranking currency and party
    ranking, guests = table.ranking[watch], table.guests[watch]
    for target, party in sorted(set(zip(ranking.tolist(), guests.tolist(), strict=True))):
        mine = np.flatnonzero((ranking == target) & (guests == party))
        charges = fees.stay_charges(shared, row[mine], table.checkin[watch[mine]], nights, party)
        ranked[mine] = night_totals(fx, price[:, mine], currency[:, mine], single[mine], charges, target)
        foreign[mine] = charges.foreign(currency[0, mine])
        charged[mine] = (charges.percent != 0) | (np.bincount(charges.stay, minlength=len(mine)) > 0)
        groups.append((mine, charges))
    chosen = table.currency[watch]
    keep = priced & ((ranked != UNRANKED) | (single & ~foreign))
    bounded = (chosen >= 0) | (table.bound[watch] != NO_BOUND)
    keep &= ~bounded | ((ranked != UNRANKED) & (ranked <= table.bound[watch]))
    total = np.where(chosen >= 0, ranked, price.sum(axis=0))
    own = currency[0] if len(row) else np.zeros(0, np.int64)
    shown = np.where(chosen >= 0, chosen, own).astype(np.int64)
    # In its own currency with fees or nights in several currencies: exact, as search's total
    # (Python per such pair only: the fees of a pair are looked up only when it is kept).
    exact = keep & (chosen < 0) & (charged | ~single)
    for mine, charges in groups:
        stays = np.flatnonzero(exact[mine])
        for stay, (fixed, percent) in charges.of(stays).items():
            i = int(mine[stay])
            total[i] = exact_stay_total(fx, price[:, i].tolist(), currency[:, i].tolist(), fixed, percent,
                                        int(shown[i]))
    watch, row, ranked, total, shown = watch[keep], row[keep], ranked[keep], total[keep], shown[keep]
    return Matches(watch, row, ranked, total.astype(np.int64), shown)


def price_floors(shared: SharedArrays, fx: Fx, rows: np.ndarray, first: np.ndarray, end: np.ndarray) -> np.ndarray:
    """Per changed entry (row, nights [first, end)), the least one of its nights costs now, in
    FX base units (inf for a night that cannot be booked: no stay through it matches). Prices and
    fees are never negative, so a stay that includes k of these nights totals at least k times
    this. 0 (no floor) for descriptions and spans longer than `FLOOR_NIGHTS`."""
    floors = np.zeros(len(rows))
    spans = np.asarray(end, np.int64) - np.asarray(first, np.int64)
    chosen = np.flatnonzero((spans >= 1) & (spans <= FLOOR_NIGHTS))
    if not len(chosen):
        return floors
    counts = spans[chosen]
    entry_of = np.repeat(np.arange(len(chosen)), counts)
    starts = np.cumsum(counts) - counts
    days = np.asarray(first, np.int64)[chosen][entry_of] + np.arange(len(entry_of)) - starts[entry_of]
    row = np.asarray(rows, np.int64)[chosen][entry_of]
    directory, base = directory_and_base(shared)
    page = days // PAGE - base
    inside = (page >= 0) & (page < directory.shape[1]) & (row < len(directory))
    slot = np.where(inside, directory[np.where(inside, row, 0), np.where(inside, page, 0)], 0)
    pages = shared["pages"]
    if int(slot.max(initial=0)) >= len(pages):
        shared.refresh()
        pages = shared["pages"]
    entries = night_entries(pages, slot, days % PAGE)
    if int(entries.max(initial=0)) >= len(shared["entry_available"]):
        shared.refresh()
    price = shared["entry_price"][entries]
    currency = shared["entry_currency"][entries].astype(np.int64)
    per_base = np.nan_to_num(fx.per_base[currency] * fx.minor_scale[currency], nan=np.inf)  # unknown: floor 0
    night = np.where(inside & (slot != 0) & (shared["entry_available"][entries] == 1) & (price >= 0),
                     price / per_base, np.inf)
    floors[chosen] = np.minimum.reduceat(night, starts)
    return floors


def could_match(table: WatchTable, watch: np.ndarray, floor: np.ndarray, first: np.ndarray,
                end: np.ndarray) -> np.ndarray:
    """Which (watch, changed entry) pairs could match, given the entry's `price_floors`: false
    only when the nights the watch's stay shares with the entry already cost more than its
    max_price (the stay then cannot match, whatever its other nights and fees)."""
    checkin = table.checkin[watch]
    shared_nights = np.minimum(end, checkin + table.nights[watch]) - np.maximum(first, checkin)
    possible: np.ndarray = np.maximum(shared_nights, 1) * floor <= table.bound_base[watch]
    return possible


def _distance_km(lat: np.ndarray, lon: np.ndarray, center_lat: np.ndarray, center_lon: np.ndarray) -> np.ndarray:
    """`engine._distance_km` with a centre per pair (the same haversine, term by term)."""
    phi1, phi2 = np.radians(lat), np.radians(center_lat)
    dphi = phi2 - phi1
    dlambda = np.radians(center_lon - lon)
    a = np.sin(dphi / 2) ** 2 + np.cos(phi1) * np.cos(phi2) * np.sin(dlambda / 2) ** 2
    distance: np.ndarray = 2 * EARTH_RADIUS_KM * np.arcsin(np.sqrt(np.clip(a, 0, 1)))
    return distance
