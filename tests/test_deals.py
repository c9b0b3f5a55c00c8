"""Places, deals and flexible dates (wire contract v1.1, Search) against a brute-force model.

Hypothesis generates small worlds (a few dozen listings of two sources on a coarse grid, so that
several share a point and distances tie, some sharing a property, with calendars of runs of
prices); each world is posted to one real server over HTTP, in a region of its own, and every
answer is compared with a pure-Python model that applies the contract's definitions literally:
one place per (source, property_id), the cheapest offer first, comparables by haversine with
ties by source then listing_id, the 5th smallest of 10, the lower median of the usual totals,
percent_below rounded half-even, deals=only, sort=deal, and search/dates per check-in.
The k-d tree search of comparables is also checked alone against the definition on dense ties.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import math
import random
import time
from dataclasses import dataclass, field
from decimal import ROUND_HALF_EVEN, Decimal

import httpx
import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, given, note, settings
from hypothesis import strategies as st

from staystream.search import deals

EARTH_RADIUS_KM = 6371.0088
NDJSON = {"content-type": "application/x-ndjson"}
STEP = 0.004  # degrees between grid points, ~445 m: many listings share a point
SPAN = 130  # nights of calendar: the usual totals' window (45 days either side) fits inside


def haversine(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    phi1, phi2 = math.radians(lat1), math.radians(lat2)
    dlambda = math.radians(lon2 - lon1)
    a = math.sin((phi2 - phi1) / 2) ** 2 + math.cos(phi1) * math.cos(phi2) * math.sin(dlambda / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(math.sqrt(min(1.0, max(0.0, a))))


@dataclass
class Unit:
    source: str
    listing_id: str
    kind: str
    max_guests: int
    lat: float
    lon: float
    property_id: str | None
    nights: dict[int, tuple[int, bool, int]] = field(default_factory=dict)  # day -> (cents, available, min_nights)

    @property
    def key(self) -> tuple[str, str]:
        return self.source, self.listing_id

    @property
    def place(self) -> tuple[str, str]:
        return (self.source, "p:" + self.property_id) if self.property_id else (self.source, "l:" + self.listing_id)

    def total(self, checkin: int, nights: int) -> int | None:
        """The stay's total in cents if it is open by the search rules, else None."""
        first = self.nights.get(checkin)
        if first is None or first[2] > nights:
            return None
        total = 0
        for day in range(checkin, checkin + nights):
            night = self.nights.get(day)
            if night is None or not night[1]:
                return None
            total += night[0]
        return total


@dataclass
class World:
    seed: int
    units: list[Unit]
    base: int  # epoch day of the first calendar night
    center: tuple[float, float]
    rng: random.Random  # for the searches of this world



def percent(total: int, reference: int) -> str:
    value = ((1 - Decimal(total) / Decimal(reference)) * 100).quantize(Decimal("0.1"), ROUND_HALF_EVEN)
    return str(value)


def money(cents: int) -> str:
    return f"{cents // 100}.{cents % 100:02d}"


def model_deal(world: World, unit: Unit, checkin: int, nights: int, guests: int) -> dict | None:
    total = unit.total(checkin, nights)
    assert total is not None
    near = []
    for other in world.units:
        if other.place == unit.place or other.kind != unit.kind or other.max_guests != unit.max_guests:
            continue
        if other.max_guests < guests or (other_total := other.total(checkin, nights)) is None:
            continue
        distance = haversine(unit.lat, unit.lon, other.lat, other.lon)
        if distance <= 5.0:
            near.append((distance, other.source, other.listing_id, other_total))
    near.sort()
    similar = sorted(t for *_, t in near[:10])[4] if len(near) >= 10 else None
    usual_totals = sorted(t for c in range(checkin - 45, checkin + 46) if (t := unit.total(c, nights)) is not None)
    usual = usual_totals[(len(usual_totals) - 1) // 2] if len(usual_totals) >= 10 else None
    found = []
    if similar and 4 * total <= 3 * similar:
        found.append((similar, 1, "less_than_similar"))
    if usual and 4 * total <= 3 * usual:
        found.append((usual, 0, "less_than_usual"))
    if not found:
        return None
    reference, _, kind = max(found)
    return {"kind": kind, "percent_below": percent(total, reference), "reference_total": money(reference)}


def model_search(world: World, checkin: int, nights: int, guests: int, radius: float, by_place: bool,
                 sort: str = "total", deals_only: bool = False, max_price: int | None = None) -> list[dict]:
    """Every result, in order, as {key, total, distance, deal, offers}: the literal definitions."""
    offers = []
    for unit in world.units:
        distance = haversine(*world.center, unit.lat, unit.lon)
        total = unit.total(checkin, nights)
        if distance <= radius and unit.max_guests >= guests and total is not None:
            offers.append({"unit": unit, "key": unit.key, "total": total, "distance": distance,
                           "deal": model_deal(world, unit, checkin, nights, guests)})
    if by_place:
        places: dict[tuple[str, str], list[dict]] = {}
        for offer in offers:
            places.setdefault(offer["unit"].place, []).append(offer)
        results = []
        for listed in places.values():
            listed.sort(key=lambda o: (o["total"], o["key"]))
            results.append({**listed[0], "offers": listed})
    else:
        results = offers
    if max_price is not None:
        results = [r for r in results if r["total"] <= max_price]
    if deals_only:
        results = [r for r in results if r["deal"]]
    if sort == "deal":
        def tenths(r: dict) -> int:
            return -int(Decimal(r["deal"]["percent_below"]) * 10) if r["deal"] else 1
        results.sort(key=lambda r: (tenths(r), r["total"], r["distance"]))
    else:
        results.sort(key=lambda r: (r["total"], r["distance"]))
    return results


def sort_keys(result: dict, sort: str) -> tuple:
    deal_key = -int(Decimal(result["deal"]["percent_below"]) * 10) if result["deal"] else 1
    total = result["total"]
    return (deal_key, total, round(result["distance"], 3)) if sort == "deal" else (total, round(result["distance"], 3))


# -- the worlds --------------------------------------------------------------------------------


def make_world(seed: int) -> World:
    """A world from a seed: dense enough that searches find dozens of units and deals."""
    rng = random.Random(seed)
    n = rng.randint(20, 50)
    # A region of its own (0.2 degrees apart), named by the seed: a replay posts the same events.
    world_id = rng.randrange(600 * 1800)
    lat0, lon0 = -60 + (world_id % 600) * 0.2, -180 + (world_id // 600) * 0.2
    base = (dt.date.today() - dt.date(1970, 1, 1)).days + 40
    units = []
    for i in range(n):
        property_id = rng.choice([None, None, None, "h1", "h2"])
        unit = Unit(
            rng.choice(["alpha", "beta"]), f"w{world_id}-{i:02d}", rng.choice(["apartment"] * 5 + ["house"]),
            rng.choice([2, 2, 2, 2, 4]), round(lat0 + rng.randint(0, 12) * STEP, 6),
            round(lon0 + rng.randint(0, 12) * STEP, 6), property_id and f"{property_id}-{world_id}",
        )
        day = base
        cheap = rng.choice([1, 1, 1, 1, 3])  # some units are priced well below the rest
        while day < base + SPAN:
            length = rng.randint(1, 15)
            sale = 3 if rng.random() < 0.15 else 1  # a season well below the unit's usual price
            price = rng.choice([80, 100, 100, 120, 150]) * 100 // cheap // sale + rng.choice([0, 0, 5, 50])
            available = rng.random() < 0.93
            min_nights = rng.choice([1, 1, 1, 1, 2, 3])
            for d in range(day, min(day + length, base + SPAN)):
                unit.nights[d] = (price, available, min_nights)
            day += length
        units.append(unit)
    return World(seed, units, base, (lat0 + 6 * STEP, lon0 + 6 * STEP), rng)


def post_world(client: httpx.Client, world: World) -> None:
    events = []
    for unit in world.units:
        events.append({
            "type": "listing", "source": unit.source, "listing_id": unit.listing_id, "name": unit.listing_id,
            "kind": unit.kind, "lat": unit.lat, "lon": unit.lon, "max_guests": unit.max_guests,
            "changed_at": "2026-01-01T00:00:00Z", **({"property_id": unit.property_id} if unit.property_id else {}),
            "url": f"https://example.com/{unit.listing_id}",
        })
        nights = sorted(unit.nights.items())
        for value, run in itertools.groupby(nights, key=lambda night: night[1]):
            days = [day for day, _ in run]
            price, available, min_nights = value
            events.append({
                "type": "rate", "source": unit.source, "listing_id": unit.listing_id, "start": iso(days[0]),
                "end": iso(days[-1] + 1), "currency": "EUR", "price": money(price),
                "available": available, "min_nights": min_nights, "changed_at": "2026-01-01T00:00:00Z",
            })
        # Open but never priced (contract v1.1: one fact at a time): not bookable, for search
        # as for the usual totals whose window reaches these nights.
        events.append({"type": "availability", "source": unit.source, "listing_id": unit.listing_id,
                       "start": iso(world.base + SPAN), "end": iso(world.base + SPAN + 10), "available": True,
                       "changed_at": "2026-01-01T00:00:00Z"})
    response = client.post("/v1/events", content="\n".join(map(json.dumps, events)), headers=NDJSON)
    assert response.status_code == 200 and not response.json()["rejected"], response.text


def iso(day: int) -> str:
    return (dt.date(1970, 1, 1) + dt.timedelta(days=day)).isoformat()


def assert_same(got: list[dict], expected: list[dict], sort: str, by_place: bool) -> None:
    """Same keys in the same order; results whose keys tie may come in either order."""
    assert [sort_keys(r, sort) for r in got] == [sort_keys(r, sort) for r in expected]
    for keys, group in itertools.groupby(range(len(got)), key=lambda i: sort_keys(got[i], sort)):
        indices = list(group)
        def what(r: dict) -> tuple:
            return r["key"], json.dumps(r["deal"]), json.dumps(r.get("offers"))

        assert sorted(what(got[i]) for i in indices) == sorted(what(expected[i]) for i in indices), keys


def as_model(result: dict, by_place: bool) -> dict:
    """A server result in the model's shape (totals in cents)."""
    shown = {
        "key": (result["source"], result["listing_id"]), "total": round(Decimal(result["total"]) * 100),
        "distance": result["distance_km"], "deal": result["deal"],
    }
    if by_place:
        assert result["offers"][0]["total"] == result["total"]
        assert (result["offers"][0]["source"], result["offers"][0]["listing_id"]) == shown["key"]
        shown["offers"] = [[o["source"], o["listing_id"], round(Decimal(o["total"]) * 100), o["deal"]]
                           for o in result["offers"]]
    return shown


def model_shown(result: dict, by_place: bool) -> dict:
    shown = {"key": result["key"], "total": result["total"], "distance": result["distance"], "deal": result["deal"]}
    if by_place:
        shown["offers"] = [[o["unit"].source, o["unit"].listing_id, o["total"], o["deal"]] for o in result["offers"]]
    return shown


# -- end to end ----------------------------------------------------------------------------------


# No shrinking: a world comes from one random seed, and each try posts it to the server.
@settings(max_examples=40, deadline=None, phases=[Phase.explicit, Phase.reuse, Phase.generate],
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2**32))
def test_search_by_place_and_deals_follow_the_definitions(server, seed: int) -> None:
    world = make_world(seed)
    note(f"world seed {seed}")
    rng = world.rng  # the search, from the world's seed: one draw makes the whole example
    with server.client() as client:
        post_world(client, world)
        checkin = world.base + rng.randint(40, SPAN - 35)
        nights = rng.randint(1, 4)
        guests = rng.choice([2, 2, 1, 3])
        radius = rng.choice([3.0, 1.5, 5.0])
        by_place = rng.random() < 0.6
        sort = rng.choice(["total", "deal"])
        deals_only = rng.random() < 0.3
        max_price = rng.choice([None, None, 20000, 30000])
        params = {
            "lat": world.center[0], "lon": world.center[1], "radius_km": radius, "checkin": iso(checkin),
            "checkout": iso(checkin + nights), "guests": guests, "group": "place" if by_place else "listing",
            "sort": sort, "limit": 200, **({"deals": "only"} if deals_only else {}),
            **({"max_price": money(max_price)} if max_price else {}),
        }
        answer = client.get("/v1/search", params=params)
        assert answer.status_code == 200, answer.text
        expected = model_search(world, checkin, nights, guests, radius, by_place, sort, deals_only, max_price)
        got = answer.json()["results"]
        assert answer.json()["matches"] == len(expected)
        assert_same([as_model(r, by_place) for r in got], [model_shown(r, by_place) for r in expected], sort, by_place)

        # Pages of 4 (keyset cursor over places, or listings) add up to the whole answer.
        paged = pages(client, {**params, "limit": 4})
        assert [(r["source"], r["listing_id"], r.get("offers")) for r in paged] == [
            (r["source"], r["listing_id"], r.get("offers")) for r in got]

        # One place_id per (source, property_id), another for every other listing.
        places = {(r["source"], r["listing_id"]): r["place_id"] for r in got}
        units = {u.key: u for u in world.units}
        for (a, pa), (b, pb) in itertools.combinations(places.items(), 2):
            assert (pa == pb) == (units[a].place == units[b].place), (a, b)

        # The calendar strip: each check-in as the search of that day would answer it.
        first = checkin - 3
        strip = client.get("/v1/search/dates", params={
            "lat": world.center[0], "lon": world.center[1], "radius_km": radius, "nights": nights, "guests": guests,
            "from": iso(first), "days": 7, "group": params["group"],
            **({"max_price": money(max_price)} if max_price else {}),
        })
        assert strip.status_code == 200, strip.text
        for offset, day in enumerate(strip.json()["dates"]):
            results = model_search(world, first + offset, nights, guests, radius, by_place, max_price=max_price)
            assert day["checkin"] == iso(first + offset) and day["checkout"] == iso(first + offset + nights)
            assert day["matches"] == len(results)
            if not results:
                assert day["cheapest"] is None
                continue
            cheapest = day["cheapest"]
            ties = [r for r in results if (r["total"], r["distance"]) == (results[0]["total"], results[0]["distance"])]
            assert (cheapest["source"], cheapest["listing_id"]) in {r["key"] for r in ties}
            assert round(Decimal(cheapest["total"]) * 100) == results[0]["total"] and cheapest["currency"] == "EUR"


def test_place_of_a_listing_follows_its_property_and_survives_a_restart(server_factory) -> None:
    server = server_factory()
    with server.client() as client:
        day = dt.date.today() + dt.timedelta(days=5)
        listing = {"type": "listing", "name": "n", "kind": "hotel_room", "lat": 1.3, "lon": 103.8, "max_guests": 2,
                   "changed_at": "2026-01-01T00:00:00Z"}
        post = [
            {**listing, "source": "hotels", "listing_id": "r1", "property_id": "H"},
            {**listing, "source": "hotels", "listing_id": "r2", "property_id": "H"},
            # another source, and a name that no automatic matching takes for the same place: another place
            {**listing, "source": "other", "listing_id": "r3", "property_id": "H", "name": "Bluebird Hostel"},
            {**listing, "source": "hotels", "listing_id": "r4"},
        ]
        assert client.post("/v1/events", content="\n".join(map(json.dumps, post)), headers=NDJSON).status_code == 200
        ids = {k: client.get(f"/v1/listings/hotels/{k}").json()["place_id"] for k in ("r1", "r2", "r4")}
        ids["r3"] = client.get("/v1/listings/other/r3").json()["place_id"]
        assert ids["r1"] == ids["r2"] and len({ids["r1"], ids["r3"], ids["r4"]}) == 3
        # r1 leaves the property: r2 is the place alone, named anew; r1 is a place of its own.
        moved = {**post[0], "property_id": None, "changed_at": "2026-01-02T00:00:00Z"}
        assert client.post("/v1/events", content=json.dumps(moved), headers=NDJSON).status_code == 200
        after = {k: client.get(f"/v1/listings/hotels/{k}").json()["place_id"] for k in ("r1", "r2")}
        assert after["r1"] != after["r2"]
        rate = {"type": "rate", "source": "hotels", "start": day.isoformat(),
                "end": (day + dt.timedelta(days=2)).isoformat(), "price": "100", "currency": "EUR",
                "changed_at": "2026-01-01T00:00:00Z"}
        back = {**post[0], "changed_at": "2026-01-03T00:00:00Z"}  # r1 back in H: one place again
        body = [back, {**rate, "listing_id": "r1"}, {**rate, "listing_id": "r2", "price": "90"}]
        assert client.post("/v1/events", content="\n".join(map(json.dumps, body)), headers=NDJSON).status_code == 200
        search = {"lat": 1.3, "lon": 103.8, "radius_km": 1, "checkin": day.isoformat(),
                  "checkout": (day + dt.timedelta(days=2)).isoformat()}
        answer = client.get("/v1/search", params=search).json()
        shown = [(r["listing_id"], [o["listing_id"] for o in r["offers"]]) for r in answer["results"]]
        assert shown == [("r2", ["r2", "r1"])]
        before = client.get("/v1/listings/hotels/r2").json()["place_id"]
    server.stop()
    restarted = server_factory(data_dir=server.data_dir)
    with restarted.client() as client:
        assert client.get("/v1/listings/hotels/r2").json()["place_id"] == before
        assert client.get("/v1/listings/hotels/r1").json()["place_id"] == before
        assert client.get("/v1/search", params=search).json()["results"][0]["offers"][1]["listing_id"] == "r1"


def test_usual_deal_follows_price_changes_after_its_ceiling_was_kept(server) -> None:
    """Each worker keeps every listing's highest bookable price (`search/ceilings.py`) to rule
    out usual deals unread: a rise around the stay must make it a deal at once, a fall undo it."""
    day = (dt.date.today() - dt.date(1970, 1, 1)).days + 60
    listing = {"type": "listing", "source": "alpha", "listing_id": "ceiling-1", "name": "n", "kind": "apartment",
               "lat": 75.0, "lon": 10.0, "max_guests": 2, "changed_at": "2026-01-01T00:00:00Z"}

    def rate(start: int, end: int, price: str, changed_at: str) -> dict:
        return {"type": "rate", "source": "alpha", "listing_id": "ceiling-1", "start": iso(start), "end": iso(end),
                "price": price, "currency": "EUR", "available": True, "min_nights": 1, "changed_at": changed_at}

    def post(*events: dict) -> None:
        with server.client() as client:
            answer = client.post("/v1/events", content="\n".join(map(json.dumps, events)), headers=NDJSON)
            assert answer.status_code == 200 and not answer.json()["rejected"], answer.text

    def deals_seen() -> list[object]:
        """The stay's deal as each of several connections (so both workers) sees it."""
        seen = []
        for _ in range(6):
            with server.client() as client:
                answer = client.get("/v1/search", params={
                    "lat": 75.0, "lon": 10.0, "radius_km": 1, "checkin": iso(day), "checkout": iso(day + 2),
                    "guests": 2, "sort": "deal"})
                assert answer.status_code == 200, answer.text
                seen.append(answer.json()["results"][0]["deal"])
        return seen

    post(listing, rate(day - 50, day + 50, "100", "2026-01-01T00:00:00Z"))
    assert deals_seen() == [None] * 6  # each worker now keeps a ceiling of 100 a night
    post(rate(day - 50, day, "200", "2026-01-02T00:00:00Z"), rate(day + 2, day + 50, "200", "2026-01-02T00:00:00Z"))
    usual = {"kind": "less_than_usual", "percent_below": "50.0", "reference_total": "400.00"}
    assert deals_seen() == [usual] * 6
    post(rate(day - 50, day + 50, "90", "2026-01-03T00:00:00Z"))
    assert deals_seen() == [None] * 6


def test_search_dates_refuses_bad_parameters(server) -> None:
    with server.client() as client:
        base = {"lat": 1.3, "lon": 103.8, "nights": 2, "from": dt.date.today().isoformat()}
        for params, message in (
            ({**base, "days": 63}, "days: '63' is out of range; expected 1 to 62"),
            ({**base, "nights": 0}, "nights: '0' is out of range"),
            ({**base, "from": "someday"}, "from: 'someday' is not a date"),
            ({**base, "sort": "deal"}, "sort: unknown parameter"),
            ({**base, "from": (dt.date.today() + dt.timedelta(days=5000)).isoformat()}, "past the horizon"),
        ):
            answer = client.get("/v1/search/dates", params=params)
            assert answer.status_code == 400 and message in answer.json()["error"], answer.text
        answer = client.get("/v1/search", params={"lat": 1.3, "lon": 103.8, "checkin": "2027-01-01",
                                                  "checkout": "2027-01-02", "group": "hotel"})
        assert answer.status_code == 400 and "group: 'hotel' is not one of place, listing" in answer.json()["error"]


# -- the k-d tree alone, on dense ties -------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_comparables_break_ties_by_source_and_listing_id(data: st.DataObject) -> None:
    n = data.draw(st.integers(11, 90))
    lat = np.array([data.draw(st.sampled_from([10.0, 10.0, 10.01, 10.02, 10.05])) for _ in range(n)])
    lon = np.array([data.draw(st.sampled_from([20.0, 20.0, 20.01, 20.03])) for _ in range(n)])
    group = np.array([data.draw(st.sampled_from([1, 1, 1, 2])) for _ in range(n)])
    place = np.array([data.draw(st.integers(0, n - 1)) for _ in range(n)])
    total = np.array([data.draw(st.integers(1, 30)) * 100 for _ in range(n)])
    keys = [(data.draw(st.sampled_from(["a", "b"])), f"{i:03d}") for i in range(n)]
    rank = {key: i for i, key in enumerate(sorted(keys))}
    rows = np.arange(n)
    is_open = np.array([data.draw(st.booleans()) for _ in range(n)])
    asked = []

    def totals_of(indices: np.ndarray) -> np.ndarray:
        asked.extend(indices.tolist())
        return np.where(is_open[indices], total[indices], deals.NONE)

    # Every path: retries for more neighbours, the k-d tree and all pairs at once.
    saved = deals.FIRST_NEAREST, deals.PAIRS_LIMIT
    deals.FIRST_NEAREST = data.draw(st.sampled_from([11, 12, 16, 32]))
    deals.PAIRS_LIMIT = data.draw(st.sampled_from([0, 10**9]))
    try:
        got = deals.similar_references(lat, lon, group, place, lat, lon, group, place, rows, totals_of,
                                       lambda some: np.array([rank[keys[r]] for r in some.tolist()]))
    finally:
        deals.FIRST_NEAREST, deals.PAIRS_LIMIT = saved
    assert len(asked) == len(set(asked))  # each total asked once
    for u in range(n):
        near = sorted(
            (haversine(lat[u], lon[u], lat[v], lon[v]), keys[v], int(total[v])) for v in range(n)
            if group[v] == group[u] and place[v] != place[u] and is_open[v]
            and haversine(lat[u], lon[u], lat[v], lon[v]) <= 5.0)
        expected = sorted(t for *_, t in near[:10])[4] if len(near) >= 10 else deals.NONE
        assert got[u] == expected, u


@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_kept_neighbour_index_finds_the_comparables_while_listings_change(tmp_path_factory: pytest.TempPathFactory,
                                                                          data: st.DataObject) -> None:
    """The worker's kept tree (`search/neighbours.py`) over shared listing columns, then rows
    moved, re-kinded, delisted and added after its build: the references it gives are the
    definition's, computed from the columns as they are now."""
    from staystream.events.types import Delist, Listing
    from staystream.memory.layout import SHARED_ARRAYS
    from staystream.memory.listings import ListingColumns
    from staystream.memory.shm import SharedArrays
    from staystream.search import neighbours

    directory = tmp_path_factory.mktemp("neighbours")
    writer = SharedArrays(directory / "shm", SHARED_ARRAYS, create=True)
    columns = ListingColumns(writer)
    reader = SharedArrays(directory / "shm", SHARED_ARRAYS, create=False)
    points = [(10.0, 20.0), (10.01, 20.0), (10.02, 20.01), (10.0, 20.03), (10.05, 20.0), (10.0, 20.1)]
    clock = [1_700_000_000_000_000]

    def describe(row: int) -> None:
        lat, lon = data.draw(st.sampled_from(points))
        clock[0] += 1
        columns.describe(row, Listing(f"k{row}", "x", data.draw(st.sampled_from([0, 0, 1])), lat, lon,
                                      data.draw(st.sampled_from([2, 2, 3])), clock[0], None, None, None, None, None))

    n = data.draw(st.integers(11, 60))
    columns.add_rows(n)
    for row in range(n):
        describe(row)
    reader.refresh()
    built = neighbours.Neighbours(reader, n)
    for _ in range(data.draw(st.integers(0, 12))):  # changes after the build
        action = data.draw(st.sampled_from(["describe", "delist", "add"]))
        if action == "add":
            columns.add_rows(columns.rows + 1)
            describe(columns.rows - 1)
        elif action == "delist":
            clock[0] += 1
            columns.delist(data.draw(st.integers(0, columns.rows - 1)), Delist("x", clock[0]))
        else:
            describe(data.draw(st.integers(0, columns.rows - 1)))
    reader.refresh()
    count = columns.rows
    lat, lon = writer["lat"][:count].copy(), writer["lon"][:count].copy()
    group = neighbours.group_of(writer, np.arange(count))
    searchable = writer["searchable"][:count] == 1
    place = np.array([data.draw(st.integers(0, count - 1)) for _ in range(count)])
    total = np.array([data.draw(st.integers(1, 30)) * 100 for _ in range(count)])
    is_open = np.array([data.draw(st.booleans()) for _ in range(count)])
    keys = [(data.draw(st.sampled_from(["a", "b"])), f"{i:03d}") for i in range(count)]
    rank = {key: i for i, key in enumerate(sorted(keys))}
    units = np.flatnonzero(searchable)
    changed = built.changed(reader)
    saved = deals.FIRST_NEAREST
    deals.FIRST_NEAREST = data.draw(st.sampled_from([1, 4, 11, 32]))
    neighbours_kept = neighbours.CACHED
    neighbours.CACHED = data.draw(st.sampled_from([4, 32]))  # kept answers: for the first asks, or not
    try:
        answers = [deals.similar_references_near(  # twice: the second from the kept answers
            place[units], lambda some, k: built.nearest(reader, units[some], lat[units[some]], lon[units[some]],
                                                        group[units[some]], k, changed),
            lambda rows: place[rows], lambda rows: np.where(is_open[rows], total[rows], deals.NONE),
            lambda rows: np.array([rank[keys[r]] for r in rows.tolist()])) for _ in range(2)]
    finally:
        deals.FIRST_NEAREST, neighbours.CACHED = saved, neighbours_kept
    assert answers[0].tolist() == answers[1].tolist()
    for u, reference in zip(units.tolist(), answers[0].tolist(), strict=True):
        near = sorted(
            (haversine(lat[u], lon[u], lat[v], lon[v]), keys[v], int(total[v])) for v in range(count)
            if searchable[v] and group[v] == group[u] and place[v] != place[u] and is_open[v]
            and haversine(lat[u], lon[u], lat[v], lon[v]) <= 5.0)
        expected = sorted(t for *_, t in near[:10])[4] if len(near) >= 10 else deals.NONE
        assert reference == expected, u


@given(reference=st.integers(1, 10**9), share=st.fractions(0, 1))
def test_percent_below_rounds_half_even_to_one_decimal(reference: int, share: object) -> None:
    total = int(reference * share)  # type: ignore[operator]
    tenths = deals.percent_tenths(np.array([total]), np.array([reference]))[0]
    assert deals.percent_text(int(tenths)) == percent(total, reference)
    assert deals.percent_tenths_of(total, reference) == tenths


@pytest.mark.parametrize(("total", "reference", "shown"),
                         [(7425, 10000, "25.8"), (7435, 10000, "25.6"), (1, 3, "66.7")])
def test_percent_below_examples(total: int, reference: int, shown: str) -> None:
    assert deals.percent_text(int(deals.percent_tenths(np.array([total]), np.array([reference]))[0])) == shown


# -- the Singapore sample, through the public API alone ------------------------------------------


def pages(client: httpx.Client, params: dict) -> list[dict]:
    results, cursor = [], None
    while True:
        page = client.get("/v1/search", params={**params, **({"cursor": cursor} if cursor else {})})
        assert page.status_code == 200, page.text
        results += page.json()["results"]
        cursor = page.json()["next_cursor"]
        if cursor is None:
            return results


def cents(text: str) -> int:
    return round(Decimal(text) * 100)


def test_singapore_sample_deals_check_out_through_the_public_api(server_factory) -> None:
    """Each deal of a real city recomputed from other answers of the API: comparables from a
    search around the unit, the usual total from its calendar."""
    seeded = server_factory("--seed-sample")
    today = dt.date.today()
    checkin, nights = today + dt.timedelta(days=7), 3
    stay = {"checkin": checkin.isoformat(), "checkout": (checkin + dt.timedelta(days=nights)).isoformat(),
            "guests": 2, "currency": "SGD", "limit": 200}
    area = {"lat": 1.29, "lon": 103.85, "radius_km": 5}
    with seeded.client() as client:
        deadline = time.monotonic() + 60
        while client.get("/v1/search", params={**area, **stay}).json()["matches"] < 50:
            assert time.monotonic() < deadline, seeded.log()
            time.sleep(0.5)
        time.sleep(1.0)  # the listings go last: once enough are searchable, all are
        listed = pages(client, {**area, **stay, "group": "listing", "sort": "deal"})
        with_deal = [r for r in listed if r["deal"]]
        assert len(with_deal) >= 3, "the sample should show a few deals"
        keys = [(-cents(r["deal"]["percent_below"]) // 10 if r["deal"] else 1, cents(r["total"]), r["distance_km"])
                for r in listed]
        assert keys == sorted(keys)
        only = pages(client, {**area, **stay, "group": "listing", "deals": "only"})
        assert sorted((r["source"], r["listing_id"]) for r in only) == sorted(
            (r["source"], r["listing_id"]) for r in with_deal)

        for result in with_deal[:6] + [r for r in listed if not r["deal"]][:4]:
            total = cents(result["total"])
            around = {"lat": result["lat"], "lon": result["lon"], "radius_km": 5, "kind": result["kind"]}
            near = sorted(
                (haversine(result["lat"], result["lon"], r["lat"], r["lon"]), r["source"], r["listing_id"],
                 cents(r["total"]))
                for r in pages(client, {**around, **stay, "group": "listing"})
                if r["max_guests"] == result["max_guests"] and r["place_id"] != result["place_id"])
            similar = sorted(t for *_, t in near[:10])[4] if len(near) >= 10 else None
            calendar = client.get(f"/v1/listings/{result['source']}/{result['listing_id']}/calendar", params={
                "start": (checkin - dt.timedelta(days=45)).isoformat(),
                "end": (checkin + dt.timedelta(days=46 + nights)).isoformat()}).json()["nights"]
            night = {n["night"]: n for n in calendar}
            usual_totals = []
            for offset in range(-45, 46):
                day = checkin + dt.timedelta(days=offset)
                stay_nights = [night.get((day + dt.timedelta(days=i)).isoformat()) for i in range(nights)]
                if all(n and n["available"] and n["price"] is not None for n in stay_nights) and \
                        stay_nights[0]["min_nights"] <= nights:  # type: ignore[index]
                    usual_totals.append(sum(cents(n["price"]) for n in stay_nights))  # type: ignore[index]
            usual_totals.sort()
            usual = usual_totals[(len(usual_totals) - 1) // 2] if len(usual_totals) >= 10 else None
            found = [(reference, kind) for reference, kind in ((similar, 1), (usual, 0))
                     if reference and 4 * total <= 3 * reference]
            if not found:
                assert result["deal"] is None, result
                continue
            reference, kind = max(found)
            assert result["deal"] == {"kind": "less_than_similar" if kind else "less_than_usual",
                                      "percent_below": percent(total, reference),
                                      "reference_total": money(reference)}, result

        by_place = pages(client, {**area, **stay})
        for result in by_place:
            assert result["total"] == result["offers"][0]["total"] and result["deal"] == result["offers"][0]["deal"]
        strip = client.get("/v1/search/dates", params={**area, "nights": nights, "guests": 2, "currency": "SGD",
                                                       "from": checkin.isoformat(), "days": 5}).json()["dates"]
        for day in strip:
            same = client.get("/v1/search", params={**area, **stay, "checkin": day["checkin"],
                                                    "checkout": day["checkout"], "limit": 1}).json()
            assert day["matches"] == same["matches"]
            first = same["results"][0]
            assert day["cheapest"] == {"total": first["total"], "currency": "SGD", "source": first["source"],
                                       "listing_id": first["listing_id"], "place_id": first["place_id"]}


# -- window totals, in-process: every check-in at once equals one search per check-in -------------


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**32), nights=st.integers(1, 9), target=st.sampled_from(["EUR", "USD", "JPY"]))
def test_window_totals_equal_the_search_of_each_check_in(tmp_path_factory: pytest.TempPathFactory, seed: int,
                                                         nights: int, target: str) -> None:
    """Calendars of runs in several currencies (stays across a change of currency included):
    `window_totals` of 40 check-ins gives what `_open_stays` + `night_totals` give check-in by check-in,
    fees included (some with a check-in window inside the 40 days)."""
    from staystream.events.fx import default_fx
    from staystream.events.money import CURRENCY_INDEX
    from staystream.events.types import ALL_FACTS, ALWAYS_FROM, ALWAYS_UNTIL, FEE_BASIS_INDEX, RATE_DTYPE, Fee
    from staystream.memory.calendar import PAGE, CalendarWriter
    from staystream.memory.fees import FeeColumns
    from staystream.memory.layout import SHARED_ARRAYS
    from staystream.memory.shm import SharedArrays
    from staystream.search import engine, fees

    rng = random.Random(seed)
    shared = SharedArrays(tmp_path_factory.mktemp("shm") / "shm", SHARED_ARRAYS, create=True)
    base = 20_000
    calendar = CalendarWriter(shared, base // PAGE, 8)
    rows = 30
    calendar.ensure_rows(rows)
    events = []
    for row in range(rows):
        day = base + rng.randrange(0, 20)
        while day < base + 150:
            length = rng.randint(1, 12)
            available = rng.random() < 0.9
            events.append((row, day, length, rng.randint(5000, 40000) if available else -1,
                           CURRENCY_INDEX[rng.choice(["EUR", "EUR", "USD", "JPY"])], rng.choice([1, 1, 2, 3]),
                           int(available)))
            day += length
    batch = np.zeros(len(events), dtype=RATE_DTYPE)
    for name, values in zip(("key", "start", "nights", "price", "currency", "min_nights", "available"),
                            zip(*events, strict=True), strict=True):
        batch[name] = values
    batch["changed_at"], batch["facts"] = 1, ALL_FACTS  # v1 rates: the three facts at once
    calendar.apply(batch)
    arena = FeeColumns(shared)
    arena.add_rows(rows)
    arena.apply([(row, Fee("", f"f{i}", "x", FEE_BASIS_INDEX[rng.choice(["per_stay", "per_night", "percent"])],
                           rng.choice([0, 999, 12_500_000]), CURRENCY_INDEX[rng.choice(["EUR", "USD"])], True,
                           *rng.choice([(ALWAYS_FROM, ALWAYS_UNTIL), (base + 20, base + 30)]), 1, False))
                 for row in range(0, rows, 2) for i in range(rng.randint(0, 2))])
    fx = default_fx()
    first, count, everyone = base + 10, 40, np.arange(rows)
    open_, total, _ = engine.window_totals(shared, fx, everyone, first, count, nights, 2, CURRENCY_INDEX[target])
    for offset in range(count):
        found, kept, entries = engine._open_stays(shared, everyone, first + offset, nights)
        price = shared["entry_price"][entries]
        currency = shared["entry_currency"][entries]
        expected = np.full(rows, engine.UNRANKED)
        charges = fees.stay_charges(shared, found, np.full(len(found), first + offset), nights, 2)
        expected[kept] = engine.night_totals(fx, price, currency, (currency == currency[0]).all(axis=0), charges,
                                        CURRENCY_INDEX[target])
        assert list(np.flatnonzero(open_[:, offset])) == list(found)
        assert list(total[:, offset]) == list(expected), offset
