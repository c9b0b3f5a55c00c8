"""PostgreSQL's own ceiling for the load generator's night updates, without HTTP or JSON.

Two layouts, each at its best, measured against the same server as the race:

- `row per night`: go-ingest's layout and statements (`../shared/anchors/go-ingest/store.go`):
  binary COPY of one row per night into an `ON COMMIT DELETE ROWS` staging table, then
  `INSERT ... ON CONFLICT DO UPDATE ... WHERE changed_at <=` into `nightly_rates` (fillfactor
  85, `COLLATE "C"` ids), one transaction per batch of about 20,000 rows, two connections at
  once on disjoint listings (its two writers). Calendars are prefilled, so every row is an
  update, as in the race.
- `batch log`: staystream's (`staystream.pgstore`): one `INSERT` of the batch's events packed
  (31 B an event) into `rate_log`, autocommit, one connection.

Batches are drawn like the load generator's requests (7-30 nights an event, distinct listings)
and encoded before the clock starts; what is timed is the database work with
`synchronous_commit=on`. Runs in a process of its own.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import multiprocessing
import struct
import time
from multiprocessing.connection import Connection

import numpy as np

from . import workload

PG_EPOCH_DAY = (dt.date(2000, 1, 1) - dt.date(1970, 1, 1)).days
COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + struct.pack(">ii", 0, 0)
COPY_TRAILER = struct.pack(">h", -1)
# One row of go-ingest's stage_rates in binary COPY format; every field fixed width here
# (source "bench", ids "L0000000", prices "NNN.00").
ROW = np.dtype([
    ("fields", ">i2"),
    ("l_source", ">i4"), ("source", "S5"),
    ("l_listing", ">i4"), ("listing", "S8"),
    ("l_night", ">i4"), ("night", ">i4"),
    ("l_price", ">i4"), ("price", "S6"),
    ("l_currency", ">i4"), ("currency", "S3"),
    ("l_available", ">i4"), ("available", "u1"),
    ("l_min_nights", ">i4"), ("min_nights", ">i4"),
    ("l_changed_at", ">i4"), ("changed_at", ">i8"),
])
ROWS_PER_BATCH = 20_000  # go-ingest's -max-batch
POOL = 24  # distinct batches per writer, reused with newer changed_at

SCHEMA = """
DROP TABLE IF EXISTS nightly_rates;
CREATE TABLE nightly_rates (
    source      text COLLATE "C" NOT NULL,
    listing_id  text COLLATE "C" NOT NULL,
    night       date NOT NULL,
    price       numeric,
    currency    text NOT NULL,
    available   boolean NOT NULL,
    min_nights  integer NOT NULL,
    changed_at  timestamptz NOT NULL,
    PRIMARY KEY (source, listing_id, night)
) WITH (fillfactor = 85);
DROP TABLE IF EXISTS rate_log;
CREATE TABLE rate_log (seq bigint PRIMARY KEY, events bytea NOT NULL);
ALTER TABLE rate_log ALTER COLUMN events SET STORAGE EXTERNAL;
"""
STAGING = """
SET temp_buffers = '64MB';
CREATE TEMP TABLE IF NOT EXISTS stage_rates (
    source text, listing_id text, night date, price text, currency text,
    available boolean, min_nights integer, changed_at timestamptz
) ON COMMIT DELETE ROWS;
"""
UPSERT = """
INSERT INTO nightly_rates AS r (source, listing_id, night, price, currency, available, min_nights, changed_at)
SELECT source, listing_id, night, price::numeric, currency, available, min_nights, changed_at FROM stage_rates
ON CONFLICT (source, listing_id, night) DO UPDATE
   SET price = excluded.price, currency = excluded.currency, available = excluded.available,
       min_nights = excluded.min_nights, changed_at = excluded.changed_at
 WHERE r.changed_at <= excluded.changed_at"""


def measure(uri: str, listings: int, seconds: float) -> dict[str, object]:
    """Both layouts, one after the other, in a fresh process; returns their figures."""
    context = multiprocessing.get_context("spawn")
    parent, child = context.Pipe()
    process = context.Process(target=_main, args=(uri, listings, seconds, child), daemon=True)
    process.start()
    child.close()
    try:
        if not parent.poll(seconds * 2 + 900):
            raise TimeoutError("the PostgreSQL ceiling did not finish")
        kind, payload = parent.recv()
    finally:
        process.join(30)
        if process.is_alive():
            process.kill()
    if kind == "error":
        raise RuntimeError(f"the PostgreSQL ceiling failed: {payload}")
    return payload  # type: ignore[no-any-return]


def _main(uri: str, listings: int, seconds: float, pipe: Connection) -> None:
    try:
        pipe.send(("done", asyncio.run(_run(uri, listings, seconds))))
    except BaseException as exc:
        pipe.send(("error", f"{type(exc).__name__}: {exc}"))
        raise


async def _run(uri: str, listings: int, seconds: float) -> dict[str, object]:
    import asyncpg  # type: ignore[import-untyped]

    settings = {"synchronous_commit": "on"}
    setup = await asyncpg.connect(uri, server_settings=settings)
    await setup.execute(SCHEMA)
    started = time.monotonic()
    first = workload.first_night()
    await setup.execute(
        "INSERT INTO nightly_rates SELECT 'bench', 'L' || lpad(l::text, 7, '0'), "
        "date '1970-01-01' + $1::integer + n, 100, 'EUR', true, 1, now() - interval '1 hour' "
        "FROM generate_series(0, $2 - 1) l, generate_series(0, $3 - 1) n",
        first, listings, workload.CALENDAR_NIGHTS,
    )
    await setup.execute("VACUUM ANALYZE nightly_rates")
    await setup.execute("CHECKPOINT")
    prefill_seconds = time.monotonic() - started

    rng = np.random.default_rng(3)
    halves = np.array_split(np.arange(listings), 2)
    events = max(1, round(ROWS_PER_BATCH / ((workload.MIN_EVENT_NIGHTS + workload.MAX_EVENT_NIGHTS) / 2)))
    batches = [[workload.rate_columns(rng, half, min(events, len(half))) for _ in range(POOL)] for half in halves]

    rows = await _row_per_night(uri, settings, batches, seconds)
    log = await _batch_log(setup, [b for half in batches for b in half], seconds)
    await setup.execute("DROP TABLE nightly_rates; DROP TABLE rate_log")
    await setup.close()
    return {"listings": listings, "prefill_seconds": round(prefill_seconds, 1),
            "row_per_night": rows, "batch_log": log}


async def _row_per_night(uri: str, settings: dict[str, str], batches: list[list[np.ndarray]],
                         seconds: float) -> dict[str, object]:
    import asyncpg

    connections = [await asyncpg.connect(uri, server_settings=settings) for _ in batches]
    for connection in connections:
        await connection.execute(STAGING)
    done = [0, 0]  # nights, batches
    stop = time.monotonic() + seconds / 2
    commit_seconds: list[float] = []

    async def writer(connection: asyncpg.Connection, pool: list[np.ndarray]) -> None:
        k = 0
        while time.monotonic() < stop:
            columns = pool[k % len(pool)]
            payload = _copy_rows(columns, time.time())
            began = time.perf_counter()
            async with connection.transaction():
                await connection.copy_to_table("stage_rates", source=_chunks(payload), format="binary")
                await connection.execute(UPSERT)
            commit_seconds.append(time.perf_counter() - began)
            done[0] += int(columns["nights"].sum())
            done[1] += 1
            k += 1

    # Warm up first: the first write of each page after the prefill's checkpoint carries a
    # full-page image, which a long-running server pays only once per checkpoint interval.
    await asyncio.gather(*(writer(c, pool) for c, pool in zip(connections, batches, strict=False)))
    done[:] = [0, 0]
    commit_seconds.clear()
    stop = time.monotonic() + seconds
    began = time.monotonic()
    await asyncio.gather(*(writer(c, pool) for c, pool in zip(connections, batches, strict=False)))
    elapsed = time.monotonic() - began
    for connection in connections:
        await connection.close()
    return {"writers": len(connections), "rows_per_batch": round(done[0] / max(done[1], 1)),
            "night_updates_per_s": done[0] / elapsed, "batch_ms_p50": 1000 * float(np.median(commit_seconds)),
            "seconds": round(elapsed, 1)}


async def _batch_log(connection: object, pool: list[np.ndarray], seconds: float) -> dict[str, object]:
    from staystream.events.types import ALL_FACTS, RATE_DTYPE

    packed = []
    for columns in pool:
        events = np.zeros(len(columns), RATE_DTYPE)
        events["key"], events["start"], events["nights"] = columns["listing"], columns["start"], columns["nights"]
        events["price"], events["min_nights"], events["available"] = columns["price"] * 100, columns["min_nights"], 1
        events["facts"] = ALL_FACTS
        packed.append((events, int(columns["nights"].sum())))
    nights = groups = 0
    stop = time.monotonic() + seconds
    began = time.monotonic()
    while time.monotonic() < stop:
        events, count = packed[groups % len(packed)]
        events["changed_at"] = int(time.time() * 1e6)
        groups += 1
        await connection.execute("INSERT INTO rate_log (seq, events) VALUES ($1, $2)",  # type: ignore[attr-defined]
                                 groups, events.tobytes())
        nights += count
    elapsed = time.monotonic() - began
    return {"writers": 1, "events_per_batch": len(pool[0]), "night_updates_per_s": nights / elapsed,
            "batch_ms_mean": 1000 * elapsed / max(groups, 1), "seconds": round(elapsed, 1)}


async def _chunks(payload: bytes, size: int = 1 << 20):  # type: ignore[no-untyped-def]
    view = memoryview(payload)
    for start in range(0, len(view), size):
        yield view[start : start + size]


def _copy_rows(columns: np.ndarray, now: float) -> bytes:
    """go-ingest's staging rows for `columns`, binary COPY, changed_at = now."""
    counts = columns["nights"].astype(np.int64)
    event = np.repeat(np.arange(len(columns)), counts)
    offset = np.arange(len(event)) - np.repeat(np.cumsum(counts) - counts, counts)
    rows = np.zeros(len(event), ROW)
    rows["fields"] = 8
    for name, size in (("l_source", 5), ("l_listing", 8), ("l_night", 4), ("l_price", 6), ("l_currency", 3),
                       ("l_available", 1), ("l_min_nights", 4), ("l_changed_at", 8)):
        rows[name] = size
    rows["source"] = b"bench"
    rows["listing"] = np.char.encode(np.char.add("L", np.char.zfill(columns["listing"][event].astype(str), 7)))
    rows["night"] = columns["start"][event] + offset - PG_EPOCH_DAY
    rows["price"] = np.char.encode(
        np.char.add(np.char.zfill((100 + columns["price"][event] % 900).astype(str), 3), ".00")
    )
    rows["currency"] = b"EUR"
    rows["available"] = 1
    rows["min_nights"] = columns["min_nights"][event]
    rows["changed_at"] = int((now - 946_684_800) * 1e6)
    return COPY_HEADER + rows.tobytes() + COPY_TRAILER
