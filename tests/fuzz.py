"""Property-based fuzzing of a running server: hostile event bodies, native documents, queries,
and every endpoint of `/openapi.json` through schemathesis. The property: no 5xx, no crash.

Hypothesis draws each input from strategies that mix valid values with the values that have
hurt before (bounds, encodings, nesting, numbers Python reads too generously); schemathesis
draws requests from the OpenAPI schema and checks the answers against it. `Tally` counts
what was sent and what came back. `tests/test_fuzz.py` runs a small subset in `make test`;
`make fuzz` runs `python tests/fuzz.py` (>= 100,000 bodies and requests, counts printed).
"""

from __future__ import annotations

import argparse
import datetime as dt
import gzip
import json
import struct
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import msgspec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from staystream.events.columns import MEDIA_TYPE

TODAY = dt.date.today()
NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)
OTA_NS = "http://www.opentravel.org/OTA/2003/05"
EQC_NS = "http://www.expediaconnect.com/EQC/AR/2011/06"
SETTINGS = {"deadline": None, "database": None, "derandomize": False,
            "suppress_health_check": list(HealthCheck)}

# -- values ---------------------------------------------------------------------------------------

EDGE_TEXT = ["", " ", "\x00", "\u0663", "1_0", "NaN", "-0", "Infinity", "1e999999", "9" * 400, "\ufeff",
             "0001-01-01T00:00:00+23:59", "9999-12-31", "0000-00-00", "2026-02-30", "\u202e", "a/b", "%0A"]
EDGE_STAMPS = ["1970-01-01T00:00:00Z", "1969-12-31T23:59:59.999999Z", "0001-01-01T00:00:00+23:59",
               "9999-12-31T23:59:59-23:59", "2026-12-31T23:59:60Z", "2026-01-01T00:00:00",
               "2026-01-01T00:00:00.123456789Z",
               "2026-01-01T00:00:00+24:00", "2026-W01-1T00:00:00Z"]


def recent_stamps() -> st.SearchStrategy[str]:
    return st.integers(-10**8, 3600 * 2).map(lambda s: (NOW + dt.timedelta(seconds=s)).isoformat())


def days() -> st.SearchStrategy[str]:
    return st.integers(-4000, 4000).map(lambda d: (TODAY + dt.timedelta(days=d)).isoformat())


junk = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=6,
)
hostile = st.one_of(st.sampled_from(EDGE_TEXT), st.text(max_size=30), st.integers(), st.floats(),
                    st.sampled_from([2**63, -(2**63) - 1, 10**40]), junk)


def value(valid: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Mostly a valid value, sometimes a hostile one."""
    return st.one_of(valid, valid, valid, hostile)


SOURCES = st.sampled_from(["airbnb", "vrbo", "booking", " AIRBNB ", "x" * 33, "bad source"])
IDS = st.one_of(st.text(min_size=1, max_size=12), st.integers(), st.sampled_from(["fz-1", "fz-2", "fz-3"]))
STAMPS = st.one_of(recent_stamps(), st.sampled_from(EDGE_STAMPS))

rate_event = st.fixed_dictionaries(
    {"type": st.just("rate"), "source": value(SOURCES), "listing_id": value(IDS), "start": value(days()),
     "end": value(days()), "currency": value(st.sampled_from(["EUR", "usd", "JPY", "KWD", "XXX", "ZZZ"])),
     "changed_at": value(STAMPS)},
    optional={"price": value(st.one_of(st.decimals(allow_nan=True).map(str), st.floats(0, 10**6),
                                       st.integers(0, 10**7))),
              "available": value(st.booleans()), "min_nights": value(st.integers(-5, 2000))},
)
listing_event = st.fixed_dictionaries(
    {"type": st.just("listing"), "source": value(SOURCES), "listing_id": value(IDS),
     "name": value(st.text(max_size=30)),
     "kind": value(st.sampled_from(["apartment", "house", "hotel_room", "castle"])),
     "lat": value(st.floats(-90, 90)), "lon": value(st.floats(-180, 180)), "max_guests": value(st.integers(-1, 600)),
     "changed_at": value(STAMPS)},
    optional={"country": value(st.sampled_from(["FR", "fr", "XX"])), "bedrooms": value(st.integers(-1, 200)),
              "url": value(st.sampled_from(["https://x.test/1", "javascript:alert(1)"])),
              "property_id": value(IDS), "city": value(st.text(max_size=20))},
)
delist_event = st.fixed_dictionaries({"type": st.just("delist"), "source": value(SOURCES), "listing_id": value(IDS),
                                      "changed_at": value(STAMPS)})
any_event = st.one_of(rate_event, rate_event, listing_event, delist_event,
                      st.dictionaries(st.sampled_from(["type", "source", "listing_id", "changed_at"]), hostile))


@st.composite
def event_bodies(draw: st.DrawFn) -> tuple[bytes, dict[str, str]]:
    """A `POST /v1/events` body and its headers."""
    events = draw(st.lists(any_event, min_size=0, max_size=12))
    shape = draw(st.sampled_from(["ndjson", "array", "raw", "nested"]))
    if shape == "ndjson":
        body = b"\n".join(json.dumps(e).encode() for e in events)
    elif shape == "array":
        body = json.dumps(events).encode()
    elif shape == "nested":
        depth = draw(st.integers(1, 5000))
        body = b"[" * depth + b"]" * draw(st.integers(0, depth))
    else:
        body = draw(st.binary(max_size=200))
    headers = {"content-type": draw(st.sampled_from(
        ["application/x-ndjson", "application/json", "", "text/plain", "application/x-www-form-urlencoded"]))}
    if draw(st.integers(0, 5)) == 0:
        body = gzip.compress(body) * draw(st.integers(1, 3))
        cut = draw(st.integers(0, 3))
        body = body[: len(body) - cut]
        headers["content-encoding"] = draw(st.sampled_from(["gzip", "gzip", "br", "GZIP"]))
    return body, {k: v for k, v in headers.items() if v}


def _attr(valid: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return value(valid).map(lambda v: str(v).replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;"))


@st.composite
def ota_documents(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(["rate", "avail", "junk"]))
    stamp = draw(_attr(STAMPS))
    start, end = draw(_attr(days())), draw(_attr(days()))
    if kind == "rate":
        amount = draw(_attr(st.decimals(0, 10**6, allow_nan=False).map(str)))
        places = draw(_attr(st.integers(-3, 30).map(str)))
        body = (f'<OTA_HotelRateAmountNotifRQ xmlns="{OTA_NS}" TimeStamp="{stamp}" Version="3.0">'
                f'<RateAmountMessages HotelCode="{draw(_attr(st.sampled_from(["H1", "H2"])))}"><RateAmountMessage>'
                f'<StatusApplicationControl Start="{start}" End="{end}" InvTypeCode="R" RatePlanCode="P"/>'
                f'<Rates><Rate CurrencyCode="{draw(_attr(st.sampled_from(["EUR", "JPY", "QQQ"])))}"><BaseByGuestAmts>'
                f'<BaseByGuestAmt AmountAfterTax="{amount}" DecimalPlaces="{places}"/></BaseByGuestAmts></Rate></Rates>'
                f'</RateAmountMessage></RateAmountMessages></OTA_HotelRateAmountNotifRQ>')
    elif kind == "avail":
        body = (f'<OTA_HotelAvailNotifRQ xmlns="{OTA_NS}" TimeStamp="{stamp}"><AvailStatusMessages HotelCode="H1">'
                f'<AvailStatusMessage><StatusApplicationControl Start="{start}" End="{end}" InvTypeCode="R"/>'
                f'<RestrictionStatus Status="{draw(_attr(st.sampled_from(["Open", "Close"])))}"/>'
                f'<LengthsOfStay><LengthOfStay MinMaxMessageType="SetMinLOS" '
                f'Time="{draw(_attr(st.integers(-2, 5000).map(str)))}"/>'
                f'</LengthsOfStay></AvailStatusMessage></AvailStatusMessages></OTA_HotelAvailNotifRQ>')
    else:
        body = draw(st.text(max_size=200))
    return _declared(draw, body)


@st.composite
def expedia_documents(draw: st.DrawFn) -> bytes:
    start, end = draw(_attr(days())), draw(_attr(days()))
    body = (f'<AvailRateUpdateRQ xmlns="{EQC_NS}"><Authentication username="u" password="p"/>'
            f'<Hotel id="{draw(_attr(st.sampled_from(["1234567", "1"])))}"/><AvailRateUpdate>'
            f'<DateRange from="{start}" to="{end}" sun="{draw(_attr(st.sampled_from(["true", "false"])))}"/>'
            f'<RoomType id="200001" closed="{draw(_attr(st.sampled_from(["true", "false"])))}">'
            f'<Inventory totalInventoryAvailable="{draw(_attr(st.integers(-5, 10).map(str)))}"/>'
            f'<RatePlan id="300001A"><Rate currency="{draw(_attr(st.sampled_from(["USD", "EUR", "ABC"])))}">'
            f'<PerOccupancy rate="{draw(_attr(st.decimals(0, 10**6, allow_nan=False).map(str)))}" '
            f'occupancy="2"/></Rate>'
            f'<Restrictions minLOS="{draw(_attr(st.integers(-1, 3000).map(str)))}"/></RatePlan></RoomType>'
            f'</AvailRateUpdate></AvailRateUpdateRQ>')
    return _declared(draw, body)


def _declared(draw: st.DrawFn, body: str) -> bytes:
    """The document with an XML declaration (any encoding, true or not) encoded some way."""
    declared = draw(st.sampled_from([None, "UTF-8", "utf-16", "utf-32", "shift_jis", "utf-7", "big5", "latin-1",
                                     "ebcdic-cp-us", "no-such"]))
    actual = draw(st.sampled_from(["utf-8", "utf-16", "latin-1", "utf-32"]))
    text = (f'<?xml version="1.0" encoding="{declared}"?>' if declared else "") + body
    return text.encode(actual, errors="replace")


ICAL_PROPERTIES = st.sampled_from([
    "DTSTART;VALUE=DATE:{d}", "DTEND;VALUE=DATE:{d}", "DTSTART:{d}T120000Z", "DTEND:{d}T100000",
    "DTSTART;TZID=Europe/Paris:{d}T150000", "DURATION:P{n}D", "DURATION:PT{n}H", "RRULE:FREQ=DAILY",
    "STATUS:CANCELLED", "UID:{t}", "SUMMARY:{t}", "X-WR-TIMEZONE:{t}", "{t}",
])


@st.composite
def ical_requests(draw: st.DrawFn) -> tuple[bytes, dict[str, str]]:
    lines = ["BEGIN:VCALENDAR"]
    for _ in range(draw(st.integers(0, 6))):
        lines.append("BEGIN:VEVENT")
        for template in draw(st.lists(ICAL_PROPERTIES, max_size=5)):
            day = draw(st.one_of(st.dates().map(lambda d: f"{d.year:04d}{d.month:02d}{d.day:02d}"),
                                 st.sampled_from(["99991231", "00010101", "20261301", ""])))
            lines.append(template.format(d=day, n=draw(st.integers(0, 10**9)), t=draw(st.text(max_size=20))))
        if draw(st.booleans()):
            lines.append("END:VEVENT")
    if draw(st.booleans()):
        lines.append("END:VCALENDAR")
    text = "\r\n".join(lines)
    if draw(st.booleans()):
        text = text.replace("\r\n", "\r\n ", draw(st.integers(0, 3)))  # folded lines
    params = draw(st.dictionaries(st.sampled_from(["start", "end", "currency", "empty_ok"]),
                                  st.one_of(days(), st.sampled_from(EDGE_TEXT + ["9999-12-31", "0001-01-01"])),
                                  max_size=3))
    return text.encode("utf-8", errors="replace"), params


search_params = st.dictionaries(
    st.sampled_from(["lat", "lon", "radius_km", "bbox", "checkin", "checkout", "guests", "kind", "min_price",
                     "max_price", "currency", "sort", "limit", "cursor", "other"]),
    st.one_of(st.sampled_from(["48.85", "2.35", "5", "2,48,3,49", "EUR", "total", "1", "20"]), days(),
              hostile.map(str)),
    max_size=10,
).map(lambda p: {"lat": "48.85", "lon": "2.35", "checkin": (TODAY + dt.timedelta(days=3)).isoformat(),
                 "checkout": (TODAY + dt.timedelta(days=5)).isoformat(), **p})

# -- running ----------------------------------------------------------------------------------------


@dataclass
class Tally:
    """What was sent and what came back; `failures` keeps the first few 5xx and crashes."""

    bodies: int = 0
    requests: int = 0
    statuses: dict[str, int] = field(default_factory=lambda: {"2xx": 0, "3xx": 0, "4xx": 0, "5xx": 0})
    crashes: int = 0
    schema_mismatches: int = 0
    failures: list[str] = field(default_factory=list)

    def record(self, label: str, response: httpx.Response | None, error: Exception | None = None) -> None:
        self.requests += 1
        if response is None:
            self.crashes += 1
            self._fail(f"{label}: no answer ({error!r})")
            return
        self.statuses[f"{response.status_code // 100}xx"] += 1
        if response.status_code >= 500:
            self._fail(f"{label}: {response.status_code} {response.text[:200]}")

    def _fail(self, message: str) -> None:
        if len(self.failures) < 20:
            self.failures.append(message)

    def line(self) -> str:
        statuses = ", ".join(f"{k} {v}" for k, v in self.statuses.items())
        return (f"bodies {self.bodies}, requests {self.requests}, {statuses}, crashes {self.crashes}, "
                f"schema mismatches {self.schema_mismatches}")


def _send(client: httpx.Client, tally: Tally, label: str, method: str, path: str, **kwargs: Any) -> None:
    try:
        response = client.request(method, path, **kwargs)
    except httpx.TransportError as exc:
        tally.record(label, None, exc)
        return
    tally.record(label, response)


def fuzz_formats(url: str, examples: int, tally: Tally) -> None:
    """`examples` hypothesis-drawn inputs for each of: events, OTA, Expedia, iCal, search."""
    with httpx.Client(base_url=url, timeout=30) as client:

        def run(strategy: st.SearchStrategy[Any], send: Callable[[Any], None]) -> None:
            @settings(max_examples=examples, **SETTINGS)
            @given(strategy)
            def once(drawn: Any) -> None:
                send(drawn)

            once()

        def events(drawn: tuple[bytes, dict[str, str]]) -> None:
            tally.bodies += 1
            _send(client, tally, "events", "POST", "/v1/events", content=drawn[0], headers=drawn[1])

        def native(route: str) -> Callable[[bytes], None]:
            def send(document: bytes) -> None:
                tally.bodies += 1
                _send(client, tally, route, "POST", f"/v1/sources/fuzz/{route}", content=document,
                      headers={"content-type": "text/xml"})
            return send

        def ical(drawn: tuple[bytes, dict[str, str]]) -> None:
            tally.bodies += 1
            _send(client, tally, "ical", "POST", "/v1/sources/fuzz/listings/fz-ical/ical", content=drawn[0],
                  params=drawn[1])

        def search(params: dict[str, str]) -> None:
            _send(client, tally, "search", "GET", "/v1/search", params=params)

        run(event_bodies(), events)
        run(ota_documents(), native("ota"))
        run(expedia_documents(), native("expedia"))
        run(ical_requests(), ical)
        run(search_params, search)


def rate_columns() -> st.SearchStrategy[bytes]:
    """Bodies of `/v1/bulk/rates`: the fields of `RateColumns` for 0 to 4 events, small tables
    (names, codes and prices good and bad) and values around their bounds."""

    def packed(code: str, n: int, values: st.SearchStrategy[int]) -> st.SearchStrategy[bytes]:
        return st.lists(values, min_size=n, max_size=n).map(lambda v: struct.pack(f"<{n}{code}", *v))

    today = (TODAY - dt.date(1970, 1, 1)).days
    now = int((NOW - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)).total_seconds()) * 1_000_000
    day = st.integers(today - 3000, today + 800) | st.integers(-(2**31), 2**31 - 1)

    def body(n: int) -> st.SearchStrategy[bytes]:
        return st.builds(
            lambda **fields: msgspec.msgpack.encode(fields),
            listings=st.lists(st.tuples(st.sampled_from(["airbnb", "AIRBNB", "", "x y"]), st.text(max_size=6)),
                              min_size=1, max_size=3),
            currencies=st.lists(st.sampled_from(["EUR", "SGD", " eur ", "XXX", ""]), min_size=1, max_size=2),
            prices=st.lists(st.sampled_from(["129.00", "1e3", "-1", "NaN", "1.234", "", "x"]), max_size=3),
            listing=packed("i", n, st.integers(-1, 3)), start=packed("i", n, day), end=packed("i", n, day),
            currency=packed("i", n, st.integers(-1, 2)), price=packed("i", n, st.integers(-2, 3)),
            available=packed("B", n, st.integers(0, 2)), min_nights=packed("i", n, st.integers(-1, 2000)),
            changed_at=packed("q", n, st.integers(now - 10**13, now + 10**12) | st.integers(-(2**63), 2**63 - 1)),
        )

    return st.integers(0, 4).flatmap(body)


def fuzz_openapi(url: str, examples: int, tally: Tally) -> None:
    """Every operation of `/openapi.json`, `examples` schemathesis cases each: no 5xx, and every
    answer matches the schema (status, content type, body)."""
    import schemathesis
    from schemathesis.checks import not_a_server_error
    from schemathesis.specs.openapi.checks import (
        content_type_conformance,
        response_schema_conformance,
        status_code_conformance,
    )

    # schemathesis has no msgpack: the importer's rate columns are raw bytes and maps of its fields
    schemathesis.openapi.media_type(MEDIA_TYPE, st.one_of(st.binary(max_size=256), rate_columns()))
    schema = schemathesis.openapi.from_url(f"{url}/openapi.json")
    checks = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
    for result in schema.get_all_operations():
        operation = result.ok()
        _fuzz_operation(operation, f"{operation.method.upper()} {operation.path}", url, examples, checks, tally)


def _fuzz_operation(operation: Any, label: str, url: str, examples: int, checks: list[Any], tally: Tally) -> None:
    @settings(max_examples=examples, **SETTINGS)
    @given(operation.as_strategy())
    def once(case: Any) -> None:
        if case.body is not None:
            tally.bodies += 1
        try:
            response = case.call(base_url=url, timeout=30)
        except Exception as exc:  # a connection the server dropped: a crash
            tally.record(label, None, exc)
            return
        tally.record(label, httpx.Response(response.status_code, text=""))
        try:
            case.validate_response(response, checks=checks)
        except Exception as exc:
            tally.schema_mismatches += 1
            tally._fail(f"{label}: {str(exc)[:300]}")

    once()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--examples", type=int, default=16_000, help="inputs per format (5 formats)")
    parser.add_argument("--openapi-examples", type=int, default=4_000, help="schemathesis cases per operation")
    parser.add_argument("--url", help="a running server (default: start one)")
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).parent))
    from conftest import start_server

    server = None
    if args.url is None:
        import tempfile

        server = start_server(Path(tempfile.mkdtemp(prefix="staystream-fuzz-")) / "var")
    url = args.url or server.url  # type: ignore[union-attr]
    tally = Tally()
    started = time.monotonic()
    try:
        fuzz_formats(url, args.examples, tally)
        print(f"formats ({time.monotonic() - started:.0f} s): {tally.line()}", flush=True)
        for failure in tally.failures:
            print("  " + failure, flush=True)
        fuzz_openapi(url, args.openapi_examples, tally)
        with httpx.Client(base_url=url) as client:
            alive = client.get("/healthz").status_code == 200
    finally:
        log = server.log() if server is not None else ""
        if server is not None:
            server.stop()
    unexpected = log.count("unexpected error") + log.count("worker exited")
    tally.crashes += unexpected + (0 if alive else 1)
    print(f"total ({time.monotonic() - started:.0f} s): {tally.line()}")
    for failure in tally.failures:
        print("  " + failure)
    return 1 if tally.statuses["5xx"] or tally.crashes or tally.schema_mismatches else 0


if __name__ == "__main__":
    raise SystemExit(main())
