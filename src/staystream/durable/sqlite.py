"""The durable half of the embedded store: SQLite holding listings, the rate log and settings.

Only the writer process writes (one connection, `synchronous=FULL`, so a `COMMIT` is on disk
before anyone is told); workers open read-only connections for listing details. WAL mode lets
those readers run beside the writer without blocking it.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from staystream.events.types import RATE_FORMAT, Commit, Fee, Link, listing_key, split_key, upgrade_rates

SCHEMA = """
CREATE TABLE IF NOT EXISTS listings (
    row INTEGER PRIMARY KEY,
    source TEXT NOT NULL,
    listing_id TEXT NOT NULL,
    name TEXT, kind INTEGER, lat REAL, lon REAL, max_guests INTEGER,
    property_id TEXT, city TEXT, country TEXT, bedrooms INTEGER, url TEXT,
    described_at INTEGER,   -- changed_at (µs) of the winning listing event
    delisted_at INTEGER,    -- changed_at (µs) of the winning delist event
    UNIQUE (source, listing_id)
);
CREATE TABLE IF NOT EXISTS rate_log (
    seq INTEGER PRIMARY KEY,   -- commit sequence of the group
    events BLOB NOT NULL       -- the group's calendar events, packed types.RATE_DTYPE, key = row
);  -- PRAGMA user_version: the format of `events` (types.RATE_FORMAT; 0 = format 1)
CREATE TABLE IF NOT EXISTS fees (  -- types.Fee, last-writer-wins per (row, fee_id)
    row INTEGER NOT NULL,
    fee_id TEXT NOT NULL,
    label TEXT NOT NULL, basis INTEGER NOT NULL, amount INTEGER NOT NULL, currency INTEGER NOT NULL,
    mandatory INTEGER NOT NULL, start_day INTEGER NOT NULL, end_day INTEGER NOT NULL,
    changed_at INTEGER NOT NULL,
    removed INTEGER NOT NULL,   -- a tombstone: keeps its changed_at, so an older version stays removed
    PRIMARY KEY (row, fee_id)
);
CREATE TABLE IF NOT EXISTS settings (name TEXT PRIMARY KEY, value BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS links (  -- the winning `link` per pair; may name listings not yet known
    source TEXT NOT NULL, listing_id TEXT NOT NULL,              -- the pair's smaller key
    other_source TEXT NOT NULL, other_listing_id TEXT NOT NULL,
    same INTEGER NOT NULL,
    changed_at INTEGER NOT NULL,
    PRIMARY KEY (source, listing_id, other_source, other_listing_id)
) WITHOUT ROWID;
"""

LISTING_FIELDS = "name, kind, lat, lon, max_guests, property_id, city, country, bedrooms, url, address"
FEE_FIELDS = "fee_id, label, basis, amount, currency, mandatory, start_day, end_day, changed_at, removed"
UPSERT_FEE = (
    f"INSERT INTO fees (row, {FEE_FIELDS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
    f"ON CONFLICT (row, fee_id) DO UPDATE SET ({FEE_FIELDS}) = "
    "(excluded.fee_id, excluded.label, excluded.basis, excluded.amount, excluded.currency, excluded.mandatory, "
    "excluded.start_day, excluded.end_day, excluded.changed_at, excluded.removed) "
    "WHERE excluded.changed_at >= fees.changed_at"
)
# Per pair the greatest changed_at wins; at equal changed_at "not same" wins (`places.types.Link`).
UPSERT_LINK = (
    "INSERT INTO links VALUES (?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (source, listing_id, other_source, other_listing_id) "
    "DO UPDATE SET same = excluded.same, changed_at = excluded.changed_at "
    "WHERE excluded.changed_at > links.changed_at OR (excluded.changed_at = links.changed_at AND NOT excluded.same)"
)


def connect_writer(path: Path) -> sqlite3.Connection:
    path.parent.mkdir(parents=True, exist_ok=True)
    connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=FULL")
    connection.execute("PRAGMA cache_size=-262144")
    connection.executescript(SCHEMA)
    upgrade_log(connection)
    if "address" not in {column[1] for column in connection.execute("PRAGMA table_info(listings)")}:
        connection.execute("ALTER TABLE listings ADD COLUMN address TEXT")  # a store from before addresses
    return connection


def upgrade_log(connection: sqlite3.Connection) -> None:
    """Rewrite log rows of an older format (a data directory from before facts) in the
    current one, once, in one transaction: everything that reads the log reads one format."""
    version = connection.execute("PRAGMA user_version").fetchone()[0]
    if version == RATE_FORMAT:
        return
    connection.execute("BEGIN IMMEDIATE")
    try:
        rows = connection.execute("SELECT seq, events FROM rate_log").fetchall()
        connection.executemany(
            "UPDATE rate_log SET events = ? WHERE seq = ?",
            [(upgrade_rates(events, version or 1).tobytes(), seq) for seq, events in rows],
        )
        connection.execute(f"PRAGMA user_version = {RATE_FORMAT}")
        connection.execute("COMMIT")
    except BaseException:
        connection.execute("ROLLBACK")
        raise


def connect_reader(path: Path) -> sqlite3.Connection:
    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None, check_same_thread=False)
    connection.execute("PRAGMA query_only=1")
    return connection


def commit_group(connection: sqlite3.Connection, commit: Commit) -> None:
    """One transaction for a whole group of requests; durable when this returns."""
    new_keys, listings, delists = commit.new_keys, commit.listings, commit.delists
    connection.execute("BEGIN IMMEDIATE")
    try:
        if new_keys:
            connection.executemany(
                "INSERT INTO listings (row, source, listing_id) VALUES (?, ?, ?)", new_keys
            )
        if listings:
            connection.executemany(
                f"UPDATE listings SET ({LISTING_FIELDS}, described_at) = "
                "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "WHERE row = ? AND (described_at IS NULL OR described_at <= ?)",
                [
                    (x.name, x.kind, x.lat, x.lon, x.max_guests, x.property_id, x.city,
                     x.country, x.bedrooms, x.url, x.address, x.changed_at, row, x.changed_at)
                    for row, x in listings
                ],
            )
        if delists:
            connection.executemany(
                "UPDATE listings SET delisted_at = ? "
                "WHERE row = ? AND (delisted_at IS NULL OR delisted_at <= ?)",
                [(d.changed_at, row, d.changed_at) for row, d in delists],
            )
        if commit.fees:  # in arrival order: the later of equal changed_at wins
            connection.executemany(UPSERT_FEE, [fee_row(row, fee) for row, fee in commit.fees])
        if commit.links:
            connection.executemany(UPSERT_LINK, [
                (*split_key(x.key), *split_key(x.other_key), x.same, x.changed_at) for x in commit.links])
        if commit.rate_events:
            connection.execute("INSERT INTO rate_log (seq, events) VALUES (?, ?)", (commit.seq, commit.rate_events))
        for name, value in commit.settings.items():
            connection.execute("INSERT OR REPLACE INTO settings VALUES (?, ?)", (name, value))
        connection.execute("COMMIT")
    except BaseException:
        connection.execute("ROLLBACK")
        raise


def all_keys(connection: sqlite3.Connection) -> Iterator[tuple[int, str, str]]:
    yield from connection.execute("SELECT row, source, listing_id FROM listings")


def listing_places(connection: sqlite3.Connection) -> list[tuple[str | None, str | None, float, float]]:
    """(city, country, lat, lon) of every listing that names its city and is not delisted."""
    return connection.execute(
        "SELECT city, country, lat, lon FROM listings WHERE city IS NOT NULL AND described_at IS NOT NULL "
        "AND (delisted_at IS NULL OR delisted_at < described_at)"
    ).fetchall()


def listing_columns(connection: sqlite3.Connection) -> Iterable[tuple[Any, ...]]:
    return connection.execute(
        "SELECT row, kind, lat, lon, max_guests, bedrooms, described_at, delisted_at, property_id "
        "FROM listings WHERE described_at IS NOT NULL OR delisted_at IS NOT NULL"
    )


def fee_row(row: int, fee: Fee) -> tuple[Any, ...]:
    return (row, fee.fee_id, fee.label, fee.basis, fee.amount, fee.currency, fee.mandatory, fee.start, fee.end,
            fee.changed_at, fee.removed)


def all_fees(connection: sqlite3.Connection) -> list[tuple[int, Fee]]:
    """Every stored fee (tombstones included), by row (which names the listing: `key` is empty)."""
    return [
        (row, Fee("", fee_id, label, basis, amount, currency, bool(mandatory), start, end, changed_at,
                  bool(removed)))
        for row, fee_id, label, basis, amount, currency, mandatory, start, end, changed_at, removed
        in connection.execute(f"SELECT row, {FEE_FIELDS} FROM fees")
    ]


def fees_of(connection: sqlite3.Connection, rows: list[int]) -> dict[int, list[dict[str, Any]]]:
    """The live fees of the rows asked (a page of results), by row, each by fee_id."""
    found: dict[int, list[dict[str, Any]]] = {}
    if not rows:
        return found
    cursor = connection.execute(
        f"SELECT row, {FEE_FIELDS} FROM fees WHERE removed = 0 AND row IN ({','.join('?' * len(rows))}) "
        "ORDER BY row, fee_id", rows)
    names = [column[0] for column in cursor.description]
    for values in cursor:
        found.setdefault(values[0], []).append(dict(zip(names, values, strict=True)))
    return found


def place_listings(connection: sqlite3.Connection) -> Iterable[tuple[Any, ...]]:
    """The listings in search as the places engine takes them (`writer.places.StoredListing`)."""
    return connection.execute(
        "SELECT row, source, listing_id, name, kind, lat, lon, max_guests, address, property_id FROM listings "
        "WHERE described_at IS NOT NULL AND (delisted_at IS NULL OR delisted_at < described_at)"
    )


def links(connection: sqlite3.Connection) -> list[Link]:
    return [Link(listing_key(source, listing_id), listing_key(other_source, other_id), bool(same), changed_at)
            for source, listing_id, other_source, other_id, same, changed_at
            in connection.execute("SELECT * FROM links")]


def log_after(connection: sqlite3.Connection, seq: int) -> Iterator[tuple[int, bytes]]:
    yield from connection.execute("SELECT seq, events FROM rate_log WHERE seq > ? ORDER BY seq", (seq,))


def truncate_log(connection: sqlite3.Connection, seq: int, rows: int) -> int:
    """Delete up to `rows` log rows at or before `seq`; returns how many went.

    A few rows a transaction: the commit thread runs these between group commits, and one
    DELETE of a snapshot's worth of log (tens of MB) held every acknowledgment for a second."""
    return connection.execute(
        "DELETE FROM rate_log WHERE seq IN (SELECT seq FROM rate_log WHERE seq <= ? ORDER BY seq LIMIT ?)",
        (seq, rows),
    ).rowcount


def setting(connection: sqlite3.Connection, name: str) -> bytes | None:
    row = connection.execute("SELECT value FROM settings WHERE name = ?", (name,)).fetchone()
    return None if row is None else row[0]


def find_row(connection: sqlite3.Connection, source: str, listing_id: str) -> int | None:
    row = connection.execute(
        "SELECT row FROM listings WHERE source = ? AND listing_id = ?", (source, listing_id)
    ).fetchone()
    return None if row is None else row[0]


def listing_ids_with_prefix(connection: sqlite3.Connection, source: str, prefix: str, limit: int = 1000) -> list[str]:
    """Listing ids of `source` starting with `prefix` (a hotel's rate plans): an index range, not LIKE."""
    return [row[0] for row in connection.execute(
        "SELECT listing_id FROM listings WHERE source = ? AND listing_id >= ? AND listing_id < ? "
        "ORDER BY listing_id LIMIT ?", (source, prefix, prefix + "\U0010ffff", limit))]


def keys(connection: sqlite3.Connection, rows: list[int]) -> dict[int, tuple[str, str]]:
    """(source, listing_id) by row, for the rows asked."""
    found: dict[int, tuple[str, str]] = {}
    for first in range(0, len(rows), 30_000):  # under SQLite's limit of bound parameters
        part = rows[first : first + 30_000]
        found.update((row, (source, listing_id)) for row, source, listing_id in connection.execute(
            f"SELECT row, source, listing_id FROM listings WHERE row IN ({','.join('?' * len(part))})", part))
    return found


def rows_of(connection: sqlite3.Connection, keys: list[tuple[str, str]]) -> dict[tuple[str, str], int]:
    """The row of each (source, listing_id) asked that this store holds (`keys`, the other way)."""
    found: dict[tuple[str, str], int] = {}
    for first in range(0, len(keys), 10_000):  # two parameters a key, under SQLite's limit
        part = keys[first : first + 10_000]
        found.update(((source, listing_id), row) for row, source, listing_id in connection.execute(
            "SELECT row, source, listing_id FROM listings WHERE (source, listing_id) IN "
            f"(VALUES {','.join(['(?, ?)'] * len(part))})", [value for key in part for value in key]))
    return found


def details(connection: sqlite3.Connection, rows: list[int]) -> dict[int, dict[str, object]]:
    """Listing details by row, for the rows asked (a page of search results)."""
    if not rows:
        return {}
    marks = ",".join("?" * len(rows))
    cursor = connection.execute(
        f"SELECT row, source, listing_id, {LISTING_FIELDS}, described_at, delisted_at "
        f"FROM listings WHERE row IN ({marks})",
        rows,
    )
    names = [column[0] for column in cursor.description]
    return {values[0]: dict(zip(names, values, strict=True)) for values in cursor}
