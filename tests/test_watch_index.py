"""The watch index finds exactly the (watch, changed row) pairs a brute-force check of every watch
against every row finds: areas of every size and shape (antimeridian, poles, country-wide), stays,
price bounds against the changed rows' floors (long stays never pruned), watches added in bursts
(both levels, merges), removed, and bounds moved (a new FX table)."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from staystream.search.engine import Area, circle_area
from staystream.watches import index as index_module
from staystream.watches.index import WatchIndex

LAT = st.floats(-89.9, 89.9)
LON = st.floats(-180, 180)
PRICE = st.one_of(st.just(0.0), st.just(float("inf")), st.floats(0.01, 1e4), st.sampled_from([50.0, 65.0, 130.0]))


@st.composite
def areas(draw: st.DrawFn) -> Area:
    if draw(st.booleans()):
        return circle_area(draw(LAT), draw(LON), draw(st.sampled_from([0.5, 3.0, 20.0, 300.0])))
    south = draw(LAT)
    north = min(89.9, south + draw(st.floats(0.001, 30)))
    west = draw(LON)
    east = west + draw(st.floats(0.001, 40))
    ranges = ((west, min(east, 180.0)),) if east <= 180 else ((west, 180.0), (-180.0, east - 360))
    return Area(south, north, ranges, (south, west), None)


@st.composite
def near(draw: st.DrawFn, watch_areas: list[Area]) -> tuple[float, float]:
    """A point inside or around one of the areas (so pairs exist), or anywhere."""
    if watch_areas and draw(st.booleans()):
        area = draw(st.sampled_from(watch_areas))
        low, high = draw(st.sampled_from(area.lon_ranges))
        lat = draw(st.floats(max(-90, area.min_lat - 0.01), min(90, area.max_lat + 0.01)))
        lon = draw(st.floats(max(-180, low - 0.01), min(180, high + 0.01)))
        return lat, lon
    return draw(LAT), draw(LON)


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_index_agrees_with_brute_force(data: st.DataObject) -> None:
    merge_min = index_module.MERGE_MIN
    index_module.MERGE_MIN = data.draw(st.sampled_from([1, 3, merge_min]))  # both levels, merges
    try:
        check_rounds(data)
    finally:
        index_module.MERGE_MIN = merge_min


def check_rounds(data: st.DataObject) -> None:
    index = WatchIndex()
    watch_areas: list[Area] = []
    for round_ in range(data.draw(st.integers(1, 4))):
        for _ in range(data.draw(st.integers(0, 12))):
            area = data.draw(areas())
            seq = len(watch_areas) + 1
            watch_areas.append(area)
            index.add(seq, area, data.draw(st.integers(0, 60)), data.draw(st.integers(1, 12)), data.draw(PRICE))
        for seq in data.draw(st.lists(st.integers(1, max(1, len(watch_areas))), max_size=3)):
            if seq <= len(watch_areas):
                index.remove(seq)
        if watch_areas and data.draw(st.booleans()):
            moved = data.draw(st.lists(st.integers(1, len(watch_areas)), max_size=5, unique=True))
            index.set_bounds(moved, np.array([data.draw(PRICE) for _ in moved]))
        points = data.draw(st.lists(near(watch_areas), min_size=1, max_size=30))
        rows = np.arange(len(points))
        lat = np.array([p[0] for p in points])
        lon = np.array([p[1] for p in points])
        every = np.iinfo(np.int32).min  # a description or delist: every night
        first = np.array([data.draw(st.one_of(st.just(every), st.integers(0, 60))) for _ in points])
        end = np.array([f + data.draw(st.integers(1, 20)) if f != every else np.iinfo(np.int32).max for f in first])
        floor = np.array([data.draw(PRICE) for _ in points]) if data.draw(st.booleans()) else None
        watch, position = index.affected(rows, lat, lon, first, end, floor)
        found = set(zip(watch.tolist(), position.tolist(), strict=True))
        assert found == index.brute_force(rows, lat, lon, first, end, floor), f"round {round_}"


def test_every_stay_against_every_change_of_nights() -> None:
    """Exhaustively over small night ranges: bucket edges are where an index goes wrong."""
    index = WatchIndex()
    stays = [(checkin, nights) for checkin in range(0, 20) for nights in range(1, 4)]
    for seq, (checkin, nights) in enumerate(stays, 1):
        index.add(seq, circle_area(10.0, 10.0, 1.0), checkin, nights)
    changes = [(first, first + length) for first in range(0, 24) for length in range(1, 10)]
    rows = np.arange(len(changes))
    lat, lon = np.full(len(changes), 10.0), np.full(len(changes), 10.0)
    first = np.array([c[0] for c in changes])
    end = np.array([c[1] for c in changes])
    watch, position = index.affected(rows, lat, lon, first, end)
    assert set(zip(watch.tolist(), position.tolist(), strict=True)) == index.brute_force(rows, lat, lon, first, end)


def test_a_floor_prunes_exactly_the_watches_it_prices_out() -> None:
    """Bounds and floors a hair apart on each side, and stays either side of `PRUNED_NIGHTS`:
    quantizing the bounds into levels must neither drop a watch whose bound allows the floor
    nor keep one it does not (the exact check after the levels)."""
    index = WatchIndex()
    per_night = [1e-3, 0.5, 64.99, 65.0, 65.01, 1e6]
    stays = [(10, 1), (10, index_module.PRUNED_NIGHTS), (10, index_module.PRUNED_NIGHTS + 1)]
    seq = 0
    for price in per_night:
        for checkin, nights in stays:
            seq += 1
            index.add(seq, circle_area(10.0, 10.0, 1.0), checkin, nights, price * nights)
    floors = np.array([0.0, *per_night, *np.nextafter(per_night, np.inf), *np.nextafter(per_night, 0), np.inf])
    rows = np.arange(len(floors))
    lat, lon = np.full(len(rows), 10.0), np.full(len(rows), 10.0)
    first, end = np.full(len(rows), 10), np.full(len(rows), 11)
    watch, position = index.affected(rows, lat, lon, first, end, floors)
    found = set(zip(watch.tolist(), position.tolist(), strict=True))
    assert found == index.brute_force(rows, lat, lon, first, end, floors)
    long_stays = {w for w, _ in found if (w - 1) % len(stays) == 2}
    assert long_stays == {3 * (i + 1) for i in range(len(per_night))}  # never pruned
    # Watch 4 allows 0.5 a night: floors 0, 0.001 (either side) and 0.5 and the float under
    # it, not the float over it.
    n = len(per_night)
    assert {p for w, p in found if w == 4} == {0, 1, 1 + n, 1 + 2 * n, 2, 2 + 2 * n}
