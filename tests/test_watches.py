"""Watches over real HTTP against real server processes: SSE events and resume, totals equal to
search's, signed webhooks to a real receiver, a kill -9 in the middle of a webhook outage, limits,
expiry, validation.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import hmac
import http.server
import json
import os
import queue
import signal
import socket
import sqlite3
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import httpx
import pytest

from conftest import Server, start_server
from pg_fixtures import Postgres, create_database, postgres  # noqa: F401 (fixture)
from wire_events import listing, night, post_ok, rate, stamp, unique_id

LAT, LON = 52.37, 4.89  # Amsterdam
WAIT = 10.0  # seconds a test waits for an event it expects (the promise is 1 s)
BARRIER_LAT, BARRIER_LON = -45.0, 170.0  # `caught_up`'s listings: no test writes or watches near


@dataclass
class Sse:
    id: int
    event: str
    data: dict[str, object]
    at: float  # time.monotonic() when it arrived


class Stream:
    """A real SSE client in a thread: events arrive in `events`."""

    def __init__(self, url: str, last_event_id: int | None = None) -> None:
        self.events: queue.Queue[Sse] = queue.Queue()
        self.status: int | None = None
        self.stopped = threading.Event()
        headers = {} if last_event_id is None else {"last-event-id": str(last_event_id)}
        self.thread = threading.Thread(target=self._read, args=(url, headers), daemon=True)
        self.thread.start()

    def _read(self, url: str, headers: dict[str, str]) -> None:
        with contextlib.suppress(httpx.HTTPError):  # the server went away: the stream ends, as a browser's would
            self._follow(url, headers)

    def _follow(self, url: str, headers: dict[str, str]) -> None:
        with httpx.stream("GET", url, headers=headers, timeout=httpx.Timeout(5, read=None)) as response:
            self.status = response.status_code
            fields: dict[str, str] = {}
            for line in response.iter_lines():
                if self.stopped.is_set():
                    return
                if not line:
                    if "event" in fields:
                        data = json.loads(fields["data"])
                        self.events.put(Sse(int(fields["id"]), fields["event"], data, time.monotonic()))
                    fields = {}
                elif not line.startswith(":"):
                    name, _, value = line.partition(":")
                    fields[name] = value.strip()

    def next(self, timeout: float = WAIT) -> Sse:
        return self.events.get(timeout=timeout)

    def none_within(self, seconds: float) -> None:
        with pytest.raises(queue.Empty):
            found = self.events.get(timeout=seconds)
            pytest.fail(f"unexpected event {found}")

    def close(self) -> None:
        self.stopped.set()


def drain_until_quiet(streams: list[Stream], quiet: float) -> list[list[Sse]]:
    """Every stream's events until none of them has said anything for `quiet` seconds: the
    streams read in their own threads, so one shared quiet spell waits for all of them at once."""
    heard: list[list[Sse]] = [[] for _ in streams]
    last_heard = time.monotonic()
    while time.monotonic() - last_heard < quiet:
        time.sleep(0.05)
        for events, stream in zip(heard, streams, strict=True):
            while not stream.events.empty():
                events.append(stream.events.get_nowait())
                last_heard = time.monotonic()
    return heard


def watch_body(**extra: object) -> dict[str, object]:
    return {"lat": LAT, "lon": LON, "radius_km": 2, "checkin": night(10), "checkout": night(13), "guests": 2, **extra}


def search_total(client: httpx.Client, listing_id: str, **params: object) -> str | None:
    query = {k: v for k, v in watch_body(**params).items() if k != "webhook"}
    results = client.get("/v1/search", params=query).json()["results"]
    return next((r["total"] for r in results if r["listing_id"] == listing_id), None)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = start_server(tmp_path_factory.mktemp("watches") / "data")
    yield server
    server.stop()


def test_events_follow_writes_and_resume(server: Server) -> None:
    with server.client() as client:
        here, there = unique_id("near"), unique_id("far")
        post_ok(client, [listing(here, lat=LAT + 0.001, lon=LON), listing(there, lat=LAT + 1, lon=LON),
                         rate(here, 10, 13, "100.00"), rate(there, 10, 13, "50.00")])
        created = client.post("/v1/watches", json=watch_body())
        assert created.status_code == 201, created.text
        watch_id = created.json()["watch_id"]
        assert set(created.json()) == {"watch_id", "secret"}
        stream = Stream(f"{server.url}/v1/watches/{watch_id}/events")
        try:
            entered = stream.next()
            assert entered.event == "entered"
            assert entered.data == {"place_id": entered.data["place_id"], "source": "airbnb", "listing_id": here,
                                    "total": search_total(client, here), "currency": "EUR"}
            stream.none_within(0.5)  # the listing outside the area says nothing

            post_ok(client, [rate(here, 11, 12, "97.00", changed=1)])  # 300 -> 297: exactly 1% below
            acknowledged = time.monotonic()
            drop = stream.next()
            assert drop.at - acknowledged < 1.0
            assert (drop.event, drop.data["total"], drop.data["previous_total"]) == ("price_drop", "297.00", "300.00")
            assert drop.data["total"] == search_total(client, here)

            post_ok(client, [rate(here, 11, 12, "95.00", changed=2)])  # 297 -> 295: under 1%
            post_ok(client, [rate(here, 11, 12, "150.00", changed=3)])  # a rise says nothing
            stream.none_within(0.5)
            post_ok(client, [rate(here, 11, 12, "90.00", changed=4)])  # 290: 2.4% below the 297 sent
            assert stream.next().data["previous_total"] == "297.00"

            post_ok(client, [rate(here, 12, 13, None, changed=5, available=False)])
            left = stream.next()
            assert (left.event, left.data["listing_id"]) == ("left", here)
            ids = [entered.id, drop.id, left.id]
            assert ids == sorted(ids) and len(set(ids)) == 3
        finally:
            stream.close()

        resumed = Stream(f"{server.url}/v1/watches/{watch_id}/events", last_event_id=drop.id)
        try:
            missed = [resumed.next(), resumed.next()]
            assert [e.event for e in missed] == ["price_drop", "left"]
            assert missed[1].id == left.id
            resumed.none_within(0.3)
        finally:
            resumed.close()

        assert client.delete(f"/v1/watches/{watch_id}").status_code == 204
        assert client.get(f"/v1/watches/{watch_id}/events").status_code == 404
        assert client.delete(f"/v1/watches/{watch_id}").status_code == 404


def test_a_deleted_watch_hears_nothing_more(server: Server) -> None:
    """The watcher notices a deletion (without counting every watch) and evaluates it no more:
    a write that makes a place enter a kept watch leaves nothing for the deleted one."""
    lat, lon = LAT + 0.3, LON  # away from the other tests' listings
    with server.client() as client:
        kept, deleted = (client.post("/v1/watches", json=watch_body(lat=lat, lon=lon)).json()["watch_id"]
                         for _ in range(2))
        stream = Stream(f"{server.url}/v1/watches/{kept}/events")
        try:
            assert client.delete(f"/v1/watches/{deleted}").status_code == 204
            time.sleep(0.3)  # the watcher looks at the watches every poll (20 ms)
            flat = unique_id("deleted-watch")
            post_ok(client, [listing(flat, lat=lat, lon=lon), rate(flat, 0, 30, "90.00")])
            assert stream.next().event == "entered"
        finally:
            stream.close()
    with sqlite3.connect(server.data_dir / "watches.sqlite3") as db:
        seqs = [seq for (seq,) in db.execute("SELECT seq FROM watches WHERE id = ?", (kept,))]
        assert len(seqs) == 1
        assert db.execute("SELECT count(*) FROM outbox WHERE watch_seq = ?", (seqs[0] + 1,)).fetchone()[0] == 0
        assert db.execute("SELECT count(*) FROM watch_state WHERE watch_seq = ?", (seqs[0] + 1,)).fetchone()[0] == 0


def test_changes_tells_every_change_of_a_place_only_to_a_watch_that_opted_in(server: Server) -> None:
    """`changes: true` (the web page's live cards) adds `price_change` for a rise, a fall under
    1% and a new cheapest listing of the place; a plain watch of the same search hears only the
    contract's events. A fall of 1% is a `price_drop` to both, told once."""
    lat, lon = LAT - 0.6, LON + 0.5  # away from the other tests' listings
    with server.client() as client:
        hotel, room_a, room_b = unique_id("hotel"), unique_id("room-a"), unique_id("room-b")
        post_ok(client, [listing(room_a, lat=lat, lon=lon, property_id=hotel),
                         listing(room_b, lat=lat, lon=lon + 0.0002, property_id=hotel),
                         rate(room_a, 10, 13, "100.00"), rate(room_b, 10, 13, "120.00")])
        plain = Stream(f"{server.url}/v1/watches/"
                       + client.post("/v1/watches", json=watch_body(lat=lat, lon=lon)).json()["watch_id"] + "/events")
        created = client.post("/v1/watches", json=watch_body(lat=lat, lon=lon, changes=True))
        assert created.status_code == 201, created.text
        told = Stream(f"{server.url}/v1/watches/{created.json()['watch_id']}/events")
        try:
            for stream in (plain, told):
                assert [(e.event, e.data["listing_id"], e.data["total"]) for e in [stream.next()]] == [
                    ("entered", room_a, "300.00")]
            post_ok(client, [rate(room_a, 10, 13, "110.00", changed=1)])  # a rise: 330
            rise = told.next()
            assert (rise.event, rise.data["listing_id"], rise.data["total"], rise.data["previous_total"]) == (
                "price_change", room_a, "330.00", "300.00")
            assert rise.data["total"] == search_total(client, room_a, lat=lat, lon=lon)
            post_ok(client, [rate(room_a, 10, 13, "130.00", changed=2)])  # room b (360) is the cheapest now
            moved = told.next()
            assert (moved.event, moved.data["listing_id"], moved.data["total"], moved.data["previous_total"]) == (
                "price_change", room_b, "360.00", "330.00")
            post_ok(client, [rate(room_b, 10, 13, "119.00", changed=3)])  # 357: under 1% below
            assert [(e.event, e.data["total"]) for e in [told.next()]] == [("price_change", "357.00")]
            plain.none_within(0.3)
            post_ok(client, [rate(room_b, 10, 13, "90.00", changed=4)])  # 270
            assert [(e.event, e.data["previous_total"]) for e in [plain.next(), told.next()]] == [
                ("price_drop", "300.00"), ("price_drop", "357.00")]
            plain.none_within(0.3)
            told.none_within(0.3)
        finally:
            plain.close()
            told.close()


def test_writes_at_the_price_bound(server: Server) -> None:
    """The watcher skips pairs whose changed nights alone cost more than the watch's max_price,
    unless the watch holds the place: a stay at exactly max_price enters, one a cent over leaves
    (the write far above the bound is one of the skipped kind, held: it must still leave)."""
    lat, lon = LAT - 0.3, LON  # away from the other tests' listings
    with server.client() as client:
        flat = unique_id("bound")
        post_ok(client, [listing(flat, lat=lat, lon=lon), rate(flat, 10, 13, "120.00")])  # 360
        watch_id = client.post("/v1/watches", json=watch_body(lat=lat, lon=lon, max_price="300")).json()["watch_id"]
        stream = Stream(f"{server.url}/v1/watches/{watch_id}/events")
        try:
            stream.none_within(0.5)
            post_ok(client, [rate(flat, 10, 13, "100.00", changed=1)])  # 300: the bound itself
            assert [(e.event, e.data["total"]) for e in [stream.next()]] == [("entered", "300.00")]
            post_ok(client, [rate(flat, 10, 13, "150.00", changed=2)])  # 450: these nights alone are over
            assert [(e.event, e.data["total"]) for e in [stream.next()]] == [("left", "300.00")]
            post_ok(client, [rate(flat, 11, 12, "99.97", changed=3)])  # 150 + 99.97 + 150
            stream.none_within(0.5)
            post_ok(client, [rate(flat, 10, 11, "50.01", changed=4), rate(flat, 12, 13, "150.02", changed=4)])
            assert [(e.event, e.data["total"]) for e in [stream.next()]] == [("entered", "300.00")]
        finally:
            stream.close()


class Receiver:
    """A real webhook receiver (http.server on its own port): answers 2xx, keeps what arrived."""

    def __init__(self, port: int = 0) -> None:
        received: queue.Queue[tuple[dict[str, str], bytes]] = queue.Queue()
        self.received = received

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                body = self.rfile.read(int(self.headers["content-length"]))
                received.put(({k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/hook"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def next(self, timeout: float = WAIT) -> tuple[dict[str, str], bytes]:
        return self.received.get(timeout=timeout)

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def verify(secret: str, headers: dict[str, str], body: bytes) -> None:
    expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    assert headers["x-staystream-signature"] == expected


def test_webhook_is_signed_and_carries_the_event(server: Server) -> None:
    receiver = Receiver()
    try:
        with server.client() as client:
            flat = unique_id("hooked")
            post_ok(client, [listing(flat, lat=LAT - 0.002, lon=LON), rate(flat, 10, 13, "80.00")])
            created = client.post("/v1/watches", json=watch_body(webhook=receiver.url, max_price="1000")).json()
            headers, body = receiver.next()
            verify(created["secret"], headers, body)
            assert headers["x-staystream-event"] == "entered"
            assert json.loads(body)["listing_id"] == flat
            post_ok(client, [rate(flat, 10, 13, "70.00", changed=1)])
            headers, body = receiver.next()
            verify(created["secret"], headers, body)
            assert (headers["x-staystream-event"], json.loads(body)["total"]) == ("price_drop", "210.00")
            # The same JSON as the stream's
            stream = Stream(f"{server.url}/v1/watches/{created['watch_id']}/events")
            try:
                assert [stream.next().data for _ in range(2)][1] == json.loads(body)
            finally:
                stream.close()
    finally:
        receiver.close()


def test_webhook_outage_survives_kill_9(tmp_path: Path) -> None:
    """Receiver down; the event is owed; kill -9 of the whole service; restart, receiver up: it arrives.
    A change made while the service was down is not lost either (the watcher re-evaluates on start)."""
    port = free_port()
    data_dir = tmp_path / "data"
    server = start_server(data_dir)
    flat = unique_id("outage")
    try:
        with server.client() as client:
            post_ok(client, [listing(flat, lat=LAT, lon=LON + 0.001), rate(flat, 10, 13, "100.00")])
            created = client.post("/v1/watches", json=watch_body(webhook=f"http://127.0.0.1:{port}/hook")).json()
            deadline = time.monotonic() + WAIT
            while "staystream_webhook_failures_total{reason=\"connect\"} 0.0" in client.get("/metrics").text:
                assert time.monotonic() < deadline, "no failed delivery attempt"
                time.sleep(0.1)
    finally:
        server.kill()
    server = start_server(data_dir)
    receiver = Receiver(port)
    try:
        headers, body = receiver.next(timeout=30)
        verify(created["secret"], headers, body)
        assert (headers["x-staystream-event"], json.loads(body)["listing_id"]) == ("entered", flat)
        with server.client() as client:
            post_ok(client, [rate(flat, 10, 13, "50.00", changed=1)])
            headers, body = receiver.next()
            assert (headers["x-staystream-event"], json.loads(body)["total"]) == ("price_drop", "150.00")
    finally:
        receiver.close()
        server.stop()


def test_watcher_kill_9_misses_nothing(tmp_path: Path) -> None:
    """A write acknowledged while the watcher is dead produces its event once it is back."""
    server = start_server(tmp_path / "data")
    try:
        with server.client() as client:
            flat = unique_id("gap")
            post_ok(client, [listing(flat, lat=LAT, lon=LON), rate(flat, 10, 13, "100.00")])
            watch_id = client.post("/v1/watches", json=watch_body()).json()["watch_id"]
            stream = Stream(f"{server.url}/v1/watches/{watch_id}/events")
            try:
                entered = stream.next()
                watcher = watcher_pid(server)
                os.kill(watcher, signal.SIGSTOP)  # stopped, then killed: the write lands while it is gone
                post_ok(client, [rate(flat, 10, 13, "60.00", changed=1)])
                os.kill(watcher, signal.SIGKILL)
                drop = stream.next(timeout=15)  # the supervisor starts another watcher
                assert drop.event == "price_drop"
                assert (drop.data["previous_total"], drop.data["total"]) == ("300.00", "180.00")
                assert drop.id > entered.id
            finally:
                stream.close()
    finally:
        server.stop()


def watcher_pid(server: Server) -> int:
    children = subprocess.run(["pgrep", "-P", str(server.process.pid)], capture_output=True, text=True).stdout.split()
    for pid in children:
        if Path(f"/proc/{pid}/comm").read_text().strip() == "ss-watcher":  # set by the supervisor
            return int(pid)
    raise AssertionError(f"no watcher among {children}")


def test_limits_per_address_and_total(tmp_path: Path) -> None:
    server = start_server(tmp_path / "data", "--watches-per-address", "3", "--watches-total", "4")
    try:
        with server.client() as client:
            ids = [client.post("/v1/watches", json=watch_body()).json()["watch_id"] for _ in range(3)]
            refused = client.post("/v1/watches", json=watch_body())
            assert refused.status_code == 429
            assert "127.0.0.1 holds 3 watches" in refused.json()["error"]
            assert int(refused.headers["retry-after"]) > 0
            assert client.delete(f"/v1/watches/{ids[0]}").status_code == 204
            assert client.post("/v1/watches", json=watch_body()).status_code == 201
        with sqlite3.connect(tmp_path / "data" / "watches.sqlite3") as db:  # as if made by another address
            db.execute("UPDATE watches SET client = '192.0.2.1' WHERE id IN (?, ?)", (ids[1], ids[2]))
        with server.client() as client:
            assert client.post("/v1/watches", json=watch_body()).status_code == 201
            full = client.post("/v1/watches", json=watch_body())
            assert full.status_code == 429 and "the service holds 4 watches" in full.json()["error"]
    finally:
        server.stop()


def test_expired_watches_are_gone(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    server = start_server(data_dir, "--watches-per-address", "1")
    try:
        with server.client() as client:
            watch_id = client.post("/v1/watches", json=watch_body()).json()["watch_id"]
            assert client.post("/v1/watches", json=watch_body()).status_code == 429
            with sqlite3.connect(data_dir / "watches.sqlite3") as db:  # as if its checkout date had passed
                db.execute("UPDATE watches SET expires_at = 1 WHERE id = ?", (watch_id,))
            assert client.get(f"/v1/watches/{watch_id}/events").status_code == 404
            assert client.post("/v1/watches", json=watch_body()).status_code == 201  # it no longer counts
    finally:
        server.stop()
    server = start_server(data_dir)  # the watcher's sweep on start removes it and what it owned
    try:
        deadline = time.monotonic() + WAIT
        while True:
            with sqlite3.connect(data_dir / "watches.sqlite3") as db:
                if db.execute("SELECT count(*) FROM watches WHERE id = ?", (watch_id,)).fetchone()[0] == 0:
                    break
            assert time.monotonic() < deadline, "the expired watch was not removed"
            time.sleep(0.1)
    finally:
        server.stop()


@pytest.mark.parametrize(("body", "message"), [
    ({"lat": LAT, "lon": LON, "checkin": night(5)}, "checkout: missing; expected a date YYYY-MM-DD"),
    ({**watch_body(), "guests": 0}, "guests: '0' is out of range; expected 1 to 500"),
    ({**watch_body(), "bbox": "1,2,3"}, "bbox: given with lat, lon, radius_km"),
    ({**watch_body(), "currency": "XYZ"}, "currency: 'XYZ' is not an ISO 4217 code"),
    ({**watch_body(), "webhook": "ftp://example.com"}, "webhook: 'ftp://example.com' is not an http(s) URL"),
    ({**watch_body(), "colour": "red"}, "colour: unknown field"),
    ({**watch_body(), "checkin": night(-5), "checkout": night(-2)}, "is past; expected today or later"),
    ({**watch_body(), "kind": ["house", "castle"]}, "kind: 'castle' is not one of"),
    ({**watch_body(), "changes": "yes"}, 'changes: "yes" is not a boolean; expected true'),
])
def test_bad_watches_are_refused_naming_the_field(server: Server, body: dict[str, object], message: str) -> None:
    with server.client() as client:
        response = client.post("/v1/watches", json=body)
    assert response.status_code == 400
    assert message in response.json()["error"]


def test_bbox_watch_as_a_list(server: Server) -> None:
    body = {k: v for k, v in watch_body().items() if k not in ("lat", "lon", "radius_km")}
    with server.client() as client:
        assert client.post("/v1/watches", json={**body, "bbox": [4.8, 52.3, 5.0, 52.4]}).status_code == 201


def caught_up(server: Server, client: httpx.Client) -> None:
    """Returns once the watcher has recorded the events of every write acknowledged before the
    call: a fresh listing far from every test's area and a watch around it; the watcher reads the
    feed in order and takes in new watches after the feed, so the watch's `entered` comes after."""
    flat = unique_id("barrier")
    post_ok(client, [listing(flat, lat=BARRIER_LAT, lon=BARRIER_LON), rate(flat, 10, 13, "100.00")])
    body = {"lat": BARRIER_LAT, "lon": BARRIER_LON, "radius_km": 0.5, "checkin": night(10), "checkout": night(13)}
    watch_id = client.post("/v1/watches", json=body).json()["watch_id"]
    stream = Stream(f"{server.url}/v1/watches/{watch_id}/events")
    try:
        event = stream.next()
        while event.data["listing_id"] != flat:  # an earlier barrier's listing nearby
            event = stream.next()
    finally:
        stream.close()
    assert client.delete(f"/v1/watches/{watch_id}").status_code == 204


def test_watch_state_agrees_with_search(server: Server) -> None:
    """Random listings, prices (EUR and USD), availability and watches (circles, boxes, guests,
    kinds, max_price, currency); random changes after the watches exist (the incremental path),
    then every price halved. What each watch's events say matches must be exactly what
    `/v1/search` returns for its query, and no place may sit 1% or more below the total last sent
    for it (that drop would have been sent; totals in another currency, after a listing changed
    its currency under a watch without `currency`, are not comparable)."""
    import random

    rng = random.Random(20261204)
    center_lat, center_lon = -33.87, 151.21  # Sydney: no other test writes there
    kinds = ("apartment", "house", "private_room")
    flats = [unique_id("agree") for _ in range(40)]
    place = {f: (center_lat + rng.uniform(-0.02, 0.02), center_lon + rng.uniform(-0.02, 0.02)) for f in flats}

    def random_rates(changed: float) -> list[dict[str, object]]:
        events: list[dict[str, object]] = []
        for f in rng.sample(flats, 15):
            start = rng.randrange(8, 16)
            end = start + rng.randrange(1, 4)
            if rng.random() < 0.15:
                events.append(rate(f, start, end, None, changed=changed, available=False))
            else:
                events.append(rate(f, start, end, f"{rng.randrange(40, 200)}.{rng.randrange(100):02d}",
                                   changed=changed, currency=rng.choice(("EUR", "USD"))))
        return events

    with server.client() as client:
        post_ok(client, [listing(f, lat=place[f][0], lon=place[f][1], kind=rng.choice(kinds),
                                 max_guests=rng.randrange(1, 5)) for f in flats])
        post_ok(client, [rate(f, 8, 18, f"{rng.randrange(60, 150)}.00", currency=rng.choice(("EUR", "USD")))
                         for f in flats])
        queries = []
        for _ in range(25):
            checkin = rng.randrange(8, 14)
            query: dict[str, object] = {"checkin": night(checkin), "checkout": night(checkin + rng.randrange(1, 4)),
                                        "guests": rng.randrange(1, 4)}
            if rng.random() < 0.5:
                query |= {"lat": center_lat + rng.uniform(-0.01, 0.01), "lon": center_lon + rng.uniform(-0.01, 0.01),
                          "radius_km": rng.choice((0.8, 1.5, 3.0))}
            else:
                south = center_lat - rng.uniform(0.002, 0.015)
                query["bbox"] = f"{center_lon - 0.012},{south},{center_lon + 0.01},{center_lat + 0.01}"
            if rng.random() < 0.4:
                query["max_price"] = str(rng.randrange(100, 500))
            if rng.random() < 0.4:
                query["currency"] = rng.choice(("EUR", "USD"))
            if rng.random() < 0.3:
                query["kind"] = rng.sample(kinds, 2)
            queries.append(query)
        watches = [client.post("/v1/watches", json=q).json()["watch_id"] for q in queries]
        streams = [Stream(f"{server.url}/v1/watches/{w}/events") for w in watches]
        try:
            for step in range(1, 6):
                post_ok(client, random_rates(step))
            caught_up(server, client)  # the random changes evaluated: the halving below makes drops
            halved = []
            for f in flats:  # every night's current price halved, in its own currency
                nights_now = client.get(f"/v1/listings/airbnb/{f}/calendar").json()["nights"]
                for n in nights_now:
                    if n["available"] and n["price"] is not None:
                        halved.append({"type": "rate", "source": "airbnb", "listing_id": f, "start": n["night"],
                                       "end": (dt.date.fromisoformat(n["night"]) + dt.timedelta(days=1)).isoformat(),
                                       "price": str((Decimal(n["price"]) / 2).quantize(Decimal("0.01"))),
                                       "currency": n["currency"],
                                       "changed_at": stamp(10)})
            post_ok(client, halved)
            caught_up(server, client)  # every event is in the outbox: the streams only pass them on
            heard = drain_until_quiet(streams, quiet=1.0)
            drops = 0
            for query, events in zip(queries, heard, strict=True):
                said: dict[str, tuple[str, str]] = {}
                for event in events:
                    key = str(event.data["listing_id"])
                    drops += event.event == "price_drop"
                    if event.event == "left":
                        said.pop(key, None)
                    else:
                        said[key] = (str(event.data["total"]), str(event.data["currency"]))
                params = {k: (",".join(v) if isinstance(v, list) else v) for k, v in query.items()}
                results = client.get("/v1/search", params={**params, "limit": 200}).json()["results"]
                found = {r["listing_id"]: (r["total"], r["currency"]) for r in results if r["listing_id"] in place}
                assert set(said) == set(found), query
                for key, (total, currency) in found.items():
                    if said[key][1] != currency:  # the listing changed currency: no drop is measurable
                        assert "currency" not in query, (query, key)
                        continue
                    assert Decimal(total) * 100 > Decimal(said[key][0]) * 99, (query, key, said[key], total)
            assert drops >= 10  # the halving made drops (rises in between leave some without)
        finally:
            for stream in streams:
                stream.close()


def test_events_with_the_postgresql_store(postgres: Postgres, tmp_path: Path) -> None:  # noqa: F811
    """`--store postgresql://`: the watches, their state and the outbox are PostgreSQL's tables
    (no SQLite file of watches), and the change feed and the watcher work the same."""
    uri = create_database(postgres, "watches")
    server = start_server(tmp_path / "data", "--store", uri)
    try:
        with server.client() as client:
            flat = unique_id("pg")
            post_ok(client, [listing(flat, lat=LAT, lon=LON), rate(flat, 10, 13, "100.00")])
            watch_id = client.post("/v1/watches", json=watch_body()).json()["watch_id"]
            told_id = client.post("/v1/watches", json=watch_body(changes=True)).json()["watch_id"]
            stream = Stream(f"{server.url}/v1/watches/{watch_id}/events")
            told = Stream(f"{server.url}/v1/watches/{told_id}/events")
            try:
                assert stream.next().event == told.next().event == "entered"
                post_ok(client, [rate(flat, 10, 13, "80.00", changed=1)])
                drop = stream.next()
                assert (drop.event, drop.data["total"]) == ("price_drop", "240.00")
                assert drop.data["total"] == search_total(client, flat)
                post_ok(client, [rate(flat, 10, 13, "85.00", changed=2)])  # a rise: only the opted-in hears it
                assert [(e.event, e.data["total"]) for e in [told.next(), told.next()]] == [
                    ("price_drop", "240.00"), ("price_change", "255.00")]
                stream.none_within(0.3)
            finally:
                stream.close()
                told.close()
        assert postgres.psql(f"SELECT count(*) FROM staystream.watches WHERE id = '{watch_id}'", uri) == "1"
        assert postgres.psql("SELECT string_agg(id || ':' || changes::text, ',' ORDER BY seq) FROM staystream.watches",
                             uri) == f"{watch_id}:false,{told_id}:true"
        assert postgres.psql("SELECT string_agg(event, ',' ORDER BY id) FROM staystream.watch_outbox", uri) == \
            "entered,entered,price_drop,price_drop,price_change"
        assert not (tmp_path / "data" / "watches.sqlite3").exists()
    finally:
        server.stop()


def test_several_watchers_share_the_watches(tmp_path: Path) -> None:
    """`--watchers 3`: each watch is evaluated (and its webhooks delivered) by exactly one of them."""
    server = start_server(tmp_path / "data", "--watchers", "3")
    receiver = Receiver()
    try:
        with server.client() as client:
            flat = unique_id("sharded")
            post_ok(client, [listing(flat, lat=LAT, lon=LON), rate(flat, 10, 13, "100.00")])
            watches = [client.post("/v1/watches", json=watch_body(webhook=receiver.url)).json()["watch_id"]
                       for _ in range(5)]
            streams = [Stream(f"{server.url}/v1/watches/{w}/events") for w in watches]
            try:
                assert [s.next().event for s in streams] == ["entered"] * 5
                post_ok(client, [rate(flat, 10, 13, "90.00", changed=1)])
                assert [s.next().data["total"] for s in streams] == ["270.00"] * 5
                for s in streams:
                    s.none_within(0.2)  # once each, not once per watcher
            finally:
                for s in streams:
                    s.close()
            hooks = sorted((h["x-staystream-watch-id"], h["x-staystream-event"])
                           for h, _ in (receiver.next() for _ in range(10)))
            assert hooks == sorted((w, e) for w in watches for e in ("entered", "price_drop"))
            with pytest.raises(queue.Empty):
                receiver.next(timeout=1.0)
    finally:
        receiver.close()
        server.stop()


def test_a_place_follows_its_cheapest_offer(server: Server) -> None:
    """Two listings of one property are one place: the watch tells of the place, by its cheapest
    offer; one listing closing does not make the place leave while the other still matches."""
    with server.client() as client:
        hotel = unique_id("hotel")
        room_a, room_b = unique_id("room-a"), unique_id("room-b")
        post_ok(client, [listing(room_a, lat=LAT, lon=LON - 0.001, property_id=hotel),
                         listing(room_b, lat=LAT, lon=LON - 0.0012, property_id=hotel),
                         rate(room_a, 10, 13, "100.00"), rate(room_b, 10, 13, "120.00")])
        watch_id = client.post("/v1/watches", json=watch_body()).json()["watch_id"]
        stream = Stream(f"{server.url}/v1/watches/{watch_id}/events")
        try:
            entered = [stream.next()]
            with contextlib.suppress(queue.Empty):
                while True:
                    entered.append(stream.next(timeout=0.5))
            ours = [e for e in entered if e.data["listing_id"] in (room_a, room_b)]
            assert [(e.event, e.data["listing_id"], e.data["total"]) for e in ours] == [("entered", room_a, "300.00")]
            post_ok(client, [rate(room_a, 11, 12, None, changed=1, available=False)])  # room a closes
            stream.none_within(0.7)  # room b (360.00) still offers the place: no left, no drop
            post_ok(client, [rate(room_b, 10, 13, "90.00", changed=2)])  # room b drops below what was sent
            drop = stream.next()
            assert (drop.event, drop.data["listing_id"], drop.data["total"]) == ("price_drop", room_b, "270.00")
            assert drop.data["place_id"] == ours[0].data["place_id"]
        finally:
            stream.close()


def test_a_fee_change_alone_moves_the_watch(server: Server) -> None:
    """A fee is in every total: a fee event with no rate beside it makes the place leave (its
    total now above max_price) and enter again (the fee lowered), with search's totals."""
    with server.client() as client:
        flat = unique_id("fee")
        post_ok(client, [listing(flat, lat=LAT + 0.0015, lon=LON + 0.0015), rate(flat, 10, 13, "100.00")])
        watch_id = client.post("/v1/watches", json=watch_body(max_price="400")).json()["watch_id"]
        stream = Stream(f"{server.url}/v1/watches/{watch_id}/events")

        def cleaning(amount: str, changed: float) -> dict[str, object]:
            return {"type": "fee", "source": "airbnb", "listing_id": flat, "fee_id": "cleaning",
                    "label": "Cleaning fee", "basis": "per_stay", "amount": amount, "currency": "EUR",
                    "mandatory": True, "changed_at": stamp(changed)}

        def ours() -> Sse:  # the module's other listings nearby enter too
            found = stream.next()
            while found.data["listing_id"] != flat:
                found = stream.next()
            return found

        try:
            first = ours()
            assert (first.event, first.data["total"]) == ("entered", "300.00")
            post_ok(client, [cleaning("150", 1)])  # 450: above max_price
            left = ours()
            assert left.event == "left"
            post_ok(client, [cleaning("50", 2)])  # 350
            entered = ours()
            assert (entered.event, entered.data["total"]) == ("entered", "350.00")
            assert entered.data["total"] == search_total(client, flat, max_price="400")
        finally:
            stream.close()
