"""Expedia EQC AvailRateUpdateRQ: rules, all-or-nothing errors, hostile XML, and the real API.

Rewritten for contract v1.1 ("one fact at a time"): closing a room or rate plan and restrictions
no longer carry the stored price forward (nor need a currency); each element sets only the facts
it carries. Public QuickConnect examples are in `test_partner_examples.py`.
"""

from __future__ import annotations

import datetime as dt
import time
import xml.etree.ElementTree as ET
from decimal import Decimal

import pytest

from staystream.adapters import expedia
from staystream.adapters.source_settings import PropertySettings, SourceSettings

RQ_NS = "http://www.expediaconnect.com/EQC/AR/2011/06"
RS_NS = "http://www.expediaconnect.com/EQC/AR/2007/02"
TODAY = dt.date.today()
RECEIVED = dt.datetime(2026, 1, 1, 12, 0, tzinfo=dt.UTC)


def day(offset: int) -> str:
    return (TODAY + dt.timedelta(days=offset)).isoformat()


def rq(updates: str, hotel: str = "1234567") -> bytes:
    return (f'<?xml version="1.0" encoding="UTF-8"?><AvailRateUpdateRQ xmlns="{RQ_NS}">'
            f'<Authentication username="u" password="p"/><Hotel id="{hotel}"/>{updates}</AvailRateUpdateRQ>').encode()


def update(ranges: str, rooms: str) -> str:
    return f"<AvailRateUpdate>{ranges}{rooms}</AvailRateUpdate>"


def date_range(first: int, last: int, mask: str = "") -> str:
    return f'<DateRange from="{day(first)}" to="{day(last)}" {mask}/>'


def facts_of(events: list, listing: str | None = None) -> dict[str, dict]:
    """Per night, the facts the events set, applied in order (later events win, as stored)."""
    result: dict[str, dict] = {}
    for event in events:
        if listing is not None and event.listing_id != listing:
            continue
        night = event.start
        while night < event.end:
            facts = result.setdefault(night.isoformat(), {})
            for name in ("price", "currency", "available", "min_nights"):
                if hasattr(event, name):
                    facts[name] = getattr(event, name)
            night += dt.timedelta(days=1)
    return result


class Products:
    def __init__(self, *listing_ids: str) -> None:
        self.ids = sorted(listing_ids)

    def listing_ids(self, prefix: str) -> list[str]:
        return [i for i in self.ids if i.startswith(prefix)]


SAMPLE = update(
    date_range(10, 12),
    '<RoomType id="200001" closed="false"><Inventory totalInventoryAvailable="5"/>'
    '<RatePlan id="300001A" closed="false"><Rate currency="USD">'
    '<PerOccupancy rate="150.00" occupancy="1"/><PerOccupancy rate="170.00" occupancy="2"/></Rate>'
    '<Restrictions minLOS="2" maxLOS="14" closedToArrival="false" closedToDeparture="false"/>'
    '</RatePlan></RoomType>')


def test_sample_update_inclusive_range_two_guest_rate_min_stay_and_warnings() -> None:
    _, outcome = expedia.parse(rq(SAMPLE), "expedia", received_at=RECEIVED)
    assert outcome.errors == []
    assert facts_of(outcome.events) == {
        day(n): {"price": Decimal("170.00"), "currency": "USD", "available": True, "min_nights": 2}
        for n in (10, 11, 12)}
    assert {e.listing_id for e in outcome.events} == {"1234567:200001:300001A"}
    assert {e.changed_at for e in outcome.events} == {RECEIVED}  # EQC has no message time
    assert sorted(w.message for w in outcome.warnings) == [
        "closedToArrival is not stored; ignored", "closedToDeparture is not stored; ignored",
        "maxLOS is not stored; ignored"]


def test_per_day_rate_weekday_mask_and_repeated_ranges() -> None:
    start = TODAY + dt.timedelta(days=(7 - TODAY.weekday()) % 7 + 7)  # a Monday
    offset = (start - TODAY).days
    ranges = date_range(
        offset, offset + 6, 'sun="true" mon="false" tue="false" wed="false" thu="false" fri="true" sat="true"'
    ) + date_range(offset + 20, offset + 20)
    body = update(ranges, '<RoomType id="9989"><RatePlan id="556895"><Rate currency="EUR"><PerDay rate="55.00"/>'
                          '</Rate></RatePlan></RoomType>')
    _, outcome = expedia.parse(rq(body, hotel="35499"), "expedia", received_at=RECEIVED)
    assert outcome.errors == [] and outcome.warnings == []
    assert sorted(facts_of(outcome.events)) == [day(offset + 4), day(offset + 5), day(offset + 6), day(offset + 20)]


def test_closing_needs_no_currency_and_applies_to_every_known_rate_plan() -> None:
    store = Products("H:R:A", "H:R:B", "H:S:A")
    body = update(date_range(5, 5), '<RoomType id="R" closed="true"/>')
    _, outcome = expedia.parse(rq(body, hotel="H"), "expedia", products=store, received_at=RECEIVED)
    assert outcome.errors == []
    assert facts_of(outcome.events, "H:R:A") == {day(5): {"available": False}}
    assert facts_of(outcome.events, "H:R:B") == {day(5): {"available": False}}
    assert facts_of(outcome.events, "H:S:A") == {}
    # Inventory 0 closes the room even where its rate plan says open; the named plan gets its price
    body = update(date_range(5, 5),
                  '<RoomType id="R"><Inventory flexibleAllocation="0"/><RatePlan id="A" closed="false">'
                  '<Rate currency="EUR"><PerDay rate="95"/></Rate></RatePlan></RoomType>')
    _, outcome = expedia.parse(rq(body, hotel="H"), "expedia", products=store, received_at=RECEIVED)
    assert facts_of(outcome.events, "H:R:A") == {
        day(5): {"price": Decimal("95"), "currency": "EUR", "available": False}}
    assert facts_of(outcome.events, "H:R:B") == {day(5): {"available": False}}
    body = update(date_range(5, 5), '<RoomType id="R"><RatePlan id="B" closed="true"/></RoomType>')
    _, outcome = expedia.parse(rq(body, hotel="H"), "expedia", products=store, received_at=RECEIVED)
    assert facts_of(outcome.events) == {day(5): {"available": False}} and outcome.errors == []
    body = update(date_range(5, 5), '<RoomType id="Z" closed="true"/>')
    _, outcome = expedia.parse(rq(body, hotel="H"), "expedia", products=store, received_at=RECEIVED)
    assert outcome.events == [] and outcome.errors == []
    assert [w.code for w in outcome.warnings] == [expedia.NO_RATE_PLAN]


def test_restriction_only_update_sets_only_the_stay_rule() -> None:
    body = update(date_range(3, 4),
                  '<RoomType id="R"><RatePlan id="A"><Restrictions minLOS="4"/></RatePlan></RoomType>')
    _, outcome = expedia.parse(rq(body, hotel="H"), "expedia", received_at=RECEIVED)
    assert facts_of(outcome.events) == {day(3): {"min_nights": 4}, day(4): {"min_nights": 4}}
    assert outcome.warnings == [] and outcome.errors == []


def test_currency_when_absent_comes_from_the_sources_file() -> None:
    body = update(date_range(3, 3),
                  '<RoomType id="R"><RatePlan id="A"><Rate><PerDay rate="80.00"/></Rate></RatePlan></RoomType>')
    settings = SourceSettings(currency="USD", properties={"H": PropertySettings(currency="MXN")})
    _, outcome = expedia.parse(rq(body, hotel="H"), "expedia", settings, received_at=RECEIVED)
    assert [(e.price, e.currency) for e in outcome.events] == [(Decimal("80.00"), "MXN")]
    _, outcome = expedia.parse(rq(body, hotel="K"), "expedia", settings, received_at=RECEIVED)
    assert [(e.price, e.currency) for e in outcome.events] == [(Decimal("80.00"), "USD")]
    _, outcome = expedia.parse(rq(body, hotel="H"), "expedia", received_at=RECEIVED)
    assert [(str(e), e.code) for e in outcome.errors] == [
        ("AvailRateUpdate[1]/RoomType[1]/RatePlan[1]/Rate[1]@currency: missing, and the sources file gives no "
         "currency for this source or property; expected an ISO 4217 code", expedia.INVALID_RATE)]


def test_unknown_elements_and_attributes_are_warnings() -> None:
    body = update(date_range(3, 3, 'tue="true" holiday="true"'),
                  '<RoomType id="R" colour="red"><RatePlan id="A"><Rate currency="EUR" rateChangeIndicator="true">'
                  '<PerDay rate="80.00"/></Rate><Extra/></RatePlan></RoomType>')
    message, outcome = expedia.parse(rq(body, hotel="H"), "expedia", received_at=RECEIVED)
    assert outcome.errors == [] and [e.price for e in outcome.events] == [Decimal("80.00")]
    assert [(str(w), w.code) for w in outcome.warnings] == [
        ("AvailRateUpdate[1]/DateRange[1]@holiday: attribute DateRange@holiday is not read; ignored", 7001),
        ("AvailRateUpdate[1]/RoomType[1]@colour: attribute RoomType@colour is not read; ignored", 7001),
        ("AvailRateUpdate[1]/RoomType[1]/RatePlan[1]/Rate[1]@rateChangeIndicator: attribute Rate@rateChangeIndicator "
         "is not read; ignored", 7001),
        ("AvailRateUpdate[1]/RoomType[1]/RatePlan[1]/Extra[1]: element Extra is not read; ignored", 7001)]
    assert ET.fromstring(expedia.response(message, outcome)).find(f"{{{RS_NS}}}Success") is not None


def test_occupancy_and_length_of_stay_rates() -> None:
    rates = ('<Rate currency="EUR" lengthOfStay="1"><PerOccupancy rate="100" occupancy="1"/>'
             '<PerOccupancy rate="120" occupancy="2"/><PerOccupancy rate="150" occupancy="3"/></Rate>'
             '<Rate currency="EUR" lengthOfStay="2"><PerOccupancy rate="95" occupancy="2"/></Rate>')
    body = update(date_range(3, 3), f'<RoomType id="R"><RatePlan id="A">{rates}</RatePlan></RoomType>')
    _, outcome = expedia.parse(rq(body, hotel="H"), "expedia", SourceSettings(occupancy=3), received_at=RECEIVED)
    assert [e.price for e in outcome.events] == [Decimal("150")]
    assert [w.message for w in outcome.warnings] == [
        "rates for stays longer than one night (lengthOfStay) are not stored; ignored"]


def test_one_error_means_nothing_applies_and_every_error_is_named() -> None:
    good = update(date_range(1, 2), '<RoomType id="R"><RatePlan id="A"><Rate currency="EUR"><PerDay rate="50"/>'
                                    '</Rate></RatePlan></RoomType>')
    bad = update(
        '<DateRange from="2025-02-30" to="2025-03-02"/>',
        '<RoomType id="R"><RatePlan id="A"><Rate currency="EURO"><PerDay rate="-5"/></Rate></RatePlan></RoomType>',
    )
    worse = update(date_range(3, 3), '<RoomType id="R"><RatePlan id="B"><Rate currency="EUR"><PerDay rate="-5"/>'
                                     '</Rate></RatePlan></RoomType>')
    message, outcome = expedia.parse(rq(good + bad + worse), "expedia", received_at=RECEIVED)
    assert [(str(e), e.code) for e in outcome.errors] == [
        ("AvailRateUpdate[2]/DateRange[1]@from: '2025-02-30' is not a date; expected YYYY-MM-DD", expedia.INVALID_DATE),
        ("AvailRateUpdate[3]/RoomType[1]/RatePlan[1]/Rate[1]/PerDay@rate: '-5' is not a plain non-negative amount; "
         "expected e.g. 129.50", expedia.INVALID_RATE),
    ]
    root = ET.fromstring(expedia.response(message, outcome))
    assert root.tag == f"{{{RS_NS}}}AvailRateUpdateRS" and root.find(f"{{{RS_NS}}}Success") is None
    errors = root.findall(f"{{{RS_NS}}}Error")
    assert [e.get("code") for e in errors] == ["3003", "3202"]
    assert errors[0].text.endswith("; nothing in the message was applied")


def test_success_rs_shape() -> None:
    message, outcome = expedia.parse(rq(SAMPLE), "expedia", received_at=RECEIVED)
    root = ET.fromstring(expedia.response(message, outcome))
    warnings = root.findall(f"{{{RS_NS}}}Success/{{{RS_NS}}}Warning")
    assert [w.get("code") for w in warnings] == ["7001"] * 3
    message, outcome = expedia.parse(
        rq(SAMPLE.replace(' maxLOS="14" closedToArrival="false" closedToDeparture="false"', "")),
        "expedia",
        received_at=RECEIVED,
    )
    assert expedia.response(message, outcome) == (
        b'<?xml version="1.0" encoding="UTF-8"?>\n'
        b'<AvailRateUpdateRS xmlns="http://www.expediaconnect.com/EQC/AR/2007/02"><Success /></AvailRateUpdateRS>')


@pytest.mark.parametrize(("document", "expected"), [
    (b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;">]>'
     b'<AvailRateUpdateRQ><Hotel id="&b;"/></AvailRateUpdateRQ>', "a DTD (<!DOCTYPE>) is not accepted"),
    (b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
     b'<AvailRateUpdateRQ><Hotel id="&x;"/></AvailRateUpdateRQ>', "a DTD (<!DOCTYPE>) is not accepted"),
    (b"<AvailRateUpdateRQ>" + b"<a>" * 10_000 + b"</a>" * 10_000 + b"</AvailRateUpdateRQ>", "nest deeper than 32"),
    (b"<AvailRateUpdateRQ><Hotel id='1'/>", "not well-formed XML: no element found"),
    (b"<OTA_HotelAvailNotifRQ/>", "'OTA_HotelAvailNotifRQ' is not an AvailRateUpdateRQ"),
    (rq(""), "AvailRateUpdate: missing; expected at least one"),
    (rq(SAMPLE).replace(b'<Hotel id="1234567"/>', b""), 'Hotel: missing; expected <Hotel id="..."/>'),
])
def test_unreadable_messages(document: bytes, expected: str) -> None:
    started = time.perf_counter()
    message, outcome = expedia.parse(document, "expedia", received_at=RECEIVED)
    assert time.perf_counter() - started < 5
    assert outcome.events == [] or outcome.errors
    assert expected in str(outcome.errors[0])
    root = ET.fromstring(expedia.response(message, outcome))
    assert root.find(f"{{{RS_NS}}}Error") is not None and b"root:" not in expedia.response(message, outcome)


# -- through the real HTTP API ----------------------------------------------------------------


def post(client, document: bytes) -> ET.Element:
    response = client.post("/v1/sources/vrbo/expedia", content=document, headers={"content-type": "text/xml"})
    assert response.status_code == 200, response.text
    return ET.fromstring(response.content)


def calendar(client, listing: str) -> dict[str, tuple] | None:
    response = client.get(f"/v1/listings/vrbo/{listing}/calendar")
    if response.status_code == 404:
        return None
    return {n["night"]: (n["price"], n["currency"], n["available"], n["min_nights"]) for n in response.json()["nights"]}


def test_http_rates_then_room_close_read_back(server) -> None:
    rates = update(
        date_range(20, 22),
        '<RoomType id="R1"><RatePlan id="A"><Rate currency="EUR"><PerOccupancy rate="100.00" '
        'occupancy="2"/></Rate><Restrictions minLOS="2"/></RatePlan><RatePlan id="B"><Rate '
        'currency="EUR"><PerDay rate="90.00"/></Rate></RatePlan></RoomType>',
    )
    close = update(date_range(21, 21), '<RoomType id="R1" closed="true"/>')
    with server.client() as client:
        assert post(client, rq(rates, hotel="77")).find(f"{{{RS_NS}}}Success") is not None
        assert post(client, rq(close, hotel="77")).find(f"{{{RS_NS}}}Success") is not None
        # the rates said nothing of availability (unknown: null) until the room closed night 21
        assert calendar(client, "77:R1:A") == {day(20): ("100.00", "EUR", None, 2),
                                               day(21): ("100.00", "EUR", False, 2),
                                               day(22): ("100.00", "EUR", None, 2)}
        assert calendar(client, "77:R1:B") == {day(20): ("90.00", "EUR", None, None),
                                               day(21): ("90.00", "EUR", False, None),
                                               day(22): ("90.00", "EUR", None, None)}


def test_http_error_stores_nothing_even_when_only_the_service_rejects(server) -> None:
    good = update(date_range(5, 6), '<RoomType id="R"><RatePlan id="A"><Rate currency="EUR"><PerDay rate="70"/></Rate>'
                                    '</RatePlan></RoomType>')
    past_horizon = update(
        date_range(1000, 1001),
        '<RoomType id="R"><RatePlan id="A"><Rate currency="EUR"><PerDay rate="70"/></Rate></RatePlan></RoomType>',
    )
    with server.client() as client:
        root = post(client, rq(good + past_horizon, hotel="88"))
        errors = root.findall(f"{{{RS_NS}}}Error")
        assert len(errors) == 1 and errors[0].text.startswith("AvailRateUpdate[2]/RoomType[1]/RatePlan[1]: end: ")
        assert "past the horizon" in errors[0].text
        assert calendar(client, "88:R:A") is None  # the good update was not applied either
        assert post(client, rq(good, hotel="88")).find(f"{{{RS_NS}}}Success") is not None
        assert set(calendar(client, "88:R:A") or {}) == {day(5), day(6)}


def test_http_hostile_xml(server) -> None:
    with server.client() as client:
        root = post(client, b'<!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]><AvailRateUpdateRQ>&x;</AvailRateUpdateRQ>')
        assert root.find(f"{{{RS_NS}}}Error").get("code") == "2001"
        assert b"root:" not in ET.tostring(root)


def test_mutated_documents_only_ever_produce_errors() -> None:
    """Every attribute value replaced by hostile text, one at a time: never an exception."""
    import random
    import re

    rng = random.Random(7)
    garbage = ["", "-1", "0", "9999-12-31", "1e309", "NaN", "2025-02-30", "x" * 300, "::", "99999999999999999999",
               "true", "maybe"]
    store = Products("1234567:200001:300001A")
    document = rq(SAMPLE + update(date_range(1, 3, 'sun="false"'), '<RoomType id="200001" closed="true"/>'))
    values = list(re.finditer(rb'="([^"]*)"', document))
    for _ in range(120):
        found = rng.choice(values)
        mutated = document[:found.start(1)] + rng.choice(garbage).encode() + document[found.end(1):]
        message, outcome = expedia.parse(mutated, "expedia", products=store, received_at=RECEIVED)
        ET.fromstring(expedia.response(message, outcome))
