"""The shared arrays every process maps: the calendar's and the listing columns'.

The writer creates them (the change feed for the watcher too), workers map them read-only; both
take the layout from here, so the read
side never imports the writer.
"""

from __future__ import annotations

from staystream.memory.calendar import ARRAYS as CALENDAR_ARRAYS
from staystream.memory.feed import ARRAYS as FEED_ARRAYS
from staystream.memory.listings import ARRAYS as LISTING_ARRAYS

SHARED_ARRAYS = {**CALENDAR_ARRAYS, **LISTING_ARRAYS, **FEED_ARRAYS}
