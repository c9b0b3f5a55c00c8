"""iCalendar availability feeds: parsing (folding, CRLF, TZID, timed events, bad lines) and the API.

Rewritten for contract v1.1 ("one fact at a time"): a feed now sets only availability, so the
tests of carry-forward over the store ("cannot become available: no price", "no currency is
known", `?currency=`, "a repeated feed writes nothing") became tests that blocks close and
other nights open without price or currency. Public exports are in `test_partner_examples.py`.
"""

from __future__ import annotations

import datetime as dt
import json

import pytest

from staystream.adapters import ical

TODAY = dt.date.today()
NOW = dt.datetime.now(dt.UTC)


def d(offset: int) -> dt.date:
    return TODAY + dt.timedelta(days=offset)


def ics(offset: int) -> str:
    return d(offset).strftime("%Y%m%d")


def airbnb(events: str, newline: str = "\r\n") -> bytes:
    lines = ["BEGIN:VCALENDAR", "PRODID:-//Airbnb Inc//Hosting Calendar 0.8.8//EN", "CALSCALE:GREGORIAN",
             "VERSION:2.0", events.strip("\n"), "END:VCALENDAR"]
    return (newline.join(lines) + newline).encode()


def vevent(*props: str) -> str:
    return "\n".join(["BEGIN:VEVENT", *props, "END:VEVENT"])


def blocked(feed: ical.Feed) -> set[dt.date]:
    nights = set()
    for block in feed.blocks:
        night = block.first
        while night < block.end:
            nights.add(night)
            night += dt.timedelta(days=1)
    return nights


def span(first: int, end: int) -> set[dt.date]:
    return {d(i) for i in range(first, end)}


AIRBNB_RESERVED = vevent(
    "DTSTAMP:20250301T101500Z", f"DTSTART;VALUE=DATE:{ics(10)}", f"DTEND;VALUE=DATE:{ics(13)}", "SUMMARY:Reserved",
    "UID:1418fb94e984-abc123@airbnb.com",
    "DESCRIPTION:Reservation URL: https://www.airbnb.com/hosting/reservations/deta",
    " ils/HMABCDEFGH\\nPhone Number (Last 4 Digits): 1234")
AIRBNB_BLOCKED = vevent(f"DTSTART;VALUE=DATE:{ics(20)}", f"DTEND;VALUE=DATE:{ics(22)}",
                        "SUMMARY:Airbnb (Not available)", "UID:7f5c7a9a-1b1b@airbnb.com")


def test_airbnb_feed_with_crlf_and_folding() -> None:
    folded_start = vevent(f"DTSTART;VALUE=DATE:{ics(30)[:4]}", f" {ics(30)[4:]}", f"DTEND;VALUE=DATE:{ics(31)}",
                          "SUMMARY:Reserved")
    feed = ical.read_feed(airbnb("\n".join([AIRBNB_RESERVED, AIRBNB_BLOCKED, folded_start]).replace("\n", "\r\n")))
    assert feed.problems == [] and feed.vevents == 3
    assert feed.prodid == "-//Airbnb Inc//Hosting Calendar 0.8.8//EN"
    assert blocked(feed) == span(10, 13) | span(20, 22) | {d(30)}  # DTEND is the checkout day
    assert feed.blocks[0].uid == "1418fb94e984-abc123@airbnb.com"


def test_vrbo_feed_with_bare_lf_and_default_lengths() -> None:
    feed = ical.read_feed(airbnb("\n".join([
        vevent(f"DTSTART;VALUE=DATE:{ics(3)}", f"DTEND;VALUE=DATE:{ics(5)}", "SUMMARY:Reserved - Jane D",
               "UID:2f8e9c4a-0d7b-4d6a-9a57-9f0f2b0d1e11"),
        vevent(f"DTSTART;VALUE=DATE:{ics(7)}", "SUMMARY:Blocked"),  # no DTEND: one night
        vevent(f"DTSTART;VALUE=DATE:{ics(9)}", "DURATION:P2D", "SUMMARY:Blocked"),
        vevent(f"DTSTART:{ics(12)}", f"DTEND:{ics(13)}", "SUMMARY:no VALUE=DATE"),
    ]).replace("PRODID", "X"), newline="\n").replace(b"Airbnb Inc//Hosting Calendar 0.8.8", b"HomeAway.com, Inc."))
    assert feed.problems == []
    assert blocked(feed) == span(3, 5) | {d(7)} | span(9, 11) | {d(12)}


def test_timed_events_cover_the_dates_they_touch() -> None:
    feed = ical.read_feed(airbnb("\n".join([
        vevent(f"DTSTART;TZID=Europe/Paris:{ics(1)}T150000", f"DTEND;TZID=Europe/Paris:{ics(3)}T110000"),
        vevent(f"DTSTART:{ics(5)}T220000", f"DTEND:{ics(7)}T000000"),  # ends at midnight: 7 untouched
        vevent(f"DTSTART;TZID=\"America/New_York\":{ics(9)}T100000", "DURATION:PT4H"),
        vevent(f"DTSTART:{ics(11)}T120000"),  # an instant
    ])))
    assert feed.problems == []
    assert blocked(feed) == span(1, 4) | span(5, 7) | {d(9)} | {d(11)}


def test_utc_times_use_the_feeds_time_zone() -> None:
    event = vevent(f"DTSTART:{ics(1)}T230000Z", f"DTEND:{ics(2)}T220000Z")
    assert blocked(ical.read_feed(airbnb(event))) == span(1, 3)
    tokyo = airbnb(event).replace(b"VERSION:2.0", b"VERSION:2.0\r\nX-WR-TIMEZONE:Asia/Tokyo")
    assert blocked(ical.read_feed(tokyo)) == span(2, 4)  # 23:00Z is 08:00 the next day in Tokyo
    unknown = ical.read_feed(airbnb(event).replace(b"VERSION:2.0", b"VERSION:2.0\r\nX-WR-TIMEZONE:Mars/Olympus"))
    assert unknown.problems == [] and "'Mars/Olympus' is not a known time zone" in str(unknown.warnings[0])


def test_cancelled_events_block_nothing() -> None:
    feed = ical.read_feed(
        airbnb(vevent(f"DTSTART;VALUE=DATE:{ics(3)}", f"DTEND;VALUE=DATE:{ics(5)}", "STATUS:CANCELLED"))
    )
    assert feed.blocks == [] and feed.cancelled == 1 and feed.problems == []


def test_malformed_lines_and_events_are_named_by_line_and_do_not_stop_the_rest() -> None:
    document = airbnb("\n".join([
        vevent(f"DTSTART;VALUE=DATE:{ics(2)}", f"DTEND;VALUE=DATE:{ics(4)}"),   # lines 5-8: fine
        "this line has no colon",                                               # line 9
        vevent("DTSTART;VALUE=DATE:20261340", f"DTEND;VALUE=DATE:{ics(4)}"),    # lines 10-13
        vevent(f"DTSTART;VALUE=DATE:{ics(8)}", f"DTEND;VALUE=DATE:{ics(6)}"),   # lines 14-17
        vevent(f"DTSTART;VALUE=DATE:{ics(9)}", "RRULE:FREQ=WEEKLY"),            # lines 18-21
        vevent("SUMMARY:no start"),                                             # lines 22-24
        vevent(f"DTSTART;VALUE=DATE:{ics(9)}", f"DTEND:{ics(10)}T100000"),      # lines 25-28
        vevent(f"DTSTART;VALUE=DATE:{ics(9)}", "DURATION:PT5H"),                # lines 29-32
        vevent(f"DTSTART;VALUE=DATE:{ics(12)}", f"DTEND;VALUE=DATE:{ics(13)}"),  # lines 33-36: fine
    ]))
    feed = ical.read_feed(document)
    assert [str(p) for p in feed.problems] == [
        "line 9: 'this line has no colon' is not a content line; expected NAME[;PARAM=VALUE]:VALUE",
        "line 11: DTSTART: '20261340' is not a date or date-time; expected YYYYMMDD (VALUE=DATE) or YYYYMMDDTHHMMSS[Z]",
        f"line 16: DTEND: '{ics(6)}' is not after DTSTART '{ics(8)}'; expected the checkout day, after the first night",
        "line 20: RRULE: recurring events are not supported; expected one VEVENT per reservation or block",
        "line 22: VEVENT has no DTSTART; expected e.g. DTSTART;VALUE=DATE:20250410",
        f"line 27: DTEND: '{ics(10)}T100000' is a date-time but DTSTART is not; expected both alike",
        "line 31: DURATION: 'PT5H' is not whole days; an all-day event needs e.g. P3D",
    ]
    assert blocked(feed) == span(2, 4) | {d(12)}


def test_unclosed_event_and_mismatched_end() -> None:
    feed = ical.read_feed(
        b"BEGIN:VCALENDAR\nBEGIN:VEVENT\nDTSTART;VALUE=DATE:" + ics(1).encode() + b"\nEND:VCALENDAR\n"
    )
    assert [str(p) for p in feed.problems] == ["line 4: END:VCALENDAR closes VEVENT; expected END:VEVENT",
                                               "line 2: BEGIN:VEVENT is never closed; expected END:VEVENT"]


@pytest.mark.parametrize(("document", "expected"), [
    (b"", "the body is empty"),
    (b"\r\n  \r\n", "the body is empty"),
    (b"<html>Service Unavailable</html>", "line 1: '<html>Service Unavailable</html>' is not BEGIN:VCALENDAR"),
    (b'{"calendar": []}', "is not BEGIN:VCALENDAR"),
])
def test_not_a_feed(document: bytes, expected: str) -> None:
    with pytest.raises(ical.FeedError) as caught:
        ical.read_feed(document)
    assert expected in str(caught.value)


# -- availability facts -----------------------------------------------------------------------


def availability(result: ical.Result) -> dict[dt.date, bool]:
    out = {}
    for event in result.outcome.events:
        assert not hasattr(event, "price") and not hasattr(event, "min_nights")  # availability only
        night = event.start
        while night < event.end:
            out[night] = event.available
            night += dt.timedelta(days=1)
    return out


def test_plan_blocks_and_opens_without_price_or_currency() -> None:
    feed = ical.read_feed(airbnb(vevent(f"DTSTART;VALUE=DATE:{ics(2)}", f"DTEND;VALUE=DATE:{ics(4)}")))
    result = ical.plan(feed, "airbnb", "L2", start=d(0), end=d(12), changed_at=NOW)
    assert availability(result) == {d(i): i not in (2, 3) for i in range(12)}
    assert (result.blocked_nights, result.open_nights, result.opened) == (2, 10, True)
    assert result.outcome.warnings == [] and len(result.outcome.events) == 3  # runs: open, blocked, open
    assert {e.changed_at for e in result.outcome.events} == {NOW}


def test_plan_opens_nothing_when_an_event_is_malformed_or_the_feed_is_empty() -> None:
    bad = ical.read_feed(airbnb("\n".join([vevent(f"DTSTART;VALUE=DATE:{ics(2)}"), vevent("DTSTART:garbage")])))
    result = ical.plan(bad, "airbnb", "L1", start=d(0), end=d(10), changed_at=NOW)
    assert availability(result) == {d(2): False} and not result.opened
    assert "9 nights" in str(result.outcome.warnings[0]) and "malformed events" in str(result.outcome.warnings[0])
    empty = ical.read_feed(airbnb(""))
    result = ical.plan(empty, "airbnb", "L1", start=d(0), end=d(10), changed_at=NOW)
    assert result.outcome.events == [] and "empty_ok=true" in str(result.outcome.warnings[0])
    result = ical.plan(empty, "airbnb", "L1", start=d(0), end=d(10), changed_at=NOW, empty_ok=True)
    assert availability(result) == {d(i): True for i in range(10)}


def test_utc_times_without_a_feed_zone_are_dated_in_the_sources_zone() -> None:
    from zoneinfo import ZoneInfo

    event = vevent(f"DTSTART:{ics(5)}T230000Z", f"DTEND:{ics(6)}T100000Z")
    assert blocked(ical.read_feed(airbnb(event))) == {d(5), d(6)}
    assert blocked(ical.read_feed(airbnb(event), ZoneInfo("Asia/Tokyo"))) == {d(6)}  # 08:00 to 19:00 on day 6


# -- through the real HTTP API ----------------------------------------------------------------


def test_http_feed_blocks_and_reopens_nights(server) -> None:
    rates = json.dumps({"type": "rate", "source": "airbnb", "listing_id": "ical-1", "start": d(0).isoformat(),
                        "end": d(20).isoformat(), "price": "129.00", "currency": "EUR", "min_nights": 2,
                        "changed_at": (NOW - dt.timedelta(hours=1)).isoformat()})
    feed = airbnb("\n".join([AIRBNB_RESERVED, AIRBNB_BLOCKED]))
    url = "/v1/sources/airbnb/listings/ical-1/ical"
    query = {"start": d(0).isoformat(), "end": d(25).isoformat()}
    with server.client() as client:
        assert (
            client.post("/v1/events", content=rates, headers={"content-type": "application/x-ndjson"}).status_code
            == 200
        )
        response = client.post(url, params=query, content=feed, headers={"content-type": "text/calendar"})
        assert response.status_code == 200, response.text
        body = response.json()
        assert {k: body[k] for k in ("feed_events", "blocked_nights", "open_nights", "opened", "accepted", "rejected",
                                     "errors", "warnings")} == {
            "feed_events": 2, "blocked_nights": 5, "open_nights": 20, "opened": True, "accepted": 5,
            "rejected": [], "errors": [], "warnings": []}
        nights = {n["night"]: (n["price"], n["currency"], n["available"], n["min_nights"])
                  for n in client.get("/v1/listings/airbnb/ical-1/calendar").json()["nights"]}
        # priced nights keep price and stay rule; blocked 20-21 and open 22-24 never had a price
        assert {k: v for k, v in nights.items() if v[0] is not None} == {
            d(i).isoformat(): ("129.00", "EUR", i not in (10, 11, 12), 2) for i in range(20)}
        assert {k: (v[0], v[2]) for k, v in nights.items() if v[0] is None} == {
            d(20).isoformat(): (None, False), d(21).isoformat(): (None, False),
            **{d(i).isoformat(): (None, True) for i in (22, 23, 24)}}
        cancelled = airbnb(AIRBNB_BLOCKED)  # the reservation of nights 10-12 is gone
        assert client.post(url, params=query, content=cancelled).json()["accepted"] == 3
        nights = {
            n["night"]: n["available"] for n in client.get("/v1/listings/airbnb/ical-1/calendar").json()["nights"]
        }
        assert all(nights[d(i).isoformat()] for i in (10, 11, 12))


def test_http_refusals(server) -> None:
    with server.client() as client:
        url = "/v1/sources/airbnb/listings/ical-2/ical"
        response = client.post(url, content=b"<html>Service Unavailable</html>")
        assert response.status_code == 400
        assert response.json()["error"].startswith("line 1: '<html>Service Unavailable</html>' is not BEGIN:VCALENDAR")
        response = client.post(url, params={"start": "2025-02-30"}, content=airbnb(""))
        assert response.status_code == 400 and response.json()["error"].startswith("start: '2025-02-30' is not a date")
        malformed = client.post(url, content=airbnb("\n".join([
            vevent(f"DTSTART;VALUE=DATE:{ics(3)}"), "BROKEN LINE"])))
        assert malformed.status_code == 200
        body = malformed.json()
        assert body["errors"] == [{"line": 8, "error": "line 8: 'BROKEN LINE' is not a content line; expected "
                                                       "NAME[;PARAM=VALUE]:VALUE"}]
        assert body["opened"] is False and body["accepted"] == 1


def test_dates_at_the_ends_of_the_calendar_are_errors_not_crashes() -> None:
    feed = ical.read_feed(airbnb("\n".join([
        vevent("DTSTART;VALUE=DATE:99991231"),
        vevent("DTSTART;VALUE=DATE:20250101", "DURATION:P99999999W"),
        vevent("DTSTART:99991231T230000Z"),
        vevent(f"DTSTART;VALUE=DATE:{ics(1)}", f"DTEND;VALUE=DATE:{ics(2)}"),
    ])).replace(b"VERSION:2.0", b"VERSION:2.0\r\nX-WR-TIMEZONE:America/New_York"))
    assert [str(p) for p in feed.problems] == [f"line {n}: the event ends after year 9999; expected a real stay"
                                               for n in (6, 9, 13)]
    assert blocked(feed) == {d(1)}
