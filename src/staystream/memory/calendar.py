"""The calendar store: every night of every listing, in shared memory, three facts a night.

A night holds three facts, each last-writer-wins on its own `changed_at` (contract v1.1): the
price (minor units and currency, or -1 for "no price"), the availability and the stay rule
(`min_nights`). Layout (measured in docs/performance.md and docs/architecture.md):

- an *entry* is one combination of the three facts, each with its own `changed_at` (µs;
  `OLDEST` where the fact is unknown), plus the newest of the three. Entries are immutable once
  written and shared by all the nights holding that combination, so a night costs a 4-byte
  reference, not the 45 bytes of its values;
- an event gets an entry of its own; a night it wins outright (a `rate` newer than every fact of
  the night, or any event on an empty night) references it. A night where it wins only some
  facts references a *merged* entry: its facts where they win, the old entry's otherwise, one
  merged entry per distinct (old entry, winning events) combination of the batch;
- nights are kept in *pages* of 32 consecutive nights, allocated on first write; page slot 0 is
  the shared empty page, and entry 0 the "no fact" entry (every fact unknown);
- `directory[row, page - base_page]` is the slot holding that page of that listing's calendar,
  or, negated, the one entry every night of a *uniform* page references: such a page holds no
  slot (a season's calendar is mostly whole pages of one rate: 1 M seasonal listings held 2.1 GB
  of pages, most of them uniform). A write into a uniform page gives it a slot first, and a page
  found uniform after a write gives its slot back (`page_nights`/`night_entries` read both).
  The directory spans the pages written so far (the base moves left when older nights come:
  readers take the pair from `directory_and_base`), not every page `--earliest-night` allows: a
  decade of empty history cost 4 bytes a page a listing, 0.3 GB at a million listings.

The writer owns the reference counts (one per night, uniform pages included) and the free
lists; an entry whose count drops to zero, and a page slot given back, are reused only after
`GRACE_SECONDS`, so a reader that picked a reference just before it was overwritten still reads
the value it saw.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Generator, Iterator
from typing import Any

import numpy as np

from staystream.durable.snapshot import Chunk
from staystream.events.types import ALL_FACTS, FACT_AVAILABILITY, FACT_PRICE, FACT_STAY_RULE, NO_PRICE
from staystream.memory.shm import Counter, SharedArrays

PAGE = 32
# Nights to set: (flat night index, entry referenced now, event index or, for merged nights,
# the winning event of each fact, shape (3, nights), -1 where the old entry's fact stays).
Nights = tuple[np.ndarray, np.ndarray, np.ndarray]
GRACE_SECONDS = 5.0
OLDEST = np.iinfo(np.int64).min

ARRAYS: dict[str, np.dtype[Any]] = {
    "directory": np.dtype("<i4"),
    "pages": np.dtype("<u4"),
    "entry_changed_at": np.dtype("<i8"),  # the newest of the three facts' changed_at
    "entry_price_at": np.dtype("<i8"),
    "entry_available_at": np.dtype("<i8"),
    "entry_stay_at": np.dtype("<i8"),
    "entry_price": np.dtype("<i8"),
    "entry_currency": np.dtype("<u2"),
    "entry_min_nights": np.dtype("<u2"),
    "entry_available": np.dtype("u1"),
}
ENTRY_FIELDS = [name for name in ARRAYS if name.startswith("entry_")]
# Each fact: its bit in `RATE_DTYPE.facts`, the entry column of its changed_at, and the value
# columns it owns (entry column, event column, value when the fact is unknown).
FACTS = (
    (FACT_PRICE, "entry_price_at", (("entry_price", "price", NO_PRICE), ("entry_currency", "currency", 0))),
    (FACT_AVAILABILITY, "entry_available_at", (("entry_available", "available", 0),)),
    (FACT_STAY_RULE, "entry_stay_at", (("entry_min_nights", "min_nights", 0),)),
)


class Recycled:
    """Ids readers may still hold (entries, page slots): one given back is reused only after
    `GRACE_SECONDS`, and none leaves quarantine while a snapshot is copied (`frozen`)."""

    def __init__(self) -> None:
        # Ids to reuse, oldest first, in the chunks they were freed in: after a burst it holds
        # ~1 M ids, and one array grown by concatenation copied them all at every group (0.9 ms a
        # group instead of 0.06 on a fresh server, docs/benchmarks.md, issue 15).
        self.free: deque[np.ndarray] = deque()
        self.quarantine: deque[tuple[float, np.ndarray]] = deque()

    def give_back(self, ids: np.ndarray, seen: bool = True) -> None:
        """Ids no longer referenced; `seen=False` for ids no reader could have seen: free at once."""
        if len(ids):
            if seen:
                self.quarantine.append((time.monotonic() + GRACE_SECONDS, ids))
            else:
                self.free.append(ids)

    def take(self, n: int, frozen: bool) -> np.ndarray:
        """Up to `n` ids past their grace period, oldest first."""
        now = time.monotonic()
        while self.quarantine and self.quarantine[0][0] <= now and not frozen:
            self.free.append(self.quarantine.popleft()[1])
        taken = []
        while n and self.free:
            head = self.free[0]
            if len(head) <= n:
                taken.append(self.free.popleft())
                n -= len(head)
            else:
                taken.append(head[:n])
                self.free[0] = head[n:]
                n = 0
        return np.concatenate(taken) if taken else np.empty(0, dtype=np.int64)

    def held(self) -> np.ndarray:
        """Every id free or in quarantine."""
        return np.concatenate([np.empty(0, np.int64), *self.free, *(ids for _, ids in self.quarantine)])


class CalendarWriter:
    """The writer's handle: applies batches of calendar events to the shared calendar."""

    def __init__(self, shared: SharedArrays, base_page: int, width: int, rows: int = 1024) -> None:
        self.shared = shared
        self.base_page = base_page
        shared.counters[Counter.BASE_PAGE] = base_page
        shared.allocate("directory", rows, width)
        shared.allocate("pages", 1024, PAGE)
        for name in ENTRY_FIELDS:
            shared.allocate(name, 1024)
        for name in ("entry_changed_at", "entry_price_at", "entry_available_at", "entry_stay_at"):
            shared[name][0] = OLDEST
        shared["entry_price"][0] = NO_PRICE
        self.slots = 1  # slot 0: the empty page
        self.entries = 1  # entry 0: no fact
        self.refcount = np.zeros(1024, dtype=np.int64)
        self.free_entries = Recycled()
        self.free_slots = Recycled()
        self.copying = 0  # snapshots in progress: entries stay out of reuse meanwhile
        self._publish()

    # -- applying ------------------------------------------------------------------------

    def apply(self, batch: np.ndarray) -> tuple[int, int]:
        """Apply calendar events (`types.RATE_DTYPE`, `key` = row) in order: per night and
        fact, the greatest `changed_at` wins, at equal `changed_at` the later event.

        Returns (nights changed, events that won no fact of any night): an event that changes
        nothing keeps no entry and moves no reference."""
        if len(batch) == 0:
            return 0, 0
        ids = self._event_entries(batch)
        row_of_event = batch["key"].astype(np.int64)
        start = batch["start"].astype(np.int64)
        counts = batch["nights"].astype(np.int64)
        first_page = start // PAGE - self.base_page
        last_page = (start + counts - 1) // PAGE - self.base_page
        self._ensure_capacity(int(row_of_event.max()) + 1, int(first_page.min()), int(last_page.max()))
        shift = self.base_page  # the base may have moved left
        self._give_slots(row_of_event, start // PAGE - shift, (start + counts - 1) // PAGE - shift)

        event = np.repeat(np.arange(len(batch)), counts)
        day = start[event] + (np.arange(len(event)) - (np.cumsum(counts) - counts)[event])
        slot = self.shared["directory"][row_of_event[event], day // PAGE - self.base_page]
        flat = slot.astype(np.int64) * PAGE + day % PAGE
        changed_at = batch["changed_at"][event]
        pages = self.shared["pages"].reshape(-1)
        overlapping = _overlapping(row_of_event, start, counts)
        if bool((batch["facts"] == ALL_FACTS).all()):
            direct, merged = self._apply_whole(pages, flat, changed_at, event, overlapping)
        else:
            direct, merged = self._apply_facts(pages, flat, changed_at, event, batch["facts"], overlapping)
        direct_flat, direct_old, direct_event = direct
        pages[direct_flat] = ids[direct_event]
        referenced = np.bincount(direct_event, minlength=len(batch))
        won, replaced = referenced, direct_old
        if merged is not None:
            merged_flat, merged_old, sources = merged
            pages[merged_flat] = self._merged_entries(batch, merged_old, sources)
            replaced = np.concatenate([direct_old, merged_old])
            won = referenced + np.bincount(sources[sources >= 0], minlength=len(batch))
        self._count_references(replaced, ids, referenced)
        self._fold_uniform(np.unique(self._covered_cells(row_of_event, start, counts)))
        changed = len(direct_flat) + (0 if merged is None else len(merged[0]))
        return changed, int(np.count_nonzero(won == 0))

    def _apply_whole(self, pages: np.ndarray, flat: np.ndarray, changed_at: np.ndarray, event: np.ndarray,
                     overlapping: bool) -> tuple[Nights, Nights | None]:
        """Every event sets all three facts (v1 `rate`s): the hot path. The latest event of a
        night wins all its facts within the batch; against the night's entry it wins all of them
        when newer than the newest (one gather), else, rarely, only those older than it."""
        if overlapping:
            keep = _last_writer_per_night(flat, changed_at, event)
            flat, changed_at, event = flat[keep], changed_at[keep], event[keep]
        old = pages[flat].astype(np.int64)
        wins = changed_at >= self.shared["entry_changed_at"][old]
        if wins.all():  # the usual case: newer than everything it replaces, nothing to select
            return (flat, old, event), None
        rest = np.flatnonzero(~wins)
        if len(rest):
            rest_old = old[rest]
            sources = np.stack([
                np.where(changed_at[rest] >= self.shared[at][rest_old], event[rest], -1) for _, at, _ in FACTS
            ])
            partial = (sources >= 0).any(axis=0)
            if partial.any():
                merged = (flat[rest[partial]], rest_old[partial], sources[:, partial])
                return (flat[wins], old[wins], event[wins]), merged
        return (flat[wins], old[wins], event[wins]), None

    def _apply_facts(self, pages: np.ndarray, flat: np.ndarray, changed_at: np.ndarray, event: np.ndarray,
                     facts: np.ndarray, overlapping: bool) -> tuple[Nights, Nights | None]:
        """Events that set some facts: per night and fact the batch's winner, then against the
        night's entry. A night referencing an event's own entry when that entry says exactly
        what the night now holds, else a merged entry."""
        if overlapping:
            nights, night_of = np.unique(flat, return_inverse=True)
        else:  # every night once: no sorting
            nights, night_of = flat, np.arange(len(flat))
        old = pages[nights].astype(np.int64)
        sources = np.full((len(FACTS), len(nights)), -1, dtype=np.int64)
        old_unknown = []
        sets = facts[event]
        for f, (bit, at, _) in enumerate(FACTS):
            old_at = self.shared[at][old]
            old_unknown.append(old_at == OLDEST)
            carrying = np.flatnonzero(sets & bit)
            if len(carrying) == 0:
                continue
            if overlapping:
                carrying = carrying[_last_writer_per_night(flat[carrying], changed_at[carrying], event[carrying])]
            night = night_of[carrying]
            wins = changed_at[carrying] >= old_at[night]
            sources[f, night[wins]] = event[carrying[wins]]
        changed = np.flatnonzero((sources >= 0).any(axis=0))
        nights, old, sources = nights[changed], old[changed], sources[:, changed]
        candidate = sources.max(axis=0)
        exact = np.ones(len(nights), dtype=bool)
        for f, (bit, _, _) in enumerate(FACTS):
            kept_unknown = (sources[f] < 0) & old_unknown[f][changed] & ((facts[candidate] & bit) == 0)
            exact &= (sources[f] == candidate) | kept_unknown
        merge = ~exact
        merged = (nights[merge], old[merge], sources[:, merge]) if merge.any() else None
        return (nights[exact], old[exact], candidate[exact]), merged

    def _event_entries(self, batch: np.ndarray) -> np.ndarray:
        """One entry per event: the facts it sets, the others unknown."""
        ids = self._allocate(len(batch))
        changed_at = batch["changed_at"]
        self.shared["entry_changed_at"][ids] = changed_at
        whole = bool((batch["facts"] == ALL_FACTS).all())  # rates only: no masking
        for bit, at, columns in FACTS:
            sets = (batch["facts"] & bit) != 0
            self.shared[at][ids] = changed_at if whole else np.where(sets, changed_at, OLDEST)
            for name, field, unknown in columns:
                self.shared[name][ids] = batch[field] if whole else np.where(sets, batch[field], unknown)
        return ids

    def _merged_entries(self, batch: np.ndarray, old: np.ndarray, sources: np.ndarray) -> np.ndarray:
        """Entry ids for nights holding old facts and new ones: one entry per distinct (old
        entry, winning event of each fact) of the batch."""
        # The combination as one int64 (old entry, then each fact's event + 1 in base n + 1),
        # made dense again before it could overflow: one 1-D sort, not a sort of columns.
        base = len(batch) + 1
        key, bound = old, self.entries
        for source in sources[(sources >= 0).any(axis=1)]:
            if bound * base >= 1 << 62:
                key = np.unique(key, return_inverse=True)[1]
                bound = int(key.max()) + 1
            key = key * base + (source + 1)
            bound *= base
        _, first, which = np.unique(key, return_index=True, return_inverse=True)
        ids = self._allocate(len(first))
        combo_old, newest = old[first], np.full(len(first), OLDEST, dtype=np.int64)
        for f, (_, at, columns) in enumerate(FACTS):
            source = sources[f, first]
            new = source >= 0
            event = np.where(new, source, 0)
            fact_at = np.where(new, batch["changed_at"][event], self.shared[at][combo_old])
            self.shared[at][ids] = fact_at
            newest = np.maximum(newest, fact_at)
            for name, field, _ in columns:
                self.shared[name][ids] = np.where(new, batch[field][event], self.shared[name][combo_old])
        self.shared["entry_changed_at"][ids] = newest
        which = which.reshape(-1)
        self.refcount[ids] += np.bincount(which, minlength=len(ids))
        return ids[which]

    def _allocate(self, n: int) -> np.ndarray:
        """`n` entry ids: reused ones past their grace period first, then fresh ones."""
        reused = self.free_entries.take(n, frozen=bool(self.copying))
        fresh = np.arange(self.entries, self.entries + n - len(reused), dtype=np.int64)
        if len(fresh):
            self.entries += len(fresh)
            if self.entries > len(self.shared["entry_price"]):
                for name in ENTRY_FIELDS:
                    self.shared.grow(name, self.entries)
                refcount = np.zeros(len(self.shared["entry_price"]), dtype=np.int64)
                refcount[: len(self.refcount)] = self.refcount
                self.refcount = refcount
        return np.concatenate([reused, fresh])

    def _count_references(self, replaced: np.ndarray, ids: np.ndarray, referenced: np.ndarray) -> None:
        """Merged entries were counted as made; here the events' own entries and the replaced."""
        self.refcount[ids] += referenced
        replaced = replaced[replaced != 0]
        np.subtract.at(self.refcount, replaced, 1)
        self.free_entries.give_back(np.unique(replaced[self.refcount[replaced] == 0]))
        self.free_entries.give_back(ids[referenced == 0], seen=False)  # never visible to a reader

    # -- space ---------------------------------------------------------------------------

    def _ensure_capacity(self, rows: int, first_page: int, last_page: int) -> None:
        directory = self.shared["directory"]
        shift = max(0, -first_page)
        width = max(directory.shape[1], last_page + 1) + shift
        if shift:
            # Nights before the base (a historical import): widen to the left, by half the
            # width at least so an import going back in time copies the directory a few times,
            # not once a page. Readers take the base and the directory as one pair
            # (`directory_and_base`): the shift count is odd while the two disagree.
            shift = max(shift, directory.shape[1] // 2)
            width = max(directory.shape[1], last_page + 1) + shift
            moved = np.zeros((directory.shape[0], width), dtype=directory.dtype)
            moved[:, shift : shift + directory.shape[1]] = directory
            self.shared.counters[Counter.DIRECTORY_SHIFTS] += 1
            self.base_page -= shift
            self.shared.allocate("directory", directory.shape[0], width, moved)
            self.shared.counters[Counter.BASE_PAGE] = self.base_page
            self.shared.counters[Counter.DIRECTORY_SHIFTS] += 1
        elif width > directory.shape[1]:
            self.shared.allocate("directory", directory.shape[0], width, directory)
        if rows > len(self.shared["directory"]):
            self.shared.grow("directory", rows)
        self._publish()

    def ensure_rows(self, rows: int) -> None:
        if rows > len(self.shared["directory"]):
            self.shared.grow("directory", rows)

    def _cells(self, row: np.ndarray, first_page: np.ndarray, last_page: np.ndarray) -> np.ndarray:
        """Flat directory cells of pages [first_page, last_page] of each row (directory columns)."""
        spans = np.maximum(last_page - first_page + 1, 0)
        event = np.repeat(np.arange(len(row)), spans)
        page = first_page[event] + (np.arange(len(event)) - (np.cumsum(spans) - spans)[event])
        return row[event] * self.shared["directory"].shape[1] + page  # type: ignore[no-any-return]  # numpy types this operation as Any

    def _give_slots(self, row: np.ndarray, first_page: np.ndarray, last_page: np.ndarray) -> None:
        """Give every (row, page) the events touch a slot of its own, at page granularity (not
        per night), holding what the page held (nothing, or its one entry)."""
        cells = self._cells(row, first_page, last_page)
        directory = self.shared["directory"].reshape(-1)
        needed = np.unique(cells[directory[cells] <= 0])
        if len(needed) == 0:
            return
        slots = self.free_slots.take(len(needed), frozen=bool(self.copying))
        fresh = np.arange(self.slots, self.slots + len(needed) - len(slots), dtype=np.int64)
        self.slots += len(fresh)
        if self.slots > len(self.shared["pages"]):
            self.shared.grow("pages", self.slots)
        slots = np.concatenate([slots, fresh])
        # Filled before the directory names them: a reader sees the page as before, either way.
        self.shared["pages"][slots] = (-directory[needed]).astype(np.uint32)[:, None]
        directory[needed] = slots
        self._publish()

    def _covered_cells(self, row: np.ndarray, start: np.ndarray, counts: np.ndarray) -> np.ndarray:
        """Cells of the pages some event covers whole: the ones checked after a batch. A page an
        event only partly covers is left with its slot even in the rare case it stays uniform
        (every night it got lost to newer facts): checking the pages given a slot too read a
        whole page for each page a 7-night change touches; a snapshot's load folds it."""
        return self._cells(row, -(-start // PAGE) - self.base_page, (start + counts) // PAGE - 1 - self.base_page)

    def _fold_uniform(self, cells: np.ndarray) -> None:
        """Pages among `cells` whose nights all reference one entry give their slot back: the
        directory holds the entry (negated). The slot is reused after the grace period, so a
        reader that took it from the directory just before still reads the page it saw."""
        directory = self.shared["directory"].reshape(-1)
        slots = directory[cells].astype(np.int64)
        nights = self.shared["pages"][slots]
        uniform = np.flatnonzero((nights == nights[:, :1]).all(axis=1))
        if len(uniform):
            directory[cells[uniform]] = -nights[uniform, 0].astype(np.int64)
            self.free_slots.give_back(slots[uniform])

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
        immutable and, until the last chunk is taken, no entry and no page slot is reused;
        directory columns only grow. Reference counts are derived at load."""
        self.copying += 1
        try:
            base, width = self.base_page, self.shared["directory"].shape[1]
            yield "base_page", (1,), np.array([base])
            # The base may move left between chunks (older nights): the same columns, shifted.
            yield from _copy_rows(
                "directory", lambda: self.shared["directory"][:, base - self.base_page :][:, :width], rows, chunk_bytes
            )
            # Slots the directory copy can name exist by now, entries the pages copy can by then.
            yield from _copy_rows("pages", lambda: self.shared["pages"], self.slots, chunk_bytes)
            entries = self.entries
            for name in ENTRY_FIELDS:
                yield from _copy_rows(name, lambda: self.shared[name], entries, chunk_bytes)  # noqa: B023  used up before the next name
        finally:
            self.copying -= 1

    def load_state(self, state: dict[str, np.ndarray]) -> None:
        """Restore what `snapshot_chunks` wrote, compacted: uniform pages folded into the
        directory, the others renumbered densely (slots given back are not kept); reference
        counts and the free lists are recomputed."""
        saved, saved_base, pages = _in_pages(state["directory"], int(state["base_page"][0]), state["pages"])
        used = np.flatnonzero(saved.any(axis=0))  # leading columns never written cost 4 bytes a row
        if len(used) and used[0] > 0:
            saved, saved_base = saved[:, used[0] :], saved_base + int(used[0])
        # The configured span may reach earlier or later than the saved one: take both, now,
        # before any reader maps the directory (at run time ingest rejects nights before it).
        base = min(self.base_page, saved_base)
        last = max(self.base_page + self.shared["directory"].shape[1], saved_base + saved.shape[1])
        directory = np.zeros((max(len(saved), 1024), last - base), dtype=saved.dtype)
        directory[: len(saved), saved_base - base : saved_base - base + saved.shape[1]] = saved
        self.entries = len(state["entry_price"])
        for name in ("entry_price_at", "entry_available_at", "entry_stay_at"):
            if name not in state:  # a snapshot from before facts: each entry's facts set at once
                state[name] = state["entry_changed_at"]
        for name in ENTRY_FIELDS:
            self.shared.allocate(name, max(self.entries, 1024), 1, state[name])
        self.refcount = np.zeros(len(self.shared["entry_price"]), dtype=np.int64)
        self.slots = _compact_pages(directory, pages, self.shared.allocate("pages", len(pages) + 1, PAGE),
                                    self.refcount)
        self.refcount[0] = 0
        self.base_page = base
        self.shared.counters[Counter.BASE_PAGE] = base
        self.shared.allocate("directory", len(directory), directory.shape[1], directory)
        self.free_entries, self.free_slots = Recycled(), Recycled()
        self.free_entries.give_back(np.flatnonzero(self.refcount[1 : self.entries] == 0) + 1, seen=False)
        self._publish()


def _in_pages(directory: np.ndarray, base: int, pages: np.ndarray) -> tuple[np.ndarray, int, np.ndarray]:
    """A snapshot's directory, base page and pages in pages of `PAGE` nights: snapshots written
    before issue 15 held pages of 64 nights, each now two (or more) pages."""
    split = pages.shape[1] // PAGE
    if split == 1:
        return directory, base, pages
    slots = directory[..., None].astype(np.int64)
    parts = np.where(slots > 0, slots * split + np.arange(split), slots)  # the empty page's parts: empty
    return parts.reshape(len(directory), -1).astype(directory.dtype), base * split, pages.reshape(-1, PAGE)


def _compact_pages(directory: np.ndarray, saved: np.ndarray, pages: np.ndarray, refcount: np.ndarray,
                   cells_a_step: int = 1 << 18) -> int:
    """Copy the saved pages the directory names into `pages` from slot 1 on, in its order, and
    point the directory at them, folding uniform ones into it (negated entry); counts every
    night's reference into `refcount`. Returns the slots used. A step at a time: the saved pages
    are a memory-mapped file, read once."""
    flat = directory.reshape(-1)
    refcount += PAGE * np.bincount(-flat[flat < 0], minlength=len(refcount))  # saved folded
    cells = np.flatnonzero(flat > 0)
    slots = 1
    for first in range(0, len(cells), cells_a_step):
        cell = cells[first : first + cells_a_step]
        nights = np.asarray(saved[flat[cell]])
        refcount += np.bincount(nights.reshape(-1), minlength=len(refcount))
        uniform = (nights == nights[:, :1]).all(axis=1)
        flat[cell[uniform]] = -nights[uniform, 0].astype(np.int64)
        own = np.flatnonzero(~uniform)
        pages[slots : slots + len(own)] = nights[own]
        flat[cell[own]] = np.arange(slots, slots + len(own))
        slots += len(own)
    return slots


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


def directory_and_base(shared: SharedArrays) -> tuple[np.ndarray, int]:
    """(Reader) the directory and the page number of its column 0, as one pair.

    The writer spans only the pages written so far and moves the base left when older nights
    arrive (a new directory, then the new base): a reader taking the two apart could read
    another page's slots. Every reader of the directory takes it from here."""
    counters = shared.counters
    while True:
        shifts = int(counters[Counter.DIRECTORY_SHIFTS])
        if shifts % 2 == 0:
            directory = shared.current("directory")
            base = int(counters[Counter.BASE_PAGE])
            if int(counters[Counter.DIRECTORY_SHIFTS]) == shifts:
                return directory, base
        time.sleep(0)  # the writer is between the two stores: a few microseconds


def page_nights(pages: np.ndarray, slot: np.ndarray, nights: int | slice) -> np.ndarray:
    """(Reader) The entries of nights `nights` (a column, or a slice of columns) of the pages
    the directory names at `slot` (1-D), a row per slot: a uniform page (a negative slot) has its
    entry at every night."""
    found = pages[:, nights][np.maximum(slot, 0)]
    uniform = np.flatnonzero(slot < 0)
    if len(uniform):
        entry = (-slot[uniform]).astype(pages.dtype)
        found[uniform] = entry if found.ndim == 1 else entry[:, None]
    return found  # type: ignore[no-any-return]  # numpy types this operation as Any


def night_entries(pages: np.ndarray, slot: np.ndarray, night: np.ndarray) -> np.ndarray:
    """(Reader) The entry of each (directory slot, night of its page) pair, broadcast together."""
    found = pages[np.maximum(slot, 0), night]
    np.copyto(found, (-slot).astype(pages.dtype), where=slot < 0)
    return found  # type: ignore[no-any-return]  # numpy types this operation as Any


class CalendarReader:
    """A worker's read-only view of the calendar."""

    def __init__(self, shared: SharedArrays) -> None:
        self.shared = shared

    def entries_for_nights(self, rows: np.ndarray, days: np.ndarray) -> np.ndarray:
        """Entry ids, shape (len(rows), len(days)); 0 where a night has no value."""
        directory, base = directory_and_base(self.shared)
        page = days // PAGE - base
        inside = (page >= 0) & (page < directory.shape[1])
        known = rows < len(directory)
        result = np.zeros((len(rows), len(days)), dtype=np.int64)
        if inside.any() and known.any():
            slot = directory[np.ix_(rows[known], page[inside])]
            found = night_entries(self._mapped("pages", slot), slot, (days[inside] % PAGE)[None, :])
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
