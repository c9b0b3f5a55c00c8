"""Search in a dense city over HTTP (issue 15, point 3), with places, deals and flexible dates (issue 12).

The city: `Settings.city_listings` units (100,000) in 11 km x 7 km around Paris, prefilled like
the other cities (365-night calendars). The searches: random circles of 1-3 km (about 30,000
candidates at 3 km), stays of 1-7 nights in the next 300 days, 1-4 guests, open loop at
`SEARCH_RATE` a second, beside writes at `Settings.search_write_fraction` of the max rate.

Mixes, each run once per repeat and alternated (the machine's noise hits them alike), on the
same areas and stays: `group=listing` (the baseline; its page's deals are computed too, as over
HTTP they cannot be switched off), `group=place` (the default: deals of every result and offer
shown), `sort=deal` and `deals=only` (deals of every match), and the 31-day calendar strip.
Ratios against `group=listing` are taken run by run (same minute, same load).

    .venv/bin/python -m benchmarks.run dense
"""

from __future__ import annotations

import datetime as dt
import statistics
import urllib.parse
from typing import Any

from . import service, workload
from .loadgen import Job
from .scenarios import Bench, measured, prefill
from .workload import City

NAME = "dense"
SEARCH_RATE = 40.0  # searches/s, open loop (issue 15: ~40)
RADIUS_KM = (1.0, 3.0)
BAR_MS = 10.0  # issue 15.3: p99 in the dense city; deals and places inside the same budget
MIXES = {
    "listing": {"group": "listing"},
    "place": {},
    "place, sort=deal": {"sort": "deal"},
    "place, deals=only": {"deals": "only"},
    "dates, 31 days": {"dates": "31"},
}


def city(listings: int) -> City:
    return City(listings, half_lat=workload.DENSE_HALF_LAT, half_lon=workload.DENSE_HALF_LON)


def paths(listings: int, extra: dict[str, str]) -> tuple[str, ...]:
    out = []
    for path in workload.search_paths(city(listings), 2000, radius_km=RADIUS_KM):
        query = dict(urllib.parse.parse_qsl(path.split("?", 1)[1]))
        if "dates" in extra:
            checkin, checkout = query.pop("checkin"), query.pop("checkout")
            nights = (dt.date.fromisoformat(checkout) - dt.date.fromisoformat(checkin)).days
            query.update({"from": checkin, "nights": str(nights), "days": extra["dates"]})
            out.append("/v1/search/dates?" + urllib.parse.urlencode(query))
        else:
            out.append("/v1/search?" + urllib.parse.urlencode({**query, **extra}))
    return tuple(out)


def run(bench: Bench) -> dict[str, Any]:
    """The scenario, as `benchmarks.run` calls it."""
    s = bench.settings
    workers = s.workers[-1]
    writes = s.search_write_fraction * bench.max_rate(workers)  # calibrated on the usual city
    bench.close()  # the dense city alone on the machine
    server = service.start(bench.workdir / "dense-city", workers)
    out: dict[str, Any] = {"listings": s.city_listings, "searches_per_s": SEARCH_RATE,
                           "write_events_per_s_offered": writes}
    try:
        out["prefill"] = prefill(server, s.city_listings, s, bench.log,
                                 (workload.DENSE_HALF_LAT, workload.DENSE_HALF_LON))
        for name in MIXES:
            out[name] = []
        for _ in range(s.repeat):
            for name, extra in MIXES.items():
                jobs = [Job("127.0.0.1", server.port, "search", 8, schedule=((s.search_seconds, SEARCH_RATE),),
                            search_paths=paths(s.city_listings, extra), tag="search")]
                jobs += bench.rate_jobs(server, s.city_listings, s.open_connections,
                                        schedule=((s.search_seconds, writes / s.events_per_request),))
                result, side = measured(server, jobs, s.warmup_seconds)
                warmup = min(s.warmup_seconds, s.search_seconds / 3)
                searched = result.only("search").summary(warmup=warmup)
                written = result.only("write").summary(warmup=warmup)
                out[name].append({
                    "latency_ms": searched["latency_ms"], "errors": searched["errors"],
                    "mean_matches": searched.get("mean_matches", 0.0),
                    "write_events_per_s": written["events_per_s"],
                    "write_night_updates_per_s": written["night_updates_per_s"],
                    "other_load_cores": side["other_load_cores"], "server_cores": side["server_cores"],
                })
                latency = out[name][-1]["latency_ms"]
                bench.log(f"  {name}: p50 {latency['p50']:.1f} ms, p99 {latency['p99']:.1f} ms, errors "
                          f"{out[name][-1]['errors']}, other load {side['other_load_cores']:.2f} cores")
    finally:
        server.stop()
    return out


def rows(result: dict[str, Any]) -> list[str]:
    def p99s(name: str) -> list[float]:
        return [float(r["latency_ms"]["p99"]) for r in result[name]]

    lines = [f"{result['listings']:,} units in 11 x 7 km, radius 1-3 km, {result['searches_per_s']:g} searches/s, "
             f"writes offered {result['write_events_per_s_offered']:,.0f} events/s"]
    for name in MIXES:
        values = p99s(name)
        median = statistics.median(values)
        runs = ", ".join(f"{v:.1f}" for v in values)
        other = statistics.median(float(r["other_load_cores"]) for r in result[name])
        bar = 100.0 if name.startswith("dates") else BAR_MS
        lines.append(f"{name}: p99 {median:.1f} ms (runs: {runs}; other load {other:.2f} cores); "
                     f"<= {bar:g} ms: {'met' if median <= bar else 'not met'}")
    ratios = [p / b for p, b in zip(p99s("place"), p99s("listing"), strict=True)]
    ratio = statistics.median(ratios)
    lines.append(f"place / listing p99, run by run: {ratio:.2f} ({', '.join(f'{r:.2f}' for r in ratios)}); "
                 f"<= 2: {'met' if ratio <= 2 else 'not met'}")
    return lines
