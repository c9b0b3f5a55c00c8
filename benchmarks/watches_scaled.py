"""Watches in scaled mode (issue 13): an event still leaves within 1 s of the write's 200 when
the write, the evaluation and the stream are on three different nodes?

Per round, two deployments measured the same way, one after the other:

- `embedded`: one node on the embedded store (watches in SQLite, the outbox counter in shared
  memory): the baseline;
- `scaled`: PostgreSQL, three NATS servers, node A (`ingest,apply,search`), node B
  (`ingest,search`) and node C (`ingest`: it evaluates nothing and serves streams from
  PostgreSQL). Watches are created on A; the producer is whichever of A and B holds the shard.

Each has `--watches` background watches (random 0.5-1.5 km circles over a city of
`--listings` listings with prices, created before measuring) and a canary watch around a
listing of its own. `--samples` canary writes, alternately through B and C in `scaled`, make
the canary leave and enter its watch; each is timed from the write's 200 to the event on a
stream read on C (on the one node in `embedded`). Figures: p50 and p99 per round, the median
over rounds, the ratio scaled/embedded of each round, and the machine's load average beside.

    .venv/bin/python -m benchmarks.watches_scaled [--rounds 3 --samples 60 --watches 1000]
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import queue
import random
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from . import service

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from nats_fixtures import NatsCluster  # noqa: E402
from pg_fixtures import Postgres, create_database  # noqa: E402

LAT, LON = 48.85, 2.35  # Paris
CANARY = "watch-canary"
CANARY_LAT, CANARY_LON = LAT + 1.0, LON  # ~110 km away: only the canary watch sees it
CHECKIN_DAYS, NIGHTS = 20, 3
LOST_S = 30.0


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _night(days: int) -> str:
    return (dt.date.today() + dt.timedelta(days=days)).isoformat()


def _stamp(at: int) -> str:
    return (dt.datetime(2026, 1, 1, tzinfo=dt.UTC) + dt.timedelta(seconds=at)).strftime("%Y-%m-%dT%H:%M:%SZ")


def _post(client: httpx.Client, events: list[dict[str, Any]]) -> None:
    response = client.post("/v1/events", content="\n".join(json.dumps(e) for e in events),
                           headers={"content-type": "application/x-ndjson"})
    assert response.status_code == 200 and not response.json()["rejected"], response.text


def _listing(listing_id: str, lat: float, lon: float) -> dict[str, Any]:
    return {"type": "listing", "source": "bench", "listing_id": listing_id, "name": listing_id, "kind": "apartment",
            "lat": lat, "lon": lon, "max_guests": 4, "changed_at": _stamp(0)}


def _rate(listing_id: str, price: str, at: int, available: bool = True) -> dict[str, Any]:
    event = {"type": "rate", "source": "bench", "listing_id": listing_id, "start": _night(CHECKIN_DAYS - 5),
             "end": _night(CHECKIN_DAYS + NIGHTS + 5), "currency": "EUR", "changed_at": _stamp(at)}
    if available:
        event["price"] = price
    else:
        event["available"] = False
    return event


def _watch(lat: float, lon: float, radius_km: float) -> dict[str, Any]:
    return {"lat": lat, "lon": lon, "radius_km": radius_km, "checkin": _night(CHECKIN_DAYS),
            "checkout": _night(CHECKIN_DAYS + NIGHTS), "guests": 2}


class Events:
    """One SSE stream in a thread: (arrival time, event name) in `arrived`."""

    def __init__(self, url: str) -> None:
        self.arrived: queue.Queue[tuple[float, str]] = queue.Queue()
        self.stopped = False
        threading.Thread(target=self._read, args=(url,), daemon=True).start()

    def _read(self, url: str) -> None:
        with contextlib.suppress(httpx.HTTPError), \
                httpx.stream("GET", url, timeout=httpx.Timeout(10, read=None)) as response:
            for line in response.iter_lines():
                if self.stopped:
                    return
                if line.startswith("event:"):
                    self.arrived.put((time.monotonic(), line.split(":", 1)[1].strip()))

    def expect(self, name: str) -> float:
        deadline = time.monotonic() + LOST_S
        while True:
            at, event = self.arrived.get(timeout=max(0.0, deadline - time.monotonic()))
            if event == name:
                return at


def populate(writer: service.Service, creators: list[service.Service], listings: int, watches: int) -> str:
    """The city, its background watches and the canary watch (made on `creators[0]`); returns
    the canary watch's id once its first event says the watcher took in every watch before it."""
    rng = random.Random(7)
    with httpx.Client(base_url=writer.url, timeout=60) as client:
        events: list[dict[str, Any]] = []
        for i in range(listings):
            lat, lon = LAT + rng.uniform(-0.05, 0.05), LON + rng.uniform(-0.07, 0.07)
            events += [_listing(f"city-{i}", lat, lon), _rate(f"city-{i}", f"{rng.randint(50, 400)}.00", 1)]
            if len(events) >= 1000:
                _post(client, events)
                events = []
        _post(client, [*events, _listing(CANARY, CANARY_LAT, CANARY_LON), _rate(CANARY, "100.00", 1)])
    clients = [httpx.Client(base_url=creator.url, timeout=60) for creator in creators]
    for i in range(watches):
        body = _watch(LAT + rng.uniform(-0.05, 0.05), LON + rng.uniform(-0.07, 0.07), rng.uniform(0.5, 1.5))
        response = clients[i % len(clients)].post("/v1/watches", json=body)
        assert response.status_code == 201, response.text
    for client in clients:
        client.close()
    created = httpx.post(creators[0].url + "/v1/watches", json=_watch(CANARY_LAT, CANARY_LON, 1), timeout=60)
    assert created.status_code == 201, created.text
    return str(created.json()["watch_id"])


def measure(writers: list[service.Service], reader: service.Service, watch_id: str, samples: int) -> list[float]:
    stream = Events(f"{reader.url}/v1/watches/{watch_id}/events")
    stream.expect("entered")
    latencies = []
    clients = [httpx.Client(base_url=w.url, timeout=30) for w in writers]
    try:
        for i in range(samples):
            available = i % 2 == 1
            _post(clients[i % len(clients)], [_rate(CANARY, "100.00", 10 + i, available)])
            acknowledged = time.monotonic()
            latencies.append(stream.expect("entered" if available else "left") - acknowledged)
            time.sleep(0.1)
    finally:
        stream.stopped = True
        for client in clients:
            client.close()
    return latencies


def embedded_case(args: argparse.Namespace, round_number: int, workdir: Path) -> list[float]:
    node = service.start(workdir / f"embedded-{round_number}", 1, "--watches-per-address", str(args.watches + 10))
    try:
        watch_id = populate(node, [node], args.listings, args.watches)
        return measure([node], node, watch_id, args.samples)
    finally:
        node.stop()


def scaled_case(args: argparse.Namespace, postgres: Postgres, round_number: int, workdir: Path) -> list[float]:
    uri = create_database(postgres, f"watches_scaled_{round_number}")
    with NatsCluster(3) as cluster:
        common = ["--store", uri, "--stream", cluster.url, "--stream-partitions", "4", "--stream-replicas", "1",
                  "--watches-per-address", str(args.watches + 10)]
        nodes = [service.start(workdir / f"{name}-{round_number}", 1, *common, "--role", role)
                 for name, role in (("a", "ingest,apply,search"), ("b", "ingest,search"), ("c", "ingest"))]
        try:
            watch_id = populate(nodes[1], nodes[:1], args.listings, args.watches)
            return measure(nodes[1:], nodes[2], watch_id, args.samples)
        finally:
            for node in nodes:
                node.stop()


def quantiles(latencies: list[float]) -> dict[str, float]:
    ordered = sorted(latencies)
    return {"p50_ms": 1000 * statistics.median(ordered),
            "p99_ms": 1000 * ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))],
            "max_ms": 1000 * ordered[-1]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--samples", type=int, default=60)
    parser.add_argument("--watches", type=int, default=1000)
    parser.add_argument("--listings", type=int, default=2000)
    args = parser.parse_args()
    rounds = []
    with tempfile.TemporaryDirectory(prefix="staystream-watches-scaled-") as temporary, Postgres() as postgres:
        workdir = Path(temporary)
        for number in range(args.rounds):
            load = os.getloadavg()[0]
            embedded = quantiles(embedded_case(args, number, workdir))
            scaled = quantiles(scaled_case(args, postgres, number, workdir))
            rounds.append({"embedded": embedded, "scaled": scaled, "load_average": [load, os.getloadavg()[0]],
                           "ratio_p50": scaled["p50_ms"] / embedded["p50_ms"],
                           "ratio_p99": scaled["p99_ms"] / embedded["p99_ms"]})
            log(f"round {number + 1}: embedded p50 {embedded['p50_ms']:.0f} ms p99 {embedded['p99_ms']:.0f} ms; "
                f"scaled p50 {scaled['p50_ms']:.0f} ms p99 {scaled['p99_ms']:.0f} ms "
                f"(load average {load:.1f} -> {os.getloadavg()[0]:.1f})")
    summary = {
        case: {key: statistics.median(r[case][key] for r in rounds) for key in ("p50_ms", "p99_ms", "max_ms")}
        for case in ("embedded", "scaled")}
    print(json.dumps({"settings": vars(args), "rounds": rounds, "median": summary}, indent=2))


if __name__ == "__main__":
    main()
