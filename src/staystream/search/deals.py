"""Deals: whether a stay's total is well below what similar units, or the unit itself, usually ask.

The definitions are the wire contract's (v1.1, Search); this module computes them over arrays
of many units at once, from totals the engine computed (all in the ranked currency, in minor
units):

- `similar_references`: a unit's comparables are the 10 nearest other units within
  `SIMILAR_RADIUS_KM` of the same kind and max_guests, not in its place, open for the same stay
  (haversine, radius 6371.0088 km; ties by source, then listing_id). The reference is the 5th
  smallest of their 10 totals. The nearest are found with a k-d tree over unit vectors (the
  chord orders points as the great-circle distance does), then re-ranked by haversine.
- `usual_references`: the median (lower middle) of the unit's own open totals for stays of
  the same length checking in within `USUAL_DAYS` days either side, given at least
  `USUAL_MIN_STAYS` of them.
- `choose`: a deal is a total at most 3/4 of a reference; of two, the larger reference (the
  larger `percent_below`) wins, `less_than_similar` on a tie.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
from scipy.spatial import cKDTree

EARTH_RADIUS_KM = 6371.0088
SIMILAR_RADIUS_KM = 5.0
COMPARABLES = 10
REFERENCE_RANK = 5  # the 5th smallest total of the comparables
USUAL_DAYS = 45
USUAL_MIN_STAYS = 10
DEAL_SHARE = (3, 4)  # a deal: total <= 3/4 of the reference
NONE = -1  # no reference
KINDS = ("less_than_similar", "less_than_usual")
SIMILAR, USUAL = 1, 2  # `choose`'s kinds (0: no deal)
KeyRanks = Callable[[np.ndarray], np.ndarray]  # rows -> their order by (source, listing_id)


def haversine_km(lat1: np.ndarray, lon1: np.ndarray, lat2: np.ndarray, lon2: np.ndarray) -> np.ndarray:
    """Great-circle distance, elementwise (mean Earth radius, as the contract says)."""
    phi1, phi2 = np.radians(lat1), np.radians(lat2)
    a = np.sin((phi2 - phi1) / 2) ** 2 + np.cos(phi1) * np.cos(phi2) * np.sin(np.radians(lon2 - lon1) / 2) ** 2
    return np.asarray(2 * EARTH_RADIUS_KM * np.arcsin(np.sqrt(np.clip(a, 0, 1))))


def _unit_vectors(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    phi, lam = np.radians(lat), np.radians(lon)
    return np.column_stack([np.cos(phi) * np.cos(lam), np.cos(phi) * np.sin(lam), np.sin(phi)])


def similar_references(
    unit_lat: np.ndarray, unit_lon: np.ndarray, unit_group: np.ndarray, unit_place: np.ndarray,
    pool_lat: np.ndarray, pool_lon: np.ndarray, pool_group: np.ndarray, pool_place: np.ndarray,
    pool_total: np.ndarray, pool_row: np.ndarray, key_ranks: KeyRanks,
) -> np.ndarray:
    """The `less_than_similar` reference of each unit, `NONE` where it has fewer than 10
    comparables. `*_group` is (kind, max_guests) as one number; the pool holds every unit open
    for the stay near the units (the units themselves included)."""
    reference = np.full(len(unit_lat), NONE, dtype=np.int64)
    # The chord of 5 km, a hair longer: the tree pre-selects, haversine decides.
    chord = 2 * math.sin(SIMILAR_RADIUS_KM / EARTH_RADIUS_KM / 2) * (1 + 1e-9) + 1e-12
    for group in np.unique(unit_group).tolist():
        members = np.flatnonzero(pool_group == group)
        if len(members) < COMPARABLES:
            continue
        units = np.flatnonzero(unit_group == group)
        places, counts = np.unique(pool_place[members], return_counts=True)
        at = np.searchsorted(places, unit_place[units]).clip(0, len(places) - 1)
        own = np.where(places[at] == unit_place[units], counts[at], 0)  # the unit's place's members
        k = min(len(members), COMPARABLES + int(own.max()) + 2)  # + 2: room to see a tie at the 10th
        tree = cKDTree(_unit_vectors(pool_lat[members], pool_lon[members]))
        _, found = tree.query(_unit_vectors(unit_lat[units], unit_lon[units]), k=k, distance_upper_bound=chord)
        found = found.reshape(len(units), k)
        valid = found < len(members)
        near = members[np.where(valid, found, 0)]
        distance = haversine_km(unit_lat[units][:, None], unit_lon[units][:, None], pool_lat[near], pool_lon[near])
        distance = np.where(valid, distance, np.inf)
        last = distance[:, -1]  # the farthest the tree returned: beyond it, it returned nothing
        valid &= (pool_place[near] != unit_place[units][:, None]) & (distance <= SIMILAR_RADIUS_KM)
        distance = np.where(valid, distance, np.inf)
        order = np.argsort(distance, axis=1, kind="stable")
        distance = np.take_along_axis(distance, order, axis=1)
        near = np.take_along_axis(near, order, axis=1)
        enough = np.isfinite(distance[:, COMPARABLES - 1])
        # Where the 10th and the next are equally far, or the tree may have stopped inside a
        # tie, the set depends on the listing keys: those units are decided one by one.
        tenth = distance[:, COMPARABLES - 1]
        after = distance[:, COMPARABLES] if k > COMPARABLES else np.full(len(units), np.inf)
        doubtful = enough & ((after == tenth) | ((k < len(members)) & (last <= tenth * (1 + 1e-12) + 1e-12)))
        totals = pool_total[near[:, :COMPARABLES]]
        fifth = np.partition(totals, REFERENCE_RANK - 1, axis=1)[:, REFERENCE_RANK - 1] if len(units) else totals[:, 0]
        reference[units[enough & ~doubtful]] = fifth[enough & ~doubtful]
        for i in np.flatnonzero(doubtful).tolist():
            reference[units[i]] = _similar_one(
                float(unit_lat[units[i]]), float(unit_lon[units[i]]), int(unit_place[units[i]]), float(tenth[i]),
                tree, members, pool_lat, pool_lon, pool_place, pool_total, pool_row, key_ranks)
    return reference


def _similar_one(
    lat: float, lon: float, place: int, tenth: float, tree: cKDTree, members: np.ndarray,
    pool_lat: np.ndarray, pool_lon: np.ndarray, pool_place: np.ndarray, pool_total: np.ndarray,
    pool_row: np.ndarray, key_ranks: KeyRanks,
) -> int:
    """One unit's reference where ties at the 10th nearest are broken by the listing keys."""
    chord = 2 * math.sin(tenth / EARTH_RADIUS_KM / 2) * (1 + 1e-9) + 1e-12
    found = members[np.asarray(tree.query_ball_point(_unit_vectors(np.array([lat]), np.array([lon]))[0], chord),
                               dtype=np.int64)]
    found = found[pool_place[found] != place]
    distance = haversine_km(np.full(len(found), lat), np.full(len(found), lon), pool_lat[found], pool_lon[found])
    found, distance = found[distance <= tenth], distance[distance <= tenth]
    order = np.lexsort((key_ranks(pool_row[found]), distance))[:COMPARABLES]
    return int(np.sort(pool_total[found[order]])[REFERENCE_RANK - 1])


def usual_references(open_: np.ndarray, total: np.ndarray, unranked: int) -> np.ndarray:
    """Each unit's (a row of `open_`/`total`, one column per check-in) usual total: the lower
    median of its open, comparable totals, `NONE` with fewer than `USUAL_MIN_STAYS`."""
    valid = open_ & (total != unranked)
    count = valid.sum(axis=1)
    ordered = np.sort(np.where(valid, total, np.iinfo(np.int64).max), axis=1)
    median = ordered[np.arange(len(total)), np.maximum(count - 1, 0) // 2] if total.shape[1] else count * 0
    return np.where(count >= USUAL_MIN_STAYS, median, NONE)


def choose(total: np.ndarray, similar: np.ndarray, usual: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(kind: 0 none, `SIMILAR` or `USUAL`; its reference) for each total."""
    share, whole = DEAL_SHARE
    # A reference of 0 has no percent below it: no deal.
    is_similar = (similar > 0) & (whole * total <= share * similar)
    is_usual = (usual > 0) & (whole * total <= share * usual)
    use_usual = is_usual & (~is_similar | (usual > similar))
    kind = np.where(use_usual, USUAL, np.where(is_similar, SIMILAR, 0))
    reference = np.where(use_usual, usual, np.where(is_similar, similar, NONE))
    return kind, reference


def percent_tenths(total: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """(1 - total / reference) x 100 in tenths, rounded half-even, exactly (integers)."""
    reference = np.maximum(reference, 1)
    quotient, remainder = np.divmod((reference - total) * 1000, reference)
    up = (2 * remainder > reference) | ((2 * remainder == reference) & (quotient % 2 == 1))
    return np.asarray(quotient + up)


def percent_text(tenths: int) -> str:
    return f"{tenths // 10}.{tenths % 10}"
