"""`python -m benchmarks.search_micro`: what `search.py` itself costs, without HTTP.

Listing columns and calendars are filled directly in shared memory (the writer's own classes,
no server), then query mixes run in this process through `parse_query` + `search` + the JSON
encoding a worker does, and their latencies are printed (min of `--repeat` runs of each
percentile, as the machine is shared). `--write-load N` forks a process that keeps applying
N rate events a second to the same arrays meanwhile, as the writer does under load.

    .venv/bin/python -m benchmarks.search_micro --listings 50000
    .venv/bin/python -m benchmarks.search_micro --listings 100000 --write-load 20000
    .venv/bin/python -m benchmarks.search_micro --listings 50000 --fees 0.8
"""

from __future__ import annotations

import argparse
import datetime as dt
import mmap
import os
import platform
import shutil
import signal
import sqlite3
import sys
import tempfile
import time
import urllib.parse
import weakref
from pathlib import Path

import msgspec
import numpy as np
from starlette.datastructures import QueryParams

from staystream.dates import epoch_day
from staystream.durable import sqlite
from staystream.events.fx import default_fx
from staystream.events.money import CURRENCY_INDEX
from staystream.events.types import ALL_FACTS, ALWAYS_FROM, ALWAYS_UNTIL, FEE_BASIS_INDEX, RATE_DTYPE, Fee
from staystream.memory.calendar import PAGE, CalendarWriter
from staystream.memory.feed import FeedWriter
from staystream.memory.fees import FeeColumns
from staystream.memory.layout import SHARED_ARRAYS
from staystream.memory.listings import ListingColumns
from staystream.memory.shm import SharedArrays
from staystream.paths import database_path
from staystream.search import engine as search_module
from staystream.search.engine import parse_query, search
from staystream.search.view import Store

CITY_LAT, CITY_LON = 48.8566, 2.3522
HALF_LAT, HALF_LON = 0.10, 0.15  # about 22 km x 22 km, as benchmarks/workload.py
HORIZON_DAYS = 730
_feeds: weakref.WeakKeyDictionary[SharedArrays, FeedWriter] = weakref.WeakKeyDictionary()
_json = msgspec.json.Encoder()


def city_centers(cities: int, seed: int) -> np.ndarray:
    """(lat, lon) of each city: Paris first, the others anywhere between 40 S and 60 N."""
    rng = np.random.default_rng(seed + 1)
    centers = np.column_stack([rng.uniform(-40, 60, cities), rng.uniform(-180, 180, cities)])
    centers[0] = CITY_LAT, CITY_LON
    return centers


def build(directory: Path, listings: int, nights: int, seed: int, cities: int,
          fee_share: float = 0.0, half: tuple[float, float] = (HALF_LAT, HALF_LON),
          ) -> tuple[Store, CalendarWriter, int]:
    """Shared arrays and a SQLite store holding `listings` units with `nights`-night calendars,
    spread evenly over `cities` cities of 2 x `half` degrees (22 km x 22 km); `fee_share` of them with fees (a
    cleaning fee, a 12% service fee on half of those, a tourist tax per guest and night in a
    window on a third)."""
    rng = np.random.default_rng(seed)
    shm = directory / "shm"
    shared = SharedArrays(shm, SHARED_ARRAYS, create=True)
    _feeds[shared] = FeedWriter(shared)  # the change feed: searches' kept ceilings follow it, as in the server
    columns = ListingColumns(shared)
    fee_columns = FeeColumns(shared)
    today = epoch_day(dt.date.today())
    base_page = epoch_day(dt.date(2015, 1, 1)) // PAGE
    calendar = CalendarWriter(shared, base_page, (today + HORIZON_DAYS) // PAGE + 2 - base_page)
    calendar.ensure_rows(listings)
    columns.add_rows(listings)
    fee_columns.add_rows(listings)
    center = city_centers(cities, seed)[rng.integers(0, cities, listings)]
    lat = center[:, 0] + rng.uniform(-half[0], half[0], listings)
    lon = center[:, 1] + rng.uniform(-half[1], half[1], listings)
    kind = rng.integers(0, 4, listings)
    guests = rng.integers(1, 7, listings)
    shared["lat"][:listings], shared["lon"][:listings] = lat, lon
    shared["kind"][:listings], shared["max_guests"][:listings] = kind, guests
    shared["described_at"][:listings] = 1
    shared["searchable"][:listings] = 1

    connection = sqlite.connect_writer(database_path(directory))
    connection.execute("BEGIN")
    connection.executemany(
        "INSERT INTO listings (row, source, listing_id, name, kind, lat, lon, max_guests, described_at) "
        "VALUES (?, 'bench', ?, ?, ?, ?, ?, ?, 1)",
        ((i, f"L{i:07d}", f"Bench unit {i}", int(kind[i]), float(lat[i]), float(lon[i]), int(guests[i]))
         for i in range(listings)),
    )
    connection.execute("COMMIT")
    connection.close()

    # Four seasons a calendar (as the load generator's prefill), 1 in 10 unavailable; one
    # listing in ten priced in USD, and one in twenty with a season in another currency.
    currencies = np.array([CURRENCY_INDEX["EUR"], CURRENCY_INDEX["USD"], CURRENCY_INDEX["GBP"]])
    own = np.where(rng.random(listings) < 0.1, currencies[1], currencies[0])
    first = today + 1
    for start in range(0, listings, 5000):
        rows = np.arange(start, min(listings, start + 5000))
        cuts = np.sort(rng.integers(1, nights - 1, (len(rows), 3)), axis=1)
        bounds = np.concatenate([np.zeros((len(rows), 1), int), cuts, np.full((len(rows), 1), nights)], axis=1)
        batch = np.zeros(len(rows) * 4, dtype=RATE_DTYPE)
        batch["key"] = np.repeat(rows, 4)
        batch["start"] = first + bounds[:, :4].ravel()
        batch["nights"] = np.diff(bounds, axis=1).ravel()
        keep = batch["nights"] > 0
        batch["changed_at"] = 1_700_000_000_000_000
        closed = rng.random(len(batch)) < 0.1
        batch["price"] = np.where(closed, -1, rng.integers(50, 400, len(batch)) * 100)
        batch["available"] = ~closed
        batch["facts"] = ALL_FACTS
        batch["min_nights"] = rng.integers(1, 4, len(batch))
        batch["currency"] = np.repeat(own[rows], 4)
        other = rng.random(len(batch)) < 0.05 / 4
        batch["currency"][other] = currencies[2]
        calendar.apply(batch[keep])
    fees = []
    eur = CURRENCY_INDEX["EUR"]
    for row in np.flatnonzero(rng.random(listings) < fee_share).tolist():
        fees.append((row, Fee("", "cleaning", "Cleaning", FEE_BASIS_INDEX["per_stay"], 5000, eur, True,
                              ALWAYS_FROM, ALWAYS_UNTIL, 1, False)))
        if row % 2:
            fees.append((row, Fee("", "service", "Service", FEE_BASIS_INDEX["percent"], 12_000_000, 0, True,
                                  ALWAYS_FROM, ALWAYS_UNTIL, 1, False)))
        if row % 3 == 0:
            fees.append((row, Fee("", "tax", "Tourist tax", FEE_BASIS_INDEX["per_guest_per_night"], 250, eur, True,
                                  first, first + 180, 1, False)))
    fee_columns.load(fees)
    connection = sqlite.connect_writer(database_path(directory))
    connection.execute("BEGIN")
    connection.executemany(sqlite.UPSERT_FEE, [sqlite.fee_row(row, fee) for row, fee in fees])
    connection.execute("COMMIT")
    connection.close()
    store = Store(database_path(directory), shm, default_fx())
    return store, calendar, first


def queries(kind: str, count: int, first_night: int, nights: int, centers: np.ndarray,
            rng: np.random.Generator, half: tuple[float, float] = (HALF_LAT, HALF_LON),
            radius_km: tuple[float, float] = (1, 5)) -> list[QueryParams]:
    out = []
    for _ in range(count):
        city_lat, city_lon = centers[rng.integers(0, len(centers))]
        stay = min(nights - 1, int(rng.integers(1, 8)) if kind != "long" else int(rng.integers(14, 91)))
        checkin = dt.date.fromordinal(
            dt.date(1970, 1, 1).toordinal() + first_night + int(rng.integers(0, nights - stay))
        )
        params: dict[str, str] = {
            "checkin": checkin.isoformat(),
            "checkout": (checkin + dt.timedelta(days=stay)).isoformat(),
            "guests": str(int(rng.integers(1, 5))),
        }
        if kind == "city bbox":
            params["bbox"] = f"{city_lon - half[1]},{city_lat - half[0]},{city_lon + half[1]},{city_lat + half[0]}"
        else:
            params["lat"] = f"{city_lat + rng.uniform(-half[0], half[0]) * 0.9:.5f}"
            params["lon"] = f"{city_lon + rng.uniform(-half[1], half[1]) * 0.9:.5f}"
            params["radius_km"] = f"{rng.uniform(*radius_km):.2f}"
        if kind == "USD by distance":
            params.update(currency="USD", sort="distance", max_price=str(int(rng.integers(200, 2000))))
        out.append(QueryParams(urllib.parse.urlencode(params)))
    return out


def run(store: Store, mix: list[QueryParams]) -> tuple[np.ndarray, np.ndarray]:
    """Wall-clock and CPU milliseconds of each query (CPU time: what the query costs when the
    machine is shared; wall-clock: what a client would have waited)."""
    wall, cpu = np.empty(len(mix)), np.empty(len(mix))
    for i, params in enumerate(mix):
        started, started_cpu = time.perf_counter(), time.thread_time()
        store.refresh()
        _json.encode(search(store, parse_query(params, HORIZON_DAYS)))
        wall[i], cpu[i] = time.perf_counter() - started, time.thread_time() - started_cpu
    return wall * 1000, cpu * 1000


def write_load(calendar: CalendarWriter, listings: int, first_night: int, nights: int, per_second: int,
               applied: np.ndarray) -> int:
    """Fork a process applying `per_second` rate events a second (batches of 1000, 7-30 nights);
    it counts what it applied in `applied` (shared memory)."""
    pid = os.fork()
    if pid:
        return pid
    rng = np.random.default_rng(os.getpid())
    feed = _feeds[calendar.shared]
    changed_at = 1_800_000_000_000_000
    try:
        while True:
            started = time.perf_counter()
            batch = np.zeros(1000, dtype=RATE_DTYPE)
            batch["key"] = rng.integers(0, listings, 1000)
            batch["nights"] = rng.integers(7, 31, 1000)
            batch["start"] = first_night + rng.integers(0, nights - 30, 1000)
            batch["changed_at"] = changed_at + np.arange(1000)
            changed_at += 1000
            batch["price"] = rng.integers(50, 400, 1000) * 100
            batch["currency"] = CURRENCY_INDEX["EUR"]
            batch["min_nights"] = 1
            batch["available"] = 1
            batch["facts"] = ALL_FACTS
            calendar.apply(batch)
            start = batch["start"].astype(np.int32)
            feed.append(batch["key"], start, start + batch["nights"])  # as the writer does after applying
            applied[0] += len(batch)
            time.sleep(max(0.0, 1000 / per_second - (time.perf_counter() - started)))
    finally:
        os._exit(0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.search_micro", description=__doc__.split("\n\n")[0])
    parser.add_argument("--listings", type=int, default=50_000)
    parser.add_argument("--nights", type=int, default=365, help="calendar length of every listing")
    parser.add_argument("--queries", type=int, default=1000, help="queries of each mix")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--write-load", type=int, default=0, metavar="EVENTS_PER_S")
    parser.add_argument("--cities", type=int, default=1, help="cities the listings are spread over (default 1)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--fees", type=float, default=0.0, metavar="SHARE",
                        help="share of the listings with fees (0 to 1; default none)")
    parser.add_argument("--no-index", action="store_true", help="scan the listing columns even past "
                        f"{search_module.INDEX_MIN_ROWS:,} listings (to compare with the spatial index)")
    args = parser.parse_args(argv)

    directory = Path(
        tempfile.mkdtemp(prefix="staystream-micro-", dir="/dev/shm" if Path("/dev/shm").is_dir() else None)
    )
    child = 0
    applied = np.frombuffer(mmap.mmap(-1, 8), dtype=np.int64)
    try:
        started = time.perf_counter()
        store, calendar, first_night = build(directory, args.listings, args.nights, args.seed, args.cities,
                                             args.fees)
        print(
            f"{args.listings:,} listings in {args.cities} cities x {args.nights} nights, {args.fees:.0%} with fees, "
            f"built in "
            f"{time.perf_counter() - started:.1f} s; "
            f"python {platform.python_version()}, numpy {np.__version__}, sqlite {sqlite3.sqlite_version}, "
            f"{os.cpu_count()} cpus, load average {os.getloadavg()[0]:.1f}"
        )
        if args.write_load:
            child = write_load(calendar, args.listings, first_night, args.nights, args.write_load, applied)
            load_started = time.perf_counter()
            print(f"writing {args.write_load:,} rate events/s (7-30 nights each) from process {child}")
        if args.no_index:
            search_module.INDEX_MIN_ROWS = 2**62
        rng = np.random.default_rng(args.seed)
        started = time.perf_counter()
        run(store, queries("city 1-5 km", 1, first_night, args.nights, city_centers(args.cities, args.seed), rng))
        indexed = args.listings >= search_module.INDEX_MIN_ROWS
        print(f"first search: {1000 * (time.perf_counter() - started):.1f} ms"
              + (" (builds this process's spatial index)" if indexed else " (no spatial index: columns scanned)"))
        print(f"{'mix':<18}{'wall ms: p50':>13}{'p90':>7}{'p99':>7}{'max':>7}{'cpu ms: p50':>13}{'p99':>7}"
              "  matches (mean)")
        for kind in ("city 1-5 km", "long", "city bbox", "USD by distance"):
            mix = queries(kind, args.queries, first_night, args.nights, city_centers(args.cities, args.seed), rng)
            runs = [run(store, mix) for _ in range(args.repeat)]
            wall = [min(np.percentile(w, q) for w, _ in runs) for q in (50, 90, 99, 100)]
            cpu = [min(np.percentile(c, q) for _, c in runs) for q in (50, 99)]
            matches = np.mean([search(store, parse_query(p, HORIZON_DAYS))["matches"] for p in mix[:100]])
            print(f"{kind:<18}{wall[0]:13.2f}" + "".join(f"{f:7.2f}" for f in wall[1:]) + f"{cpu[0]:13.2f}{cpu[1]:7.2f}"
                  f"  {matches:,.0f}")
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
