"""OTA ARI notifications: parsing rules, one fact per element, RS shape, hostile XML, and the real API.

Rewritten for contract v1.1 ("one fact at a time"): the tests that checked carry-forward over the
store (a restriction keeping the stored price, "cannot become available: no price", "no currency
is known yet", a room-level rate with no store) now check that each element sets only the facts
it carries. Public partner documents are in `test_partner_examples.py`.
"""

from __future__ import annotations

import datetime as dt
import time
import xml.etree.ElementTree as ET
from decimal import Decimal

import pytest

from staystream.adapters import ota
from staystream.adapters.source_settings import PropertySettings, SourceSettings

NS = "http://www.opentravel.org/OTA/2003/05"
TODAY = dt.date.today()
STAMP = "2025-03-01T10:15:00Z"


def day(offset: int) -> str:
    return (TODAY + dt.timedelta(days=offset)).isoformat()


def rate_rq(body: str, hotel: str = "H123", stamp: str = STAMP, extra: str = "") -> bytes:
    return (f'<OTA_HotelRateAmountNotifRQ xmlns="{NS}" EchoToken="rate-000123" TimeStamp="{stamp}" '
            f'Version="3.0" {extra}><POS><Source><RequestorID ID="partner-key"/></Source></POS>'
            f'<RateAmountMessages HotelCode="{hotel}">{body}</RateAmountMessages>'
            f'</OTA_HotelRateAmountNotifRQ>').encode()


def avail_rq(body: str, hotel: str = "H123", stamp: str = "2025-03-01T10:15:02Z") -> bytes:
    return (f'<OTA_HotelAvailNotifRQ xmlns="{NS}" EchoToken="avail-000124" TimeStamp="{stamp}" Version="3.0">'
            f'<AvailStatusMessages HotelCode="{hotel}">{body}</AvailStatusMessages></OTA_HotelAvailNotifRQ>').encode()


def inv_rq(body: str, hotel: str = "H123", stamp: str = "2025-03-01T10:15:03Z") -> bytes:
    return (f'<OTA_HotelInvCountNotifRQ xmlns="{NS}" EchoToken="inv-000125" TimeStamp="{stamp}" Version="3.0">'
            f'<Inventories HotelCode="{hotel}">{body}</Inventories></OTA_HotelInvCountNotifRQ>').encode()


def rate_message(start: str, end: str, amounts: str, room: str = "DLX-K", plan: str = "BAR-FLEX",
                 mask: str = "", currency: str = 'CurrencyCode="EUR"') -> str:
    plan_attr = f'RatePlanCode="{plan}"' if plan else ""
    return (f'<RateAmountMessage><StatusApplicationControl Start="{start}" End="{end}" '
            f'InvTypeCode="{room}" {plan_attr} {mask}/><Rates><Rate {currency}><BaseByGuestAmts>'
            f'{amounts}</BaseByGuestAmts></Rate></Rates></RateAmountMessage>')


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
    """Rate plans a store would know, for room-level elements."""

    def __init__(self, *listing_ids: str) -> None:
        self.ids = sorted(listing_ids)

    def listing_ids(self, prefix: str) -> list[str]:
        return [i for i in self.ids if i.startswith(prefix)]


# -- rates ------------------------------------------------------------------------------------


def test_rate_amount_inclusive_range_weekday_mask_and_two_guest_amount() -> None:
    start = TODAY + dt.timedelta(days=(7 - TODAY.weekday()) % 7 + 7)  # a Monday, next week or after
    end = start + dt.timedelta(days=13)
    body = rate_message(start.isoformat(), end.isoformat(),
                        '<BaseByGuestAmt NumberOfGuests="1" AmountAfterTax="120.00" CurrencyCode="EUR"/>'
                        '<BaseByGuestAmt NumberOfGuests="2" AmountAfterTax="140.00" CurrencyCode="EUR"/>',
                        mask='Mon="true" Tue="true" Weds="true" Thur="true" Fri="false" Sat="false" Sun="true"')
    message, outcome = ota.parse(rate_rq(body), "booking")
    assert outcome.errors == [] and outcome.warnings == []
    nights = facts_of(outcome.events)
    expected = [
        start + dt.timedelta(days=i) for i in range(14) if (start + dt.timedelta(days=i)).weekday() not in (4, 5)
    ]
    assert sorted(nights) == [d.isoformat() for d in expected]  # End is a night: inclusive
    assert all(facts == {"price": Decimal("140.00"), "currency": "EUR"} for facts in nights.values())  # price only
    assert {e.listing_id for e in outcome.events} == {"H123:DLX-K:BAR-FLEX"}
    assert all(e.changed_at == dt.datetime(2025, 3, 1, 10, 15, tzinfo=dt.UTC) for e in outcome.events)
    assert len(outcome.events) == 3  # Mon-Thu, Sun-Thu, Sun: runs, not nights
    assert message.echo_token == "rate-000123" and message.hotel == "H123"


@pytest.mark.parametrize(("amounts", "expected"), [
    ('<BaseByGuestAmt NumberOfGuests="1" AmountAfterTax="120"/><BaseByGuestAmt NumberOfGuests="3" '
     'AmountAfterTax="160"/>', "120"),
    ('<BaseByGuestAmt NumberOfGuests="3" AmountAfterTax="160"/><BaseByGuestAmt AmountAfterTax="150"/>', "150"),
    ('<BaseByGuestAmt NumberOfGuests="4" AmountAfterTax="190"/><BaseByGuestAmt NumberOfGuests="3" '
     'AmountAfterTax="160"/>', "160"),
    ('<BaseByGuestAmt NumberOfGuests="2" AgeQualifyingCode="8" AmountAfterTax="20"/>'
     '<BaseByGuestAmt NumberOfGuests="2" AgeQualifyingCode="10" AmountAfterTax="140"/>', "140"),
    ('<BaseByGuestAmt NumberOfGuests="2" AmountBeforeTax="118.00" AmountAfterTax="140.00"/>', "140.00"),
    ('<BaseByGuestAmt NumberOfGuests="2" AmountBeforeTax="118.00"/>', "118.00"),
    ('<BaseByGuestAmt NumberOfGuests="2" AmountAfterTax="13350" DecimalPlaces="2"/>', "133.50"),
])
def test_amount_rules(amounts: str, expected: str) -> None:
    _, outcome = ota.parse(rate_rq(rate_message(day(10), day(10), amounts)), "booking")
    assert outcome.errors == []
    assert [e.price for e in outcome.events] == [Decimal(expected)]


def test_occupancy_to_price_for_comes_from_the_source_settings() -> None:
    amounts = ('<BaseByGuestAmt NumberOfGuests="1" AmountAfterTax="90"/><BaseByGuestAmt NumberOfGuests="2" '
               'AmountAfterTax="120"/><BaseByGuestAmt NumberOfGuests="4" AmountAfterTax="200"/>')
    _, outcome = ota.parse(rate_rq(rate_message(day(10), day(10), amounts)), "booking", SourceSettings(occupancy=1))
    assert [e.price for e in outcome.events] == [Decimal("90")]
    _, outcome = ota.parse(rate_rq(rate_message(day(10), day(10), amounts)), "booking", SourceSettings(occupancy=3))
    assert [e.price for e in outcome.events] == [Decimal("120")]  # nearest, fewer guests on a tie


def test_decimal_places_on_rate_and_its_misuse() -> None:
    body = ('<RateAmountMessage><StatusApplicationControl Start="{0}" End="{0}" InvTypeCode="R" RatePlanCode="P"/>'
            '<Rates><Rate CurrencyCode="JOD" DecimalPlaces="3"><BaseByGuestAmts>'
            '<BaseByGuestAmt AmountAfterTax="{1}"/></BaseByGuestAmts></Rate></Rates></RateAmountMessage>')
    _, outcome = ota.parse(rate_rq(body.format(day(5), "75125")), "booking")
    assert [(e.price, e.currency) for e in outcome.events] == [(Decimal("75.125"), "JOD")]
    _, outcome = ota.parse(rate_rq(body.format(day(5), "75.125")), "booking")
    assert outcome.events == []
    assert [str(p) for p in outcome.errors] == [
        "RateAmountMessage[1]/Rates/Rate[1]/BaseByGuestAmts/BaseByGuestAmt[1]@AmountAfterTax: '75.125' is not a "
        "whole number; with DecimalPlaces=3 the amount is written in minor units (13350 for 133.50)"]


def test_currency_when_absent_comes_from_the_property_then_the_source_settings() -> None:
    amounts = '<BaseByGuestAmt NumberOfGuests="2" AmountAfterTax="99.00"/>'
    settings = SourceSettings(currency="EUR", properties={"H123": PropertySettings(currency="CHF")})
    document = rate_rq(rate_message(day(10), day(11), amounts, currency=""))
    _, outcome = ota.parse(document, "booking", settings)
    assert outcome.errors == []
    assert {(e.price, e.currency) for e in outcome.events} == {(Decimal("99.00"), "CHF")}
    other_hotel = rate_rq(rate_message(day(10), day(11), amounts, currency=""), hotel="H9")
    _, outcome = ota.parse(other_hotel, "booking", settings)
    assert {(e.price, e.currency) for e in outcome.events} == {(Decimal("99.00"), "EUR")}
    _, outcome = ota.parse(document, "booking")
    assert outcome.events == []
    assert [(str(e), e.code) for e in outcome.errors] == [
        ("RateAmountMessage[1]/Rates/Rate[1]@CurrencyCode: missing, and the sources file gives no currency for this "
         "source or property; expected an ISO 4217 code on Rate or BaseByGuestAmt", 321)]
    _, outcome = ota.parse(rate_rq(rate_message(day(10), day(11), amounts, currency='CurrencyCode="EURO"')), "booking")
    assert (
        str(outcome.errors[0])
        == "RateAmountMessage[1]/Rates/Rate[1]@CurrencyCode: 'EURO' is not an ISO 4217 currency code"
    )


def test_start_end_and_weekdays_on_each_rate_instead_of_the_control() -> None:
    """SiteMinder and Google allow the range and the mask on `Rate`; a control may then have none."""
    start = TODAY + dt.timedelta(days=(7 - TODAY.weekday()) % 7 + 7)  # a Monday
    body = (f'<RateAmountMessage><StatusApplicationControl InvTypeCode="R" RatePlanCode="P"/><Rates>'
            f'<Rate CurrencyCode="EUR" Start="{start}" End="{start + dt.timedelta(days=6)}" Sat="0" Sun="0">'
            f'<BaseByGuestAmts><BaseByGuestAmt AmountAfterTax="100"/></BaseByGuestAmts></Rate>'
            f'<Rate CurrencyCode="EUR" Start="{start}" End="{start + dt.timedelta(days=6)}" Mon="0" Tue="0" Weds="0" '
            f'Thur="0" Fri="0" Sat="1" Sun="1"><BaseByGuestAmts><BaseByGuestAmt AmountAfterTax="130"/>'
            f'</BaseByGuestAmts></Rate></Rates></RateAmountMessage>')
    _, outcome = ota.parse(rate_rq(body), "siteminder")
    assert outcome.errors == []
    prices = {night: facts["price"] for night, facts in facts_of(outcome.events).items()}
    assert prices == {(start + dt.timedelta(days=i)).isoformat(): Decimal("100" if i < 5 else "130") for i in range(7)}
    no_range = body.replace(f'Start="{start}" End="{start + dt.timedelta(days=6)}"', "")
    _, outcome = ota.parse(rate_rq(no_range), "siteminder")
    assert [str(e) for e in outcome.errors] == [
        "RateAmountMessage[1]/StatusApplicationControl@Start: missing; it is required"]


def test_room_level_rate_applies_to_every_known_rate_plan_of_the_room() -> None:
    store = Products("H123:DLX-K:BAR", "H123:DLX-K:NRF", "H123:STD:BAR", "H1234:DLX-K:BAR")
    body = rate_message(day(3), day(3), '<BaseByGuestAmt AmountAfterTax="80"/>', plan="")
    _, outcome = ota.parse(rate_rq(body), "booking", products=store)
    assert sorted(e.listing_id for e in outcome.events) == ["H123:DLX-K:BAR", "H123:DLX-K:NRF"]


def test_rate_plan_without_room_type_applies_to_that_plan_of_every_room_type() -> None:
    """SiteMinder: an update naming only RatePlanCode changes every room type with that plan."""
    store = Products("H123:DLX-K:BAR", "H123:STD:BAR", "H123:STD:NRF")
    body = (f'<AvailStatusMessage><StatusApplicationControl Start="{day(3)}" End="{day(3)}" RatePlanCode="BAR"/>'
            f'<RestrictionStatus Status="Close"/></AvailStatusMessage>')
    _, outcome = ota.parse(avail_rq(body), "siteminder", products=store)
    assert sorted(e.listing_id for e in outcome.events) == ["H123:DLX-K:BAR", "H123:STD:BAR"]
    _, outcome = ota.parse(avail_rq(body.replace('"BAR"', '"PROMO"')), "siteminder", products=store)
    assert outcome.events == [] and [str(w) for w in outcome.warnings] == [
        "AvailStatusMessage[1]: no room type with rate plan 'PROMO' is known yet (send its rates first); "
        "nothing was changed"]


def test_hotel_level_availability_reaches_every_known_product_but_a_rate_needs_a_code() -> None:
    store = Products("H123:DLX-K:BAR", "H123:STD:NRF", "H1234:STD:BAR")
    body = (f'<AvailStatusMessage BookingLimit="0"><StatusApplicationControl Start="{day(3)}" End="{day(3)}"/>'
            f'<LengthOfStay MinMaxMessageType="SetMinLOS" Time="2" RateTimeUnit="Day"/></AvailStatusMessage>')
    _, outcome = ota.parse(avail_rq(body), "synxis", products=store)
    assert facts_of(outcome.events, "H123:DLX-K:BAR") == facts_of(outcome.events, "H123:STD:NRF") == {
        day(3): {"available": False, "min_nights": 2}}
    assert facts_of(outcome.events, "H1234:STD:BAR") == {} and outcome.warnings == []
    _, outcome = ota.parse(avail_rq(body), "synxis")
    assert outcome.events == [] and [str(w) for w in outcome.warnings] == [
        "AvailStatusMessage[1]: names no RatePlanCode and no rate plan of the hotel is known yet (send its rates "
        "first); nothing was changed"]


def test_remove_notif_closes_the_nights_and_sets_nothing_else() -> None:
    body = (f'<RateAmountMessage><StatusApplicationControl Start="{day(5)}" End="{day(6)}" InvTypeCode="DLX-K" '
            f'RatePlanCode="BAR-FLEX"/></RateAmountMessage>')
    _, outcome = ota.parse(rate_rq(body, extra='NotifType="Remove"'), "booking")
    assert facts_of(outcome.events) == {day(5): {"available": False}, day(6): {"available": False}}


# -- availability and restrictions ------------------------------------------------------------


def test_restrictions_set_only_the_stay_rule_without_price_or_currency() -> None:
    body = (f'<AvailStatusMessage><StatusApplicationControl Start="{day(10)}" End="{day(11)}" InvTypeCode="DLX-K" '
            f'RatePlanCode="BAR-FLEX"/><LengthsOfStay ArrivalDateBased="true">'
            f'<LengthOfStay MinMaxMessageType="SetMinLOS" Time="2" TimeUnit="Day"/></LengthsOfStay>'
            f'<RestrictionStatus Status="Close" Restriction="Arrival"/></AvailStatusMessage>')
    _, outcome = ota.parse(avail_rq(body), "booking")
    assert facts_of(outcome.events) == {day(10): {"min_nights": 2}, day(11): {"min_nights": 2}}
    assert [(str(w), w.type) for w in outcome.warnings] == [
        ("AvailStatusMessage[1]/RestrictionStatus[1]@Restriction: closed-to-arrival is not stored; ignored", 2)]


def test_a_status_alone_opens_or_closes_without_any_price() -> None:
    close = (f'<AvailStatusMessage><StatusApplicationControl Start="{day(19)}" End="{day(20)}" InvTypeCode="DLX-K" '
             f'RatePlanCode="BAR-FLEX"/><RestrictionStatus Status="Close"/></AvailStatusMessage>')
    _, outcome = ota.parse(avail_rq(close), "booking")
    assert facts_of(outcome.events) == {day(19): {"available": False}, day(20): {"available": False}}
    _, outcome = ota.parse(avail_rq(close.replace('Status="Close"', 'Status="Open" Restriction="Master"')), "booking")
    assert facts_of(outcome.events) == {day(19): {"available": True}, day(20): {"available": True}}
    assert outcome.warnings == []


def test_avail_elements_apply_in_order_within_one_message() -> None:
    """Sabre sends min stay and stop-sell for the same nights in separate elements; a later
    element for the same fact wins (equal changed_at: the later arrival)."""
    control = (f'<StatusApplicationControl Start="{day(10)}" End="{day(11)}" InvTypeCode="DLX-K" '
               'RatePlanCode="BAR-FLEX"/>')
    body = (f'<AvailStatusMessage>{control}<LengthsOfStay><LengthOfStay MinMaxMessageType="SetForwardMinStay" '
            f'Time="3"/></LengthsOfStay></AvailStatusMessage>'
            f'<AvailStatusMessage>{control}<RestrictionStatus Status="Open" Restriction="Master"/>'
            f'</AvailStatusMessage><AvailStatusMessage>{control}<RestrictionStatus Status="Close" '
            f'Restriction="Master"/></AvailStatusMessage>')
    _, outcome = ota.parse(avail_rq(body), "booking")
    assert facts_of(outcome.events) == {day(10): {"available": False, "min_nights": 3},
                                        day(11): {"available": False, "min_nights": 3}}


def test_booking_limit_and_room_level_avail_without_known_plans() -> None:
    body = (f'<AvailStatusMessage BookingLimit="0"><StatusApplicationControl Start="{day(1)}" End="{day(2)}" '
            f'InvTypeCode="SUITE"/></AvailStatusMessage>')
    _, outcome = ota.parse(avail_rq(body), "booking")
    assert outcome.events == [] and outcome.errors == []
    assert [(str(w), w.code) for w in outcome.warnings] == [
        ("AvailStatusMessage[1]: names no RatePlanCode and no rate plan of room type 'SUITE' is known yet "
         "(send its rates first); nothing was changed", 783)]
    _, outcome = ota.parse(avail_rq(body), "booking", products=Products("H123:SUITE:BAR", "H123:SUITE:NRF"))
    assert facts_of(outcome.events, "H123:SUITE:BAR") == {day(1): {"available": False}, day(2): {"available": False}}
    assert facts_of(outcome.events, "H123:SUITE:NRF") == {day(1): {"available": False}, day(2): {"available": False}}
    adjust = body.replace('BookingLimit="0"', 'BookingLimit="2" BookingLimitMessageType="AdjustLimit"')
    _, outcome = ota.parse(avail_rq(adjust), "booking", products=Products("H123:SUITE:BAR"))
    assert outcome.events == [] and "AdjustLimit is not a count of rooms to sell" in str(outcome.warnings[0])


# -- inventory --------------------------------------------------------------------------------


def test_inv_count_zero_closes_and_positive_reopens() -> None:
    store = Products("H123:DLX-K:BAR", "H123:STD:BAR")
    body = (f'<Inventory><StatusApplicationControl Start="{day(4)}" End="{day(4)}" InvTypeCode="DLX-K"/>'
            f'<InvCounts><InvCount Count="3" CountType="2"/></InvCounts></Inventory>'
            f'<Inventory><StatusApplicationControl Start="{day(4)}" End="{day(4)}" InvTypeCode="STD"/>'
            f'<InvCounts><InvCount Count="0" CountType="2"/></InvCounts></Inventory>')
    _, outcome = ota.parse(inv_rq(body), "booking", products=store)
    assert facts_of(outcome.events, "H123:DLX-K:BAR") == {day(4): {"available": True}}
    assert facts_of(outcome.events, "H123:STD:BAR") == {day(4): {"available": False}}
    all_rooms = (f'<Inventory><StatusApplicationControl Start="{day(4)}" End="{day(4)}" AllInvCode="true"/>'
                 f'<InvCounts><InvCount Count="0"/></InvCounts></Inventory>')
    _, outcome = ota.parse(inv_rq(all_rooms), "booking", products=store)
    assert sorted(e.listing_id for e in outcome.events) == ["H123:DLX-K:BAR", "H123:STD:BAR"]
    other_type = body.replace('CountType="2"', 'CountType="1"')
    _, outcome = ota.parse(inv_rq(other_type), "booking", products=store)
    assert outcome.events == [] and "no InvCount with CountType 2" in str(outcome.warnings[0])


# -- the TimeStamp ----------------------------------------------------------------------------


def test_timestamp_missing_is_the_receipt_time_with_a_warning() -> None:
    body = rate_message(day(1), day(1), '<BaseByGuestAmt AmountAfterTax="1"/>')
    doc = rate_rq(body).replace(f'TimeStamp="{STAMP}"'.encode(), b"")
    received = dt.datetime(2026, 5, 6, 7, 8, 9, tzinfo=dt.UTC)
    _, outcome = ota.parse(doc, "booking", received_at=received)
    assert [e.changed_at for e in outcome.events] == [received]
    assert [(str(w), w.type, w.code) for w in outcome.warnings] == [
        ("OTA_HotelRateAmountNotifRQ@TimeStamp: missing; the time the message was received is used (a delayed "
         "retry may then overwrite a newer change)", 10, 321)]


def test_timestamp_without_a_zone_is_in_the_sources_zone() -> None:
    from zoneinfo import ZoneInfo

    body = rate_message(day(1), day(1), '<BaseByGuestAmt AmountAfterTax="1"/>')
    _, outcome = ota.parse(rate_rq(body, stamp="2025-03-01T10:15:00"), "booking")
    assert [e.changed_at for e in outcome.events] == [dt.datetime(2025, 3, 1, 10, 15, tzinfo=dt.UTC)]
    _, outcome = ota.parse(rate_rq(body, stamp="2019-08-16 23:30:18"), "resavenue",
                           SourceSettings(time_zone=ZoneInfo("Asia/Kolkata")))
    assert [e.changed_at for e in outcome.events] == [dt.datetime(2019, 8, 16, 18, 0, 18, tzinfo=dt.UTC)]
    assert outcome.warnings == []
    _, outcome = ota.parse(rate_rq(body, stamp="yesterday"), "booking")
    assert outcome.events == [] and [str(e) for e in outcome.errors] == [
        "OTA_HotelRateAmountNotifRQ@TimeStamp: 'yesterday' is not an ISO 8601 date-time; "
        "expected e.g. 2025-03-01T10:15:00Z"]


# -- refusals and warnings --------------------------------------------------------------------


def test_bad_elements_are_named_and_do_not_stop_the_rest() -> None:
    good = rate_message(day(1), day(1), '<BaseByGuestAmt AmountAfterTax="50.00"/>')
    bad_date = rate_message("2025-13-01", day(1), '<BaseByGuestAmt AmountAfterTax="50.00"/>')
    backwards = rate_message(day(5), day(1), '<BaseByGuestAmt AmountAfterTax="50.00"/>')
    bad_amount = rate_message(day(1), day(1), '<BaseByGuestAmt AmountAfterTax="fifty"/>')
    bad_mask = rate_message(day(1), day(1), '<BaseByGuestAmt AmountAfterTax="1"/>', mask='Mon="yes"')
    no_room = good.replace('InvTypeCode="DLX-K"', "").replace('RatePlanCode="BAR-FLEX"', "")
    _, outcome = ota.parse(rate_rq(bad_date + good + backwards + bad_amount + bad_mask + no_room), "booking")
    assert [str(e) for e in outcome.errors] == [
        "RateAmountMessage[1]/StatusApplicationControl@Start: '2025-13-01' is not a date; expected YYYY-MM-DD",
        f"RateAmountMessage[3]/StatusApplicationControl@End: '{day(1)}' is before Start '{day(5)}'; expected "
        "End >= Start (both are nights, inclusive)",
        "RateAmountMessage[4]/Rates/Rate[1]/BaseByGuestAmts/BaseByGuestAmt[1]@AmountAfterTax: 'fifty' is not a "
        "decimal amount; expected e.g. 129.50",
        "RateAmountMessage[5]/StatusApplicationControl@Mon: 'yes' is not a boolean; expected true, false, 1 or 0",
        "RateAmountMessage[6]/StatusApplicationControl@InvTypeCode: missing; it is required",
    ]
    assert facts_of(outcome.events) == {day(1): {"price": Decimal("50.00"), "currency": "EUR"}}
    assert outcome.origins == ["RateAmountMessage[2]"]
    room_as_inv_code = good.replace('InvTypeCode="DLX-K"', 'InvCode="DLX-K"')
    _, outcome = ota.parse(rate_rq(room_as_inv_code), "travelguru")
    assert {e.listing_id for e in outcome.events} == {"H123:DLX-K:BAR-FLEX"}
    assert [str(w) for w in outcome.warnings] == [
        "RateAmountMessage[1]/StatusApplicationControl@InvCode: read as the room type (no InvTypeCode)"]


def test_unknown_elements_attributes_and_values_are_warnings_never_a_rejection() -> None:
    body = (f'<AvailStatusMessage Fancy="1"><StatusApplicationControl Start="{day(1)}" End="{day(1)}" InvTypeCode="R" '
            f'RatePlanCode="P" Colour="red"/><RestrictionStatus Status="Close" Restriction="Pets"/>'
            f'<LengthsOfStay><LengthOfStay MinMaxMessageType="SetMinLOS" Time="2" TimeUnit="Week"/>'
            f'<LengthOfStay MinMaxMessageType="SetMinNights" Time="2"/></LengthsOfStay>'
            f'<RestrictionStatus Status="Open"/><Extension><Anything/></Extension></AvailStatusMessage>')
    message, outcome = ota.parse(avail_rq(body), "booking")
    assert outcome.errors == []
    assert facts_of(outcome.events) == {day(1): {"available": True}}
    assert [str(w) for w in outcome.warnings] == [
        "AvailStatusMessage[1]@Fancy: attribute AvailStatusMessage@Fancy is not read; ignored",
        "AvailStatusMessage[1]/StatusApplicationControl[1]@Colour: attribute StatusApplicationControl@Colour is not "
        "read; ignored",
        "AvailStatusMessage[1]/Extension[1]: element Extension is not read; ignored",
        "AvailStatusMessage[1]/RestrictionStatus[1]@Restriction: 'Pets' is not a restriction read here (Master, "
        "Arrival, Departure); ignored",
        "AvailStatusMessage[1]/LengthsOfStay/LengthOfStay[1]@TimeUnit: 'Week' stays are not stored (only Day); ignored",
        "AvailStatusMessage[1]/LengthsOfStay/LengthOfStay[2]@MinMaxMessageType: 'SetMinNights' is not a "
        "length-of-stay type read here; ignored",
    ]
    rs = ET.fromstring(ota.response(message, outcome))
    assert rs.find(f"{{{NS}}}Success") is not None
    assert {w.get("Type") for w in rs.findall(f"{{{NS}}}Warnings/{{{NS}}}Warning")} == {"2"}  # no implementation
    beside = avail_rq(body.replace("<AvailStatusMessage Fancy", "<TPA_Extensions/><AvailStatusMessage Fancy"))
    _, outcome = ota.parse(beside.replace(b"<AvailStatusMessages", b"<Promotions/><AvailStatusMessages"), "booking")
    assert [str(w) for w in outcome.warnings[:2]] == [
        "OTA_HotelAvailNotifRQ/Promotions: element Promotions is not read; ignored",
        "AvailStatusMessages/TPA_Extensions: element TPA_Extensions is not read; ignored"]


def test_unknown_root_and_wrong_message() -> None:
    message, outcome = ota.parse(b"<OTA_PingRQ/>", "booking")
    body = ota.response(message, outcome)
    root = ET.fromstring(body)
    assert root.tag == f"{{{NS}}}OTA_ErrorRS"
    assert "'OTA_PingRQ' is not a message this endpoint reads" in root.find(f"{{{NS}}}Errors/{{{NS}}}Error").text


# -- the RS -----------------------------------------------------------------------------------


def test_rs_echoes_token_and_version_with_own_timestamp_and_warnings() -> None:
    body = "".join(
        f'<AvailStatusMessage><StatusApplicationControl Start="{day(i)}" End="{day(i)}" InvTypeCode="R" '
        f'RatePlanCode="P"/><RestrictionStatus Status="Close" Restriction="Departure"/></AvailStatusMessage>'
        for i in range(1, 8))
    message, outcome = ota.parse(avail_rq(body), "booking")
    now = dt.datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=dt.UTC)
    root = ET.fromstring(ota.response(message, outcome, now))
    assert root.tag == f"{{{NS}}}OTA_HotelAvailNotifRS"
    assert root.attrib == {"EchoToken": "avail-000124", "TimeStamp": "2026-01-02T03:04:05.678Z", "Version": "3.0"}
    assert root.find(f"{{{NS}}}Success") is not None and root.find(f"{{{NS}}}Errors") is None
    warnings = root.findall(f"{{{NS}}}Warnings/{{{NS}}}Warning")
    assert len(warnings) == 1  # seven identical warnings grouped
    assert warnings[0].get("Type") == "2" and warnings[0].get("ShortText") == "Not implemented; ignored"
    assert "closed-to-departure is not stored; ignored (in 7 places: AvailStatusMessage[1]/RestrictionStatus[1]" \
           "@Restriction, " in warnings[0].text


def test_errors_rs_has_no_success_and_soap_envelope_is_answered_in_kind() -> None:
    inner = rate_rq(rate_message("2025-02-30", day(1), '<BaseByGuestAmt AmountAfterTax="1"/>')).decode()
    soap = ('<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Header/>'
            f'<soapenv:Body>{inner}</soapenv:Body></soapenv:Envelope>').encode()
    message, outcome = ota.parse(soap, "siteminder")
    root = ET.fromstring(ota.response(message, outcome))
    assert root.tag == "{http://schemas.xmlsoap.org/soap/envelope/}Envelope"
    rs = root.find("{http://schemas.xmlsoap.org/soap/envelope/}Body")[0]
    assert rs.tag == f"{{{NS}}}OTA_HotelRateAmountNotifRS" and rs.find(f"{{{NS}}}Success") is None
    error = rs.find(f"{{{NS}}}Errors/{{{NS}}}Error")
    assert error.attrib == {"Type": "3", "Code": "15", "ShortText": "Invalid date", "Status": "NotProcessed",
                            "NodeList": "RateAmountMessage[1]/StatusApplicationControl@Start"}


# -- hostile XML ------------------------------------------------------------------------------

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
<!ENTITY lol9 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">]>
<OTA_HotelRateAmountNotifRQ xmlns="http://www.opentravel.org/OTA/2003/05" EchoToken="&lol9;"/>"""
XXE = b"""<?xml version="1.0"?>
<!DOCTYPE r [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<OTA_HotelAvailNotifRQ xmlns="http://www.opentravel.org/OTA/2003/05" EchoToken="&xxe;" TimeStamp="2025-03-01T10:15:00Z">
<AvailStatusMessages HotelCode="&xxe;"/></OTA_HotelAvailNotifRQ>"""
QUADRATIC = (b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "' + b"x" * 50_000 + b'">]><OTA_HotelAvailNotifRQ>'
             + b"&a;" * 50_000 + b"</OTA_HotelAvailNotifRQ>")
DEEP = b"<OTA_HotelInvCountNotifRQ>" + b"<a>" * 50_000 + b"</a>" * 50_000 + b"</OTA_HotelInvCountNotifRQ>"
WIDE = b'<OTA_HotelInvCountNotifRQ TimeStamp="2025-03-01T10:15:00Z"><Inventories HotelCode="H">' \
       + b"<x/>" * 250_000 + b"</Inventories></OTA_HotelInvCountNotifRQ>"


@pytest.mark.parametrize(("document", "expected", "rs"), [
    (BILLION_LAUGHS, "a DTD (<!DOCTYPE>) is not accepted", "OTA_HotelRateAmountNotifRS"),
    (XXE, "a DTD (<!DOCTYPE>) is not accepted", "OTA_HotelAvailNotifRS"),
    (QUADRATIC, "a DTD (<!DOCTYPE>) is not accepted", "OTA_HotelAvailNotifRS"),
    (DEEP, "elements nest deeper than 32 levels", "OTA_HotelInvCountNotifRS"),
    (WIDE, "more than 200000 elements; split the message", "OTA_HotelInvCountNotifRS"),
    (b"<OTA_HotelAvailNotifRQ><AvailStatusMessages></OTA_HotelAvailNotifRQ>", "not well-formed XML: mismatched tag",
     "OTA_HotelAvailNotifRS"),
    (b"", "the body is empty", "OTA_ErrorRS"),
    (b'<?xml version="1.0" encoding="klingon"?><OTA_HotelAvailNotifRQ/>', "names an unknown encoding",
     "OTA_HotelAvailNotifRS"),
    (b"\xff\xfe<not xml", "not well-formed XML", "OTA_ErrorRS"),
], ids=["billion-laughs", "xxe-file", "quadratic-blowup", "deep", "wide", "malformed", "empty", "encoding",
        "garbage"])
def test_hostile_and_broken_xml_is_refused_quickly(document: bytes, expected: str, rs: str) -> None:
    started = time.perf_counter()
    message, outcome = ota.parse(document, "booking")
    assert time.perf_counter() - started < 5
    assert outcome.events == []
    assert expected in str(outcome.errors[0])
    body = ota.response(message, outcome)
    assert b"root:" not in body  # nothing of /etc/passwd
    assert ET.fromstring(body).tag == f"{{{NS}}}{rs}"


# -- through the real HTTP API ----------------------------------------------------------------


def post(client, document: bytes, source: str = "booking"):
    response = client.post(f"/v1/sources/{source}/ota", content=document, headers={"content-type": "text/xml"})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "text/xml; charset=utf-8"  # as the request
    return ET.fromstring(response.content)


def calendar(client, listing: str, source: str = "booking") -> dict[str, tuple]:
    response = client.get(f"/v1/listings/{source}/{listing}/calendar")
    assert response.status_code == 200, response.text
    return {n["night"]: (n["price"], n["currency"], n["available"], n["min_nights"], n["changed_at"])
            for n in response.json()["nights"]}


def test_http_rates_then_restrictions_then_counts_read_back(server) -> None:
    rates = rate_message(
        day(30),
        day(32),
        '<BaseByGuestAmt NumberOfGuests="2" AmountAfterTax="14000" DecimalPlaces="2"/>',
        room="DBL",
        plan="BAR",
    ) + rate_message(
        day(30),
        day(32),
        '<BaseByGuestAmt NumberOfGuests="2" AmountAfterTax="12000" DecimalPlaces="2"/>',
        room="DBL",
        plan="NRF",
    )
    avail = (f'<AvailStatusMessage><StatusApplicationControl Start="{day(31)}" End="{day(31)}" InvTypeCode="DBL"/>'
             f'<LengthsOfStay><LengthOfStay MinMaxMessageType="SetMinLOS" Time="2" TimeUnit="Day"/></LengthsOfStay>'
             f'</AvailStatusMessage>')
    counts = (f'<Inventory><StatusApplicationControl Start="{day(32)}" End="{day(32)}" InvTypeCode="DBL"/>'
              f'<InvCounts><InvCount Count="0" CountType="2"/></InvCounts></Inventory>')
    with server.client() as client:
        for document in (rate_rq(rates, hotel="HTTP1"), avail_rq(avail, hotel="HTTP1"), inv_rq(counts, hotel="HTTP1")):
            rs = post(client, document)
            assert rs.find(f"{{{NS}}}Success") is not None, ET.tostring(rs)
            assert rs.find(f"{{{NS}}}Warnings") is None, ET.tostring(rs)
        for plan, price in (("BAR", "140.00"), ("NRF", "120.00")):
            # each message set only its fact; the calendar shows the others as unknown (null)
            assert calendar(client, f"HTTP1:DBL:{plan}") == {
                day(30): (price, "EUR", None, None, "2025-03-01T10:15:00.000Z"),
                day(31): (price, "EUR", None, 2, "2025-03-01T10:15:02.000Z"),
                day(32): (price, "EUR", False, None, "2025-03-01T10:15:03.000Z"),
            }


def test_http_partial_failure_names_the_bad_elements_and_applies_the_rest(server) -> None:
    good = rate_message(day(40), day(41), '<BaseByGuestAmt AmountAfterTax="75.00"/>', room="R", plan="P")
    beyond = rate_message(day(40), day(4000), '<BaseByGuestAmt AmountAfterTax="75.00"/>', room="R", plan="Q")
    far = rate_message(day(900), day(901), '<BaseByGuestAmt AmountAfterTax="75.00"/>', room="R", plan="Q")
    with server.client() as client:
        rs = post(client, rate_rq(good + beyond + far, hotel="HTTP2"))
        assert rs.find(f"{{{NS}}}Success") is None
        errors = rs.findall(f"{{{NS}}}Errors/{{{NS}}}Error")
        assert [e.get("NodeList") for e in errors] == ["RateAmountMessage[2]/StatusApplicationControl@End",
                                                       "RateAmountMessage[3]"]
        assert "is past the horizon of" in errors[1].text  # the service's own rejection, located
        assert set(calendar(client, "HTTP2:R:P")) == {day(40), day(41)}


def test_http_hostile_documents_never_500_or_hang(server) -> None:
    with server.client() as client:
        for document in (BILLION_LAUGHS, XXE, DEEP, WIDE):
            started = time.perf_counter()
            rs = post(client, document)
            assert time.perf_counter() - started < 10
            assert rs.find(f"{{{NS}}}Errors") is not None
            assert b"root:" not in ET.tostring(rs)
        too_big = b"<OTA_HotelAvailNotifRQ>" + b" " * (17 * 1024 * 1024) + b"</OTA_HotelAvailNotifRQ>"
        response = client.post("/v1/sources/booking/ota", content=too_big)
        assert response.status_code == 413 and "over the limit" in response.json()["error"]
        assert client.post("/v1/sources/Bad Source/ota", content=b"<x/>").status_code == 400
        assert client.get("/healthz").status_code == 200


def test_openapi_describes_the_native_source_endpoints(server) -> None:
    with server.client() as client:
        paths = client.get("/openapi.json").json()["paths"]
    for path in ("/v1/sources/{source}/ota", "/v1/sources/{source}/expedia",
                 "/v1/sources/{source}/listings/{listing_id}/ical"):
        assert "post" in paths[path], path


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_mutated_documents_only_ever_produce_errors(seed: int) -> None:
    """Every attribute value replaced by hostile text, one at a time: never an exception."""
    import random
    import re

    rng = random.Random(seed)
    garbage = ["", " ", "-1", "0", "9999-12-31", "0001-01-01", "1e309", "NaN", "2025-02-30", "x" * 300, "::",
               "99999999999999999999", "true", "Close", "\u0000", "2025-03-01T10:15:00", "P99999999W", "13350.5"]
    documents = [
        rate_rq(
            rate_message(
                day(3),
                day(9),
                '<BaseByGuestAmt NumberOfGuests="2" AmountAfterTax="140.00" DecimalPlaces="2"/>',
                mask='Mon="true" Sat="false"',
            )
        ),
        avail_rq(
            f'<AvailStatusMessage BookingLimit="3"><StatusApplicationControl Start="{day(1)}" End="{day(4)}" '
            f'InvTypeCode="R"/><LengthsOfStay><LengthOfStay MinMaxMessageType="SetMinLOS" Time="2" TimeUnit="Day"/>'
            f'</LengthsOfStay><RestrictionStatus Status="Close" Restriction="Master"/></AvailStatusMessage>'
        ),
        inv_rq(
            f'<Inventory><StatusApplicationControl Start="{day(1)}" End="{day(4)}" InvTypeCode="R" AllInvCode="false"/>'
            f'<InvCounts><InvCount Count="0" CountType="2"/></InvCounts></Inventory>'
        ),
    ]
    store = Products("H123:R:P")
    for document in documents:
        values = list(re.finditer(rb'="([^"]*)"', document))
        for _ in range(40):
            found = rng.choice(values)
            value = rng.choice(garbage).replace("\u0000", "&#1;").encode()
            mutated = document[:found.start(1)] + value + document[found.end(1):]
            message, outcome = ota.parse(mutated, "booking", products=store)
            ET.fromstring(ota.response(message, outcome))  # the RS is always well-formed
