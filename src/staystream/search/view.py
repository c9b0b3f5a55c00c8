"""A worker's read view of the embedded store: shared arrays plus read-only SQLite."""

from __future__ import annotations

import sqlite3
import time
import unicodedata
from pathlib import Path

import msgspec
import numpy as np

from staystream.dates import day_from_epoch, format_changed_at
from staystream.durable import history, sqlite
from staystream.durable.history import HISTORY_FIELDS, TYPE_OF_FACTS
from staystream.events.fx import Fx, load_fx
from staystream.events.money import CURRENCIES, format_minor
from staystream.events.types import FACT_AVAILABILITY, FACT_PRICE, FACT_STAY_RULE, KINDS, listing_key
from staystream.memory.calendar import OLDEST, PAGE, CalendarReader, directory_and_base
from staystream.memory.layout import SHARED_ARRAYS
from staystream.memory.shm import Counter, SharedArrays
from staystream.places.graph import place_id_for


class Store:
    def __init__(self, database_path: Path, shm_path: Path, fx: Fx) -> None:
        self.shared = SharedArrays(shm_path, SHARED_ARRAYS, create=False)
        self.calendar = CalendarReader(self.shared)
        self.connection = sqlite.connect_reader(database_path)
        self.history_path = history.history_path(database_path.parent)
        self._history: sqlite3.Connection | None = None  # opened on first use: the writer creates it
        self.fx = fx
        self._fx_generation = 0
        self.refresh()

    def refresh(self) -> None:
        """Call at the start of every request: remap grown arrays, pick up a new FX table."""
        self.shared.refresh()
        generation = int(self.shared.counters[Counter.FX_GENERATION])
        if generation != self._fx_generation:
            stored = sqlite.setting(self.connection, "fx")
            if stored is not None:
                self.fx = load_fx(stored)
            self._fx_generation = generation

    @property
    def history_behind(self) -> bool:
        """Whether the price history lacks groups the writer already applied (and acknowledged)."""
        return int(self.shared.counters[Counter.HISTORY_SEQ]) < int(self.shared.counters[Counter.SEQ])

    def changes(self, row: int, night: int) -> list[dict[str, object]]:
        """Every event that set a fact of the listing's `night`, by changed_at (then arrival),
        with the facts it set (the others null); an event met twice (replayed) shows once."""
        if self._history is None:
            self._history = history.connect(self.history_path, readonly=True)
        found = list(dict.fromkeys(history.changes(self._history, row, night)))
        found.sort(key=lambda event: event[2])  # stable: arrival order at equal changed_at
        shown: list[dict[str, object]] = []
        for values in found:
            event = dict(zip(HISTORY_FIELDS, values, strict=True))
            facts = event["facts"]
            priced = bool(facts & FACT_PRICE) and event["price"] >= 0
            shown.append({
                "type": TYPE_OF_FACTS.get(facts, "rate"),
                "price": format_minor(event["price"], event["currency"]) if priced else None,
                "currency": CURRENCIES[event["currency"]] if priced else None,
                "available": bool(event["available"]) if facts & FACT_AVAILABILITY else None,
                "min_nights": event["min_nights"] if facts & FACT_STAY_RULE else None,
                "changed_at": format_changed_at(event["changed_at"]),
            })
        return shown

    @property
    def backlog(self) -> int:
        return int(self.shared.counters[Counter.BACKLOG])

    @property
    def ready(self) -> bool:
        return bool(self.shared.counters[Counter.READY])

    @property
    def writer_silent_seconds(self) -> float:
        """Since the writer's last heartbeat (CLOCK_MONOTONIC is one clock for all processes)."""
        return max(0.0, time.monotonic() - int(self.shared.counters[Counter.HEARTBEAT]) / 1000)

    def find(self, source: str, listing_id: str) -> int | None:
        source = source.strip().lower()
        listing_id = unicodedata.normalize("NFC", listing_id.strip())
        return sqlite.find_row(self.connection, source, listing_id)

    def listing(self, row: int) -> dict[str, object]:
        found = sqlite.details(self.connection, [row])[row]
        searchable = bool(self.shared["searchable"][row]) if row < len(self.shared["searchable"]) else False
        return {**describe(found, searchable), "place_id": self.place_ids([row]).get(row)}

    def place_of_one(self, answer: dict[str, object]) -> bytes | None:
        """The place of a listing outside every place (the writer's `{"place_id", "alone"}`):
        itself, as the store describes it (name, lat and lon null when never described)."""
        alone = answer["alone"]
        assert isinstance(alone, list) and len(alone) == 2, alone  # [source, listing_id] from the writer
        source, listing_id = str(alone[0]), str(alone[1])
        row = self.find(source, listing_id)
        if row is None:
            return None
        found = sqlite.details(self.connection, [row]).get(row, {})
        return msgspec.json.encode({
            "place_id": answer["place_id"], "name": found.get("name"), "lat": found.get("lat"),
            "lon": found.get("lon"),
            "listings": [{"source": source, "listing_id": listing_id, "matched": "self", "score": 1.0}],
        })

    def place_ids(self, rows: list[int]) -> dict[int, str]:
        """row -> the `place_id` of the row's place (named after the listing that stands for it)."""
        place = self.shared["place"]
        if rows and max(rows) >= len(place):
            self.shared.refresh()
            place = self.shared["place"]
        places = {row: int(place[row]) for row in rows}
        keys = sqlite.keys(self.connection, sorted(set(places.values())))
        return {row: place_id(*keys[p]) for row, p in places.items() if p in keys}

    def nights(self, row: int, start: int | None, end: int | None) -> list[dict[str, object]]:
        """The nights of one listing that hold any fact, in date order, [start, end).

        A fact never received for a night shows as null (`price` and `currency` also where the
        price fact is "no price"); `changed_at` is the newest of the night's facts."""
        directory, base = directory_and_base(self.shared)
        if row >= len(directory):
            return []
        used = np.flatnonzero(directory[row])
        if len(used) == 0:
            return []
        first = (base + int(used[0])) * PAGE
        last = (base + int(used[-1]) + 1) * PAGE
        start = first if start is None else max(start, first)
        end = last if end is None else min(end, last)
        if end <= start:
            return []
        days = np.arange(start, end, dtype=np.int64)
        entries = self.calendar.entries_for_nights(np.array([row]), days)[0]
        held = entries != 0
        days, entries = days[held], entries[held]
        entry = self.calendar.entry
        price = entry("entry_price", entries).tolist()
        currency = entry("entry_currency", entries).tolist()
        available = entry("entry_available", entries).tolist()
        available_known = (entry("entry_available_at", entries) != OLDEST).tolist()
        min_nights = entry("entry_min_nights", entries).tolist()
        stay_known = (entry("entry_stay_at", entries) != OLDEST).tolist()
        changed_at = entry("entry_changed_at", entries).tolist()
        return [
            {
                "night": day_from_epoch(day).isoformat(),
                "price": None if price[i] < 0 else format_minor(price[i], currency[i]),
                "currency": None if price[i] < 0 else CURRENCIES[currency[i]],
                "available": bool(available[i]) if available_known[i] else None,
                "min_nights": min_nights[i] if stay_known[i] else None,
                "changed_at": format_changed_at(changed_at[i]),
            }
            for i, day in enumerate(days.tolist())
        ]


def place_id(source: str, listing_id: str) -> str:
    """The id of a place from its anchor's key (the smallest member key): the engine's naming."""
    return place_id_for(listing_key(source, listing_id))


def describe(found: dict[str, object], searchable: bool) -> dict[str, object]:
    """A listing's details as the API shows them."""
    kind = found.get("kind")
    described_at, delisted_at = found.get("described_at"), found.get("delisted_at")
    return {
        "source": found["source"],
        "listing_id": found["listing_id"],
        "name": found.get("name"),
        "kind": KINDS[kind] if isinstance(kind, int) else None,
        "lat": found.get("lat"),
        "lon": found.get("lon"),
        "max_guests": found.get("max_guests"),
        "property_id": found.get("property_id"),
        "city": found.get("city"),
        "country": found.get("country"),
        "bedrooms": found.get("bedrooms"),
        "url": found.get("url"),
        "address": found.get("address"),
        "described_at": format_changed_at(described_at) if isinstance(described_at, int) else None,
        "delisted_at": format_changed_at(delisted_at) if isinstance(delisted_at, int) else None,
        "searchable": searchable,
    }
