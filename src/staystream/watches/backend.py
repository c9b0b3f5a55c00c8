"""Where watches live: the node's SQLite file, or PostgreSQL when the store is PostgreSQL.

With `--store postgresql://` the watches, their state, the outbox and the webhook deliveries are
PostgreSQL tables (`watches/postgres.py`), so in scaled mode any node serves any watch's stream
and the limits count every node's watches; otherwise they are `var/watches.sqlite3`
(`watches/store.py`). Both are a `WatchStore`: the workers and the watcher call only this.

A scaled node without PostgreSQL (`--role ingest` on the embedded store) keeps no watches: its
watch routes answer 503 (`unavailable`), since a watch made there would be seen by no other node.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Protocol

from staystream.config import Config
from staystream.memory.shm import Counter, SharedArrays
from staystream.paths import watches_path
from staystream.watches import store
from staystream.watches.store import Event, LimitReached, Placed, Shard, Watch

WAKE_POLL_SECONDS = 0.02  # how often a worker looks at the outbox counter (within the 1 s promise)
Delivery = tuple[int, int, str, str, str, str, str]  # event id, attempts, event, data, webhook, secret, watch_id


class WatchStore(Protocol):
    """The durable half of watches, as workers (create, delete, read events) and the watcher
    (state, outbox, deliveries) use it. Every method is synchronous and short."""

    # -- workers
    def create(self, watches: list[tuple[Watch, str]], per_client: int, total: int) -> list[LimitReached | None]: ...
    def find(self, watch_id: str) -> Watch | None: ...
    def delete(self, watch_id: str) -> bool: ...
    def events_after(self, watch_seq: int, after: int, limit: int = 500) -> list[tuple[int, str, str]]: ...
    def wakeups(self, shared: SharedArrays) -> AsyncIterator[set[int] | None]:
        """The watches with new events, as they commit (None: maybe any of them)."""
        ...

    # -- the watcher
    def watches_changed_elsewhere(self) -> bool:
        """Whether another node created or deleted watches since the last call (this node's
        workers bump `Counter.WATCHES_CHANGED`)."""
        ...

    def reading(self) -> AbstractContextManager[None]:
        """One read transaction: the queries inside see the same state."""
        ...

    def census(self, after: int) -> tuple[int, int, int]:
        """(watches held, how many have a seq above `after`, the highest seq), of every shard."""
        ...

    def watches_since(self, seq: int, shard: Shard) -> list[Watch]: ...
    def count(self, shard: Shard) -> int: ...
    def live_seqs(self, shard: Shard) -> set[int]: ...
    def load_state(self, shard: Shard) -> dict[int, dict[str, Placed]]: ...
    def record(self, events: list[Event], webhooks: set[int], placed: list[tuple[int, str, Placed]],
               gone: list[tuple[int, str]]) -> None: ...
    def expire(self, now: float, keep_events_seconds: float, shard: Shard) -> list[int]: ...
    def due_deliveries(self, now: float, limit: int, shard: Shard) -> list[Delivery]: ...
    def delivered(self, event_id: int) -> None: ...
    def retry_later(self, event_id: int, attempts: int, next_at: float) -> None: ...
    def backlog(self) -> int: ...
    def next_due(self) -> float | None: ...


class SqliteWatches:
    """`watches/store.py` on one connection to `var/watches.sqlite3`."""

    def __init__(self, path: Path) -> None:
        self.connection: sqlite3.Connection = store.connect(path)

    def create(self, watches: list[tuple[Watch, str]], per_client: int, total: int) -> list[LimitReached | None]:
        return store.create(self.connection, watches, per_client, total)

    def find(self, watch_id: str) -> Watch | None:
        return store.find(self.connection, watch_id)

    def delete(self, watch_id: str) -> bool:
        return store.delete(self.connection, watch_id)

    def events_after(self, watch_seq: int, after: int, limit: int = 500) -> list[tuple[int, str, str]]:
        return store.events_after(self.connection, watch_seq, after, limit)

    async def wakeups(self, shared: SharedArrays) -> AsyncIterator[set[int] | None]:
        """Follows `Counter.OUTBOX` (the watcher bumps it after each commit of events) and reads
        which watches the new outbox rows belong to."""
        seen = int(shared.counters[Counter.OUTBOX])
        last = store.last_event_id(self.connection)
        while True:
            await asyncio.sleep(WAKE_POLL_SECONDS)
            now = int(shared.counters[Counter.OUTBOX])
            if now == seen:
                continue
            seen = now
            woken = set()
            for event_id, watch_seq in store.new_events(self.connection, last):
                last = max(last, event_id)
                woken.add(watch_seq)
            yield woken

    def watches_changed_elsewhere(self) -> bool:
        return False  # one node: its workers bump the shared counter

    def reading(self) -> AbstractContextManager[None]:
        return store.reading(self.connection)

    def census(self, after: int) -> tuple[int, int, int]:
        return store.census(self.connection, after)

    def watches_since(self, seq: int, shard: Shard) -> list[Watch]:
        return store.watches_since(self.connection, seq, shard)

    def count(self, shard: Shard) -> int:
        return store.count(self.connection, shard)

    def live_seqs(self, shard: Shard) -> set[int]:
        return store.live_seqs(self.connection, shard)

    def load_state(self, shard: Shard) -> dict[int, dict[str, Placed]]:
        return store.load_state(self.connection, shard)

    def record(self, events: list[Event], webhooks: set[int], placed: list[tuple[int, str, Placed]],
               gone: list[tuple[int, str]]) -> None:
        store.record(self.connection, events, webhooks, placed, gone)

    def expire(self, now: float, keep_events_seconds: float, shard: Shard) -> list[int]:
        return store.expire(self.connection, now, keep_events_seconds, shard)

    def due_deliveries(self, now: float, limit: int, shard: Shard) -> list[Delivery]:
        return store.due_deliveries(self.connection, now, limit, shard)

    def delivered(self, event_id: int) -> None:
        store.delivered(self.connection, event_id)

    def retry_later(self, event_id: int, attempts: int, next_at: float) -> None:
        store.retry_later(self.connection, event_id, attempts, next_at)

    def backlog(self) -> int:
        return store.backlog(self.connection)

    def next_due(self) -> float | None:
        return store.next_due(self.connection)


def in_postgres(config: Config) -> bool:
    return config.store != "embedded"


def unavailable(config: Config) -> str | None:
    """Why this node keeps no watches, or None if it does."""
    if config.stream and not in_postgres(config):
        return ("watches: this scaled node has no PostgreSQL store (--store postgresql://...), where "
                "watches live so that any node can serve them; expected a node started with one")
    return None


def evaluated_here(config: Config) -> bool:
    """Whether this node runs watchers: it keeps watches, and its memory follows every write (a
    scaled node without the search role applies only its own)."""
    roles = {role.strip() for role in config.role.split(",")}
    return unavailable(config) is None and (not config.stream or "search" in roles)


def unreachable_errors(config: Config) -> tuple[type[BaseException], ...]:
    """What the store raises when its server cannot be reached (none for the SQLite file)."""
    if in_postgres(config):
        import psycopg

        return (psycopg.OperationalError,)
    return ()


def for_worker(config: Config) -> WatchStore:
    """A worker's handle (one per use: a connection is used by one thread at a time)."""
    if in_postgres(config):
        from staystream.watches.postgres import PostgresWatches

        return PostgresWatches(config.store)
    return SqliteWatches(watches_path(config.data_dir))


def for_watcher(config: Config, shard: int, listings: sqlite3.Connection) -> WatchStore:
    """The watcher's handle. With PostgreSQL it returns once this process holds the shard
    (one producer per shard across nodes; a standby waits here and takes over when the holder's
    session ends, a kill -9 included); `listings` maps the rows of this node to listing keys."""
    if in_postgres(config):
        from staystream.watches.postgres import PostgresWatches

        return PostgresWatches.holding_shard(config.store, (shard, config.watchers), listings)
    return SqliteWatches(watches_path(config.data_dir))
