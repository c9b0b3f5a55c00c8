"""Fees and taxes (wire contract v1.1) against a brute-force model, over a real server.

Hypothesis makes small worlds: listings priced in EUR, USD or JPY (some with a second currency
on some nights), each with versions of fees of every basis, mandatory or optional, with and
without a check-in window, removals, posted in shuffled order with repeated `changed_at`s. The
model keeps the contract's rule literally (per fee the greatest changed_at, the later arrival
winning ties; amount null removes) and computes each total with `fractions.Fraction`: the nights
and every mandatory fee that applies, each converted from its own currency by the server's FX
table, a percent fee of the nights in the listing's currency, rounded once, half-even. Every
search result's `total`, `nights_total`, `fees`, the ranking by total and the price bounds must
match. Then durability: fees survive a clean restart and a kill -9.
"""

from __future__ import annotations

import datetime as dt
import json
import random
import time
from dataclasses import dataclass, field
from decimal import Decimal
from fractions import Fraction

import httpx
import pytest
from hypothesis import HealthCheck, Phase, given, note, settings
from hypothesis import strategies as st

from pg_fixtures import postgres  # noqa: F401 (fixture)

NDJSON = {"content-type": "application/x-ndjson"}
EXPONENT = {"EUR": 2, "USD": 2, "JPY": 0}
BASES = ("per_stay", "per_night", "per_guest_per_night", "percent")


@dataclass
class Unit:
    listing_id: str
    lat: float
    lon: float
    nights: dict[int, tuple[int, str]] = field(default_factory=dict)  # day -> (minor, currency)
    fees: dict[str, dict | None] = field(default_factory=dict)  # the model's winner per fee_id (None: removed)


def iso(day: int) -> str:
    return (dt.date(1970, 1, 1) + dt.timedelta(days=day)).isoformat()


def stamp(second: int) -> str:
    return (dt.datetime(2026, 1, 1, tzinfo=dt.UTC) + dt.timedelta(seconds=second)).isoformat().replace("+00:00", "Z")


def text(minor: int, currency: str) -> str:
    return str(Decimal(minor).scaleb(-EXPONENT[currency]))


def convert(value: Fraction, source: str, target: str, rates: dict[str, Fraction]) -> Fraction:
    """Minor units of `source` as exact minor units of `target`."""
    if source == target:
        return value
    return value / 10 ** EXPONENT[source] / rates[source] * rates[target] * 10 ** EXPONENT[target]


def model(unit: Unit, checkin: int, nights: int, guests: int, target: str | None,
          rates: dict[str, Fraction]) -> tuple[int, int, list[dict], str] | None:
    """(total, nights_total, fees, currency) of the stay as the contract defines it; None when
    the stay is not open."""
    days = range(checkin, checkin + nights)
    if any(day not in unit.nights for day in days):
        return None
    own = unit.nights[checkin][1]
    shown = target or own
    nights_value = sum((convert(Fraction(unit.nights[d][0]), unit.nights[d][1], shown, rates) for d in days),
                       Fraction(0))
    nights_own = sum((convert(Fraction(unit.nights[d][0]), unit.nights[d][1], own, rates) for d in days),
                     Fraction(0))
    total = nights_value
    listed = []
    for fee_id, fee in sorted(unit.fees.items()):
        if fee is None or not fee["start"] <= checkin < fee["end"]:
            continue
        if fee["basis"] == "percent":
            value = convert(nights_own * Fraction(fee["percent"]) / 100, own, shown, rates)
        else:
            multiplier = {"per_stay": 1, "per_night": nights, "per_guest_per_night": nights * guests}[fee["basis"]]
            value = convert(Fraction(fee["amount"] * multiplier), fee["currency"], shown, rates)
        if fee["mandatory"]:
            total += value
        listed.append({"fee_id": fee_id, "label": fee["label"], "amount": text(round(value), shown),
                       "mandatory": fee["mandatory"]})
    return round(total), round(nights_value), listed, shown


def make_world(seed: int, base: int) -> tuple[list[Unit], list[dict], tuple[float, float]]:
    rng = random.Random(seed)
    world = rng.randrange(10**9)
    lat0, lon0 = -50 + (world % 500) * 0.2, -170 + (world // 500 % 1700) * 0.2
    units: list[Unit] = []
    events: list[dict] = []
    fee_events: list[dict] = []
    for i in range(rng.randint(3, 12)):
        unit = Unit(f"f{world}-{i}", round(lat0 + rng.random() * 0.02, 6), round(lon0 + rng.random() * 0.02, 6))
        currency = rng.choice(["EUR", "EUR", "USD", "JPY"])
        events.append({"type": "listing", "source": "feetest", "listing_id": unit.listing_id, "name": "x",
                       "kind": "apartment", "lat": unit.lat, "lon": unit.lon, "max_guests": 6,
                       "changed_at": stamp(0)})
        price = rng.choice([4000, 9999, 12345, 10050]) if currency != "JPY" else rng.choice([9000, 12345, 15001])
        events.append({"type": "rate", "source": "feetest", "listing_id": unit.listing_id, "start": iso(base),
                       "end": iso(base + 10), "currency": currency, "price": text(price, currency),
                       "changed_at": stamp(0)})
        unit.nights = {day: (price, currency) for day in range(base, base + 10)}
        if rng.random() < 0.25:  # some nights in another currency: the stay is converted night by night
            other, day = rng.choice(["EUR", "USD"]), base + rng.randint(1, 8)
            events.append({"type": "price", "source": "feetest", "listing_id": unit.listing_id, "start": iso(day),
                           "end": iso(day + 1), "currency": other, "price": "77.77", "changed_at": stamp(1)})
            unit.nights[day] = (7777, other)
        arrivals: list[tuple[str, int, dict | None]] = []  # (fee_id, changed_at second, fee or None)
        for f in range(rng.randint(0, 4)):
            fee_id = f"fee{f}"
            for _ in range(rng.randint(1, 3)):
                second = rng.randint(1, 4)  # few values: ties on changed_at
                if rng.random() < 0.2:
                    arrivals.append((fee_id, second, None))
                    continue
                basis = rng.choice(BASES)
                fee = {"basis": basis, "label": f"{basis} {f}", "mandatory": rng.random() < 0.75,
                       "start": -(2**31), "end": 2**31 - 1}
                if basis == "percent":
                    fee["percent"] = rng.choice(["10", "12.5", "0.333333", "7.7", "100"])
                else:
                    fee["currency"] = rng.choice(["EUR", "USD", "JPY", currency])
                    fee["amount"] = rng.choice([0, 1, 250, 5000, 3333, 12345])
                if rng.random() < 0.3:
                    fee["start"] = base + rng.randint(0, 5)
                    fee["end"] = fee["start"] + rng.randint(1, 5)
                arrivals.append((fee_id, second, fee))
        rng.shuffle(arrivals)
        for fee_id, second, fee in arrivals:
            event: dict = {"type": "fee", "source": "feetest", "listing_id": unit.listing_id, "fee_id": fee_id,
                           "changed_at": stamp(second)}
            if fee is None:
                event["amount"] = None
            else:
                event |= {"label": fee["label"], "basis": fee["basis"], "mandatory": fee["mandatory"]}
                if fee["basis"] == "percent":
                    event["percent"] = fee["percent"]
                else:
                    event |= {"amount": text(fee["amount"], fee["currency"]), "currency": fee["currency"]}
                if fee["start"] > -(2**31):
                    event |= {"start": iso(fee["start"]), "end": iso(fee["end"])}
            fee_events.append(event)
        newest: dict[str, int] = {}
        for fee_id, second, fee in arrivals:  # arrival order: the later of equal changed_at wins
            if second >= newest.get(fee_id, -1):
                newest[fee_id] = second
                unit.fees[fee_id] = fee
        units.append(unit)
    # Fees arrive before or after their listing's other events, in one request and in several.
    split = rng.randint(0, len(fee_events))
    return units, [fee_events[:split], events + fee_events[split:]], (lat0 + 0.01, lon0 + 0.01)


def post(client: httpx.Client, events: list[dict]) -> None:
    if events:
        response = client.post("/v1/events", content="\n".join(map(json.dumps, events)), headers=NDJSON)
        assert response.status_code == 200 and not response.json()["rejected"], response.text


def fx_rates(client: httpx.Client) -> dict[str, Fraction]:
    table = client.get("/v1/admin/fx").json()
    return {code: Fraction(Decimal(rate)) for code, rate in table["rates"].items() if code in EXPONENT}


@settings(max_examples=25, deadline=None, phases=[Phase.explicit, Phase.reuse, Phase.generate],
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2**32), checkin_offset=st.integers(0, 6), nights=st.integers(1, 4),
       guests=st.integers(1, 4), target=st.sampled_from([None, "EUR", "USD", "JPY"]))
def test_totals_follow_the_contract(server, seed: int, checkin_offset: int, nights: int, guests: int,
                                    target: str | None) -> None:
    base = (dt.date.today() - dt.date(1970, 1, 1)).days + 20
    units, requests, (lat, lon) = make_world(seed, base)
    with server.client() as client:
        for events in requests:
            post(client, events)
        rates = fx_rates(client)
        checkin = base + checkin_offset
        params = {"lat": lat, "lon": lon, "radius_km": 5, "checkin": iso(checkin), "checkout": iso(checkin + nights),
                  "guests": guests, "group": "listing", "limit": 200}
        if target:
            params["currency"] = target
        answer = client.get("/v1/search", params=params)
        assert answer.status_code == 200, answer.text
        results = answer.json()["results"]
    expected = {u.listing_id: model(u, checkin, nights, guests, target, rates) for u in units}
    expected = {key: value for key, value in expected.items() if value is not None}
    note(f"expected {expected}")
    got = {r["listing_id"]: (r["total"], r["nights_total"], r["fees"], r["currency"]) for r in results}
    assert got == {key: (text(t, c), text(n, c), fees, c) for key, (t, n, fees, c) in expected.items()}
    # Ranked by total with its fees (in the ranking currency: EUR when none is asked).
    ranking = target or "EUR"
    ranked = [model(u, checkin, nights, guests, ranking, rates) for u in units]
    by_id = {u.listing_id: r[0] for u, r in zip(units, ranked, strict=True) if r is not None}
    totals = [by_id[r["listing_id"]] for r in results]
    assert totals == sorted(totals)


@settings(max_examples=10, deadline=None, phases=[Phase.explicit, Phase.reuse, Phase.generate],
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2**32), share=st.fractions(0, 1))
def test_price_bounds_apply_to_totals_with_fees(server, seed: int, share: Fraction) -> None:
    base = (dt.date.today() - dt.date(1970, 1, 1)).days + 20
    units, requests, (lat, lon) = make_world(seed, base)
    with server.client() as client:
        for events in requests:
            post(client, events)
        rates = fx_rates(client)
        totals = {u.listing_id: model(u, base + 2, 3, 2, "EUR", rates) for u in units}
        known = sorted(t[0] for t in totals.values() if t is not None)
        if not known:
            return
        bound = known[min(len(known) - 1, int(share * len(known)))]
        for name, keep in (("max_price", lambda t: t <= bound), ("min_price", lambda t: t >= bound)):
            answer = client.get("/v1/search", params={
                "lat": lat, "lon": lon, "radius_km": 5, "checkin": iso(base + 2), "checkout": iso(base + 5),
                "guests": 2, "group": "listing", "currency": "EUR", name: text(bound, "EUR"), "limit": 200})
            assert answer.status_code == 200, answer.text
            found = {r["listing_id"] for r in answer.json()["results"]}
            assert found == {key for key, t in totals.items() if t is not None and keep(t[0])}, name


def listing_with_fees(listing_id: str, day: int) -> list[dict]:
    return [
        {"type": "listing", "source": "feetest", "listing_id": listing_id, "name": "Flat", "kind": "apartment",
         "lat": 10.5, "lon": 10.5, "max_guests": 4, "changed_at": stamp(0)},
        {"type": "rate", "source": "feetest", "listing_id": listing_id, "start": iso(day), "end": iso(day + 5),
         "price": "100", "currency": "EUR", "changed_at": stamp(0)},
        {"type": "fee", "source": "feetest", "listing_id": listing_id, "fee_id": "cleaning", "label": "Cleaning",
         "basis": "per_stay", "amount": "50", "currency": "EUR", "mandatory": True, "changed_at": stamp(1)},
        {"type": "fee", "source": "feetest", "listing_id": listing_id, "fee_id": "service", "label": "Service fee",
         "basis": "percent", "percent": "10", "mandatory": True, "changed_at": stamp(1)},
        {"type": "fee", "source": "feetest", "listing_id": listing_id, "fee_id": "city", "label": "City tax",
         "basis": "per_guest_per_night", "amount": "2.50", "currency": "EUR", "changed_at": stamp(1)},
        # removed, and an older version arriving later stays removed
        {"type": "fee", "source": "feetest", "listing_id": listing_id, "fee_id": "linen", "amount": None,
         "changed_at": stamp(5)},
        {"type": "fee", "source": "feetest", "listing_id": listing_id, "fee_id": "linen", "label": "Linen",
         "basis": "per_stay", "amount": "15", "currency": "EUR", "changed_at": stamp(4)},
    ]


def search_one(client: httpx.Client, day: int) -> dict:
    answer = client.get("/v1/search", params={"lat": 10.5, "lon": 10.5, "radius_km": 1, "checkin": iso(day),
                                              "checkout": iso(day + 3), "guests": 2})
    assert answer.status_code == 200, answer.text
    (result,) = answer.json()["results"]
    return result


@pytest.mark.parametrize("stop", ["clean", "kill"])
def test_fees_survive_a_restart(server_factory, tmp_path, stop: str) -> None:
    day = (dt.date.today() - dt.date(1970, 1, 1)).days + 20
    server = server_factory(data_dir=tmp_path / "var")
    with server.client() as client:
        post(client, listing_with_fees("durable", day))
        before = search_one(client, day)
    # 300 nights + 50 cleaning + 30 service (10%) + 2.50 x 2 guests x 3 nights
    assert (before["total"], before["nights_total"]) == ("395.00", "300.00")
    assert [fee["fee_id"] for fee in before["fees"]] == ["city", "cleaning", "service"]
    assert before["offers"][0]["total"] == "395.00"
    server.stop() if stop == "clean" else server.kill()
    server = server_factory(data_dir=tmp_path / "var")
    with server.client() as client:
        after = search_one(client, day)
        # and the arena keeps working after recovery: a change replaces the listing's block
        post(client, [{"type": "fee", "source": "feetest", "listing_id": "durable", "fee_id": "cleaning",
                       "amount": None, "changed_at": stamp(9)}])
        changed = search_one(client, day)
    assert (after["total"], after["fees"]) == (before["total"], before["fees"])
    assert changed["total"] == "345.00"


@pytest.mark.parametrize(("change", "error"), [
    ({"basis": "weekly"}, "basis: 'weekly'; expected one of per_stay, per_night, per_guest_per_night, percent"),
    ({"basis": "percent"}, "amount: '5' given with basis 'percent'; expected percent alone"),
    ({"amount": "-5"}, "amount: '-5' is negative; expected an amount >= 0"),
    ({"amount": "5.001"}, "amount: '5.001' has more decimals than EUR allows (2)"),
    ({"currency": "EURO"}, "currency: 'EURO' is not an ISO 4217 currency code"),
    ({"label": " "}, "label: missing; expected the fee's name as the traveler sees it (like 'Cleaning fee')"),
    ({"start": "2027-01-05", "end": "2027-01-05"}, "end: '2027-01-05' is not after start '2027-01-05'"),
    ({"amount": None, "percent": "101", "basis": "percent"}, "percent: '101' is out of range; expected a decimal"),
    ({"amount": None, "percent": "1.0000001", "basis": "percent"}, "percent: '1.0000001' has more than 6 decimals"),
    ({"percent": "3"}, "percent: '3' given with basis 'per_stay'; expected amount and currency"),
    ({"fee_id": ""}, "fee_id: '' is invalid; expected 1 to 128 printable characters"),
])
def test_bad_fees_are_rejected_with_field_and_value(server, change: dict, error: str) -> None:
    event = {"type": "fee", "source": "feetest", "listing_id": "bad", "fee_id": "x", "label": "X",
             "basis": "per_stay", "amount": "5", "currency": "EUR", "changed_at": stamp(0), **change}
    with server.client() as client:
        answer = client.post("/v1/events", json=[event]).json()
    assert answer["accepted"] == 0
    assert answer["rejected"][0]["error"].startswith(error), answer


def test_fees_through_postgresql_and_a_new_node(postgres, tmp_path) -> None:  # noqa: F811
    """`--store postgresql://`: fees are in PostgreSQL; a node with an empty data dir gets them."""
    from conftest import start_server
    from pg_fixtures import create_database

    uri = create_database(postgres, "fees")
    day = (dt.date.today() - dt.date(1970, 1, 1)).days + 20
    first = start_server(tmp_path / "a", "--store", uri)
    try:
        with first.client() as client:
            post(client, listing_with_fees("pg-fees", day))
            assert search_one(client, day)["total"] == "395.00"
    finally:
        first.kill()
    assert postgres.psql("SELECT count(*) FROM staystream.fees WHERE removed", uri) == "1"
    second = start_server(tmp_path / "b", "--store", uri)
    try:
        with second.client() as client:
            result = search_one(client, day)
    finally:
        second.stop()
    assert (result["total"], [fee["fee_id"] for fee in result["fees"]]) == ("395.00", ["city", "cleaning", "service"])


def test_fees_through_the_stream(tmp_path) -> None:
    """Scaled mode: fees travel in the stream messages, the applier puts them in PostgreSQL,
    and a new node bootstraps them from there."""
    from nats_fixtures import NatsCluster
    from pg_fixtures import Postgres
    from test_scaled import applier_drained, eventually, node

    day = (dt.date.today() - dt.date(1970, 1, 1)).days + 20

    def total(server) -> list[str]:
        with server.client() as client:
            found = client.get("/v1/search", params={"lat": 10.5, "lon": 10.5, "radius_km": 1, "checkin": iso(day),
                                                     "checkout": iso(day + 3), "guests": 2}).json()["results"]
        return [] if [r["total"] for r in found] == ["395.00"] else [f"results {found}"]

    with Postgres() as database, NatsCluster(3) as cluster:
        first = node(tmp_path / "all", database, cluster, "ingest,apply,search")
        try:
            with first.client() as client:
                post(client, listing_with_fees("stream-fees", day))
            eventually(lambda: total(first))
            written_at = time.time()
            eventually(lambda: applier_drained(first, written_at))
        finally:
            first.kill()
        assert database.psql("SELECT count(*) FROM staystream.fees", database.uri) == "4"
        second = node(tmp_path / "search", database, cluster, "ingest,search")
        try:
            eventually(lambda: total(second))
        finally:
            stopped = second.stop()
        assert stopped == 0  # it wrote nothing after its bootstrap: nothing to wait for at the stop


def test_places_dates_and_deals_rank_totals_with_fees(server) -> None:
    """The cheapest offer of a place, the dates strip and less_than_usual all compare totals
    with fees: a cheaper night with a cleaning fee loses to a dearer one without, and a stay
    whose check-in escapes a surcharge is a deal although every night costs the same."""
    today = (dt.date.today() - dt.date(1970, 1, 1)).days
    checkin = today + 60

    def listing(listing_id: str, lat: float, price: str, property_id: str | None = None) -> list[dict]:
        return [
            {"type": "listing", "source": "feetest", "listing_id": listing_id, "name": listing_id,
             "kind": "apartment", "lat": lat, "lon": 20.0, "max_guests": 2, "changed_at": stamp(0),
             **({"property_id": property_id} if property_id else {})},
            {"type": "rate", "source": "feetest", "listing_id": listing_id, "start": iso(today + 10),
             "end": iso(today + 110), "price": price, "currency": "EUR", "changed_at": stamp(0)},
        ]

    def fee(listing_id: str, fee_id: str, amount: str, start: int | None = None, end: int | None = None) -> dict:
        return {"type": "fee", "source": "feetest", "listing_id": listing_id, "fee_id": fee_id, "label": fee_id,
                "basis": "per_stay", "amount": amount, "currency": "EUR", "changed_at": stamp(1),
                **({"start": iso(start), "end": iso(end)} if start is not None and end is not None else {})}

    events = [
        *listing("hotel-a", 30.0, "100", "hotel"), *listing("hotel-b", 30.0, "90", "hotel"),
        fee("hotel-b", "cleaning", "50"),
        *listing("usual", 31.0, "100"),
        fee("usual", "surcharge", "100", today + 10, checkin), fee("usual", "surcharge-late", "100", checkin + 1,
                                                                     today + 110),
    ]
    with server.client() as client:
        post(client, events)
        place = client.get("/v1/search", params={"lat": 30.0, "lon": 20.0, "radius_km": 1, "checkin": iso(checkin),
                                                 "checkout": iso(checkin + 2)}).json()["results"]
        assert [(o["listing_id"], o["total"]) for o in place[0]["offers"]] == [("hotel-a", "200.00"),
                                                                               ("hotel-b", "230.00")]
        assert (place[0]["listing_id"], place[0]["total"]) == ("hotel-a", "200.00")
        dates = client.get("/v1/search/dates", params={"lat": 30.0, "lon": 20.0, "radius_km": 1, "nights": 2,
                                                       "from": iso(checkin), "days": 1, "group": "listing"}).json()
        assert dates["dates"][0]["cheapest"]["listing_id"] == "hotel-a"
        assert dates["dates"][0]["cheapest"]["total"] == "200.00"
        usual = client.get("/v1/search", params={"lat": 31.0, "lon": 20.0, "radius_km": 1, "checkin": iso(checkin),
                                                 "checkout": iso(checkin + 2), "deals": "only"}).json()["results"]
        surcharged = client.get("/v1/search", params={"lat": 31.0, "lon": 20.0, "radius_km": 1,
                                                      "checkin": iso(checkin + 1), "checkout": iso(checkin + 3),
                                                      "deals": "only"}).json()["results"]
    assert [(r["total"], r["deal"]) for r in usual] == [
        ("200.00", {"kind": "less_than_usual", "percent_below": "33.3", "reference_total": "300.00"})]
    assert surcharged == []


def test_import_reads_the_cleaning_fee_of_older_inside_airbnb_scrapes(server, tmp_path) -> None:
    """Scrapes before 2021 carry `cleaning_fee`: a mandatory per-stay fee; empty or zero, none."""
    from test_import_insideairbnb import import_args, run_import

    today = dt.date.today()
    scraped = (today - dt.timedelta(days=3)).isoformat()
    header = "id,name,latitude,longitude,room_type,property_type,accommodates,last_scraped,price,cleaning_fee\n"
    rows = [f"ia-{n},Flat {n},40.{n}1,-3.71,Entire home/apt,Apartment,2,{scraped},$80.00,{fee}\n"
            for n, fee in ((1, '"$1,050.50"'), (2, ""), (3, "$0.00"), (4, "$abc"))]
    (tmp_path / "listings.csv").write_text(header + "".join(rows))
    nights = [f"ia-{n},{today + dt.timedelta(days=30 + d)},t,$80.00,1\n" for n in (1, 2, 3, 4) for d in range(3)]
    (tmp_path / "calendar.csv").write_text("listing_id,date,available,price,minimum_nights\n" + "".join(nights))
    result, _ = run_import(*import_args(tmp_path / "listings.csv", tmp_path / "calendar.csv"), "--url", server.url,
                           cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "cleaning_fee: '$abc' is not an amount" in (tmp_path / "rejects.csv").read_text()
    totals = {}
    with server.client() as client:
        for n in (1, 2, 3):
            found = client.get("/v1/search", params={
                "lat": f"40.{n}1", "lon": -3.71, "radius_km": 0.5,
                "checkin": (today + dt.timedelta(days=30)).isoformat(),
                "checkout": (today + dt.timedelta(days=32)).isoformat()}).json()["results"]
            totals[n] = [(r["total"], r["nights_total"], r["fees"]) for r in found]
    assert totals == {
        1: [("1210.50", "160.00", [{"fee_id": "cleaning_fee", "label": "Cleaning fee", "amount": "1050.50",
                                    "mandatory": True}])],
        2: [("160.00", "160.00", [])],
        3: [("160.00", "160.00", [])],
    }


OTA_NS = "http://www.opentravel.org/OTA/2003/05"


def ota_rate(start: str, end: str, amount: str) -> bytes:
    return (
        f'<OTA_HotelRateAmountNotifRQ xmlns="{OTA_NS}" EchoToken="fees-1" TimeStamp="2026-01-01T00:00:05Z" '
        f'Version="3.0"><RateAmountMessages HotelCode="H9"><RateAmountMessage>'
        f'<StatusApplicationControl Start="{start}" End="{end}" InvTypeCode="DLX" RatePlanCode="BAR"/>'
        f'<Rates><Rate CurrencyCode="EUR"><BaseByGuestAmts><BaseByGuestAmt NumberOfGuests="2" {amount}>'
        '<Taxes><Tax Type="Exclusive" Code="19" Percent="10"><TaxDescription><Text>VAT</Text></TaxDescription></Tax>'
        '<Tax Type="Inclusive" Code="35" Amount="1.00"/></Taxes></BaseByGuestAmt></BaseByGuestAmts>'
        '<Fees><Fee Code="55" Amount="3000" DecimalPlaces="2" ChargeUnit="12"><Description><Text>Cleaning</Text>'
        '</Description></Fee><Fee Code="3" Amount="2.50" ChargeUnit="21"/>'
        '<Fee Code="14" Amount="20" ChargeUnit="12" MandatoryIndicator="false"/>'
        '<Fee Code="9" Amount="5" ChargeUnit="20"/></Fees></Rate></Rates></RateAmountMessage>'
        '</RateAmountMessages></OTA_HotelRateAmountNotifRQ>').encode()


def test_ota_taxes_and_fees_become_fee_events() -> None:
    from staystream.adapters import ota

    start, end = dt.date(2027, 3, 1), dt.date(2027, 3, 10)
    _, outcome = ota.parse(ota_rate(str(start), str(end), 'AmountBeforeTax="100.00"'), "booking")
    assert outcome.errors == []
    assert [w.where for w in outcome.warnings] == ["RateAmountMessage[1]/Rates/Rate[1]/Fees/Fee[4]@ChargeUnit"]
    fees = {e.fee_id: (e.basis, e.label, e.amount, e.percent, e.currency, e.mandatory, e.start, e.end)
            for e in outcome.events if type(e).__name__ == "FeeEvent"}
    window = (start, end + dt.timedelta(days=1))  # check-ins on the rate's nights (End is a night)
    assert fees == {
        "tax:19": ("percent", "VAT", None, Decimal("10"), None, True, *window),
        "fee:55": ("per_stay", "Cleaning", Decimal("30.00"), None, "EUR", True, *window),
        "fee:3": ("per_guest_per_night", "Fee 3", Decimal("2.50"), None, "EUR", True, *window),
        "fee:14": ("per_stay", "Fee 14", Decimal("20"), None, "EUR", False, *window),
    }
    # an amount after tax holds its taxes: only the fees are added
    _, outcome = ota.parse(ota_rate(str(start), str(end), 'AmountAfterTax="110.00"'), "booking")
    assert sorted(e.fee_id for e in outcome.events if type(e).__name__ == "FeeEvent") == ["fee:14", "fee:3", "fee:55"]


def test_ota_fees_reach_search_totals(server) -> None:
    day = (dt.date.today() - dt.date(1970, 1, 1)).days + 20
    with server.client() as client:
        post(client, [{"type": "listing", "source": "booking", "listing_id": "H9:DLX:BAR", "name": "Hotel 9",
                       "kind": "hotel_room", "lat": -20.5, "lon": 50.5, "max_guests": 2, "changed_at": stamp(0)},
                      {"type": "availability", "source": "booking", "listing_id": "H9:DLX:BAR", "start": iso(day),
                       "end": iso(day + 6), "available": True, "changed_at": stamp(0)}])
        answer = client.post("/v1/sources/booking/ota", content=ota_rate(iso(day), iso(day + 5),
                                                                          'AmountBeforeTax="100.00"'),
                             headers={"content-type": "application/xml"})
        assert answer.status_code == 200 and b"<Success" in answer.content, answer.text
        found = client.get("/v1/search", params={"lat": -20.5, "lon": 50.5, "radius_km": 1, "checkin": iso(day),
                                                 "checkout": iso(day + 2), "guests": 2}).json()["results"]
    # 200 nights + 10% VAT 20 + cleaning 30 + 2.50 x 2 guests x 2 nights; the optional 20 listed only
    assert [(r["total"], r["nights_total"]) for r in found] == [("260.00", "200.00")]
    assert {fee["fee_id"]: fee["mandatory"] for fee in found[0]["fees"]} == {
        "fee:14": False, "fee:3": True, "fee:55": True, "tax:19": True}


def test_expedia_tax_exclusive_properties_get_a_tax_fee() -> None:
    """A property the sources file says is priced before tax: each priced rate plan gets the tax
    as a mandatory percent fee; a property without the setting, none; a bad value is refused."""
    from staystream.adapters import expedia, source_settings
    from test_adapters_expedia import date_range, rq, update

    settings = source_settings.parse('[expedia]\ncurrency = "EUR"\n[expedia.properties.77]\ntax_percent = "12.5"\n')
    rooms = ('<RoomType id="DBL"><RatePlan id="BAR"><Rate><PerDay rate="100.00"/></Rate></RatePlan>'
             '<RatePlan id="NR" closed="true"/></RoomType>')
    fees = {}
    for hotel in ("77", "78"):
        _, outcome = expedia.parse(rq(update(date_range(10, 12), rooms), hotel=hotel), "expedia",
                                   settings["expedia"].for_property(hotel))
        assert outcome.errors == []
        fees[hotel] = [(e.listing_id, e.fee_id, e.basis, e.percent, e.mandatory) for e in outcome.events
                       if type(e).__name__ == "FeeEvent"]
    assert fees == {"77": [("77:DBL:BAR", "tax", "percent", Decimal("12.5"), True)], "78": []}
    with pytest.raises(source_settings.SettingsError, match="tax_percent: '12,5' is not a percent"):
        source_settings.parse('[expedia]\ntax_percent = "12,5"\n')


MAPPING = """
format = "csv"
delimiter = ";"

[listing]
listing_id = { column = "Objekt" }
name = { column = "Objekt" }
kind = { value = "apartment" }
lat = { column = "Breite" }
lon = { value = "7.5" }
max_guests = { value = 4 }
changed_at = { column = "Stand", datetime_format = "%d.%m.%Y %H:%M", timezone = "Europe/Berlin" }

[rate]
listing_id = { column = "Objekt" }
start = { column = "Von", date_format = "%d.%m.%Y" }
end = { column = "Bis", date_format = "%d.%m.%Y", inclusive = true }
price = { column = "Preis", decimal_comma = true }
currency = { value = "EUR" }
changed_at = { column = "Stand", datetime_format = "%d.%m.%Y %H:%M", timezone = "Europe/Berlin" }

[fees.cleaning]
listing_id = { column = "Objekt" }
label = { value = "Endreinigung" }
basis = { value = "per_stay" }
amount = { column = "Reinigung", decimal_comma = true }
currency = { value = "EUR" }
changed_at = { column = "Stand", datetime_format = "%d.%m.%Y %H:%M", timezone = "Europe/Berlin" }

[fees.kurtaxe]
listing_id = { column = "Objekt" }
label = { value = "Kurtaxe" }
basis = { value = "per_guest_per_night" }
amount = { column = "Kurtaxe", decimal_comma = true }
currency = { value = "EUR" }
changed_at = { column = "Stand", datetime_format = "%d.%m.%Y %H:%M", timezone = "Europe/Berlin" }
"""


def test_mapping_fee_columns_through_the_importer(server, tmp_path) -> None:
    """`[fees.<fee_id>]` tables read fee columns; an empty one removes the fee."""
    from test_import_insideairbnb import run_import

    first = dt.date.today() + dt.timedelta(days=30)
    german = first.strftime("%d.%m.%Y")
    last = (first + dt.timedelta(days=4)).strftime("%d.%m.%Y")
    (tmp_path / "feed.toml").write_text(MAPPING)
    (tmp_path / "feed.csv").write_text(
        "Objekt;Breite;Von;Bis;Preis;Reinigung;Kurtaxe;Stand\n"
        f"fewo-1;47.1;{german};{last};80,00;45,50;1,20;01.01.2026 10:00\n"
        f"fewo-2;47.2;{german};{last};80,00;;;01.01.2026 10:00\n"
        f"fewo-3;47.3;{german};{last};80,00;x;;01.01.2026 10:00\n")
    result, _ = run_import("--format", "mapping", "--source", "fewo", str(tmp_path / "feed.toml"),
                           str(tmp_path / "feed.csv"), "--url", server.url, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "fees.cleaning: amount: 'x' from column 'Reinigung'" in (tmp_path / "rejects.csv").read_text()
    totals = {}
    with server.client() as client:
        for n in (1, 2, 3):
            found = client.get("/v1/search", params={
                "lat": f"47.{n}", "lon": 7.5, "radius_km": 0.5, "guests": 2, "checkin": first.isoformat(),
                "checkout": (first + dt.timedelta(days=2)).isoformat()}).json()["results"]
            totals[n] = [(r["total"], [f["fee_id"] for f in r["fees"]]) for r in found]
    # 160 + 45.50 + 1.20 x 2 guests x 2 nights; none; the bad cleaning fee rejected alone
    assert totals == {1: [("210.30", ["cleaning", "kurtaxe"])], 2: [("160.00", [])], 3: [("160.00", [])]}


def test_a_fee_the_fx_table_cannot_convert(server) -> None:
    """A listing priced in a currency without a rate (AWG) is shown in it, its AWG fee added; with
    a EUR fee its total cannot be made, so it is left out, never a failed search."""
    day = (dt.date.today() - dt.date(1970, 1, 1)).days + 20
    events = []
    for listing_id, lat, fee_currency in (("awg-own", 12.51, "AWG"), ("awg-eur", 12.52, "EUR")):
        events += [
            {"type": "listing", "source": "feetest", "listing_id": listing_id, "name": listing_id, "kind": "house",
             "lat": lat, "lon": -70.0, "max_guests": 2, "changed_at": stamp(0)},
            {"type": "rate", "source": "feetest", "listing_id": listing_id, "start": iso(day), "end": iso(day + 3),
             "price": "100", "currency": "AWG", "changed_at": stamp(0)},
            {"type": "fee", "source": "feetest", "listing_id": listing_id, "fee_id": "cleaning", "label": "Cleaning",
             "basis": "per_stay", "amount": "30", "currency": fee_currency, "changed_at": stamp(0)},
        ]
    with server.client() as client:
        post(client, events)
        answer = client.get("/v1/search", params={"lat": 12.515, "lon": -70.0, "radius_km": 5, "checkin": iso(day),
                                                  "checkout": iso(day + 2), "group": "listing"})
        dates = client.get("/v1/search/dates", params={"lat": 12.515, "lon": -70.0, "radius_km": 5, "nights": 2,
                                                       "from": iso(day), "days": 1, "group": "listing"})
    assert answer.status_code == 200, answer.text
    assert [(r["listing_id"], r["total"], r["currency"]) for r in answer.json()["results"]] == [
        ("awg-own", "230.00", "AWG")]
    assert dates.json()["dates"][0]["matches"] == 1
