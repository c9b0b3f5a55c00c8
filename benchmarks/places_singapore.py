"""Real Airbnb listings against a synthetic second marketplace: how places fare on real titles.

    python -m benchmarks.places_singapore [--seed 1]

Every listing of tests/data/singapore (Inside Airbnb, 3,483 listings) gets a twin on a second
source: its point blurred uniformly within 150 m, its name as is (`exact`) or with the noise of
benchmarks/places_match.py (a word dropped or added, upper case). Reports how many twins end up
in one place (recall), how many two-listing places pair different listings (against
precision), and the time to build. Real names there are Airbnb's generated summaries ("Rental
unit in Singapore · ★4.8 · 1 bedroom · 1 bed · 1 bath"), the hard case for text matching.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import math
import random
import time
from pathlib import Path

from benchmarks.places_match import _noisy
from staystream.places import PlaceGraph, PlaceListing, listing_key

LISTINGS = Path(__file__).resolve().parents[1] / "tests/data/singapore/listings.csv.gz"
KINDS = {"Entire home/apt": "apartment", "Private room": "private_room", "Shared room": "shared_room",
         "Hotel room": "hotel_room"}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    with gzip.open(LISTINGS, "rt", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    for variant in ("exact", "noisy"):
        rnd = random.Random(args.seed)
        events = []
        for row in rows:
            lat, lon = float(row["latitude"]), float(row["longitude"])
            kind, guests = KINDS.get(row["room_type"], "other"), int(row["accommodates"] or 1)
            events.append(PlaceListing("airbnb", row["id"], lat, lon, row["name"], kind, guests))
            distance, bearing = 150.0 * math.sqrt(rnd.random()), rnd.uniform(0, 2 * math.pi)
            twin_lat = lat + distance * math.cos(bearing) / 111_195.0
            twin_lon = lon + distance * math.sin(bearing) / (111_195.0 * math.cos(math.radians(lat)))
            name = row["name"] if variant == "exact" else _noisy(row["name"], rnd)
            events.append(PlaceListing("twin", row["id"], twin_lat, twin_lon, name, kind, guests))
        graph = PlaceGraph()
        started = time.process_time()
        graph.apply(events)
        cpu = time.process_time() - started
        twins = sum(graph.place_id_of(listing_key("airbnb", r["id"])) == graph.place_id_of(listing_key("twin", r["id"]))
                    for r in rows)
        pairs = sum(len(p.members) == 2 for p in graph.places().values())
        print(f"{variant:>5} names: {twins:,} of {len(rows):,} twins joined (recall {twins / len(rows):.3f}), "
              f"{pairs - twins:,} wrong pairs (precision {twins / max(1, pairs):.3f}); "
              f"build {len(events):,} listings in {cpu:.2f} s CPU")


if __name__ == "__main__":
    main()
