"""The listings of a place graph as columns: what places and matching read of each listing, in
~0.1 KB a listing (a `PlaceListing` kept per listing, with its strings and the graph's other
per-listing objects, took ~1.3 KB: 1.2 GiB for a million listings in the writer).

Each listing has a slot. The writer's graph shares the writer's key -> row map, so a slot is
the listing's row and the map costs nothing more; a graph of its own numbers keys as they come.
Slots are never given back (a delisted key keeps its number, as the writer's rows do). By slot:
the key (the same string object as the map's), the name, and numpy columns of the numbers; the
address and `property_id`, which most listings lack, in dicts by slot.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np

from staystream.places import matching
from staystream.places.types import KINDS, ListingRow, PlaceListing, place_id_for

KIND_NAMES = tuple(sorted(KINDS))
_KIND_CODES = {kind: code for code, kind in enumerate(KIND_NAMES)}
_KIND_CLASSES = np.array([matching.KIND_CLASSES[kind] for kind in KIND_NAMES], np.int8)


class ListingTable:
    """Listings by key, stored by slot; `get` gives one back as a `PlaceListing`."""

    def __init__(self, index: dict[str, int] | None = None) -> None:
        self._own_index = index is None
        self._index: dict[str, int] = {} if index is None else index
        self._keys: list[str | None] = []  # by slot; None where no listing is
        self._names: list[str] = []
        self._addresses: dict[int, str] = {}
        self._property_ids: dict[int, str] = {}
        self._source_ids: dict[str, int] = {}
        self._sources: list[str] = []
        self.lat = np.zeros(0)
        self.lon = np.zeros(0)
        self.source = np.zeros(0, np.int16)
        self.kind = np.zeros(0, np.int8)  # `KIND_NAMES` numbers
        self.guests = np.zeros(0, np.int32)
        # matching's 64-bit bloom of the normalised name's words, kept once a match needed it
        # (0: not yet; a name without words has 0 and is simply computed again)
        self.name_bloom = np.zeros(0, np.uint64)
        self._count = 0
        # per slot, the number in its key's own place_id (`place_id_for`): a listing alone is
        # found by its place_id in one scan; hashed when first asked (~1 s a million slots)
        self._place_hashes = np.zeros(0, np.uint64)

    def __len__(self) -> int:
        return self._count

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self.slot(key) is not None

    @property
    def sources(self) -> int:
        """How many sources listings were ever seen of (matching needs two)."""
        return len(self._sources)

    def slot(self, key: str) -> int | None:
        """The slot of a listing present, else None."""
        slot = self._index.get(key)
        return slot if slot is not None and slot < len(self._keys) and self._keys[slot] is not None else None

    def slot_object(self, key: str) -> int:
        """The slot of a listing present as the index holds it: the same int object, so that
        keeping it (the grid does) costs no new one."""
        return self._index[key]

    def __iter__(self) -> Iterator[str]:
        """Every listing's key, by slot."""
        return (key for key in self._keys if key is not None)

    def named(self, place_id: str) -> str | None:
        """The key of the listing present whose own place_id (`place_id_for`) is `place_id`."""
        if len(place_id) != 17 or not place_id.startswith("p"):
            return None
        try:
            wanted = np.uint64(int(place_id[1:], 16))
        except ValueError:
            return None
        if len(self._place_hashes) < len(self._keys):  # slots keep their key: only new ones to hash
            self._place_hashes = np.concatenate([self._place_hashes, np.fromiter(
                (0 if key is None else int(place_id_for(key)[1:], 16) for key in self._keys[len(self._place_hashes):]),
                np.uint64)])
        for slot in np.flatnonzero(self._place_hashes == wanted).tolist():
            key = self._keys[slot]
            if key is not None and place_id_for(key) == place_id:
                return key
        return None

    def key(self, slot: int) -> str:
        key = self._keys[slot]
        assert key is not None, f"no listing in slot {slot}"
        return key

    def get(self, key: str) -> PlaceListing | None:
        slot = self.slot(key)
        return None if slot is None else self.listing(slot)

    def listing(self, slot: int) -> PlaceListing:
        source, _, listing_id = self.key(slot).partition("\x00")
        return PlaceListing(source, listing_id, float(self.lat[slot]), float(self.lon[slot]), self._names[slot],
                            KIND_NAMES[self.kind[slot]], int(self.guests[slot]), self._addresses.get(slot),
                            self._property_ids.get(slot))

    def same(self, listing: PlaceListing) -> bool:
        """Whether `listing` is the one present under its key, as it is."""
        slot = self.slot(listing.key)
        return slot is not None and self.listing(slot) == listing

    def point(self, key: str) -> tuple[float, float]:
        slot = self._index[key]
        return float(self.lat[slot]), float(self.lon[slot])

    def name(self, slot: int) -> str:
        return self._names[slot]

    def address(self, slot: int) -> str | None:
        return self._addresses.get(slot)

    def property_of(self, key: str) -> tuple[str, str] | None:
        """(source, property_id) of a listing present that has one."""
        slot = self.slot(key)
        property_id = None if slot is None else self._property_ids.get(slot)
        return None if property_id is None else (key.partition("\x00")[0], property_id)

    def kind_classes(self, slots: np.ndarray) -> np.ndarray:
        """`matching.KIND_CLASSES` of the listings in `slots`."""
        classes: np.ndarray = _KIND_CLASSES[self.kind[slots]]
        return classes

    def fingerprints(self, slots: np.ndarray | None = None) -> tuple[list[str], np.ndarray]:
        """The keys of the listings in `slots` (default: every listing, by slot) and their
        `matching.fingerprint`s."""
        if slots is None:
            slots = np.array([slot for slot, key in enumerate(self._keys) if key is not None], np.int64)
        keys = [self.key(slot) for slot in slots.tolist()]
        return keys, matching.fingerprints(
            keys, [KIND_NAMES[kind] for kind in self.kind[slots].tolist()],
            [self._names[slot] for slot in slots.tolist()], [self._addresses.get(slot) for slot in slots.tolist()],
            self.lat[slots], self.lon[slots], self.guests[slots])

    def slots(self, keys: Iterable[str]) -> np.ndarray:
        return np.fromiter((self._index[key] for key in keys), np.int64)

    def add(self, listing: PlaceListing) -> None:
        """Put `listing` under its key (replacing what was there)."""
        self.extend([listing.row])

    def extend(self, rows: Iterable[ListingRow]) -> None:
        """Put many listings at once (a restart: a million in about a second)."""
        slots: list[int] = []
        lats: list[float] = []
        lons: list[float] = []
        sources: list[int] = []
        kinds: list[int] = []
        guests: list[int] = []
        for key, lat, lon, name, kind, max_guests, address, property_id in rows:
            slot = self._index.get(key)
            if slot is None:
                assert self._own_index, f"listing {key!r} has no row in the writer"
                slot = self._index[key] = len(self._index)
            if slot >= len(self._keys):
                grown = slot + 1 - len(self._keys)
                self._keys += [None] * grown
                self._names += [""] * grown
            if self._keys[slot] is None:
                self._count += 1
            self._keys[slot] = key
            self._names[slot] = name
            if address is None:
                self._addresses.pop(slot, None)
            else:
                self._addresses[slot] = address
            if property_id is None:
                self._property_ids.pop(slot, None)
            else:
                self._property_ids[slot] = property_id
            source = key.partition("\x00")[0]
            source_id = self._source_ids.get(source)
            if source_id is None:
                source_id = self._source_ids[source] = len(self._sources)
                self._sources.append(source)
            slots.append(slot)
            lats.append(lat)
            lons.append(lon)
            sources.append(source_id)
            kinds.append(_KIND_CODES[kind])
            guests.append(max_guests)
        if not slots:
            return
        self._reserve(len(self._keys))
        at = np.array(slots, np.int64)
        self.lat[at], self.lon[at] = lats, lons
        self.source[at], self.kind[at], self.guests[at] = sources, kinds, guests
        self.name_bloom[at] = 0

    def remove(self, key: str) -> None:
        slot = self.slot(key)
        if slot is None:
            return
        self._keys[slot] = None
        self._names[slot] = ""
        self._addresses.pop(slot, None)
        self._property_ids.pop(slot, None)
        self._count -= 1

    def _reserve(self, slots: int) -> None:
        """Columns for at least `slots` slots, grown by half again (few copies as listings come)."""
        if slots <= len(self.lat):
            return
        size = max(slots, len(self.lat) * 3 // 2, 1024)
        for name in ("lat", "lon", "source", "kind", "guests", "name_bloom"):
            old: np.ndarray = getattr(self, name)
            new = np.zeros(size, old.dtype)
            new[: len(old)] = old
            setattr(self, name, new)
