"""Declarative CSV/JSON mappings: the mapping file's checks, transforms, rejections, the importer."""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import json
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from staystream.adapters import InputError, load, mapping
from staystream.events.bounds import Rejected
from staystream.events.types import ListingEvent, RateEvent

EXAMPLES = Path(__file__).parent.parent / "examples" / "mappings"
TODAY = dt.date.today()
BERLIN = "Europe/Berlin"


def de(offset: int) -> str:
    return (TODAY + dt.timedelta(days=offset)).strftime("%d.%m.%Y")


def day(offset: int) -> dt.date:
    return TODAY + dt.timedelta(days=offset)


STAND = (dt.datetime.now() - dt.timedelta(days=2)).strftime("%d.%m.%Y %H:%M")
HEADER = "Objekt-Nr;Objektname;Typ;Breite;Länge;Personen;Ort;Von;Bis;Preis/Nacht;Status;Mindestaufenthalt;Stand"


def german_feed(*rows: str) -> bytes:
    return ("\n".join([HEADER, *rows]) + "\n").encode("utf-8")


def row(listing: str = "FW-1", first: int = 10, last: int = 16, price: str = "1.089,50 €", status: str = "frei",
        min_stay: str = "3", kind: str = "Ferienwohnung", stand: str = STAND) -> str:
    return (f"{listing};Ostseeblick Whg. 3;{kind};54,0924;11,8867;4;Kühlungsborn;"
            f"{de(first)};{de(last)};{price};{status};{min_stay};{stand}")


@pytest.fixture(scope="module")
def german() -> mapping.Mapping:
    return mapping.load_mapping((EXAMPLES / "ferienwohnung-de.toml").read_bytes(), "ferienwohnung-de.toml")


def items(feed: bytes, table: mapping.Mapping, name: str = "feed.csv") -> list:
    return list(mapping.parse(feed, table, "fewo-de", name))


# -- the mapping file -------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "expected"), [
    ('format = "xml"\n[rate]\n', "format: 'xml' is not csv or json"),
    ('formatt = "csv"\n', "unknown key 'formatt'"),
    ('[rate]\nlisting_id = { column = "id" }\n',
     "[rate] lacks start, currency, changed_at; every rate event needs them"),
    ('[rate]\nprice = { column = "p", decimal_coma = true }\n',
     "rate.price: unknown option 'decimal_coma'; expected column, decimal_comma, default, strip, thousands, value"),
    ('[rate]\nprice = { column = "p", value = 1 }\n', "rate.price: give either column or value"),
    ('[rate]\nprice = "p"\n', "rate.price: expected a table like { column = \"...\" } or { value = ... }"),
    ('[rate]\nnightly = { column = "p" }\n', "rate.nightly: not a field of a rate event"),
    ('[rate]\nchanged_at = { column = "s", timezone = "Europe/Atlantis" }\n', "timezone: 'Europe/Atlantis' is not an "
                                                                              "IANA"),
    ('[rate]\navailable = { column = "s", true = "frei" }\n', 'true: expected a list of words, like ["frei", "ja"]'),
    ('delimiter = ";;"\n[rate]\n', "delimiter: ';;' is not one character"),
    ('encoding = "klingon"\n[rate]\n', "encoding: 'klingon' is not a known text encoding"),
    ('format = "csv"\n', "has neither a [rate] nor a [listing] table"),
    ('[rate\n', "not valid TOML"),
])
def test_mapping_file_mistakes_are_named(text: str, expected: str) -> None:
    with pytest.raises(mapping.MappingError) as caught:
        mapping.load_mapping(text.encode(), "m.toml")
    assert expected in str(caught.value)


def test_end_and_nights_are_exclusive_choices() -> None:
    text = ('[rate]\nlisting_id={column="i"}\nstart={column="s"}\nend={column="e"}\nnights={column="n"}\n'
            'currency={value="EUR"}\nchanged_at={column="c"}\n')
    with pytest.raises(mapping.MappingError, match="give end or nights, not both"):
        mapping.load_mapping(text.encode(), "m.toml")


# -- CSV with regional conventions ------------------------------------------------------------


def test_german_csv_transforms(german: mapping.Mapping) -> None:
    result = items(german_feed(row(), row(first=17, last=20, price="", status="belegt", min_stay=""),
                               row(listing="FW-2", kind="Ferienhaus", price="145,00 €", min_stay="7")), german)
    events = [item.event for item in result]
    assert [type(e).__name__ for e in events] == ["ListingEvent", "RateEvent", "RateEvent", "ListingEvent", "RateEvent"]
    first = events[1]
    assert isinstance(first, RateEvent)
    assert (
        first.listing_id,
        first.start,
        first.end,
        first.price,
        first.currency,
        first.available,
        first.min_nights,
    ) == ("FW-1", day(10), day(17), Decimal("1089.50"), "EUR", True, 3)  # "Bis" inclusive: end is the day after
    assert first.changed_at.tzinfo is not None and first.changed_at.utcoffset() in (
        dt.timedelta(hours=1),
        dt.timedelta(hours=2),
    )
    closed = events[2]
    assert (closed.price, closed.available, closed.min_nights) == (None, False, 1)
    listing = events[0]
    assert isinstance(listing, ListingEvent)
    assert (listing.kind, listing.lat, listing.lon, listing.max_guests, listing.city, listing.country) == (
        "apartment", 54.0924, 11.8867, 4, "Kühlungsborn", "DE")
    assert events[3].kind == "house"
    assert [(item.line, item.last_line) for item in result] == [(2, 2), (2, 2), (3, 3), (4, 4), (4, 4)]


def test_bad_records_are_rejected_with_line_field_column_and_value(german: mapping.Mapping) -> None:
    feed = german_feed(
        row(first=10, last=12),
        row(price="12,x €"),
        row(status="vielleicht"),
        row(kind="Hausboot"),
        row(first=10, last=11).replace(de(10), "31.02.2027"),
        row(stand="gestern"),
        '"FW-9";"Zwei\nZeilen";Ferienwohnung;54,1;11,8;2;Ort;' + f"{de(3)};{de(4)};50,00;frei;1;{STAND}",
    )
    result = items(feed, german)
    rejected = [(item.line, item.last_line, str(item.event)) for item in result if isinstance(item.event, Rejected)]
    assert rejected == [
        (3, 3, "price: '12,x €' from column 'Preis/Nacht' is not a number; expected e.g. 1.234,50 (decimal comma)"),
        (
            4,
            4,
            "available: 'vielleicht' from column 'Status' is not a known word; expected one of frei, belegt, gesperrt",
        ),
        (
            5,
            5,
            "kind: 'Hausboot' from column 'Typ' is not in the mapping's map; expected one of Ferienwohnung, "
            "Ferienhaus, Zimmer",
        ),
        (6, 6, "start: '31.02.2027' from column 'Von' is not a date; expected the format %d.%m.%Y"),
        (7, 7, "changed_at: 'gestern' from column 'Stand' is not a date-time; expected %d.%m.%Y %H:%M"),
        (7, 7, "changed_at: 'gestern' from column 'Stand' is not a date-time; expected %d.%m.%Y %H:%M"),
    ]
    spanning = [item for item in result if isinstance(item.event, RateEvent) and item.event.listing_id == "FW-9"]
    assert [(item.line, item.last_line) for item in spanning] == [(8, 9)]  # a quoted line break


def test_missing_column_encoding_and_gzip(german: mapping.Mapping) -> None:
    with pytest.raises(InputError, match="no column 'Status' in the header"):
        items(german_feed().replace(b";Status", b";Zustand"), german)
    latin = mapping.load_mapping((EXAMPLES / "ferienwohnung-de.toml").read_bytes().replace(
        b'encoding = "utf-8-sig"', b'encoding = "cp1252"'), "m.toml")
    feed = german_feed(row()).decode().encode("cp1252")
    assert [item.event.city for item in items(feed, latin) if isinstance(item.event, ListingEvent)] == ["Kühlungsborn"]
    with pytest.raises(InputError, match="not utf-8-sig text"):
        items(feed, german)
    assert len(items(gzip.compress(german_feed(row())), german)) == 2


# -- JSON -------------------------------------------------------------------------------------


def test_json_records_nested_columns_and_json_types() -> None:
    table = mapping.load_mapping((EXAMPLES / "rentals-json.json").read_bytes(), "rentals-json.json")
    records = [
        {
            "unit": {"id": "alp-17"},
            "checkin": day(5).isoformat(),
            "nights": 7,
            "price": {"amount": 189.5, "currency": "CHF"},
            "bookable": True,
            "minStay": 7,
            "updatedAt": "2026-01-01T08:00:00+01:00",
        },
        {
            "unit": {"id": "alp-17"},
            "checkin": day(12).isoformat(),
            "nights": "x",
            "price": {"currency": "CHF"},
            "bookable": False,
            "updatedAt": "2026-01-01T08:00:00+01:00",
        },
        "not a record",
        {
            "unit": {"id": "alp-18"},
            "checkin": day(1).isoformat(),
            "price": {"amount": "99", "currency": "CHF"},
            "bookable": "yes",
            "updatedAt": "2026-01-01T08:00:00",
        },
    ]
    result = list(mapping.parse(json.dumps({"data": {"availability": records}}).encode(), table, "alps", "feed.json"))
    first = result[0].event
    assert (first.start, first.end, first.price, first.available, first.min_nights) == (
        day(5), day(12), Decimal("189.5"), True, 7)
    assert [str(item.event) for item in result[1:]] == [
        "data.availability[1]: nights: 'x' from column 'nights' is not a whole number",
        "data.availability[2]: 'not a record' is not an object; expected one record",
        "data.availability[3]: changed_at: '2026-01-01T08:00:00' from column 'updatedAt' has no time zone; expected "
        "one in the value, or timezone in the mapping",
    ]
    assert [item.line for item in result] == [1, 2, 3, 4]
    with pytest.raises(InputError, match="no 'availability' on the records path 'data.availability'"):
        list(mapping.parse(b'{"data": {}}', table, "alps", "feed.json"))


def test_shipped_examples_read_cleanly() -> None:
    german = mapping.load_mapping((EXAMPLES / "ferienwohnung-de.toml").read_bytes(), "ferienwohnung-de.toml")
    assert not [
        i for i in items((EXAMPLES / "ferienwohnung-de.csv").read_bytes(), german) if isinstance(i.event, Rejected)
    ]
    table = mapping.load_mapping((EXAMPLES / "rentals-json.json").read_bytes(), "rentals-json.json")
    read = list(mapping.parse((EXAMPLES / "rentals-json.sample.json").read_bytes(), table, "alps"))
    assert len(read) == 2 and not [i for i in read if isinstance(i.event, Rejected)]
    assert load("mapping") is mapping


# -- through the importer and the real HTTP API -----------------------------------------------


def test_import_command_stores_what_the_feed_says(server, tmp_path: Path) -> None:
    feed = tmp_path / "belegung.csv"
    feed.write_bytes(german_feed(row(listing="IMP-1", first=30, last=33),
                                 row(listing="IMP-1", first=34, last=35, price="", status="gesperrt", min_stay=""),
                                 row(listing="IMP-1", price="viel")))
    rejects = tmp_path / "rejects.csv"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "staystream",
            "import",
            "--format",
            "mapping",
            "--source",
            "fewo-de",
            "--url",
            server.url,
            "--rejects",
            str(rejects),
            str(EXAMPLES / "ferienwohnung-de.toml"),
            str(feed),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr + done.stdout
    with server.client() as client:
        nights = client.get("/v1/listings/fewo-de/IMP-1/calendar").json()["nights"]
        assert [(n["night"], n["price"], n["available"], n["min_nights"]) for n in nights] == [
            *[(day(i).isoformat(), "1089.50", True, 3) for i in range(30, 34)],
            *[(day(i).isoformat(), None, False, 1) for i in range(34, 36)]]
        listing = client.get("/v1/listings/fewo-de/IMP-1").json()
        assert (listing["name"], listing["kind"], listing["city"]) == (
            "Ostseeblick Whg. 3",
            "apartment",
            "Kühlungsborn",
        )
    with open(rejects, newline="") as f:
        assert [r[:4] for r in csv.reader(f)][1:] == [["belegung.csv", "4", "4", "rejected"]]


def test_dates_past_year_9999_are_rejected(german: mapping.Mapping) -> None:
    result = items(german_feed(row().replace(de(10), "31.12.9999").replace(de(16), "31.12.9999")), german)
    assert [str(item.event) for item in result if isinstance(item.event, Rejected)] == [
        "end: the nights run past year 9999; expected a real stay"]
