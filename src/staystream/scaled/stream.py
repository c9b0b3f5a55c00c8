"""Scaled mode's replicated log: one NATS JetStream stream, partitioned by listing.

`serve --stream nats://a:4222,nats://b:4222 --store postgresql://...` puts a JetStream stream
between ingest and everything else. Subjects are `staystream.events.<partition>`, with
partition = crc32(key) mod `--stream-partitions`, so every event of one listing goes to one
partition and keeps its order there. A message is one `types.WriteRequest` in msgpack: the
valid events of one HTTP request that fall in that partition, listings named by key (row
numbers are local to each node).

The HTTP worker publishes (`PublishingClient`) and answers `200` only once JetStream
acknowledged every message of the request, that is once a quorum of the stream's replicas
stored it (and, with the servers' `sync_interval: always`, fsynced it: `docs/durability.md`).
Then, unless the node is ingest-only, it hands the request to its own writer to apply before
answering, so reads served by the acknowledging node see the write.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import os
import time
import zlib
from pathlib import Path
from typing import Any

import msgspec
import numpy as np

from staystream.events.types import Delist, Fee, Link, Listing, WriteReply, WriteRequest
from staystream.writer.wire import WriterClient, WriterUnavailable

try:
    import nats
    from nats.js.api import DiscardPolicy, RetentionPolicy, StorageType, StreamConfig
except ImportError:  # pragma: no cover - depends on the install
    raise ImportError("--stream nats://... needs nats-py: pip install 'staystream[scale]'") from None

log = logging.getLogger("staystream.streamlog")

STREAM = "STAYSTREAM"
SUBJECT = "staystream.events"
PUBLISH_TIMEOUT = 5.0
RETENTION_SECONDS = 7 * 24 * 3600  # a new node replays from PostgreSQL, then from here
DUPLICATE_WINDOW = 120.0
ROLES = ("ingest", "apply", "search")
LAG_FILE = "lag.json"  # in the shared-memory directory, written by the writer (scaled/node.py)
NOT_READY_LAG_SECONDS = 5.0  # the freshness target's worst case
LAG_UNKNOWN_AFTER_SECONDS = 3.0  # JetStream silent this long: the lag is unknown, not its last value

_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(WriteRequest)
_BEFORE_FACTS = b"\x98"  # msgpack fixarray of 8


class LogUnavailable(WriterUnavailable):
    """JetStream did not acknowledge: the request is answered 503, nothing was acknowledged."""


def roles(text: str) -> frozenset[str]:
    chosen = frozenset(part.strip() for part in text.split(",") if part.strip())
    unknown = chosen - set(ROLES)
    if unknown or not chosen:
        raise ValueError(text)
    return chosen


def servers(url: str) -> list[str]:
    return [part.strip() for part in url.split(",") if part.strip()]


def subject(partition: int) -> str:
    return f"{SUBJECT}.{partition}"


def partition_of(key: str, partitions: int) -> int:
    return zlib.crc32(key.encode()) % partitions


def encode(request: WriteRequest) -> bytes:
    return _encoder.encode(request)


def decode(payload: bytes) -> WriteRequest:
    """A message of the stream. One written before facts is a msgpack array of 8 fields (no
    `rate_format`) holding rows of format 1: it decodes with the current format's default,
    so the header says which it is (msgspec writes every field, so newer ones have 9)."""
    request = _decoder.decode(payload)
    if payload[:1] == _BEFORE_FACTS:
        request.rate_format = 1
    return request


def split(request: WriteRequest, partitions: int) -> dict[int, WriteRequest]:
    """The request's events by partition; rate keys renumbered into each part's own key list."""
    keys = request.keys
    part = np.fromiter((partition_of(k, partitions) for k in keys), np.int64, len(keys))
    rates = request.rate_rows()
    rate_part = part[rates["key"]] if len(rates) else np.empty(0, np.int64)
    listing_part = [partition_of(listing.key, partitions) for listing in request.listings]
    delist_part = [partition_of(d.key, partitions) for d in request.delists]
    fee_part = [partition_of(fee.key, partitions) for fee in request.fees]
    link_part = [partition_of(link.key, partitions) for link in request.links]  # by the pair's first key
    touched = set(rate_part.tolist()) | set(listing_part) | set(delist_part) | set(fee_part) | set(link_part)
    if not touched:
        touched = {0}  # a settings-only request (FX table)
    out = {}
    for p in sorted(touched):
        mine = np.flatnonzero(part == p)
        renumber = np.full(len(keys), -1, np.int32)
        renumber[mine] = np.arange(len(mine), dtype=np.int32)
        chosen = rates[rate_part == p].copy()
        chosen["key"] = renumber[chosen["key"]]
        out[p] = WriteRequest(
            0, [keys[i] for i in mine.tolist()], chosen.tobytes(),
            [listing for listing, q in zip(request.listings, listing_part, strict=True) if q == p],
            [d for d, q in zip(request.delists, delist_part, strict=True) if q == p],
            request.newest, request.fx if p == min(touched) else None,
            fees=[fee for fee, q in zip(request.fees, fee_part, strict=True) if q == p],
            links=[link for link, q in zip(request.links, link_part, strict=True) if q == p],
        )
    return out


def merge(requests: list[WriteRequest]) -> WriteRequest:
    """Several requests as one, in order (later ones still win ties: they arrived later)."""
    if len(requests) == 1:
        return requests[0]
    index: dict[str, int] = {}  # key -> row in the merged request, in first-seen order
    parts: list[np.ndarray] = []
    listings: list[Listing] = []
    delists: list[Delist] = []
    fees: list[Fee] = []
    links: list[Link] = []
    newest: dict[str, int] = {}
    fx: bytes | None = None
    for request in requests:
        rows = np.fromiter((index.setdefault(k, len(index)) for k in request.keys), np.int32, len(request.keys))
        rates = request.rate_rows()
        if len(rates):
            rates = rates.copy()
            rates["key"] = rows[rates["key"]]
            parts.append(rates)
        listings.extend(request.listings)
        delists.extend(request.delists)
        fees.extend(request.fees)
        links.extend(request.links)
        for source, changed_at in request.newest.items():
            newest[source] = max(changed_at, newest.get(source, changed_at))
        fx = request.fx if request.fx is not None else fx
    packed = np.concatenate(parts).tobytes() if parts else b""
    return WriteRequest(0, list(index), packed, listings, delists, newest, fx, fees=fees, links=links)


async def connect(url: str, name: str) -> Any:
    """A NATS connection that reconnects forever, with backoff, to any server of the cluster."""
    return await nats.connect(
        servers(url), name=name, connect_timeout=2, reconnect_time_wait=0.5, max_reconnect_attempts=-1,
        allow_reconnect=True, error_cb=_quiet, disconnected_cb=_disconnected, reconnected_cb=_reconnected,
    )


async def _quiet(exc: Exception) -> None:
    log.debug("nats error", extra={"error": str(exc)})


async def _disconnected() -> None:
    log.info("disconnected from NATS (reconnecting, unless shutting down)")


async def _reconnected() -> None:
    log.info("reconnected to NATS")


async def ensure_stream(nc: Any, replicas: int) -> None:
    """Create the stream if it is missing; wait (retrying) while the cluster elects a leader."""
    js = nc.jetstream(timeout=2)
    config = StreamConfig(
        name=STREAM, subjects=[f"{SUBJECT}.*"], num_replicas=replicas, storage=StorageType.FILE,
        retention=RetentionPolicy.LIMITS, discard=DiscardPolicy.OLD, max_age=RETENTION_SECONDS,
        duplicate_window=DUPLICATE_WINDOW,
    )
    attempt = 0
    while True:
        try:
            info = await js.stream_info(STREAM)
            if info.config.num_replicas != replicas:
                log.warning("stream exists with another replica count; keeping it",
                            extra={"replicas": info.config.num_replicas, "asked": replicas})
            return
        except nats.js.errors.NotFoundError:
            try:
                await js.add_stream(config)
                log.info("stream created", extra={"stream": STREAM, "replicas": replicas})
                return
            except Exception as exc:  # the cluster may still be forming
                error: Exception = exc
        except Exception as exc:
            error = exc
        attempt += 1
        if attempt % 10 == 1:
            log.warning("JetStream not ready; retrying", extra={"error": f"{type(error).__name__}: {error}"})
        await asyncio.sleep(min(0.1 * attempt, 1.0))


class Lag:
    """How far behind the stream a consumer is, as JetStream last confirmed it.

    Unconfirmed for `LAG_UNKNOWN_AFTER_SECONDS` (a NATS node killed, the consumer's leader being
    elected again), the lag is unknown (-1 messages, and the seconds since the last word), never
    the last value: a "0" kept from before a failover let `/readyz` call an applier drained while
    it applied nothing. `confirmed_at` (wall time) lets a caller ask for a confirmation newer than
    something it did. Each report also sets the consumer's two gauges in `/metrics`."""

    def __init__(self, messages_gauge: Any, seconds_gauge: Any) -> None:
        self.gauges = (messages_gauge, seconds_gauge)
        self.messages = -1  # -1 until JetStream first answers
        self.seconds = 0.0  # age of the oldest message not yet applied, when confirmed
        self.confirmed_at = time.time()

    def confirm(self, messages: int, behind_since: float | None) -> None:
        """`behind_since`: wall time the oldest message not yet applied reached the stream."""
        self.confirmed_at = time.time()
        self.messages = messages
        self.seconds = max(0.0, self.confirmed_at - behind_since) if messages and behind_since else 0.0

    def report(self) -> dict[str, Any]:
        """messages and seconds behind; -1 and the seconds without word when unknown."""
        silent = max(0.0, time.time() - self.confirmed_at)
        if self.messages < 0 or silent > LAG_UNKNOWN_AFTER_SECONDS:
            messages, seconds = -1, silent
        else:
            messages, seconds = self.messages, self.seconds
        self.gauges[0].set(messages)
        self.gauges[1].set(seconds)
        return {"messages": messages, "seconds": round(seconds, 3), "confirmed_at": round(self.confirmed_at, 3)}


class PublishingClient(WriterClient):
    """A worker's writer client in scaled mode: JetStream first, then the local writer."""

    def __init__(self, socket_path: str, url: str, partitions: int, apply_locally: bool) -> None:
        super().__init__(socket_path)
        self.url = url
        self.partitions = partitions
        self.apply_locally = apply_locally
        self.origin = f"{os.uname().nodename}-{os.getpid()}-{time.time_ns()}"
        self.counter = itertools.count()
        self.nc: Any = None
        self.js: Any = None

    async def connect(self) -> None:
        await super().connect()
        attempt = 0
        while self.nc is None:  # the writer reached NATS moments ago: keep trying, do not crash
            try:
                self.nc = await connect(self.url, f"staystream-ingest-{os.getpid()}")
            except Exception as exc:
                attempt += 1
                if attempt % 10 == 1:
                    log.warning("NATS unreachable; retrying", extra={"error": f"{type(exc).__name__}: {exc}"})
                await asyncio.sleep(min(0.1 * attempt, 1.0))
        self.js = self.nc.jetstream(timeout=PUBLISH_TIMEOUT)

    async def write(self, request: WriteRequest) -> WriteReply:
        n = next(self.counter)
        parts = split(request, self.partitions)
        results = await asyncio.gather(*(
            self.js.publish(subject(p), encode(part), timeout=PUBLISH_TIMEOUT,
                            headers={"Nats-Msg-Id": f"{self.origin}-{n}-{p}"})
            for p, part in parts.items()
        ), return_exceptions=True)
        failed = [r for r in results if isinstance(r, BaseException)]
        if failed:
            raise LogUnavailable(f"JetStream did not acknowledge ({type(failed[0]).__name__}: {failed[0]})")
        if not self.apply_locally:
            return WriteReply(request.id, 0, None)
        return await super().write(request)


def read_lag(shm_path: Path) -> tuple[dict[str, Any], list[str]]:
    """(what `lag.json` says, problems for /readyz); ({}, []) outside scaled mode."""
    path = shm_path / LAG_FILE
    try:
        age = time.time() - path.stat().st_mtime
        lag = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}, []
    problems = []
    if age > LAG_UNKNOWN_AFTER_SECONDS:  # written every 0.5 s: the writer process is stuck
        problems.append(f"the lag report is {age:.1f} s old: the writer process stopped writing it")
    for part in ("follow", "apply"):
        messages, seconds = lag.get(part, {}).get("messages", 0), lag.get(part, {}).get("seconds", 0.0)
        if messages < 0:
            problems.append(f"{part} lag unknown: no word from JetStream for {seconds:.1f} s")
        elif seconds > NOT_READY_LAG_SECONDS:
            problems.append(f"{part} lag {seconds:.1f} s is over {NOT_READY_LAG_SECONDS:.0f} s")
    return lag, problems
