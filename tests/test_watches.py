"""Watches over real HTTP against real server processes: SSE events and resume, totals equal to
search's, signed webhooks to a real receiver, a kill -9 in the middle of a webhook outage, limits,
expiry, validation.
"""

from __future__ import annotations

import hashlib
import hmac
import http.server
import json
import queue
import socket
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from conftest import Server, start_server
from wire_events import listing, night, post_ok, rate, unique_id

LAT, LON = 52.37, 4.89  # Amsterdam
WAIT = 10.0  # seconds a test waits for an event it expects (the promise is 1 s)


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
        with httpx.stream("GET", url, headers=headers, timeout=httpx.Timeout(5, read=None)) as response:
            self.status = response.status_code
            fields: dict[str, str] = {}
            for line in response.iter_lines():
                if self.stopped.is_set():
                    return
                if not line:
                    if "event" in fields:
                        self.events.put(Sse(int(fields["id"]), fields["event"], json.loads(fields["data"]), time.monotonic()))
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
