"""`POST /v1/bulk/rates`: rate events as columns (`events/columns.py`), for importers.

The same events, checks, rejections (by index in the body), durability and answer as
`POST /v1/events`, in a body that costs the worker a dozen arrays instead of a Python object
per event. A whole city's import is mostly rate events: this is its path; its listings still
go as NDJSON to `/v1/events`.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from staystream.api.auth import check_sources
from staystream.api.headers import BULK_HEADER, is_bulk
from staystream.api.requests import read_body
from staystream.api.responses import HTTPError, json_response
from staystream.api.routing import route
from staystream.api.state import Worker
from staystream.api.writes import shed_when_backlogged, submit
from staystream.events import columns
from staystream.events.ingest import BodyError, TooManyEvents


async def post_rates(request: Request, worker: Worker) -> Response:
    config = worker.config
    shed_when_backlogged(worker)
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != columns.MEDIA_TYPE:
        raise HTTPError(415, f"content-type: '{content_type}' is not supported; expected {columns.MEDIA_TYPE} "
                             "(NDJSON events go to /v1/events)")
    body = await read_body(request, config.max_body_bytes)
    try:
        table, arrays = columns.decode(body, config.max_events_per_request)
    except TooManyEvents as exc:
        raise HTTPError(413, str(exc)) from None
    except BodyError as exc:
        raise HTTPError(400, str(exc)) from None
    del body
    parsed = columns.validate(worker.validator, table, arrays)
    if worker.credentials is not None:
        check_sources(request.state.sources, {source for source, _ in parsed.accepted_by_source})
    await submit(worker, parsed, bulk=is_bulk(request.headers.get(BULK_HEADER, "")))
    return json_response({"accepted": parsed.accepted, "rejected": parsed.rejected})


ROUTES = [route("/v1/bulk/rates", "bulk_rates", ["POST"], post_rates)]
