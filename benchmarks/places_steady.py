"""What automatic matching costs the write path at its maximum: rate events as fast as the
server takes them, with listing events of a second marketplace mixed in, matching on and off.

    python -m benchmarks.places_steady [--pairs 3] [--listings 50000] [--seconds 15]
                                       [--listing-rate 250]

Each pair starts two fresh servers (2 workers), one with `--no-matching`, in alternating order
(off first in even pairs). Each is prefilled with `--listings` listings of source `bench` in the
load generator's 22 km x 22 km city (`benchmarks.workload`: 50,000 put about as many `bench`
listings within 400 m of a point as Singapore's listings have candidates), then for `--seconds`
the load generator sends rate events at max speed (closed loop, as `benchmarks.run throughput`)
while a thread of this process sends listing events of source `twin` at `--listing-rate` a
second (open loop, 10 a request, as live traffic: small groups are matched before their
answer). Twin i has the name, kind and capacity of `bench` listing i and a point within 30 m of
it, drawn again at every event, so each event moves a listing: with matching on it is scored
against its neighbours and joins (or stays with) its twin's place before the answer. Per server:
rate events/s and night updates/s after the warm-up, listing events acknowledged, the writer's
and the whole server's CPU over the load, `staystream_places_seconds` (matching's own time in
the writer) and the listings still pending at the end. Then medians, spread (min-max) and the
ratios on / off pair by pair.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from . import loadgen, scenarios, service, workload
from .loadgen import Job
from .scenarios import Settings
from .workload import City

TWIN_SOURCE = "twin"
LISTINGS_PER_REQUEST = 10
JITTER_DEGREES = 30 / 111_200  # ~30 m


@dataclass(frozen=True)
class Run:
    """One server under the mixed load, with matching on or off."""

    matching: bool
    events_per_s: float
    nights_per_s: float
    listing_events: int  # acknowledged
    listing_events_per_s: float
    writer_cpu_s: float
    server_cpu_s: float
    places_s: float  # staystream_places_seconds_sum over the load
    pending: float  # staystream_places_pending at the end

    def line(self) -> str:
        return (f"matching {'on ' if self.matching else 'off'}: {self.events_per_s:,.0f} rate events/s, "
                f"{self.nights_per_s:,.0f} nights/s, {self.listing_events:,} listing events "
                f"({self.listing_events_per_s:,.0f}/s); writer CPU {self.writer_cpu_s:.2f} s, server CPU "
                f"{self.server_cpu_s:.2f} s, places {self.places_s:.2f} s, pending at the end {self.pending:.0f}")


class TwinSender(threading.Thread):
    """Listing events of source `twin`, `rate` a second in requests of `LISTINGS_PER_REQUEST`."""

    def __init__(self, url: str, city: City, rate: float, seconds: float) -> None:
        super().__init__(daemon=True)
        self.url, self.city, self.rate, self.seconds = url, city, rate, seconds
        self.acked = 0
        self.failed = 0
        self.listing = 0
        self.random = random.Random(11)

    def body(self) -> bytes:
        lat, lon, kind, guests = self.city.places()
        changed_at = workload.rfc3339_ms(int(time.time() * 1000))
        lines = []
        for j in range(LISTINGS_PER_REQUEST):
            i = (self.listing + j) % self.city.listings
            name = workload.KINDS[kind[i]]
            lines.append(
                f'{{"type":"listing","source":"{TWIN_SOURCE}","listing_id":"T{i:07d}","name":"Bench {name} {i}",'
                f'"kind":"{name}","lat":{lat[i] + self.random.uniform(-JITTER_DEGREES, JITTER_DEGREES):.6f},'
                f'"lon":{lon[i] + self.random.uniform(-JITTER_DEGREES, JITTER_DEGREES):.6f},'
                f'"max_guests":{guests[i]},"city":"Paris","country":"FR","changed_at":"{changed_at}{j:03d}Z"}}')
        self.listing += LISTINGS_PER_REQUEST
        return "\n".join(lines).encode()

    def run(self) -> None:
        interval = LISTINGS_PER_REQUEST / self.rate
        started = time.monotonic()
        with httpx.Client(timeout=30) as client:
            sent = 0
            while (intended := started + sent * interval) < started + self.seconds:
                time.sleep(max(0.0, intended - time.monotonic()))
                answer = client.post(self.url + "/v1/events", content=self.body(),
                                     headers={"content-type": "application/x-ndjson"})
                sent += 1
                if answer.status_code == 200 and answer.json()["rejected"] == []:
                    self.acked += LISTINGS_PER_REQUEST
                else:
                    self.failed += 1


def run(matching: bool, listings: int, seconds: float, listing_rate: float, work: Path) -> Run:
    settings = Settings()
    data_dir = work / ("on" if matching else "off")
    shutil.rmtree(data_dir, ignore_errors=True)
    server = service.start(data_dir, 2, *([] if matching else ["--no-matching"]))
    try:
        scenarios.prefill(server, listings, settings, lambda line: None)
        jobs = loadgen.split(Job("127.0.0.1", server.port, "rates", settings.closed_connections, seconds,
                                 listings=(0, listings), city_listings=listings,
                                 events_per_request=settings.events_per_request, tag="write"), 1)
        twins = TwinSender(server.url, City(listings), listing_rate, seconds)
        metrics_before, cpu_before = server.metrics(), server.cpu_seconds()
        twins.start()
        result = loadgen.run(jobs)
        twins.join()
        metrics_after, cpu_after = server.metrics(), server.cpu_seconds()
        if twins.failed:
            raise RuntimeError(f"{twins.failed} listing requests failed; see {server.log_path}")
        summary = result.summary(warmup=settings.warmup_seconds)
        outcome = Run(
            matching, float(summary["events_per_s"]),  # type: ignore[arg-type]
            float(summary["night_updates_per_s"]),  # type: ignore[arg-type]
            twins.acked, twins.acked / seconds,
            cpu_after["writer"] - cpu_before["writer"],
            sum(cpu - cpu_before.get(role, 0.0) for role, cpu in cpu_after.items()),
            metrics_after.get("staystream_places_seconds_sum", 0.0)
            - metrics_before.get("staystream_places_seconds_sum", 0.0),
            metrics_after.get("staystream_places_pending", 0.0),
        )
        print(outcome.line(), flush=True)
        return outcome
    finally:
        server.stop()


def _spread(values: list[float], digits: int = 2) -> str:
    low, middle, high = min(values), statistics.median(values), max(values)
    return f"median {middle:,.{digits}f} (min {low:,.{digits}f}, max {high:,.{digits}f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=3, help="servers with matching off and on, alternating")
    parser.add_argument("--listings", type=int, default=50_000, help="bench listings prefilled (default 50000)")
    parser.add_argument("--seconds", type=float, default=15.0, help="of max write load (the first 3 warm up)")
    parser.add_argument("--listing-rate", type=float, default=250.0, help="twin listing events a second")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="places-steady-") as work:
        print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs; {args.listings:,} listings, "
              f"{args.seconds:.0f} s, {args.listing_rate:.0f} listing events/s", flush=True)
        pairs = []
        for index in range(args.pairs):
            order = (False, True) if index % 2 == 0 else (True, False)
            runs = {matching: run(matching, args.listings, args.seconds, args.listing_rate, Path(work))
                    for matching in order}
            pairs.append((runs[False], runs[True]))
        print(f"{len(pairs)} pairs, medians (min, max):")
        for label in ("events_per_s", "nights_per_s", "listing_events_per_s", "writer_cpu_s", "server_cpu_s",
                      "places_s"):
            off = [getattr(a, label) for a, _ in pairs]
            on = [getattr(b, label) for _, b in pairs]
            ratios = [b / a if a else float("nan") for a, b in zip(off, on, strict=True)]
            print(f"  {label}: off {_spread(off)}; on {_spread(on)}; on/off pair by pair {_spread(ratios, 3)}")
        print(f"load average {os.getloadavg()[0]:.2f}", flush=True)


if __name__ == "__main__":
    main()
