"""Search: every unit in an area free for a whole stay, with its total, ranked, in pages.

Everything up to the page of results is numpy over the shared columns: the area and guest
filters over listing columns, one gather of calendar entries per night of the stay, then
availability, the check-in night's `min_nights`, the totals and the ranking. Only the page that
is returned touches Python objects and SQLite (names, URLs).
"""

from __future__ import annotations

import base64
import datetime as dt
import math
from dataclasses import dataclass
from decimal import Decimal

import msgspec
import numpy as np

from .ingest import day_from_epoch, epoch_day, format_changed_at
from . import db
from .money import CURRENCIES, CURRENCY_INDEX, EXPONENT, MoneyError, format_minor, parse_decimal
from .shm import Counter
from .store import Store, describe
from .types import KIND_INDEX, KINDS

EARTH_RADIUS_KM = 6371.0088
MAX_STAY_NIGHTS = 90
MAX_LIMIT = 200
SORTS = ("total", "nightly", "distance")


class QueryError(ValueError):
    """A search parameter is wrong; the message names it, its value and what was expected."""


@dataclass(frozen=True)
class Query:
    min_lat: float
    max_lat: float
    min_lon: float
    max_lon: float
    center: tuple[float, float]
    radius_km: float | None
    checkin: int
    nights: int
    guests: int
    kinds: tuple[int, ...]
    min_price: Decimal | None  # in the ranking currency: `currency`, else the FX table's base
    max_price: Decimal | None
    currency: int | None  # None: shown in each listing's own currency, ranked in the FX base
    sort: str
    limit: int
    after: tuple[float, int] | None


def parse_query(params: "MultiParams", horizon_days: int) -> Query:
    get = params.get
    if get("bbox") is not None:
        parts = _floats("bbox", get("bbox"), 4)
        min_lon, min_lat, max_lon, max_lat = parts
        if not (-180 <= min_lon <= max_lon <= 180 and -90 <= min_lat <= max_lat <= 90):
            raise QueryError(
                f"bbox: '{get('bbox')}' is not min_lon,min_lat,max_lon,max_lat within the globe"
            )
        center, radius = ((min_lat + max_lat) / 2, (min_lon + max_lon) / 2), None
    elif get("lat") is not None or get("lon") is not None:
        lat = _float("lat", get("lat"), -90, 90)
        lon = _float("lon", get("lon"), -180, 180)
        radius = _float("radius_km", get("radius_km") or "10", 0.01, 500)
        span = math.degrees(radius / EARTH_RADIUS_KM)
        lon_span = span / max(math.cos(math.radians(lat)), 1e-6)
        min_lat, max_lat = lat - span, lat + span
        min_lon, max_lon = (lon - lon_span, lon + lon_span) if lon_span < 180 else (-180, 180)
        center = (lat, lon)
    else:
        raise QueryError("area: missing; expected lat, lon and radius_km, or bbox=min_lon,min_lat,max_lon,max_lat")
    checkin = _date("checkin", get("checkin"))
    checkout = _date("checkout", get("checkout"))
    nights = (checkout - checkin).days
    if not 1 <= nights <= MAX_STAY_NIGHTS:
        raise QueryError(
            f"checkout: '{checkout}' is {nights} nights after checkin '{checkin}'; expected 1 to {MAX_STAY_NIGHTS}"
        )
    if checkout > dt.date.today() + dt.timedelta(days=horizon_days + 1):
        raise QueryError(f"checkout: '{checkout}' is past the horizon of {horizon_days} days")
    guests = int(_float("guests", get("guests") or "1", 1, 500))
    kinds = []
    for text in params.getlist("kind"):
        for kind in filter(None, (k.strip() for k in text.split(","))):
            if kind not in KIND_INDEX:
                raise QueryError(f"kind: '{kind}' is not one of {', '.join(KINDS)}")
            kinds.append(KIND_INDEX[kind])
    currency = None
    if get("currency"):
        code = get("currency").strip().upper()
        if code not in CURRENCY_INDEX:
            raise QueryError(f"currency: '{get('currency')}' is not an ISO 4217 currency code")
        currency = CURRENCY_INDEX[code]
    sort = get("sort") or "total"
    if sort not in SORTS:
        raise QueryError(f"sort: '{sort}' is not one of {', '.join(SORTS)}")
    limit = int(_float("limit", get("limit") or "20", 1, MAX_LIMIT))
    return Query(
        min_lat, max_lat, min_lon, max_lon, center, radius, epoch_day(checkin), nights, guests,
        tuple(kinds), _price("min_price", get("min_price")), _price("max_price", get("max_price")),
        currency, sort, limit, _cursor(get("cursor")),
    )


class MultiParams:
    """What `parse_query` needs of Starlette's `QueryParams`."""

    def get(self, key: str) -> str | None: ...
    def getlist(self, key: str) -> list[str]: ...


def search(store: Store, query: Query) -> dict[str, object]:
    shared = store.shared
    rows_in_use = int(shared.counters[Counter.ROWS])
    lat, lon = shared["lat"][:rows_in_use], shared["lon"][:rows_in_use]
    mask = (
        (shared["searchable"][:rows_in_use] == 1)
        & (shared["max_guests"][:rows_in_use] >= query.guests)
        & (lat >= query.min_lat) & (lat <= query.max_lat)
        & (lon >= query.min_lon) & (lon <= query.max_lon)
    )
    if query.kinds:
        mask &= np.isin(shared["kind"][:rows_in_use], query.kinds)
    rows = np.flatnonzero(mask)
    distance = _distance_km(lat[rows], lon[rows], *query.center)
    if query.radius_km is not None:
        near = distance <= query.radius_km
        rows, distance = rows[near], distance[near]

    days = np.arange(query.checkin, query.checkin + query.nights, dtype=np.int64)
    entries = store.calendar.entries_for_nights(rows, days)
    price = shared["entry_price"][entries]
    currency = shared["entry_currency"][entries].astype(np.int64)
    open_ = (
        (entries != 0).all(axis=1)
        & (shared["entry_available"][entries] == 1).all(axis=1)
        & (price >= 0).all(axis=1)
        & (shared["entry_min_nights"][entries[:, 0]] <= query.nights)
        & (currency == currency[:, :1]).all(axis=1)  # a stay priced in one currency
    )
    rows, distance, entries, price = rows[open_], distance[open_], entries[open_], price[open_]
    own_currency = currency[open_, 0] if len(rows) else np.empty(0, np.int64)
    total = price.sum(axis=1)

    fx = store.fx
    ranking_currency = query.currency if query.currency is not None else CURRENCY_INDEX[fx.table.base]
    converted = total * fx.minor_factors(ranking_currency)[own_currency]
    keep = ~np.isnan(converted)  # no FX rate for that currency: cannot be ranked against others
    scale = 10 ** EXPONENT[ranking_currency]
    if query.min_price is not None:
        keep &= converted >= float(query.min_price * scale) - 0.5
    if query.max_price is not None:
        keep &= converted <= float(query.max_price * scale) + 0.5
    rows, distance, entries, total, own_currency, converted = (
        a[keep] for a in (rows, distance, entries, total, own_currency, converted)
    )
    key = distance if query.sort == "distance" else converted / (query.nights if query.sort == "nightly" else 1)
    if query.after is not None:
        after_key, after_row = query.after
        later = (key > after_key) | ((key == after_key) & (rows > after_row))
        rows, distance, entries, total, own_currency, key = (
            a[later] for a in (rows, distance, entries, total, own_currency, key)
        )
    matches = len(rows)
    order = _top(key, rows, query.limit)
    page_rows = rows[order].tolist()
    found = db.details(store.connection, page_rows)
    results = []
    for i, row in zip(order.tolist(), page_rows):
        results.append(_result(store, query, found[row], entries[i], int(total[i]), int(own_currency[i]), float(distance[i])))
    next_cursor = None
    if matches > len(order) and len(order):
        last = order[-1]
        next_cursor = _encode_cursor(float(key[last]), int(rows[last]))
    return {
        "results": results,
        "next_cursor": next_cursor,
        "matches": matches,
        "stay": {
            "checkin": day_from_epoch(query.checkin).isoformat(),
            "checkout": day_from_epoch(query.checkin + query.nights).isoformat(),
            "nights": query.nights,
        },
        "currency": None if query.currency is None else CURRENCIES[query.currency],
        "ranked_in": CURRENCIES[ranking_currency],
        "fx": fx.label,
    }


def _result(store: Store, query: Query, found: dict, entries: np.ndarray, total: int, own: int, distance: float) -> dict:
    shared = store.shared
    shown = own if query.currency is None else query.currency
    nightly = shared["entry_price"][entries].tolist()
    changed = shared["entry_changed_at"][entries]
    fx = store.fx
    listing = describe(found, True)
    listing.pop("searchable")
    total_shown = fx.convert_minor(total, own, shown)
    return {
        **listing,
        "total": format_minor(total_shown, shown),
        "currency": CURRENCIES[shown],
        "nightly_average": format_minor(round(total_shown / query.nights), shown),
        "nights": [
            {
                "night": day_from_epoch(query.checkin + i).isoformat(),
                "price": format_minor(fx.convert_minor(p, own, shown), shown),
            }
            for i, p in enumerate(nightly)
        ],
        "listing_currency": CURRENCIES[own],
        "listing_total": format_minor(total, own),
        "distance_km": round(distance, 3),
        "price_changed_at": format_changed_at(int(changed.max())),
    }


def _top(key: np.ndarray, rows: np.ndarray, limit: int) -> np.ndarray:
    """Indices of the `limit` smallest (key, row) pairs, in order."""
    if len(key) > limit:
        kth = np.partition(key, limit - 1)[limit - 1]
        candidates = np.flatnonzero(key <= kth)
    else:
        candidates = np.arange(len(key))
    order = candidates[np.lexsort((rows[candidates], key[candidates]))]
    return order[:limit]


def _distance_km(lat: np.ndarray, lon: np.ndarray, center_lat: float, center_lon: float) -> np.ndarray:
    phi1, phi2 = np.radians(lat), math.radians(center_lat)
    dphi = phi2 - phi1
    dlambda = np.radians(center_lon - lon)
    a = np.sin(dphi / 2) ** 2 + np.cos(phi1) * math.cos(phi2) * np.sin(dlambda / 2) ** 2
    return 2 * EARTH_RADIUS_KM * np.arcsin(np.sqrt(np.clip(a, 0, 1)))


def _float(name: str, text: str | None, low: float, high: float) -> float:
    if text is None:
        raise QueryError(f"{name}: missing; expected a number from {low:g} to {high:g}")
    try:
        value = float(text)
    except ValueError:
        raise QueryError(f"{name}: '{text}' is not a number; expected {low:g} to {high:g}") from None
    if not (math.isfinite(value) and low <= value <= high):
        raise QueryError(f"{name}: '{text}' is out of range; expected {low:g} to {high:g}")
    return value


def _floats(name: str, text: str, count: int) -> list[float]:
    parts = text.split(",")
    if len(parts) != count:
        raise QueryError(f"{name}: '{text}' has {len(parts)} numbers; expected {count}")
    return [_float(name, part, -180, 180) for part in parts]


def _date(name: str, text: str | None) -> dt.date:
    if text is None:
        raise QueryError(f"{name}: missing; expected a date YYYY-MM-DD")
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise QueryError(f"{name}: '{text}' is not a date; expected YYYY-MM-DD") from None


def _price(name: str, text: str | None) -> Decimal | None:
    if text is None or text == "":
        return None
    try:
        amount = parse_decimal(text)
    except MoneyError:
        raise QueryError(f"{name}: '{text}' is not a decimal amount") from None
    if amount < 0:
        raise QueryError(f"{name}: '{text}' is negative; expected an amount >= 0")
    return amount


def _encode_cursor(key: float, row: int) -> str:
    return base64.urlsafe_b64encode(msgspec.json.encode([key, row])).decode().rstrip("=")


def _cursor(text: str | None) -> tuple[float, int] | None:
    if not text:
        return None
    try:
        key, row = msgspec.json.decode(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
        return float(key), int(row)
    except Exception:
        raise QueryError(f"cursor: '{text[:60]}' is not a cursor this service issued") from None
