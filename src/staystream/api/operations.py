"""Operations: liveness, readiness, metrics, and the API's own description."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from staystream import metrics
from staystream.api import openapi
from staystream.api.responses import json_response
from staystream.api.routing import route
from staystream.api.state import Worker

WRITER_STUCK_SECONDS = 5.0  # the writer beats twice a second; silent this long, it is stuck


async def healthz(request: Request, worker: Worker) -> Response:
    return json_response({"status": "ok"})


async def readyz(request: Request, worker: Worker) -> Response:
    problems = problems_of(worker)
    lag: dict[str, object] = {}
    if worker.config.stream:  # scaled mode: how far behind the stream this node is
        from staystream.scaled.stream import read_lag

        lag, _ = read_lag(worker.shm_path)
    body = {"status": "ready" if not problems else "not ready", "problems": problems,
            "backlog_events": worker.store.backlog, **({"log": lag} if lag else {})}
    return json_response(body, 200 if not problems else 503)


def problems_of(worker: Worker) -> list[str]:
    """Why this node should not take traffic now; empty when ready."""
    store, config = worker.store, worker.config
    problems = []
    if not store.ready:
        problems.append("the store is still recovering")
    elif store.writer_silent_seconds > WRITER_STUCK_SECONDS:
        problems.append(f"the writer has not run for {store.writer_silent_seconds:.1f} s")
    if worker.client.stream is None:
        problems.append("the writer is not connected")
    if store.backlog >= config.max_backlog_events:
        problems.append(f"write backlog {store.backlog} is at its limit {config.max_backlog_events}")
    try:
        store.connection.execute("SELECT 1").fetchone()
    except Exception as exc:  # the database file is gone or unreadable
        problems.append(f"the store cannot be read: {exc}")
    if config.stream:  # scaled mode: how far behind the stream this node is
        from staystream.scaled.stream import read_lag

        problems += read_lag(worker.shm_path)[1]
    return problems


async def get_metrics(request: Request, worker: Worker) -> Response:
    data, content_type = metrics.render()
    return Response(data, media_type=content_type)


async def get_openapi(request: Request, worker: Worker) -> Response:
    return json_response(openapi.SCHEMA)


async def get_docs(request: Request, worker: Worker) -> Response:
    return HTMLResponse(openapi.docs_page())


ROUTES = [
    route("/healthz", "healthz", ["GET"], healthz),
    route("/readyz", "readyz", ["GET"], readyz),
    route("/metrics", "metrics", ["GET"], get_metrics),
    route("/openapi.json", "openapi", ["GET"], get_openapi),
    route("/docs", "docs", ["GET"], get_docs),
]
