"""Write load that remembers what was acknowledged, and the check that all of it survived.

Each writer thread owns its listings and sends rate events with strictly increasing
`changed_at`, so for every night the newest acknowledged value is known exactly, and any value
read back must be that one or a newer one (committed but not acknowledged: at-least-once).
"""

from __future__ import annotations

import datetime as dt
import json
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

FIRST_NIGHT = dt.date(2027, 3, 1)
EPOCH = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)


@dataclass
class Night:
    changed_at: int  # µs after EPOCH
    price: str


@dataclass
class AckedLoad:
    """`threads` writers posting to whatever URL `url()` returns at the time of each request."""

    url: Callable[[], str]
    prefix: str
    threads: int = 4
    listings_per_thread: int = 10
    events_per_request: int = 40
    source: str = "faulttest"
    seed: int = 5
    acked: dict[tuple[str, int], Night] = field(default_factory=dict)
    statuses: dict[int, int] = field(default_factory=dict)
    retry_after_seen: int = 0
    transport_errors: int = 0  # no answer at all (a connection refused, reset or timed out)
    requests_acked: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _workers: list[threading.Thread] = field(default_factory=list)
    _running: threading.Event = field(default_factory=threading.Event)
    _parked: list[threading.Event] = field(default_factory=list)

    def listing_ids(self) -> list[str]:
        return [f"{self.prefix}-{t}-{i}" for t in range(self.threads) for i in range(self.listings_per_thread)]

    def start(self) -> AckedLoad:
        self._running.set()
        for t in range(self.threads):
            self._parked.append(threading.Event())
            worker = threading.Thread(target=self._run, args=(t,), daemon=True)
            worker.start()
            self._workers.append(worker)
        return self

    def stop(self) -> None:
        self._stop.set()
        self._running.set()
        for worker in self._workers:
            worker.join(60)

    def pause(self) -> None:
        """Returns once no request is in flight; `acked` then holds still until `resume`."""
        self._running.clear()
        for parked in self._parked:
            assert parked.wait(60), "a writer thread did not park"

    def resume(self) -> None:
        for parked in self._parked:
            parked.clear()
        self._running.set()

    def wait_for_acks(self, requests: int, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        target = self.requests_acked + requests
        while self.requests_acked < target:
            assert time.monotonic() < deadline, (
                f"only {self.requests_acked} of {target} requests acknowledged; answers so far by status: "
                f"{self.statuses}, without an answer: {self.transport_errors}")
            time.sleep(0.02)

    def _run(self, thread: int) -> None:
        rng = random.Random(self.seed * 1000 + thread)
        clock = thread  # µs; threads never share a listing, so never a timestamp either
        with httpx.Client(timeout=30) as client:
            while not self._stop.is_set():
                if not self._running.is_set():
                    self._parked[thread].set()
                    self._running.wait()
                    continue
                events: list[dict[str, object]] = []
                nights: list[tuple[tuple[str, int], Night]] = []
                for _ in range(self.events_per_request):
                    clock += self.threads
                    listing = f"{self.prefix}-{thread}-{rng.randrange(self.listings_per_thread)}"
                    start = rng.randrange(60)
                    length = rng.randrange(1, 8)
                    price = f"{rng.randrange(50, 500)}.{rng.randrange(100):02d}"
                    changed_at = EPOCH + dt.timedelta(microseconds=clock)
                    events.append({
                        "type": "rate", "source": self.source, "listing_id": listing,
                        "start": (FIRST_NIGHT + dt.timedelta(start)).isoformat(),
                        "end": (FIRST_NIGHT + dt.timedelta(start + length)).isoformat(),
                        "price": price, "currency": "EUR",
                        "changed_at": changed_at.isoformat().replace("+00:00", "Z"),
                    })
                    nights.extend(((listing, start + n), Night(clock, price)) for n in range(length))
                body = "\n".join(json.dumps(e) for e in events)
                try:
                    response = client.post(self.url() + "/v1/events", content=body,
                                           headers={"content-type": "application/x-ndjson"})
                except httpx.HTTPError:
                    with self._lock:
                        self.transport_errors += 1
                    time.sleep(0.05)
                    continue
                with self._lock:
                    self.statuses[response.status_code] = self.statuses.get(response.status_code, 0) + 1
                    if response.status_code == 200:
                        assert response.json()["accepted"] == len(events), response.text
                        for key, night in nights:
                            self.acked[key] = night
                        self.requests_acked += 1
                    elif "retry-after" in response.headers:
                        self.retry_after_seen += 1
                if response.status_code != 200:
                    time.sleep(0.05)

    def lost(self, base_url: str) -> list[str]:
        """Every acknowledged night that reads back older than acknowledged (empty: none lost)."""
        problems = []
        by_listing: dict[str, dict[int, Night]] = {}
        for (listing, night), value in self.acked.items():
            by_listing.setdefault(listing, {})[night] = value
        with httpx.Client(base_url=base_url, timeout=30) as client:
            for listing, nights in sorted(by_listing.items()):
                response = client.get(f"/v1/listings/{self.source}/{listing}/calendar")
                if response.status_code != 200:
                    problems.append(f"{listing}: {response.status_code} {response.text[:200]}")
                    continue
                stored = {
                    (dt.date.fromisoformat(n["night"]) - FIRST_NIGHT).days: n
                    for n in response.json()["nights"]
                }
                for night, expected in sorted(nights.items()):
                    found = stored.get(night)
                    if found is None:
                        problems.append(f"{listing} night {night}: missing, acknowledged {expected}")
                        continue
                    changed_at = dt.datetime.fromisoformat(found["changed_at"].replace("Z", "+00:00"))
                    micros = (changed_at - EPOCH) // dt.timedelta(microseconds=1)
                    if micros < expected.changed_at or (
                        micros == expected.changed_at and found["price"] != expected.price
                    ):
                        problems.append(f"{listing} night {night}: read {found}, acknowledged {expected}")
        return problems

    def lost_in_postgres(self, uri: str) -> list[str]:
        """Every acknowledged night that PostgreSQL (scaled mode's rate log) holds older."""
        import asyncio

        import asyncpg  # type: ignore[import-untyped]
        import numpy as np

        from staystream.events.types import RATE_DTYPE

        async def read() -> tuple[list[Any], list[Any]]:
            connection = await asyncpg.connect(uri)
            try:
                keys = await connection.fetch("SELECT row, source, listing_id FROM staystream.listings")
                logs = await connection.fetch("SELECT events FROM staystream.rate_log ORDER BY seq")
                snapshots = await connection.fetchval("SELECT count(*) FROM staystream.snapshots")
            finally:
                await connection.close()
            assert snapshots == 0, "a snapshot replaced log rows: compare through a bootstrapped node instead"
            return keys, logs

        keys, logs = asyncio.run(read())
        listing_of = {row: listing_id for row, source, listing_id in keys if source == self.source}
        first = (FIRST_NIGHT - dt.date(1970, 1, 1)).days
        epoch = int(EPOCH.timestamp()) * 1_000_000
        stored: dict[tuple[str, int], tuple[int, int]] = {}
        for record in logs:
            for event in np.frombuffer(record["events"], RATE_DTYPE).tolist():
                key, start, nights, changed_at, price = event[:5]
                listing = listing_of.get(key)
                if listing is None:
                    continue
                for night in range(start - first, start - first + nights):
                    old = stored.get((listing, night))
                    if old is None or changed_at >= old[0]:
                        stored[(listing, night)] = (changed_at, price)
        problems = []
        for (listing, night), expected in sorted(self.acked.items()):
            found = stored.get((listing, night))
            want = (epoch + expected.changed_at, int(expected.price.replace(".", "")))
            if found is None or found[0] < want[0] or (found[0] == want[0] and found[1] != want[1]):
                problems.append(f"{listing} night {night}: PostgreSQL has {found}, acknowledged {want}")
        return problems
