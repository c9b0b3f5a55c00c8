"""HTTP endpoints for native source formats (OTA XML, Expedia AR, iCal): one route per adapter.

Each adapter turns a native message into canonical events; `ingest` validates and stores them
and returns only once they are durable, so native endpoints give the same guarantee as
`POST /v1/events`.
"""

from __future__ import annotations

from typing import Awaitable, Callable

from starlette.routing import Route

Ingest = Callable[[list[object]], Awaitable[object]]


def source_routes(route: Callable[..., Callable[..., Route]], ingest: Ingest) -> list[Route]:
    return []
