"""Price history: every accepted calendar event, kept `--history-days` (400) in a SQLite file of its own.

The calendar keeps only each night's winning facts; `GET .../history?night=` needs every
event that set a fact of the night. Those events are already durable in the log (`rate_log`),
which the writer deletes once a snapshot covers it, so history is a copy taken from the log's
groups *after* they are acknowledged, by a thread of the writer, into `history.sqlite3`:

- `recent`: one row per batch, every group that commits within `COPY_SECONDS` (0.1 s) of the
  last batch: its events packed as `HISTORY_DTYPE` (start, nights, changed_at, price, currency,
  min_nights, available, facts: 27 B an event) ordered by listing row (arrival order within a
  row), beside the sorted rows as int32 (a night's lookup reads the slice of its listing). No
  index: a batch costs one appended row, however many listings it touches.
- `history`: one row per (listing row, compaction, 64-night bucket of the events' start): the
  same packed events in arrival order, the day of the newest batch they came in, a rowid in
  arrival order, and an index on (row, bucket) that finds the rows a night's events can be in
  (an event covers at most 550 nights: 10 buckets). Every `COMPACT_SECONDS` (or
  `COMPACT_EVENTS`) a compaction moves `recent` here, a range of listing rows a transaction
  (`compacting` says how far it got). Rows land on random index pages, and a transaction
  rewrites every page it touches, so the cost is per row and per transaction, not per event:
  written a batch at a time the thread cost ~4 us of CPU an event at the tail scenario's full
  speed (46% of the writer's samples), while a compaction of seconds of batches writes one
  row per listing and bucket for all of them.
- `taken`: the last log sequence copied. It commits with the rows it covers, so after a crash
  history resumes from the log after it (`Durable.log_after`): the writer keeps log rows the
  history has not taken, even once a snapshot covers them.

Nothing of this is on the acknowledged path: the writer hands a committed group over and goes
on. The file is `synchronous=NORMAL`: a power cut may lose its last transactions, `taken` with
them, and the log has them still. Pruning deletes rows whose newest batch arrived more than
`--history-days` ago (oldest first: rowids follow arrival).
"""

from __future__ import annotations

import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

from staystream.events.types import ALL_FACTS, FACT_AVAILABILITY, FACT_PRICE, FACT_STAY_RULE, RATE_DTYPE

log = logging.getLogger("staystream.history")
HISTORY_FILE = "history.sqlite3"
HISTORY_FIELDS = ("start", "nights", "changed_at", "price", "currency", "min_nights", "available", "facts")
HISTORY_DTYPE = np.dtype([(name, RATE_DTYPE[name]) for name in HISTORY_FIELDS])  # a RATE_DTYPE row less its key
TYPE_OF_FACTS = {ALL_FACTS: "rate", FACT_PRICE: "price", FACT_AVAILABILITY: "availability",
                 FACT_STAY_RULE: "stay_rule"}
BATCH_EVENTS = 200_000  # queued events taken into one transaction at most (~5 MB of rows)
COPY_SECONDS = 0.1  # a transaction at most this often while groups keep coming: see `_take`
COMPACT_SECONDS = 5.0  # `recent` moves into `history` at least this often...
COMPACT_EVENTS = 500_000  # ...or once it holds this many events (a night's lookup reads 4 B of each)
COMPACT_STEP_EVENTS = 50_000  # a compaction's transactions move about this many events each...
COMPACT_PAUSE_SECONDS = 0.02  # ...with this pause between them (the writer's commits go first)
CHECKPOINT_PAGES = 256  # a checkpoint (and its fsync) every 1 MB of log: the store's fsyncs wait less behind it
MAX_EVENT_NIGHTS = 550  # an event covers at most this many nights: bounds a night's lookup
BUCKET_NIGHTS = 64  # events are kept by the 64-night span their start falls in
PRUNE_EVERY_SECONDS = 3600.0
SCHEMA = """
CREATE TABLE IF NOT EXISTS history (
    row INTEGER NOT NULL,     -- listing row
    day INTEGER NOT NULL,     -- days since 1970-01-01 when the group arrived (pruning)
    bucket INTEGER NOT NULL,  -- the events' start night // BUCKET_NIGHTS (a night's lookup: a few buckets)
    events BLOB NOT NULL      -- this listing's events of one group, packed HISTORY_DTYPE, in arrival order
);
CREATE INDEX IF NOT EXISTS history_row ON history (row, bucket);
CREATE TABLE IF NOT EXISTS recent (
    day INTEGER NOT NULL,  -- days since 1970-01-01 when the batch arrived
    rows BLOB NOT NULL,    -- the events' listing rows, int32, sorted
    events BLOB NOT NULL   -- the batch's events, packed HISTORY_DTYPE, by row (arrival order within one)
);
CREATE TABLE IF NOT EXISTS compacting (  -- a compaction under way: see `compact`
    id INTEGER PRIMARY KEY CHECK (id = 0), through INTEGER NOT NULL, next_row INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS taken (id INTEGER PRIMARY KEY CHECK (id = 0), seq INTEGER NOT NULL);
"""


def history_path(data_dir: Path) -> Path:
    return data_dir / HISTORY_FILE


def connect(path: Path, readonly: bool = False) -> sqlite3.Connection:
    if readonly:
        connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None,
                                     check_same_thread=False)
        connection.execute("PRAGMA query_only=1")
        return connection
    path.parent.mkdir(parents=True, exist_ok=True)
    connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=NORMAL")
    connection.execute(f"PRAGMA wal_autocheckpoint={CHECKPOINT_PAGES}")
    connection.executescript(SCHEMA)
    return connection


def taken(connection: sqlite3.Connection) -> int:
    found = connection.execute("SELECT seq FROM taken").fetchone()
    return 0 if found is None else int(found[0])


def add_batch(connection: sqlite3.Connection, seq: int, events: np.ndarray, day: int) -> None:
    """Groups' events (RATE_DTYPE, key = row, in commit order) as one `recent` row, and `taken` = seq."""
    ordered = events[np.argsort(events["key"], kind="stable")]
    connection.execute("BEGIN")
    try:
        connection.execute("INSERT INTO recent (day, rows, events) VALUES (?, ?, ?)",
                           (day, ordered["key"].astype(np.int32).tobytes(), _packed(ordered).tobytes()))
        connection.execute("INSERT OR REPLACE INTO taken (id, seq) VALUES (0, ?)", (seq,))
        connection.execute("COMMIT")
    except BaseException:
        connection.execute("ROLLBACK")
        raise


def compact(connection: sqlite3.Connection, pause: Callable[[], None] = lambda: None,
            step_events: int = COMPACT_STEP_EVENTS) -> int:
    """Move the `recent` rows into `history`, one row per (listing, start bucket); returns the
    events moved. One transaction a range of listing rows (~`step_events` events), `pause()`
    between them, so the file's writes and fsyncs come in small pieces between the store's
    commits (at 85,000 events/s, with one 15 MB transaction, the seconds of a compaction had
    an acknowledgment p99 of 20-40 ms, the others 9-12; in pieces, with `CHECKPOINT_PAGES`,
    the run's p99 and max were 0.87x and 0.72x: docs/benchmarks.md). `compacting` holds how far it got (the batches up
    to `through`, the listing rows below `next_row`), so a read skips what moved and a
    restart resumes."""
    connection.execute("BEGIN")
    try:
        state = connection.execute("SELECT through, next_row FROM compacting").fetchone()
        if state is None:
            (newest,) = connection.execute("SELECT max(rowid) FROM recent").fetchone()
            if newest is not None:
                state = (newest, 0)
                connection.execute("INSERT INTO compacting (id, through, next_row) VALUES (0, ?, ?)", state)
        batches = [] if state is None else connection.execute(
            "SELECT rowid, day, rows FROM recent WHERE rowid <= ? ORDER BY rowid", (state[0],)).fetchall()
        connection.execute("COMMIT")
    except BaseException:
        connection.execute("ROLLBACK")
        raise
    if state is None:
        return 0
    through, next_row = state
    day = max(batch[1] for batch in batches)
    sorted_rows = [np.frombuffer(batch[2], np.int32) for batch in batches]
    left = np.sort(np.concatenate(sorted_rows))
    left = left[left >= next_row]
    # a range ends at the listing row of every `step_events`-th event: a listing is never split
    ends = [*np.unique(left[step_events::step_events]).tolist(), int(left[-1]) + 1] if len(left) else []
    moved = 0
    for end in ends:
        connection.execute("BEGIN")
        try:
            rows, events = [], []
            for (rowid, _, _), batch_rows in zip(batches, sorted_rows, strict=True):
                first, last = np.searchsorted(batch_rows, [next_row, end]).tolist()
                if first < last:
                    rows.append(batch_rows[first:last])
                    events.append(np.frombuffer(_recent_slice(connection, rowid, first, last), HISTORY_DTYPE))
            if rows:
                _insert(connection, np.concatenate(rows), np.concatenate(events), day)
                moved += sum(len(part) for part in rows)
            connection.execute("UPDATE compacting SET next_row = ?", (end,))
            connection.execute("COMMIT")
        except BaseException:
            connection.execute("ROLLBACK")
            raise
        next_row = end
        pause()
    connection.execute("BEGIN")
    connection.execute("DELETE FROM recent WHERE rowid <= ?", (through,))
    connection.execute("DELETE FROM compacting")
    connection.execute("COMMIT")
    return moved


def _recent_slice(connection: sqlite3.Connection, rowid: int, first: int, last: int) -> bytes:
    """Events [first, last) of a `recent` batch, without reading the rest of it."""
    size = HISTORY_DTYPE.itemsize
    found: bytes = connection.execute("SELECT substr(events, ?, ?) FROM recent WHERE rowid = ?",
                                      (first * size + 1, (last - first) * size, rowid)).fetchone()[0]
    return found


def _packed(events: np.ndarray) -> np.ndarray:
    packed = np.empty(len(events), HISTORY_DTYPE)
    for name in HISTORY_FIELDS:
        packed[name] = events[name]
    return packed


def _insert(connection: sqlite3.Connection, rows: np.ndarray, packed: np.ndarray, day: int) -> None:
    """Events (`packed`, of listing `rows`, in arrival order) as one `history` row per (listing,
    start bucket)."""
    buckets = packed["start"] // BUCKET_NIGHTS
    order = np.lexsort((buckets, rows))  # stable: arrival order within a row
    ordered = packed[order]
    combined = rows[order].astype(np.int64) << 32 | buckets[order].astype(np.int64)
    _, starts = np.unique(combined, return_index=True)
    bounds = [*starts.tolist()[1:], len(ordered)]
    connection.executemany(  # each row's bytes apart: no copy of the whole that holds the GIL for ms
        "INSERT INTO history (row, day, bucket, events) VALUES (?, ?, ?, ?)",
        zip(rows[order][starts].tolist(), [day] * len(starts), buckets[order][starts].tolist(),
            (ordered[a:b].tobytes() for a, b in zip(starts.tolist(), bounds, strict=True)), strict=True),
    )


def changes(connection: sqlite3.Connection, row: int, night: int) -> list[tuple[int, ...]]:
    """The events of listing `row` that set a fact of `night`, as HISTORY_DTYPE tuples in
    arrival order (the caller orders them by changed_at): its compacted rows, then its slices
    of the recent batches, read in one transaction (a compaction may commit meanwhile)."""
    found: list[tuple[int, ...]] = []
    connection.execute("BEGIN")
    try:
        blobs = [events for (events,) in connection.execute(
            "SELECT events FROM history WHERE row = ? AND bucket BETWEEN ? AND ? ORDER BY rowid",
            (row, (night - MAX_EVENT_NIGHTS) // BUCKET_NIGHTS, night // BUCKET_NIGHTS),
        )]
        through, next_row = connection.execute("SELECT through, next_row FROM compacting").fetchone() or (0, 0)
        for rowid, rows in connection.execute("SELECT rowid, rows FROM recent ORDER BY rowid").fetchall():
            if rowid <= through and row < next_row:
                continue  # a compaction under way moved it already
            sorted_rows = np.frombuffer(rows, np.int32)
            first, last = np.searchsorted(sorted_rows, [row, row + 1]).tolist()
            if first < last:
                blobs.append(_recent_slice(connection, rowid, first, last))
    finally:
        connection.execute("COMMIT")
    for events in blobs:
        packed = np.frombuffer(events, HISTORY_DTYPE)
        covering = packed[(packed["start"] <= night) & (night < packed["start"] + packed["nights"])]
        found += covering.tolist()
    return found


def prune(connection: sqlite3.Connection, oldest_day: int, rows: int = 10_000) -> int:
    """Delete up to `rows` rows of groups that arrived before `oldest_day` (rowids follow arrival)."""
    return connection.execute(
        "DELETE FROM history WHERE rowid IN (SELECT rowid FROM history WHERE day < ? ORDER BY rowid LIMIT ?)",
        (oldest_day, rows),
    ).rowcount


class HistoryKeeper:
    """The writer's history thread: committed groups go in through `add`, in commit order."""

    def __init__(self, data_dir: Path, keep_days: int, publish: Callable[[int], None]) -> None:
        self.connection = connect(history_path(data_dir))
        self.keep_days = keep_days
        self.taken = taken(self.connection)  # log rows after it must stay (`Durable.write_snapshot`)
        self.publish = publish  # told each sequence taken (the workers wait on it: read-after-ack)
        self.failed = False
        self._queue: queue.Queue[tuple[int, np.ndarray] | None] = queue.Queue()
        self._copied_at = 0.0  # CLOCK_MONOTONIC when the last transaction began
        compact(self.connection)  # what a kill -9 left in `recent`: the counts below start at 0
        self._recent_events = 0
        self._recent_since = 0.0  # CLOCK_MONOTONIC of the first batch in `recent`
        self._thread = threading.Thread(target=self._run, name="history", daemon=True)

    def forget(self) -> None:
        """Empty the history: it was taken from another store (its `taken` is past the log)."""
        self.connection.execute("BEGIN")
        self.connection.execute("DELETE FROM history")
        self.connection.execute("DELETE FROM recent")
        self.connection.execute("DELETE FROM compacting")
        self.connection.execute("DELETE FROM taken")
        self.connection.execute("COMMIT")
        self.taken = 0

    def start_from(self, seq: int) -> None:
        """Scaled mode: a node's sequences are its own, counted afresh at each bootstrap, and the
        groups it replayed from PostgreSQL are not the history's to copy (`StreamDurable.log_after`
        offers none): nothing up to `seq` is owed to it, so a snapshot need not wait for them."""
        self.taken = seq
        self.publish(seq)

    def catch_up(self, log: Iterable[tuple[int, bytes]]) -> int:
        """At start-up: copy the log rows the history has not taken; returns the events copied."""
        copied = queued = 0
        pending: list[tuple[int, np.ndarray]] = []
        for seq, events in log:
            if seq > self.taken:
                pending.append((seq, np.frombuffer(events, RATE_DTYPE)))
                copied += len(pending[-1][1])
                queued += len(pending[-1][1])
                if queued >= BATCH_EVENTS:
                    self._copy(pending)
                    self._compact_if_due()
                    pending, queued = [], 0
        if pending:
            self._copy(pending)
        self.publish(self.taken)
        return copied

    def _copy(self, groups: list[tuple[int, np.ndarray]]) -> None:
        """Groups in commit order, in one transaction; `taken` = the last one's sequence."""
        events = groups[0][1] if len(groups) == 1 else np.concatenate([batch for _, batch in groups])
        add_batch(self.connection, groups[-1][0], events, _today())
        self.taken = groups[-1][0]
        if not self._recent_events:
            self._recent_since = time.monotonic()
        self._recent_events += len(events)

    def _compact_if_due(self) -> None:
        if self._recent_events >= COMPACT_EVENTS or (
                self._recent_events and time.monotonic() - self._recent_since >= COMPACT_SECONDS):
            compact(self.connection, lambda: time.sleep(COMPACT_PAUSE_SECONDS))
            self._recent_events = 0

    def start(self) -> None:
        self._thread.start()

    def add(self, seq: int, events: np.ndarray) -> None:
        """A committed group: copied in the background, in the order given."""
        self._queue.put((seq, events))

    def close(self) -> None:
        self._queue.put(None)
        if self._thread.is_alive():
            self._thread.join(60)
        if not self.failed and not self._thread.is_alive():
            compact(self.connection)  # a restart finds `recent` empty (or compacts what a kill -9 left)
        self.connection.close()

    def _run(self) -> None:
        next_prune = 0.0
        while (groups := self._take()) is not None:
            if self.failed:
                continue  # after a failure nothing more: `taken` stays, the log keeps the rest
            try:
                self._copied_at = time.monotonic()
                self._copy(groups)
            except Exception:
                self.failed = True
                log.exception("history: copying failed; the log keeps the groups from here on and a "
                              "restart copies them", extra={"seq": groups[-1][0], "taken": self.taken})
                continue
            self.publish(self.taken)
            try:
                self._compact_if_due()
            except Exception:
                self.failed = True
                log.exception("history: moving recent batches failed; the log keeps the groups from here on "
                              "and a restart copies them", extra={"taken": self.taken})
                continue
            if time.monotonic() >= next_prune:
                next_prune = time.monotonic() + PRUNE_EVERY_SECONDS
                while prune(self.connection, _today() - self.keep_days):
                    pass


    def _take(self) -> list[tuple[int, np.ndarray]] | None:
        """The next group and every group that comes until `COPY_SECONDS` after the last
        transaction began (up to `BATCH_EVENTS`); None once closed.

        Each transaction costs a commit whatever it holds: gathering for 0.1 s makes one cover
        ~15 groups at the tail scenario's half rate; a group after a pause is still copied at
        once, and a history read waits for its copy (`api/reads.py`) 0.1 s at most. The thread
        sleeps through the gathering rather than waiting on the queue: woken by every group it
        took the GIL from the writer's loop at each (5% of the writer's samples in `put`)."""
        item = self._queue.get()
        if item is None:
            return None
        groups, events = [item], len(item[1])
        wait = self._copied_at + COPY_SECONDS - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        while events < BATCH_EVENTS:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is None:
                self._queue.put(None)  # closed: this batch first, then stop
                break
            groups.append(item)
            events += len(item[1])
        return groups


def _today() -> int:
    return int(time.time() // 86400)
