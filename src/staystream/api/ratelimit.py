"""Per-credential write rate limits: a token bucket per credential, in each worker process.

A credential with `rate=R burst=B` in the tokens file may start B writes at once and R a second
after that; a write over the limit is answered `429` with `Retry-After` (whole seconds until a
token is back), and costs the service nothing beyond reading its headers. Buckets live in the
worker process, so with W workers a credential spread over many connections may reach W x R
writes a second; one connection (one worker) gets R.

>>> bucket = TokenBucket(rate=2, burst=2, now=0.0)
>>> [bucket.take(0.0), bucket.take(0.0), bucket.take(0.0)]
[0.0, 0.0, 0.5]
>>> bucket.take(0.5)
0.0
"""

from __future__ import annotations

import time

from staystream.api.auth import Credential


class TokenBucket:
    def __init__(self, rate: float, burst: float, now: float) -> None:
        self.rate, self.burst = rate, burst
        self.tokens, self.updated = burst, now

    def take(self, now: float) -> float:
        """Take one token: 0.0 if there was one, else the seconds until there is (nothing taken)."""
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens >= 1:
            self.tokens -= 1
            return 0.0
        return (1 - self.tokens) / self.rate


class RateLimits:
    """This worker's buckets, one per credential that has a `rate`."""

    def __init__(self) -> None:
        self.buckets: dict[str, TokenBucket] = {}

    def wait(self, credential: Credential) -> float:
        """0.0 if the credential may write now, else the seconds it should wait."""
        if credential.rate is None:
            return 0.0
        now = time.monotonic()
        bucket = self.buckets.get(credential.name)
        if bucket is None:
            burst = credential.burst if credential.burst is not None else max(1.0, credential.rate)
            bucket = self.buckets[credential.name] = TokenBucket(credential.rate, burst, now)
        return bucket.take(now)
