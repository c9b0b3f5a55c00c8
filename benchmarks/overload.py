"""Overload: 10x a credential's write rate for a minute, with idle, half-sent and stalled sockets.

What it shows (issue 10): memory stays bounded, the excess is refused with 429/503 and
`Retry-After` (to the offender, not to the others), nothing acknowledged is lost, and a
well-behaved client's p99 is back to its baseline within 5 s of the end.

Clients: `flood` (credential `flood-key`, rate R writes/s, burst R, a bucket per worker: at
most W x R writes/s with W workers) offers 10 x W x R writes/s of 100 events each over many
connections; `probe` (its own unlimited credential) writes one
small batch every 50 ms and reads a calendar, timing both, before, during and after the flood;
attackers on other loopback addresses hold idle connections, half-sent headers and stalled
chunked uploads (their own credential, `stall-key`), reconnecting as the server closes them.
Every acknowledged write of both writers is read back at the end.

    python -m benchmarks.overload [--rate 40] [--seconds 60] [--workers 2]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import statistics
import tempfile
import time
from collections import Counter
from pathlib import Path

import httpx

from benchmarks import service

TODAY = dt.date.today()
STAMP = (dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)).isoformat()
ATTACKERS = {"idle": ("127.0.0.2", 200), "half": ("127.0.0.3", 200), "stalled": ("127.0.0.4", 24)}


def batch(listing_id: str, price: int, events: int) -> bytes:
    return b"\n".join(json.dumps({
        "type": "rate", "source": "airbnb", "listing_id": listing_id, "start": str(TODAY + dt.timedelta(days=1 + i)),
        "end": str(TODAY + dt.timedelta(days=2 + i)), "price": f"{price}.00", "currency": "EUR", "changed_at": STAMP,
    }).encode() for i in range(events))


class Run:
    def __init__(self, url: str, port: int) -> None:
        self.url, self.port = url, port
        self.flood_statuses: Counter[int] = Counter()
        self.flood_retry_after: Counter[bool] = Counter()  # refusals with / without Retry-After
        self.acked: dict[str, int] = {}  # listing id -> price of every acknowledged write
        self.probe: list[tuple[float, float, str]] = []  # (time, seconds, kind)
        self.attacker_answers: Counter[str] = Counter()
        self.stop = asyncio.Event()

    async def flood(self, rate: float, seconds: float, connections: int) -> None:
        """`rate` writes a second, paced, spread over `connections` keep-alive connections."""
        headers = {"content-type": "application/x-ndjson", "authorization": "Bearer flood-key"}
        interval = 1 / rate
        queue: asyncio.Queue[int] = asyncio.Queue(maxsize=connections * 2)

        async def sender(client: httpx.AsyncClient) -> None:
            while True:
                n = await queue.get()
                if n < 0:
                    return
                listing_id = f"flood-{n}"
                try:
                    response = await client.post("/v1/events", content=batch(listing_id, 100 + n % 900, 100),
                                                 headers=headers)
                except httpx.HTTPError:
                    self.flood_statuses[0] += 1
                    continue
                self.flood_statuses[response.status_code] += 1
                if response.status_code == 200:
                    self.acked[listing_id] = 100 + n % 900
                elif response.status_code in (429, 503):
                    self.flood_retry_after["retry-after" in response.headers] += 1

        async with httpx.AsyncClient(base_url=self.url, timeout=60,
                                     limits=httpx.Limits(max_connections=connections)) as client:
            senders = [asyncio.create_task(sender(client)) for _ in range(connections)]
            started = time.monotonic()
            n = 0
            while time.monotonic() - started < seconds:
                await queue.put(n)
                n += 1
                await asyncio.sleep(max(0.0, started + n * interval - time.monotonic()))
            for _ in senders:
                await queue.put(-1)
            await asyncio.gather(*senders)
        self.offered = n / seconds

    async def probing(self) -> None:
        headers = {"content-type": "application/x-ndjson", "authorization": "Bearer probe-key"}
        async with httpx.AsyncClient(base_url=self.url, timeout=60) as client:
            n = 0
            while not self.stop.is_set():
                listing_id = f"probe-{n}"
                began = time.monotonic()
                response = await client.post("/v1/events", content=batch(listing_id, 50 + n % 50, 5), headers=headers)
                self.probe.append((began, time.monotonic() - began, f"write {response.status_code}"))
                if response.status_code == 200:
                    self.acked[listing_id] = 50 + n % 50
                began = time.monotonic()
                response = await client.get(f"/v1/listings/airbnb/{listing_id}/calendar")
                self.probe.append((began, time.monotonic() - began, f"read {response.status_code}"))
                n += 1
                await asyncio.sleep(0.05)

    async def attack(self, kind: str, source: str, count: int) -> None:
        """Keep `count` hostile connections open from `source`, reopening what the server closes."""
        payload = {"idle": b"", "half": b"GET /healthz HTTP/1.1\r\nHost: x\r\n",
                   "stalled": b"POST /v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer stall-key\r\n"
                              b"Transfer-Encoding: chunked\r\nContent-Type: application/x-ndjson\r\n\r\n"
                              b"1\r\n{\r\n"}[kind]

        async def one() -> None:
            while not self.stop.is_set():
                try:
                    reader, writer = await asyncio.open_connection("127.0.0.1", self.port, local_addr=(source, 0))
                except OSError:
                    await asyncio.sleep(0.1)
                    continue
                writer.write(payload)
                answer = b""
                with contextlib.suppress(TimeoutError, ConnectionError):
                    answer = await asyncio.wait_for(reader.read(64), 120)
                self.attacker_answers[f"{kind} {answer[9:12].decode(errors='replace') or 'closed'}"] += 1
                writer.close()

        await asyncio.gather(*(one() for _ in range(count)))


def p99(samples: list[float]) -> float:
    return statistics.quantiles(samples, n=100)[98] if len(samples) >= 2 else (samples[0] if samples else 0.0)


async def main_async(args: argparse.Namespace) -> dict[str, object]:
    work = Path(tempfile.mkdtemp(prefix="staystream-overload-"))
    tokens = work / "tokens"
    tokens.write_text(f"flood-key airbnb rate={args.rate} burst={args.rate}\nprobe-key airbnb\nstall-key airbnb\n")
    server = service.start(work / "var", args.workers, "--tokens", str(tokens))
    run = Run(server.url, server.port)
    memory: list[tuple[float, int]] = []

    async def sample_memory() -> None:
        while not run.stop.is_set():
            memory.append((time.monotonic(), int(server.memory()["rss_total_bytes"])))  # type: ignore[call-overload]
            await asyncio.sleep(1)

    try:
        sampler = asyncio.create_task(sample_memory())
        probe = asyncio.create_task(run.probing())
        await asyncio.sleep(args.baseline)
        flood_began = time.monotonic()
        attackers = [asyncio.create_task(run.attack(kind, source, count))
                     for kind, (source, count) in ATTACKERS.items()]
        # the most the credential may write is rate x workers (a bucket per worker): offer 10 x that
        await run.flood(10 * args.rate * args.workers, args.seconds, args.connections)
        flood_ended = time.monotonic()
        await asyncio.sleep(args.after)
        run.stop.set()
        for task in attackers:
            task.cancel()
        await asyncio.gather(probe, sampler, *attackers, return_exceptions=True)
        lost = []
        async with httpx.AsyncClient(base_url=server.url, timeout=60) as client:
            for listing_id, price in run.acked.items():
                response = await client.get(f"/v1/listings/airbnb/{listing_id}/calendar")
                nights = response.json().get("nights", []) if response.status_code == 200 else []
                if not nights or any(n["price"] != f"{price}.00" for n in nights):
                    lost.append(listing_id)
        log = server.log_path.read_text(errors="replace")
    finally:
        server.stop()

    def window(start: float, end: float) -> list[float]:
        return [seconds for began, seconds, kind in run.probe if start <= began < end and kind.startswith("write")]

    baseline = window(0, flood_began)
    return {
        "workers": args.workers, "rate_limit_writes_s_per_worker": args.rate,
        "max_write_rate_s": args.rate * args.workers, "events_per_write": 100,
        "offered_writes_s": round(run.offered, 1), "flood_seconds": args.seconds,
        "flood_statuses": dict(run.flood_statuses),
        "refusals_with_retry_after": run.flood_retry_after[True], "refusals_without": run.flood_retry_after[False],
        "acknowledged_writes": len(run.acked), "acknowledged_lost": len(lost),
        "probe_statuses": dict(Counter(kind for _, _, kind in run.probe)),
        "probe_write_p99_ms": {
            "baseline": round(p99(baseline) * 1000, 1),
            "during": round(p99(window(flood_began, flood_ended)) * 1000, 1),
            "after_0_5s": round(p99(window(flood_ended, flood_ended + 5)) * 1000, 1),
            "after_5_10s": round(p99(window(flood_ended + 5, flood_ended + 10)) * 1000, 1),
        },
        "attacker_answers": dict(run.attacker_answers),
        "rss_total_mb": {"start": round(memory[0][1] / 2**20, 1), "max": round(max(m for _, m in memory) / 2**20, 1),
                         "end": round(memory[-1][1] / 2**20, 1)},
        "unexpected_errors_in_log": log.count("unexpected error"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description="10x a credential's write rate, with hostile sockets mixed in")
    parser.add_argument("--rate", type=float, default=5, help="the flood credential's rate=, writes/s a worker")
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--baseline", type=float, default=10)
    parser.add_argument("--after", type=float, default=12)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--connections", type=int, default=64)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(main_async(args)), indent=2))


if __name__ == "__main__":
    main()
