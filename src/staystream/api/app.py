"""The HTTP API of a worker process (Starlette): ingest, calendar, listing, search, operations.

Writes go to the writer process and are answered once it says they are durable; reads come
straight from shared memory and read-only SQLite, so they see every acknowledged write.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import gc
import logging
import time
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import msgspec
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from staystream import metrics
from staystream.adapters.source_settings import SourcesFile
from staystream.api import openapi
from staystream.api.auth import EVERY_SOURCE, AuthError, Credentials, check_sources
from staystream.api.sources import source_routes
from staystream.config import Config
from staystream.events.fx import default_fx, load_fx
from staystream.events.ingest import BodyError, Parsed, TooManyEvents, Validator, epoch_day
from staystream.events.money import MoneyError
from staystream.events.types import RATE_FORMAT, WriteRequest
from staystream.search.engine import QueryError, parse_query, search
from staystream.search.view import Store
from staystream.writer.wire import WriterClient, WriterUnavailable

log = logging.getLogger("staystream.http")
_json = msgspec.json.Encoder()
BULK_HEADER = "x-staystream-bulk"  # set by importers: their writes yield to live traffic
VALIDATION_SLICE = 250  # events validated between two chances for other requests to run
INFLIGHT_BODIES = 8  # request bodies (at the size limit) one worker holds at most
WRITER_STUCK_SECONDS = 5.0  # the writer beats twice a second; silent this long, it is stuck
NDJSON_TYPES = {"application/x-ndjson", "application/jsonl", "application/json-seq", "application/ndjson"}


class HTTPError(Exception):
    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.headers = headers or {}


def json_response(content: object, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(_json.encode(content), status, headers, media_type="application/json")


def create_app(config: Config, shm_path: Path) -> Starlette:
    fx = default_fx(config.fx_table)
    credentials = Credentials.load(config.tokens)
    state: dict[str, object] = {}

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        store = Store(config.database_path, shm_path, fx)
        if config.log:  # scaled mode: JetStream acknowledges, the local writer applies (streamlog.py)
            from staystream.scaled.stream import PublishingClient

            client: WriterClient = PublishingClient(str(shm_path / "writer.sock"), config.log,
                                                    config.log_partitions, "search" in config.role)
        else:
            client = WriterClient(str(shm_path / "writer.sock"))
        await client.connect()
        state.update(store=store, client=client, validator=Validator(
            store.fx, config.earliest_night, config.horizon_days, config.max_night_price_eur))
        state["fx_label"] = store.fx.label
        state["inflight_bytes"] = 0
        gc.collect()
        gc.freeze()  # modules, app, store live on: full collections stop scanning them (performance.md)
        yield

    def route(path: str, name: str, methods: list[str] | None = None) -> Callable:
        """Register a handler with metrics, store refresh and the one JSON error shape."""

        def decorate(handler: Callable[[Request], Awaitable[Response]]) -> Route:
            async def endpoint(request: Request) -> Response:
                started = time.perf_counter()
                try:
                    if request.method != "GET" and credentials is not None:
                        _authorize(credentials, request, name)
                    store: Store = state["store"]  # type: ignore[assignment]
                    store.refresh()
                    if store.fx.label != state["fx_label"]:
                        state["validator"].set_fx(store.fx, config.max_night_price_eur)  # type: ignore[attr-defined]
                        state["fx_label"] = store.fx.label
                    response = await handler(request)
                except HTTPError as exc:
                    response = json_response({"error": str(exc)}, exc.status, exc.headers)
                except AuthError as exc:
                    response = json_response({"error": str(exc)}, exc.status,
                                             {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None)
                except Exception:
                    log.exception("unexpected error", extra={"route": name})
                    response = json_response({"error": "internal error; see the server log"}, 500)
                metrics.requests.labels(name, str(response.status_code)).inc()
                metrics.request_seconds.labels(name).observe(time.perf_counter() - started)
                return response

            return Route(path, endpoint, methods=methods, name=name)

        return decorate

    @route("/v1/events", "events", ["POST"])
    async def post_events(request: Request) -> Response:
        store: Store = state["store"]  # type: ignore[assignment]
        if store.backlog >= config.max_backlog_events:
            metrics.shed.inc()
            raise HTTPError(503, f"the writer has {store.backlog} events waiting; retry shortly",
                            {"Retry-After": "1"})
        ndjson = _is_ndjson(request)
        # Bodies being read or parsed are bounded per worker, so memory stays bounded however
        # many clients push at once (a compressed body counts at its limit: it may inflate).
        declared = request.headers.get("content-length", "")
        reserved = int(declared) if declared.isdigit() and "gzip" not in request.headers.get(
            "content-encoding", "") else config.max_body_bytes
        reserved = min(reserved, config.max_body_bytes)
        if state["inflight_bytes"] + reserved > INFLIGHT_BODIES * config.max_body_bytes:  # type: ignore[operator]
            metrics.shed.inc()
            raise HTTPError(503, "too many request bodies in progress; retry shortly", {"Retry-After": "1"})
        state["inflight_bytes"] += reserved  # type: ignore[operator]
        try:
            body = await _read_body(request, config.max_body_bytes)
            if ndjson is None:
                ndjson = not body.lstrip().startswith(b"[")
            validator: Validator = state["validator"]  # type: ignore[assignment]
            try:
                events = validator.decode(body, ndjson, config.max_events_per_request)
            except TooManyEvents as exc:
                raise HTTPError(413, str(exc)) from None
            except BodyError as exc:
                raise HTTPError(400, str(exc)) from None
            del body
            # Validated in slices, yielding between them, so a search that arrives meanwhile
            # waits for one slice, not for the whole body.
            parsed = validator.validate(events[:VALIDATION_SLICE])
            for first in range(VALIDATION_SLICE, len(events), VALIDATION_SLICE):
                await asyncio.sleep(0)
                parsed.extend(validator.validate(events[first : first + VALIDATION_SLICE], first))
            if credentials is not None:
                check_sources(request.state.sources, {source for source, _ in parsed.accepted_by_source})
            await submit(parsed, bulk=request.headers.get(BULK_HEADER, "") not in ("", "0", "false"))
        finally:
            state["inflight_bytes"] -= reserved  # type: ignore[operator]
        return json_response({"accepted": parsed.accepted, "rejected": parsed.rejected})

    async def submit(parsed: Parsed, bulk: bool = False) -> None:
        """Hand valid events to the writer; returns once they are durable (else HTTPError 503)."""
        for (source, reason), count in parsed.rejected_by_source.items():
            metrics.events_rejected.labels(source, reason).inc(count)
        if not parsed.accepted:
            return
        client: WriterClient = state["client"]  # type: ignore[assignment]
        rates = parsed.rate_columns()
        try:
            reply = await client.write(WriteRequest(
                0, parsed.keys, rates.tobytes(), parsed.listings, parsed.delists, parsed.newest_changed_at,
                bulk=bulk, rate_format=RATE_FORMAT))
        except WriterUnavailable as exc:
            raise HTTPError(503, f"nothing was stored: {exc}", {"Retry-After": "1"}) from None
        if reply.error is not None:
            raise HTTPError(503, f"nothing was stored: {reply.error}", {"Retry-After": "1"})
        _count_accepted(parsed)

    @route("/v1/listings/{source}/{listing_id:path}/calendar", "calendar", ["GET"])
    async def get_calendar(request: Request) -> Response:
        store: Store = state["store"]  # type: ignore[assignment]
        source, listing_id = request.path_params["source"], request.path_params["listing_id"]
        start = _query_date(request, "start")
        end = _query_date(request, "end")
        if start is not None and end is not None and end <= start:
            raise HTTPError(400, f"end: '{request.query_params['end']}' is not after start "
                                 f"'{request.query_params['start']}'; expected end > start")
        row = store.find(source, listing_id)
        if row is None:
            raise HTTPError(404, f"nothing was ever received for listing '{listing_id}' of source '{source}'")
        nights = store.nights(row, start, end)
        return json_response({"source": source, "listing_id": listing_id, "nights": nights})

    @route("/v1/listings/{source}/{listing_id:path}", "listing", ["GET"])
    async def get_listing(request: Request) -> Response:
        store: Store = state["store"]  # type: ignore[assignment]
        row = store.find(request.path_params["source"], request.path_params["listing_id"])
        if row is None:
            raise HTTPError(404, f"nothing was ever received for listing '{request.path_params['listing_id']}' "
                                 f"of source '{request.path_params['source']}'")
        return json_response(store.listing(row))

    @route("/v1/search", "search", ["GET"])
    async def get_search(request: Request) -> Response:
        store: Store = state["store"]  # type: ignore[assignment]
        try:
            query = parse_query(request.query_params, config.horizon_days)
            answer = search(store, query)  # raises QueryError too (a currency the FX table lacks)
        except QueryError as exc:
            raise HTTPError(400, str(exc)) from None
        return json_response(answer)

    @route("/v1/admin/fx", "fx", ["GET", "PUT"])
    async def fx_table(request: Request) -> Response:
        store: Store = state["store"]  # type: ignore[assignment]
        if request.method == "GET":
            return Response(store.fx.to_bytes(), media_type="application/json")
        body = await _read_body(request, config.max_body_bytes)
        try:
            replacement = load_fx(body)
        except MoneyError as exc:
            raise HTTPError(400, str(exc)) from None
        client: WriterClient = state["client"]  # type: ignore[assignment]
        reply = await client.write(WriteRequest(0, [], b"", [], [], {}, replacement.to_bytes()))
        if reply.error is not None:
            raise HTTPError(503, reply.error, {"Retry-After": "1"})
        return json_response({"fx": replacement.label})

    @route("/healthz", "healthz", ["GET"])
    async def healthz(request: Request) -> Response:
        return json_response({"status": "ok"})

    @route("/readyz", "readyz", ["GET"])
    async def readyz(request: Request) -> Response:
        store: Store = state["store"]  # type: ignore[assignment]
        client: WriterClient = state["client"]  # type: ignore[assignment]
        problems = []
        if not store.ready:
            problems.append("the store is still recovering")
        elif store.writer_silent_seconds > WRITER_STUCK_SECONDS:
            problems.append(f"the writer has not run for {store.writer_silent_seconds:.1f} s")
        if client.stream is None:
            problems.append("the writer is not connected")
        if store.backlog >= config.max_backlog_events:
            problems.append(f"write backlog {store.backlog} is at its limit {config.max_backlog_events}")
        try:
            store.connection.execute("SELECT 1").fetchone()
        except Exception as exc:  # the database file is gone or unreadable
            problems.append(f"the store cannot be read: {exc}")
        lag: dict[str, object] = {}
        if config.log:  # scaled mode: how far behind the stream this node is
            from staystream.scaled.stream import read_lag

            lag, lagging = read_lag(shm_path)
            problems += lagging
        body = {"status": "ready" if not problems else "not ready", "problems": problems,
                "backlog_events": store.backlog, **({"log": lag} if lag else {})}
        return json_response(body, 200 if not problems else 503)

    @route("/metrics", "metrics", ["GET"])
    async def get_metrics(request: Request) -> Response:
        data, content_type = metrics.render()
        return Response(data, media_type=content_type)

    @route("/openapi.json", "openapi", ["GET"])
    async def get_openapi(request: Request) -> Response:
        return json_response(openapi.SCHEMA)

    @route("/docs", "docs", ["GET"])
    async def get_docs(request: Request) -> Response:
        return HTMLResponse(openapi.docs_page())

    async def ingest(events: list[object], all_or_nothing: bool = False) -> Parsed:
        """Validate canonical events from a source adapter and store them (durable on return).

        With `all_or_nothing`, one rejected event means none is stored (Expedia's rule)."""
        validator: Validator = state["validator"]  # type: ignore[assignment]
        parsed = validator.validate(events)
        if all_or_nothing and parsed.rejected:
            return parsed
        await submit(parsed)
        return parsed

    routes = [post_events, get_calendar, get_listing, get_search, fx_table, healthz, readyz,
              get_metrics, get_openapi, get_docs, *source_routes(
                  route, ingest, lambda: state["store"], lambda request: _read_body(request, config.max_body_bytes),
                  SourcesFile(config.sources_file))]
    return Starlette(routes=routes, lifespan=lifespan)


def _authorize(credentials: Credentials, request: Request, route: str) -> None:
    """Credentials for a write: the token, the source in the path, admin rights for admin."""
    sources = credentials.sources_of(request.headers.get("authorization"))
    if route == "fx" and EVERY_SOURCE not in sources:
        raise AuthError(403, "authorization: replacing the FX table needs a credential for every source (*)")
    if "source" in request.path_params:
        check_sources(sources, [request.path_params["source"].strip().lower()])
    request.state.sources = sources


def _is_ndjson(request: Request) -> bool | None:
    """NDJSON, a JSON array, or None to sniff; 415 for anything else."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if not content_type:
        return None
    if content_type in NDJSON_TYPES:
        return True
    if content_type == "application/json":
        return False
    hint = (" (curl sends it by default with --data: add -H 'content-type: application/x-ndjson')"
            if content_type == "application/x-www-form-urlencoded" else "")
    raise HTTPError(415, f"content-type: '{content_type}' is not supported; expected "
                         f"application/x-ndjson or application/json{hint}")


async def _read_body(request: Request, limit: int) -> bytes:
    encoding = request.headers.get("content-encoding", "identity").strip().lower()
    if encoding not in ("identity", "gzip", ""):
        raise HTTPError(415, f"content-encoding: '{encoding}' is not supported; expected gzip or none")
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise HTTPError(413, f"body of {declared} bytes is over the limit of {limit} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise HTTPError(413, f"body is over the limit of {limit} bytes")
        chunks.append(chunk)
    body = b"".join(chunks)
    if encoding == "gzip":
        body = _gunzip(body, limit)
    return body


def _gunzip(data: bytes, limit: int) -> bytes:
    """Every member of a gzip body: RFC 1952 allows several (`cat a.gz b.gz`), none may be lost."""
    members, size = [], 0
    while True:
        inflater = zlib.decompressobj(zlib.MAX_WBITS | 16)
        try:
            member = inflater.decompress(data, limit - size + 1)
        except zlib.error as exc:
            raise HTTPError(400, f"body is not valid gzip: {exc}") from None
        size += len(member)
        if size > limit or inflater.unconsumed_tail:
            raise HTTPError(413, f"body is over the limit of {limit} bytes once decompressed")
        if not inflater.eof:
            raise HTTPError(400, "body is not valid gzip: the stream is truncated")
        members.append(member)
        data = inflater.unused_data
        if not data:
            return b"".join(members)


def _query_date(request: Request, name: str) -> int | None:
    text = request.query_params.get(name)
    if text is None:
        return None
    try:
        return epoch_day(dt.date.fromisoformat(text))
    except ValueError:
        raise HTTPError(400, f"{name}: '{text}' is not a date; expected YYYY-MM-DD") from None


def _count_accepted(parsed: Parsed) -> None:
    for (source, kind), count in parsed.accepted_by_source.items():
        metrics.events_accepted.labels(source, kind).inc(count)
