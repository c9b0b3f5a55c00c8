"""The place of every listing, kept up to date event by event.

Places are a pure function of the current listings and links (a restart that replays them,
or the events in any order, give the same places), computed as follows:

1. Edges. *property*: listings of one source with one `property_id`. *link*: a link with
   `same: true` (the latest per pair wins; see `Link`). *candidate*: listings of different
   sources within `matching.RADIUS_M` whose score reaches `matching.THRESHOLD` and that no link
   names as a pair (a link, either way, beats automatic matching).
2. Joining, under the "not same" links: property edges always join (the contract makes them
   one place, so a "not same" between units of one property cannot be honoured); then link
   edges, newest first; then candidates, best score first (ties: the nearer, then by the
   keys). A link or candidate is refused when it would put two listings that a "not same" link
   separates into one place, so a "not same" holds even against a chain of edges that would
   join them.
3. One-to-one: per pair of sources a listing takes at most one candidate: a candidate is
   skipped when either listing already took one of the other's source (a refused candidate
   takes nothing). Those taken are the *auto* edges.
4. Places are the joined groups. `place_id` is "p" and a hash of the smallest member key.
   Each member says how it joined: the smallest key is "self" and every other member names
   the edge that first reached it from there ("property", "link" or "auto", with the auto
   edge's score; 1.0 for the others). The place's name, lat and lon are those of its
   representative: the smallest key among members with an address (a provider that knows
   the street address places the point precisely), else the smallest key.

Incrementally, an event re-decides only the connected groups of listings linked by property,
link or candidate edges that contain the listings it touched: nothing outside such a group can
change its places, so the incremental result equals the recomputed one.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
from rapidfuzz import fuzz, process

from staystream.places import matching
from staystream.places.grid import METRES_PER_DEGREE as _METRES_PER_DEGREE
from staystream.places.grid import Grid
from staystream.places.table import ListingTable
from staystream.places.types import (
    Delisted,
    Edge,
    Link,
    ListingRow,
    MatchChanges,
    PlaceEvent,
    PlaceListing,
    SavedMatches,
    place_id_for,
)

__all__ = ["Place", "PlaceGraph", "place_id_for"]  # place_id_for is `types`', named here too

Matched = str  # "self" | "property" | "link" | "auto"
# Dirty listings x listings near them that one batch of `_rescore` compares at most (booleans
# and floats of that many pairs; a batch of one cell may exceed it)
RESCORE_MATRIX = 1 << 18


@dataclass(frozen=True, slots=True)
class Place:
    place_id: str
    representative: PlaceListing
    members: tuple[tuple[PlaceListing, Matched, float], ...]  # sorted by key

    def as_json(self) -> dict[str, object]:
        """The body of `GET /v1/places/{place_id}`."""
        return {
            "place_id": self.place_id,
            "name": self.representative.name,
            "lat": self.representative.lat,
            "lon": self.representative.lon,
            "listings": [
                {"source": m.source, "listing_id": m.listing_id, "matched": how, "score": score}
                for m, how, score in self.members
            ],
        }


def _name_bloom(core_name: str) -> int:
    """64 bits, one per word hashed: two names sharing a word share a bit."""
    bits = 0
    for word in core_name.split():
        bits |= 1 << (zlib.crc32(word.encode()) & 63)
    return bits


class PlaceGraph:
    """Listings, links and the places they make; `apply` takes events, the rest reads.

    Most listings are alone in their place and have no edge: they cost their columns in the
    `ListingTable` and a grid entry, nothing more (their `Place` is made when asked for). Only
    listings with an edge have candidates, and only places of two or more are kept.
    `index` is the writer's key -> row map, shared so that slots are rows (see `table`).
    """

    def __init__(self, automatic: bool = True, index: dict[str, int] | None = None) -> None:
        self._automatic = automatic  # False: property and link edges only (no candidates scored)
        # listings whose candidates are still to be found (`apply(match=False)`), by grid cell
        self._pending: dict[tuple[int, int], set[str]] = {}
        self._listings = ListingTable(index)
        self._text_scores = matching.TextScores()
        self._cell_columns: dict[tuple[int, int], _Columns] = {}  # built when needed
        self._grid: Grid[int] = Grid(matching.RADIUS_M)  # slots
        self._properties: dict[tuple[str, str], set[str]] = {}
        self._links: dict[tuple[str, str], Link] = {}
        self._link_partners: dict[str, set[str]] = {}
        # other: (score, metres), only for listings with a candidate
        self._candidates: dict[str, dict[str, tuple[float, float]]] = {}
        self._place_of: dict[str, str] = {}  # listings in a place of two or more
        self._places: dict[str, Place] = {}  # the places of two or more
        self._unsaved: set[str] = set()  # keys whose fingerprint or candidates changed since `unsaved`

    # -- reading

    def place_id_of(self, key: str) -> str | None:
        """The place of a listing by its key (`types.listing_key`), None if not listed."""
        place_id = self._place_of.get(key)
        if place_id is None and key in self._listings:
            return place_id_for(key)
        return place_id

    def place(self, place_id: str) -> Place | None:
        place = self._places.get(place_id)
        if place is None:  # a listing alone in its place, if one is
            key = self._listings.named(place_id)
            return None if key is None else self.alone(key)
        return place

    def alone(self, key: str) -> Place | None:
        """The place of a listing that is alone in it, None if it is not (or not listed)."""
        listing = self._listings.get(key)
        if listing is None or key in self._place_of:
            return None
        return Place(place_id_for(key), listing, ((listing, "self", 1.0),))

    def places(self) -> dict[str, Place]:
        """Every place by id (a copy; the listings alone made for it)."""
        found = dict(self._places)
        for key in self._listings:
            if key not in self._place_of:
                place = self.alone(key)
                assert place is not None
                found[place.place_id] = place
        return found

    def __len__(self) -> int:
        return len(self._listings)

    @property
    def automatic(self) -> bool:
        return self._automatic

    # -- writing

    def apply(self, events: Iterable[PlaceEvent], match: bool = True) -> dict[str, str | None]:
        """Apply events in order, then re-decide the places they touched, once.

        Returns the new `place_id` of every listing key whose place changed (None: delisted).
        Many events at once (an import) cost far less than one call each. With `match=False`
        the listings' candidates are left for `match_pending` (property and link edges apply
        now): places are then those of a graph without these listings' candidates until then.
        """
        touched: set[str] = set()
        dirty: set[str] = set()
        before: dict[str, str | None] = {}  # the place of each listing an event is about, before it
        for event in events:
            if isinstance(event, PlaceListing):
                if self._listings.same(event):
                    continue  # sent again: nothing to re-decide
                before.setdefault(event.key, self.place_id_of(event.key))
                touched |= self._remove(event.key)
                self._add(event)
                touched |= self._neighbours(event.key)
                touched.add(event.key)
                dirty.add(event.key)
            elif isinstance(event, Delisted):
                before.setdefault(event.key, self.place_id_of(event.key))
                touched |= self._remove(event.key)
                touched.add(event.key)
                dirty.discard(event.key)
            else:
                touched |= self._set_link(event)
        if not self._automatic:
            return self._redecide(touched, before)
        for key in dirty:
            self._unpend(key)
            if not match:
                self._pending.setdefault(self._grid.cell(*self._listings.point(key)), set()).add(key)
        if not match:
            return self._redecide(touched, before)
        return self._redecide(touched | self._rescore(dirty), before)

    def restore(self, listings: Iterable[ListingRow], links: Iterable[Link],
                saved: SavedMatches) -> dict[str, str | None]:
        """Start an empty graph from the current listings and links and what a cache saved of
        an earlier matching: listings whose fingerprint is the saved one keep their saved
        candidates among themselves (a pure function of the two listings); the others are left
        pending (`match_pending`), to be scored against everyone. Returns the place of every
        listing in a place of two or more (the others are alone in theirs); only the listings
        with an edge are decided, so a million listings take seconds, not a minute."""
        assert not len(self._listings), "restore starts an empty graph"
        for link in links:
            self._set_link(link)
        self._listings.extend(listings)
        keys = list(self._listings)
        slots = self._listings.slots(keys)
        self._grid.add_many([self._listings.slot_object(key) for key in keys], self._listings.lat[slots],
                            self._listings.lon[slots])
        for key in keys:
            if (prop := self._listings.property_of(key)) is not None:
                self._properties.setdefault(prop, set()).add(key)
        listed, fingerprints = self._listings.fingerprints()
        known = saved.fingerprints
        clean = {key for key, fingerprint in zip(listed, fingerprints.tolist(), strict=True)
                 if known.get(key) == fingerprint}
        self._unsaved = set(saved.fingerprints) - clean  # gone, or changed since: their rows go
        if self._automatic:
            for a, b, score, metres in saved.edges:
                if a in clean and b in clean:
                    self._candidates.setdefault(a, {})[b] = self._candidates.setdefault(b, {})[a] = (score, metres)
            for key in keys:
                if key not in clean:
                    self._pending.setdefault(self._grid.cell(*self._listings.point(key)), set()).add(key)
                    self._unsaved.add(key)
        linked = {key for key in self._link_partners if key in self._listings}
        grouped = {key for keys in self._properties.values() if len(keys) > 1 for key in keys}
        return self._redecide(linked | grouped | set(self._candidates))

    @property
    def has_unsaved(self) -> bool:
        return bool(self._unsaved)

    def unsaved(self) -> MatchChanges:
        """What changed since the last call (the first: since `restore`), for `places.cache`."""
        keys, self._unsaved = self._unsaved, set()
        dropped: list[str] = []
        edges: list[Edge] = []
        present: list[str] = []
        for key in sorted(keys):
            if key not in self._listings or key in self._pending.get(self._grid.cell(*self._listings.point(key)), ()):
                dropped.append(key)
                continue
            present.append(key)
            edges += [(key, other, score, metres) for other, (score, metres) in self._candidates.get(key, {}).items()]
        _, fingerprints = self._listings.fingerprints(self._listings.slots(present))
        matched = list(zip(present, fingerprints.tolist(), strict=True))
        return MatchChanges(matched, dropped, edges)

    @property
    def pending(self) -> int:
        """Listings applied with `match=False` whose candidates are still to be found."""
        return sum(len(keys) for keys in self._pending.values())

    def match_pending(self, limit: int) -> dict[str, str | None]:
        """Find the candidates of up to `limit` pending listings, cell by cell (listings of a
        cell share the neighbours scanned; any order ends with the same places), and re-decide
        the places that gain an edge; returns the place changes as `apply` does."""
        chosen: set[str] = set()
        while self._pending and len(chosen) < limit:
            cell = next(iter(self._pending))
            keys = self._pending[cell]
            while keys and len(chosen) < limit:
                chosen.add(keys.pop())
            if not keys:
                del self._pending[cell]
        return self._redecide(self._rescore(chosen))

    def _unpend(self, key: str) -> None:
        if key not in self._listings:
            return
        cell = self._grid.cell(*self._listings.point(key))
        keys = self._pending.get(cell)
        if keys is not None:
            keys.discard(key)
            if not keys:
                del self._pending[cell]

    def _add(self, listing: PlaceListing) -> None:
        key = listing.key
        self._listings.add(listing)
        self._grid.add(self._listings.slot_object(key), listing.lat, listing.lon)
        self._cell_columns.pop(self._grid.cell(listing.lat, listing.lon), None)
        self._unsaved.add(key)
        if listing.property_id is not None:
            self._properties.setdefault((listing.source, listing.property_id), set()).add(key)

    def _remove(self, key: str) -> set[str]:
        """Forget a listing; returns its former neighbours (whose places may change)."""
        if key not in self._listings:
            return set()
        self._unpend(key)
        self._unsaved.add(key)
        former = self._neighbours(key)
        lat, lon = self._listings.point(key)
        self._grid.remove(self._listings.slot_object(key), lat, lon)
        self._cell_columns.pop(self._grid.cell(lat, lon), None)
        if (prop := self._listings.property_of(key)) is not None:
            group = self._properties[prop]
            group.discard(key)
            if not group:
                del self._properties[prop]
        for other in self._candidates.pop(key, {}):
            theirs = self._candidates[other]
            del theirs[key]
            if not theirs:
                del self._candidates[other]
        self._listings.remove(key)
        return former

    def _neighbours(self, key: str) -> set[str]:
        """Listings joined to `key` by any property, link or candidate edge (present or not)."""
        found = set(self._candidates.get(key, ()))
        if (prop := self._listings.property_of(key)) is not None:
            found |= self._properties[prop]
        found |= self._link_partners.get(key, set())
        found.discard(key)
        return found

    def _joinable(self, key: str) -> set[str]:
        """Present listings that an edge of any kind could join to `key`: not "not same" links."""
        found = self._neighbours(key)
        for other in self._link_partners.get(key, ()):
            apart = not self._links[(key, other) if key < other else (other, key)].same
            if apart and other not in self._candidates.get(key, ()) and not self._same_property(key, other):
                found.discard(other)
        return {other for other in found if other in self._listings}

    def _same_property(self, a: str, b: str) -> bool:
        prop = self._listings.property_of(a)
        return prop is not None and prop == self._listings.property_of(b)

    def _set_link(self, link: Link) -> set[str]:
        pair = link.pair
        current = self._links.get(pair)
        if current is not None and current.precedence >= link.precedence:
            return set()
        self._links[pair] = link
        a, b = pair
        self._link_partners.setdefault(a, set()).add(b)
        self._link_partners.setdefault(b, set()).add(a)
        return {a, b}

    # -- candidates

    def _rescore(self, dirty: set[str]) -> set[str]:
        """Recompute the candidate edges of the `dirty` listings, in bulk over batches of cells.

        Returns the listings that gained an edge. Pairs within reach (distance, other source)
        are filtered in bulk before the full score: their names must share a word or have a
        token_sort_ratio of at least `matching.MIN_NAME_SET` (without a shared word, that is
        their token_set_ratio), then a token_set_ratio of at least it, which the score needs.
        A batch is the dirty listings of some cells against every listing of the cells near
        them, as large as `RESCORE_MATRIX` allows: a few listings of live traffic, each in its
        own cell, are one batch (each numpy and rapidfuzz call has a fixed cost well above a
        pair's); an import's slices, a cell or a few. All batches' pairs are scored at once.
        """
        gained: set[str] = set()
        self._unsaved |= dirty
        if self._listings.sources < 2:  # one marketplace: nothing to pair
            return gained
        by_cell: dict[tuple[int, int], list[str]] = {}
        for key in sorted(dirty):
            if key in self._listings:
                by_cell.setdefault(self._grid.cell(*self._listings.point(key)), []).append(key)
        if not by_cell:
            return gained
        # A pair of two dirty listings is scored once, from the one in the smaller slot.
        slots = np.sort(self._listings.slots(key for keys in by_cell.values() for key in keys))
        found: list[tuple[_Columns, _Columns, np.ndarray]] = []
        mine: list[str] = []
        near: dict[tuple[int, int], int] = {}  # cells near the batch's, with their listings
        for cell, keys in by_cell.items():
            more = {c: len(self._grid.items(c)) for c in self._grid.cells_near(cell) if c not in near}
            if mine and (len(mine) + len(keys)) * (sum(near.values()) + sum(more.values())) > RESCORE_MATRIX:
                found.append(self._reach(mine, list(near), slots))
                mine, near = [], {c: len(self._grid.items(c)) for c in self._grid.cells_near(cell)}
            mine += keys
            near.update(more)
        if mine:
            found.append(self._reach(mine, list(near), slots))
        lefts, rights, name_sets = zip(*found, strict=True)
        return self._score(_Columns.concatenate(list(lefts)), _Columns.concatenate(list(rights)),
                           np.concatenate(name_sets))

    def _reach(self, mine: list[str], cells: list[tuple[int, int]],
               dirty: np.ndarray) -> tuple[_Columns, _Columns, np.ndarray]:
        """The pairs of `mine` (dirty listings) and the listings of `cells` that pass the
        filters of `_rescore`: the two sides as aligned columns, and their names'
        token_set_ratio (in [0, 1]). `dirty` is the slots of every dirty listing, sorted."""
        cutoff = matching.MIN_NAME_SET * 100.0
        # reach, in degrees of latitude, squared: an equirectangular test (with a margin),
        # the exact haversine distance is the score's
        reach_deg2 = (matching.RADIUS_M * 1.001 / _METRES_PER_DEGREE) ** 2
        a = self._columns(mine)
        b = _Columns.concatenate([self._cell(c) for c in cells])
        dlat = b.lat[None, :] - a.lat[:, None]
        dlon = (b.lon[None, :] - a.lon[:, None] + 180.0) % 360.0 - 180.0
        dlon *= np.cos(np.radians(a.lat))[:, None]
        reach = dlat * dlat + dlon * dlon <= reach_deg2
        reach &= a.source[:, None] != b.source[None, :]
        reach &= ~(np.isin(b.slot, dirty)[None, :] & (b.slot[None, :] < a.slot[:, None]))  # scored from b
        rows, cols = np.nonzero(reach)
        hopeful = (a.bloom[rows] & b.bloom[cols]) != 0  # a shared word, else token_sort_ratio
        other = np.flatnonzero(~hopeful)
        hopeful[other] = process.cpdist(a.name[rows[other]], b.name[cols[other]], scorer=fuzz.token_sort_ratio,
                                        score_cutoff=cutoff, dtype=np.float32) >= cutoff
        rows, cols = rows[hopeful], cols[hopeful]
        name_set = process.cpdist(a.name[rows], b.name[cols], scorer=fuzz.token_set_ratio,
                                  score_cutoff=cutoff, dtype=np.float64)
        keep = name_set >= cutoff
        return a.take(rows[keep]), b.take(cols[keep]), name_set[keep] / 100.0

    def _score(self, a: _Columns, b: _Columns, name_set: np.ndarray) -> set[str]:
        """Score the pairs (a[i], b[i]) as `matching.score_many` does, in columns, and keep
        those that reach the threshold as candidates; returns their listings. `name_set` is
        their names' token_set_ratio, in [0, 1].

        What can rule a pair out comes first, and a pair ruled out is not compared further
        (with a margin for the rounding to 4 decimals): the factors of distance, kinds and
        capacities (the text score is below 1). Texts are compared in key order, each distinct
        pair of texts once (`TextScores`), and a pair of texts not kept is compared only if
        the most its text score can be (`matching.text_score_bounds`: from the names'
        token_set and token_sort ratios, whether they are equal and whether both have an
        address) times its pairs' best factors can reach the threshold."""
        table = self._listings
        distance = matching.distances_m(a.lat, a.lon, b.lat, b.lon)
        near = matching.distance_factors(distance)
        factors = matching.factors_many(a.kind, a.guests, b.kind, b.guests)
        hopeful = np.flatnonzero(near * factors >= matching.THRESHOLD - 1e-4)
        a, b = a.take(hopeful), b.take(hopeful)
        name_set, distance, near, factors = (v.take(hopeful) for v in (name_set, distance, near, factors))
        first, second = a.key, b.key
        swap = second < first
        first, second = np.where(swap, second, first), np.where(swap, first, second)
        codes = (np.where(swap, b.slot, a.slot) << 32) | np.where(swap, a.slot, b.slot)
        distinct, inverse = np.unique(codes, return_inverse=True)
        texts: dict[matching.Texts, int] = {}  # each distinct pair of texts, numbered
        numbers = np.fromiter(
            (texts.setdefault((table.name(x), table.address(x), table.name(y), table.address(y)), len(texts))
             for x, y in ((code >> 32, code & 0xFFFFFFFF) for code in distinct.tolist())),
            np.int64, len(distinct))[inverse]  # per pair
        listed = list(texts)
        text = self._text_scores.kept(listed)
        unknown = np.flatnonzero(np.isnan(text))
        if len(unknown):
            best = np.zeros(len(listed))  # per pair of texts, the best factors of its pairs
            np.maximum.at(best, numbers, near * factors)
            one = np.empty(len(listed), np.int64)  # per pair of texts, one of its pairs
            one[numbers] = np.arange(len(numbers))
            at = one[unknown]
            name_sort = process.cpdist(a.name[at], b.name[at], scorer=fuzz.token_sort_ratio, dtype=np.float64) / 100
            equal = (a.name[at] == b.name[at]) & (a.name[at] != "")
            has_address = np.array([bool(listed[i][1]) and bool(listed[i][3]) for i in unknown.tolist()], dtype=bool)
            bounds = matching.text_score_bounds(name_set[at], name_sort, equal, has_address)
            worth = unknown[bounds * best[unknown] >= matching.THRESHOLD - 1e-4]
            text[unknown] = 0.0  # below the threshold, whatever the factors
            text[worth] = self._text_scores.of([listed[i] for i in worth.tolist()])
        scores = np.round(text[numbers] * near * factors, 4)
        gained: set[str] = set()
        for i in np.flatnonzero(scores >= matching.THRESHOLD).tolist():
            x, y = first[i], second[i]
            self._candidates.setdefault(x, {})[y] = self._candidates.setdefault(y, {})[x] = (
                scores[i].item(), distance[i].item())
            gained.update((x, y))
        return gained

    def _cell(self, cell: tuple[int, int]) -> _Columns:
        columns = self._cell_columns.get(cell)
        if columns is None:
            columns = self._cell_columns[cell] = self._columns(sorted(map(self._listings.key, self._grid.items(cell))))
        return columns

    def _columns(self, keys: list[str]) -> _Columns:
        table = self._listings
        slots = table.slots(keys)
        names = [matching.normalise_name(table.name(slot)) for slot in slots.tolist()]
        bloom = table.name_bloom[slots]
        for i in np.flatnonzero(bloom == 0).tolist():
            bloom[i] = table.name_bloom[slots[i]] = _name_bloom(names[i])
        return _Columns(
            key=np.array(keys, dtype=object), lat=table.lat[slots], lon=table.lon[slots],
            source=table.source[slots], bloom=bloom,
            name=np.array(names, dtype=object), kind=table.kind_classes(slots), guests=table.guests[slots],
            slot=slots,
        )

    # -- places

    def _redecide(self, touched: set[str], before: dict[str, str | None] | None = None) -> dict[str, str | None]:
        """Decide again the groups of the `touched` listings; returns the listings whose place
        is not what it was (`before` holds the old place of the listings an event was about:
        they changed since; any other's is still in `_place_of`)."""
        groups: list[set[str]] = []
        seen: set[str] = set()
        for start in sorted(touched):
            if start not in seen and start in self._listings:
                groups.append(self._group(start))
                seen |= groups[-1]
        involved = touched | seen
        known = before or {}
        previous = {key: known[key] if key in known else self.place_id_of(key) for key in involved}
        for key in involved:  # every old place of these listings lies within these groups
            old = self._place_of.pop(key, None)
            if old is not None:
                self._places.pop(old, None)
        for group in groups:
            for place in self._decide(group):
                self._places[place.place_id] = place
                for member, _, _ in place.members:
                    self._place_of[member.key] = place.place_id
        return {key: now for key in involved if (now := self.place_id_of(key)) != previous[key]}

    def _group(self, start: str) -> set[str]:
        """The present listings reachable from `start` by property, link(same) or candidate edges."""
        group = {start}
        frontier = [start]
        while frontier:
            key = frontier.pop()
            for other in self._joinable(key):
                if other in group:
                    continue
                group.add(other)
                frontier.append(other)
        return group

    def _decide(self, group: set[str]) -> list[Place]:
        """Steps 2-4 of the module docstring, for one connected group: its places of two or more."""
        if len(group) == 1:
            return []
        links = [
            self._links[(k, o)] for k in group for o in self._link_partners.get(k, ()) if o in group and k < o
        ]
        linked = {link.pair for link in links}
        joins = _Joins(group, [link.pair for link in links if not link.same])
        properties = {p for k in group if (p := self._listings.property_of(k)) is not None}
        for prop in sorted(properties):
            ordered = sorted(self._properties[prop])
            for other in ordered[1:]:
                joins.join(ordered[0], other, "property", 1.0, force=True)
        for link in sorted((x for x in links if x.same), key=lambda x: (-x.changed_at, x.pair)):
            joins.join(*link.pair, "link", 1.0)
        candidates = sorted(
            (-score, distance, a, b)
            for a in group for b, (score, distance) in self._candidates.get(a, {}).items()
            if a < b and (a, b) not in linked
        )
        taken: set[tuple[str, str]] = set()
        for negative, _, a, b in candidates:
            source_a, source_b = a.partition("\x00")[0], b.partition("\x00")[0]
            if (a, source_b) in taken or (b, source_a) in taken:
                continue
            if joins.join(a, b, "auto", -negative):  # refused by a "not same": takes no slot
                taken.update(((a, source_b), (b, source_a)))
        return [self._place(members, joins) for members in joins.groups() if len(members) > 1]

    def _place(self, members: list[str], joins: _Joins) -> Place:
        anchor = members[0]
        how: dict[str, tuple[Matched, float]] = {anchor: ("self", 1.0)}
        frontier = [anchor]
        while frontier:
            key = frontier.pop(0)
            for other, kind, score in sorted(joins.edges[key]):
                if other not in how:
                    how[other] = (kind, score)
                    frontier.append(other)
        listings = [self._listings.listing(slot) for slot in self._listings.slots(members).tolist()]
        representative = next((x for x in listings if x.address), listings[0])
        return Place(
            place_id_for(anchor),
            representative,
            tuple((x, how[x.key][0], how[x.key][1]) for x in listings),
        )


@dataclass(frozen=True, slots=True)
class _Columns:
    """Listings of a cell or a neighbourhood as arrays, for the bulk tests of `_rescore`."""

    key: np.ndarray  # (object)
    lat: np.ndarray
    lon: np.ndarray
    source: np.ndarray
    bloom: np.ndarray
    name: np.ndarray
    kind: np.ndarray  # `matching.KIND_CLASSES`
    guests: np.ndarray
    slot: np.ndarray  # in the graph's `ListingTable` (names and addresses)

    def arrays(self) -> tuple[np.ndarray, ...]:
        """Every column, in the order of the fields."""
        return (self.key, self.lat, self.lon, self.source, self.bloom, self.name, self.kind, self.guests, self.slot)

    def take(self, indices: np.ndarray) -> _Columns:
        """The listings at `indices`, in that order (repeats allowed)."""
        return _Columns(*(column.take(indices) for column in self.arrays()))

    @staticmethod
    def concatenate(parts: list[_Columns]) -> _Columns:
        return _Columns(*(np.concatenate(columns) for columns in zip(*(p.arrays() for p in parts), strict=True)))


class _Joins:
    """Union-find over one group, refusing joins that would unite a "not same" pair."""

    def __init__(self, group: set[str], apart: list[tuple[str, str]]) -> None:
        self._parent = {k: k for k in group}
        self._members: dict[str, set[str]] = {k: {k} for k in group}
        self._apart: dict[str, set[str]] = {k: set() for k in group}
        for a, b in apart:
            self._apart[a].add(b)
            self._apart[b].add(a)
        self.edges: dict[str, list[tuple[str, Matched, float]]] = {k: [] for k in group}

    def _root(self, key: str) -> str:
        while self._parent[key] != key:
            self._parent[key] = self._parent[self._parent[key]]
            key = self._parent[key]
        return key

    def join(self, a: str, b: str, kind: Matched, score: float, force: bool = False) -> bool:
        """Join the groups of `a` and `b`; False when a "not same" pair forbids it."""
        ra, rb = self._root(a), self._root(b)
        if ra == rb:
            return True
        if not force and not self._apart[ra].isdisjoint(self._members[rb]):
            return False
        if len(self._members[ra]) < len(self._members[rb]):
            ra, rb = rb, ra
        self._parent[rb] = ra
        self._members[ra] |= self._members.pop(rb)
        self._apart[ra] |= self._apart.pop(rb)
        self.edges[a].append((b, kind, score))
        self.edges[b].append((a, kind, score))
        return True

    def groups(self) -> list[list[str]]:
        return sorted(sorted(members) for members in self._members.values())
