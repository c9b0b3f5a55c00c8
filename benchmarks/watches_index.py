"""`python -m benchmarks.watches_index`: what finding the affected watches costs, by watch count.

In process, no server: `WatchIndex` filled with the watches scenario's watches (random 0.5-1.5 km
circles over the 22 km city, stays of 1-7 nights in the calendar's year), then `affected` timed
for write groups like the load's (rows anywhere in the city, 7-30 changed nights each). The time
should grow far slower than the watch count (the pairs found grow with it, the search does not):
this is the index's share of the watcher's work per group, the rest (`batch.evaluate`) grows with
the pairs. CPU time is printed beside wall time: on a shared machine the wall time is mostly
waiting for a core.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from staystream.search.engine import circle_area
from staystream.watches.index import WatchIndex

from . import workload


def filled(watches: int, seed: int = 13) -> WatchIndex:
    rng = np.random.default_rng(seed)
    lat = workload.CITY_LAT + rng.uniform(-workload.HALF_LAT, workload.HALF_LAT, watches)
    lon = workload.CITY_LON + rng.uniform(-workload.HALF_LON, workload.HALF_LON, watches)
    radius = rng.uniform(0.5, 1.5, watches)
    checkin = workload.first_night() + rng.integers(0, workload.CALENDAR_NIGHTS - 8, watches)
    nights = rng.integers(1, 8, watches)
    index = WatchIndex()
    for w in range(watches):
        index.add(w + 1, circle_area(float(lat[w]), float(lon[w]), float(radius[w])), int(checkin[w]), int(nights[w]))
    return index


def group(rows: int, seed: int) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    lat = workload.CITY_LAT + rng.uniform(-workload.HALF_LAT, workload.HALF_LAT, rows)
    lon = workload.CITY_LON + rng.uniform(-workload.HALF_LON, workload.HALF_LON, rows)
    first = workload.first_night() + rng.integers(0, workload.CALENDAR_NIGHTS - 30, rows)
    end = first + rng.integers(7, 31, rows)
    return np.arange(rows), lat, lon, first, end


def measure(watches: int, rows: int, repeat: int) -> dict[str, float]:
    index = filled(watches)
    index.affected(*group(10, 0))  # builds the sorted levels
    seconds, cpu, pairs = [], [], 0
    for i in range(repeat):
        changed = group(rows, i + 1)
        started, started_cpu = time.perf_counter(), time.process_time()
        watch, _ = index.affected(*changed)
        seconds.append(time.perf_counter() - started)
        cpu.append(time.process_time() - started_cpu)
        pairs = len(watch)
    return {"watches": watches, "rows": rows, "ms_median": statistics.median(seconds) * 1000,
            "cpu_ms_median": statistics.median(cpu) * 1000, "cpu_ms_min": min(cpu) * 1000, "pairs": pairs}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.watches_index", description=__doc__.split("\n\n")[0])
    parser.add_argument("--watches", default="10000,100000,400000", help="comma-separated watch counts")
    parser.add_argument("--rows", type=int, default=5000, help="changed rows of a group (10 requests of 500 events)")
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    for count in (int(n) for n in args.watches.split(",")):
        found = measure(count, args.rows, args.repeat)
        print(f"{found['watches']:>8,} watches, {found['rows']:,} changed rows: affected() "
              f"{found['ms_median']:.1f} ms wall, {found['cpu_ms_median']:.1f} ms CPU median "
              f"({found['cpu_ms_min']:.1f} min) of {args.repeat}, {found['pairs']:,} (watch, row) pairs")


if __name__ == "__main__":
    main()
