"""A watch as a client asks for it: the JSON body of `POST /v1/watches`, validated as search is.

The search parameters go through `search.engine.parse_query`, so a watch accepts exactly what
`/v1/search` accepts (same errors: field, value, what was expected) and matches what it shows.
"""

from __future__ import annotations

import datetime as dt
import json
import urllib.parse
from dataclasses import dataclass

import msgspec

from staystream.search.engine import Query, QueryError, parse_query

FIELDS = ("lat", "lon", "radius_km", "bbox", "checkin", "checkout", "guests", "max_price", "currency", "kind")
OPTIONS = ("webhook", "changes")  # how the watch tells, not what it matches
WEBHOOK_MAX_LENGTH = 2048


@dataclass(frozen=True)
class WatchSpec:
    params: dict[str, list[str]]  # the search parameters, as query-string values
    query: Query
    webhook: str | None
    expires_at: float  # Unix time: the end of the checkout date, UTC
    changes: bool  # opted in to `price_change` events (the web page's live cards)


class Params:
    """Search parameters held as a dict, with what `parse_query` reads of a query string."""

    def __init__(self, values: dict[str, list[str]]) -> None:
        self.values = values

    def get(self, key: str) -> str | None:
        found = self.values.get(key)
        return found[0] if found else None

    def getlist(self, key: str) -> list[str]:
        return self.values.get(key, [])

    def multi_items(self) -> list[tuple[str, str]]:
        return [(key, value) for key, values in self.values.items() for value in values]


def parse_watch(body: bytes, horizon_days: int, today: dt.date | None = None) -> WatchSpec:
    try:
        document = msgspec.json.decode(body)
    except msgspec.DecodeError as exc:
        raise QueryError(f"body: not JSON ({exc}); expected an object like "
                         '{"lat": 48.85, "lon": 2.35, "radius_km": 5, '
                         '"checkin": "2027-05-01", "checkout": "2027-05-03"}') from None
    if not isinstance(document, dict):
        raise QueryError(f"body: a JSON {type(document).__name__}; expected an object of search parameters")
    unknown = sorted(set(document) - {*FIELDS, *OPTIONS})
    if unknown:
        raise QueryError(f"{unknown[0]}: unknown field; expected some of {', '.join((*FIELDS, *OPTIONS))}")
    values = {name: _texts(name, value) for name, value in document.items()
              if name not in OPTIONS and value is not None}
    query = parse_query(Params(values), horizon_days)
    checkout = query.checkin + query.nights  # days since the epoch
    expires_at = (checkout + 1) * 86400.0
    today = today or dt.datetime.now(dt.UTC).date()
    if dt.date(1970, 1, 1) + dt.timedelta(days=checkout) < today:
        raise QueryError(f"checkout: '{document['checkout']}' is past; expected today or later "
                         "(a watch ends after its checkout)")
    return WatchSpec(values, query, _webhook(document.get("webhook")), expires_at, _changes(document.get("changes")))


def _texts(name: str, value: object) -> list[str]:
    """A JSON value as the query-string values search parses: numbers and strings as text,
    `bbox` and `kind` also as lists."""
    if isinstance(value, list) and name in ("bbox", "kind"):
        if not all(isinstance(v, (str, int, float)) and not isinstance(v, bool) for v in value):
            raise QueryError(f"{name}: {json.dumps(value)[:80]} holds a non-scalar; expected numbers or strings")
        return [",".join(str(v) for v in value)]
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise QueryError(f"{name}: {json.dumps(value)[:80]} is a JSON {type(value).__name__}; "
                         "expected a string or a number")
    return [str(value)]


def _webhook(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise QueryError(f"webhook: {json.dumps(value)[:80]} is not a string; expected an http(s) URL")
    parts = urllib.parse.urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname or len(value) > WEBHOOK_MAX_LENGTH:
        raise QueryError(f"webhook: '{value[:100]}' is not an http(s) URL of at most {WEBHOOK_MAX_LENGTH} characters; "
                         "expected like https://example.com/hooks/staystream")
    return value


def _changes(value: object) -> bool:
    """`changes: true` adds `price_change` events; off by default, so an API client hears only
    the contract's entered, left and price_drop."""
    if value is None:
        return False
    if not isinstance(value, bool):
        raise QueryError(f"changes: {json.dumps(value)[:80]} is not a boolean; expected true (also tell every "
                         "change of a matching place's total or cheapest offer, as price_change) or false")
    return value


def query_of(params: str, horizon_days: int = 100_000) -> Query:
    """The stored parameters (JSON) of a watch as a search query (no horizon: it was checked)."""
    return parse_query(Params(json.loads(params)), horizon_days)
