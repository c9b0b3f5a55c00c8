"""What a watch tells its client of a set of places, given what it last said (`store.Placed`
per place) and what matches now: the events, and the state they leave.

What matches now comes from `batch.py` (search's rules over many (watch, row) pairs at once,
totals as a search result's `total`); a place's offer is its cheapest matching listing (by the
ranking total, as search ranks).
"""

from __future__ import annotations

from dataclasses import dataclass

import msgspec

from staystream.events.money import CURRENCIES, format_minor
from staystream.watches.store import Event, Placed

DROP_PERCENT = 1  # a price_drop needs the total at least this far below the last one sent
_json = msgspec.json.Encoder()


@dataclass(frozen=True)
class Offer:
    row: int
    ranked: int  # total in the ranking currency (which offer of a place is cheapest)
    placed: Placed  # what an event tells: listing, total in the shown currency


def changes(
    watch_seq: int, said: dict[str, Placed], now: dict[str, Offer], places: set[str], every_change: bool
) -> tuple[list[Event], list[tuple[int, str, Placed]], list[tuple[int, str]]]:
    """For the `places` looked at: the events, the state to keep and the state to drop. With
    `every_change` (the watch's `changes` opt-in) any other change of a place's total or of the
    listing offering it is a `price_change`: each change is told once, a drop of 1% as before."""
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
            elif every_change and new != before:
                previous = before.total if new.currency == before.currency else None
                events.append(_event(watch_seq, "price_change", pid, new, previous))
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
