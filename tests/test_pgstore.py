"""`serve --store postgresql://...` against a real PostgreSQL: the contract, bootstrap from
PostgreSQL alone, one writer per database, and no acknowledged event lost to a kill -9 of
staystream or a crash of PostgreSQL under load."""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path

import pytest

from acked import AckedLoad
from conftest import Server, start_server
from pg_fixtures import Postgres, create_database, postgres  # noqa: F401 (fixture)

NDJSON = {"content-type": "application/x-ndjson"}
EVENTS = (
    '{"type":"listing","source":"airbnb","listing_id":"pg-1","name":"Loft","kind":"apartment",'
    '"lat":48.8566,"lon":2.3522,"max_guests":4,"city":"Paris","country":"fr","changed_at":"2026-11-26T08:00:00Z"}\n'
    '{"type":"rate","source":"airbnb","listing_id":"pg-1","start":"2026-12-01","end":"2026-12-04",'
    '"price":"129","currency":"EUR","min_nights":2,"changed_at":"2026-11-26T08:00:00.123Z"}\n'
    # older than the one before for 2026-12-02: loses, whatever the arrival order
    '{"type":"rate","source":"airbnb","listing_id":"pg-1","start":"2026-12-02","end":"2026-12-03",'
    '"price":"99","currency":"EUR","changed_at":"2026-11-25T08:00:00Z"}\n'
    '{"type":"rate","source":"airbnb","listing_id":"pg-1","start":"2026-12-03","end":"2026-12-04",'
    '"available":false,"currency":"EUR","changed_at":"2026-11-26T09:00:00Z"}\n'
)
EXPECTED_NIGHTS = [
    {"night": "2026-12-01", "price": "129.00", "currency": "EUR", "available": True, "min_nights": 2,
     "changed_at": "2026-11-26T08:00:00.123Z"},
    {"night": "2026-12-02", "price": "129.00", "currency": "EUR", "available": True, "min_nights": 2,
     "changed_at": "2026-11-26T08:00:00.123Z"},
    {"night": "2026-12-03", "price": None, "currency": None, "available": False, "min_nights": 1,
     "changed_at": "2026-11-26T09:00:00.000Z"},
]


def serve(data_dir: Path, uri: str, *args: str) -> Server:
    return start_server(data_dir, "--store", uri, *args)


def check_contract(server: Server) -> None:
    with server.client() as client:
        calendar = client.get("/v1/listings/airbnb/pg-1/calendar", params={"start": "2026-12-01", "end": "2026-12-10"})
        assert calendar.status_code == 200, calendar.text
        assert calendar.json()["nights"] == EXPECTED_NIGHTS
        listing = client.get("/v1/listings/airbnb/pg-1").json()
        assert (listing["name"], listing["city"], listing["searchable"]) == ("Loft", "Paris", True)
        found = client.get("/v1/search", params={"lat": 48.85, "lon": 2.35, "radius_km": 5,
                                                 "checkin": "2026-12-01", "checkout": "2026-12-03"})
        assert found.status_code == 200, found.text
        assert [r["listing_id"] for r in found.json()["results"]] == ["pg-1"]
        assert found.json()["results"][0]["total"] == "258.00"
        assert client.get("/v1/listings/airbnb/never-seen/calendar").status_code == 404


def test_contract_and_bootstrap_from_postgres_alone(postgres: Postgres, tmp_path: Path) -> None:  # noqa: F811
    uri = create_database(postgres, "contract")
    first = serve(tmp_path / "a", uri)
    try:
        with first.client() as client:
            response = client.post("/v1/events", content=EVENTS, headers=NDJSON)
            assert response.status_code == 200, response.text
            assert response.json() == {"accepted": 4, "rejected": []}
        check_contract(first)
    finally:
        first.kill()  # no snapshot at shutdown: the next node replays the log
    assert postgres.psql("SELECT count(*) FROM staystream.snapshots", uri) == "0"

    replayed = serve(tmp_path / "b", uri)  # a new node: empty data dir, everything from PostgreSQL
    try:
        check_contract(replayed)
    finally:
        assert replayed.stop() == 0  # clean stop: snapshot into PostgreSQL, log truncated
    assert postgres.psql("SELECT count(*) FROM staystream.snapshots", uri) == "1"
    assert postgres.psql("SELECT count(*) FROM staystream.rate_log", uri) == "0"

    from_snapshot = serve(tmp_path / "c", uri)
    try:
        check_contract(from_snapshot)
    finally:
        from_snapshot.stop()


def test_facts_and_a_log_from_before_facts(postgres: Postgres, tmp_path: Path) -> None:  # noqa: F811
    """One-fact events go through PostgreSQL like rates; a log row in the format before facts
    (what main 49ffa0b wrote: `RATE_DTYPE_V1`, no `rate_format` setting) is rewritten at start."""
    import numpy as np

    from staystream.events.money import CURRENCY_INDEX
    from staystream.events.types import RATE_DTYPE_V1
    from test_facts import random_changes, send_all
    from test_ordering import model
    from wire_events import nights

    uri = create_database(postgres, "facts")
    changes = random_changes(9, 60)
    listing_ids = ["pg-facts-a", "pg-facts-b"]
    first = serve(tmp_path / "a", uri)
    try:
        with first.client() as client:
            send_all(client, changes, listing_ids)
            assert [nights(client, i) for i in listing_ids] == model(changes, 2)
    finally:
        assert first.stop() == 0  # a snapshot in PostgreSQL, the log truncated
    row = int(postgres.psql("SELECT row FROM staystream.listings WHERE listing_id = 'pg-facts-a'", uri))
    seq = int(postgres.psql("SELECT max(seq) FROM staystream.snapshots", uri)) + 1
    old = np.zeros(1, RATE_DTYPE_V1)
    old[0] = (row, (dt.date(2026, 12, 1) - dt.date(1970, 1, 1)).days, 2, 1_764_547_200_000_000, 4200,
              CURRENCY_INDEX["EUR"], 2, 1)  # 2026-12-01, 2 nights, changed 2025-12-01, 42.00 EUR
    postgres.psql(f"INSERT INTO staystream.rate_log (seq, events) VALUES ({seq}, '\\x{old.tobytes().hex()}'); "
                  "DELETE FROM staystream.settings WHERE name = 'rate_format'", uri)
    expected = model(changes, 2)
    for day in ("2026-12-01", "2026-12-02"):
        expected[0][day] = {"night": day, "price": "42.00", "currency": "EUR", "available": True, "min_nights": 2,
                            "changed_at": "2025-12-01T00:00:00.000Z"}
    second = serve(tmp_path / "b", uri, "--earliest-night", "2026-01-01")
    try:
        with second.client() as client:
            got = [nights(client, i) for i in listing_ids]
            assert got[0]["2026-12-01"] == expected[0]["2026-12-01"]
            assert got == [dict(sorted(calendar.items())) for calendar in expected]
    finally:
        second.kill()
    assert postgres.psql("SELECT value FROM staystream.settings WHERE name = 'rate_format'", uri) == "\\x32"


def test_one_writer_per_database(postgres: Postgres, tmp_path: Path) -> None:  # noqa: F811
    uri = create_database(postgres, "locked")
    first = serve(tmp_path / "a", uri)
    try:
        with pytest.raises(RuntimeError, match="in use by another staystream writer"):
            serve(tmp_path / "b", uri)
    finally:
        first.stop()


def test_kill_9_under_load_loses_nothing_acknowledged(postgres: Postgres, tmp_path: Path) -> None:  # noqa: F811
    uri = create_database(postgres, "kill9")
    current = serve(tmp_path / "var", uri)
    load = AckedLoad(lambda: current.url, "k9").start()
    try:
        for _ in range(3):
            load.wait_for_acks(20)
            current.kill()
            current = serve(tmp_path / "var", uri)
        load.wait_for_acks(20)
    finally:
        load.stop()
    try:
        assert load.lost(current.url) == []
    finally:
        current.kill()
    fresh = serve(tmp_path / "fresh", uri)  # and in PostgreSQL itself
    try:
        assert load.lost(fresh.url) == []
    finally:
        fresh.stop()


def test_postgres_crash_and_outage_under_load(postgres: Postgres, tmp_path: Path) -> None:  # noqa: F811
    # A server of its own: this test kills it.
    with Postgres() as database:
        server = serve(tmp_path / "var", database.uri)
        load = AckedLoad(lambda: server.url, "pgdown").start()
        try:
            load.wait_for_acks(20)
            database.restart(crash=True)  # kill -9 of every PostgreSQL process, WAL recovery
            load.wait_for_acks(20)

            database.stop()  # longer than the retry window: writes are refused, not queued
            outage = time.monotonic()
            while load.statuses.get(503, 0) < 3 and time.monotonic() - outage < 30:
                time.sleep(0.1)
            assert load.statuses.get(503, 0) >= 3 and load.retry_after_seen >= 3, load.statuses
            with server.client() as client:  # reads go on from memory
                assert client.get("/v1/listings/airbnb/never-seen/calendar").status_code == 404
            database.start()
            load.wait_for_acks(20)
        finally:
            load.stop()
        try:
            assert load.lost(server.url) == []
        finally:
            server.stop()
        fresh = serve(tmp_path / "fresh", database.uri)
        try:
            assert load.lost(fresh.url) == []
        finally:
            fresh.stop()
