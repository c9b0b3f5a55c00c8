"""Listing columns in shared memory: what search filters on, one array per attribute.

SQLite holds the full description (names, URLs); these columns are the part search scans.
A listing is searchable once described, unless a delist is at least as new as the description
(a delist wins a tie; a newer description brings the listing back).

`place` is the row of the listing that stands for the listing's place (a property): the
listing's own row when it is a place of its own. The writer decides it (`set_places`); search
groups offers by it and names the place after that row's key (`search.places.place_id`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from staystream.events.types import Delist, Listing
from staystream.memory.shm import Counter, SharedArrays

ARRAYS: dict[str, np.dtype[Any]] = {
    "lat": np.dtype("<f8"),
    "lon": np.dtype("<f8"),
    "kind": np.dtype("u1"),
    "max_guests": np.dtype("<u2"),
    "bedrooms": np.dtype("<i2"),
    "described_at": np.dtype("<i8"),
    "delisted_at": np.dtype("<i8"),
    "searchable": np.dtype("u1"),
    "place": np.dtype("<i4"),
    # Append-only log of the rows whose coordinates, kind or max_guests were set, `Counter.MOVED`
    # long: search's indexes (built from copies) check these rows directly until their next rebuild.
    "moved": np.dtype("<i4"),
}
NEVER = np.iinfo(np.int64).min


class ListingColumns:
    """The writer's handle on the listing columns."""

    def __init__(self, shared: SharedArrays, rows: int = 1024) -> None:
        self.shared = shared
        for name in ARRAYS:
            shared.allocate(name, rows)
        shared["described_at"][:] = NEVER
        shared["delisted_at"][:] = NEVER
        shared["place"][:] = np.arange(rows)
        self.rows = 0

    def add_rows(self, rows: int) -> None:
        if rows > len(self.shared["lat"]):
            old = len(self.shared["lat"])
            for name in ARRAYS:
                self.shared.grow(name, rows)
            self.shared["described_at"][old:] = NEVER
            self.shared["delisted_at"][old:] = NEVER
            self.shared["place"][old:] = np.arange(old, len(self.shared["place"]))
        self.rows = max(self.rows, rows)
        self.shared.counters[Counter.ROWS] = self.rows

    def describe(self, row: int, listing: Listing) -> bool:
        """Last-writer-wins, as `sqlite.commit_group` applied it to SQLite; whether it won."""
        shared = self.shared
        if listing.changed_at < shared["described_at"][row]:
            return False
        placed = (
            shared["described_at"][row] == NEVER or shared["lat"][row] != listing.lat
            or shared["lon"][row] != listing.lon or shared["kind"][row] != listing.kind
            or shared["max_guests"][row] != listing.max_guests
        )
        shared["lat"][row] = listing.lat
        shared["lon"][row] = listing.lon
        shared["kind"][row] = listing.kind
        shared["max_guests"][row] = listing.max_guests
        shared["bedrooms"][row] = -1 if listing.bedrooms is None else listing.bedrooms
        shared["described_at"][row] = listing.changed_at
        self._update_searchable(row)
        if placed:  # logged after the columns are written: a reader of the log sees them
            moved = int(shared.counters[Counter.MOVED])
            if moved >= len(shared["moved"]):
                shared.grow("moved", moved + 1)
            shared["moved"][moved] = row
            shared.counters[Counter.MOVED] = moved + 1
        return True

    def set_places(self, places: dict[int, int]) -> None:
        """Move listings (row -> the row standing for its new place)."""
        if places:
            self.shared["place"][np.fromiter(places, np.int64, len(places))] = np.fromiter(
                places.values(), np.int32, len(places))

    def delist(self, row: int, delist: Delist) -> None:
        if delist.changed_at >= self.shared["delisted_at"][row]:
            self.shared["delisted_at"][row] = delist.changed_at
            self._update_searchable(row)

    def load(self, rows: list[tuple[Any, ...]]) -> None:
        """Restore from `sqlite.listing_columns` rows at start-up, column by column (their last
        field, `property_id`, is the writer's: it decides places)."""
        if not rows:
            return
        row, kind, lat, lon, max_guests, bedrooms, described_at, delisted_at = list(zip(*rows, strict=True))[:8]
        at = np.array(row, np.int64)
        described = np.fromiter((value is not None for value in described_at), bool, len(at))
        shared = self.shared
        for name, values, fill in (
            ("kind", kind, 0), ("lat", lat, 0.0), ("lon", lon, 0.0), ("max_guests", max_guests, 0),
            ("bedrooms", bedrooms, -1), ("described_at", described_at, NEVER), ("delisted_at", delisted_at, NEVER),
        ):  # one pass a column, no object arrays: a million rows in ~1 s
            shared[name][at] = np.fromiter((fill if value is None else value for value in values),
                                           shared[name].dtype, len(at))
        searchable = (shared["described_at"][at] != NEVER) & (shared["described_at"][at] > shared["delisted_at"][at])
        shared["searchable"][at] = described & searchable

    def _update_searchable(self, row: int) -> None:
        described = self.shared["described_at"][row]
        self.shared["searchable"][row] = described != NEVER and described > self.shared["delisted_at"][row]
