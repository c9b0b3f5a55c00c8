"""Places: which listings are one property, decided incrementally and explained.

Self-contained: plain values in (keys, coordinates, names, addresses, kinds, capacities,
property ids, links), places out. `matching` decides pairs; `graph` keeps the places.
"""

from staystream.places.graph import Place, PlaceGraph, place_id_for
from staystream.places.types import (
    Delisted,
    Link,
    PlaceEvent,
    PlaceListing,
    listing_key,
)

__all__ = ["Delisted", "Link", "Place", "PlaceEvent", "PlaceGraph", "PlaceListing", "listing_key", "place_id_for"]
