"""`staystream probe`: write a canary price like a partner would and time until a traveler sees it.

Internals can all look healthy while users see stale prices; the probe checks the promise itself
(an acknowledged write is in calendar and search within 1 s, 5 s at worst) from outside, over
HTTP, and exports the result as metrics for the alert rules (deploy/prometheus/).

Each run writes a `listing` and a one-night `rate` for source `probe` with a new price, then polls
the listing's calendar and a search around it until both show that price, and follows a watch
around the canary (made once per process and night, deleted at exit) until its event arrives:
the canary's price alternates between under and over the watch's `max_price`, so each run makes
it enter or leave the watch:

    $ staystream probe --url http://127.0.0.1:8080 --once
    {"ok": true, "ack_seconds": 0.004, "visible_seconds": 0.002, ...}

The canary lies at Point Nemo, the oceanic pole of inaccessibility in the South Pacific (48.8767 S,
123.3933 W, 2,688 km from the nearest land), and its night is `--days-ahead` days away (default
700, inside the default 730-day horizon), so no traveler's search ever meets it.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import http.client
import json
import os
import sys
import time
import urllib.parse
from dataclasses import asdict, dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

import msgspec

__all__ = ["CANARY_LAT", "CANARY_LON", "Probe", "Result", "add_arguments", "main"]

SOURCE = "probe"
CANARY_LAT, CANARY_LON = -48.8767, -123.3933  # Point Nemo
TOKEN_VARIABLE = "STAYSTREAM_TOKEN"  # the credential `staystream import` sends too
POLL_SECONDS = 0.01  # between two looks at calendar and search: far below the 1 s budget
WATCH_MAX_PRICE = Decimal(1500)  # the canary enters the watch under this and leaves it over it
OVER = Decimal(2000)  # added to the price of the runs that make the canary leave
VISIBLE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)  # 1.0: the alert's threshold


@dataclass
class Result:
    """One run, as printed (a JSON line) and exported."""

    ok: bool
    url: str
    listing_id: str
    night: str
    price: str
    at: str  # when the write was sent, UTC
    ack_seconds: float | None = None  # POST sent -> 200 received
    calendar_seconds: float | None = None  # 200 -> first calendar showing the price
    search_seconds: float | None = None  # 200 -> first search showing the price
    visible_seconds: float | None = None  # 200 -> both show it
    watch_seconds: float | None = None  # 200 -> the watch's event (entered / left) read from its stream
    error: str | None = None  # what failed, with the server's answer


class ProbeError(Exception):
    """A step of a run failed; the message says which and what the server answered."""


class Probe:
    def __init__(self, url: str, listing_id: str, days_ahead: int, timeout: float) -> None:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"--url: '{url}' is not an http(s) URL; expected like http://127.0.0.1:8080")
        self.url = url.rstrip("/")
        self.base_path = parts.path.rstrip("/")
        self.listing_id = listing_id
        self.days_ahead = days_ahead
        self.timeout = timeout
        kind = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
        self.connection = kind(parts.hostname, parts.port, timeout=timeout)
        self.headers = {"user-agent": "staystream-probe"}
        self.watch: tuple[str, dt.date] | None = None  # (watch_id, the night it watches)
        self.last_event_id = 0
        self.inside = False  # the canary matches the watch (after this process's previous run)
        self.trusted = False  # the previous run succeeded, so `inside` is known
        if os.environ.get(TOKEN_VARIABLE):
            self.headers["authorization"] = f"Bearer {os.environ[TOKEN_VARIABLE]}"

    def run(self) -> Result:
        """Write a new canary price and wait (up to `timeout`) until calendar and search show it."""
        now = dt.datetime.now(dt.UTC)
        night = now.date() + dt.timedelta(days=self.days_ahead)
        # A new price every run (cents from the clock), so an old value is never taken for the new one.
        price = Decimal(f"{100 + int(now.timestamp() * 100) % 90_000 / 100:.2f}")
        entering = not self.inside
        if not entering:
            price += OVER
        result = Result(False, self.url, self.listing_id, night.isoformat(), str(price),
                        now.isoformat(timespec="milliseconds").replace("+00:00", "Z"))
        try:
            if self.watch is None or self.watch[1] != night or not self.trusted:
                self._watch(now, night)
            sent = time.perf_counter()
            self._write(now, night, str(price))
            acked = time.perf_counter()
            result.ack_seconds = round(acked - sent, 6)
            self._wait_visible(result, night, price, acked)
            self._wait_for_event(result, "entered" if entering else "left", price, acked)
            self.inside = entering
            result.ok = self.trusted = True
        except ProbeError as exc:
            result.error = str(exc)
            self.trusted = False
        except (OSError, http.client.HTTPException) as exc:
            self.connection.close()  # reconnects on the next request
            self.trusted = False
            result.error = f"{self.url}: {type(exc).__name__}: {exc}"
        except (msgspec.DecodeError, KeyError, TypeError) as exc:  # a proxy's error page, another service
            result.error = f"{self.url}: an answer that is not staystream's: {type(exc).__name__}: {exc}"
        return result

    def _write(self, now: dt.datetime, night: dt.date, price: str) -> None:
        changed_at = now.isoformat(timespec="microseconds").replace("+00:00", "Z")
        events = [
            {"type": "listing", "source": SOURCE, "listing_id": self.listing_id, "name": "staystream probe canary",
             "kind": "other", "lat": CANARY_LAT, "lon": CANARY_LON, "max_guests": 1, "changed_at": changed_at},
            {"type": "rate", "source": SOURCE, "listing_id": self.listing_id, "start": night.isoformat(),
             "end": (night + dt.timedelta(days=1)).isoformat(), "price": price, "currency": "EUR",
             "changed_at": changed_at},
        ]
        body = b"\n".join(msgspec.json.encode(event) for event in events)
        status, answer = self._request("POST", "/v1/events", body, {"content-type": "application/x-ndjson"})
        if status != 200:
            raise ProbeError(f"write: POST /v1/events answered {status}: {_text(answer)}")
        reply = msgspec.json.decode(answer)
        if not isinstance(reply, dict) or reply.get("accepted") != len(events):
            raise ProbeError(f"write: the canary was not accepted: {_text(answer)}")

    def _watch(self, now: dt.datetime, night: dt.date) -> None:
        """A watch on the canary's night (again when the night moves on); before it, a write over
        its `max_price`, so the canary starts outside it and the run's write makes it enter."""
        self.delete_watch()
        self._write(now - dt.timedelta(microseconds=1), night, str(WATCH_MAX_PRICE + OVER))
        body = msgspec.json.encode({
            "lat": CANARY_LAT, "lon": CANARY_LON, "radius_km": 1, "checkin": night.isoformat(),
            "checkout": (night + dt.timedelta(days=1)).isoformat(), "guests": 1, "currency": "EUR",
            "max_price": str(WATCH_MAX_PRICE)})
        status, answer = self._request("POST", "/v1/watches", body, {"content-type": "application/json"})
        if status != 201:
            raise ProbeError(f"watch: POST /v1/watches answered {status}: {_text(answer)}")
        self.watch = (msgspec.json.decode(answer)["watch_id"], night)
        self.last_event_id = 0
        self.inside = False

    def delete_watch(self) -> None:
        if self.watch is not None:
            self._request("DELETE", f"/v1/watches/{self.watch[0]}")
            self.watch = None

    def _wait_for_event(self, result: Result, name: str, price: Decimal, acked: float) -> None:
        """Read the watch's stream (from the last event seen) until the canary's `name` event:
        `entered` must carry the price written; `left` carries the last total it was sent with."""
        assert self.watch is not None
        parts = urllib.parse.urlsplit(self.url)
        kind = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
        deadline = acked + self.timeout
        stream = kind(parts.hostname or "", parts.port, timeout=max(0.01, deadline - time.perf_counter()))
        try:
            stream.request("GET", f"{self.base_path}/v1/watches/{self.watch[0]}/events",
                           headers={**self.headers, "last-event-id": str(self.last_event_id)})
            response = stream.getresponse()
            if response.status != 200:
                raise ProbeError(f"watch: GET its events answered {response.status}: {_text(response.read())}")
            fields: dict[str, str] = {}
            while time.perf_counter() < deadline:
                line = response.readline().decode().rstrip("\r\n")
                if line:
                    key, _, value = line.partition(":")
                    fields[key] = value.strip()
                    continue
                if "id" in fields:
                    self.last_event_id = int(fields["id"])
                    data = msgspec.json.decode(fields.get("data", "{}"))
                    ours = data.get("source") == SOURCE and data.get("listing_id") == self.listing_id
                    priced = name == "left" or _decimal(data.get("total")) == price
                    if ours and fields.get("event") == name and priced:
                        result.watch_seconds = round(time.perf_counter() - acked, 6)
                        return
                fields = {}
        except TimeoutError:
            pass
        finally:
            stream.close()
        raise ProbeError(f"watch: no '{name}' event of the canary at {price} within {self.timeout:g} s of the write")

    def _wait_visible(self, result: Result, night: dt.date, price: Decimal, acked: float) -> None:
        quoted = urllib.parse.quote(self.listing_id, safe="")
        checkout = (night + dt.timedelta(days=1)).isoformat()
        calendar = f"/v1/listings/{SOURCE}/{quoted}/calendar?start={night}&end={checkout}"
        search = "/v1/search?" + urllib.parse.urlencode({
            "lat": CANARY_LAT, "lon": CANARY_LON, "radius_km": 1, "checkin": night.isoformat(),
            "checkout": checkout, "guests": 1, "limit": 100})
        deadline = acked + self.timeout
        while True:
            if result.calendar_seconds is None and self._calendar_shows(calendar, price):
                result.calendar_seconds = round(time.perf_counter() - acked, 6)
            if result.search_seconds is None and self._search_shows(search, price):
                result.search_seconds = round(time.perf_counter() - acked, 6)
            if result.calendar_seconds is not None and result.search_seconds is not None:
                result.visible_seconds = max(result.calendar_seconds, result.search_seconds)
                return
            if time.perf_counter() > deadline:
                missing = " and ".join(name for name, seconds in (
                    ("calendar", result.calendar_seconds), ("search", result.search_seconds)) if seconds is None)
                raise ProbeError(f"visible: {missing} did not show the acknowledged price {price} for "
                                 f"{night} within {self.timeout:g} s")
            time.sleep(POLL_SECONDS)

    def _calendar_shows(self, path: str, price: Decimal) -> bool:
        status, answer = self._request("GET", path)
        if status == 404:  # the listing itself is not visible yet
            return False
        if status != 200:
            raise ProbeError(f"calendar: GET {path} answered {status}: {_text(answer)}")
        return any(_decimal(night.get("price")) == price for night in msgspec.json.decode(answer)["nights"])

    def _search_shows(self, path: str, price: Decimal) -> bool:
        status, answer = self._request("GET", path)
        if status != 200:
            raise ProbeError(f"search: GET {path} answered {status}: {_text(answer)}")
        return any(found["source"] == SOURCE and found["listing_id"] == self.listing_id
                   and _decimal(found["total"]) == price for found in msgspec.json.decode(answer)["results"])

    def _request(self, method: str, path: str, body: bytes | None = None,
                 headers: dict[str, str] | None = None) -> tuple[int, bytes]:
        self.connection.request(method, self.base_path + path, body, {**self.headers, **(headers or {})})
        response = self.connection.getresponse()
        return response.status, response.read()

    def close(self) -> None:
        with contextlib.suppress(OSError, http.client.HTTPException):  # it expires after its night anyway
            self.delete_watch()
        self.connection.close()


class Exported:
    """The probe's metrics, in a registry of their own (served on --metrics-port)."""

    def __init__(self) -> None:
        # Imported here, not at the top: prometheus_client picks multiprocess mode when first
        # imported, and `cli` imports this module before `serve` sets PROMETHEUS_MULTIPROC_DIR.
        from prometheus_client import CollectorRegistry, Gauge, Histogram

        self.registry = CollectorRegistry()
        self.success = Gauge("staystream_probe_success", "1 if the last canary write was visible in time, else 0",
                             registry=self.registry)
        self.visible = Histogram(
            "staystream_probe_visible_seconds", "From the canary write's 200 to calendar and search showing it",
            buckets=VISIBLE_BUCKETS, registry=self.registry)
        self.watch = Histogram(
            "staystream_probe_watch_seconds", "From the canary write's 200 to its watch event on the SSE stream",
            buckets=VISIBLE_BUCKETS, registry=self.registry)
        self.last_run = Gauge(
            "staystream_probe_last_run_timestamp_seconds", "When the last probe run ended (Unix time)",
            registry=self.registry)

    def record(self, result: Result) -> None:
        self.success.set(1 if result.ok else 0)
        if result.visible_seconds is not None:
            self.visible.observe(result.visible_seconds)
        if result.watch_seconds is not None:
            self.watch.observe(result.watch_seconds)
        self.last_run.set_to_current_time()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", required=True, help="the staystream to probe, e.g. http://127.0.0.1:8080")
    parser.add_argument("--every", type=_positive_float, default=10.0, metavar="SECONDS",
                        help="seconds between two runs (default 10)")
    parser.add_argument("--once", action="store_true", help="run once, print the result, exit 0 if it passed, else 1")
    parser.add_argument("--timeout", type=_positive_float, default=5.0, metavar="SECONDS",
                        help="how long the canary may take to become visible after its 200 "
                        "(default 5: the worst case promised)")
    parser.add_argument("--metrics-port", type=int, metavar="PORT",
                        help="serve the results as Prometheus metrics on this port (all addresses)")
    parser.add_argument("--listing-id", default="canary",
                        help="the canary's listing id under source 'probe' (one per probe process; default canary)")
    parser.add_argument("--days-ahead", type=int, default=700,
                        help="how far ahead the canary's night is (default 700; within the server's horizon)")


def main(args: argparse.Namespace) -> int:
    try:
        probe = Probe(args.url, args.listing_id, args.days_ahead, args.timeout)
    except ValueError as exc:
        print(f"staystream probe: {exc}", file=sys.stderr)
        return 2
    exported = Exported()
    if args.metrics_port is not None:
        from prometheus_client import start_http_server

        start_http_server(args.metrics_port, registry=exported.registry)
    try:
        while True:
            started = time.monotonic()
            result = probe.run()
            exported.record(result)
            print(json.dumps(asdict(result)), flush=True)
            if args.once:
                return 0 if result.ok else 1
            time.sleep(max(0.0, args.every - (time.monotonic() - started)))
    except KeyboardInterrupt:
        return 0
    finally:
        probe.close()


def _decimal(value: Any) -> Decimal | None:
    try:
        return Decimal(str(value)) if value is not None else None
    except InvalidOperation:
        return None


def _text(answer: bytes) -> str:
    return answer[:500].decode(errors="replace").strip()


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a number; expected seconds > 0") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"'{text}' is not above 0; expected seconds > 0")
    return value
