"""Place assignment: the rules on small cases, and incremental == from scratch, in any order."""

from __future__ import annotations

import math
import random
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import overture_pairs
from staystream import places
from staystream.places import matching
from staystream.places.graph import PlaceGraph, place_id_for
from staystream.places.grid import Grid
from staystream.places.types import (
    Delisted,
    Link,
    PlaceEvent,
    PlaceListing,
    listing_key,
)

PARIS = (48.8510, 2.3260)
LUTETIA = "45 Boulevard Raspail, 75006 Paris"


def at(metres_north: float, metres_east: float = 0.0) -> tuple[float, float]:
    lat = PARIS[0] + metres_north / 111_195.0
    return lat, PARIS[1] + metres_east / (111_195.0 * math.cos(math.radians(lat)))


def hotel(source: str, listing_id: str, north: float = 0.0, name: str = "Hotel Lutetia",
          address: str | None = LUTETIA, property_id: str | None = None, kind: str = "hotel_room",
          guests: int = 2) -> PlaceListing:
    lat, lon = at(north)
    return PlaceListing(source, listing_id, lat, lon, name, kind, guests, address, property_id)


def snapshot(graph: PlaceGraph) -> dict[str, object]:
    return {pid: place.as_json() for pid, place in sorted(graph.places().items())}


def members(graph: PlaceGraph, source: str, listing_id: str) -> list[tuple[str, str, str]]:
    pid = graph.place_id_of(listing_key(source, listing_id))
    assert pid is not None
    listings = graph.place(pid).as_json()["listings"]  # type: ignore[union-attr]
    return [(x["source"], x["listing_id"], x["matched"]) for x in listings]  # type: ignore[attr-defined]


def test_a_listing_alone_is_its_own_place_in_the_contract_shape() -> None:
    graph = PlaceGraph()
    changed = graph.apply([hotel("booking", "1")])
    pid = place_id_for(listing_key("booking", "1"))
    assert changed == {listing_key("booking", "1"): pid}
    assert graph.place(pid) == graph.alone(listing_key("booking", "1"))
    assert graph.place(pid).as_json() == {  # type: ignore[union-attr]
        "place_id": pid, "name": "Hotel Lutetia", "lat": PARIS[0], "lon": PARIS[1],
        "listings": [{"source": "booking", "listing_id": "1", "matched": "self", "score": 1.0}],
    }


def test_same_property_is_one_place_and_other_sources_match_automatically() -> None:
    graph = PlaceGraph()
    graph.apply([
        hotel("booking", "1", property_id="H"), hotel("booking", "2", property_id="H"),
        hotel("expedia", "7", north=120, name="Lutetia Paris", address="45 bd Raspail, Paris"),
    ])
    assert members(graph, "expedia", "7") == [
        ("booking", "1", "self"), ("booking", "2", "property"), ("expedia", "7", "auto"),
    ]
    place = graph.place(graph.place_id_of(listing_key("expedia", "7")) or "")
    assert place is not None and matching.THRESHOLD <= place.members[2][2] <= 1.0


def test_listings_of_one_source_are_never_merged_automatically() -> None:
    graph = PlaceGraph()
    graph.apply([hotel("airbnb", "1"), hotel("airbnb", "2")])
    assert len(graph.places()) == 2


def test_far_apart_or_different_names_do_not_match() -> None:
    graph = PlaceGraph()
    graph.apply([
        hotel("booking", "1"),
        hotel("expedia", "far", north=matching.RADIUS_M + 50),
        hotel("vrbo", "other", name="Maison Rose", address="12 Rue de Rivoli, 75004 Paris"),
    ])
    assert len(graph.places()) == 3


def test_a_link_joins_far_listings_and_the_latest_link_wins() -> None:
    graph = PlaceGraph()
    graph.apply([hotel("booking", "1"), hotel("vrbo", "9", north=5000, name="Maison Rose")])
    graph.apply([Link("booking", "1", "vrbo", "9", True, 10)])
    assert members(graph, "vrbo", "9") == [("booking", "1", "self"), ("vrbo", "9", "link")]
    graph.apply([Link("vrbo", "9", "booking", "1", False, 5)])  # older: ignored
    assert len(graph.places()) == 1
    graph.apply([Link("vrbo", "9", "booking", "1", False, 10)])  # same time: "not same" wins
    assert len(graph.places()) == 2


def test_not_same_beats_automatic_matching_even_through_a_chain() -> None:
    graph = PlaceGraph()
    # a (booking) - b (expedia) - c (hotels): all the same hotel by the data.
    graph.apply([hotel("booking", "a"), hotel("expedia", "b", north=20), hotel("hotels", "c", north=40)])
    assert len(graph.places()) == 1
    graph.apply([Link("booking", "a", "hotels", "c", False, 1)])
    places = [sorted(m[0].key for m in p.members) for p in graph.places().values()]
    assert len(places) == 2
    assert not any(listing_key("booking", "a") in p and listing_key("hotels", "c") in p for p in places)


def test_auto_matching_is_one_to_one_per_pair_of_sources() -> None:
    graph = PlaceGraph()
    graph.apply([
        hotel("booking", "1"),
        hotel("expedia", "best", north=10),
        hotel("expedia", "second", north=30, name="Hotel Lutetia Paris Rive Gauche"),
    ])
    assert members(graph, "booking", "1") == [("booking", "1", "self"), ("expedia", "best", "auto")]
    assert members(graph, "expedia", "second") == [("expedia", "second", "self")]


def test_a_candidate_refused_by_not_same_leaves_the_slot_to_the_next() -> None:
    graph = PlaceGraph()
    graph.apply([
        hotel("booking", "1"), hotel("hotels", "far", north=5000, name="Maison Rose"),
        Link("booking", "1", "hotels", "far", True, 1), Link("hotels", "far", "expedia", "best", False, 1),
        hotel("expedia", "best", north=10),
        hotel("expedia", "second", north=30, name="Hotel Lutetia Paris Rive Gauche"),
    ])
    assert members(graph, "booking", "1") == [
        ("booking", "1", "self"), ("expedia", "second", "auto"), ("hotels", "far", "link"),
    ]


def test_a_link_to_an_unknown_listing_applies_when_it_arrives() -> None:
    graph = PlaceGraph()
    graph.apply([hotel("booking", "1"), Link("booking", "1", "vrbo", "later", True, 3)])
    assert len(graph.places()) == 1
    changed = graph.apply([hotel("vrbo", "later", north=3000, name="Maison Rose")])
    assert changed == {listing_key("vrbo", "later"): place_id_for(listing_key("booking", "1"))}


def test_delisting_leaves_the_place_and_splits_what_it_held_together() -> None:
    graph = PlaceGraph()
    graph.apply([hotel("booking", "1"), hotel("expedia", "2", north=10),
                 Link("booking", "1", "vrbo", "3", True, 1), hotel("vrbo", "3", north=4000, name="X")])
    assert len(graph.places()) == 1
    changed = graph.apply([Delisted("booking", "1")])
    assert changed[listing_key("booking", "1")] is None
    assert graph.place_id_of(listing_key("booking", "1")) is None
    assert len(graph.places()) == 2


def test_the_representative_is_the_smallest_key_with_an_address() -> None:
    graph = PlaceGraph()
    graph.apply([hotel("airbnb", "1", address=None, name="Lutetia"),
                 Link("airbnb", "1", "booking", "2", True, 1), hotel("booking", "2", north=30)])
    place = graph.place(place_id_for(listing_key("airbnb", "1")))
    assert place is not None and place.as_json()["name"] == "Hotel Lutetia"


# -- incremental == from scratch, whatever the order

SOURCES = ("airbnb", "booking", "vrbo")
IDS = ("1", "2", "3")
NAMES = ("Hotel Lutetia", "Lutetia", "Hôtel Lutétia Paris", "Le Petit Nid", "Petit Nid Apartments", "Maison Rose")
ADDRESSES = (None, LUTETIA, "45 bd Raspail Paris", "12 Rue de Rivoli, 75004 Paris")

keys = st.tuples(st.sampled_from(SOURCES), st.sampled_from(IDS))
listings = st.builds(
    lambda key, north, name, address, kind, guests, prop: hotel(
        key[0], key[1], north=north, name=name, address=address, kind=kind, guests=guests, property_id=prop),
    keys, st.sampled_from((0.0, 40.0, 140.0, 330.0, 700.0)), st.sampled_from(NAMES),
    st.sampled_from(ADDRESSES), st.sampled_from(("hotel_room", "apartment", "other")),
    st.sampled_from((2, 4, 8)), st.sampled_from((None, "P1", "P2")),
)
delists = st.builds(Delisted, st.sampled_from(SOURCES), st.sampled_from(IDS))
link_parts = st.tuples(keys, keys, st.booleans(), st.integers(0, 4))  # a Link unless a == b


def final_state(evs: list[PlaceEvent]) -> list[PlaceEvent]:
    """The current listings and the winning link per pair: what places are a function of."""
    current: dict[str, PlaceListing | None] = {}
    winners: dict[tuple[str, str], Link] = {}
    for event in evs:
        if isinstance(event, Link):
            if event.pair not in winners or event.precedence > winners[event.pair].precedence:
                winners[event.pair] = event
        else:
            current[event.key] = event if isinstance(event, PlaceListing) else None
    return [x for x in current.values() if x is not None] + list(winners.values())


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(listings, listings, delists, link_parts), max_size=25), st.randoms(use_true_random=False))
def test_incremental_equals_from_scratch_in_any_order(raw: list[object], rnd: object) -> None:
    evs: list[PlaceEvent] = []
    for item in raw:
        if isinstance(item, tuple):
            a, b, same, when = item
            if a != b:
                evs.append(Link(a[0], a[1], b[0], b[1], same, when))
        else:
            evs.append(item)  # type: ignore[arg-type]
    one_by_one = PlaceGraph()
    reported: dict[str, str | None] = {}
    for event in evs:
        reported.update(one_by_one.apply([event]))
    in_one_batch = PlaceGraph()
    in_one_batch.apply(evs)
    state = final_state(evs)
    from_scratch = PlaceGraph()
    from_scratch.apply(state)
    shuffled = list(state)
    rnd.shuffle(shuffled)  # type: ignore[attr-defined]
    reordered = PlaceGraph()
    for event in shuffled:
        reordered.apply([event])
    expected = snapshot(from_scratch)
    assert snapshot(one_by_one) == expected
    assert snapshot(in_one_batch) == expected
    assert snapshot(reordered) == expected
    # what `apply` reported adds up to the current place of every listing
    current = {k: v for k, v in reported.items() if v is not None}
    assert current == {m["source"] + "\x00" + m["listing_id"]: pid  # type: ignore[index,operator]
                       for pid, place in expected.items() for m in place["listings"]}  # type: ignore[index]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.floats(-89.9, 89.9), st.floats(-180, 180), st.floats(0, 350), st.floats(0, 360)),
                min_size=1, max_size=20))
def test_the_grid_finds_every_point_within_the_radius(points: list[tuple[float, float, float, float]]) -> None:
    radius = 400.0
    grid = Grid(radius)
    for i, (lat, lon, distance, bearing) in enumerate(points):
        # a second point `distance` metres away, on a bearing, wrapping the antimeridian
        dlat = distance * math.cos(math.radians(bearing)) / 111_195.0
        lat2 = max(-90.0, min(90.0, lat + dlat))
        dlon = distance * math.sin(math.radians(bearing)) / (111_195.0 * max(math.cos(math.radians(lat2)), 1e-6))
        lon2 = (lon + dlon + 180.0) % 360.0 - 180.0
        if matching.haversine_m(lat, lon, lat2, lon2) > radius:
            continue
        grid.add(f"b{i}", lat2, lon2)
        assert grid.cell(lat2, lon2) in grid.cells_near(grid.cell(lat, lon))


def test_the_candidates_are_every_pair_the_score_matches() -> None:
    """The bulk filters (cells, shared words, `MIN_NAME_SET`, the factors, the text score's
    bound) drop no pair the score alone would match: the labeled pairs' real names and
    addresses, each pair's records within 150 m of each other, in a 1.2 km square where every
    listing has dozens of the other source within reach; against scoring every such pair."""
    rnd = random.Random(5)
    kinds = ("hotel_room", "apartment", "house", "private_room", "other")
    listings = []
    for i, pair in enumerate(overture_pairs.load(overture_pairs.DEFAULT_PATH)[:300]):
        north, east = rnd.uniform(0, 1200), rnd.uniform(0, 1200)
        for side, source in enumerate(("a", "b")):
            lat, lon = at(north + rnd.uniform(-100, 100) * side, east + rnd.uniform(-100, 100) * side)
            listings.append(PlaceListing(source, str(i), lat, lon, pair.names[side], rnd.choice(kinds),
                                         rnd.choice((2, 4, 8)), pair.addresses[side]))
    graph = PlaceGraph()
    graph.apply(listings[:100], match=False)
    graph.apply(listings[100:])
    graph.match_pending(len(listings))
    found = {(a, b) if a < b else (b, a) for a, b, _, _ in graph.unsaved().edges}
    expected, borderline = set(), set()
    for x in (x for x in listings if x.source == "a"):
        for y in (y for y in listings if y.source == "b"):
            if matching.haversine_m(x.lat, x.lon, y.lat, y.lon) <= matching.RADIUS_M:
                pair = (x.key, y.key) if x.key < y.key else (y.key, x.key)
                score = matching.score(x, y).score
                expected |= {pair} if score >= matching.THRESHOLD else set()
                borderline |= {pair} if abs(score - matching.THRESHOLD) < 1e-4 else set()
    assert len(expected) > 100
    assert found ^ expected <= borderline


def test_a_listing_sent_again_or_an_unknown_delisting_changes_nothing() -> None:
    graph = PlaceGraph()
    graph.apply([hotel("booking", "1"), hotel("expedia", "2", north=10)])
    before = snapshot(graph)
    assert graph.apply([hotel("booking", "1"), Delisted("vrbo", "never-listed")]) == {}
    assert snapshot(graph) == before


@pytest.mark.parametrize(("make", "message"), [
    (lambda: hotel("booking", "1", kind="castle"), "listing booking/1: kind 'castle' is not one of"),
    (lambda: PlaceListing("booking", "1", 91.0, 0.0, "X", "other", 2), "lat/lon 91.0, 0.0 outside [-90, 90]"),
    (lambda: hotel("booking", "1", address="x" * 513), "address of 513 characters, at most 512 expected"),
    (lambda: Link("booking", "1", "booking", "1", True, 1), "link of booking/1 to itself"),
])
def test_bad_input_names_the_listing_the_value_and_what_was_expected(make: object, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        make()  # type: ignore[operator]


def test_the_package_exports() -> None:
    assert sorted(places.__all__) == ["Delisted", "Link", "Place", "PlaceEvent", "PlaceGraph", "PlaceListing",
                                      "listing_key", "place_id_for"]
