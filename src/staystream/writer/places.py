"""The writer's places: the `places` engine fed with what the store accepted, mirrored into the
shared `place` column.

The writer is the only owner of places, as of every write: after a group committed, the
listings it described, the listings it delisted and its links go to `PlaceGraph.apply`, and
every listing whose place changed gets its new place in the shared column before the group is
answered (read-after-ack for search, watches and the web page). The column holds, per listing
row, the row of its place's anchor (the member with the smallest key, after which the place is
named: `place_id_for(anchor key)`); a listing in no place (never described, delisted) is its
own anchor. Places are a pure function of the current listings and links, so start-up rebuilds
them from the store, with the candidate edges of automatic matching from the places cache
(`places.cache`, saved every `SAVE_SECONDS`): only the listings changed since its last save are
matched again.
"""

from __future__ import annotations

import itertools
import logging
import re
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import msgspec
import numpy as np

from staystream import metrics
from staystream.events.types import KINDS, Link, Listing, split_key
from staystream.memory.listings import ListingColumns
from staystream.places import Delisted, PlaceEvent, PlaceGraph, PlaceListing, place_id_for
from staystream.places import Link as PlaceLink
from staystream.places.cache import PlacesCache
from staystream.places.types import SavedMatches

log = logging.getLogger("staystream.writer")
_json = msgspec.json.Encoder()
_PLACE_ID = re.compile("p[0-9a-f]{16}")
INLINE_MATCHING = 100  # listings a group may carry and still be matched before its answer
MATCH_SLICE = 50  # listings matched in one slice of deferred matching (~20 ms in a dense city)
SAVE_SECONDS = 2.0  # the places cache is brought up to date at most this often (a crash loses that much)
# (row, source, listing_id, name, kind, lat, lon, max_guests, address, property_id): a listing
# in search, as `sqlite.place_listings` reads it at start-up
StoredListing = tuple[int, str, str, str, int, float, float, int, str | None, str | None]


def place_listing(listing: Listing) -> PlaceListing:
    source, listing_id = split_key(listing.key)
    return PlaceListing(source, listing_id, listing.lat, listing.lon, listing.name, KINDS[listing.kind],
                        listing.max_guests, listing.address, listing.property_id)


def place_link(link: Link) -> PlaceLink:
    (source, listing_id), (other_source, other_listing_id) = split_key(link.key), split_key(link.other_key)
    return PlaceLink(source, listing_id, other_source, other_listing_id, link.same, link.changed_at)


class WriterPlaces:
    """Places for one writer; `automatic=False` keeps property and link edges only."""

    def __init__(self, columns: ListingColumns, rows: dict[str, int], automatic: bool,
                 moved: Callable[[np.ndarray], None] = lambda rows: None, cache: Path | None = None) -> None:
        self.columns = columns
        self.moved = moved  # told the rows whose place changed, after the column (the watcher's feed)
        self.rows = rows  # the writer's key -> row (shared, not copied)
        self.graph = PlaceGraph(automatic, index=rows)  # slots are rows: the map is not copied
        self._hashes = np.zeros(0, np.uint64)  # per listing row, its own place_id as a number
        self.cache = PlacesCache(cache) if automatic and cache is not None else None
        self._saved_at = 0.0

    def load(self, listings: Iterable[StoredListing], links: Iterable[Link]) -> None:
        """Rebuild every place from the stored listings in search and the stored links, and the
        candidate edges the cache kept of the listings unchanged since its last save."""
        started, cpu = time.perf_counter(), time.thread_time()
        place_links = [place_link(link) for link in links]
        keys: list[str] = [""] * len(self.rows)  # by row: the graph keeps these very strings
        for key, row in self.rows.items():
            keys[row] = key
        changed = self.graph.restore(
            ((keys[row], lat, lon, name, KINDS[kind], max_guests, address, property_id)
             for row, _, _, name, kind, lat, lon, max_guests, address, property_id in listings),
            place_links, SavedMatches({}, []) if self.cache is None else self.cache.load())
        rematched = self.graph.pending
        changed.update(self.graph.match_pending(rematched))
        self._publish(changed)
        if self.cache is not None:
            self.cache.save(self.graph.unsaved())
        log.info("places rebuilt", extra={"listings": len(self.graph), "links": len(place_links),
                                          "rematched": rematched,
                                          "seconds": round(time.perf_counter() - started, 3),
                                          "cpu_seconds": round(time.thread_time() - cpu, 3)})

    @property
    def unsaved(self) -> bool:
        """Changes the places cache has not had yet."""
        return self.cache is not None and self.graph.has_unsaved

    def save(self, now: float, force: bool = False) -> None:
        """Bring the cache up to date, if `SAVE_SECONDS` passed since the last time (or `force`)."""
        if self.cache is not None and (force or now - self._saved_at >= SAVE_SECONDS):
            self._saved_at = now
            self.cache.save(self.graph.unsaved())

    def close(self) -> None:
        self.save(0.0, force=True)
        if self.cache is not None:
            self.cache.close()

    def apply(self, listed: list[Listing], delisted: Iterable[str], links: list[Link]) -> None:
        """After a group: `listed` the newest winning description of each listing in search,
        `delisted` the keys of listings that left search, `links` the group's links.

        A group of live traffic (at most `INLINE_MATCHING` listings) is matched at once, so its
        answer reflects automatic matches too; a bigger one (an import) gets its property and
        link edges at once and its automatic matches from `match_pending`, in slices that
        leave the write path at least 90% of the writer's time."""
        events: list[PlaceEvent] = [place_link(link) for link in links]
        events += [place_listing(listing) for listing in listed]
        events += [Delisted(*split_key(key)) for key in delisted]
        if not events:
            return
        started = time.perf_counter()
        self._publish(self.graph.apply(events, match=len(listed) <= INLINE_MATCHING))
        metrics.places_seconds.observe(time.perf_counter() - started)

    @property
    def pending(self) -> bool:
        return self.graph.pending > 0

    def match_pending(self) -> None:
        """One slice of the deferred automatic matching (`MATCH_SLICE` listings)."""
        started = time.perf_counter()
        self._publish(self.graph.match_pending(MATCH_SLICE))
        metrics.places_seconds.observe(time.perf_counter() - started)
        metrics.places_pending.set(self.graph.pending)

    def as_json(self, place_id: str) -> bytes | None:
        """The body of `GET /v1/places/{place_id}`; for a listing in no place (never described,
        or delisted: its `place_id` names it alone) `{"alone": [source, listing_id], "place_id"}`
        for the worker to complete from the store; None for an id that names nothing."""
        place = self.graph.place(place_id)
        if place is not None:
            return _json.encode(place.as_json())
        key = self._outside(place_id)
        return None if key is None else _json.encode({"alone": split_key(key), "place_id": place_id})

    def _outside(self, place_id: str) -> str | None:
        """The key of the listing outside the graph that `place_id` names, if any: a scan of one
        64-bit hash per listing row (8 B a row, hashed at the first question: ~1 s a million
        rows, then extended with the rows added since)."""
        if not _PLACE_ID.fullmatch(place_id):
            return None
        self._hash_rows()
        for row in np.flatnonzero(self._hashes == np.uint64(int(place_id[1:], 16))).tolist():
            key = next(itertools.islice(self.rows, row, None), None)
            if key is not None and place_id_for(key) == place_id and self.graph.place_id_of(key) is None:
                return key
        return None

    def _hash_rows(self) -> None:
        """Hash the rows added since the last time (all of them at start-up: ~1 us a row)."""
        self._hashes = self._hashes[: len(self.rows)]  # a failed commit gave its rows back
        if len(self._hashes) < len(self.rows):
            added = itertools.islice(self.rows, len(self._hashes), None)
            self._hashes = np.concatenate([self._hashes, np.fromiter(
                (int(place_id_for(key)[1:], 16) for key in added), np.uint64)])

    def _publish(self, changed: dict[str, str | None]) -> None:
        """The shared column follows the engine: row -> its place's anchor row."""
        moved: dict[int, int] = {}
        for key, place_id in changed.items():
            row = self.rows.get(key)
            if row is None:
                continue
            place = None if place_id is None else self.graph.place(place_id)
            anchor = row if place is None else self.rows.get(place.members[0][0].key, row)
            moved[row] = anchor
        self.columns.set_places(moved)
        if moved:
            self.moved(np.fromiter(moved, np.int32, len(moved)))
