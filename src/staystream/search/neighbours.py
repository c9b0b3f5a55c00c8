"""The nearest listings of a kind and capacity: a worker's k-d tree over every listing row, kept between searches.

`less_than_similar` needs, for each unit it judges, its nearest units of the same kind and
max_guests within 5 km. Building that structure per search (a box of the city's rows, a tree
per group) cost more than the search itself in a dense city (docs/performance.md); the
coordinates, kinds and capacities it depends on change rarely, so each worker keeps one tree
over every row, as of a build, rebuilt when enough rows changed (like `engine.PlaceIndex`).

The tree is 4-D: the unit vector of the position (the chord orders points as the great-circle
distance does) and the group (kind, max_guests) as a 4th coordinate, `GROUP_GAP` apart: a query
within 5 km sees its own group only. What may have changed since the build is read from the
writer's `moved` log (`Counter.MOVED`: every row whose coordinates, kind or max_guests it set,
first descriptions included): those rows are left out of the tree's answers and checked
directly at their current values. Searchable and place are read at query time.
"""

from __future__ import annotations

import math
import threading
import weakref

import numpy as np
from scipy.spatial import cKDTree

from staystream.memory.shm import Counter, SharedArrays

EARTH_RADIUS_KM = 6371.0088
RADIUS_KM = 5.0  # the contract's comparables are within 5 km
GROUP_GAP = 4.0  # > the largest chord (2): groups never meet within a query's bound
REBUILD_CHANGES = 2_048  # rows changed since the build past which (and past 1/64) it is rebuilt
CACHED = 32  # answers kept per row: `deals.FIRST_NEAREST`, what most units need
IN_BACKGROUND_ROWS = 50_000  # from this many rows the tree is built in a thread; below, inline
_trees: weakref.WeakKeyDictionary[SharedArrays, Neighbours] = weakref.WeakKeyDictionary()
_building: weakref.WeakSet[SharedArrays] = weakref.WeakSet()


def haversine_km(lat1: np.ndarray, lon1: np.ndarray, lat2: np.ndarray, lon2: np.ndarray) -> np.ndarray:
    """Great-circle distance, elementwise (mean Earth radius, as the contract says)."""
    phi1, phi2 = np.radians(lat1), np.radians(lat2)
    a = np.sin((phi2 - phi1) / 2) ** 2 + np.cos(phi1) * np.cos(phi2) * np.sin(np.radians(lon2 - lon1) / 2) ** 2
    return np.asarray(2 * EARTH_RADIUS_KM * np.arcsin(np.sqrt(np.clip(a, 0, 1))))


def unit_vectors(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    phi, lam = np.radians(lat), np.radians(lon)
    return np.column_stack([np.cos(phi) * np.cos(lam), np.cos(phi) * np.sin(lam), np.sin(phi)])


def chord(km: float) -> float:
    """The chord of an arc of `km`, a hair longer: the tree pre-selects, haversine decides."""
    return 2 * math.sin(km / EARTH_RADIUS_KM / 2) * (1 + 1e-9) + 1e-12


def group_of(shared: SharedArrays, rows: np.ndarray) -> np.ndarray:
    """(kind, max_guests) as one number: comparables share it."""
    return np.asarray(shared["kind"][rows].astype(np.int64) << 16 | shared["max_guests"][rows].astype(np.int64))


class Neighbours:
    """Every listing row of a build in one k-d tree; `nearest` answers for the rows as they are now."""

    def __init__(self, shared: SharedArrays, rows_in_use: int) -> None:
        # The log position is read before the columns: a change during the build is re-read.
        self.moves = int(shared.counters[Counter.MOVED])
        self.rows = rows_in_use
        self.lat = np.array(shared["lat"][:rows_in_use])
        self.lon = np.array(shared["lon"][:rows_in_use])
        self.groups, rank = np.unique(group_of(shared, np.arange(rows_in_use)), return_inverse=True)
        points = np.column_stack([unit_vectors(self.lat, self.lon), rank * GROUP_GAP])
        self.tree = cKDTree(points)
        # Each row's first `CACHED` answers and their haversine km, kept once asked (sort=deal
        # asks thousands a search: the distances were half of `nearest`); zeros are allocated
        # lazily by the system: memory only for the rows asked (384 bytes a row).
        self.cached = np.zeros((rows_in_use, CACHED), dtype=np.int32)
        self.cached_km = np.zeros((rows_in_use, CACHED), dtype=np.float64)
        self.asked = np.zeros(rows_in_use, dtype=bool)

    def changed(self, shared: SharedArrays) -> np.ndarray:
        """Rows whose coordinates, kind or max_guests were set since the build (sorted, unique)."""
        moves = int(shared.counters[Counter.MOVED])
        if moves == self.moves:
            return np.zeros(0, dtype=np.int64)
        moved = shared["moved"]
        if moves > len(moved):
            shared.refresh()
            moved = shared["moved"]
        return np.unique(moved[self.moves : moves].astype(np.int64))

    def nearest(self, shared: SharedArrays, units: np.ndarray, lat: np.ndarray, lon: np.ndarray, group: np.ndarray,
                k: int, changed: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """For each unit (rows at `lat`, `lon`, of `group`): the searchable rows of its group
        within 5 km (itself too), nearest first, as far as they are sure (rows, -1 padded; their
        haversine km, inf padded), and whether that is every such row (else only the rows
        nearer than the tree's `k`-th are sure: ask again with a larger `k`). `changed`:
        `self.changed(shared)`, read once a search."""
        k = max(1, min(k, self.tree.n))
        if k == min(CACHED, self.tree.n):
            found, distance = self._cached(units, lat, lon, group, changed)
        else:
            found = self._query(lat, lon, group, k)
            distance = self._km(lat, lon, found)
        valid = found < self.tree.n
        rows = np.where(valid, found, 0)
        # The k-th answer bounds what the tree did not say; a full answer is sure only below it.
        # Chords of unit vectors err by ~1e-12 km: a margin of 1e-9 km keeps the tree's order sure.
        horizon = np.where(valid[:, -1], distance[:, -1] * (1 - 1e-12) - 1e-9, np.inf)
        complete = ~valid[:, -1] | (k >= self.tree.n)
        if len(changed):
            valid &= ~np.isin(rows, changed)
        rows = np.where(valid, rows, -1)
        distance = np.where(valid, distance, np.inf)
        if len(changed):  # the changed rows as they are now, checked one by one
            more_rows, more_distance = self._changed_near(shared, lat, lon, group, changed)
            rows = np.concatenate([rows, more_rows], axis=1)
            distance = np.concatenate([distance, more_distance], axis=1)
        searchable = shared["searchable"][np.maximum(rows, 0)] == 1
        sure = (rows >= 0) & searchable & (distance <= RADIUS_KM) & (distance < horizon[:, None])
        distance = np.where(sure, distance, np.inf)
        order = np.argsort(distance, axis=1, kind="stable")
        distance = np.take_along_axis(distance, order, axis=1)
        rows = np.where(np.isfinite(distance), np.take_along_axis(rows, order, axis=1), -1)
        return rows, distance, complete

    def _query(self, lat: np.ndarray, lon: np.ndarray, group: np.ndarray, k: int) -> np.ndarray:
        """The tree's `k` nearest of each point's group within 5 km (`tree.n`: none)."""
        position = np.searchsorted(self.groups, group).clip(0, max(len(self.groups) - 1, 0))
        known = self.groups[position] == group if len(self.groups) else np.zeros(len(group), dtype=bool)
        fourth = np.where(known, position * GROUP_GAP, -GROUP_GAP)
        points = np.column_stack([unit_vectors(lat, lon), fourth])
        _, found = self.tree.query(points, k=k, distance_upper_bound=chord(RADIUS_KM))
        return np.asarray(found).reshape(len(lat), k)

    def _km(self, lat: np.ndarray, lon: np.ndarray, found: np.ndarray) -> np.ndarray:
        """Haversine km from each point to its answers (`tree.n`: none, inf)."""
        valid = found < self.tree.n
        rows = np.where(valid, found, 0)
        return np.where(valid, haversine_km(lat[:, None], lon[:, None], self.lat[rows], self.lon[rows]), np.inf)

    def _cached(self, units: np.ndarray, lat: np.ndarray, lon: np.ndarray, group: np.ndarray,
                changed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """`_query` with k = `CACHED` and the answers' km, kept per row: a unit that changed
        since the build is asked anew (its kept answer is for where and what it was; one that
        did not is where it was at the build, so its kept km are the ones computed now)."""
        k = min(CACHED, self.tree.n)
        keep = units < self.rows
        if len(changed):
            keep &= ~np.isin(units, changed)
        found = np.empty((len(units), k), dtype=np.int64)
        distance = np.empty((len(units), k))
        kept = np.flatnonzero(keep)
        new = kept[~self.asked[units[kept]]]
        if len(new):
            answers = self._query(lat[new], lon[new], group[new], k)
            self.cached[units[new], :k] = answers
            self.cached_km[units[new], :k] = self._km(lat[new], lon[new], answers)
            self.asked[units[new]] = True
        found[kept] = self.cached[units[kept], :k]
        distance[kept] = self.cached_km[units[kept], :k]
        rest = np.flatnonzero(~keep)
        if len(rest):
            found[rest] = self._query(lat[rest], lon[rest], group[rest], k)
            distance[rest] = self._km(lat[rest], lon[rest], found[rest])
        return found, distance

    @staticmethod
    def _changed_near(shared: SharedArrays, lat: np.ndarray, lon: np.ndarray, group: np.ndarray,
                      changed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The changed rows of each point's group, as rows (-1 padded) and km (inf padded)."""
        changed = changed[changed < min(len(shared["lat"]), len(shared["kind"]), len(shared["max_guests"]))]
        here = np.flatnonzero(group_of(shared, changed)[None, :] == group[:, None])
        point, extra = np.divmod(here, len(changed)) if len(changed) else (here, here)
        extra = changed[extra]
        far = haversine_km(lat[point], lon[point], shared["lat"][extra], shared["lon"][extra])
        width = int(np.bincount(point, minlength=len(lat)).max()) if len(point) else 0
        rows = np.full((len(lat), width), -1, dtype=np.int64)
        distance = np.full((len(lat), width), np.inf)
        slot = np.arange(len(point)) - np.searchsorted(point, point)
        rows[point, slot], distance[point, slot] = extra, far
        return rows, distance


def neighbours(shared: SharedArrays, rows_in_use: int) -> Neighbours | None:
    """This process's tree, or None while the first one is being built (in a thread, past
    `IN_BACKGROUND_ROWS` rows); a tree too many rows changed since starts a rebuild and serves
    meanwhile."""
    if rows_in_use == 0:
        return None
    tree = _trees.get(shared)
    stale = tree is None or (
        int(shared.counters[Counter.MOVED]) - tree.moves > max(REBUILD_CHANGES, tree.rows // 64))
    if stale and shared not in _building:
        _building.add(shared)
        if rows_in_use >= IN_BACKGROUND_ROWS:
            threading.Thread(target=_build, args=(shared, rows_in_use), name="neighbours", daemon=True).start()
        else:
            _build(shared, rows_in_use)
        tree = _trees.get(shared)
    return tree


def _build(shared: SharedArrays, rows_in_use: int) -> None:
    try:
        _trees[shared] = Neighbours(shared, rows_in_use)
    finally:
        _building.discard(shared)
