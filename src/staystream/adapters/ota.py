"""OpenTravel (OTA 2003/05) ARI notifications: rates, availability and inventory counts.

Reads `OTA_HotelRateAmountNotifRQ`, `OTA_HotelAvailNotifRQ` and `OTA_HotelInvCountNotifRQ` (as
Booking.com, Google Hotel Center, SiteMinder, Sabre and AlpineBits senders write them, bare or
in a SOAP envelope) and answers the matching `...RS`. Each element becomes the facts it really
carries (`facts.py`), nothing read from the store. The choices, with their reasons, are in
docs/adapters.md:

- a product is the listing `{HotelCode}:{InvTypeCode}:{RatePlanCode}`, its property the hotel;
  an element without `RatePlanCode` applies to every rate plan of the room type the store (or
  this message) knows; with none known it changes nothing and says so in a Warning;
- `Start`/`End` are inclusive nights; they and the `Mon`..`Sun` (`Weds`, `Thur`) masks may sit
  on `StatusApplicationControl` or on each `Rate` (the `Rate`'s win);
- a rate sets the **price** fact: the amount for the source's occupancy (2 guests unless the
  sources file says otherwise), else the per-room one (no `NumberOfGuests`), else the nearest
  occupancy (fewer guests on a tie); `AmountAfterTax` wins over `AmountBeforeTax`; integer
  amounts with `DecimalPlaces` are minor units (Booking.com); the currency is the amount's, the
  `Rate`'s, else the property's or source's from the sources file;
- Master `RestrictionStatus`, `BookingLimit` and `InvCount@Count` set the **availability**
  fact; `SetMinLOS`/`SetForwardMinStay` the **stay rule**; closed-to-arrival/-departure, max
  stay and booking offsets have no fact and are reported as ignored in Warnings;
- the message `TimeStamp` is every event's `changed_at`: without a zone it is in the source's
  time zone (default UTC); without a TimeStamp it is the receipt time, with a Warning;
- anything the adapter does not read (an extension, a newer schema's field) is a Warning,
  never a rejected document.
"""

from __future__ import annotations

import datetime as dt
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from decimal import Decimal

from staystream.adapters.facts import Availability, Fact, Price, StayRule, events, nights_between
from staystream.adapters.messages import (
    NOT_IMPLEMENTED,
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

OTA_NAMESPACE = "http://www.opentravel.org/OTA/2003/05"
# RQ root -> (container, update element); the RS is the root with RS for RQ.
MESSAGES = {
    "OTA_HotelRateAmountNotifRQ": ("RateAmountMessages", "RateAmountMessage"),
    "OTA_HotelAvailNotifRQ": ("AvailStatusMessages", "AvailStatusMessage"),
    "OTA_HotelInvCountNotifRQ": ("Inventories", "Inventory"),
}
WEEKDAYS = {"Mon": 0, "Tue": 1, "Weds": 2, "Wed": 2, "Thur": 3, "Thu": 3, "Fri": 4, "Sat": 5, "Sun": 6}
MAX_RANGE_NIGHTS = 1100  # one element: three years of nights; more is a typo in End
MAX_PRODUCT_NIGHTS = 1_000_000  # one message: product x night updates (Expedia allows 5,000)
MAX_REPORTED = 100  # errors or warnings in one RS; the rest are counted
# OTA Error Codes (ERR) used, with the ShortText the RS gives them.
SHORT_TEXT = {15: "Invalid date", 61: "Invalid currency code", 320: "Invalid value",
              321: "Required field missing", 450: "Unable to process", 783: "Room/rate combination not found"}
_ROOT = re.compile(rb"<(?:[A-Za-z_][\w.-]*:)?(OTA_Hotel(?:RateAmount|Avail|InvCount)NotifRQ)\b")

_DAYS = frozenset(WEEKDAYS)
_CONTROL = frozenset({"Start", "End", "InvTypeCode", "RatePlanCode", "AllInvCode", *_DAYS,
                      # descriptive: they name the product, the codes above identify it
                      "InvCode", "InvType", "RatePlanType", "IsRoom", "RatePlanCodeType"})
# What the adapter reads of each update element (`unread_parts` warns about the rest).
SCHEMA = {
    "RateAmountMessage": (frozenset({"LocatorID"}), frozenset({"StatusApplicationControl", "Rates", "UniqueID"})),
    "AvailStatusMessage": (frozenset({"BookingLimit", "BookingLimitMessageType", "LocatorID"}),
                           frozenset({"StatusApplicationControl", "LengthsOfStay", "LengthOfStay",
                                      "RestrictionStatus", "UniqueID"})),
    "Inventory": (frozenset(), frozenset({"StatusApplicationControl", "InvCounts", "UniqueID"})),
    "StatusApplicationControl": (_CONTROL, frozenset()),
    "UniqueID": (frozenset({"Type", "ID", "Instance", "ID_Context"}), frozenset()),
    "Rates": (frozenset(), frozenset({"Rate"})),
    "Rate": (frozenset({"CurrencyCode", "DecimalPlaces", "Start", "End", *_DAYS}),
             # supplements and descriptions: the price is the base amount for the occupancy
             frozenset({"BaseByGuestAmts", "AdditionalGuestAmounts", "RateDescription", "MealsIncluded"})),
    "BaseByGuestAmts": (frozenset(), frozenset({"BaseByGuestAmt"})),
    "BaseByGuestAmt": (frozenset({"NumberOfGuests", "AgeQualifyingCode", "AmountAfterTax", "AmountBeforeTax",
                                  "CurrencyCode", "DecimalPlaces"}), frozenset()),
    "AdditionalGuestAmounts": (frozenset(), frozenset({"AdditionalGuestAmount"})),
    "AdditionalGuestAmount": (frozenset({"AgeQualifyingCode", "MaxAge", "MinAge", "Amount", "AmountAfterTax",
                                         "AmountBeforeTax", "CurrencyCode", "DecimalPlaces", "Type"}), frozenset()),
    "RateDescription": (frozenset({"Name", "Language"}), frozenset({"Text", "ListItem"})),
    "Text": (frozenset({"Language", "Formatted", "TextFormat"}), frozenset()),
    "ListItem": (frozenset({"ListItem", "Language"}), frozenset()),
    "MealsIncluded": (frozenset({"MealPlanCodes", "MealPlanIndicator", "Breakfast", "Lunch", "Dinner"}), frozenset()),
    "LengthsOfStay": (frozenset({"ArrivalDateBased", "FixedPatternLength"}), frozenset({"LengthOfStay"})),
    "LengthOfStay": (frozenset({"MinMaxMessageType", "Time", "TimeUnit", "RateTimeUnit"}), frozenset({"LOS_Pattern"})),
    "LOS_Pattern": (frozenset({"FullPatternLOS"}), frozenset()),
    "RestrictionStatus": (frozenset({"Status", "Restriction", "MinAdvancedBookingOffset",
                                     "MaxAdvancedBookingOffset"}), frozenset()),
    "InvCounts": (frozenset(), frozenset({"InvCount"})),
    "InvCount": (frozenset({"Count", "CountType"}), frozenset()),
}


@dataclass
class Message:
    """An RQ as read: what the RS must echo, the hotel, and the parsed root (if it parsed)."""

    name: str | None = None  # the RQ root name; None when the document is not one we read
    echo_token: str | None = None
    version: str | None = None
    target: str | None = None
    soap_namespace: str | None = None
    hotel: str | None = None
    timestamp: str | None = None  # as sent; read with the source's zone by `convert`
    root: ET.Element | None = None
    errors: list[Problem] = field(default_factory=list)  # faults of the message as a whole


def parse(document: bytes, source: str, settings: SourceSettings = DEFAULTS, products: Products | None = None,
          received_at: dt.datetime | None = None) -> tuple[Message, Outcome]:
    """A whole RQ document as fact events, with its errors and warnings."""
    message = open_message(document)
    return message, convert(message, source, settings, products, received_at)


def open_message(document: bytes) -> Message:
    """Parse the envelope: which RQ, its echo fields, hotel and TimeStamp. Never raises."""
    try:
        parsed = parse_document(document)
    except XMLRejected as exc:
        found = _ROOT.search(document, 0, 1 << 20)
        name = found.group(1).decode() if found else None
        return Message(name=name, errors=[Problem("", f"the document was not read: {exc}", 450, 7)])
    root = parsed.root
    message = Message(soap_namespace=parsed.soap_namespace, root=root,
                      echo_token=root.get("EchoToken"), version=root.get("Version"), target=root.get("Target"),
                      timestamp=root.get("TimeStamp"))
    if root.tag not in MESSAGES:
        message.errors.append(Problem(root.tag, f"'{root.tag}' is not a message this endpoint reads; "
                                                f"expected one of {', '.join(MESSAGES)}", 450, 7))
        return message
    message.name = root.tag
    container_name = MESSAGES[root.tag][0]
    try:
        container = root.find(container_name)
        if container is None:
            raise Invalid(container_name, "missing; expected the element holding the updates", 321, 10)
        message.hotel = code_attr(container, "HotelCode", container_name, required=True)
    except Invalid as exc:
        message.errors.append(exc.problem)
    return message


def convert(message: Message, source: str, settings: SourceSettings = DEFAULTS, products: Products | None = None,
            received_at: dt.datetime | None = None) -> Outcome:
    """The message's updates as fact events, in element order."""
    outcome = Outcome(errors=list(message.errors))
    if message.errors or message.root is None or message.name is None:
        return outcome
    assert message.hotel is not None
    settings = settings.for_property(message.hotel)
    try:
        changed_at = _changed_at(message, settings, received_at or dt.datetime.now(dt.UTC), outcome)
    except Invalid as exc:
        outcome.errors.append(exc.problem)
        return outcome
    container_name, element_name = MESSAGES[message.name]
    container = message.root.find(container_name)
    assert container is not None
    reader = _Reader(message, source, settings, products or NoProducts(), changed_at, outcome)
    convert_one = {
        "OTA_HotelRateAmountNotifRQ": reader.rate_amount,
        "OTA_HotelAvailNotifRQ": reader.avail_status,
        "OTA_HotelInvCountNotifRQ": reader.inventory,
    }[message.name]
    elements = list(children(container, element_name, ""))
    _unread_around(message.root, container, element_name, outcome)
    reader.collect_rate_plans(elements)
    for element, path in elements:
        outcome.elements += 1
        unread_parts(element, path, SCHEMA, outcome)
        try:
            convert_one(element, path)
        except Invalid as exc:
            outcome.errors.append(exc.problem)
        except _TooMuch as exc:
            outcome.errors.append(Problem(path, str(exc), 450, 3))
            break
    if not elements:
        outcome.warn(container_name, f"holds no {element_name}; nothing was changed", 321, 11)
    return outcome


class _TooMuch(Exception):
    """The message changes more product-nights than one request may."""


class _Reader:
    """Turns update elements into fact events; state shared across one message."""

    def __init__(self, message: Message, source: str, settings: SourceSettings, products: Products,
                 changed_at: dt.datetime, outcome: Outcome) -> None:
        assert message.hotel is not None
        self.hotel, self.source, self.settings, self.known = message.hotel, source, settings, products
        self.changed_at, self.outcome = changed_at, outcome
        self.notif_type = (message.root.get("NotifType") or "Delta") if message.root is not None else "Delta"
        self.named_plans: dict[str, set[str]] = {}  # room type -> rate plans this message names
        self.budget = MAX_PRODUCT_NIGHTS

    def collect_rate_plans(self, elements: list[tuple[ET.Element, str]]) -> None:
        """Rate plans named anywhere in the message count as known for room-level elements."""
        for element, _ in elements:
            control = element.find("StatusApplicationControl")
            if control is None:
                continue
            room, plan = control.get("InvTypeCode"), control.get("RatePlanCode")
            if room and plan and ":" not in room + plan:
                self.named_plans.setdefault(room.strip(), set()).add(plan.strip())

    # -- the three messages -------------------------------------------------------------------

    def rate_amount(self, element: ET.Element, path: str) -> None:
        control, control_path = _control(element, path)
        products = self.products(control, control_path, path, hotel_level=False)
        if self.notif_type.lower() == "remove":
            # The rate is withdrawn: not sellable. The contract has no "remove the price" fact
            # short of a v1 rate, which would also reset the stay rule the message did not touch.
            self.apply(products, _nights(control, control_path), Availability(False), path)
            return
        rates = element.find("Rates")
        found = list(children(rates, "Rate", f"{path}/Rates")) if rates is not None else []
        if not found:
            raise Invalid(f"{path}/Rates", "missing; expected Rates/Rate with BaseByGuestAmts "
                                           "(or NotifType=\"Remove\" on the message)", 321, 10)
        changes = []  # all of an element's rates are read before any applies: all or none
        for rate, rate_path in found:
            nights = _nights(rate, rate_path, outer=(control, control_path))
            amount, currency = _amount(rate, rate_path, self.settings.occupancy)
            currency = currency or self.settings.currency
            if currency is None:
                raise Invalid(located(rate_path, "CurrencyCode"),
                              "missing, and the sources file gives no currency for this source or property; "
                              "expected an ISO 4217 code on Rate or BaseByGuestAmt", 321, 10)
            if currency not in CURRENCY_INDEX:
                raise Invalid(located(rate_path, "CurrencyCode"), f"'{currency}' is not an ISO 4217 currency code",
                              61, 3)
            changes.append((nights, Price(amount, currency)))
        for nights, price in changes:
            self.apply(products, nights, price, path)

    def avail_status(self, element: ET.Element, path: str) -> None:
        control, control_path = _control(element, path)
        nights = _nights(control, control_path)
        products = self.products(control, control_path, path)
        facts: list[Fact] = []
        limit = int_attr(element, "BookingLimit", path, 0, 1_000_000)
        if limit is not None:
            kind = text_attr(element, "BookingLimitMessageType", path) or "SetLimit"
            if kind == "SetLimit":
                facts.append(Availability(limit > 0))
            else:  # AdjustLimit is relative to a count we do not keep; RemoveLimit says nothing
                self.outcome.warn(located(path, "BookingLimitMessageType"),
                                  f"{kind} is not a count of rooms to sell; BookingLimit ignored")
        for status, status_path in children(element, "RestrictionStatus", path):
            for name in ("MinAdvancedBookingOffset", "MaxAdvancedBookingOffset"):
                if status.get(name) is not None:
                    self.outcome.warn(located(status_path, name), "booking offsets are not stored; ignored",
                                      type=NOT_IMPLEMENTED)
            value = text_attr(status, "Status", status_path)
            if value is None:
                continue
            if value.lower() not in ("open", "close"):
                raise Invalid(located(status_path, "Status"), f"'{value}' is not a status; expected Open or Close")
            restriction = text_attr(status, "Restriction", status_path) or "Master"
            if restriction.lower() == "master":
                facts.append(Availability(value.lower() == "open"))
            elif restriction.lower() in ("arrival", "departure"):
                self.outcome.warn(located(status_path, "Restriction"),
                                  f"closed-to-{restriction.lower()} is not stored; ignored", type=NOT_IMPLEMENTED)
            else:
                self.outcome.warn(located(status_path, "Restriction"),
                                  f"'{restriction}' is not a restriction read here (Master, Arrival, Departure); "
                                  "ignored", type=NOT_IMPLEMENTED)
        min_nights = self.min_stay(element, path)
        if min_nights is not None:
            facts.append(StayRule(min_nights))
        if not facts:
            if not element.findall("RestrictionStatus") and not element.findall("LengthsOfStay") and limit is None:
                self.outcome.warn(path, "sets no availability, restriction or minimum stay; nothing was changed")
            return
        for fact in facts:
            self.apply(products, nights, fact, path)

    def inventory(self, element: ET.Element, path: str) -> None:
        control, control_path = _control(element, path)
        nights = _nights(control, control_path)
        products = self.products(control, control_path, path, all_rooms=bool_attr(control, "AllInvCode", control_path))
        counts = element.find("InvCounts")
        count = None
        ignored: list[str] = []
        for inv_count, count_path in children(counts, "InvCount", f"{path}/InvCounts") if counts is not None else ():
            count_type = text_attr(inv_count, "CountType", count_path)
            if count_type not in (None, "2"):
                ignored.append(count_type)
                continue
            count = int_attr(inv_count, "Count", count_path, 0, 1_000_000, required=True)
        if count is None:
            if ignored:
                self.outcome.warn(f"{path}/InvCounts", f"no InvCount with CountType 2 (available to sell); "
                                                       f"CountType {', '.join(ignored)} ignored")
                return
            # AlpineBits FreeRooms: an Inventory without InvCounts means no room is free
            count = 0
        self.apply(products, nights, Availability(count > 0), path)

    # -- shared parts -------------------------------------------------------------------------

    def min_stay(self, element: ET.Element, path: str) -> int | None:
        """The minimum stay the element sets (the stricter of arrival and through), 1 if removed."""
        result: int | None = None
        stays = element.find("LengthsOfStay")
        found = list(children(stays, "LengthOfStay", f"{path}/LengthsOfStay")) if stays is not None else []
        found += children(element, "LengthOfStay", path)  # SynXis (HTNG) puts them right in the message
        for los, los_path in found:
            kind = text_attr(los, "MinMaxMessageType", los_path, required=True)
            assert kind is not None
            if kind in ("SetMinLOS", "SetForwardMinStay"):
                unit = text_attr(los, "TimeUnit", los_path) or text_attr(los, "RateTimeUnit", los_path) or "Day"
                if unit != "Day":
                    self.outcome.warn(located(los_path, "TimeUnit"),
                                      f"'{unit}' stays are not stored (only Day); ignored", type=NOT_IMPLEMENTED)
                    continue
                time = int_attr(los, "Time", los_path, 0, MAX_MIN_NIGHTS, required=True)
                assert time is not None
                result = max(result or 1, time, 1)  # Time="0" (some PMSs) means no minimum
            elif kind in ("RemoveMinLOS", "RemoveForwardMinStay"):
                result = max(result or 1, 1)
            elif kind in ("SetMaxLOS", "SetForwardMaxStay", "RemoveMaxLOS", "RemoveForwardMaxStay",
                          "FixedLOS", "FullPatternLOS"):
                self.outcome.warn(located(los_path, "MinMaxMessageType"), f"{kind} is not stored; ignored",
                                  type=NOT_IMPLEMENTED)
            else:
                self.outcome.warn(located(los_path, "MinMaxMessageType"),
                                  f"'{kind}' is not a length-of-stay type read here; ignored", type=NOT_IMPLEMENTED)
        return result

    def products(self, control: ET.Element, control_path: str, path: str, all_rooms: bool | None = False,
                 hotel_level: bool = True) -> list[str]:
        """The listing ids an element applies to (see the module docstring). Without `hotel_level`
        (rates) an element must name a room type or a rate plan."""
        plan = code_attr(control, "RatePlanCode", control_path)
        room = None if all_rooms else self.room_type(control, control_path)
        if room is None and plan is None and not all_rooms and not hotel_level:
            raise Invalid(located(control_path, "InvTypeCode"), "missing; it is required", 321, 10)
        if room is not None and plan is not None:
            return [f"{self.hotel}:{room}:{plan}"]
        listings = set(self.known.listing_ids(f"{self.hotel}:{room}:" if room is not None else f"{self.hotel}:"))
        for named_room, plans in self.named_plans.items():
            if room is None or named_room == room:
                listings.update(f"{self.hotel}:{named_room}:{p}" for p in plans)
        if plan is not None:  # AllInvCode, or no room type: that rate plan of every room type
            listings = {listing for listing in listings if listing.endswith(f":{plan}")}
        if not listings:
            what = (f"no room type with rate plan '{plan}' is known" if plan is not None else
                    "names no RatePlanCode and no rate plan of " + ("the hotel" if room is None else
                                                                   f"room type '{room}'") + " is known")
            self.outcome.warn(path, f"{what} yet (send its rates first); nothing was changed", 783, 3)
        return sorted(listings)

    def room_type(self, control: ET.Element, control_path: str) -> str | None:
        """`InvTypeCode`; some senders (travelguru, older PMSs) name the room type `InvCode`.
        None when neither is there: every room type (SiteMinder's rate-plan-only and SynXis'
        hotel-level updates)."""
        room = code_attr(control, "InvTypeCode", control_path)
        if room is None:
            room = code_attr(control, "InvCode", control_path)
            if room is None:
                return None  # a rate plan of every room type, or with no rate plan the whole hotel
            self.outcome.warn(located(control_path, "InvCode"), "read as the room type (no InvTypeCode)")
        return room

    def apply(self, products: list[str], nights: list[dt.date], fact: Fact, path: str) -> None:
        self.budget -= len(products) * len(nights)
        if self.budget < 0:
            raise _TooMuch(f"the message changes more than {MAX_PRODUCT_NIGHTS} product-nights; "
                           "this element and those after it were not applied: split the message")
        for listing in products:
            self.outcome.add(events(self.source, listing, nights, fact, self.changed_at), path)


def _unread_around(root: ET.Element, container: ET.Element, element_name: str, outcome: Outcome) -> None:
    """Warn about elements beside the updates (in the root or the container) that are not read."""
    for parent, expected in ((root, {"POS", "UniqueID", container.tag}), (container, {element_name, "UniqueID"})):
        for child in parent:
            if child.tag not in expected:
                outcome.warn(f"{parent.tag}/{child.tag}", f"element {child.tag} is not read; ignored",
                             type=NOT_IMPLEMENTED)


def _changed_at(message: Message, settings: SourceSettings, received_at: dt.datetime, outcome: Outcome) -> dt.datetime:
    """The message TimeStamp; in the source's zone if it has none; the receipt time if absent."""
    assert message.name is not None
    value = (message.timestamp or "").strip()
    if not value:
        outcome.warn(located(message.name, "TimeStamp"), "missing; the time the message was received is used "
                                                         "(a delayed retry may then overwrite a newer change)", 321, 10)
        return received_at
    try:
        moment = dt.datetime.fromisoformat(value)
    except ValueError:
        raise Invalid(located(message.name, "TimeStamp"), f"'{value[:40]}' is not an ISO 8601 date-time; "
                                                          "expected e.g. 2025-03-01T10:15:00Z") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=settings.time_zone)
    return moment


def _control(element: ET.Element, path: str) -> tuple[ET.Element, str]:
    control = element.find("StatusApplicationControl")
    control_path = f"{path}/StatusApplicationControl"
    if control is None:
        raise Invalid(control_path, "missing; expected Start, End and InvTypeCode", 321, 10)
    return control, control_path


def _nights(element: ET.Element, path: str, outer: tuple[ET.Element, str] | None = None) -> list[dt.date]:
    """Inclusive `Start`..`End` on the weekdays of the mask; each of the range and the mask is
    the element's when it has one, else the `outer` element's (a `Rate` inside its
    `StatusApplicationControl`: SiteMinder and Google put them on either)."""
    holder, holder_path = element, path
    if outer is not None and element.get("Start") is None and element.get("End") is None:
        holder, holder_path = outer
    start = date_attr(holder, "Start", holder_path, required=True)
    end = date_attr(holder, "End", holder_path, required=True)
    assert start is not None and end is not None
    if end < start:
        raise Invalid(located(holder_path, "End"), f"'{end}' is before Start '{start}'; expected End >= Start "
                                                   "(both are nights, inclusive)", 15, 3)
    if (end - start).days + 1 > MAX_RANGE_NIGHTS:
        raise Invalid(located(holder_path, "End"), f"'{end}' is {(end - start).days + 1} nights from Start "
                                                   f"'{start}'; expected at most {MAX_RANGE_NIGHTS}", 15, 3)
    weekdays = weekdays_attr(element, path, WEEKDAYS)
    if weekdays is None and outer is not None:
        weekdays = weekdays_attr(outer[0], outer[1], WEEKDAYS)
    return nights_between(start, end, weekdays)


def _amount(rate: ET.Element, path: str, occupancy: int) -> tuple[Decimal, str | None]:
    """The nightly amount of a Rate by the occupancy rule, and its currency if it names one."""
    holder = rate.find("BaseByGuestAmts")
    amounts = list(children(holder, "BaseByGuestAmt", f"{path}/BaseByGuestAmts")) if holder is not None else []
    candidates = []
    for amount, amount_path in amounts:
        age = text_attr(amount, "AgeQualifyingCode", amount_path)
        if age not in (None, "10"):  # child amounts (8) and the like are supplements, not the rate
            continue
        guests = int_attr(amount, "NumberOfGuests", amount_path, 1, 99)
        candidates.append((occupancy_rank(guests, occupancy), amount, amount_path))
    if not candidates:
        raise Invalid(f"{path}/BaseByGuestAmts/BaseByGuestAmt", "missing; expected an adult or per-room "
                                                                 "amount (AmountAfterTax or AmountBeforeTax)", 321, 10)
    _, chosen, chosen_path = min(candidates, key=lambda candidate: candidate[0])
    places = int_attr(chosen, "DecimalPlaces", chosen_path, 0, 4)
    if places is None:
        places = int_attr(rate, "DecimalPlaces", path, 0, 4)
    value = decimal_attr(chosen, "AmountAfterTax", chosen_path, places)
    if value is None:
        value = decimal_attr(chosen, "AmountBeforeTax", chosen_path, places)
    if value is None:
        raise Invalid(chosen_path, "has neither AmountAfterTax nor AmountBeforeTax; expected one", 321, 10)
    currency = text_attr(chosen, "CurrencyCode", chosen_path) or text_attr(rate, "CurrencyCode", path)
    return value, currency.upper() if currency else None


def response(message: Message, outcome: Outcome, now: dt.datetime | None = None) -> bytes:
    """The RS for `message`: `<Success/>` (+ `<Warnings>`), or `<Errors>` naming each failed part.

    Elements not named in `<Errors>` were applied (as Sabre reports partial failures); resending
    the whole message is safe, since equal TimeStamps make re-application change nothing.
    """
    name = message.name[:-2] + "RS" if message.name else "OTA_ErrorRS"
    moment = (now or dt.datetime.now(dt.UTC)).astimezone(dt.UTC)
    attributes = {"xmlns": OTA_NAMESPACE}
    if message.echo_token is not None:
        attributes["EchoToken"] = message.echo_token
    attributes["TimeStamp"] = moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
    attributes["Version"] = message.version or "1.0"
    if message.target is not None:
        attributes["Target"] = message.target
    root = ET.Element(name, attributes)
    if outcome.errors:
        errors = ET.SubElement(root, "Errors")
        for problem in outcome.errors[:MAX_REPORTED]:
            _problem(errors, "Error", problem, status="NotProcessed")
        if len(outcome.errors) > MAX_REPORTED:
            _problem(
                errors,
                "Error",
                Problem("", f"{len(outcome.errors) - MAX_REPORTED} more errors not listed", 450, 3),
                status="NotProcessed",
            )
    else:
        ET.SubElement(root, "Success")
        if outcome.warnings:
            warnings = ET.SubElement(root, "Warnings")
            for problem in grouped(outcome.warnings)[:MAX_REPORTED]:
                _problem(warnings, "Warning", problem)
    return to_bytes(root, message.soap_namespace)


def _problem(parent: ET.Element, tag: str, problem: Problem, status: str | None = None) -> None:
    short = ("Not implemented; ignored" if problem.type == NOT_IMPLEMENTED
             else SHORT_TEXT.get(problem.code, "Invalid value"))
    attributes = {"Type": str(problem.type), "Code": str(problem.code), "ShortText": short}
    if status:
        attributes["Status"] = status
    if problem.where:
        attributes["NodeList"] = problem.where
    ET.SubElement(parent, tag, attributes).text = str(problem)
