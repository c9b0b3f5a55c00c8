"""Declarative CSV/JSON feeds: a small mapping file says which field is which, no code.

Regional marketplaces export rates as spreadsheets and JSON in their own conventions (German
dates, decimal commas, `frei`/`belegt`). A mapping file (TOML, or the same structure in JSON)
names, for each canonical field, a `column` (a CSV header, a JSON key or `dotted.path`) or a
constant `value`, plus simple transforms. Example (docs/adapters.md has the reference):

    format = "csv"
    delimiter = ";"

    [rate]
    listing_id = { column = "Objekt" }
    start = { column = "Von", date_format = "%d.%m.%Y" }
    end = { column = "Bis", date_format = "%d.%m.%Y", inclusive = true }
    price = { column = "Preis", decimal_comma = true, strip = "€ " }
    currency = { value = "EUR" }
    available = { column = "Status", true = ["frei"], false = ["belegt"] }
    changed_at = { column = "Stand", datetime_format = "%d.%m.%Y %H:%M", timezone = "Europe/Berlin" }

With the importer: `staystream import --format mapping --source fewo mapping.toml feed.csv`
(the first input is the mapping, recognized by its `.toml` or `.json` name). A record that
cannot be read is rejected with its line (CSV) or index (JSON), the field, the column and the
value; the others go on. The mapping file itself is checked whole before any record is read:
an unknown option or a missing required field stops the import with its name.
"""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import io
import json
import tomllib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, BinaryIO, TextIO
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import msgspec

from staystream.adapters import Input, InputError, Item, Options
from staystream.events.bounds import Rejected
from staystream.events.types import ListingEvent, RateEvent

MAPPING_SUFFIXES = (".toml", ".json")
TRUE_WORDS = ("true", "t", "yes", "y", "1")
FALSE_WORDS = ("false", "f", "no", "n", "0")
# Canonical fields of each event type: kind of value, and whether the mapping must give it.
FIELDS: dict[str, dict[str, tuple[str, bool]]] = {
    "rate": {
        "listing_id": ("text", True), "start": ("date", True), "end": ("date", False),
        "nights": ("integer", False), "price": ("decimal", False), "currency": ("text", True),
        "available": ("boolean", False), "min_nights": ("integer", False), "changed_at": ("datetime", True),
    },
    "listing": {
        "listing_id": ("text", True), "name": ("text", True), "kind": ("text", True),
        "lat": ("decimal", True), "lon": ("decimal", True), "max_guests": ("integer", True),
        "changed_at": ("datetime", True), "property_id": ("text", False), "city": ("text", False),
        "country": ("text", False), "bedrooms": ("integer", False), "url": ("text", False),
    },
}
# Options each kind of value takes, besides column / value / default.
OPTIONS = {
    "text": {"map", "strip"},
    "date": {"date_format", "inclusive"},
    "datetime": {"datetime_format", "timezone"},
    "decimal": {"decimal_comma", "thousands", "strip"},
    "integer": {"strip"},
    "boolean": {"true", "false"},
}
TOP_LEVEL = {"format", "delimiter", "encoding", "records", "rate", "listing", "description"}


class MappingError(InputError):
    """The mapping file is wrong; the message names the key and what was expected."""


@dataclass(frozen=True)
class Field:
    """How one canonical field is read from a record."""

    name: str
    kind: str
    column: str | None
    value: Any
    default: Any
    options: dict[str, Any]

    @property
    def where(self) -> str:
        return f"column '{self.column}'" if self.column is not None else "the mapping's value"


@dataclass(frozen=True)
class Mapping:
    format: str
    delimiter: str
    encoding: str
    records: str | None
    rate: dict[str, Field] | None
    listing: dict[str, Field] | None


def load_mapping(data: bytes, name: str = "mapping.toml") -> Mapping:
    """Read and check a mapping file (TOML, or JSON when `name` ends in .json)."""
    try:
        raw = json.loads(data) if name.endswith(".json") else tomllib.loads(data.decode("utf-8-sig"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise MappingError(f"mapping {name}: not valid {'JSON' if name.endswith('.json') else 'TOML'}: {exc}") from None
    if not isinstance(raw, dict):
        raise MappingError(f"mapping {name}: expected a table of settings at the top level")
    unknown = set(raw) - TOP_LEVEL
    if unknown:
        raise MappingError(
            f"mapping {name}: unknown key '{sorted(unknown)[0]}'; expected {', '.join(sorted(TOP_LEVEL))}"
        )
    format = raw.get("format", "csv")
    if format not in ("csv", "json"):
        raise MappingError(f"mapping {name}: format: '{format}' is not csv or json")
    delimiter = raw.get("delimiter", ",")
    if not isinstance(delimiter, str) or len(delimiter) != 1:
        raise MappingError(f"mapping {name}: delimiter: {delimiter!r} is not one character")
    encoding = raw.get("encoding", "utf-8-sig")
    try:
        "".encode(encoding)
    except (LookupError, TypeError):
        raise MappingError(f"mapping {name}: encoding: {encoding!r} is not a known text encoding") from None
    tables = {kind: _fields(name, kind, raw[kind]) for kind in ("rate", "listing") if kind in raw}
    if not tables:
        raise MappingError(f"mapping {name}: has neither a [rate] nor a [listing] table; expected at least one")
    records = raw.get("records")
    if records is not None and (format != "json" or not isinstance(records, str)):
        raise MappingError(f"mapping {name}: records: only a JSON feed has a records path (a dotted key)")
    return Mapping(format, delimiter, encoding, records, tables.get("rate"), tables.get("listing"))


def _fields(name: str, kind: str, table: object) -> dict[str, Field]:
    if not isinstance(table, dict):
        raise MappingError(f"mapping {name}: [{kind}] must be a table of fields")
    known = FIELDS[kind]
    fields = {}
    for field_name, spec in table.items():
        where = f"mapping {name}: {kind}.{field_name}"
        if field_name not in known:
            raise MappingError(f"{where}: not a field of a {kind} event; expected one of {', '.join(known)}")
        if not isinstance(spec, dict):
            raise MappingError(f"{where}: expected a table like {{ column = \"...\" }} or {{ value = ... }}")
        value_kind = known[field_name][0]
        allowed = {"column", "value", "default"} | OPTIONS[value_kind]
        extra = set(spec) - allowed
        if extra:
            raise MappingError(f"{where}: unknown option '{sorted(extra)[0]}'; expected {', '.join(sorted(allowed))}")
        if ("column" in spec) == ("value" in spec):
            raise MappingError(f"{where}: give either column or value")
        options = {key: spec[key] for key in OPTIONS[value_kind] if key in spec}
        _check_options(where, value_kind, options)
        fields[field_name] = Field(field_name, value_kind, spec.get("column"), spec.get("value"),
                                   spec.get("default"), options)
    missing = [field_name for field_name, (_, required) in known.items() if required and field_name not in fields]
    if missing:
        raise MappingError(f"mapping {name}: [{kind}] lacks {', '.join(missing)}; every {kind} event needs them")
    if kind == "rate" and "end" in fields and "nights" in fields:
        raise MappingError(f"mapping {name}: rate: give end or nights, not both")
    return fields


def _check_options(where: str, kind: str, options: dict[str, Any]) -> None:
    if "timezone" in options:
        try:
            ZoneInfo(options["timezone"])
        except (ZoneInfoNotFoundError, ValueError, TypeError):
            raise MappingError(f"{where}: timezone: {options['timezone']!r} is not an IANA time zone") from None
    for key in ("true", "false"):
        if key in options and not (isinstance(options[key], list) and all(isinstance(w, str) for w in options[key])):
            raise MappingError(f"{where}: {key}: expected a list of words, like [\"frei\", \"ja\"]")
    if "map" in options and not isinstance(options["map"], dict):
        raise MappingError(f"{where}: map: expected a table from source values to canonical ones")


# -- records ------------------------------------------------------------------------------------


def read(inputs: Sequence[Input], options: Options) -> Iterator[Item]:
    """Importer entry point: the first input is the mapping file, the others are feeds."""
    if len(inputs) < 2 or not inputs[0].name.endswith(MAPPING_SUFFIXES):
        raise InputError("expected a mapping file (.toml or .json) first, then one or more feed files")
    mapping = load_mapping(inputs[0].stream.read(), inputs[0].name)
    for feed in inputs[1:]:
        yield from parse(feed.stream, mapping, options.source, feed.name)


def parse(feed: bytes | BinaryIO, mapping: Mapping, source: str, name: str = "feed") -> Iterator[Item]:
    """Events (or `Rejected`s) for every record of one feed, with their lines.

    A CSV feed streams (gzip or plain); a JSON feed is one document and is read whole.
    """
    stream = io.BufferedReader(io.BytesIO(feed)) if isinstance(feed, bytes) else feed
    buffered = stream if isinstance(stream, io.BufferedReader) else io.BufferedReader(stream)  # type: ignore[type-var]  # any binary stream works
    if buffered.peek(2)[:2] == b"\x1f\x8b":
        buffered = gzip.GzipFile(fileobj=buffered, mode="rb")  # type: ignore[assignment]  # reads like one
    text = io.TextIOWrapper(buffered, encoding=mapping.encoding, newline="")
    records = _csv_records(text, mapping, name) if mapping.format == "csv" else _json_records(text, mapping, name)
    described: set[tuple[Any, ...]] = set()  # a listing repeated on each of its rows is sent once
    try:
        for record, line, last_line, label in records:
            for table, build in ((mapping.listing, _listing), (mapping.rate, _rate)):
                if table is None:
                    continue
                try:
                    event: Any = build(table, record, source)
                except Rejected as exc:
                    event = Rejected(f"{label}{exc}")
                except OverflowError:
                    event = Rejected(f"{label}end: the nights run past year 9999; expected a real stay")
                if isinstance(event, ListingEvent):
                    key = msgspec.structs.astuple(event)
                    if key in described:
                        continue
                    described.add(key)
                yield Item(event, name, line, last_line, rows=0 if table is mapping.listing and mapping.rate else 1)
    except UnicodeDecodeError as exc:
        raise InputError(f"{name}: not {mapping.encoding} text ({exc.reason}); set encoding in the mapping") from None


def _csv_records(text: TextIO, mapping: Mapping, name: str) -> Iterator[tuple[dict[str, Any], int, int, str]]:
    """(record, first line, last line, label for errors) for each row after the header."""
    reader = csv.DictReader(text, delimiter=mapping.delimiter)
    if reader.fieldnames is None:
        raise InputError(f"{name}: empty; expected a header line")
    columns = {f.column for table in (mapping.rate, mapping.listing) if table for f in table.values() if f.column}
    missing = sorted(column for column in columns - set(reader.fieldnames) if "." not in column)
    if missing:
        raise InputError(f"{name}: no column '{missing[0]}' in the header ({', '.join(reader.fieldnames)[:200]})")
    line = reader.line_num
    for row in reader:
        first, line = line + 1, reader.line_num
        yield row, first, line, ""


def _json_records(text: TextIO, mapping: Mapping, name: str) -> Iterator[tuple[dict[str, Any], int, int, str]]:
    """Each object of the records list; 'line' is its 1-based index (JSON has no useful lines)."""
    try:
        data = json.loads(text.read())
    except ValueError as exc:
        raise InputError(f"{name}: not JSON: {exc}") from None
    path = mapping.records
    for key in path.split(".") if path else ():
        if not isinstance(data, dict) or key not in data:
            raise InputError(f"{name}: no '{key}' on the records path '{path}'")
        data = data[key]
    if not isinstance(data, list):
        raise InputError(f"{name}: records{' at ' + path if path else ''} is not a list")
    for index, record in enumerate(data):
        label = f"{path or 'records'}[{index}]: "
        yield (record if isinstance(record, dict) else {"__not_an_object__": record}), index + 1, index + 1, label


def _raw(field: Field, record: dict[str, Any]) -> Any:
    """The field's raw value in the record (None when absent or empty), or its constant."""
    if field.column is None:
        return field.value
    if field.column in record or "." not in field.column:
        value: Any = record.get(field.column)
    else:  # a JSON path: "price.amount"
        value = record
        for key in field.column.split("."):
            value = value.get(key) if isinstance(value, dict) else None
    if isinstance(value, str) and not value.strip():
        value = None
    return field.default if value is None else value


def _get(table: dict[str, Field], name: str, record: dict[str, Any]) -> Any:
    """A field converted to its canonical type; None when not mapped or empty."""
    if "__not_an_object__" in record:
        raise Rejected(f"{str(record['__not_an_object__'])[:40]!r} is not an object; expected one record")
    field = table.get(name)
    if field is None:
        return None
    raw = _raw(field, record)
    if raw is None:
        return None
    try:
        return CONVERTERS[field.kind](raw, field.options)
    except (ValueError, InvalidOperation, TypeError) as exc:
        raise Rejected(f"{name}: {str(raw)[:60]!r} from {field.where} {exc}") from None


def _required(table: dict[str, Field], name: str, record: dict[str, Any]) -> Any:
    value = _get(table, name, record)
    if value is None:
        raise Rejected(f"{name}: empty in {table[name].where}; expected a value (or a default in the mapping)")
    return value


def _rate(table: dict[str, Field], record: dict[str, Any], source: str) -> RateEvent:
    start = _required(table, "start", record)
    end = _get(table, "end", record)
    if end is not None and table["end"].options.get("inclusive"):
        end += dt.timedelta(days=1)
    nights = _get(table, "nights", record)
    if end is None:
        end = start + dt.timedelta(days=nights if nights is not None else 1)
    available = _get(table, "available", record)
    min_nights = _get(table, "min_nights", record)
    return RateEvent(
        source=source, listing_id=_required(table, "listing_id", record), start=start, end=end,
        currency=_required(table, "currency", record), changed_at=_required(table, "changed_at", record),
        price=_get(table, "price", record), available=True if available is None else available,
        min_nights=1 if min_nights is None else min_nights,
    )


def _listing(table: dict[str, Field], record: dict[str, Any], source: str) -> ListingEvent:
    return ListingEvent(
        source=source, listing_id=_required(table, "listing_id", record), name=_required(table, "name", record),
        kind=_required(table, "kind", record), lat=float(_required(table, "lat", record)),
        lon=float(_required(table, "lon", record)), max_guests=_required(table, "max_guests", record),
        changed_at=_required(table, "changed_at", record), property_id=_get(table, "property_id", record),
        city=_get(table, "city", record), country=_get(table, "country", record),
        bedrooms=_get(table, "bedrooms", record), url=_get(table, "url", record),
    )


# -- converters: raise ValueError with the expectation; `_get` adds field, column and value ----


def _text(raw: Any, options: dict[str, Any]) -> str:
    text = str(raw).strip().strip(options.get("strip", ""))
    table = options.get("map")
    if table is not None:
        if text not in table:
            raise ValueError(f"is not in the mapping's map; expected one of {', '.join(map(str, table))[:200]}")
        return str(table[text])
    return text


def _date(raw: Any, options: dict[str, Any]) -> dt.date:
    pattern = options.get("date_format", "%Y-%m-%d")
    try:
        return dt.datetime.strptime(str(raw).strip(), pattern).date()
    except ValueError:
        raise ValueError(f"is not a date; expected the format {pattern}") from None


def _datetime(raw: Any, options: dict[str, Any]) -> dt.datetime:
    pattern = options.get("datetime_format")
    text = str(raw).strip()
    try:
        moment = dt.datetime.strptime(text, pattern) if pattern else dt.datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"is not a date-time; expected {pattern or 'ISO 8601, like 2025-03-01T10:15:00Z'}") from None
    if moment.tzinfo is None:
        zone = options.get("timezone")
        if zone is None:
            raise ValueError("has no time zone; expected one in the value, or timezone in the mapping")
        moment = moment.replace(tzinfo=ZoneInfo(zone))
    return moment


def _decimal(raw: Any, options: dict[str, Any]) -> Decimal:
    if isinstance(raw, bool):
        raise ValueError("is a boolean; expected a number")
    if isinstance(raw, (int, float)):
        return Decimal(repr(raw))
    text = str(raw).strip().strip(options.get("strip", "")).strip()
    if options.get("decimal_comma"):
        text = text.replace(".", "").replace("\u202f", "").replace(" ", "").replace(",", ".")
    elif options.get("thousands"):
        text = text.replace(options["thousands"], "")
    try:
        number = Decimal(text)
    except InvalidOperation:
        shape = "1.234,50 (decimal comma)" if options.get("decimal_comma") else "1234.50"
        raise ValueError(f"is not a number; expected e.g. {shape}") from None
    if not number.is_finite():
        raise ValueError("is not a finite number")
    return number


def _integer(raw: Any, options: dict[str, Any]) -> int:
    if isinstance(raw, bool):
        raise ValueError("is a boolean; expected a whole number")
    if isinstance(raw, int):
        return raw
    text = str(raw).strip().strip(options.get("strip", "")).strip()
    try:
        return int(text)
    except ValueError:
        raise ValueError("is not a whole number") from None


def _boolean(raw: Any, options: dict[str, Any]) -> bool:
    if isinstance(raw, bool):
        return raw
    word = str(raw).strip().lower()
    true = [w.lower() for w in options.get("true", TRUE_WORDS)]
    false = [w.lower() for w in options.get("false", FALSE_WORDS)]
    if word in true:
        return True
    if word in false:
        return False
    raise ValueError(f"is not a known word; expected one of {', '.join(true + false)}")


CONVERTERS: dict[str, Callable[[Any, dict[str, Any]], Any]] = {
    "text": _text, "date": _date, "datetime": _datetime, "decimal": _decimal, "integer": _integer,
    "boolean": _boolean,
}
