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
  `COMPACT_EVENTS`) one transaction moves `recent` here. Rows land on random index pages, and
  a transaction rewrites every page it touches, so the cost is per row and per transaction,
  not per event: written a batch at a time the thread cost ~4 us of CPU an event at the tail
  scenario's full speed (46% of the writer's samples), while a compaction of seconds of
  batches writes one row per listing and bucket for all of them.
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


def compact(connection: sqlite3.Connection) -> int:
    """Move every `recent` row into `history`, one row per (listing, start bucket), in one
    transaction; returns the events moved."""
    connection.execute("BEGIN")
    try:
        batches = connection.execute("SELECT rowid, day, rows, events FROM recent ORDER BY rowid").fetchall()
        if batches:
            rows = np.concatenate([np.frombuffer(batch[2], np.int32) for batch in batches])
            packed = np.concatenate([np.frombuffer(batch[3], HISTORY_DTYPE) for batch in batches])
            _insert(connection, rows, packed, max(batch[1] for batch in batches))
            connection.execute("DELETE FROM recent WHERE rowid <= ?", (batches[-1][0],))
        connection.execute("COMMIT")
    except BaseException:
        connection.execute("ROLLBACK")
        raise
    return len(rows) if batches else 0


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
    size = HISTORY_DTYPE.itemsize
    connection.execute("BEGIN")
    try:
        blobs = [events for (events,) in connection.execute(
            "SELECT events FROM history WHERE row = ? AND bucket BETWEEN ? AND ? ORDER BY rowid",
            (row, (night - MAX_EVENT_NIGHTS) // BUCKET_NIGHTS, night // BUCKET_NIGHTS),
        )]
        for rowid, rows in connection.execute("SELECT rowid, rows FROM recent ORDER BY rowid").fetchall():
            sorted_rows = np.frombuffer(rows, np.int32)
            first, last = np.searchsorted(sorted_rows, [row, row + 1]).tolist()
            if first < last:
                blobs.append(connection.execute("SELECT substr(events, ?, ?) FROM recent WHERE rowid = ?",
                                                (first * size + 1, (last - first) * size, rowid)).fetchone()[0])
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
            compact(self.connection)
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
