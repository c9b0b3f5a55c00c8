"""HTTP endpoints for native source formats (OTA XML, Expedia AR, iCal): one route per adapter.

Each adapter turns a native message into canonical events; `ingest` validates and stores them
and returns only once they are durable, so native endpoints give the same guarantee as
`POST /v1/events`. Push protocols answer in their own format with HTTP 200, errors inside the
body (OTA `<Errors>`, EQC `<Error>`), as their senders expect; HTTP status codes are kept for
what a sender should retry as is: 413 (body too large), 503 (the writer is unavailable).

Adapters merge partial changes over the nights the store holds (`adapters/merge.py`), so a
route holds a per-(source, hotel) lock in this worker while it reads, merges and stores: two
messages for one hotel arriving at one worker cannot interleave their read-modify-write.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import weakref
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import TypeVar

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from staystream.adapters import expedia, ical, ota
from staystream.adapters.merge import Night
from staystream.api.errors import HTTPError
from staystream.api.offload import Offload
from staystream.durable import sqlite as db
from staystream.events import bounds
from staystream.events.ingest import SOURCE_PATTERN
from staystream.events.money import CURRENCY_INDEX
from staystream.search.view import Store

Ingest = Callable[..., Awaitable[object]]
T = TypeVar("T")
XML = "application/xml; charset=utf-8"


class StoreKnown:
    """What the store holds for one source, as adapters ask for it (`merge.Known`)."""

    def __init__(self, store: Store, source: str) -> None:
        self.store, self.source = store, source

    def listing_ids(self, prefix: str) -> list[str]:
        return db.listing_ids_with_prefix(self.store.connection, self.source, prefix)

    def nights(self, listing_id: str) -> dict[dt.date, Night]:
        row = self.store.find(self.source, listing_id)
        if row is None:
            return {}
        return {
            dt.date.fromisoformat(night["night"]): Night(  # type: ignore[arg-type]
                None if night["price"] is None else Decimal(night["price"]),  # type: ignore[arg-type]
                night["currency"], night["available"], night["min_nights"],  # type: ignore[arg-type]
            )
            for night in self.store.nights(row, None, None)
        }


def source_routes(
    route: Callable[..., Callable[..., Route]],
    ingest: Ingest,
    store: Callable[[], Store],
    read_body: Callable[[Request], Awaitable[bytes]],
) -> list[Route]:
    """The native-format routes, registered with `route` (metrics, errors) by `app.create_app`."""
    from staystream.api.app import json_response  # app imports this module: import at call time

    locks: weakref.WeakValueDictionary[tuple[str, str], asyncio.Lock] = weakref.WeakValueDictionary()

    def lock(source: str, hotel: str | None) -> asyncio.Lock:
        key = (source, hotel or "")
        found = locks.get(key)
        if found is None:
            found = locks[key] = asyncio.Lock()
        return found

    def source_of(request: Request) -> str:
        source = request.path_params["source"]
        if not SOURCE_PATTERN.fullmatch(source):
            raise HTTPError(400, f"source: '{source[:40]}' is invalid; expected [a-z0-9_-]{{1,32}}")
        return source

    def xml_type(request: Request) -> str:
        """Answer in the request's XML media type: SOAP 1.1 senders (SiteMinder) use text/xml."""
        sent = request.headers.get("content-type", "").split(";")[0].strip().lower()
        return "text/xml; charset=utf-8" if sent == "text/xml" else XML

    offload = Offload()

    async def opened(request: Request, open_message: Callable[[bytes], T]) -> T:
        """Parse a pushed body; a large one in a helper process, so this worker keeps answering."""
        return await offload.parse(open_message, await read_body(request))

    @route("/v1/sources/{source}/ota", "source_ota", ["POST"])
    async def post_ota(request: Request) -> Response:
        source = source_of(request)
        message = await opened(request, ota.open_message)
        async with lock(source, message.hotel):
            outcome = ota.convert(message, source, StoreKnown(store(), source))
            if outcome.events:
                parsed = await ingest(outcome.events)
                outcome.rejected(parsed.rejected)  # type: ignore[attr-defined]
        return Response(ota.response(message, outcome), media_type=xml_type(request))

    @route("/v1/sources/{source}/expedia", "source_expedia", ["POST"])
    async def post_expedia(request: Request) -> Response:
        source = source_of(request)
        message = await opened(request, expedia.open_message)
        async with lock(source, message.hotel):
            outcome = expedia.convert(message, source, StoreKnown(store(), source))
            if outcome.events and not outcome.errors:  # with an Error nothing is applied
                parsed = await ingest(outcome.events, all_or_nothing=True)
                outcome.rejected(parsed.rejected, code=expedia.INVALID)  # type: ignore[attr-defined]
        return Response(expedia.response(message, outcome), media_type=xml_type(request))

    @route("/v1/sources/{source}/listings/{listing_id:path}/ical", "source_ical", ["POST"])
    async def post_ical(request: Request) -> Response:
        source, listing_id = source_of(request), request.path_params["listing_id"]
        start = query_date(request, "start") or dt.datetime.now(dt.UTC).date()
        end = query_date(request, "end") or start + dt.timedelta(days=ical.DEFAULT_HORIZON_NIGHTS)
        currency = request.query_params.get("currency")
        if currency is not None and currency.strip().upper() not in CURRENCY_INDEX:
            raise HTTPError(400, f"currency: '{currency[:40]}' is not an ISO 4217 currency code")
        empty_ok = request.query_params.get("empty_ok", "false").lower() in ("1", "true", "yes")
        try:
            feed = await opened(request, ical.read_feed)
            async with lock(source, f"listing:{listing_id}"):
                result = ical.plan(feed, source, listing_id, StoreKnown(store(), source), start=start, end=end,
                                   changed_at=dt.datetime.now(dt.UTC),
                                   currency=currency.strip().upper() if currency else None, empty_ok=empty_ok)
                accepted, rejected = 0, []
                if result.outcome.events:
                    parsed = await ingest(result.outcome.events)
                    accepted, rejected = parsed.accepted, parsed.rejected  # type: ignore[attr-defined]
        except ical.FeedError as exc:
            raise HTTPError(400, str(exc)) from None
        outcome = result.outcome
        return json_response({
            "source": source, "listing_id": listing_id,
            "horizon": {"start": start.isoformat(), "end": end.isoformat()},
            "feed_events": feed.vevents, "cancelled_events": feed.cancelled,
            "blocked_nights": result.blocked_nights, "open_nights": result.open_nights,
            "opened": result.opened, "changed_nights": result.changed_nights,
            "accepted": accepted, "rejected": rejected,
            "errors": [{"line": int(p.where.removeprefix("line ")) if p.where.startswith("line ") else None,
                        "error": str(p)} for p in outcome.errors],
            "warnings": [str(p) for p in outcome.warnings],
        })

    def query_date(request: Request, name: str) -> dt.date | None:
        text = request.query_params.get(name)
        if text is None:
            return None
        try:
            return bounds.query_date(name, text)
        except bounds.Rejected as exc:
            raise HTTPError(400, str(exc)) from None

    return [post_ota, post_expedia, post_ical]
