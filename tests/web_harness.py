"""A small app for the browser tests and screenshots: the web routes, with the API proxied.

It mounts `staystream.web.routes.web_routes` and forwards every other path (`/v1/...`,
`/metrics`, `/readyz`, `/docs`) to a real `staystream serve`, streaming the answer (so SSE
passes through), so the pages talk to one origin as they will once the lead mounts the routes
in the daemon itself. `listing_cities` are computed from the shipped sample listings, which is
what the real server holds after `--seed-sample`.
"""

from __future__ import annotations

import csv
import gzip
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from importlib import resources

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import StreamingResponse
from starlette.routing import Route

from staystream.web.gazetteer import ListingCity, cities_of
from staystream.web.routes import web_routes


def sample_cities() -> list[ListingCity]:
    data = resources.files("staystream") / "data" / "sample-singapore-listings.csv.gz"
    with data.open("rb") as raw, gzip.open(raw, "rt", newline="") as text:
        rows = [("Singapore", "SG", float(row["latitude"]), float(row["longitude"]))
                for row in csv.DictReader(text)]
    return cities_of(rows)


def proxy_app(api_url: str, tile_url: str | None = None) -> Starlette:
    cities = sample_cities()
    client = httpx.AsyncClient(base_url=api_url, timeout=None)

    async def forward(request: Request) -> StreamingResponse:
        upstream = client.build_request(
            request.method, request.url.path, params=request.url.query.encode(),
            headers=[(k, v) for k, v in request.headers.raw if k.lower() not in (b"host", b"content-length")],
            content=await request.body(),
        )
        response = await client.send(upstream, stream=True)

        async def body() -> AsyncIterator[bytes]:
            async for chunk in response.aiter_raw():
                yield chunk

        headers = {k: v for k, v in response.headers.items()
                   if k.lower() not in ("content-length", "transfer-encoding", "connection")}
        return StreamingResponse(body(), response.status_code, headers,
                                 background=BackgroundTask(response.aclose))

    methods = ["GET", "POST", "DELETE", "PUT"]
    routes = [
        *web_routes(listing_cities=lambda: cities, tile_url=tile_url),
        Route("/{path:path}", forward, methods=methods),
    ]
    return Starlette(routes=routes)


class Harness:
    """The proxy app served by uvicorn in a child process (its sockets and warnings stay there)."""

    def __init__(self, api_url: str, tile_url: str | None = None) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        command = [sys.executable, __file__, api_url, str(port), *([tile_url] if tile_url else [])]
        self.process = subprocess.Popen(command)
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"{self.url}/static/style.css", timeout=1).raise_for_status()
                return
            except httpx.HTTPError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    self.stop()
                    raise RuntimeError("the web harness did not start") from None
                time.sleep(0.05)

    def stop(self) -> None:
        self.process.terminate()
        try:  # uvicorn waits for open responses on SIGTERM: a page's watch stream never ends
            self.process.wait(5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)


if __name__ == "__main__":
    api, port, *tiles = sys.argv[1:]
    uvicorn.run(proxy_app(api, tiles[0] if tiles else None), host="127.0.0.1", port=int(port),
                log_level="warning", lifespan="off")
