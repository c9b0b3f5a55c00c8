"""A night is three facts (contract v1.1): one-fact events over real HTTP, through restarts,
kill -9, a data directory written before facts, search and validation.

The ordering of facts against a brute-force model lives in `test_ordering.py` (its model is
reused here); the calendar store's own model test in `test_calendar.py`.
"""

from __future__ import annotations

import datetime as dt
import random
import shutil
import sqlite3
from pathlib import Path

import pytest

from test_ordering import EXPONENTS, KINDS, Change, model
from wire_events import fact, listing, nights, post, post_ok, rate, unique_id
from wire_events import night as day

FIXTURE = Path(__file__).parent / "fixtures" / "v1_data_dir"


def random_changes(seed: int, count: int) -> list[Change]:
    """Events of every kind over overlapping ranges of two listings, many ties among them."""
    rng = random.Random(seed)
    changes = []
    for _ in range(count):
        start = rng.randrange(70)
        kind = rng.choice(KINDS)
        changes.append(Change(
            unit=rng.randrange(2), start=start, nights=rng.randrange(1, 40), changed=rng.randrange(40),
            minor=rng.randrange(10**6) if kind == "price" or rng.random() < 0.8 else None,
            currency=rng.choice(sorted(EXPONENTS)), min_nights=rng.randrange(1, 4), kind=kind,
            available=rng.random() < 0.6,
        ))
    return changes


def send_all(client, changes: list[Change], listing_ids: list[str], per_request: int = 7) -> None:
    for first in range(0, len(changes), per_request):
        post_ok(client, [c.event(listing_ids[c.unit]) for c in changes[first : first + per_request]])


@pytest.mark.parametrize("stop", ["clean", "kill -9"])
def test_facts_survive_a_restart(server_factory, tmp_path: Path, stop: str) -> None:
    """Facts set before a clean stop (snapshot) or a kill -9 (log replay) read the same after."""
    changes = random_changes(5, 80)
    listing_ids = [unique_id("facts"), unique_id("facts")]
    data_dir = tmp_path / "var"
    server = server_factory(data_dir=data_dir)
    with server.client() as client:
        send_all(client, changes[:40], listing_ids)
    server.stop()  # a snapshot of the first half; the second half goes to the log only
    server = server_factory(data_dir=data_dir)
    with server.client() as client:
        send_all(client, changes[40:], listing_ids)
        before = [nights(client, listing_id) for listing_id in listing_ids]
    assert before == model(changes, 2)
    if stop == "clean":
        assert server.stop() == 0
    else:
        server.kill()
    server = server_factory(data_dir=data_dir)
    with server.client() as client:
        assert [nights(client, listing_id) for listing_id in listing_ids] == before


def test_a_data_dir_from_before_facts_opens_and_takes_facts(server_factory, tmp_path: Path) -> None:
    """tests/fixtures/v1_data_dir was written by main 49ffa0b (see make_v1_data_dir.py): a
    snapshot of v1 entries and a log of v1 rows. Both open; a rate there set all three facts."""
    data_dir = tmp_path / "var"
    shutil.copytree(FIXTURE, data_dir)
    server = server_factory("--earliest-night", "2026-01-01", data_dir=data_dir)

    def night(day: int, price: str | None, available: bool, min_nights: int, hour: int) -> dict[str, object]:
        return {"night": f"2027-01-{day:02d}", "price": price, "currency": None if price is None else "EUR",
                "available": available, "min_nights": min_nights, "changed_at": f"2026-12-01T{hour:02d}:00:00.000Z"}

    expected_a = {
        **{f"2027-01-{d}": night(d, "120.00", True, 2, 8) for d in (10, 11, 12, 13, 14, 17)},
        **{f"2027-01-{d}": night(d, None, False, 1, 9) for d in (15, 16)},  # rate: unavailable, no price
        **{f"2027-01-{d}": night(d, "150.00", True, 3, 10) for d in (18, 19)},  # from the log
    }
    expected_b = {"2027-01-10": night(10, "80.50", True, 1, 8),
                  **{f"2027-01-{d}": night(d, "90.00", True, 1, 10) for d in (11, 12)}}
    with server.client() as client:
        assert nights(client, "v1-a") == expected_a
        assert nights(client, "v1-b") == expected_b
        # One fact on top of a v1 night keeps its other two.
        post_ok(client, [
            {"type": "availability", "source": "airbnb", "listing_id": "v1-a", "start": "2027-01-10",
             "end": "2027-01-12", "available": False, "changed_at": "2026-12-02T00:00:00Z"},
            {"type": "price", "source": "airbnb", "listing_id": "v1-a", "start": "2027-01-15",
             "end": "2027-01-16", "price": "99.00", "currency": "EUR", "changed_at": "2026-12-02T00:00:00Z"},
        ])
        for day in ("2027-01-10", "2027-01-11"):
            expected_a[day] = {**expected_a[day], "available": False, "changed_at": "2026-12-02T00:00:00.000Z"}
        expected_a["2027-01-15"] = {**expected_a["2027-01-15"], "price": "99.00", "currency": "EUR",
                                    "changed_at": "2026-12-02T00:00:00.000Z"}
        assert nights(client, "v1-a") == expected_a
    assert server.stop() == 0
    with sqlite3.connect(data_dir / "store.sqlite3") as database:
        assert database.execute("PRAGMA user_version").fetchone() == (2,), "the log was rewritten once"
    server = server_factory("--earliest-night", "2026-01-01", data_dir=data_dir)
    with server.client() as client:
        assert nights(client, "v1-a") == expected_a
        assert nights(client, "v1-b") == expected_b


def test_search_uses_only_nights_available_and_priced(server) -> None:
    """A night is bookable once both its availability and price facts say so, whichever came
    first and in whichever events; a price alone or availability alone is not enough."""
    checkin = 30
    area = {"lat": -33.0, "lon": 151.0, "radius_km": 1}
    stay = {"checkin": (dt.date.today() + dt.timedelta(days=checkin)).isoformat(),
            "checkout": (dt.date.today() + dt.timedelta(days=checkin + 2)).isoformat()}
    with server.client() as client:
        def found() -> set[str]:
            response = client.get("/v1/search", params={**area, **stay})
            assert response.status_code == 200, response.text
            return {r["listing_id"] for r in response.json()["results"]}

        ids = {name: unique_id(name) for name in ("priced", "open", "both", "closed", "ruled", "nopriced")}
        post_ok(client, [listing(i, lat=-33.0, lon=151.0) for i in ids.values()])
        end = checkin + 2
        post_ok(client, [
            fact("price", ids["priced"], checkin, end, price="50.00", currency="EUR"),
            fact("availability", ids["open"], checkin, end, available=True),
            fact("availability", ids["both"], checkin, end, available=True, changed=5),
            fact("price", ids["both"], checkin, end, price="60.00", currency="EUR", changed=1),
            rate(ids["closed"], checkin, end, "70.00"),
            fact("availability", ids["closed"], checkin + 1, end, available=False, changed=1),
            rate(ids["ruled"], checkin, end, "80.00", min_nights=1),
            fact("stay_rule", ids["ruled"], checkin, end, min_nights=3, changed=1),
            fact("availability", ids["nopriced"], checkin, end, available=True, changed=1),
            rate(ids["nopriced"], checkin, end, None, available=False),  # older: its "no price" stays
        ])
        assert found() & set(ids.values()) == {ids["both"]}
        response = client.get("/v1/search", params={**area, **stay})
        both = next(r for r in response.json()["results"] if r["listing_id"] == ids["both"])
        assert both["total"] == "120.00"
        # The missing fact arrives: now bookable. An older price loses to the rate's.
        post_ok(client, [
            fact("availability", ids["priced"], checkin, end, available=True),
            fact("price", ids["open"], checkin, end, price="40.00", currency="EUR"),
            fact("price", ids["nopriced"], checkin, end, price="30.00", currency="EUR", changed=2),
            fact("availability", ids["closed"], checkin, end, available=True, changed=-5),  # older: loses
        ])
        assert found() & set(ids.values()) == {ids["both"], ids["priced"], ids["open"], ids["nopriced"]}
        post_ok(client, [fact("stay_rule", ids["ruled"], checkin, end, min_nights=2, changed=2)])
        assert ids["ruled"] in found()


@pytest.mark.parametrize(("event", "message"), [
    ({"type": "price", "price": "-1", "currency": "EUR"}, "price: '-1' is negative; expected a price >= 0"),
    ({"type": "price", "price": "1.001", "currency": "EUR"}, "price: '1.001' has more decimals than EUR allows (2)"),
    ({"type": "price", "currency": "EUR"}, "price: missing; expected a value (required field)"),
    ({"type": "price", "price": None, "currency": "EUR"}, "price: None; expected `decimal`, got `null`"),
    ({"type": "price", "price": "10"}, "currency: missing; expected a value (required field)"),
    ({"type": "price", "price": "10", "currency": "EURO"}, "currency: 'EURO' is not an ISO 4217 currency code"),
    ({"type": "availability"}, "available: missing; expected a value (required field)"),
    ({"type": "availability", "available": "yes"}, "available: 'yes'; expected `bool`, got `str`"),
    ({"type": "stay_rule"}, "min_nights: missing; expected a value (required field)"),
    ({"type": "stay_rule", "min_nights": 0}, "min_nights: 0 is out of range; expected 1 to 1125"),
    ({"type": "stay_rule", "min_nights": 2, "end": "2020-01-01"},
     "end: '2020-01-01' is not after start"),
    ({"type": "availability", "available": True, "changed_at": "2026-01-01T00:00:00"},
     "changed_at: '2026-01-01T00:00:00' has no time zone"),
    ({"type": "prices", "price": "1"}, "type: 'prices' is not one of 'listing', 'rate', 'price', 'availability', "
                                       "'stay_rule', 'delist'"),
])
def test_bad_fact_events_say_field_value_and_expectation(server, event: dict[str, object], message: str) -> None:
    start = dt.date.today() + dt.timedelta(days=3)
    good = {"source": "airbnb", "listing_id": unique_id("bad"), "start": start.isoformat(),
            "end": (start + dt.timedelta(days=2)).isoformat(), "changed_at": "2026-01-01T00:00:00Z"}
    valid = fact("availability", unique_id("ok"), 1, 2, available=True)
    with server.client() as client:
        response = post(client, [valid, {**good, **event}])
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["accepted"] == 1
    assert len(body["rejected"]) == 1 and body["rejected"][0]["index"] == 1
    assert body["rejected"][0]["error"].startswith(message), body["rejected"][0]["error"]


def test_openapi_documents_every_event_type_the_decoder_takes() -> None:
    import typing

    from staystream.api.openapi import SCHEMA
    from staystream.events.types import Event

    decoded = {member.__struct_config__.tag for member in typing.get_args(Event)}
    documented = SCHEMA["components"]["schemas"]["Event"]["discriminator"]["mapping"]
    assert set(documented) == decoded
    for kind, reference in documented.items():
        assert SCHEMA["components"]["schemas"][reference.rsplit("/", 1)[1]]["properties"]["type"] == {"const": kind}


def test_an_adapter_rewrites_nights_that_hold_some_facts_or_no_price(server) -> None:
    """A native adapter over nights that hold some facts or no price: it sets only the fact its
    message carries (here the stay rule) and leaves the others as they are."""
    namespace = "http://www.opentravel.org/OTA/2003/05"
    sent_at = (dt.datetime.now(dt.UTC) - dt.timedelta(minutes=30)).strftime("%Y-%m-%dT%H:%M:%SZ")
    listing_id = f"{unique_id('H')}:R:P"
    hotel = listing_id.split(":")[0]
    with server.client() as client:
        post_ok(client, [rate(listing_id, 20, 21, "100.00", source="booking"),
                         rate(listing_id, 21, 22, None, available=False, source="booking"),
                         fact("stay_rule", listing_id, 22, 23, min_nights=4, source="booking")])
        document = (
            f'<OTA_HotelAvailNotifRQ xmlns="{namespace}" EchoToken="t" TimeStamp="{sent_at}" Version="3.0">'
            f'<AvailStatusMessages HotelCode="{hotel}"><AvailStatusMessage><StatusApplicationControl '
            f'Start="{day(20)}" End="{day(22)}" InvTypeCode="R" RatePlanCode="P"/><LengthsOfStay><LengthOfStay '
            'MinMaxMessageType="SetMinLOS" Time="2" TimeUnit="Day"/></LengthsOfStay></AvailStatusMessage>'
            '</AvailStatusMessages></OTA_HotelAvailNotifRQ>')
        response = client.post("/v1/sources/booking/ota", content=document.encode(),
                               headers={"content-type": "application/xml"})
        assert response.status_code == 200, response.text
        assert "<Success" in response.text, response.text
        got = nights(client, listing_id, source="booking")
    assert [(got[day(d)]["price"], got[day(d)]["available"], got[day(d)]["min_nights"]) for d in (20, 21)] == [
        ("100.00", True, 2), (None, False, 2)]
