"""How fast places are kept: 100,000 listings in a dense city, built at once and updated one by one.

    python -m benchmarks.places_match [--listings 100000] [--updates 2000] [--seed 1]

Synthetic Paris: listings spread over the city's ~105 km2 (about 950 per km2, as Paris has on
Airbnb alone), each a property sold on 1-3 of four sources. Names come from the real labeled
pairs (tests/data/places), a property's other sources carry the pair's other name or a noisy
variant (a word dropped or added, case), its points are blurred by up to 150 m, hotels have
addresses. Reports the batch build (`PlaceGraph.apply` of every listing at once) and single
updates (one `apply` per listing event: a listing moved and renamed slightly, or a new one).
"""

from __future__ import annotations

import argparse
import functools
import math
import os
import random
import resource
import statistics
import sys
import time
from pathlib import Path

from staystream.places.graph import PlaceGraph
from staystream.places.types import PlaceListing

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from overture_pairs import DEFAULT_PATH, Pair, load

SOUTH, NORTH, WEST, EAST = 48.815, 48.902, 2.25, 2.42
SOURCES = ("airbnb", "booking", "expedia", "vrbo")
NOISE_WORDS = ("Paris", "Centre", "Charming", "Cosy", "Studio", "Hotel", "Apartment", "View", "Marais")


def _jitter(lat: float, lon: float, rnd: random.Random, metres: float) -> tuple[float, float]:
    distance, bearing = metres * math.sqrt(rnd.random()), rnd.uniform(0, 2 * math.pi)
    return (lat + distance * math.cos(bearing) / 111_195.0,
            lon + distance * math.sin(bearing) / (111_195.0 * math.cos(math.radians(lat))))


def _noisy(name: str, rnd: random.Random) -> str:
    words = name.split()
    roll = rnd.random()
    if roll < 0.3 and len(words) > 1:
        words.pop(rnd.randrange(len(words)))
    elif roll < 0.6:
        words.insert(rnd.randrange(len(words) + 1), rnd.choice(NOISE_WORDS))
    elif roll < 0.8:
        return " ".join(words).upper()
    return " ".join(words)


@functools.cache
def _pairs() -> list[Pair]:
    return load(DEFAULT_PATH)


def city(count: int, rnd: random.Random) -> list[PlaceListing]:
    pairs = _pairs()
    listings: list[PlaceListing] = []
    n = 0
    while len(listings) < count:
        pair = rnd.choice(pairs)
        lat, lon = rnd.uniform(SOUTH, NORTH), rnd.uniform(WEST, EAST)
        kind = rnd.choice(("apartment", "apartment", "private_room", "hotel_room", "house"))
        guests = rnd.choice((2, 2, 3, 4, 6))
        for j, source in enumerate(rnd.sample(SOURCES, rnd.choice((1, 1, 2, 3)))):
            if j == 0:
                name = pair.names[0]
            else:
                name = pair.names[1] if pair.same and rnd.random() < 0.5 else _noisy(pair.names[0], rnd)
            address = pair.addresses[j % 2] if source in ("booking", "expedia") else None
            plat, plon = _jitter(lat, lon, rnd, 150.0 if source in ("airbnb", "vrbo") else 30.0)
            listings.append(PlaceListing(source, f"{n}", plat, plon, name or "Flat", kind, guests, address))
            n += 1
    return listings[:count]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--listings", type=int, default=100_000)
    parser.add_argument("--updates", type=int, default=2_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rnd = random.Random(args.seed)
    listings = city(args.listings, rnd)

    graph = PlaceGraph()
    started, cpu = time.perf_counter(), time.process_time()
    graph.apply(listings)
    build, build_cpu = time.perf_counter() - started, time.process_time() - cpu
    places = graph.places()
    joined = sum(len(p.members) for p in places.values() if len(p.members) > 1)
    print(f"batch build: {len(listings):,} listings in {build:.2f} s = {len(listings) / build:,.0f} listings/s "
          f"(CPU {build_cpu:.2f} s = {len(listings) / build_cpu:,.0f}/s); "
          f"{len(places):,} places, {joined:,} listings in multi-listing places")

    latencies = []
    cpu = time.process_time()
    for i in range(args.updates):
        if i % 2 == 0:  # an existing listing moves a little and is renamed
            old = rnd.choice(listings)
            lat, lon = _jitter(old.lat, old.lon, rnd, 20.0)
            event = PlaceListing(old.source, old.listing_id, lat, lon, _noisy(old.name, rnd), old.kind,
                                 old.max_guests, old.address)
        else:  # a new listing
            event = city(1, rnd)[0]
            event = PlaceListing(event.source, f"new{i}", event.lat, event.lon, event.name, event.kind,
                                 event.max_guests, event.address)
        started = time.perf_counter()
        graph.apply([event])
        latencies.append(time.perf_counter() - started)
    total, total_cpu = sum(latencies), time.process_time() - cpu
    quantiles = statistics.quantiles(latencies, n=100)
    print(f"single updates: {args.updates:,} in {total:.2f} s = {args.updates / total:,.0f} listings/s "
          f"(CPU with the events' making {total_cpu:.2f} s); "
          f"p50 {quantiles[49] * 1e3:.2f} ms, p99 {quantiles[98] * 1e3:.2f} ms")
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs; max RSS {rss_mb:.0f} MB; "
          f"Python {sys.version.split()[0]}")


if __name__ == "__main__":
    main()
