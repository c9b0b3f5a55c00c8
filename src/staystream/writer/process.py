"""The writer process: the single owner of every write.

Workers send one frame per request over a unix socket. The writer takes every frame that is
waiting (group commit), writes them in one SQLite transaction that is fsynced before it
returns, applies them to the shared arrays, and only then answers each frame. While one group
commits in a thread, the next one forms.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import gc
import json
import logging
import os
import shutil
import signal
import time
from collections import deque
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from staystream import metrics
from staystream.config import Config
from staystream.dates import epoch_day
from staystream.durable import snapshot
from staystream.durable.embedded import Durable, Recovered, SqliteDurable
from staystream.durable.history import HistoryKeeper
from staystream.durable.lock import StoreLocked
from staystream.events.types import (
    RATE_DTYPE,
    Commit,
    Delist,
    Fee,
    Link,
    Listing,
    WriteReply,
    WriteRequest,
    split_key,
)
from staystream.memory.calendar import PAGE, CalendarWriter
from staystream.memory.feed import ALL_NIGHTS, FeedWriter
from staystream.memory.fees import FeeColumns
from staystream.memory.layout import SHARED_ARRAYS
from staystream.memory.listings import ListingColumns
from staystream.memory.shm import Counter, SharedArrays
from staystream.paths import PLACES_CACHE_FILE, WRITER_STATUS_FILE, writer_socket
from staystream.writer import wire
from staystream.writer.places import SAVE_SECONDS, WriterPlaces

log = logging.getLogger("staystream.writer")
Frame = tuple[asyncio.StreamWriter, WriteRequest, int]  # (reply to, request, events)


@dataclass
class Group:
    """Frames that commit together, with their keys resolved to rows."""

    frames: list[Frame]
    new_keys: list[tuple[int, str, str]] = field(default_factory=list)
    rates: np.ndarray = field(default_factory=lambda: np.empty(0, RATE_DTYPE))
    listings: list[tuple[int, Listing]] = field(default_factory=list)
    delists: list[tuple[int, Delist]] = field(default_factory=list)
    fees: list[tuple[int, Fee]] = field(default_factory=list)
    links: list[Link] = field(default_factory=list)
    settings: dict[str, bytes] = field(default_factory=dict)
    seq: int = 0


GROUP_NIGHTS = 400_000  # applying this many night updates takes ~50 ms: a group's latency bound
MATCH_IDLE_SECONDS = 0.5  # no frame for this long: deferred matching may use the whole writer
MATCH_BUDGET_CAP = 0.05  # CPU seconds of deferred matching the commits may have earned, at most
SNAPSHOT_RETRY_SECONDS = 10.0  # after a failed snapshot (disk full, say): soon, but not every group


class Waiting:
    """Frames waiting for the next group: live traffic first, bulk imports fill what is left.

    A group stops growing at `GROUP_NIGHTS` night updates (a frame larger than that goes
    alone), so a re-import of a whole marketplace cannot put seconds of work ahead of a live
    price change."""

    def __init__(self) -> None:
        self.live: deque[tuple[Frame, int]] = deque()
        self.bulk: deque[tuple[Frame, int]] = deque()
        self.ready = asyncio.Event()
        self.closed = False
        self.added_at = 0.0  # CLOCK_MONOTONIC of the last frame added

    def add(self, frame: Frame, nights: int, bulk: bool) -> None:
        (self.bulk if bulk else self.live).append((frame, nights))
        self.added_at = time.monotonic()
        self.ready.set()

    def close(self) -> None:
        self.closed = True
        self.ready.set()

    @property
    def empty(self) -> bool:
        return not (self.live or self.bulk)

    async def take(self, timeout: float | None = None) -> list[Frame] | None:
        """The next group; None once closed and drained; [] if `timeout` passed first."""
        while not (self.live or self.bulk):
            if self.closed:
                return None
            self.ready.clear()
            try:
                await asyncio.wait_for(self.ready.wait(), timeout)
            except TimeoutError:
                return []
        frames: list[Frame] = []
        nights = 0
        for queue in (self.live, self.bulk):
            while queue and (not frames or nights + queue[0][1] <= GROUP_NIGHTS):
                frame, size = queue.popleft()
                frames.append(frame)
                nights += size
        return frames


class Writer:
    def __init__(self, config: Config, shm_path: Path, durable: Durable) -> None:
        self.config = config
        self.socket_path = writer_socket(shm_path)
        self.durable = durable
        self.shared = SharedArrays(shm_path, SHARED_ARRAYS, create=True)
        self.columns = ListingColumns(self.shared)
        self.feed = FeedWriter(self.shared)
        self.fees = FeeColumns(self.shared)
        # The directory starts at today's page and widens left when older nights arrive.
        base_page = epoch_day(dt.date.today()) // PAGE
        last_page = (epoch_day(dt.date.today()) + config.horizon_days) // PAGE + 1
        self.calendar = CalendarWriter(self.shared, base_page, last_page - base_page + 1)
        self.keys: dict[str, int] = {}
        self.history = HistoryKeeper(config.data_dir, config.history_days, self._history_taken)
        self.places = WriterPlaces(self.columns, self.keys, automatic=not config.no_matching,
                                   moved=self._place_changed, cache=config.data_dir / PLACES_CACHE_FILE)
        self.seq = 0
        self.logged_since_snapshot = 0
        self.newest: dict[str, int] = {}
        self.backlog = 0
        self.snapshotting: asyncio.Task[None] | None = None
        self.snapshot_retry_at = 0.0
        self.status_path = shm_path / WRITER_STATUS_FILE
        self.status: dict[str, object] = {"started_at": time.time()}  # for /v1/ops/summary, see write_status

    # -- start-up ------------------------------------------------------------------------

    async def recover(self) -> None:
        started = time.perf_counter()
        recovered = await self.durable.recover()
        # The calendar (snapshot, then the log after it: numpy, mostly without the GIL) loads on
        # a thread while this one rebuilds the keys, columns, fees and places (Python): on two
        # cores the restart takes the longer of the two, not their sum. They share no array.
        calendar = asyncio.get_running_loop().run_in_executor(
            None, self._recover_calendar, recovered, len(recovered.keys))
        for row, source, listing_id in recovered.keys:
            self.keys[f"{source}\x00{listing_id}"] = row
        self.columns.add_rows(len(self.keys))
        self.fees.add_rows(len(self.keys))
        self.columns.load(recovered.columns)
        self.fees.load(recovered.fees)
        self.places.load(recovered.places, recovered.links)
        snapshot_seq, self.seq, replayed, replayed_nights = await calendar
        self.logged_since_snapshot = replayed_nights
        self.shared.counters[Counter.SEQ] = self.seq
        if self.config.stream:
            self.history.start_from(self.seq)
        elif self.history.taken > self.seq:
            log.warning("history: it holds groups this store never had (the store was replaced?); emptied",
                        extra={"history_taken": self.history.taken, "store_seq": self.seq})
            self.history.forget()
        copied = self.history.catch_up(await self.durable.log_after(self.history.taken))
        self.history.start()
        seconds = round(time.perf_counter() - started, 3)
        self.status["restart"] = {"recovered_at": time.time(), "snapshot_seq": snapshot_seq,
                                  "replayed_events": replayed, "history_copied_events": copied,
                                  "seconds": seconds}
        log.info(
            "recovered",
            extra={"listings": len(self.keys), "snapshot_seq": snapshot_seq, "replayed_events": replayed,
                   "history_copied_events": copied, "seconds": seconds},
        )

    def _recover_calendar(self, recovered: Recovered, rows: int) -> tuple[int, int, int, int]:
        """Load the calendar snapshot and replay the log after it; returns the snapshot's
        sequence, the last one applied, the events and the night updates replayed."""
        snapshot_seq = 0
        if recovered.snapshot is not None:
            snapshot_seq, state = recovered.snapshot
            self.calendar.load_state(state)
        self.calendar.ensure_rows(rows)
        last, replayed, replayed_nights = snapshot_seq, 0, 0
        for seq, events in recovered.log:
            batch = np.frombuffer(events, dtype=RATE_DTYPE)
            self.calendar.apply(batch)
            last = seq
            replayed += len(batch)
            replayed_nights += int(batch["nights"].sum())
        return snapshot_seq, last, replayed, replayed_nights

    def _add_rows(self, rows: int) -> None:
        self.calendar.ensure_rows(rows)
        self.columns.add_rows(rows)
        self.fees.add_rows(rows)

    # -- serving -------------------------------------------------------------------------

    async def serve(self) -> None:
        self.waiting = Waiting()
        server = await asyncio.start_unix_server(self._connection, path=str(self.socket_path))
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        heart = asyncio.create_task(self._beat())
        await asyncio.sleep(0)  # its first beat lands before the workers see READY
        self.shared.counters[Counter.READY] = 1
        committer = asyncio.create_task(self._commit_loop())
        reporter = asyncio.create_task(self._report_freshness())
        await stop.wait()
        log.info("writer stopping: draining queued writes")
        server.close()
        self.waiting.close()
        await committer
        self.places.close()
        reporter.cancel()
        heart.cancel()
        if self.snapshotting is not None:
            await self.snapshotting
        self.history.close()  # after the last group: it has taken everything (or failed)
        if self.logged_since_snapshot:
            await self.take_snapshot()
        await self.durable.close()
        log.info("writer stopped", extra={"seq": self.seq})

    async def _connection(self, reader: asyncio.StreamReader, stream: asyncio.StreamWriter) -> None:
        try:
            while True:
                request = await wire.read_request(reader)
                if request.place is not None:  # a question, not a write: answered at once
                    answer = self.places.as_json(request.place)
                    wire.reply(stream, WriteReply(request.id, self.seq, None, answer))
                    continue
                rates = request.rate_rows()
                events = len(request.listings) + len(request.delists) + len(request.fees) + len(rates)
                self._backlog(events)
                self.waiting.add((stream, request, events), int(rates["nights"].sum()), request.bulk)
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            return

    def _backlog(self, change: int) -> None:
        self.backlog += change
        self.shared.counters[Counter.BACKLOG] = self.backlog
        metrics.backlog_events.set(self.backlog)

    async def _commit_loop(self) -> None:
        budget = 0.0  # CPU seconds deferred matching may take while frames keep coming
        while True:
            # Deferred automatic matching (imports): while frames keep coming, slices take at
            # most 1/9 of the CPU the commits took (10% of the writer's, and less of the
            # machine's, which the workers share); once none came for MATCH_IDLE_SECONDS,
            # slice after slice. CPU, not wall time: on a busy machine a slice's wall time says
            # more about the others than about it.
            now = time.monotonic()
            idle = self.waiting.empty and now - self.waiting.added_at >= MATCH_IDLE_SECONDS
            if self.places.pending and not self.waiting.closed and (budget > 0 or idle):
                cpu = time.thread_time()
                self.places.match_pending()
                self.places.save(now)  # the places cache: counted in the slice
                if not idle:
                    budget -= time.thread_time() - cpu
                await asyncio.sleep(0)  # frames that arrived meanwhile get in
                continue
            frames = await self.waiting.take(MATCH_IDLE_SECONDS if self.places.pending else
                                             SAVE_SECONDS if self.places.unsaved else None)
            if frames is None:
                return
            if frames:
                cpu = time.thread_time()
                await self._commit(Group(frames))
                if self.places.pending:
                    budget = min(MATCH_BUDGET_CAP, budget + (time.thread_time() - cpu) / 9)
            self.places.save(time.monotonic())

    async def _commit(self, group: Group) -> None:
        rows_before = len(self.keys)
        error = None
        try:
            self._prepare(group)
            started = time.perf_counter()
            await self.durable.commit_group(Commit(
                group.new_keys, group.listings, group.delists, group.seq,
                group.rates.tobytes() if len(group.rates) else None, group.settings, group.fees, group.links,
            ))
            metrics.commit_seconds.observe(time.perf_counter() - started)
        except Exception as exc:  # the group is not durable: forget its new keys, tell the workers
            log.exception("commit failed")
            for _, source, listing_id in group.new_keys:
                self.keys.pop(f"{source}\x00{listing_id}", None)
            assert len(self.keys) == rows_before
            error = f"commit failed: {exc}"
        else:
            self._apply(group)
        events = 0
        for stream, request, count in group.frames:
            events += count
            wire.reply(stream, WriteReply(request.id, self.seq, error))
        self._backlog(-events)
        metrics.group_requests.observe(len(group.frames))
        metrics.group_events.observe(events)
        busy = self.snapshotting is not None and not self.snapshotting.done()
        due = (
            self.logged_since_snapshot >= self.config.snapshot_log_nights and time.monotonic() >= self.snapshot_retry_at
        )
        if error is None and not busy and due:
            self.snapshotting = asyncio.create_task(self.take_snapshot())

    def _prepare(self, group: Group) -> None:
        parts = []
        for _, request, _ in group.frames:
            known = self.keys.get
            rows = np.fromiter([known(key, -1) for key in request.keys], np.int32, len(request.keys))
            for i in np.flatnonzero(rows < 0).tolist():
                rows[i] = self._row(request.keys[i], group)
            if request.rates:
                rates = request.rate_rows().copy()
                rates["key"] = rows[rates["key"]]
                parts.append(rates)
            group.listings.extend((self._row(listing.key, group), listing) for listing in request.listings)
            group.delists.extend((self._row(d.key, group), d) for d in request.delists)
            group.fees.extend((self._row(fee.key, group), fee) for fee in request.fees)
            group.links.extend(request.links)
            if request.fx is not None:
                group.settings["fx"] = request.fx
        if parts:
            group.rates = np.concatenate(parts)
            group.seq = self.seq + 1

    def _row(self, key: str, group: Group) -> int:
        row = self.keys.get(key)
        if row is None:
            row = self.keys[key] = len(self.keys)
            group.new_keys.append((row, *split_key(key)))
        return row

    def _apply(self, group: Group) -> None:
        started = time.perf_counter()
        self._add_rows(len(self.keys))
        if len(group.rates):
            nights, unchanged = self.calendar.apply(group.rates)
            metrics.nights_applied.inc(nights)
            metrics.events_unchanged.inc(unchanged)
            self.seq = group.seq
            self.logged_since_snapshot += int(group.rates["nights"].sum())
            self.history.add(group.seq, group.rates)
        listed: dict[int, Listing] = {}
        for row, listing in group.listings:
            if self.columns.describe(row, listing):
                listed[row] = listing
        key_of = {row: listing.key for row, listing in listed.items()}
        for row, delist in group.delists:
            self.columns.delist(row, delist)
            key_of[row] = delist.key
        searchable = self.shared["searchable"]
        self.places.apply([listed[row] for row in listed if searchable[row]],
                          [key for row, key in key_of.items() if not searchable[row]], group.links)
        charged = self.fees.apply(group.fees) if group.fees else []
        newest_in_group: dict[str, int] = {}
        for _, request, _ in group.frames:
            for source, changed_at in request.newest.items():
                if changed_at > newest_in_group.get(source, -1):
                    newest_in_group[source] = changed_at
        applied_at = time.time() * 1e6
        for source, changed_at in newest_in_group.items():
            metrics.source_delay.labels(source).observe(max(0.0, (applied_at - changed_at) / 1e6))
            if changed_at > self.newest.get(source, -1):
                self.newest[source] = changed_at
        if group.settings.get("fx"):
            self.shared.counters[Counter.FX_GENERATION] += 1
        self._publish_changes(group, charged)
        self.shared.counters[Counter.SEQ] = self.seq
        metrics.apply_seconds.observe(time.perf_counter() - started)

    def _history_taken(self, seq: int) -> None:
        """From the history thread: the workers' history reads wait for this (read-after-ack)."""
        self.shared.counters[Counter.HISTORY_SEQ] = seq

    def _place_changed(self, rows: np.ndarray) -> None:
        """Rows whose place changed (in a group, or by deferred matching): the watcher rechecks them."""
        self.feed.append(rows, *[np.full(len(rows), bound, np.int32) for bound in ALL_NIGHTS])

    def _publish_changes(self, group: Group, charged: list[int]) -> None:
        """What the group touched, for the watcher (memory/feed.py): raw columns, a few memcpys.
        A row whose fees changed (`charged`) changed the total of every stay: all its nights."""
        rates = group.rates
        described = [row for row, _ in group.listings] + [row for row, _ in group.delists] + charged
        if len(rates):
            start = rates["start"].astype(np.int32)
            self.feed.append(rates["key"], start, start + rates["nights"])
        if described:
            rows = np.array(described, dtype=np.int32)
            every = [np.full(len(rows), bound, np.int32) for bound in ALL_NIGHTS]
            self.feed.append(rows, *every)

    async def _beat(self) -> None:
        """Twice a second, so that the workers' /readyz can tell a writer that stopped running
        (its process stopped, its loop blocked) from one with nothing to do."""
        while True:
            self.shared.counters[Counter.HEARTBEAT] = time.monotonic_ns() // 1_000_000
            metrics.writer_heartbeat.set_to_current_time()
            await asyncio.sleep(0.5)

    async def _report_freshness(self) -> None:
        """Every second: how old each source's newest change is, and the data directory's free space."""
        while True:
            now = time.time() * 1e6
            for source, changed_at in self.newest.items():
                metrics.freshness_lag.labels(source).set(max(0.0, (now - changed_at) / 1e6))
            disk = shutil.disk_usage(self.config.data_dir)
            metrics.data_dir_free.set(disk.free)
            metrics.data_dir_capacity.set(disk.total)
            self.write_status()
            await asyncio.sleep(1)

    def write_status(self) -> None:
        """Restart and snapshot state for the operator's summary (`api/summary.py`), which any
        worker serves: a small JSON file in the shared-memory directory, replaced atomically."""
        self.status["night_updates_since_snapshot"] = self.logged_since_snapshot
        temporary = self.status_path.with_suffix(".tmp")
        temporary.write_text(json.dumps(self.status))
        os.replace(temporary, self.status_path)

    # -- snapshots -----------------------------------------------------------------------

    async def take_snapshot(self) -> None:
        """Stream the calendar to the backend a chunk at a time while groups go on (a fuzzy
        copy, made exact by the log after `seq`); the backend then drops the log it covers."""
        seq, logged = self.seq, self.logged_since_snapshot
        # The snapshot ends with the log it covers deleted: the history must have copied it.
        while self.history.taken < seq and not self.history.failed:
            await asyncio.sleep(0.02)
        if self.history.failed:
            log.error("history: taking a snapshot although the history failed; the groups it lacks are lost "
                      "to it once the log is truncated", extra={"taken": self.history.taken, "seq": seq})
        started = time.perf_counter()
        self.logged_since_snapshot = 0
        rows = len(self.keys)
        with closing(self.calendar.snapshot_chunks(rows)) as chunks:
            try:
                await self.durable.write_snapshot(seq, rows, snapshot.npy_pieces(chunks))
            except Exception:
                log.exception("snapshot failed; the log keeps everything",
                              extra={"retry_in_seconds": SNAPSHOT_RETRY_SECONDS})
                metrics.snapshot_failures.inc()
                self.logged_since_snapshot += logged  # still due: the log it would cover only grew
                self.snapshot_retry_at = time.monotonic() + SNAPSHOT_RETRY_SECONDS
                return
        metrics.snapshot_seconds.observe(time.perf_counter() - started)
        self.status["snapshot"] = {"last_at": time.time(), "last_seconds": round(time.perf_counter() - started, 3),
                                   "seq": seq}
        log.info("snapshot written", extra={"seq": seq, "seconds": round(time.perf_counter() - started, 3)})


def run(config: Config, shm_path: Path) -> None:
    """Entry point of the writer process."""
    import uvloop

    async def main() -> None:
        try:
            if config.stream:
                from staystream.scaled.node import StreamDurable

                durable: Durable = await StreamDurable.open(config, shm_path)
            elif config.store == "embedded":
                durable = SqliteDurable(config.data_dir, config.snapshot_write_mb_s * 1e6)
            else:
                from staystream.durable.postgres import PostgresDurable

                durable = await PostgresDurable.open(config.store, config.pg_pool_size, config.data_dir)
        except StoreLocked as exc:
            log.error(str(exc))
            raise SystemExit(3) from None
        writer = Writer(config, shm_path, durable)
        await writer.recover()
        gc.collect()
        gc.freeze()  # what start-up built lives on: full collections stop scanning it (performance.md)
        await writer.serve()

    uvloop.run(main())
