"""What a watch says of a set of places: which match now, at what total, and the events that
tells its client, given what it last said (`store.Placed` per place).

Matching is search's own (`engine.find_stays`, `engine.in_price_bounds`; `batch.py` applies the
same rules to many (watch, row) pairs at once), and a total is computed as a search
result's `total` is (`engine.exact_total` in the watch's `currency`, else the listing's own), so
an event's total is what `/v1/search` shows for the same query. A place's offer is its cheapest
matching listing (by the ranking total, as search ranks).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import msgspec

from staystream.events.fx import Fx
from staystream.events.money import CURRENCIES, format_minor
from staystream.memory.shm import SharedArrays
from staystream.search.engine import Query, exact_total, find_stays, in_price_bounds, ranking_currency
from staystream.watches.places import place_id, place_rows
from staystream.watches.store import Event, Placed

DROP_PERCENT = 1  # a price_drop needs the total at least this far below the last one sent
_json = msgspec.json.Encoder()
Names = Callable[[list[int]], dict[int, tuple[str, str]]]  # rows -> (source, listing_id)


@dataclass(frozen=True)
class Offer:
    row: int
    ranked: int  # total in the ranking currency (which offer of a place is cheapest)
    placed: Placed  # what an event tells: listing, total in the shown currency


def current_offers(shared: SharedArrays, fx: Fx, query: Query, names: Names) -> dict[str, Offer]:
    """The places that match `query` (search's `find_stays` and price bounds over the whole
    area), each with its cheapest offer, by place id."""
    if query.currency is not None and query.currency not in fx.rates:
        return {}  # search answers 400 for it; the watch matches nothing until the table has it
    ranking = ranking_currency(fx, query.currency)
    stays = find_stays(shared, fx, query, ranking)
    keep = in_price_bounds(stays.total, query, ranking)
    rows, entries, totals = stays.rows[keep], stays.entries[:, keep], stays.total[keep]
    if not len(rows):
        return {}
    places = place_rows(shared, rows)
    keys = names(sorted(set(rows.tolist()) | set(places.tolist())))
    prices, currencies = shared["entry_price"][entries].T.tolist(), shared["entry_currency"][entries].T.tolist()
    found: dict[str, Offer] = {}
    for row, place, ranked, price, currency in zip(
            rows.tolist(), places.tolist(), totals.tolist(), prices, currencies, strict=True):
        if row not in keys or place not in keys:
            continue  # only if SQLite lost a row shared memory still has (search skips it too)
        shown = currency[0] if query.currency is None else query.currency
        offer = Offer(row, ranked, Placed(place, *keys[row], exact_total(fx, price, currency, shown), shown))
        pid = place_id(*keys[place])
        best = found.get(pid)
        if best is None or (ranked, row) < (best.ranked, best.row):
            found[pid] = offer
    return found


def changes(
    watch_seq: int, said: dict[str, Placed], now: dict[str, Offer], places: set[str]
) -> tuple[list[Event], list[tuple[int, str, Placed]], list[tuple[int, str]]]:
    """For the `places` looked at: the events, the state to keep and the state to drop."""
    events, placed, gone = [], [], []
    for pid in sorted(places):
        before, offer = said.get(pid), now.get(pid)
        if offer is not None and before is None:
            events.append(_event(watch_seq, "entered", pid, offer.placed))
            placed.append((watch_seq, pid, offer.placed))
        elif offer is None and before is not None:
            events.append(_event(watch_seq, "left", pid, before))
            gone.append((watch_seq, pid))
        elif offer is not None and before is not None:
            new = offer.placed
            if new.currency == before.currency and new.total * 100 <= before.total * (100 - DROP_PERCENT):
                events.append(_event(watch_seq, "price_drop", pid, new, before.total))
                placed.append((watch_seq, pid, new))
    return events, placed, gone


def _event(watch_seq: int, name: str, pid: str, placed: Placed, previous: int | None = None) -> Event:
    data: dict[str, object] = {
        "place_id": pid, "source": placed.source, "listing_id": placed.listing_id,
        "total": format_minor(placed.total, placed.currency), "currency": CURRENCIES[placed.currency],
    }
    if previous is not None:
        data["previous_total"] = format_minor(previous, placed.currency)
    return Event(watch_seq, name, _json.encode(data))
