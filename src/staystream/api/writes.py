"""Writes: `POST /v1/events` and the FX table; answered once the writer says they are durable."""

from __future__ import annotations

from collections.abc import Sequence

from starlette.requests import Request
from starlette.responses import Response

from staystream import metrics
from staystream.api.auth import check_sources
from staystream.api.headers import BULK_HEADER, is_bulk
from staystream.api.pacing import Pacer
from staystream.api.requests import is_ndjson, read_body
from staystream.api.responses import HTTPError, json_response
from staystream.api.routing import route
from staystream.api.state import Worker
from staystream.events.fx import load_fx
from staystream.events.ingest import BodyError, Parsed, TooManyEvents
from staystream.events.money import MoneyError
from staystream.events.types import WriteRequest
from staystream.writer.wire import WriterUnavailable

VALIDATION_SLICE = 250  # events validated between two chances for other requests to run


def shed_when_backlogged(worker: Worker) -> None:
    """A 503 with Retry-After, before the body is read, while the writer's backlog is full."""
    if worker.store.backlog >= worker.config.max_backlog_events:
        metrics.shed.inc()
        raise HTTPError(503, f"the writer has {worker.store.backlog} events waiting; retry shortly",
                        {"Retry-After": "1"})


async def post_events(request: Request, worker: Worker) -> Response:
    config = worker.config
    shed_when_backlogged(worker)
    ndjson = is_ndjson(request)
    body = await read_body(request, config.max_body_bytes)  # charged to the worker's body budget
    if ndjson is None:
        ndjson = not body.lstrip().startswith(b"[")
    validator = worker.validator
    # Decoded and validated in slices, pausing between them (api/pacing.py), so a search (or
    # /healthz) that arrives meanwhile waits for a slice or two, not for the whole body.
    events: list[object] = []
    pacer = Pacer()
    try:
        for part in validator.decode_parts(body, ndjson, config.max_events_per_request):
            events += part
            await pacer.breathe()
    except TooManyEvents as exc:
        raise HTTPError(413, str(exc)) from None
    except BodyError as exc:
        raise HTTPError(400, str(exc)) from None
    del body
    parsed = validator.validate(events[:VALIDATION_SLICE])
    for first in range(VALIDATION_SLICE, len(events), VALIDATION_SLICE):
        await pacer.breathe()
        parsed.extend(validator.validate(events[first : first + VALIDATION_SLICE], first))
    if worker.credentials is not None:
        check_sources(request.state.sources, {source for source, _ in parsed.accepted_by_source})
    await submit(worker, parsed, bulk=is_bulk(request.headers.get(BULK_HEADER, "")))
    return json_response({"accepted": parsed.accepted, "rejected": parsed.rejected})


async def ingest(worker: Worker, events: Sequence[object], all_or_nothing: bool = False) -> Parsed:
    """Validate canonical events from a source adapter and store them (durable on return).

    With `all_or_nothing`, one rejected event means none is stored (Expedia's rule)."""
    parsed = worker.validator.validate(events)
    if all_or_nothing and parsed.rejected:
        return parsed
    await submit(worker, parsed)
    return parsed


async def submit(worker: Worker, parsed: Parsed, bulk: bool = False) -> None:
    """Hand valid events to the writer; returns once they are durable (else HTTPError 503)."""
    for (source, reason), count in parsed.rejected_by_source.items():
        metrics.events_rejected.labels(source, reason).inc(count)
    if parsed.rejection_examples:
        worker.rejections.record(parsed.rejection_examples)
    if not parsed.accepted:
        return
    rates = parsed.rate_columns()
    try:
        reply = await worker.client.write(WriteRequest(
            0, parsed.keys, rates.tobytes(), parsed.listings, parsed.delists, parsed.newest_changed_at,
            bulk=bulk, fees=parsed.fees, links=parsed.links))
    except WriterUnavailable as exc:
        raise HTTPError(503, f"nothing was stored: {exc}", {"Retry-After": "1"}) from None
    if reply.error is not None:
        raise HTTPError(503, f"nothing was stored: {reply.error}", {"Retry-After": "1"})
    for (source, kind), count in parsed.accepted_by_source.items():
        metrics.events_accepted.labels(source, kind).inc(count)


async def fx_table(request: Request, worker: Worker) -> Response:
    """GET: the FX table prices are judged and converted by; PUT (admin): replace it."""
    if request.method == "GET":
        return Response(worker.store.fx.to_bytes(), media_type="application/json")
    body = await read_body(request, worker.config.max_body_bytes)
    try:
        replacement = load_fx(body)
    except MoneyError as exc:
        raise HTTPError(400, str(exc)) from None
    reply = await worker.client.write(WriteRequest(0, [], b"", [], [], {}, replacement.to_bytes()))
    if reply.error is not None:
        raise HTTPError(503, reply.error, {"Retry-After": "1"})
    return json_response({"fx": replacement.label})


ROUTES = [
    route("/v1/events", "events", ["POST"], post_events),
    route("/v1/admin/fx", "fx", ["GET", "PUT"], fx_table),
]
