"""Deals: whether a stay's total is well below what similar units, or the unit itself, usually ask.

The definitions are the wire contract's (v1.1, Search); this module computes them over arrays
of many units at once, from totals the engine computed (all in the ranked currency, in minor
units):

- `similar_references`: a unit's comparables are the 10 nearest other units within
  `SIMILAR_RADIUS_KM` of the same kind and max_guests, not in its place, open for the same stay
  (haversine, radius 6371.0088 km; ties by source, then listing_id). The reference is the 5th
  smallest of their 10 totals. The nearest are found with a k-d tree over unit vectors (the
  chord orders points as the great-circle distance does), or by computing every distance for
  a few units, then re-ranked by haversine; only the nearest are checked for being open.
- `usual_references`: the median (lower middle) of the unit's own open totals for stays of
  the same length checking in within `USUAL_DAYS` days either side, given at least
  `USUAL_MIN_STAYS` of them.
- `choose`: a deal is a total at most 3/4 of a reference; of two, the larger reference (the
  larger `percent_below`) wins, `less_than_similar` on a tie.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy.spatial import cKDTree

from staystream.search.neighbours import chord, haversine_km, unit_vectors

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
TotalsOf = Callable[[np.ndarray], np.ndarray]  # pool indices -> totals of the stay, NONE if not open
UNKNOWN = -2  # a total not asked yet
FIRST_NEAREST = 32  # neighbours first read per unit: enough open ones for most (`neighbours.CACHED`)
PAIRS_LIMIT = 200_000  # (unit, pool member) pairs below which every distance is computed, in one pass


class _Tree:
    """Nearest members by a k-d tree over unit vectors (the chord orders points as the
    great-circle distance does): for many units."""

    def __init__(self, lat: np.ndarray, lon: np.ndarray) -> None:
        # Unbalanced, uncompacted: built 4-5 times faster, and a tree lives for one search.
        self.tree = cKDTree(unit_vectors(lat, lon), balanced_tree=False, compact_nodes=False)
        self.size = len(lat)

    def nearest(self, lat: np.ndarray, lon: np.ndarray, k: int) -> np.ndarray:
        """Indices of the `k` nearest within 5 km (a hair more), nearest first; `size` for none."""
        _, found = self.tree.query(unit_vectors(lat, lon), k=k, distance_upper_bound=chord(SIMILAR_RADIUS_KM))
        return np.asarray(found).reshape(len(lat), k)

    def within(self, lat: float, lon: float, km: float) -> np.ndarray:
        point = unit_vectors(np.array([lat]), np.array([lon]))[0]
        return np.asarray(self.tree.query_ball_point(point, chord(km)), dtype=np.int64)


def similar_references(
    unit_lat: np.ndarray, unit_lon: np.ndarray, unit_group: np.ndarray, unit_place: np.ndarray,
    pool_lat: np.ndarray, pool_lon: np.ndarray, pool_group: np.ndarray, pool_place: np.ndarray,
    pool_row: np.ndarray, totals_of: TotalsOf, key_ranks: KeyRanks,
) -> np.ndarray:
    """The `less_than_similar` reference of each unit, `NONE` where it has fewer than 10
    comparables. `*_group` is (kind, max_guests) as one number. The pool holds every unit that
    may be a comparable (near the units, searchable, fitting the guests; the units themselves
    included); `totals_of(pool indices)` gives their totals for the stay, `NONE` where not open.
    It is asked only about the nearest of each unit, `FIRST_NEAREST` at first and twice as many
    for the units that did not find enough open ones: most of a city is never read."""
    reference = np.full(len(unit_lat), NONE, dtype=np.int64)
    known = np.full(len(pool_lat), UNKNOWN, dtype=np.int64)
    by_group = np.argsort(pool_group, kind="stable")
    first = np.searchsorted(pool_group[by_group], unit_group, "left")
    last = np.searchsorted(pool_group[by_group], unit_group, "right")
    if int((last - first).sum()) <= PAIRS_LIMIT:
        _similar_by_pairs(reference, by_group, first, last, unit_lat, unit_lon, unit_place, pool_lat, pool_lon,
                          pool_place, pool_row, known, totals_of, key_ranks)
        return reference
    todo: dict[int, tuple[np.ndarray, _Tree, np.ndarray, int]] = {}  # group: members, tree, units, k
    for group in np.unique(unit_group).tolist():
        members = np.flatnonzero(pool_group == group)
        if len(members) > COMPARABLES:  # the unit itself is one of them
            units = np.flatnonzero(unit_group == group)
            todo[group] = (members, _Tree(pool_lat[members], pool_lon[members]), units,
                           min(len(members), FIRST_NEAREST))
    while todo:
        found = {}
        for group, (_, finder, units, k) in todo.items():
            found[group] = finder.nearest(unit_lat[units], unit_lon[units], k)
        asked = np.concatenate([todo[g][0][f[f < len(todo[g][0])]] for g, f in found.items()])
        asked = np.unique(asked[known[asked] == UNKNOWN])
        if len(asked):
            known[asked] = totals_of(asked)
        for group, nearest in found.items():
            members, finder, units, k = todo.pop(group)
            retry = _decide(reference, units, nearest, members, finder, k, unit_lat, unit_lon, unit_place,
                            pool_lat, pool_lon, pool_place, pool_row, known, totals_of, key_ranks)
            if len(retry):
                todo[group] = (members, finder, units[retry], min(len(members), 2 * k))
    return reference


Nearest = Callable[[np.ndarray, int], tuple[np.ndarray, np.ndarray, np.ndarray]]  # `neighbours.Neighbours.nearest`
PlaceOf = Callable[[np.ndarray], np.ndarray]  # rows -> their places


def similar_references_near(unit_place: np.ndarray, nearest: Nearest, place_of: PlaceOf, totals_of: TotalsOf,
                            key_ranks: KeyRanks) -> np.ndarray:
    """`similar_references` from a kept index: `nearest(units, k)` gives each unit's searchable
    rows of its group within 5 km, nearest first, as far as sure, and whether that is all of
    them (`neighbours.Neighbours.nearest`); `totals_of(rows)` their totals for the stay (`NONE`
    where not open). Units without enough open ones among the sure ask again for twice as many."""
    reference = np.full(len(unit_place), NONE, dtype=np.int64)
    known = np.zeros(0, dtype=np.int64)  # by row: each total asked once (UNKNOWN: not yet)
    todo, k = np.arange(len(unit_place)), FIRST_NEAREST
    while len(todo):
        rows, distance, complete = nearest(todo, k)
        if rows.shape[1] <= COMPARABLES:  # room for an 11th: it shows a tie at the 10th
            pad = COMPARABLES + 1 - rows.shape[1]
            rows = np.pad(rows, ((0, 0), (0, pad)), constant_values=-1)
            distance = np.pad(distance, ((0, 0), (0, pad)), constant_values=np.inf)
        valid = rows >= 0
        rows = np.maximum(rows, 0)
        valid &= place_of(rows) != unit_place[todo][:, None]
        if rows.size and int(rows.max()) >= len(known):
            known = np.concatenate([known, np.full(int(rows.max()) + 1 - len(known), UNKNOWN, dtype=np.int64)])
        wanted = np.zeros(len(known), dtype=bool)  # a mark per row, not a sort of the asked
        wanted[rows[valid]] = True
        new = np.flatnonzero(wanted & (known == UNKNOWN))
        if len(new):
            known[new] = totals_of(new)
        total = known[rows]
        open_ = valid & (total >= 0)
        distance = np.where(open_, distance, np.inf)
        # Nearest first already (`nearest`'s order): the open ones first, in that order, is
        # the stable sort by distance, at the cost of a sort of booleans.
        order = np.argsort(~open_, axis=1, kind="stable")
        distance, rows, total = (np.take_along_axis(a, order, axis=1) for a in (distance, rows, total))
        count = open_.sum(axis=1)
        decided = complete | (count > COMPARABLES)
        enough = decided & (count >= COMPARABLES)
        tenth, after = distance[:, COMPARABLES - 1], distance[:, COMPARABLES]
        sure = enough & (after != tenth)
        fifth = np.partition(total[sure, :COMPARABLES], REFERENCE_RANK - 1, axis=1)[:, REFERENCE_RANK - 1]
        reference[todo[sure]] = fifth
        for i in np.flatnonzero(enough & (after == tenth)).tolist():
            # Equally far at the 10th (every row that far is sure): the listing keys decide.
            tied = distance[i] <= tenth[i]
            picked = np.lexsort((key_ranks(rows[i][tied]), distance[i][tied]))[:COMPARABLES]
            reference[todo[i]] = int(np.sort(total[i][tied][picked])[REFERENCE_RANK - 1])
        todo, k = todo[~decided], 2 * k
    return reference


def _similar_by_pairs(
    reference: np.ndarray, by_group: np.ndarray, first: np.ndarray, last: np.ndarray, unit_lat: np.ndarray,
    unit_lon: np.ndarray, unit_place: np.ndarray, pool_lat: np.ndarray, pool_lon: np.ndarray,
    pool_place: np.ndarray, pool_row: np.ndarray, known: np.ndarray, totals_of: TotalsOf, key_ranks: KeyRanks,
) -> None:
    """For a few units (a page's): every (unit, member of its group) distance at once, sorted;
    the totals of the nearest of each (more where too few are open), its 10 nearest open."""
    counts = last - first
    unit = np.repeat(np.arange(len(first)), counts)
    member = by_group[first[unit] + np.arange(len(unit)) - np.repeat(np.cumsum(counts) - counts, counts)]
    distance = haversine_km(unit_lat[unit], unit_lon[unit], pool_lat[member], pool_lon[member])
    near = (distance <= SIMILAR_RADIUS_KM) & (pool_place[member] != unit_place[unit])
    order = np.lexsort((distance[near], unit[near]))
    unit, member, distance = unit[near][order], member[near][order], distance[near][order]
    # Totals of the nearest only, more for the units that did not find enough open ones.
    within = np.bincount(unit, minlength=len(first))
    rank = np.arange(len(unit)) - np.repeat(np.cumsum(within) - within, within)
    wanted, pending = FIRST_NEAREST, np.ones(len(first), dtype=bool)
    while True:
        asked = member[(rank < wanted) & pending[unit]]
        asked = np.unique(asked[known[asked] == UNKNOWN])
        if len(asked):
            known[asked] = totals_of(asked)
        found = np.bincount(unit[(rank < wanted) & (known[member] >= 0)], minlength=len(first))
        pending &= (found <= COMPARABLES) & (within > wanted)  # an 11th shows a tie at the 10th
        if not pending.any():
            break
        wanted *= 2
    all_unit, all_member, all_distance = unit, member, distance
    open_ = known[member] >= 0  # not asked: beyond the 11th open one, unless tied (below)
    unit, member, distance = unit[open_], member[open_], distance[open_]
    count = np.bincount(unit, minlength=len(first))
    start = np.cumsum(count) - count
    enough = np.flatnonzero(count >= COMPARABLES)
    tenth = distance[start[enough] + COMPARABLES - 1]
    after = np.where(count[enough] > COMPARABLES,
                     distance[np.minimum(start[enough] + COMPARABLES, len(distance) - 1)], np.inf)
    sure = enough[after != tenth]
    # The 10 nearest of each sure unit, their totals sorted: the 5th is the reference.
    chosen = (start[sure][:, None] + np.arange(COMPARABLES)[None, :])
    reference[sure] = np.sort(known[member[chosen]], axis=1)[:, REFERENCE_RANK - 1]
    for i, bound in zip(enough[after == tenth].tolist(), tenth[after == tenth].tolist(), strict=True):
        # Equally far at the 10th: the listing keys decide which are the 10.
        mine = slice(start[i], start[i] + count[i])
        tied = distance[mine] <= bound
        candidates, far = member[mine][tied], distance[mine][tied]
        unasked = all_member[(all_unit == i) & (all_distance <= bound) & (known[all_member] == UNKNOWN)]
        if len(unasked):  # tied with the 10th beyond the nearest read: read them too
            known[unasked] = totals_of(unasked)
            opened = unasked[known[unasked] >= 0]
            candidates = np.concatenate([candidates, opened])
            here = np.full(len(opened), unit_lat[i]), np.full(len(opened), unit_lon[i])
            far = np.concatenate([far, haversine_km(*here, pool_lat[opened], pool_lon[opened])])
        picked = candidates[np.lexsort((key_ranks(pool_row[candidates]), far))[:COMPARABLES]]
        reference[i] = int(np.sort(known[picked])[REFERENCE_RANK - 1])


def _decide(
    reference: np.ndarray, units: np.ndarray, nearest: np.ndarray, members: np.ndarray, finder: _Tree, k: int,
    unit_lat: np.ndarray, unit_lon: np.ndarray, unit_place: np.ndarray, pool_lat: np.ndarray, pool_lon: np.ndarray,
    pool_place: np.ndarray, pool_row: np.ndarray, known: np.ndarray, totals_of: TotalsOf, key_ranks: KeyRanks,
) -> np.ndarray:
    """Set the references of the units whose `k` nearest decide them; return (indices into
    `units`) those that need more."""
    valid = nearest < len(members)
    near = members[np.where(valid, nearest, 0)]
    lat, lon = unit_lat[units][:, None], unit_lon[units][:, None]
    distance = np.where(valid, haversine_km(lat, lon, pool_lat[near], pool_lon[near]), np.inf)
    # The tree returned every unit within 5 km (fewer than k) or all it has: nothing beyond.
    complete = ~np.isfinite(distance[:, -1]) | (k == len(members))
    last = distance[:, -1]
    valid &= (pool_place[near] != unit_place[units][:, None]) & (distance <= SIMILAR_RADIUS_KM) & (known[near] >= 0)
    counted = valid.sum(axis=1)
    decided = complete | (counted > COMPARABLES)  # an 11th is seen: a tie at the 10th shows
    distance = np.where(valid, distance, np.inf)
    order = np.argsort(distance, axis=1, kind="stable")
    distance = np.take_along_axis(distance, order, axis=1)
    near = np.take_along_axis(near, order, axis=1)
    enough = decided & (counted >= COMPARABLES)
    # Where the 10th and the next are equally far, or the tree may have stopped inside a tie,
    # the set depends on the listing keys: those units are decided one by one.
    tenth = distance[:, min(COMPARABLES, k) - 1]
    after = distance[:, COMPARABLES] if k > COMPARABLES else np.full(len(units), np.inf)
    doubtful = enough & ((after == tenth) | (~complete & (last <= tenth * (1 + 1e-12) + 1e-12)))
    if len(units) and k >= COMPARABLES:
        totals = known[near[:, :COMPARABLES]]
        fifth = np.partition(totals, REFERENCE_RANK - 1, axis=1)[:, REFERENCE_RANK - 1]
        sure = enough & ~doubtful
        reference[units[sure]] = fifth[sure]
    for i in np.flatnonzero(doubtful).tolist():
        reference[units[i]] = _similar_one(
            float(unit_lat[units[i]]), float(unit_lon[units[i]]), int(unit_place[units[i]]), float(tenth[i]),
            finder, members, pool_lat, pool_lon, pool_place, pool_row, known, totals_of, key_ranks)
    return np.flatnonzero(~decided)


def _similar_one(
    lat: float, lon: float, place: int, tenth: float, finder: _Tree, members: np.ndarray,
    pool_lat: np.ndarray, pool_lon: np.ndarray, pool_place: np.ndarray, pool_row: np.ndarray,
    known: np.ndarray, totals_of: TotalsOf, key_ranks: KeyRanks,
) -> int:
    """One unit's reference where ties at the 10th nearest are broken by the listing keys."""
    found = members[finder.within(lat, lon, tenth)]
    found = found[pool_place[found] != place]
    asked = found[known[found] == UNKNOWN]
    if len(asked):
        known[asked] = totals_of(asked)
    found = found[known[found] >= 0]
    distance = haversine_km(np.full(len(found), lat), np.full(len(found), lon), pool_lat[found], pool_lon[found])
    found, distance = found[distance <= tenth], distance[distance <= tenth]
    order = np.lexsort((key_ranks(pool_row[found]), distance))[:COMPARABLES]
    return int(np.sort(known[found[order]])[REFERENCE_RANK - 1])


def usual_references(open_: np.ndarray, total: np.ndarray, unranked: int) -> np.ndarray:
    """Each unit's (a row of `open_`/`total`, one column per check-in) usual total: the lower
    median of its open, comparable totals, `NONE` with fewer than `USUAL_MIN_STAYS`."""
    valid = open_ & (total != unranked)
    count = valid.sum(axis=1)
    reference = np.full(len(total), NONE, dtype=np.int64)
    columns = total.shape[1]
    # Every stay open (most units): only the middle needs placing, a partial sort.
    full = np.flatnonzero(count == columns) if columns >= USUAL_MIN_STAYS else np.zeros(0, dtype=np.int64)
    if len(full):
        reference[full] = np.partition(total[full], (columns - 1) // 2, axis=1)[:, (columns - 1) // 2]
    some = np.flatnonzero((count >= USUAL_MIN_STAYS) & (count < columns))
    if len(some):
        ordered = np.sort(np.where(valid[some], total[some], np.iinfo(np.int64).max), axis=1)
        reference[some] = ordered[np.arange(len(some)), (count[some] - 1) // 2]
    return reference


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


def percent_tenths_of(total: int, reference: int) -> int:
    """`percent_tenths` of one total, in Python integers (a result shown)."""
    quotient, remainder = divmod((reference - total) * 1000, reference)
    return quotient + (2 * remainder > reference or (2 * remainder == reference and quotient % 2 == 1))


def percent_text(tenths: int) -> str:
    return f"{tenths // 10}.{tenths % 10}"
