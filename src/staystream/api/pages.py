"""The web pages (`/`, `/ops`, `/v1/where`) mounted on the API, fed with the listings' own cities."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable

from starlette.routing import BaseRoute

from staystream.config import Config
from staystream.durable import sqlite
from staystream.web.gazetteer import ListingCity, cities_of
from staystream.web.routes import web_routes

CITIES_MAX_AGE_SECONDS = 300.0  # a city appears in suggestions at most this long after its first listing


class ListingCities:
    """The cities the listings name, re-read from SQLite at most every `CITIES_MAX_AGE_SECONDS`.

    Called on every suggestion request, so it answers from its cache; a stale cache is
    refreshed in a background thread, never on the request's path (but for the first call)."""

    def __init__(self, connect: Callable[[], sqlite3.Connection]) -> None:
        self.connect = connect
        self.cities: list[ListingCity] | None = None
        self.read_at = 0.0
        self.refreshing = threading.Lock()

    def __call__(self) -> list[ListingCity]:
        if self.cities is None:
            self._refresh()
        elif time.monotonic() - self.read_at > CITIES_MAX_AGE_SECONDS and not self.refreshing.locked():
            threading.Thread(target=self._refresh, name="listing-cities", daemon=True).start()
        return self.cities or []

    def _refresh(self) -> None:
        with self.refreshing:
            connection = self.connect()
            try:
                self.cities = cities_of(sqlite.listing_places(connection))
            finally:
                connection.close()
            self.read_at = time.monotonic()


def page_routes(config: Config) -> list[BaseRoute]:
    cities = ListingCities(lambda: sqlite.connect_reader(config.database_path))
    return web_routes(cities, tile_url=config.tile_url)
