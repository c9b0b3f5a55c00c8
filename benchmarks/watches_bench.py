"""Watches at scale (issue 13): does the write path keep its speed with many watches, and does
an event still leave within 1 s of the write's 200?

Bars: with `watches` watches (100,000) over the city, the max write throughput (closed loop) is
at least 80% of the same server's without watches, and the alert latency p99 is at most 1 s at
half of that max (the `latency` scenario's operating point; at max speed it is reported too).

One server with the default watch limits (1,000 per client address, 200,000 in all), the
prefilled city, then (`--repeat` N: phases 1, 3 and 4 run N times each, on the one server, for
medians; creating and taking in 100,000 watches is most of a run, so it is done once):

1. the max write throughput without watches (N times);
2. `watches` watches created over raw HTTP/1.1 keep-alive, 1,000 from each of 100 loopback
   addresses (127.0.0.2-101: the per-address limit is the default one), each a random 0.5-1.5 km
   circle over the city with a random stay of 1-7 nights in the calendar's range (so the load's
   writes keep touching them) under `MAX_NIGHTLY_EUR` a night (a dozen matching places each, as
   a traveler's alert); then a canary watch around a listing of its own away from the city,
   whose first event says the watcher has taken in every watch before it;
3. the max write throughput again, while a sampler makes the canary listing leave and enter the
   canary watch every `sample_every` seconds and times each write's 200 to the SSE event:
   latency through the watcher while it evaluates the load's changes against every watch;
4. once the canary answers again (the watcher has caught up with 3: how long that took is
   reported), the same sampler beside an open-loop load at half the median max of 1, then the
   canary is waited for again before the next round.

An event later than `LATE_S` counts as late (its latency is kept: it weighs in the p99), one
that never comes within `LOST_S` as missed (a bug: events are differences of state, and each
canary write changes the state).
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import numpy as np

from . import service, workload
from .scenarios import Bench, machine_busy, measured, prefill

NAME = "watches"
THROUGHPUT_FRACTION_BAR, LATENCY_P99_BAR_S = 0.8, 1.0
LATE_S, LOST_S = 10.0, 60.0  # an alert later than this is late; one not there after LOST_S is missed
CATCH_UP_S = 120.0  # the longest wait for the watcher to catch up between phases
MAX_NIGHTLY_EUR = 65  # watches ask for stays under this a night: ~4% of the city's offers (50-400)
CANARY = "bench-canary"
CANARY_LAT, CANARY_LON = workload.CITY_LAT + 1.0, workload.CITY_LON  # ~110 km from the city


WATCHES: int | None = None  # `run.py --watches`


@dataclass(frozen=True)
class WatchSettings:
    watches: int = 100_000
    seconds: float = 12.0
    sample_every: float = 0.25
    addresses: int = 100  # loopback client addresses the watches come from (1,000 each by default)


def run(bench: Bench) -> dict[str, Any]:
    from .run import aggregate  # run.py imports this module

    s = bench.settings
    quick = s.city_listings < 100_000  # a smoke run (`--quick`, or a small `--listings`)
    ws = WatchSettings(5_000, max(2.0, s.throughput_seconds), addresses=50) if quick else WatchSettings()
    if WATCHES:
        ws = WatchSettings(watches=WATCHES, seconds=ws.seconds, addresses=max(2, min(250, -(-WATCHES // 1000))))
    workers = s.workers[-1]
    warmup = min(s.warmup_seconds, ws.seconds / 3)
    server = service.start(bench.workdir / "watches", workers)
    try:
        prefill(server, s.city_listings, s, bench.log)
        without = []
        for _ in range(s.repeat):
            result, side = measured(server, bench.rate_jobs(server, s.city_listings, s.closed_connections,
                                                            duration=ws.seconds), s.warmup_seconds)
            without.append({**result.summary(warmup=warmup), "side": side})
            bench.log(f"  without watches: {without[-1]['events_per_s']:.0f} events/s")
        base_rate = statistics.median(float(r["events_per_s"]) for r in without)

        _post(server.url, [_canary_listing(), _canary_rate(available=True, at=1)])
        started = time.monotonic()
        asyncio.run(_create_watches(server.port, ws))
        created_s = time.monotonic() - started
        canary = _Canary(server.url)
        taken_in_s = time.monotonic() - started
        bench.log(f"  {ws.watches} watches created in {created_s:.1f} s ({ws.watches / created_s:.0f}/s), "
                  f"taken in by the watcher in {taken_in_s:.1f} s")
        rounds = [_round(bench, server, canary, ws, warmup, without[i], base_rate) for i in range(s.repeat)]
        metrics = server.metrics()
    finally:
        server.stop()
    median = aggregate(rounds)
    p99 = (median["alerts_at_half_load"]["p99_s"] or {}).get("median")
    return {
        "watches": ws.watches, "addresses": ws.addresses, "workers": workers, "listings": s.city_listings,
        "seconds_per_phase": ws.seconds, "repeat": s.repeat,
        "create_seconds": round(created_s, 1), "creates_per_s": round(ws.watches / created_s),
        "taken_in_seconds": round(taken_in_s, 1), "throughput_bar": THROUGHPUT_FRACTION_BAR,
        "alert_p99_bar_s": LATENCY_P99_BAR_S, "watch_events": metrics.get("staystream_watch_events_total"),
        "median": median, "runs": rounds,
        "pass": (median["throughput_ratio"]["median"] >= THROUGHPUT_FRACTION_BAR and isinstance(p99, float)
                 and p99 <= LATENCY_P99_BAR_S
                 and not any(r["alerts_at_half_load"]["missed"] or r["alerts_at_max_load"]["missed"] for r in rounds)),
    }


def _round(bench: Bench, server: service.Service, canary: _Canary, ws: WatchSettings, warmup: float,
           without: dict[str, Any], base_rate: float) -> dict[str, Any]:
    """One round with the watches: max load, the watcher caught up, half load, caught up again."""
    s = bench.settings
    at_max = _sampled(canary, ws, lambda: measured(
        server, bench.rate_jobs(server, s.city_listings, s.closed_connections, duration=ws.seconds),
        s.warmup_seconds))
    loaded = at_max["load"].summary(warmup=warmup)
    caught_up_max = canary.catch_up(CATCH_UP_S)
    bench.log(f"  with watches: {loaded['events_per_s']:.0f} events/s, alert p99 {at_max['alerts']['p99_s']} s; "
              f"caught up {caught_up_max} s after")
    half_rate = 0.5 * base_rate / s.events_per_request
    at_half = _sampled(canary, ws, lambda: measured(
        server, bench.rate_jobs(server, s.city_listings, s.open_connections, schedule=((ws.seconds, half_rate),)),
        s.warmup_seconds))
    half = at_half["load"].summary(warmup=warmup)
    caught_up_half = canary.catch_up(CATCH_UP_S)
    bench.log(f"  half load: {half['events_per_s']:.0f} events/s, alert p99 {at_half['alerts']['p99_s']} s")
    return {
        "events_per_s_without": without["events_per_s"], "events_per_s_with": loaded["events_per_s"],
        "throughput_ratio": round(float(loaded["events_per_s"]) / float(without["events_per_s"]), 3),
        "ack_p99_ms_without": without["latency_ms"]["p99"], "ack_p99_ms_with": loaded["latency_ms"]["p99"],
        "half_load_events_per_s": half["events_per_s"], "ack_p99_ms_half": half["latency_ms"]["p99"],
        "alerts_at_max_load": at_max["alerts"], "alerts_at_half_load": at_half["alerts"],
        # the canary's one alert after each phase: how far behind the watcher was (None: not in CATCH_UP_S)
        "catch_up_s_after_max": caught_up_max, "catch_up_s_after_half": caught_up_half,
        "server_cores_without": without["side"]["server_cores"], "server_cores_with": at_max["side"]["server_cores"],
        "server_cores_half": at_half["side"]["server_cores"],
        "machine_busy_cores_with": at_max["machine_busy_cores"],
        "machine_busy_cores_half": at_half["machine_busy_cores"],
        "other_load_cores_without": without["side"]["other_load_cores"],
        "other_load_cores_with": at_max["side"]["other_load_cores"],
        "other_load_cores_half": at_half["side"]["other_load_cores"],
    }


def _sampled(canary: _Canary, ws: WatchSettings, load: Callable[[], tuple[Any, dict[str, Any]]]) -> dict[str, Any]:
    """Run `load` (a `measured` run) while the canary is sampled; the load's result, its server
    side, the canary's alert latencies and how busy the whole machine was."""
    busy_before = machine_busy()
    canary.reset()
    sampler = threading.Thread(target=canary.sample, args=(ws.seconds, ws.sample_every), daemon=True)
    sampler.start()
    result, side = load()
    sampler.join()
    busy_after = machine_busy()
    cores = (busy_after[0] - busy_before[0]) / max(1e-9, busy_after[1] - busy_before[1]) * (os.cpu_count() or 1)
    return {"load": result, "side": side, "alerts": canary.summary(), "machine_busy_cores": round(cores, 2)}


async def _create_watches(port: int, ws: WatchSettings) -> None:
    """`ws.watches` watches over raw HTTP/1.1 keep-alive, one connection per client address,
    all addresses at once (each worker commits the creations that wait together)."""
    rng = np.random.default_rng(13)
    lat = workload.CITY_LAT + rng.uniform(-workload.HALF_LAT, workload.HALF_LAT, ws.watches)
    lon = workload.CITY_LON + rng.uniform(-workload.HALF_LON, workload.HALF_LON, ws.watches)
    radius = rng.uniform(0.5, 1.5, ws.watches)
    checkin = workload.first_night() + rng.integers(0, workload.CALENDAR_NIGHTS - 8, ws.watches)
    nights = rng.integers(1, 8, ws.watches)

    def request(i: int) -> bytes:
        body = json.dumps({
            "lat": round(float(lat[i]), 5), "lon": round(float(lon[i]), 5), "radius_km": round(float(radius[i]), 2),
            "checkin": workload.iso_day(int(checkin[i])), "checkout": workload.iso_day(int(checkin[i] + nights[i])),
            "guests": 2, "max_price": int(nights[i]) * MAX_NIGHTLY_EUR}).encode()
        return (f"POST /v1/watches HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\n\r\n").encode() + body

    async def from_address(address: str, share: np.ndarray) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(address, 0))
        try:
            for i in share.tolist():
                writer.write(request(i))
                head = await reader.readuntil(b"\r\n\r\n")
                length = int(head.lower().split(b"content-length:", 1)[1].split(b"\r\n", 1)[0])
                answer = await reader.readexactly(length)
                if head[9:12] != b"201":
                    raise RuntimeError(f"creating watch {i} from {address}: {head[:12]!r} {answer[:300]!r}")
        finally:
            writer.close()

    shares = np.array_split(np.arange(ws.watches), ws.addresses)
    await asyncio.gather(*(from_address(f"127.0.0.{2 + a}", share) for a, share in enumerate(shares)))


def _post(url: str, events: list[dict[str, object]]) -> float:
    """POST the events; returns time.monotonic() when the 200 arrived."""
    body = b"".join(json.dumps(e).encode() + b"\n" for e in events)
    response = httpx.post(url + "/v1/events", content=body, headers={"content-type": "application/x-ndjson"},
                          timeout=30)
    response.raise_for_status()
    return time.monotonic()


def _stamp(at: int) -> str:
    moment = time.time() - 3600 + at * 1e-3
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(moment)) + f".{int(moment * 1000) % 1000:03d}Z"


def _canary_listing() -> dict[str, object]:
    return {"type": "listing", "source": "bench", "listing_id": CANARY, "name": "canary", "kind": "apartment",
            "lat": CANARY_LAT, "lon": CANARY_LON, "max_guests": 4, "changed_at": _stamp(0)}


def _canary_rate(available: bool, at: int) -> dict[str, object]:
    first = workload.first_night() + 10
    event: dict[str, object] = {
        "type": "rate", "source": "bench", "listing_id": CANARY, "start": workload.iso_day(first),
        "end": workload.iso_day(first + 2), "currency": "EUR", "changed_at": _stamp(at), "available": available}
    if available:
        event["price"] = "100.00"
    return event


class _Canary:
    """A watch around the canary listing, followed over SSE; `sample` times write -> event."""

    def __init__(self, url: str) -> None:
        self.url = url
        first = workload.first_night() + 10
        body = {"lat": CANARY_LAT, "lon": CANARY_LON, "radius_km": 1, "checkin": workload.iso_day(first),
                "checkout": workload.iso_day(first + 2)}
        watch_id = httpx.post(url + "/v1/watches", json=body, timeout=60).json()["watch_id"]
        self.arrived: list[tuple[str, float]] = []
        self.event = threading.Condition()
        self.available, self.at = True, 2  # the canary's state, and the next write's changed_at step
        self.reconnects = 0  # of the SSE stream, since the start
        self.reset()
        threading.Thread(target=self._follow, args=(f"{url}/v1/watches/{watch_id}/events",), daemon=True).start()
        self._wait_for("entered", time.monotonic() - 1, 1800)  # every watch before it was taken in

    def reset(self) -> None:
        self.latencies: list[float] = []
        self.late: list[float] = []  # seconds into the sampling when a late alert's write was acknowledged
        self.missed = 0

    def _follow(self, url: str) -> None:
        """Read the stream; when it ends, reconnect with `Last-Event-ID` as a browser would (and
        count it: an alert missed while the stream was down is the stream's, not the watcher's)."""
        last_id: str | None = None
        while True:
            headers = {} if last_id is None else {"last-event-id": last_id}
            try:
                with httpx.stream("GET", url, headers=headers, timeout=httpx.Timeout(10, read=None)) as response:
                    if response.status_code == 404:
                        return  # the server is stopping
                    for line in response.iter_lines():
                        if line.startswith("id:"):
                            last_id = line.split(":", 1)[1].strip()
                        elif line.startswith("event:"):
                            with self.event:
                                self.arrived.append((line.split(":", 1)[1].strip(), time.monotonic()))
                                self.event.notify_all()
            except httpx.ConnectError:
                return  # the server stopped at the end of the run
            except httpx.HTTPError:
                pass
            self.reconnects += 1
            time.sleep(0.2)

    def _wait_for(self, name: str, since: float, timeout: float) -> float | None:
        deadline = time.monotonic() + timeout
        with self.event:
            while True:
                for event, at in self.arrived:
                    if event == name and at >= since:
                        self.arrived.clear()
                        return at
                if not self.event.wait(max(0.0, deadline - time.monotonic())):
                    return None

    def sample(self, seconds: float, every: float) -> None:
        """Flip the canary every `every` seconds for `seconds`, each time waiting for its event
        (so no two flips are ever evaluated together: each must make one)."""
        begun = time.monotonic()
        end = begun + seconds
        while time.monotonic() < end:
            self.available = not self.available
            sent = time.monotonic()
            acked = _post(self.url, [_canary_rate(self.available, self.at)])
            self.at += 1
            arrived = self._wait_for("entered" if self.available else "left", sent, LOST_S)
            if arrived is None:
                self.missed += 1
                continue
            self.latencies.append(max(0.0, arrived - acked))
            if arrived - acked > LATE_S:
                self.late.append(round(acked - begun, 1))
            time.sleep(max(0.0, every - (time.monotonic() - sent)))

    def catch_up(self, timeout: float) -> float | None:
        """Flip the canary once and wait for its event: the seconds from the write's 200 to it,
        about how far behind the watcher is (None if it did not come within `timeout`)."""
        self.available = not self.available
        sent = time.monotonic()
        acked = _post(self.url, [_canary_rate(self.available, self.at)])
        self.at += 1
        arrived = self._wait_for("entered" if self.available else "left", sent, timeout)
        return None if arrived is None else round(max(0.0, arrived - acked), 2)

    def summary(self) -> dict[str, Any]:
        latencies = sorted(self.latencies)
        return {
            "samples": len(latencies), "missed": self.missed, "late": len(self.late), "late_at_s": self.late,
            "stream_reconnects": self.reconnects,
            "p50_s": round(statistics.median(latencies), 4) if latencies else None,
            "p99_s": round(float(np.percentile(latencies, 99)), 4) if latencies else None,
            "max_s": round(latencies[-1], 4) if latencies else None,
        }


def rows(result: dict[str, Any]) -> list[str]:
    m = result["median"]
    half, top = m["alerts_at_half_load"], m["alerts_at_max_load"]

    def spread(value: dict[str, float] | None, unit: str = "", scale: float = 1.0, digits: int = 2) -> str:
        if not isinstance(value, dict):  # no figure in the first round (no sample, no catch-up)
            return f"{value}"
        numbers = [round(value[k] * scale, digits) for k in ("median", "min", "max")]
        return f"{numbers[0]:,}{unit} ({numbers[1]:,}-{numbers[2]:,})"

    def alerts(a: dict[str, Any]) -> str:
        return (f"p50 {spread(a['p50_s'], ' s')}, p99 {spread(a['p99_s'], ' s')}, max {spread(a['max_s'], ' s')}; "
                f"{spread(a['samples'], digits=0)} samples, {spread(a['late'], digits=0)} late, "
                f"{spread(a['missed'], digits=0)} missed")

    return [
        f"{result['watches']:,} watches from {result['addresses']} addresses over {result['listings']:,} listings "
        f"({result['workers']} workers): created in {result['create_seconds']} s ({result['creates_per_s']}/s), "
        f"taken in by the watcher in {result['taken_in_seconds']} s; medians (min-max) of {result['repeat']} "
        f"rounds of {result['seconds_per_phase']} s phases",
        f"max write throughput {spread(m['events_per_s_without'], digits=0)} events/s without, "
        f"{spread(m['events_per_s_with'], digits=0)} with: {spread(m['throughput_ratio'], '%', 100, 0)} "
        f"(bar {result['throughput_bar']:.0%}); ack p99 {spread(m['ack_p99_ms_without'], ' ms', digits=0)} -> "
        f"{spread(m['ack_p99_ms_with'], ' ms', digits=0)}",
        f"alert latency (write 200 -> SSE event) at max load: {alerts(top)}; the watcher caught up "
        f"{spread(m['catch_up_s_after_max'], ' s')} after",
        f"at half load ({spread(m['half_load_events_per_s'], digits=0)} events/s): {alerts(half)} "
        f"(bar p99 <= {result['alert_p99_bar_s']} s)",
        f"server cores without / with / half {_total(m['server_cores_without']):.2f} / "
        f"{_total(m['server_cores_with']):.2f} / {_total(m['server_cores_half']):.2f} (medians); other load "
        f"{m['other_load_cores_without']['median']} / {m['other_load_cores_with']['median']} / "
        f"{m['other_load_cores_half']['median']} cores -> {'PASS' if result['pass'] else 'FAIL'}",
    ]


def _total(cores: dict[str, Any]) -> float:
    """The median cores of every server process together."""
    return sum(float(role["median"]) for role in cores.values())
