"""Wire-contract events and requests for the core-service tests, built the way a connector would.

Nights are relative to today and timestamps to an hour ago, so the tests never walk out of the
server's horizon nor into its clock-skew check as the calendar moves on.
"""

from __future__ import annotations

import datetime as dt
import gzip
import json
import uuid
from collections.abc import Iterable
from urllib.parse import quote

import httpx

TODAY = dt.date.today()
CLOCK_BASE = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(hours=1)
NDJSON = {"content-type": "application/x-ndjson"}
JSON = {"content-type": "application/json"}

Event = dict[str, object]


def night(offset: int) -> str:
    """The ISO date `offset` days after today."""
    return (TODAY + dt.timedelta(days=offset)).isoformat()


def stamp(seconds: float) -> str:
    """RFC 3339 in UTC with milliseconds, `seconds` after the clock base: what the calendar echoes."""
    moment = CLOCK_BASE + dt.timedelta(seconds=seconds)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def unique_id(prefix: str) -> str:
    """A listing id no other test (or earlier run against the same data dir) uses."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def rate(listing_id: str, start: int, end: int, price: object = "100.00", *, changed: float = 0,
         currency: str = "EUR", source: str = "airbnb", **extra: object) -> Event:
    """A `rate` event for nights today+start <= night < today+end."""
    event: Event = {"type": "rate", "source": source, "listing_id": listing_id, "start": night(start),
                    "end": night(end), "currency": currency, "changed_at": stamp(changed), **extra}
    if price is not None:
        event["price"] = price
    return event


def fact(kind: str, listing_id: str, start: int, end: int, *, changed: float = 0, source: str = "airbnb",
         **values: object) -> Event:
    """A one-fact event (`price`, `availability` or `stay_rule`, contract v1.1) for nights
    today+start <= night < today+end; `values` are its fact's fields (`price` and `currency`,
    `available` or `min_nights`)."""
    return {"type": kind, "source": source, "listing_id": listing_id, "start": night(start), "end": night(end),
            **values, "changed_at": stamp(changed)}


def listing(listing_id: str, *, lat: float, lon: float, changed: float = 0, source: str = "airbnb",
            name: str = "Test flat", kind: str = "apartment", max_guests: int = 4, **extra: object) -> Event:
    return {"type": "listing", "source": source, "listing_id": listing_id, "name": name, "kind": kind,
            "lat": lat, "lon": lon, "max_guests": max_guests, "changed_at": stamp(changed), **extra}


def delist(listing_id: str, *, changed: float = 0, source: str = "airbnb") -> Event:
    return {"type": "delist", "source": source, "listing_id": listing_id, "changed_at": stamp(changed)}


def ndjson(events: Iterable[object]) -> bytes:
    return b"".join(json.dumps(event).encode() + b"\n" for event in events)


def post(client: httpx.Client, events: Iterable[object], *, as_array: bool = False,
         gzipped: bool = False, headers: dict[str, str] | None = None) -> httpx.Response:
    """POST /v1/events with the events as NDJSON (or a JSON array), optionally gzipped."""
    events = list(events)
    body = json.dumps(events).encode() if as_array else ndjson(events)
    sent = dict(JSON if as_array else NDJSON)
    if gzipped:
        body = gzip.compress(body)
        sent["content-encoding"] = "gzip"
    sent.update(headers or {})
    return client.post("/v1/events", content=body, headers=sent)


def post_ok(client: httpx.Client, events: Iterable[object], **kwargs: object) -> dict[str, object]:
    """POST that must be a 200 accepting every event; returns the response body."""
    events = list(events)
    response = post(client, events, **kwargs)  # type: ignore[arg-type]
    assert response.status_code == 200, response.text
    result = response.json()
    assert result == {"accepted": len(events), "rejected": []}, result
    return result


def calendar(client: httpx.Client, listing_id: str, start: int | None = None, end: int | None = None,
             *, source: str = "airbnb") -> httpx.Response:
    params = {}
    if start is not None:
        params["start"] = night(start)
    if end is not None:
        params["end"] = night(end)
    return client.get(f"/v1/listings/{quote(source, safe='')}/{quote(listing_id, safe='')}/calendar",
                      params=params)


def nights(client: httpx.Client, listing_id: str, start: int | None = None, end: int | None = None,
           *, source: str = "airbnb") -> dict[str, dict[str, object]]:
    """The calendar's nights keyed by date (the calendar must exist)."""
    response = calendar(client, listing_id, start, end, source=source)
    assert response.status_code == 200, response.text
    return {entry["night"]: entry for entry in response.json()["nights"]}
