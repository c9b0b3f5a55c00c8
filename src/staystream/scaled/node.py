"""Scaled mode in the writer process: `serve --stream nats://... --store postgresql://... --role ...`.

The writer's durable backend when a JetStream log is configured. Durability comes from the
stream: HTTP workers publish and are acknowledged by JetStream before they hand a request to
their writer (`scaled.stream.PublishingClient`). What this backend does for the writer:

- start-up (role search): the calendar from PostgreSQL, the system of record the appliers keep
  (the newest snapshot, the log rows after it, the listings), then the stream from the
  appliers' position on (`staystream.positions`);
- follow (role search): every stream message, from every ingest node, goes to this node's
  writer as a request over its socket, in stream order. A node applies its own requests twice,
  once before acknowledging them (read-after-ack) and once from the stream: last-writer-wins
  makes that harmless, and the stream's order then settles `changed_at` ties the same way on
  every node;
- commits: only the local SQLite mirror the workers read listing details from (rebuilt at
  start-up, no fsync);
- snapshots (role search): into PostgreSQL as in `durable.postgres`, labelled with the stream position
  they cover, one node at a time (advisory lock); the log rows they cover are deleted;
- role apply: runs the `applier.Applier` as a task of this process.

Lag (messages and seconds behind the stream, for following and applying) goes to `/metrics`
and, through `lag.json` in the shared-memory directory, to every worker's `/readyz`.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import os
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import msgspec
import nats
import numpy as np
from prometheus_client import Gauge, Histogram

from staystream.config import Config
from staystream.durable import sqlite
from staystream.durable.embedded import Recovered
from staystream.durable.lock import lock_directory
from staystream.durable.postgres import (
    CONNECT_TIMEOUT,
    CONNECTION_ERRORS,
    MIRROR_COLUMNS,
    SCHEMA,
    fee_structs,
    insert_chunks,
    load_chunks,
    read_fees,
    read_links,
    rebuild_mirror,
    upgrade_log,
)
from staystream.durable.snapshot import Piece, from_npy
from staystream.events.types import RATE_DTYPE, Commit, split_key
from staystream.paths import writer_socket
from staystream.retry import retrying
from staystream.scaled import stream
from staystream.scaled.applier import SCALED_SCHEMA, Applier, partition_list
from staystream.writer.wire import WriterClient, WriterUnavailable

log = logging.getLogger("staystream.scaled")
T = TypeVar("T")
RETRIED: tuple[type[BaseException], ...] = (*CONNECTION_ERRORS, nats.errors.Error)

SNAPSHOT_LOCK = 0x53_74_61_79_53_6E_70  # one snapshot writer at a time
FOLLOW_BATCH = 2_000

follow_lag_messages = Gauge(
    "staystream_follow_lag_messages",
    "Stream messages this node has not applied yet (-1: unknown)",
    multiprocess_mode="max",
)
follow_lag_seconds = Gauge("staystream_follow_lag_seconds", "How far behind the stream this node's reads are",
                           multiprocess_mode="max")
follow_delay = Histogram(
    "staystream_follow_delay_seconds", "From a message's arrival in the stream to its apply on this node",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)


class StreamDurable:
    def __init__(self, config: Config, shm_path: Path) -> None:
        self.config = config
        self.roles = stream.roles(config.role)
        self.shm_path = shm_path
        config.data_dir.mkdir(parents=True, exist_ok=True)
        self._directory_lock = lock_directory(config.data_dir)
        self.thread = ThreadPoolExecutor(1, thread_name_prefix="mirror")
        self.mirror: Any = None
        self.nc: Any = None
        self.js: Any = None
        self.pool: Any = None
        self.applier: Applier | None = None
        self.key_of_row: list[str] = []
        self.start_seq = 1
        self.followed_seq = 0  # every stream message up to here is applied by this node's writer
        # (writer seq after applying, stream seq covered): a snapshot copied at writer seq W
        # holds every message up to the S of the last pair with a writer seq <= W.
        self.applied: deque[tuple[int, int]] = deque()
        self.follow_lag = stream.Lag(follow_lag_messages, follow_lag_seconds)
        self.tasks: list[asyncio.Task[None]] = []

    @classmethod
    async def open(cls, config: Config, shm_path: Path) -> StreamDurable:
        durable = cls(config, shm_path)
        durable.nc = await _retrying("connect to NATS", lambda: stream.connect(config.stream, "staystream-writer"))
        durable.js = durable.nc.jetstream(timeout=5)
        await stream.ensure_stream(durable.nc, config.stream_replicas)
        if durable.roles & {"apply", "search"}:
            if config.store == "embedded":
                raise SystemExit("--role apply or search with --stream needs --store postgresql://... "
                                 "(PostgreSQL is the system of record in scaled mode)")
            import asyncpg  # type: ignore[import-untyped]  # asyncpg ships no types

            durable.pool = await _retrying("connect to PostgreSQL", lambda: asyncpg.create_pool(
                config.store, min_size=1, max_size=config.pg_pool_size, timeout=CONNECT_TIMEOUT,
                server_settings={"synchronous_commit": "on", "application_name": "staystream-scaled"}))
            await _retrying("create the schema", durable._schema)
        if "apply" in durable.roles:
            partitions = partition_list(config.apply_partitions, config.stream_partitions)
            durable.applier = Applier(durable.js, durable.pool, partitions, config.stream_partitions)
            durable.tasks.append(asyncio.create_task(durable.applier.run()))
        durable.tasks.append(asyncio.create_task(durable._report()))
        return durable

    async def _schema(self) -> None:
        async with self.pool.acquire() as connection, connection.transaction():
            # Several nodes may start at once: one creates, the others wait for it.
            await connection.execute("SELECT pg_advisory_xact_lock($1)", SNAPSHOT_LOCK + 1)
            await connection.execute(SCHEMA)
            await connection.execute(SCALED_SCHEMA)
            await upgrade_log(connection)

    # -- start-up ------------------------------------------------------------------------

    async def recover(self) -> Recovered:
        loop = asyncio.get_running_loop()
        if "search" not in self.roles:  # ingest or apply only: this node's reads hold nothing
            self.mirror = await loop.run_in_executor(
                self.thread, rebuild_mirror, self.config.database_path, [], [])
            return Recovered(None, [], [], iter([]))
        started = time.perf_counter()
        found = await _retrying("bootstrap from PostgreSQL", self._read_all)
        snapshot_keys, state, entries, settings, logs, positions, pg_fees, links = found
        keys: list[str] = list(snapshot_keys)
        local = {key: row for row, key in enumerate(keys)}
        max_pg = max((r[0] for r in entries), default=-1)
        pg_to_local = np.full(max_pg + 1, -1, np.int32)
        mirror_entries = []
        for record in entries:
            key = f"{record[1]}\x00{record[2]}"
            row = local.setdefault(key, len(keys))
            if row == len(keys):
                keys.append(key)
            pg_to_local[record[0]] = row
            mirror_entries.append((row, *record[1:]))
        described = {entry[0] for entry in mirror_entries}
        mirror_entries += [
            (row, *split_key(key), *([None] * 13)) for row, key in enumerate(keys) if row not in described
        ]
        # MIRROR_COLUMNS by position: 8 property_id, 11 bedrooms, 13 address, 14 described_at, 15 delisted_at
        columns = [(int(pg_to_local[r[0]]), r[4], r[5], r[6], r[7], r[11], r[14], r[15], r[8])
                   for r in entries if r[14] is not None or r[15] is not None]
        places = [(int(pg_to_local[r[0]]), *r[1:8], r[13], r[8])
                  for r in entries if r[14] is not None and (r[15] is None or r[15] < r[14])]
        self.key_of_row = keys
        self.start_seq = positions + 1
        self.followed_seq = positions
        fees = [(int(pg_to_local[fee[0]]), *fee[1:]) for fee in pg_fees]
        self.mirror = await loop.run_in_executor(
            self.thread, rebuild_mirror, self.config.database_path, mirror_entries, settings, fees)
        info = await self.js.stream_info(stream.STREAM)
        if info.state.first_seq > self.start_seq and info.state.messages:
            log.error("the stream no longer holds messages PostgreSQL lacks; raise the stream's retention",
                      extra={"from": self.start_seq, "first_in_stream": info.state.first_seq})
        log.info("bootstrapped from PostgreSQL", extra={
            "listings": len(keys), "snapshot": state is not None, "log_rows": len(logs),
            "stream_from": self.start_seq, "seconds": round(time.perf_counter() - started, 3)})
        self.tasks += [asyncio.create_task(self._follow()), asyncio.create_task(self._watch_stream())]
        return Recovered(
            None if state is None else (0, state),
            [(row, *split_key(key)) for row, key in enumerate(keys)],
            columns,
            _remapped(logs, pg_to_local),
            fees=fee_structs(fees),
            places=places,
            links=links,
        )

    async def _read_all(self) -> tuple[Any, ...]:
        async with self.pool.acquire() as connection, connection.transaction(
                isolation="repeatable_read", readonly=True):
            snapshot = await connection.fetchrow(
                "SELECT seq, stream_seq FROM staystream.snapshots WHERE stream_seq IS NOT NULL "
                "ORDER BY stream_seq DESC LIMIT 1")
            keys: list[str] = []
            state = None
            if snapshot is not None:
                keys, state = await _load_snapshot(connection, snapshot["seq"])
            entries = [tuple(r) for r in await connection.fetch(
                f"SELECT {MIRROR_COLUMNS} FROM staystream.listings ORDER BY row")]
            settings = [tuple(r) for r in await connection.fetch("SELECT name, value FROM staystream.settings")]
            logs = [r["events"] for r in await connection.fetch("SELECT events FROM staystream.rate_log ORDER BY seq")]
            fees = await read_fees(connection)
            links = await read_links(connection)
            counted = await connection.fetchrow(
                "SELECT count(*) AS n, coalesce(min(stream_seq), 0) AS low FROM staystream.positions "
                "WHERE partition < $1", self.config.stream_partitions)
        complete = counted["n"] == self.config.stream_partitions
        return keys, state, entries, settings, logs, counted["low"] if complete else 0, fees, links

    # -- following the stream ------------------------------------------------------------

    async def _follow(self) -> None:
        from nats.js.api import ConsumerConfig, DeliverPolicy

        client = WriterClient(str(writer_socket(self.shm_path)))
        while True:  # the writer listens once recovery returned
            try:
                await client.connect()
                break
            except OSError:
                await asyncio.sleep(0.05)
        config = ConsumerConfig(deliver_policy=DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=self.start_seq)
        subscription = await _retrying("subscribe to the stream", lambda: self.js.subscribe(
            f"{stream.SUBJECT}.*", ordered_consumer=True, config=config, pending_msgs_limit=200_000,
            pending_bytes_limit=1 << 30))
        while True:
            try:
                batch = [await subscription.next_msg(timeout=1.0)]
            except TimeoutError:
                continue
            while len(batch) < FOLLOW_BATCH and subscription.pending_msgs:
                batch.append(await subscription.next_msg(timeout=1.0))
            request = stream.merge([stream.decode(m.data) for m in batch])
            while True:
                try:
                    reply = await client.write(request)
                except WriterUnavailable:
                    return  # the writer is gone: so is this process, shortly
                if reply.error is None:
                    break
                log.warning("the writer refused followed events; retrying", extra={"error": reply.error})
                await asyncio.sleep(0.5)
            last = batch[-1].metadata
            self.followed_seq = last.sequence.stream
            self.applied.append((reply.seq, self.followed_seq))
            oldest = min(m.metadata.timestamp.timestamp() for m in batch)
            follow_delay.observe(max(0.0, time.time() - oldest))

    async def _watch_stream(self) -> None:
        """Twice a second, the stream's last sequence against what this node applied, and the
        arrival time of the first message it has not: the follow lag as JetStream confirms it.
        Silence from the subscription proves nothing (an ordered consumer whose server died is
        silent until it is recreated)."""
        every = f"{stream.SUBJECT}.*"
        while True:
            try:
                followed = self.followed_seq
                last = int((await self.js.stream_info(stream.STREAM)).state.last_seq)
                oldest = None
                if last > followed:
                    first = await self.js.get_msg(stream.STREAM, seq=followed + 1, subject=every, next=True)
                    oldest = first.time.timestamp() if first.time else time.time()
                self.follow_lag.confirm(max(0, last - followed), oldest)
            except Exception:  # NATS failing over: the lag turns unknown if this lasts
                pass
            await asyncio.sleep(0.5)

    async def _report(self) -> None:
        path = self.shm_path / stream.LAG_FILE
        while True:
            lag: dict[str, Any] = {"roles": sorted(self.roles)}
            if "search" in self.roles:
                lag["follow"] = {**self.follow_lag.report(), "stream_seq": self.followed_seq}
            if self.applier is not None:
                lag["apply"] = {**self.applier.lag.report(), "postgres_reachable": self.applier.down_since is None}
            temporary = path.with_suffix(".tmp")
            temporary.write_text(json.dumps(lag))
            os.replace(temporary, path)
            await asyncio.sleep(0.5)

    # -- what the writer calls -----------------------------------------------------------

    async def commit_group(self, commit: Commit) -> None:
        """Durable already (JetStream acknowledged it, or it came from the stream): mirror only."""
        if commit.describes:
            await asyncio.get_running_loop().run_in_executor(
                self.thread, sqlite.commit_group, self.mirror, commit.without_rates()
            )
        for row, source, listing_id in commit.new_keys:
            assert row == len(self.key_of_row), (row, len(self.key_of_row))
            self.key_of_row.append(f"{source}\x00{listing_id}")

    async def log_after(self, seq: int) -> Iterator[tuple[int, bytes]]:
        """Nothing: this node's sequences are its own, not the log's in PostgreSQL, so its
        history holds what it applied while running (docs/durability.md)."""
        return iter([])

    async def write_snapshot(self, seq: int, rows: int, pieces: Iterator[Piece]) -> None:
        """The pieces were copied starting at writer seq `seq` (in chunks while groups go on:
        a fuzzy copy, fine for last-writer-wins replay); they cover the stream up to the last
        followed request the writer had applied by then."""
        covered = 0
        while self.applied and self.applied[0][0] <= seq:
            covered = self.applied.popleft()[1]
        if covered:
            self.applied.appendleft((seq, covered))  # still the label for a later snapshot
        keys = self.key_of_row[:rows]
        if "search" not in self.roles or self.pool is None or covered == 0:
            return
        async with self.pool.acquire() as connection:
            if not await connection.fetchval("SELECT pg_try_advisory_lock($1)", SNAPSHOT_LOCK):
                return  # another node is writing one
            try:
                newest = await connection.fetchval("SELECT max(stream_seq) FROM staystream.snapshots")
                if newest is not None and newest >= covered:
                    return
                snapshot_id = await connection.fetchval("SELECT nextval('staystream.snapshot_ids')")
                keys_piece = ("keys", memoryview(msgspec.msgpack.encode(keys)))
                await insert_chunks(connection, snapshot_id, itertools.chain([keys_piece], pieces))
                async with connection.transaction():
                    await connection.execute(
                        "INSERT INTO staystream.snapshots (seq, stream_seq) VALUES ($1, $2)", snapshot_id, covered)
                    await connection.execute("DELETE FROM staystream.snapshots WHERE seq <> $1", snapshot_id)
                    await connection.execute("DELETE FROM staystream.snapshot_chunks WHERE seq <> $1", snapshot_id)
                    await connection.execute("DELETE FROM staystream.rate_log WHERE stream_seq <= $1", covered)
                log.info("snapshot in PostgreSQL", extra={"stream_seq": covered, "listings": len(keys)})
            finally:
                await connection.execute("SELECT pg_advisory_unlock($1)", SNAPSHOT_LOCK)

    async def close(self) -> None:
        # Cancelled again until they end: Python 3.11's `asyncio.wait_for` (nats-py's fetch and
        # next_msg use it) swallows a cancellation that lands as its inner call completes.
        running = set(self.tasks)
        while running:
            for task in running:
                task.cancel()
            _, running = await asyncio.wait(running, timeout=1.0)
        if self.nc is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.nc.close(), 5)
        if self.pool is not None:
            try:
                await asyncio.wait_for(self.pool.close(), 10)
            except CONNECTION_ERRORS:
                self.pool.terminate()
        if self.mirror is not None:
            await asyncio.get_running_loop().run_in_executor(self.thread, self.mirror.close)
        self.thread.shutdown()


def _remapped(logs: list[bytes], pg_to_local: np.ndarray) -> Iterator[tuple[int, bytes]]:
    for seq, events in enumerate(logs, start=1):
        batch = np.frombuffer(events, RATE_DTYPE).copy()
        batch["key"] = pg_to_local[batch["key"]]
        yield seq, batch.tobytes()


async def _load_snapshot(connection: Any, snapshot_id: int) -> tuple[list[str], dict[str, np.ndarray]]:
    blobs = await load_chunks(connection, snapshot_id)
    keys = msgspec.msgpack.decode(blobs.pop("keys", b"\x90"), type=list[str])
    return keys, {name: from_npy(blob) for name, blob in blobs.items()}


async def _retrying(what: str, step: Callable[[], Awaitable[T]]) -> T:
    return await retrying(step, RETRIED, log, "retrying", what)
