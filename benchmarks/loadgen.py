"""The load generator: its own processes, raw HTTP/1.1 keep-alive over asyncio streams.

Two modes, as in wrk2:

- *closed loop* (max speed): every connection sends its next request as soon as the previous
  answer arrived, for `duration` seconds;
- *open loop* (fixed rate): the schedule fixes when each request is *meant* to go out; a
  connection that is still waiting for an answer sends late, and the latency is measured from
  the intended time, so queueing in the server is not hidden (no coordinated omission).

Each connection owns a disjoint share of the listings and sends its requests one at a time, so
its events reach the server in `changed_at` order and every event is a real update. Request
bodies are built before the clock starts; sending one costs a `bytes.replace` of the time
prefix, so the generator is not what limits the measurement (`sink_ceiling` measures it against
a server that answers without reading the events).

`python -m benchmarks.loadgen --help` runs it by hand against a running server.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import random
import time
from dataclasses import dataclass, field
from multiprocessing.connection import Connection

import numpy as np

from . import workload
from .workload import City

RECORD = np.dtype([
    ("intended", "<f8"),  # seconds after the start: when the request was meant to go out
    ("sent", "<f8"),
    ("done", "<f8"),
    ("status", "<i2"),  # HTTP status; 0 for a connection error
    ("ok", "u1"),  # 200 and nothing rejected
    ("events", "<i4"),
    ("nights", "<i4"),
    ("matches", "<i4"),  # search: the `matches` of the answer (-1 for writes)
])
TEMPLATE_BUDGET = 640  # request bodies kept per process (~100 KB each)
READY_TIMEOUT = 600.0


@dataclass(frozen=True)
class Job:
    """What one generator process does; `rates` and `prefill` split `listings` among connections."""

    host: str
    port: int
    workload: str  # "rates", "prefill" or "search"
    connections: int
    duration: float = 10.0  # closed loop only
    schedule: tuple[tuple[float, float], ...] | None = None  # open loop: (seconds, requests/s) phases
    listings: tuple[int, int] = (0, 0)  # [first, last) of this process
    city_listings: int = 0
    city_half: tuple[float, float] = (workload.HALF_LAT, workload.HALF_LON)  # prefill: the city's size
    events_per_request: int = 500
    seed: int = 0
    search_paths: tuple[str, ...] = ()
    prefill_changed_at: str = ""
    retry_shed: bool = False  # resend a request answered 503 (prefill must land entirely)
    process: int = 0  # this process's index among `processes`
    processes: int = 1
    tag: str = "load"  # results of jobs run together are told apart by tag
    event_nights: tuple[int, int] = (workload.MIN_EVENT_NIGHTS, workload.MAX_EVENT_NIGHTS)  # rates: per event
    read_fraction: float = 0.0  # rates: this share of acknowledged requests is followed by a calendar read


@dataclass
class Result:
    """The requests of one load run, from every process, times relative to its start."""

    records: np.ndarray
    duration: float
    generator_cpu_seconds: float
    processes: int
    tags: np.ndarray | None = None  # per record, the index of its job's tag in `tag_names`
    tag_names: tuple[str, ...] = ()
    cpu_by_tag: dict[str, float] = field(default_factory=dict)

    def only(self, tag: str) -> Result:
        """The requests of the jobs tagged `tag`."""
        index = self.tag_names.index(tag)
        assert self.tags is not None
        return Result(self.records[self.tags == index], self.duration, self.cpu_by_tag.get(tag, 0.0),
                      self.processes)

    def summary(self, warmup: float = 0.0, end: float | None = None) -> dict[str, object]:
        """Throughput over answers in [warmup, end]; latency of requests meant for that window."""
        end = self.duration if end is None else end
        r = self.records
        window = max(end - warmup, 1e-9)
        answered = r[(r["done"] >= warmup) & (r["done"] < end)]
        acked = answered[answered["ok"] == 1]
        meant = r[(r["intended"] >= warmup) & (r["intended"] < end)]
        latency = (meant["done"] - meant["intended"]) * 1000.0
        late = (meant["sent"] - meant["intended"]) * 1000.0
        return {
            "requests": int(len(meant)),
            "events_per_s": float(acked["events"].sum() / window),
            "night_updates_per_s": float(acked["nights"].sum() / window),
            "requests_per_s": float(len(acked) / window),
            "latency_ms": percentiles(latency),
            "send_delay_ms": percentiles(late),
            "errors": int(((meant["ok"] == 0) & (meant["status"] != 503)).sum()),
            "status_503": int((meant["status"] == 503).sum()),
            "generator_cores": self.generator_cpu_seconds / self.duration if self.duration else 0.0,
            **({"mean_matches": float(meant["matches"][meant["matches"] >= 0].mean())}
               if (meant["matches"] >= 0).any() else {}),
        }


def percentiles(values: np.ndarray) -> dict[str, float]:
    if len(values) == 0:
        return {"p50": float("nan"), "p99": float("nan"), "p99.9": float("nan"), "max": float("nan")}
    p50, p99, p999 = np.percentile(values, [50, 99, 99.9])
    return {"p50": float(p50), "p99": float(p99), "p99.9": float(p999), "max": float(values.max())}


# -- request sources ---------------------------------------------------------------------

Item = tuple[bytes, int, int]  # the full HTTP request, its events, its night updates


class RateSource:
    """Pre-built bodies of one connection's listings; each send stamps a newer time prefix."""

    def __init__(self, host: str, listings: np.ndarray, events: int, templates: int, seed: int,
                 nights: tuple[int, int]) -> None:
        rng = np.random.default_rng(seed)
        self.items: list[tuple[bytes, int, int]] = []
        self.reads: list[bytes] = []  # per template: the calendar of its first listing
        for _ in range(templates):
            columns = workload.rate_columns(rng, listings, events, nights)
            body = workload.rate_body(columns)
            self.items.append((_request("POST", "/v1/events", host, body), len(columns), int(columns["nights"].sum())))
            path = f"/v1/listings/{workload.SOURCE}/{workload.listing_id(int(columns['listing'][0]))}/calendar"
            self.reads.append(_request("GET", path, host, None))
        self.next_index = 0
        self.last_ms = 0
        self.last_read = self.reads[0]

    def next(self) -> Item | None:
        self.last_read = self.reads[self.next_index]
        template, events, nights = self.items[self.next_index]
        self.next_index = (self.next_index + 1) % len(self.items)
        # strictly newer than anything this connection sent, and never ahead of the clock by
        # more than the requests it sends within one millisecond
        self.last_ms = max(int(time.time() * 1000), self.last_ms + 1)
        return template.replace(workload.PLACEHOLDER, workload.rfc3339_ms(self.last_ms).encode()), events, nights

    def again(self, item: Item) -> None:
        pass  # a shed rate request is not resent: the next one is newer anyway


class PrefillSource:
    """Describes and fills the calendars of a range of listings, `events` lines a request."""

    def __init__(self, host: str, city: City, first: int, last: int, events: int, changed_at: str) -> None:
        self.host, self.city, self.changed_at = host, city, changed_at
        self.per_request = max(1, events // 5)  # 5 lines a listing
        self.chunks = iter(range(first, last, self.per_request))
        self.last = last
        self.retry: list[Item] = []

    def next(self) -> Item | None:
        if self.retry:
            return self.retry.pop()
        start = next(self.chunks, None)
        if start is None:
            return None
        lines = workload.prefill_lines(self.city, start, min(start + self.per_request, self.last), self.changed_at)
        body = b"\n".join(lines) + b"\n"
        return _request("POST", "/v1/events", self.host, body, bulk=True), len(lines), 0

    def again(self, item: Item) -> None:
        self.retry.append(item)


class SearchSource:
    def __init__(self, host: str, paths: tuple[str, ...], offset: int) -> None:
        self.items = [_request("GET", path, host, None) for path in paths]
        self.next_index = offset % len(self.items)

    def next(self) -> Item | None:
        item = self.items[self.next_index]
        self.next_index = (self.next_index + 1) % len(self.items)
        return item, 0, 0

    def again(self, item: Item) -> None:
        pass


def _request(method: str, path: str, host: str, body: bytes | None, bulk: bool = False) -> bytes:
    head = f"{method} {path} HTTP/1.1\r\nHost: {host}\r\n"
    if bulk:
        head += "x-staystream-bulk: 1\r\n"  # an import: yields to live traffic in the writer
    if body is None:
        return (head + "\r\n").encode()
    head += f"Content-Type: application/x-ndjson\r\nContent-Length: {len(body)}\r\n\r\n"
    return head.encode() + body


def _sources(job: Job) -> list[RateSource] | list[PrefillSource] | list[SearchSource]:
    host = f"{job.host}:{job.port}"
    if job.workload == "search":
        return [SearchSource(host, job.search_paths, job.seed * 7919 + i * 104729) for i in range(job.connections)]
    first, last = job.listings
    shares = np.array_split(np.arange(first, last, dtype=np.int64), job.connections)
    if job.workload == "prefill":
        city = City(job.city_listings, half_lat=job.city_half[0], half_lon=job.city_half[1])
        return [PrefillSource(host, city, int(s[0]), int(s[-1]) + 1, job.events_per_request, job.prefill_changed_at)
                for s in shares if len(s)]
    if job.workload == "rates":
        if last - first < job.connections * job.events_per_request:
            # too few listings for disjoint shares: every connection draws from all of them
            # (an event may then lose to another connection's newer one: nights_won_fraction < 1)
            shares = [np.arange(first, last, dtype=np.int64)] * job.connections
        templates = max(2, min(16, TEMPLATE_BUDGET // job.connections))
        return [RateSource(host, share, job.events_per_request, templates, job.seed * 1000 + i, job.event_nights)
                for i, share in enumerate(shares)]
    raise ValueError(f"workload: '{job.workload}' is not one of rates, prefill, search")


def schedule_times(schedule: tuple[tuple[float, float], ...]) -> np.ndarray:
    """Intended send times (seconds after the start) of an open-loop schedule's requests."""
    times, start = [], 0.0
    for seconds, rate in schedule:
        count = int(round(seconds * rate))
        times.append(start + np.arange(count) / rate if rate > 0 else np.empty(0))
        start += seconds
    return np.concatenate(times) if times else np.empty(0)


# -- one process ---------------------------------------------------------------------------


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    lower = head.lower()
    at = lower.find(b"content-length:")
    if at < 0:
        raise ConnectionError(f"response without content-length: {head[:200]!r}")
    length = int(lower[at + 15 : lower.index(b"\r\n", at)])
    return status, await reader.readexactly(length)


def _matches(body: bytes) -> int:
    at = body.find(b'"matches":')
    if at < 0:
        return -1
    end = at + 10
    while end < len(body) and body[end : end + 1].isdigit():
        end += 1
    return int(body[at + 10 : end] or -1)


async def _connection(job: Job, source: RateSource | PrefillSource | SearchSource, times: np.ndarray | None,
                      start: float, out: list[tuple[float, float, float, int, int, int, int, int]]) -> None:
    end = float("inf") if job.workload == "prefill" else start + job.duration
    if times is not None and len(times):
        # connect when the schedule starts, not before: a connection left idle through a silent
        # phase (the tail scenario's half job waits out the full-speed one) would be closed by
        # the server's keep-alive timeout, and its first request counted as an error
        await asyncio.sleep(max(0.0, start + times[0] - 0.05 - time.monotonic()))
    reader, writer = await asyncio.open_connection(job.host, job.port, limit=1 << 20)
    k = 0
    reads = random.Random(job.seed * 7919 + id(source) % 7919)  # which acknowledged requests are read back
    try:
        while True:
            if times is not None:
                if k >= len(times):
                    break
                intended = start + times[k]
                delay = intended - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
            else:
                intended = time.monotonic()
                if intended >= end:
                    break
            k += 1
            item = source.next()
            if item is None:
                break
            request, events, nights = item
            sent = time.monotonic()
            try:
                writer.write(request)
                status, body = await _read_response(reader)
            except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
                status, body = 0, b""
                writer.close()
                reader, writer = await asyncio.open_connection(job.host, job.port, limit=1 << 20)
            done = time.monotonic()
            ok = status == 200 and (events == 0 or b'"rejected":[]' in body)
            matches = _matches(body) if job.workload == "search" and status == 200 else -1
            if status == 200 and not ok and len(out) < 3:
                print(f"loadgen: events rejected: {body[:300]!r}", flush=True)
            out.append((intended - start, sent - start, done - start, status, ok, events, nights, matches))
            if ok and isinstance(source, RateSource) and job.read_fraction and reads.random() < job.read_fraction:
                # read-after-ack, as a client checking its change: on the same connection, so a
                # slow read delays (and is counted in) this connection's next intended send
                try:
                    writer.write(source.last_read)
                    await _read_response(reader)
                except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
                    writer.close()
                    reader, writer = await asyncio.open_connection(job.host, job.port, limit=1 << 20)
            if status == 503 and job.retry_shed:
                source.again(item)
                await asyncio.sleep(0.2)
    finally:
        writer.close()


async def _run(job: Job, sources: list, start: float) -> list[tuple[float, float, float, int, int, int, int, int]]:
    out: list[tuple[float, float, float, int, int, int, int, int]] = []
    all_times = None if job.schedule is None else schedule_times(job.schedule)
    total = job.processes * len(sources)
    tasks = []
    for i, source in enumerate(sources):
        g = job.process * len(sources) + i
        times = None if all_times is None else all_times[g::total]
        tasks.append(_connection(job, source, times, start, out))
    delay = start - time.monotonic()
    if delay > 0:
        await asyncio.sleep(delay)
    await asyncio.gather(*tasks)
    return out


def _process_main(job: Job, pipe: Connection) -> None:
    try:
        sources = _sources(job)
        pipe.send(("ready", None))
        start = pipe.recv()
        cpu = time.process_time()
        out = _event_loop_run(_run(job, sources, start))
        cpu = time.process_time() - cpu
        records = np.array(out, dtype=RECORD)
        pipe.send(("done", (records.tobytes(), cpu)))
    except BaseException as exc:
        pipe.send(("error", f"{type(exc).__name__}: {exc}"))
        raise


def _event_loop_run(coroutine):  # type: ignore[no-untyped-def]
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coroutine)
    return uvloop.run(coroutine)


# -- the parent ----------------------------------------------------------------------------


def run(jobs: list[Job]) -> Result:
    """Run jobs in their own processes with one common start; wait for all of them."""
    context = multiprocessing.get_context("spawn")
    started = []
    for job in jobs:
        parent, child = context.Pipe()
        process = context.Process(target=_process_main, args=(job, child), daemon=True)
        process.start()
        child.close()
        started.append((process, parent))
    try:
        for _process, pipe in started:
            _expect(pipe, "ready", READY_TIMEOUT)
        start = time.monotonic() + 0.2
        for _, pipe in started:
            pipe.send(start)
        longest = max((_planned(job) for job in jobs), default=0.0)
        tag_names = tuple(sorted({job.tag for job in jobs}))
        parts, tags, cpu, cpu_by_tag = [], [], 0.0, {}
        for job, (_, pipe) in zip(jobs, started, strict=False):
            data, seconds = _expect(pipe, "done", longest + READY_TIMEOUT)
            parts.append(np.frombuffer(data, dtype=RECORD))
            tags.append(np.full(len(parts[-1]), tag_names.index(job.tag), dtype=np.uint8))
            cpu += seconds
            cpu_by_tag[job.tag] = cpu_by_tag.get(job.tag, 0.0) + seconds
    finally:
        for process, pipe in started:
            process.join(10)
            if process.is_alive():
                process.kill()
            pipe.close()
    records = np.concatenate(parts) if parts else np.empty(0, RECORD)
    duration = max((_planned(job) for job in jobs), default=0.0)
    if not duration or any(job.workload == "prefill" for job in jobs):
        duration = float(records["done"].max()) if len(records) else 0.0
    return Result(records, duration, cpu, len(jobs), np.concatenate(tags) if tags else None, tag_names, cpu_by_tag)


def _planned(job: Job) -> float:
    if job.schedule is not None:
        return float(sum(seconds for seconds, _ in job.schedule))
    return job.duration if job.workload != "prefill" else 3600.0


def _expect(pipe: Connection, kind: str, timeout: float):  # type: ignore[no-untyped-def]
    if not pipe.poll(timeout):
        raise TimeoutError(f"load generator process sent no '{kind}' within {timeout:.0f} s")
    what, payload = pipe.recv()
    if what == "error":
        raise RuntimeError(f"load generator process failed: {payload}")
    if what != kind:
        raise RuntimeError(f"load generator process sent '{what}', expected '{kind}'")
    return payload


def split(job: Job, processes: int) -> list[Job]:
    """The same job spread over `processes` processes (listings and connections divided)."""
    first, last = job.listings
    bounds = np.linspace(first, last, processes + 1).astype(int)
    per = max(1, job.connections // processes)
    return [
        Job(**{**job.__dict__, "listings": (int(bounds[p]), int(bounds[p + 1])), "connections": per,
               "process": p, "processes": processes, "seed": job.seed * 100 + p})
        for p in range(processes)
    ]


# -- the generator's own ceiling -------------------------------------------------------------

SINK_BODY = b'{"accepted":500,"rejected":[]}'
SINK_RESPONSE = (b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: "
                 + str(len(SINK_BODY)).encode() + b"\r\n\r\n" + SINK_BODY)


class _Sink(asyncio.Protocol):
    """Answers every request at once without parsing its body: the cheapest possible server."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self.head = b""
        self.remaining = 0

    def data_received(self, data: bytes) -> None:
        view = memoryview(data)
        while len(view):
            if self.remaining:
                taken = min(self.remaining, len(view))
                self.remaining -= taken
                view = view[taken:]
                if not self.remaining:
                    self.transport.write(SINK_RESPONSE)  # type: ignore[attr-defined]
                continue
            self.head += bytes(view)
            view = memoryview(b"")
            end = self.head.find(b"\r\n\r\n")
            if end < 0:
                continue
            head, rest = self.head[:end].lower(), self.head[end + 4 :]
            self.head = b""
            at = head.find(b"content-length:")
            self.remaining = int(head[at + 15 :].split(b"\r\n", 1)[0]) if at >= 0 else 0
            if not self.remaining:
                self.transport.write(SINK_RESPONSE)  # type: ignore[attr-defined]
            view = memoryview(rest)


def _sink_main(pipe: Connection) -> None:
    async def serve() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(_Sink, "127.0.0.1", 0, backlog=1024)
        pipe.send(server.sockets[0].getsockname()[1])
        await loop.run_in_executor(None, pipe.recv)
        server.close()

    _event_loop_run(serve())


def sink_ceiling(connections: int, duration: float, listings: int = 100_000, events: int = 500,
                 processes: int = 1) -> Result:
    """The generator at full speed against `_Sink`: its own maximum rate on this machine."""
    context = multiprocessing.get_context("spawn")
    parent, child = context.Pipe()
    sink = context.Process(target=_sink_main, args=(child,), daemon=True)
    sink.start()
    try:
        port = _expect_port(parent)
        connections = max(1, min(connections, listings // events))
        job = Job("127.0.0.1", port, "rates", connections, duration=duration, listings=(0, listings),
                  city_listings=listings, events_per_request=events)
        return run(split(job, processes))
    finally:
        parent.send("stop")
        sink.join(10)
        if sink.is_alive():
            sink.kill()


def _expect_port(pipe: Connection) -> int:
    if not pipe.poll(30):
        raise TimeoutError("the sink did not report its port within 30 s")
    return int(pipe.recv())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.loadgen", description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="http://127.0.0.1:8080", help="a running staystream (127.0.0.1 only)")
    parser.add_argument("--sink", action="store_true", help="measure the generator against a trivial sink instead")
    parser.add_argument("--workload", default="rates", choices=("rates", "search"))
    parser.add_argument("--listings", type=int, default=100_000, help="prefilled listings bench/L0000000...")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--processes", type=int, default=1)
    parser.add_argument("--events", type=int, default=500, help="rate events a request")
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--rate", type=float, help="requests/s (open loop); none: closed loop, max speed")
    args = parser.parse_args(argv)
    if args.sink:
        result = sink_ceiling(args.connections, args.duration, args.listings, args.events, args.processes)
    else:
        host, _, port = args.url.removeprefix("http://").partition(":")
        if host not in ("127.0.0.1", "localhost"):
            raise SystemExit(f"--url: '{args.url}' is not on 127.0.0.1; load tests target this machine only")
        schedule = None if args.rate is None else ((args.duration, args.rate),)
        paths = tuple(workload.search_paths(City(args.listings), 1000)) if args.workload == "search" else ()
        job = Job("127.0.0.1", int(port or 80), args.workload, args.connections, args.duration, schedule,
                  (0, args.listings), args.listings, args.events, search_paths=paths)
        result = run(split(job, args.processes))
    print(json.dumps(result.summary(), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
