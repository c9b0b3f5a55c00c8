"""`python -m benchmarks.deals_micro`: what places, deals and flexible dates cost a search, without HTTP.

The city of `search_micro` (listing columns and calendars filled in shared memory by the
writer's own classes; one listing in ten joins the place of the listing before it), the same
random areas (1-5 km) and stays (1-7 nights), run in this process as a worker would, beside an
optional write load. Mixes, each on the same queries:

- `listing, no deals`: `group=listing` with deal computation switched off (the baseline the
  issue compares with: the search as it was);
- `place + deals`: `group=place` (the default), deals of every offer shown;
- `place, sort=deal` and `place, deals=only`: deals of every matching unit (comparables of
  thousands of units, 91 check-ins of each);
- `dates, 31 days`: `GET /v1/search/dates` for 31 check-ins.

    .venv/bin/python -m benchmarks.deals_micro --listings 100000 --write-load 50000
    .venv/bin/python -m benchmarks.deals_micro --dense   # issue 15.3's city: 11 x 7 km, 1-3 km circles
"""

from __future__ import annotations

import argparse
import mmap
import os
import platform
import shutil
import signal
import sys
import tempfile
import time
import urllib.parse
from collections.abc import Callable
from pathlib import Path

import msgspec
import numpy as np
import scipy
from starlette.datastructures import QueryParams

from benchmarks.search_micro import HALF_LAT, HALF_LON, HORIZON_DAYS, build, city_centers, queries, write_load
from benchmarks.workload import DENSE_HALF_LAT, DENSE_HALF_LON
from staystream.search import engine
from staystream.search.flexible import parse_dates_query, search_dates
from staystream.search.view import Store

_json = msgspec.json.Encoder()
BARS = {"place + deals": 30.0, "place, sort=deal": 30.0, "dates, 31 days": 100.0}  # p99 ms (issue 12)


def with_params(mix: list[QueryParams], **extra: str) -> list[QueryParams]:
    return [QueryParams(urllib.parse.urlencode({**dict(p), **extra})) for p in mix]


def as_dates(mix: list[QueryParams], days: int) -> list[QueryParams]:
    """The same areas and stays, as a calendar strip of `days` check-ins from the check-in."""
    out = []
    for params in mix:
        fields = dict(params)
        checkin, checkout = fields.pop("checkin"), fields.pop("checkout")
        nights = (engine.parse_date("checkout", checkout) - engine.parse_date("checkin", checkin)).days
        out.append(QueryParams(urllib.parse.urlencode({**fields, "from": checkin, "nights": str(nights),
                                                       "days": str(days)})))
    return out


def run(store: Store, mix: list[QueryParams], answer: Callable[[Store, QueryParams], object]) -> np.ndarray:
    """Wall-clock and CPU milliseconds of each query, 2 x queries (CPU time: what a query costs
    when the machine is shared; wall-clock: what a client would have waited)."""
    times = np.empty((2, len(mix)))
    for i, params in enumerate(mix):
        started, started_cpu = time.perf_counter(), time.thread_time()
        store.refresh()
        _json.encode(answer(store, params))
        times[:, i] = time.perf_counter() - started, time.thread_time() - started_cpu
    return times * 1000


def searched(store: Store, params: QueryParams) -> object:
    return engine.search(store, engine.parse_query(params, HORIZON_DAYS))


def dated(store: Store, params: QueryParams) -> object:
    return search_dates(store, parse_dates_query(params, HORIZON_DAYS))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.deals_micro", description=__doc__.split("\n\n")[0])
    parser.add_argument("--listings", type=int, default=100_000)
    parser.add_argument("--nights", type=int, default=365, help="calendar length of every listing")
    parser.add_argument("--queries", type=int, default=300, help="queries of each mix")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--write-load", type=int, default=0, metavar="EVENTS_PER_S")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--dense", action="store_true", help="issue 15's dense city: 11 km x 7 km, 1-3 km circles")
    parser.add_argument("--mixes", help="comma-separated mixes to run (default all; the baseline always runs)")
    args = parser.parse_args(argv)
    half, radius = ((DENSE_HALF_LAT, DENSE_HALF_LON), (1.0, 3.0)) if args.dense else ((HALF_LAT, HALF_LON), (1.0, 5.0))

    directory = Path(
        tempfile.mkdtemp(prefix="staystream-deals-", dir="/dev/shm" if Path("/dev/shm").is_dir() else None)
    )
    child = 0
    applied = np.frombuffer(mmap.mmap(-1, 8), dtype=np.int64)
    try:
        started = time.perf_counter()
        store, calendar, first_night = build(directory, args.listings, args.nights, args.seed, 1, half=half)
        place = calendar.shared["place"]  # the writer's mapping: the store's is read-only
        joins = np.arange(1, args.listings, 10)
        place[joins] = joins - 1  # one listing in ten is another offer of the place before it
        print(f"{args.listings:,} listings x {args.nights} nights built in {time.perf_counter() - started:.1f} s; "
              f"python {platform.python_version()}, numpy {np.__version__}, scipy {scipy.__version__}, "
              f"{os.cpu_count()} cpus, load average {os.getloadavg()[0]:.1f}")
        if args.write_load:
            child = write_load(calendar, args.listings, first_night, args.nights, args.write_load, applied)
            load_started = time.perf_counter()
            print(f"writing {args.write_load:,} rate events/s (7-30 nights each) from process {child}")
        rng = np.random.default_rng(args.seed)
        base = queries("circle", args.queries, first_night, args.nights - 100, city_centers(1, args.seed), rng,
                       half, radius)
        mixes: dict[str, tuple[list[QueryParams], Callable[[Store, QueryParams], object]]] = {
            "listing, no deals": (with_params(base, group="listing"), searched),
            "place + deals": (base, searched),
            "place, sort=deal": (with_params(base, sort="deal"), searched),
            "place, deals=only": (with_params(base, deals="only"), searched),
            "dates, 31 days": (as_dates(base, 31), dated),
        }
        if args.mixes:
            wanted = {"listing, no deals", *args.mixes.split(",")}
            mixes = {name: mix for name, mix in mixes.items() if name in wanted}
        searched(store, base[0])  # warm up
        print(f"{'mix':<20}{'wall ms: p50':>13}{'p90':>7}{'p99':>7}{'max':>8}{'cpu ms: p50':>13}{'p99':>7}  bar")
        p99, cpu99 = {}, {}
        compute = engine._Deals.compute
        for name, (mix, answer) in mixes.items():
            if name == "listing, no deals":
                engine._Deals.compute = lambda self, positions: None  # type: ignore[method-assign]
            try:
                runs = [run(store, mix, answer) for _ in range(args.repeat)]
            finally:
                engine._Deals.compute = compute  # type: ignore[method-assign]
            wall = [min(float(np.percentile(w[0], q)) for w in runs) for q in (50, 90, 99, 100)]
            cpu = [min(float(np.percentile(w[1], q)) for w in runs) for q in (50, 99)]
            p99[name], cpu99[name] = wall[2], cpu[1]
            bar = BARS.get(name)
            print(f"{name:<20}{wall[0]:13.2f}{wall[1]:7.2f}{wall[2]:7.2f}{wall[3]:8.2f}{cpu[0]:13.2f}{cpu[1]:7.2f}  "
                  + ("" if bar is None else f"p99 <= {bar:g} ms: {'met' if wall[2] <= bar else 'NOT met'}"))
        for name in ("place + deals", "place, sort=deal"):
            if name not in p99:
                continue
            ratio, cpu_ratio = p99[name] / p99["listing, no deals"], cpu99[name] / cpu99["listing, no deals"]
            print(f"{name} / listing, no deals, p99: wall {ratio:.2f}, cpu {cpu_ratio:.2f} "
                  f"(<= 2: {'met' if ratio <= 2 else 'NOT met'})")
        matches = np.mean([searched(store, p)["matches"] for p in base[:50]])  # type: ignore[index]
        print(f"mean matches (places) of the searches: {matches:,.0f}")
        if child:
            print(f"write load achieved: {applied[0] / (time.perf_counter() - load_started):,.0f} rate events/s")
    finally:
        if child:
            os.kill(child, signal.SIGKILL)
            os.waitpid(child, 0)
        shutil.rmtree(directory, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
