"""Reads: a listing, its calendar, search; straight from shared memory and read-only SQLite."""

from __future__ import annotations

import asyncio
import time

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from staystream.api.requests import query_date
from staystream.api.responses import HTTPError, json_response
from staystream.api.routing import route
from staystream.api.state import Worker
from staystream.dates import epoch_day
from staystream.search.engine import QueryError, parse_query, search
from staystream.search.flexible import parse_dates_query, search_dates
from staystream.writer.wire import WriterUnavailable

HISTORY_WAIT_SECONDS = 1.0  # the history thread copies a group within ~0.1 s of it


async def get_calendar(request: Request, worker: Worker) -> Response:
    source, listing_id = request.path_params["source"], request.path_params["listing_id"]
    start, end = query_date(request, "start"), query_date(request, "end")
    if start is not None and end is not None and end <= start:
        raise HTTPError(400, f"end: '{request.query_params['end']}' is not after start "
                             f"'{request.query_params['start']}'; expected end > start")
    row = worker.store.find(source, listing_id)
    if row is None:
        raise HTTPError(404, f"nothing was ever received for listing '{listing_id}' of source '{source}'")
    nights = worker.store.nights(row, None if start is None else epoch_day(start),
                                 None if end is None else epoch_day(end))
    return json_response({"source": source, "listing_id": listing_id, "nights": nights})


async def get_history(request: Request, worker: Worker) -> Response:
    source, listing_id = request.path_params["source"], request.path_params["listing_id"]
    night = query_date(request, "night")
    if night is None:
        raise HTTPError(400, "night: missing; expected a date YYYY-MM-DD (the night whose changes to list)")
    row = worker.store.find(source, listing_id)
    if row is None:
        raise HTTPError(404, f"nothing was ever received for listing '{listing_id}' of source '{source}'")
    # History is copied from each group just after it is acknowledged: wait for it (briefly),
    # so that a history read after a 200 sees what that request accepted.
    deadline = time.monotonic() + HISTORY_WAIT_SECONDS
    while worker.store.history_behind and time.monotonic() < deadline:
        await asyncio.sleep(0.002)
    changes = worker.store.changes(row, epoch_day(night))
    return json_response({"night": night.isoformat(), "changes": changes})


async def get_listing(request: Request, worker: Worker) -> Response:
    row = worker.store.find(request.path_params["source"], request.path_params["listing_id"])
    if row is None:
        raise HTTPError(404, f"nothing was ever received for listing '{request.path_params['listing_id']}' "
                             f"of source '{request.path_params['source']}'")
    return json_response(worker.store.listing(row))


async def get_place(request: Request, worker: Worker) -> Response:
    place_id = request.path_params["place_id"]
    try:
        body = await worker.client.place(place_id)
    except WriterUnavailable as exc:
        raise HTTPError(503, f"places cannot be read now: {exc}", {"Retry-After": "1"}) from None
    if body is not None and body.startswith(b'{"alone":'):  # a listing in no place: the store describes it
        body = worker.store.place_of_one(msgspec.json.decode(body))
    if body is None:
        raise HTTPError(404, f"place_id: '{place_id[:140]}' is not a place; expected the place_id of a listing "
                             "in search (GET /v1/listings/{source}/{listing_id} shows it; a listing never "
                             "described, or delisted, is in no place)")
    return Response(body, media_type="application/json")


async def get_search(request: Request, worker: Worker) -> Response:
    try:
        query = parse_query(request.query_params, worker.config.horizon_days)
        answer = search(worker.store, query)  # raises QueryError too (a currency the FX table lacks)
    except QueryError as exc:
        raise HTTPError(400, str(exc)) from None
    return json_response(answer)


async def get_search_dates(request: Request, worker: Worker) -> Response:
    try:
        answer = search_dates(worker.store, parse_dates_query(request.query_params, worker.config.horizon_days))
    except QueryError as exc:
        raise HTTPError(400, str(exc)) from None
    return json_response(answer)


ROUTES = [  # the calendar before the listing: a listing id may contain '/'
    route("/v1/listings/{source}/{listing_id:text}/calendar", "calendar", ["GET"], get_calendar),
    route("/v1/listings/{source}/{listing_id:text}/history", "history", ["GET"], get_history),
    route("/v1/listings/{source}/{listing_id:text}", "listing", ["GET"], get_listing),
    route("/v1/places/{place_id}", "place", ["GET"], get_place),
    route("/v1/search/dates", "search_dates", ["GET"], get_search_dates),
    route("/v1/search", "search", ["GET"], get_search),
]
