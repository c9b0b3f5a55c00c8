"""Webhook delivery: every event of a watch with a webhook is POSTed until it answers 2xx.

A delivery owed is a row of the `deliveries` table, written in the same transaction as its event;
it is removed only after a 2xx, so a kill -9 at any point repeats at most the POSTs in flight (at
least once, never lost). A failed attempt is retried after an exponential backoff with jitter
(1 s, 2 s, 4 s ... capped at `MAX_BACKOFF_SECONDS`), which survives restarts (`next_at` is stored).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
import random
import time

import httpx

from staystream import metrics
from staystream.watches.backend import WatchStore
from staystream.watches.store import Shard

log = logging.getLogger("staystream.webhooks")
BATCH = 64  # POSTs in flight at once
TIMEOUT_SECONDS = 5.0
MAX_BACKOFF_SECONDS = 300.0
IDLE_SECONDS = 1.0  # between looks at the table when nothing is due (new events wake it sooner)


def signature(secret: str, body: bytes) -> str:
    """`X-Staystream-Signature`: the hex HMAC-SHA256 of the body keyed with the watch's secret."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def backoff(attempts: int) -> float:
    """Seconds before the next attempt after `attempts` failures (full jitter over the upper half)."""
    ceiling = min(MAX_BACKOFF_SECONDS, 2.0 ** (attempts - 1))
    return ceiling * random.uniform(0.5, 1.0)


class Deliveries:
    def __init__(self, db: WatchStore, shard: Shard) -> None:
        self.db = db
        self.shard = shard  # the watcher delivers its own watches' events
        self.woken = asyncio.Event()

    def wake(self) -> None:
        self.woken.set()

    async def run(self) -> None:
        async with httpx.AsyncClient(timeout=TIMEOUT_SECONDS, follow_redirects=False) as client:
            while True:
                self.woken.clear()
                due = self.db.due_deliveries(time.time(), BATCH, self.shard)
                if due:
                    await asyncio.gather(*(self._deliver(client, *item) for item in due))
                metrics.webhook_backlog.set(self.db.backlog())
                if len(due) == BATCH:
                    continue
                upcoming = self.db.next_due()
                wait = IDLE_SECONDS if upcoming is None else max(0.0, min(IDLE_SECONDS, upcoming - time.time()))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.woken.wait(), wait)

    async def _deliver(self, client: httpx.AsyncClient, event_id: int, attempts: int, event: str, data: str,
                       url: str, secret: str, watch_id: str) -> None:
        body = data.encode()
        headers = {
            "content-type": "application/json", "x-staystream-event": event,
            "x-staystream-signature": signature(secret, body), "x-staystream-event-id": str(event_id),
            "x-staystream-watch-id": watch_id,
        }
        reason = None
        try:
            response = await client.post(url, content=body, headers=headers)
        except httpx.TimeoutException:
            reason = "timeout"
        except httpx.HTTPError:
            reason = "connect"
        else:
            if 200 <= response.status_code < 300:
                self.db.delivered(event_id)
                metrics.webhook_deliveries.inc()
                return
            reason = "http_4xx" if response.status_code < 500 else "http_5xx"
        metrics.webhook_failures.labels(reason).inc()
        self.db.retry_later(event_id, attempts + 1, time.time() + backoff(attempts + 1))
        if attempts == 0:
            log.warning("webhook delivery failed; retrying with backoff",
                        extra={"watch_id": watch_id, "reason": reason})
