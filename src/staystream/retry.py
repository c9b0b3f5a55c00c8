"""Waiting out an unreachable PostgreSQL or NATS: one backoff, one retry loop."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


def backoff(attempt: int) -> float:
    """Seconds to wait after failed attempt number `attempt` (from 0): 50 ms, doubling, at most 1 s."""
    return float(min(0.05 * 2**attempt, 1.0))


async def retrying(
    step: Callable[[], Awaitable[T]],
    retry_on: type[BaseException] | tuple[type[BaseException], ...],
    log: logging.Logger,
    warning: str,
    during: str,
    warn_every: int = 10,
    on_failure: Callable[[BaseException], None] | None = None,
) -> T:
    """`step()`'s result once it gets through, for where waiting is the only sensible answer.

    After each failure of type `retry_on`, `on_failure(exc)` (if given), then a `backoff`; the first
    failure and every `warn_every`-th after it are logged as `warning`. Other exceptions propagate."""
    attempt = 0
    while True:
        try:
            return await step()
        except retry_on as exc:
            if on_failure is not None:
                on_failure(exc)
            if attempt % warn_every == 0:
                log.warning(warning, extra={"during": during, "error": f"{type(exc).__name__}: {exc}"})
            await asyncio.sleep(backoff(attempt))
            attempt += 1
