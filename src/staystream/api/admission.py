"""Bytes of request bodies a worker holds at once: in total, and per client.

Bodies are charged as they arrive (a declared `Content-Length` up front), inflated gzip output
too, and released when the request ends. The total bounds the worker's memory however many
clients push at once (`503` with `Retry-After` past it); the per-client share (by address, and
by credential when there is one) keeps one client from taking the whole total: past its share,
that client alone gets `429` with `Retry-After`. A stalled upload holds only what it has sent,
and only until its body deadline (`api/deadlines.py`).

>>> budget = BodyBudget(total=100, share=60)
>>> first, second = budget.hold(["10.0.0.1"]), budget.hold(["10.0.0.1"])
>>> first.charge(50); budget.held
50
>>> second.charge(20)  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
staystream.api.responses.HTTPError: this client's request bodies in progress here would reach 70 bytes; ...
>>> first.release(); budget.held
0
"""

from __future__ import annotations

from staystream import metrics
from staystream.api.responses import HTTPError

RETRY = {"Retry-After": "1"}


class BodyBudget:
    def __init__(self, total: int, share: int) -> None:
        self.total, self.share = total, share
        self.held = 0
        self.by_client: dict[str, int] = {}

    def hold(self, clients: list[str]) -> Hold:
        """A ledger for one request, charged to each of `clients` (address, credential)."""
        return Hold(self, clients)


class Hold:
    def __init__(self, budget: BodyBudget, clients: list[str]) -> None:
        self.budget, self.clients, self.size = budget, clients, 0

    @classmethod
    def unlimited(cls) -> Hold:
        """For a body read outside `routing.route` (a test app): charged to a budget of its own."""
        return cls(BodyBudget(1 << 62, 1 << 62), [])

    def charge(self, size: int) -> None:
        """Hold `size` more bytes, or refuse: 429 past this client's share, 503 past the total."""
        budget = self.budget
        for client in self.clients:
            held = budget.by_client.get(client, 0)
            if held + size > budget.share:
                metrics.limited.labels("client_share").inc()
                raise HTTPError(429, f"this client's request bodies in progress here would reach {held + size} "
                                     f"bytes; expected at most {budget.share}: wait for them, then retry", RETRY)
        if budget.held + size > budget.total:
            metrics.shed.inc()
            raise HTTPError(503, "too many request bodies in progress; retry shortly", RETRY)
        budget.held += size
        for client in self.clients:
            budget.by_client[client] = budget.by_client.get(client, 0) + size
        self.size += size

    def release(self) -> None:
        if not self.size:
            return
        budget = self.budget
        budget.held -= self.size
        for client in self.clients:
            left = budget.by_client[client] - self.size
            if left:
                budget.by_client[client] = left
            else:
                del budget.by_client[client]
        self.size = 0
