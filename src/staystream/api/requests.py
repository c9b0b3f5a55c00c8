"""Reading what a request carries: its body (bounded, gzip or not), its media type, date parameters."""

from __future__ import annotations

import datetime as dt

from starlette.requests import Request

from staystream.api.admission import Hold
from staystream.api.gunzip import gunzip
from staystream.api.responses import HTTPError
from staystream.events import bounds

NDJSON_TYPES = {"application/x-ndjson", "application/jsonl", "application/json-seq", "application/ndjson"}


async def read_body(request: Request, limit: int) -> bytes:
    """The whole body, decompressed; 413 past `limit` bytes before or after gzip, 415 for other encodings."""
    encoding = request.headers.get("content-encoding", "identity").strip().lower()
    if encoding not in ("identity", "gzip", ""):
        raise HTTPError(415, f"content-encoding: '{encoding}' is not supported; expected gzip or none")
    declared = request.headers.get("content-length")
    if declared is not None and declared.isascii() and declared.isdigit() and int(declared) > limit:
        raise HTTPError(413, f"body of {declared} bytes is over the limit of {limit} bytes")
    # charged to the worker's body budget (api/admission.py) through the hold `routing.route` opened
    hold: Hold = getattr(request.state, "hold", None) or Hold.unlimited()
    reserved = int(declared) if declared is not None and declared.isascii() and declared.isdigit() else 0
    hold.charge(reserved)  # refused before reading a byte when the budget cannot take it
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise HTTPError(413, f"body is over the limit of {limit} bytes")
        if size > reserved:
            hold.charge(size - reserved)
            reserved = size
        chunks.append(chunk)
    body = b"".join(chunks)
    if encoding == "gzip":
        hold.charge(limit)  # the inflated copy: at most `limit`, charged before it exists
        body = gunzip(body, limit)
    return body


def is_ndjson(request: Request) -> bool | None:
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


def query_date(request: Request, name: str) -> dt.date | None:
    """The query parameter `name` as a date, None when absent; 400 naming it when it is not one."""
    text = request.query_params.get(name)
    if text is None:
        return None
    try:
        return bounds.query_date(name, text)
    except bounds.Rejected as exc:
        raise HTTPError(400, str(exc)) from None
