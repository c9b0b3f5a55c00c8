"""The calendar store: every night of every listing, in shared memory, last-writer-wins.

Layout (measured in docs/performance.md):

- an *entry* is what one rate event set: price (minor units, -1 for none), currency,
  min_nights, available, changed_at (µs). Entries are immutable once written and shared by all
  the nights the event won, so a night costs a 4-byte reference, not the 24 bytes of its values;
- nights are kept in *pages* of 64 consecutive nights, allocated on first write; page slot 0 is
  the shared empty page, and entry 0 the "no value" entry (oldest possible `changed_at`);
- `directory[row, page - base_page]` is the slot holding that page of that listing's calendar.

The writer owns the reference counts and the free list; an entry whose count drops to zero is
reused only after `GRACE_SECONDS`, so a reader that picked a reference just before it was
overwritten still reads the value it saw.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Generator, Iterator
from typing import Any

import numpy as np

from staystream.durable.snapshot import Chunk
from staystream.memory.shm import Counter, SharedArrays

PAGE = 64
GRACE_SECONDS = 5.0
OLDEST = np.iinfo(np.int64).min

ARRAYS: dict[str, np.dtype[Any]] = {
    "directory": np.dtype("<i4"),
    "pages": np.dtype("<u4"),
    "entry_changed_at": np.dtype("<i8"),
    "entry_price": np.dtype("<i8"),
    "entry_currency": np.dtype("<u2"),
    "entry_min_nights": np.dtype("<u2"),
    "entry_available": np.dtype("u1"),
}
ENTRY_FIELDS = {
    "entry_changed_at": "changed_at",
    "entry_price": "price",
    "entry_currency": "currency",
    "entry_min_nights": "min_nights",
    "entry_available": "available",
}


class CalendarWriter:
    """The writer's handle: applies batches of rate events to the shared calendar."""

    def __init__(self, shared: SharedArrays, base_page: int, width: int, rows: int = 1024) -> None:
        self.shared = shared
        self.base_page = base_page
        shared.counters[Counter.BASE_PAGE] = base_page
        shared.allocate("directory", rows, width)
        shared.allocate("pages", 1024, PAGE)
        for name in ENTRY_FIELDS:
            shared.allocate(name, 1024)
        shared["entry_changed_at"][0] = OLDEST
        shared["entry_price"][0] = -1
        self.slots = 1  # slot 0: the empty page
        self.entries = 1  # entry 0: no value
        self.refcount = np.zeros(1024, dtype=np.int64)
        self.free = np.empty(0, dtype=np.int64)
        self.quarantine: deque[tuple[float, np.ndarray]] = deque()
        self.copying = 0  # snapshots in progress: entries stay out of reuse meanwhile
        self._publish()

    # -- applying ------------------------------------------------------------------------

    def apply(self, batch: np.ndarray) -> tuple[int, int]:
        """Apply rate events (`types.RATE_DTYPE`, `key` = row) in order.

        Returns (nights won, events that won no night): an event that changes nothing keeps
        no entry and moves no reference."""
        if len(batch) == 0:
            return 0, 0
        ids = self._new_entries(batch)
        row_of_event = batch["key"].astype(np.int64)
        start = batch["start"].astype(np.int64)
        counts = batch["nights"].astype(np.int64)
        first_page = start // PAGE - self.base_page
        last_page = (start + counts - 1) // PAGE - self.base_page
        self._ensure_capacity(int(row_of_event.max()) + 1, int(first_page.min()), int(last_page.max()))
        shift = self.base_page  # the base may have moved left
        self._allocate_pages(row_of_event, start // PAGE - shift, (start + counts - 1) // PAGE - shift)

        event = np.repeat(np.arange(len(batch)), counts)
        day = start[event] + (np.arange(len(event)) - (np.cumsum(counts) - counts)[event])
        slot = self.shared["directory"][row_of_event[event], day // PAGE - self.base_page]
        flat = slot.astype(np.int64) * PAGE + day % PAGE
        changed_at = batch["changed_at"][event]
        if _overlapping(row_of_event, start, counts):
            keep = _last_writer_per_night(flat, changed_at, event)
            flat, changed_at, event = flat[keep], changed_at[keep], event[keep]

        pages = self.shared["pages"].reshape(-1)
        old = pages[flat].astype(np.int64)
        wins = changed_at >= self.shared["entry_changed_at"][old]
        pages[flat[wins]] = ids[event[wins]]
        won_per_event = np.bincount(event[wins], minlength=len(batch))
        self._count_references(won_per_event, old[wins], ids)
        return int(wins.sum()), int(np.count_nonzero(won_per_event == 0))

    def _new_entries(self, batch: np.ndarray) -> np.ndarray:
        now = time.monotonic()
        while self.quarantine and self.quarantine[0][0] <= now and not self.copying:
            self.free = np.concatenate([self.free, self.quarantine.popleft()[1]])
        n = len(batch)
        reused = self.free[:n]
        self.free = self.free[n:]
        fresh = np.arange(self.entries, self.entries + n - len(reused), dtype=np.int64)
        if len(fresh):
            self.entries += len(fresh)
            if self.entries > len(self.shared["entry_price"]):
                for name in ENTRY_FIELDS:
                    self.shared.grow(name, self.entries)
                refcount = np.zeros(len(self.shared["entry_price"]), dtype=np.int64)
                refcount[: len(self.refcount)] = self.refcount
                self.refcount = refcount
        ids = np.concatenate([reused, fresh])
        for name, field in ENTRY_FIELDS.items():
            self.shared[name][ids] = batch[field]
        return ids

    def _count_references(self, won_per_event: np.ndarray, replaced: np.ndarray, ids: np.ndarray) -> None:
        self.refcount[ids] += won_per_event
        replaced = replaced[replaced != 0]
        np.subtract.at(self.refcount, replaced, 1)
        dead = np.unique(replaced[self.refcount[replaced] == 0])
        if len(dead):
            self.quarantine.append((time.monotonic() + GRACE_SECONDS, dead))
        unused = ids[won_per_event == 0]  # never visible to a reader: free at once
        if len(unused):
            self.free = np.concatenate([self.free, unused])

    # -- space ---------------------------------------------------------------------------

    def _ensure_capacity(self, rows: int, first_page: int, last_page: int) -> None:
        directory = self.shared["directory"]
        shift = max(0, -first_page)
        width = max(directory.shape[1], last_page + 1) + shift
        if shift:
            # Nights before the base: widen to the left. Only log replay at start-up can get
            # here (ingest rejects nights before --earliest-night, the configured base), so no
            # reader sees the base and the directory change apart.
            self.base_page -= shift
            self.shared.counters[Counter.BASE_PAGE] = self.base_page
            moved = np.zeros((directory.shape[0], width), dtype=directory.dtype)
            moved[:, shift : shift + directory.shape[1]] = directory
            self.shared.allocate("directory", directory.shape[0], width, moved)
        elif width > directory.shape[1]:
            self.shared.allocate("directory", directory.shape[0], width, directory)
        if rows > len(self.shared["directory"]):
            self.shared.grow("directory", rows)
        self._publish()

    def ensure_rows(self, rows: int) -> None:
        if rows > len(self.shared["directory"]):
            self.shared.grow("directory", rows)

    def _allocate_pages(self, row: np.ndarray, first_page: np.ndarray, last_page: np.ndarray) -> None:
        """Give every (row, page) the events touch a slot, at page granularity (not per night)."""
        directory = self.shared["directory"]
        width = directory.shape[1]
        spans = last_page - first_page + 1
        event = np.repeat(np.arange(len(row)), spans)
        page = first_page[event] + (np.arange(len(event)) - (np.cumsum(spans) - spans)[event])
        cell = row[event] * width + page
        missing = cell[directory.reshape(-1)[cell] == 0]
        if len(missing) == 0:
            return
        needed = np.unique(missing)
        first = self.slots
        self.slots += len(needed)
        if self.slots > len(self.shared["pages"]):
            self.shared.grow("pages", self.slots)
        self.shared["directory"].reshape(-1)[needed] = np.arange(first, self.slots)
        self._publish()

    def _publish(self) -> None:
        self.shared.counters[Counter.SLOTS] = self.slots
        self.shared.counters[Counter.ENTRIES] = self.entries

    # -- snapshots -----------------------------------------------------------------------

    def snapshot_chunks(self, rows: int, chunk_bytes: int = 4 << 20) -> Generator[Chunk, None, None]:
        """The state to write out, as copies of at most `chunk_bytes`: the caller applies
        batches between chunks, so a snapshot neither stalls writes for a whole memcpy nor
        holds a second calendar in memory.

        The copy is fuzzy: each chunk is as of when it was copied, newer than the sequence
        at the start. Replaying the log after that sequence makes it exact (last-writer-wins,
        in order). It holds because nothing it references changes meanwhile: entries are
        immutable and, until the last chunk is taken, none is reused; page slots and directory
        columns only grow. Reference counts are derived at load."""
        self.copying += 1
        try:
            yield "base_page", (1,), np.array([self.base_page])
            width = self.shared["directory"].shape[1]
            yield from _copy_rows("directory", lambda: self.shared["directory"][:, :width], rows, chunk_bytes)
            # Slots the directory copy can name exist by now, entries the pages copy can by then.
            yield from _copy_rows("pages", lambda: self.shared["pages"], self.slots, chunk_bytes)
            entries = self.entries
            for name in ENTRY_FIELDS:
                yield from _copy_rows(name, lambda: self.shared[name], entries, chunk_bytes)  # noqa: B023  used up before the next name
        finally:
            self.copying -= 1

    def load_state(self, state: dict[str, np.ndarray]) -> None:
        """Restore what `snapshot_chunks` wrote; reference counts and the free list are recomputed."""
        saved = state["directory"]
        saved_base = int(state["base_page"][0])
        # The configured span may reach earlier or later than the saved one: take both, now,
        # before any reader maps the directory (at run time ingest rejects nights before it).
        base = min(self.base_page, saved_base)
        last = max(self.base_page + self.shared["directory"].shape[1], saved_base + saved.shape[1])
        directory = np.zeros((max(len(saved), 1024), last - base), dtype=saved.dtype)
        directory[: len(saved), saved_base - base : saved_base - base + saved.shape[1]] = saved
        self.base_page = base
        self.shared.counters[Counter.BASE_PAGE] = base
        self.shared.allocate("directory", len(directory), directory.shape[1], directory)
        self.slots = len(state["pages"])
        self.shared.allocate("pages", max(self.slots, 1024), PAGE, state["pages"])
        self.entries = len(state["entry_price"])
        for name in ENTRY_FIELDS:
            self.shared.allocate(name, max(self.entries, 1024), 1, state[name])
        self.refcount = np.bincount(
            state["pages"].ravel(), minlength=len(self.shared["entry_price"])
        ).astype(np.int64)
        self.refcount[0] = 0
        self.free = np.flatnonzero(self.refcount[1 : self.entries] == 0) + 1
        self._publish()


def _copy_rows(name: str, array: Callable[[], np.ndarray], rows: int, chunk_bytes: int) -> Iterator[Chunk]:
    """Rows [0, rows) of an array the writer may grow meanwhile (it is looked up again for
    every chunk), at least one chunk even when empty."""
    first = array()
    shape = (rows, *first.shape[1:])
    step = max(1, chunk_bytes // max(1, first[:1].nbytes))
    for done in range(0, max(rows, 1), step):
        yield name, shape, array()[done : min(rows, done + step)].copy()


def _overlapping(row: np.ndarray, start: np.ndarray, nights: np.ndarray) -> bool:
    """Whether two events of the batch touch the same night (then the batch needs dedupe)."""
    order = np.lexsort((start, row))
    row, start, end = row[order], start[order], (start + nights)[order]
    return bool(np.any((row[1:] == row[:-1]) & (start[1:] < np.maximum.accumulate(end)[:-1])))


def _last_writer_per_night(flat: np.ndarray, changed_at: np.ndarray, arrival: np.ndarray) -> np.ndarray:
    """Indices of the winning update of each night: greatest changed_at, then latest arrival."""
    order = np.lexsort((arrival, changed_at, flat))
    sorted_flat = flat[order]
    last = np.empty(len(order), dtype=bool)
    last[-1] = True
    np.not_equal(sorted_flat[1:], sorted_flat[:-1], out=last[:-1])
    return order[last]


class CalendarReader:
    """A worker's read-only view of the calendar."""

    def __init__(self, shared: SharedArrays) -> None:
        self.shared = shared

    def entries_for_nights(self, rows: np.ndarray, days: np.ndarray) -> np.ndarray:
        """Entry ids, shape (len(rows), len(days)); 0 where a night has no value."""
        directory = self.shared["directory"]
        base = int(self.shared.counters[Counter.BASE_PAGE])
        page = days // PAGE - base
        inside = (page >= 0) & (page < directory.shape[1])
        known = rows < len(directory)
        result = np.zeros((len(rows), len(days)), dtype=np.int64)
        if inside.any() and known.any():
            slot = directory[np.ix_(rows[known], page[inside])]
            found = self._mapped("pages", slot)[slot, (days[inside] % PAGE)[None, :]]
            result[np.ix_(np.flatnonzero(known), np.flatnonzero(inside))] = found
        return result

    def entry(self, name: str, entries: np.ndarray) -> np.ndarray:
        """An entry column (`entry_price`, ...) gathered at `entries`."""
        return self._mapped(name, entries)[entries]  # type: ignore[no-any-return]  # numpy types this operation as Any

    def _mapped(self, name: str, indices: np.ndarray) -> np.ndarray:
        """The array, remapped if the writer grew it since this request's refresh: the writer
        publishes a grown array before it stores any index pointing into the new part."""
        array = self.shared[name]
        if indices.size and int(indices.max()) >= len(array):
            self.shared.refresh()
            array = self.shared[name]
        return array
