"""Price history: every accepted calendar event, kept `--history-days` (400) in a SQLite file of its own.

The calendar keeps only each night's winning facts; `GET .../history?night=` needs every
event that set a fact of the night. Those events are already durable in the log (`rate_log`),
which the writer deletes once a snapshot covers it, so history is a copy taken from the log's
groups *after* they are acknowledged, by a thread of the writer, into `history.sqlite3`:

- `history`: one row per (listing row, batch, 64-night bucket of the events' start): those
  events packed as `HISTORY_DTYPE` (start, nights, changed_at, price, currency, min_nights,
  available, facts: 27 B an event) in arrival order, the day the batch arrived, and a rowid in
  arrival order. A batch is every group that commits within `COPY_SECONDS` (0.1 s) of the last batch: each
  transaction rewrites the index pages its rows land on (random rows: nearly every leaf page
  of a large index), so one transaction for many groups writes those pages once, not once a
  group (a group of 500 events cost 6 us of CPU and 46 us of wall time an event on an empty
  file, 20 and 135 us at 160,000 rows: the thread fell behind the writes it copies).
  An index on (row, bucket) finds the rows a night's events can be in (an event covers at most
  550 nights: 10 buckets); a night's changes are the events whose nights cover it.
- `taken`: the last log sequence copied. It commits with the rows it covers, so after a crash
  history resumes from the log after it (`Durable.log_after`): the writer keeps log rows the
  history has not taken, even once a snapshot covers them.

Nothing of this is on the acknowledged path: the writer hands a committed group over and goes
on. The file is `synchronous=NORMAL`: a power cut may lose its last transactions, `taken` with
them, and the log has them still. Pruning deletes rows whose group arrived more than
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


def add_group(connection: sqlite3.Connection, seq: int, events: np.ndarray, day: int) -> None:
    """One group's events (RATE_DTYPE, key = row) as one row per (listing, start bucket), and
    `taken` = seq."""
    buckets = events["start"] // BUCKET_NIGHTS
    order = np.lexsort((buckets, events["key"]))  # stable: arrival order within a row
    ordered = events[order]
    combined = ordered["key"].astype(np.int64) << 32 | buckets[order].astype(np.int64)
    _, starts = np.unique(combined, return_index=True)
    rows, firsts = ordered["key"][starts], buckets[order][starts]
    packed = np.empty(len(ordered), HISTORY_DTYPE)
    for name in HISTORY_FIELDS:
        packed[name] = ordered[name]
    bounds = [*starts.tolist()[1:], len(ordered)]
    blob = packed.tobytes()
    size = HISTORY_DTYPE.itemsize
    connection.execute("BEGIN")
    try:
        connection.executemany(
            "INSERT INTO history (row, day, bucket, events) VALUES (?, ?, ?, ?)",
            zip(rows.tolist(), [day] * len(rows), firsts.tolist(),
                (blob[a * size : b * size] for a, b in zip(starts.tolist(), bounds, strict=True)), strict=True),
        )
        connection.execute("INSERT OR REPLACE INTO taken (id, seq) VALUES (0, ?)", (seq,))
        connection.execute("COMMIT")
    except BaseException:
        connection.execute("ROLLBACK")
        raise


def changes(connection: sqlite3.Connection, row: int, night: int) -> list[tuple[int, ...]]:
    """The events of listing `row` that set a fact of `night`, as HISTORY_DTYPE tuples in
    arrival order (the caller orders them by changed_at)."""
    found: list[tuple[int, ...]] = []
    for (events,) in connection.execute(
        "SELECT events FROM history WHERE row = ? AND bucket BETWEEN ? AND ? ORDER BY rowid",
        (row, (night - MAX_EVENT_NIGHTS) // BUCKET_NIGHTS, night // BUCKET_NIGHTS),
    ):
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
        self._thread = threading.Thread(target=self._run, name="history", daemon=True)

    def forget(self) -> None:
        """Empty the history: it was taken from another store (its `taken` is past the log)."""
        self.connection.execute("BEGIN")
        self.connection.execute("DELETE FROM history")
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
                    pending, queued = [], 0
        if pending:
            self._copy(pending)
        self.publish(self.taken)
        return copied

    def _copy(self, groups: list[tuple[int, np.ndarray]]) -> None:
        """Groups in commit order, in one transaction; `taken` = the last one's sequence."""
        events = groups[0][1] if len(groups) == 1 else np.concatenate([batch for _, batch in groups])
        add_group(self.connection, groups[-1][0], events, _today())
        self.taken = groups[-1][0]

    def start(self) -> None:
        self._thread.start()

    def add(self, seq: int, events: np.ndarray) -> None:
        """A committed group: copied in the background, in the order given."""
        self._queue.put((seq, events))

    def close(self) -> None:
        self._queue.put(None)
        if self._thread.is_alive():
            self._thread.join(60)
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
            if time.monotonic() >= next_prune:
                next_prune = time.monotonic() + PRUNE_EVERY_SECONDS
                while prune(self.connection, _today() - self.keep_days):
                    pass


    def _take(self) -> list[tuple[int, np.ndarray]] | None:
        """The next group and every group that comes until `COPY_SECONDS` after the last
        transaction began (up to `BATCH_EVENTS`); None once closed.

        A transaction's cost is mostly the index pages it rewrites, about as many for one group
        as for ten: copied a group at a time, a steady 150 groups a second cost the thread ~13 us
        an event, as much as the rest of the write. Gathering for 0.1 s makes each transaction
        cover ~15 such groups; a group after a pause is still copied at once, and a history read
        waits for its copy (`api/reads.py`) 0.1 s at most."""
        item = self._queue.get()
        if item is None:
            return None
        groups, events = [item], len(item[1])
        until = self._copied_at + COPY_SECONDS
        while events < BATCH_EVENTS:
            try:
                wait = until - time.monotonic()
                item = self._queue.get(timeout=wait) if wait > 0 else self._queue.get_nowait()
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
