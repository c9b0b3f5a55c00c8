"""The web pages' routes, for the app to mount: `/`, `/ops`, `/static/...`, `/v1/where`.

    routes = web_routes(listing_cities=store_cities, tile_url=config.tile_url)
    app = Starlette(routes=[*api_routes, *routes])

The pages are static files that call the JSON API of the same origin; nothing is loaded from
another host unless `tile_url` names a tile server (without one the map draws country outlines
shipped in `static/vendor/world/`). The page learns the tile URL from a `<meta>` of the HTML,
so its first request already knows it.

`/v1/ops/summary`, which `/ops` reads every second, is the API's (`api/summary.py`: it knows
the counters); its shape is `OPS_SUMMARY_SHAPE` below.
"""

from __future__ import annotations

import html
import os
from collections.abc import Callable, Iterable
from pathlib import Path

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

from .gazetteer import Gazetteer, ListingCity, Where, WhereError

STATIC = Path(__file__).parent / "static"
# Vendored files change only with a release: cached for a week. The pages' own files are
# revalidated each time (a 304 via ETag) so a deploy shows at once.
VENDOR_CACHE = "public, max-age=604800"
OWN_CACHE = "no-cache"

OPS_SUMMARY_SHAPE = """\
GET /v1/ops/summary -> 200
{
  "at": "2026-12-04T16:00:00.000Z",            // when the summary was taken
  "ready": true, "problems": ["..."],           // as /readyz
  "started_at": "2026-12-04T15:00:00.000Z",     // this server's start
  "backlog_events": 0,                          // handed to the writer, not yet durable
  "sources": [{
    "source": "airbnb",
    "accepted_total": 54804, "rejected_total": 3,   // since start
    "accepted_per_s": 120.5, "rejected_per_s": 0.0, // over the last 10 s
    "rejections": [{"reason": "price", "count": 3,  // top 5 by count, since start
                    "example": "index 4: price: '-1' is negative; expected >= 0"}],
    "ack_to_searchable_s": {"p50": 0.002, "p99": 0.009},    // 200 sent -> visible to search
    "changed_to_searchable_s": {"p50": 0.8, "p99": 3.1},    // source changed_at -> visible
    "last_event_at": "2026-12-04T15:59:59.000Z"
  }],
  "write": {"p50_ms": 2.1, "p99_ms": 8.4, "requests_per_s": 12.0},  // POST /v1/events, 200s
  "snapshot": {"last_at": "...", "last_seconds": 0.4, "failures": 0, "events_since": 1200},
  "restart": {"recovered_at": "...", "snapshot_seq": 12, "replayed_events": 0, "seconds": 0.01},
  "scaled": null | {"role": "search", "follow_lag_s": 0.01, "follow_lag_messages": 0,
                    "apply_lag_s": 0.2, "apply_lag_messages": 3}
}
Every number may be null when not known; the page shows a dash."""


class CachedStaticFiles(StaticFiles):
    """StaticFiles with a Cache-Control header: long for vendored files, revalidate for ours."""

    def file_response(self, full_path: str | os.PathLike[str], stat_result: os.stat_result,
                      scope: Scope, status_code: int = 200) -> Response:
        response = super().file_response(full_path, stat_result, scope, status_code)
        vendored = Path(full_path).is_relative_to(STATIC / "vendor")
        response.headers["Cache-Control"] = VENDOR_CACHE if vendored else OWN_CACHE
        return response


def web_routes(
    listing_cities: Callable[[], Iterable[ListingCity]],
    tile_url: str | None = None,
    tile_attribution: str = "© OpenStreetMap contributors",
) -> list[BaseRoute]:
    """The routes of both pages; `listing_cities` lists the cities the listings name (called
    per suggestion request: keep it cheap), `tile_url` a `{z}/{x}/{y}` tile template or None."""
    gazetteer = Gazetteer(listing_cities)  # the world's cities: read at the first suggestion
    pages = {name: _page(name, tile_url, tile_attribution) for name in ("index.html", "ops.html")}

    async def search_page(request: Request) -> Response:
        return HTMLResponse(pages["index.html"], headers={"Cache-Control": OWN_CACHE})

    async def ops_page(request: Request) -> Response:
        return HTMLResponse(pages["ops.html"], headers={"Cache-Control": OWN_CACHE})

    async def where(request: Request) -> Response:
        query = request.query_params.get("q")
        if query is None:
            return JSONResponse({"error": "q: missing; expected a place name, e.g. ?q=singapore"}, 400)
        only_resolve = bool(request.query_params.get("resolve"))
        try:  # a suggestion scans 34,000 names (tens of ms): off the event loop
            resolved, suggestions = await run_in_threadpool(_look_up, gazetteer, query, only_resolve)
        except WhereError as exc:
            return JSONResponse({"error": str(exc)}, 400)
        return JSONResponse({
            "query": query, "place": resolved.as_json() if resolved else None,
            "suggestions": [s.as_json() for s in suggestions],
        })

    return [
        Route("/", search_page, methods=["GET"], name="web_search"),
        Route("/ops", ops_page, methods=["GET"], name="web_ops"),
        Route("/v1/where", where, methods=["GET"], name="where"),
        Mount("/static", CachedStaticFiles(directory=STATIC), name="static"),
    ]


def _look_up(gazetteer: Gazetteer, query: str, only_resolve: bool) -> tuple[Where | None, list[Where]]:
    return gazetteer.resolve(query), [] if only_resolve else gazetteer.suggest(query)


def _page(name: str, tile_url: str | None, tile_attribution: str) -> str:
    text = (STATIC / name).read_text()
    return (text.replace("{{tile_url}}", html.escape(tile_url or ""))
            .replace("{{tile_attribution}}", html.escape(tile_attribution)))
