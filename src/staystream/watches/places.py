"""Which place a listing row belongs to, and the place's public id: the one spot watches learn it.

Until the places work (a shared-memory `place` column naming, per listing row, the row that stands
for its place) is on main, every listing is a place of its own; the id is derived from the key of
the row that names the place, as search's `group=place` will name it.
"""

from __future__ import annotations

import numpy as np

from staystream.memory.shm import SharedArrays


def place_rows(shared: SharedArrays, rows: np.ndarray) -> np.ndarray:
    """The row naming each row's place (today: the row itself)."""
    del shared
    return rows


def place_id(source: str, listing_id: str) -> str:
    """The opaque id of the place named by the listing (source, listing_id)."""
    return f"{source}:{listing_id}"
