"""Search against a brute-force model, over real HTTP against a real server.

A seeded generator makes a few hundred listings (two regions, one across the antimeridian) and
thousands of overlapping rate events in several currencies, posted in a shuffled arrival order.
The model recomputes, from the events alone, each night's winner (greatest `changed_at`, later
arrival on ties), each listing's searchability, and for every random query the full set of
results with exact totals; the test walks every page of the answer and compares.

Run with another seed: `STAYSTREAM_SEARCH_SEED=123 pytest tests/test_search.py`.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import ROUND_HALF_EVEN, Decimal

import httpx
import pytest

SEED = int(os.environ.get("STAYSTREAM_SEARCH_SEED", "20261126"))
QUERIES = 140
EARTH_RADIUS_KM = 6371.0088
KINDS = ("hotel_room", "apartment", "house", "private_room", "shared_room", "hostel_bed", "other")
EXPONENT = {"EUR": 2, "USD": 2, "JPY": 0, "GBP": 2, "BAM": 2}
RATED = ("EUR", "USD", "JPY")  # currencies the listings use that the FX table has
UNRATED = "BAM"  # a real ISO 4217 currency the shipped FX table has no rate for
SOURCES = ("airbnb", "vrbo", "booking")
UNRANKED = 2**62
# Regions: (min_lat, max_lat, min_lon, max_lon); Fiji's spans the antimeridian (min_lon > max_lon).
PARIS = (48.80, 48.92, 2.25, 2.42)
FIJI = (-17.05, -16.95, 179.90, -179.90)
NDJSON = {"content-type": "application/x-ndjson"}


# -- the world: events and the model of what they mean ---------------------------------------


@dataclass
class Night:
    changed_at: int  # µs
    arrival: int
    price: int | None  # minor units
    currency: str
    min_nights: int
    available: bool


@dataclass
class Described:
    changed_at: int
    arrival: int
    name: str
    kind: str
    lat: float
    lon: float
    max_guests: int


@dataclass
class World:
    today: dt.date
    first_night: dt.date
    fx: dict[str, object]
    rates: dict[str, Decimal]
    listings: dict[tuple[str, str], Described] = field(default_factory=dict)
    delisted_at: dict[tuple[str, str], int] = field(default_factory=dict)
    calendars: dict[tuple[str, str], dict[int, Night]] = field(default_factory=dict)

    def searchable(self) -> Iterator[tuple[tuple[str, str], Described]]:
        for key, listing in self.listings.items():
            if listing.changed_at > self.delisted_at.get(key, -(2**63)):
                yield key, listing


def micros(moment: dt.datetime) -> int:
    return (moment - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)) // dt.timedelta(microseconds=1)


def rfc3339(value: int) -> str:
    moment = dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(microseconds=value)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def epoch_day(day: dt.date) -> int:
    return (day - dt.date(1970, 1, 1)).days


def random_price(rng: random.Random, currency: str) -> int:
    if currency == "JPY":
        return rng.choice([rng.randrange(4_000, 60_000), rng.randrange(4, 60) * 1000])
    whole = rng.randrange(30, 400)
    return whole * 100 + rng.choice([0, 0, 50, 99, rng.randrange(100)])


def price_text(rng: random.Random, minor: int, currency: str) -> str | float | int:
    text = format_minor(minor, currency)
    if rng.random() < 0.2:  # a JSON number now and then, as connectors send them
        return int(text) if EXPONENT[currency] == 0 else float(text)
    return text


def format_minor(minor: int, currency: str) -> str:
    exponent = EXPONENT[currency]
    if exponent == 0:
        return str(minor)
    return f"{'-' if minor < 0 else ''}{abs(minor) // 10**exponent}.{abs(minor) % 10**exponent:0{exponent}d}"


def make_events(rng: random.Random, today: dt.date, first_night: dt.date) -> list[dict[str, object]]:
    """Listing, rate and delist events for ~320 units, in no particular order."""
    events: list[dict[str, object]] = []
    clock = micros(dt.datetime.combine(today, dt.time(), dt.UTC)) - 4 * 86_400_000_000
    # Coarse times, so that equal `changed_at` (decided by arrival) are common.
    times = [clock + minute * 60_000_000 + rng.choice([0, 0, 123_000, 999_000]) for minute in range(0, 600, 7)]
    spots: list[tuple[float, float]] = []  # shared by units of one building: equal distances

    def place(region: tuple[float, float, float, float]) -> tuple[float, float]:
        if spots and rng.random() < 0.15:
            return rng.choice(spots)
        min_lat, max_lat, west, east = region
        width = (east - west) % 360
        lon = west + rng.random() * width
        spot = (round(min_lat + rng.random() * (max_lat - min_lat), 6), round((lon + 180) % 360 - 180, 6))
        spots.append(spot)
        return spot

    for i in range(320):
        region = FIJI if i % 5 == 0 else PARIS
        if region is FIJI and spots and spots[-1][0] > 0:
            spots.clear()
        if region is PARIS and spots and spots[-1][0] < 0:
            spots.clear()
        source = rng.choice(SOURCES)
        listing_id = f"s{SEED}-{i}" if rng.random() < 0.9 else i * 7919
        role = rng.choices(
            ["plain", "delisted", "relisted", "tie", "undescribed", "unpriced"], [70, 9, 5, 3, 8, 5]
        )[0]
        ident = {"source": source, "listing_id": listing_id}
        described_at = rng.choice(times)
        if role != "undescribed":
            for version in range(rng.choice([1, 1, 1, 2, 3])):
                lat, lon = place(region)
                events.append({
                    "type": "listing", **ident, "name": f"Unit {i} v{version}",
                    "kind": rng.choice(KINDS), "lat": lat, "lon": lon,
                    "max_guests": rng.choice([1, 2, 2, 3, 4, 4, 6, 8]),
                    "changed_at": rfc3339(described_at if version == 0 else rng.choice(times)),
                })
            newest = max(micros(dt.datetime.fromisoformat(str(e["changed_at"]))) for e in events
                         if e.get("listing_id") == listing_id and e["source"] == source and e["type"] == "listing")
            if role == "delisted":
                events.append({"type": "delist", **ident, "changed_at": rfc3339(newest + 60_000_000)})
            elif role == "tie":  # a delist as new as the description wins
                events.append({"type": "delist", **ident, "changed_at": rfc3339(newest)})
            elif role == "relisted":
                events.append({"type": "delist", **ident, "changed_at": rfc3339(newest - 60_000_000)})
        if role == "unpriced":
            continue
        primary = UNRATED if rng.random() < 0.05 else rng.choice(RATED)
        window = 46
        start = -2
        while start < window:  # base coverage, sometimes with gaps
            length = rng.randrange(5, 40)
            if rng.random() > 0.06:
                events.append(rate(rng, ident, first_night, start, start + length, primary, rng.choice(times), True))
            start += length
        for _ in range(rng.randrange(1, 9)):
            start = rng.randrange(-3, window)
            currency = primary if rng.random() < 0.8 else rng.choice(RATED)
            events.append(rate(rng, ident, first_night, start, start + rng.randrange(1, 15), currency,
                               rng.choice(times), rng.random() < 0.85))
    rng.shuffle(events)
    return events


def rate(rng: random.Random, ident: dict[str, object], first_night: dt.date, start: int, end: int,
         currency: str, changed_at: int, available: bool) -> dict[str, object]:
    event: dict[str, object] = {
        "type": "rate", **ident, "currency": currency, "changed_at": rfc3339(changed_at),
        "start": (first_night + dt.timedelta(days=start)).isoformat(),
        "end": (first_night + dt.timedelta(days=end)).isoformat(),
    }
    if available or rng.random() < 0.5:
        event["price"] = price_text(rng, random_price(rng, currency), currency)
    if not available:
        event["available"] = False
    if rng.random() < 0.4:
        event["min_nights"] = rng.choice([1, 2, 2, 3, 4, 5])
    return event


def build_model(world: World, events: list[dict[str, object]]) -> None:
    """What the events mean, by the contract's rules, without any of the service's code."""
    for arrival, event in enumerate(events):
        key = (str(event["source"]), str(event["listing_id"]))
        changed_at = micros(dt.datetime.fromisoformat(str(event["changed_at"])))
        if event["type"] == "listing":
            old = world.listings.get(key)
            if old is None or (changed_at, arrival) > (old.changed_at, old.arrival):
                world.listings[key] = Described(
                    changed_at, arrival, str(event["name"]), str(event["kind"]), float(event["lat"]),  # type: ignore[arg-type]
                    float(event["lon"]), int(event["max_guests"]),  # type: ignore[arg-type]
                )
        elif event["type"] == "delist":
            world.delisted_at[key] = max(world.delisted_at.get(key, -(2**63)), changed_at)
        else:
            currency = str(event["currency"])
            price = None if "price" not in event else int(Decimal(str(event["price"])).scaleb(EXPONENT[currency]))
            night = Night(changed_at, arrival, price, currency, int(event.get("min_nights", 1)),  # type: ignore[arg-type]
                          bool(event.get("available", True)))
            calendar = world.calendars.setdefault(key, {})
            for day in range(epoch_day(dt.date.fromisoformat(str(event["start"]))),
                             epoch_day(dt.date.fromisoformat(str(event["end"])))):
                old_night = calendar.get(day)
                if old_night is None or (changed_at, arrival) >= (old_night.changed_at, old_night.arrival):
                    calendar[day] = night


@pytest.fixture(scope="module")
def world(server) -> World:
    rng = random.Random(SEED)
    today = dt.date.today()
    first_night = today + dt.timedelta(days=5)
    events = make_events(rng, today, first_night)
    with server.client() as client:
        for start in range(0, len(events), 500):
            body = "\n".join(json.dumps(event) for event in events[start : start + 500])
            response = client.post("/v1/events", content=body, headers=NDJSON)
            assert response.status_code == 200, response.text
            assert response.json()["rejected"] == [], response.text
        fx = client.get("/v1/admin/fx").json()
    rates = {code: Decimal(text) for code, text in fx["rates"].items()}
    world = World(today, first_night, fx, rates)
    build_model(world, events)
    return world


# -- brute-force answers ------------------------------------------------------------------------


def total_in(world: World, nights: list[Night], target: str) -> int | None:
    """The stay's total in `target` minor units, by the documented rule; None without rates."""
    sums: dict[str, int] = {}
    for night in nights:
        assert night.price is not None
        sums[night.currency] = sums.get(night.currency, 0) + night.price
    if set(sums) - {target} and not (set(sums) | {target}) <= set(world.rates):
        return None
    total = Decimal(0)
    for currency, minor in sums.items():
        amount = Decimal(minor).scaleb(-EXPONENT[currency])
        total += amount if currency == target else amount / world.rates[currency] * world.rates[target]
    return int(total.scaleb(EXPONENT[target]).quantize(Decimal(1), ROUND_HALF_EVEN))


def half_even_div(value: int, divisor: int) -> int:
    return int((Decimal(value) / Decimal(divisor)).quantize(Decimal(1), ROUND_HALF_EVEN))


def haversine_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    phi1, phi2 = math.radians(lat1), math.radians(lat2)
    a = (
        math.sin((phi2 - phi1) / 2) ** 2
        + math.cos(phi1) * math.cos(phi2) * math.sin(math.radians(lon2 - lon1) / 2) ** 2
    )
    return 2 * EARTH_RADIUS_KM * math.asin(math.sqrt(min(1.0, max(0.0, a))))


@dataclass
class Expected:
    total: str
    currency: str
    listing_total: str
    listing_currency: str
    nights: list[dict[str, str]]
    distance: float
    changed_at: str
    ranked: int  # total in the ranking currency, UNRANKED where it cannot be converted
    listing: Described


@dataclass
class Query:
    params: list[tuple[str, str]]
    center: tuple[float, float]
    radius: float | None
    box: tuple[float, float, float, float] | None  # min_lat, max_lat, min_lon, max_lon
    checkin: dt.date
    nights: int
    guests: int
    kinds: set[str]
    currency: str | None
    min_price: Decimal | None
    max_price: Decimal | None
    sort: str

    def describe(self) -> str:
        return f"seed {SEED}, GET /v1/search?{httpx.QueryParams(self.params)}"


def expected_results(world: World, query: Query) -> tuple[dict[tuple[str, str], Expected], set[tuple[str, str]]]:
    """Every result the query must return, and those too close to the radius to call."""
    ranking = query.currency or str(world.fx["base"])
    days = [epoch_day(query.checkin) + i for i in range(query.nights)]
    found: dict[tuple[str, str], Expected] = {}
    borderline: set[tuple[str, str]] = set()
    for key, listing in world.searchable():
        distance = haversine_km(listing.lat, listing.lon, *query.center)
        if query.radius is not None:
            if abs(distance - query.radius) < 1e-6:
                borderline.add(key)
                continue
            if distance > query.radius:
                continue
        if query.box is not None:
            min_lat, max_lat, west, east = query.box
            inside_lon = west <= listing.lon <= east if west <= east else (listing.lon >= west or listing.lon <= east)
            if not (min_lat <= listing.lat <= max_lat and inside_lon):
                continue
        if listing.max_guests < query.guests or (query.kinds and listing.kind not in query.kinds):
            continue
        calendar = world.calendars.get(key, {})
        nights = [calendar.get(day) for day in days]
        if any(n is None or not n.available or n.price is None for n in nights):
            continue
        stay: list[Night] = nights  # type: ignore[assignment]
        if stay[0].min_nights > query.nights:
            continue
        ranked = total_in(world, stay, ranking)
        single = len({n.currency for n in stay}) == 1
        if ranked is None and (
            not single or query.currency or query.min_price is not None or query.max_price is not None
        ):
            continue
        if ranked is not None:
            amount = Decimal(ranked).scaleb(-EXPONENT[ranking])
            if (query.min_price is not None and amount < query.min_price) or (
                query.max_price is not None and amount > query.max_price
            ):
                continue
        own = stay[0].currency
        shown = query.currency or own
        shown_total, listing_total = total_in(world, stay, shown), total_in(world, stay, own)
        assert shown_total is not None and listing_total is not None
        found[key] = Expected(
            total=format_minor(shown_total, shown), currency=shown,
            listing_total=format_minor(listing_total, own), listing_currency=own,
            nights=[
                {"night": (query.checkin + dt.timedelta(days=i)).isoformat(),
                 "price": format_minor(total_in(world, [n], shown), shown),  # type: ignore[arg-type]
                 "listing_price": format_minor(n.price, n.currency), "listing_currency": n.currency}  # type: ignore[arg-type]
                for i, n in enumerate(stay)
            ],
            distance=distance, changed_at=rfc3339(max(n.changed_at for n in stay)),
            ranked=UNRANKED if ranked is None else ranked, listing=listing,
        )
    return found, borderline


def sort_key(query: Query, expected: Expected) -> tuple[float, ...]:
    if query.sort == "distance":
        return (expected.distance, expected.ranked)
    if query.sort == "nightly":
        nightly = UNRANKED if expected.ranked == UNRANKED else half_even_div(expected.ranked, query.nights)
        return (nightly, expected.ranked, expected.distance)
    return (expected.ranked, expected.distance)


def in_order(a: tuple[float, ...], b: tuple[float, ...]) -> bool:
    """a may come before b: lexicographic, floats within 1e-9 km counted as equal (a tie, which
    the service breaks by an internal row id the test cannot see)."""
    for x, y in zip(a, b, strict=False):
        if isinstance(x, float) or isinstance(y, float):
            if abs(x - y) <= 1e-9:
                continue
        elif x == y:
            continue
        return x < y
    return True


# -- random queries -------------------------------------------------------------------------------


def random_query(world: World, rng: random.Random) -> Query:
    region = FIJI if rng.random() < 0.2 else PARIS
    min_lat, max_lat, west, east = region
    width = (east - west) % 360
    params: list[tuple[str, str]] = []
    radius = box = None
    antimeridian = region is FIJI and rng.random() < 0.7  # areas that straddle it
    if rng.random() < 0.5:
        lat = min_lat + rng.random() * (max_lat - min_lat)
        lon = (west + (0.35 + 0.3 * rng.random() if antimeridian else rng.random()) * width + 180) % 360 - 180
        radius = round(rng.choice([0.3, 1, 2, 3.5, 5, 8, 12]) * (0.5 + rng.random()), 3)
        if antimeridian:
            radius = round(4 + 6 * rng.random(), 3)
        center = (lat, lon)
        params += [("lat", repr(lat)), ("lon", repr(lon)), ("radius_km", repr(radius))]
    else:
        lats = sorted(min_lat + rng.random() * (max_lat - min_lat) for _ in range(2))
        if antimeridian:
            lats = [
                min_lat + rng.random() * 0.2 * (max_lat - min_lat),
                max_lat - rng.random() * 0.2 * (max_lat - min_lat),
            ]
            lo, hi = west + rng.random() * width * 0.45, west + width * (0.55 + 0.45 * rng.random())
        else:
            lo = west + rng.random() * width * 0.7
            hi = lo + rng.random() * (west + width - lo)
        lo, hi = ((lo + 180) % 360 - 180), ((hi + 180) % 360 - 180)
        box = (lats[0], lats[1], lo, hi)
        center_lon = (lo + ((hi - lo) % 360) / 2 + 180) % 360 - 180
        center = ((lats[0] + lats[1]) / 2, center_lon)
        params.append(("bbox", f"{lo!r},{lats[0]!r},{hi!r},{lats[1]!r}"))
    nights = rng.choice([1, 1, 2, 2, 3, 3, 4, 5, 6, 7, 8, 10])
    checkin = world.first_night + dt.timedelta(days=rng.randrange(-3, 44))
    guests = rng.choice([1, 1, 2, 2, 3, 4, 5, 7])
    params += [("checkin", checkin.isoformat()), ("checkout", (checkin + dt.timedelta(days=nights)).isoformat())]
    if guests > 1 or rng.random() < 0.5:
        params.append(("guests", str(guests)))
    kinds: set[str] = set()
    if rng.random() < 0.4:
        kinds = set(rng.sample(KINDS, rng.randrange(1, 4)))
        if rng.random() < 0.5:
            params.append(("kind", ",".join(sorted(kinds))))
        else:
            params += [("kind", kind) for kind in sorted(kinds)]
    currency = rng.choice([None, None, "EUR", "USD", "JPY", "GBP"])
    if currency:
        params.append(("currency", currency.lower() if rng.random() < 0.2 else currency))
    sort = rng.choice(["total", "nightly", "distance", None])
    if sort:
        params.append(("sort", sort))
    query = Query(params, center, radius, box, checkin, nights, guests, kinds, currency, None, None, sort or "total")
    ranking = currency or str(world.fx["base"])
    per_night = Decimal(rng.randrange(40, 300)) * (Decimal("1.6") if ranking == "JPY" else Decimal(1))
    scale = Decimal(100) if ranking == "JPY" else Decimal(1)
    roll = rng.random()
    if roll < 0.1:  # bounds exactly on a result's total: both are inclusive
        candidates = [e.ranked for e in expected_results(world, query)[0].values() if e.ranked != UNRANKED]
        if candidates:
            exact = Decimal(rng.choice(candidates)).scaleb(-EXPONENT[ranking])
            query.min_price = query.max_price = exact
    elif roll < 0.5:
        if rng.random() < 0.6:
            query.min_price = (per_night * nights * scale * Decimal(rng.random())).quantize(Decimal("0.01"))
        if rng.random() < 0.6:
            query.max_price = (per_night * nights * scale * Decimal(1 + rng.random())).quantize(Decimal(1))
        if query.min_price is not None and query.max_price is not None and query.min_price > query.max_price:
            query.min_price, query.max_price = query.max_price, query.min_price
    for name in ("min_price", "max_price"):
        if getattr(query, name) is not None:
            params.append((name, str(getattr(query, name))))
    expected_count = len(expected_results(world, query)[0])
    limit = max(rng.choice([1, 2, 3, 5, 10, 20, 50, 200]), math.ceil(expected_count / 25))
    if limit != 20 or rng.random() < 0.5:
        params.append(("limit", str(limit)))
    rng.shuffle(params)
    return query


def walk(client: httpx.Client, query: Query) -> tuple[list[dict[str, object]], list[dict[str, object]]]:
    """Every page of the answer: (results, answers)."""
    limit = int(dict(query.params).get("limit", 20))
    results: list[dict[str, object]] = []
    answers = []
    cursor = None
    for _ in range(400):
        params = query.params + ([("cursor", cursor)] if cursor else [])
        response = client.get("/v1/search", params=params)
        assert response.status_code == 200, f"{query.describe()}: {response.status_code} {response.text}"
        answer = response.json()
        answers.append(answer)
        page = answer["results"]
        results.extend(page)
        cursor = answer["next_cursor"]
        if cursor is None:
            assert len(page) <= limit, query.describe()
            return results, answers
        assert len(page) == limit, f"{query.describe()}: a page before the last has {len(page)} of {limit}"
    raise AssertionError(f"{query.describe()}: more than 400 pages")


@pytest.mark.parametrize("case", range(QUERIES), ids=lambda case: f"seed{SEED}-q{case}")
def test_search_matches_brute_force(server, world: World, case: int) -> None:
    query = random_query(world, random.Random(f"{SEED}/{case}"))
    expected, borderline = expected_results(world, query)
    with server.client() as client:
        results, answers = walk(client, query)
    where = query.describe()
    keys = [(r["source"], r["listing_id"]) for r in results]
    assert len(keys) == len(set(keys)), f"{where}: duplicates across pages"
    got = set(keys) - borderline
    assert got == set(expected), (
        f"{where}: missing {sorted(set(expected) - got)[:5]}, unexpected {sorted(got - set(expected))[:5]}"
    )
    if not borderline:
        assert answers[0]["matches"] == len(expected), where
    ranking = query.currency or world.fx["base"]
    for answer in answers:
        assert answer["fx"] == {"name": world.fx["name"], "date": world.fx["date"], "base": world.fx["base"]}, where
        assert answer["ranked_in"] == ranking and answer["currency"] == query.currency, where
        assert answer["stay"]["nights"] == query.nights, where
    for result in results:
        key = (result["source"], result["listing_id"])
        if key in borderline:
            continue
        want = expected[key]
        assert (result["total"], result["currency"]) == (want.total, want.currency), f"{where}: {key}"
        assert (result["listing_total"], result["listing_currency"]) == (want.listing_total, want.listing_currency), (
            f"{where}: {key}"
        )
        assert result["nights"] == want.nights, f"{where}: {key}"
        assert result["price_changed_at"] == want.changed_at, f"{where}: {key}"
        assert abs(result["distance_km"] - want.distance) <= 0.0006, f"{where}: {key}"
        listing = want.listing
        assert (result["name"], result["kind"], result["lat"], result["lon"], result["max_guests"]) == (
            listing.name, listing.kind, listing.lat, listing.lon, listing.max_guests), f"{where}: {key}"
        nightly = half_even_div(int(Decimal(want.total).scaleb(EXPONENT[want.currency])), query.nights)
        assert result["nightly_average"] == format_minor(nightly, want.currency), f"{where}: {key}"
    ordered = [sort_key(query, expected[key]) for key in keys if key not in borderline]
    for position, (a, b) in enumerate(zip(ordered, ordered[1:], strict=False)):
        assert in_order(a, b), f"{where}: results {position} and {position + 1} out of order: {a} then {b}"


def test_queries_cover_the_interesting_cases(world: World) -> None:
    """The random queries are not vacuous: they hit results, mixed currencies, ties and pages."""
    counts = {"results": 0, "mixed": 0, "unranked": 0, "antimeridian": 0, "paged": 0, "bound": 0}
    for case in range(QUERIES):
        query = random_query(world, random.Random(f"{SEED}/{case}"))
        expected, _ = expected_results(world, query)
        limit = int(dict(query.params).get("limit", 20))
        counts["results"] += bool(expected)
        counts["mixed"] += any(len({n["listing_currency"] for n in e.nights}) > 1 for e in expected.values())
        counts["unranked"] += any(e.ranked == UNRANKED for e in expected.values())
        counts["antimeridian"] += any(e.listing.lon < 0 for e in expected.values()) and any(
            e.listing.lon > 0 and e.listing.lat < 0 for e in expected.values())
        counts["paged"] += len(expected) > limit
        counts["bound"] += query.min_price is not None and query.min_price == query.max_price and bool(expected)
    assert counts["results"] >= QUERIES // 2, counts
    assert min(counts.values()) >= 2, counts


# -- hand-made cases -------------------------------------------------------------------------------


def post(client: httpx.Client, *events: dict[str, object]) -> None:
    response = client.post("/v1/events", content="\n".join(json.dumps(e) for e in events), headers=NDJSON)
    assert response.status_code == 200 and response.json()["rejected"] == [], response.text


def unit(listing_id: str, lat: float, lon: float, **extra: object) -> dict[str, object]:
    return {"type": "listing", "source": "handmade", "listing_id": listing_id, "name": listing_id,
            "kind": "apartment", "lat": lat, "lon": lon, "max_guests": 2,
            "changed_at": "2026-01-01T00:00:00Z", **extra}


def night_rate(listing_id: str, start: dt.date, nights: int, price: str | None, currency: str = "EUR",
               changed_at: str = "2026-01-01T00:00:00Z", **extra: object) -> dict[str, object]:
    event: dict[str, object] = {
        "type": "rate", "source": "handmade", "listing_id": listing_id, "start": start.isoformat(),
        "end": (start + dt.timedelta(days=nights)).isoformat(), "currency": currency,
        "changed_at": changed_at, **extra}
    if price is not None:
        event["price"] = price
    return event


def stay(checkin: dt.date, nights: int, **params: object) -> dict[str, object]:
    return {"checkin": checkin.isoformat(), "checkout": (checkin + dt.timedelta(days=nights)).isoformat(), **params}


def ids(answer: dict[str, object]) -> list[str]:
    return [r["listing_id"] for r in answer["results"]]  # type: ignore[index, union-attr]


def test_stay_in_two_currencies_has_one_exact_total(server) -> None:
    day = dt.date.today() + dt.timedelta(days=30)
    with server.client() as client:
        post(client, unit("mixed-1", 10.0, 10.0),
             night_rate("mixed-1", day, 3, "100.00", "EUR"),
             night_rate("mixed-1", day + dt.timedelta(days=1), 1, "50.00", "USD", "2026-01-02T00:00:00Z"))
        area = {"lat": 10.0, "lon": 10.0, "radius_km": 1}
        eur = client.get("/v1/search", params={**area, **stay(day, 3)}).json()
        (result,) = eur["results"]
        # 200.00 EUR + 50.00 USD / 1.039 = 248.1231954 EUR, rounded once.
        assert (result["total"], result["currency"], result["listing_total"]) == ("248.12", "EUR", "248.12")
        assert [n["price"] for n in result["nights"]] == ["100.00", "48.12", "100.00"]
        assert [n["listing_currency"] for n in result["nights"]] == ["EUR", "USD", "EUR"]
        assert result["price_changed_at"] == "2026-01-02T00:00:00.000Z"
        usd = client.get("/v1/search", params={**area, **stay(day, 3), "currency": "USD"}).json()
        # 200.00 EUR * 1.039 + 50.00 USD = 257.80 USD.
        assert (usd["results"][0]["total"], usd["results"][0]["currency"]) == ("257.80", "USD")
        assert usd["results"][0]["listing_total"] == "248.12"
        jpy = client.get("/v1/search", params={**area, **stay(day, 3), "currency": "JPY"}).json()
        # 200 * 163.1 + 50 / 1.039 * 163.1 = 40469.01... yen.
        assert jpy["results"][0]["total"] == "40469"
        bounded = client.get(
            "/v1/search", params={**area, **stay(day, 3), "min_price": "248.12", "max_price": "248.12"}
        )
        assert ids(bounded.json()) == ["mixed-1"]
        above = client.get("/v1/search", params={**area, **stay(day, 3), "min_price": "248.13"})
        assert ids(above.json()) == []


def test_exact_ties_round_half_even_in_ranking_and_display(server) -> None:
    day = dt.date.today() + dt.timedelta(days=31)
    with server.client() as client:
        post(client, unit("tie-1", 14.0, 14.0), night_rate("tie-1", day, 1, "65.00"),
             unit("tie-2", 14.0, 14.0), night_rate("tie-2", day, 1, "15.00"),
             night_rate("tie-2", day + dt.timedelta(days=1), 1, "10.00", "USD"))
        area = {"lat": 14.0, "lon": 14.0, "radius_km": 1, "currency": "USD"}
        # 65.00 EUR * 1.039 = 67.535 USD -> 67.54 (6500 * 1.039 is 6753.4999... in binary floats).
        one = client.get(
            "/v1/search", params={**area, **stay(day, 1), "min_price": "67.54", "max_price": "67.54"}
        ).json()
        assert [(r["listing_id"], r["total"]) for r in one["results"]] == [("tie-1", "67.54")]
        # 15.00 EUR * 1.039 + 10.00 USD = 25.585 USD -> 25.58 (half-even, not 25.59).
        two = client.get("/v1/search", params={**area, **stay(day, 2)}).json()
        assert [(r["listing_id"], r["total"]) for r in two["results"]] == [("tie-2", "25.58")]
        assert ids(client.get("/v1/search", params={**area, **stay(day, 2), "max_price": "25.58"}).json()) == ["tie-2"]
        assert ids(client.get("/v1/search", params={**area, **stay(day, 2), "min_price": "25.585"}).json()) == []


def test_currency_without_rate_comes_last_or_not_at_all(server) -> None:
    day = dt.date.today() + dt.timedelta(days=30)
    with server.client() as client:
        post(client, unit("bam-1", 11.0, 11.0), unit("eur-1", 11.0, 11.001), unit("eur-2", 11.0, 11.002),
             night_rate("bam-1", day, 2, "1.00", "BAM"), night_rate("eur-1", day, 2, "900.00"),
             night_rate("eur-2", day, 2, "20.00"))
        area = {"lat": 11.0, "lon": 11.0, "radius_km": 2}
        ranked = client.get("/v1/search", params={**area, **stay(day, 2)}).json()
        assert ids(ranked) == ["eur-2", "eur-1", "bam-1"]
        assert ranked["results"][2]["total"] == "2.00" and ranked["results"][2]["currency"] == "BAM"
        by_distance = client.get("/v1/search", params={**area, **stay(day, 2), "sort": "distance"}).json()
        assert ids(by_distance) == ["bam-1", "eur-1", "eur-2"]
        assert ids(client.get("/v1/search", params={**area, **stay(day, 2), "currency": "EUR"}).json()) == [
            "eur-2",
            "eur-1",
        ]
        assert ids(client.get("/v1/search", params={**area, **stay(day, 2), "max_price": "5000"}).json()) == [
            "eur-2",
            "eur-1",
        ]
        refused = client.get("/v1/search", params={**area, **stay(day, 2), "currency": "BAM"})
        assert refused.status_code == 400 and "BAM" in refused.json()["error"] and "FX table" in refused.json()["error"]


def test_antimeridian_box_and_circle(server) -> None:
    day = dt.date.today() + dt.timedelta(days=30)
    with server.client() as client:
        post(client, unit("east-1", -30.0, 179.99), unit("west-1", -30.0, -179.99), unit("far-1", -30.0, 170.0),
             *(night_rate(i, day, 1, "10.00") for i in ("east-1", "west-1", "far-1")))
        box = client.get("/v1/search", params={"bbox": "179.9,-30.1,-179.9,-29.9", **stay(day, 1), "sort": "distance"})
        assert box.status_code == 200, box.text
        assert sorted(ids(box.json())) == ["east-1", "west-1"]
        assert all(r["distance_km"] < 1.1 for r in box.json()["results"])
        circle = client.get("/v1/search", params={"lat": -30.0, "lon": 180, "radius_km": 5, **stay(day, 1)})
        assert sorted(ids(circle.json())) == ["east-1", "west-1"]
        circle = client.get("/v1/search", params={"lat": -30.0, "lon": -179.995, "radius_km": 2, **stay(day, 1)})
        assert sorted(ids(circle.json())) == ["east-1", "west-1"]


def test_circle_near_a_pole_finds_every_longitude(server) -> None:
    day = dt.date.today() + dt.timedelta(days=30)
    with server.client() as client:
        post(client, unit("pole-1", 89.9, 0.0), unit("pole-2", 89.9, 180.0), unit("north-1", 81.0, 30.8),
             *(night_rate(i, day, 1, "10.00") for i in ("pole-1", "pole-2", "north-1")))
        near = client.get("/v1/search", params={"lat": 89.9, "lon": 90.0, "radius_km": 30, **stay(day, 1)})
        assert sorted(ids(near.json())) == ["pole-1", "pole-2"]
        # 494 km away; at 80 degrees north a 500 km circle reaches 26.8 degrees of longitude east,
        # past the 25.9 of the r / cos(lat) approximation.
        wide = client.get("/v1/search", params={"lat": 80.0, "lon": 4.3, "radius_km": 500, **stay(day, 1)})
        assert "north-1" in ids(wide.json())


def test_read_after_ack(server) -> None:
    day = dt.date.today() + dt.timedelta(days=40)
    params = {"lat": 12.0, "lon": 12.0, "radius_km": 1, **stay(day, 2), "currency": "EUR"}
    with server.client() as client:
        for round_ in range(5):
            listing_id = f"ack-{round_}"
            post(client, unit(listing_id, 12.0, 12.0), night_rate(listing_id, day, 2, "80.00"))
            found = {r["listing_id"]: r for r in client.get("/v1/search", params=params).json()["results"]}
            assert found[listing_id]["total"] == "160.00"
            post(client, night_rate(listing_id, day, 1, "90.00", changed_at=f"2026-01-0{2 + round_}T00:00:00Z"))
            found = {r["listing_id"]: r for r in client.get("/v1/search", params=params).json()["results"]}
            assert found[listing_id]["total"] == "170.00"
            post(client, night_rate(listing_id, day + dt.timedelta(days=1), 1, None, available=False,
                                    changed_at="2026-02-01T00:00:00Z"))
            assert listing_id not in ids(client.get("/v1/search", params=params).json())
            post(
                client,
                night_rate(listing_id, day + dt.timedelta(days=1), 1, "10.00", changed_at="2026-02-02T00:00:00Z"),
            )
            assert listing_id in ids(client.get("/v1/search", params=params).json())
            post(client, {"type": "delist", "source": "handmade", "listing_id": listing_id,
                          "changed_at": "2026-03-01T00:00:00Z"})
            assert listing_id not in ids(client.get("/v1/search", params=params).json())


def test_min_nights_of_the_checkin_night_only(server) -> None:
    day = dt.date.today() + dt.timedelta(days=50)
    with server.client() as client:
        post(client, unit("min-1", 13.0, 13.0), night_rate("min-1", day, 1, "10.00", min_nights=3),
             night_rate("min-1", day + dt.timedelta(days=1), 5, "10.00", min_nights=7))
        area = {"lat": 13.0, "lon": 13.0, "radius_km": 1}
        assert ids(client.get("/v1/search", params={**area, **stay(day, 2)}).json()) == []
        assert ids(client.get("/v1/search", params={**area, **stay(day, 3)}).json()) == ["min-1"]
        assert ids(client.get("/v1/search", params={**area, **stay(day + dt.timedelta(days=1), 3)}).json()) == []


def test_cursor_is_bound_to_its_query(server, world: World) -> None:
    params = {"bbox": "2.25,48.8,2.42,48.92", **stay(world.first_night + dt.timedelta(days=10), 2), "limit": 3}
    with server.client() as client:
        first = client.get("/v1/search", params=params).json()
        cursor = first["next_cursor"]
        assert cursor
        for change in ({"sort": "distance"}, {"guests": 2}, {"currency": "USD"}, {"max_price": "900"},
                       {"checkout": (world.first_night + dt.timedelta(days=13)).isoformat()},
                       {"kind": "house"}, {"bbox": "2.25,48.8,2.42,48.93"}):
            response = client.get("/v1/search", params={**params, **change, "cursor": cursor})
            assert response.status_code == 400, (change, response.text)
            assert response.json()["error"].startswith("cursor: it was issued for a search with other parameters")
        # Another page size is the same search: the next page follows on.
        longer = client.get("/v1/search", params={**params, "limit": 50}).json()
        rest = client.get("/v1/search", params={**params, "limit": 47, "cursor": cursor}).json()
        assert ids(first) + ids(rest) == ids(longer)[: len(ids(first)) + len(ids(rest))]


def later(days: int) -> str:
    return (dt.date.today() + dt.timedelta(days=days)).isoformat()


BASE_PARAMS = {"lat": "48.85", "lon": "2.35", "radius_km": "3", "checkin": later(10), "checkout": later(12)}
NO_POINT = {"lat": None, "lon": None, "radius_km": None}


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"checkin": None}, "checkin: missing; expected a date YYYY-MM-DD"),
        ({"checkin": "2026-13-01"}, "checkin: '2026-13-01' is not a date; expected YYYY-MM-DD"),
        ({"checkout": "tomorrow"}, "checkout: 'tomorrow' is not a date"),
        ({"checkout": later(10)}, f"checkout: '{later(10)}' is 0 nights after checkin '{later(10)}'; expected 1 to 90"),
        ({"checkout": later(9)}, "is -1 nights after checkin"),
        ({"checkout": later(101)}, "is 91 nights after checkin"),
        ({"checkin": later(800), "checkout": later(801)}, "past the horizon of 730 days"),
        ({"lat": "91"}, "lat: '91' is out of range; expected -90 to 90"),
        ({"lat": "north"}, "lat: 'north' is not a number"),
        ({"lon": None}, "lon: missing"),
        ({"lon": "nan"}, "lon: 'nan' is not a number"),
        ({"lat": "1_0"}, "lat: '1_0' is not a number"),
        ({"limit": "\u0663"}, "limit: '\u0663' is not a whole number"),
        ({"radius_km": "0"}, "radius_km: '0' is out of range; expected 0.01 to 500"),
        ({"radius_km": "501"}, "radius_km: '501' is out of range"),
        (NO_POINT, "area: missing; expected lat, lon and radius_km, or bbox"),
        ({**NO_POINT, "bbox": "2,48,3"}, "bbox: '2,48,3' has 3 numbers; expected 4"),
        ({**NO_POINT, "bbox": "2,49,3,48"}, "bbox: '2,49,3,48' has min_lat 49 above max_lat 48"),
        ({**NO_POINT, "bbox": "2,-95,3,48"}, "bbox: min_lat '-95' is out of range; expected -90 to 90"),
        ({**NO_POINT, "bbox": "190,40,3,48"}, "bbox: min_lon '190' is out of range; expected -180 to 180"),
        ({**NO_POINT, "bbox": "a,40,3,48"}, "bbox: min_lon 'a' is not a number"),
        ({"bbox": "2,48,3,49"}, "bbox: given with lat, lon, radius_km; expected either"),
        ({"guests": "0"}, "guests: '0' is out of range; expected 1 to 500"),
        ({"guests": "2.5"}, "guests: '2.5' is not a whole number"),
        ({"guests": "two"}, "guests: 'two' is not a whole number"),
        ({"limit": "0"}, "limit: '0' is out of range; expected 1 to 200"),
        ({"limit": "201"}, "limit: '201' is out of range"),
        ({"kind": "castle"}, "kind: 'castle' is not one of hotel_room, apartment"),
        ({"kind": ["house", "house,igloo"]}, "kind: 'igloo' is not one of"),
        ({"currency": "EURO"}, "currency: 'EURO' is not an ISO 4217 code"),
        ({"currency": "XAU"}, "currency: 'XAU' is not an ISO 4217 code"),
        ({"currency": "BAM"}, "currency: 'BAM' has no rate in the FX table 'staystream-default' of 2024-12-31"),
        ({"sort": "price"}, "sort: 'price' is not one of total, nightly, distance"),
        ({"min_price": "cheap"}, "min_price: 'cheap' is not a decimal amount"),
        ({"max_price": "-1"}, "max_price: '-1' is negative"),
        ({"min_price": "300", "max_price": "200"}, "min_price: '300' is above max_price '200'"),
        ({"cursor": "garbage"}, "cursor: 'garbage' is not a cursor this service issued"),
        ({"cursor": "WzEsImFiIiwxLDJd"}, "is not a cursor this service issued"),
        ({"max_prize": "100"}, "max_prize: unknown parameter; expected some of lat, lon"),
        ({"sort": ["total", "distance"]}, "sort: given 2 times; expected once"),
    ],
    ids=lambda value: value if isinstance(value, str) else None,
)
def test_bad_parameters_are_400_with_a_clear_message(server, params: dict[str, object], message: str) -> None:
    merged = {**BASE_PARAMS, **params}
    query = [(name, v) for name, value in merged.items() if value is not None
             for v in (value if isinstance(value, list) else [value])]
    with server.client() as client:
        response = client.get("/v1/search", params=query)
    assert response.status_code == 400, response.text
    assert message in response.json()["error"], response.json()["error"]


def test_fx_table_replaced_live(server_factory) -> None:
    server = server_factory()
    day = dt.date.today() + dt.timedelta(days=20)
    table = {"name": "test-table", "date": "2026-11-01", "base": "USD",
             "rates": {"USD": "1", "EUR": "0.8", "JPY": "150"}}
    with server.client() as client:
        post(client, unit("fx-1", 1.0, 1.0), night_rate("fx-1", day, 3, "33.33"))
        assert client.put("/v1/admin/fx", content=json.dumps(table)).status_code == 200
        answer = client.get(
            "/v1/search", params={"lat": 1, "lon": 1, "radius_km": 1, **stay(day, 3), "currency": "JPY"}
        ).json()
        assert answer["fx"] == {"name": "test-table", "date": "2026-11-01", "base": "USD"}
        # 99.99 EUR / 0.8 * 150 = 18748.125 yen -> 18748; each night 33.33 / 0.8 * 150 = 6249.375 -> 6249.
        assert answer["results"][0]["total"] == "18748"
        assert [n["price"] for n in answer["results"][0]["nights"]] == ["6249"] * 3
        unranked = client.get("/v1/search", params={"lat": 1, "lon": 1, "radius_km": 1, **stay(day, 3)}).json()
        assert unranked["ranked_in"] == "USD" and unranked["results"][0]["total"] == "99.99"
        half = client.get(
            "/v1/search", params={"lat": 1, "lon": 1, "radius_km": 1, **stay(day, 3), "currency": "USD"}
        ).json()
        # 99.99 / 0.8 = 124.9875 -> 124.99 (not an exact tie; an exact tie is below).
        assert half["results"][0]["total"] == "124.99"
        post(client, unit("fx-2", 1.0, 1.0), night_rate("fx-2", day, 1, "0.12"),
             unit("fx-3", 1.0, 1.0), night_rate("fx-3", day, 1, "0.04"))
        tie = client.get(
            "/v1/search", params={"lat": 1, "lon": 1, "radius_km": 1, **stay(day, 1), "currency": "JPY"}
        ).json()
        # Exact ties, rounded half-even: 0.12 EUR / 0.8 * 150 = 22.5 -> 22 yen; 0.04 -> 7.5 -> 8.
        assert {r["listing_id"]: r["total"] for r in tie["results"]} == {"fx-1": "6249", "fx-2": "22", "fx-3": "8"}


# -- the spatial index, in-process: it must find what a scan finds, while rows move -------------


def test_place_index_finds_what_a_scan_finds(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    import numpy as np
    from starlette.datastructures import QueryParams

    from staystream.events.types import Listing
    from staystream.memory.layout import SHARED_ARRAYS
    from staystream.memory.listings import ListingColumns
    from staystream.memory.shm import SharedArrays
    from staystream.search import engine as search

    monkeypatch.setattr(search, "INDEX_MIN_ROWS", 0)
    monkeypatch.setattr(search, "INDEX_REBUILD_MOVES", 300)
    monkeypatch.setattr(search, "INDEX_IN_BACKGROUND", False)
    rng = random.Random(SEED)
    writer = SharedArrays(tmp_path / "shm", SHARED_ARRAYS, create=True)
    columns = ListingColumns(writer)
    reader = SharedArrays(tmp_path / "shm", SHARED_ARRAYS, create=False)
    places = [(48.85, 2.35), (-17.0, 180.0), (89.5, 0.0), (0.0, 0.0), (-45.0, -179.9)]
    clock = [1_700_000_000_000_000]

    def describe(row: int) -> None:
        lat, lon = rng.choice(places)
        lat = max(-90.0, min(90.0, lat + rng.uniform(-0.4, 0.4)))
        lon = (lon + rng.uniform(-0.6, 0.6) + 180) % 360 - 180
        clock[0] += 1
        columns.describe(row, Listing(f"k{row}", "x", 0, round(lat, 6), round(lon, 6), rng.randrange(1, 5),
                                      clock[0], None, None, None, None, None))

    def check(rounds: int) -> None:
        reader.refresh()
        lat, lon = writer["lat"][: columns.rows], writer["lon"][: columns.rows]
        for _ in range(rounds):
            center = rng.choice(places)
            if rng.random() < 0.5:
                params = {"lat": center[0], "lon": center[1], "radius_km": rng.choice([1, 10, 40, 200])}
            else:
                west = (center[1] - rng.uniform(0, 0.5) + 180) % 360 - 180
                east = (center[1] + rng.uniform(0, 0.5) + 180) % 360 - 180
                south, north = max(-90, center[0] - rng.uniform(0, 0.5)), min(90, center[0] + rng.uniform(0, 0.5))
                params = {"bbox": f"{west},{south},{east},{north}"}
            guests = rng.randrange(1, 4)
            query = search.parse_query(QueryParams({**params, "checkin": "2027-01-01", "checkout": "2027-01-02",
                                                    "guests": str(guests)}), 730)
            area = query.area
            inside = (lat >= area.min_lat) & (lat <= area.max_lat) & np.logical_or.reduce(
                [(lon >= low) & (lon <= high) for low, high in area.lon_ranges])
            inside &= (writer["searchable"][: columns.rows] == 1) & (writer["max_guests"][: columns.rows] >= guests)
            got = search.candidates(reader, query.area, query.guests, query.kinds)
            assert search._indexes.get(reader) is not None
            assert got.tolist() == np.flatnonzero(inside).tolist(), params

    columns.add_rows(2000)
    for row in range(0, 2000, 2):  # every other row described; the rest only "has rates"
        describe(row)
    check(60)
    first_index = search._indexes[reader]
    for _step in range(6):  # moves, first descriptions and new rows, until the index rebuilds
        for _ in range(120):
            describe(rng.randrange(columns.rows))
        columns.add_rows(columns.rows + 100)
        for row in range(columns.rows - 100, columns.rows, 3):
            describe(row)
        check(30)
    assert search._indexes[reader] is not first_index, "the index was never rebuilt"
