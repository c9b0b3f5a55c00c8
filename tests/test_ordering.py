"""Last-writer-wins against a brute-force model, over real HTTP: arrival order and request splits.

The model is the contract read literally (v1.1, "one fact at a time"): a night holds three
facts, the price, the availability and the stay rule; per (listing, night, fact) the greatest
`changed_at` wins, and at equal `changed_at` the later arrival. A `rate` sets all three, a
`price`, `availability` or `stay_rule` event one. Whatever the order and however the events are
cut into requests, the server's calendar must equal the model's; and where no two events tie on
a night's fact with different values, every order must give the same calendar.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass

import httpx
from hypothesis import given, settings
from hypothesis import strategies as st

from wire_events import calendar, fact, night, nights, post_ok, rate, stamp, unique_id

EXPONENTS = {"EUR": 2, "JPY": 0, "KWD": 3}
NIGHTS_SPAN = 80  # crosses a 64-night calendar page
GRACE_SECONDS = 5.0  # calendar.GRACE_SECONDS: a released entry is reused only after this
KINDS = ("rate", "price", "availability", "stay_rule")
FACTS_OF = {"rate": ("price", "available", "min_nights"), "price": ("price",), "availability": ("available",),
            "stay_rule": ("min_nights",)}
written: list[tuple[str, dict[str, dict[str, object]]]] = []  # (listing id, expected calendar)


@dataclass(frozen=True)
class Change:
    """One calendar event, kept abstract so the model and the request are built from the same thing."""

    unit: int  # which of the example's listings
    start: int
    nights: int
    changed: int  # seconds after the clock base
    minor: int | None  # None: no price (a `rate` unavailable without one)
    currency: str
    min_nights: int
    kind: str = "rate"
    available: bool = True  # of an `availability` event; a rate is available when it has a price

    def price(self) -> str | None:
        if self.minor is None:
            return None
        exponent = EXPONENTS[self.currency]
        whole, fraction = divmod(self.minor, 10**exponent)
        return f"{whole}.{fraction:0{exponent}d}" if exponent else str(whole)

    def event(self, listing_id: str) -> dict[str, object]:
        end = self.start + self.nights
        if self.kind == "price":
            return fact("price", listing_id, self.start, end, price=self.price(), currency=self.currency,
                        changed=self.changed)
        if self.kind == "availability":
            return fact("availability", listing_id, self.start, end, available=self.available, changed=self.changed)
        if self.kind == "stay_rule":
            return fact("stay_rule", listing_id, self.start, end, min_nights=self.min_nights, changed=self.changed)
        extra: dict[str, object] = {"min_nights": self.min_nights}
        if self.minor is None:
            extra["available"] = False
        return rate(listing_id, self.start, end, self.price(), changed=self.changed,
                    currency=self.currency, **extra)

    def facts(self) -> dict[str, object]:
        """fact -> the value it sets, as the calendar shows it."""
        price = self.price()
        values = {
            "price": {"price": price, "currency": None if price is None else self.currency},
            "available": {"available": self.available if self.kind == "availability" else self.minor is not None},
            "min_nights": {"min_nights": self.min_nights},
        }
        return {name: values[name] for name in FACTS_OF[self.kind]}


def model(arrivals: list[Change], units: int) -> list[dict[str, dict[str, object]]]:
    """Per listing, night -> shown value: per fact the greatest changed_at wins, ties go to the
    later arrival; a fact never set is null; `changed_at` is the newest of the night's facts."""
    calendars: list[dict[str, dict[str, tuple[int, dict[str, object]]]]] = [{} for _ in range(units)]
    for change in arrivals:
        for offset in range(change.start, change.start + change.nights):
            held = calendars[change.unit].setdefault(night(offset), {})
            for name, value in change.facts().items():
                if name not in held or change.changed >= held[name][0]:
                    held[name] = (change.changed, value)
    shown = []
    for facts in calendars:
        days = {}
        for day, held in sorted(facts.items()):
            value: dict[str, object] = {"night": day, "price": None, "currency": None, "available": None,
                                        "min_nights": None}
            for _, fields in held.values():
                value.update(fields)
            value["changed_at"] = stamp(max(changed for changed, _ in held.values()))
            days[day] = value
        shown.append(days)
    return shown


def conflicting_ties(changes: list[Change]) -> bool:
    """Whether some night's fact has its newest changed_at shared by events with different values."""
    newest: dict[tuple[int, int, str], tuple[int, set[tuple]]] = {}
    for change in changes:
        for name, fields in change.facts().items():
            value = tuple(sorted(fields.items()))
            for offset in range(change.start, change.start + change.nights):
                held = newest.get((change.unit, offset, name))
                if held is None or change.changed > held[0]:
                    newest[change.unit, offset, name] = (change.changed, {value})
                elif change.changed == held[0]:
                    held[1].add(value)
    return any(len(values) > 1 for _, values in newest.values())


@st.composite
def changes(draw: st.DrawFn, clock: st.SearchStrategy[int]) -> Change:
    start = draw(st.integers(0, NIGHTS_SPAN - 1))
    currency = draw(st.sampled_from(sorted(EXPONENTS)))
    kind = draw(st.sampled_from(KINDS))
    return Change(
        unit=draw(st.integers(0, 1)),
        start=start,
        nights=draw(st.integers(1, min(40, NIGHTS_SPAN - start))),
        changed=draw(clock),
        minor=draw(st.integers(0, 10**6) if kind == "price" else st.none() | st.integers(0, 10**6)),
        currency=currency,
        min_nights=draw(st.integers(1, 3)),
        kind=kind,
        available=draw(st.booleans()),
    )


@st.composite
def arrivals(draw: st.DrawFn, events: list[Change]) -> list[list[Change]]:
    """The events (some sent twice) in some order, cut into requests."""
    resent = draw(st.lists(st.sampled_from(events), max_size=3)) if events else []
    order = draw(st.permutations(events + resent))
    cuts = sorted(draw(st.sets(st.integers(1, max(1, len(order) - 1)), max_size=4))) if len(order) > 1 else []
    bounds = [0, *cuts, len(order)]
    return [order[a:b] for a, b in zip(bounds, bounds[1:], strict=False) if a < b]


few_ties = st.integers(0, 3000)  # seconds after the clock base: stays in the past
many_ties = st.integers(0, 4)
event_sets = st.one_of(st.lists(changes(few_ties), min_size=1, max_size=10),
                       st.lists(changes(many_ties), min_size=1, max_size=10))


def send(client: httpx.Client, requests: list[list[Change]], listing_ids: list[str]) -> None:
    for request in requests:
        post_ok(client, [change.event(listing_ids[change.unit]) for change in request])


@settings(max_examples=60, deadline=None)
@given(data=st.data(), events=event_sets)
def test_any_order_and_split_gives_the_model_calendar(server, data: st.DataObject, events: list[Change]) -> None:
    first, second = data.draw(arrivals(events)), data.draw(arrivals(events))
    calendars = []
    with server.client() as client:
        for requests in (first, second):
            listing_ids = [unique_id("order"), unique_id("order")]
            send(client, requests, listing_ids)
            expected = model([change for request in requests for change in request], 2)
            got = [nights(client, listing_id) if expected[unit] else {} for unit, listing_id in enumerate(listing_ids)]
            assert got == expected
            for unit, listing_id in enumerate(listing_ids):
                if not expected[unit]:  # no event for it: the server never heard of it
                    assert calendar(client, listing_id).status_code == 404
            written.extend(
                (listing_id, calendar) for listing_id, calendar in zip(listing_ids, expected, strict=False) if calendar
            )
            calendars.append(got)
    if not conflicting_ties(events):
        assert calendars[0] == calendars[1]


def test_reused_entries_never_change_another_listings_calendar(server) -> None:
    """Overwritten values free their calendar entries; once reused, no other calendar may move."""
    rng = random.Random(11)
    expected: dict[str, dict[str, dict[str, object]]] = {}
    with server.client() as client:
        def write_burst(count: int) -> None:
            listing_ids = [unique_id("reuse") for _ in range(count)]
            history = []
            for step in range(6):  # each step overwrites most nights of the step before
                batch = [
                    Change(
                        rng.randrange(count),
                        rng.randrange(60),
                        rng.randrange(1, 20),
                        step * 10 + rng.randrange(10),
                        rng.randrange(10**5),
                        "EUR",
                        1,
                    )
                    for _ in range(30)
                ]
                send(client, [batch], listing_ids)
                history.extend(batch)
            by_unit = model(history, count)
            expected.update((listing_ids[unit], calendar) for unit, calendar in enumerate(by_unit) if calendar)

        write_burst(2)
        time.sleep(GRACE_SECONDS + 0.5)  # the entries released above become free for reuse
        write_burst(2)
        for listing_id, calendar in [*written, *expected.items()]:
            assert nights(client, listing_id) == calendar, listing_id
