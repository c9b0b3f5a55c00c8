"""How every API route runs a handler: credentials, a fresh read view, metrics, one JSON error shape."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from staystream import metrics
from staystream.api.auth import EVERY_SOURCE, AuthError, Credentials, check_sources
from staystream.api.responses import HTTPError, json_response
from staystream.api.state import Worker

log = logging.getLogger("staystream.http")
Handler = Callable[[Request, Worker], Awaitable[Response]]


def route(path: str, name: str, methods: list[str], handler: Handler) -> Route:
    """A Starlette route that calls `handler(request, worker)`; `name` labels its metrics and logs."""

    async def endpoint(request: Request) -> Response:
        started = time.perf_counter()
        try:
            worker: Worker = request.app.state.worker
            if request.method != "GET" and worker.credentials is not None:
                _authorize(worker.credentials, request, name)
            worker.refresh()
            response = await handler(request, worker)
        except HTTPError as exc:
            response = json_response({"error": str(exc)}, exc.status, exc.headers)
        except AuthError as exc:
            response = json_response({"error": str(exc)}, exc.status,
                                     {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None)
        except Exception:
            log.exception("unexpected error", extra={"route": name})
            response = json_response({"error": "internal error; see the server log"}, 500)
        metrics.requests.labels(name, str(response.status_code)).inc()
        metrics.request_seconds.labels(name).observe(time.perf_counter() - started)
        return response

    return Route(path, endpoint, methods=methods, name=name)


def _authorize(credentials: Credentials, request: Request, route: str) -> None:
    """Credentials for a write: the token, the source in the path, admin rights for admin."""
    sources = credentials.sources_of(request.headers.get("authorization"))
    if route == "fx" and EVERY_SOURCE not in sources:
        raise AuthError(403, "authorization: replacing the FX table needs a credential for every source (*)")
    if "source" in request.path_params:
        check_sources(sources, [request.path_params["source"].strip().lower()])
    request.state.sources = sources
