"""HTTP endpoints for native source formats (OTA XML, Expedia AR, iCal): one route per adapter.

Each adapter turns a native message into the fact events it really carries (`price`,
`availability`, `stay_rule`); `ingest` validates and stores them and returns only once they are
durable, so native endpoints give the same guarantee as `POST /v1/events`. Push protocols answer
in their own format with HTTP 200, errors inside the body (OTA `<Errors>`, EQC `<Error>`), as
their senders expect; HTTP status codes are kept for what a sender should retry as is: 413
(body too large), 503 (the writer is unavailable).

Adapters read nothing from the store's calendars (each fact is last-writer-wins on its own), so
messages need no lock; the store is asked only which rate plans a room type has
(`StoreProducts`), for elements that name a room type but no rate plan. What a message leaves
implicit (time zone, currency, occupancy) comes from the sources file (`source_settings.py`).
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Callable
from typing import TypeVar

from starlette.requests import Request
from starlette.responses import Response

from staystream.adapters import expedia, ical, ota
from staystream.api.requests import query_date, read_body
from staystream.api.responses import HTTPError, json_response
from staystream.api.routing import route
from staystream.api.state import Worker
from staystream.api.writes import ingest
from staystream.durable import sqlite
from staystream.events.ingest import SOURCE_PATTERN
from staystream.search.view import Store

T = TypeVar("T")
XML = "application/xml; charset=utf-8"


class StoreProducts:
    """The rate plans the store knows for one source (`messages.Products`)."""

    def __init__(self, store: Store, source: str) -> None:
        self.store, self.source = store, source

    def listing_ids(self, prefix: str) -> list[str]:
        return sqlite.listing_ids_with_prefix(self.store.connection, self.source, prefix)


async def post_ota(request: Request, worker: Worker) -> Response:
    source = _source_of(request)
    received_at = dt.datetime.now(dt.UTC)
    message = await _opened(request, worker, ota.open_message)
    outcome = ota.convert(message, source, worker.sources.get(source), StoreProducts(worker.store, source),
                          received_at)
    if outcome.events:
        parsed = await ingest(worker, outcome.events)
        outcome.rejected(parsed.rejected)
    return Response(ota.response(message, outcome), media_type=_xml_type(request))


async def post_expedia(request: Request, worker: Worker) -> Response:
    source = _source_of(request)
    received_at = dt.datetime.now(dt.UTC)
    message = await _opened(request, worker, expedia.open_message)
    outcome = expedia.convert(message, source, worker.sources.get(source), StoreProducts(worker.store, source),
                              received_at)
    if outcome.events and not outcome.errors:  # with an Error nothing is applied
        parsed = await ingest(worker, outcome.events, all_or_nothing=True)
        outcome.rejected(parsed.rejected, code=expedia.INVALID)
    return Response(expedia.response(message, outcome), media_type=_xml_type(request))


async def post_ical(request: Request, worker: Worker) -> Response:
    source, listing_id = _source_of(request), request.path_params["listing_id"]
    start = query_date(request, "start") or dt.datetime.now(dt.UTC).date()
    end = query_date(request, "end") or start + dt.timedelta(days=ical.DEFAULT_HORIZON_NIGHTS)
    empty_ok = request.query_params.get("empty_ok", "false").lower() in ("1", "true", "yes")
    zone = worker.sources.get(source).time_zone
    try:
        feed = await _opened(request, worker, functools.partial(ical.read_feed_within, start=start, end=end,
                                                                zone=zone))
        result = ical.plan(feed, source, listing_id, start=start, end=end, changed_at=dt.datetime.now(dt.UTC),
                           empty_ok=empty_ok)
    except ical.FeedError as exc:
        raise HTTPError(400, str(exc)) from None
    accepted, rejected = 0, []
    if result.outcome.events:
        parsed = await ingest(worker, result.outcome.events)
        accepted, rejected = parsed.accepted, parsed.rejected
    outcome = result.outcome
    return json_response({
        "source": source, "listing_id": listing_id,
        "horizon": {"start": start.isoformat(), "end": end.isoformat()},
        "feed_events": feed.vevents, "cancelled_events": feed.cancelled,
        "blocked_nights": result.blocked_nights, "open_nights": result.open_nights,
        "opened": result.opened, "accepted": accepted, "rejected": rejected,
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
