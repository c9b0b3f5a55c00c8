"""Connection guards below ASGI: a header deadline and a per-client connection cap.

uvicorn counts every open connection against `limit_concurrency` and, until a request's headers
are complete, no ASGI code runs for it; its only timer is `timeout_keep_alive`, armed after a
response. A connection that sends nothing, or half a request line, therefore stays open forever:
4,600 of them made every request of every client 503. This protocol (uvicorn's httptools
protocol plus two checks) closes such connections and keeps any one address from holding more
than its share:

- every connection must complete a request's headers within `header_timeout` seconds of
  opening, or of the first byte of each later request; else `408` and close;
- the request line and headers hold at most `MAX_HEADER_BYTES` (httptools has no limit); else `400`;
- one client address holds at most `max_per_client` connections on this worker; the next one
  is answered `429` with `Retry-After` and closed at once;
- the worker holds at most `max_connections` connections in all; the next one is answered `503`
  with `Retry-After` and closed at once.

Bodies, once headers are complete, are guarded by `api/deadlines.py` (an ASGI middleware).
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from staystream import metrics

RETRY_AFTER_SECONDS = 1
MAX_HEADER_BYTES = 64 * 1024  # request line plus headers; ours are a few hundred bytes


def _raw_response(status: str, message: str, retry_after: int | None = None) -> bytes:
    """A complete JSON error response for a connection the app never sees; the connection closes."""
    body = ('{"error":"' + message + '"}').encode()
    headers = [f"HTTP/1.1 {status}", "content-type: application/json", f"content-length: {len(body)}",
               "connection: close"]
    if retry_after is not None:
        headers.append(f"retry-after: {retry_after}")
    return ("\r\n".join(headers) + "\r\n\r\n").encode() + body


def guarded_protocol(header_timeout: float, max_per_client: int, max_connections: int) -> type[HttpToolsProtocol]:
    """uvicorn's httptools protocol with the guards above (pass it as `uvicorn.Config(http=...)`)."""
    open_by_client: dict[str, int] = {}  # this worker's connections per client address
    too_slow = _raw_response("408 Request Timeout", f"request headers not complete within {header_timeout:g} s; "
                             "expected a whole request line and headers")
    too_many = _raw_response("429 Too Many Requests", f"this client already has {max_per_client} connections "
                             "open to this worker; expected at most that many", RETRY_AFTER_SECONDS)
    full = _raw_response("503 Service Unavailable", f"this worker has {max_connections} connections open; "
                         "retry shortly", RETRY_AFTER_SECONDS)

    class GuardedProtocol(HttpToolsProtocol):
        _deadline: asyncio.TimerHandle | None = None
        _address: str | None = None
        _header_bytes = 0

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            if len(self.connections) > max_connections:  # uvicorn's own 503 would come without Retry-After
                metrics.shed_connections.labels("worker_full").inc()
                transport.write(full)
                transport.close()
                return
            address = self.client[0] if self.client else "unknown"
            if open_by_client.get(address, 0) >= max_per_client:
                metrics.shed_connections.labels("per_client").inc()
                transport.write(too_many)
                transport.close()
                return
            self._address = address
            open_by_client[address] = open_by_client.get(address, 0) + 1
            self._arm()

        def on_message_begin(self) -> None:
            super().on_message_begin()
            self._header_bytes = 0
            self._arm()

        def on_url(self, url: bytes) -> None:
            self._count_header_bytes(len(url))
            super().on_url(url)

        def on_header(self, name: bytes, value: bytes) -> None:
            self._count_header_bytes(len(name) + len(value))
            super().on_header(name, value)

        def _count_header_bytes(self, size: int) -> None:
            """httptools keeps no limit on the request line and headers: an endless header is memory."""
            self._header_bytes += size
            if self._header_bytes > MAX_HEADER_BYTES:  # uvicorn answers a parser error 400 and closes
                metrics.shed_connections.labels("header_size").inc()
                raise ValueError(f"request line and headers over {MAX_HEADER_BYTES} bytes")

        def on_headers_complete(self) -> None:
            self._disarm()
            super().on_headers_complete()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            if self._address is not None:
                left = open_by_client[self._address] - 1
                if left:
                    open_by_client[self._address] = left
                else:
                    del open_by_client[self._address]
                self._address = None
            super().connection_lost(exc)

        def _arm(self) -> None:
            if self._deadline is None:
                self._deadline = self.loop.call_later(header_timeout, self._headers_too_slow)

        def _disarm(self) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
                self._deadline = None

        def _headers_too_slow(self) -> None:
            self._deadline = None
            if self.transport.is_closing():
                return
            if self.cycle is not None and not self.cycle.response_complete:
                self._arm()  # the next pipelined request waits for this one; its body has its own deadline
                return
            metrics.shed_connections.labels("header_timeout").inc()
            self.transport.write(too_slow)
            self.transport.close()

    return GuardedProtocol


def uvicorn_settings(header_timeout: float, keep_alive_timeout: float, max_per_client: int,
                     max_connections: int) -> dict[str, Any]:
    """The `uvicorn.Config` keywords that bound connections (see the module docstring).

    uvicorn's `limit_concurrency` is set one above `max_connections`: the protocol refuses the
    connection past it first, with `Retry-After`, so uvicorn's check never fires."""
    return {
        "http": guarded_protocol(header_timeout, max_per_client, max_connections),
        "timeout_keep_alive": keep_alive_timeout,
        "limit_concurrency": max_connections + 1,
    }
