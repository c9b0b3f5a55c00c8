"""The measured scenarios. Each returns one run's figures; `run.py` repeats them for medians.

| name | what |
|---|---|
| generator | the load generator at full speed against a trivial sink: its own ceiling |
| throughput | (a) sustained max write throughput, closed loop, with 1 and 2 workers |
| latency | (b) acknowledgment latency, open loop, at 25%, 50%, 90% of that max |
| burst | (c) ten times a low steady rate for a while, then back: max latency and recovery |
| tail | full speed, then at once half that rate: the half phase's latency vs a fresh server's |
| search | (d) search latency alone and under write load, at 100k and 50k listings |
| ceiling | (f) the store alone (CalendarWriter + commit_group), the same batches, no HTTP |
| memory | (e) memory per million listings with 365-night calendars; restart to ready |
"""

from __future__ import annotations

import shutil
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from . import ceiling, loadgen, service, workload
from .loadgen import Job, Result
from .service import Service
from .workload import City

NAMES = ("generator", "throughput", "latency", "burst", "tail", "search", "ceiling", "memory")


@dataclass(frozen=True)
class Settings:
    """Sizes and durations; `quick()` shrinks them for a smoke run."""

    repeat: int = 3
    city_listings: int = 100_000  # (a)-(d) and (f)
    small_city_listings: int = 50_000  # (d) at issue 2's size
    memory_listings: tuple[int, ...] = (250_000, 1_000_000)
    workers: tuple[int, ...] = (1, 2)  # (a) compares these; the rest runs with the last
    events_per_request: int = 500
    closed_connections: int = 16  # (a): requests in flight at max speed
    open_connections: int = 64  # (b)-(d): enough that the schedule, not the pool, sets the pace
    loadgen_processes: int = 1
    warmup_seconds: float = 3.0
    throughput_seconds: float = 25.0
    latency_seconds: float = 20.0
    latency_fractions: tuple[float, ...] = (0.25, 0.5, 0.9)
    burst_phases: tuple[float, float, float] = (10.0, 30.0, 20.0)  # steady, 10x, steady
    burst_peak_fraction: float = 0.8  # the 10x phase as a fraction of max: steady = peak / 10
    tail_listings: int = 10_000  # issue 15's outside run: small city, 7-night events, reads after acks
    tail_connections: int = 32
    tail_event_nights: tuple[int, int] = (7, 7)
    tail_read_fraction: float = 0.1
    tail_phases: tuple[float, float] = (20.0, 20.0)  # full speed, then half
    search_seconds: float = 20.0
    search_rate: float = 25.0  # searches/s, open loop
    search_write_fraction: float = 0.5
    ceiling_seconds: float = 10.0
    generator_seconds: float = 8.0

    @classmethod
    def quick(cls, **overrides: object) -> Settings:
        base = dict(
            repeat=1, city_listings=20_000, small_city_listings=10_000, memory_listings=(20_000, 40_000),
            closed_connections=16, open_connections=32, warmup_seconds=1.0, throughput_seconds=4.0,
            latency_seconds=4.0, burst_phases=(2.0, 4.0, 3.0), tail_listings=4_000,
            tail_connections=8, tail_phases=(3.0, 3.0), search_seconds=4.0, ceiling_seconds=2.0,
            generator_seconds=2.0,
        )
        base.update(overrides)
        return cls(**base)  # type: ignore[arg-type]


@dataclass
class Bench:
    """The servers the scenarios share, and what earlier scenarios learned (max rate, group size)."""

    settings: Settings
    workdir: Path
    log: Callable[[str], None] = print
    city: Service | None = None
    city_prefilled: bool = False
    max_events_per_s: dict[int, list[float]] = field(default_factory=dict)
    max_nights_per_s: dict[int, list[float]] = field(default_factory=dict)
    group_events: list[float] = field(default_factory=list)
    notes: dict[str, object] = field(default_factory=dict)

    # -- servers -------------------------------------------------------------------------

    def city_server(self, workers: int) -> Service:
        """The 100k-listing city with `workers` workers: prefilled once, restarted to switch."""
        if self.city is not None and self.city.workers == workers:
            return self.city
        stopped = self.city.stop() if self.city is not None else None
        self.city = service.start(self.workdir / "city", workers)
        self.log(f"  staystream --workers {workers}: ready in {self.city.ready_seconds:.2f} s")
        restarts = self.notes.setdefault("city_starts", [])
        assert isinstance(restarts, list)
        restarts.append({"workers": workers, "listings": self.settings.city_listings if self.city_prefilled else 0,
                         "previous_stop_seconds": stopped, "ready_seconds": self.city.ready_seconds})
        if not self.city_prefilled:
            self.notes["city_prefill"] = prefill(self.city, self.settings.city_listings, self.settings, self.log)
            self.city_prefilled = True
        return self.city

    def close(self) -> None:
        if self.city is not None:
            self.city.stop()
            self.city = None

    def max_rate(self, workers: int) -> float:
        """Events/s at max speed (median of the throughput runs, else one calibration run)."""
        if workers not in self.max_events_per_s:
            self.log(f"  calibrating max throughput with {workers} workers")
            throughput_run(self, workers, self.settings.throughput_seconds / 2)
        return statistics.median(self.max_events_per_s[workers])

    # -- jobs ----------------------------------------------------------------------------

    def rate_jobs(self, server: Service, listings: int, connections: int, duration: float = 0.0,
                  schedule: tuple[tuple[float, float], ...] | None = None, seed: int = 0) -> list[Job]:
        s = self.settings
        connections = max(1, min(connections, listings // s.events_per_request))
        job = Job("127.0.0.1", server.port, "rates", connections, duration, schedule, (0, listings), listings,
                  s.events_per_request, seed=seed, tag="write")
        return loadgen.split(job, max(1, min(s.loadgen_processes, connections)))


def prefill(server: Service, listings: int, settings: Settings, log: Callable[[str], None],
            city_half: tuple[float, float] = (workload.HALF_LAT, workload.HALF_LON)) -> dict[str, object]:
    """Describe `listings` listings (in a city of 2 x `city_half` degrees) and fill their
    365-night calendars, as fast as it goes."""
    changed_at = workload.rfc3339_ms(int(time.time() * 1000) - 600_000)
    job = Job("127.0.0.1", server.port, "prefill", 16, listings=(0, listings), city_listings=listings,
              city_half=city_half, events_per_request=settings.events_per_request, prefill_changed_at=changed_at,
              retry_shed=True)
    started = time.monotonic()
    result = loadgen.run(loadgen.split(job, max(1, settings.loadgen_processes)))
    seconds = time.monotonic() - started
    r = result.records
    failed = int(((r["ok"] == 0) & (r["status"] != 503)).sum())
    if failed:
        raise RuntimeError(f"prefill of {listings} listings: {failed} requests failed; see {server.log_path}")
    events = int(r["events"][r["ok"] == 1].sum())
    log(f"  prefilled {listings:,} listings ({events:,} events) in {seconds:.1f} s")
    return {"listings": listings, "events": events, "seconds": seconds, "events_per_s": events / seconds,
            "shed_503": int((r["status"] == 503).sum())}


def measured(server: Service, jobs: list[Job], warmup: float) -> tuple[Result, dict[str, object]]:
    """Run jobs against a server; the server side of it: cores used, nights won, group sizes."""
    metrics_before, cpu_before, busy_before = server.metrics(), server.cpu_seconds(), machine_busy()
    connections: dict[str, int] = {}
    sampler = threading.Timer(_first_seconds(jobs) / 2, lambda: connections.update(server.connections()))
    started = time.monotonic()
    sampler.start()
    try:
        result = loadgen.run(jobs)
    finally:
        sampler.cancel()
    seconds = time.monotonic() - started
    metrics_after, cpu_after, busy_after = server.metrics(), server.cpu_seconds(), machine_busy()

    def delta(name: str) -> float:
        return metrics_after.get(name, 0.0) - metrics_before.get(name, 0.0)

    cores = service.cpu_delta(cpu_before, cpu_after, seconds)
    total_busy = (busy_after[0] - busy_before[0]) / seconds
    ours = sum(cores.values()) + result.generator_cpu_seconds / seconds
    groups = delta("staystream_commit_group_events_count")
    acked = result.records[result.records["ok"] == 1]
    sent_nights = int(acked["nights"].sum())
    cpu_used = {role: after - cpu_before.get(role, 0.0) for role, after in cpu_after.items()}
    side: dict[str, object] = {
        "server_cores": cores,
        "connections_per_process": {role: n for role, n in connections.items() if role.startswith("worker")},
        "machine_busy_cores": round(total_busy, 3),
        "other_load_cores": round(max(0.0, total_busy - ours), 3),  # other users of the machine
        "mean_group_events": delta("staystream_commit_group_events_sum") / groups if groups else 0.0,
        "mean_group_requests": delta("staystream_commit_group_requests_sum") / groups if groups else 0.0,
        "commit_ms_mean": 1000
        * delta("staystream_commit_seconds_sum")
        / max(delta("staystream_commit_seconds_count"), 1),
        "apply_ms_mean": 1000 * delta("staystream_apply_seconds_sum") / max(delta("staystream_apply_seconds_count"), 1),
        "nights_won_fraction": delta("staystream_nights_applied_total") / sent_nights if sent_nights else None,
        "snapshots": int(delta("staystream_snapshot_seconds_count")),  # each one streams the calendar to disk
        # CPU time per acknowledged request: what the work costs, whoever else shares the cores
        "cpu_ms_per_request": {
            role: round(1000 * used / len(acked), 3)
            for role, used in cpu_used.items()
            if len(acked) and role != "supervisor"
        },
        "server_cpu_us_per_night_update": 1e6 * sum(cpu_used.values()) / sent_nights if sent_nights else None,
    }
    return result, side


def _first_seconds(jobs: list[Job]) -> float:
    """About when the connections are all open and the load is steady: a few seconds in."""
    job = jobs[0]
    planned = sum(seconds for seconds, _ in job.schedule) if job.schedule else job.duration
    return min(max(planned, 2.0), 6.0)


def machine_busy() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot, from /proc/stat."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    ticks = service.CLOCK_TICKS
    idle = fields[3] + fields[4]
    return (sum(fields[:8]) - idle) / ticks, sum(fields[:8]) / ticks


# -- the scenarios ------------------------------------------------------------------------


def generator_run(bench: Bench) -> dict[str, object]:
    s = bench.settings
    result = loadgen.sink_ceiling(s.closed_connections, s.generator_seconds, s.city_listings, s.events_per_request,
                                  s.loadgen_processes)
    return result.summary(warmup=min(1.0, s.generator_seconds / 4))


def throughput_run(bench: Bench, workers: int, seconds: float | None = None) -> dict[str, object]:
    s = bench.settings
    seconds = seconds or s.throughput_seconds
    server = bench.city_server(workers)
    jobs = bench.rate_jobs(server, s.city_listings, s.closed_connections, duration=seconds)
    result, side = measured(server, jobs, s.warmup_seconds)
    summary = result.summary(warmup=min(s.warmup_seconds, seconds / 3))
    bench.max_events_per_s.setdefault(workers, []).append(float(summary["events_per_s"]))  # type: ignore[arg-type]
    bench.max_nights_per_s.setdefault(workers, []).append(float(summary["night_updates_per_s"]))  # type: ignore[arg-type]
    if workers == s.workers[-1]:
        bench.group_events.append(float(side["mean_group_events"]))  # type: ignore[arg-type]
    return {"workers": workers, "connections": sum(j.connections for j in jobs), **summary, **side}


def latency_run(bench: Bench, fraction: float) -> dict[str, object]:
    s = bench.settings
    workers = s.workers[-1]
    max_rate = bench.max_rate(workers)
    server = bench.city_server(workers)
    requests_per_s = fraction * max_rate / s.events_per_request
    jobs = bench.rate_jobs(server, s.city_listings, s.open_connections, schedule=((s.latency_seconds, requests_per_s),))
    result, side = measured(server, jobs, s.warmup_seconds)
    return {"workers": workers, "fraction_of_max": fraction, "offered_events_per_s": fraction * max_rate,
            **result.summary(warmup=min(s.warmup_seconds, s.latency_seconds / 3)), **side}


def burst_run(bench: Bench) -> dict[str, object]:
    s = bench.settings
    workers = s.workers[-1]
    max_rate = bench.max_rate(workers)
    server = bench.city_server(workers)
    steady = s.burst_peak_fraction * max_rate / 10 / s.events_per_request  # requests/s
    before, during, after = s.burst_phases
    schedule = ((before, steady), (during, 10 * steady), (after, steady))
    jobs = bench.rate_jobs(server, s.city_listings, s.open_connections, schedule=schedule)
    result, side = measured(server, jobs, 0.0)
    burst_start, burst_end = before, before + during
    phases = {
        "before": result.summary(warmup=min(1.0, before / 2), end=burst_start),
        "burst": result.summary(warmup=burst_start, end=burst_end),
        "after": result.summary(warmup=burst_end, end=burst_end + after),
    }
    r = result.records
    latency = r["done"] - r["intended"]
    base_p99 = phases["before"]["latency_ms"]["p99"] / 1000  # type: ignore[index]
    threshold = 2 * base_p99
    slow = (r["intended"] >= burst_start) & (latency > threshold)
    recovery = max(0.0, float(r["done"][slow].max()) - burst_end) if slow.any() else 0.0
    through = r[r["intended"] >= burst_start]
    return {
        "workers": workers,
        "steady_events_per_s": steady * s.events_per_request,
        "burst_events_per_s": 10 * steady * s.events_per_request,
        "max_latency_through_burst_ms": float(1000 * (through["done"] - through["intended"]).max())
        if len(through)
        else 0.0,
        "recovery_seconds": recovery,
        "recovery_threshold_ms": 1000 * threshold,
        "phases": phases,
        **side,
    }


def tail_run(bench: Bench, calibrated: list[float]) -> dict[str, object]:
    """Full speed (closed loop) for a while, then at once open loop at half that speed, on a
    fresh server; then a second fresh server at the same half rate alone, as the reference.

    Half of what: the median full speed of the runs before (`calibrated`; a short calibration
    run on its own server before the first). Both halves are jobs of one load run: the half-rate
    job's schedule starts with a silent phase as long as the full-speed one, so there is no pause."""
    s = bench.settings
    full, half = s.tail_phases
    if not calibrated:
        server = _tail_server(bench, "tail-calibrate")
        try:
            result = loadgen.run(_tail_jobs(bench, server, duration=full / 2))
            calibrated.append(float(result.summary(warmup=min(s.warmup_seconds, full / 6))["requests_per_s"]))
        finally:
            server.stop()
    rate = statistics.median(calibrated) / 2  # requests/s: steadier than the last run alone
    server = _tail_server(bench, "tail-after")
    try:
        jobs = _tail_jobs(bench, server, duration=full, tag="full")
        jobs += _tail_jobs(bench, server, schedule=((full, 0.0), (half, rate)), tag="half")
        result, side = measured(server, jobs, 0.0)
    finally:
        server.stop()
    burst = result.only("full").summary(warmup=min(s.warmup_seconds, full / 6), end=full)
    calibrated.append(float(burst["requests_per_s"]))
    half_result = result.only("half")
    after = half_result.summary(warmup=full, end=full + half)
    # where the difference with a fresh server is: the first second (the full-speed requests
    # still in flight drain first) or the rest
    drain = {"first_second": half_result.summary(warmup=full, end=full + 1.0),
             "rest": half_result.summary(warmup=full + 1.0, end=full + half),
             "last_full_speed_answer_s": float(result.only("full").records["done"].max() - full)}
    server = _tail_server(bench, "tail-fresh")
    try:
        fresh_result, fresh_side = measured(server, _tail_jobs(bench, server, schedule=((half, rate),)), 0.0)
    finally:
        server.stop()
    fresh = fresh_result.summary(warmup=min(1.0, half / 4))
    nights = s.tail_event_nights
    return {
        "listings": s.tail_listings, "connections": s.tail_connections, "read_fraction": s.tail_read_fraction,
        "nights_per_event": (nights[0] + nights[1]) / 2, "half_events_per_s_offered": rate * s.events_per_request,
        "full": burst, "half_after_full": after, "half_after_full_parts": drain,
        "half_fresh": fresh, "after_full_side": side, "fresh_side": fresh_side,
    }


def _tail_server(bench: Bench, name: str) -> Service:
    s = bench.settings
    shutil.rmtree(bench.workdir / name, ignore_errors=True)
    server = service.start(bench.workdir / name, s.workers[-1])
    prefill(server, s.tail_listings, s, bench.log)
    return server


def _tail_jobs(bench: Bench, server: Service, duration: float = 0.0,
               schedule: tuple[tuple[float, float], ...] | None = None, tag: str = "write") -> list[Job]:
    s = bench.settings
    job = Job("127.0.0.1", server.port, "rates", s.tail_connections, duration, schedule, (0, s.tail_listings),
              s.tail_listings, s.events_per_request, tag=tag, event_nights=s.tail_event_nights,
              read_fraction=s.tail_read_fraction)
    return loadgen.split(job, max(1, min(s.loadgen_processes, s.tail_connections)))


def search_run(bench: Bench, server: Service, listings: int, write_fraction: float) -> dict[str, object]:
    s = bench.settings
    paths = tuple(workload.search_paths(City(listings), 2000))
    rate = s.search_rate
    jobs = [Job("127.0.0.1", server.port, "search", 8, schedule=((s.search_seconds, rate),), search_paths=paths,
                tag="search")]
    writes = 0.0
    if write_fraction > 0:
        writes = write_fraction * bench.max_rate(s.workers[-1])
        jobs += bench.rate_jobs(server, listings, s.open_connections,
                                schedule=((s.search_seconds, writes / s.events_per_request),))
    result, side = measured(server, jobs, s.warmup_seconds)
    warmup = min(s.warmup_seconds, s.search_seconds / 3)
    searched = result.only("search").summary(warmup=warmup)
    out = {"listings": listings, "workers": server.workers, "searches_per_s": rate,
           "search_latency_ms": searched["latency_ms"], "search_errors": searched["errors"],
           "search_mean_matches": searched.get("mean_matches", 0.0),
           "write_events_per_s_offered": writes, **side}
    if write_fraction > 0:
        written = result.only("write").summary(warmup=warmup)
        out["write"] = {
            k: written[k] for k in ("events_per_s", "night_updates_per_s", "latency_ms", "errors", "status_503")
        }
    return out


def small_city(bench: Bench) -> Service:
    s = bench.settings
    server = service.start(bench.workdir / "small-city", s.workers[-1])
    bench.notes["small_city_prefill"] = prefill(server, s.small_city_listings, s, bench.log)
    return server


def ceiling_run(bench: Bench) -> dict[str, object]:
    s = bench.settings
    group = int(statistics.median(bench.group_events)) if bench.group_events else 8 * s.events_per_request
    return ceiling.measure(s.city_listings, max(group, s.events_per_request), s.ceiling_seconds, bench.workdir)


def memory_size(bench: Bench, listings: int) -> dict[str, object]:
    """Prefill `listings` (sampling memory throughout: snapshots run meanwhile), read memory
    at rest, then restart after kill -9 and after a clean stop."""
    s = bench.settings
    directory = bench.workdir / f"memory-{listings}"
    server = service.start(directory, s.workers[-1])
    try:
        with PeakMemory(server) as peak:
            filled = prefill(server, listings, s, bench.log)
        time.sleep(1.0)
        memory = server.memory()
        memory["peak_bytes"] = max(peak.total_bytes, memory["total_bytes"])
    finally:
        server.kill()
    crash_restarts = []
    for _ in range(s.repeat):
        server = service.start(directory, s.workers[-1])
        crash_restarts.append(server.ready_seconds)
        after_crash = server.memory()
        server.kill()
    clean_restarts, stops = [], []
    server = service.start(directory, s.workers[-1])
    for _ in range(s.repeat):
        stops.append(server.stop())
        server = service.start(directory, s.workers[-1])
        clean_restarts.append(server.ready_seconds)
    after_restart = server.memory()
    server.stop()
    shutil.rmtree(directory, ignore_errors=True)
    bench.log(
        f"  {listings:,} listings: {memory['total_bytes'] / 2**30:.2f} GiB; restart to ready "
        f"{statistics.median(clean_restarts):.2f} s clean, {statistics.median(crash_restarts):.2f} s after kill -9"
    )
    return {"listings": listings, "prefill": filled, "memory": memory, "memory_after_restart": after_restart,
            "memory_after_crash_restart": after_crash, "restart_ready_seconds": clean_restarts,
            "crash_restart_ready_seconds": crash_restarts, "stop_seconds": stops}


class PeakMemory:
    """The largest `total_bytes` seen while the block runs, sampled twice a second."""

    def __init__(self, server: Service) -> None:
        self.server = server
        self.total_bytes = 0
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> PeakMemory:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.done.set()
        self.thread.join()

    def _sample(self) -> None:
        while not self.done.wait(0.5):
            self.total_bytes = max(self.total_bytes, int(self.server.memory()["total_bytes"]))  # type: ignore[call-overload]


def per_million(sizes: list[dict[str, object]]) -> dict[str, object]:
    """Least-squares line through (listings, bytes): the extrapolation to a million listings."""
    xs = [float(m["listings"]) for m in sizes]  # type: ignore[arg-type]
    ys = [float(m["memory"]["total_bytes"]) for m in sizes]  # type: ignore[index]
    peaks = [float(m["memory"]["peak_bytes"]) for m in sizes]  # type: ignore[index]
    slope, intercept = _fit(xs, ys)
    ready = [statistics.median(m["restart_ready_seconds"]) for m in sizes]  # type: ignore[arg-type]
    crash = [statistics.median(m["crash_restart_ready_seconds"]) for m in sizes]  # type: ignore[arg-type]
    return {
        "bytes_per_listing": slope,
        "fixed_bytes": intercept,
        "gib_per_million_listings": (slope * 1e6 + intercept) / 2**30,
        "peak_gib_per_million_listings": _line(xs, peaks) / 2**30,
        "extrapolated": max(xs) < 1e6,
        "restart_seconds_per_million": _line(xs, ready),
        "crash_restart_seconds_per_million": _line(xs, crash),
    }


def _line(xs: list[float], ys: list[float]) -> float:
    """y at x = 1e6 on the least-squares line (never below the slowest measured point: with
    small sizes the fixed start-up cost dominates and noise can tilt the line down)."""
    slope, intercept = _fit(xs, ys)
    return max(slope * 1e6 + intercept, max(ys))


def _fit(xs: list[float], ys: list[float]) -> tuple[float, float]:
    """Least-squares (slope, intercept); through the origin with a single point."""
    if len(xs) < 2:
        return ys[0] / xs[0], 0.0
    mean_x, mean_y = statistics.fmean(xs), statistics.fmean(ys)
    slope = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=False)) / sum((x - mean_x) ** 2 for x in xs)
    return slope, mean_y - slope * mean_x
