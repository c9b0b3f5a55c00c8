"""Places, deals and flexible dates over HTTP (issue 12): what they cost a traveler's search.

The bars: on the 100,000-listing city under half the max write load, a `group=place` search
(deals on every result and offer) has p99 <= 2x that of the same search with `group=listing`
in the same run, and <= 30 ms; `GET /v1/search/dates` for 31 days has p99 <= 100 ms.

The same random areas (1-5 km) and stays (1-7 nights) as the `search` scenario, open loop at
its rate beside the same write load; each repeat runs every mix once, alternated:
`group=listing`, `group=place`, the calendar strip of 31 check-ins, and
`group=place&sort=deal` (deals of every match). Over
HTTP deals cannot be switched off: `group=listing` still computes the deals of its page, so the
ratio here is a little kinder than against the search as it was (`benchmarks/deals_micro.py`
measures that one, in process).
"""

from __future__ import annotations

import datetime as dt
import statistics
import time
import urllib.parse
from typing import Any

from . import workload
from .loadgen import Job
from .scenarios import Bench, measured
from .service import Service, cpu_delta
from .workload import City

NAME = "deals"
# The bars' mixes first, then `sort=deal` (no bar; open loop at this rate it queues): a strip
# run after it measured its tail (quiet machine, session 9: p99 161 ms after it, 93 ms later).
MIXES = {
    "listing": {"group": "listing"},
    "place": {},
    "dates, 31 days": {"dates": "31"},
    "place, sort=deal": {"sort": "deal"},
}


def paths(listings: int, extra: dict[str, str]) -> tuple[str, ...]:
    out = []
    for path in workload.search_paths(City(listings), 2000):
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
    """The scenario, as `benchmarks.run` calls it: each repeat runs every mix once, alternated
    (the machine's noise hits them alike), so ratios are taken run by run."""
    s = bench.settings
    server = bench.city_server(s.workers[-1])
    writes = s.search_write_fraction * bench.max_rate(s.workers[-1])
    out: dict[str, Any] = {"listings": s.city_listings, "searches_per_s": s.search_rate,
                           "write_events_per_s_offered": writes}
    for name in MIXES:
        out[name] = []
    for _ in range(s.repeat):
        for name, extra in MIXES.items():
            jobs = [Job("127.0.0.1", server.port, "search", 8, schedule=((s.search_seconds, s.search_rate),),
                        search_paths=paths(s.city_listings, extra), tag="search")]
            jobs += bench.rate_jobs(server, s.city_listings, s.open_connections,
                                    schedule=((s.search_seconds, writes / s.events_per_request),))
            result, side = measured(server, jobs, s.warmup_seconds)
            warmup = min(s.warmup_seconds, s.search_seconds / 3)
            searched = result.only("search").summary(warmup=warmup)
            written = result.only("write").summary(warmup=warmup)
            out[name].append({
                "latency_ms": searched["latency_ms"], "errors": searched["errors"],
                "write_events_per_s": written["events_per_s"],
                "write_night_updates_per_s": written["night_updates_per_s"],
                "other_load_cores": side["other_load_cores"], "server_cores": side["server_cores"],
            })
            latency = out[name][-1]["latency_ms"]
            bench.log(f"  {name}: p50 {latency['p50']:.1f} ms, p99 {latency['p99']:.1f} ms, errors "
                      f"{out[name][-1]['errors']}, other load {side['other_load_cores']:.2f} cores")
        settle(server)  # the next repeat's baseline starts on a server done with sort=deal's work
    return out


def settle(server: Service, idle_cores: float = 0.2, most_seconds: float = 10.0) -> None:
    """Wait (at most `most_seconds`) until the server uses under `idle_cores` over half a second."""
    deadline = time.monotonic() + most_seconds
    while time.monotonic() < deadline:
        before = server.cpu_seconds()
        time.sleep(0.5)
        if sum(cpu_delta(before, server.cpu_seconds(), 0.5).values()) < idle_cores:
            return


def rows(result: dict[str, Any]) -> list[str]:
    def p99s(name: str) -> list[float]:
        return [float(r["latency_ms"]["p99"]) for r in result[name]]

    lines = [f"{result['listings']:,} listings, {result['searches_per_s']:g} searches/s, "
             f"writes offered {result['write_events_per_s_offered']:,.0f} events/s"]
    for name in MIXES:
        values = p99s(name)
        other = statistics.median(float(r["other_load_cores"]) for r in result[name])
        lines.append(f"{name}: p99 {statistics.median(values):.1f} ms (runs: {', '.join(f'{v:.1f}' for v in values)}; "
                     f"other load {other:.2f} cores)")
    place, dates = statistics.median(p99s("place")), statistics.median(p99s("dates, 31 days"))
    ratios = [p / b for p, b in zip(p99s("place"), p99s("listing"), strict=True)]
    ratio = statistics.median(ratios)
    lines.append(f"place / listing p99, run by run: {ratio:.2f} ({', '.join(f'{r:.2f}' for r in ratios)}); "
                 f"<= 2: {'met' if ratio <= 2 else 'not met'}; place p99 <= 30 ms: "
                 f"{'met' if place <= 30 else 'not met'}; dates p99 <= 100 ms: {'met' if dates <= 100 else 'not met'}")
    return lines
