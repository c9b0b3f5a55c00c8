"""Watches at scale (issue 13): does the write path keep its speed with many watches, and does
an event still leave within 1 s of the write's 200?

Bars: with `watches` watches (100,000) over the city, the max write throughput (closed loop) is
at least 80% of the same server's without watches, and the alert latency p99 is at most 1 s.

One server, the prefilled city, then:

1. the max write throughput without watches;
2. `watches` watches created over HTTP (random 0.5-1.5 km circles over the city, random stays of
   1-7 nights in the calendar's range, so the load's writes keep touching them, under
   `MAX_NIGHTLY_EUR` a night: a dozen matching places each, as a traveler's alert), and a canary
   watch around a listing of its own away from the city; the canary's first event says the
   watcher has taken in every watch before it;
3. the max write throughput again, while a sampler makes the canary listing leave and enter the
   canary watch every `sample_every` seconds and times each write's 200 to the SSE event:
   latency through the watcher while it evaluates the load's changes against every watch.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import threading
import time
from dataclasses import dataclass
from typing import Any

import httpx
import numpy as np

from . import service, workload
from .scenarios import Bench, machine_busy, measured, prefill

NAME = "watches"
THROUGHPUT_FRACTION_BAR, LATENCY_P99_BAR_S = 0.8, 1.0
MAX_NIGHTLY_EUR = 65  # watches ask for stays under this a night: ~4% of the city's offers (50-400)
CANARY = "bench-canary"
CANARY_LAT, CANARY_LON = workload.CITY_LAT + 1.0, workload.CITY_LON  # ~110 km from the city


WATCHES: int | None = None  # `run.py --watches`


@dataclass(frozen=True)
class WatchSettings:
    watches: int = 100_000
    seconds: float = 20.0
    sample_every: float = 0.25
    create_concurrency: int = 32


def run(bench: Bench) -> dict[str, Any]:
    s = bench.settings
    quick = s.repeat == 1 and s.city_listings < 100_000
    ws = WatchSettings(watches=5_000, seconds=max(4.0, s.throughput_seconds)) if quick else WatchSettings()
    if WATCHES:
        ws = WatchSettings(watches=WATCHES, seconds=ws.seconds)
    workers = s.workers[-1]
    server = service.start(bench.workdir / "watches", workers, "--watches-per-address", str(ws.watches + 10),
                           "--watches-total", str(ws.watches + 10))
    try:
        prefill(server, s.city_listings, s, bench.log)
        jobs = bench.rate_jobs(server, s.city_listings, s.closed_connections, duration=ws.seconds)
        before, side_before = measured(server, jobs, s.warmup_seconds)
        base = before.summary(warmup=min(s.warmup_seconds, ws.seconds / 3))
        bench.log(f"  without watches: {base['events_per_s']:.0f} events/s")

        _post(server.url, [_canary_listing(), _canary_rate(available=True, at=1)])
        started = time.monotonic()
        asyncio.run(_create_watches(server.url, ws, s.city_listings))
        created_s = time.monotonic() - started
        canary = _Canary(server.url)
        taken_in_s = time.monotonic() - started
        bench.log(f"  {ws.watches} watches created in {created_s:.1f} s, taken in by the watcher in {taken_in_s:.1f} s")

        busy_before = machine_busy()
        sampler = threading.Thread(target=canary.sample, args=(ws.seconds, ws.sample_every), daemon=True)
        jobs = bench.rate_jobs(server, s.city_listings, s.closed_connections, duration=ws.seconds)
        sampler.start()
        after, side_after = measured(server, jobs, s.warmup_seconds)
        sampler.join()
        busy_after = machine_busy()
        loaded = after.summary(warmup=min(s.warmup_seconds, ws.seconds / 3))
        latencies = sorted(canary.latencies)
        metrics = server.metrics()
    finally:
        server.stop()
    ratio = float(loaded["events_per_s"]) / float(base["events_per_s"])
    p99 = float(np.percentile(latencies, 99)) if latencies else None
    return {
        "watches": ws.watches, "workers": workers, "listings": s.city_listings,
        "create_seconds": round(created_s, 1), "taken_in_seconds": round(taken_in_s, 1),
        "events_per_s_without": base["events_per_s"], "events_per_s_with": loaded["events_per_s"],
        "throughput_ratio": round(ratio, 3), "throughput_bar": THROUGHPUT_FRACTION_BAR,
        "ack_p99_ms_without": base["latency_ms"]["p99"], "ack_p99_ms_with": loaded["latency_ms"]["p99"],
        "alert_samples": len(latencies), "alert_missed": canary.missed,
        "alert_p50_s": round(statistics.median(latencies), 4) if latencies else None,
        "alert_p99_s": None if p99 is None else round(p99, 4),
        "alert_max_s": round(latencies[-1], 4) if latencies else None,
        "alert_p99_bar_s": LATENCY_P99_BAR_S,
        "watch_events": metrics.get("staystream_watch_events_total"),
        "server_cores_with": side_after["server_cores"], "server_cores_without": side_before["server_cores"],
        "machine_busy_cores_with": round(
            (busy_after[0] - busy_before[0]) / max(1e-9, busy_after[1] - busy_before[1]) * _cores(), 2),
        "other_load_cores_with": side_after["other_load_cores"],
        "pass": ratio >= THROUGHPUT_FRACTION_BAR and p99 is not None and p99 <= LATENCY_P99_BAR_S and not canary.missed,
    }


def _cores() -> int:
    import os

    return os.cpu_count() or 1


async def _create_watches(url: str, ws: WatchSettings, listings: int) -> None:
    rng = np.random.default_rng(13)
    lat = workload.CITY_LAT + rng.uniform(-workload.HALF_LAT, workload.HALF_LAT, ws.watches)
    lon = workload.CITY_LON + rng.uniform(-workload.HALF_LON, workload.HALF_LON, ws.watches)
    radius = rng.uniform(0.5, 1.5, ws.watches)
    checkin = workload.first_night() + rng.integers(0, workload.CALENDAR_NIGHTS - 8, ws.watches)
    nights = rng.integers(1, 8, ws.watches)
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(ws.watches):
        queue.put_nowait(i)

    async def create(client: httpx.AsyncClient) -> None:
        while not queue.empty():
            i = queue.get_nowait()
            body = {"lat": round(float(lat[i]), 5), "lon": round(float(lon[i]), 5),
                    "radius_km": round(float(radius[i]), 2), "checkin": workload.iso_day(int(checkin[i])),
                    "checkout": workload.iso_day(int(checkin[i] + nights[i])),
                    "guests": 2, "max_price": int(nights[i]) * MAX_NIGHTLY_EUR}
            response = await client.post("/v1/watches", json=body)
            if response.status_code != 201:
                raise RuntimeError(f"creating watch {i}: {response.status_code} {response.text}")

    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        await asyncio.gather(*(create(client) for _ in range(ws.create_concurrency)))


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
        self.latencies: list[float] = []
        self.missed = 0
        threading.Thread(target=self._follow, args=(f"{url}/v1/watches/{watch_id}/events",), daemon=True).start()
        self._wait_for("entered", time.monotonic() - 1, 1800)  # every watch before it was taken in

    def _follow(self, url: str) -> None:
        try:
            with httpx.stream("GET", url, timeout=httpx.Timeout(10, read=None)) as response:
                for line in response.iter_lines():
                    if line.startswith("event:"):
                        with self.event:
                            self.arrived.append((line.split(":", 1)[1].strip(), time.monotonic()))
                            self.event.notify_all()
        except httpx.HTTPError:
            pass  # the server stopped at the end of the run

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
        end = time.monotonic() + seconds
        available, at = True, 2
        while time.monotonic() < end:
            available = not available
            sent = time.monotonic()
            acked = _post(self.url, [_canary_rate(available, at)])
            at += 1
            arrived = self._wait_for("entered" if available else "left", sent, 10)
            if arrived is None:
                self.missed += 1
            else:
                self.latencies.append(max(0.0, arrived - acked))
            time.sleep(max(0.0, every - (time.monotonic() - sent)))


def rows(result: dict[str, Any]) -> list[str]:
    return [
        f"{result['watches']:,} watches over {result['listings']:,} listings ({result['workers']} workers): created in "
        f"{result['create_seconds']} s, taken in by the watcher in {result['taken_in_seconds']} s",
        f"max write throughput {result['events_per_s_without']:,.0f} events/s without, "
        f"{result['events_per_s_with']:,.0f} with: {result['throughput_ratio']:.0%} "
        f"(bar {result['throughput_bar']:.0%}); ack p99 "
        f"{result['ack_p99_ms_without']:.0f} -> {result['ack_p99_ms_with']:.0f} ms",
        f"alert latency (write 200 -> SSE event) p50 {result['alert_p50_s']} s, p99 {result['alert_p99_s']} s, max "
        f"{result['alert_max_s']} s over {result['alert_samples']} samples, {result['alert_missed']} missed "
        f"(bar p99 <= {result['alert_p99_bar_s']} s); server cores {result['server_cores_with']}; "
        f"other load {result['other_load_cores_with']} cores -> {'PASS' if result['pass'] else 'FAIL'}",
    ]
