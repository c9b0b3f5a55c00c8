"""Wire contract v1 (../shared/docs/contract.md), point by point, against a real server over HTTP.

Each test uses its own listing ids, so they share the module's server and any order works.
"""

from __future__ import annotations

import datetime as dt
import gzip
import json
import random
import re
import threading
import time
import unicodedata
from urllib.parse import quote

import httpx
import pytest

from wire_events import (
    CLOCK_BASE,
    JSON,
    NDJSON,
    calendar,
    delist,
    listing,
    ndjson,
    night,
    nights,
    post,
    post_ok,
    rate,
    stamp,
    unique_id,
)


def json_error(response: httpx.Response, status: int) -> str:
    """The error message of a response that must have `status` and the one JSON error shape."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"} and isinstance(body["error"], str) and body["error"], body
    return body["error"]


def search_ids(client: httpx.Client, lat: float, lon: float, checkin: int, checkout: int) -> set[str]:
    """Listing ids found in a 1 km circle around (lat, lon) for the stay."""
    response = client.get("/v1/search", params={
        "lat": lat, "lon": lon, "radius_km": 1, "checkin": night(checkin), "checkout": night(checkout)})
    assert response.status_code == 200, response.text
    return {result["listing_id"] for result in response.json()["results"]}


def lonely_place(listing_id: str) -> tuple[float, float]:
    """Coordinates in the Southern Ocean no other test of this module uses."""
    rng = random.Random(listing_id)
    return round(rng.uniform(-65, -55), 5), round(rng.uniform(-170, 170), 5)


# -- bodies ------------------------------------------------------------------------------------


@pytest.mark.parametrize("as_array", [False, True], ids=["ndjson", "json-array"])
@pytest.mark.parametrize("gzipped", [False, True], ids=["plain", "gzip"])
def test_ndjson_and_json_array_bodies_plain_or_gzip(server, as_array: bool, gzipped: bool) -> None:
    listing_id = unique_id("body")
    with server.client() as client:
        post_ok(client, [rate(listing_id, 10, 12, "90.00"), rate(listing_id, 12, 13, "95.50")],
                as_array=as_array, gzipped=gzipped)
        stored = nights(client, listing_id)
    assert {day: entry["price"] for day, entry in stored.items()} == {
        night(10): "90.00", night(11): "90.00", night(12): "95.50"}


def test_every_member_of_a_multi_member_gzip_body_counts(server) -> None:
    """`cat a.gz b.gz` is one valid gzip body (RFC 1952); the second member is not optional."""
    listing_id = unique_id("members")
    members = b"".join(gzip.compress(ndjson([rate(listing_id, n, n + 1)])) for n in range(3))
    with server.client() as client:
        response = client.post("/v1/events", content=members, headers={**NDJSON, "content-encoding": "gzip"})
        assert response.json() == {"accepted": 3, "rejected": []}
        assert set(nights(client, listing_id)) == {night(0), night(1), night(2)}


def test_windows_line_endings_in_ndjson(server) -> None:
    listing_id = unique_id("crlf")
    with server.client() as client:
        body = ndjson([rate(listing_id, 1, 2), rate(listing_id, 2, 3)]).replace(b"\n", b"\r\n")
        assert client.post("/v1/events", content=body, headers=NDJSON).json() == {"accepted": 2, "rejected": []}


def test_same_listing_id_under_two_sources_is_two_listings(server) -> None:
    listing_id = unique_id("shared-id")
    with server.client() as client:
        post_ok(client, [rate(listing_id, 1, 2, "10.00"), rate(listing_id, 1, 2, "20.00", source="vrbo")])
        assert nights(client, listing_id)[night(1)]["price"] == "10.00"
        assert nights(client, listing_id, source="vrbo")[night(1)]["price"] == "20.00"


@pytest.mark.parametrize("listing_id", ["a/b", "a?b#c", "%41", "x/calendar", "a+b", "\U0001f642", 48213],
                         ids=["slash", "query-and-fragment", "percent", "calendar-suffix", "plus", "emoji", "number"])
def test_any_printable_listing_id_round_trips_through_the_url(server, listing_id: object) -> None:
    unique = listing_id if isinstance(listing_id, int) else f"{listing_id}-{unique_id('')}"
    with server.client() as client:
        post_ok(client, [{**rate("placeholder", 1, 2), "listing_id": unique}])
        response = calendar(client, str(unique))
    assert response.status_code == 200, response.text
    assert response.json()["listing_id"] == str(unique) and len(response.json()["nights"]) == 1


def test_content_type_parameters_are_ignored(server) -> None:
    listing_id = unique_id("charset")
    body = json.dumps([rate(listing_id, 1, 2)]).encode()
    with server.client() as client:
        response = client.post("/v1/events", content=body,
                               headers={"content-type": "application/json; charset=utf-8"})
        assert response.json() == {"accepted": 1, "rejected": []}


def test_three_event_types(server) -> None:
    listing_id = unique_id("types")
    lat, lon = lonely_place(listing_id)
    with server.client() as client:
        post_ok(client, [listing(listing_id, lat=lat, lon=lon, changed=1), rate(listing_id, 3, 5, changed=1),
                         delist(listing_id, changed=2)])
        details = client.get(f"/v1/listings/airbnb/{listing_id}").json()
        assert len(nights(client, listing_id)) == 2
    assert details["name"] == "Test flat" and details["kind"] == "apartment"
    assert (details["lat"], details["lon"], details["max_guests"]) == (lat, lon, 4)
    assert details["described_at"] == stamp(1) and details["delisted_at"] == stamp(2)


def test_rejections_name_their_index_and_valid_siblings_are_accepted(server) -> None:
    listing_id = unique_id("siblings")
    events = [
        rate(listing_id, 1, 2, "10.00"),
        rate(listing_id, 2, 3, "-5"),  # negative price
        rate(listing_id, 3, 4, "30.00"),
        {"type": "teleport"},
        rate(listing_id, 5, 4),  # end before start
        rate(listing_id, 6, 7, "60.00"),
    ]
    for as_array in (False, True):
        with server.client() as client:
            response = post(client, events, as_array=as_array)
            assert response.status_code == 200, response.text
            result = response.json()
            assert result["accepted"] == 3
            assert [r["index"] for r in result["rejected"]] == [1, 3, 4]
            assert all(isinstance(r["error"], str) and r["error"] for r in result["rejected"])
            assert set(nights(client, listing_id)) == {night(1), night(3), night(6)}


def test_one_invalid_ndjson_line_rejects_only_that_event(server) -> None:
    listing_id = unique_id("badline")
    lines = [json.dumps(rate(listing_id, 1, 2)), '{"type": "rate", "source": ', json.dumps(rate(listing_id, 2, 3))]
    with server.client() as client:
        response = client.post("/v1/events", content="\n".join(lines), headers=NDJSON)
        assert response.status_code == 200, response.text
        assert response.json()["accepted"] == 2
        assert [r["index"] for r in response.json()["rejected"]] == [1]
        assert set(nights(client, listing_id)) == {night(1), night(2)}


@pytest.mark.parametrize("body", [b'[{"type": "rate", ', b'{"type": "rate"}', b"[1, 2", b"not json"],
                         ids=["truncated", "object-not-array", "unclosed", "garbage"])
def test_unparseable_array_body_is_400(server, body: bytes) -> None:
    with server.client() as client:
        json_error(client.post("/v1/events", content=body, headers=JSON), 400)


def test_limits_answer_413(server_factory) -> None:
    """Body size before and after gzip, and events a request, each refused on its own."""
    limited = server_factory("--max-body-bytes", "4096", "--max-events-per-request", "5")
    listing_id = unique_id("limits")
    five = [rate(listing_id, n, n + 1) for n in range(5)]
    six = [rate(listing_id, n, n + 1) for n in range(6)]
    with limited.client() as client:
        post_ok(client, five)
        post_ok(client, five, as_array=True)
        assert "5" in json_error(post(client, six), 413)
        assert "5" in json_error(post(client, six, as_array=True), 413)
        padded = json.dumps(rate(listing_id, 1, 2)).encode() + b" " * 5000
        json_error(client.post("/v1/events", content=padded, headers=NDJSON), 413)

        def chunks():  # no Content-Length: the limit must hold while streaming too
            for _ in range(10):
                yield b" " * 1000

        json_error(client.post("/v1/events", content=chunks(), headers=NDJSON), 413)
        bomb = gzip.compress(json.dumps(rate(listing_id, 1, 2)).encode() + b" " * 200_000)
        assert len(bomb) < 4096
        message = json_error(client.post("/v1/events", content=bomb,
                                         headers={**NDJSON, "content-encoding": "gzip"}), 413)
        assert "4096" in message
        members = gzip.compress(b" " * 3000) + gzip.compress(b" " * 3000)  # each fits, together not
        json_error(client.post("/v1/events", content=members, headers={**NDJSON, "content-encoding": "gzip"}), 413)


@pytest.mark.parametrize("headers", [
    {"content-type": "text/plain"},
    {"content-type": "application/xml"},
    {**NDJSON, "content-encoding": "br"},
    {**NDJSON, "content-encoding": "deflate"},
], ids=["text-plain", "xml", "brotli", "deflate"])
def test_unsupported_type_or_encoding_is_415(server, headers: dict[str, str]) -> None:
    listing_id = unique_id("415")
    with server.client() as client:
        response = client.post("/v1/events", content=json.dumps(rate(listing_id, 1, 2)), headers=headers)
        message = json_error(response, 415)
        assert calendar(client, listing_id).status_code == 404
    assert headers.get("content-encoding", headers["content-type"]) in message


# -- last writer wins --------------------------------------------------------------------------


def test_newest_changed_at_wins_whatever_the_arrival_order(server) -> None:
    listing_id = unique_id("lww")
    with server.client() as client:
        post_ok(client, [rate(listing_id, 10, 15, "200.00", changed=20)])
        post_ok(client, [rate(listing_id, 12, 18, "100.00", changed=10)])  # older, arrives later
        stored = nights(client, listing_id)
    expected = {night(n): "200.00" for n in range(10, 15)} | {night(n): "100.00" for n in range(15, 18)}
    assert {day: entry["price"] for day, entry in stored.items()} == expected
    assert stored[night(12)]["changed_at"] == stamp(20)
    assert stored[night(16)]["changed_at"] == stamp(10)


def test_equal_changed_at_later_arrival_wins(server) -> None:
    across, within = unique_id("tie-across"), unique_id("tie-within")
    with server.client() as client:
        post_ok(client, [rate(across, 1, 3, "10.00", changed=5)])
        post_ok(client, [rate(across, 1, 3, "20.00", changed=5)])
        post_ok(client, [rate(within, 1, 3, "10.00", changed=5), rate(within, 2, 4, "20.00", changed=5)])
        assert [e["price"] for e in nights(client, across).values()] == ["20.00", "20.00"]
        assert [e["price"] for e in nights(client, within).values()] == ["10.00", "20.00", "20.00"]


def test_resending_is_harmless(server) -> None:
    listing_id = unique_id("resend")
    first, second = rate(listing_id, 1, 4, "10.00", changed=1), rate(listing_id, 2, 5, "20.00", changed=2)
    with server.client() as client:
        post_ok(client, [first, second])
        before = nights(client, listing_id)
        post_ok(client, [first])
        post_ok(client, [second, first, second])
        assert nights(client, listing_id) == before
    assert [e["price"] for e in before.values()] == ["10.00", "20.00", "20.00", "20.00"]


# -- listings and search -----------------------------------------------------------------------


def test_rate_before_listing_is_kept_and_listing_becomes_searchable(server) -> None:
    listing_id = unique_id("early-rate")
    lat, lon = lonely_place(listing_id)
    with server.client() as client:
        post_ok(client, [rate(listing_id, 20, 25, "80.00")])
        assert listing_id not in search_ids(client, lat, lon, 21, 23)
        post_ok(client, [listing(listing_id, lat=lat, lon=lon, changed=1)])
        assert listing_id in search_ids(client, lat, lon, 21, 23)
        assert set(nights(client, listing_id)) == {night(n) for n in range(20, 25)}


def test_delist_removes_from_search_but_keeps_the_calendar(server) -> None:
    listing_id = unique_id("delist")
    lat, lon = lonely_place(listing_id)
    with server.client() as client:
        post_ok(client, [listing(listing_id, lat=lat, lon=lon, changed=1), rate(listing_id, 30, 34, "70.00")])
        assert listing_id in search_ids(client, lat, lon, 30, 32)
        post_ok(client, [delist(listing_id, changed=2)])
        assert listing_id not in search_ids(client, lat, lon, 30, 32)
        assert [e["price"] for e in nights(client, listing_id).values()] == ["70.00"] * 4


def test_descriptions_are_last_writer_wins_and_a_newer_one_undoes_a_delist(server) -> None:
    listing_id = unique_id("describe")
    (lat, lon), (old_lat, old_lon) = lonely_place(listing_id), lonely_place(listing_id + "-old")
    with server.client() as client:
        post_ok(client, [rate(listing_id, 40, 44, "60.00"),
                         listing(listing_id, lat=lat, lon=lon, name="New name", changed=10)])
        post_ok(client, [listing(listing_id, lat=old_lat, lon=old_lon, name="Old name", changed=5)])
        assert client.get(f"/v1/listings/airbnb/{listing_id}").json()["name"] == "New name"
        assert listing_id in search_ids(client, lat, lon, 40, 42)
        assert listing_id not in search_ids(client, old_lat, old_lon, 40, 42)
        post_ok(client, [delist(listing_id, changed=10)])  # a delist wins a tie
        assert listing_id not in search_ids(client, lat, lon, 40, 42)
        post_ok(client, [listing(listing_id, lat=lat, lon=lon, name="Back", changed=11)])
        assert listing_id in search_ids(client, lat, lon, 40, 42)
        assert client.get(f"/v1/listings/airbnb/{listing_id}").json()["name"] == "Back"


# -- the calendar ------------------------------------------------------------------------------


def test_calendar_of_a_never_seen_listing_is_404(server) -> None:
    with server.client() as client:
        missing = unique_id("never")
        assert missing in json_error(calendar(client, missing), 404)
        json_error(calendar(client, "x", source="never-seen-source"), 404)


def test_calendar_of_a_listing_without_rates_is_empty(server) -> None:
    """Something was received (a description, a delist): 200 with no nights, not 404."""
    described, delisted = unique_id("no-rates"), unique_id("only-delist")
    with server.client() as client:
        post_ok(client, [listing(described, lat=1, lon=1), delist(delisted)])
        for listing_id in (described, delisted):
            response = calendar(client, listing_id)
            assert response.status_code == 200, response.text
            assert response.json()["nights"] == []


def test_calendar_window_order_gaps_and_shape(server) -> None:
    listing_id = unique_id("window")
    with server.client() as client:
        post_ok(client, [
            rate(listing_id, 8, 10, "55.00", min_nights=3),  # sent first, listed last
            rate(listing_id, 2, 4, None, available=False),
            rate(listing_id, 4, 5, "12.00", available=False),
            rate(listing_id, 0, 2, 42),
        ])
        everything = calendar(client, listing_id).json()
        window = calendar(client, listing_id, 1, 9).json()
        from_start = calendar(client, listing_id, start=3).json()
        until_end = calendar(client, listing_id, end=3).json()
        empty = calendar(client, listing_id, 5, 8).json()
    assert everything["source"] == "airbnb" and everything["listing_id"] == listing_id
    assert everything["nights"][0] == {"night": night(0), "price": "42.00", "currency": "EUR", "available": True,
                                       "min_nights": 1, "changed_at": stamp(0)}
    assert [n["night"] for n in everything["nights"]] == [night(d) for d in (0, 1, 2, 3, 4, 8, 9)]
    assert [n["night"] for n in window["nights"]] == [night(d) for d in (1, 2, 3, 4, 8)]  # end exclusive
    assert [n["night"] for n in from_start["nights"]] == [night(d) for d in (3, 4, 8, 9)]
    assert [n["night"] for n in until_end["nights"]] == [night(d) for d in (0, 1, 2)]
    assert empty["nights"] == []
    by_night = {n["night"]: n for n in everything["nights"]}
    assert (by_night[night(2)]["price"], by_night[night(2)]["available"]) == (None, False)
    assert (by_night[night(4)]["price"], by_night[night(4)]["available"]) == ("12.00", False)
    assert (by_night[night(9)]["price"], by_night[night(9)]["min_nights"]) == ("55.00", 3)


def test_calendar_rejects_bad_window(server) -> None:
    listing_id = unique_id("badwindow")
    with server.client() as client:
        post_ok(client, [rate(listing_id, 1, 2)])
        assert "start" in json_error(client.get(f"/v1/listings/airbnb/{listing_id}/calendar",
                                                params={"start": "tomorrow"}), 400)
        assert "end" in json_error(calendar(client, listing_id, 5, 5), 400)


def test_changed_at_is_returned_in_utc_with_its_precision(server) -> None:
    listing_id = unique_id("zones")
    plus_two = (CLOCK_BASE + dt.timedelta(seconds=7)).astimezone(dt.timezone(dt.timedelta(hours=2)))
    micro = (CLOCK_BASE + dt.timedelta(seconds=9, microseconds=123456)).isoformat().replace("+00:00", "Z")
    with server.client() as client:
        post_ok(client, [{**rate(listing_id, 1, 2), "changed_at": plus_two.isoformat()},
                         {**rate(listing_id, 2, 3), "changed_at": micro},
                         {**rate(listing_id, 3, 4), "changed_at": "1970-01-01T00:00:00.000001Z"}])
        stored = nights(client, listing_id)
    assert stored[night(1)]["changed_at"] == stamp(7)
    assert stored[night(2)]["changed_at"] == micro
    assert stored[night(3)]["changed_at"] == "1970-01-01T00:00:00.000001Z"
    # before 1970 is refused (events/bounds.py): tests/test_hardening.py


def test_read_after_ack_whichever_worker_answers(server) -> None:
    """Fresh connections spread over the workers; each read must see the write just acknowledged."""
    listing_id = unique_id("raw")
    no_reuse = httpx.Limits(max_keepalive_connections=0)
    with server.client(limits=no_reuse) as writer, server.client(limits=no_reuse) as reader:
        for step in range(40):
            price = f"{100 + step}.00"
            post_ok(writer, [rate(listing_id, 1, 3, price, changed=step)])
            assert [e["price"] for e in nights(reader, listing_id).values()] == [price, price], step


def test_read_after_ack_while_the_shared_arrays_grow(server) -> None:
    """Thousands of new listings grow (remap) the shared arrays; readers never see a stale view."""
    prefix = unique_id("grow")
    acked: list[tuple[str, str]] = []
    problems: list[object] = []
    writing = threading.Event()
    writing.set()

    def read_back() -> None:
        rng = random.Random(prefix)
        with server.client(limits=httpx.Limits(max_keepalive_connections=0)) as client:
            while writing.is_set():
                if not acked:
                    time.sleep(0.01)
                    continue
                listing_id, price = acked[rng.randrange(len(acked))]
                response = calendar(client, listing_id)
                if response.status_code != 200 or response.json()["nights"][0]["price"] != price:
                    problems.append((listing_id, price, response.status_code, response.text[:200]))

    readers = [threading.Thread(target=read_back) for _ in range(2)]
    for reader in readers:
        reader.start()
    try:
        with server.client() as client, server.client() as other:
            for batch in range(6):
                listing_ids = [f"{prefix}-{batch}-{i}" for i in range(500)]
                price = f"{batch}.{batch:02d}"
                post_ok(client, [rate(listing_id, 50 + i % 300, 52 + i % 300, price)
                                 for i, listing_id in enumerate(listing_ids)])
                assert nights(other, listing_ids[-1])[night(50 + 499 % 300)]["price"] == price
                acked.extend((listing_id, price) for listing_id in listing_ids)
    finally:
        writing.clear()
        for reader in readers:
            reader.join(30)
    assert problems == []


# -- values: money, currencies, text -----------------------------------------------------------


@pytest.mark.parametrize(("price", "currency", "shown"), [
    ("0.10", "EUR", "0.10"),
    (0.1, "EUR", "0.10"),
    ("129.5", "EUR", "129.50"),
    (129, "EUR", "129.00"),
    ("0", "EUR", "0.00"),
    ("1500", "JPY", "1500"),
    (1500, "JPY", "1500"),
    ("1500.0", "JPY", "1500"),
    ("1500.5", "JPY", None),
    ("0.001", "EUR", None),
    ("12.345", "KWD", "12.345"),
    ("12.3456", "KWD", None),
    ("0.1234", "CLF", "0.1234"),
])
def test_prices_are_exact_in_the_currency_minor_unit(server, price: object, currency: str, shown: str | None) -> None:
    listing_id = unique_id("money")
    with server.client() as client:
        response = post(client, [rate(listing_id, 1, 2, price, currency=currency)])
        assert response.status_code == 200, response.text
        if shown is None:
            [rejection] = response.json()["rejected"]
            assert rejection["index"] == 0
            assert "price" in rejection["error"] and str(price) in rejection["error"]
            assert calendar(client, listing_id).status_code == 404
            return
        [stored] = nights(client, listing_id).values()
    assert (stored["price"], stored["currency"]) == (shown, currency)


@pytest.mark.parametrize(("sent", "stored"), [("eur", "EUR"), ("Jpy", "JPY"), (" usd ", "USD")])
def test_currency_codes_are_normalized(server, sent: str, stored: str) -> None:
    listing_id = unique_id("currency")
    with server.client() as client:
        post_ok(client, [rate(listing_id, 1, 2, "7", currency=sent)])
        [entry] = nights(client, listing_id).values()
    assert entry["currency"] == stored


def test_text_is_nfc_and_trimmed(server) -> None:
    decomposed = unique_id("Cafe\u0301")
    composed = unicodedata.normalize("NFC", decomposed)
    assert composed != decomposed
    lat, lon = lonely_place(decomposed)
    with server.client() as client:
        post_ok(client, [
            listing(f"  {decomposed}\t", lat=lat, lon=lon, name="  Cafe\u0301 du Port \n", city=" Sa\u0303o Paulo "),
            rate(decomposed, 1, 2),
        ])
        by_composed = client.get(f"/v1/listings/airbnb/{quote(composed)}").json()
        assert by_composed["listing_id"] == composed
        assert by_composed["name"] == "Caf\u00e9 du Port"
        assert by_composed["city"] == "S\u00e3o Paulo"
        assert len(nights(client, composed)) == 1
        assert len(nights(client, decomposed)) == 1  # a lookup is normalized like an event


# -- load shedding -----------------------------------------------------------------------------


def test_full_backlog_sheds_with_503_and_loses_nothing_acknowledged(server_factory) -> None:
    shedding = server_factory("--max-backlog-events", "1")
    results: dict[str, httpx.Response] = {}
    lock = threading.Lock()

    def send(listing_id: str) -> None:
        events = [rate(listing_id, n % 300, n % 300 + 5, f"{n}.00", changed=n) for n in range(300)]
        with shedding.client() as client:
            response = post(client, events)
        with lock:
            results[listing_id] = response

    for round_ in range(5):
        threads = [threading.Thread(target=send, args=(unique_id(f"shed{round_}"),)) for _ in range(16)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        if any(r.status_code == 503 for r in results.values()):
            break
    statuses = {r.status_code for r in results.values()}
    assert statuses <= {200, 503}, statuses
    assert 503 in statuses and 200 in statuses, statuses
    with shedding.client() as client:
        for listing_id, response in results.items():
            if response.status_code == 503:
                assert int(response.headers["retry-after"]) >= 1
                json_error(response, 503)
                assert calendar(client, listing_id).status_code == 404, "a shed request stored something"
            else:
                assert response.json() == {"accepted": 300, "rejected": []}
                stored = nights(client, listing_id)
                assert len(stored) == 304
                assert stored[night(299)]["price"] == "299.00"


# -- operations --------------------------------------------------------------------------------


def test_healthz_and_readyz(server) -> None:
    with server.client() as client:
        health = client.get("/healthz")
        ready = client.get("/readyz")
    assert health.status_code == 200 and health.json()["status"] == "ok"
    assert ready.status_code == 200, ready.text
    assert ready.json()["status"] == "ready" and ready.json()["problems"] == []


def parse_metrics(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    samples = {}
    for line in text.splitlines():
        match = re.fullmatch(r"([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)", line)
        if match and not line.startswith("#"):
            labels = frozenset(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', match.group(2) or ""))
            samples[match.group(1), labels] = float(match.group(3))
    return samples


def test_metrics_count_events_commits_backlog_and_freshness(server) -> None:
    source = "metrics-" + unique_id("m")[-6:]
    listing_id = unique_id("metrics")
    lat, lon = lonely_place(listing_id)
    with server.client() as client:
        post_ok(client, [rate(listing_id, 1, 2, source=source, changed=-60),
                         rate(listing_id, 2, 3, source=source),
                         rate(listing_id, 3, 4, source=source),
                         listing(listing_id, lat=lat, lon=lon, source=source)])
        deadline = time.monotonic() + 10
        while True:  # the writer reports freshness once a second
            response = client.get("/metrics")
            assert response.status_code == 200
            samples = parse_metrics(response.text)
            lag = samples.get(("staystream_freshness_lag_seconds", frozenset({("source", source)})))
            if lag is not None or time.monotonic() > deadline:
                break
            time.sleep(0.2)
    accepted = {labels: value for (name, labels), value in samples.items()
                if name == "staystream_events_accepted_total" and ("source", source) in labels}
    assert accepted == {frozenset({("source", source), ("type", "rate")}): 3.0,
                        frozenset({("source", source), ("type", "listing")}): 1.0}
    commit_count = samples[("staystream_commit_seconds_count", frozenset())]
    assert commit_count >= 1
    assert any(name == "staystream_commit_seconds_bucket" for name, _ in samples)
    assert ("staystream_backlog_events", frozenset()) in samples
    assert lag is not None, "no freshness lag for the source"
    expected_lag = (dt.datetime.now(dt.UTC) - CLOCK_BASE).total_seconds()
    assert abs(lag - expected_lag) < 30, (lag, expected_lag)
    # what deploy/prometheus/staystream-alerts.yml alerts on
    delays = samples[("staystream_source_delay_seconds_count", frozenset({("source", source)}))]
    assert delays >= 1
    assert samples[("staystream_data_dir_free_bytes", frozenset())] > 0
    assert samples[("staystream_data_dir_capacity_bytes", frozenset())] >= samples[
        ("staystream_data_dir_free_bytes", frozenset())]
    heartbeat = samples[("staystream_writer_heartbeat_timestamp_seconds", frozenset())]
    assert abs(heartbeat - time.time()) < 5


def test_openapi_describes_the_events_endpoint(server) -> None:
    with server.client() as client:
        response = client.get("/openapi.json")
    assert response.status_code == 200
    schema = response.json()
    assert schema["openapi"].startswith("3.")
    assert "post" in schema["paths"]["/v1/events"]
    assert "/v1/listings/{source}/{listing_id}/calendar" in schema["paths"]
