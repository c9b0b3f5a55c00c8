"""ASGI middleware: a request body must keep arriving, or the request ends with `408`.

Once headers are complete (`api/connections.py` guards that part), the app reads the body by
awaiting `receive`; a client that sends one byte and stalls would hold the request, its share
of the body budget and a concurrency slot forever. Here each piece of a body must arrive within
`idle` seconds of the previous one and the whole body within `total` seconds of the request's
start; else `receive` raises `HTTPError(408)` with `Connection: close` (the rest of the body is
never read, so the connection cannot be reused). Any other answer given before the body was
read whole (a 413, a 429) closes the connection too.
"""

from __future__ import annotations

import asyncio
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from staystream import metrics
from staystream.api.responses import HTTPError


class BodyDeadline:
    def __init__(self, app: ASGIApp, idle: float, total: float) -> None:
        self.app, self.idle, self.total = app, idle, total

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        deadline = time.monotonic() + self.total
        headers = dict(scope["headers"])
        body_done = headers.get(b"content-length", b"0") == b"0" and b"transfer-encoding" not in headers

        async def guarded() -> Message:
            nonlocal body_done
            if body_done:  # after the body, receive only reports a disconnect: no deadline
                return await receive()
            left = min(self.idle, deadline - time.monotonic())
            try:
                async with asyncio.timeout(max(left, 0.0)):
                    message = await receive()
            except TimeoutError:
                metrics.limited.labels("body_timeout").inc()
                raise HTTPError(408, f"the request body stalled: expected each part within {self.idle:g} s "
                                     f"and all of it within {self.total:g} s", {"Connection": "close"}) from None
            body_done = message["type"] != "http.request" or not message.get("more_body", False)
            return message

        async def closing(message: Message) -> None:
            """A response sent before the body was read closes the connection: the unread rest
            would otherwise keep it open (each byte resets uvicorn's keep-alive timer)."""
            if message["type"] == "http.response.start" and not body_done:
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"connection"]
                message = {**message, "headers": [*headers, (b"connection", b"close")]}
            await send(message)

        await self.app(scope, guarded, closing)
