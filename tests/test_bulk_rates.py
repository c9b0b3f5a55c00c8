"""`POST /v1/bulk/rates`: rate events as columns, against a real server.

The same events go once as NDJSON to `/v1/events` and once as columns (under other listing
ids): the answers (accepted, every rejection's index and message) and the calendars stored
must be the same. Then the errors of a body that is not a columns body.
"""

from __future__ import annotations

import datetime as dt
import gzip
import re

import httpx
import msgspec

from conftest import Server
from staystream.events.columns import MEDIA_TYPE, RateColumns, RateColumnsBuilder
from wire_events import CLOCK_BASE, NDJSON, TODAY, unique_id

COLUMNS = {"content-type": MEDIA_TYPE}


def _events(a: str, b: str) -> list[dict[str, object]]:
    """Good events, events the checks refuse, and events they accept once normalized."""
    def rate(listing: str, first: int, nights: int, **fields: object) -> dict[str, object]:
        return {"source": "airbnb", "listing_id": listing, "start": TODAY + dt.timedelta(days=first),
                "end": TODAY + dt.timedelta(days=first + nights), "currency": "EUR", "price": "129.00",
                "available": True, "min_nights": 2, "changed_at": CLOCK_BASE, **fields}

    return [
        rate(a, 0, 7),
        rate(a, 7, 3, price="99.5", min_nights=1),
        rate(b, 0, 30, price=None, available=False),
        rate(a, 10, 2, currency="XXX"),  # not a currency
        rate(a, 12, 2, price="1.234"),  # more decimals than EUR has
        rate(b, 30, 2, price=None),  # available without a price
        rate(a, 14, 600),  # more nights than an event may hold
        rate(a, 20, 0),  # end not after start
        rate(b, 40, 2, min_nights=0),
        rate(b, 42, 2, changed_at=CLOCK_BASE + dt.timedelta(days=30)),  # from the future
        rate(b, 44, 2, price="1e3"),  # a decimal, exactly 1000
        rate(b, 46, 2, price="١٢"),  # not ASCII digits
        rate(a, 50, 3, currency=" eur "),  # normalized: accepted
        rate(b, 53, 3, source="AIRBNB"),  # normalized: accepted
        rate(a, 60, 2, listing_id=" "),  # no listing id
        rate(b, 62, 2, price="1000000000"),  # over the ceiling
        rate(a, 64, 2, start=dt.date(2001, 1, 1), end=dt.date(2001, 1, 3)),  # before the earliest night
        rate(b, 66, 2, price="0"),
    ]


def _ndjson(events: list[dict[str, object]]) -> bytes:
    return b"".join(msgspec.json.encode({"type": "rate", **event}) + b"\n" for event in events)


def _columns(events: list[dict[str, object]]) -> bytes:
    builder = RateColumnsBuilder()
    for event in events:
        builder.add(**event)  # type: ignore[arg-type]
    return builder.encode()


def _clockless(reply: dict[str, object]) -> dict[str, object]:
    """A reply without the server clock a `changed_at` rejection names (the two posts may straddle a second)."""
    rejected = [{**r, "error": re.sub(r"\(\d{4}-[^)]*\)$", "(clock)", r["error"])}
                for r in reply["rejected"]]  # type: ignore[attr-defined]
    return {**reply, "rejected": rejected}


def _calendar(server: Server, listing: str) -> list[dict[str, object]]:
    end = TODAY + dt.timedelta(days=120)
    response = httpx.get(f"{server.url}/v1/listings/airbnb/{listing}/calendar", params={
        "start": TODAY.isoformat(), "end": end.isoformat()})
    assert response.status_code == 200, response.text
    return response.json()["nights"]  # type: ignore[no-any-return]


def test_columns_are_stored_and_rejected_as_ndjson_is(server: Server) -> None:
    json_a, json_b, bulk_a, bulk_b = (unique_id(name) for name in ("json-a", "json-b", "bulk-a", "bulk-b"))
    by_json = httpx.post(f"{server.url}/v1/events", content=_ndjson(_events(json_a, json_b)), headers=NDJSON)
    by_columns = httpx.post(f"{server.url}/v1/bulk/rates", content=gzip.compress(_columns(_events(bulk_a, bulk_b))),
                            headers={**COLUMNS, "content-encoding": "gzip", "x-staystream-bulk": "1"})
    assert by_json.status_code == by_columns.status_code == 200, (by_json.text, by_columns.text)
    assert by_columns.json()["accepted"] == 7
    assert [r["index"] for r in by_columns.json()["rejected"]] == [3, 4, 5, 6, 7, 8, 9, 11, 14, 15, 16]
    assert _clockless(by_columns.json()) == _clockless(by_json.json())
    for json_listing, bulk_listing in ((json_a, bulk_a), (json_b, bulk_b)):
        assert _calendar(server, bulk_listing) == _calendar(server, json_listing)
    assert len(_calendar(server, bulk_a)) == 13 and len(_calendar(server, bulk_b)) == 37


def test_a_body_that_is_not_columns(server: Server) -> None:
    url = f"{server.url}/v1/bulk/rates"
    good = msgspec.msgpack.decode(_columns(_events(unique_id("c"), unique_id("d"))[:3]), type=RateColumns)

    def post(columns: RateColumns) -> httpx.Response:
        return httpx.post(url, content=msgspec.msgpack.encode(columns), headers=COLUMNS)

    wrong_type = httpx.post(url, content=_ndjson(_events("e", "f")), headers=NDJSON)
    assert wrong_type.status_code == 415 and MEDIA_TYPE in wrong_type.json()["error"]
    garbage = httpx.post(url, content=b"\xc1 not msgpack", headers=COLUMNS)
    assert garbage.status_code == 400 and "rate columns" in garbage.json()["error"]
    short = post(msgspec.structs.replace(good, end=good.end[:-4]))
    assert short.status_code == 400
    assert short.json()["error"] == "end: 2 values; expected 3, one per event as in 'listing'"
    ragged = post(msgspec.structs.replace(good, changed_at=good.changed_at[:-1]))
    assert ragged.status_code == 400 and "changed_at: 23 bytes" in ragged.json()["error"]
    unknown = post(msgspec.structs.replace(good, currency=(7).to_bytes(4, "little") * 3))
    assert unknown.status_code == 400
    assert unknown.json()["error"] == "currency: 7 at event 0 is out of range; expected 0 to 0"
    assert post(good).status_code == 200
