"""Flexible dates: for each check-in day of a range, how many results a search has and its cheapest.

`GET /v1/search/dates` (the calendar strip under a search box) answers, for each check-in from
`from` on `days` days, what `GET /v1/search` with that check-in, `nights` nights and the same
area and filters would: its `matches` and its first result by `sort=total` (`cheapest`). All
check-ins come from one pass over the calendar span (`engine.window_totals`), not one search
per day.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np

from staystream.dates import day_from_epoch
from staystream.durable import sqlite
from staystream.events.money import CURRENCIES, format_minor
from staystream.search import engine, fees
from staystream.search.engine import UNRANKED, MultiParams, Query, QueryError
from staystream.search.view import Store

MAX_DAYS = 62
DEFAULT_DAYS = 31
PARAMETERS = (
    "lat", "lon", "radius_km", "bbox", "nights", "guests", "from", "days", "kind", "min_price", "max_price",
    "currency", "group",
)
CLOSED = np.iinfo(np.int64).max


@dataclass(frozen=True)
class DatesQuery:
    search: Query  # the search of the first check-in
    days: int


class _Params:
    """Query parameters as `engine.parse_query` reads them."""

    def __init__(self, items: list[tuple[str, str]]) -> None:
        self.items = items

    def get(self, key: str) -> str | None:
        return next((value for name, value in self.items if name == key), None)

    def getlist(self, key: str) -> list[str]:
        return [value for name, value in self.items if name == key]

    def multi_items(self) -> list[tuple[str, str]]:
        return self.items


def parse_dates_query(params: MultiParams, horizon_days: int) -> DatesQuery:
    for name, _ in params.multi_items():
        if name not in PARAMETERS:
            raise QueryError(f"{name}: unknown parameter; expected some of {', '.join(PARAMETERS)}")
    text = params.get("nights")
    if text is None or not text.strip():
        raise QueryError(f"nights: missing; expected a whole number from 1 to {engine.MAX_STAY_NIGHTS}")
    nights = engine.parse_whole("nights", text.strip(), 1, engine.MAX_STAY_NIGHTS)
    first = engine.parse_date("from", params.get("from"))
    days_text = (params.get("days") or "").strip() or str(DEFAULT_DAYS)
    days = engine.parse_whole("days", days_text, 1, MAX_DAYS)
    last = dt.date.today() + dt.timedelta(days=horizon_days + 1)
    if first + dt.timedelta(days=days - 1 + nights) > last:
        raise QueryError(
            f"days: the last stay ({days} days from '{first}', {nights} nights) ends past the horizon of "
            f"{horizon_days} days; expected stays ending at most {last}"
        )
    items = [(name, value) for name, value in params.multi_items() if name not in ("nights", "from", "days")]
    items += [("checkin", first.isoformat()), ("checkout", (first + dt.timedelta(days=nights)).isoformat())]
    return DatesQuery(engine.parse_query(_Params(items), horizon_days), days)


def search_dates(store: Store, dates: DatesQuery) -> dict[str, object]:
    query, shared, fx = dates.search, store.shared, store.fx
    ranking = engine.ranking_currency(fx, query.currency)
    rows = engine.candidates(shared, query.area, query.guests, query.kinds)
    distance = engine.distance_km(shared["lat"][rows], shared["lon"][rows], *query.area.center)
    if query.area.radius_km is not None:
        near = distance <= query.area.radius_km
        rows, distance = rows[near], distance[near]
    open_, total, single = engine.window_totals(
        shared, fx, rows, query.checkin, dates.days, query.nights, query.guests, ranking)
    ranked = total != UNRANKED
    keep = open_ & (ranked | single)  # as `engine.find_stays`
    if query.currency is not None or query.min_price is not None or query.max_price is not None:
        keep &= ranked
    # Rows in result order for ties (distance, then row): the first minimum is the one shown.
    in_order = bool((rows[1:] > rows[:-1]).all())  # as the index and the scans give them: one key left
    order = np.argsort(distance, kind="stable") if in_order else np.lexsort((rows, distance))
    rows, distance, keep, total = rows[order], distance[order], keep[order], total[order]
    offered = np.where(keep, total, CLOSED)
    if query.by_place:
        place = engine.places_of(shared, rows)
        by_place = np.argsort(place, kind="stable")
        starts = np.flatnonzero(np.r_[True, place[by_place][1:] != place[by_place][:-1]]) if len(rows) else by_place
        least = np.minimum.reduceat(offered[by_place], starts, axis=0) if len(rows) else offered[:0]
        passing = (least != CLOSED) & engine.in_price_bounds(least, query, ranking)
        matches = passing.sum(axis=0)
        # An offer counts for the cheapest only in a place that is a result.
        member = np.repeat(np.arange(len(starts)), np.diff(np.r_[starts, len(rows)]))
        allowed = np.zeros_like(keep)
        allowed[by_place] = passing[member]
        offered = np.where(allowed, offered, CLOSED)
    else:
        offered = np.where(keep & engine.in_price_bounds(total, query, ranking), offered, CLOSED)
        matches = (offered != CLOSED).sum(axis=0)

    # Per day (a contiguous row of the transposed matrix): its cheapest offer, then one
    # SQLite read for the keys, places and fees of every day's cheapest together.
    by_day = np.ascontiguousarray(offered.T) if len(rows) else np.zeros((dates.days, 0), dtype=np.int64)
    least_of_day = by_day.min(axis=1) if len(rows) else np.full(dates.days, CLOSED)
    best: dict[int, int] = {}  # day -> row of the cheapest result
    for day in np.flatnonzero(least_of_day != CLOSED).tolist():
        at_min = np.flatnonzero(by_day[day] == least_of_day[day])
        if query.by_place and len(at_min) > 1:
            at_min = _places_first_offers(store, at_min, place, rows)
        best[day] = int(rows[at_min[0]])
    cheapest = _cheapest(store, query, ranking, best, least_of_day)
    answer = [{
        "checkin": day_from_epoch(query.checkin + day).isoformat(),
        "checkout": day_from_epoch(query.checkin + day + query.nights).isoformat(),
        "matches": int(matches[day]) if len(rows) else 0,
        "cheapest": cheapest.get(day),
    } for day in range(dates.days)]
    return {
        "dates": answer, "nights": query.nights, "group": "place" if query.by_place else "listing",
        "currency": None if query.currency is None else CURRENCIES[query.currency],
        "ranked_in": CURRENCIES[ranking], "fx": fx.label,
    }


def _places_first_offers(store: Store, at_min: np.ndarray, place: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Of offers sharing the cheapest total (in result order), each place's own first (by
    source, listing_id), still in result order: the first of these is the cheapest result."""
    ranks = engine.key_ranks(store, rows[at_min])
    chosen: dict[int, int] = {}
    for index, rank in zip(at_min.tolist(), ranks.tolist(), strict=True):
        held = chosen.get(int(place[index]))
        if held is None or rank < held:
            chosen[int(place[index])] = rank
    return np.array([index for index, rank in zip(at_min.tolist(), ranks.tolist(), strict=True)
                     if chosen[int(place[index])] == rank])


def _cheapest(store: Store, query: Query, ranking: int, best: dict[int, int],
              ranked_totals: np.ndarray) -> dict[int, dict[str, object]]:
    """Each day's cheapest result (day -> row) as `GET /v1/search` shows its total (in
    `currency`, else the listing's own)."""
    if not best:
        return {}
    rows = sorted(set(best.values()))
    keys = sqlite.keys(store.connection, rows)
    fees_of = sqlite.fees_of(store.connection, rows)
    place_ids = store.place_ids(rows)
    # One read of the nights of every day's stay of these rows (a strip has a few cheapest rows).
    entries = store.calendar.entries_for_nights(np.array(rows), np.arange(query.checkin, query.checkin + max(best)
                                                                            + query.nights))
    price_of = dict(zip(rows, store.calendar.entry("entry_price", entries).tolist(), strict=True))
    currency_of = dict(zip(rows, store.calendar.entry("entry_currency", entries).tolist(), strict=True))
    shown_of: dict[int, dict[str, object]] = {}
    for day, row in best.items():
        checkin = query.checkin + day
        prices = price_of[row][day : day + query.nights]
        currencies = currency_of[row][day : day + query.nights]
        shown = currencies[0] if query.currency is None else query.currency
        total = int(ranked_totals[day])
        if shown != ranking:
            _, fixed, percent = fees.breakdown(store.fx, fees_of.get(row, []), checkin, query.guests, prices,
                                               currencies, shown)
            total = engine.exact_stay_total(store.fx, prices, currencies, fixed, percent, shown)
        source, listing_id = keys[row]
        shown_of[day] = {"total": format_minor(total, shown), "currency": CURRENCIES[shown], "source": source,
                         "listing_id": listing_id, "place_id": place_ids.get(row)}
    return shown_of
