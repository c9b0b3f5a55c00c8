"""Watches in PostgreSQL (`--store postgresql://`): the same tables as `watches/store.py`, shared
by every node, so in scaled mode any node serves any watch's stream.

- One producer per shard across nodes: each node's watcher for shard k holds the session
  advisory lock `SHARD_LOCK + k` and does all its writes on that same session, so a producer
  whose session ended (kill -9, a lost connection, PostgreSQL restarted) can write nothing more,
  and a standby on another node takes the lock and carries on from the stored state.
- Streams wake through LISTEN/NOTIFY: the producer's transaction notifies `EVENTS_CHANNEL` with
  the watches that have new events (delivered at commit), workers on every node listen.
  Creations and deletions notify `WATCHES_CHANNEL`, which producers listen to.
- Limits count every node's watches: creations take a transaction-scoped advisory lock first.
- Rows are the node's own (each node numbers its listings in its own order), so the state names
  a place by its anchor's key (`place_source`, `place_listing_id`) and each node maps it to its row.

psycopg (synchronous) rather than the writer's asyncpg: the store's callers are synchronous
(the watcher's evaluation, the workers' short reads), as with SQLite.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import psycopg

from staystream.durable import sqlite as listings_db
from staystream.memory.shm import SharedArrays
from staystream.watches.store import WATCH_FIELDS, Event, LimitReached, Placed, Shard, Watch, seconds_until

log = logging.getLogger("staystream.watches")
SHARD_LOCK = 0x5761_7463_6800_00  # + shard number: that shard's producer
LIMIT_LOCK = 0x5761_7463_6801_00  # creations, one transaction at a time (the limits hold)
SCHEMA_LOCK = 0x5761_7463_6802_00  # the schema, created by one node at a time
EVENTS_CHANNEL = "staystream_watch_events"
WATCHES_CHANNEL = "staystream_watches"
NOTIFY_BYTES = 7000  # under PostgreSQL's 8000-byte payload: more watches than fit wake every stream
STANDBY_SECONDS = 0.5  # how often a standby tries to take its shard
CONNECT_SECONDS = 5

SCHEMA = """
CREATE SCHEMA IF NOT EXISTS staystream;
CREATE TABLE IF NOT EXISTS staystream.watches (
    seq bigserial PRIMARY KEY,
    id text NOT NULL UNIQUE,
    secret text NOT NULL,
    params text NOT NULL,
    webhook text,
    client text NOT NULL,
    created_at double precision NOT NULL,
    expires_at double precision NOT NULL
);
ALTER TABLE staystream.watches ADD COLUMN IF NOT EXISTS changes boolean NOT NULL DEFAULT false;  -- price_change too
CREATE INDEX IF NOT EXISTS watches_client ON staystream.watches (client, expires_at);
CREATE INDEX IF NOT EXISTS watches_expiry ON staystream.watches (expires_at);
CREATE TABLE IF NOT EXISTS staystream.watch_state (
    watch_seq bigint NOT NULL,
    place_id text NOT NULL,
    place_source text NOT NULL,      -- the place's anchor: each node maps it to its own row
    place_listing_id text NOT NULL,
    source text NOT NULL,            -- the offer last sent
    listing_id text NOT NULL,
    total bigint NOT NULL,
    currency integer NOT NULL,
    PRIMARY KEY (watch_seq, place_id)
);
CREATE TABLE IF NOT EXISTS staystream.watch_outbox (
    id bigserial PRIMARY KEY,
    watch_seq bigint NOT NULL,
    event text NOT NULL,
    data text NOT NULL,
    created_at double precision NOT NULL
);
CREATE INDEX IF NOT EXISTS watch_outbox_watch ON staystream.watch_outbox (watch_seq, id);
CREATE INDEX IF NOT EXISTS watch_outbox_age ON staystream.watch_outbox (created_at);
CREATE TABLE IF NOT EXISTS staystream.watch_deliveries (
    event_id bigint PRIMARY KEY,
    attempts integer NOT NULL DEFAULT 0,
    next_at double precision NOT NULL
);
CREATE INDEX IF NOT EXISTS watch_deliveries_due ON staystream.watch_deliveries (next_at);
"""


def connect(uri: str, name: str = "staystream-watches") -> psycopg.Connection[Any]:
    connection = psycopg.connect(uri, autocommit=True, connect_timeout=CONNECT_SECONDS, application_name=name)
    with connection.transaction():
        connection.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK,))  # several nodes start at once
        connection.execute(SCHEMA)
    return connection


class PostgresWatches:
    def __init__(self, uri: str, listings: sqlite3.Connection | None = None, name: str = "staystream-watches") -> None:
        self.uri = uri
        self.name = name  # the session's application_name
        self.listings = listings  # the node's listings (the watcher's): rows <-> keys
        self._connection: psycopg.Connection[Any] | None = None
        self.fenced = False  # the watcher's: its session holds the shard's lock, and must never be replaced
        self.notified = False  # WATCHES_CHANNEL heard since the last look (the watcher's session)

    def _session(self) -> psycopg.Connection[Any]:
        """The session; a worker's is opened again after it broke. A producer's is not: its lock
        went with it, and another node may be producing by now, so losing it is fatal (the
        supervisor starts another watcher, which waits for the lock)."""
        connection = self._connection
        if connection is None or connection.closed or connection.broken:
            if self.fenced:
                raise psycopg.OperationalError("lost the watch store session holding this shard")
            connection = self._connection = connect(self.uri, self.name)
        return connection

    def _live_session(self) -> psycopg.Connection[Any]:
        """A worker's session, proven alive before a write: one that died with a server restart
        since its last use fails its first statement, so it is replaced first, not reported."""
        if not self.fenced:
            try:
                self._session().execute("SELECT 1")
            except psycopg.OperationalError:
                self._connection = None
        return self._session()

    def _read(self, sql: str, parameters: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        """A worker's read, once more on a new session if the old one had died (a read is safe to repeat)."""
        try:
            return self._session().execute(sql, parameters).fetchall()
        except psycopg.OperationalError:
            if self.fenced:
                raise
            self._connection = None
            return self._session().execute(sql, parameters).fetchall()

    @classmethod
    def holding_shard(cls, uri: str, shard: Shard, listings: sqlite3.Connection) -> PostgresWatches:
        """Waits (retrying an unreachable server) until this session holds `shard`'s lock."""
        watches = cls(uri, listings, f"staystream-watcher {os.getpid()}")  # who produces: pg_locks
        waiting_since = time.monotonic()
        said = False
        while True:
            try:
                connection = watches._session()
                taken = connection.execute("SELECT pg_try_advisory_lock(%s)", (SHARD_LOCK + shard[0],)).fetchone()
                if taken == (True,):
                    break
            except psycopg.OperationalError as exc:
                log.warning("watch store unreachable; retrying", extra={"error": str(exc)})
                watches._connection = None
            if not said and time.monotonic() - waiting_since > 2:
                log.info("another node produces this shard's events; standing by", extra={"shard": shard[0]})
                said = True
            time.sleep(STANDBY_SECONDS)
        watches.fenced = True
        connection.add_notify_handler(watches._heard)
        connection.execute(f"LISTEN {WATCHES_CHANNEL}")
        return watches

    def _heard(self, notify: psycopg.Notify) -> None:
        self.notified = True

    # -- workers -------------------------------------------------------------------------------

    def create(self, watches: list[tuple[Watch, str]], per_client: int, total: int) -> list[LimitReached | None]:
        """As `store.create`, for every node's watches: one transaction, limits under a lock."""
        now = time.time()
        answers: list[LimitReached | None] = []
        connection = self._live_session()
        with connection.transaction():
            connection.execute("SELECT pg_advisory_xact_lock(%s)", (LIMIT_LOCK,))
            (count,) = _one(connection, "SELECT count(*) FROM staystream.watches WHERE expires_at > %s", (now,))
            held: dict[str, tuple[int, float | None]] = {}
            for watch, client in watches:
                if client not in held:
                    holds, soonest = _one(connection, "SELECT count(*), min(expires_at) FROM staystream.watches "
                                          "WHERE client = %s AND expires_at > %s", (client, now))
                    held[client] = (int(holds), soonest)
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
                        "INSERT INTO staystream.watches (id, secret, params, webhook, client, created_at, "
                        "expires_at, changes) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
                        (watch.id, watch.secret, watch.params, watch.webhook, client, now, watch.expires_at,
                         watch.changes))
                    held[client] = (holds + 1, watch.expires_at if soonest is None else min(soonest, watch.expires_at))
                    count += 1
                    answers.append(None)
            connection.execute(f"NOTIFY {WATCHES_CHANNEL}")
        return answers

    def find(self, watch_id: str) -> Watch | None:
        found = self._read(f"SELECT {WATCH_FIELDS} FROM staystream.watches WHERE id = %s AND expires_at > %s",
                           (watch_id, time.time()))
        return Watch(*found[0]) if found else None

    def delete(self, watch_id: str) -> bool:
        connection = self._live_session()
        with connection.transaction():
            found = connection.execute("SELECT seq FROM staystream.watches WHERE id = %s", (watch_id,)).fetchone()
            if found is not None:
                _forget(connection, [found[0]])
                connection.execute(f"NOTIFY {WATCHES_CHANNEL}")
        return found is not None

    def events_after(self, watch_seq: int, after: int, limit: int = 500) -> list[tuple[int, str, str]]:
        return [(int(i), str(e), str(d)) for i, e, d in self._read(
            "SELECT id, event, data FROM staystream.watch_outbox WHERE watch_seq = %s AND id > %s "
            "ORDER BY id LIMIT %s", (watch_seq, after, limit))]

    async def wakeups(self, shared: SharedArrays) -> AsyncIterator[set[int] | None]:
        """LISTEN on a session of its own; after each (re)connection, None: a stream may have
        missed a notification while it was away, so every stream looks."""
        import asyncio

        while True:
            try:
                async with await psycopg.AsyncConnection.connect(
                        self.uri, autocommit=True, connect_timeout=CONNECT_SECONDS,
                        application_name="staystream-watch-streams") as connection:
                    await connection.execute(f"LISTEN {EVENTS_CHANNEL}")
                    yield None
                    async for notify in connection.notifies():
                        yield None if notify.payload == "*" else {int(seq) for seq in notify.payload.split(",")}
            except psycopg.OperationalError as exc:
                log.warning("watch event notifications lost; listening again", extra={"error": str(exc)})
                await asyncio.sleep(1.0)

    # -- the watcher ---------------------------------------------------------------------------

    def watches_changed_elsewhere(self) -> bool:
        self._session().execute("SELECT 1")  # reads the notifications waiting (and proves the session)
        heard, self.notified = self.notified, False
        return heard

    @contextlib.contextmanager
    def reading(self) -> Iterator[None]:
        connection = self._session()
        with connection.transaction():
            connection.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")  # one snapshot
            yield

    def census(self, after: int) -> tuple[int, int, int]:
        """As `store.census`; seqs are taken in commit order (creations hold `LIMIT_LOCK`), so a
        watch committed after a look has a seq above what that look saw."""
        held, newer, highest = _one(self._session(), "SELECT count(*), count(*) FILTER (WHERE seq > %s), max(seq) "
                                    "FROM staystream.watches", (after,))
        return int(held), int(newer), after if highest is None else max(after, int(highest))

    def watches_since(self, seq: int, shard: Shard) -> list[Watch]:
        return [Watch(*found) for found in self._session().execute(
            f"SELECT {WATCH_FIELDS} FROM staystream.watches WHERE seq > %s AND seq %% %s = %s ORDER BY seq",
            (seq, shard[1], shard[0]))]

    def count(self, shard: Shard) -> int:
        return int(_one(self._session(), "SELECT count(*) FROM staystream.watches WHERE seq %% %s = %s",
                        (shard[1], shard[0]))[0])

    def live_seqs(self, shard: Shard) -> set[int]:
        return {seq for (seq,) in self._session().execute(
            "SELECT seq FROM staystream.watches WHERE seq %% %s = %s", (shard[1], shard[0]))}

    def load_state(self, shard: Shard) -> dict[int, dict[str, Placed]]:
        """The state of the shard's watches, each place's row this node's (-1: a listing this
        node has not heard of yet; the watch's first whole evaluation sets it)."""
        found = self._session().execute(
            "SELECT watch_seq, place_id, place_source, place_listing_id, source, listing_id, total, currency "
            "FROM staystream.watch_state WHERE watch_seq %% %s = %s", (shard[1], shard[0])).fetchall()
        assert self.listings is not None
        rows = listings_db.rows_of(self.listings, sorted({(f[2], f[3]) for f in found}))
        state: dict[int, dict[str, Placed]] = {}
        for seq, pid, place_source, place_listing_id, source, listing_id, total, currency in found:
            row = rows.get((place_source, place_listing_id), -1)
            state.setdefault(seq, {})[pid] = Placed(row, source, listing_id, total, currency)
        return state

    def record(self, events: list[Event], webhooks: set[int], placed: list[tuple[int, str, Placed]],
               gone: list[tuple[int, str]]) -> None:
        """As `store.record`: one transaction, durable when this returns; it notifies the
        streams of the watches with new events at its commit."""
        now = time.time()
        assert self.listings is not None
        anchors = listings_db.keys(self.listings, sorted({p.row for _, _, p in placed}))
        latest = {(seq, pid): p for seq, pid, p in placed}  # one row per key in a statement
        connection = self._session()
        with connection.transaction():
            if events:
                connection.execute(
                    "WITH new AS (INSERT INTO staystream.watch_outbox (watch_seq, event, data, created_at) "
                    "SELECT s, e, d, %s FROM unnest(%s::bigint[], %s::text[], %s::text[]) WITH ORDINALITY "
                    "AS t(s, e, d, n) ORDER BY n RETURNING id, watch_seq) "
                    "INSERT INTO staystream.watch_deliveries (event_id, next_at) "
                    "SELECT id, %s FROM new WHERE watch_seq = ANY(%s::bigint[])",
                    (now, [e.watch_seq for e in events], [e.event for e in events],
                     [e.data.decode() for e in events], now, sorted(webhooks)))
            if latest:
                keys = [(seq, pid, anchors[p.row], p) for (seq, pid), p in latest.items()]
                connection.execute(
                    "INSERT INTO staystream.watch_state SELECT * FROM unnest(%s::bigint[], %s::text[], "
                    "%s::text[], %s::text[], %s::text[], %s::text[], %s::bigint[], %s::integer[]) "
                    "ON CONFLICT (watch_seq, place_id) DO UPDATE SET place_source = excluded.place_source, "
                    "place_listing_id = excluded.place_listing_id, source = excluded.source, "
                    "listing_id = excluded.listing_id, total = excluded.total, currency = excluded.currency",
                    ([k[0] for k in keys], [k[1] for k in keys], [k[2][0] for k in keys], [k[2][1] for k in keys],
                     [k[3].source for k in keys], [k[3].listing_id for k in keys], [k[3].total for k in keys],
                     [k[3].currency for k in keys]))
            if gone:
                connection.execute(
                    "DELETE FROM staystream.watch_state WHERE (watch_seq, place_id) IN "
                    "(SELECT * FROM unnest(%s::bigint[], %s::text[]))",
                    ([seq for seq, _ in gone], [pid for _, pid in gone]))
            if events:
                woken = ",".join(str(seq) for seq in sorted({e.watch_seq for e in events}))
                connection.execute("SELECT pg_notify(%s, %s)",
                                   (EVENTS_CHANNEL, woken if len(woken) <= NOTIFY_BYTES else "*"))

    def expire(self, now: float, keep_events_seconds: float, shard: Shard) -> list[int]:
        connection = self._session()
        with connection.transaction():
            seqs = [seq for (seq,) in connection.execute(
                "SELECT seq FROM staystream.watches WHERE expires_at <= %s AND seq %% %s = %s",
                (now, shard[1], shard[0]))]
            _forget(connection, seqs)
            connection.execute(
                "DELETE FROM staystream.watch_outbox o WHERE created_at < %s AND watch_seq %% %s = %s "
                "AND NOT EXISTS (SELECT 1 FROM staystream.watch_deliveries d WHERE d.event_id = o.id)",
                (now - keep_events_seconds, shard[1], shard[0]))
        return seqs

    def due_deliveries(self, now: float, limit: int, shard: Shard) -> list[tuple[int, int, str, str, str, str, str]]:
        return self._session().execute(
            "SELECT d.event_id, d.attempts, o.event, o.data, w.webhook, w.secret, w.id "
            "FROM staystream.watch_deliveries d JOIN staystream.watch_outbox o ON o.id = d.event_id "
            "JOIN staystream.watches w ON w.seq = o.watch_seq "
            "WHERE d.next_at <= %s AND o.watch_seq %% %s = %s ORDER BY d.next_at LIMIT %s",
            (now, shard[1], shard[0], limit)).fetchall()

    def delivered(self, event_id: int) -> None:
        self._session().execute("DELETE FROM staystream.watch_deliveries WHERE event_id = %s", (event_id,))

    def retry_later(self, event_id: int, attempts: int, next_at: float) -> None:
        self._session().execute("UPDATE staystream.watch_deliveries SET attempts = %s, next_at = %s "
                                "WHERE event_id = %s", (attempts, next_at, event_id))

    def backlog(self) -> int:
        return int(_one(self._session(), "SELECT count(*) FROM staystream.watch_deliveries", ())[0])

    def next_due(self) -> float | None:
        found = _one(self._session(), "SELECT min(next_at) FROM staystream.watch_deliveries", ())[0]
        return None if found is None else float(found)


def _one(connection: psycopg.Connection[Any], sql: str, parameters: tuple[Any, ...]) -> tuple[Any, ...]:
    found = connection.execute(sql, parameters).fetchone()
    assert found is not None
    return tuple(found)


def _forget(connection: psycopg.Connection[Any], seqs: list[int]) -> None:
    if not seqs:
        return
    connection.execute(
        "DELETE FROM staystream.watch_deliveries WHERE event_id IN "
        "(SELECT id FROM staystream.watch_outbox WHERE watch_seq = ANY(%s))", (seqs,))
    connection.execute("DELETE FROM staystream.watch_outbox WHERE watch_seq = ANY(%s)", (seqs,))
    connection.execute("DELETE FROM staystream.watch_state WHERE watch_seq = ANY(%s)", (seqs,))
    connection.execute("DELETE FROM staystream.watches WHERE seq = ANY(%s)", (seqs,))
