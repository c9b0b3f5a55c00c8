"""Letting other requests run while one request does a lot of CPU work on the event loop.

`await asyncio.sleep(0)` between slices of work is not enough: a waiting request needs several
loop iterations (read, parse, run, write), and with `sleep(0)` every iteration also runs the
next slice of the heavy one, so its answer waits for several slices. A `Pacer` instead pauses
the heavy request for a moment once it has held the loop for `every` seconds: the loop then
runs everything else that is ready, several iterations of it, before the next slice.
"""

from __future__ import annotations

import asyncio
import time

HOLD_SECONDS = 0.01  # the most the loop runs one request's work without a pause
PAUSE_SECONDS = 0.002  # the pause: long enough for a small request to run its iterations


class Pacer:
    def __init__(self, every: float = HOLD_SECONDS, pause: float = PAUSE_SECONDS) -> None:
        self.every, self.pause = every, pause
        self.since = time.perf_counter()

    async def breathe(self) -> None:
        """Between two slices of work: pause when the loop has been held long enough."""
        if time.perf_counter() - self.since >= self.every:
            await asyncio.sleep(self.pause)
            self.since = time.perf_counter()
