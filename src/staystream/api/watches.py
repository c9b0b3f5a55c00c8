"""Watches: create and delete them (no write credential: bounded per address and in total), and
stream their events as Server-Sent Events, resumable with `Last-Event-ID`.

The watcher writes events to the outbox; one task per worker hears which watches have new ones
(`WatchStore.wakeups`: the shared counter with SQLite, LISTEN/NOTIFY with PostgreSQL, where the
producer may be another node) and wakes their streams (`OutboxSignal`); each reads its own.
A watch store that cannot be reached answers 503, as does a scaled node that keeps no watches;
its calls run in threads, so a stalled PostgreSQL stalls no other route of the worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
from collections.abc import AsyncIterator, Iterator

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from staystream.api.requests import read_body
from staystream.api.responses import HTTPError, json_response
from staystream.api.routing import route
from staystream.api.state import Worker
from staystream.memory.shm import Counter, SharedArrays
from staystream.search.engine import QueryError
from staystream.watches import backend, store
from staystream.watches.backend import WatchStore
from staystream.watches.spec import parse_watch

BODY_LIMIT = 64 * 1024
KEEPALIVE_SECONDS = 15.0  # a comment line, so proxies and clients see a live stream
CHECK_WATCH_SECONDS = 5.0  # how often a stream checks that its watch still exists (deleted, expired)


class OutboxSignal:
    """Wakes the streams of this worker whose watch has new events.

    One task per worker follows the store's `wakeups` (which watches have new events, one look
    for all streams) and wakes only their streams, so an idle stream costs nothing however busy
    the others are."""

    def __init__(self, shared: SharedArrays, database: WatchStore) -> None:
        self.shared = shared
        self.database = database
        self.streams: dict[int, set[asyncio.Event]] = {}  # watch seq -> the events of its streams
        self.task: asyncio.Task[None] | None = None
        self.closed = False  # the worker is shutting down: every stream ends

    def close(self) -> None:
        """End every stream (at once, not at its next keep-alive): uvicorn's shutdown waits for
        open responses, and a page's stream would otherwise hold it until the worker is killed."""
        self.closed = True
        for streams in self.streams.values():
            for woken in streams:
                woken.set()

    def subscribe(self, watch_seq: int) -> asyncio.Event:
        if self.task is None:
            self.task = asyncio.create_task(self._follow())
        woken = asyncio.Event()
        self.streams.setdefault(watch_seq, set()).add(woken)
        return woken

    def unsubscribe(self, watch_seq: int, woken: asyncio.Event) -> None:
        found = self.streams.get(watch_seq)
        if found is not None:
            found.discard(woken)
            if not found:
                del self.streams[watch_seq]

    async def _follow(self) -> None:
        async for seqs in self.database.wakeups(self.shared):
            for watch_seq in list(self.streams) if seqs is None else seqs:
                for woken in self.streams.get(watch_seq, ()):
                    woken.set()


class Creations:
    """Watch creations of one worker, committed together: while one transaction (and its fsync)
    runs in a thread, the next requests wait and then share the next one."""

    def __init__(self, worker: Worker) -> None:
        self.worker = worker
        self.database = backend.for_worker(worker.config)  # used by one thread at a time
        self.waiting: list[tuple[store.Watch, str, asyncio.Future[store.LimitReached | None]]] = []
        self.running = False

    async def create(self, watch: store.Watch, client: str) -> None:
        future: asyncio.Future[store.LimitReached | None] = asyncio.get_running_loop().create_future()
        self.waiting.append((watch, client, future))
        if not self.running:
            self.running = True
            asyncio.create_task(self._commit_all())
        refused = await future
        if refused is not None:
            raise refused

    async def _commit_all(self) -> None:
        database = self.database
        try:
            while self.waiting:
                batch, self.waiting = self.waiting, []
                config = self.worker.config
                try:
                    answers = await asyncio.to_thread(
                        database.create, [(w, c) for w, c, _ in batch],
                        config.watches_per_address, config.watches_total)
                except Exception as exc:
                    for _, _, future in batch:
                        future.set_exception(exc)
                    continue
                self.worker.store.shared.counters[Counter.WATCHES_CHANGED] += 1
                for (_, _, future), answer in zip(batch, answers, strict=True):
                    future.set_result(answer)
        finally:
            self.running = False


def _database(worker: Worker) -> WatchStore:
    refused = backend.unavailable(worker.config)
    if refused is not None:
        raise HTTPError(503, refused)
    if worker.watches is None:
        worker.watches = backend.for_worker(worker.config)
        worker.outbox_signal = OutboxSignal(worker.store.shared, worker.watches)
        worker.watch_creations = Creations(worker)
    return worker.watches


@contextlib.contextmanager
def _reachable(worker: Worker) -> Iterator[None]:
    """A watch store that cannot be reached (PostgreSQL down) is a 503, not a 500."""
    try:
        yield
    except backend.unreachable_errors(worker.config) as exc:
        raise HTTPError(503, f"watches: the watch store is unreachable ({type(exc).__name__}); nothing was "
                             "changed, expected a retry in a moment", {"Retry-After": "1"}) from None


async def post_watch(request: Request, worker: Worker) -> Response:
    body = await read_body(request, BODY_LIMIT)
    try:
        spec = parse_watch(body, worker.config.horizon_days)
    except QueryError as exc:
        raise HTTPError(400, str(exc)) from None
    watch = store.Watch(0, secrets.token_urlsafe(16), secrets.token_hex(32), _json_params(spec.params),
                        spec.webhook, spec.expires_at, spec.changes)
    client = request.client.host if request.client else "unknown"
    _database(worker)
    try:
        with _reachable(worker):
            await worker.watch_creations.create(watch, client)
    except store.LimitReached as exc:
        raise HTTPError(429, str(exc), {"Retry-After": str(exc.retry_after)}) from None
    return json_response({"watch_id": watch.id, "secret": watch.secret}, 201)


def _json_params(params: dict[str, list[str]]) -> str:
    return json.dumps(params, sort_keys=True)


async def delete_watch(request: Request, worker: Worker) -> Response:
    with _reachable(worker):
        deleted = await asyncio.to_thread(_database(worker).delete, request.path_params["watch_id"])
    if not deleted:
        raise HTTPError(404, f"watch_id: '{request.path_params['watch_id'][:40]}' is no watch "
                             "(deleted, expired or never made)")
    worker.store.shared.counters[Counter.WATCHES_CHANGED] += 1
    return Response(status_code=204)


async def get_events(request: Request, worker: Worker) -> Response:
    database = _database(worker)
    watch_id = request.path_params["watch_id"]
    with _reachable(worker):
        watch = await asyncio.to_thread(database.find, watch_id)
    if watch is None:
        raise HTTPError(404, f"watch_id: '{watch_id[:40]}' is no watch (deleted, expired or never made)")
    text = request.headers.get("last-event-id", "").strip()
    if text and not text.isdigit():
        raise HTTPError(400, f"last-event-id: '{text[:40]}' is not an event id; expected the id of an event received")
    after = int(text) if text else 0
    signal = worker.outbox_signal
    assert signal is not None

    async def stream() -> AsyncIterator[bytes]:
        woken = signal.subscribe(watch.seq)
        try:
            async for chunk in _events(woken):
                yield chunk
        except backend.unreachable_errors(worker.config):
            return  # the store went away: the client reconnects with Last-Event-ID
        finally:
            signal.unsubscribe(watch.seq, woken)

    async def _events(woken: asyncio.Event) -> AsyncIterator[bytes]:
        nonlocal after
        yield b"retry: 1000\n\n"
        loop = asyncio.get_running_loop()
        last_sent = checked = loop.time()
        while not signal.closed:  # the client reconnects (to another worker, or after a restart)
            woken.clear()
            while rows := await asyncio.to_thread(database.events_after, watch.seq, after):
                yield b"".join(b"id: %d\nevent: %s\ndata: %s\n\n" % (i, e.encode(), d.encode()) for i, e, d in rows)
                after = rows[-1][0]
                last_sent = loop.time()
            now = loop.time()
            if now - checked >= CHECK_WATCH_SECONDS:
                checked = now
                if await asyncio.to_thread(database.find, watch_id) is None:
                    return  # deleted or expired: the client's reconnect then gets a 404
            if now - last_sent >= KEEPALIVE_SECONDS:
                yield b": keep-alive\n\n"
                last_sent = now
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(woken.wait(), CHECK_WATCH_SECONDS)

    return StreamingResponse(stream(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


ROUTES = [
    route("/v1/watches", "watches", ["POST"], post_watch, public=True),
    route("/v1/watches/{watch_id}", "watch", ["DELETE"], delete_watch, public=True),
    route("/v1/watches/{watch_id}/events", "watch_events", ["GET"], get_events),
]
