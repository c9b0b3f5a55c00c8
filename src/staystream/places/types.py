"""What places are made of: listings as matching sees them, delistings and operator links.

Plain values, nothing of the store: the writer converts its events into these.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

KINDS = frozenset(
    {"hotel_room", "apartment", "house", "private_room", "shared_room", "hostel_bed", "other"}
)
MAX_ADDRESS_CHARS = 512
# A listing as the store keeps it: key, lat, lon, name, kind, max_guests, address, property_id
ListingRow = tuple[str, float, float, str, str, int, str | None, str | None]


def listing_key(source: str, listing_id: str) -> str:
    """The store's key of a listing: `source`, NUL, `listing_id` (sorts like the pair)."""
    return f"{source}\x00{listing_id}"


def place_id_for(anchor_key: str) -> str:
    """Opaque and URL-safe: "p" and 16 hex digits of a hash of the smallest member key."""
    return "p" + hashlib.blake2b(anchor_key.encode(), digest_size=8).hexdigest()


@dataclass(frozen=True, slots=True)
class PlaceListing:
    """The current description of a listing, as far as places care."""

    source: str
    listing_id: str
    lat: float
    lon: float
    name: str
    kind: str
    max_guests: int
    address: str | None = None
    property_id: str | None = None
    key: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(
                f"listing {self.source}/{self.listing_id}: kind {self.kind!r} is not one of {sorted(KINDS)}"
            )
        if not (-90.0 <= self.lat <= 90.0 and -180.0 <= self.lon <= 180.0):
            raise ValueError(
                f"listing {self.source}/{self.listing_id}: lat/lon {self.lat}, {self.lon} "
                "outside [-90, 90] x [-180, 180]"
            )
        if self.address is not None and len(self.address) > MAX_ADDRESS_CHARS:
            raise ValueError(
                f"listing {self.source}/{self.listing_id}: address of {len(self.address)} characters, "
                f"at most {MAX_ADDRESS_CHARS} expected"
            )
        object.__setattr__(self, "key", listing_key(self.source, self.listing_id))

    @property
    def row(self) -> ListingRow:
        return (self.key, self.lat, self.lon, self.name, self.kind, self.max_guests, self.address, self.property_id)


@dataclass(frozen=True, slots=True)
class Delisted:
    """A listing that left search: it leaves its place too."""

    source: str
    listing_id: str

    @property
    def key(self) -> str:
        return listing_key(self.source, self.listing_id)


@dataclass(frozen=True, slots=True)
class Link:
    """An operator's decision that two listings are (or are not) one place.

    `changed_at` is any integer clock shared by all links (the store's microseconds). Per pair
    the greatest `changed_at` wins; at equal `changed_at`, "not same" wins, so that the
    outcome never depends on the order of arrival.
    """

    source: str
    listing_id: str
    other_source: str
    other_listing_id: str
    same: bool
    changed_at: int

    def __post_init__(self) -> None:
        if (self.source, self.listing_id) == (self.other_source, self.other_listing_id):
            raise ValueError(
                f"link of {self.source}/{self.listing_id} to itself: other_source/other_listing_id "
                "must name another listing"
            )

    @property
    def pair(self) -> tuple[str, str]:
        a, b = listing_key(self.source, self.listing_id), listing_key(self.other_source, self.other_listing_id)
        return (a, b) if a < b else (b, a)

    @property
    def precedence(self) -> tuple[int, bool]:
        """Greater wins: later `changed_at`, then "not same"."""
        return self.changed_at, not self.same


PlaceEvent = PlaceListing | Delisted | Link

Edge = tuple[str, str, float, float]  # a candidate pair: key, other key, score, metres


@dataclass(frozen=True, slots=True)
class SavedMatches:
    """What a `places.cache` file holds: the matched listings' fingerprints
    (`matching.fingerprint`) and the candidate edges between them."""

    fingerprints: dict[str, int]
    edges: list[Edge]


@dataclass(frozen=True, slots=True)
class MatchChanges:
    """What changed in the saved matches since the last save: `matched` listings (key,
    fingerprint) whose rows and edges replace the old ones, `dropped` keys whose rows and edges
    go (delisted, or described again and not matched yet), and the `edges` of the matched."""

    matched: list[tuple[str, int]]
    dropped: list[str]
    edges: list[Edge]
