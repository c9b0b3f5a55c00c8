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

import datetime as dt
import functools
from collections.abc import Callable
from decimal import Decimal
from typing import TypeVar

from starlette.requests import Request
from starlette.responses import Response

from staystream.adapters import expedia, ical, ota
from staystream.adapters.merge import Night
from staystream.api.requests import query_date, read_body
from staystream.api.responses import HTTPError, json_response
from staystream.api.routing import route
from staystream.api.state import Worker
from staystream.api.writes import ingest
from staystream.durable import sqlite
from staystream.events.ingest import SOURCE_PATTERN
from staystream.events.money import CURRENCY_INDEX
from staystream.search.view import Store

T = TypeVar("T")
XML = "application/xml; charset=utf-8"


class StoreKnown:
    """What the store holds for one source, as adapters ask for it (`merge.Known`)."""

    def __init__(self, store: Store, source: str) -> None:
        self.store, self.source = store, source

    def listing_ids(self, prefix: str) -> list[str]:
        return sqlite.listing_ids_with_prefix(self.store.connection, self.source, prefix)

    def nights(self, listing_id: str) -> dict[dt.date, Night]:
        """The nights as whole values (what `merge` writes back as rates): a fact never received
        takes merge's "no value" default (available, min_nights 1); a night without a price
        takes the listing's latest currency, and without any is left out (merge then treats it
        as holding no value)."""
        row = self.store.find(self.source, listing_id)
        if row is None:
            return {}
        shown = self.store.nights(row, None, None)
        currencies = [night["currency"] for night in shown if night["currency"] is not None]
        fallback = currencies[-1] if currencies else None
        return {
            dt.date.fromisoformat(night["night"]): Night(  # type: ignore[arg-type]  # a stored night: str, bool, int values
                None if night["price"] is None else Decimal(night["price"]),  # type: ignore[arg-type]
                night["currency"] or fallback,  # type: ignore[arg-type]
                True if night["available"] is None else night["available"],  # type: ignore[arg-type]
                1 if night["min_nights"] is None else night["min_nights"],  # type: ignore[arg-type]
            )
            for night in shown if night["currency"] or fallback
        }


async def post_ota(request: Request, worker: Worker) -> Response:
    source = _source_of(request)
    message = await _opened(request, worker, ota.open_message)
    async with worker.hotel_lock(source, message.hotel):
        outcome = ota.convert(message, source, StoreKnown(worker.store, source))
        if outcome.events:
            parsed = await ingest(worker, outcome.events)
            outcome.rejected(parsed.rejected)
    return Response(ota.response(message, outcome), media_type=_xml_type(request))


async def post_expedia(request: Request, worker: Worker) -> Response:
    source = _source_of(request)
    message = await _opened(request, worker, expedia.open_message)
    async with worker.hotel_lock(source, message.hotel):
        outcome = expedia.convert(message, source, StoreKnown(worker.store, source))
        if outcome.events and not outcome.errors:  # with an Error nothing is applied
            parsed = await ingest(worker, outcome.events, all_or_nothing=True)
            outcome.rejected(parsed.rejected, code=expedia.INVALID)
    return Response(expedia.response(message, outcome), media_type=_xml_type(request))


async def post_ical(request: Request, worker: Worker) -> Response:
    source, listing_id = _source_of(request), request.path_params["listing_id"]
    start = query_date(request, "start") or dt.datetime.now(dt.UTC).date()
    end = query_date(request, "end") or start + dt.timedelta(days=ical.DEFAULT_HORIZON_NIGHTS)
    currency = request.query_params.get("currency")
    if currency is not None and currency.strip().upper() not in CURRENCY_INDEX:
        raise HTTPError(400, f"currency: '{currency[:40]}' is not an ISO 4217 currency code")
    empty_ok = request.query_params.get("empty_ok", "false").lower() in ("1", "true", "yes")
    try:
        feed = await _opened(request, worker, functools.partial(ical.read_feed_within, start=start, end=end))
        async with worker.hotel_lock(source, f"listing:{listing_id}"):
            result = ical.plan(feed, source, listing_id, StoreKnown(worker.store, source), start=start, end=end,
                               changed_at=dt.datetime.now(dt.UTC),
                               currency=currency.strip().upper() if currency else None, empty_ok=empty_ok)
            accepted, rejected = 0, []
            if result.outcome.events:
                parsed = await ingest(worker, result.outcome.events)
                accepted, rejected = parsed.accepted, parsed.rejected
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


def _source_of(request: Request) -> str:
    source: str = request.path_params["source"]
    if not SOURCE_PATTERN.fullmatch(source):
        raise HTTPError(400, f"source: '{source[:40]}' is invalid; expected [a-z0-9_-]{{1,32}}")
    return source


def _xml_type(request: Request) -> str:
    """Answer in the request's XML media type: SOAP 1.1 senders (SiteMinder) use text/xml."""
    sent = request.headers.get("content-type", "").split(";")[0].strip().lower()
    return "text/xml; charset=utf-8" if sent == "text/xml" else XML


async def _opened(request: Request, worker: Worker, open_message: Callable[[bytes], T]) -> T:
    """Parse a pushed body; a large one in a helper process (`api/offload.py`), so this worker
    keeps answering."""
    return await worker.offload.parse(open_message, await read_body(request, worker.config.max_body_bytes))


ROUTES = [
    route("/v1/sources/{source}/ota", "source_ota", ["POST"], post_ota),
    route("/v1/sources/{source}/expedia", "source_expedia", ["POST"], post_expedia),
    route("/v1/sources/{source}/listings/{listing_id:text}/ical", "source_ical", ["POST"], post_ical),
]
