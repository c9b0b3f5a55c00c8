"""Which place a listing row belongs to, and the place's public id: the one spot watches learn it.

Both come from search (the shared-memory `place` column the writer keeps, and the id search and
the listing endpoint show), so a watch's places are search's places.
"""

from __future__ import annotations

import numpy as np

from staystream.memory.shm import SharedArrays
from staystream.search import engine, view


def place_rows(shared: SharedArrays, rows: np.ndarray) -> np.ndarray:
    """The row naming each row's place."""
    return engine.places_of(shared, rows).astype(np.int64)


def place_id(source: str, listing_id: str) -> str:
    """The opaque id of the place named by the listing (source, listing_id)."""
    return view.place_id(source, listing_id)
