"""CPU-heavy parsing of large native documents in a helper process, off the worker's loop.

A thread is not enough: a 2 MB iCal feed is seconds of pure-Python parsing, and while it runs
in a thread the loop still waits for the GIL in every switch interval and for every garbage
collection of the parser's hundreds of thousands of objects (measured: /healthz at 165 ms).
In a process the worker's loop and heap are untouched. Each worker has one helper process,
started (spawn: the worker has threads, a fork could inherit a held lock) on first use, and
killed with its worker, even by `kill -9` (PR_SET_PDEATHSIG); at most
`MAX_WAITING` documents wait for it, more get `503` with `Retry-After`, so a flood of large
documents queues nowhere without bound. A helper that dies is replaced; its document gets 503.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import TypeVar

from staystream.api.responses import HTTPError
from staystream.lifecycle import die_with_parent

T = TypeVar("T")
LARGE_DOCUMENT = 256 * 1024  # bytes above which a document is parsed in the helper process
MAX_WAITING = 4  # large documents in the helper or waiting for it, per worker


class Offload:
    def __init__(self) -> None:
        self.pool: ProcessPoolExecutor | None = None
        self.slots = asyncio.Semaphore(MAX_WAITING)

    async def parse(self, parse: Callable[[bytes], T], document: bytes) -> T:
        """`parse(document)`, in the helper process when the document is large.

        `parse` must be a module-level function whose result pickles (adapters' `open_message`,
        `ical.read_feed`)."""
        if len(document) <= LARGE_DOCUMENT:
            return parse(document)
        if self.slots.locked():
            raise HTTPError(503, f"{MAX_WAITING} large documents are being parsed here; retry shortly",
                            {"Retry-After": "1"})
        async with self.slots:
            if self.pool is None:
                self.pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"),
                                                initializer=die_with_parent, initargs=(os.getpid(),))
            try:
                return await asyncio.get_running_loop().run_in_executor(self.pool, parse, document)
            except BrokenProcessPool:
                self.pool = None
                raise HTTPError(503, "the parser process died; retry shortly", {"Retry-After": "1"}) from None

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=False, cancel_futures=True)

