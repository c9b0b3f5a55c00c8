"""How every API route runs a handler: credentials, a fresh read view, metrics, one JSON error shape."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Awaitable, Callable

from starlette.convertors import Convertor, register_url_convertor
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route

from staystream import metrics
from staystream.api.auth import EVERY_SOURCE, AuthError, Credentials, check_sources
from staystream.api.ratelimit import RateLimits
from staystream.api.responses import HTTPError, json_response
from staystream.api.state import Worker

log = logging.getLogger("staystream.http")


class Text(Convertor[str]):
    """`{name:text}`: the rest of the path, slashes and line breaks too (Starlette's `path` is
    `.*`, which stops at a line break: such an id answered a bare 404 instead of the handler's
    own error). Listing ids are the source's and may hold either."""

    regex = "(?s:.*)"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("text", Text())
Handler = Callable[[Request, Worker], Awaitable[Response]]
READS = ("GET", "HEAD")  # need no credential, hold no body


def route(path: str, name: str, methods: list[str], handler: Handler, public: bool = False) -> Route:
    """A Starlette route that calls `handler(request, worker)`; `name` labels its metrics and logs.
    A `public` route takes no write credential even when others need one (watches)."""

    async def endpoint(request: Request) -> Response:
        started = time.perf_counter()
        hold = None
        try:
            worker: Worker = request.app.state.worker
            if request.method not in READS:
                clients = [request.client.host if request.client else "unknown"]
                if worker.credentials is not None and not public:
                    clients.append(_authorize(worker.credentials, worker.rate_limits, request, name))
                hold = request.state.hold = worker.budget.hold(clients)
            worker.refresh()
            response = await handler(request, worker)
        except HTTPError as exc:
            response = json_response({"error": str(exc)}, exc.status, exc.headers)
        except AuthError as exc:
            response = json_response({"error": str(exc)}, exc.status,
                                     {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None)
        except ClientDisconnect:  # the client left mid-body: nothing to answer, nothing wrong here
            log.info("client disconnected before its request was read", extra={"route": name})
            response = json_response({"error": "client disconnected"}, 499)
        except Exception:
            log.exception("unexpected error", extra={"route": name})
            response = json_response({"error": "internal error; see the server log"}, 500)
        finally:
            if hold is not None:
                hold.release()
        metrics.requests.labels(name, str(response.status_code)).inc()
        metrics.request_seconds.labels(name).observe(time.perf_counter() - started)
        return response

    return Route(path, endpoint, methods=methods, name=name)


def _authorize(credentials: Credentials, rate_limits: RateLimits, request: Request, route: str) -> str:
    """Credentials for a write: the token, its rate limit, the source in the path, admin rights
    for admin. Returns the credential's name, which its share of the body budget is charged to."""
    credential = credentials.credential_of(request.headers.get("authorization"))
    wait = rate_limits.wait(credential)
    if wait:
        metrics.limited.labels("rate").inc()
        raise HTTPError(429, f"this credential is over its rate of {credential.rate:g} writes a second; "
                             f"retry in {wait:.2f} s", {"Retry-After": str(math.ceil(wait))})
    sources = credential.sources
    if route == "fx" and EVERY_SOURCE not in sources:
        raise AuthError(403, "authorization: replacing the FX table needs a credential for every source (*)")
    if "source" in request.path_params:
        check_sources(sources, [request.path_params["source"].strip().lower()])
    request.state.sources = sources
    return credential.name
