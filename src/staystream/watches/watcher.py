"""The watcher process: turns applied writes into watch events, and delivers webhooks.

It follows the writer's change feed (`memory/feed.py`), finds the watches a change can affect
through `WatchIndex`, evaluates those watches on the changed places only, every (watch, row) pair
at once by search's rules (`batch.py`), and records the events with the state they leave in one durable transaction
(`WatchStore.record`) before bumping `Counter.OUTBOX`, which workers serving SSE streams follow.

On start, when the feed lapped it, and when the FX table changes, it evaluates every watch on
its whole area instead (a group of watches at a time: every listing of their areas, by search's
`candidates`, through the same `batch.py`), so nothing acknowledged while it was down or behind
is missed: events are what differs from the stored state (`evaluate.changes`), whenever the
watcher looks.

With PostgreSQL (`watches/postgres.py`) the watcher of shard k on each node waits for that
shard's lock; the one holding it produces, the others stand by and take over (from the stored
state, like a restart) when its session ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import itertools
import logging
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from staystream import metrics
from staystream.config import Config
from staystream.durable import sqlite as listings_db
from staystream.events.fx import default_fx
from staystream.memory.feed import ALL_NIGHTS, FeedReader
from staystream.memory.shm import Counter
from staystream.search.engine import Query, candidates
from staystream.search.view import Store
from staystream.watches import backend, batch
from staystream.watches.evaluate import Offer, changes
from staystream.watches.index import BUCKET_NIGHTS, WatchIndex
from staystream.watches.places import place_id, place_rows
from staystream.watches.spec import query_of
from staystream.watches.store import Event, Placed, Watch
from staystream.watches.webhooks import Deliveries

log = logging.getLogger("staystream.watcher")
Cheapest = tuple[int, int, int, int]  # a place's cheapest offer: listing row, ranking total, total shown, currency
IDLE_POLL_SECONDS = 0.02  # between looks at an idle feed: far inside the 1 s promise
BUSY_POLL_SECONDS = 0.02  # after a poll that had work: its cost grows with the changes, not the polls
EXPIRY_SECONDS = 60.0  # between sweeps of expired watches
SLICE_SECONDS = 0.1  # of whole-area evaluations per poll: the feed is read again in between
WHOLE_GROUP = 64  # watches evaluated whole together, one transaction (short: workers create watches meanwhile)
WHOLE_PAIRS = 200_000  # or fewer, once their areas hold this many listing rows
KEEP_EVENTS_SECONDS = 86400.0  # how long a reconnecting SSE client may ask for missed events


@dataclass
class Live:
    """A watch the index follows, with its parameters parsed."""

    watch: Watch
    query: Query


class Watcher:
    def __init__(self, config: Config, shm_path: Path, shard: int = 0) -> None:
        self.config = config
        self.shard = (shard, config.watchers)
        self.view = Store(config.database_path, shm_path, default_fx(config.fx_table))
        self.shared = self.view.shared
        self.db = backend.for_watcher(config, shard, self.view.connection)  # a standby waits here
        self.feed = FeedReader(self.shared)  # before the first evaluation: no change falls between
        self.index = WatchIndex()
        self.live: dict[int, Live] = {}  # watches the index follows
        self.waiting: dict[int, Watch] = {}  # watches to evaluate whole, in order (all of them at start)
        self.said: dict[int, dict[str, Placed]] = self.db.load_state(self.shard)
        self.holders: defaultdict[int, set[int]] = defaultdict(set)  # place row -> watches that said it matches
        for seq, places in self.said.items():
            for p in places.values():
                self.holders[p.row].add(seq)
        self.table = batch.WatchTable()
        self.names: dict[int, tuple[str, str]] = {}  # row -> (source, listing_id): never changes
        self.newest_seq = 0  # the highest seq of this shard's watches taken in
        self.held_watches, self.highest_seq = 0, 0  # of all shards, at the last look (`WatchStore.census`)
        self.watches_changed = -1
        self.fx_label = self.view.fx.label
        self.deliveries = Deliveries(self.db, self.shard)

    # -- the loop ----------------------------------------------------------------------------

    async def run(self) -> None:
        delivering = asyncio.create_task(self.deliveries.run())
        next_expiry = 0.0
        try:
            while True:
                started = time.perf_counter()
                self.view.refresh()
                if time.monotonic() >= next_expiry:
                    self._expire()
                    next_expiry = time.monotonic() + EXPIRY_SECONDS
                busy = self.poll()
                if busy:
                    metrics.watch_poll_seconds.observe(time.perf_counter() - started)
                await asyncio.sleep(BUSY_POLL_SECONDS if busy else IDLE_POLL_SECONDS)
        finally:
            delivering.cancel()

    def poll(self) -> bool:
        """One look at the feed, then new watches for up to `SLICE_SECONDS`; True if there was work."""
        self._reload_watches()
        busy = False
        if self.view.fx.label != self.fx_label:  # every total may have moved
            self.fx_label = self.view.fx.label
            self.table.price_bounds(self.view.fx, list(self.live))
            self.index.set_bounds(list(self.live), self.table.bound_base[list(self.live)])
            self.feed.read()
            self._reevaluate_all()
            busy = True
        entries, _ = self.feed.read()
        if entries is None:
            log.warning("the change feed lapped the watcher; evaluating every watch")
            self._reevaluate_all()
            busy = True
        elif len(entries):
            self._evaluate_changes(entries)
            busy = True
        if self.waiting:
            self._evaluate_waiting(time.perf_counter() + SLICE_SECONDS)
            if not self.waiting:
                # The watches taken in (objects per watch and per place said) live on: a full
                # collection scanning 100,000 of them stalled the loop for a second (benchmarks.md).
                gc.freeze()
            busy = True
        return busy

    # -- watches come and go -----------------------------------------------------------------

    def _reload_watches(self) -> None:
        """New watches join `waiting` (evaluated whole, then indexed); deleted ones are dropped."""
        changed = int(self.shared.counters[Counter.WATCHES_CHANGED])
        if changed == self.watches_changed and not self.db.watches_changed_elsewhere():
            return
        self.watches_changed = changed
        with self.db.reading():
            held, newer, highest = self.db.census(self.highest_seq)
            for watch in self.db.watches_since(self.newest_seq, self.shard):
                self.waiting[watch.seq] = watch
                self.newest_seq = max(self.newest_seq, watch.seq)
            deleted = held < self.held_watches + newer
            present = self.db.live_seqs(self.shard) if deleted else set()
        self.held_watches, self.highest_seq = held, highest
        if deleted:
            self._forget([seq for seq in [*self.live, *self.waiting] if seq not in present])

    def _reevaluate_all(self) -> None:
        for seq, live in self.live.items():
            self.waiting[seq] = live.watch

    def _forget(self, seqs: list[int]) -> None:
        for seq in seqs:
            self.waiting.pop(seq, None)
            if self.live.pop(seq, None) is not None:
                self.index.remove(seq)
            self.table.remove(seq)
            for p in self.said.pop(seq, {}).values():
                self.holders[p.row].discard(seq)

    def _expire(self) -> None:
        self._forget(self.db.expire(time.time(), KEEP_EVENTS_SECONDS, self.shard))

    # -- evaluation --------------------------------------------------------------------------

    def _evaluate_waiting(self, until: float) -> None:
        """Watches evaluated over their whole area (new ones, all after a start, a lapped feed or
        a new FX table), oldest first, a group at a time until `until`; each then follows the
        feed (the index). A change applied meanwhile is in what this reads, or in the feed read after."""
        while self.waiting:
            group: list[tuple[int, np.ndarray]] = []
            pairs = 0
            while self.waiting and len(group) < WHOLE_GROUP and pairs < WHOLE_PAIRS:
                seq = next(iter(self.waiting))
                watch = self.waiting.pop(seq)
                live = self.live.get(seq)
                if live is None:
                    live = self.live[seq] = Live(watch, query_of(watch.params))
                    self.table.add(seq, live.query, self.view.fx)
                    self.index.add(seq, live.query.area, live.query.checkin, live.query.nights,
                                   float(self.table.bound_base[seq]))
                query = live.query
                rows = candidates(self.shared, query.area, query.guests, query.kinds).astype(np.int64)
                group.append((seq, rows))
                pairs += len(rows)
            self._evaluate_whole(group)
            if time.perf_counter() >= until:
                return

    def _evaluate_whole(self, group: list[tuple[int, np.ndarray]]) -> None:
        """Each watch of `group` paired with every listing row of its area box (search's own
        `candidates`), all pairs judged at once (`batch.evaluate`, as for changes): the places
        that match now, against every place the watch last said."""
        watch = np.concatenate([np.full(len(rows), seq, np.int64) for seq, rows in group])
        row = np.concatenate([rows for _, rows in group])
        now = self._cheapest(batch.evaluate(self.shared, self.view.fx, self.table, watch, row))
        names = self._names(sorted({place for offers in now.values() for place in offers}
                                   | {found[0] for offers in now.values() for found in offers.values()}))
        events: list[Event] = []
        placed: list[tuple[int, str, Placed]] = []
        gone: list[tuple[int, str]] = []
        for seq, _ in group:
            offers = _offers(now.get(seq, {}), names)
            said = self.said.get(seq, {})
            result = changes(seq, said, offers, set(offers) | set(said), self._every_change(seq))
            events += result[0]
            placed += result[1]
            gone += result[2]
        self._record(events, placed, gone)

    def _evaluate_changes(self, entries: np.ndarray) -> None:
        """The watches the changed rows can affect, on those rows only, all pairs at once
        (`batch.evaluate`); Python then runs only for the pairs that match or were said to."""
        rows, first, end = _pieces(entries)
        rows_in_use = min(int(self.shared.counters[Counter.ROWS]), len(self.shared["lat"]))
        known = rows < rows_in_use
        rows, first, end = rows[known], first[known], end[known]
        lat, lon = self.shared["lat"][rows], self.shared["lon"][rows]
        # Most pairs are a write far above the watch's max_price: the index never gathers those
        # the row's cheapest night around the change already prices out, `could_match` drops those
        # the changed nights alone price out, and the pairs of the watches holding the row's
        # place (they may have to say `left`) are added back, found from the holders.
        floors, around = self._bucket_floors(rows, first)
        watch, position = self.index.affected(rows, lat, lon, first, end, around)
        possible = batch.could_match(self.table, watch, floors[position], first[position], end[position])
        held_w, held_p = self._held_pairs(rows)
        held = self.index.affects(held_w, lat[held_p], lon[held_p], first[held_p], end[held_p])
        watch = np.concatenate([watch[possible], held_w[held]])
        position = np.concatenate([position[possible], held_p[held]])
        pairs = np.sort((watch << 32) | rows[position])  # a row may come in several entries and cells
        pairs = pairs[np.r_[True, pairs[1:] != pairs[:-1]]] if len(pairs) else pairs
        watch, row = pairs >> 32, pairs & 0xFFFFFFFF
        # A listing that moved away (or changed place) leaves the watches that last had it.
        moved_w, moved_r = [], []
        described = rows[first == ALL_NIGHTS[0]]
        for r, place in zip(described.tolist(), place_rows(self.shared, described).tolist(), strict=True):
            for seq in self.holders.get(place, ()):
                moved_w.append(seq)
                moved_r.append(r)
        if moved_w:
            watch = np.concatenate([watch, np.array(moved_w, np.int64)])
            row = np.concatenate([row, np.array(moved_r, np.int64)])
        if len(watch):
            watch, row = self._with_place_members(watch, row, rows_in_use)
        if not len(watch):
            return
        now = self._cheapest(batch.evaluate(self.shared, self.view.fx, self.table, watch, row))
        touched = (watch << 32) | place_rows(self.shared, row)
        held = np.unique(touched[self._holds(watch, row)])
        looked: defaultdict[int, set[int]] = defaultdict(set)  # watch -> place rows looked at
        for key in held.tolist():
            looked[key >> 32].add(key & 0xFFFFFFFF)
        for w, offers in now.items():
            looked[w].update(offers)
        names = self._names(sorted({p for places in looked.values() for p in places}
                                   | {found[0] for offers in now.values() for found in offers.values()}))
        events: list[Event] = []
        placed: list[tuple[int, str, Placed]] = []
        gone: list[tuple[int, str]] = []
        for seq, places in looked.items():
            ids = {place_id(*names[place]) for place in places if place in names}
            result = changes(seq, self.said.get(seq, {}), _offers(now.get(seq, {}), names), ids,
                             self._every_change(seq))
            events += result[0]
            placed += result[1]
            gone += result[2]
        self._record(events, placed, gone)

    def _every_change(self, seq: int) -> bool:
        """Whether the watch opted in to `price_change` (one not yet taken in is judged whole later)."""
        live = self.live.get(seq)
        return live is not None and live.watch.changes

    def _bucket_floors(self, rows: np.ndarray, first: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per piece (`_pieces`: a row's changed nights inside one bucket of the index), the least
        a night of the row costs in its bucket (so in its changed nights), and in its window (the
        bucket and one each side); 0 for a description. Each (row, bucket) is read once, however
        many pieces share it as a neighbour."""
        floors, around = np.zeros(len(rows)), np.zeros(len(rows))
        dated = np.flatnonzero(first != ALL_NIGHTS[0])
        if not len(dated):
            return floors, around
        piece = (rows[dated] << 32) + first[dated] // BUCKET_NIGHTS
        keys = np.unique(np.concatenate([piece - 1, piece, piece + 1]))
        bucket = keys & 0xFFFFFFFF
        least = batch.price_floors(self.shared, self.view.fx, keys >> 32, bucket * BUCKET_NIGHTS,
                                   (bucket + 1) * BUCKET_NIGHTS)
        floors[dated] = least[np.searchsorted(keys, piece)]
        around[dated] = np.minimum(np.minimum(least[np.searchsorted(keys, piece - 1)], floors[dated]),
                                   least[np.searchsorted(keys, piece + 1)])
        return floors, around

    def _cheapest(self, matches: batch.Matches) -> dict[int, dict[int, Cheapest]]:
        """Per watch, per place row, its cheapest matching offer (ranking total, then row), as search ranks."""
        match_places = place_rows(self.shared, matches.row)
        order = np.lexsort((matches.row, matches.ranked, match_places, matches.watch))
        keys = (matches.watch[order] << 32) | match_places[order]
        first_of = np.r_[True, keys[1:] != keys[:-1]] if len(keys) else np.zeros(0, bool)
        best = order[first_of]
        now: defaultdict[int, dict[int, Cheapest]] = defaultdict(dict)
        for w, r, place, ranked, total, currency in zip(
            matches.watch[best].tolist(), matches.row[best].tolist(), match_places[best].tolist(),
            matches.ranked[best].tolist(), matches.total[best].tolist(), matches.currency[best].tolist(), strict=True,
        ):
            now[w][place] = (r, ranked, total, currency)
        return now

    def _with_place_members(
        self, watch: np.ndarray, row: np.ndarray, rows_in_use: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """The pairs plus, for each, the other listings of its row's place inside the watch's box:
        a place is judged by its cheapest offer, which may be a listing the write did not touch."""
        every = place_rows(self.shared, np.arange(rows_in_use))
        pair_place = place_rows(self.shared, row)
        touched = np.unique(pair_place)
        members = np.flatnonzero(np.isin(every, touched))
        if len(members) == len(touched):  # each touched place is a single listing
            return watch, row
        members = members[np.argsort(every[members], kind="stable")]
        keys = every[members]
        starts = np.searchsorted(keys, pair_place, "left")
        counts = np.searchsorted(keys, pair_place, "right") - starts
        offsets = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
        more_w, more_r = np.repeat(watch, counts), members[np.repeat(starts, counts) + offsets]
        boxed = self.index.in_box(more_w, self.shared["lat"][more_r], self.shared["lon"][more_r])
        pairs = np.unique((np.concatenate([watch, more_w[boxed]]) << 32) | np.concatenate([row, more_r[boxed]]))
        return pairs >> 32, pairs & 0xFFFFFFFF

    def _held_pairs(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(watch, position in `rows`) for every watch holding the place of each row."""
        return self._holders_of(place_rows(self.shared, rows))

    def _holds(self, watch: np.ndarray, row: np.ndarray) -> np.ndarray:
        """Which (watch, row) pairs have the watch holding the row's place (it said it matches)."""
        places = place_rows(self.shared, row)
        distinct = np.unique(places)
        held_w, held_p = self._holders_of(distinct)
        holds: np.ndarray = np.isin((watch << 32) | places, (held_w << 32) | distinct[held_p])
        return holds

    def _holders_of(self, places: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(watch, position in `places`) for every watch holding each place: Python touches each
        distinct place once, numpy spreads the holders over the positions."""
        distinct, inverse = np.unique(places, return_inverse=True)
        held = [self.holders.get(place, ()) for place in distinct.tolist()]
        counts = np.fromiter(map(len, held), np.int64, len(held))
        watches = np.fromiter(itertools.chain.from_iterable(held), np.int64, int(counts.sum()))
        per_position = counts[inverse]
        position = np.repeat(np.arange(len(places)), per_position)
        offsets = np.arange(len(position)) - np.repeat(np.cumsum(per_position) - per_position, per_position)
        return watches[np.repeat((np.cumsum(counts) - counts)[inverse], per_position) + offsets], position

    def _record(self, events: list[Event], placed: list[tuple[int, str, Placed]], gone: list[tuple[int, str]]) -> None:
        if not (events or placed or gone):
            return
        webhooks = {event.watch_seq for event in events if self.live[event.watch_seq].watch.webhook}
        self.db.record(events, webhooks, placed, gone)
        for seq, pid, p in placed:
            self.said.setdefault(seq, {})[pid] = p
            self.holders[p.row].add(seq)
        for seq, pid in gone:
            said = self.said.get(seq, {})
            if pid in said:
                row = said.pop(pid).row
                self.holders[row].discard(seq)
        if events:
            self.shared.counters[Counter.OUTBOX] += 1
            metrics.watch_events.inc(len(events))
            if webhooks:
                self.deliveries.wake()

    def _names(self, rows: list[int]) -> dict[int, tuple[str, str]]:
        missing = [row for row in rows if row not in self.names]
        if missing:
            for start in range(0, len(missing), 900):  # SQLite's bound on parameters
                for row, found in listings_db.details(self.view.connection, missing[start : start + 900]).items():
                    self.names[row] = (str(found["source"]), str(found["listing_id"]))
        return {row: self.names[row] for row in rows if row in self.names}


def _offers(cheapest: dict[int, Cheapest], names: dict[int, tuple[str, str]]) -> dict[str, Offer]:
    """A watch's cheapest offers by place id (a place or listing SQLite no longer names is skipped, as search does)."""
    offers = {}
    for place, (row, ranked, total, currency) in cheapest.items():
        if place in names and row in names:
            offers[place_id(*names[place])] = Offer(row, ranked, Placed(place, *names[row], total, currency))
    return offers


def _pieces(entries: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The feed's entries coalesced, as (row, first, end): each described row once (every night),
    and per (row, bucket of the index) its changed nights there as one span (their union), so the
    work grows with the distinct rows and buckets changed, not with the writes repeating them.
    Not one span per row: a row changed in spring and in autumn would reach every watch of the summer."""
    row, first, end = (entries[name].astype(np.int64) for name in ("row", "first", "end"))
    described = first == ALL_NIGHTS[0]
    described_rows = np.unique(row[described])
    dated = ~described & ~np.isin(row, described_rows)  # a description reaches every stay anyway
    row, first, end = row[dated], first[dated], end[dated]
    low, high = first // BUCKET_NIGHTS, (end - 1) // BUCKET_NIGHTS
    spans = np.maximum(high - low + 1, 0)
    of = np.repeat(np.arange(len(row)), spans)
    bucket = low[of] + np.arange(len(of)) - np.repeat(np.cumsum(spans) - spans, spans)
    row, first = row[of], np.maximum(first[of], bucket * BUCKET_NIGHTS)
    end = np.minimum(end[of], (bucket + 1) * BUCKET_NIGHTS)
    order = np.lexsort((bucket, row))
    row, bucket, first, end = row[order], bucket[order], first[order], end[order]
    new_piece = np.r_[True, (row[1:] != row[:-1]) | (bucket[1:] != bucket[:-1])] if len(row) else np.zeros(0, bool)
    starts = np.flatnonzero(new_piece)
    return (np.concatenate([described_rows, row[starts]]),
            np.concatenate([np.full(len(described_rows), ALL_NIGHTS[0], np.int64),
                            np.minimum.reduceat(first, starts) if len(starts) else starts]),
            np.concatenate([np.full(len(described_rows), ALL_NIGHTS[1], np.int64),
                            np.maximum.reduceat(end, starts) if len(starts) else starts]))


def run(config: Config, shm_path: Path, shard: int = 0) -> None:
    """Entry point of watcher process number `shard` (of `config.watchers`)."""
    import uvloop

    async def main() -> None:
        watcher = Watcher(config, shm_path, shard)
        log.info("watcher started", extra={"shard": shard, "watches": watcher.db.count(watcher.shard)})
        await watcher.run()

    with contextlib.suppress(KeyboardInterrupt):
        uvloop.run(main())


