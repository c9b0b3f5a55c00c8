"""Expedia Group (Expedia, Hotels.com, VRBO) EQC Availability & Rates: `AvailRateUpdateRQ`.

Answers `AvailRateUpdateRS` with `<Success/>` (possibly holding `<Warning>`s) or `<Error>`s;
as at Expedia, with an Error **nothing in the message is applied**, so a sender fixes and
resends the whole message. Each element becomes the facts it really carries (`facts.py`);
choices (docs/adapters.md says why):

- a product is the listing `{Hotel@id}:{RoomType@id}:{RatePlan@id}`, its property the hotel;
- `DateRange@from`/`@to` are inclusive nights, `sun`..`sat` masks apply, ranges may repeat;
- `Rate` sets the **price** fact: `PerDay@rate`, else a `PerOccupancy@rate` by the rule of the
  OTA adapter (the source's occupancy, 2 unless the sources file says otherwise); its currency
  is `Rate@currency`, else the property's or source's from the sources file (Expedia fixes it
  per property), else an error;
- `RoomType@closed`, `Inventory` (0 / > 0) and `RatePlan@closed` set the **availability** fact,
  no currency needed. Room-level facts apply to the rate plans the element names and to every
  other rate plan of the room type the store or the message knows; a named rate plan is open
  when every flag the element gives (room closed, inventory, rate plan closed) says open;
- `Restrictions@minLOS` sets the **stay rule**; `maxLOS`, closed-to-arrival and -departure have
  no fact and are ignored with a Warning;
- EQC messages carry no timestamp: `changed_at` is when the message was received (Expedia
  expects one message in flight per property, so arrival order is the sender's order);
- an element or attribute the adapter does not read is a Warning (7001), never an Error;
- the `Authentication` credentials are neither checked nor kept (the API's own credentials
  guard the route).

Error codes follow Expedia's ranges, values ours: 2xxx the message cannot be read,
3xxx its content is invalid (3202 an invalid rate, as at Expedia), 7xxx warnings.
"""

from __future__ import annotations

import datetime as dt
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from decimal import Decimal

from staystream.adapters.facts import Availability, Fact, Price, StayRule, events, nights_between
from staystream.adapters.messages import (
    Invalid,
    NoProducts,
    Outcome,
    Problem,
    Products,
    bool_attr,
    code_attr,
    date_attr,
    decimal_attr,
    grouped,
    int_attr,
    located,
    occupancy_rank,
    text_attr,
    unread_parts,
    weekdays_attr,
)
from staystream.adapters.source_settings import DEFAULTS, SourceSettings
from staystream.adapters.xmlsafe import XMLRejected, children, parse_document, to_bytes
from staystream.events.ingest import MAX_MIN_NIGHTS
from staystream.events.money import CURRENCY_INDEX

RS_NAMESPACE = "http://www.expediaconnect.com/EQC/AR/2007/02"  # what Expedia answers with, for both RQ versions
WEEKDAYS = {"mon": 0, "tue": 1, "wed": 2, "thu": 3, "fri": 4, "sat": 5, "sun": 6}
MAX_RANGE_NIGHTS = 1100
MAX_PRODUCT_NIGHTS = 1_000_000
MAX_REPORTED = 100
# Codes (see the module docstring).
UNREADABLE, NOT_AR = 2001, 2002
MISSING, INVALID, INVALID_DATE, INVALID_RATE, TOO_LARGE = 3001, 3002, 3003, 3202, 3010
IGNORED, NO_RATE_PLAN = 7001, 7002
# What the adapter reads of an AvailRateUpdate (`unread_parts` warns about the rest, code 7001).
SCHEMA = {
    "AvailRateUpdate": (frozenset(), frozenset({"DateRange", "RoomType"})),
    "DateRange": (frozenset({"from", "to", *WEEKDAYS}), frozenset()),
    "RoomType": (frozenset({"id", "closed"}), frozenset({"Inventory", "RatePlan"})),
    "Inventory": (frozenset({"totalInventoryAvailable", "flexibleAllocation"}), frozenset()),
    "RatePlan": (frozenset({"id", "closed"}), frozenset({"Rate", "Restrictions"})),
    "Rate": (frozenset({"currency", "lengthOfStay"}), frozenset({"PerDay", "PerOccupancy"})),
    "PerDay": (frozenset({"rate"}), frozenset()),
    "PerOccupancy": (frozenset({"rate", "occupancy"}), frozenset()),
    "Restrictions": (frozenset({"minLOS", "maxLOS", "closedToArrival", "closedToDeparture"}), frozenset()),
}


@dataclass
class Message:
    """An RQ as read: its hotel and root, or the faults that stop it as a whole."""

    hotel: str | None = None
    root: ET.Element | None = None
    soap_namespace: str | None = None
    errors: list[Problem] = field(default_factory=list)


def parse(document: bytes, source: str, settings: SourceSettings = DEFAULTS, products: Products | None = None,
          received_at: dt.datetime | None = None) -> tuple[Message, Outcome]:
    """A whole RQ as fact events, with errors (then nothing applies) and warnings."""
    message = open_message(document)
    return message, convert(message, source, settings, products, received_at)


def open_message(document: bytes) -> Message:
    """Parse the envelope (root, `Hotel@id`). Never raises."""
    try:
        parsed = parse_document(document)
    except XMLRejected as exc:
        return Message(errors=[Problem("", f"the document was not read: {exc}", UNREADABLE)])
    root = parsed.root
    message = Message(root=root, soap_namespace=parsed.soap_namespace)
    if root.tag != "AvailRateUpdateRQ":
        message.errors.append(Problem(root.tag, f"'{root.tag}' is not an AvailRateUpdateRQ", NOT_AR))
        return message
    hotel = root.find("Hotel")
    try:
        if hotel is None:
            raise Invalid("Hotel", "missing; expected <Hotel id=\"...\"/>", MISSING)
        message.hotel = code_attr(hotel, "id", "Hotel", required=True)
    except Invalid as exc:
        message.errors.append(_coded(exc.problem))
    return message


def convert(message: Message, source: str, settings: SourceSettings = DEFAULTS, products: Products | None = None,
            received_at: dt.datetime | None = None) -> Outcome:
    """Events for every update in the message; any error means the caller stores none."""
    outcome = Outcome(errors=list(message.errors))
    if outcome.errors or message.root is None or message.hotel is None:
        return outcome
    moment = received_at or dt.datetime.now(dt.UTC)
    reader = _Reader(message.hotel, source, settings.for_property(message.hotel), products or NoProducts(),
                     moment, outcome)
    updates = list(children(message.root, "AvailRateUpdate", ""))
    reader.collect_rate_plans(updates)
    for update, path in updates:
        outcome.elements += 1
        unread_parts(update, path, SCHEMA, outcome, IGNORED)
        try:
            reader.update(update, path)
        except Invalid as exc:
            outcome.errors.append(_coded(exc.problem))
        except _TooMuch as exc:
            outcome.errors.append(Problem(path, str(exc), TOO_LARGE))
            break
    if not updates:
        outcome.errors.append(Problem("AvailRateUpdate", "missing; expected at least one", MISSING))
    return outcome


class _TooMuch(Exception):
    """The message changes more product-nights than one request may."""


class _Reader:
    def __init__(self, hotel: str, source: str, settings: SourceSettings, products: Products, moment: dt.datetime,
                 outcome: Outcome) -> None:
        self.hotel, self.source, self.settings, self.known = hotel, source, settings, products
        self.changed_at, self.outcome = moment, outcome
        self.named_plans: dict[str, set[str]] = {}
        self.budget = MAX_PRODUCT_NIGHTS

    def collect_rate_plans(self, updates: list[tuple[ET.Element, str]]) -> None:
        for update, _ in updates:
            for room in update.findall("RoomType"):
                room_id = (room.get("id") or "").strip()
                for plan in room.findall("RatePlan"):
                    plan_id = (plan.get("id") or "").strip()
                    if room_id and plan_id and ":" not in room_id + plan_id:
                        self.named_plans.setdefault(room_id, set()).add(plan_id)

    def update(self, update: ET.Element, path: str) -> None:
        nights: set[dt.date] = set()
        ranges = list(children(update, "DateRange", path))
        if not ranges:
            raise Invalid(f"{path}/DateRange", "missing; expected from and to (inclusive)", MISSING)
        for date_range, range_path in ranges:
            nights.update(_nights(date_range, range_path))
        rooms = list(children(update, "RoomType", path))
        if not rooms:
            raise Invalid(f"{path}/RoomType", "missing; expected at least one RoomType", MISSING)
        for room, room_path in rooms:
            self.room(room, room_path, sorted(nights))

    def room(self, room: ET.Element, path: str, nights: list[dt.date]) -> None:
        room_id = code_attr(room, "id", path, required=True)
        room_flags: list[bool] = []
        closed = bool_attr(room, "closed", path)
        if closed is not None:
            room_flags.append(not closed)
        inventory = room.find("Inventory")
        if inventory is not None:
            count = None
            for name in ("totalInventoryAvailable", "flexibleAllocation"):
                count = int_attr(inventory, name, f"{path}/Inventory", 0, 1_000_000)
                if count is not None:
                    break
            if count is None:
                raise Invalid(f"{path}/Inventory", "has no totalInventoryAvailable or flexibleAllocation", MISSING)
            room_flags.append(count > 0)
        named: set[str] = set()
        for plan, plan_path in children(room, "RatePlan", path):
            plan_id = code_attr(plan, "id", plan_path, required=True)
            assert plan_id is not None
            listing = f"{self.hotel}:{room_id}:{plan_id}"
            named.add(listing)
            facts = self.plan_facts(plan, plan_path, room_flags)
            if not facts:
                self.outcome.warn(plan_path, "sets no rate, closed flag or minLOS; nothing was changed", IGNORED)
            for fact in facts:
                self.apply([listing], nights, fact, plan_path)
        if not room_flags:
            if not named:
                self.outcome.warn(path, "holds no RatePlan, Inventory or closed flag; nothing was changed", IGNORED)
            return
        others = set(self.known.listing_ids(f"{self.hotel}:{room_id}:"))
        others.update(f"{self.hotel}:{room_id}:{plan}" for plan in self.named_plans.get(room_id or "", ()))
        others -= named
        if not others and not named:
            self.outcome.warn(path, f"no rate plan of room type '{room_id}' is known yet (send its rates "
                                    "first); nothing was changed", NO_RATE_PLAN)
        if others:
            self.apply(sorted(others), nights, Availability(all(room_flags)), path)

    def plan_facts(self, plan: ET.Element, path: str, room_flags: list[bool]) -> list[Fact]:
        facts: list[Fact] = []
        rates = list(children(plan, "Rate", path))
        if rates:
            # LOS pricing sends one Rate per lengthOfStay: the 1-night one is the nightly price
            nightly = [(rate, where) for rate, where in rates if (rate.get("lengthOfStay") or "1").strip() == "1"]
            if len(nightly) < len(rates):
                self.outcome.warn(f"{path}/Rate", "rates for stays longer than one night (lengthOfStay) are "
                                                  "not stored; ignored", IGNORED)
            if nightly:
                facts.append(self.price(*nightly[0]))
        flags = list(room_flags)
        closed = bool_attr(plan, "closed", path)
        if closed is not None:
            flags.append(not closed)
        if flags:
            facts.append(Availability(all(flags)))
        restrictions = plan.find("Restrictions")
        if restrictions is not None:
            where = f"{path}/Restrictions"
            min_nights = int_attr(restrictions, "minLOS", where, 1, MAX_MIN_NIGHTS)
            if min_nights is not None:
                facts.append(StayRule(min_nights))
            for name in ("maxLOS", "closedToArrival", "closedToDeparture"):
                if restrictions.get(name) is not None:
                    self.outcome.warn(located(where, name), f"{name} is not stored; ignored", IGNORED)
        return facts

    def price(self, rate: ET.Element, path: str) -> Price:
        amount = _amount(rate, path, self.settings.occupancy)
        currency = text_attr(rate, "currency", path)
        if currency is None:
            currency = self.settings.currency
            if currency is None:
                raise Invalid(located(path, "currency"), "missing, and the sources file gives no currency for "
                                                         "this source or property; expected an ISO 4217 code",
                              INVALID_RATE)
        if currency.upper() not in CURRENCY_INDEX:
            raise Invalid(located(path, "currency"), f"'{currency}' is not an ISO 4217 currency code", INVALID_RATE)
        return Price(amount, currency.upper())

    def apply(self, listings: list[str], nights: list[dt.date], fact: Fact, path: str) -> None:
        self.budget -= len(listings) * len(nights)
        if self.budget < 0:
            raise _TooMuch(f"the message changes more than {MAX_PRODUCT_NIGHTS} product-nights; split it")
        for listing in listings:
            self.outcome.add(events(self.source, listing, nights, fact, self.changed_at), path)


def _nights(date_range: ET.Element, path: str) -> list[dt.date]:
    first = date_attr(date_range, "from", path, required=True)
    last = date_attr(date_range, "to", path, required=True)
    assert first is not None and last is not None
    if last < first:
        raise Invalid(located(path, "to"), f"'{last}' is before from '{first}'; expected to >= from "
                                           "(both are nights, inclusive)", INVALID_DATE)
    if (last - first).days + 1 > MAX_RANGE_NIGHTS:
        raise Invalid(located(path, "to"), f"'{last}' is {(last - first).days + 1} nights from '{first}'; "
                                           f"expected at most {MAX_RANGE_NIGHTS}", INVALID_DATE)
    return nights_between(first, last, weekdays_attr(date_range, path, WEEKDAYS))


def _amount(rate: ET.Element, path: str, occupancy: int) -> Decimal:
    """`PerDay@rate`, else the `PerOccupancy@rate` for the source's occupancy (or nearest)."""
    per_day = rate.find("PerDay")
    if per_day is not None:
        amount = decimal_attr(per_day, "rate", f"{path}/PerDay")
        if amount is None:
            raise Invalid(located(f"{path}/PerDay", "rate"), "missing; expected an amount", INVALID_RATE)
        return amount
    candidates = []
    for per_occupancy, occupancy_path in children(rate, "PerOccupancy", path):
        guests = int_attr(per_occupancy, "occupancy", occupancy_path, 1, 99, required=True)
        candidates.append((occupancy_rank(guests, occupancy), per_occupancy, occupancy_path))
    if not candidates:
        raise Invalid(path, "has no PerDay or PerOccupancy amount; expected one", INVALID_RATE)
    _, chosen, chosen_path = min(candidates, key=lambda candidate: candidate[0])
    amount = decimal_attr(chosen, "rate", chosen_path)
    if amount is None:
        raise Invalid(located(chosen_path, "rate"), "missing; expected an amount", INVALID_RATE)
    return amount


def _coded(problem: Problem) -> Problem:
    """An error from the shared readers, with an EQC code instead of an OTA one."""
    code = {321: MISSING, 15: INVALID_DATE, 61: INVALID_RATE}.get(problem.code, problem.code)
    if code == 320:
        code = INVALID_RATE if "rate" in problem.where.lower() else INVALID
    return Problem(problem.where, problem.message, code, problem.type)


def response(message: Message, outcome: Outcome) -> bytes:
    """`AvailRateUpdateRS`: `<Success/>` with any `<Warning>`s, or the `<Error>`s (none applied)."""
    root = ET.Element("AvailRateUpdateRS", {"xmlns": RS_NAMESPACE})
    if outcome.errors:
        for problem in outcome.errors[:MAX_REPORTED]:
            ET.SubElement(
                root, "Error", {"code": str(problem.code)}
            ).text = f"{problem}; nothing in the message was applied"
        if len(outcome.errors) > MAX_REPORTED:
            ET.SubElement(
                root, "Error", {"code": str(INVALID)}
            ).text = f"{len(outcome.errors) - MAX_REPORTED} more errors"
    else:
        success = ET.SubElement(root, "Success")
        for problem in grouped(outcome.warnings)[:MAX_REPORTED]:
            ET.SubElement(success, "Warning", {"code": str(problem.code)}).text = str(problem)
    return to_bytes(root, message.soap_namespace)
