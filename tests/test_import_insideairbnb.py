"""`staystream import --format insideairbnb`: the real Singapore scrape, end to end.

The whole city is imported through the command (which starts its own server on the data dir),
then read back through a real server's API and compared with the CSV files themselves: sampled
calendars night by night, and searches against a brute-force computation over the files.
Malformed files go through a running server with `--url`. The adapter's pieces are also tested
in-process where that is the quickest way to pin a rule.
"""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import io
import math
import os
import random
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from conftest import Server, start_server
from staystream.adapters import Input, InputError, Options, load, one_by_one
from staystream.adapters.insideairbnb import kind_of, parse_amount
from staystream.events.bounds import Rejected
from staystream.events.types import ListingEvent, RateEvent

DATA = Path(__file__).resolve().parent / "data" / "singapore"  # Inside Airbnb, CC BY 4.0: see its README
LISTINGS, CALENDAR = DATA / "listings.csv.gz", DATA / "calendar.csv.gz"
PLACEHOLDER = Decimal("9926.00")  # the default: 7,000 EUR at the shipped table's 1.418 SGD/EUR
EARTH_RADIUS_KM = 6371.0088
FIRST_NIGHT, LAST_NIGHT = dt.date(2023, 9, 23), dt.date(2024, 9, 22)

pytestmark = pytest.mark.skipif(not CALENDAR.exists(), reason="the Singapore data is not here")


def run_import(*args: str, cwd: Path, timeout: float = 120) -> tuple[subprocess.CompletedProcess, int]:
    """`staystream import ...` as a child process; returns it and its peak RSS in kB."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    if "--rejects" not in args:  # inputs may be the package's own files: keep the rejects out of the tree
        args = (*args, "--rejects", str(cwd / "rejects.csv"))
    process = subprocess.Popen([sys.executable, "-m", "staystream", "import", *args], cwd=cwd,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True)
    peak = 0
    deadline = time.monotonic() + timeout
    while process.poll() is None and time.monotonic() < deadline:
        try:
            status = Path(f"/proc/{process.pid}/status").read_text()
            peak = max(peak, int(re.search(r"VmHWM:\s+(\d+)", status).group(1)))  # type: ignore[union-attr]
        except (OSError, AttributeError):
            pass
        time.sleep(0.1)
    if process.poll() is None:
        process.kill()
    out, err = process.communicate()
    return subprocess.CompletedProcess(process.args, process.returncode, out, err), peak


def import_args(*files: Path, extra: tuple[str, ...] = ()) -> list[str]:
    return ["--format", "insideairbnb", "--source", "airbnb", "--currency", "SGD", *extra,
            *(str(f) for f in files)]


def read_csv(path: Path) -> Iterator[dict[str, str]]:
    with gzip.open(path, "rt", encoding="utf-8", newline="") as f:
        yield from csv.DictReader(f)


def money(text: str) -> Decimal:
    return Decimal(text.replace("$", "").replace(",", ""))


@pytest.fixture(scope="module")
def city(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """The whole city imported by `staystream import` (local store), then served for reads."""
    work = tmp_path_factory.mktemp("city")
    started = time.monotonic()
    result, peak_kb = run_import(*import_args(LISTINGS, CALENDAR), "--data-dir", str(work / "var"), cwd=work)
    seconds = time.monotonic() - started
    assert result.returncode == 0, result.stderr
    print(f"\nSingapore import: {seconds:.1f} s wall (server start and stop included), "
          f"peak RSS {peak_kb / 1024:.0f} MB\n{result.stdout}")
    server = start_server(work / "var")
    yield {"server": server, "stdout": result.stdout, "peak_kb": peak_kb, "work": work}
    server.stop()


@pytest.fixture(scope="module")
def listings() -> dict[str, dict[str, str]]:
    return {row["id"]: row for row in read_csv(LISTINGS)}


@pytest.fixture(scope="module")
def nights() -> dict[str, dict[str, tuple[str, bool, int]]]:
    """Per listing, per night: (price text, bookable, min_nights) as the CSV says it."""
    table: dict[str, dict[str, tuple[str, bool, int]]] = {}
    with gzip.open(CALENDAR, "rt", encoding="utf-8", newline="") as f:
        reader = csv.reader(f)
        next(reader)
        for listing_id, night, available, price, _, minimum, _ in reader:
            # only a price of four digits or more (written with a comma) can be a placeholder
            bookable = available == "t" and ("," not in price or money(price) < PLACEHOLDER)
            table.setdefault(listing_id, {})[night] = (price, bookable, int(minimum))
    return table


def test_whole_city_imports(city: dict) -> None:
    out = city["stdout"]
    assert "rows read:       1,274,757 (listings.csv.gz 3,483, calendar.csv.gz 1,271,274)" in out
    assert re.search(r"events accepted: ([\d,]+) of \1 sent \(1,271,274 nights\)", out), out
    assert "rejected:        0\n" in out
    # 20791161 offers 90 nights at 10,000-11,000 SGD (a 150-a-night condo otherwise): placeholders.
    assert "adjusted:        90 nights at or above the placeholder price" in out
    assert city["peak_kb"] < 300 * 1024


def test_sampled_calendars_equal_the_csv(city: dict, nights: dict) -> None:
    chosen = random.Random(20230923).sample(sorted(nights), 40)
    chosen += ["932325448513127523", "20791161", "19847774", "71609"]  # 18 digits; placeholders
    with city["server"].client() as client:
        for listing_id in chosen:
            response = client.get(f"/v1/listings/airbnb/{listing_id}/calendar",
                                  params={"start": FIRST_NIGHT.isoformat(), "end": LAST_NIGHT.isoformat()})
            assert response.status_code == 200, response.text
            got = {n["night"]: (Decimal(n["price"]), n["available"], n["min_nights"])
                   for n in response.json()["nights"]}
            expected = {night: (money(price), bookable, minimum)
                        for night, (price, bookable, minimum) in nights[listing_id].items()}
            assert got == expected, listing_id
            assert {n["currency"] for n in response.json()["nights"]} == {"SGD"}
            assert {n["changed_at"] for n in response.json()["nights"]} == {"2023-09-23T00:00:00.000Z"}


def brute_force(listings: dict, nights: dict, lat: float, lon: float, radius_km: float,
                checkin: dt.date, stay: int, guests: int) -> set[str]:
    found = set()
    days = [(checkin + dt.timedelta(days=i)).isoformat() for i in range(stay)]
    for listing_id, row in listings.items():
        phi1, phi2 = math.radians(float(row["latitude"])), math.radians(lat)
        a = (math.sin((phi2 - phi1) / 2) ** 2 + math.cos(phi1) * math.cos(phi2)
             * math.sin(math.radians(lon - float(row["longitude"])) / 2) ** 2)
        if 2 * EARTH_RADIUS_KM * math.asin(math.sqrt(a)) > radius_km or int(row["accommodates"]) < guests:
            continue
        calendar = nights[listing_id]
        if all(day in calendar and calendar[day][1] for day in days) and calendar[days[0]][2] <= stay:
            found.add(listing_id)
    return found


@pytest.mark.parametrize("lat, lon, radius_km, checkin, stay, guests", [
    (1.29, 103.85, 5, dt.date(2023, 10, 1), 3, 2),
    (1.30, 103.83, 3, dt.date(2023, 12, 22), 2, 1),
    (1.35, 103.82, 25, dt.date(2024, 3, 1), 7, 4),
])
def test_search_equals_brute_force(city: dict, listings: dict, nights: dict, lat: float, lon: float,
                                   radius_km: float, checkin: dt.date, stay: int, guests: int) -> None:
    expected = brute_force(listings, nights, lat, lon, radius_km, checkin, stay, guests)
    assert expected  # a stay somebody could book
    found: list[str] = []
    cursor = None
    with city["server"].client() as client:
        while True:
            params = {"lat": lat, "lon": lon, "radius_km": radius_km, "checkin": checkin.isoformat(),
                      "checkout": (checkin + dt.timedelta(days=stay)).isoformat(), "guests": guests,
                      "limit": 200, **({"cursor": cursor} if cursor else {})}
            response = client.get("/v1/search", params=params)
            assert response.status_code == 200, response.text
            page = response.json()
            found += [result["listing_id"] for result in page["results"]]
            cursor = page["next_cursor"]
            if not cursor:
                break
    assert len(found) == len(set(found))
    assert set(found) == expected
    for result in page["results"][:5]:  # totals are exact sums of the CSV's nightly prices
        csv_nights = nights[result["listing_id"]]
        total = sum(money(csv_nights[(checkin + dt.timedelta(days=i)).isoformat()][0]) for i in range(stay))
        assert Decimal(result["listing_total"]) == total


def test_reimport_through_url_is_harmless(city: dict, nights: dict) -> None:
    server: Server = city["server"]
    chosen = random.Random(7).sample(sorted(nights), 10)

    def calendars() -> list[object]:
        with server.client() as client:
            return [client.get(f"/v1/listings/airbnb/{i}/calendar").json() for i in chosen] + [
                client.get(f"/v1/listings/airbnb/{i}").json() for i in chosen]

    before = calendars()
    result, _ = run_import(*import_args(CALENDAR, LISTINGS), "--url", server.url, cwd=city["work"])
    assert result.returncode == 0, result.stderr
    assert "(1,271,274 nights)" in result.stdout and "rejected:        0\n" in result.stdout
    assert calendars() == before


def test_local_import_refuses_a_data_dir_in_use(city: dict) -> None:
    result, _ = run_import(*import_args(LISTINGS), "--data-dir", str(city["server"].data_dir),
                           cwd=city["work"])
    assert result.returncode == 1
    assert "--url" in result.stderr and "running on data dir" in result.stderr


BAD_LISTINGS = ("id,listing_url,name,latitude,longitude,property_type,room_type,accommodates,bedrooms,price,"
                "minimum_nights,last_scraped,calendar_last_scraped\n"
                """900000000000000001,https://www.airbnb.com/rooms/900000000000000001,"Loft, ""quoted""
with a line break",1.29,103.85,Entire loft,Entire home/apt,2,1.0,"$1,234.50",2,2023-09-23,2023-09-23
900000000000000002,,No latitude,,103.85,Private room in home,Private room,2,,$80.00,1,2023-09-23,2023-09-23
900000000000000003,,Odd room type,1.29,103.85,Castle,Whole castle,2,,$80.00,1,2023-09-23,2023-09-23
900000000000000004,,Villa,1.3,103.8,Entire villa,Entire home/apt,8,4,$900.00,3,2023-09-23,2023-09-23
""")
BAD_CALENDAR = '''listing_id,date,available,price,adjusted_price,minimum_nights,maximum_nights
900000000000000001,2023-10-01,t,"$1,234.50","$1,234.50",2,30
900000000000000001,2023-10-02,t,$12;34,$12.34,2,30
900000000000000001,2023-10-03,t,"$1,234.50","$1,234.50",2,30
900000000000000001,2023-10-0x,t,"$1,234.50","$1,234.50",2,30
900000000000000001,2023-10-05,maybe,"$1,234.50","$1,234.50",2,30
900000000000000001,2023-10-06,t,"$1,234.50"
900000000000000001,2023-10-07,t,,,,30
900000000000000004,2023-10-01,t,$900.00,$900.00,2000,30
900000000000000004,2023-10-02,t,$900.00,$900.00,2000,30
900000000000000004,2023-10-03,f,$15000.00,$15000.00,3,30
900000000000000004,2023-10-04,t,$15000.00,$15000.00,3,30
900000000000000005,2023-10-01,t,,,,
900000000000000005,2023-10-02,f,,,,
'''


def test_the_default_rejects_file_lands_beside_the_input_or_in_the_data_dir(server: Server, tmp_path: Path) -> None:
    """Never a stray import-rejects.csv in the current folder: beside the input with --url, else in the store."""
    inputs, cwd = tmp_path / "inputs", tmp_path / "cwd"
    inputs.mkdir(), cwd.mkdir()
    (inputs / "listings.csv.gz").write_bytes(gzip.compress(BAD_LISTINGS.encode()))
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    command = [sys.executable, "-m", "staystream", "import", *import_args(inputs / "listings.csv.gz")]
    remote = subprocess.run([*command, "--url", server.url], cwd=cwd, env=env, capture_output=True, text=True,
                            timeout=120)
    assert remote.returncode == 0, remote.stderr
    assert "latitude: missing" in (inputs / "listings.rejects.csv").read_text()
    local = subprocess.run([*command, "--data-dir", str(tmp_path / "store")], cwd=cwd, env=env,
                           capture_output=True, text=True, timeout=120)
    assert local.returncode == 0, local.stderr
    assert "latitude: missing" in (tmp_path / "store" / "import-rejects.csv").read_text()
    assert list(cwd.iterdir()) == []


def test_malformed_rows_are_rejected_with_line_and_reason(server: Server, tmp_path: Path) -> None:
    (tmp_path / "listings.csv").write_text(BAD_LISTINGS)
    (tmp_path / "calendar.csv").write_text(BAD_CALENDAR)
    rejects = tmp_path / "rejects.csv"
    result, _ = run_import(*import_args(tmp_path / "listings.csv", tmp_path / "calendar.csv"),
                           "--url", server.url, "--rejects", str(rejects), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    rows = list(csv.DictReader(io.StringIO(rejects.read_text())))
    found = {(r["file"], int(r["line"]), int(r["last_line"]), r["outcome"]): r["reason"] for r in rows}
    expected = {
        ("listings.csv", 4, 4, "rejected"): "latitude: missing",
        ("listings.csv", 5, 5, "rejected"): "room_type: 'Whole castle' is not one of",
        ("calendar.csv", 3, 3, "rejected"): "price: '$12;34' is not an amount",
        ("calendar.csv", 5, 5, "rejected"): "date: '2023-10-0x' is not a date",
        ("calendar.csv", 6, 6, "rejected"): "available: 'maybe' is not a boolean",
        ("calendar.csv", 7, 7, "rejected"): "row has 4 fields; the header has 7",
        # the service's own rejection, mapped back to the two rows the rate event came from
        ("calendar.csv", 9, 10, "rejected"): "min_nights: 2000 is out of range",
        ("calendar.csv", 12, 12, "adjusted"): "price 15000.00 SGD is at or above the placeholder price",
        ("calendar.csv", 13, 13, "rejected"): "price: empty, and the listing has no price",
    }
    assert set(found) == set(expected), rows
    for key, reason in expected.items():
        assert reason in found[key], (key, found[key])
    assert "900000000000000001" in found[("calendar.csv", 3, 3, "rejected")]
    assert "rows read:       17 (listings.csv 4, calendar.csv 13)" in result.stdout
    assert "rejected:        8 (see" in result.stdout

    with server.client() as client:
        listing = client.get("/v1/listings/airbnb/900000000000000001").json()
        assert listing["name"] == 'Loft, "quoted"\nwith a line break'
        assert (listing["kind"], listing["max_guests"], listing["bedrooms"]) == ("apartment", 2, 1)
        assert client.get("/v1/listings/airbnb/900000000000000004").json()["kind"] == "house"
        calendar = client.get("/v1/listings/airbnb/900000000000000001/calendar").json()["nights"]
        assert [(n["night"], n["price"], n["available"], n["min_nights"]) for n in calendar] == [
            ("2023-10-01", "1234.50", True, 2),
            ("2023-10-03", "1234.50", True, 2),  # rows after a bad one still count
            ("2023-10-07", "1234.50", True, 2),  # empty price and minimum: the listing's
        ]
        calendar = client.get("/v1/listings/airbnb/900000000000000004/calendar").json()["nights"]
        assert [(n["night"], n["price"], n["available"]) for n in calendar] == [
            ("2023-10-03", "15000.00", False), ("2023-10-04", "15000.00", False)]
        calendar = client.get("/v1/listings/airbnb/900000000000000005/calendar").json()["nights"]
        assert [(n["night"], n["price"], n["available"]) for n in calendar] == [("2023-10-02", None, False)]


def test_a_file_that_is_not_inside_airbnb_is_refused(tmp_path: Path) -> None:
    (tmp_path / "other.csv").write_text("a,b\n1,2\n")
    (tmp_path / "summary.csv").write_text("id,name,latitude,longitude,room_type,price\n")
    result, _ = run_import(*import_args(tmp_path / "other.csv"), "--url", "http://127.0.0.1:9", cwd=tmp_path)
    assert result.returncode == 2 and "neither an Inside Airbnb listings file" in result.stderr
    result, _ = run_import(*import_args(tmp_path / "summary.csv"), "--url", "http://127.0.0.1:9", cwd=tmp_path)
    assert result.returncode == 2 and "use the detailed listings.csv.gz" in result.stderr


def test_seed_sample_gives_results_for_today(server_factory) -> None:
    seeded = server_factory("--seed-sample")
    today = dt.date.today()
    params = {"lat": 1.29, "lon": 103.85, "radius_km": 5, "checkin": today.isoformat(),
              "checkout": (today + dt.timedelta(days=3)).isoformat(), "guests": 2}
    deadline = time.monotonic() + 60
    with seeded.client() as client:
        while time.monotonic() < deadline:
            page = client.get("/v1/search", params=params).json()
            if page["results"]:
                break
            time.sleep(0.3)
        assert page["results"], seeded.log()
        assert page["results"][0]["city"] == "Singapore"
        week = {**params, "checkin": (today + dt.timedelta(days=7)).isoformat(),
                "checkout": (today + dt.timedelta(days=10)).isoformat()}  # the README's example
        deadline = time.monotonic() + 10  # the listings go last: once one is searchable, all are soon
        while client.get("/v1/search", params=week).json()["matches"] < 50 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert client.get("/v1/search", params=week).json()["matches"] >= 50
        listing_id = page["results"][0]["listing_id"]
        nights = client.get(f"/v1/listings/airbnb/{listing_id}/calendar").json()["nights"]
        assert nights[0]["night"] == today.isoformat() and len(nights) == 365
        described = client.get(f"/v1/listings/airbnb/{listing_id}").json()["described_at"]
    seeded.stop()
    again = server_factory("--seed-sample", data_dir=seeded.data_dir)  # not empty: not seeded again
    deadline = time.monotonic() + 10
    while "already holds listings" not in again.log() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert "already holds listings" in again.log()
    with again.client() as client:
        assert client.get(f"/v1/listings/airbnb/{listing_id}").json()["described_at"] == described


# -- the adapter's rules, in-process ----------------------------------------------------------------


@pytest.mark.parametrize("text, amount", [
    ("$150.00", "150.00"), ("$1,234.00", "1234.00"), ("$109,999.00", "109999.00"), ("12", "12"),
    (" $1,000,000.5 ", "1000000.5"), ("€80.10", "80.10"),
])
def test_amounts_are_exact(text: str, amount: str) -> None:
    assert parse_amount(text) == Decimal(amount)
    assert str(parse_amount(text)) == amount


@pytest.mark.parametrize("text", ["$1,23.00", "$-5.00", "1.2.3", "$", "abc", "$1e3", "1 000"])
def test_malformed_amounts_are_rejected(text: str) -> None:
    with pytest.raises(Rejected, match="not an amount"):
        parse_amount(text)


@pytest.mark.parametrize("room_type, property_type, kind", [
    ("Entire home/apt", "Entire rental unit", "apartment"),
    ("Entire home/apt", "Entire condo", "apartment"),
    ("Entire home/apt", "Entire serviced apartment", "apartment"),
    ("Entire home/apt", "Entire home", "house"),
    ("Entire home/apt", "Entire townhouse", "house"),
    ("Entire home/apt", "Entire villa", "house"),
    ("Entire home/apt", "Tiny home", "house"),
    ("Entire home/apt", "Boat", "other"),
    ("Entire home/apt", "Campsite", "other"),
    ("Private room", "Private room in condo", "private_room"),
    ("Shared room", "Shared room in rental unit", "shared_room"),
    ("Shared room", "Shared room in hostel", "hostel_bed"),
    ("Hotel room", "Room in hostel", "hotel_room"),
])
def test_room_types_map_to_kinds(room_type: str, property_type: str, kind: str) -> None:
    assert kind_of(room_type, property_type) == kind


def test_runs_of_equal_nights_become_one_rate_event() -> None:
    header = "listing_id,date,available,price,adjusted_price,minimum_nights,maximum_nights\n"
    start = dt.date(2024, 1, 1)
    rows = [f"7,{start + dt.timedelta(days=i)},t,$100.00,$90.00,2,30\n" for i in range(700)]
    rows[10] = rows[10].replace(",2,30", ",3,30")  # a different minimum stay: its own run
    rows[20] = rows[20].replace(",t,", ",f,")
    del rows[30]  # a gap in the dates
    rows.insert(100, "8,2024-02-01,t,$5.00,,1,1\n")  # another listing in between
    data = (header + "".join(rows)).encode()
    items = list(one_by_one(load("insideairbnb").read([Input("cal.csv", io.BytesIO(gzip.compress(data)))],
                                                      Options("airbnb", "SGD"))))
    spans = [(i.event.listing_id, str(i.event.start), (i.event.end - i.event.start).days, i.line, i.last_line)
             for i in items if isinstance(i.event, RateEvent)]
    assert spans == [  # line 1 is the header
        ("7", "2024-01-01", 10, 2, 11), ("7", "2024-01-11", 1, 12, 12), ("7", "2024-01-12", 9, 13, 21),
        ("7", "2024-01-21", 1, 22, 22), ("7", "2024-01-22", 9, 23, 31),
        ("7", "2024-02-01", 70, 32, 101), ("8", "2024-02-01", 1, 102, 102),
        ("7", "2024-04-11", 550, 103, 652), ("7", "2025-10-13", 49, 653, 701),  # 550 nights at most
    ]
    # no listings file: every event is dated by the calendar's first night, its scrape date
    assert {i.event.changed_at for i in items} == {dt.datetime(2024, 1, 1, tzinfo=dt.UTC)}


def test_listing_events_keep_ids_as_strings_and_dates_of_the_scrape() -> None:
    data = BAD_LISTINGS.encode()
    items = list(
        load("insideairbnb").read([Input("l.csv", io.BytesIO(data))], Options("airbnb", "SGD", city="Singapore"))
    )
    first = items[0].event
    assert isinstance(first, ListingEvent)
    assert first.listing_id == "900000000000000001" and (items[0].line, items[0].last_line) == (2, 3)
    assert first.changed_at == dt.datetime(2023, 9, 23, tzinfo=dt.UTC)
    assert first.city == "Singapore" and first.url == "https://www.airbnb.com/rooms/900000000000000001"
    assert [(i.line, type(i.event).__name__) for i in items] == [
        (2, "ListingEvent"), (4, "Rejected"), (5, "Rejected"), (6, "ListingEvent")]


def test_currency_is_required() -> None:
    with pytest.raises(InputError, match="--currency SGD"):
        list(load("insideairbnb").read([Input("l.csv", io.BytesIO(BAD_LISTINGS.encode()))], Options("airbnb")))


def test_shed_load_and_oversized_batches_are_retried_not_dropped(server_factory, tmp_path: Path) -> None:
    """A server that sheds (503 + Retry-After) and refuses big bodies (413) still gets every event."""
    # a backlog of one event: any batch that arrives while another is being written is shed
    strict = server_factory("--max-backlog-events", "100", "--max-events-per-request", "2500")
    package = Path(__file__).resolve().parent.parent / "src/staystream/data"
    result, _ = run_import(
        *import_args(package / "sample-singapore-listings.csv.gz", package / "sample-singapore-calendar.csv.gz",
                     extra=("--batch-events", "4000", "--in-flight", "6")),
        "--url", strict.url, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    sent = re.search(r"events accepted: ([\d,]+) of ([\d,]+) sent \(299,665 nights\)", result.stdout)
    assert sent and sent.group(1) == sent.group(2), result.stdout
    with strict.client() as client:
        metrics = client.get("/metrics").text
        assert re.search(r'staystream_http_requests_total\{route="bulk_rates",status="413"\} [1-9]', metrics)
        assert re.search(r"staystream_shed_requests_total [1-9]", metrics), "no 503 was provoked"


def test_a_server_from_before_bulk_rates_gets_the_rates_as_ndjson(server_factory, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """`import --url` into staystream as it was before `POST /v1/bulk/rates` (80b3bee's parent, run
    from git): that route answers 404, and the import goes on as NDJSON with a warning."""
    root = Path(__file__).resolve().parent.parent
    archive = subprocess.run(["git", "-C", str(root), "archive", "80b3bee^", "src"], capture_output=True)
    if archive.returncode != 0:
        pytest.skip(f"no git history to run the service from: {archive.stderr.decode(errors='replace')}")
    subprocess.run(["tar", "-x", "-C", str(tmp_path)], input=archive.stdout, check=True)
    monkeypatch.setenv("PYTHONPATH", str(tmp_path / "src"))
    before = server_factory()
    monkeypatch.delenv("PYTHONPATH")
    with gzip.open(CALENDAR, "rt", encoding="utf-8", newline="") as f:
        lines = [next(f) for _ in range(20_001)]  # the header and the first 55 listings' nights
    calendar = tmp_path / "calendar.csv.gz"
    calendar.write_bytes(gzip.compress("".join(lines).encode()))
    result, _ = run_import(*import_args(calendar), "--url", before.url, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert f"{before.url} has no /v1/bulk/rates (404" in result.stderr
    assert re.search(r"events accepted: ([\d,]+) of \1 sent \(20,000 nights\)", result.stdout), result.stdout
    rows = list(csv.reader(lines[1:]))
    with before.client() as client:
        for listing_id in (rows[0][0], rows[-1][0]):
            response = client.get(f"/v1/listings/airbnb/{listing_id}/calendar",
                                  params={"start": FIRST_NIGHT.isoformat(), "end": LAST_NIGHT.isoformat()})
            got = {n["night"]: (Decimal(n["price"]), n["available"], n["min_nights"])
                   for n in response.json()["nights"]}
            assert got == {night: (money(price), available == "t", int(minimum))
                           for listing, night, available, price, _, minimum, _ in rows if listing == listing_id}
