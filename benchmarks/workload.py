"""The synthetic city and the bytes the load generator sends.

Everything is derived from a seed, so the load generator's processes, the store ceiling and the
search queries agree on the same listings without talking to each other:

- listing `i` is `bench/L{i:07d}`, somewhere in a 22 km x 22 km city, with a 365-night calendar
  written by a few large rate events (prefill);
- a load request carries `events_per_request` rate events on *distinct* listings, each 7-30
  nights, all available with a price; its `changed_at` values are one millisecond prefix per
  request (substituted into a pre-built template) plus the event's index as microseconds, so
  every event of a connection is strictly newer than anything it sent before.
"""

from __future__ import annotations

import datetime as dt
import functools
import time
import urllib.parse
from dataclasses import dataclass

import numpy as np

SOURCE = "bench"
CITY_LAT, CITY_LON = 48.8566, 2.3522  # Paris, for plausible coordinates
HALF_LAT, HALF_LON = 0.10, 0.15  # about 22 km x 22 km
# Issue 15's dense city: 100,000 units in 11 km (east-west) x 7 km (north-south), Paris-like.
DENSE_HALF_LAT, DENSE_HALF_LON = 3.5 / 111.2, 5.5 / (111.2 * 0.6579)  # cos(48.86 deg) = 0.6579
CALENDAR_NIGHTS = 365
MIN_EVENT_NIGHTS, MAX_EVENT_NIGHTS = 7, 30
KINDS = ("apartment", "house", "private_room", "hotel_room")
# The changed_at of one request: "YYYY-MM-DDTHH:MM:SS.mmm" replaced per request, then the
# event's index as three more digits of microseconds.
PLACEHOLDER = b"@" * 23
MAX_EVENTS_PER_REQUEST = 1000
EPOCH_ORDINAL = dt.date(1970, 1, 1).toordinal()

RATE_COLUMNS = np.dtype([("listing", "<i4"), ("start", "<i4"), ("nights", "<i2"), ("price", "<i4"),
                         ("min_nights", "<i2")])


def listing_id(index: int) -> str:
    return f"L{index:07d}"


def first_night() -> int:
    """Tomorrow as days since 1970-01-01: the first night of every calendar."""
    return dt.date.today().toordinal() - EPOCH_ORDINAL + 1


def iso_day(epoch_day: int) -> str:
    return dt.date.fromordinal(epoch_day + EPOCH_ORDINAL).isoformat()


def rfc3339_ms(ms: int) -> str:
    """'2026-11-26T08:00:00.123' (no zone: the template adds microseconds and 'Z')."""
    seconds, millis = divmod(ms, 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{millis:03d}"


@dataclass(frozen=True)
class City:
    """Where listing `i` is: the same for every process given the seed."""

    listings: int
    seed: int = 7
    half_lat: float = HALF_LAT  # the city spans twice these, in degrees
    half_lon: float = HALF_LON

    def places(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(lat, lon, kind index, max_guests) of every listing; computed once per process."""
        return _places(self.listings, self.seed, self.half_lat, self.half_lon)


@functools.lru_cache(maxsize=4)
def _places(listings: int, seed: int, half_lat: float, half_lon: float) -> tuple[np.ndarray, np.ndarray, np.ndarray,
                                                                                  np.ndarray]:
    rng = np.random.default_rng(seed)
    lat = CITY_LAT + rng.uniform(-half_lat, half_lat, listings)
    lon = CITY_LON + rng.uniform(-half_lon, half_lon, listings)
    kind = rng.integers(0, len(KINDS), listings)
    guests = rng.integers(1, 7, listings)
    return lat, lon, kind, guests


def prefill_lines(city: City, first: int, last: int, changed_at: str) -> list[bytes]:
    """NDJSON lines describing listings [first, last) and filling their 365-night calendars.

    Each calendar is 4 rate events (seasons of random length, 50-400 EUR, min_nights 1-3); about
    one season in ten is unavailable (no price), as real calendars have booked stretches.
    """
    lat, lon, kind, guests = (a[first:last].tolist() for a in city.places())
    count = last - first
    rng = np.random.default_rng((city.seed, first))
    days = _calendar_days(first_night())
    # 3 distinct cuts in [30, 335) a listing: 4 seasons of at least one night
    cuts = np.sort(rng.integers(30, CALENDAR_NIGHTS - 32, (count, 3)), axis=1)
    cuts[:, 1] = np.maximum(cuts[:, 1], cuts[:, 0] + 1)
    cuts[:, 2] = np.maximum(cuts[:, 2], cuts[:, 1] + 1)
    bounds = np.concatenate([np.zeros((count, 1), int), cuts, np.full((count, 1), CALENDAR_NIGHTS)], 1).tolist()
    booked = (rng.random((count, 4)) < 0.1).tolist()
    prices = rng.integers(50, 400, (count, 4)).tolist()
    min_nights = rng.integers(1, 4, (count, 4)).tolist()
    lines = []
    for j in range(count):
        lid = listing_id(first + j)
        lines.append(
            f'{{"type":"listing","source":"{SOURCE}","listing_id":"{lid}","name":"Bench {KINDS[kind[j]]} {first + j}",'
            f'"kind":"{KINDS[kind[j]]}","lat":{lat[j]:.6f},"lon":{lon[j]:.6f},"max_guests":{guests[j]},'
            f'"city":"Paris","country":"FR","changed_at":"{changed_at}Z"}}'.encode()
        )
        for s in range(4):
            if booked[j][s]:
                value = '"available":false'
            else:
                value = f'"price":"{prices[j][s]}.00","min_nights":{min_nights[j][s]}'
            lines.append(
                f'{{"type":"rate","source":"{SOURCE}","listing_id":"{lid}","start":"{days[bounds[j][s]]}",'
                f'"end":"{days[bounds[j][s + 1]]}",{value},"currency":"EUR","changed_at":"{changed_at}Z"}}'.encode()
            )
    return lines


@functools.lru_cache(maxsize=2)
def _calendar_days(night0: int) -> list[str]:
    return [iso_day(night0 + d) for d in range(CALENDAR_NIGHTS + 1)]


def rate_columns(rng: np.random.Generator, listings: np.ndarray, events: int,
                 nights: tuple[int, int] = (MIN_EVENT_NIGHTS, MAX_EVENT_NIGHTS)) -> np.ndarray:
    """One request's rate events: `events` distinct listings drawn from `listings`, each
    `nights[0]`-`nights[1]` nights long."""
    if events > len(listings):
        raise ValueError(f"events: {events} per request need as many distinct listings; "
                         f"only {len(listings)} are in this connection's share")
    columns = np.empty(events, RATE_COLUMNS)
    columns["listing"] = rng.choice(listings, events, replace=False)
    columns["nights"] = rng.integers(nights[0], nights[1] + 1, events)
    columns["start"] = first_night() + rng.integers(0, CALENDAR_NIGHTS - columns["nights"] + 1)
    columns["price"] = rng.integers(50, 400, events)
    columns["min_nights"] = rng.integers(1, 3, events)
    return columns


def rate_body(columns: np.ndarray) -> bytes:
    """NDJSON of `rate_columns`, with `PLACEHOLDER` where each request's time prefix goes."""
    if len(columns) > MAX_EVENTS_PER_REQUEST:
        raise ValueError(f"events: {len(columns)} per request; at most {MAX_EVENTS_PER_REQUEST} "
                         "fit the microsecond digits of one millisecond")
    prefix = PLACEHOLDER.decode()
    starts, nights = columns["start"].tolist(), columns["nights"].tolist()
    lines = [
        f'{{"type":"rate","source":"{SOURCE}","listing_id":"{listing_id(listing)}",'
        f'"start":"{iso_day(start)}","end":"{iso_day(start + count)}",'
        f'"price":"{price}.00","currency":"EUR","min_nights":{min_nights},'
        f'"changed_at":"{prefix}{i:03d}Z"}}'
        for i, (listing, start, count, price, min_nights) in enumerate(zip(
            columns["listing"].tolist(), starts, nights, columns["price"].tolist(),
            columns["min_nights"].tolist(), strict=False))
    ]
    return ("\n".join(lines) + "\n").encode()


def search_paths(city: City, count: int, seed: int = 11, radius_km: tuple[float, float] = (1, 5)) -> list[str]:
    """Random stays (1-7 nights in the next 300 days, 1-4 guests) in random circles of the city
    (radius drawn from `radius_km`)."""
    rng = np.random.default_rng(seed)
    today = dt.date.today()
    paths = []
    for _ in range(count):
        checkin = today + dt.timedelta(days=int(rng.integers(1, 300)))
        query = {
            "lat": f"{CITY_LAT + rng.uniform(-city.half_lat, city.half_lat) * 0.9:.5f}",
            "lon": f"{CITY_LON + rng.uniform(-city.half_lon, city.half_lon) * 0.9:.5f}",
            "radius_km": f"{rng.uniform(*radius_km):.2f}",
            "checkin": checkin.isoformat(),
            "checkout": (checkin + dt.timedelta(days=int(rng.integers(1, 8)))).isoformat(),
            "guests": str(int(rng.integers(1, 5))),
        }
        paths.append("/v1/search?" + urllib.parse.urlencode(query))
    return paths
