"""The OpenAPI 3.1 description of the API, and a self-contained page that renders it."""

from __future__ import annotations

import html
from typing import Any

from staystream.events.types import KINDS

_error = {"description": "error", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}


def _param(name: str, description: str, schema: dict[str, object], required: bool = False,
           where: str = "query") -> dict[str, object]:
    return {"name": name, "in": where, "required": required, "description": description, "schema": schema}


_RANGE = {
    "start": {"type": "string", "format": "date", "description": "first night"},
    "end": {"type": "string", "format": "date", "description": "the night after the last (at most 550 nights)"},
}
_PRICE = {
    "price": {"type": ["string", "number"], "description": "per night, >= 0, a decimal in `currency`'s minor unit"},
    "currency": {"type": "string", "description": "ISO 4217"},
}


def _event(kind: str, description: str, fields: dict[str, object], required: list[str],
           note: str = "") -> dict[str, object]:
    """One event type's schema: the fields every event has, then its own."""
    return {
        "type": "object",
        "description": description + (f"; {note}" if note else ""),
        "properties": {
            "type": {"const": kind}, "source": {"type": "string", "pattern": "^[a-z0-9_-]{1,32}$"},
            "listing_id": {"type": "string", "minLength": 1, "maxLength": 128}, **fields,
            "changed_at": {"type": "string", "format": "date-time", "description": "RFC 3339 with a zone"},
        },
        "required": ["type", "source", "listing_id", *required, "changed_at"],
    }


SCHEMA: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {
        "title": "staystream",
        "version": "1",
        "description": "Real-time lodging prices and availability: ingest (wire contract v1, and v1.1's one "
        "fact at a time), calendars and search.",
    },
    "paths": {
        "/v1/events": {
            "post": {
                "summary": "Ingest listing, rate, price, availability, stay_rule, fee, delist and link events (contract v1.1)",
                "description": "NDJSON (`application/x-ndjson`) or a JSON array (`application/json`), optionally "
                "gzip. Answered 200 only once every accepted event is durable. Invalid events are rejected "
                "one by one with their index; the valid ones of the body are accepted. A night holds three "
                "facts, each last-writer-wins on its own `changed_at` (ties: the later arrival): the price, "
                "the availability and the stay rule. `price`, `availability` and `stay_rule` set one each; "
                "`rate` sets all three. A `fee` is one charge beyond the nights, last-writer-wins per "
                "(source, listing_id, fee_id).",
                "requestBody": {"content": {
                    "application/x-ndjson": {"schema": {"type": "string"}},
                    "application/json": {"schema": {"type": "array", "items": {"$ref": "#/components/schemas/Event"}}},
                }},
                "responses": {
                    "200": {"description": "accepted", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/IngestResult"}}}},
                    "400": _error, "413": _error, "415": _error,
                    "401": {**_error, "description": "no credential (when the server has --tokens)"},
                    "403": {**_error, "description": "unknown credential, or a source it may not write"},
                    "503": {**_error, "description": "load shed or writer unavailable; see Retry-After"},
                },
            }
        },
        "/v1/listings/{source}/{listing_id}/calendar": {
            "get": {
                "summary": "A listing's nightly calendar",
                "parameters": [
                    _param("source", "marketplace", {"type": "string"}, True, "path"),
                    _param("listing_id", "the source's id", {"type": "string"}, True, "path"),
                    _param("start", "first night (inclusive)", {"type": "string", "format": "date"}),
                    _param("end", "last night (exclusive)", {"type": "string", "format": "date"}),
                ],
                "responses": {
                    "200": {"description": "the nights that hold any fact, in date order",
                            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Calendar"}}}},
                    "400": _error, "404": _error,
                },
            }
        },
        "/v1/listings/{source}/{listing_id}/history": {
            "get": {
                "summary": "Every accepted change of one night, kept at least 400 days (--history-days)",
                "parameters": [
                    _param("source", "marketplace", {"type": "string"}, True, "path"),
                    _param("listing_id", "the source's id", {"type": "string"}, True, "path"),
                    _param("night", "the night", {"type": "string", "format": "date"}, True),
                ],
                "responses": {
                    "200": {"description": "the night's changes in changed_at order",
                            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/History"}}}},
                    "400": _error, "404": _error,
                },
            }
        },
        "/v1/places/{place_id}": {
            "get": {
                "summary": "A place: the listings that are one property (same property_id, links, automatic "
                "matching) and how each joined",
                "parameters": [_param("place_id", "as a listing's `place_id` shows it", {"type": "string"}, True,
                                      "path")],
                "responses": {
                    "200": {"description": "the place",
                            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Place"}}}},
                    "404": _error,
                },
            }
        },
        "/v1/listings/{source}/{listing_id}": {
            "get": {
                "summary": "A listing's details",
                "parameters": [
                    _param("source", "marketplace", {"type": "string"}, True, "path"),
                    _param("listing_id", "the source's id", {"type": "string"}, True, "path"),
                ],
                "responses": {"200": {"description": "details, `searchable` says whether search shows it, "
                                                     "`place_id` the place it belongs to"}, "404": _error},
            }
        },
        "/v1/search": {
            "get": {
                "summary": "Units free for a whole stay in an area, with totals, ranked and paged",
                "parameters": [
                    _param("lat", "centre latitude (with lon, radius_km)", {"type": "number"}),
                    _param("lon", "centre longitude", {"type": "number"}),
                    _param("radius_km", "radius in km (default 10)", {"type": "number"}),
                    _param("bbox", "min_lon,min_lat,max_lon,max_lat (instead of lat/lon); min_lon > max_lon crosses the antimeridian", {"type": "string"}),
                    _param("checkin", "first night", {"type": "string", "format": "date"}, True),
                    _param("checkout", "day of departure (1 to 90 nights after checkin)", {"type": "string", "format": "date"}, True),
                    _param("guests", "guests (default 1)", {"type": "integer"}),
                    _param("min_price", "lowest stay total, in the ranking currency (with group=place: of the place's cheapest offer)", {"type": "string"}),
                    _param("max_price", "highest stay total, in the ranking currency (with group=place: of the place's cheapest offer)", {"type": "string"}),
                    _param("kind", "one or more kinds, repeated or comma-separated", {"type": "string", "enum": list(KINDS)}),
                    _param("currency", "show and rank prices in this ISO 4217 currency (one the FX table has); without it, each result is shown in its own currency and ranked in the FX table's base (`ranked_in`)", {"type": "string"}),
                    _param("sort", "total (default; then distance), nightly (same order as total for one stay), distance (then total) or deal (percent_below descending, no deal last; then total, distance)", {"type": "string", "enum": ["total", "nightly", "distance", "deal"]}),
                    _param("group", "place (default): one result per place, the fields of its cheapest offer plus `place_id` and `offers` (every matching listing of the place, by total, then source, listing_id); ranking, price bounds, deals=only and paging apply to each place's cheapest offer. listing: one result per listing, with its `place_id`", {"type": "string", "enum": ["place", "listing"]}),
                    _param("deals", "all (default) or only: keep the results that have a `deal`", {"type": "string", "enum": ["all", "only"]}),
                    _param("limit", "results per page, 1 to 200 (default 20)", {"type": "integer"}),
                    _param("cursor", "next_cursor of the previous page, with the same other parameters (limit may change)", {"type": "string"}),
                ],
                "responses": {"200": {"description": "`{results, next_cursor, matches, group, fx, ...}`; every result "
                                                     "and offer has `deal`: null or `{kind: less_than_similar | "
                                                     "less_than_usual, percent_below, reference_total}` (wire contract "
                                                     "v1.1, Search). A result's `total` (and every offer's, and what "
                                                     "sorts, price bounds and deals compare) is the nights plus every "
                                                     "mandatory fee that applies to the stay, exact and rounded once; "
                                                     "`nights_total` is the nights alone and `fees` lists each fee whose "
                                                     "window holds the check-in (`FeeLine`: optional ones listed, not "
                                                     "added)"}, "400": _error},
            }
        },
        "/v1/search/dates": {
            "get": {
                "summary": "Flexible dates: per check-in day, the number of results and the cheapest",
                "description": "What `GET /v1/search` with each check-in (and `nights` nights) would answer: its "
                "`matches` and its first result by total, as `{total, currency, source, listing_id, place_id}` "
                "(null without results). Same area, filters, currency and group parameters as search.",
                "parameters": [
                    _param("lat", "centre latitude (with lon, radius_km)", {"type": "number"}),
                    _param("lon", "centre longitude", {"type": "number"}),
                    _param("radius_km", "radius in km (default 10)", {"type": "number"}),
                    _param("bbox", "min_lon,min_lat,max_lon,max_lat (instead of lat/lon)", {"type": "string"}),
                    _param("nights", "nights of each stay, 1 to 90", {"type": "integer"}, True),
                    _param("from", "first check-in day", {"type": "string", "format": "date"}, True),
                    _param("days", "check-in days, 1 to 62 (default 31)", {"type": "integer"}),
                    _param("guests", "guests (default 1)", {"type": "integer"}),
                    _param("kind", "one or more kinds, repeated or comma-separated", {"type": "string", "enum": list(KINDS)}),
                    _param("min_price", "lowest stay total, in the ranking currency", {"type": "string"}),
                    _param("max_price", "highest stay total, in the ranking currency", {"type": "string"}),
                    _param("currency", "show and rank totals in this currency", {"type": "string"}),
                    _param("group", "place (default) or listing: what `matches` counts", {"type": "string", "enum": ["place", "listing"]}),
                ],
                "responses": {"200": {"description": "`{dates: [{checkin, checkout, matches, cheapest}], nights, group, currency, ranked_in, fx}`"},
                              "400": _error},
            }
        },
        "/v1/watches": {
            "post": {
                "summary": "Watch a search: events when a place enters or leaves it, or its total drops 1% or more",
                "description": "JSON body: the search parameters (lat, lon, radius_km or bbox; checkin, checkout, "
                "guests, max_price, currency, kind), validated as /v1/search validates them, an optional "
                "`webhook` URL, and an optional `changes` boolean (default false; true adds price_change "
                "events, the web page's opt-in). Needs no write credential; bounded per client address and in total (429 with "
                "Retry-After). A watch expires after its checkout date. 503: the watch store (PostgreSQL) is "
                "unreachable, or this scaled node keeps no watches (no PostgreSQL store).",
                "requestBody": {"content": {"application/json": {"schema": {"type": "object"}}}},
                "responses": {"201": {"description": "`{watch_id, secret}`: the secret signs the webhooks"},
                              "400": _error, "429": _error, "503": _error},
            }
        },
        "/v1/watches/{watch_id}": {
            "delete": {
                "summary": "Delete a watch (its events and pending webhooks too)",
                "parameters": [_param("watch_id", "as created", {"type": "string"}, True, "path")],
                "responses": {"204": {"description": "deleted"}, "404": _error, "503": _error},
            }
        },
        "/v1/watches/{watch_id}/events": {
            "get": {
                "summary": "The watch's events as Server-Sent Events: entered, left, price_drop",
                "description": "`data` is JSON: place_id, source, listing_id, total, currency (and previous_total for "
                "price_drop). A watch made with `changes: true` also hears price_change: any other change of a "
                "matching place's total or cheapest offer (same data; previous_total when in the same currency). Each event's `id` resumes the stream with the Last-Event-ID header; without it the "
                "stream starts with every event kept for the watch (24 h).",
                "parameters": [_param("watch_id", "as created", {"type": "string"}, True, "path")],
                "responses": {"200": {"description": "text/event-stream", "content": {"text/event-stream": {}}},
                              "400": _error, "404": _error, "503": _error},
            }
        },
        "/v1/admin/fx": {
            "get": {"summary": "The FX table in use", "responses": {"200": {"description": "the table"}}},
            "put": {"summary": "Replace the FX table (all workers, durable)", "responses": {"200": {"description": "replaced"}, "400": _error}},
        },
        "/v1/bulk/rates": {
            "post": {
                "summary": "Rate events as columns (what `staystream import` sends): stored, checked and answered as on /v1/events",
                "description": "A msgpack map (`application/vnd.staystream.rates+msgpack`, gzip accepted): the tables `listings` "
                "([source, listing_id] pairs), `currencies` and `prices` (decimal texts), each once, then one little-endian "
                "array per field with a value per event: `listing`, `currency`, `price` (int32 indexes into the tables; "
                "price -1: none), `start` and `end` (int32 days since 1970-01-01), `available` (uint8), `min_nights` "
                "(int32), `changed_at` (int64 microseconds since 1970, UTC). Each event is accepted or rejected (by its "
                "index) exactly as the same `rate` event in NDJSON would be. See src/staystream/events/columns.py.",
                "requestBody": {"content": {"application/vnd.staystream.rates+msgpack": {"schema": {"type": "string", "format": "binary"}}}},
                "responses": {"200": {"description": "accepted (durable) and rejected events, as /v1/events answers"},
                              "400": _error, "413": _error, "415": _error, "503": _error},
            }
        },
        "/v1/sources/{source}/ota": {
            "post": {
                "summary": "OpenTravel ARI push: OTA_HotelRateAmountNotifRQ, OTA_HotelAvailNotifRQ, OTA_HotelInvCountNotifRQ",
                "description": "Bare or in a SOAP envelope. Answered with the matching ...RS (HTTP 200): <Success/> "
                "(+ <Warnings>), or <Errors> naming each element that was not applied (the others were). "
                "Each element sets the facts it carries (price, availability, stay_rule); unknown parts are "
                "Warnings. Listing ids are {HotelCode}:{InvTypeCode}:{RatePlanCode}; time zone, currency and "
                "occupancy a message leaves implicit come from `serve --sources-file`. See docs/adapters.md.",
                "parameters": [_param("source", "marketplace, e.g. booking", {"type": "string"}, True, "path")],
                "requestBody": {"content": {"application/xml": {"schema": {"type": "string"}}}},
                "responses": {"200": {"description": "the OTA RS", "content": {"application/xml": {}}},
                              "400": _error, "413": _error, "503": _error},
            }
        },
        "/v1/sources/{source}/expedia": {
            "post": {
                "summary": "Expedia EQC AvailRateUpdateRQ push",
                "description": "Answered with AvailRateUpdateRS (HTTP 200): <Success/> (with any <Warning>), or "
                "<Error>s, in which case nothing in the message was applied. Listing ids are "
                "{Hotel id}:{RoomType id}:{RatePlan id}; closing needs no currency, a Rate without one takes "
                "the property's or source's from `serve --sources-file`. See docs/adapters.md.",
                "parameters": [_param("source", "marketplace, e.g. expedia or vrbo", {"type": "string"}, True, "path")],
                "requestBody": {"content": {"application/xml": {"schema": {"type": "string"}}}},
                "responses": {"200": {"description": "the AvailRateUpdateRS", "content": {"application/xml": {}}},
                              "400": _error, "413": _error, "503": _error},
            }
        },
        "/v1/sources/{source}/listings/{listing_id}/ical": {
            "post": {
                "summary": "An iCalendar (RFC 5545) availability feed of one listing",
                "description": "Sets availability only: events block nights, every other night of [start, end) "
                "is open; prices and stay rules are left as they are. Malformed events are reported by line, "
                "and then no night is opened.",
                "parameters": [
                    _param("source", "marketplace", {"type": "string"}, True, "path"),
                    _param("listing_id", "the source's id", {"type": "string"}, True, "path"),
                    _param("start", "first night of the feed's horizon (default today)", {"type": "string", "format": "date"}),
                    _param("end", "end of the horizon, exclusive (default start + 365)", {"type": "string", "format": "date"}),
                    _param("empty_ok", "a feed without events opens every night (default false)", {"type": "boolean"}),
                ],
                "requestBody": {"content": {"text/calendar": {"schema": {"type": "string"}}}},
                "responses": {"200": {"description": "`{blocked_nights, open_nights, opened, accepted, "
                                                     "rejected, errors, warnings, ...}`"},
                              "400": _error, "413": _error, "503": _error},
            }
        },
        "/healthz": {"get": {"summary": "The process answers", "responses": {"200": {"description": "ok"}}}},
        "/readyz": {"get": {"summary": "The store works and the write backlog is under its limit", "responses": {"200": {"description": "ready"}, "503": {"description": "not ready, with the problems"}}}},
        "/metrics": {"get": {"summary": "Prometheus metrics", "responses": {"200": {"description": "text exposition format"}}}},
        "/v1/ops/summary": {"get": {
            "summary": "What the operator's dashboard shows: per source accepted and rejected events with "
                       "example rejections, freshness, write latency, snapshot, restart and scaled-mode state",
            "responses": {"200": {"description": "the summary (shape: web/routes.py OPS_SUMMARY_SHAPE)",
                                  "content": {"application/json": {"schema": {"type": "object"}}}}}}},
        "/v1/where": {"get": {
            "summary": "Resolve a place name to an area and suggest completions (the search page's where box)",
            "parameters": [{"name": "q", "in": "query", "required": True, "schema": {"type": "string"}},
                           {"name": "resolve", "in": "query", "schema": {"type": "string"}}],
            "responses": {"200": {"description": "the place and suggestions",
                                  "content": {"application/json": {"schema": {"type": "object"}}}},
                          "400": {"description": "no q", "content": {"application/json": {
                              "schema": {"$ref": "#/components/schemas/Error"}}}}}}},
        "/": {"get": {"summary": "The traveler's search page; its whole state is in the URL",
                      "responses": {"200": {"description": "HTML", "content": {"text/html": {}}}}}},
        "/ops": {"get": {"summary": "The operator's dashboard",
                         "responses": {"200": {"description": "HTML", "content": {"text/html": {}}}}}},
    },
    "components": {
        "schemas": {
            "Error": {"type": "object", "properties": {"error": {"type": "string"}}, "required": ["error"]},
            "IngestResult": {
                "type": "object",
                "properties": {
                    "accepted": {"type": "integer"},
                    "rejected": {"type": "array", "items": {"type": "object", "properties": {"index": {"type": "integer"}, "error": {"type": "string"}}}},
                },
            },
            "Event": {
                "description": "one event; `type` says which (fields of listing and delist as in the wire contract)",
                "oneOf": [{"$ref": f"#/components/schemas/{name}"} for name in (
                    "ListingEvent", "RateEvent", "PriceEvent", "AvailabilityEvent", "StayRuleEvent", "FeeEvent",
                    "DelistEvent", "LinkEvent")],
                "discriminator": {"propertyName": "type", "mapping": {
                    kind: f"#/components/schemas/{name}" for kind, name in (
                        ("listing", "ListingEvent"), ("rate", "RateEvent"), ("price", "PriceEvent"),
                        ("availability", "AvailabilityEvent"), ("stay_rule", "StayRuleEvent"),
                        ("fee", "FeeEvent"), ("delist", "DelistEvent"), ("link", "LinkEvent"))
                }},
            },
            "ListingEvent": _event("listing", "describes a unit", {
                "name": {"type": "string"}, "kind": {"type": "string", "enum": list(KINDS)},
                "lat": {"type": "number"}, "lon": {"type": "number"}, "max_guests": {"type": "integer"},
                "property_id": {"type": "string"}, "city": {"type": "string"}, "country": {"type": "string"},
                "bedrooms": {"type": "integer"}, "url": {"type": "string"},
                "address": {"type": "string", "maxLength": 512, "description": "free text; helps match places"},
            }, ["name", "kind", "lat", "lon", "max_guests"]),
            "RateEvent": _event("rate", "sets all three facts of start <= night < end (v1)", {
                **_RANGE, **_PRICE,
                "available": {"type": "boolean", "default": True},
                "min_nights": {"type": "integer", "minimum": 1, "default": 1},
            }, ["start", "end", "currency"], "`price` is required unless `available` is false; without it the price "
               "fact becomes \"no price\""),
            "PriceEvent": _event("price", "sets the price fact of start <= night < end", {**_RANGE, **_PRICE},
                                 ["start", "end", "price", "currency"]),
            "AvailabilityEvent": _event("availability", "sets the availability fact of start <= night < end",
                                        {**_RANGE, "available": {"type": "boolean"}}, ["start", "end", "available"]),
            "StayRuleEvent": _event("stay_rule", "sets the stay-rule fact (minimum stay of a check-in) of "
                                    "start <= night < end", {**_RANGE, "min_nights": {"type": "integer", "minimum": 1}},
                                    ["start", "end", "min_nights"]),
            "FeeEvent": _event("fee", "one charge of a listing beyond its nights (contract v1.1, Fees and taxes): "
                               "last writer wins per (source, listing_id, fee_id)", {
                "fee_id": {"type": "string", "minLength": 1, "maxLength": 128},
                "label": {"type": "string", "maxLength": 200, "description": "as the traveler sees it"},
                "basis": {"type": "string", "enum": ["per_stay", "per_night", "per_guest_per_night", "percent"],
                          "description": "per_stay: amount once; per_night: amount x nights; per_guest_per_night: "
                          "amount x guests x nights; percent: of the nights' sum in the listing's currency"},
                "amount": {"type": ["string", "number", "null"], "description": "in `currency`, >= 0 (not with "
                           "percent); null with no `percent` removes the fee"},
                "percent": {"type": "string", "description": "basis percent only: a decimal string, 0 to 100, at "
                            "most 6 decimals"},
                "currency": {"type": "string", "description": "ISO 4217, with amount"},
                "mandatory": {"type": "boolean", "default": True, "description": "mandatory fees are in every total; "
                              "optional ones are listed only"},
                "start": {"type": "string", "format": "date", "description": "first check-in it applies to "
                          "(default: always)"},
                "end": {"type": "string", "format": "date", "description": "check-ins before this day (default: "
                        "always)"},
            }, ["fee_id"], "`label`, `basis` and `amount` + `currency` or `percent` are required unless the event "
               "removes the fee"),
            "FeeLine": {
                "type": "object",
                "description": "one fee of a search result, its amount in the result's currency (rounded on its "
                "own: the total is rounded once)",
                "properties": {"fee_id": {"type": "string"}, "label": {"type": "string"},
                               "amount": {"type": "string"}, "mandatory": {"type": "boolean"}},
                "required": ["fee_id", "label", "amount", "mandatory"],
            },
            "DelistEvent": _event("delist", "removes the listing from search; its history is kept", {}, []),
            "LinkEvent": _event("link", "an operator's decision that two listings are (or are not) one place; "
                                "last writer wins per pair (at equal changed_at, not same), and beats automatic "
                                "matching; a link naming a listing not yet known is kept", {
                "other_source": {"type": "string", "pattern": "^[a-z0-9_-]{1,32}$"},
                "other_listing_id": {"type": "string", "minLength": 1, "maxLength": 128},
                "same": {"type": "boolean"},
            }, ["other_source", "other_listing_id", "same"]),
            "Place": {
                "type": "object",
                "description": "a property: every listing of it, and how each joined (a listing in no place, "
                "never described or delisted, is a place alone; name, lat and lon null when never described)",
                "properties": {
                    "place_id": {"type": "string"}, "name": {"type": ["string", "null"]},
                    "lat": {"type": ["number", "null"]}, "lon": {"type": ["number", "null"]},
                    "listings": {"type": "array", "items": {"type": "object", "properties": {
                        "source": {"type": "string"}, "listing_id": {"type": "string"},
                        "matched": {"enum": ["self", "property", "link", "auto"], "description":
                                    "self: the listing the place is named after; property: same source and "
                                    "property_id; link: an operator's link; auto: automatic matching"},
                        "score": {"type": "number", "description": "the match score of `auto`; 1.0 otherwise"},
                    }}},
                },
                "required": ["place_id", "name", "lat", "lon", "listings"],
            },
            "History": {
                "type": "object",
                "properties": {
                    "night": {"type": "string", "format": "date"},
                    "changes": {"type": "array", "items": {"type": "object", "description":
                                "one accepted event that set a fact of the night, with the facts it set (the "
                                "others null); in changed_at order", "properties": {
                        "type": {"enum": ["rate", "price", "availability", "stay_rule"]},
                        "price": {"type": ["string", "null"]}, "currency": {"type": ["string", "null"]},
                        "available": {"type": ["boolean", "null"]}, "min_nights": {"type": ["integer", "null"]},
                        "changed_at": {"type": "string", "format": "date-time"},
                    }}},
                },
            },
            "Calendar": {
                "type": "object",
                "properties": {
                    "source": {"type": "string"}, "listing_id": {"type": "string"},
                    "nights": {"type": "array", "items": {"$ref": "#/components/schemas/Night"}},
                },
            },
            "Night": {
                "type": "object",
                "description": "one night's three facts; a fact never received is null (so a search does not use "
                "the night: it needs it available and priced)",
                "properties": {
                    "night": {"type": "string", "format": "date"},
                    "price": {"type": ["string", "null"], "description": "decimal string in `currency`; null where "
                              "no price is known (never received, or \"no price\")"},
                    "currency": {"type": ["string", "null"], "description": "ISO 4217; null with `price`"},
                    "available": {"type": ["boolean", "null"], "description": "null where never received"},
                    "min_nights": {"type": ["integer", "null"], "description": "null where never received (a "
                                   "search then allows any stay)"},
                    "changed_at": {"type": "string", "format": "date-time",
                                   "description": "the newest `changed_at` of the night's facts"},
                },
                "required": ["night", "price", "currency", "available", "min_nights", "changed_at"],
            },
        }
    },
}


def docs_page() -> str:
    """A plain page listing every operation (no CDN: this service may run offline)."""
    rows = []
    for path, operations in SCHEMA["paths"].items():
        for method, operation in operations.items():
            parameters = ", ".join(p["name"] for p in operation.get("parameters", []))
            rows.append(
                f"<tr><td><code>{method.upper()}</code></td><td><code>{html.escape(path)}</code></td>"
                f"<td>{html.escape(operation['summary'])}</td><td>{html.escape(parameters)}</td></tr>"
            )
    return (
        "<!doctype html><meta charset=utf-8><title>staystream API</title>"
        "<style>body{font-family:sans-serif;margin:2em}td{padding:4px 10px;border-bottom:1px solid #ddd}</style>"
        "<h1>staystream API</h1><p>Machine-readable: <a href=/openapi.json>/openapi.json</a></p>"
        "<table><tr><th>method</th><th>path</th><th>what</th><th>parameters</th></tr>"
        + "".join(rows) + "</table>"
    )
