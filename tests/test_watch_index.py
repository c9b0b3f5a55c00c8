"""The watch index finds exactly the (watch, changed row) pairs a brute-force check of every watch
against every row finds: areas of every size and shape (antimeridian, poles, country-wide), stays,
watches added in bursts (both levels, merges) and removed."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from staystream.search.engine import Area, circle_area
from staystream.watches import index as index_module
from staystream.watches.index import WatchIndex

LAT = st.floats(-89.9, 89.9)
LON = st.floats(-180, 180)


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
            index.add(seq, area, data.draw(st.integers(0, 60)), data.draw(st.integers(1, 12)))
        for seq in data.draw(st.lists(st.integers(1, max(1, len(watch_areas))), max_size=3)):
            if seq <= len(watch_areas):
                index.remove(seq)
        points = data.draw(st.lists(near(watch_areas), min_size=1, max_size=30))
        rows = np.arange(len(points))
        lat = np.array([p[0] for p in points])
        lon = np.array([p[1] for p in points])
        every = np.iinfo(np.int32).min  # a description or delist: every night
        first = np.array([data.draw(st.one_of(st.just(every), st.integers(0, 60))) for _ in points])
        end = np.array([f + data.draw(st.integers(1, 20)) if f != every else np.iinfo(np.int32).max for f in first])
        watch, position = index.affected(rows, lat, lon, first, end)
        found = set(zip(watch.tolist(), position.tolist(), strict=True))
        assert found == index.brute_force(rows, lat, lon, first, end), f"round {round_}"


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
