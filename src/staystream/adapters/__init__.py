"""Source adapters: one module per native format, each turning its input into canonical events.

An adapter is a module `staystream.adapters.<format>` with one function:

    read(inputs: Sequence[Input], options: Options) -> Iterator[Item]

It streams: it yields an `Item` per canonical event (`ListingEvent`, `RateEvent`,
`DelistEvent` from `staystream.types`) or per record it cannot turn into one (a
`staystream.ingest.Rejected` naming the field, the value and what was expected), each with the
place in the source it came from, so a rejection can be found in the original file. An adapter
of big files may yield many rate events as one `RateRuns` item (columns, no object per event);
`one_by_one` turns those back into an item per event. It never
validates what the service validates anyway (ranges, horizons, ceilings): the importer maps the
service's rejections back to the item's lines. A problem with an input as a whole (a missing
column, the wrong file) raises `InputError`.

>>> from staystream.adapters import load
>>> load("insideairbnb").__name__
'staystream.adapters.insideairbnb'

Adding a marketplace is adding a module; see docs/adapters.md.
"""

from __future__ import annotations

import gzip
import importlib
import io
import pkgutil
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from decimal import Decimal
from types import ModuleType
from typing import BinaryIO, NamedTuple, Protocol, TextIO

from staystream.adapters.runs import RateRuns
from staystream.events.bounds import Rejected
from staystream.events.types import Event

__all__ = ["Adapter", "Input", "InputError", "Item", "Options", "RateRuns", "formats", "load", "one_by_one",
           "open_text"]


class InputError(ValueError):
    """An input as a whole cannot be read (wrong file, missing column); the message says which."""


class Input(NamedTuple):
    """One native input: a name to report places with (a file name) and its bytes."""

    name: str
    stream: BinaryIO


@dataclass(frozen=True)
class Options:
    """What a native format leaves implicit, given by whoever runs the import."""

    source: str  # the marketplace the events are attributed to, e.g. "airbnb"
    currency: str | None = None  # ISO 4217 code of amounts the format writes without one
    city: str | None = None  # for listing events, when the format has no city name
    country: str | None = None  # ISO 3166-1 alpha-2, likewise
    placeholder_price: Decimal | None = None  # nightly prices >= this block bookings; None: off


class Item(NamedTuple):
    """One canonical event, or one rejected record, with where it came from.

    `line` and `last_line` are the source's own 1-based line numbers (a CSV header is line 1):
    several lines when one event merges several rows, or a quoted field holds line breaks.
    `rows` is how many source records the item accounts for; `note` says what the adapter
    changed on purpose (a placeholder price kept as unavailable), for the import report. For
    `RateRuns`, the lines span its events' and `rows` counts all of theirs (each has its own).
    """

    event: Event | Rejected | RateRuns
    file: str
    line: int
    last_line: int
    rows: int = 1
    note: str | None = None


class Adapter(Protocol):
    """What `load` returns: any module with this function."""

    def read(self, inputs: Sequence[Input], options: Options) -> Iterator[Item]: ...


def load(format: str) -> Adapter:
    """The adapter module for a format name; `InputError` naming the known formats if none."""
    name = format.strip().lower()
    known = formats()
    if name not in known:
        raise InputError(f"format: '{format}' is not one of {', '.join(known) or 'no adapters'}")
    return importlib.import_module(f"{__name__}.{name}")


def formats() -> list[str]:
    """Format names: the modules of this package that define `read`."""
    names = []
    for module in pkgutil.iter_modules(__path__):
        if module.name.startswith("_"):
            continue
        try:
            imported: ModuleType = importlib.import_module(f"{__name__}.{module.name}")
        except ImportError:
            continue
        if callable(getattr(imported, "read", None)):
            names.append(module.name)
    return sorted(names)


def one_by_one(items: Iterable[Item]) -> Iterator[Item]:
    """The items with every `RateRuns` as an item per event (its lines, rows and note)."""
    for item in items:
        runs = item.event
        if not isinstance(runs, RateRuns):
            yield item
            continue
        for i, (event, line, last_line, rows) in enumerate(zip(
                runs.events(), runs.line.tolist(), runs.last_line.tolist(), runs.nights.tolist(), strict=True)):
            yield Item(event, item.file, line, last_line, rows, runs.notes.get(i))


def open_text(stream: BinaryIO) -> TextIO:
    """Bytes as UTF-8 text for the csv module, gunzipped when they start with the gzip magic.

    A byte sequence that is not UTF-8 becomes U+FFFD instead of stopping the whole file (only
    free text is ever affected in practice; an id or number holding it is rejected anyway).
    """
    buffered = stream if isinstance(stream, io.BufferedReader) else io.BufferedReader(stream)  # type: ignore[type-var]  # any binary stream works
    if buffered.peek(2)[:2] == b"\x1f\x8b":
        buffered = gzip.GzipFile(fileobj=buffered, mode="rb")  # type: ignore[assignment]  # reads like one
    return io.TextIOWrapper(buffered, encoding="utf-8-sig", errors="replace", newline="")
