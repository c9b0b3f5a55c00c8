"""The HTTP API of a worker process (Starlette): ingest, calendar, listing, search, operations.

Writes go to the writer process and are answered once it says they are durable; reads come
straight from shared memory and read-only SQLite, so they see every acknowledged write.
Handlers live by concept: `writes`, `reads`, `sources` (native formats), `operations`.
"""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response

from staystream.api import bulk, operations, reads, sources, summary, watches, writes
from staystream.api.auth import Credentials
from staystream.api.deadlines import BodyDeadline
from staystream.api.pages import page_routes
from staystream.api.responses import json_response
from staystream.api.state import Worker
from staystream.config import Config
from staystream.events.fx import default_fx


def create_app(config: Config, shm_path: Path) -> Starlette:
    fx = default_fx(config.fx_table)
    credentials = Credentials.load(config.tokens)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        app.state.worker = await Worker.start(config, shm_path, fx, credentials)
        gc.collect()
        gc.freeze()  # modules, app, store live on: full collections stop scanning them (performance.md)
        yield
        app.state.worker.offload.close()  # its helper process, if a large document started one

    routes = [*writes.ROUTES, *bulk.ROUTES, *reads.ROUTES, *operations.ROUTES, *sources.ROUTES, *summary.ROUTES,
              *watches.ROUTES, *page_routes(config)]
    return Starlette(routes=routes, lifespan=lifespan, exception_handlers={HTTPException: _no_route},
                     middleware=[Middleware(BodyDeadline, idle=config.body_timeout, total=config.body_total_timeout)])


async def _no_route(request: Request, exc: Exception) -> Response:
    """No route or method matched: the one JSON error shape, like every handler's errors."""
    assert isinstance(exc, HTTPException)
    what = "no such path" if exc.status_code == 404 else f"{request.method} is not allowed here"
    return json_response({"error": f"{what}: {request.url.path[:200]}"}, exc.status_code, dict(exc.headers or {}))


def end_event_streams(app: Starlette) -> None:
    """At the start of a worker's shutdown: end its open watch streams (SSE), for which uvicorn's
    graceful shutdown would otherwise wait until the supervisor kills the worker."""
    worker = getattr(app.state, "worker", None)
    if worker is not None and worker.outbox_signal is not None:
        worker.outbox_signal.close()
