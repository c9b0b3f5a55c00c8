"""Bulk import beside live traffic (issue 3): does a big import starve live writes?

The bar: while `staystream import` sends at least 5 million night updates, live
`POST /v1/events` traffic keeps ack p99 <= 250 ms and max <= 1 s.

One server (`--workers` of the run), a prefilled city, then:

1. *import alone*, `repeat` times: the real `staystream import --format insideairbnb --url`
   of the Singapore scrape copied `copies` times with suffixed ids (5 x 1.27 M = 6.4 M nights;
   fresh ids every import, so every night is a new value: the server's applied-nights counter
   says how many it carried);
2. per live request size (500 events, and 10 events like a webhook): the max rate, closed
   loop; then `repeat` runs of open-loop live traffic at `live_fraction` of it, the first
   `baseline_seconds` alone (the baseline of the same run), then the same import started
   beside it; latency is counted from the intended send time (no coordinated omission), for
   requests meant to go while the import was sending.

Runs with phases under 10 s (`--quick`, small `--time-scale`) import a smoke-sized slice of one
copy instead: they test the harness, not the bar.
"""

from __future__ import annotations

import csv
import gzip
import io
import math
import os
import re
import resource
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import loadgen, service
from .loadgen import Job, Result
from .scenarios import Bench, Settings, machine_busy, prefill
from .service import Service

NAME = "bulk"
SINGAPORE = Path(__file__).resolve().parents[1] / "tests" / "data" / "singapore"  # Inside Airbnb, CC BY 4.0
P99_BAR_MS, MAX_BAR_MS = 250.0, 1000.0
BAR_NIGHTS = 5_000_000


@dataclass(frozen=True)
class BulkSettings:
    repeat: int = 3
    listings: int = 100_000  # the prefilled city the live traffic writes to
    workers: int = 2
    copies: int = 5  # Singapore calendars per import: 6.4 M nights
    calendar_rows: int | None = None  # a slice of each copy (smoke runs)
    sizes: tuple[int, ...] = (500, 10)  # live events per request
    live_fraction: float = 0.25  # of the max rate with the same request size
    baseline_seconds: float = 20.0
    warmup_seconds: float = 3.0
    calibrate_seconds: float = 12.5
    open_connections: int = 64
    closed_connections: int = 16
    loadgen_processes: int = 1

    @classmethod
    def of(cls, s: Settings) -> BulkSettings:
        smoke = s.latency_seconds < 10
        return cls(repeat=s.repeat, listings=s.city_listings, workers=s.workers[-1], copies=1 if smoke else 5,
                   calendar_rows=200_000 if smoke else None, baseline_seconds=s.latency_seconds,
                   warmup_seconds=min(s.warmup_seconds, s.latency_seconds / 3),
                   calibrate_seconds=s.throughput_seconds / 2, open_connections=s.open_connections,
                   closed_connections=s.closed_connections, loadgen_processes=s.loadgen_processes)


def run(bench: Bench) -> dict[str, Any]:
    """The scenario, as `benchmarks.run` calls it."""
    return measure(BulkSettings.of(bench.settings), bench.workdir, bench.log)


def measure(b: BulkSettings, workdir: Path, log: Callable[[str], None] = print) -> dict[str, Any]:
    server = service.start(workdir / "bulk", b.workers)
    try:
        log(f"  staystream --workers {b.workers}: ready in {server.ready_seconds:.2f} s")
        filled = prefill(server, b.listings, Settings(loadgen_processes=b.loadgen_processes), log)
        inputs = Inputs(workdir / "bulk-inputs", b.copies, b.calendar_rows)
        alone = []
        for _ in range(b.repeat):
            alone.append(import_alone(server, inputs))
            log(f"  import alone: {alone[-1]['night_updates']:,} night updates in {alone[-1]['seconds']:.1f} s, "
                f"{alone[-1]['night_updates_per_s']:,.0f}/s")
        out: dict[str, Any] = {"settings": b.__dict__, "prefill": filled,
                               "import_alone": {"median": _aggregate(alone), "runs": alone}}
        # live load long enough for the import beside it to end before it does, even slowed 3x
        budget = 3 * statistics.median(a["wall_seconds"] for a in alone) + max(2.0, b.baseline_seconds / 2)
        for size in b.sizes:
            top = max_rate(server, size, b)
            rate = b.live_fraction * top["requests_per_s"]
            log(f"  {size}-event requests: max {top['events_per_s']:,.0f} events/s "
                f"({top['requests_per_s']:,.0f} requests/s); live at {rate:,.1f} requests/s")
            runs = []
            for i in range(b.repeat):
                runs.append(beside(server, inputs, size, rate, budget, b, seed=100 * size + i))
                log("  " + _run_line(runs[-1]))
            out[f"live {size}-event requests"] = {"max": top, "median": _aggregate(runs), "runs": runs}
        return out
    finally:
        server.stop()


# -- the import's input ----------------------------------------------------------------------


class Inputs:
    """Inside Airbnb files of `copies` Singapores with ids suffixed anew for every import."""

    def __init__(self, directory: Path, copies: int, calendar_rows: int | None) -> None:
        self.directory, self.copies, self.calendar_rows = directory, copies, calendar_rows
        self.made = 0
        directory.mkdir(parents=True, exist_ok=True)
        with gzip.open(SINGAPORE / "listings.csv.gz", "rt", newline="", encoding="utf-8") as f:
            listings = list(csv.reader(f))
        self.listings_header, self.listings = listings[0], listings[1:]
        calendar = gzip.decompress((SINGAPORE / "calendar.csv.gz").read_bytes())
        if calendar_rows is not None:
            calendar = b"".join(io.BytesIO(calendar).readlines()[: calendar_rows + 1])
        self.calendar_header, _, body = calendar.partition(b"\n")
        # every row starts with its listing id: mark where the suffix goes once, fill it per copy
        self.calendar = _LEADING_ID.sub(lambda m: m.group(1) + _MARK + b",", body)

    def next(self) -> tuple[Path, Path]:
        """Fresh files: listing `71609` becomes `71609-i3c2` (import 3, copy 2)."""
        self.made += 1
        for old in self.directory.glob("*.csv.gz"):
            old.unlink()
        listings = self.directory / f"listings-{self.made}.csv.gz"
        calendar = self.directory / f"calendar-{self.made}.csv.gz"
        with gzip.open(listings, "wt", newline="", encoding="utf-8", compresslevel=1) as f:
            out = csv.writer(f)
            out.writerow(self.listings_header)
            for copy in range(self.copies):
                suffix = f"-i{self.made}c{copy}"
                out.writerows([row[0] + suffix, *row[1:]] for row in self.listings)
        with gzip.open(calendar, "wb", compresslevel=1) as f:
            f.write(self.calendar_header + b"\n")
            for copy in range(self.copies):
                f.write(self.calendar.replace(_MARK, b"-i%dc%d" % (self.made, copy)))
        return listings, calendar


_LEADING_ID = re.compile(rb"^(\d+),", re.MULTILINE)
_MARK = b"\x00"


# -- running an import ---------------------------------------------------------------------------


@dataclass
class Snapshot:
    """What the server, the machine and our children had used at one moment."""

    at: float
    metrics: dict[str, float]
    cpu: dict[str, float]
    busy: float

    @classmethod
    def take(cls, server: Service) -> Snapshot:
        return cls(time.monotonic(), server.metrics(), server.cpu_seconds(), machine_busy()[0])

    def delta(self, later: Snapshot, name: str) -> float:
        return later.metrics.get(name, 0.0) - self.metrics.get(name, 0.0)


class Import:
    """`staystream import --url` in a child process; its summary parsed when it ends."""

    def __init__(self, server: Service, files: tuple[Path, Path]) -> None:
        self.log_path = files[0].parent / "import.log"
        self.children_cpu = _children_cpu()
        self.started = time.monotonic()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "staystream", "import", "--format", "insideairbnb", "--source", "airbnb",
             "--currency", "SGD", "--url", server.url, "--rejects", str(files[0].parent / "rejects.csv"),
             *map(str, files)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )

    def wait(self, timeout: float = 3600) -> dict[str, Any]:
        output, _ = self.process.communicate(timeout=timeout)
        ended = time.monotonic()
        cpu = _children_cpu() - self.children_cpu  # only the importer was reaped meanwhile
        text = output.decode(errors="replace")
        self.log_path.write_text(text)
        if self.process.returncode != 0:
            raise RuntimeError(f"staystream import failed ({self.process.returncode}):\n{text[-3000:]}")
        accepted = re.search(r"events accepted: ([\d,]+) of ([\d,]+) sent \(([\d,]+) nights\)", text)
        elapsed = re.search(r"elapsed:\s+([\d.]+) s", text)
        rejected = re.search(r"rejected:\s+([\d,]+)", text)
        if not (accepted and elapsed and rejected):
            raise RuntimeError(f"staystream import printed no summary:\n{text[-3000:]}")
        seconds = float(elapsed.group(1))
        return {
            "events": _int(accepted.group(1)), "nights_accepted": _int(accepted.group(3)),
            "rejected": _int(rejected.group(1)), "seconds": seconds, "wall_seconds": ended - self.started,
            "sending_from": ended - seconds, "ended": ended, "importer_cpu_seconds": cpu,
        }


def import_alone(server: Service, inputs: Inputs) -> dict[str, Any]:
    files = inputs.next()
    before = Snapshot.take(server)
    result = Import(server, files).wait()
    after = Snapshot.take(server)
    nights = int(before.delta(after, "staystream_nights_applied_total"))
    side = _side(before, after, result["importer_cpu_seconds"])
    return {**_public(result), "night_updates": nights, "night_updates_per_s": nights / result["seconds"], **side}


# -- live traffic beside it ---------------------------------------------------------------------


def max_rate(server: Service, size: int, b: BulkSettings) -> dict[str, float]:
    """Closed loop, `closed_connections` requests in flight: the most this request size gets."""
    connections = max(1, min(b.closed_connections, b.listings // size))
    job = Job("127.0.0.1", server.port, "rates", connections, b.calibrate_seconds, None, (0, b.listings),
              b.listings, size, seed=size, tag="max")
    summary = loadgen.run(loadgen.split(job, min(b.loadgen_processes, connections))).summary(
        warmup=min(b.warmup_seconds, b.calibrate_seconds / 3))
    return {"events_per_s": float(summary["events_per_s"]), "requests_per_s": float(summary["requests_per_s"]),  # type: ignore[arg-type]
            "night_updates_per_s": float(summary["night_updates_per_s"]), "errors": summary["errors"]}  # type: ignore[arg-type,dict-item]


def beside(server: Service, inputs: Inputs, size: int, rate: float, budget: float, b: BulkSettings,
           seed: int) -> dict[str, Any]:
    """Live traffic for `baseline_seconds`, then the import beside it; then live until the end."""
    files = inputs.next()
    connections = max(1, min(b.open_connections, b.listings // size))
    seconds = b.baseline_seconds + budget
    job = Job("127.0.0.1", server.port, "rates", connections, schedule=((seconds, rate),), listings=(0, b.listings),
              city_listings=b.listings, events_per_request=size, seed=seed, tag="live")
    outcome: dict[str, Any] = {}

    def load() -> None:
        try:
            outcome["result"] = loadgen.run(loadgen.split(job, min(b.loadgen_processes, connections)))
        except BaseException as exc:  # noqa: BLE001 - raised again in the caller
            outcome["error"] = exc

    thread = threading.Thread(target=load, name="live-load", daemon=True)
    thread.start()
    start = _load_started(server, thread)
    if start is None:
        thread.join()
        raise RuntimeError(f"the live load did not start: {outcome.get('error')}")
    first = Snapshot.take(server)
    sampler = Sampler(server, start)
    time.sleep(max(0.0, start + b.baseline_seconds - time.monotonic()))
    launched = Snapshot.take(server)
    running = Import(server, files)
    imported = running.wait()
    ended = Snapshot.take(server)
    thread.join()
    sampler.stop()
    if "error" in outcome:
        raise RuntimeError(f"the live load failed: {outcome['error']}") from outcome["error"]
    result: Result = outcome["result"]
    t_import, t_end = imported["sending_from"] - start, imported["ended"] - start
    covered = t_end <= result.duration
    during = _window(result, t_import, min(t_end, result.duration), sampler)
    live_nights = int(
        result.records["nights"][
            (result.records["ok"] == 1)
            & (result.records["done"] >= launched.at - start)
            & (result.records["done"] < t_end)
        ].sum()
    )
    applied = int(launched.delta(ended, "staystream_nights_applied_total"))
    loadgen_cores = result.generator_cpu_seconds / result.duration if result.duration else 0.0
    out: dict[str, Any] = {
        "events_per_request": size, "connections": connections, "offered_requests_per_s": rate,
        "offered_events_per_s": rate * size,
        "baseline": {**_window(result, b.warmup_seconds, b.baseline_seconds, sampler),
                     **_side(first, launched, 0.0, loadgen_cores)},
        "during_import": {**during, **_side(launched, ended, imported["importer_cpu_seconds"], loadgen_cores)},
        "after_import": _window(result, t_end + 1.0, result.duration, sampler) if t_end + 2.0 < result.duration else {},
        "import": {**_public(imported), "night_updates": imported["nights_accepted"],
                   "night_updates_per_s": imported["nights_accepted"] / imported["seconds"],
                   # a check: nights the server applied meanwhile, minus those of live answers
                   "server_nights_applied_minus_live": applied - live_nights},
        "import_outlasted_live_load": not covered,
        "live_seconds": result.duration,
    }
    acked = result.records[result.records["ok"] == 1]
    out["offered_night_updates_per_s"] = float(acked["nights"].mean() * rate) if len(acked) else 0.0
    base, dur = out["baseline"]["latency_ms"], during["latency_ms"]
    out["p99_ratio"] = dur["p99"] / base["p99"] if base["p99"] else None
    within = bool(dur["p99"] <= P99_BAR_MS and dur["max"] <= MAX_BAR_MS and during["errors"] == 0
                  and during["status_503"] == 0)
    # an import that outlasted the live load is judged only if what was measured already misses
    out["bar_judged"] = out["import"]["night_updates"] >= BAR_NIGHTS and (covered or not within)
    out["bar_met"] = within and out["bar_judged"]
    return out


def _load_started(server: Service, thread: threading.Thread, timeout: float = 600) -> float | None:
    """When the live connections opened: the load generator's time zero (within a few ms)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and thread.is_alive():
        if service._established_inodes(server.port):
            return time.monotonic()
        time.sleep(0.003)
    return None


def _window(result: Result, start: float, end: float, sampler: Sampler) -> dict[str, Any]:
    """Latency of the requests meant to go in [start, end), and second by second: the slowest
    request and what other users of the machine took meanwhile (a stall lines up with one or not)."""
    summary = result.summary(warmup=start, end=end)
    r = result.records
    meant = r[(r["intended"] >= start) & (r["intended"] < end)]
    latency = (meant["done"] - meant["intended"]) * 1000.0
    seconds = []
    for second in range(int(start), int(math.ceil(end))):
        inside = (meant["intended"] >= second) & (meant["intended"] < second + 1)
        if inside.any():
            other = sampler.other_load(second, second + 1)
            seconds.append([second, round(float(latency[inside].max()), 1), round(other, 2)])
    worst = sorted(seconds, key=lambda s: -s[1])
    return {
        "from_s": round(start, 3), "to_s": round(end, 3), **summary,
        "over_250ms": int((latency > P99_BAR_MS).sum()), "over_1s": int((latency > MAX_BAR_MS).sum()),
        "other_load_cores_max_1s": max((s[2] for s in seconds), default=0.0),
        "slowest_seconds": worst[:3],  # [second of the run, slowest ack in it (ms), other load (cores)]
        "per_second": seconds,
    }


class Sampler:
    """Every 0.25 s: cores the machine used, and those of our processes (server, importer, load
    generator, this one); the rest is other users of the machine, as a time series."""

    def __init__(self, server: Service, start: float, interval: float = 0.25) -> None:
        self.server, self.start, self.interval = server, start, interval
        self.samples: list[tuple[float, float, float]] = []  # (time, machine busy s, ours s)
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, name="sampler", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        ours_seen: dict[int, float] = {}
        while not self.done.is_set():
            pids = {os.getpid(), *service._children(os.getpid()), *self.server.processes().values()}
            for pid in pids:
                cpu = service._cpu_seconds(pid)
                if cpu:  # a process that exited keeps its last reading
                    ours_seen[pid] = cpu
            self.samples.append((time.monotonic() - self.start, machine_busy()[0], sum(ours_seen.values())))
            self.done.wait(self.interval)

    def stop(self) -> None:
        self.done.set()
        self.thread.join()

    def other_load(self, start: float, end: float) -> float:
        """Mean cores taken by other users of the machine between two times of the run."""
        inside = [s for s in self.samples if start <= s[0] <= end]
        if len(inside) < 2:
            return float("nan")
        (t0, busy0, ours0), (t1, busy1, ours1) = inside[0], inside[-1]
        return max(0.0, ((busy1 - busy0) - (ours1 - ours0)) / (t1 - t0)) if t1 > t0 else float("nan")


def _side(before: Snapshot, after: Snapshot, importer_cpu: float, loadgen_cores: float = 0.0) -> dict[str, Any]:
    """Cores by process, other users of the machine, and how the writer grouped, between two snapshots."""
    seconds = max(after.at - before.at, 1e-9)
    cores = service.cpu_delta(before.cpu, after.cpu, seconds)
    ours = sum(cores.values()) + importer_cpu / seconds + loadgen_cores
    busy = (after.busy - before.busy) / seconds
    groups = before.delta(after, "staystream_commit_group_events_count")
    commits = before.delta(after, "staystream_commit_seconds_count")
    applies = before.delta(after, "staystream_apply_seconds_count")
    return {
        "server_cores": cores, "importer_cores": round(importer_cpu / seconds, 3),
        "loadgen_cores": round(loadgen_cores, 3), "machine_busy_cores": round(busy, 3),
        "other_load_cores": round(max(0.0, busy - ours), 3),
        "groups_per_s": groups / seconds,
        "mean_group_events": before.delta(after, "staystream_commit_group_events_sum") / groups if groups else 0.0,
        "mean_group_requests": before.delta(after, "staystream_commit_group_requests_sum") / groups if groups else 0.0,
        "commit_ms_mean": 1000 * before.delta(after, "staystream_commit_seconds_sum") / commits if commits else 0.0,
        "apply_ms_mean": 1000 * before.delta(after, "staystream_apply_seconds_sum") / applies if applies else 0.0,
        "shed_503": int(before.delta(after, "staystream_shed_requests_total")),
        "snapshots": int(before.delta(after, "staystream_snapshot_seconds_count")),
        "commits_over_250ms": int(commits - before.delta(after, 'staystream_commit_seconds_bucket{le="0.25"}')),
        "applies_over_250ms": int(applies - before.delta(after, 'staystream_apply_seconds_bucket{le="0.25"}')),
    }


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _public(imported: dict[str, Any]) -> dict[str, Any]:
    """The import's figures without its absolute clock readings."""
    return {k: v for k, v in imported.items() if k not in ("sending_from", "ended")}


def _int(text: str) -> int:
    return int(text.replace(",", ""))


def _aggregate(runs: list[Any]) -> Any:
    """Numbers become {median, min, max}, dicts go key by key, the rest is the first run's."""
    first = runs[0]
    if isinstance(first, dict):
        return {key: _aggregate([run[key] for run in runs if key in run]) for key in first}
    if isinstance(first, (int, float)) and not isinstance(first, bool):
        values = [float(v) for v in runs if isinstance(v, (int, float)) and v == v]
        if not values:
            return {"median": math.nan, "min": math.nan, "max": math.nan}
        return {"median": statistics.median(values), "min": min(values), "max": max(values)}
    if isinstance(first, bool):
        return all(runs)
    return first


# -- reporting ------------------------------------------------------------------------------------


def _spread(value: Any, digits: int = 0, scale: float = 1.0) -> str:
    if isinstance(value, dict):
        f = f"{{:,.{digits}f}}"
        m, lo, hi = (value[k] * scale for k in ("median", "min", "max"))
        return f.format(m) if lo == hi else f"{f.format(m)} ({f.format(lo)}-{f.format(hi)})"
    return f"{value * scale:,.{digits}f}"


def _run_line(run: dict[str, Any]) -> str:
    base, during, imp = run["baseline"]["latency_ms"], run["during_import"]["latency_ms"], run["import"]
    return (f"live p99 {base['p99']:.1f} ms alone, {during['p99']:.1f} ms during the import (max {during['max']:.0f}); "
            f"import {imp['night_updates']:,} night updates in {imp['seconds']:.1f} s; "
            f"other load {run['during_import']['other_load_cores']:.2f} cores; "
            f"bar {_verdict(run['bar_judged'], run['bar_met'])}")


def rows(result: dict[str, Any]) -> list[str]:
    """Summary lines for `benchmarks.run`."""
    alone = result["import_alone"]["median"]
    lines = [f"import alone: {_spread(alone['night_updates'])} night updates in {_spread(alone['seconds'], 1)} s, "
             f"{_spread(alone['night_updates_per_s'])} night updates/s"]
    for case, r in result.items():
        if not case.startswith("live "):
            continue
        m = r["median"]
        base, during = m["baseline"]["latency_ms"], m["during_import"]["latency_ms"]
        lines.append(
            f"{case} at {_m(m['offered_requests_per_s']):,.1f}/s ({_m(m['offered_events_per_s']):,.0f} events/s, "
            f"{result['settings']['live_fraction']:.0%} of max): ack p50/p99/p99.9/max alone "
            f"{_spread(base['p50'], 1)} / {_spread(base['p99'], 1)} / {_spread(base['p99.9'], 1)} / "
            f"{_spread(base['max'])} ms; "
            f"during the import {_spread(during['p50'], 1)} / {_spread(during['p99'], 1)} / "
            f"{_spread(during['p99.9'], 1)} / "
            f"{_spread(during['max'])} ms (p99 x{_spread(m['p99_ratio'], 1)}); import "
            f"{_spread(m['import']['night_updates'])} "
            f"night updates in {_spread(m['import']['seconds'], 1)} s "
            f"({_spread(m['import']['night_updates_per_s'])}/s); "
            f"503 {_spread(m['during_import']['status_503'])}, errors {_spread(m['during_import']['errors'])}; "
            f"other load {_spread(m['during_import']['other_load_cores'], 2)} cores; bar (p99 <= {P99_BAR_MS:.0f} ms, "
            f"max <= {MAX_BAR_MS:.0f} ms, >= {BAR_NIGHTS / 1e6:.0f} M nights) {_tally(r['runs'])}"
        )
    return lines


def _verdict(judged: bool, met: bool) -> str:
    if not judged:
        return f"not judged (the import carried under {BAR_NIGHTS / 1e6:.0f} M nights, or outlasted the live load)"
    return "met" if met else "MISSED"


def _tally(runs: list[dict[str, Any]]) -> str:
    judged = [run for run in runs if run["bar_judged"]]
    if not judged:
        return _verdict(False, False)
    met = sum(run["bar_met"] for run in judged)
    unjudged = f" ({len(runs) - len(judged)} not judged)" if len(judged) < len(runs) else ""
    return f"met in {met} of {len(judged)} runs{unjudged}"


def _m(value: Any) -> float:
    return float(value["median"]) if isinstance(value, dict) else float(value)


def main(argv: list[str] | None = None) -> int:
    """`python -m benchmarks.bulk_live`: the scenario alone with its own sizes (smoke test, experiments)."""
    import argparse
    import json
    import shutil
    import tempfile

    parser = argparse.ArgumentParser(prog="python -m benchmarks.bulk_live", description=__doc__.split("\n\n")[0])
    d = BulkSettings()
    parser.add_argument("--repeat", type=int, default=d.repeat)
    parser.add_argument("--listings", type=int, default=d.listings, help="prefilled city the live traffic writes to")
    parser.add_argument("--workers", type=int, default=d.workers)
    parser.add_argument("--copies", type=int, default=d.copies, help="Singapore calendars per import")
    parser.add_argument("--calendar-rows", type=int, help="only the first rows of each copy (smoke runs)")
    parser.add_argument("--sizes", default=",".join(map(str, d.sizes)), help="live events per request, comma-separated")
    parser.add_argument("--live-fraction", type=float, default=d.live_fraction, help="live rate, a fraction of max")
    parser.add_argument("--baseline-seconds", type=float, default=d.baseline_seconds)
    parser.add_argument("--calibrate-seconds", type=float, default=d.calibrate_seconds)
    parser.add_argument("--output", type=Path, help="write the figures there as JSON")
    args = parser.parse_args(argv)
    b = BulkSettings(repeat=args.repeat, listings=args.listings, workers=args.workers, copies=args.copies,
                     calendar_rows=args.calendar_rows, sizes=tuple(int(n) for n in args.sizes.split(",")),
                     live_fraction=args.live_fraction, baseline_seconds=args.baseline_seconds,
                     warmup_seconds=min(3.0, args.baseline_seconds / 3), calibrate_seconds=args.calibrate_seconds)
    workdir = Path(tempfile.mkdtemp(prefix="staystream-bulk-"))
    try:
        result = measure(b, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print("\n".join(rows(result)))
    if args.output is not None:
        args.output.write_text(json.dumps(result, indent=1, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
