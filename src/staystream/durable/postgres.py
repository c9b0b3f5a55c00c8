"""PostgreSQL as the writer's durable store: `staystream serve --store postgresql://...`.

The layout is the embedded store's, moved into PostgreSQL (layout D3 of
`../shared/docs/layouts.md`: 8.8 M night updates/s, against 207 k for one row per night and
43 k for one row per listing). The calendar lives in memory; PostgreSQL holds what a node needs
to rebuild it, so a new node bootstraps from PostgreSQL alone:

- `staystream.listings`: key -> row number, the details, `described_at`, `delisted_at`;
- `staystream.rate_log`: one row per group commit, the group's calendar events packed
  (`types.RATE_DTYPE`, 32 B an event) in a `bytea`, of the format in the setting
  `rate_format` (`upgrade_log` rewrites rows of a database from before facts once);
- `staystream.snapshot_chunks` + `staystream.snapshots`: calendar snapshots as `.npy` bytes
  in 8 MiB chunks, complete once their `snapshots` row commits (which also deletes the log rows
  they cover and older snapshots);
- `staystream.settings`: the FX table.

A group is acknowledged after its transaction committed with `synchronous_commit=on`.

HTTP workers read listing details from SQLite (`search/view.py`), so this backend keeps a local
SQLite mirror at the embedded store's path, written after each PostgreSQL commit and before the
writer answers (read-after-ack), without fsync: it is rebuilt from PostgreSQL at every start.

Failures. Connection errors (PostgreSQL restarting, a backend killed) are retried with backoff
for up to `RETRY_SECONDS`; past that the group fails (the workers answer 503 + Retry-After)
and, while PostgreSQL stays away, later groups fail at once after one attempt. A commit cut off
by a lost connection may or may not have committed; the writer then forgets the group (it was
not acknowledged), so the next transaction first deletes what such a group may have left
(listing rows and log rows past what the writer knows): nothing unacknowledged can later be
mixed with reused row numbers or sequence numbers. One writer per database, enforced with a
session advisory lock taken again after every reconnect.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

from prometheus_client import Counter, Gauge

from staystream.durable import sqlite
from staystream.durable.embedded import Recovered
from staystream.durable.lock import StoreLocked, lock_directory
from staystream.durable.snapshot import Piece, from_npy
from staystream.events.types import RATE_FORMAT, Commit, Fee, Link, Listing, listing_key, split_key, upgrade_rates
from staystream.paths import database_path
from staystream.retry import backoff, retrying

try:
    import asyncpg  # type: ignore[import-untyped]  # asyncpg ships no types
except ImportError:  # pragma: no cover - depends on the install
    raise ImportError(
        "--store postgresql://... needs asyncpg: pip install 'staystream[scale]'"
    ) from None

log = logging.getLogger("staystream.pgstore")
T = TypeVar("T")

RETRY_SECONDS = 5.0
CONNECT_TIMEOUT = 2.0
CHUNK_BYTES = 8 << 20
LOCK_KEY = 0x53_74_61_79_73_74_72  # "Staystr": one writer per database
SERVER_SETTINGS = {"synchronous_commit": "on", "application_name": "staystream-writer"}
CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    asyncio.TimeoutError,
    asyncpg.PostgresConnectionError,  # 08xxx, and a connection lost mid-statement
    asyncpg.InterfaceError,  # "connection is closed"
    asyncpg.exceptions.OperatorInterventionError,  # admin shutdown, crash restart, starting up
)

store_reachable = Gauge(
    "staystream_store_reachable", "1 while PostgreSQL answers the writer, 0 while retrying",
    multiprocess_mode="max",
)
store_retries = Counter("staystream_store_retries_total", "PostgreSQL attempts that failed to connect or commit")

SCHEMA = """
CREATE SCHEMA IF NOT EXISTS staystream;
CREATE TABLE IF NOT EXISTS staystream.listings (
    row integer PRIMARY KEY,
    source text COLLATE "C" NOT NULL,
    listing_id text COLLATE "C" NOT NULL,
    name text, kind smallint, lat double precision, lon double precision, max_guests integer,
    property_id text, city text, country text, bedrooms integer, url text,
    described_at bigint,   -- changed_at (µs) of the winning listing event
    delisted_at bigint,    -- changed_at (µs) of the winning delist event
    UNIQUE (source, listing_id)
);
CREATE TABLE IF NOT EXISTS staystream.rate_log (
    seq bigint PRIMARY KEY,   -- commit sequence of the group
    events bytea NOT NULL     -- the group's rate events, packed types.RATE_DTYPE, key = row
);
-- Packed numbers do not compress: store them out of line as they are.
ALTER TABLE staystream.rate_log ALTER COLUMN events SET STORAGE EXTERNAL;
CREATE TABLE IF NOT EXISTS staystream.snapshot_chunks (
    seq bigint, name text, chunk integer, data bytea NOT NULL,
    PRIMARY KEY (seq, name, chunk)
);
ALTER TABLE staystream.snapshot_chunks ALTER COLUMN data SET STORAGE EXTERNAL;
CREATE TABLE IF NOT EXISTS staystream.snapshots (
    seq bigint PRIMARY KEY, written_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS staystream.settings (name text PRIMARY KEY, value bytea NOT NULL);
CREATE TABLE IF NOT EXISTS staystream.fees (   -- types.Fee, last-writer-wins per (row, fee_id)
    row integer NOT NULL,
    fee_id text COLLATE "C" NOT NULL,
    label text NOT NULL, basis smallint NOT NULL, amount bigint NOT NULL, currency integer NOT NULL,
    mandatory boolean NOT NULL, start_day integer NOT NULL, end_day integer NOT NULL,
    changed_at bigint NOT NULL,
    removed boolean NOT NULL,   -- a tombstone: keeps its changed_at
    PRIMARY KEY (row, fee_id)
);
ALTER TABLE staystream.listings ADD COLUMN IF NOT EXISTS address text;
CREATE TABLE IF NOT EXISTS staystream.links (  -- the winning `link` per pair, the smaller key first
    source text COLLATE "C" NOT NULL, listing_id text COLLATE "C" NOT NULL,
    other_source text COLLATE "C" NOT NULL, other_listing_id text COLLATE "C" NOT NULL,
    same boolean NOT NULL, changed_at bigint NOT NULL,
    PRIMARY KEY (source, listing_id, other_source, other_listing_id)
);
"""

INSERT_LOG = "INSERT INTO staystream.rate_log (seq, events) VALUES ($1, $2)"
INSERT_KEYS = (
    "INSERT INTO staystream.listings (row, source, listing_id) "
    "SELECT * FROM unnest($1::integer[], $2::text[], $3::text[])"
)
UPDATE_LISTINGS = """
UPDATE staystream.listings AS l SET
    name = u.name, kind = u.kind, lat = u.lat, lon = u.lon, max_guests = u.max_guests,
    property_id = u.property_id, city = u.city, country = u.country, bedrooms = u.bedrooms,
    url = u.url, address = u.address, described_at = u.described_at
FROM unnest($1::integer[], $2::text[], $3::smallint[], $4::float8[], $5::float8[], $6::integer[],
            $7::text[], $8::text[], $9::text[], $10::integer[], $11::text[], $12::text[], $13::bigint[])
     AS u(row, name, kind, lat, lon, max_guests, property_id, city, country, bedrooms, url, address, described_at)
WHERE l.row = u.row AND (l.described_at IS NULL OR l.described_at <= u.described_at)
"""
UPDATE_DELISTS = """
UPDATE staystream.listings AS l SET delisted_at = u.at
FROM unnest($1::integer[], $2::bigint[]) AS u(row, at)
WHERE l.row = u.row AND (l.delisted_at IS NULL OR l.delisted_at <= u.at)
"""
UPSERT_FEES = f"""
INSERT INTO staystream.fees AS f (row, {sqlite.FEE_FIELDS})
SELECT * FROM unnest($1::integer[], $2::text[], $3::text[], $4::smallint[], $5::bigint[], $6::integer[],
                     $7::boolean[], $8::integer[], $9::integer[], $10::bigint[], $11::boolean[])
ON CONFLICT (row, fee_id) DO UPDATE SET
    label = excluded.label, basis = excluded.basis, amount = excluded.amount, currency = excluded.currency,
    mandatory = excluded.mandatory, start_day = excluded.start_day, end_day = excluded.end_day,
    changed_at = excluded.changed_at, removed = excluded.removed
WHERE excluded.changed_at >= f.changed_at
"""
UPSERT_SETTING = (
    "INSERT INTO staystream.settings (name, value) VALUES ($1, $2) "
    "ON CONFLICT (name) DO UPDATE SET value = excluded.value"
)
# Per pair the greatest changed_at wins; at equal changed_at "not same" wins (as `sqlite.UPSERT_LINK`).
UPSERT_LINKS = """
INSERT INTO staystream.links AS l
SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::boolean[], $6::bigint[])
ON CONFLICT (source, listing_id, other_source, other_listing_id)
DO UPDATE SET same = excluded.same, changed_at = excluded.changed_at
WHERE excluded.changed_at > l.changed_at OR (excluded.changed_at = l.changed_at AND NOT excluded.same)
"""
MIRROR_COLUMNS = f"row, source, listing_id, {sqlite.LISTING_FIELDS}, described_at, delisted_at"


async def upgrade_log(connection: Any) -> None:
    """Rewrite log rows of an older format in the current one, once (the setting `rate_format`
    says which format the rows have; a database without it is from before facts)."""
    current = str(RATE_FORMAT).encode()
    async with connection.transaction():
        await connection.execute("LOCK TABLE staystream.rate_log IN EXCLUSIVE MODE")
        found = await connection.fetchval("SELECT value FROM staystream.settings WHERE name = 'rate_format'")
        if found == current:
            return
        version = 1 if found is None else int(found)
        rows = await connection.fetch("SELECT seq, events FROM staystream.rate_log")
        await connection.executemany(
            "UPDATE staystream.rate_log SET events = $2 WHERE seq = $1",
            [(r["seq"], upgrade_rates(r["events"], version).tobytes()) for r in rows],
        )
        await connection.execute(UPSERT_SETTING, "rate_format", current)


class PostgresUnavailable(ConnectionError):
    """PostgreSQL did not answer within the retry window: the group was not acknowledged."""


def redacted(dsn: str) -> str:
    """The URI without its password, for logs and errors."""
    parts = urlsplit(dsn)
    if parts.password is None:
        return dsn
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
    return urlunsplit(parts._replace(netloc=netloc))


class PostgresDurable:
    """The writer's durable state in PostgreSQL, plus the local SQLite mirror for workers."""

    def __init__(self, dsn: str, pool_size: int, data_dir: Path) -> None:
        data_dir.mkdir(parents=True, exist_ok=True)
        self._directory_lock = lock_directory(data_dir)  # the mirror is not shareable either
        self.dsn = dsn
        self.pool_size = pool_size
        self.mirror_path = database_path(data_dir)
        self.mirror: sqlite3.Connection | None = None
        self.thread = ThreadPoolExecutor(1, thread_name_prefix="mirror")
        self.pool: asyncpg.Pool | None = None
        self.lock_connection: asyncpg.Connection | None = None
        self.rows = 0  # listing rows known committed (row numbers are dense from 0)
        self.seq = 0  # newest log sequence known committed
        self.unsure = False  # a commit was cut off: it may have committed, unacknowledged
        self.down_since: float | None = None

    @classmethod
    async def open(cls, dsn: str, pool_size: int, data_dir: Path) -> PostgresDurable:
        """Connect (waiting, with backoff, while PostgreSQL is away) and take the writer lock."""
        durable = cls(dsn, pool_size, data_dir)
        await durable._retrying("connect", durable._connect)
        return durable

    async def _connect(self) -> None:
        await self._lock()
        if self.pool is None:
            self.pool = await asyncpg.create_pool(
                self.dsn, min_size=1, max_size=self.pool_size, timeout=CONNECT_TIMEOUT,
                server_settings=SERVER_SETTINGS,
            )

    async def _lock(self) -> None:
        """Hold the database's writer lock on a connection of its own (again after a restart)."""
        if self.lock_connection is not None and not self.lock_connection.is_closed():
            return
        connection = await asyncpg.connect(
            self.dsn, timeout=CONNECT_TIMEOUT,
            server_settings={"application_name": "staystream-writer-lock"},
        )
        if not await connection.fetchval("SELECT pg_try_advisory_lock($1)", LOCK_KEY):
            holder = await connection.fetchval(
                "SELECT coalesce(a.application_name, '') || ' pid ' || l.pid || ' from ' || "
                "coalesce(host(a.client_addr), 'local socket') FROM pg_locks l "
                "JOIN pg_stat_activity a USING (pid) WHERE l.locktype = 'advisory' "
                "AND l.objid = ($1::bigint & 4294967295) AND l.granted LIMIT 1", LOCK_KEY,
            )
            await connection.close()
            raise StoreLocked(
                f"the PostgreSQL store '{redacted(self.dsn)}' is in use by another staystream writer "
                f"({holder or 'unknown'}); stop it, or point this one at another database"
            )
        self.lock_connection = connection

    async def _retrying(self, what: str, step: Callable[[], Awaitable[T]]) -> T:
        """Run `step` until it gets through; used where waiting is the only sensible answer."""
        result = await retrying(step, CONNECTION_ERRORS, log, "PostgreSQL unreachable; retrying", what,
                                warn_every=20, on_failure=self._failed)
        self._reached()
        return result

    def _failed(self, exc: BaseException) -> None:
        store_retries.inc()
        store_reachable.set(0)
        if self.down_since is None:
            self.down_since = time.monotonic()
            log.warning("PostgreSQL unreachable", extra={"error": f"{type(exc).__name__}: {exc}"})

    def _reached(self) -> None:
        store_reachable.set(1)
        if self.down_since is not None:
            log.info("PostgreSQL reachable again",
                     extra={"after_seconds": round(time.monotonic() - self.down_since, 3)})
            self.down_since = None

    # -- start-up ------------------------------------------------------------------------

    async def recover(self) -> Recovered:
        snapshot, keys, columns, entries, settings, rate_log, fees, places, links = await self._retrying(
            "recovery", self._read_all)
        if keys and keys[-1][0] != len(keys) - 1:
            raise RuntimeError(
                f"staystream.listings rows are not dense (last row {keys[-1][0]}, {len(keys)} rows): "
                "the table was edited by hand or by another program"
            )
        self.rows = len(keys)
        self.seq = rate_log[-1][0] if rate_log else (snapshot[0] if snapshot else 0)
        loop = asyncio.get_running_loop()
        self.mirror = await loop.run_in_executor(
            self.thread, rebuild_mirror, self.mirror_path, entries, settings, fees)
        return Recovered(snapshot, [(row, source, listing_id) for row, source, listing_id in keys],
                         columns, iter(rate_log), fees=fee_structs(fees), places=places, links=links)

    async def _read_all(self) -> tuple[Any, ...]:
        assert self.pool is not None
        await self._lock()
        async with self.pool.acquire() as connection:
            await connection.execute(SCHEMA)
            await upgrade_log(connection)
            snapshot = None
            snapshot_seq = await connection.fetchval("SELECT max(seq) FROM staystream.snapshots")
            if snapshot_seq is not None:
                blobs = await load_chunks(connection, snapshot_seq)
                snapshot = (snapshot_seq, {name: from_npy(blob) for name, blob in blobs.items()})
            entries = await connection.fetch(f"SELECT {MIRROR_COLUMNS} FROM staystream.listings ORDER BY row")
            keys = [(r["row"], r["source"], r["listing_id"]) for r in entries]
            columns = [
                (r["row"], r["kind"], r["lat"], r["lon"], r["max_guests"], r["bedrooms"],
                 r["described_at"], r["delisted_at"], r["property_id"])
                for r in entries if r["described_at"] is not None or r["delisted_at"] is not None
            ]
            settings = [tuple(r) for r in await connection.fetch("SELECT name, value FROM staystream.settings")]
            after = snapshot_seq or 0
            rate_log = [
                (r["seq"], r["events"]) for r in await connection.fetch(
                    "SELECT seq, events FROM staystream.rate_log WHERE seq > $1 ORDER BY seq", after)
            ]
            fees = await read_fees(connection)
            links = await read_links(connection)
        return (snapshot, keys, columns, [tuple(r) for r in entries], settings, rate_log, fees,
                place_listings(entries), links)

    # -- commits -------------------------------------------------------------------------

    async def commit_group(self, commit: Commit) -> None:
        """One transaction; returns once it committed (synchronous_commit=on) and the mirror
        holds it. Raises `PostgresUnavailable` when PostgreSQL stays away: not acknowledged."""
        assert self.pool is not None
        started = time.monotonic()
        # While PostgreSQL has been away for a whole window, fail fast: one attempt, no waiting.
        patient = self.down_since is None or started - self.down_since < RETRY_SECONDS
        deadline = started + (RETRY_SECONDS if patient else 0.0)
        attempt = 0
        while True:
            try:
                await self._lock()
                async with self.pool.acquire(timeout=RETRY_SECONDS) as connection:
                    await self._write(connection, commit)
                break
            except CONNECTION_ERRORS as exc:
                self.unsure = True
                self._failed(exc)
                if time.monotonic() + backoff(attempt) >= deadline:
                    raise PostgresUnavailable(
                        f"PostgreSQL did not commit within {RETRY_SECONDS:.0f} s "
                        f"({type(exc).__name__}: {exc})"
                    ) from None
                await asyncio.sleep(backoff(attempt))
                attempt += 1
        self._reached()
        self.rows += len(commit.new_keys)
        if commit.rate_events:
            self.seq = commit.seq
        if commit.describes:
            assert self.mirror is not None
            try:
                await asyncio.get_running_loop().run_in_executor(
                    self.thread, sqlite.commit_group, self.mirror, commit.without_rates()
                )
            except BaseException:
                # The writer will forget this group: make the next commit remove it from PostgreSQL.
                self.rows -= len(commit.new_keys)
                self.unsure = True
                raise

    async def _write(self, connection: asyncpg.Connection, commit: Commit) -> None:
        new_keys, listings, delists, seq, rate_events = (
            commit.new_keys, commit.listings, commit.delists, commit.seq, commit.rate_events)
        if rate_events and not (commit.describes or self.unsure):
            await connection.execute(INSERT_LOG, seq, rate_events)  # one statement: one round trip
            return
        async with connection.transaction():
            if self.unsure:
                # Whatever a cut-off commit may have left past what the writer knows.
                await connection.execute("DELETE FROM staystream.listings WHERE row >= $1", self.rows)
                await connection.execute("DELETE FROM staystream.rate_log WHERE seq > $1", self.seq)
                await connection.execute("DELETE FROM staystream.fees WHERE row >= $1", self.rows)
            if new_keys:
                rows, sources, ids = zip(*new_keys, strict=True)
                await connection.execute(INSERT_KEYS, rows, sources, ids)
            if listings:
                newest = newest_per_row(listings)
                await connection.execute(UPDATE_LISTINGS, *listing_columns(newest))
            if delists:
                newest_delists = newest_per_row(delists)
                await connection.execute(
                    UPDATE_DELISTS, list(newest_delists), [d.changed_at for d in newest_delists.values()]
                )
            if commit.fees:
                await connection.execute(UPSERT_FEES, *fee_columns(commit.fees))
            if commit.links:
                await upsert_links(connection, commit.links)
            if rate_events:
                await connection.execute(INSERT_LOG, seq, rate_events)
            for name, value in commit.settings.items():
                await connection.execute(UPSERT_SETTING, name, value)
        self.unsure = False

    async def log_after(self, seq: int) -> Iterator[tuple[int, bytes]]:
        assert self.pool is not None
        async with self.pool.acquire() as connection:
            found = await connection.fetch(
                "SELECT seq, events FROM staystream.rate_log WHERE seq > $1 ORDER BY seq", seq)
        return iter([(r["seq"], r["events"]) for r in found])

    # -- snapshots -----------------------------------------------------------------------

    async def write_snapshot(self, seq: int, rows: int, pieces: Iterator[Piece]) -> None:
        """Chunks first (each its own commit, so commits go on beside them), then one short
        transaction that makes the snapshot current and deletes what it supersedes."""
        assert self.pool is not None
        async with self.pool.acquire() as connection:
            newest = await connection.fetchval("SELECT max(seq) FROM staystream.snapshots")
            if newest is None or newest < seq:
                await connection.execute("DELETE FROM staystream.snapshot_chunks WHERE seq = $1", seq)
                await insert_chunks(connection, seq, pieces)
            async with connection.transaction():
                await connection.execute(
                    "INSERT INTO staystream.snapshots (seq) VALUES ($1) ON CONFLICT DO NOTHING", seq
                )
                current = await connection.fetchval("SELECT max(seq) FROM staystream.snapshots")
                await connection.execute("DELETE FROM staystream.snapshots WHERE seq < $1", current)
                await connection.execute("DELETE FROM staystream.snapshot_chunks WHERE seq <> $1", current)
                await connection.execute("DELETE FROM staystream.rate_log WHERE seq <= $1", current)

    async def close(self) -> None:
        if self.pool is not None:
            try:
                await asyncio.wait_for(self.pool.close(), 10)
            except CONNECTION_ERRORS:
                self.pool.terminate()
        if self.lock_connection is not None:
            self.lock_connection.terminate()
        if self.mirror is not None:
            await asyncio.get_running_loop().run_in_executor(self.thread, self.mirror.close)
        self.thread.shutdown()


def newest_per_row(events: Sequence[tuple[int, Any]]) -> dict[int, Any]:
    """Per row, the event with the greatest changed_at, the later arrival winning ties
    (what one UPDATE per event in arrival order would leave)."""
    newest: dict[int, Any] = {}
    for row, event in events:
        kept = newest.get(row)
        if kept is None or event.changed_at >= kept.changed_at:
            newest[row] = event
    return newest


def fee_columns(fees: Sequence[tuple[int, Fee]]) -> list[list[Any]]:
    """The group's fees as UPSERT_FEES's arrays: per (row, fee_id) the one an upsert per fee in
    arrival order would leave (one statement may not touch a row twice)."""
    newest: dict[tuple[int, str], tuple[int, Fee]] = {}
    for row, fee in fees:
        kept = newest.get((row, fee.fee_id))
        if kept is None or fee.changed_at >= kept[1].changed_at:
            newest[row, fee.fee_id] = (row, fee)
    rows = [sqlite.fee_row(row, fee) for row, fee in newest.values()]
    return [list(column) for column in zip(*rows, strict=True)]


async def read_fees(connection: asyncpg.Connection) -> list[tuple[Any, ...]]:
    return [tuple(r) for r in await connection.fetch(f"SELECT row, {sqlite.FEE_FIELDS} FROM staystream.fees")]


def fee_structs(fees: list[tuple[Any, ...]]) -> list[tuple[int, Fee]]:
    """`read_fees` rows as the writer loads them (the row names the listing: `key` is empty)."""
    return [
        (row, Fee("", fee_id, label, basis, amount, currency, mandatory, start, end, changed_at, removed))
        for row, fee_id, label, basis, amount, currency, mandatory, start, end, changed_at, removed in fees
    ]


def listing_columns(newest: dict[int, Listing]) -> list[list[Any]]:
    items = list(newest.values())
    return [
        list(newest),
        [x.name for x in items], [x.kind for x in items], [x.lat for x in items], [x.lon for x in items],
        [x.max_guests for x in items], [x.property_id for x in items], [x.city for x in items],
        [x.country for x in items], [x.bedrooms for x in items], [x.url for x in items],
        [x.address for x in items], [x.changed_at for x in items],
    ]


async def upsert_links(connection: asyncpg.Connection, links: list[Link]) -> None:
    """Links in arrival order: one statement cannot update a pair twice, so a pair sent twice
    in one group goes in by its winner (the greatest changed_at, "not same" at a tie)."""
    winners: dict[tuple[str, str], Link] = {}
    for link in links:
        kept = winners.get((link.key, link.other_key))
        if kept is None or (link.changed_at, not link.same) >= (kept.changed_at, not kept.same):
            winners[link.key, link.other_key] = link
    chosen = list(winners.values())
    first, second = [split_key(x.key) for x in chosen], [split_key(x.other_key) for x in chosen]
    await connection.execute(UPSERT_LINKS, [k[0] for k in first], [k[1] for k in first], [k[0] for k in second],
                             [k[1] for k in second], [x.same for x in chosen], [x.changed_at for x in chosen])


def place_listings(entries: list[Any]) -> list[tuple[Any, ...]]:
    """The listings in search among `MIRROR_COLUMNS` records, as `sqlite.place_listings` reads them."""
    return [
        (r["row"], r["source"], r["listing_id"], r["name"], r["kind"], r["lat"], r["lon"], r["max_guests"],
         r["address"], r["property_id"])
        for r in entries
        if r["described_at"] is not None and (r["delisted_at"] is None or r["delisted_at"] < r["described_at"])
    ]


async def read_links(connection: asyncpg.Connection) -> list[Link]:
    return [Link(listing_key(r["source"], r["listing_id"]), listing_key(r["other_source"], r["other_listing_id"]),
                 r["same"], r["changed_at"])
            for r in await connection.fetch("SELECT * FROM staystream.links")]


async def insert_chunks(connection: asyncpg.Connection, seq: int, pieces: Iterator[Piece]) -> None:
    """The pieces of each array as numbered rows of at most `CHUNK_BYTES`."""
    numbers: dict[str, int] = {}
    for name, piece in pieces:
        for start in range(0, len(piece), CHUNK_BYTES):
            number = numbers[name] = numbers.get(name, -1) + 1
            await connection.execute(
                "INSERT INTO staystream.snapshot_chunks (seq, name, chunk, data) VALUES ($1, $2, $3, $4)",
                seq, name, number, piece[start : start + CHUNK_BYTES],
            )


async def load_chunks(connection: asyncpg.Connection, seq: int) -> dict[str, bytes]:
    """Each array's (or blob's) bytes, its chunks joined in order."""
    parts: dict[str, list[bytes]] = {}
    for record in await connection.fetch(
        "SELECT name, data FROM staystream.snapshot_chunks WHERE seq = $1 ORDER BY name, chunk", seq
    ):
        parts.setdefault(record["name"], []).append(record["data"])
    return {name: b"".join(chunks) for name, chunks in parts.items()}


def rebuild_mirror(path: Path, entries: list[tuple[Any, ...]], settings: list[tuple[Any, ...]],
                   fees: Sequence[tuple[Any, ...]] = ()) -> sqlite3.Connection:
    """A fresh SQLite copy of the listings, settings and fees, for the HTTP workers. No fsync:
    it is rebuilt from PostgreSQL at every start."""
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    connection = sqlite.connect_writer(path)
    connection.execute("PRAGMA synchronous=OFF")
    connection.execute("BEGIN")
    connection.executemany(
        f"INSERT INTO listings ({MIRROR_COLUMNS}) VALUES ({', '.join('?' * len(MIRROR_COLUMNS.split(',')))})",
        entries,
    )
    connection.executemany("INSERT INTO settings (name, value) VALUES (?, ?)", settings)
    connection.executemany(f"INSERT INTO fees (row, {sqlite.FEE_FIELDS}) VALUES ({', '.join('?' * 11)})", fees)
    connection.execute("COMMIT")
    return connection
