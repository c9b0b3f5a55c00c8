"""The apply role: JetStream partitions into PostgreSQL, the system of record in scaled mode.

One durable pull consumer per set of partitions (`--apply-partitions`, default all) takes
what is waiting (up to `BATCH_MESSAGES` messages), and commits it into PostgreSQL in one
transaction, in the layout of `durable.postgres` (listings, a log of packed batches, chunked calendar
snapshots written by search nodes): listing keys get rows from a sequence, the batch's rate
events become one `rate_log` row (with the stream sequence of its last message), listing and
delist events update `listings` last-writer-wins. Only after the commit are the messages
acknowledged; a crash in between redelivers them, and applying a batch twice changes nothing
(last-writer-wins by `changed_at`). PostgreSQL away: the same batch is retried with backoff
while the stream keeps accepting (ingest does not touch PostgreSQL); the backlog drains when it
is back.

`staystream.positions` holds, per partition, a stream sequence up to which every message of the
partition is in PostgreSQL: the consumer's ack floor, read back from JetStream after acks. A
node bootstrapping from PostgreSQL replays the stream from the smallest position on.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import numpy as np
from prometheus_client import Counter, Gauge, Histogram

from staystream.durable.postgres import (
    CONNECTION_ERRORS,
    UPDATE_DELISTS,
    UPDATE_LISTINGS,
    UPSERT_FEES,
    UPSERT_SETTING,
    fee_columns,
    listing_columns,
    newest_per_row,
    upsert_links,
)
from staystream.events.types import WriteRequest, split_key
from staystream.retry import backoff, retrying
from staystream.scaled import stream

log = logging.getLogger("staystream.applier")

BATCH_MESSAGES = 2_000
# Short, so that messages JetStream delivered into a pull lost in a failover come back soon;
# a commit that takes longer (PostgreSQL away) keeps its messages with "in progress" acks.
ACK_WAIT_SECONDS = 5.0
IN_PROGRESS_EVERY_SECONDS = 2.0
POSITION_EVERY_SECONDS = 0.5

SCALED_SCHEMA = """
CREATE SEQUENCE IF NOT EXISTS staystream.listing_rows;
CREATE SEQUENCE IF NOT EXISTS staystream.log_seq;
CREATE SEQUENCE IF NOT EXISTS staystream.snapshot_ids;
ALTER TABLE staystream.rate_log ADD COLUMN IF NOT EXISTS stream_seq bigint;
ALTER TABLE staystream.snapshots ADD COLUMN IF NOT EXISTS stream_seq bigint;
CREATE TABLE IF NOT EXISTS staystream.positions (
    partition integer PRIMARY KEY,
    stream_seq bigint NOT NULL   -- every message of the partition up to here is in PostgreSQL
);
"""
INSERT_KEYS = """
INSERT INTO staystream.listings (row, source, listing_id)
SELECT nextval('staystream.listing_rows'), s, l FROM unnest($1::text[], $2::text[]) AS u(s, l)
ON CONFLICT (source, listing_id) DO NOTHING
"""
SELECT_KEYS = """
SELECT l.row, l.source, l.listing_id FROM staystream.listings l
JOIN unnest($1::text[], $2::text[]) AS u(s, l2) ON l.source = u.s AND l.listing_id = u.l2
"""

applied_events = Counter("staystream_apply_events_total", "Events committed into PostgreSQL by the applier")
applied_nights = Counter("staystream_apply_night_updates_total", "Night updates committed into PostgreSQL")
apply_delay = Histogram(
    "staystream_apply_delay_seconds", "From a message's arrival in the stream to its commit in PostgreSQL",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0),
)
apply_lag_messages = Gauge("staystream_apply_lag_messages", "Stream messages not yet in PostgreSQL (-1: unknown)",
                           multiprocess_mode="max")
apply_lag_seconds = Gauge("staystream_apply_lag_seconds", "Age of the oldest stream message not yet in PostgreSQL",
                          multiprocess_mode="max")


def partition_list(text: str, partitions: int) -> list[int]:
    """'all', or a list like '0-3,6': the partitions this applier consumes."""
    if text == "all":
        return list(range(partitions))
    chosen: set[int] = set()
    for part in text.split(","):
        first, _, last = part.strip().partition("-")
        chosen.update(range(int(first), int(last or first) + 1))
    if not chosen or max(chosen) >= partitions:
        raise ValueError(f"apply-partitions: '{text}' names partitions outside 0..{partitions - 1}")
    return sorted(chosen)


class Applier:
    def __init__(self, js: Any, pool: Any, partitions: list[int], total_partitions: int) -> None:
        self.js = js
        self.pool = pool
        self.partitions = partitions
        owned = "all" if len(partitions) == total_partitions else "-".join(map(str, partitions))
        self.consumer = f"staystream-apply-{owned}"
        self.rows: dict[str, int] = {}  # key -> PostgreSQL row, committed ones only
        self.lag = stream.Lag(apply_lag_messages, apply_lag_seconds)
        self.oldest_pending: float | None = None  # stream time (s) of the oldest unapplied message
        self.down_since: float | None = None

    async def run(self) -> None:
        """Consume and commit until cancelled; whatever goes wrong is logged and retried."""
        while True:
            try:
                await self._run()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("the applier failed; starting it again")
                await asyncio.sleep(1.0)

    async def _run(self) -> None:
        from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

        subjects = [stream.subject(p) for p in self.partitions]
        config = ConsumerConfig(
            durable_name=self.consumer, ack_policy=AckPolicy.EXPLICIT, deliver_policy=DeliverPolicy.ALL,
            ack_wait=ACK_WAIT_SECONDS, max_ack_pending=100_000, filter_subjects=subjects,
        )
        subscription = await retrying(
            lambda: self.js.pull_subscribe("", durable=self.consumer, stream=stream.STREAM, config=config),
            Exception, log, "JetStream consumer not ready; retrying", "subscribe to the stream")
        reporter = asyncio.create_task(self._report())
        failed_fetches = 0
        try:
            while True:
                try:
                    messages = await subscription.fetch(BATCH_MESSAGES, timeout=1.0)
                except TimeoutError:
                    continue
                except Exception as exc:  # NATS reconnecting, the consumer electing a leader: again
                    failed_fetches += 1
                    if failed_fetches % 25 == 1:  # a failover fails ~20 fetches: one line, not 20
                        log.warning("fetch failed; retrying", extra={
                            "error": f"{type(exc).__name__}: {exc}", "failed_in_a_row": failed_fetches})
                    await asyncio.sleep(0.2)
                    continue
                if failed_fetches:
                    log.info("fetching again", extra={"after_failed": failed_fetches})
                    failed_fetches = 0
                messages = [m for m in messages if m.metadata is not None and m.data]
                if messages:
                    await self._commit_until_done(messages)
        finally:
            reporter.cancel()

    async def _commit_until_done(self, messages: list[Any]) -> None:
        requests = [stream.decode(m.data) for m in messages]
        merged = stream.merge(requests)
        last_seq = max(m.metadata.sequence.stream for m in messages)
        if self.oldest_pending is None:
            self.oldest_pending = min(m.metadata.timestamp.timestamp() for m in messages)
        attempt = 0
        touched = time.monotonic()
        while True:
            try:
                await self._commit(merged, last_seq)
                break
            except Exception as exc:  # connection errors, and anything else: the same batch again
                if not isinstance(exc, CONNECTION_ERRORS):
                    log.exception("commit into PostgreSQL failed; retrying the batch")
                if self.down_since is None:
                    self.down_since = time.monotonic()
                    log.warning("PostgreSQL unreachable; the stream keeps the backlog",
                                extra={"error": f"{type(exc).__name__}: {exc}"})
                await asyncio.sleep(backoff(attempt))
                attempt += 1
                if time.monotonic() - touched > IN_PROGRESS_EVERY_SECONDS:
                    touched = time.monotonic()
                    await _in_progress(messages)
        if self.down_since is not None:
            log.info(
                "PostgreSQL reachable again", extra={"after_seconds": round(time.monotonic() - self.down_since, 1)}
            )
            self.down_since = None
        now = time.time()
        oldest = min(m.metadata.timestamp.timestamp() for m in messages)
        apply_delay.observe(max(0.0, now - oldest))
        if messages[-1].metadata.num_pending:  # more waiting: the next one arrived after our newest
            self.oldest_pending = max(m.metadata.timestamp.timestamp() for m in messages)
        else:
            self.oldest_pending = None
        rates = merged.rate_rows()
        applied_events.inc(len(rates) + len(merged.listings) + len(merged.delists) + len(merged.fees)
                           + len(merged.links))
        applied_nights.inc(int(rates["nights"].sum()) if len(rates) else 0)
        for message in messages:
            try:
                await message.ack()
            except Exception:  # unacknowledged: redelivered later, applied again, harmlessly
                log.warning("ack failed; the message will be applied again")
                break

    async def _commit(self, request: WriteRequest, last_seq: int) -> None:
        named = set(request.keys) | {listing.key for listing in request.listings} | {d.key for d in request.delists}
        named |= {fee.key for fee in request.fees}
        async with self.pool.acquire() as connection, connection.transaction():
            rows = await self._resolve(connection, named)
            if request.listings:
                newest = newest_per_row([(rows[listing.key], listing) for listing in request.listings])
                await connection.execute(UPDATE_LISTINGS, *listing_columns(newest))
            if request.delists:
                newest_delists = newest_per_row([(rows[d.key], d) for d in request.delists])
                await connection.execute(
                    UPDATE_DELISTS, list(newest_delists), [d.changed_at for d in newest_delists.values()]
                )
            if request.fees:
                await connection.execute(UPSERT_FEES, *fee_columns([(rows[fee.key], fee) for fee in request.fees]))
            rates = request.rate_rows()
            if len(rates):
                by_index = np.array([rows[k] for k in request.keys], np.int32)
                events = rates.copy()
                events["key"] = by_index[events["key"]]
                await connection.execute(
                    "INSERT INTO staystream.rate_log (seq, events, stream_seq) "
                    "VALUES (nextval('staystream.log_seq'), $1, $2)", events.tobytes(), last_seq,
                )
            if request.links:
                await upsert_links(connection, request.links)
            if request.fx is not None:
                await connection.execute(UPSERT_SETTING, "fx", request.fx)
        self.rows.update(rows)  # committed: safe to remember

    async def _resolve(self, connection: Any, keys: set[str]) -> dict[str, int]:
        rows = {key: self.rows[key] for key in keys if key in self.rows}
        unknown = [key for key in keys if key not in rows]
        if unknown:
            # Look up first, insert only what is new: a sequence value is spent on every row an
            # INSERT considers, conflicting or not, and appliers restart with an empty cache.
            sources, ids = zip(*(split_key(key) for key in unknown), strict=True)
            for row, source, listing_id in await connection.fetch(SELECT_KEYS, list(sources), list(ids)):
                rows[f"{source}\x00{listing_id}"] = row
            missing = [key for key in unknown if key not in rows]
            if missing:
                sources, ids = zip(*(split_key(key) for key in missing), strict=True)
                await connection.execute(INSERT_KEYS, list(sources), list(ids))
                for row, source, listing_id in await connection.fetch(SELECT_KEYS, list(sources), list(ids)):
                    rows[f"{source}\x00{listing_id}"] = row
        return rows

    async def _report(self) -> None:
        """Every half second: the lag as JetStream confirms it, and the ack floor into `positions`."""
        while True:
            await asyncio.sleep(POSITION_EVERY_SECONDS)
            try:
                info = await self.js.consumer_info(stream.STREAM, self.consumer, timeout=2)
            except Exception:  # NATS failing over: the next round asks again; the lag turns unknown
                continue
            messages = int(info.num_pending or 0) + int(info.num_ack_pending or 0)
            if messages == 0:
                self.oldest_pending = None
            elif self.oldest_pending is None:
                self.oldest_pending = time.time()  # refined when the next batch says when it arrived
            self.lag.confirm(messages, self.oldest_pending)
            floor = int(info.ack_floor.stream_seq or 0) if info.ack_floor else 0
            try:
                async with self.pool.acquire() as connection:
                    await connection.execute(
                        "INSERT INTO staystream.positions (partition, stream_seq) "
                        "SELECT p, $2 FROM unnest($1::integer[]) AS p "
                        "ON CONFLICT (partition) DO UPDATE SET stream_seq = "
                        "greatest(staystream.positions.stream_seq, excluded.stream_seq)",
                        self.partitions, floor,
                    )
            except CONNECTION_ERRORS:
                pass  # PostgreSQL away: the position is written once it is back
            except Exception:
                log.exception("could not record the applied position; trying again")


async def _in_progress(messages: list[Any]) -> None:
    """Still working on these: JetStream restarts their ack timers instead of redelivering."""
    for message in messages:
        try:
            await message.in_progress()
        except Exception:
            return  # NATS away too: they may be redelivered, and applied twice, harmlessly
