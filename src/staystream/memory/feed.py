"""The change feed: a ring in shared memory of what each applied group touched, for the watcher.

The writer appends, after applying a group and before answering it, one entry per rate event
(row, first night, end night) and one per listing or delist (row, `ALL_NIGHTS`), then advances
`Counter.FEED_HEAD` (entries ever appended). The watcher keeps its own tail: entries between its
tail and the head are what changed since it last looked. A reader that fell more than the ring's
length behind has lost entries and must re-evaluate everything (`ChangeFeed.read` says so).
"""

from __future__ import annotations

import numpy as np

from staystream.memory.shm import Counter, SharedArrays

FEED_DTYPE = np.dtype([("row", "<i4"), ("first", "<i4"), ("end", "<i4")])
ARRAYS = {"feed": FEED_DTYPE}
CAPACITY = 1 << 21  # entries (24 MiB): a group holds at most ~500,000, so several groups of slack
ALL_NIGHTS = (np.iinfo(np.int32).min, np.iinfo(np.int32).max)  # a listing's description or delist


class FeedWriter:
    """The writer's end."""

    def __init__(self, shared: SharedArrays) -> None:
        self.shared = shared
        self.ring = shared.allocate("feed", CAPACITY)

    def append(self, rows: np.ndarray, first: np.ndarray, end: np.ndarray) -> None:
        count = len(rows)
        if count == 0:
            return
        if count > CAPACITY:  # only the last CAPACITY matter: the reader sees it fell behind anyway
            rows, first, end = rows[-CAPACITY:], first[-CAPACITY:], end[-CAPACITY:]
        head = int(self.shared.counters[Counter.FEED_HEAD])
        at = (head + np.arange(len(rows))) % CAPACITY
        self.ring["row"][at] = rows
        self.ring["first"][at] = first
        self.ring["end"][at] = end
        self.shared.counters[Counter.FEED_HEAD] = head + count  # after the entries: readers see them whole


class FeedReader:
    """The watcher's end: `read()` returns what was appended since the last call."""

    def __init__(self, shared: SharedArrays) -> None:
        self.shared = shared
        self.tail = int(shared.counters[Counter.FEED_HEAD])

    def read(self, limit: int = CAPACITY) -> tuple[np.ndarray | None, int]:
        """(entries since the last read, at most `limit`, or None if some were overwritten before
        they were read: re-evaluate everything), and how many are still waiting."""
        head = int(self.shared.counters[Counter.FEED_HEAD])
        if head - self.tail > CAPACITY:
            self.tail = head
            return None, 0
        end = min(head, self.tail + limit)
        entries = self.shared["feed"][np.arange(self.tail, end) % CAPACITY]  # a copy
        # The writer may have lapped us while we copied: the copy is good only if it did not.
        if int(self.shared.counters[Counter.FEED_HEAD]) - self.tail > CAPACITY:
            self.tail = int(self.shared.counters[Counter.FEED_HEAD])
            return None, 0
        self.tail = end
        return entries, head - end
