"""Malformed bodies and events: each gets a clear error naming field, value and expectation.

A bad event is rejected alone (its valid siblings are stored); a body that cannot be read at all
is a 400. Nothing a client sends may produce a 500 or take the server down.
"""

from __future__ import annotations

import datetime as dt
import gzip
import json
import re

import httpx
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from wire_events import JSON, NDJSON, TODAY, calendar, listing, night, nights, post, post_ok, rate, unique_id

FUTURE = (dt.datetime.now(dt.UTC) + dt.timedelta(days=2)).isoformat()
# How a message says what would have been accepted: "expected ...", "is not one of ...",
# "is not an ISO 4217 currency code", "invalid RFC3339 encoded date", "more decimals than EUR allows",
# a named ceiling or bound.
EXPECTATION = re.compile(
    r"expected|is not (a|an|one of) |invalid |ceiling of|earliest night|horizon of|than \w+ allows"
)
# Every rejection starts with what it is about: a field, or the event as a whole.
NAMED = re.compile(r"([a-z_]+|event is not valid JSON): ")


def assert_rejected_alone(client: httpx.Client, bad: object, field: str, shown: str) -> str:
    """Post `bad` between two valid events; it alone is rejected, with a message that says enough."""
    listing_id = unique_id("bad")
    events = [rate(listing_id, 1, 2, "10.00"), bad, rate(listing_id, 2, 3, "20.00")]
    response = client.post("/v1/events", content=b"\n".join(json.dumps(e).encode() for e in events),
                           headers=NDJSON)
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["accepted"] == 2, result
    [rejection] = result["rejected"]
    assert rejection["index"] == 1
    error = rejection["error"]
    assert error.startswith(f"{field}:"), error
    assert shown in error, f"the value {shown!r} is not in {error!r}"
    assert EXPECTATION.search(error), f"no expectation in {error!r}"
    assert set(nights(client, listing_id)) == {night(1), night(2)}
    return error


def valid_rate(**changes: object) -> dict[str, object]:
    return {**rate("bad-input-target", 5, 7, "50.00"), **changes}


def without(event: dict[str, object], name: str) -> dict[str, object]:
    return {key: value for key, value in event.items() if key != name}


RATE_CASES = [
    ("start-not-a-date", valid_rate(start="2026-02-30"), "start", "2026-02-30"),
    ("start-words", valid_rate(start="tomorrow"), "start", "tomorrow"),
    ("start-number", valid_rate(start=20261201), "start", "20261201"),
    ("end-missing", without(valid_rate(), "end"), "end", "missing"),
    ("end-equals-start", valid_rate(end=night(5)), "end", night(5)),
    ("end-before-start", valid_rate(end=night(4)), "end", night(4)),
    ("551-nights", valid_rate(start=night(1), end=night(552)), "end", "551"),
    ("past-horizon", valid_rate(start=night(700), end=night(800)), "end", night(800)),
    ("before-earliest-night", valid_rate(start="2014-12-31", end="2015-01-02"), "start", "2014-12-31"),
    ("price-nan", valid_rate(price="NaN"), "price", "NaN"),
    ("price-snan", valid_rate(price="sNaN"), "price", "sNaN"),
    ("price-infinity", valid_rate(price="Infinity"), "price", "Infinity"),
    ("price-negative", valid_rate(price="-1"), "price", "-1"),
    ("price-negative-number", valid_rate(price=-0.01), "price", "-0.01"),
    ("price-above-ceiling", valid_rate(price="1000000"), "price", "1000000"),
    ("price-astronomical", valid_rate(price="1e30"), "price", "1E+30"),
    ("price-beyond-decimal-range", valid_rate(price="1e999999999"), "price", "1E+999999999"),
    ("price-huge-exponent", valid_rate(price="1e1000000"), "price", "1E+1000000"),
    ("price-slow-to-convert", valid_rate(price="1e999000"), "price", "1E+999000"),
    ("price-tiny", valid_rate(price="1e-999999999"), "price", "1E-999999999"),
    ("price-too-precise", valid_rate(price="1.00000000000000000000000000001"), "price",
     "1.00000000000000000000000000001"),
    ("price-words", valid_rate(price="cheap"), "price", "cheap"),
    ("price-bool", valid_rate(price=True), "price", "True"),
    ("price-list", valid_rate(price=[1]), "price", "[1]"),
    ("price-missing", without(valid_rate(), "price"), "price", "missing"),
    ("currency-unknown", valid_rate(currency="EURO"), "currency", "EURO"),
    ("currency-gold", valid_rate(currency="XAU"), "currency", "XAU"),
    ("currency-symbol", valid_rate(currency="\u20ac"), "currency", "\u20ac"),
    ("currency-empty", valid_rate(currency=""), "currency", "''"),
    ("currency-number", valid_rate(currency=978), "currency", "978"),
    ("source-space", valid_rate(source="air bnb"), "source", "air bnb"),
    ("source-empty", valid_rate(source=""), "source", "''"),
    ("source-too-long", valid_rate(source="a" * 33), "source", "a" * 33),
    ("source-punctuation", valid_rate(source="airbnb!"), "source", "airbnb!"),
    ("source-missing", without(valid_rate(), "source"), "source", "missing"),
    ("listing-id-too-long", valid_rate(listing_id="x" * 129), "listing_id", "x" * 129),
    ("listing-id-control", valid_rate(listing_id="a\x01b"), "listing_id", "a\\x01b"),
    ("listing-id-newline", valid_rate(listing_id="a\nb"), "listing_id", "a\\nb"),
    ("listing-id-empty", valid_rate(listing_id=""), "listing_id", "''"),
    ("listing-id-blank", valid_rate(listing_id="   "), "listing_id", "'   '"),
    ("listing-id-float", valid_rate(listing_id=1.5), "listing_id", "1.5"),
    ("listing-id-null", valid_rate(listing_id=None), "listing_id", "None"),
    ("min-nights-zero", valid_rate(min_nights=0), "min_nights", "0"),
    ("min-nights-negative", valid_rate(min_nights=-3), "min_nights", "-3"),
    ("min-nights-huge", valid_rate(min_nights=10**30), "min_nights", str(10**30)),
    ("min-nights-text", valid_rate(min_nights="2"), "min_nights", "'2'"),
    ("available-text", valid_rate(available="yes"), "available", "yes"),
    ("changed-at-naive", valid_rate(changed_at="2026-01-01T08:00:00"), "changed_at", "2026-01-01T08:00:00"),
    ("changed-at-words", valid_rate(changed_at="yesterday"), "changed_at", "yesterday"),
    ("changed-at-number", valid_rate(changed_at=1764000000), "changed_at", "1764000000"),
    ("changed-at-future", valid_rate(changed_at=FUTURE), "changed_at", FUTURE[:19]),
    ("changed-at-missing", without(valid_rate(), "changed_at"), "changed_at", "missing"),
    ("type-capitalized", valid_rate(type="Rate"), "type", "Rate"),
    ("type-unknown", valid_rate(type="teleport"), "type", "teleport"),
    ("type-null", valid_rate(type=None), "type", "None"),
    ("type-missing", without(valid_rate(), "type"), "type", "missing"),
]


@pytest.mark.parametrize(("bad", "field", "shown"), [case[1:] for case in RATE_CASES],
                         ids=[case[0] for case in RATE_CASES])
def test_bad_rate_event_is_rejected_alone(server, bad: object, field: str, shown: str) -> None:
    with server.client() as client:
        assert_rejected_alone(client, bad, field, shown)


def valid_listing(**changes: object) -> dict[str, object]:
    return {**listing("bad-listing-target", lat=1.5, lon=2.5), **changes}


LISTING_CASES = [
    ("kind-unknown", valid_listing(kind="castle"), "kind", "castle"),
    ("lat-above", valid_listing(lat=91), "lat", "91"),
    ("lat-below", valid_listing(lat=-90.5), "lat", "-90.5"),
    ("lon-above", valid_listing(lon=181), "lon", "181"),
    ("lon-below", valid_listing(lon=-180.01), "lon", "-180.01"),
    ("lat-text", valid_listing(lat="45.1"), "lat", "45.1"),
    ("lat-missing", without(valid_listing(), "lat"), "lat", "missing"),
    ("max-guests-zero", valid_listing(max_guests=0), "max_guests", "0"),
    ("max-guests-huge", valid_listing(max_guests=50_000), "max_guests", "50000"),
    ("name-empty", valid_listing(name=""), "name", "''"),
    ("name-blank", valid_listing(name="  \t "), "name", "''"),
    ("name-too-long", valid_listing(name="n" * 501), "name", "501"),
    ("country-unknown", valid_listing(country="XX"), "country", "XX"),
    ("url-not-http", valid_listing(url="ftp://example.com/x"), "url", "ftp://example.com/x"),
    ("bedrooms-negative", valid_listing(bedrooms=-1), "bedrooms", "-1"),
    ("listing-changed-at-naive", valid_listing(changed_at="2026-01-01 08:00:00"), "changed_at", "2026-01-01"),
]


@pytest.mark.parametrize(("bad", "field", "shown"), [case[1:] for case in LISTING_CASES],
                         ids=[case[0] for case in LISTING_CASES])
def test_bad_listing_event_is_rejected_alone(server, bad: object, field: str, shown: str) -> None:
    with server.client() as client:
        assert_rejected_alone(client, bad, field, shown)


@pytest.mark.parametrize(("bad", "field", "shown"), [
    ({"type": "delist", "source": "airbnb", "listing_id": "x"}, "changed_at", "missing"),
    ({"type": "delist", "source": "AIR BNB", "listing_id": "x", "changed_at": "2026-01-01T00:00:00Z"},
     "source", "AIR BNB"),
], ids=["changed-at-missing", "source-invalid"])
def test_bad_delist_event_is_rejected_alone(server, bad: object, field: str, shown: str) -> None:
    with server.client() as client:
        assert_rejected_alone(client, bad, field, shown)


@pytest.mark.parametrize("line", [b"42", b'"rate"', b"[1, 2]", b"null", b"true"],
                         ids=["number", "string", "array", "null", "bool"])
def test_non_object_line_is_rejected_alone(server, line: bytes) -> None:
    listing_id = unique_id("nonobject")
    body = json.dumps(rate(listing_id, 1, 2)).encode() + b"\n" + line + b"\n"
    for headers, content in ((NDJSON, body), (JSON, b"[" + body.replace(b"\n", b",").rstrip(b",") + b"]")):
        with server.client() as client:
            result = client.post("/v1/events", content=content, headers=headers).json()
        assert result["accepted"] == 1, result
        [rejection] = result["rejected"]
        assert rejection["index"] == 1 and rejection["error"].startswith("event:"), rejection
        assert "object" in rejection["error"]


@pytest.mark.parametrize("line", [b'{"type": "rate", "source": ', b"{'type': 'rate'}", b"\xff\xfe{}",
                                  b'{"type": "delist", "source": "a", "listing_id": "b", "changed_at": '
                                  b'"2026-01-01T00:00:00Z"} x'],
                         ids=["truncated", "single-quotes", "not-utf8", "trailing-garbage"])
def test_invalid_json_line_rejects_only_that_event(server, line: bytes) -> None:
    listing_id = unique_id("badjson")
    good = json.dumps(rate(listing_id, 1, 2)).encode()
    with server.client() as client:
        result = client.post("/v1/events", content=b"\n".join([good, line, good]), headers=NDJSON).json()
        assert result["accepted"] == 2, result
        [rejection] = result["rejected"]
        assert rejection["index"] == 1 and "JSON" in rejection["error"], rejection
        assert len(nights(client, listing_id)) == 1


def test_historical_nights_after_earliest_night_are_kept(server) -> None:
    listing_id = unique_id("history")
    with server.client() as client:
        post_ok(client, [rate(listing_id, 0, 1, "1.00") | {"start": "2015-01-01", "end": "2015-01-03"},
                         rate(listing_id, 0, 1, "2.00") | {"start": "2019-06-30", "end": "2019-07-01"}])
        stored = calendar(client, listing_id).json()["nights"]
    assert [(n["night"], n["price"]) for n in stored] == [
        ("2015-01-01", "1.00"), ("2015-01-02", "1.00"), ("2019-06-30", "2.00")]


def test_earliest_night_and_horizon_follow_the_settings(server_factory) -> None:
    configured = server_factory("--earliest-night", "2020-01-01", "--horizon-days", "30")
    listing_id = unique_id("settings")
    last_night = TODAY + dt.timedelta(days=30)
    with configured.client() as client:
        post_ok(client, [rate(listing_id, 0, 1) | {"start": "2020-01-01", "end": "2020-01-02"},
                         rate(listing_id, 30, 31)])
        result = post(client, [rate(listing_id, 0, 1) | {"start": "2019-12-31", "end": "2020-01-02"},
                               rate(listing_id, 30, 32)]).json()
        assert result["accepted"] == 0
        assert [r["error"].split(":")[0] for r in result["rejected"]] == ["start", "end"]
        assert last_night.isoformat() in result["rejected"][1]["error"]
        assert [n["night"] for n in calendar(client, listing_id).json()["nights"]] == [
            "2020-01-01", last_night.isoformat()]


# -- whole bodies --------------------------------------------------------------------------------


def test_truncated_or_bad_gzip_is_400(server) -> None:
    """Truncated anywhere, not gzip, or followed by bytes that are no further gzip member."""
    compressed = gzip.compress(json.dumps(rate(unique_id("gz"), 1, 2)).encode())
    with server.client() as client:
        for body in (compressed[:-8], compressed[: len(compressed) // 2], b"not gzip at all",
                     compressed + b"trailing garbage", compressed + compressed[:10]):
            response = client.post("/v1/events", content=body, headers={**NDJSON, "content-encoding": "gzip"})
            assert response.status_code == 400, response.text
            assert "gzip" in response.json()["error"]


def test_empty_bodies(server) -> None:
    """An empty NDJSON stream holds no events; an empty body is no JSON array."""
    with server.client() as client:
        for body in (b"", b"\n\n  \n"):
            response = client.post("/v1/events", content=body, headers=NDJSON)
            assert response.json() == {"accepted": 0, "rejected": []}
        response = client.post("/v1/events", content=b"", headers=JSON)
        assert response.status_code == 400 and "array" in response.json()["error"]
        assert client.post("/v1/events", content=b"[]", headers=JSON).json() == {"accepted": 0, "rejected": []}


# -- fuzz ----------------------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3),
    max_leaves=8,
)
field_names = st.sampled_from(["type", "source", "listing_id", "start", "end", "price", "currency", "changed_at",
                               "available", "min_nights", "name", "kind", "lat", "lon", "max_guests", "bedrooms",
                               "country", "url", "city", "property_id"])
base_events = st.sampled_from([valid_rate(listing_id="fuzz"), valid_listing(listing_id="fuzz"),
                               {"type": "delist", "source": "airbnb", "listing_id": "fuzz",
                                "changed_at": "2026-01-01T00:00:00Z"}])


@st.composite
def mutated_events(draw: st.DrawFn) -> dict[str, object]:
    """A valid event with a few fields replaced by arbitrary JSON values or removed."""
    event = dict(draw(base_events))
    for name in draw(st.lists(field_names, min_size=1, max_size=3)):
        if draw(st.booleans()):
            event[name] = draw(json_values)
        else:
            event.pop(name, None)
    return event


lines = st.one_of(
    mutated_events().map(lambda event: json.dumps(event).encode()),
    json_values.map(lambda value: json.dumps(value).encode()),
    st.binary(max_size=40).filter(lambda raw: b"\n" not in raw),
)
bodies = st.tuples(st.lists(lines, max_size=6), st.sampled_from(["application/x-ndjson", "application/json", ""]),
                   st.booleans())


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=bodies)
@example(body=([b"[]"], "", False))  # no content type and a leading "[": an empty JSON array
def test_fuzz_never_breaks_the_server(server, body: tuple[list[bytes], str, bool]) -> None:
    event_lines, content_type, as_array = body
    content = b"[" + b",".join(event_lines) + b"]" if as_array else b"\n".join(event_lines)
    headers = {"content-type": content_type} if content_type else {}
    with server.client() as client:
        response = client.post("/v1/events", content=content, headers=headers)
    assert response.status_code in {200, 400, 413, 415}, response.text
    result = response.json()
    if response.status_code != 200:
        assert isinstance(result["error"], str) and result["error"]
        return
    assert set(result) == {"accepted", "rejected"}
    indexes = [r["index"] for r in result["rejected"]]
    assert indexes == sorted(set(indexes))
    sniffed_as_array = not content_type and content.lstrip().startswith(b"[")  # no type: the body says
    if not as_array and content_type != "application/json" and not sniffed_as_array:
        expected_events = len([line for line in content.split(b"\n") if line.strip()])
        assert result["accepted"] + len(indexes) == expected_events
    for rejection in result["rejected"]:
        assert NAMED.match(rejection["error"]), rejection


def test_server_survived_the_fuzz_without_an_internal_error(server) -> None:
    with server.client() as client:
        assert client.get("/healthz").status_code == 200
        assert client.get("/readyz").status_code == 200
    assert "unexpected error" not in server.log()
