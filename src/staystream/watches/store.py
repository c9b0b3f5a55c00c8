"""The durable half of watches (embedded store): `var/watches.sqlite3`, apart from the listings.

Workers write watches (create, delete: short `BEGIN IMMEDIATE` transactions) and read the outbox
for SSE; the watcher process writes everything else: the state of each watch (per place, the
last total sent) and the outbox of events with the webhook deliveries still owed, in one
transaction per evaluation (`synchronous=FULL`: on disk before any event is sent), so a kill -9
never loses an event nor sends one whose state was not kept.

Write transactions of all these processes queue on a file lock (`flock`) before `BEGIN
IMMEDIATE`: SQLite's own busy wait sleeps in growing steps (up to 100 ms) and would leave the
file idle between short transactions; a waiter on the lock runs as soon as the holder is done.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS watches (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,  -- the watcher's handle, in creation order
    id TEXT NOT NULL UNIQUE,                -- the public watch_id
    secret TEXT NOT NULL,                   -- key of the webhook signatures
    params TEXT NOT NULL,                   -- the search parameters as accepted (JSON object)
    webhook TEXT,
    client TEXT NOT NULL,                   -- address that created it (per-address limit)
    created_at REAL NOT NULL,
    expires_at REAL NOT NULL,               -- Unix time: the end of its checkout date (UTC)
    changes INTEGER NOT NULL DEFAULT 0      -- 1: it also hears price_change (spec.py)
);
DROP INDEX IF EXISTS watches_client;
CREATE INDEX IF NOT EXISTS watches_client_expiry ON watches (client, expires_at);  -- covers the per-address count
CREATE TABLE IF NOT EXISTS watch_count (    -- how many rows `watches` has, kept by triggers: no count(*) scan
    one INTEGER PRIMARY KEY CHECK (one = 1),
    watches INTEGER NOT NULL
);
INSERT OR IGNORE INTO watch_count SELECT 1, count(*) FROM watches;
CREATE TRIGGER IF NOT EXISTS watch_count_insert AFTER INSERT ON watches
    BEGIN UPDATE watch_count SET watches = watches + 1; END;
CREATE TRIGGER IF NOT EXISTS watch_count_delete AFTER DELETE ON watches
    BEGIN UPDATE watch_count SET watches = watches - 1; END;
CREATE TABLE IF NOT EXISTS watch_state (    -- per watch, the places it last said match
    watch_seq INTEGER NOT NULL,
    place_id TEXT NOT NULL,
    row INTEGER NOT NULL,                   -- the listing row naming the place (memory's key)
    source TEXT NOT NULL,
    listing_id TEXT NOT NULL,
    total INTEGER NOT NULL,                 -- minor units of `currency`: the total last sent
    currency INTEGER NOT NULL,
    PRIMARY KEY (watch_seq, place_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,   -- the SSE event id
    watch_seq INTEGER NOT NULL,
    event TEXT NOT NULL,
    data TEXT NOT NULL,                     -- the event's JSON, as sent
    created_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS outbox_watch ON outbox (watch_seq, id);
CREATE INDEX IF NOT EXISTS outbox_created ON outbox (created_at);  -- the sweep reads old events only
CREATE INDEX IF NOT EXISTS watches_expiry ON watches (expires_at);  -- the sweep reads expired watches only
CREATE TABLE IF NOT EXISTS deliveries (     -- webhook POSTs owed: removed once answered 2xx
    event_id INTEGER PRIMARY KEY,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS deliveries_due ON deliveries (next_at);
"""


@dataclass(frozen=True)
class Watch:
    seq: int
    id: str
    secret: str
    params: str
    webhook: str | None
    expires_at: float
    changes: bool  # also tell price_change (`spec.parse_watch`)


@dataclass(frozen=True)
class Placed:
    """What a watch last said of one place."""

    row: int  # of the listing naming the place
    source: str
    listing_id: str
    total: int
    currency: int


@dataclass(frozen=True)
class Event:
    watch_seq: int
    event: str  # entered, left, price_drop, price_change
    data: bytes  # JSON


class LimitReached(Exception):
    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


WATCH_FIELDS = "seq, id, secret, params, webhook, expires_at, changes"


class Database(sqlite3.Connection):
    """A connection to the watches file, with its own descriptor of the lock file (`writing`)."""

    lock: int


def connect(path: Path) -> sqlite3.Connection:
    path.parent.mkdir(parents=True, exist_ok=True)
    connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=10, factory=Database)
    connection.lock = os.open(f"{path}.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=FULL")
    with _turn(connection):  # the schema, the count and its triggers in one transaction, whoever else starts
        connection.executescript(f"BEGIN IMMEDIATE; {SCHEMA} {_added_columns(connection)} COMMIT;")
    return connection


def _added_columns(connection: sqlite3.Connection) -> str:
    """The columns a file made before them lacks (SQLite has no ADD COLUMN IF NOT EXISTS)."""
    have = {name for _, name, *_ in connection.execute("PRAGMA table_info(watches)")}
    if not have or "changes" in have:  # a new file (the schema makes it whole), or one made since
        return ""
    return "ALTER TABLE watches ADD COLUMN changes INTEGER NOT NULL DEFAULT 0;"


@contextlib.contextmanager
def _turn(connection: sqlite3.Connection) -> Iterator[None]:
    """This connection's turn on the file lock: one writer at a time, woken as soon as it is free."""
    lock = connection.lock if isinstance(connection, Database) else None
    if lock is not None:
        fcntl.flock(lock, fcntl.LOCK_EX)
    try:
        yield
    finally:
        if lock is not None:
            fcntl.flock(lock, fcntl.LOCK_UN)


@contextlib.contextmanager
def writing(connection: sqlite3.Connection) -> Iterator[None]:
    """One write transaction (`BEGIN IMMEDIATE`), in this connection's turn on the file lock."""
    with _turn(connection):
        connection.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            connection.execute("ROLLBACK")
            raise
        connection.execute("COMMIT")


# -- workers -----------------------------------------------------------------------------------


def create(
    connection: sqlite3.Connection, watches: list[tuple[Watch, str]], per_client: int, total: int
) -> list[LimitReached | None]:
    """Insert each (watch, client address) in one transaction (one fsync for all), unless its
    client holds `per_client` unexpired watches or the service `total` (expired ones count until
    the watcher's sweep removes them, within a minute): then its `LimitReached`."""
    now = time.time()
    answers: list[LimitReached | None] = []
    with writing(connection):
        (count,) = connection.execute("SELECT watches FROM watch_count").fetchone()
        held: dict[str, tuple[int, float | None]] = {}
        for watch, client in watches:
            if client not in held:
                held[client] = connection.execute(
                    "SELECT count(*), min(expires_at) FROM watches WHERE client = ? AND expires_at > ?",
                    (client, now)).fetchone()
            holds, soonest = held[client]
            if holds >= per_client:
                answers.append(LimitReached(
                    f"watches: address {client} holds {holds} watches, the most one address may; "
                    "expected a DELETE of one it no longer needs first (or one expiring)",
                    seconds_until(soonest)))
            elif count >= total:
                answers.append(LimitReached(
                    f"watches: the service holds {count} watches, its limit; try again later", 3600))
            else:
                connection.execute(
                    "INSERT INTO watches (id, secret, params, webhook, client, created_at, expires_at, changes) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (watch.id, watch.secret, watch.params, watch.webhook, client, now, watch.expires_at, watch.changes))
                held[client] = (holds + 1, watch.expires_at if soonest is None else min(soonest, watch.expires_at))
                count += 1
                answers.append(None)
    return answers


def seconds_until(when: float | None) -> int:
    return 3600 if when is None else int(min(max(when - time.time(), 60), 86400))


def find(connection: sqlite3.Connection, watch_id: str) -> Watch | None:
    """The watch, unless it is gone or expired (the watcher removes expired ones a little later)."""
    found = connection.execute(
        f"SELECT {WATCH_FIELDS} FROM watches WHERE id = ? AND expires_at > ?", (watch_id, time.time())).fetchone()
    return None if found is None else Watch(*found)


def delete(connection: sqlite3.Connection, watch_id: str) -> bool:
    """Remove a watch and all it owns; False if there was none."""
    with writing(connection):
        found = connection.execute("SELECT seq FROM watches WHERE id = ?", (watch_id,)).fetchone()
        if found is not None:
            _forget(connection, [found[0]])
    return found is not None


def _forget(connection: sqlite3.Connection, seqs: list[int]) -> None:
    for seq in seqs:
        connection.execute(
            "DELETE FROM deliveries WHERE event_id IN (SELECT id FROM outbox WHERE watch_seq = ?)", (seq,))
        connection.execute("DELETE FROM outbox WHERE watch_seq = ?", (seq,))
        connection.execute("DELETE FROM watch_state WHERE watch_seq = ?", (seq,))
        connection.execute("DELETE FROM watches WHERE seq = ?", (seq,))


def events_after(
    connection: sqlite3.Connection, watch_seq: int, after: int, limit: int = 500
) -> list[tuple[int, str, str]]:
    """(id, event, data) of the watch's events with ids above `after`, oldest first."""
    return connection.execute(
        "SELECT id, event, data FROM outbox WHERE watch_seq = ? AND id > ? ORDER BY id LIMIT ?",
        (watch_seq, after, limit)).fetchall()


def new_events(connection: sqlite3.Connection, after: int) -> list[tuple[int, int]]:
    """(id, watch seq) of the events with ids above `after`."""
    return connection.execute("SELECT id, watch_seq FROM outbox WHERE id > ? ORDER BY id", (after,)).fetchall()


def last_event_id(connection: sqlite3.Connection) -> int:
    return int(connection.execute("SELECT coalesce(max(id), 0) FROM outbox").fetchone()[0])


# -- the watcher -------------------------------------------------------------------------------


Shard = tuple[int, int]  # (this watcher's number, watchers): it owns the watches with seq % watchers == number


def watches_since(connection: sqlite3.Connection, seq: int, shard: Shard) -> list[Watch]:
    return [Watch(*found) for found in connection.execute(
        f"SELECT {WATCH_FIELDS} FROM watches WHERE seq > ? AND seq % ? = ? ORDER BY seq", (seq, shard[1], shard[0]))]


@contextlib.contextmanager
def reading(connection: sqlite3.Connection) -> Iterator[None]:
    """One read transaction: the queries inside see the same state of the file."""
    connection.execute("BEGIN")
    try:
        yield
    finally:
        connection.execute("COMMIT")


def census(connection: sqlite3.Connection, after: int) -> tuple[int, int, int]:
    """(watches held, how many of them have a seq above `after`, the highest seq) of every shard:
    a reader that saw N watches and then `after` as the highest seq knows some were deleted
    since when the first is less than N plus the second (no count(*) of the whole table)."""
    (held,) = connection.execute("SELECT watches FROM watch_count").fetchone()
    newer, highest = connection.execute("SELECT count(*), max(seq) FROM watches WHERE seq > ?", (after,)).fetchone()
    return int(held), int(newer), after if highest is None else int(highest)


def count(connection: sqlite3.Connection, shard: Shard) -> int:
    return int(connection.execute("SELECT count(*) FROM watches WHERE seq % ? = ?", (shard[1], shard[0])).fetchone()[0])


def live_seqs(connection: sqlite3.Connection, shard: Shard) -> set[int]:
    return {seq for (seq,) in connection.execute("SELECT seq FROM watches WHERE seq % ? = ?", (shard[1], shard[0]))}


def load_state(connection: sqlite3.Connection, shard: Shard) -> dict[int, dict[str, Placed]]:
    state: dict[int, dict[str, Placed]] = {}
    for seq, place_id, row, source, listing_id, total, currency in connection.execute(
            "SELECT watch_seq, place_id, row, source, listing_id, total, currency FROM watch_state "
            "WHERE watch_seq % ? = ?", (shard[1], shard[0])):
        state.setdefault(seq, {})[place_id] = Placed(row, source, listing_id, total, currency)
    return state


def record(
    connection: sqlite3.Connection, events: list[Event], webhooks: set[int],
    placed: list[tuple[int, str, Placed]], gone: list[tuple[int, str]],
) -> None:
    """One transaction: the events (owed to webhooks for the watches in `webhooks`) and the
    state they leave (`placed` set, `gone` removed); durable when this returns."""
    now = time.time()
    with writing(connection):
        for event in events:
            cursor = connection.execute(
                "INSERT INTO outbox (watch_seq, event, data, created_at) VALUES (?, ?, ?, ?)",
                (event.watch_seq, event.event, event.data.decode(), now))
            if event.watch_seq in webhooks:
                connection.execute("INSERT INTO deliveries (event_id, next_at) VALUES (?, ?)", (cursor.lastrowid, now))
        connection.executemany(
            "INSERT OR REPLACE INTO watch_state VALUES (?, ?, ?, ?, ?, ?, ?)",
            [(seq, place, p.row, p.source, p.listing_id, p.total, p.currency) for seq, place, p in placed])
        connection.executemany("DELETE FROM watch_state WHERE watch_seq = ? AND place_id = ?", gone)


def expire(connection: sqlite3.Connection, now: float, keep_events_seconds: float, shard: Shard) -> list[int]:
    """Remove the watches past their expiry (and all they own) and events older than
    `keep_events_seconds` that no webhook still waits for; returns the removed watches."""
    with writing(connection):
        seqs = [seq for (seq,) in connection.execute(
            "SELECT seq FROM watches WHERE expires_at <= ? AND seq % ? = ?", (now, shard[1], shard[0]))]
        _forget(connection, seqs)
        connection.execute(
            "DELETE FROM outbox WHERE created_at < ? AND watch_seq % ? = ? "
            "AND id NOT IN (SELECT event_id FROM deliveries)", (now - keep_events_seconds, shard[1], shard[0]))
    return seqs


def due_deliveries(
    connection: sqlite3.Connection, now: float, limit: int, shard: Shard
) -> list[tuple[int, int, str, str, str, str, str]]:
    """(event id, attempts, event, data, webhook, secret, watch_id) of deliveries due by `now`."""
    return connection.execute(
        "SELECT d.event_id, d.attempts, o.event, o.data, w.webhook, w.secret, w.id FROM deliveries d "
        "JOIN outbox o ON o.id = d.event_id JOIN watches w ON w.seq = o.watch_seq "
        "WHERE d.next_at <= ? AND o.watch_seq % ? = ? ORDER BY d.next_at LIMIT ?",
        (now, shard[1], shard[0], limit)).fetchall()


def delivered(connection: sqlite3.Connection, event_id: int) -> None:
    connection.execute("DELETE FROM deliveries WHERE event_id = ?", (event_id,))


def retry_later(connection: sqlite3.Connection, event_id: int, attempts: int, next_at: float) -> None:
    connection.execute(
        "UPDATE deliveries SET attempts = ?, next_at = ? WHERE event_id = ?", (attempts, next_at, event_id))


def backlog(connection: sqlite3.Connection) -> int:
    return int(connection.execute("SELECT count(*) FROM deliveries").fetchone()[0])


def next_due(connection: sqlite3.Connection) -> float | None:
    found = connection.execute("SELECT min(next_at) FROM deliveries").fetchone()[0]
    return None if found is None else float(found)
